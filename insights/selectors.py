"""The rollup's reads (per bin, per tenant) and the live queue's, for the dashboard and
``jobs_stats``: the rollup table and the pending and processing jobs on their partial
indexes, never ``job_queue``'s history, so each costs the same at any history size."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import Now

from accounts.roles import ALL_TENANTS
from core.clock import db_now
from insights.models import ROLLUP_BUCKETS, SLOTS, JobRollup
from jobs.conditions import reachable_jobs
from jobs.models import Job, JobStatus
from tenants.scope import tenant_scope

# The dashboard's ranges: how far back, in bins of how long (60 to 180 points a chart).
RANGES = {
    "hour": (timedelta(hours=1), timedelta(minutes=1)),
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "day": (timedelta(days=1), timedelta(minutes=15)),
    "7d": (timedelta(days=7), timedelta(hours=1)),
    "30d": (timedelta(days=30), timedelta(hours=4)),
}


def minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def db_minute() -> datetime:
    """The database's now, to the minute."""
    return minute(db_now())


def percentile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile of bucket ``counts`` (linear within a bucket, like PromQL's
    histogram_quantile); None when empty."""
    total = sum(counts)
    if not total:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for index, count in enumerate(counts):
        upper = ROLLUP_BUCKETS[index] if index < len(ROLLUP_BUCKETS) else ROLLUP_BUCKETS[-1]
        if count and seen + count >= rank:
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper
    return ROLLUP_BUCKETS[-1]


@dataclass
class Totals:
    completed: int = 0
    failed: int = 0
    wait: list | None = None
    run: list | None = None

    def add(self, completed, failed, wait, run) -> None:
        self.completed += completed
        self.failed += failed
        self.wait = [a + b for a, b in zip(self.wait or [0] * SLOTS, wait, strict=True)]
        self.run = [a + b for a, b in zip(self.run or [0] * SLOTS, run, strict=True)]

    def quantiles(self) -> dict:
        return {
            f"{kind}_{name}": percentile(getattr(self, kind) or [], q)
            for kind in ("wait", "run")
            for name, q in (("p50", 0.5), ("p95", 0.95))
        }


def _sums(column: str) -> str:
    return ", ".join(f"SUM(({column}->>{i})::int)" for i in range(SLOTS))


def rollup_series(*, tenant, since: datetime, step: timedelta) -> list[tuple]:
    """``(bin start, queue, type, completed, failed, wait counts, run counts)`` per bin of
    ``step`` from ``since``, for ``tenant`` (or ``ALL_TENANTS``), summed in SQL."""
    params = {"since": since, "step": step}
    scope = ""
    if tenant is not ALL_TENANTS:
        scope, params["tenant"] = "AND tenant_id = %(tenant)s", tenant.pk
    sql = f"""
        SELECT date_bin(%(step)s, minute, %(since)s) AS bin, queue, type,
               SUM(completed), SUM(failed), {_sums("wait_buckets")}, {_sums("run_buckets")}
        FROM public.job_rollup
        WHERE minute >= %(since)s {scope}
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    """  # noqa: S608 (constants of this module; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        (
            bin_,
            queue,
            type_,
            int(done),
            int(failed),
            list(map(int, rest[:SLOTS])),
            list(map(int, rest[SLOTS:])),
        )
        for bin_, queue, type_, done, failed, *rest in rows
    ]


def live_queue(*, tenant) -> dict[str, dict[str, int]]:
    """Pending and processing jobs per queue of ``tenant`` but internal ones (or of
    ``ALL_TENANTS``, all of them): the live queue only, on its partial indexes."""
    live = (JobStatus.PENDING, JobStatus.PROCESSING)
    rows = (
        Job.objects.filter(reachable_jobs(tenant), status__in=live)
        .values("queue", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    queues: dict[str, dict[str, int]] = {}
    for row in rows:
        queues.setdefault(row["queue"], dict.fromkeys(live, 0))[row["status"]] = row["n"]
    return dict(sorted(queues.items()))


def stats_by_tenant(*, tenant, window: timedelta) -> dict[str, dict]:
    """Per tenant of ``tenant`` (or ``ALL_TENANTS``): pending and processing jobs, the oldest
    due pending job's age (live queue, partial indexes) and the runs completed and failed
    within ``window`` (the rollup, in whole minutes: the current one included). Costs the
    same at any history size."""
    live = (
        Job.objects.filter(
            tenant_scope(tenant), status__in=(JobStatus.PENDING, JobStatus.PROCESSING)
        )
        .values("tenant__schema_name", "status")
        .annotate(
            n=Count("*"),
            oldest=Min("created_at", filter=Q(status=JobStatus.PENDING, run_at__lte=Now())),
        )
        .order_by()
    )
    now = db_now()
    tenants: dict[str, dict] = {}

    def entry(schema: str) -> dict:
        return tenants.setdefault(
            schema,
            {
                "pending": 0,
                "processing": 0,
                "oldest_pending_age_seconds": None,
                "completed": 0,
                "failed": 0,
            },
        )

    for row in live:
        item = entry(row["tenant__schema_name"])
        item[row["status"]] = row["n"]
        if row["oldest"] is not None:
            item["oldest_pending_age_seconds"] = round((now - row["oldest"]).total_seconds(), 1)
    finished = (
        JobRollup.objects.filter(tenant_scope(tenant), minute__gte=minute(now - window))
        .values("tenant__schema_name")
        .annotate(completed=Sum("completed"), failed=Sum("failed"))
        .order_by()
    )
    for row in finished:
        item = entry(row["tenant__schema_name"])
        item["completed"], item["failed"] = row["completed"], row["failed"]
    return dict(sorted(tenants.items()))
