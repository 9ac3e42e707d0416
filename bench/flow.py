"""Flow control in ``make bench`` (issue 21, item 8): three parts, each a section of the
report with the machine, the date, the issue's target and whether it is met.

- ``flow-neighbour``: one tenant floods one-second jobs, three others submit a steady
  trickle; their enqueue→start p50/p99 and each tenant's share of the worker slots per
  5 s window. Measured for a fixed window: the flood is not drained (what is left is
  counted, then removed).
- ``flow-rate``: a global rate limit of 20/s, two worker processes: starts in every
  second over 60 s.
- ``flow-cost``: the drain of 5,000 no-op jobs with one limit attached vs none.

Workers are real ``manage.py run_worker`` processes with
``DJANGO_SETTINGS_MODULE=bench.flow_settings`` (the project's settings plus the bench's
job types and limits; handlers in bench/flow_tasks.py); jobs are inserted and enqueued by
bench/flow_tool.py with the same settings. Every time is PostgreSQL's
(``job_queue.created_at``, ``started_at``, ``completed_at``), never a worker's log. Only
rows of the bench's own tenants and queues are written and removed; only processes
started here are stopped, by PID.

``make bench`` runs the three parts on its database (bench/run.py ``--only flow``).
Standalone, on its own database ``bench_flow`` (recreated)::

    .venv/bin/python bench/flow.py [--quick] [--no-append] [--results FILE]
                                   [--parts flow-neighbour,flow-rate,flow-cost]

``--parts`` runs only the parts named (``--parts flow-cost``: the cost of limits alone, for
an A/B of the claim).
"""

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # bench/run.py: the plumbing of make bench
from report import Report  # bench/report.py

DATABASE = "bench_flow"  # the standalone entry's; make bench passes its own
FLOOD_QUEUE = "bench-flow-flood"
RATE_QUEUE = "bench-flow-rate"
DRAIN_QUEUE = "bench-flow-drain"
FLOOD_TENANT = "flowflood"
SMALL_TENANTS = ("flowsmall1", "flowsmall2", "flowsmall3")
JOB_SECONDS = 1.0  # what a bench.second job holds its slot for (bench/flow_tasks.py)
RATE = 20  # the bench_rate limit, per second (bench/flow_settings.py reads it)
WORKER_START = 3.0  # seconds for a worker process to start and LISTEN
SHARE_WINDOW = 5.0  # seconds per row of the slots' shares


@dataclass(frozen=True)
class Sizes:
    """How much each part does."""

    flood: int = 10_000  # one-second jobs of the flooding tenant
    window: float = 60.0  # seconds the small tenants submit and the shares are measured
    trickle_period: float = 1.0  # seconds between two jobs of one small tenant
    processes: int = 2  # worker processes of every part
    flood_concurrency: int = 8  # threads per process for the one-second jobs
    rate_seconds: int = 60  # seconds of starts counted under the rate limit
    drain: int = 5_000  # no-op jobs per drain
    drain_concurrency: int = 4  # threads per process for the drains
    rounds: int = 2  # drains per variant, interleaved


FULL = Sizes()
QUICK = Sizes(window=20.0, rate_seconds=20, drain=2_000, rounds=1)


def flow_env(database: str, **extra) -> dict:
    """The benchmark's environment on ``database`` with the flow bench's settings."""
    return bench.project_env(
        database=database,
        DJANGO_SETTINGS_MODULE="bench.flow_settings",
        BENCH_FLOW_RATE=str(RATE),
        **extra,
    )


def flow_tool(database: str, *args, env: dict | None = None) -> dict:
    output = bench.run(
        [bench.PY, str(bench.BENCH / "flow_tool.py"), *map(str, args)],
        env=env or flow_env(database),
    )
    return json.loads(output.splitlines()[-1])


def worker_args(queue: str, concurrency: int, *extra: str) -> list[str]:
    return [bench.PY, "manage.py", "run_worker", "--queues", queue,
            "--concurrency", str(concurrency), "--grace", "5", *extra]  # fmt: skip


def tenants(database: str) -> dict[str, int]:
    """The bench's tenants (rows only: these jobs never touch a tenant's schema), by
    schema name, created if missing."""
    names = [FLOOD_TENANT, *SMALL_TENANTS]
    bench.sql(
        database,
        """INSERT INTO tenants_tenant (schema_name, name, is_active, created_at)
           SELECT name, name, true, now() FROM unnest(%s::text[]) name
           ON CONFLICT (schema_name) DO NOTHING""",
        [names],
    )
    rows = bench.sql(
        database,
        "SELECT schema_name, id FROM tenants_tenant WHERE schema_name = ANY(%s)",
        [names],
    )
    return dict(rows)


