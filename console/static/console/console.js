// The job console: a small client of the jobs API on the project's TypeScript client
// (clients/typescript, shipped compiled to ./client/ by its scripts/console.mjs). No
// framework, no build step here; the page passes its settings as a JSON block
// (#console-config) and server-rendered markup, so no inline script runs.
//
// Changes arrive on one stream, GET /api/events (watchJobs), which carries every job of
// the tenant. While it works no job is polled; when the server refuses it (503) or it is
// down, each unfinished job is long-polled (watchJob), at most FOLLOWED at a time. The
// client does what docs/api.md asks of a poller: If-None-Match, ?wait= (plain polls where
// the server has none), Retry-After, 429, jittered backoff, a stop at a final state and a
// pause while the tab is hidden. The access token lives in memory only; it is refreshed
// before it expires (and once on a 401).

import {
  ApiProblem,
  createClient,
  cursorOf,
  isFinal,
  parseRetryAfter,
  watchJob,
  watchJobs,
} from "./client/index.js";

const STATUS_SYMBOLS = {
  pending: "◷",
  processing: "▶",
  completed: "✓",
  failed: "✗",
  cancelled: "⊘",
};
const WATCH = { mode: "longpoll", wait: 20 }; // long-poll length asked for with ?wait= (1–30)
const FOLLOWED = 4; // jobs long-polled at once: browsers open 6 connections per host
const RATE_LIMITED_SECONDS = 5; // a 429 without Retry-After
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

const EXPIRED = "Your session has expired: please log in again.";

// --- small helpers ---------------------------------------------------------------------

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

// A refusal in words: the validation errors per field, else the problem's detail.
function problemText(error) {
  const lines = error.problem?.errors ? flattenErrors(error.problem.errors) : [];
  return lines.length ? lines.join("\n") : error.detail || `HTTP ${error.status}`;
}

// The client's fetch: no HTTP cache (validators are the client's), and the notices for
// trouble that concerns the whole page (rate limit, connection), cleared once the server
// answers again.
function noticingFetch(input, init = {}) {
  return fetch(input, { ...init, cache: "no-store" }).then(
    (response) => {
      if (response.status === 429) {
        const wait = parseRetryAfter(response.headers) ?? RATE_LIMITED_SECONDS;
        if (session) setNotice(`Too many requests: pausing for ${Math.ceil(wait)} s.`, "rate");
      } else if (response.status < 500) {
        clearNotice("connection", "rate");
      }
      return response;
    },
    (error) => {
      if (session && error.name !== "AbortError") {
        setNotice("Connection problem: retrying.", "connection");
      }
      throw error;
    },
  );
}

// --- the session: the client, its tokens in memory, refreshed before expiry --------------

let session = null; // {username, client, refreshTimer, stream, streamDown, watches, queue}

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
  const lifetime = s.client.tokens && tokenLifetimeMs(s.client.tokens.access);
  if (!lifetime) return; // unknown lifetime: the client refreshes on the first 401 instead
  const margin = Math.min(60_000, lifetime / 5);
  s.refreshTimer = setTimeout(() => renew(s), lifetime - margin);
}

function renew(s) {
  s.client.refresh().catch((error) => {
    if (session !== s) return;
    if (error instanceof ApiProblem && error.status < 500 && error.status !== 429) {
      endSession(EXPIRED);
    } else {
      setNotice("Cannot renew your session right now: retrying.", "connection");
      s.refreshTimer = setTimeout(() => renew(s), 5_000);
    }
  });
}

// A refusal no retry fixes: the session ends on 401 (the refresh failed too) and 403 (the
// user or tenant deactivated); true when it did.
function endedSession(error) {
  if (!(error instanceof ApiProblem)) return false;
  if (error.status === 401) endSession(EXPIRED);
  else if (error.status === 403) endSession(`Access refused: ${problemText(error)}`);
  else return false;
  return true;
}

function startSession(username, client) {
  const s = {
    username,
    client,
    refreshTimer: null,
    stream: null,
    streamDown: !config.api.events, // under WSGI the page gets no stream: long polls
    watches: new Map(), // job id → its watch, while the stream is down
    queue: [], // entries waiting for a watch
  };
  session = s;
  scheduleRefresh(s);
  ui.sessionUser.textContent = username;
  ui.login.hidden = true;
  ui.sessionBar.hidden = false;
  ui.app.hidden = false;
  fillSample(true);
  ui.submitTitle.focus();
  loadJobs();
  if (config.api.events) {
    s.stream = watchJobs(client, (job) => streamed(s, job), {
      onUnavailable: () => streamDown(s),
      onError: (error) => session === s && endedSession(error),
    });
  }
}

