import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createClient, type Job } from "../src/client.ts";
import { type WatchOptions, watchJob, watchJobs } from "../src/watch.ts";
import {
  FakeApi,
  FakeVisibility,
  JOB_ID,
  Stream,
  job,
  jobResponse,
  notModified,
  problem,
} from "./fake.ts";

const STREAM = /^GET \/api\/jobs\/[^/]+\/events$/;
const LONG_POLL = /^GET \/api\/jobs\/[^/?]+\?wait=25$/;
const POLL = /^GET \/api\/jobs\/[^/?]+$/;

let api: FakeApi;
let visibility: FakeVisibility;
let seen: Job[];

/** Lets the watch's promise chains run, advancing the fake clock by `ms`. */
const advance = (ms = 0) => vi.advanceTimersByTimeAsync(ms);

function start(options: WatchOptions = {}) {
  const client = createClient({
    baseUrl: "https://acme.example",
    fetch: api.fetch,
    tokens: { access: "A", refresh: "R" },
  });
  const onError = vi.fn();
  const watch = watchJob(client, JOB_ID, (job) => seen.push(job), {
    visibility,
    random: () => 0,
    onError,
    ...options,
  });
  return { watch, onError };
}

const statuses = () => seen.map((job) => job.status);

beforeEach(() => {
  vi.useFakeTimers();
  api = new FakeApi();
  visibility = new FakeVisibility();
  seen = [];
});

afterEach(() => {
  vi.useRealTimers();
});

