"""Every write of jobs: each change of a job's state, and deleting finished jobs. Nothing
else writes ``Job.status``.

Each transition is one SQL statement guarded by the state it expects (compare-and-set):
when it matches no row, another actor won, and the caller is told so through the return
value. Times are PostgreSQL's ``now()``, never a worker's clock.

Scoped writes take ``tenant`` first, keyword-only, with no default: ``job_enqueue`` needs a
``Tenant``; staff operations (cancel, retry, run now, deletes) also accept ``ALL_TENANTS``
(``accounts.roles``). Anything else, None included, raises ``TypeError``. With a ``Tenant``,
cancel, retry, run now and the admin's delete reach no internal job
(``conditions.reachable_jobs``). A worker's writes
are scoped by ``worker_id`` (the jobs it owns); the reaper covers every tenant.
"""

import contextlib
import functools
import hashlib
import json
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import Error, IntegrityError, connection, transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, Value, When
from django.db.models.functions import Now
from psycopg import pq

from accounts.roles import ALL_TENANTS
from core import tracing
from jobs import sql
from jobs.conditions import reachable_jobs
from jobs.exceptions import IdempotencyConflict, InvalidTransition, JobNotFound, JobQuotaExceeded
from jobs.flow.claim import Candidate, admission_params
from jobs.models import FINAL_STATUSES, Job, JobStatus, ReaperError
from jobs.registry import get_job_type, limits_in_use
from jobs.signals import JobOutcome
from tenants.resolution import tenants_by_id
from tenants.scope import one_tenant
from tenants.search_path import without_search_path

NOTIFY_CHANNEL = "job_queue"


