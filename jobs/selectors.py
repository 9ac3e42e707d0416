"""Every read of jobs: the API's (one tenant), the poll's, and staff and operators'.

Scoped reads take ``tenant`` first, keyword-only, with no default. Reads for a tenant's
clients (``job_get``, ``job_list``, ``job_poll_get``) need a ``Tenant``; staff reads also
accept ``ALL_TENANTS`` (``accounts.roles``). Anything else, None included, raises
``TypeError`` (``jobs.conditions``). What a client or a tenant's staff reads is
``conditions.reachable_jobs``: internal jobs are missing to them. Platform-wide reads for
operators and metrics (``jobs_stale_preview``, ``live_queue_by_queue``, ``workers_live``) take
no scope.
"""

import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVectorExact
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Min,
    Q,
    QuerySet,
    TextField,
    When,
)
from django.db.models.functions import Cast, Length, Now
from django_tenants.utils import get_public_schema_name

from accounts.models import User
from accounts.roles import ALL_TENANTS
from core.clock import db_now
from jobs import sql
from jobs.conditions import reachable_jobs
from jobs.exceptions import JobNotFound
from jobs.flow import selectors as flow_selectors
from jobs.models import (
    FINAL_STATUSES,
    REPRESENTATION_VERSION,
    SEARCH_VECTOR,
    Job,
    JobAttempt,
    JobLogLine,
    JobStatus,
    TenantLexemeQuery,
    WorkerProcess,
)
from jobs.registry import registered_type_names
from jobs.signals import JobOutcome
from tenants.scope import one_tenant, tenant_scope
from tenants.search_path import without_search_path

# --- a tenant's jobs (the API) ---------------------------------------------------------


def job_get(*, tenant, job_id: uuid.UUID, include_internal: bool = False) -> Job:
    """The tenant's job ``job_id``; ``JobNotFound`` if missing, another tenant's, or internal
    (``include_internal``: the worker's own reads, never a client's)."""
    tenant = one_tenant(tenant)
    scope = tenant_scope(tenant) if include_internal else reachable_jobs(tenant)
    job = Job.objects.filter(scope, id=job_id).first()
    if job is None:
        raise JobNotFound(job_id)
    return job


def attempt_outcome(*, job_id: uuid.UUID, number: int) -> JobOutcome | None:
    """How attempt ``number`` of job ``job_id`` ended as recorded (by its worker or the
    reaper); None while it is open, or when it (or its job) is gone. The worker's reads."""
    outcome = (
        JobAttempt.objects.filter(job_id=job_id, number=number)
        .values_list("outcome", flat=True)
        .first()
    )
    return JobOutcome(outcome) if outcome else None


# The longest ``result`` and ``payload`` a list item carries, each in characters of its
# JSON text: a page of 200 jobs whose results are each as large as a request body would be
# megabytes. A longer one is left out of the list (``GET /api/jobs/{id}`` has it).
LIST_RESULT_MAX_CHARS = 1024
LIST_PAYLOAD_MAX_CHARS = LIST_RESULT_MAX_CHARS


def job_list(
    *,
    tenant,
    statuses: list[str] | None = None,
    type: str | None = None,
    created_by: User | None = None,
) -> QuerySet[Job]:
    """The tenant's jobs but internal ones, newest first, optionally filtered by statuses
    (any of them), type and creator, as a list shows them: without the traceback, and
    ``result`` and ``payload`` only as ``listed_result`` and ``listed_payload``, set when
    at most ``LIST_RESULT_MAX_CHARS`` / ``LIST_PAYLOAD_MAX_CHARS`` long (else None, and
    ``result_omitted`` / ``payload_omitted`` is true). PostgreSQL sends no longer value."""
    jobs = Job.objects.filter(reachable_jobs(one_tenant(tenant)))
    if statuses:
        jobs = jobs.filter(status__in=statuses)
    if type:
        jobs = jobs.filter(type=type)
    if created_by is not None:
        jobs = jobs.filter(created_by=created_by)
    result_omitted = Q(result_chars__gt=LIST_RESULT_MAX_CHARS)
    payload_omitted = Q(payload_chars__gt=LIST_PAYLOAD_MAX_CHARS)
    return (
        jobs.defer("payload", "result", "error_traceback")
        .alias(
            result_chars=Length(Cast("result", output_field=TextField())),
            payload_chars=Length(Cast("payload", output_field=TextField())),
        )
        .annotate(
            listed_result=Case(When(result_omitted, then=None), default=F("result")),
            result_omitted=ExpressionWrapper(result_omitted, output_field=BooleanField()),
            listed_payload=Case(When(payload_omitted, then=None), default=F("payload")),
            payload_omitted=ExpressionWrapper(payload_omitted, output_field=BooleanField()),
        )
        .order_by("-created_at", "-id")
    )


