/**
 * Watching jobs the way docs/api.md asks a client to: the job's stream when the server
 * offers it, else long polls, else conditional GETs; `Retry-After`, `429` and the
 * `RateLimit` headers obeyed; reconnection with `Last-Event-ID` and jittered exponential
 * backoff; nothing sent while the page is hidden; each state reported once.
 */
import {
  ApiProblem,
  type Client,
  type Job,
  type RateLimit,
  isFinal,
  parseRateLimit,
} from "./client.ts";
import { readEvents } from "./sse.ts";

/** How a watch reads the job: in this order of preference, falling back down the list. */
export type WatchMode = "stream" | "longpoll" | "poll";

/** What `document` offers for pausing (a fake in tests; none outside a browser). */
export interface Visibility {
  readonly visibilityState: string;
  addEventListener(type: "visibilitychange", listener: () => void): void;
  removeEventListener(type: "visibilitychange", listener: () => void): void;
}

export interface WatchOptions {
  /** The first way to try (default "stream"); a refused stream or `?wait=` falls back. */
  mode?: WatchMode;
  /** Long poll length in seconds (`?wait=`, 1–30; default 25). */
  wait?: number;
  /** Seconds between polls when the server sends no `Retry-After` (default 2). */
  pollInterval?: number;
  /** Longest backoff in seconds after failures (default 30). */
  maxBackoff?: number;
  /** Seconds without a byte (events or keep-alives) after which a stream is reopened (default 45). */
  idleTimeout?: number;
  /** Pauses while `visibilityState === "hidden"`; default `globalThis.document` when present. */
  visibility?: Visibility | null;
  /** The jitter's source, in [0, 1) (default Math.random). */
  random?: () => number;
  /** A refusal that ends the watch (400, 401, 403, 404…): the watch has stopped when it is called. */
  onError?: (error: unknown) => void;
  /**
   * Read with this job read token (a submit's `Job-Read-Token`) instead of the client's
   * session: for a page opened from an email link, a widget or a second device. Once it
   * expires the watch stops with a 401 (`onError`).
   */
  accessToken?: string;
}

export interface Watch {
  /** Ends the watch: no request or callback after it returns. Idempotent. */
  stop(): void;
  /** How the job is being read now. */
  readonly mode: WatchMode;
}

const DEFAULTS = { wait: 25, pollInterval: 2, maxBackoff: 30, idleTimeout: 45 };

function defaultVisibility(): Visibility | null {
  const doc = (globalThis as { document?: Visibility }).document;
  return doc && typeof doc.addEventListener === "function" ? doc : null;
}

/**
 * The pacing shared by watchJob and watchJobs: stop, sleeps that stop cuts short, the
 * hidden-page pause (which also aborts the request in flight), the 429/RateLimit pause
 * and the backoff.
 */
class Pacer {
  stopped = false;
  failures = 0;
  private pausedUntil = 0;
  private readonly stopController = new AbortController();
  private attempt: AbortController | null = null;
  private hiddenAbort = false;
  private readonly visibility: Visibility | null;
  private readonly waiters = new Set<() => void>();
  private readonly onVisibility = () => {
    if (this.hidden() && this.attempt) {
      this.hiddenAbort = true;
      this.attempt.abort();
    }
    if (!this.hidden()) for (const wake of [...this.waiters]) wake();
  };

  constructor(
    private readonly options: Required<Pick<WatchOptions, "maxBackoff">> & {
      random: () => number;
      visibility: Visibility | null;
    },
  ) {
    this.visibility = options.visibility;
    this.visibility?.addEventListener("visibilitychange", this.onVisibility);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.visibility?.removeEventListener("visibilitychange", this.onVisibility);
    this.stopController.abort();
    for (const wake of [...this.waiters]) wake();
  }

  hidden(): boolean {
    return this.visibility?.visibilityState === "hidden";
  }