def request_fingerprint(*, type: str, payload: dict, run_at=None, priority: int = 0) -> str:
    """A stable hash of what a client asked for, to compare idempotent retries."""
    canonical = json.dumps(
        {
            "type": type,
            "payload": payload,
            "priority": priority,
            "run_at": run_at.isoformat() if run_at else None,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def job_enqueue(
    *,
    tenant,
    type: str,
    payload: dict,
    created_by=None,
    queue: str | None = None,
    priority: int = 0,
    run_at: datetime | None = None,
    idempotency_key: str = "",
    system_key: str = "",
    quota: int | None = None,
) -> Job:
    """Create a pending job of a registered type and wake an idle worker.

    ``queue`` defaults to the job type's (``JOBS_TYPES``); the job is ``internal`` if its
    type is. The payload must already be validated (``JobType.validate_payload``). The
    NOTIFY is sent in the same transaction, so workers only hear of committed jobs. A
    duplicate ``idempotency_key`` (a client's, see ``job_enqueue_once``) or ``system_key``
    (the platform's own: schedule ticks, webhook deliveries) of the tenant raises
    ``IntegrityError``; the two never meet. With a ``quota`` (the API's), raises
    ``JobQuotaExceeded`` if the tenant already has that many unfinished jobs.
    """
    tenant = one_tenant(tenant)
    job_type = get_job_type(type)
    queue = queue or job_type.queue
    with transaction.atomic():
        _within_quota(tenant, 1, quota)
        job = Job(
            tenant=tenant,
            created_by=created_by,
            type=type,
            payload=payload,
            queue=queue,
            priority=priority,
            max_attempts=job_type.max_attempts,
            timeout_seconds=job_type.timeout_seconds,
            internal=job_type.internal,
            **_budget_fields(job_type, tenant.pk, payload),
            idempotency_key=idempotency_key,
            system_key=system_key,
            traceparent=tracing.current_traceparent(),
            request_fingerprint=(
                request_fingerprint(type=type, payload=payload, run_at=run_at, priority=priority)
                if idempotency_key
                else ""
            ),
        )
        if run_at is not None:
            job.run_at = run_at
        job.save(force_insert=True)  # created_at and run_at come back from PostgreSQL
        _notify_workers(queue)
    return job


def job_enqueue_once(*, tenant, idempotency_key: str, **request) -> tuple[Job, bool]:
    """``job_enqueue`` guarded by the client's ``Idempotency-Key``.

    Within ``JOBS_IDEMPOTENCY_TTL`` of the first request, the same key and the same request
    (type, payload, run_at, priority) return the existing job with ``created=False``; the
    same key with a different request raises ``IdempotencyConflict``. Keys are scoped to
    the tenant. Concurrent first requests are settled by the unique index: one inserts, the
    others return its job.
    """
    tenant = one_tenant(tenant)
    fingerprint = request_fingerprint(
        type=request["type"],
        payload=request["payload"],
        run_at=request.get("run_at"),
        priority=request.get("priority", 0),
    )
    keyed = Job.objects.filter(tenant=tenant, idempotency_key=idempotency_key)
    for _ in range(3):
        existing = keyed.first()
        if existing is not None:
            if not keyed.filter(created_at__gte=_idempotency_cutoff()).exists():
                # An expired key may be used again: release it from the old job.
                keyed.filter(pk=existing.pk).update(idempotency_key="")
            elif existing.request_fingerprint != fingerprint:
                raise IdempotencyConflict(idempotency_key)
            else:
                return existing, False
        try:
            with transaction.atomic():
                return job_enqueue(tenant=tenant, idempotency_key=idempotency_key, **request), True
        except IntegrityError:
            continue  # a concurrent request with this key won the insert: read its job
    raise IdempotencyConflict(idempotency_key)


def batch_fingerprint(items: list[dict]) -> str:
    """A stable hash of a whole batch (each item as ``request_fingerprint`` sees it)."""
    parts = [
        request_fingerprint(
            type=item["type"],
            payload=item["payload"],
            run_at=item.get("run_at"),
            priority=item.get("priority", 0),
        )
        for item in items
    ]
    return hashlib.sha256(("batch:" + ",".join(parts)).encode()).hexdigest()


def jobs_enqueue_batch(
    *,
    tenant,
    items: list[dict],
    created_by=None,
    idempotency_key: str = "",
    quota: int | None = None,
) -> tuple[list[Job], bool]:
    """Create the pending jobs ``items`` (each ``type``, validated ``payload``, optional
    ``run_at`` and ``priority``) in one INSERT and wake workers with one NOTIFY; returns
    them in the items' order and ``created``.

    The jobs share a ``batch_id`` and get ids in ascending order, so the batch reads back
    in order. With an ``idempotency_key`` the first job carries it and the whole batch's
    fingerprint: within ``JOBS_IDEMPOTENCY_TTL`` the same key and the same batch return the
    stored jobs with ``created=False``; the same key with anything else (another batch, a
    single job) raises ``IdempotencyConflict``. With a ``quota``, raises
    ``JobQuotaExceeded`` (nothing stored) if the jobs would take the tenant's unfinished
    jobs beyond it.
    """
    tenant = one_tenant(tenant)
    fingerprint = batch_fingerprint(items) if idempotency_key else ""
    keyed = Job.objects.filter(tenant=tenant, idempotency_key=idempotency_key)
    for _ in range(3):
        if idempotency_key:
            existing = keyed.first()
            if existing is not None:
                if not keyed.filter(created_at__gte=_idempotency_cutoff()).exists():
                    keyed.filter(pk=existing.pk).update(idempotency_key="")
                elif existing.batch_id is None or existing.request_fingerprint != fingerprint:
                    raise IdempotencyConflict(idempotency_key)
                else:
                    batch = Job.objects.filter(tenant=tenant, batch_id=existing.batch_id)
                    return list(batch.order_by("id")), False
        try:
            jobs = _insert_batch(tenant, items, created_by, idempotency_key, fingerprint, quota)
            return jobs, True
        except IntegrityError:
            continue  # a concurrent request with this key won the insert: read its jobs
    raise IdempotencyConflict(idempotency_key)


def _insert_batch(tenant, items, created_by, idempotency_key, fingerprint, quota) -> list[Job]:
    ids = sorted(uuid.uuid4() for _ in items)
    traceparent = tracing.current_traceparent()
    jobs = []
    for index, (job_id, item) in enumerate(zip(ids, items, strict=True)):
        job_type = get_job_type(item["type"])
        job = Job(
            id=job_id,
            tenant=tenant,
            created_by=created_by,
            type=item["type"],
            payload=item["payload"],
            queue=job_type.queue,
            priority=item.get("priority", 0),
            max_attempts=job_type.max_attempts,
            timeout_seconds=job_type.timeout_seconds,
            internal=job_type.internal,
            **_budget_fields(job_type, tenant.pk, item["payload"]),
            batch_id=ids[0],
            idempotency_key=idempotency_key if index == 0 else "",
            request_fingerprint=fingerprint if index == 0 else "",
            traceparent=traceparent,
        )
        if item.get("run_at") is not None:
            job.run_at = item["run_at"]
        jobs.append(job)
    with transaction.atomic():
        _within_quota(tenant, len(jobs), quota)
        # One INSERT; created_at and run_at (database defaults) come back from PostgreSQL.
        Job.objects.bulk_create(jobs)
        _notify_workers(",".join(sorted({job.queue for job in jobs})))
    return jobs


def _budget_fields(job_type, tenant_id: int, payload: dict) -> dict:
    """A new job's flow-control budgets (``Job.limit_keys``, ``Job.limit_units``)."""
    taken = job_type.budgets(tenant_id, payload)
    return {
        "limit_keys": [budget.key for budget in taken],
        "limit_units": [budget.units for budget in taken],
    }


def _within_quota(tenant, count: int, quota: int | None) -> None:
    """Raise ``JobQuotaExceeded`` if ``count`` more jobs would give ``tenant`` more than
    ``quota`` unfinished (pending or processing) jobs it can see; nothing when ``quota`` is
    None. Call in the inserting transaction: the tenant's advisory lock taken here is held
    until COMMIT, so concurrent submits of one tenant count one after the other (each
    count's snapshot starts after the last holder committed) and never overshoot. Not
    ``tenants.scope.tenant_lock``: the API's database role may only read the tenant row,
    not lock it."""
    if quota is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(sql.LOCK_TENANT_QUOTA, [f"job_queue.quota:{tenant.pk}"])
    unfinished = Job.objects.filter(
        reachable_jobs(tenant), status__in=[JobStatus.PENDING, JobStatus.PROCESSING]
    )
    if unfinished.values("pk")[:quota].count() + count > quota:
        raise JobQuotaExceeded(quota)


def _idempotency_cutoff():
    return ExpressionWrapper(Now() - settings.JOBS_IDEMPOTENCY_TTL, output_field=DateTimeField())


def _notify_workers(queue: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql.NOTIFY_WORKERS, [NOTIFY_CHANNEL, queue])


# The longest a claim under flow control may leave its transaction idle between statements,
# in milliseconds (sql.CANDIDATES): far above a healthy claim's pause, far below the
# network's own timeout (DB_NETWORK_TIMEOUT), which a cut-off worker's locks would last.
CLAIM_IDLE_TIMEOUT_MS = 3000


class ClaimedJobs(list):
    """The jobs a claim took (a list, in run order), and ``retry_in``: the seconds until a
    rate budget that held a job back has a token again (None: none did)."""

    retry_in: float | None = None


def job_claim(*, worker_id: str, queues: list[str], limit: int = 1) -> ClaimedJobs:
    """Claim up to ``limit`` runnable jobs for ``worker_id`` and return them.

    One short transaction: rows another worker has locked are skipped (``SKIP LOCKED``),
    inactive and paused tenants' jobs, paused queues and types are left pending, tenants
    are interleaved and capped at ``JOBS_MAX_RUNNING_PER_TENANT`` running jobs, a job is
    taken only within the budgets of flow control's limits it consumes (``jobs.flow.claim``;
    the others stay pending, no attempt spent), claimed rows get a lease of
    ``JOBS_LEASE_SECONDS`` and an open attempt. Run the handlers after this returns, never
    inside the claiming transaction.
    """
    cap = settings.JOBS_MAX_RUNNING_PER_TENANT
    params = {
        "queues": list(queues),
        "limit": limit,
        "cap": cap,
        "worker_id": worker_id,
        "lease": settings.JOBS_LEASE_SECONDS,
        "ageing": settings.JOBS_PRIORITY_AGEING_SECONDS,
        "idle_timeout": str(CLAIM_IDLE_TIMEOUT_MS),
    }
    retry_in = None
    if cap is None and not limits_in_use():
        # One statement, which is its own transaction: one round trip. raw() maps the
        # RETURNING columns onto Job fields, converters included.
        jobs = list(Job.objects.raw(sql.CLAIM, params))
    elif cap is None:
        jobs, retry_in = _claim_within_limits(params, capped=False)
    else:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql.LOCK_PENDING_TENANTS)
                params["tenants"] = [row[0] for row in cursor.fetchall()]
            if not limits_in_use():
                jobs = list(Job.objects.raw(sql.CAPPED_CLAIM, params))
            else:
                jobs, retry_in = _claim_within_limits(params, capped=True)
    # Claimed rows come back whole; tenants come from a per-process cache, so a claim is
    # one round trip however many jobs it takes.
    tenants = tenants_by_id({job.tenant_id for job in jobs})
    for job in jobs:
        job.tenant = tenants[job.tenant_id]
    claimed = ClaimedJobs(sorted(jobs, key=lambda job: (-job.priority, job.run_at, job.created_at)))
    claimed.retry_in = retry_in
    return claimed


def _claim_within_limits(params: dict, *, capped: bool) -> tuple[list[Job], float | None]:
    """The claim under flow control (``jobs.flow.claim``): the candidates, of which those no
    budget could hold back are taken at once, then admission of the rest and their take
    (only when the first statement left free slots and candidates for them).

    Outside a transaction it is a transaction of its own whose ``BEGIN`` and ``COMMIT``
    travel with its statements, each round trip one simple query: ``BEGIN`` and the
    candidates; then, if any are left to admit, admission and the take with ``COMMIT``
    (else ``COMMIT`` alone): two round trips. Inside the caller's transaction (the capped
    claim's), the same statements without ``BEGIN`` and ``COMMIT``. The statements name the
    public tables they read, so no tenant's search path is applied to them."""
    own = connection.get_autocommit()
    with without_search_path(), connection.cursor() as cursor:
        try:
            return _claim_admitted(cursor, params, capped=capped, own=own)
        except BaseException:
            if own and connection.connection.info.transaction_status != pq.TransactionStatus.IDLE:
                with contextlib.suppress(Error):  # a connection lost ends its transaction
                    cursor.execute("ROLLBACK")
            raise


def _claim_admitted(cursor, params: dict, *, capped: bool, own: bool):
    """``_claim_within_limits`` on ``cursor``; ``own``: send its ``BEGIN`` and ``COMMIT``."""
    cursor.execute(
        ("BEGIN;" if own else "") + (sql.CAPPED_CANDIDATES if capped else sql.CANDIDATES), params
    )
    if own:
        cursor.nextset()  # past BEGIN's result
    # Rows: a taken job's whole row (``taken`` true), or a candidate's id, tenant, budgets,
    # plan and overrides; the last row: the spent budgets' keys and the first spent rate
    # budget's refill.
    rows = cursor.fetchall()
    last = rows.pop()
    blocked, refill = last[2], last[6]
    jobs = _jobs_of_rows(cursor, [row for row in rows if row[7]])
    candidates = [Candidate.from_row(row) for row in rows if not row[7]]
    free = params["limit"] - len(jobs)
    # The last round trip ends with the spent budgets' marks (when any) and COMMIT (own).
    ending = ([sql.MARK_THROTTLED] if blocked else []) + (["COMMIT"] if own else [])
    if not (free and candidates):
        if ending:
            cursor.execute(";".join(ending), {"blocked": blocked} if blocked else None)
        return jobs, refill
    cursor.execute(
        ";".join([sql.ADMIT_AND_TAKE, *ending]),
        {**params, **admission_params(candidates, free), "blocked": blocked},
    )
    # Rows: admission's retry, whether the row holds a job taken, the job's columns.
    rows = cursor.fetchall()
    retry_in = min((s for s in (refill, rows[0][0]) if s is not None), default=None)
    return jobs + _jobs_of_rows(cursor, [row for row in rows if row[1]]), retry_in


@functools.cache
def _job_loader(columns: tuple[str, ...]) -> tuple:
    """How a row of ``columns`` (holding every column of ``job_queue``) becomes a Job: the
    fields' names in model order, where each is in the row, and the converters of those
    that have any (the JSON columns, which the backend hands over as text)."""
    fields = Job._meta.concrete_fields
    converters = tuple(
        (index, field.get_col(Job._meta.db_table), found)
        for index, field in enumerate(fields)
        if (found := field.get_db_converters(connection))
    )
    order = tuple(columns.index(field.column) for field in fields)
    return tuple(field.attname for field in fields), order, converters


def _jobs_of_rows(cursor, rows) -> list[Job]:
    """The claimed rows of ``cursor``'s current result as jobs, built as the ORM builds a
    loaded row (``Model.from_db``, the columns' own converters) without a queryset's
    per-row machinery."""
    if not rows:
        return []
    names, order, converters = _job_loader(tuple(column.name for column in cursor.description))
    jobs = []
    for row in rows:
        values = [row[index] for index in order]
        for index, column, found in converters:
            for convert in found:
                values[index] = convert(values[index], column, connection)
        jobs.append(Job.from_db(connection.alias, names, values))
    return jobs


@dataclass(frozen=True)
class AttemptEnding:
    job_id: uuid.UUID
    number: int
    outcome: JobOutcome
    error: str = ""
    traceback: str = ""
    exception_class: str = ""  # dotted path of the exception the handler raised


def job_attempts_close(*, worker_id: str, endings: list[AttemptEnding]) -> None:
    """Close the open attempts of ``worker_id``'s runs with how they ended, in one
    statement; a run handed back (``handed_back``) is no attempt and its row is deleted.
    An attempt the reaper already closed (lost, timed out) is left as the reaper wrote it.
    """
    closing = [end for end in endings if end.outcome != JobOutcome.HANDED_BACK]
    back = [end for end in endings if end.outcome == JobOutcome.HANDED_BACK]
    with connection.cursor() as cursor:
        if closing:
            cursor.execute(
                sql.CLOSE_ATTEMPTS,
                [
                    [end.job_id for end in closing],
                    [end.number for end in closing],
                    [str(end.outcome) for end in closing],
                    [end.error[:500] for end in closing],
                    [end.traceback for end in closing],
                    [end.exception_class for end in closing],
                    worker_id,
                ],
            )
        if back:
            cursor.execute(
                sql.DROP_ATTEMPTS,
                [[end.job_id for end in back], [end.number for end in back], worker_id],
            )


# The error of an attempt the reaper closed, by its outcome (a cancelled one has none).
_REAPED_ERRORS = {
    JobOutcome.TIMED_OUT: ReaperError.TIMED_OUT,
    JobOutcome.LOST: ReaperError.WORKER_LOST,
}


def _close_reaped_attempts(cursor, outcomes: dict[uuid.UUID, JobOutcome]) -> None:
    """The reaper's part of the attempt history: close the current attempt of each job it
    took (``timed_out``, ``lost`` or ``cancelled``)."""
    if outcomes:
        cursor.execute(
            sql.CLOSE_REAPED_ATTEMPTS,
            [
                list(outcomes),
                [str(outcome) for outcome in outcomes.values()],
                [str(_REAPED_ERRORS.get(outcome, "")) for outcome in outcomes.values()],
            ],
        )


def _owned(job_id: uuid.UUID, worker_id: str):
    return Job.objects.filter(id=job_id, status=JobStatus.PROCESSING, worker_id=worker_id)


def jobs_complete(*, worker_id: str, results: list[tuple[uuid.UUID, object]]) -> set[uuid.UUID]:
    """Record many handlers' results in one statement, which also closes their attempts
    (``completed``); returns the ids recorded.

    Each row is guarded: a job this worker lost, or whose cancellation was requested, is
    left alone (its id is missing from the answer, its attempt open).
    Results must be JSON-serialisable; None is stored as SQL NULL.
    """
    if not results:
        return set()
    ids = [job_id for job_id, _ in results]
    documents = [None if result is None else json.dumps(result) for _, result in results]
    with connection.cursor() as cursor:
        cursor.execute(sql.COMPLETE, {"ids": ids, "results": documents, "worker_id": worker_id})
        return {row[0] for row in cursor.fetchall()}


@dataclass(frozen=True)
class KeptLines:
    """What one run of job ``job_id`` (its attempt ``attempt``) logged, to keep."""

    job_id: uuid.UUID
    attempt: int
    lines: list  # of jobs.worker.logs.LogLine


def job_logs_keep(*, runs: list[KeptLines], max_lines: int) -> int:
    """Store the lines of ``runs`` in one statement, each job's up to ``max_lines`` over all
    its attempts (later ones dropped); a job deleted meanwhile keeps none. Returns how many
    were stored."""
    rows = [(run, number, line) for run in runs for number, line in enumerate(run.lines, 1)]
    if not rows:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            sql.KEEP_LOG_LINES,
            {
                "job_ids": [run.job_id for run, _, _ in rows],
                "attempts": [run.attempt for run, _, _ in rows],
                "ordinals": [number for _, number, _ in rows],
                "logged_at": [line.logged_at for _, _, line in rows],
                "levels": [line.level for _, _, line in rows],
                "loggers": [line.logger for _, _, line in rows],
                "messages": [line.message for _, _, line in rows],
                "max_lines": max_lines,
            },
        )
        return cursor.rowcount


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter: up to base·2^(attempts-1), capped."""
    ceiling = min(
        settings.JOBS_BACKOFF_MAX,
        settings.JOBS_BACKOFF_BASE * 2 ** max(0, attempts - 1),
    )
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


@dataclass(frozen=True)
class Failure:
    """A failed attempt of job ``job_id`` (its ``attempts`` so far set the backoff)."""

    job_id: uuid.UUID
    attempts: int
    error: str
    traceback: str = ""
    retry: bool = True


def jobs_fail(*, worker_id: str, failures: list[Failure]) -> dict[uuid.UUID, str]:
    """Record many failed attempts in one statement: each job back to ``pending`` after a
    backoff while attempts remain (and ``retry``), else ``failed``. Returns the new status
    of each job recorded; a job the worker no longer owns, or whose cancellation was
    requested, is missing from the answer."""
    if not failures:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            sql.FAIL,
            {
                "ids": [failure.job_id for failure in failures],
                "errors": [failure.error[:500] for failure in failures],
                "tracebacks": [failure.traceback for failure in failures],
                "backoffs": [backoff_seconds(failure.attempts) for failure in failures],
                "retries": [failure.retry for failure in failures],
                "worker_id": worker_id,
            },
        )
        return dict(cursor.fetchall())


def job_fail(
    *,
    job_id: uuid.UUID,
    worker_id: str,
    attempts: int,
    error: str,
    traceback: str = "",
    retry: bool = True,
) -> str | None:
    """Record one failed attempt (``jobs_fail``). Returns the new status, or None if the
    worker no longer owns the job or its cancellation was requested."""
    failure = Failure(job_id, attempts, error, traceback, retry)
    return jobs_fail(worker_id=worker_id, failures=[failure]).get(job_id)


def job_snooze(*, job_id: uuid.UUID, worker_id: str, seconds: float) -> bool:
    """Hand a running job back for ``seconds`` at its handler's request: pending, run at the
    earliest then, its attempt not counted. False if ``worker_id`` does not own it, its
    cancellation was requested, or it has snoozed ``JOBS_MAX_SNOOZES`` times already."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SNOOZE,
            {
                "id": job_id,
                "worker_id": worker_id,
                "seconds": seconds,
                "max_snoozes": settings.JOBS_MAX_SNOOZES,
            },
        )
        return cursor.fetchone() is not None