@dataclass(frozen=True)
class JobLog:
    """What a job's handler logged, oldest first; ``capped`` once it holds the most lines a
    job keeps (``JOBS_LOG_MAX_LINES``), after which later lines were not kept."""

    lines: list[JobLogLine]
    capped: bool


def job_log(*, tenant, job_id: uuid.UUID) -> JobLog:
    """The lines job ``job_id`` of ``tenant`` (or ``ALL_TENANTS``) logged; ``JobNotFound``
    when the job is missing, another tenant's or (for a tenant) internal."""
    if not Job.objects.filter(reachable_jobs(tenant), id=job_id).exists():
        raise JobNotFound(job_id)
    lines = list(
        JobLogLine.objects.filter(job_id=job_id).only(
            "attempt", "logged_at", "level", "logger", "message"
        )
    )
    return JobLog(lines=lines, capped=len(lines) >= settings.JOBS_LOG_MAX_LINES)


# --- the poll ----------------------------------------------------------------------------
#
# One SQL statement returns what ``GET /api/jobs/{id}`` shows and its ETag. The ETag is
# computed by PostgreSQL from the columns the representation is made of
# (``jobs.models.REPRESENTED_COLUMNS``), so a conditional request is answered
# (304) before anything is serialized, and it changes exactly when the representation can
# change.
#
# The statement names ``public.job_queue`` explicitly and runs without django-tenants'
# ``SET search_path``: the job table lives in the public schema only, so the schema path
# cannot change what it reads, and skipping the SET saves a round trip per poll. The tenant
# filter (``REACHABLE_JOBS_SQL``: internal jobs excluded) is part of the statement, as in
# every tenant-facing read.


def _poll_sql(condition: str = "id = %s") -> str:
    """The poll's statement for the tenant's jobs matching ``condition`` (SQL; its
    parameters follow the tenant id)."""
    return sql.POLL.format(
        table=sql.public_table("job_queue"),
        waiting=sql.public_table("job_waiting"),
        condition=condition,
    )


def job_poll_get(*, tenant, job_id: uuid.UUID, alone: bool = False) -> Job:
    """The tenant's job ``job_id`` with only the represented columns loaded and ``etag`` set.

    ``alone``: the read is its request's only statement (a plain poll). If the request's
    row-security transaction is still to be opened (``tenant_row_security_on_demand``),
    the read carries it whole, BEGIN and settings to COMMIT, in one round trip.

    Raises ``JobNotFound`` when the job is missing, another tenant's or internal.
    """
    found = _poll_read(_poll_sql(), [one_tenant(tenant).pk, job_id], alone=alone)
    if not found:
        raise JobNotFound(job_id)
    return found[0]


def job_poll_unfinished(*, tenant, limit: int) -> list[Job]:
    """The tenant's newest ``limit`` pending and processing jobs, each as ``job_poll_get``
    reads one, in one statement (a tenant event stream's first events)."""
    sql = _poll_sql("status IN (%s, %s) ORDER BY created_at DESC, id DESC LIMIT %s")
    params = [one_tenant(tenant).pk, JobStatus.PENDING, JobStatus.PROCESSING, limit]
    return _poll_read(sql, params)


