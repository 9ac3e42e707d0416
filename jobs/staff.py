"""Staff-only reads and bulk deletes of jobs: the admin, operator commands and metrics.

Unlike ``jobs.selectors``, these functions may span every tenant: ``tenant=None`` means
platform-wide and is for superusers, platform staff and operators only. Callers acting
for a tenant's staff pass that tenant (see ``staff_tenant``). State transitions are not
here: they stay in ``jobs.services``. Deleting finished rows is not a transition, and
each delete is guarded by the final status it expects, like a transition.
"""

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, DurationField, ExpressionWrapper, Min, Q, QuerySet
from django.db.models.functions import Now

from jobs.models import FINAL_STATUSES, Job, JobStatus

_DURATION = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_age(value: str) -> timedelta:
    """``30d``, ``12h`` or ``90m`` as a timedelta; ``ValueError`` for anything else."""
    match = _DURATION.match(value or "")
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30d, 12h or 90m")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def jobs_for_staff(*, tenant) -> QuerySet[Job]:
    """Jobs of ``tenant`` (every tenant when None), newest first, with tenant and creator
    joined. Ordering by ``-created_at`` matches the listing index."""
    jobs = Job.objects.select_related("tenant", "created_by")
    if tenant is not None:
        jobs = jobs.filter(tenant=tenant)
    return jobs.order_by("-created_at", "-id")