def job_finish_cancelled(*, job_id: uuid.UUID, worker_id: str) -> bool:
    """End a running job whose cancellation was requested (its result, if any, is dropped)."""
    return bool(
        _owned(job_id, worker_id)
        .filter(cancel_requested=True)
        .update(
            status=JobStatus.CANCELLED,
            completed_at=Now(),
            updated_at=Now(),
            lease_expires_at=None,
        )
    )


def job_release(*, job_id: uuid.UUID, worker_id: str) -> bool:
    """Hand a running job back (worker shutting down): pending again, attempt not counted.
    A job whose cancellation was requested ends ``cancelled`` instead: pending again, its
    next claim would clear the request and run it. False if ``worker_id`` does not own it."""
    cancelling = Q(cancel_requested=True)
    return bool(
        _owned(job_id, worker_id).update(
            status=Case(
                When(cancelling, then=Value(JobStatus.CANCELLED)), default=Value(JobStatus.PENDING)
            ),
            completed_at=Case(When(cancelling, then=Now()), default=None),
            worker_id="",
            lease_expires_at=None,
            started_at=None,
            attempts=F("attempts") - 1,
            progress=None,
            progress_message="",
            updated_at=Now(),
        )
    )


def job_report_progress(
    *, job_id: uuid.UUID, worker_id: str, progress: int, message: str = ""
) -> bool:
    """Store progress of a running job; False if ``worker_id`` no longer owns it."""
    return bool(
        _owned(job_id, worker_id).update(
            progress=progress, progress_message=message, updated_at=Now()
        )
    )


