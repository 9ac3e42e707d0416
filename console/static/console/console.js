// The job console: a small client of the jobs API, written the way docs/api.md asks
// single-page apps to poll. No framework, no build step; the page passes its settings as
// a JSON block (#console-config) and server-rendered markup, so no inline script runs.
//
// Changes arrive on one stream, GET /api/events (read with fetch(): EventSource cannot send
// the Authorization header), which carries every job of the tenant. While it is open no
// job is polled; when it fails or ends, the polling below takes over until it reconnects
// (with backoff); a server without streams (404, 503) is polled only.
//
// Polling rules, per unfinished job:
// - send If-None-Match with the last ETag (when the server gave one): 304 = unchanged;
// - ask for a long poll with ?wait= (a 400 for it means "unsupported": plain polls after);
// - start polls no more often than Retry-After says (else every 2 s);
// - 429: every request of this page waits Retry-After (the limit is per user);
// - network errors: exponential backoff with jitter, 1 s doubling to 30 s;
// - stop at a final state; pause while the tab is hidden.
// The access token lives in memory only; it is refreshed before it expires.

const FINAL_STATES = new Set(["completed", "failed", "cancelled"]);
const STATUS_SYMBOLS = {
  pending: "◷",
  processing: "▶",
  completed: "✓",
  failed: "✗",
  cancelled: "⊘",
};
const POLLING = {
  intervalSeconds: 2, // between polls of a job when the server suggests no Retry-After
  waitSeconds: 20, // long-poll length asked for with ?wait= (the server accepts 1–30)
  maxConcurrent: 4, // browsers open 6 connections per host: keep two for user actions
  backoffBaseSeconds: 1,
  backoffMaxSeconds: 30,
  rateLimitedSeconds: 5, // a 429 without Retry-After
};
const PAGE_SIZE = 20;

const config = JSON.parse(document.getElementById("console-config").textContent);
const $ = (id) => document.getElementById(id);
const ui = {
  login: $("login"),
  loginForm: $("login-form"),
  loginUser: $("login-username"),
  loginPassword: $("login-password"),
  loginError: $("login-error"),
  loginButton: $("login-button"),
  app: $("app"),
  sessionBar: $("session-bar"),
  sessionUser: $("session-user"),
  logout: $("logout-button"),
  submitTitle: $("submit-title"),
  submitForm: $("submit-form"),
  type: $("job-type"),
  payload: $("job-payload"),
  submitError: $("submit-error"),
  submitButton: $("submit-button"),
  refresh: $("refresh-button"),
  older: $("older-button"),
  jobsBody: $("jobs-body"),
  jobsEmpty: $("jobs-empty"),
  announcer: $("announcer"),
  notice: $("notice"),
};

class SessionEnded extends Error {}
const EXPIRED = "Your session has expired: please log in again.";

// --- small helpers ---------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function show(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

function announce(text) {
  // Re-set even identical text so that screen readers repeat it.
  ui.announcer.textContent = "";
  requestAnimationFrame(() => {
    ui.announcer.textContent = text;
  });
}

const shortId = (id) => id.slice(0, 8);
const describe = (job) => `${job.type} ${shortId(job.id)}`;

function retryAfterSeconds(response) {
  const value = response.headers.get("Retry-After");
  if (value === null) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value); // the HTTP-date form
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

function backoffSeconds(failures) {
  const ceiling = Math.min(
    POLLING.backoffMaxSeconds,
    POLLING.backoffBaseSeconds * 2 ** (failures - 1),
  );
  return ceiling / 2 + (Math.random() * ceiling) / 2; // jitter: clients don't retry in step
}

function flattenErrors(errors, prefix = "") {
  if (Array.isArray(errors)) {
    if (errors.every((item) => typeof item === "string")) {
      return [`${prefix ? `${prefix}: ` : ""}${errors.join(" ")}`];
    }
    return errors.flatMap((item, index) => flattenErrors(item, `${prefix}[${index}]`));
  }
  if (errors && typeof errors === "object") {
    return Object.entries(errors).flatMap(([key, value]) =>
      flattenErrors(value, key === "non_field_errors" ? prefix : prefix ? `${prefix}.${key}` : key),
    );
  }
  return [`${prefix ? `${prefix}: ` : ""}${errors}`];
}

