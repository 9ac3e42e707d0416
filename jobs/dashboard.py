"""The queue dashboard (``/admin/jobs/dashboard/``) and the rollup that feeds it.

As runs end completed or failed (``jobs_finished``, per batch; a timeout counts as failed),
one ``job_rollup`` row per tenant, minute, queue and job type is upserted: the counts, and
the runs' wait (due → start) and run time in fixed buckets (``ROLLUP_BUCKETS``), the whole
batch summed per row in one statement. The page reads
only that table, grouped per bin in SQL, plus the live queue (pending and processing, on
its partial indexes): its cost follows the window and the backlog, never the history in
``job_queue``.

Platform staff see every tenant, tenant staff their own (``accounts.roles.staff_tenant``).
Charts are server-rendered SVG (no script, no CDN: the admin's CSP holds); the page
refreshes itself every ``REFRESH_SECONDS``.
"""

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection
from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import Now
from django.dispatch import receiver
from django.template.response import TemplateResponse
from django.urls import path

from accounts.roles import ALL_TENANTS, admin_tenant_is_active, is_platform_staff, staff_tenant
from jobs.conditions import reachable_jobs
from jobs.models import ROLLUP_BUCKETS, Job, JobRollup, JobStatus
from jobs.signals import JobOutcome, jobs_cleaned, jobs_finished
from tenants.scope import tenant_scope

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 30
RANGES = {
    "hour": (timedelta(hours=1), timedelta(minutes=1)),
    "day": (timedelta(days=1), timedelta(minutes=15)),
}
_SLOTS = len(ROLLUP_BUCKETS) + 1
_FINAL = {
    JobOutcome.COMPLETED: "completed",
    JobOutcome.FAILED: "failed",
    JobOutcome.TIMED_OUT: "failed",
}

# --- the rollup --------------------------------------------------------------------------


def _bucket(seconds: float) -> list[int]:
    counts = [0] * _SLOTS
    counts[next((i for i, b in enumerate(ROLLUP_BUCKETS) if seconds <= b), _SLOTS - 1)] = 1
    return counts


def _add(column: str) -> str:
    return (
        f"(SELECT jsonb_agg((job_rollup.{column}->>i)::int + (EXCLUDED.{column}->>i)::int "  # noqa: S608 (a column name of this module)
        f"ORDER BY i) FROM generate_series(0, {_SLOTS - 1}) AS i)"
    )


_UPSERT = f"""
INSERT INTO public.job_rollup
    (tenant_id, minute, queue, type, completed, failed, wait_buckets, run_buckets)
VALUES {{values}}
ON CONFLICT (tenant_id, minute, queue, type) DO UPDATE SET
    completed = job_rollup.completed + EXCLUDED.completed,
    failed = job_rollup.failed + EXCLUDED.failed,
    wait_buckets = {_add("wait_buckets")},
    run_buckets = {_add("run_buckets")}
"""  # noqa: S608 (the interpolations are constants of this module)
_ROW = "(%s, date_trunc('minute', COALESCE(%s, now())), %s, %s, %s, %s, %s::jsonb, %s::jsonb)"


@dataclass
class RollupRow:
    """The runs of one ``job_rollup`` key to add: counts and bucket counts."""

    tenant_id: int
    queue: str
    type: str
    at: datetime | None = None  # the minute's moment; None: the database's now
    completed: int = 0
    failed: int = 0
    wait: list[int] = field(default_factory=lambda: [0] * _SLOTS)
    run: list[int] = field(default_factory=lambda: [0] * _SLOTS)

    def count(self, outcome: str, wait: float, run: float) -> None:
        """Add one run that ended ``outcome`` (``completed`` or ``failed``)."""
        self.completed += outcome == "completed"
        self.failed += outcome == "failed"
        self.wait = [a + b for a, b in zip(self.wait, _bucket(max(0.0, wait)), strict=True)]
        self.run = [a + b for a, b in zip(self.run, _bucket(max(0.0, run)), strict=True)]