def _poll_read(statement: str, params: list, *, alone: bool = False) -> list[Job]:
    """The poll's rows as jobs, built as the ORM builds a loaded row (``Model.from_db``,
    the columns' own converters) without a queryset's per-row machinery: a poll is the
    hottest read of the service. ``alone``: as ``job_poll_get``'s."""
    rows = connection.read_as_transaction(statement, params) if alone else None
    if rows is None:
        with without_search_path(), connection.cursor() as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
    return [_poll_job(row) for row in rows]


@functools.cache
def _poll_converters() -> tuple:
    """``(index, column, converters)`` of each selected column that has converters (the
    JSON columns, which the backend hands over as text)."""
    found = []
    for index, name in enumerate(sql.POLL_SELECTED):
        field = Job._meta.get_field(name)
        converters = field.get_db_converters(connection)
        if converters:
            found.append((index, field.get_col(Job._meta.db_table), converters))
    return tuple(found)


@functools.cache
def _poll_model_order() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The selected columns in the model's field order (as ``Model.from_db`` takes them)
    and where each is in the row."""
    selected = [f.attname for f in Job._meta.concrete_fields if f.attname in sql.POLL_SELECTED]
    return tuple(selected), tuple(sql.POLL_SELECTED.index(name) for name in selected)


def _poll_job(row) -> Job:
    values = list(row)
    for index, column, converters in _poll_converters():
        for convert in converters:
            values[index] = convert(values[index], column, connection)
    names, order = _poll_model_order()
    job = Job.from_db(connection.alias, names, [values[index] for index in order])
    job.waiting, job.representation_digest = values[len(sql.POLL_SELECTED) :]
    return _with_etag(job)


def _with_etag(job: Job) -> Job:
    job.etag = f'"{REPRESENTATION_VERSION}-{job.representation_digest}"'
    return job


# --- staff: the admin ------------------------------------------------------------------


def jobs_for_staff(*, tenant) -> QuerySet[Job]:
    """Jobs of ``tenant`` but internal ones (or every job, for ``ALL_TENANTS``), newest
    first, with tenant and creator joined. Ordering by ``-created_at`` matches the listing
    indexes."""
    jobs = Job.objects.filter(reachable_jobs(tenant)).select_related("tenant", "created_by")
    return jobs.order_by("-created_at", "-id")


def short_id_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The UUID range covered by a hex prefix of 8+ digits (the admin's short id), so a
    prefix search is a primary-key range scan; None when ``text`` is no such prefix."""
    digits = text.replace("-", "").lower()
    if not 8 <= len(digits) <= 32 or not re.fullmatch(r"[0-9a-f]+", digits):
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def job_search(*, tenant, jobs: QuerySet[Job], text: str) -> QuerySet[Job]:
    """``jobs`` narrowed to the admin's search ``text`` (``search_condition``)."""
    return jobs.filter(search_condition(tenant=tenant, text=text))


def search_condition(*, tenant, text: str) -> Q:
    """The jobs the admin's search ``text`` finds: the words of ``text`` in their error or
    payload (``websearch_to_tsquery``: all the words, ``"a phrase"``, ``-not``), or a job
    id (full or its first 8+ hex digits), a registered job type, or the username (any
    case) of their creator among ``tenant``'s users (every user for ``ALL_TENANTS``).
    Each part is one an index serves (the full-text ``job_queue_search_idx``, the primary
    key, the type and creator indexes), so PostgreSQL ORs their bitmaps instead of reading
    the table; for one tenant, its lexeme (``jobs.models.TenantLexemeQuery``) is ANDed to the
    words, so the index returns that tenant's matches only. Blank text narrows nothing."""
    text = text.strip()
    if not text:
        return Q()
    words = SearchQuery(text, config="simple", search_type="websearch")
    if tenant is not ALL_TENANTS and re.search(r"\w", text):  # (no word: no lexeme to AND)
        words &= TenantLexemeQuery(one_tenant(tenant).pk)
    condition = Q(SearchVectorExact(SEARCH_VECTOR, words))
    if text in registered_type_names():
        condition |= Q(type=text)
    creators = User.objects.filter(tenant_scope(tenant), username__iexact=text)
    creator_ids = list(creators.values_list("pk", flat=True)[:10])
    if creator_ids:
        condition |= Q(created_by_id__in=creator_ids)
    id_range = short_id_range(text)
    if id_range is not None:
        condition |= Q(id__range=id_range)
    return condition


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


