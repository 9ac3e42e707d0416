"""The ``cluster`` case of ``make bench`` (root only): the six hosts of the cluster test
(tests/cluster/stack.py: database + PgBouncer, Redis, two web hosts, two worker hosts, the
load generator in the root namespace, 1 ms added to every frame between hosts), measured
once with ``DATABASE_URL`` through PgBouncer (transaction mode) and once directly.

- polls: gunicorn on web1 (4 sync workers), ``wrk`` from the client; the 200 and 304 cases,
  with the round trips of one warm poll counted in a process on web1 (bench/project_tool.py);
- enqueue→start latency: idle ``run_worker`` on both worker hosts (LISTEN directly), jobs
  enqueued from web1 through ``job_enqueue``; ``started_at − created_at``, PostgreSQL clocks;
- drain: no-op jobs inserted in one statement, drained by ``run_worker --burst`` on both
  worker hosts; completed ÷ (last completion − first start).

The switch that adds the delay is a Python process on the same cores (tests/cluster/
switch.py), so these figures also carry its cost; compare them with each other, not with
the loopback runs.
"""

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.cluster import stack  # noqa: E402
from tests.faults import servers  # noqa: E402

POLL_PORT = 8002
GUNICORN_WORKERS = 4
CONCURRENCY = 4


def _tool(cluster, env: dict, *args) -> dict:
    """bench/project_tool.py on web1, on the cluster's database."""
    output = subprocess.run(
        [*cluster.network.prefix("web1"), sys.executable, str(ROOT / "bench/project_tool.py"),
         *map(str, args)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
    ).stdout  # fmt: skip
    return json.loads(output.splitlines()[-1])


def _workers(cluster, env: dict, *args: str) -> list[servers.Process]:
    return [
        servers.Process(
            [
                *cluster.network.prefix(host),
                sys.executable,
                str(ROOT / "manage.py"),
                "run_worker",
                "--concurrency",
                str(CONCURRENCY),
                *args,
            ],
            env=env,
            log_path=cluster.log(f"bench-{host}"),
        )
        for host in stack.WORKER_HOSTS
    ]


def _polls(cluster, env: dict, wrk: Callable, seconds: int) -> dict:
    target = _tool(cluster, env, "poll-target")
    trips = _tool(cluster, env, "round-trips", target["job_id"], target["etag"], target["token"])
    web = cluster.webs["web1"]
    gunicorn = servers.start_gunicorn(
        env={**env, "GUNICORN_MAX_REQUESTS": "0"},
        port=POLL_PORT,
        address=web.address,
        prefix=cluster.network.prefix("web1"),
        log_path=cluster.log("bench-gunicorn"),
        workers=GUNICORN_WORKERS,
    )
    results = {}
    try:
        url = f"http://{web.address}:{POLL_PORT}/api/jobs/{target['job_id']}"
        auth = {"Host": target["host"], "Authorization": f"Bearer {target['token']}"}
        for case, headers in (("200", auth), ("304", {**auth, "If-None-Match": target["etag"]})):
            wrk(url, headers, seconds=2, connections=16)  # warm every worker
            results[case] = wrk(url, headers, seconds=seconds, connections=16)
            assert trips[case]["status"] == int(case), trips
            results[case]["trips"] = f"{trips[case]['redis']} / {trips[case]['postgres']}"
    finally:
        gunicorn.stop()
    return results


def _latency(cluster, env: dict, count: int, spacing: float, summary: Callable) -> dict:
    workers = _workers(cluster, env)
    try:
        time.sleep(5)  # up, idle and LISTENing
        _tool(cluster, env, "latency", count, spacing)
        time.sleep(2)
    finally:
        for worker in workers:
            worker.stop()
    rows = cluster.sql(
        "SELECT extract(epoch FROM started_at - created_at) * 1000 FROM job_queue"
        ' WHERE payload = \'{"bench": "latency"}\' AND started_at IS NOT NULL'
    )
    cluster.sql('DELETE FROM job_queue WHERE payload = \'{"bench": "latency"}\'')
    return summary([float(value) for (value,) in rows], count)


def _drain(cluster, env: dict, count: int) -> float:
    _tool(cluster, env, "fill", count)
    workers = _workers(cluster, env, "--burst")
    for worker in workers:
        worker.popen.wait(timeout=600)
    ((done, first, last),) = cluster.sql(
        "SELECT count(*) FILTER (WHERE status = 'completed'), min(started_at), max(completed_at)"
        ' FROM job_queue WHERE payload = \'{"bench": "drain"}\''
    )
    cluster.sql('DELETE FROM job_queue WHERE payload = \'{"bench": "drain"}\'')
    return done / (last - first).total_seconds()


def measure(
    *, seconds: int, drain: int, latency: int, spacing: float, wrk: Callable, summary: Callable
) -> dict:
    """{"through PgBouncer": {...}, "direct": {...}}, each with ``polls`` (per case: wrk's
    figures and ``trips``), ``latency`` (``summary`` of the delays) and ``drain`` (jobs/s)."""
    results = {}
    with stack.running(workers=False) as cluster:
        pooled = {**cluster.env, "JOBS_API_RATE": "1000000000/m", "LOG_LEVEL": "WARNING"}
        direct = {
            **pooled,
            "DATABASE_URL": cluster.env["DATABASE_DIRECT_URL"],
            "DATABASE_POOL_MODE": "session",
        }
        _tool(cluster, pooled, "seed")
        # The seed's users and hosts are kept out of the caches for a moment (core/row_cache
        # tombstones): measure warm polls, as in production, not the seconds after a change.
        time.sleep(3)
        for label, env in (("through PgBouncer", pooled), ("direct", direct)):
            results[label] = {
                "polls": _polls(cluster, env, wrk, seconds),
                "latency": _latency(cluster, env, latency, spacing, summary),
                "drain": _drain(cluster, env, drain),
            }
            print(f"cluster, {label}: {results[label]}", flush=True)
    return results