describe("watchJob", () => {
  it("reads the job's stream and stops after its final state", async () => {
    api.stream(STREAM);
    const { watch } = start();
    await advance();
    const [stream] = api.streams as [Stream];
    stream.send(job("processing", { progress: 10 }), '"1-a"');
    stream.send(job("completed", { result: { ok: true } }), '"1-b"');
    await advance();

    expect(statuses()).toEqual(["processing", "completed"]);
    expect(api.requests[0]?.headers.get("Authorization")).toBe("Bearer A");
    expect(api.requests[0]?.headers.get("Accept")).toBe("text/event-stream");
    await advance(120_000);
    expect(api.requests).toHaveLength(1);
    expect(watch.mode).toBe("stream");
  });

  it("falls back to long polls when the stream answers 503", async () => {
    api.on(STREAM, () => problem(503, "service_unavailable"));
    api.on(LONG_POLL, () => jobResponse(job("pending"), '"1-a"', { "Retry-After": "2" }));
    api.on(LONG_POLL, () => jobResponse(job("completed"), '"1-b"'));
    const { watch } = start();
    await advance(2_000);

    expect(api.lines()).toEqual([
      `GET /api/jobs/${JOB_ID}/events`,
      `GET /api/jobs/${JOB_ID}?wait=25`,
      `GET /api/jobs/${JOB_ID}?wait=25`,
    ]);
    expect(api.requests[2]?.headers.get("If-None-Match")).toBe('"1-a"');
    expect(statuses()).toEqual(["pending", "completed"]);
    expect(watch.mode).toBe("longpoll");
  });

  it("falls back to long polls when the stream cannot be reached", async () => {
    api.on(STREAM, new TypeError("fetch failed"));
    api.on(LONG_POLL, () => jobResponse(job("completed"), '"1-b"'));
    const { watch } = start();
    await advance();

    expect(statuses()).toEqual(["completed"]);
    expect(watch.mode).toBe("longpoll");
  });

  it("polls plainly when the server refuses ?wait=", async () => {
    api.on(LONG_POLL, () => problem(400, "invalid_wait"));
    api.on(POLL, () => jobResponse(job("completed"), '"1-b"'));
    const { watch, onError } = start({ mode: "longpoll" });
    await advance();

    expect(statuses()).toEqual(["completed"]);
    expect(watch.mode).toBe("poll");
    expect(onError).not.toHaveBeenCalled();
  });

  it("keeps the state on 304 and sends the ETag it holds", async () => {
    api.on(POLL, () => jobResponse(job("pending"), '"1-a"', { "Retry-After": "2" }));
    api.on(POLL, () => notModified({ "Retry-After": "2" }));
    api.on(POLL, () => jobResponse(job("processing"), '"1-b"', { "Retry-After": "2" }));
    start({ mode: "poll" });
    await advance(4_000);

    expect(api.requests.map((request) => request.headers.get("If-None-Match"))).toEqual([
      null,
      '"1-a"',
      '"1-a"',
    ]);
    expect(statuses()).toEqual(["pending", "processing"]);
  });

  it("waits Retry-After between polls", async () => {
    api.on(POLL, () => jobResponse(job("pending"), '"1-a"', { "Retry-After": "5" }));
    api.on(POLL, () => jobResponse(job("completed"), '"1-b"'));
    start({ mode: "poll" });
    await advance(4_999);
    expect(api.requests).toHaveLength(1);
    await advance(1);
    expect(api.requests).toHaveLength(2);
    expect(statuses()).toEqual(["pending", "completed"]);
  });

  it("pauses for a 429's Retry-After", async () => {
    api.on(LONG_POLL, () => problem(429, "rate_limited", { "Retry-After": "7" }));
    api.on(LONG_POLL, () => jobResponse(job("completed"), '"1-b"'));
    const { onError } = start({ mode: "longpoll" });
    await advance(6_999);
    expect(api.requests).toHaveLength(1);
    await advance(1);
    expect(statuses()).toEqual(["completed"]);
    expect(onError).not.toHaveBeenCalled();
  });

  it("waits for the rate limit's reset when none is left", async () => {
    const spent = { "Retry-After": "1", RateLimit: '"jobs-api";r=0;t=10', "RateLimit-Policy": '"jobs-api";q=300;w=60' };
    api.on(POLL, () => jobResponse(job("pending"), '"1-a"', spent));
    api.on(POLL, () => jobResponse(job("completed"), '"1-b"'));
    start({ mode: "poll" });
    await advance(9_999);
    expect(api.requests).toHaveLength(1);
    await advance(1);
    expect(api.requests).toHaveLength(2);
  });

  it("reconnects a dropped stream with Last-Event-ID after a backoff", async () => {
    api.stream(STREAM).stream(STREAM);
    start();
    await advance();
    api.streams[0]?.send(job("processing", { progress: 10 }), '"1-a"');
    await advance();
    api.streams[0]?.fail();
    await advance(499); // the first backoff is 1 s × (0.5 + random/2) = 0.5 s here
    expect(api.requests).toHaveLength(1);
    await advance(1);
    expect(api.requests).toHaveLength(2);
    expect(api.requests[1]?.headers.get("Last-Event-ID")).toBe('"1-a"');
    api.streams[1]?.send(job("processing", { progress: 10 }), '"1-a"');
    api.streams[1]?.send(job("completed"), '"1-b"');
    await advance();

    expect(seen.map((job) => [job.status, job.status === "processing" ? job.progress : undefined])).toEqual([
      ["processing", 10],
      ["completed", undefined],
    ]);
  });

  it("keeps to a stream it has read when the server is unreachable for a while", async () => {
    api.stream(STREAM).on(STREAM, new TypeError("fetch failed")).stream(STREAM);
    const { watch } = start();
    await advance();
    api.streams[0]?.send(job("processing", { progress: 10 }), '"1-a"');
    await advance();
    api.streams[0]?.fail(); // the server went away (a restart)
    await advance(500); // backoff 0.5 s: refused, no long poll instead
    await advance(1_000); // backoff 1 s: the server is back
    expect(api.lines()).toEqual(Array(3).fill(`GET /api/jobs/${JOB_ID}/events`));
    expect(api.requests[2]?.headers.get("Last-Event-ID")).toBe('"1-a"');
    api.streams[1]?.send(job("completed"), '"1-b"');
    await advance();

    expect(statuses()).toEqual(["processing", "completed"]);
    expect(watch.mode).toBe("stream");
  });

  it("backs off exponentially with jitter on server errors", async () => {
    for (let i = 0; i < 3; i += 1) api.on(POLL, () => problem(500, "server_error"));
    api.on(POLL, () => jobResponse(job("completed"), '"1-b"'));
    start({ mode: "poll", random: () => 0.5 });
    // 1 × 0.75 s, then 2 × 0.75 s, then 4 × 0.75 s.
    await advance(749);
    expect(api.requests).toHaveLength(1);
    await advance(1);
    expect(api.requests).toHaveLength(2);
    await advance(1_500);
    expect(api.requests).toHaveLength(3);
    await advance(2_999);
    expect(api.requests).toHaveLength(3);
    await advance(1);
    expect(statuses()).toEqual(["completed"]);
  });

  it("makes no request while the page is hidden and catches up on return", async () => {
    visibility.set("hidden");
    api.on(LONG_POLL, () => jobResponse(job("processing"), '"1-a"'));
    start({ mode: "longpoll" });
    await advance(60_000);
    expect(api.requests).toHaveLength(0);

    visibility.set("visible");
    await advance();
    expect(statuses()).toEqual(["processing"]);
  });

  it("aborts the request in flight when the page is hidden", async () => {
    api.stream(STREAM).stream(STREAM);
    start();
    await advance();
    api.streams[0]?.send(job("processing"), '"1-a"');
    await advance();
    visibility.set("hidden");
    await advance(10_000); // less than the stream's idle timeout
    expect(api.requests).toHaveLength(1);
    expect(api.requests[0]?.signal?.aborted).toBe(true);

    visibility.set("visible");
    await advance();
    expect(api.requests).toHaveLength(2);
    expect(api.requests[1]?.headers.get("Last-Event-ID")).toBe('"1-a"');
  });

  it("reports a state once across a fallback and repeated answers", async () => {
    api.stream(STREAM);
    start();
    await advance();
    api.streams[0]?.send(job("processing"), '"1-a"');
    api.streams[0]?.send(job("processing"), '"1-a"');
    await advance();
    expect(statuses()).toEqual(["processing"]);
    // The stream is refused from now on (the stream answered, so this is a reconnect).
    api.on(STREAM, () => problem(503, "service_unavailable"));
    api.on(LONG_POLL, () => jobResponse(job("processing"), '"1-a"', { "Retry-After": "1" }));
    api.on(LONG_POLL, () => jobResponse(job("completed"), '"1-b"'));
    api.streams[0]?.fail();
    await advance(5_000);

    expect(statuses()).toEqual(["processing", "completed"]);
  });

  it("stops on a refusal retrying cannot fix and says why", async () => {
    api.on(LONG_POLL, () => problem(404, "not_found"));
    const { onError } = start({ mode: "longpoll" });
    await advance(60_000);

    expect(api.requests).toHaveLength(1);
    expect(onError).toHaveBeenCalledOnce();
    expect(onError.mock.calls[0]?.[0]).toMatchObject({ status: 404, code: "not_found" });
  });

  it("reads with a job read token instead of the session, and never refreshes it", async () => {
    api.stream(STREAM);
    api.on(STREAM, () => problem(401, "not_authenticated")); // the token has expired
    const { onError } = start({ accessToken: "READ" });
    await advance();
    const [stream] = api.streams as [Stream];
    stream.send(job("processing"), '"1-a"');
    stream.fail();
    await advance(60_000);

    expect(statuses()).toEqual(["processing"]);
    expect(api.requests.map((request) => request.headers.get("Authorization"))).toEqual([
      "Bearer READ",
      "Bearer READ",
    ]);
    expect(api.lines()).not.toContain("POST /api/auth/token/refresh");
    expect(onError.mock.calls[0]?.[0]).toMatchObject({ status: 401, code: "not_authenticated" });
  });

  it("sends nothing and reports nothing after stop()", async () => {
    api.on(POLL, () => jobResponse(job("pending"), '"1-a"', { "Retry-After": "2" }));
    const { watch } = start({ mode: "poll" });
    await advance();
    watch.stop();
    await advance(60_000);
    expect(api.requests).toHaveLength(1);
    expect(statuses()).toEqual(["pending"]);
  });
});