async function problemText(response) {
  let problem = {};
  try {
    problem = await response.json();
  } catch {
    // not JSON (a proxy's error page): fall back to the status line
  }
  const lines = problem.errors ? flattenErrors(problem.errors) : [];
  const detail = problem.detail || `${response.status} ${response.statusText}`.trim();
  return lines.length ? lines.join("\n") : detail;
}

function sameOrigin(link) {
  const url = new URL(link, location.href);
  return url.pathname + url.search;
}

function whenVisible() {
  if (!document.hidden) return Promise.resolve();
  return new Promise((resolve) => {
    const onChange = () => {
      if (document.hidden) return;
      document.removeEventListener("visibilitychange", onChange);
      resolve();
    };
    document.addEventListener("visibilitychange", onChange);
  });
}

// A counting semaphore: at most POLLING.maxConcurrent polls in flight.
class Slots {
  constructor(size) {
    this.free = size;
    this.queue = [];
  }
  get waiting() {
    return this.queue.length;
  }
  acquire() {
    if (this.free > 0) {
      this.free -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push(resolve));
  }
  release() {
    const next = this.queue.shift();
    if (next) next();
    else this.free += 1;
  }
}

// --- the session: tokens in memory, refreshed before expiry -----------------------------

let session = null;
let waitSupported = true;
let streamLive = false; // the events stream is open: pollers stand down
let pausedUntil = 0; // after a 429, no API request leaves before this time (ms)

function tokenLifetimeMs(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
    // exp − iat, both from the server's clock: the browser's clock may be off.
    return (claims.exp - claims.iat) * 1000 || null;
  } catch {
    return null;
  }
}

function scheduleRefresh(s) {
  clearTimeout(s.refreshTimer);
  const lifetime = tokenLifetimeMs(s.access);
  if (!lifetime) return; // unknown lifetime: refresh on the first 401 instead
  const margin = Math.min(60_000, lifetime / 5);
  s.refreshTimer = setTimeout(() => renew(s), lifetime - margin);
}

function renew(s) {
  refreshAccess(s).catch((error) => {
    if (session !== s) return;
    if (error instanceof SessionEnded) {
      endSession(error.message);
    } else {
      setNotice("Cannot renew your session right now: retrying.", "connection");
      s.refreshTimer = setTimeout(() => renew(s), 5_000);
    }
  });
}

function refreshAccess(s) {
  s.refreshing ??= (async () => {
    let response;
    try {
      response = await fetch(config.api.refresh, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ refresh: s.refresh }),
        cache: "no-store",
        signal: s.controller.signal,
      });
    } catch (error) {
      if (session !== s) throw new SessionEnded();
      throw error; // network trouble: the caller retries later
    }
    if ([400, 401, 403].includes(response.status)) {
      throw new SessionEnded(EXPIRED);
    }
    if (!response.ok) throw new Error(`refresh answered ${response.status}`); // retried later
    const tokens = await response.json();
    s.access = tokens.access;
    if (tokens.refresh) s.refresh = tokens.refresh; // the server rotates refresh tokens
    scheduleRefresh(s);
  })().finally(() => {
    s.refreshing = null;
  });
  return s.refreshing;
}

// An API call of the current session: bearer token, 401 → refresh once, 429 → pause all.
async function api(path, { method = "GET", body, headers = {} } = {}) {
  const s = session;
  if (!s) throw new SessionEnded();
  for (let attempt = 0; ; attempt += 1) {
    await sleep(pausedUntil - Date.now());
    if (session !== s) throw new SessionEnded();
    const init = {
      method,
      headers: { Accept: "application/json", ...headers, Authorization: `Bearer ${s.access}` },
      cache: "no-store", // validators are sent by hand (If-None-Match), not by the cache
      signal: s.controller.signal,
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (session !== s) throw new SessionEnded();
      throw error;
    }
    if (response.status === 401 && attempt === 0) {
      await refreshAccess(s);
      continue;
    }
    if (response.status === 401) throw new SessionEnded(EXPIRED);
    if (response.status === 403) {
      // The user or the tenant was deactivated, or the token belongs elsewhere.
      throw new SessionEnded(`Access refused: ${await problemText(response)}`);
    }
    if (response.status === 429) {
      const wait = retryAfterSeconds(response) ?? POLLING.rateLimitedSeconds;
      pausedUntil = Math.max(pausedUntil, Date.now() + wait * 1000);
      setNotice(`Too many requests: pausing for ${Math.ceil(wait)} s.`, "rate");
    } else if (response.status < 500) {
      clearNotice("connection", "rate"); // the server answers again
    }
    return response;
  }
}

