/**
 * The API client: tokens (log in, single-use refresh rotation, log out), jobs (submit,
 * batch, get with If-None-Match, list, cancel) and the raw stream request used by watch.ts.
 *
 * Every answer outside 2xx (and 304 on a job read) is thrown as an {@link ApiProblem}
 * carrying the problem document's `code` (docs/api.md, "Problem codes").
 */
import type { components, paths } from "./schema.ts";

type Schemas = components["schemas"];
/** A job: a union by `status`, so `result` is read only once `status === "completed"`. */
export type Job = Schemas["Job"];
/** A job as `GET /api/jobs` lists it: a long `payload` or `result` may be left out
 * (`payload_omitted`, `result_omitted`). */
export type JobListItem = Job;
export type JobStatus = Job["status"];
/** A job to submit: a union by `type`, each with its type's payload. */
export type JobSubmit = Schemas["JobSubmitRequest"];
export type JobType = JobSubmit["type"];
export type JobPage = Schemas["PaginatedJobList"];
/** `GET /api/me`: the user (`user.id` is what `created_by` holds), tenant and plan. */
export type Me = Schemas["Me"];
export type Problem = Schemas["Problem"];
export type ProblemCode = Schemas["CodeEnum"];
export type ListJobsQuery = NonNullable<paths["/api/jobs"]["get"]["parameters"]["query"]>;

/** The two tokens of a session (`POST /api/auth/token`). */
export interface Tokens {
  access: string;
  refresh: string;
}

/** The states after which a job never changes again. */
export const FINAL_STATUSES: ReadonlySet<JobStatus> = new Set(["completed", "failed", "cancelled"]);

export const isFinal = (job: Pick<Job, "status">): boolean => FINAL_STATUSES.has(job.status);

/** `RateLimit` and `RateLimit-Policy` (IETF draft) of a jobs API answer. */
export interface RateLimit {
  /** Requests left in the window (`r`). */
  remaining: number;
  /** Seconds until the window resets (`t`). */
  reset: number;
  /** The window's quota (`q` of the policy), when sent. */
  quota?: number;
  /** The window's length in seconds (`w` of the policy), when sent. */
  window?: number;
}

function parameters(value: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const part of value.split(";").slice(1)) {
    const [name, number] = part.split("=").map((text) => text.trim());
    if (name && number !== undefined && /^\d+$/.test(number)) found.set(name, Number(number));
  }
  return found;
}

/** Reads `RateLimit`/`RateLimit-Policy`; null when the answer has no `RateLimit`. */
export function parseRateLimit(headers: Headers): RateLimit | null {
  const limit = headers.get("RateLimit");
  if (!limit) return null;
  const left = parameters(limit);
  const remaining = left.get("r");
  const reset = left.get("t");
  if (remaining === undefined || reset === undefined) return null;
  const rateLimit: RateLimit = { remaining, reset };
  const policy = parameters(headers.get("RateLimit-Policy") ?? "");
  const quota = policy.get("q");
  const window = policy.get("w");
  if (quota !== undefined) rateLimit.quota = quota;
  if (window !== undefined) rateLimit.window = window;
  return rateLimit;
}

/** `Retry-After` in seconds (delta-seconds or an HTTP date); null when absent or unreadable. */
export function parseRetryAfter(headers: Headers, now = Date.now()): number | null {
  const value = headers.get("Retry-After");
  if (value === null || value.trim() === "") return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}

/**
 * A refused request: the problem document's fields, or, for an answer that is not one
 * (a proxy's 502), `code` undefined and `detail` the status text.
 */
export class ApiProblem extends Error {
  readonly status: number;
  readonly code: ProblemCode | undefined;
  readonly detail: string;
  /** Seconds to wait before retrying (`Retry-After`), when sent (429, 503). */
  readonly retryAfter: number | null;
  readonly rateLimit: RateLimit | null;
  /** The whole problem document (with `errors` for validation), when the body was one. */
  readonly problem: Problem | null;

  constructor(status: number, problem: Problem | null, headers: Headers, statusText = "") {
    const detail = problem?.detail ?? statusText ?? "";
    super(`HTTP ${status}${problem?.code ? ` ${problem.code}` : ""}${detail ? `: ${detail}` : ""}`);
    this.name = "ApiProblem";
    this.status = status;
    this.code = problem?.code;
    this.detail = detail;
    this.retryAfter = parseRetryAfter(headers);
    this.rateLimit = parseRateLimit(headers);
    this.problem = problem;
  }

