"""The job queue: one row per unit of asynchronous work, in the public schema.

Rows change state only through ``jobs.services`` (compare-and-set UPDATEs); reads that a
tenant can reach go through ``jobs.selectors``, which always filter by tenant.
"""

import uuid
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import (
    SearchQueryCombinable,
    SearchQueryField,
    SearchVector,
    SearchVectorCombinable,
    SearchVectorField,
)
from django.db import models
from django.db.models import Q
from django.utils import timezone


# The words of a job's error and payload (its JSON text, keys and values), what the admin's
# search matches (``jobs.selectors.job_search``). Full-text, not trigrams: the embedded
# PostgreSQL of ``make test`` ships no pg_trgm. The "simple" configuration keeps every word
# as written (lower-cased), with no stemming or stop words of a language. One more lexeme
# names the job's tenant (``TenantLexemeQuery`` finds it; ``#`` never survives the parser,
# so no word of a job is one): a tenant's search ANDs it in, and the index hands back that
# tenant's matches only, however common the words are in other tenants' jobs.
class TenantLexeme(SearchVectorCombinable, models.Func):
    template = "array_to_tsvector(ARRAY['#t' || %(expressions)s::text])"
    output_field = SearchVectorField()


class TenantLexemeQuery(SearchQueryCombinable, models.Func):
    """The query of one tenant's lexeme, cast as written (``to_tsquery`` would parse the
    ``#`` away): ANDed to a tenant's search words."""

    template = "(%(expressions)s)::tsquery"
    output_field = SearchQueryField()

    def __init__(self, tenant_id: int):
        super().__init__(models.Value(f"'#t{int(tenant_id)}'"))


SEARCH_VECTOR = SearchVector(
    "error", models.functions.Cast("payload", models.TextField()), config="simple"
) + TenantLexeme("tenant_id")


class JobStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class ReaperError(StrEnum):
    """The error of a job, and of its attempt, that the reaper ended (``jobs.sql``'s
    reaper statements): past its timeout, or its lease expired with no attempt left."""

    TIMED_OUT = "timed out"
    WORKER_LOST = "worker lost"


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No single-column index: job_queue_tenant_list_idx leads with tenant and serves the
    # foreign key, and a bare tenant index would tempt the planner away from the claim
    # index in the claim's walk over tenants with pending jobs.
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="jobs", db_index=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    type = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    payload = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="Short message, safe to show to the client.",
    )
    error_traceback = models.TextField(
        blank=True, default="", help_text="For staff only; never sent by the API."
    )

    queue = models.CharField(max_length=64, default="default")
    priority = models.SmallIntegerField(default=0, help_text="-100..100, higher runs first.")
    run_at = models.DateTimeField(
        db_default=models.functions.Now(), help_text="Not run before this time."
    )

    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=3)
    timeout_seconds = models.PositiveIntegerField(
        default=600, help_text="A running job past this is failed with 'timed out'."
    )

    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=200, blank=True, default="")

    worker_id = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)

    # Work the platform enqueues for itself (a webhook delivery): set from the job type
    # at enqueue (``JobType.internal``) and kept, so a later change of JOBS_TYPES cannot
    # show old rows. A tenant's clients and staff never reach an internal job
    # (``jobs.conditions.reachable_jobs``).
    internal = models.BooleanField(default=False, db_default=False, editable=False)
    # The budgets of flow control the job takes when it runs (``jobs.flow.limits.budgets``),
    # fixed at submit: keys in order and the units of each.
    limit_keys = ArrayField(
        models.CharField(max_length=100), default=list, db_default=[], blank=True, editable=False
    )
    limit_units = ArrayField(
        models.IntegerField(), default=list, db_default=[], blank=True, editable=False
    )
    # Times its handler handed it back for later without spending an attempt
    # (``jobs.exceptions.Snooze``), at most ``JOBS_MAX_SNOOZES``.
    snoozes = models.PositiveSmallIntegerField(default=0, db_default=0, editable=False)
    # The client's Idempotency-Key (``services.job_enqueue_once``).
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    # The platform's own key (a schedule's tick, a webhook delivery), unique in the tenant
    # like idempotency_key but in a space of its own that no request writes.
    system_key = models.CharField(
        max_length=255, blank=True, default="", db_default="", editable=False
    )
    # The jobs of one POST /api/jobs/batch; their ids are in the batch's order, and the
    # first carries the batch's Idempotency-Key (jobs.services.jobs_enqueue_batch).
    batch_id = models.UUIDField(null=True, blank=True, editable=False)
    # The W3C traceparent of the span that submitted the job (core.tracing), whose child
    # its runs' spans are; "" when tracing is off.
    traceparent = models.CharField(
        max_length=55, blank=True, default="", db_default="", editable=False
    )

    created_at = models.DateTimeField(db_default=models.functions.Now())
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(db_default=models.functions.Now())
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "job_queue"
        indexes = [
            # Claiming, fair across tenants: the distinct tenants with pending jobs (loose
            # index scan on the leading column), then each tenant's next runnable jobs by
            # priority and run_at. Holds pending rows only, so finished rows cost nothing.
            models.Index(
                "tenant",
                "queue",
                models.F("priority").desc(),
                "run_at",
                "created_at",
                name="job_queue_claim_idx",
                condition=Q(status="pending"),
            ),
            # Priority ageing: each tenant's longest-waiting jobs of a queue
            # (``jobs.sql``'s claim takes them beside its highest-priority ones).
            models.Index(
                "tenant",
                "queue",
                "run_at",
                "created_at",
                name="job_queue_ageing_idx",
                condition=Q(status="pending"),
            ),
            # The platform-wide job list of superusers in the admin, newest first.
            models.Index(
                models.F("created_at").desc(), models.F("id").desc(), name="job_queue_created_idx"
            ),
            # Per-tenant running counts (JOBS_MAX_RUNNING_PER_TENANT).
            models.Index("tenant", name="job_queue_running_idx", condition=Q(status="processing")),
            # Listing a tenant's jobs, newest first, internal ones apart (a tenant's list
            # skips them; platform staff filter for them).
            models.Index(
                "tenant",
                "internal",
                models.F("created_at").desc(),
                "id",
                name="job_queue_tenant_list_idx",
            ),
            # Listing a tenant's jobs of one type (?type=), newest first.
            models.Index(
                "tenant",
                "type",
                models.F("created_at").desc(),
                models.F("id").desc(),
                name="job_queue_tenant_type_idx",
            ),
            # The reaper: leases of running jobs.
            models.Index(
                "lease_expires_at", name="job_queue_lease_idx", condition=Q(status="processing")
            ),
            # The admin's search in errors and payloads (``SEARCH_VECTOR``).
            GinIndex(SEARCH_VECTOR, name="job_queue_search_idx"),
            # Cleanup of finished jobs.
            models.Index("status", "completed_at", name="job_queue_cleanup_idx"),
            # An idempotent batch's replay: its jobs.
            models.Index(
                "batch_id", name="job_queue_batch_idx", condition=Q(batch_id__isnull=False)
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                "tenant",
                "idempotency_key",
                name="job_queue_tenant_idempotency_key_uniq",
                condition=~Q(idempotency_key=""),
            ),
            models.UniqueConstraint(
                "tenant",
                "system_key",
                name="job_queue_tenant_system_key_uniq",
                condition=~Q(system_key=""),
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100), name="job_queue_priority_range"
            ),
            models.CheckConstraint(
                condition=Q(progress__isnull=True) | Q(progress__lte=100),
                name="job_queue_progress_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


# The columns of a job its representation (``job_representation``) reads that can change
# after the job is created: a poll's ETag is computed from them
# (``jobs.selectors.job_poll_get``), and migration ``0003_job_changed_notify_trigger`` sends
# ``job_changed`` on changes of the same columns (redefined by 0009 and 0026); keep the two
# in step.
REPRESENTED_COLUMNS = (
    "type",
    "status",
    "attempts",
    "progress",
    "progress_message",
    "result",
    "error",
    "started_at",
    "completed_at",
    "run_at",  # run_at, and next_attempt_at of a job waiting for its retry
    "created_by_id",  # set to NULL when the user is deleted
)
# The columns it reads that never change once the job is created: read by the poll, and
# no part of the ETag (a job's URL already names them).
FIXED_REPRESENTED_COLUMNS = ("payload", "queue", "priority")
# Bump when the representation changes what it renders from the same columns, so clients'
# cached copies stop matching.
REPRESENTATION_VERSION = "4"


def _iso(moment: datetime | None) -> str | None:
    """A moment in ISO 8601 in the current time zone, UTC as ``Z`` (as DRF writes it)."""
    if moment is None:
        return None
    text = timezone.localtime(moment).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def job_representation(
    job: Job,
    result_of: Callable[[Job], dict] | None = None,
    payload_of: Callable[[Job], dict] | None = None,
) -> dict:
    """A job as ``GET /api/jobs/{id}`` answers it (``jobs.api.serializers.JobOutputSerializer``
    documents its keys) and as a completion webhook posts it: ``id, type, status, payload,
    queue, priority, run_at, created_by, created_at`` always, every other key only in the
    states that give it. ``result_of(job)`` gives a completed job's result keys and
    ``payload_of(job)`` its payload keys (default: ``{"result": job.result}``,
    ``{"payload": job.payload}``)."""
    body = {
        "id": str(job.id),
        "type": job.type,
        "status": job.status,
        **(payload_of(job) if payload_of else {"payload": job.payload}),
        "queue": job.queue,
        "priority": job.priority,
        "run_at": _iso(job.run_at),
        "created_by": job.created_by_id,
        "created_at": _iso(job.created_at),
    }
    if job.attempts:
        body["attempts"] = job.attempts
    if job.status == JobStatus.PENDING:
        if getattr(job, "waiting", None):  # read by the poll (jobs.sql.POLL)
            body["waiting"] = job.waiting
        if job.attempts and job.error:
            body["last_error"] = job.error
            body["next_attempt_at"] = _iso(job.run_at)
    elif job.status == JobStatus.PROCESSING:
        body["started_at"] = _iso(job.started_at)
        if job.progress is not None:
            body["progress"] = job.progress
        if job.progress_message:
            body["progress_message"] = job.progress_message
    elif job.status == JobStatus.COMPLETED:
        body.update(result_of(job) if result_of else {"result": job.result})
        body["completed_at"] = _iso(job.completed_at)
    elif job.status == JobStatus.FAILED:
        body["error"] = job.error
        body["completed_at"] = _iso(job.completed_at)
    elif job.status == JobStatus.CANCELLED:
        body["cancelled_at"] = _iso(job.completed_at)
    return body


class JobAttempt(models.Model):
    """One run of a job, kept while the job is: opened at the claim (``outcome`` empty),
    closed by the worker's outcome writer or by the reaper. ``error`` is safe to show the
    client; ``traceback`` is for staff only; ``exception_class`` is the dotted path of the
    exception the handler raised (a ``TaskError``'s), empty when it raised none. A run handed
    back at shutdown is no attempt: its row is deleted. Deleted with its job."""

    # CASCADE in Python (the admin, tenant deletion) and in PostgreSQL, for the raw DELETEs
    # of finished jobs: the constraint is migration 0009's, with ON DELETE CASCADE.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="attempt_history", db_constraint=False
    )
    number = models.PositiveSmallIntegerField()
    worker_id = models.CharField(max_length=100)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    exception_class = models.TextField(blank=True, default="", db_default="")

    class Meta:
        db_table = "job_attempt"
        ordering = ("started_at", "id")

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.job_id} ({self.outcome or 'running'})"


