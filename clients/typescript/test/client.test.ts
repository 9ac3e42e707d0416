import { describe, expect, it } from "vitest";
import { ApiProblem, type Tokens, createClient, cursorOf, parseRateLimit } from "../src/client.ts";
import { FakeApi, JOB_ID, job, json, jobResponse, notModified, problem } from "./fake.ts";

function setUp(tokens: Tokens | null = { access: "A1", refresh: "R1" }) {
  const api = new FakeApi();
  const changes: Array<Tokens | null> = [];
  const client = createClient({
    baseUrl: "https://acme.example/",
    fetch: api.fetch,
    tokens,
    onTokens: (next) => changes.push(next),
  });
  return { api, client, changes };
}

describe("tokens", () => {
  it("logs in without a token and keeps the pair", async () => {
    const { api, client, changes } = setUp(null);
    api.on(/^POST \/api\/auth\/token$/, () => json(200, { access: "A1", refresh: "R1" }));
    await client.login("alice", "pw");

    expect(JSON.parse(api.requests[0]?.body ?? "")).toEqual({ username: "alice", password: "pw" });
    expect(api.requests[0]?.headers.get("Authorization")).toBeNull();
    expect(client.tokens).toEqual({ access: "A1", refresh: "R1" });
    expect(changes).toEqual([{ access: "A1", refresh: "R1" }]);
  });

  it("stores the rotated refresh token and rotates once for concurrent callers", async () => {
    const { api, client } = setUp();
    api.on(/^POST \/api\/auth\/token\/refresh$/, () => json(200, { access: "A2", refresh: "R2" }));
    const [first, second] = await Promise.all([client.refresh(), client.refresh()]);

    expect(first).toEqual({ access: "A2", refresh: "R2" });
    expect(second).toEqual(first);
    expect(api.requests).toHaveLength(1);
    expect(JSON.parse(api.requests[0]?.body ?? "")).toEqual({ refresh: "R1" });
    expect(client.tokens?.refresh).toBe("R2");
  });

  it("renews an expired access token once and retries the request", async () => {
    const { api, client } = setUp();
    api.on(/^GET \/api\/jobs\//, () => problem(401, "token_not_valid"));
    api.on(/^POST \/api\/auth\/token\/refresh$/, () => json(200, { access: "A2", refresh: "R2" }));
    api.on(/^GET \/api\/jobs\//, () => jobResponse(job("pending"), '"1-a"'));
    const found = await client.getJob(JOB_ID);

    expect(found.status).toBe("pending");
    expect(api.requests.map((request) => request.headers.get("Authorization"))).toEqual([
      "Bearer A1",
      null,
      "Bearer A2",
    ]);
  });

  it("logs out by revoking the refresh token and forgets both", async () => {
    const { api, client, changes } = setUp();
    api.on(/^POST \/api\/auth\/logout$/, () => new Response(null, { status: 204 }));
    await client.logout();

    expect(JSON.parse(api.requests[0]?.body ?? "")).toEqual({ refresh: "R1" });
    expect(client.tokens).toBeNull();
    expect(changes).toEqual([null]);
  });
});

describe("jobs", () => {
  it("returns the cached job on 304", async () => {
    const { api, client } = setUp();
    api.on(/^GET /, () => jobResponse(job("pending"), '"1-a"'));
    api.on(/^GET /, () => notModified());
    const first = await client.getJob(JOB_ID);
    const read = await client.readJob(JOB_ID, { wait: 20 });

    expect(api.lines()[1]).toBe(`GET /api/jobs/${JOB_ID}?wait=20`);
    expect(api.requests[1]?.headers.get("If-None-Match")).toBe('"1-a"');
    expect(read).toMatchObject({ job: first, etag: '"1-a"', modified: false });
  });

  it("submits with an idempotency key and unwraps a batch", async () => {
    const { api, client } = setUp();
    api.on(/^POST \/api\/jobs$/, () => json(202, job("pending")));
    api.on(/^POST \/api\/jobs\/batch$/, () => json(202, { jobs: [job("pending")] }));
    await client.submitJob({ type: "demo.sleep", payload: { seconds: 1 } }, { idempotencyKey: "k-1" });
    const batch = await client.submitBatch([{ type: "demo.echo" }]);

    expect(api.requests[0]?.headers.get("Idempotency-Key")).toBe("k-1");
    expect(api.requests[0]?.headers.get("Content-Type")).toBe("application/json");
    expect(JSON.parse(api.requests[1]?.body ?? "")).toEqual({ jobs: [{ type: "demo.echo" }] });
    expect(batch).toHaveLength(1);
  });

  it("lists with the filter's parameters and reads the next cursor", async () => {
    const { api, client } = setUp();
    const next = "https://acme.example/api/jobs?cursor=cD0y&status=pending";
    api.on(/^GET \/api\/jobs\?/, () => json(200, { next, previous: null, results: [] }));
    const page = await client.listJobs({ status: ["pending", "processing"], page_size: 5, created_by: "me" });

    expect(api.lines()).toEqual(["GET /api/jobs?status=pending%2Cprocessing&page_size=5&created_by=me"]);
    expect(cursorOf(page.next)).toBe("cD0y");
  });

  it("throws every refusal as an ApiProblem with code, detail and Retry-After", async () => {
    const { api, client } = setUp();
    api.on(/^POST /, () =>
      problem(429, "rate_limited", {
        "Retry-After": "12",
        RateLimit: '"jobs-api";r=0;t=12',
        "RateLimit-Policy": '"jobs-api";q=300;w=60',
      }),
    );
    const error = await client.cancelJob(JOB_ID).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ApiProblem);
    expect(error).toMatchObject({
      status: 429,
      code: "rate_limited",
      detail: "rate_limited detail",
      retryAfter: 12,
      rateLimit: { remaining: 0, reset: 12, quota: 300, window: 60 },
    });
  });

  it("makes a problem of an answer that is not a problem document", async () => {
    const { api, client } = setUp();
    api.on(/^GET /, () => new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" }));
    const error = await client.getJob(JOB_ID).catch((caught: unknown) => caught);

    expect(error).toMatchObject({ status: 502, code: undefined, detail: "Bad Gateway", retryAfter: null });
  });
});

describe("parseRateLimit", () => {
  it("is null without a RateLimit header", () => {
    expect(parseRateLimit(new Headers())).toBeNull();
  });
});