def clear(database: str, queue: str) -> None:
    """Remove the jobs of one of the bench's queues, and their attempts."""
    bench.sql(
        database,
        "DELETE FROM job_attempt WHERE job_id IN (SELECT id FROM job_queue WHERE queue = %s)",
        [queue],
    )
    bench.sql(database, "DELETE FROM job_queue WHERE queue = %s", [queue])


def measured_on() -> str:
    """The machine, the date and the load now, for a part's section."""
    cpu = platform.processor() or platform.machine()
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Measured {date} on {os.cpu_count()} cores ({cpu}); load average "
        f"{bench.load_average()} at the part's end."
    )


def verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


# --- (a) noisy neighbour ------------------------------------------------------------------


def slot_shares(
    jobs: list[tuple], start: float, end: float, stopped: float
) -> list[tuple[float, dict[int, float]]]:
    """Per SHARE_WINDOW from ``start`` to ``end``: each tenant's slot-seconds in it. ``jobs``
    are (tenant, created, started, completed) epochs; a job still running when the workers
    were stopped (``stopped``) holds its slot until then."""
    windows = []
    left = start
    while left < end - 1e-6:
        right = min(left + SHARE_WINDOW, end)
        used: dict[int, float] = defaultdict(float)
        for tenant, _, began, ended in jobs:
            if began is None:
                continue
            overlap = min(ended or stopped, right) - max(began, left)
            used[tenant] += max(0.0, overlap)
        windows.append((left - start, dict(used)))
        left = right
    return windows


def noisy_neighbour(database: str, sizes: Sizes) -> str:
    """Part (a): the small tenants' enqueue→start under a flood, and the slots' shares."""
    ids = tenants(database)
    flood_id = ids[FLOOD_TENANT]
    small = {ids[name]: name for name in SMALL_TENANTS}
    slots = sizes.processes * sizes.flood_concurrency
    env = flow_env(database)
    clear(database, FLOOD_QUEUE)
    with ExitStack() as workers:
        for _ in range(sizes.processes):
            workers.enter_context(
                bench.started(worker_args(FLOOD_QUEUE, sizes.flood_concurrency), env=env)
            )
        time.sleep(WORKER_START)
        flow_tool(database, "fill", "bench.second", flood_id, sizes.flood, FLOOD_QUEUE)
        time.sleep(2 * JOB_SECONDS)  # the flood holds every slot before the trickle
        flow_tool(database, "trickle", sizes.window, sizes.trickle_period, FLOOD_QUEUE, *small)
        time.sleep(JOB_SECONDS + 2)  # the window's last small jobs start
        ((stopped,),) = bench.sql(database, "SELECT extract(epoch FROM now())::float8")
    jobs = bench.sql(
        database,
        """SELECT tenant_id, extract(epoch FROM created_at)::float8,
                  extract(epoch FROM started_at)::float8, extract(epoch FROM completed_at)::float8
           FROM job_queue WHERE queue = %s AND (started_at IS NOT NULL OR tenant_id <> %s)""",
        [FLOOD_QUEUE, flood_id],
    )
    ((flood_left,),) = bench.sql(
        database,
        "SELECT count(*) FROM job_queue WHERE queue = %s AND tenant_id = %s AND status = 'pending'",
        [FLOOD_QUEUE, flood_id],
    )
    clear(database, FLOOD_QUEUE)

    small_jobs = [job for job in jobs if job[0] in small]
    if not small_jobs:
        raise RuntimeError("no job of the small tenants was enqueued")
    start = min(job[1] for job in small_jobs)
    end = start + sizes.window
    in_window = [job for job in small_jobs if job[1] < end]
    waits: dict[int, list[float]] = defaultdict(list)
    for tenant, created, began, _ in in_window:
        if began is not None:
            waits[tenant].append(began - created)
    every_wait = [wait for values in waits.values() for wait in values]
    not_started = sum(1 for job in in_window if job[2] is None)
    rows = []
    for tenant, name in small.items():
        values = waits[tenant]
        submitted = sum(1 for job in in_window if job[0] == tenant)
        rows.append([name, submitted, len(values), *_wait_figures(values)])
    rows.append(["small tenants together", len(in_window), len(every_wait),
                 *_wait_figures(every_wait)])  # fmt: skip
    bound = JOB_SECONDS + 0.5
    p99 = bench.percentile(every_wait, 99)
    met = not not_started and p99 <= bound

    order = [flood_id, *small]
    share_rows = []
    for offset, used in slot_shares(jobs, start, end, stopped):
        total = sum(used.values()) or 1.0
        width = min(SHARE_WINDOW, end - start - offset)
        share_rows.append(
            [f"{offset:.0f}–{offset + width:.0f}",
             *(used.get(tenant, 0.0) / total * 100 for tenant in order),
             sum(used.values()) / width]
        )  # fmt: skip
    flood_started = sum(
        1 for job in jobs if job[0] == flood_id and start <= job[2] < end
    )  # started
    return (
        f"### Flow control (a): noisy neighbour — one tenant floods {sizes.flood:,} one-second "
        "jobs, three submit a steady trickle\n\n"
        + measured_on()
        + f" {sizes.processes} × `run_worker --concurrency {sizes.flood_concurrency}` "
        f"({slots} slots). The flood was inserted at once (one INSERT … SELECT and a NOTIFY) "
        f"{2 * JOB_SECONDS:.0f} s before the trickle; then each small tenant enqueued one "
        f"one-second job every {sizes.trickle_period:g} s through `job_enqueue` (staggered) for "
        f"{sizes.window:g} s. Measured over that window only: the flood is not drained "
        f"({flood_started:,} of its jobs started in the window, {flood_left:,} were still "
        "pending when the workers were stopped, then removed). No per-tenant cap "
        "(`JOBS_MAX_RUNNING_PER_TENANT` unset) and no limit on the job type: the slots are "
        "shared by the claim's tenant interleave alone. Times: `started_at − created_at` "
        "(PostgreSQL's clock).\n\n"
        + bench.table(
            ["small tenant", "submitted", "started", "enqueue→start p50 ms", "p99 ms", "max ms"],
            rows,
        )
        + f"\n\nTarget (issue 21): the small tenants' p99 wait ≤ one job's duration + 0.5 s = "
        f"{bound * 1000:,.0f} ms: {p99 * 1000:,.0f} ms"
        + (f", {not_started} not started" if not_started else "")
        + f" — {verdict(met)}.\n\n"
        + bench.table(
            [
                "seconds into the window",
                f"{FLOOD_TENANT} %",
                *(f"{n} %" for n in small.values()),
                "slots busy (mean)",
            ],
            share_rows,
        )
        + "\n\nShares: each tenant's part of the slot-seconds used in the window (a job "
        "holds its slot from `started_at` to `completed_at`). Slots busy: slot-seconds used ÷ "
        f"the window's seconds, of {slots}; it can read slightly above {slots} because "
        "`completed_at` is written by the worker's recorder after the handler returns."
    )