function startSession(username, tokens) {
  session = {
    username,
    access: tokens.access,
    refresh: tokens.refresh,
    controller: new AbortController(),
    slots: new Slots(POLLING.maxConcurrent),
    refreshTimer: null,
    refreshing: null,
  };
  scheduleRefresh(session);
  ui.sessionUser.textContent = username;
  ui.login.hidden = true;
  ui.sessionBar.hidden = false;
  ui.app.hidden = false;
  fillSample(true);
  ui.submitTitle.focus();
  loadJobs();
  streamEvents(session);
}

function endSession(message = "") {
  const s = session;
  if (!s) return;
  session = null;
  clearTimeout(s.refreshTimer);
  s.controller.abort(); // in-flight polls end; their loops see the session is gone
  if (config.api.logout && !message) {
    // Revoke the refresh token where the service supports it; the page forgets it anyway.
    fetch(config.api.logout, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${s.access}` },
      body: JSON.stringify({ refresh: s.refresh }),
      keepalive: true,
    }).catch(() => {});
  }
  jobs.clear();
  olderUrl = null;
  ui.jobsBody.replaceChildren();
  ui.jobsEmpty.hidden = false;
  ui.older.hidden = true;
  setNotice("");
  show(ui.submitError, "");
  ui.app.hidden = true;
  ui.sessionBar.hidden = true;
  ui.login.hidden = false;
  ui.loginPassword.value = "";
  show(ui.loginError, message);
  ui.loginUser.focus();
  announce(message || "Logged out.");
}

async function logIn(event) {
  event.preventDefault();
  const username = ui.loginUser.value.trim();
  const password = ui.loginPassword.value;
  if (!username || !password) {
    show(ui.loginError, "Enter your username and password.");
    (username ? ui.loginPassword : ui.loginUser).focus();
    return;
  }
  show(ui.loginError, "");
  ui.loginButton.disabled = true;
  try {
    let response;
    try {
      response = await fetch(config.api.token, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ username, password }),
        cache: "no-store",
      });
    } catch {
      show(ui.loginError, "Cannot reach the server. Check your connection and try again.");
      return;
    }
    if (!response.ok) {
      const wait = response.status === 429 ? retryAfterSeconds(response) : null;
      show(
        ui.loginError,
        wait === null ? await problemText(response) : `Too many tries: wait ${Math.ceil(wait)} s.`,
      );
      ui.loginPassword.select();
      return;
    }
    startSession(username, await response.json());
  } finally {
    ui.loginButton.disabled = false;
  }
}

// --- notices -----------------------------------------------------------------------------

// One line for trouble that is not about a single form. Its kind lets a later success
// clear connection and rate-limit notices without hiding other news.
function setNotice(text, kind = "info") {
  show(ui.notice, text);
  ui.notice.dataset.kind = text ? kind : "";
}

function clearNotice(...kinds) {
  if (kinds.includes(ui.notice.dataset.kind)) setNotice("");
}

// --- the jobs table --------------------------------------------------------------------

const jobs = new Map(); // job id → entry {job, parts, polling, cancelling}
let olderUrl = null;

function cell(label, ...children) {
  return element("td", { "data-label": label }, ...children);
}

function createEntry(job) {
  const statusText = element("span", { class: "status" });
  const details = cell("Progress or outcome");
  const cancel = element("button", { type: "button", class: "cancel secondary" }, "Cancel");
  cancel.setAttribute("aria-label", `Cancel ${describe(job)}`);
  const created = new Date(job.created_at);
  const row = element(
    "tr",
    { id: `job-${job.id}`, "data-job-id": job.id },
    cell(
      "Job",
      element("span", { class: "job-type" }, job.type),
      " ",
      element("code", { class: "job-id", title: job.id }, shortId(job.id)),
    ),
    cell(
      "Submitted",
      element("time", { datetime: job.created_at }, created.toLocaleTimeString()),
    ),
    cell("Status", statusText),
    details,
    cell("Actions", cancel),
  );
  const parts = { row, statusText, details, cancel };
  const entry = { job, parts, polling: false, cancelling: false };
  cancel.addEventListener("click", () => cancelJob(entry));
  return entry;
}

function renderDetails(entry) {
  const { job, parts } = entry;
  const kind = job.status;
  if (parts.detailsKind !== kind) {
    parts.detailsKind = kind;
    parts.progress = null;
    parts.details.replaceChildren();
  }
  if (kind === "processing") {
    if (!parts.progress) {
      parts.progress = element("progress", { max: "100" });
      parts.progressText = element("span", { class: "progress-text" });
      parts.details.append(
        element(
          "label",
          { class: "progress" },
          element("span", { class: "visually-hidden" }, `Progress of ${describe(job)}`),
          parts.progress,
        ),
        parts.progressText,
      );
    }
    const percent = typeof job.progress === "number" ? Math.round(job.progress) : null;
    if (percent === null) parts.progress.removeAttribute("value"); // indeterminate
    else parts.progress.value = percent;
    parts.progress.textContent = percent === null ? "running" : `${percent}%`;
    const summary = percent === null ? "running" : `${percent}%`;
    parts.progressText.textContent = [summary, job.progress_message].filter(Boolean).join(" · ");
  } else if (parts.details.childElementCount === 0) {
    if (kind === "pending") {
      parts.details.append(element("span", { class: "hint" }, "Waiting for a worker"));
    } else if (kind === "completed" && job.result_omitted) {
      // The list leaves out results over 1 KB of JSON; the job itself has it.
      parts.details.append(
        element("span", { class: "hint" }, `Result too large to list: GET /api/jobs/${job.id}`),
      );
    } else if (kind === "completed") {
      const text = JSON.stringify(job.result);
      parts.details.append(
        element("span", { class: "outcome-label" }, "Result "),
        element("code", { class: "result" }, text.length > 300 ? `${text.slice(0, 300)}…` : text),
      );
    } else if (kind === "failed") {
      parts.details.append(
        element("span", { class: "outcome-label" }, "Error "),
        element("span", { class: "error-text" }, job.error || "unknown error"),
      );
    } else if (kind === "cancelled") {
      parts.details.append(element("span", { class: "hint" }, "Cancelled before it finished"));
    }
  }
}

function render(entry) {
  const { job, parts } = entry;
  parts.row.dataset.status = job.status;
  parts.statusText.className = `status status-${job.status}`;
  const final = FINAL_STATES.has(job.status);
  const label = entry.cancelling && !final ? `${job.status} (cancelling)` : job.status;
  const symbol = STATUS_SYMBOLS[job.status] ?? "•";
  parts.statusText.replaceChildren(
    element("span", { class: "status-symbol", "aria-hidden": "true" }, symbol),
    " ",
    element("span", { class: "status-text" }, label),
  );
  renderDetails(entry);
  parts.cancel.hidden = final;
  parts.cancel.disabled = entry.cancelling;
  parts.cancel.textContent = entry.cancelling ? "Cancelling…" : "Cancel";
}

function createdAt(entry) {
  return Date.parse(entry.job.created_at) || 0;
}

function placeRows() {
  const ordered = [...jobs.values()].sort(
    (a, b) => createdAt(b) - createdAt(a) || (a.job.id < b.job.id ? 1 : -1),
  );
  const current = [...ui.jobsBody.children];
  // Moving rows blurs a focused Cancel button: only touch the DOM when the order changed.
  const moved = ordered.some((entry, index) => entry.parts.row !== current[index]);
  if (moved || ordered.length !== current.length) {
    ui.jobsBody.append(...ordered.map((entry) => entry.parts.row));
  }
  ui.jobsEmpty.hidden = jobs.size > 0;
}

function upsert(job) {
  let entry = jobs.get(job.id);
  const isNew = !entry;
  if (isNew) {
    entry = createEntry(job);
    jobs.set(job.id, entry);
  } else if (entry.job.status !== job.status) {
    announce(`${describe(job)}: ${job.status}${job.error ? ` (${job.error})` : ""}.`);
  }
  entry.job = job;
  if (FINAL_STATES.has(job.status)) entry.cancelling = false;
  render(entry);
  if (isNew) placeRows();
  if (!FINAL_STATES.has(job.status) && !entry.polling && !streamLive) pollJob(entry);
  return entry;
}

// --- the events stream -------------------------------------------------------------------

// Calls onEvent(type, id, data) for each event of a text/event-stream response body.
async function readEvents(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message";
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a heartbeat comment
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const field = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "event") type = field;
        else if (name === "id") id = field;
        else if (name === "data") data.push(field);
      }
      if (data.length) onEvent(type, id, data.join("\n"));
    }
  }
}

// Keeps the page's one stream open; polls take over whenever it is down.
async function streamEvents(s) {
  let failures = 0;
  while (session === s && config.api.events) {
    await whenVisible();
    let response;
    try {
      response = await api(config.api.events, { headers: { Accept: "text/event-stream" } });
    } catch (error) {
      if (error instanceof SessionEnded || session !== s) return;
      response = null;
    }
    if (response && !response.ok && response.status !== 429) {
      return; // no streams here (404, 503 under WSGI): the long polls carry on
    }
    if (response && response.ok) {
      failures = 0;
      streamLive = true;
      try {
        await readEvents(response, (type, id, data) => {
          if (type !== "job" || session !== s) return;
          const entry = upsert(JSON.parse(data));
          entry.etag = id;
        });
      } catch (error) {
        // The connection broke: poll until it is back.
      } finally {
        streamLive = false;
      }
      if (session !== s) return;
      // Changes made while no stream was open are picked up by the pollers.
      for (const entry of jobs.values()) {
        if (!FINAL_STATES.has(entry.job.status) && !entry.polling) pollJob(entry);
      }
    }
    failures += 1;
    await sleep(backoffSeconds(failures) * 1000);
  }
}

async function loadJobs(url = `${config.api.jobs}?page_size=${PAGE_SIZE}`, { older = false } = {}) {
  let response;
  try {
    response = await api(url);
  } catch (error) {
    if (error instanceof SessionEnded) {
      if (error.message) endSession(error.message);
    } else {
      setNotice("Cannot reach the server to list jobs: use Refresh to try again.", "connection");
    }
    return;
  }
  if (!response.ok) {
    if (response.status !== 429) setNotice(`Listing jobs failed: ${await problemText(response)}`);
    return;
  }
  const page = await response.json();
  if (!session) return;
  for (const job of page.results) upsert(job);
  if (older || !olderUrl || !page.next) {
    // The cursor link is absolute: keep its path and query so requests stay on this origin.
    olderUrl = page.next ? sameOrigin(page.next) : null;
  }
  ui.older.hidden = !olderUrl;
}

// --- polling -------------------------------------------------------------------------------

async function pollJob(entry) {
  const s = session;
  if (!s) return;
  entry.polling = true;
  const id = entry.job.id;
  let etag = entry.etag ?? null;
  let failures = 0;
  try {
    while (session === s && jobs.get(id) === entry && !FINAL_STATES.has(entry.job.status)) {
      if (streamLive) return; // the stream carries this job's changes
      await whenVisible();
      await s.slots.acquire();
      if (session !== s) return;
      const started = performance.now();
      // Long-poll only while every poll can have a slot; otherwise short polls share them.
      const useWait = waitSupported && s.slots.waiting === 0;
      let response;
      let failure = null;
      try {
        const query = useWait ? `?wait=${POLLING.waitSeconds}` : "";
        response = await api(`${config.api.jobs}/${id}${query}`, {
          headers: etag ? { "If-None-Match": etag } : {},
        });
      } catch (error) {
        failure = error;
      } finally {
        s.slots.release();
      }
      if (failure) {
        if (failure instanceof SessionEnded || session !== s) {
          if (failure.message) endSession(failure.message);
          return;
        }
        failures += 1;
        const delay = backoffSeconds(failures);
        setNotice(`Connection problem: retrying in ${Math.ceil(delay)} s.`, "connection");
        await sleep(delay * 1000);
        continue;
      }
      let delay = retryAfterSeconds(response) ?? POLLING.intervalSeconds;
      if (response.status === 304) {
        failures = 0;
      } else if (response.ok) {
        failures = 0;
        etag = response.headers.get("ETag");
        const job = await response.json();
        if (session !== s) return;
        upsert(job).etag = etag;
      } else if (response.status === 429) {
        continue; // api() paused every request until Retry-After
      } else if (response.status === 400 && useWait) {
        waitSupported = false; // this server has no long polling: plain polls from now on
        continue;
      } else if (response.status === 404) {
        entry.parts.statusText.textContent = "no longer available";
        return;
      } else {
        failures += 1;
        delay = backoffSeconds(failures);
      }
      await sleep((delay - (performance.now() - started) / 1000) * 1000);
    }
  } finally {
    entry.polling = false;
  }
}

// --- actions ----------------------------------------------------------------------------------

async function cancelJob(entry) {
  entry.cancelling = true;
  render(entry);
  let response;
  try {
    response = await api(`${config.api.jobs}/${entry.job.id}/cancel`, { method: "POST" });
  } catch (error) {
    if (error instanceof SessionEnded) {
      if (error.message) endSession(error.message);
      return;
    }
    entry.cancelling = false;
    render(entry);
    setNotice("Cannot reach the server to cancel the job: try again.", "connection");
    return;
  }
  if (response.status === 200 || response.status === 202) {
    const job = await response.json();
    upsert(job);
    if (response.status === 202) announce(`Cancellation of ${describe(job)} requested.`);
  } else {
    // 409: it finished meanwhile; its poller shows how.
    entry.cancelling = false;
    render(entry);
    setNotice(`Cannot cancel ${describe(entry.job)}: ${await problemText(response)}`);
  }
}

let lastSample = null;

function fillSample(force = false) {
  const option = ui.type.selectedOptions[0];
  const sample = option ? option.dataset.sample : "{}";
  // Replace the payload only if the user has not edited the previous sample.
  if (force || ui.payload.value.trim() === "" || ui.payload.value === lastSample) {
    ui.payload.value = sample;
  }
  lastSample = sample;
}

function payloadProblem(message) {
  show(ui.submitError, message);
  ui.payload.setAttribute("aria-invalid", "true");
  ui.payload.focus();
}

async function submitJob(event) {
  event.preventDefault();
  show(ui.submitError, "");
  ui.payload.removeAttribute("aria-invalid");
  let payload;
  const text = ui.payload.value.trim();
  try {
    payload = text ? JSON.parse(text) : {};
  } catch (error) {
    payloadProblem(`The payload is not valid JSON: ${error.message}`);
    return;
  }
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    payloadProblem('The payload must be a JSON object, for example {"seconds": 5}.');
    return;
  }
  ui.submitButton.disabled = true;
  try {
    let response;
    try {
      const body = { type: ui.type.value, payload };
      response = await api(config.api.jobs, { method: "POST", body });
    } catch (error) {
      if (error instanceof SessionEnded) {
        if (error.message) endSession(error.message);
      } else {
        show(ui.submitError, "Cannot reach the server: the job was not submitted.");
      }
      return;
    }
    if (response.ok) {
      const job = await response.json();
      upsert(job);
      announce(`Submitted ${describe(job)}.`);
    } else if (response.status === 429) {
      show(ui.submitError, "Too many requests: the job was not submitted. Try again shortly.");
    } else {
      payloadProblem(`The job was not accepted: ${await problemText(response)}`);
    }
  } finally {
    ui.submitButton.disabled = false;
  }
}

// --- wiring ---------------------------------------------------------------------------------

ui.loginForm.addEventListener("submit", logIn);
ui.logout.addEventListener("click", () => endSession());
ui.submitForm.addEventListener("submit", submitJob);
ui.type.addEventListener("change", () => fillSample());
ui.refresh.addEventListener("click", () => loadJobs());
ui.older.addEventListener("click", () => olderUrl && loadJobs(olderUrl, { older: true }));
document.addEventListener("visibilitychange", () => {
  // Back on the tab: pick up jobs submitted elsewhere (pollers resume by themselves).
  if (!document.hidden && session) loadJobs();
});
ui.login.hidden = false;
ui.loginUser.focus();
