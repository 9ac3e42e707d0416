"""Fan-out: N clients wait on one job in ONE uvicorn process (long polls ``?wait=`` with a
current ``If-None-Match``, or ``/events`` streams with ``Last-Event-ID`` at the current
ETag); then the job changes once. Measured: time from sending the change (one autocommit
UPDATE) until each client has its answer (long poll: the whole response; stream: the
``job`` event), p50 / p99 / max, and the server's RSS before the clients and while they all
wait.

Two more cases, on the same server set-up: **burst** (N long polls sent at once, the job
changing ``BURST_CHANGE_AFTER`` s after the last was sent: p50 / p99 / max answer after the
change, i.e. how long the process takes to authorize the backlog) and **storm** (N open
streams disconnected at once, each reconnecting as the TypeScript client's ``watchJob``
does: a jittered backoff of 1 s × [0.5, 1), doubling per failed attempt up to 30 s, a 429
pausing for its ``Retry-After``; measured: seconds from the disconnect until every stream is
open again, then one change and how many streams it reaches).

``make bench`` runs the fan-out and burst cases as its ``fanout`` part and the storm as
its ``storm`` part (bench/run.py calls ``measure``, ``section``, ``storm`` and
``storm_section`` with its own database and environment). Standalone, it uses its own database
(``bench_fanout``, recreated) on bench/run.py's server and appends its section to
bench/RESULTS.md unless ``--no-append``. Clients are raw asyncio sockets in the calling
process (RLIMIT_NOFILE raised within the hard limit); only processes started here are
stopped, by their PID.

    .venv/bin/python bench/fanout.py [--counts 1000,3000,10000]
                                     [--kinds poll,stream,burst,storm] [--no-append]
"""

import argparse
import asyncio
import random
import resource
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # bench/run.py: the plumbing of make bench

DATABASE = "bench_fanout"  # the standalone entry's; make bench passes its own
SETTINGS = {
    "JOBS_MAX_WAITS_PER_USER": "1000000",  # one user holds every connection here
    "JOBS_LONGPOLL_MAX_WAIT": "600",  # 10,000 clients take longer than 30 s to connect
}
CONNECT_BATCH = 500
NAMES = {"poll": "long polls (`?wait=`)", "stream": "streams (`/events`)"}
BURST_CHANGE_AFTER = 3.0  # seconds after the last long poll of a burst was sent
# The TypeScript client's reconnection (clients/typescript/src/watch.ts, Pacer.backoffMs):
# base 2 ** (failures - 1) s up to MAX_BACKOFF, times [0.5, 1); a 429 waits Retry-After.
MAX_BACKOFF = 30.0
STORM_LIMIT = 300.0  # seconds: a storm that has not settled by then is reported as such
CONNECT_TIMEOUT = 60.0  # a reconnection whose headers take longer counts as failed


def fanout_env(database: str) -> dict:
    """The benchmark's environment on ``database`` with the fan-out's settings."""
    return bench.project_env(database=database, **SETTINGS)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, 20_000)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100


async def settle(pid: int, quiet: float = 1.5, timeout: float = 300) -> None:
    """Until the server has used no CPU for ``quiet`` seconds: every request waits."""
    deadline = time.monotonic() + timeout
    last, since = cpu_seconds(pid), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = cpu_seconds(pid)
        if now - last > 0.02:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise RuntimeError("the server never went quiet")


class Client:
    def __init__(self, port: int, request: bytes, marker: bytes):
        self.port, self.request, self.marker = port, request, marker
        self.answered: float | None = None
        self.status: int | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(self.request)
        await self.writer.drain()

    async def wait(self) -> None:
        buffer = b""
        while self.marker not in buffer:
            chunk = await self.reader.read(65536)
            if not chunk:
                break
            buffer += chunk
        self.answered = time.monotonic()
        self.status = int(buffer.split(b" ", 2)[1]) if buffer.startswith(b"HTTP/") else None
        self.writer.close()


def requests_for(kind: str, target: dict) -> tuple[bytes, bytes, bytes]:
    """(the waiting request, what marks its answer, a plain poll to warm the server)."""
    path = f"/api/jobs/{target['job_id']}"
    headers = f"Host: {target['host']}\r\nAuthorization: Bearer {target['token']}\r\n"
    if kind in ("poll", "burst"):
        line = f"GET {path}?wait=590 HTTP/1.1\r\nIf-None-Match: {target['etag']}\r\n"
        marker = b"\r\n\r\n{"  # the 200's body: the job's JSON
    else:
        line = f"GET {path}/events HTTP/1.1\r\nLast-Event-ID: {target['etag']}\r\n"
        marker = b"event: job"
    warm = f"GET {path} HTTP/1.1\r\n{headers}\r\n".encode()
    return (line + headers + "\r\n").encode(), marker, warm


