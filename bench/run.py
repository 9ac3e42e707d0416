"""``make bench``: poll throughput with each case's round trips, the profile of a poll,
worker throughput and latency side by side with Procrastinate (its current and its best
configuration) and django-tasks-db, a raw psycopg drain, the 10k vs 1M rows comparison, the
fan-out to 1,000 / 3,000 / 10,000 waiting long polls and streams on one process, and the
cluster case. Prints the sections and appends them, as one report with the machine,
versions, load and date, to bench/RESULTS.md (``--no-append``: print only).

Uses its own databases (``bench_*``, dropped and recreated here) on BENCH_DATABASE_URL's
server (default: DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres), Redis at
REDIS_URL (default redis://127.0.0.1:6379/0) under its own key prefix, wrk for HTTP load
(installed with apt-get when missing). Load is on loopback only, every run is bounded in
time, and only processes started here are stopped, by their PID. Never run by CI.

    .venv/bin/python bench/run.py [--quick] [--no-append]
                                  [--only poll,profile,workers,scale,raw,fanout,storm,flow,cluster]

``profile`` runs bench/profile_poll.py (pyinstrument) on the seeded database; ``fanout``
calls bench/fanout.py's functions with this run's database and environment (fan-out and
burst cases), ``storm`` its reconnect storm at the largest fan-out count; ``flow`` runs
bench/flow.py's three parts (noisy neighbour, a global rate limit, the cost of limits) on
it, each reported as a part of its own. The
``cluster`` case (bench/cluster.py) runs the same measures across six hosts in network
namespaces, 1 ms apart, through PgBouncer and directly; it needs root and is left out,
saying so, without it.
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
import psycopg.conninfo
from report import Report  # bench/report.py

# Run as a script, this module is __main__; bench/fanout.py imports it as ``run``: one
# module, not a second copy with its own globals.
sys.modules.setdefault("run", sys.modules[__name__])

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DATA = ROOT / ".data" / "bench"
PY = sys.executable
LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _server_url() -> str:
    """BENCH_DATABASE_URL, DATABASE_URL, a local server, else the embedded PostgreSQL."""
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if url:
        return url
    with suppress(psycopg.OperationalError):
        psycopg.connect(LOCAL_POSTGRES, connect_timeout=2).close()
        return LOCAL_POSTGRES
    sys.path.insert(0, str(ROOT))
    from config import embedded

    return embedded.postgres_url(ROOT / ".data")


def _redis_url() -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    with suppress(OSError), socket.create_connection(("127.0.0.1", 6379), timeout=1):
        return LOCAL_REDIS
    sys.path.insert(0, str(ROOT))
    from config import embedded

    return embedded.redis_url(ROOT / ".data")


SERVER_URL = _server_url()
REDIS_URL = _redis_url()
PROJECT_DB = "bench_tenant_jobs"
PROCRASTINATE_DB = "bench_procrastinate"
TASKS_DB_DB = "bench_django_tasks_db"
PEERS = {
    "procrastinate": ["procrastinate>=3.10,<4", "psycopg[binary]>=3.2,<4"],
    "django-tasks-db": [
        "django>=6.0,<6.2",
        "django-tasks-db>=0.13,<0.14",
        "psycopg[binary]>=3.2,<4",
    ],
}


# --- plumbing ----------------------------------------------------------------------------------


def db_url(name: str) -> str:
    parts = urlsplit(SERVER_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def server() -> dict:
    """Host (a name, an address or a socket directory), port, user, password."""
    netloc = urlsplit(SERVER_URL).netloc
    credentials, _, location = netloc.rpartition("@")
    user, _, password = credentials.partition(":")
    host, _, port = unquote(location).rpartition(":") if ":" in location else (location, "", "")
    return {
        "host": unquote(host) or "127.0.0.1",
        "port": port or "5432",
        "user": unquote(user) or "postgres",
        "password": unquote(password),
    }


def conninfo(name: str) -> str:
    fields = {**server(), "dbname": name}
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in fields.items() if v})


def recreate_database(name: str) -> None:
    assert name.startswith("bench_"), name  # only our own databases
    with psycopg.connect(conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def sql(name: str, statement: str, params=None):
    with psycopg.connect(conninfo(name), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def project_env(*, database: str | None = None, **extra) -> dict:
    """The project's environment on ``database`` (default PROJECT_DB), a fresh cache prefix."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=db_url(database or PROJECT_DB),
        REDIS_URL=REDIS_URL,
        CACHE_KEY_PREFIX=f"bench-{uuid.uuid4().hex[:8]}",
        SECRET_KEY="bench-secret-key-not-for-production-use-0123456789",  # noqa: S106
        JWT_ACCESS_TOKEN_SECONDS="86400",  # noqa: S106 - a lifetime, not a secret
        # Set here, not left to the defaults, so the poll's peer (bench/peers/drf_poll)
        # verifies the project's tokens with the same values.
        JWT_ISSUER="tenant-jobs-bench",
        JWT_AUDIENCE="tenant-jobs-bench-api",
        JOBS_API_RATE="1000000000/m",  # the limiter runs; the benchmark must not hit it
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


