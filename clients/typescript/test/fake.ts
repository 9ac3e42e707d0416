/**
 * A scripted API for the unit tests: each request is recorded and answered by the first
 * queued answer whose route matches, so a test states exactly what the server says.
 */
import type { Job, JobStatus } from "../src/client.ts";
import type { Visibility } from "../src/watch.ts";

export const JOB_ID = "5b0c3f3e-8a57-4c1e-9a43-3d7f0f0c9e11";

/** A job in `status` with the keys every job has, and `extra` (the keys of its state). */
export function job(status: JobStatus, extra: Record<string, unknown> = {}): Job {
  return {
    id: JOB_ID,
    type: "demo.sleep",
    status,
    payload: { seconds: 1 },
    queue: "default",
    priority: 0,
    run_at: "2026-12-06T10:00:00Z",
    created_by: 1,
    created_at: "2026-12-06T10:00:00Z",
    ...extra,
  } as Job;
}

export interface Recorded {
  method: string;
  path: string;
  search: string;
  headers: Headers;
  body: string | null;
  signal: AbortSignal | null;
}

type Answer = (request: Recorded) => Response;

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

export function problem(status: number, code: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ status, code, detail: `${code} detail`, title: "x" }), {
    status,
    headers: { "Content-Type": "application/problem+json", ...headers },
  });
}

export function jobResponse(body: Job, etag: string, headers: Record<string, string> = {}): Response {
  return json(200, body, { ETag: etag, ...headers });
}

export function notModified(headers: Record<string, string> = {}): Response {
  return new Response(null, { status: 304, headers });
}

/** An open `text/event-stream` the test writes to, errored when the request is aborted. */
export class Stream {
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private closed = false;
  readonly response: Response;

  constructor(signal: AbortSignal | null, headers: Record<string, string> = {}) {
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.controller = controller;
      },
    });
    signal?.addEventListener("abort", () => this.fail(new DOMException("aborted", "AbortError")));
    this.response = new Response(body, {
      status: 200,
      headers: { "Content-Type": "text/event-stream", ...headers },
    });
  }

  send(body: Job, id: string): void {
    this.write(`event: job\nid: ${id}\ndata: ${JSON.stringify(body)}\n\n`);
  }

  write(text: string): void {
    if (!this.closed) this.controller.enqueue(new TextEncoder().encode(text));
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.controller.close();
  }

  fail(error: unknown = new TypeError("network error")): void {
    if (this.closed) return;
    this.closed = true;
    this.controller.error(error);
  }
}

export class FakeApi {
  readonly requests: Recorded[] = [];
  readonly streams: Stream[] = [];
  private readonly answers: Array<{ route: RegExp; answer: Answer | Error }> = [];

  /** Queues the answer of the next request whose `METHOD path?search` matches `route`. */
  on(route: RegExp, answer: Answer | Error): this {
    this.answers.push({ route, answer });
    return this;
  }

  /** Queues an open stream for the next request matching `route`; see `streams`. */
  stream(route: RegExp, headers: Record<string, string> = {}): this {
    return this.on(route, (request) => {
      const stream = new Stream(request.signal, headers);
      this.streams.push(stream);
      return stream.response;
    });
  }

  readonly fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(String(input));
    const request: Recorded = {
      method: init.method ?? "GET",
      path: url.pathname,
      search: url.search,
      headers: new Headers(init.headers),
      body: typeof init.body === "string" ? init.body : null,
      signal: init.signal ?? null,
    };
    this.requests.push(request);
    if (request.signal?.aborted) throw new DOMException("aborted", "AbortError");
    const line = `${request.method} ${request.path}${request.search}`;
    const index = this.answers.findIndex(({ route }) => route.test(line));
    if (index < 0) {
      // Unscripted: the request stays unanswered until it is aborted (like a long poll).
      return new Promise((_, reject) =>
        request.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
      );
    }
    const { answer } = this.answers.splice(index, 1)[0]!;
    if (answer instanceof Error) throw answer;
    return answer(request);
  };

  lines(): string[] {
    return this.requests.map((request) => `${request.method} ${request.path}${request.search}`);
  }
}

/** A document whose visibility the test flips. */
export class FakeVisibility implements Visibility {
  visibilityState: "visible" | "hidden" = "visible";
  private readonly listeners = new Set<() => void>();

  addEventListener(_type: "visibilitychange", listener: () => void): void {
    this.listeners.add(listener);
  }

  removeEventListener(_type: "visibilitychange", listener: () => void): void {
    this.listeners.delete(listener);
  }

  set(state: "visible" | "hidden"): void {
    this.visibilityState = state;
    for (const listener of [...this.listeners]) listener();
  }
}
