"""The rollup's reads (per bin, per tenant) and the live queue's, for the dashboard and
``jobs_stats``: the rollup table and the pending and processing jobs on their partial
indexes, never ``job_queue``'s history, so each costs the same at any history size."""

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import Now

from accounts.roles import ALL_TENANTS
from core.clock import db_now
from insights.models import JobRollup, bucket_value
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


def percentile(counts: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile of the histogram ``counts`` (bucket index → runs): the reading of
    the bucket holding the run of rank ⌈q·n⌉ (of n, shortest first), so within
    ``insights.models.RELATIVE_ERROR`` of that run's duration; None when empty."""
    total = sum(counts.values())
    if not total:
        return None
    rank, seen = max(1, math.ceil(q * total)), 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return bucket_value(index)
    raise AssertionError("unreachable: the ranks end at total")


QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))


@dataclass
class Totals:
    """Runs summed over rollup rows: counts and histograms of wait and run time."""

    completed: int = 0
    failed: int = 0
    wait: Counter = field(default_factory=Counter)
    run: Counter = field(default_factory=Counter)

    def add(self, completed: int, failed: int, wait: Mapping, run: Mapping) -> None:
        self.completed += completed
        self.failed += failed
        self.wait.update(wait)
        self.run.update(run)

    def quantiles(self) -> dict[str, float | None]:
        """``{"wait_p50": …, "run_p99": …}``: each of ``QUANTILES`` of both histograms."""
        return {
            f"{kind}_{name}": percentile(getattr(self, kind), q)
            for kind in ("wait", "run")
            for name, q in QUANTILES
        }


def _summed(column: str) -> str:
    """The histograms ``column`` of the ``picked`` rows, summed per bin, queue and type."""
    return f"""
        SELECT bin, queue, type, jsonb_object_agg(key, runs) AS buckets FROM (
            SELECT bin, queue, type, key, SUM(value::bigint) AS runs
            FROM picked, jsonb_each_text(picked.{column})
            GROUP BY 1, 2, 3, 4
        ) AS per_bucket GROUP BY 1, 2, 3"""  # noqa: S608 (a column name of this module)


def rollup_series(*, tenant, since: datetime, step: timedelta) -> list[tuple]:
    """``(bin start, queue, type, completed, failed, wait histogram, run histogram)`` per bin
    of ``step`` from ``since``, for ``tenant`` (or ``ALL_TENANTS``); the histograms map
    bucket index → runs. One statement: every sum, bucket by bucket too, is done in SQL."""
    params = {"since": since, "step": step}
    scope = ""
    if tenant is not ALL_TENANTS:
        scope, params["tenant"] = "AND tenant_id = %(tenant)s", tenant.pk
    sql = f"""
        WITH picked AS (
            SELECT date_bin(%(step)s, minute, %(since)s) AS bin, queue, type, completed,
                   failed, wait_buckets, run_buckets
            FROM public.job_rollup
            WHERE minute >= %(since)s {scope}
        ),
        counts AS (
            SELECT bin, queue, type, SUM(completed) AS completed, SUM(failed) AS failed
            FROM picked GROUP BY 1, 2, 3
        ),
        wait AS ({_summed("wait_buckets")}),
        run AS ({_summed("run_buckets")})
        SELECT bin, queue, type, completed, failed, wait.buckets::text, run.buckets::text
        FROM counts LEFT JOIN wait USING (bin, queue, type) LEFT JOIN run USING (bin, queue, type)
        ORDER BY 1, 2, 3
    """  # noqa: S608 (constants of this module; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        (bin_, queue, type_, int(done), int(failed), _histogram(wait), _histogram(run))
        for bin_, queue, type_, done, failed, wait, run in rows
    ]


def _histogram(text: str | None) -> dict[int, int]:
    return {int(index): int(runs) for index, runs in json.loads(text or "{}").items()}


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