@dataclass(frozen=True)
class WorkerCard:
    """What a worker registers about itself (``jobs.models.WorkerProcess``): its pools map
    each pool's comma-joined queues to its threads."""

    worker_id: str
    host: str
    pid: int
    pools: dict[str, int]
    version: str


@dataclass(frozen=True)
class HeartbeatResult:
    renewed: set[uuid.UUID]
    cancel_requested: set[uuid.UUID]


def worker_beat(*, card: WorkerCard, job_ids: list[uuid.UUID]) -> HeartbeatResult:
    """A worker's heartbeat, in one statement: register the worker (or refresh its row of
    the registry: its last beat, the jobs it holds) and renew the leases of its jobs.

    Returns which leases were renewed (a job missing from ``renewed`` was taken from this
    worker) and which of them have a cancellation request.
    """
    params = {
        "worker_id": card.worker_id,
        "host": card.host,
        "pid": card.pid,
        "queues": [name for queues in card.pools for name in queues.split(",")],
        "pools": json.dumps(card.pools),
        "concurrency": sum(card.pools.values()),
        "version": card.version,
        "job_ids": list(job_ids),
        "lease": settings.JOBS_LEASE_SECONDS,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql.WORKER_BEAT, params)
        rows = cursor.fetchall()
    return HeartbeatResult(
        renewed={row[0] for row in rows}, cancel_requested={row[0] for row in rows if row[1]}
    )