def queue_summary(*, tenant, window: timedelta = timedelta(minutes=5)) -> QueueSummary:
    """Counts per status (each stops at ``SUMMARY_COUNT_CAP + 1``), the age of the oldest
    due pending job (scheduled jobs not yet due are not late) and jobs completed and failed
    within ``window``, of ``tenant`` but internal jobs (or ``ALL_TENANTS``, all of them).
    One short query per status (each
    served by the claim, lease or cleanup index) and two for the rest; times from the
    database."""
    scoped = Job.objects.filter(reachable_jobs(tenant)).order_by()
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


# --- operators: commands and metrics ----------------------------------------------------


def live_queue_by_queue() -> list[tuple[str, str, int, datetime | None, datetime]]:
    """``(status, queue, count, oldest due pending created_at, db now)`` for the pending
    and processing jobs (the live queue) of every tenant, for metrics. One statement served
    by the partial claim and lease indexes, so its cost follows the backlog, not the
    table's history."""
    with connection.cursor() as cursor:
        cursor.execute(sql.LIVE_QUEUE)
        return cursor.fetchall()


def workers_live() -> QuerySet[WorkerProcess]:
    """The registry's live workers, every host's: those whose last beat is within
    ``JOBS_WORKER_EXPIRY`` by the database's clock (a killed worker's row lingers until the
    reaper deletes it, but is not live), by host and start, with ``since_beat`` and
    ``uptime`` (durations, by the same clock). For platform staff and operators only:
    their running jobs are every tenant's."""
    expiry = timedelta(seconds=settings.JOBS_WORKER_EXPIRY)
    return WorkerProcess.objects.filter(last_beat_at__gte=Now() - expiry).annotate(
        since_beat=ExpressionWrapper(Now() - F("last_beat_at"), output_field=DurationField()),
        uptime=ExpressionWrapper(Now() - F("started_at"), output_field=DurationField()),
    )


def worker_live_exists() -> bool:
    """Whether at least one worker is live (``workers_live``); one indexless read of a
    table with a row per worker process."""
    return workers_live().exists()


@dataclass(frozen=True)
class StalePreview:
    timed_out: int
    requeue: int
    lost: int
    cancelled: int


def jobs_stale_preview() -> StalePreview:
    """What ``services.jobs_requeue_stale`` would do now, across every tenant, without
    doing it: running jobs past their timeout, then (of the rest) expired leases that go
    back to pending, fail as lost or end cancelled. One query."""
    with connection.cursor() as cursor:
        cursor.execute(sql.STALE_PREVIEW)
        timed_out, requeue, lost, cancelled = cursor.fetchone()
    return StalePreview(timed_out=timed_out, requeue=requeue, lost=lost, cancelled=cancelled)


def cleanup_cutoff(older_than: timedelta) -> datetime:
    """``now() - older_than`` by the database's clock."""
    return db_now() - older_than


def jobs_count_finished(*, tenant, statuses: list[str], cutoff: datetime) -> dict[str, int]:
    """What ``services.jobs_delete_finished`` would delete, per status (the dry run): jobs
    of ``tenant`` (or ``ALL_TENANTS``) in the final ones of ``statuses`` that finished
    before ``cutoff``."""
    final = [status for status in statuses if status in FINAL_STATUSES]
    rows = (
        Job.objects.filter(tenant_scope(tenant), status__in=final, completed_at__lt=cutoff)
        .values("status")
        .annotate(n=Count("*"))
        .order_by()
    )
    return {row["status"]: row["n"] for row in rows}


# --- operators: manage.py jobs ----------------------------------------------------------