def _wait_figures(waits: list[float]) -> list:
    if not waits:
        return ["–", "–", "–"]
    return [bench.percentile(waits, 50) * 1000, bench.percentile(waits, 99) * 1000,
            max(waits) * 1000]  # fmt: skip


# --- (b) a global rate limit --------------------------------------------------------------


@dataclass(frozen=True)
class StartProfile:
    """Starts per second from the first start (``counts``), and after the first second: the
    longest pause between two starts (seconds, and when it ended) and the most starts in
    any interval of one second."""

    counts: list[int]
    longest_gap: float
    gap_end: float
    most_in_a_second: int


def start_profile(offsets: list[float], seconds: int) -> StartProfile:
    """The profile of starts at ``offsets`` (seconds from the first start, sorted) over the
    first ``seconds`` seconds."""
    counts = [0] * seconds
    for offset in offsets:
        if offset < seconds:
            counts[int(offset)] += 1
    later = [offset for offset in offsets if 1 <= offset < seconds]
    gap, gap_end = 0.0, 0.0
    for before, after in itertools.pairwise(later):
        if after - before > gap:
            gap, gap_end = after - before, after
    most, first = 0, 0
    for last, offset in enumerate(later):
        while offset - later[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return StartProfile(counts, gap, gap_end, most)


def rate_holds(database: str, sizes: Sizes) -> str:
    """Part (b): starts per second under the global limit of RATE/s, two processes."""
    tenant_id = tenants(database)[FLOOD_TENANT]
    clear(database, RATE_QUEUE)
    # More than the limit lets start in the measured seconds: the queue never runs dry.
    flow_tool(database, "fill", "bench.rated", tenant_id, RATE * (sizes.rate_seconds + 10),
              RATE_QUEUE)  # fmt: skip
    env = flow_env(database)
    with ExitStack() as workers:
        for _ in range(sizes.processes):
            workers.enter_context(
                bench.started(worker_args(RATE_QUEUE, sizes.drain_concurrency), env=env)
            )
        deadline = time.monotonic() + 60
        while not bench.sql(
            database, "SELECT 1 FROM job_queue WHERE queue = %s AND started_at IS NOT NULL",
            [RATE_QUEUE],
        ):  # fmt: skip
            if time.monotonic() > deadline:
                raise RuntimeError("no job of the rate part started within 60 s")
            time.sleep(0.1)
        time.sleep(sizes.rate_seconds + 1)
    offsets = [
        row[0]
        for row in bench.sql(
            database,
            """SELECT extract(epoch FROM started_at - min(started_at) OVER ())::float8
               FROM job_queue WHERE queue = %s AND started_at IS NOT NULL ORDER BY 1""",
            [RATE_QUEUE],
        )
    ]
    ((attempts, pending),) = bench.sql(
        database,
        """SELECT (SELECT count(*) FROM job_attempt a JOIN job_queue j ON j.id = a.job_id
                   WHERE j.queue = %(q)s),
                  (SELECT count(*) FROM job_queue WHERE queue = %(q)s AND status = 'pending')""",
        {"q": RATE_QUEUE},
    )
    clear(database, RATE_QUEUE)
    profile = start_profile(offsets, sizes.rate_seconds)
    counts = profile.counts
    after_first = counts[1:]
    low, high = RATE * 0.9, RATE * 1.1
    outside = [(second, n) for second, n in enumerate(counts) if second and not low <= n <= high]
    met = not outside and pending > 0
    rows = [
        [f"{tens}–{min(tens + 9, sizes.rate_seconds - 1)}",
         " ".join(str(n) for n in counts[tens : tens + 10])]
        for tens in range(0, sizes.rate_seconds, 10)
    ]  # fmt: skip
    return (
        f"### Flow control (b): a global rate limit of {RATE}/s, {sizes.processes} worker "
        "processes\n\n"
        + measured_on()
        + f" {sizes.processes} × `run_worker --concurrency {sizes.drain_concurrency}` on "
        f"{RATE * (sizes.rate_seconds + 10):,} pending no-op jobs taking one unit of a global "
        f"limit `{{'rate': '{RATE}/s'}}` (burst {RATE}, the default). Starts counted from "
        "`started_at` (PostgreSQL's clock) per second from the first start.\n\n"
        + bench.table(["seconds", "starts in each second"], rows)
        + f"\n\nAfter the first second: min {min(after_first, default=0)}, max "
        f"{max(after_first, default=0)}, mean {statistics.fmean(after_first or [0]):.1f} per "
        f"second; the first second {counts[0]} (the full burst of {RATE} plus the refill). "
        f"Longest pause between two starts after the first second: "
        f"{profile.longest_gap * 1000:,.0f} ms (ending {profile.gap_end:.2f} s after the "
        f"first start; at {RATE}/s starts are {1000 / RATE:.0f} ms apart); most starts in any "
        f"1 s interval after the first second: {profile.most_in_a_second} (the bucket allows "
        f"at most {RATE} + its burst of {RATE}). "
        f"Attempts opened: {attempts:,} for {len(offsets):,} starts; "
        f"{pending:,} jobs still pending at the end (the queue never ran dry: "
        f"{'yes' if pending else 'no'}).\n\n"
        f"Target (issue 21): every second after the first within 10% of {RATE} "
        f"({low:g}–{high:g}) — {verdict(met)}"
        + (
            "; outside: "
            + ", ".join(f"second {s}: {n}" for s, n in outside[:20])
            + (f" and {len(outside) - 20} more" if len(outside) > 20 else "")
            if outside
            else ""
        )
        + "."
    )


# --- (c) the cost of limits ---------------------------------------------------------------

DRAIN_VARIANTS = (
    ("no job type consumes a limit (the claim without flow control)", "bench.noop",
     {"BENCH_FLOW_CONTROL": "off"}),
    ("no limit attached (other types consume limits)", "bench.noop", {}),
    ("one limit attached (global, concurrency 1,000 and 100,000/s: never binding)",
     "bench.limited", {}),
)  # fmt: skip


def drain(database: str, type_name: str, sizes: Sizes, env: dict) -> float:
    """Jobs/s of one burst drain of ``sizes.drain`` jobs of ``type_name``: completed ÷
    (last completion − first start), PostgreSQL's timestamps."""
    tenant_id = tenants(database)[FLOOD_TENANT]
    clear(database, DRAIN_QUEUE)
    flow_tool(database, "fill", type_name, tenant_id, sizes.drain, DRAIN_QUEUE, env=env)
    args = worker_args(DRAIN_QUEUE, sizes.drain_concurrency, "--burst")
    processes = [
        subprocess.Popen(args, cwd=bench.ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
        for _ in range(sizes.processes)
    ]  # fmt: skip
    for process in processes:
        _, errors = process.communicate(timeout=600)
        if process.returncode:
            raise RuntimeError(f"a drain worker exited {process.returncode}:\n{errors[-2000:]}")
    ((done, seconds),) = bench.sql(
        database,
        """SELECT count(*) FILTER (WHERE status = 'completed'),
                  extract(epoch FROM max(completed_at) - min(started_at))::float8
           FROM job_queue WHERE queue = %s""",
        [DRAIN_QUEUE],
    )
    clear(database, DRAIN_QUEUE)
    if done != sizes.drain:
        raise RuntimeError(f"the drain completed {done} of {sizes.drain} jobs")
    return done / seconds


def limits_cost(database: str, sizes: Sizes) -> str:
    """Part (c): drains with one limit attached and without, rounds interleaved."""
    rates: dict[str, list[float]] = {name: [] for name, _, _ in DRAIN_VARIANTS}
    for _ in range(sizes.rounds):
        for name, type_name, extra in DRAIN_VARIANTS:
            rates[name].append(drain(database, type_name, sizes, flow_env(database, **extra)))
    means = {name: statistics.fmean(values) for name, values in rates.items()}
    baseline, unattached, attached = (means[name] for name, _, _ in DRAIN_VARIANTS)
    ratio = attached / unattached
    rows = [
        [name, " / ".join(f"{value:,.0f}" for value in rates[name]), means[name]] for name in rates
    ]
    return (
        f"### Flow control (c): the cost of limits — {sizes.drain:,} no-op jobs drained with "
        "one limit attached vs none\n\n"
        + measured_on()
        + f" {sizes.processes} × `run_worker --burst --concurrency {sizes.drain_concurrency}`"
        f" per drain, {sizes.rounds} round(s), the variants interleaved; jobs/s = completed ÷ "
        "(last `completed_at` − first `started_at`), so process start-up is not counted.\n\n"
        + bench.table(["jobs", "jobs/s, each round", "jobs/s, mean"], rows)
        + f"\n\nTarget (issue 21): drain with a limit ≥ 85% of drain without: "
        f"{ratio * 100:.0f}% — {verdict(ratio >= 0.85)}. With the limit vs a deployment where "
        "no type consumes a limit (the claim before flow control): "
        f"{attached / baseline * 100:.0f}%"
        f"; without a limit but with flow control in use: {unattached / baseline * 100:.0f}%."
    )


# --- entry points -------------------------------------------------------------------------


def parts(database: str, sizes: Sizes) -> list[tuple[str, Callable[[], str]]]:
    """The three parts on ``database`` (migrated), as (name, measure) for ``Report.part``."""
    return [
        ("flow-neighbour", lambda: noisy_neighbour(database, sizes)),
        ("flow-rate", lambda: rate_holds(database, sizes)),
        ("flow-cost", lambda: limits_cost(database, sizes)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter windows and drains")
    parser.add_argument("--no-append", action="store_true", help="print the report only")
    parser.add_argument("--results", type=Path, default=bench.BENCH / "RESULTS.md")
    parser.add_argument("--parts", default="flow-neighbour,flow-rate,flow-cost")
    options = parser.parse_args()
    wanted = options.parts.split(",")
    sizes = QUICK if options.quick else FULL
    measures = dict(parts(DATABASE, sizes))
    if unknown := set(wanted) - set(measures):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    report = Report(None if options.no_append else options.results)
    bench.recreate_database(DATABASE)
    bench.run([bench.PY, "manage.py", "migrate_schemas", "-v", "0"],
              env=bench.project_env(database=DATABASE), timeout=900)  # fmt: skip
    report.write(
        f"## Flow control (bench/flow.py{' --quick' if options.quick else ''}), "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n" + measured_on().replace(
            "at the part's end", "before the run")
    )  # fmt: skip
    for name in wanted:
        report.part(name, measures[name])
    report.write(
        f"Flow bench ended: total time {time.monotonic() - started:.0f} s ("
        + ", ".join(f"{part} {taken:.0f} s" for part, taken in report.durations.items())
        + f"); load average after it {bench.load_average()}."
        + (f" Failed: {', '.join(report.failed)}." if report.failed else "")
    )
    if report.failed:
        sys.exit(f"flow bench: failed parts: {', '.join(report.failed)}")


if __name__ == "__main__":
    main()