def worker_deregister(*, worker_id: str) -> bool:
    """A clean shutdown: ``worker_id`` leaves the registry. False if it was not there."""
    with connection.cursor() as cursor:
        cursor.execute(sql.WORKER_DEREGISTER, [worker_id])
        return cursor.rowcount > 0


def workers_expire() -> list[str]:
    """Part of the reaper's round: delete the registry's rows of workers whose last beat is
    older than ``JOBS_WORKER_EXPIRY`` (killed, or cut off); their ids. A worker that comes
    back registers again at its next beat."""
    with connection.cursor() as cursor:
        cursor.execute(sql.WORKERS_EXPIRE, [settings.JOBS_WORKER_EXPIRY])
        return [row[0] for row in cursor.fetchall()]


@dataclass(frozen=True)
class CancelOutcome:
    job: Job
    finished: bool  # True: the job is now cancelled; False: a running job was asked to stop


def job_cancel(*, tenant, job_id: uuid.UUID) -> CancelOutcome:
    """Cancel a job of ``tenant`` (or ``ALL_TENANTS``): a pending job ends ``cancelled`` at
    once; a processing job gets ``cancel_requested`` and ends ``cancelled`` when its worker
    notices (within a heartbeat).

    Raises ``JobNotFound`` (also for another tenant's job, and for an internal job unless
    ``ALL_TENANTS``) or ``InvalidTransition`` for a job that already ended.
    """
    scoped = Job.objects.filter(reachable_jobs(tenant), id=job_id)
    if scoped.filter(status=JobStatus.PENDING).update(
        status=JobStatus.CANCELLED, completed_at=Now(), updated_at=Now()
    ):
        return CancelOutcome(job=scoped.get(), finished=True)
    if scoped.filter(status=JobStatus.PROCESSING).update(cancel_requested=True, updated_at=Now()):
        return CancelOutcome(job=scoped.get(), finished=False)
    job = scoped.first()
    if job is None:
        raise JobNotFound(job_id)
    if job.status == JobStatus.PROCESSING:  # claimed between the two UPDATEs: try again
        return job_cancel(tenant=tenant, job_id=job_id)
    raise InvalidTransition(f"A {job.status} job cannot be cancelled.")


