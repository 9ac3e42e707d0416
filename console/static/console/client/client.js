// Generated from clients/typescript/src by `node scripts/console.mjs write` (there).
// Do not edit: make test-client fails when it differs from a fresh build.
/** The states after which a job never changes again. */
export const FINAL_STATUSES = new Set(["completed", "failed", "cancelled"]);
export const isFinal = (job) => FINAL_STATUSES.has(job.status);
function parameters(value) {
    const found = new Map();
    for (const part of value.split(";").slice(1)) {
        const [name, number] = part.split("=").map((text) => text.trim());
        if (name && number !== undefined && /^\d+$/.test(number))
            found.set(name, Number(number));
    }
    return found;
}
/** Reads `RateLimit`/`RateLimit-Policy`; null when the answer has no `RateLimit`. */
export function parseRateLimit(headers) {
    const limit = headers.get("RateLimit");
    if (!limit)
        return null;
    const left = parameters(limit);
    const remaining = left.get("r");
    const reset = left.get("t");
    if (remaining === undefined || reset === undefined)
        return null;
    const rateLimit = { remaining, reset };
    const policy = parameters(headers.get("RateLimit-Policy") ?? "");
    const quota = policy.get("q");
    const window = policy.get("w");
    if (quota !== undefined)
        rateLimit.quota = quota;
    if (window !== undefined)
        rateLimit.window = window;
    return rateLimit;
}
/** `Retry-After` in seconds (delta-seconds or an HTTP date); null when absent or unreadable. */
export function parseRetryAfter(headers, now = Date.now()) {
    const value = headers.get("Retry-After");
    if (value === null || value.trim() === "")
        return null;
    if (/^\d+$/.test(value.trim()))
        return Number(value.trim());
    const date = Date.parse(value);
    return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - now) / 1000));
}
/**
 * A refused request: the problem document's fields, or, for an answer that is not one
 * (a proxy's 502), `code` undefined and `detail` the status text.
 */
export class ApiProblem extends Error {
    status;
    code;
    detail;
    /** Seconds to wait before retrying (`Retry-After`), when sent (429, 503). */
    retryAfter;
    rateLimit;
    /** The whole problem document (with `errors` for validation), when the body was one. */
    problem;
    constructor(status, problem, headers, statusText = "") {
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
    static async from(response) {
        let problem = null;
        if (/json/.test(response.headers.get("Content-Type") ?? "")) {
            try {
                problem = (await response.json());
            }
            catch {
                problem = null;
            }
        }
        return new ApiProblem(response.status, problem, response.headers, response.statusText);
    }
}
/** The `?cursor=` of a page's `next` or `previous` link, for listJobs({cursor}). */
export function cursorOf(link) {
    if (!link)
        return undefined;
    return new URL(link, "http://placeholder").searchParams.get("cursor") ?? undefined;
}
export function createClient(options) {
    const baseUrl = options.baseUrl.replace(/\/+$/, "");
    const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    let tokens = options.tokens ?? null;
    let refreshing = null;
    const cache = new Map();
    function setTokens(next) {
        tokens = next;
        options.onTokens?.(next);
    }
    async function send(path, init = {}) {
        const { auth = true, accept304 = false, ...request } = init;
        const attempt = () => {
            const headers = new Headers(request.headers);
            const bearer = tokens?.access ?? options.accessToken;
            if (auth && bearer)
                headers.set("Authorization", `Bearer ${bearer}`);
            if (request.body !== undefined)
                headers.set("Content-Type", "application/json");
            return doFetch(`${baseUrl}${path}`, { ...request, headers });
        };
        let response = await attempt();
        // An expired access token is renewed once with the refresh token, then retried.
        if (response.status === 401 && auth && tokens) {
            const problem = await ApiProblem.from(response);
            if (problem.code !== "token_not_valid")
                throw problem;
            await refresh(request.signal ? { signal: request.signal } : {});
            response = await attempt();
        }
        if (response.ok || (accept304 && response.status === 304))
            return response;
        throw await ApiProblem.from(response);
    }
    async function postJson(path, body, init = {}) {
        const response = await send(path, { ...init, method: "POST", body: JSON.stringify(body) });
        return (await response.json());
    }
    async function login(username, password, request = {}) {
        const pair = await postJson("/api/auth/token", { username, password }, {
            ...request,
            auth: false,
        });
        setTokens(pair);
        return pair;
    }
    function refresh(request = {}) {
        // Concurrent callers share one rotation: a second use of the same refresh token
        // would be refused (it is single use).
        if (refreshing)
            return refreshing;
        const sent = tokens?.refresh;
        if (!sent)
            return Promise.reject(new Error("no refresh token: log in first"));
        refreshing = postJson("/api/auth/token/refresh", { refresh: sent }, {
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
    async function logout(request = {}) {
        const sent = tokens?.refresh;
        setTokens(null);
        cache.clear();
        if (sent)
            await send("/api/auth/logout", {
                ...request,
                method: "POST",
                auth: false,
                body: JSON.stringify({ refresh: sent }),
            });
    }
    const idempotency = (options) => ({
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.idempotencyKey ? { headers: { "Idempotency-Key": options.idempotencyKey } } : {}),
    });
    async function readJob(id, request = {}) {
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
        if (response.status === 304 && cached)
            return { ...cached, modified: false, ...pacing };
        const job = (await response.json());
        const etag = response.headers.get("ETag");
        if (etag)
            cache.set(id, { etag, job });
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
        submitJob: (job, request = {}) => postJson("/api/jobs", job, idempotency(request)),
        submitBatch: async (jobs, request = {}) => (await postJson("/api/jobs/batch", { jobs }, idempotency(request))).jobs,
        readJob,
        getJob: async (id, request) => (await readJob(id, request)).job,
        async listJobs(query = {}, request = {}) {
            const search = new URLSearchParams();
            for (const [name, value] of Object.entries(query)) {
                if (value === undefined || value === null)
                    continue;
                search.set(name, Array.isArray(value) ? value.join(",") : String(value));
            }
            const suffix = search.size ? `?${search}` : "";
            const response = await send(`/api/jobs${suffix}`, request);
            return (await response.json());
        },
        getMe: async (request = {}) => (await (await send("/api/me", request)).json()),
        cancelJob: (id, request = {}) => postJson(`/api/jobs/${encodeURIComponent(id)}/cancel`, {}, request),
        openStream(path, request = {}) {
            const headers = { Accept: "text/event-stream" };
            if (request.lastEventId)
                headers["Last-Event-ID"] = request.lastEventId;
            return send(path, { ...(request.signal ? { signal: request.signal } : {}), headers });
        },
        withAccessToken: (accessToken) => createClient({ baseUrl, accessToken, ...(options.fetch ? { fetch: options.fetch } : {}) }),
    };
}