async def warmed(port: int, pid: int, warm: bytes) -> float:
    """After one plain poll (the chain, the listener and the hub exist) and quiet: RSS MB."""
    client = Client(port, warm, b"}")
    await client.open()
    await client.wait()
    await settle(pid)
    return rss_mb(pid)


def change(database: str, job_id: str) -> float:
    """Change the job (one autocommit UPDATE); the monotonic time it was sent."""
    with psycopg.connect(bench.conninfo(database), autocommit=True) as conn:
        changed = time.monotonic()
        conn.execute(
            "UPDATE job_queue SET status = 'processing', attempts = 1, worker_id = 'bench'"
            " WHERE id = %s",
            [job_id],
        )
    return changed


def answer_times(clients: list, changed: float) -> dict:
    answered = [c for c in clients if c.status == 200 and c.answered >= changed]
    times = [(client.answered - changed) * 1000 for client in answered]
    return {
        "ok": len(answered),
        "p50": bench.percentile(times, 50),
        "p99": bench.percentile(times, 99),
        "max": max(times, default=float("nan")),
    }


async def fan_out(kind: str, count: int, port: int, pid: int, target: dict, database: str):
    request, marker, warm = requests_for(kind, target)
    rss_before = await warmed(port, pid, warm)
    clients = [Client(port, request, marker) for _ in range(count)]
    started, cpu_before = time.monotonic(), cpu_seconds(pid)
    for start in range(0, count, CONNECT_BATCH):
        await asyncio.gather(*(client.open() for client in clients[start : start + CONNECT_BATCH]))
    sent = time.monotonic()
    waits = [asyncio.ensure_future(client.wait()) for client in clients]
    if kind == "burst":
        await asyncio.sleep(BURST_CHANGE_AFTER)
        connect, rss_waiting, cpu_ms = float("nan"), rss_mb(pid), float("nan")
    else:
        quiet = 1.5
        await settle(pid, quiet=quiet)
        connect, rss_waiting = time.monotonic() - quiet - started, rss_mb(pid)
        cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / count
    early = sum(1 for task in waits if task.done())
    changed = await asyncio.to_thread(change, database, target["job_id"])
    await asyncio.gather(*waits)
    return {
        "kind": kind,
        "count": count,
        "early": early,
        "sent_s": sent - started,
        "connect_s": connect,
        "cpu_ms": cpu_ms,
        **answer_times(clients, changed),
        "rss_before": rss_before,
        "rss_waiting": rss_waiting,
        "per_waiter_kb": (rss_waiting - rss_before) * 1024 / count,
    }