@dataclass(frozen=True)
class ReapResult:
    requeued: list[uuid.UUID]
    lost: list[uuid.UUID]
    timed_out: list[uuid.UUID]
    cancelled: list[uuid.UUID]  # lease expired after a cancellation request


def jobs_requeue_stale() -> ReapResult:
    """The reaper: fail jobs past their timeout, then requeue jobs whose lease expired
    (``pending`` while attempts remain, else ``failed`` with ``"worker lost"``; ``cancelled``
    when their cancellation was requested).

    Safe to run from every worker at once: each UPDATE re-checks its condition on the
    locked row, so a job is reaped once.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.TIME_OUT, {"timed_out": ReaperError.TIMED_OUT})
        timed_out = [row[0] for row in cursor.fetchall()]
        cursor.execute(sql.REQUEUE_STALE, {"worker_lost": ReaperError.WORKER_LOST})
        rows = cursor.fetchall()
        reaped = dict.fromkeys(timed_out, JobOutcome.TIMED_OUT)
        for job_id, status in rows:
            reaped[job_id] = (
                JobOutcome.CANCELLED if status == JobStatus.CANCELLED else JobOutcome.LOST
            )
        _close_reaped_attempts(cursor, reaped)
    return ReapResult(
        requeued=[row[0] for row in rows if row[1] == JobStatus.PENDING],
        lost=[row[0] for row in rows if row[1] == JobStatus.FAILED],
        timed_out=timed_out,
        cancelled=[row[0] for row in rows if row[1] == JobStatus.CANCELLED],
    )


def job_time_out(*, job_id: uuid.UUID, worker_id: str) -> bool:
    """The reaper's time-out, for one run of ``worker_id`` that passed its job's timeout
    (its worker stops waiting for the handler): fails the job ``"timed out"`` and closes
    its attempt. False when the run no longer owns the job, or when the database's clock
    says it still has time."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            sql.TIME_OUT_RUN,
            {"job_id": job_id, "worker_id": worker_id, "timed_out": ReaperError.TIMED_OUT},
        )
        timed_out = [row[0] for row in cursor.fetchall()]
        _close_reaped_attempts(cursor, dict.fromkeys(timed_out, JobOutcome.TIMED_OUT))
    return bool(timed_out)