def short_id_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The UUID range covered by a hex prefix of 8+ digits (the admin's short id), so a
    prefix search is a primary-key range scan; None when ``text`` is no such prefix."""
    digits = text.replace("-", "").lower()
    if not 8 <= len(digits) <= 32 or not re.fullmatch(r"[0-9a-f]+", digits):
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def job_search_filter(text: str, *, creator_ids: Iterable[int]) -> Q:
    """Admin search: a job id (full or its first 8+ hex digits), an exact type, or jobs
    created by the users ``creator_ids`` (resolved from a username by the caller)."""
    text = text.strip()
    condition = Q(type=text) | Q(created_by_id__in=list(creator_ids))
    id_range = short_id_range(text)
    if id_range is not None:
        condition |= Q(id__range=id_range)
    return condition


# --- summaries -------------------------------------------------------------------------


# Summary counts stop at this many rows each: exact for the live queue, "10000+" for the
# history, so the admin page costs a few bounded index scans on any table size.
SUMMARY_COUNT_CAP = 10_000


@dataclass(frozen=True)
class QueueSummary:
    counts: dict[str, int]  # every status, zero included, at most cap + 1
    cap: int
    oldest_pending_age: timedelta | None  # of the longest-waiting due pending job
    completed_recently: int
    failed_recently: int
    window: timedelta

    def capped(self, count: int) -> bool:
        return count > self.cap


def _tenant_filter(tenant) -> Q:
    return Q() if tenant is None else Q(tenant=tenant)


def _db_now() -> datetime:
    """The database's clock; ``statement_timestamp()`` like Django's ``Now()`` (``now()`` is
    the transaction's start)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def queue_summary(*, tenant, window: timedelta = timedelta(minutes=5)) -> QueueSummary:
    """Counts per status (each stops at ``SUMMARY_COUNT_CAP + 1``), the age of the oldest
    due pending job (scheduled jobs not yet due are not late) and jobs completed and failed
    within ``window``. One short query per status (each served by the claim, lease or
    cleanup index) and two for the rest; times from the database."""
    scoped = Job.objects.filter(_tenant_filter(tenant)).order_by()
    counts = {
        status: scoped.filter(status=status).values("pk")[: SUMMARY_COUNT_CAP + 1].count()
        for status in JobStatus.values
    }
    oldest = scoped.filter(status=JobStatus.PENDING, run_at__lte=Now()).aggregate(
        age=ExpressionWrapper(Now() - Min("created_at"), output_field=DurationField())
    )["age"]
    recent = scoped.filter(
        status__in=[JobStatus.COMPLETED, JobStatus.FAILED], completed_at__gte=Now() - window
    ).aggregate(
        completed=Count("pk", filter=Q(status=JobStatus.COMPLETED)),
        failed=Count("pk", filter=Q(status=JobStatus.FAILED)),
    )
    return QueueSummary(
        counts=counts,
        cap=SUMMARY_COUNT_CAP,
        oldest_pending_age=max(oldest, timedelta(0)) if oldest is not None else None,
        completed_recently=recent["completed"],
        failed_recently=recent["failed"],
        window=window,
    )


def jobs_stats(*, throughput_window: timedelta = timedelta(hours=1)) -> dict:
    """Platform-wide statistics for operators, per tenant: counts per status, the oldest
    due pending job's age in seconds and jobs finished (completed, failed) within
    ``throughput_window``. One grouped query."""
    window = Now() - throughput_window
    rows = (
        Job.objects.values("tenant__schema_name", "status")
        .annotate(
            n=Count("*"),
            oldest=Min("created_at", filter=Q(status=JobStatus.PENDING, run_at__lte=Now())),
            recent=Count("pk", filter=Q(completed_at__gte=window)),
        )
        .order_by("tenant__schema_name", "status")
    )
    now = _db_now()
    tenants: dict[str, dict] = {}
    for row in rows:
        entry = tenants.setdefault(
            row["tenant__schema_name"],
            {
                "counts": dict.fromkeys(JobStatus.values, 0),
                "oldest_pending_age_seconds": None,
                "completed_last_window": 0,
                "failed_last_window": 0,
            },
        )
        entry["counts"][row["status"]] = row["n"]
        if row["oldest"] is not None:
            entry["oldest_pending_age_seconds"] = round((now - row["oldest"]).total_seconds(), 1)
        if row["status"] in (JobStatus.COMPLETED, JobStatus.FAILED):
            entry[f"{row['status']}_last_window"] = row["recent"]
    ages = [t["oldest_pending_age_seconds"] for t in tenants.values()]
    ages = [age for age in ages if age is not None]
    return {
        "throughput_window_seconds": int(throughput_window.total_seconds()),
        "totals": {
            status: sum(t["counts"][status] for t in tenants.values())
            for status in JobStatus.values
        },
        "oldest_pending_age_seconds": max(ages) if ages else None,
        "completed_last_window": sum(t["completed_last_window"] for t in tenants.values()),
        "failed_last_window": sum(t["failed_last_window"] for t in tenants.values()),
        "tenants": tenants,
    }


def live_queue_by_queue() -> list[tuple[str, str, int, datetime | None, datetime]]:
    """``(status, queue, count, oldest due pending created_at, db now)`` for the pending
    and processing jobs (the live queue), for metrics. One statement served by the partial
    claim and lease indexes, so its cost follows the backlog, not the table's history."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT 'pending', queue, count(*),
                   min(created_at) FILTER (WHERE run_at <= statement_timestamp()),
                   statement_timestamp()
            FROM job_queue WHERE status = 'pending' GROUP BY queue
            UNION ALL
            SELECT 'processing', queue, count(*), NULL, statement_timestamp()
            FROM job_queue WHERE status = 'processing' GROUP BY queue
            """
        )
        return cursor.fetchall()


@dataclass(frozen=True)
class StalePreview:
    timed_out: int
    requeue: int
    lost: int


_STALE_PREVIEW_SQL = """
SELECT count(*) FILTER (WHERE timed_out),
       count(*) FILTER (WHERE NOT timed_out AND lease_expired AND attempts < max_attempts),
       count(*) FILTER (WHERE NOT timed_out AND lease_expired AND attempts >= max_attempts)
FROM (
    SELECT attempts, max_attempts,
           coalesce(started_at + make_interval(secs => timeout_seconds) < now(), false)
               AS timed_out,
           coalesce(lease_expires_at < now(), false) AS lease_expired
    FROM job_queue WHERE status = 'processing'
) AS running
"""


def jobs_stale_preview() -> StalePreview:
    """What ``services.jobs_requeue_stale`` would do now, without doing it: running jobs
    past their timeout, then (of the rest) expired leases that go back to pending or fail
    as lost. Mirrors the reaper's SQL conditions; one query."""
    with connection.cursor() as cursor:
        cursor.execute(_STALE_PREVIEW_SQL)
        timed_out, requeue, lost = cursor.fetchone()
    return StalePreview(timed_out=timed_out, requeue=requeue, lost=lost)


# --- deleting finished jobs ------------------------------------------------------------


def deletable_statuses(requested: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split requested statuses into ``(final ones, refused ones)``: pending and processing
    jobs are never deleted, whatever an operator asks. Unknown names raise ``ValueError``."""
    requested = [status.strip() for status in requested if status.strip()]
    unknown = sorted(set(requested) - set(JobStatus.values))
    if unknown:
        raise ValueError(f"unknown status: {', '.join(unknown)}")
    final = [status for status in JobStatus.values if status in FINAL_STATUSES]
    return (
        [status for status in final if status in requested],
        [status for status in requested if status not in FINAL_STATUSES],
    )


def cleanup_cutoff(older_than: timedelta) -> datetime:
    """``now() - older_than`` by the database's clock."""
    return _db_now() - older_than


def _finished_before(*, statuses: list[str], cutoff: datetime, tenant) -> QuerySet[Job]:
    final = [status for status in statuses if status in FINAL_STATUSES]
    return Job.objects.filter(_tenant_filter(tenant), status__in=final, completed_at__lt=cutoff)


def jobs_count_finished(*, statuses: list[str], cutoff: datetime, tenant=None) -> dict[str, int]:
    """What ``jobs_delete_finished`` would delete, per status (the dry run)."""
    rows = (
        _finished_before(statuses=statuses, cutoff=cutoff, tenant=tenant)
        .values("status")
        .annotate(n=Count("*"))
        .order_by()
    )
    return {row["status"]: row["n"] for row in rows}


_DELETE_BATCH_SQL = """
WITH doomed AS (
    SELECT id FROM job_queue
    WHERE status = ANY(%(statuses)s) AND completed_at < %(cutoff)s
      AND (%(tenant_id)s::bigint IS NULL OR tenant_id = %(tenant_id)s::bigint)
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM job_queue AS job USING doomed
WHERE job.id = doomed.id AND job.status = ANY(%(statuses)s)
RETURNING job.status
"""


def jobs_delete_finished(
    *, statuses: list[str], cutoff: datetime, tenant=None, batch_size: int = 1000
) -> Iterator[dict[str, int]]:
    """Delete jobs in final ``statuses`` that finished before ``cutoff``, in batches.

    Yields the counts per status of each batch after its transaction has committed, so
    locks are held for one batch only and workers and the API carry on meanwhile. Rows
    locked by someone else (e.g. a staff retry in progress) are skipped, and each row's
    status is re-checked by the DELETE itself: a pending or processing job is never
    deleted, whatever ``statuses`` says. Stops when a batch deletes nothing.
    """
    final = [status for status in statuses if status in FINAL_STATUSES]
    if not final:
        return
    params = {
        "statuses": final,
        "cutoff": cutoff,
        "tenant_id": getattr(tenant, "pk", None),
        "batch_size": batch_size,
    }
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_DELETE_BATCH_SQL, params)
            rows = cursor.fetchall()
        if not rows:
            return
        batch: dict[str, int] = {}
        for (status,) in rows:
            batch[status] = batch.get(status, 0) + 1
        yield batch


def job_delete_finished(*, job_id: uuid.UUID, tenant=None) -> bool:
    """Delete one finished job (admin delete). False when it is not final any more (e.g.
    retried meanwhile) or not in ``tenant``."""
    jobs = Job.objects.filter(_tenant_filter(tenant), id=job_id, status__in=FINAL_STATUSES)
    deleted, _ = jobs.delete()
    return bool(deleted)