class Reconnecting:
    """One stream of the storm: reconnects as the TypeScript client does until open."""

    def __init__(self, port: int, request: bytes, rng: random.Random):
        self.port, self.request, self.rng = port, request, rng
        self.failures = 0
        self.attempts = 0
        self.opened: float | None = None
        self.refused = 0  # 429s
        self.reader = self.writer = None
        self.status: int | None = None  # 200 once the change's event arrived
        self.answered = 0.0

    def backoff(self) -> float:
        base = min(MAX_BACKOFF, 2 ** max(0, self.failures - 1))
        return base * (0.5 + self.rng.random() / 2)

    async def reconnect(self) -> None:
        """From a dropped stream: back off (one failure), then attempt until open."""
        self.failures = 1
        pause = self.backoff()
        while True:
            await asyncio.sleep(pause)
            self.attempts += 1
            try:
                status, retry_after = await asyncio.wait_for(self._open(), CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError, EOFError):  # EOF: closed, no answer
                status, retry_after = None, None
            if status == 200:
                self.opened = time.monotonic()
                return
            if self.writer is not None:
                self.writer.close()
            if status == 429:
                self.refused += 1
                pause = retry_after or MAX_BACKOFF
                continue
            self.failures += 1
            pause = max(retry_after or 0, self.backoff())

    async def _open(self) -> tuple[int, float | None]:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(self.request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        retry_after = None
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"retry-after" and value.strip().isdigit():
                retry_after = float(value.strip())
        return status, retry_after

    async def first_event(self) -> None:
        buffer = b""
        while b"event: job" not in buffer:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            buffer += chunk
        self.answered = time.monotonic()
        self.status = 200


async def reconnect_storm(count: int, port: int, pid: int, target: dict, database: str):
    request, _, warm = requests_for("stream", target)
    await warmed(port, pid, warm)
    first = [Client(port, request, b"event: job") for _ in range(count)]
    for start in range(0, count, CONNECT_BATCH):
        await asyncio.gather(*(client.open() for client in first[start : start + CONNECT_BATCH]))
    await settle(pid)
    rng = random.Random(24)  # the same jitter in every run
    streams = [Reconnecting(port, request, rng) for _ in range(count)]
    dropped, cpu_before = time.monotonic(), cpu_seconds(pid)
    for client in first:  # every stream dropped at once (a proxy restarting, say)
        client.writer.transport.abort()
    reconnecting = [asyncio.ensure_future(stream.reconnect()) for stream in streams]
    await asyncio.wait(reconnecting, timeout=STORM_LIMIT)
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / count
    for task in reconnecting:
        task.cancel()
    opened = [s.opened - dropped for s in streams if s.opened is not None]
    live = [s for s in streams if s.opened is not None]
    await settle(pid)
    for stream in live:
        stream.status, stream.answered = None, 0.0
    events = [asyncio.ensure_future(stream.first_event()) for stream in live]
    changed = await asyncio.to_thread(change, database, target["job_id"])
    await asyncio.wait(events, timeout=60)
    for stream in streams:
        if stream.writer is not None:
            stream.writer.close()
    return {
        "kind": "storm",
        "count": count,
        "settled_s": max(opened) if len(opened) == count else float("nan"),
        "open": len(opened),
        "p50_open_s": bench.percentile(opened, 50),
        "p99_open_s": bench.percentile(opened, 99),
        "attempts": sum(s.attempts for s in streams),
        "refused": sum(s.refused for s in streams),
        "cpu_ms": cpu_ms,
        **answer_times(live, changed),
    }


def case(kind: str, count: int, *, database: str, env: dict) -> dict:
    """One fan-out on a fresh uvicorn process serving ``database`` with ``env``."""
    started = time.monotonic()
    target = bench.tool("poll-target", env=env)
    port = bench.free_port()
    args = [bench.PY, "-m", "uvicorn", "config.asgi:application", "--port", str(port)]
    args += ["--http", "config.asgi_server:HttpToolsProtocol"]  # as docs/operations.md runs it
    args += ["--no-access-log", "--backlog", "4096", "--log-level", "warning"]
    with bench.started(args, env=env) as server:
        bench.wait_for_port(port)
        if kind == "storm":
            result = asyncio.run(reconnect_storm(count, port, server.pid, target, database))
        else:
            result = asyncio.run(fan_out(kind, count, port, server.pid, target, database))
    result["seconds"] = time.monotonic() - started
    return result


def measure(counts: list[int], kinds: list[str], *, database: str, env: dict) -> dict:
    """Every (kind, count) case on ``database`` (migrated and seeded by bench/project_tool.py
    ``seed``), served with ``env`` (``fanout_env(database)``): {"rows": [...], "nofile": N}."""
    nofile = raise_nofile()
    rows = []
    for kind in kinds:
        for count in counts:
            rows.append(case(kind, count, database=database, env=env))
            print(f"fan-out: {rows[-1]}", flush=True)
    return {"rows": rows, "nofile": nofile}


FANOUT_HEADERS = ["waiting clients", "connect s", "CPU ms/client", "p50 ms", "p99 ms"]
FANOUT_HEADERS += ["max ms", "200s", "server RSS MB", "KB/waiter"]
STORM_HEADERS = ["streams", "settled s", "CPU ms/stream", "p50 / p99 open s", "attempts"]
STORM_HEADERS += ["429s"]
STORM_HEADERS += ["change: reached", "p99 ms"]


def section(measured: dict, *, title_suffix: str = "") -> str:
    """The report's section for ``measure``'s fan-out and burst rows."""
    rows = [r for r in measured["rows"] if r["kind"] in NAMES]
    bursts = [r for r in measured["rows"] if r["kind"] == "burst"]
    text = (
        "### Fan-out: N clients waiting on one job, one change, one uvicorn process"
        f"{title_suffix}\n\n"
        "`bench/fanout.py`: raw asyncio clients in one process on loopback (RLIMIT_NOFILE "
        f"{measured['nofile']}), a fresh uvicorn process per case; time from sending the "
        "change (one autocommit UPDATE) to each client's answer (long poll: the 200; stream: "
        'the `job` event), over the clients answered 200 after the change ("early": '
        "connections that ended before it). Connect s: from the first client's connection "
        "until the server is idle with every client waiting; CPU ms/client: the server "
        "process's CPU time (user + system) over that span ÷ clients, which other work on "
        "the machine inflates less than the seconds. RSS before the clients and "
        "while all wait; KB/waiter = the difference ÷ clients."
    )
    if rows:
        text += "\n\n" + bench.table(
            FANOUT_HEADERS,
            [
                [
                    f"{r['count']:,} {NAMES[r['kind']]}",
                    f"{r['connect_s']:,.1f}",
                    f"{r['cpu_ms']:.2f}",
                    f"{r['p50']:,.0f}",
                    f"{r['p99']:,.0f}",
                    f"{r['max']:,.0f}",
                    f"{r['ok']:,}" + (f" ({r['early']} early)" if r["early"] else ""),
                    f"{r['rss_before']:.0f} → {r['rss_waiting']:.0f}",
                    f"{r['per_waiter_kb']:.1f}",
                ]
                for r in rows
            ],
        )
    if bursts:
        text += (
            f"\n\nBurst: N long polls sent at once, the job changed {BURST_CHANGE_AFTER:.0f} s "
            "after the last was sent; time from the change to each answer (the process "
            "authorizes and reads the backlog first).\n\n"
            + bench.table(
                ["long polls sent at once", "sent in s", "p50 ms", "p99 ms", "max ms", "200s"],
                [
                    [
                        f"{r['count']:,}",
                        f"{r['sent_s']:.1f}",
                        f"{r['p50']:,.0f}",
                        f"{r['p99']:,.0f}",
                        f"{r['max']:,.0f}",
                        f"{r['ok']:,}" + (f" ({r['early']} early)" if r["early"] else ""),
                    ]
                    for r in bursts
                ],
            )
        )
    return text


def storm_section(measured: dict, *, title_suffix: str = "") -> str:
    """The report's section for ``measure``'s storm rows."""
    return (
        "### Reconnect storm: N streams dropped at once, reconnecting with the TypeScript "
        f"client's backoff, one uvicorn process{title_suffix}\n\n"
        "`bench/fanout.py`: N streams (`/events`, `Last-Event-ID` current) open and idle; "
        "every connection aborted at once by the clients; each reconnects as `watchJob` "
        "does (first attempt after 1 s × [0.5, 1), each failure doubling the base up to "
        f"{MAX_BACKOFF:.0f} s, a 429 pausing for its `Retry-After`, an attempt without "
        f"headers after {CONNECT_TIMEOUT:.0f} s failed). Settled: seconds from the drop until "
        "the last stream is open again (target ≤ 30 s at 10,000); CPU ms/stream: the server "
        "process's CPU time over that span ÷ streams. Then one change: how "
        "many reopened streams it reaches, and when.\n\n"
        + bench.table(
            STORM_HEADERS,
            [
                [
                    f"{r['count']:,}",
                    f"{r['settled_s']:.1f}"
                    if r["open"] == r["count"]
                    else f"not settled in {STORM_LIMIT:.0f} s ({r['open']:,} open)",
                    f"{r['cpu_ms']:.2f}",
                    f"{r['p50_open_s']:.1f} / {r['p99_open_s']:.1f}",
                    f"{r['attempts']:,}",
                    f"{r['refused']:,}",
                    f"{r['ok']:,}",
                    f"{r['p99']:,.0f}",
                ]
                for r in measured["rows"]
                if r["kind"] == "storm"
            ],
        )
    )


def prepare(database: str, env: dict) -> None:
    """Recreate ``database``, migrate it and seed the bench tenant and user."""
    bench.recreate_database(database)
    bench.run([bench.PY, "manage.py", "migrate_schemas", "-v", "0"], env=env, timeout=900)
    bench.tool("seed", env=env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1000,3000,10000")
    parser.add_argument("--kinds", default="poll,stream,burst,storm")
    parser.add_argument("--no-append", action="store_true", help="print, do not append")
    options = parser.parse_args()
    env = fanout_env(DATABASE)
    prepare(DATABASE, env)
    info = bench.machine()
    measured = measure(
        [int(count) for count in options.counts.split(",")],
        options.kinds.split(","),
        database=DATABASE,
        env=env,
    )
    suffix = (
        f" ({info['date']}; {info['cores']} cores, {info['cpu']}, load average "
        f"{info['load']} before, {bench.load_average()} after; Python {info['python']}, "
        f"PostgreSQL {info['postgresql']}, uvicorn {info['uvicorn']})"
    )
    kinds = {row["kind"] for row in measured["rows"]}
    texts = []
    if kinds - {"storm"}:
        texts.append(section(measured, title_suffix=suffix))
    if "storm" in kinds:
        texts.append(storm_section(measured, title_suffix=suffix))
    text = "\n\n".join(texts)
    print(f"\n{text}")
    if not options.no_append:
        with (bench.BENCH / "RESULTS.md").open("a") as results:
            results.write(f"\n\n{text}\n")
        print(f"\nappended to {bench.BENCH / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