def _retried() -> dict:
    """The fields a staff retry sets: a fresh pending job, due now (attempts reset)."""
    return {
        "status": JobStatus.PENDING,
        "attempts": 0,
        "result": None,
        "error": "",
        "error_traceback": "",
        "completed_at": None,
        "started_at": None,
        "run_at": Now(),
        "cancel_requested": False,
        "progress": None,
        "progress_message": "",
        "worker_id": "",
        "lease_expires_at": None,
        "updated_at": Now(),
    }


RETRYABLE = [JobStatus.FAILED, JobStatus.CANCELLED]


def job_retry(*, tenant, job_id: uuid.UUID) -> Job:
    """Staff retry: a failed or cancelled job of ``tenant`` (or ``ALL_TENANTS``) becomes a
    fresh pending job (attempts reset).

    Raises ``JobNotFound`` (internal jobs too, unless ``ALL_TENANTS``) or
    ``InvalidTransition`` (the job is not failed/cancelled).
    """
    jobs = Job.objects.filter(reachable_jobs(tenant), id=job_id)
    with transaction.atomic():
        changed = jobs.filter(status__in=RETRYABLE).update(**_retried())
        job = jobs.first()
        if job is None:
            raise JobNotFound(job_id)
        if not changed:
            raise InvalidTransition(f"A {job.status} job cannot be retried.")
        _notify_workers(job.queue)
    return job


@dataclass(frozen=True)
class BatchOutcome:
    """What a change of many jobs did: ``done`` changed at once, ``asked`` (cancel only)
    running jobs asked to stop, ``skipped`` in no state for the change (or gone)."""

    done: int
    asked: int
    skipped: int


def jobs_retry(*, tenant, job_ids: list[uuid.UUID]) -> BatchOutcome:
    """``job_retry`` for each of ``job_ids`` of ``tenant`` (or ``ALL_TENANTS``) at once: one
    guarded UPDATE, then one wake-up per queue that got jobs back."""
    with transaction.atomic():
        retried = Job.objects.filter(
            reachable_jobs(tenant), id__in=job_ids, status__in=RETRYABLE
        ).update(**_retried())
        if retried:
            queues = Job.objects.filter(id__in=job_ids, status=JobStatus.PENDING)
            for queue in queues.values_list("queue", flat=True).distinct().order_by():
                _notify_workers(queue)
    return BatchOutcome(done=retried, asked=0, skipped=len(job_ids) - retried)