  /** Reads a refused response's body (a problem document when its type says so). */
  static async from(response: Response): Promise<ApiProblem> {
    let problem: Problem | null = null;
    if (/json/.test(response.headers.get("Content-Type") ?? "")) {
      try {
        problem = (await response.json()) as Problem;
      } catch {
        problem = null;
      }
    }
    return new ApiProblem(response.status, problem, response.headers, response.statusText);
  }
}

/** One read of a job: its state, ETag and the server's pacing hints. */
export interface JobRead {
  job: Job;
  etag: string | null;
  /** False when the server answered 304 and `job` is the cached copy. */
  modified: boolean;
  /** Seconds until another poll is worth making (`Retry-After`); null once final. */
  retryAfter: number | null;
  rateLimit: RateLimit | null;
}

export interface ClientOptions {
  /** The tenant host's origin, e.g. `https://acme.example.com` (no trailing path). */
  baseUrl: string;
  /** The fetch to use (tests, SSR); the global one by default. */
  fetch?: typeof fetch;
  /** Tokens of a session restored by the caller. */
  tokens?: Tokens | null;
  /** Called whenever the tokens change (login, rotation, logout: null). */
  onTokens?: (tokens: Tokens | null) => void;
  /**
   * A token sent as it is and never refreshed, while no `tokens` are set: a job read token
   * (the `Job-Read-Token` of a submit with `?read_token=true`), which reads that one job.
   */
  accessToken?: string;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface SubmitOptions extends RequestOptions {
  /** `Idempotency-Key`: the same key returns the same job (1–255 printable ASCII). */
  idempotencyKey?: string;
}

export interface GetJobOptions extends RequestOptions {
  /** Long poll: answer as soon as the job differs from the cached copy, at most N s. */
  wait?: number;
}

export interface StreamOptions extends RequestOptions {
  lastEventId?: string | null;
}

export interface Client {
  readonly baseUrl: string;
  readonly tokens: Tokens | null;
  login(username: string, password: string, options?: RequestOptions): Promise<Tokens>;
  /** Rotates the refresh token (single use: the one sent is revoked) and stores the pair. */
  refresh(options?: RequestOptions): Promise<Tokens>;
  /** Revokes the refresh token and forgets both tokens (even when the server refuses). */
  logout(options?: RequestOptions): Promise<void>;
  submitJob(job: JobSubmit, options?: SubmitOptions): Promise<Job>;
  submitBatch(jobs: JobSubmit[], options?: SubmitOptions): Promise<Job[]>;
  /** The job, revalidated with If-None-Match; on 304 the cached copy. */
  getJob(id: string, options?: GetJobOptions): Promise<Job>;
  /** As getJob, with the ETag, whether it changed and the pacing headers. */
  readJob(id: string, options?: GetJobOptions): Promise<JobRead>;
  /** The tenant's jobs, newest first; `status` may name several (sent comma-separated). */
  listJobs(query?: ListJobsQuery, options?: RequestOptions): Promise<JobPage>;
  /** Who the token's user is (`GET /api/me`). */
  getMe(options?: RequestOptions): Promise<Me>;
  /** Pending → cancelled; processing → cancellation requested (the job as answered). */
  cancelJob(id: string, options?: RequestOptions): Promise<Job>;
  /** Opens a `text/event-stream` (`/api/jobs/{id}/events` or `/api/events`); refused → ApiProblem. */
  openStream(path: string, options?: StreamOptions): Promise<Response>;
  /** A client of the same host and fetch that sends `accessToken` (a job read token) instead. */
  withAccessToken(accessToken: string): Client;
}

/** The `?cursor=` of a page's `next` or `previous` link, for listJobs({cursor}). */
export function cursorOf(link: string | null | undefined): string | undefined {
  if (!link) return undefined;
  return new URL(link, "http://placeholder").searchParams.get("cursor") ?? undefined;
}

export function createClient(options: ClientOptions): Client {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  let tokens: Tokens | null = options.tokens ?? null;
  let refreshing: Promise<Tokens> | null = null;
  const cache = new Map<string, { etag: string; job: Job }>();

  function setTokens(next: Tokens | null): void {
    tokens = next;
    options.onTokens?.(next);
  }

  async function send(
    path: string,
    init: RequestInit & { auth?: boolean; accept304?: boolean } = {},
  ): Promise<Response> {
    const { auth = true, accept304 = false, ...request } = init;
    const attempt = (): Promise<Response> => {
      const headers = new Headers(request.headers);
      const bearer = tokens?.access ?? options.accessToken;
      if (auth && bearer) headers.set("Authorization", `Bearer ${bearer}`);
      if (request.body !== undefined) headers.set("Content-Type", "application/json");
      return doFetch(`${baseUrl}${path}`, { ...request, headers });
    };
    let response = await attempt();
    // An expired access token is renewed once with the refresh token, then retried.
    if (response.status === 401 && auth && tokens) {
      const problem = await ApiProblem.from(response);
      if (problem.code !== "token_not_valid") throw problem;
      await refresh(request.signal ? { signal: request.signal } : {});
      response = await attempt();
    }
    if (response.ok || (accept304 && response.status === 304)) return response;
    throw await ApiProblem.from(response);
  }

  async function postJson<T>(
    path: string,
    body: unknown,
    init: RequestInit & { auth?: boolean } = {},
  ): Promise<T> {
    const response = await send(path, { ...init, method: "POST", body: JSON.stringify(body) });
    return (await response.json()) as T;
  }

  async function login(username: string, password: string, request: RequestOptions = {}) {
    const pair = await postJson<Tokens>("/api/auth/token", { username, password }, {
      ...request,
      auth: false,
    });
    setTokens(pair);
    return pair;
  }

  function refresh(request: RequestOptions = {}): Promise<Tokens> {
    // Concurrent callers share one rotation: a second use of the same refresh token
    // would be refused (it is single use).
    if (refreshing) return refreshing;
    const sent = tokens?.refresh;
    if (!sent) return Promise.reject(new Error("no refresh token: log in first"));
    refreshing = postJson<Tokens>("/api/auth/token/refresh", { refresh: sent }, {
      ...request,
      auth: false,
    })
      .then((pair) => {
        setTokens(pair);
        return pair;
      })
      .finally(() => {
        refreshing = null;
      });
    return refreshing;
  }

  async function logout(request: RequestOptions = {}) {
    const sent = tokens?.refresh;
    setTokens(null);
    cache.clear();
    if (sent) await send("/api/auth/logout", {
      ...request,
      method: "POST",
      auth: false,
      body: JSON.stringify({ refresh: sent }),
    });
  }

  const idempotency = (options: SubmitOptions): RequestInit => ({
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.idempotencyKey ? { headers: { "Idempotency-Key": options.idempotencyKey } } : {}),
  });