@dataclass(frozen=True)
class JobMatch:
    """Which jobs a listing or bulk action covers (the admin's filters and search, and
    ``manage.py jobs``); a field left empty narrows nothing. ``held``: ``"paused"`` or
    ``"throttled"`` (``jobs.flow.selectors``); ``scheduled``: pending and due later;
    ``created_from``/``created_until``: the admin's date filter (until: exclusive);
    ``created_before`` fixes a bulk action's set at its start, so jobs enqueued while it
    runs are left alone."""

    tenant_id: int | None = None
    statuses: tuple[str, ...] = ()
    type: str = ""
    queue: str = ""
    internal: bool | None = None
    has_error: bool | None = None
    scheduled: bool | None = None
    held: str = ""
    search: str = ""
    created_from: datetime | None = None
    created_until: datetime | None = None
    created_before: datetime | None = None


HELD_JOBS = {"paused": flow_selectors.paused_jobs, "throttled": flow_selectors.throttled_jobs}


def match_condition(*, tenant, match: JobMatch) -> Q:
    """``match`` as a condition on jobs, its tenant-dependent parts (creators, pauses,
    budgets) read in ``tenant``'s view. Not the scope itself: see ``jobs_matching``."""
    condition = Q()
    for field, value in (
        ("tenant_id", match.tenant_id),
        ("status__in", match.statuses),
        ("type", match.type),
        ("queue", match.queue),
        ("internal", match.internal),
        ("created_at__gte", match.created_from),
        ("created_at__lt", match.created_until),
        ("created_at__lte", match.created_before),
    ):
        if value not in (None, "", ()):
            condition &= Q(**{field: value})
    if match.has_error is not None:
        condition &= ~Q(error="") if match.has_error else Q(error="")
    if match.scheduled is not None:
        later = Q(status=JobStatus.PENDING, run_at__gt=Now())
        condition &= later if match.scheduled else ~later
    if match.held:
        condition &= HELD_JOBS[match.held](tenant=tenant)
    return condition & search_condition(tenant=tenant, text=match.search)


def jobs_matching(*, tenant, match: JobMatch) -> QuerySet[Job]:
    """``jobs_for_staff(tenant=tenant)`` (newest first, tenant joined) narrowed to
    ``match``."""
    return jobs_for_staff(tenant=tenant).filter(match_condition(tenant=tenant, match=match))


def job_ids_matching(
    *, tenant, match: JobMatch, after: uuid.UUID | None, limit: int
) -> list[uuid.UUID]:
    """The ids of at most ``limit`` jobs of ``jobs_matching`` past ``after`` in id order: one
    page of a keyset walk, so a bulk action visits any number of jobs in batches, each
    once, while its own changes move them out of ``match``."""
    jobs = jobs_matching(tenant=tenant, match=match)
    if after is not None:
        jobs = jobs.filter(id__gt=after)
    return list(jobs.order_by("id").values_list("id", flat=True)[:limit])


# The internal job type of a staff action over every job a filter matches (jobs/bulk.py).
BULK_TYPE = "jobs.bulk"


def bulk_actions(*, tenant, recent: timedelta = timedelta(minutes=30)) -> list[Job]:
    """The bulk actions (``BULK_TYPE`` jobs) started for ``tenant`` (for ``ALL_TENANTS``:
    by platform staff, on the platform's tenant) that are unfinished or ended within
    ``recent``, newest first, at most 5: what the job list shows with their progress."""
    owner = (
        Q(tenant__schema_name=get_public_schema_name())
        if tenant is ALL_TENANTS
        else Q(tenant=one_tenant(tenant))
    )
    jobs = Job.objects.filter(owner, type=BULK_TYPE).filter(
        Q(completed_at__isnull=True) | Q(completed_at__gte=Now() - recent)
    )
    return list(jobs.order_by("-created_at", "-id")[:5])


def job_for_staff(*, tenant, job_id: uuid.UUID) -> Job:
    """The job ``job_id`` as ``jobs_for_staff(tenant=tenant)`` reaches it (any job, internal
    ones included, for ``ALL_TENANTS``), with its attempts prefetched (oldest first,
    ``attempt_history``); ``JobNotFound`` otherwise."""
    jobs = jobs_for_staff(tenant=tenant).prefetch_related("attempt_history")
    job = jobs.filter(id=job_id).first()
    if job is None:
        raise JobNotFound(job_id)
    return job