ENV = project_env()


def run(args, *, env=None, timeout=600, cwd=ROOT) -> str:
    done = subprocess.run(
        args,
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def tool(*args, env=None) -> dict:
    output = run([PY, str(BENCH / "project_tool.py"), *map(str, args)], env=env)
    return json.loads(output.splitlines()[-1])


@contextmanager
def started(args, *, env=None, cwd=ROOT):
    """A child process for the block; stopped by its PID (SIGTERM, then SIGKILL)."""
    process = subprocess.Popen(
        args, cwd=cwd, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# --- machine -------------------------------------------------------------------------------------


def machine() -> dict:
    model = platform.processor() or "unknown"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    pg = sql(PROJECT_DB if database_exists(PROJECT_DB) else "postgres", "SHOW server_version")
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": model,
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg[0][0],
        "django": version("django"),
        "gunicorn": version("gunicorn"),
        "uvicorn": version("uvicorn"),
        "wrk": (wrk.stdout + wrk.stderr).split("\n")[0].strip(),
        "load": load_average(),
    }


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min) / {five:.1f} (5 min)"


def database_exists(name: str) -> bool:
    rows = sql("postgres", "SELECT 1 FROM pg_database WHERE datname = %s", [name])
    return bool(rows)


# --- HTTP polls ----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, headers: dict[str, str], *, seconds: int, connections: int) -> dict:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    latencies = {}
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        latencies[pct] = float(match[1]) * _UNITS[match[2]]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    return {
        "rps": rps,
        "p50_ms": latencies["50"],
        "p99_ms": latencies["99"],
        "bad": int(non_2xx[1]) if non_2xx else 0,
        "socket_errors": errors[0] if errors else "",
    }


def gunicorn(app: str, port: int, workers: int):
    return started(
        [
            PY,
            "-m",
            "gunicorn",
            app,
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
        ]
    )


def workers_cpu_seconds(master_pid: int) -> float:
    """User + system CPU seconds used so far by the gunicorn workers of ``master_pid``."""
    tick = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    total = 0
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


# The polled jobs: a pending one (queued, no worker), whose 304 reads the row, and a
# running one, whose 304 a web process answers from its ETag copy (jobs.api.etags).
POLL_TARGETS = (("pending", ""), ("processing", ", running job"))


DRF_PEER = "the same poll by hand in DRF (peer, pending job)"


def poll_bench(seconds: int, workers: int, connections: int, label: str) -> list[dict]:
    """Requests/s and latency of the bare view, then the full poll and the 304 path of a
    pending and of a running job, then the pending job's poll as written by hand in DRF."""
    targets = {status: tool("poll-target", status) for status, _ in POLL_TARGETS}
    results = []
    port = free_port()
    cases = [("bare Django JSON view (ceiling)", "bench.bare_app:application", {}, None)]
    for status, suffix in POLL_TARGETS:
        target = targets[status]
        auth = {"Host": target["host"], "Authorization": f"Bearer {target['token']}"}
        cases += [
            (f"full poll, 200{suffix}", "config.wsgi:application", auth, target),
            (
                f"conditional poll, 304{suffix}",
                "config.wsgi:application",
                {**auth, "If-None-Match": target["etag"]},
                target,
            ),
        ]
    pending = targets["pending"]
    cases.append(
        (
            DRF_PEER,
            "bench.peers.drf_poll.wsgi:application",
            {"Authorization": f"Bearer {pending['token']}"},
            pending,
        )
    )
    for name, app, headers, target in cases:
        with gunicorn(app, port, workers) as master:
            wait_for_port(port)
            job_id = target["job_id"] if target else targets["pending"]["job_id"]
            url = f"http://127.0.0.1:{port}/api/jobs/{job_id}"
            wrk(url, headers, seconds=2, connections=connections)  # warm every worker
            cpu = workers_cpu_seconds(master.pid)
            measured = wrk(url, headers, seconds=seconds, connections=connections)
            cpu = workers_cpu_seconds(master.pid) - cpu
        # CPU per request of the server's processes: unlike req/s, barely moved by other
        # work on the machine, so the cost ratio between cases stays readable under load.
        measured["cpu_ms"] = cpu * 1000 / (measured["rps"] * seconds)
        measured["case"] = name
        measured["rows"] = label
        results.append(measured)
    results[0]["trips"] = "0 / 0"
    remaining = iter(results[1:])
    for status, _ in POLL_TARGETS:
        target = targets[status]
        trips = tool("round-trips", target["job_id"], target["etag"], target["token"])
        for case in ("200", "304"):
            assert trips[case]["status"] == int(case), trips
            next(remaining)["trips"] = f"{trips[case]['redis']} / {trips[case]['postgres']}"
    next(remaining)["trips"] = "not counted"
    return results