def rollup_add(rows: list[RollupRow]) -> None:
    """Add ``rows`` to the rollup in one statement. Their keys (tenant, minute of ``at``,
    queue, type) must differ: ``ON CONFLICT`` may not touch one row twice."""
    if not rows:
        return
    params = []
    for row in rows:
        params += [row.tenant_id, row.at, row.queue, row.type, row.completed, row.failed]
        params += [json.dumps(row.wait), json.dumps(row.run)]
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT.format(values=", ".join([_ROW] * len(rows))), params)


def rollup_record(
    *, tenant_id: int, queue: str, type: str, outcome: str, wait: float, run: float, at=None
) -> None:
    """Count one run that ended ``outcome`` (``completed`` or ``failed``) in the minute of
    ``at`` (default: the database's now), with its wait and run time in seconds."""
    row = RollupRow(tenant_id=tenant_id, queue=queue, type=type, at=at)
    row.count(outcome, wait, run)
    rollup_add([row])


@receiver(jobs_finished, dispatch_uid="jobs.dashboard.rollup")
def _roll_up(sender, runs, **kwargs):
    """Count a batch of runs: summed per tenant, queue and type in Python, then one
    statement (the minute is the database's now, as for a single run)."""
    rows: dict[tuple[int, str, str], RollupRow] = {}
    for job, outcome, duration in runs:
        final = _FINAL.get(outcome)
        if final is None:
            continue
        wait = 0.0
        if job.started_at is not None:
            wait = (job.started_at - max(job.created_at, job.run_at)).total_seconds()
        key = (job.tenant_id, job.queue, job.type)
        if key not in rows:
            rows[key] = RollupRow(tenant_id=job.tenant_id, queue=job.queue, type=job.type)
        rows[key].count(final, wait, duration)
    try:
        rollup_add(list(rows.values()))
    except DatabaseError:  # the outcomes are recorded; only the dashboard misses these runs
        logger.warning(
            "rollup: could not count runs",
            exc_info=True,
            extra={"jobs": sum(r.completed + r.failed for r in rows.values())},
        )


# --- reading it --------------------------------------------------------------------------


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
        self.wait = [a + b for a, b in zip(self.wait or [0] * _SLOTS, wait, strict=True)]
        self.run = [a + b for a, b in zip(self.run or [0] * _SLOTS, run, strict=True)]

    def quantiles(self) -> dict:
        return {
            f"{kind}_{name}": percentile(getattr(self, kind) or [], q)
            for kind in ("wait", "run")
            for name, q in (("p50", 0.5), ("p95", 0.95))
        }


def _sums(column: str) -> str:
    return ", ".join(f"SUM(({column}->>{i})::int)" for i in range(_SLOTS))


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
            list(map(int, rest[:_SLOTS])),
            list(map(int, rest[_SLOTS:])),
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
    now = _db_now(truncate=False)
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
        JobRollup.objects.filter(tenant_scope(tenant), minute__gte=_minute(now - window))
        .values("tenant__schema_name")
        .annotate(completed=Sum("completed"), failed=Sum("failed"))
        .order_by()
    )
    for row in finished:
        item = entry(row["tenant__schema_name"])
        item["completed"], item["failed"] = row["completed"], row["failed"]
    return dict(sorted(tenants.items()))


ROLLUP_KEPT = RANGES["day"][0]  # cleanup never prunes what the dashboard's day shows


@receiver(jobs_cleaned, dispatch_uid="jobs.dashboard.rollup_prune")
def _prune_with_the_jobs(sender, tenant, before, **kwargs) -> str:
    pruned = rollup_prune(tenant=tenant, before=before)
    return f"Pruned {pruned} dashboard rollup row(s) (the last day is kept)."


def rollup_prune(*, tenant, before: datetime) -> int:
    """Delete the rollup rows of ``tenant`` (or ``ALL_TENANTS``) older than ``before``, but
    never those of the last ``ROLLUP_KEPT``; the number deleted."""
    before = min(before, _db_now() - ROLLUP_KEPT)
    deleted, _ = JobRollup.objects.filter(tenant_scope(tenant), minute__lt=before).delete()
    return deleted


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


