"""Fan-out: N clients wait on one job in ONE uvicorn process (long polls ``?wait=`` with a
current ``If-None-Match``, or ``/events`` streams with ``Last-Event-ID`` at the current
ETag); then the job changes once. Measured: time from sending the change (one autocommit
UPDATE) until each client has its answer (long poll: the whole response; stream: the
``job`` event), p50 / p99 / max, and the server's RSS before the clients and while they all
wait.

``make bench`` runs it as its ``fanout`` part (bench/run.py calls ``measure`` and
``section`` with its own database and environment). Standalone, it uses its own database
(``bench_fanout``, recreated) on bench/run.py's server and appends its section to
bench/RESULTS.md unless ``--no-append``. Clients are raw asyncio sockets in the calling
process (RLIMIT_NOFILE raised within the hard limit); only processes started here are
stopped, by their PID.

    .venv/bin/python bench/fanout.py [--counts 1000,3000,10000] [--kinds poll,stream]
                                     [--no-append]
"""

import argparse
import asyncio
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


async def fan_out(kind: str, count: int, port: int, pid: int, target: dict, database: str):
    path = f"/api/jobs/{target['job_id']}"
    headers = f"Host: {target['host']}\r\nAuthorization: Bearer {target['token']}\r\n"
    if kind == "poll":
        line = f"GET {path}?wait=590 HTTP/1.1\r\nIf-None-Match: {target['etag']}\r\n"
        marker = b"\r\n\r\n{"  # the 200's body: the job's JSON
    else:
        line = f"GET {path}/events HTTP/1.1\r\nLast-Event-ID: {target['etag']}\r\n"
        marker = b"event: job"
    request = (line + headers + "\r\n").encode()
    warm = Client(port, f"GET {path} HTTP/1.1\r\n{headers}\r\n".encode(), b"}")
    await warm.open()
    await warm.wait()  # the chain, the listener and the hub exist before measuring
    await settle(pid)
    rss_before = rss_mb(pid)
    clients = [Client(port, request, marker) for _ in range(count)]
    for start in range(0, count, CONNECT_BATCH):
        await asyncio.gather(*(client.open() for client in clients[start : start + CONNECT_BATCH]))
    waits = [asyncio.ensure_future(client.wait()) for client in clients]
    await settle(pid)
    rss_waiting = rss_mb(pid)
    early = sum(1 for task in waits if task.done())
    with psycopg.connect(bench.conninfo(database), autocommit=True) as conn:
        changed = time.monotonic()
        conn.execute(
            "UPDATE job_queue SET status = 'processing', attempts = 1, worker_id = 'bench'"
            " WHERE id = %s",
            [target["job_id"]],
        )
    await asyncio.gather(*waits)
    answered = [c for c in clients if c.status == 200 and c.answered >= changed]
    times = [(client.answered - changed) * 1000 for client in answered]
    return {
        "kind": kind,
        "count": count,
        "ok": len(answered),
        "early": early,
        "p50": bench.percentile(times, 50),
        "p99": bench.percentile(times, 99),
        "max": max(times, default=float("nan")),
        "rss_before": rss_before,
        "rss_waiting": rss_waiting,
        "per_waiter_kb": (rss_waiting - rss_before) * 1024 / count,
    }


def case(kind: str, count: int, *, database: str, env: dict) -> dict:
    """One fan-out on a fresh uvicorn process serving ``database`` with ``env``."""
    started = time.monotonic()
    target = bench.tool("poll-target", env=env)
    port = bench.free_port()
    args = [bench.PY, "-m", "uvicorn", "config.asgi:application", "--port", str(port)]
    args += ["--http", "config.asgi_server:H11Protocol"]  # as docs/operations.md runs it
    args += ["--no-access-log", "--backlog", "4096", "--log-level", "warning"]
    with bench.started(args, env=env) as server:
        bench.wait_for_port(port)
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


def section(measured: dict, *, title_suffix: str = "") -> str:
    """The report's section for ``measure``'s result."""
    table = bench.table(
        ["waiting clients", "p50 ms", "p99 ms", "max ms", "200s", "server RSS MB", "KB/waiter"],
        [
            [
                f"{r['count']:,} {NAMES[r['kind']]}",
                f"{r['p50']:,.0f}",
                f"{r['p99']:,.0f}",
                f"{r['max']:,.0f}",
                f"{r['ok']:,}" + (f" ({r['early']} early)" if r["early"] else ""),
                f"{r['rss_before']:.0f} → {r['rss_waiting']:.0f}",
                f"{r['per_waiter_kb']:.1f}",
            ]
            for r in measured["rows"]
        ],
    )
    return (
        "### Fan-out: N clients waiting on one job, one change, one uvicorn process"
        f"{title_suffix}\n\n"
        "`bench/fanout.py`: raw asyncio clients in one process on loopback (RLIMIT_NOFILE "
        f"{measured['nofile']}), a fresh uvicorn process per case; time from sending the "
        "change (one autocommit UPDATE) to each client's answer (long poll: the 200; stream: "
        'the `job` event), over the clients answered 200 after the change ("early": '
        "connections that ended before it). RSS before the clients and while all wait; "
        "KB/waiter = the difference ÷ clients.\n\n"
        f"{table}"
    )


def prepare(database: str, env: dict) -> None:
    """Recreate ``database``, migrate it and seed the bench tenant and user."""
    bench.recreate_database(database)
    bench.run([bench.PY, "manage.py", "migrate_schemas", "-v", "0"], env=env, timeout=900)
    bench.tool("seed", env=env)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1000,3000,10000")
    parser.add_argument("--kinds", default="poll,stream")
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
    text = section(
        measured,
        title_suffix=(
            f" ({info['date']}; {info['cores']} cores, {info['cpu']}, load average "
            f"{info['load']} before, {bench.load_average()} after; Python {info['python']}, "
            f"PostgreSQL {info['postgresql']}, uvicorn {info['uvicorn']})"
        ),
    )
    print(f"\n{text}")
    if not options.no_append:
        with (bench.BENCH / "RESULTS.md").open("a") as results:
            results.write(f"\n\n{text}\n")
        print(f"\nappended to {bench.BENCH / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