class JobLogLine(models.Model):
    """One line a job's handler logged while it ran (``jobs.worker.logs``): at most
    ``JOBS_LOG_MAX_LINES`` per job over all its attempts, each message cut to
    ``JOBS_LOG_LINE_CHARS``. Shown to the job's tenant (``GET /api/jobs/{id}/logs``) and
    staff; the message only, never a traceback. ``logged_at`` is the worker's clock (the
    record's time). Deleted with its job; ``tenant_id`` (its job's) is for row-level
    security."""

    # CASCADE in Python and in PostgreSQL (migration 0028's constraint), like JobAttempt's.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log", db_constraint=False)
    tenant = models.ForeignKey(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    attempt = models.PositiveSmallIntegerField()
    logged_at = models.DateTimeField()
    level = models.CharField(max_length=10)
    logger = models.CharField(max_length=100)
    message = models.TextField()

    class Meta:
        db_table = "job_log"
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.level} {self.logger}: {self.message[:50]}"


class WorkerProcess(models.Model):
    """The worker registry: one row per running worker process (``manage.py run_worker``),
    written by its heartbeat (``services.worker_beat``, in the statement that renews its
    leases) and deleted at a clean shutdown. A worker is live while its last beat is
    within ``JOBS_WORKER_EXPIRY`` (``selectors.workers_live``); a killed one's row expires
    and the reaper deletes it. ``running_job_ids``: the jobs it held at its last beat
    (running, or claimed and about to run), every tenant's. No tenant column, no row
    security: only platform staff and operators read it, as the login role."""

    worker_id = models.CharField(max_length=100, primary_key=True)
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    queues = ArrayField(models.CharField(max_length=100))
    # Each pool's queues (comma-joined) and threads: {"reports": 2, "default,emails": 8}.
    pools = models.JSONField()
    concurrency = models.IntegerField()
    running_job_ids = ArrayField(models.UUIDField(), default=list)
    version = models.CharField(max_length=100)
    started_at = models.DateTimeField(db_default=models.functions.Now())
    last_beat_at = models.DateTimeField(db_default=models.functions.Now())

    class Meta:
        db_table = "job_worker"
        verbose_name = "worker"
        ordering = ("host", "started_at", "worker_id")

    def __str__(self) -> str:
        return self.worker_id

    @property
    def pools_text(self) -> str:
        """Its pools as ``run_worker --queues`` names them: ``default,emails:8 platform:2``."""
        return " ".join(f"{queues}:{threads}" for queues, threads in self.pools.items())


# Flow control's models are the engine's (app label ``jobs``), in a module of their own.
from jobs.flow.models import FlowAuditEntry, LimitBudget, LimitOverride, Pause  # noqa: E402, F401