  /** Resolves after `ms`, or at once on stop. */
  sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stopController.signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stopController.signal.addEventListener("abort", done);
    });
  }

  /** Waits until the page is visible and no pause (429, spent RateLimit) holds; false once stopped. */
  async ready(): Promise<boolean> {
    for (;;) {
      if (this.stopped) return false;
      if (this.hidden()) {
        await new Promise<void>((resolve) => {
          const wake = () => {
            this.waiters.delete(wake);
            resolve();
          };
          this.waiters.add(wake);
        });
        continue;
      }
      const pause = this.pausedUntil - Date.now();
      if (pause <= 0) return true;
      await this.sleep(pause);
    }
  }

  /** A signal for one request, aborted by stop or by the page becoming hidden. */
  begin(): AbortSignal {
    this.hiddenAbort = false;
    this.attempt = new AbortController();
    return AbortSignal.any([this.attempt.signal, this.stopController.signal]);
  }

  /** Whether the last request was aborted because the page was hidden (not a failure). */
  abortedByHiding(): boolean {
    return this.hiddenAbort;
  }

  pauseFor(seconds: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, Date.now() + seconds * 1000);
  }

  /** Pauses every request until the window resets when none is left in it. */
  noteRateLimit(rateLimit: RateLimit | null): void {
    if (rateLimit && rateLimit.remaining === 0) this.pauseFor(rateLimit.reset);
  }

  /** Jittered exponential backoff for the current failure count: 1, 2, 4 … maxBackoff s, × [0.5, 1). */
  backoffMs(): number {
    const base = Math.min(this.options.maxBackoff, 2 ** Math.max(0, this.failures - 1));
    return base * (0.5 + this.options.random() / 2) * 1000;
  }

  /** After a failed request: a 429 pauses for its Retry-After; anything else backs off. */
  async afterFailure(error: unknown): Promise<void> {
    if (error instanceof ApiProblem) this.noteRateLimit(error.rateLimit);
    if (error instanceof ApiProblem && error.status === 429) {
      this.pauseFor(error.retryAfter ?? this.options.maxBackoff);
      return;
    }
    this.failures += 1;
    const told = error instanceof ApiProblem && error.retryAfter !== null ? error.retryAfter * 1000 : 0;
    await this.sleep(Math.max(told, this.backoffMs()));
  }
}

/** Retryable: 429, 5xx, or no answer at all (network failure, aborted stream). */
function transient(error: unknown): boolean {
  return !(error instanceof ApiProblem) || error.status === 429 || error.status >= 500;
}

function pacerFor(options: WatchOptions): Pacer {
  return new Pacer({
    maxBackoff: options.maxBackoff ?? DEFAULTS.maxBackoff,
    random: options.random ?? Math.random,
    visibility: options.visibility === undefined ? defaultVisibility() : options.visibility,
  });
}

/**
 * Reads one stream until the server ends it; an idle stream (no byte for `idleTimeout`
 * seconds, keep-alives included) is aborted and rejects like a dropped connection.
 * `opened` is called once the server accepted the request.
 */