  async function readJob(id: string, request: GetJobOptions = {}): Promise<JobRead> {
    const cached = cache.get(id);
    const query = request.wait ? `?wait=${request.wait}` : "";
    const response = await send(`/api/jobs/${encodeURIComponent(id)}${query}`, {
      ...(request.signal ? { signal: request.signal } : {}),
      headers: cached ? { "If-None-Match": cached.etag } : {},
      accept304: cached !== undefined,
    });
    const pacing = {
      retryAfter: parseRetryAfter(response.headers),
      rateLimit: parseRateLimit(response.headers),
    };
    if (response.status === 304 && cached) return { ...cached, modified: false, ...pacing };
    const job = (await response.json()) as Job;
    const etag = response.headers.get("ETag");
    if (etag) cache.set(id, { etag, job });
    return { job, etag, modified: true, ...pacing };
  }

  return {
    baseUrl,
    get tokens() {
      return tokens;
    },
    login,
    refresh,
    logout,
    submitJob: (job, request = {}) => postJson<Job>("/api/jobs", job, idempotency(request)),
    submitBatch: async (jobs, request = {}) =>
      (await postJson<{ jobs: Job[] }>("/api/jobs/batch", { jobs }, idempotency(request))).jobs,
    readJob,
    getJob: async (id, request) => (await readJob(id, request)).job,
    async listJobs(query = {}, request = {}) {
      const search = new URLSearchParams();
      for (const [name, value] of Object.entries(query)) {
        if (value === undefined || value === null) continue;
        search.set(name, Array.isArray(value) ? value.join(",") : String(value));
      }
      const suffix = search.size ? `?${search}` : "";
      const response = await send(`/api/jobs${suffix}`, request);
      return (await response.json()) as JobPage;
    },
    getMe: async (request = {}) => (await (await send("/api/me", request)).json()) as Me,
    cancelJob: (id, request = {}) =>
      postJson<Job>(`/api/jobs/${encodeURIComponent(id)}/cancel`, {}, request),
    openStream(path, request = {}) {
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      if (request.lastEventId) headers["Last-Event-ID"] = request.lastEventId;
      return send(path, { ...(request.signal ? { signal: request.signal } : {}), headers });
    },
    withAccessToken: (accessToken) =>
      createClient({ baseUrl, accessToken, ...(options.fetch ? { fetch: options.fetch } : {}) }),
  };
}