# --- SVG charts --------------------------------------------------------------------------

WIDTH, HEIGHT, PAD = 640, 160, 4
COLOURS = ("#417690", "#ba2121", "#79aec8", "#e49b0f")


def chart(title: str, unit: str, bins: list[datetime], lines: dict[str, list]) -> dict:
    """A line chart's geometry: one polyline per series (None values are gaps, drawn at 0)."""
    values = [v for series in lines.values() for v in series if v is not None]
    top = max(values, default=0) or 1
    step = (WIDTH - 2 * PAD) / max(1, len(bins) - 1)

    def point(i, v):
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * (v or 0) / top
        return f"{PAD + i * step:.1f},{y:.1f}"

    return {
        "title": title,
        "top": _label(top, unit),
        "start": bins[0],
        "end": bins[-1],
        "series": [
            {
                "name": name,
                "colour": COLOURS[index % len(COLOURS)],
                "points": " ".join(point(i, v) for i, v in enumerate(series)),
                "last": _label(series[-1], unit) if series and series[-1] is not None else "–",
            }
            for index, (name, series) in enumerate(lines.items())
        ],
    }


def _label(value, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
    return f"{value:.0f}"


# --- the page ----------------------------------------------------------------------------


def _bins(start: datetime, span: timedelta, step: timedelta) -> list[datetime]:
    return [start + step * i for i in range(int(span / step))]


def _db_now(*, truncate: bool = True) -> datetime:
    """The database's now, to the minute unless ``truncate`` is false."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
    return _minute(now) if truncate else now


def dashboard_view(request):
    user = request.user
    if not (is_platform_staff(user) or (user.is_staff and admin_tenant_is_active(user))):
        raise PermissionDenied
    tenant = staff_tenant(user)
    range_name = request.GET.get("range") if request.GET.get("range") in RANGES else "hour"
    span, step = RANGES[range_name]
    since = _db_now() - span + timedelta(minutes=1)
    bins = _bins(since, span, step)
    per_bin = {b: Totals() for b in bins}
    per_queue_type: dict[tuple[str, str], Totals] = {}
    for bin_, queue, type_, done, failed, wait, run in rollup_series(
        tenant=tenant, since=since, step=step
    ):
        per_bin.setdefault(bin_, Totals()).add(done, failed, wait, run)
        per_queue_type.setdefault((queue, type_), Totals()).add(done, failed, wait, run)
    quantiles = [per_bin[b].quantiles() for b in bins]
    per_minute = step / timedelta(minutes=1)
    charts = [
        chart(
            "Completed and failed per minute",
            "",
            bins,
            {
                "completed": [per_bin[b].completed / per_minute for b in bins],
                "failed": [per_bin[b].failed / per_minute for b in bins],
            },
        ),
        chart(
            "Wait time (due → start)",
            "s",
            bins,
            {"p50": [q["wait_p50"] for q in quantiles], "p95": [q["wait_p95"] for q in quantiles]},
        ),
        chart(
            "Run time",
            "s",
            bins,
            {"p50": [q["run_p50"] for q in quantiles], "p95": [q["run_p95"] for q in quantiles]},
        ),
    ]
    breakdown = [
        {
            "queue": queue,
            "type": type_,
            "completed": t.completed,
            "failed": t.failed,
            **{k: _label(v, "s") if v is not None else "–" for k, v in t.quantiles().items()},
        }
        for (queue, type_), t in sorted(per_queue_type.items())
    ]
    context = {
        **admin.site.each_context(request),
        "title": "Queue dashboard",
        "scope": "all tenants" if tenant is ALL_TENANTS else tenant.schema_name,
        "range": range_name,
        "ranges": list(RANGES),
        "refresh": REFRESH_SECONDS,
        "live": live_queue(tenant=tenant),
        "charts": charts,
        "breakdown": breakdown,
        "width": WIDTH,
        "height": HEIGHT,
    }
    return TemplateResponse(request, "admin/jobs/dashboard.html", context)


urlpatterns = [path("", admin.site.admin_view(dashboard_view), name="jobs-dashboard")]