# --- workers ---------------------------------------------------------------------------


def project_drain(count: int, processes: int, concurrency: int) -> dict:
    sql(PROJECT_DB, 'DELETE FROM job_queue WHERE payload = \'{"bench": "drain"}\'')
    tool("fill", count)
    workers = [
        subprocess.Popen(
            [PY, "manage.py", "run_worker", "--burst", "--concurrency", str(concurrency)],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(processes)
    ]
    for worker in workers:
        worker.wait(timeout=600)
    ((done, first, last),) = sql(
        PROJECT_DB,
        """SELECT count(*) FILTER (WHERE status = 'completed'), min(started_at),
                  max(completed_at)
           FROM job_queue WHERE payload = '{"bench": "drain"}'""",
    )
    return {"jobs": done, "jobs_per_s": done / (last - first).total_seconds()}


def project_latency(count: int, spacing: float) -> dict:
    sql(PROJECT_DB, 'DELETE FROM job_queue WHERE payload = \'{"bench": "latency"}\'')
    with started([PY, "manage.py", "run_worker", "--concurrency", "4"]):
        time.sleep(3)  # the worker is up and idle, LISTENing
        tool("latency", count, spacing)
        time.sleep(2)
    rows = sql(
        PROJECT_DB,
        """SELECT extract(epoch FROM started_at - created_at) * 1000 FROM job_queue
           WHERE payload = '{"bench": "latency"}' AND started_at IS NOT NULL""",
    )
    return latency_summary([float(row[0]) for row in rows], count)


def latency_summary(values: list[float], expected: int) -> dict:
    return {
        "samples": f"{len(values)}/{expected}",
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
    }


def peer_python(name: str) -> str:
    venv = DATA / f"venv-{name}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEERS[name]], check=True)
    return str(python)


def procrastinate_bench(
    count: int, latency_count: int, spacing: float, concurrency: int, task: str
) -> dict:
    """Drain and latency of Procrastinate with no-op ``task``: ``noop`` (sync) or
    ``noop_async`` (``async def``, its documented style and its best configuration)."""
    python = peer_python("procrastinate")
    script = str(BENCH / "peers" / "procrastinate_bench.py")
    info = conninfo(PROCRASTINATE_DB)
    results = {}
    for processes in (1, 2):
        recreate_database(PROCRASTINATE_DB)
        run([python, script, info, "setup"])
        run([python, script, info, "defer", str(count), task])
        workers = [
            subprocess.Popen(
                [python, script, info, "worker", str(concurrency)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(processes)
        ]
        for worker in workers:
            worker.wait(timeout=900)
        ((done, first, last),) = sql(
            PROCRASTINATE_DB,
            """SELECT count(*) FILTER (WHERE type = 'succeeded'),
                      min(at) FILTER (WHERE type = 'started'),
                      max(at) FILTER (WHERE type = 'succeeded')
               FROM procrastinate_events""",
        )
        results[f"throughput_{processes}"] = done / (last - first).total_seconds()
    recreate_database(PROCRASTINATE_DB)
    run([python, script, info, "setup"])
    with started([python, "-c", _PROCRASTINATE_IDLE_WORKER, script, info, str(concurrency)]):
        time.sleep(3)
        run([python, script, info, "latency", str(latency_count), str(spacing), task])
        time.sleep(2)
    rows = sql(
        PROCRASTINATE_DB,
        """SELECT extract(epoch FROM s.at - d.at) * 1000 FROM procrastinate_events d
           JOIN procrastinate_events s ON s.job_id = d.job_id AND s.type = 'started'
           WHERE d.type = 'deferred'""",
    )
    results["latency"] = latency_summary([float(row[0]) for row in rows], latency_count)
    return results


# An idle Procrastinate worker (wait=True: LISTEN/NOTIFY, as its docs recommend).
_PROCRASTINATE_IDLE_WORKER = """
import runpy, sys
script, info, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.argv = [script, info, "noop"]
module = runpy.run_path(script)
app = module["app"]
with app.open():
    app.run_worker(wait=True, concurrency=concurrency)
"""


def tasks_db_bench(count: int, latency_count: int, spacing: float) -> dict:
    python = peer_python("django-tasks-db")
    script = str(BENCH / "peers" / "django_tasks_db_bench.py")
    where = server()
    env = {
        **os.environ,
        "PGHOST": where["host"],
        "PGPORT": where["port"],
        "PGUSER": where["user"],
        "PGPASSWORD": where["password"],
    }
    results = {}
    for processes in (1, 2):
        recreate_database(TASKS_DB_DB)
        run([python, script, TASKS_DB_DB, "migrate"], env=env)
        run([python, script, TASKS_DB_DB, "enqueue", str(count)], env=env, timeout=900)
        workers = [
            subprocess.Popen(
                [
                    python,
                    script,
                    TASKS_DB_DB,
                    "db_worker",
                    "--batch",
                    "--no-startup-delay",
                    "--interval",
                    "0.1",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(processes)
        ]
        for worker in workers:
            worker.wait(timeout=900)
        ((done, first, last),) = sql(
            TASKS_DB_DB,
            """SELECT count(*) FILTER (WHERE status = 'SUCCESSFUL'), min(started_at),
                      max(finished_at) FROM django_tasks_database_dbtaskresult""",
        )
        results[f"throughput_{processes}"] = done / (last - first).total_seconds()
    recreate_database(TASKS_DB_DB)
    run([python, script, TASKS_DB_DB, "migrate"], env=env)
    # The default worker settings (a 1 s polling interval): what a user gets.
    with started([python, script, TASKS_DB_DB, "db_worker", "--no-startup-delay"], env=env):
        time.sleep(3)
        run([python, script, TASKS_DB_DB, "latency", str(latency_count), str(spacing)], env=env)
        time.sleep(3)
    rows = sql(
        TASKS_DB_DB,
        """SELECT extract(epoch FROM started_at - enqueued_at) * 1000
           FROM django_tasks_database_dbtaskresult WHERE started_at IS NOT NULL""",
    )
    results["latency"] = latency_summary([float(row[0]) for row in rows], latency_count)
    return results


# --- the physical limit: a raw psycopg drain ----------------------------------------------------

_RAW_CLAIM = """
WITH runnable AS (
    SELECT id FROM job_queue
    WHERE status = 'pending' AND run_at <= now() AND queue = 'default'
    ORDER BY priority DESC, run_at, created_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
UPDATE job_queue AS job
SET status = 'processing', worker_id = 'raw', attempts = job.attempts + 1,
    started_at = now(), updated_at = now(), lease_expires_at = now() + interval '30 seconds'
FROM runnable WHERE job.id = runnable.id
RETURNING job.id
"""
_RAW_COMPLETE = """
UPDATE job_queue SET status = 'completed', result = '{}'::jsonb, completed_at = now(),
    updated_at = now(), lease_expires_at = NULL, progress = 100
WHERE id = ANY(%s) AND status = 'processing' AND worker_id = 'raw'
"""


def raw_worker(batch: int) -> None:
    """One process of the raw drain: claim ``batch`` rows per transaction, complete them in
    a second transaction (the same two writes per job as a real worker), until empty."""
    with psycopg.connect(conninfo(PROJECT_DB), autocommit=True) as conn:
        while True:
            with conn.transaction():
                ids = [row[0] for row in conn.execute(_RAW_CLAIM, [batch]).fetchall()]
            if not ids:
                return
            with conn.transaction():
                conn.execute(_RAW_COMPLETE, [ids])


def raw_drain(count: int, processes: int, batch: int) -> dict:
    sql(PROJECT_DB, 'DELETE FROM job_queue WHERE payload = \'{"bench": "drain"}\'')
    tool("fill", count)
    workers = [
        subprocess.Popen([PY, __file__, "--raw-worker", str(batch)]) for _ in range(processes)
    ]
    for worker in workers:
        worker.wait(timeout=600)
    ((done, first, last),) = sql(
        PROJECT_DB,
        """SELECT count(*) FILTER (WHERE status = 'completed'), min(started_at),
                  max(completed_at) FROM job_queue WHERE payload = '{"bench": "drain"}'""",
    )
    return {"jobs": done, "jobs_per_s": done / (last - first).total_seconds()}


# --- report --------------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list]) -> str:
    def cell(value):
        return f"{value:,.1f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


PROFILE_MIN_PERCENT = 5  # frames kept in the report's call trees, % of the case's time
PROFILE_LINES = 30  # at most, per tree


def profile_section(count: int, rows: str) -> str:
    """bench/profile_poll.py on the seeded database, as a section (its whole output also goes
    to the console)."""
    target = tool("poll-target")
    output = run(
        [PY, str(BENCH / "profile_poll.py"), target["job_id"], target["etag"], target["token"],
         str(count), "--min-percent", str(PROFILE_MIN_PERCENT), "--project-only"],
        timeout=900,
    )  # fmt: skip
    print(output, flush=True)
    return profile_summary(output, count, rows)


def profile_summary(output: str, count: int, rows: str) -> str:
    """µs per request of the 200 and 304 cases and each call tree from its root frame on
    (pyinstrument's preamble left out), at most PROFILE_LINES lines."""
    cases = re.findall(
        r"^#### (.+?): ([\d,]+) µs per request, CPU ([\d,]+) µs[^\n]*\n\n```\n(.*?)\n```",
        output,
        re.M | re.S,
    )
    if len(cases) != 2:
        raise RuntimeError(f"unexpected profile_poll.py output:\n{output[-3000:]}")
    trees = []
    for name, _, _, tree in cases:
        lines = tree.splitlines()
        start = next((i for i, line in enumerate(lines) if re.match(r"\s*[\d.]+%\s", line)), 0)
        lines = lines[start:]
        kept = lines[:PROFILE_LINES]
        if len(lines) > PROFILE_LINES:
            kept.append(f"… {len(lines) - PROFILE_LINES} more lines")
        trees.append(f"#### {name}\n\n```\n" + "\n".join(kept) + "\n```")
    return (
        f"### Profile of a warm poll (pyinstrument, `bench/profile_poll.py`: {count:,} polls "
        "per case through Django's WSGI handler in one process, real PostgreSQL and Redis; "
        f"{rows} rows in job_queue)\n\n"
        + table(
            ["case", "µs per request (wall)", "CPU µs per request"],
            [[name, wall, cpu] for name, wall, cpu, _ in cases],
        )
        + "\n\nBoth under the profiler (a sample every 0.2 ms), so above the unprofiled cost; "
        "CPU is this process's only (PostgreSQL and Redis not included). Call trees: share of "
        "the case's total time, inclusive, of the project's own frames of at least "
        f"{PROFILE_MIN_PERCENT}% (`--project-only`: Django, DRF, psycopg, redis-py and the "
        "standard library taken out, their children moved up); `[self]` is the time spent "
        "directly under that frame in library code (for `job_poll_get`: the `RawQuerySet` "
        "machinery around its query; under `serve`: Django's handler outside the middleware). "
        "The whole tree: `bench/profile_poll.py JOB_ID ETAG TOKEN` (bench/README.md).\n\n"
        + "\n\n".join(trees)
    )


def cluster_section(seconds: int, drain: int, latency_count: int, spacing: float) -> str:
    """The cluster case (bench/cluster.py) as a section, or why it did not run."""
    title = "### Across hosts: six network namespaces, 1 ms between hosts (bench/cluster.py)"
    if os.geteuid() != 0:
        return f"{title}\n\nNot run: it makes network namespaces, which needs root."
    import cluster  # bench/cluster.py

    results = cluster.measure(
        seconds=seconds, drain=drain, latency=latency_count, spacing=spacing,
        wrk=wrk, summary=latency_summary,
    )  # fmt: skip
    rows = []
    for label, result in results.items():
        for case, name in (("200", "full poll, 200"), ("304", "conditional poll, 304")):
            poll = result["polls"][case]
            rows.append(
                [f"{name}, {label}", poll["rps"], poll["p50_ms"], poll["p99_ms"], poll["trips"]]
            )
    latency_rows = [
        [label, r["latency"]["p50_ms"], r["latency"]["p95_ms"], r["latency"]["p99_ms"],
         r["latency"]["samples"], r["drain"]]
        for label, r in results.items()
    ]  # fmt: skip
    return (
        f"{title}\n\n"
        + table(
            [
                "poll (gunicorn on web1, 4 sync workers; wrk -t1 -c16 from the client)",
                "req/s",
                "p50 ms",
                "p99 ms",
                "round trips Redis / PostgreSQL",
            ],
            rows,
        )
        + "\n\n"
        + table(
            [
                "DATABASE_URL",
                "enqueue→start p50 ms",
                "p95 ms",
                "p99 ms",
                "started",
                f"drain jobs/s, {drain:,} no-op jobs, 2 worker hosts × --concurrency 4",
            ],
            latency_rows,
        )
        + "\n\nEvery frame between two hosts crosses a userspace switch (tests/cluster/"
        "switch.py) that adds 1 ms and runs on the same cores: a request to PostgreSQL or "
        "Redis costs at least 2 ms more than on loopback. Latency: jobs enqueued from web1 "
        f"through job_enqueue, {int(spacing * 1000)} ms apart, to idle workers on both "
        "worker hosts, which LISTEN on DATABASE_DIRECT_URL in both cases."
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter runs, 100k rows not 1M")
    parser.add_argument(
        "--only", default="poll,profile,workers,scale,raw,fanout,storm,flow,cluster"
    )
    parser.add_argument("--no-append", action="store_true", help="print the report only")
    parser.add_argument(
        "--results", type=Path, default=BENCH / "RESULTS.md", help="the file to append to"
    )
    parser.add_argument("--raw-worker", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.raw_worker:
        raw_worker(options.raw_worker)
        return

    parts = set(options.only.split(","))
    seconds = 5 if options.quick else 10
    drain = 2000 if options.quick else 5000
    big = 100_000 if options.quick else 1_000_000
    latency_count, spacing = (100, 0.02) if options.quick else (300, 0.02)
    fanout_counts = [300, 1000] if options.quick else [1000, 3000, 10000]
    profile_count = 300 if options.quick else 2000
    gunicorn_workers, wrk_connections, concurrency = 4, 16, 4
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)

    started_at = time.monotonic()
    report = Report(None if options.no_append else options.results)
    recreate_database(PROJECT_DB)
    run([PY, "manage.py", "migrate_schemas", "-v", "0"], timeout=900)
    tool("seed")
    tool("rows", 10_000)
    # What later parts compare with or state: the 10k-row polls and drains, the rows now.
    measured = {"rows": "10k"}
    info = machine()
    report.durations["set-up"] = time.monotonic() - started_at

    print(f"machine: {info}", flush=True)
    report.write(
        f"## Run of {info['date']}{' (--quick)' if options.quick else ''}\n\n"
        f"Machine: {info['cores']} cores, {info['cpu']}; {info['os']}. "
        f"PostgreSQL {info['postgresql']}, Python {info['python']}, Django {info['django']}, "
        f"gunicorn {info['gunicorn']}, uvicorn {info['uvicorn']}, {info['wrk']}. "
        f"Load generator, servers, workers, PostgreSQL and Redis share these cores. "
        f"Load average before the run {info['load']}: anything above ~1 is other work on the "
        "machine competing with the benchmark. Each part below was written when it ended; the "
        "run's last line gives the load after it and each part's time."
    )

    def poll_part() -> str | None:
        poll_small = measured["poll"] = poll_bench(
            seconds, gunicorn_workers, wrk_connections, "10k"
        )
        if "poll" not in parts:
            return None  # measured for "scale" only
        ceiling = poll_small[0]["rps"]
        ceiling_cpu = poll_small[0]["cpu_ms"]
        rows = [
            [
                r["case"],
                r["rps"],
                r["rps"] / ceiling * 100,
                r["cpu_ms"],
                ceiling_cpu / r["cpu_ms"] * 100,
                r["trips"],
                r["p50_ms"],
                r["p99_ms"],
                r["bad"],
            ]
            for r in poll_small
        ]
        peer = next(r for r in poll_small if r["case"] == DRF_PEER)
        ours = poll_small[1]  # the full poll of the same pending job
        headers = ["case", "req/s", "% of ceiling", "server CPU ms/req", "CPU: % of ceiling"]
        headers.append("round trips Redis / PostgreSQL")
        return (
            f"### Poll throughput (gunicorn, {gunicorn_workers} sync workers; wrk -t1 "
            f"-c{wrk_connections} -d{seconds}s on loopback; 10k rows)\n\n"
            + table([*headers, "p50 ms", "p99 ms", "non-2xx/3xx"], rows)
            + f"\n\nThis project's full poll ÷ the hand-written DRF poll: "
            f"{ours['rps'] / peer['rps']:.2f}× in req/s, {peer['cpu_ms'] / ours['cpu_ms']:.2f}× in "
            "server CPU (target ≥ 3.5×). The peer (`bench/peers/drf_poll`): simplejwt's "
            "`JWTAuthentication`, a `RetrieveAPIView` over the user's tenant's jobs, a "
            "`ModelSerializer`, two middlewares, persistent connections; no row security, "
            "ETag, rate limit, log line or metric."
            + "\n\nTargets (issue 24): full poll ≥ 35% of the ceiling, 304 path ≥ 50%. A "
            "pending job's 304 reads its row; a running job's is answered from the web "
            "process's ETag copy (`jobs.api.etags`). Round trips per "
            "warm request, counted at the protocol level (PQtrace, redis-py's socket writes) "
            "with BEGIN and COMMIT; budget 1 / 3. Server CPU: user + system time of the "
            "gunicorn workers during the run ÷ requests answered (PostgreSQL and Redis not "
            "included); its '% of ceiling' is the throughput share the Python cost alone allows."
        )

    def workers_part() -> str | None:
        ours = measured["drains"] = {p: project_drain(drain, p, concurrency) for p in (1, 2)}
        if "workers" not in parts:
            return None  # measured for "scale" only
        ours_latency = project_latency(latency_count, spacing)
        pro = procrastinate_bench(drain, latency_count, spacing, concurrency, "noop")
        pro_async = procrastinate_bench(drain, latency_count, spacing, concurrency, "noop_async")
        tdb = tasks_db_bench(drain, latency_count, spacing)
        raw = {(p, b): raw_drain(drain, p, b) for p in (1, 2) for b in (1, 50)}
        # What the job_changed trigger (long polling) costs a drain: the best case without it.
        sql(PROJECT_DB, "ALTER TABLE job_queue DISABLE TRIGGER job_queue_changed")
        try:
            untriggered = raw_drain(drain, 2, 50)
        finally:
            sql(PROJECT_DB, "ALTER TABLE job_queue ENABLE TRIGGER job_queue_changed")
        raw_best = max(r["jobs_per_s"] for r in raw.values())
        rows = [
            [
                "this project (run_worker)",
                ours[1]["jobs_per_s"],
                ours[2]["jobs_per_s"],
                ours_latency["p50_ms"],
                ours_latency["p95_ms"],
                ours_latency["p99_ms"],
                ours_latency["samples"],
            ],
            *(
                [
                    name,
                    result["throughput_1"],
                    result["throughput_2"],
                    result["latency"]["p50_ms"],
                    result["latency"]["p95_ms"],
                    result["latency"]["p99_ms"],
                    result["latency"]["samples"],
                ]
                for name, result in (
                    ("Procrastinate, sync no-op task", pro),
                    ("Procrastinate, `async def` no-op task (its best)", pro_async),
                )
            ),
            [
                "django-tasks-db",
                tdb["throughput_1"],
                tdb["throughput_2"],
                tdb["latency"]["p50_ms"],
                tdb["latency"]["p95_ms"],
                tdb["latency"]["p99_ms"],
                tdb["latency"]["samples"],
            ],
        ]
        raw_rows = [
            [f"raw psycopg, {b} per transaction, {p} process(es)", r["jobs_per_s"]]
            for (p, b), r in raw.items()
        ]
        raw_rows.append(
            [
                "raw psycopg, 50 per transaction, 2 processes, job_changed trigger off",
                untriggered["jobs_per_s"],
            ]
        )
        best_ours = max(ours[1]["jobs_per_s"], ours[2]["jobs_per_s"])
        best_pro = max(
            result[key] for result in (pro, pro_async) for key in ("throughput_1", "throughput_2")
        )
        return (
            f"### Workers: {drain:,} no-op jobs drained; enqueue→start latency on an idle "
            f"worker ({latency_count} jobs, {int(spacing * 1000)} ms apart)\n\n"
            + table(
                [
                    "queue",
                    "jobs/s, 1 process",
                    "jobs/s, 2 processes",
                    "latency p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "started",
                ],
                rows,
            )
            + "\n\n"
            + table(["physical limit (same table, same two writes per job)", "jobs/s"], raw_rows)
            + f"\n\nRatios: this project / Procrastinate = {best_ours / best_pro:.2f}× "
            f"(target ≥ 3×); this project / best raw loop = {best_ours / raw_best * 100:.0f}% "
            f"(target ≥ 25%); enqueue→start p99 = {ours_latency['p99_ms']:.1f} ms "
            f"(target ≤ 10 ms). Worker settings: this project `--concurrency {concurrency}`, "
            f"Procrastinate `concurrency={concurrency}`, django-tasks-db `db_worker` "
            "(one thread; `--interval 0.1` for the drain, its default 1 s for latency)."
        )

    def scale_part() -> str:
        if "poll" not in measured or "drains" not in measured:
            raise RuntimeError("it compares with the 10k-row poll and workers parts, which failed")
        poll_small, ours = measured["poll"], measured["drains"]
        tool("rows", big - 10_000)
        measured["rows"] = f"{big:,}"
        sql(PROJECT_DB, "VACUUM ANALYZE job_queue")
        poll_big = poll_bench(seconds, gunicorn_workers, wrk_connections, f"{big:,}")
        ours_big = project_drain(drain, 1, concurrency)
        rows = []
        # The bare view (no database) is the control: it moves only with the machine's load.
        for small, large in zip(poll_small, poll_big, strict=True):
            rows.append(
                [small["case"] + ": req/s", small["rps"], large["rps"], small["rps"] / large["rps"]]
            )
            rows.append(
                [
                    small["case"] + ": p50 ms",
                    small["p50_ms"],
                    large["p50_ms"],
                    large["p50_ms"] / small["p50_ms"],
                ]
            )
            rows.append(
                [
                    small["case"] + ": p99 ms",
                    small["p99_ms"],
                    large["p99_ms"],
                    large["p99_ms"] / small["p99_ms"],
                ]
            )
        rows.append(
            [
                "claim/drain, 1 worker process: jobs/s",
                ours[1]["jobs_per_s"],
                ours_big["jobs_per_s"],
                ours[1]["jobs_per_s"] / ours_big["jobs_per_s"],
            ]
        )
        return (
            f"### 10k vs {big:,} rows in job_queue (finished jobs over 100 tenants, "
            "generated with one INSERT … SELECT generate_series)\n\n"
            + table(["measure", "10k rows", f"{big:,} rows", "cost ratio (target ≤ 1.3)"], rows)
        )

    def fanout_part() -> str:
        import fanout  # bench/fanout.py

        # On this run's database (migrated, seeded), with the fan-out's settings.
        result = fanout.measure(
            fanout_counts,
            ["poll", "stream", "burst"],
            database=PROJECT_DB,
            env=fanout.fanout_env(PROJECT_DB),
        )
        return (
            fanout.section(result, title_suffix=f" ({measured['rows']} rows in job_queue)")
            + "\n\nSeconds per case (connecting, settling, answering): "
            + ", ".join(f"{r['count']:,} {r['kind']} {r['seconds']:.0f}" for r in result["rows"])
            + "."
        )

    def storm_part() -> str:
        import fanout  # bench/fanout.py

        result = fanout.measure(
            fanout_counts[-1:],
            ["storm"],
            database=PROJECT_DB,
            env=fanout.fanout_env(PROJECT_DB),
        )
        return fanout.storm_section(result, title_suffix=f" ({measured['rows']} rows)")

    if "poll" in parts or "scale" in parts:
        report.part("poll", poll_part)
    if "profile" in parts:
        report.part("profile", lambda: profile_section(profile_count, measured["rows"]))
    if "workers" in parts or "scale" in parts:
        report.part("workers", workers_part)
    if "scale" in parts:
        report.part("scale", scale_part)
    if "fanout" in parts:
        report.part("fanout", fanout_part)
    if "storm" in parts:
        report.part("storm", storm_part)
    if "flow" in parts:
        import flow  # bench/flow.py

        for name, measure in flow.parts(PROJECT_DB, flow.QUICK if options.quick else flow.FULL):
            report.part(name, measure)
    if "cluster" in parts:
        report.part("cluster", lambda: cluster_section(seconds, drain, latency_count, spacing))

    failed = f" Failed: {', '.join(report.failed)}." if report.failed else ""
    report.write(
        f"Run ended: total time {time.monotonic() - started_at:.0f} s ("
        + ", ".join(f"{part} {taken:.0f} s" for part, taken in report.durations.items())
        + f"); load average after it {load_average()}.{failed}"
    )
    if report.path is None:
        print("\n--no-append: printed only, not appended")
    else:
        print(f"\nappended to {report.path}")
    if report.failed:
        sys.exit(f"bench: failed parts: {', '.join(report.failed)} (the others are reported)")


if __name__ == "__main__":
    main()