describe("watchJobs", () => {
  const EVENTS = /^GET \/api\/events$/;

  it("reports each job's state once across reconnections", async () => {
    api.stream(EVENTS).stream(EVENTS);
    const client = createClient({ baseUrl: "https://acme.example", fetch: api.fetch });
    const watch = watchJobs(client, (job) => seen.push(job), { visibility, random: () => 0 });
    await advance();
    api.streams[0]?.send(job("processing"), '"1-a"');
    api.streams[0]?.send(job("pending", { id: "other" }), '"2-a"');
    api.streams[0]?.end(); // changes may have gone unheard: reconnect
    await advance(500);
    api.streams[1]?.send(job("processing"), '"1-a"');
    api.streams[1]?.send(job("completed"), '"1-b"');
    await advance();
    watch.stop();

    expect(seen.map((job) => `${job.id.slice(0, 5)} ${job.status}`)).toEqual([
      "5b0c3 processing",
      "other pending",
      "5b0c3 completed",
    ]);
  });

  it("tells the caller while streams are refused and retries after Retry-After", async () => {
    api.on(EVENTS, () => problem(503, "service_unavailable", { "Retry-After": "10" }));
    api.stream(EVENTS);
    const client = createClient({ baseUrl: "https://acme.example", fetch: api.fetch });
    const onUnavailable = vi.fn();
    const watch = watchJobs(client, (job) => seen.push(job), { visibility, onUnavailable, random: () => 0 });
    await advance(9_999);
    expect(onUnavailable).toHaveBeenCalledOnce();
    expect(api.requests).toHaveLength(1);
    await advance(1);
    expect(api.requests).toHaveLength(2);
    watch.stop();
  });
});