function endSession(message = "") {
  const s = session;
  if (!s) return;
  session = null;
  clearTimeout(s.refreshTimer);
  s.stream?.stop();
  for (const watch of s.watches.values()) watch.stop();
  // Revoke the refresh token when the user logs out; the page forgets it anyway.
  if (!message) s.client.logout().catch(() => {});
  jobs.clear();
  olderCursor = null;
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
  // A new client per session: its tokens and ETag cache go with it.
  const client = createClient({
    baseUrl: location.origin,
    fetch: noticingFetch,
    onTokens: (tokens) => tokens && session?.client === client && scheduleRefresh(session),
  });
  try {
    await client.login(username, password);
    startSession(username, client);
  } catch (error) {
    if (!(error instanceof ApiProblem)) {
      show(ui.loginError, "Cannot reach the server. Check your connection and try again.");
    } else if (error.status === 429) {
      const wait = error.retryAfter ?? RATE_LIMITED_SECONDS;
      show(ui.loginError, `Too many tries: wait ${Math.ceil(wait)} s.`);
    } else {
      show(ui.loginError, problemText(error));
    }
    ui.loginPassword.select();
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

const jobs = new Map(); // job id → entry {job, parts, cancelling}
let olderCursor = null;

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
  const entry = { job, parts, cancelling: false };
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
  const final = isFinal(job);
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
  if (isFinal(job)) entry.cancelling = false;
  render(entry);
  if (isNew) placeRows();
  if (session?.streamDown && !isFinal(job)) follow(session, entry);
  return entry;
}

// --- following jobs: the stream, else a watch per unfinished job --------------------------

function streamed(s, job) {
  if (session !== s) return;
  if (s.streamDown) {
    // The stream is back (it opens with every unfinished job): the watches stand down.
    s.streamDown = false;
    for (const watch of s.watches.values()) watch.stop();
    s.watches.clear();
    s.queue = [];
  }
  upsert(job);
}

function streamDown(s) {
  if (session !== s || s.streamDown) return;
  s.streamDown = true;
  for (const entry of jobs.values()) if (!isFinal(entry.job)) follow(s, entry);
}

function follow(s, entry) {
  const id = entry.job.id;
  if (s.watches.has(id) || s.queue.includes(entry)) return;
  if (s.watches.size >= FOLLOWED) {
    s.queue.push(entry);
    return;
  }
  const done = () => {
    s.watches.delete(id);
    const next = s.queue.shift();
    if (next && session === s && s.streamDown && jobs.get(next.job.id) === next) follow(s, next);
  };
  const watch = watchJob(
    s.client,
    id,
    (job) => {
      if (session !== s || jobs.get(id) !== entry) return;
      upsert(job);
      if (isFinal(job)) done();
    },
    {
      ...WATCH,
      onError: (error) => {
        done();
        if (session !== s || endedSession(error)) return;
        if (error instanceof ApiProblem && error.status === 404) {
          entry.parts.statusText.textContent = "no longer available";
        } else {
          setNotice(`Cannot follow ${describe(entry.job)}: ${error.message}`);
        }
      },
    },
  );
  s.watches.set(id, watch);
}

async function loadJobs({ older = false } = {}) {
  const s = session;
  if (!s) return;
  const query = { page_size: PAGE_SIZE, ...(older && olderCursor ? { cursor: olderCursor } : {}) };
  let page;
  try {
    page = await s.client.listJobs(query);
  } catch (error) {
    if (session !== s || endedSession(error)) return;
    if (!(error instanceof ApiProblem)) {
      setNotice("Cannot reach the server to list jobs: use Refresh to try again.", "connection");
    } else if (error.status !== 429) {
      setNotice(`Listing jobs failed: ${problemText(error)}`);
    }
    return;
  }
  if (session !== s) return;
  for (const job of page.results) upsert(job);
  if (older || !olderCursor || !page.next) olderCursor = cursorOf(page.next) ?? null;
  ui.older.hidden = !olderCursor;
}

// --- actions ----------------------------------------------------------------------------------

async function cancelJob(entry) {
  const s = session;
  if (!s) return;
  entry.cancelling = true;
  render(entry);
  try {
    const job = await s.client.cancelJob(entry.job.id);
    if (session !== s) return;
    upsert(job);
    // A running job is asked to stop (202): it ends as cancelled when its handler checks.
    if (!isFinal(job)) announce(`Cancellation of ${describe(job)} requested.`);
  } catch (error) {
    if (session !== s || endedSession(error)) return;
    entry.cancelling = false;
    render(entry);
    if (error instanceof ApiProblem) {
      // 409: it finished meanwhile; its watch or the stream shows how.
      setNotice(`Cannot cancel ${describe(entry.job)}: ${problemText(error)}`);
    } else {
      setNotice("Cannot reach the server to cancel the job: try again.", "connection");
    }
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
  const s = session;
  if (!s) return;
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
    const job = await s.client.submitJob({ type: ui.type.value, payload });
    if (session !== s) return;
    upsert(job);
    announce(`Submitted ${describe(job)}.`);
  } catch (error) {
    if (session !== s || endedSession(error)) return;
    if (!(error instanceof ApiProblem)) {
      show(ui.submitError, "Cannot reach the server: the job was not submitted.");
    } else if (error.status === 429) {
      show(ui.submitError, "Too many requests: the job was not submitted. Try again shortly.");
    } else {
      payloadProblem(`The job was not accepted: ${problemText(error)}`);
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
ui.older.addEventListener("click", () => olderCursor && loadJobs({ older: true }));
document.addEventListener("visibilitychange", () => {
  // Back on the tab: pick up jobs submitted elsewhere (the watches resume by themselves).
  if (!document.hidden && session) loadJobs();
});
ui.login.hidden = false;
ui.loginUser.focus();