def jobs_cancel(*, tenant, job_ids: list[uuid.UUID]) -> BatchOutcome:
    """``job_cancel`` for each of ``job_ids`` of ``tenant`` (or ``ALL_TENANTS``): pending
    ones end cancelled, running ones are asked to stop; two guarded UPDATEs."""
    scoped = Job.objects.filter(reachable_jobs(tenant), id__in=job_ids)
    cancelled = scoped.filter(status=JobStatus.PENDING).update(
        status=JobStatus.CANCELLED, completed_at=Now(), updated_at=Now()
    )
    asked = scoped.filter(status=JobStatus.PROCESSING, cancel_requested=False).update(
        cancel_requested=True, updated_at=Now()
    )
    return BatchOutcome(done=cancelled, asked=asked, skipped=len(job_ids) - cancelled - asked)


def jobs_delete_chosen(*, tenant, job_ids: list[uuid.UUID]) -> BatchOutcome:
    """``job_delete_finished`` for each of ``job_ids`` of ``tenant`` (or ``ALL_TENANTS``):
    finished ones are deleted, others skipped; one guarded DELETE."""
    _, per_model = Job.objects.filter(
        reachable_jobs(tenant), id__in=job_ids, status__in=FINAL_STATUSES
    ).delete()
    deleted = per_model.get(Job._meta.label, 0)
    return BatchOutcome(done=deleted, asked=0, skipped=len(job_ids) - deleted)


def job_run_now(*, tenant, job_id: uuid.UUID) -> Job:
    """Make a pending job of ``tenant`` (or ``ALL_TENANTS``) scheduled for later runnable at
    once.

    Raises ``JobNotFound`` (internal jobs too, unless ``ALL_TENANTS``) or
    ``InvalidTransition``.
    """
    jobs = Job.objects.filter(reachable_jobs(tenant), id=job_id)
    with transaction.atomic():
        changed = jobs.filter(status=JobStatus.PENDING, run_at__gt=Now()).update(
            run_at=Now(), updated_at=Now()
        )
        job = jobs.first()
        if job is None:
            raise JobNotFound(job_id)
        if not changed:
            raise InvalidTransition("Only a pending job scheduled for later can be run now.")
        _notify_workers(job.queue)
    return job


# --- deleting finished jobs --------------------------------------------------------------
#
# Deleting is not a transition, but each delete is guarded like one, by the final status it
# expects: a pending or processing job is never deleted.


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


def jobs_delete_finished(
    *, tenant, statuses: list[str], cutoff: datetime, batch_size: int = 1000
) -> Iterator[dict[str, int]]:
    """Delete jobs of ``tenant`` (or ``ALL_TENANTS``) in final ``statuses`` that finished
    before ``cutoff``, in batches.

    Yields the counts per status of each batch after its transaction has committed, so
    locks are held for one batch only and workers and the API carry on meanwhile. Rows
    locked by someone else (e.g. a staff retry in progress) are skipped, and each row's
    status is re-checked by the DELETE itself: a pending or processing job is never
    deleted, whatever ``statuses`` says. Stops when a batch deletes nothing. The scope is
    checked at the call, before the first batch is asked for.
    """
    params = {
        "statuses": [status for status in statuses if status in FINAL_STATUSES],
        "cutoff": cutoff,
        "batch_size": batch_size,
    }
    if tenant is ALL_TENANTS:
        statement = sql.DELETE_FINISHED_BATCH.format(tenant_filter="")
    else:
        params["tenant_id"] = one_tenant(tenant).pk
        statement = sql.DELETE_FINISHED_BATCH.format(tenant_filter="AND tenant_id = %(tenant_id)s")
    return _delete_batches(statement, params)


def _delete_batches(statement: str, params: dict) -> Iterator[dict[str, int]]:
    if not params["statuses"]:
        return
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        if not rows:
            return
        batch: dict[str, int] = {}
        for (status,) in rows:
            batch[status] = batch.get(status, 0) + 1
        yield batch


def job_delete_finished(*, tenant, job_id: uuid.UUID) -> bool:
    """Delete one finished job of ``tenant`` (or ``ALL_TENANTS``): the admin's delete.
    False when it is not final (any more, e.g. retried meanwhile), not in ``tenant`` or
    internal (unless ``ALL_TENANTS``)."""
    jobs = Job.objects.filter(reachable_jobs(tenant), id=job_id, status__in=FINAL_STATUSES)
    deleted, _ = jobs.delete()
    return bool(deleted)


# --- per-tenant bounds on tenant-created rows (schedules, webhook endpoints) ------------------