async function readStream(
  client: Client,
  path: string,
  lastEventId: string | null,
  signal: AbortSignal,
  idleTimeout: number,
  pacer: Pacer,
  onJob: (job: Job, id: string | null) => void,
  opened: () => void,
): Promise<void> {
  const idle = new AbortController();
  const response = await client.openStream(path, {
    lastEventId,
    signal: AbortSignal.any([signal, idle.signal]),
  });
  opened();
  pacer.noteRateLimit(parseRateLimit(response.headers));
  if (!response.body) throw new Error("the stream has no body");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => idle.abort(), idleTimeout * 1000);
  };
  arm();
  try {
    await readEvents(
      response.body,
      (event) => {
        if (event.event === "job") onJob(JSON.parse(event.data) as Job, event.id);
      },
      arm,
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Watches one job until it reaches a final status (completed, failed, cancelled) or
 * `stop()` is called. `onChange` receives each distinct state once, in order, the final one
 * last. Errors that retrying cannot fix (400, 401 after a failed refresh, 403, 404) stop
 * the watch and go to `options.onError`.
 */
export function watchJob(
  session: Client,
  id: string,
  onChange: (job: Job) => void,
  options: WatchOptions = {},
): Watch {
  const client = options.accessToken ? session.withAccessToken(options.accessToken) : session;
  const wait = options.wait ?? DEFAULTS.wait;
  const pollInterval = options.pollInterval ?? DEFAULTS.pollInterval;
  const idleTimeout = options.idleTimeout ?? DEFAULTS.idleTimeout;
  const pacer = pacerFor(options);
  let mode: WatchMode = options.mode ?? "stream";
  let lastKey: string | null = null;
  let lastEtag: string | null = null;
  let streamed = false; // the server has opened this job's stream at least once

  function report(job: Job, etag: string | null): void {
    const key = etag ?? JSON.stringify(job);
    if (pacer.stopped || key === lastKey) return;
    lastKey = key;
    lastEtag = etag;
    onChange(job);
    if (isFinal(job)) pacer.stop();
  }

  async function streamOnce(signal: AbortSignal): Promise<void> {
    let opened = false;
    try {
      await readStream(
        client,
        `/api/jobs/${encodeURIComponent(id)}/events`,
        lastEtag,
        signal,
        idleTimeout,
        pacer,
        report,
        () => {
          opened = true;
          streamed = true;
          pacer.failures = 0;
        },
      );
    } catch (error) {
      // A stream the server refuses (503 under WSGI), or that could never be reached, falls
      // back to long polls; one that was open and dropped is reopened, also when the server
      // is unreachable for a while (a restart), with backoff.
      const refused = error instanceof ApiProblem && error.status === 503;
      const unreachable = !(error instanceof ApiProblem) && !streamed;
      if (!opened && !pacer.abortedByHiding() && !pacer.stopped && (refused || unreachable)) {
        mode = "longpoll";
        return;
      }
      throw error;
    }
    // The server ended the stream before a final state (token expiry, restart): reopen
    // after a jittered second.
    await pacer.sleep(pacer.backoffMs());
  }

  async function pollOnce(signal: AbortSignal): Promise<void> {
    const started = Date.now();
    try {
      const read = await client.readJob(id, mode === "longpoll" ? { wait, signal } : { signal });
      pacer.failures = 0;
      report(read.job, read.etag);
      pacer.noteRateLimit(read.rateLimit);
      // Start the next poll no sooner than Retry-After after this one started, and spread
      // what is left of the rate limit over its window.
      let interval = (read.retryAfter ?? pollInterval) * 1000;
      const limit = read.rateLimit;
      if (limit && limit.remaining > 0) interval = Math.max(interval, (limit.reset * 1000) / limit.remaining);
      await pacer.sleep(started + interval - Date.now());
    } catch (error) {
      if (mode === "longpoll" && error instanceof ApiProblem && error.code === "invalid_wait") {
        mode = "poll"; // the server has no long polling
        return;
      }
      throw error;
    }
  }

  async function run(): Promise<void> {
    while (await pacer.ready()) {
      const signal = pacer.begin();
      try {
        if (mode === "stream") await streamOnce(signal);
        else await pollOnce(signal);
      } catch (error) {
        if (pacer.stopped || pacer.abortedByHiding()) continue;
        if (!transient(error)) {
          pacer.stop();
          options.onError?.(error);
          return;
        }
        await pacer.afterFailure(error);
      }
    }
  }

  void run();
  return {
    stop: () => pacer.stop(),
    get mode() {
      return mode;
    },
  };
}

export interface WatchJobsOptions
  extends Omit<WatchOptions, "mode" | "wait" | "pollInterval" | "accessToken"> {
  /** The server offers no tenant stream (503) or it failed: called before each retry. */
  onUnavailable?: (error: unknown) => void;
}

/**
 * Watches every job of the tenant through `/api/events` until `stop()`: `onEvent` gets
 * the state of each unfinished job when the stream opens, then every change, each state
 * of a job once (also across reconnections). A stream that ends or fails is reopened with
 * backoff; while the server refuses streams (503) `onUnavailable` is told at each retry,
 * so a caller can poll the list meanwhile.
 */
export function watchJobs(
  client: Client,
  onEvent: (job: Job) => void,
  options: WatchJobsOptions = {},
): Watch {
  const idleTimeout = options.idleTimeout ?? DEFAULTS.idleTimeout;
  const pacer = pacerFor(options);
  const seen = new Map<string, string | null>(); // job id → last state key, newest last
  const SEEN_LIMIT = 5000;

  function report(job: Job, etag: string | null): void {
    const key = etag ?? JSON.stringify(job);
    if (pacer.stopped || seen.get(job.id) === key) return;
    seen.delete(job.id);
    seen.set(job.id, key);
    if (seen.size > SEEN_LIMIT) seen.delete(seen.keys().next().value as string);
    onEvent(job);
  }

  async function run(): Promise<void> {
    while (await pacer.ready()) {
      const signal = pacer.begin();
      try {
        await readStream(client, "/api/events", null, signal, idleTimeout, pacer, report, () => {
          pacer.failures = 0;
        });
        await pacer.sleep(pacer.backoffMs());
      } catch (error) {
        if (pacer.stopped || pacer.abortedByHiding()) continue;
        if (!transient(error)) {
          pacer.stop();
          options.onError?.(error);
          return;
        }
        options.onUnavailable?.(error);
        await pacer.afterFailure(error);
      }
    }
  }

  void run();
  return {
    stop: () => pacer.stop(),
    mode: "stream",
  };
}
