"""The cheap poll: one SQL statement returns what ``GET /api/jobs/{id}`` shows and its ETag.

The ETag is computed by PostgreSQL from the columns the representation is made of, so a
conditional request is answered (304) before anything is serialized, and it changes
exactly when the representation can change. The migration
``jobs/0003_job_changed_notify_trigger`` sends ``job_changed`` notifications on changes of
the same columns; keep ``REPRESENTED_COLUMNS`` and that trigger in step.

The statement names ``public.job_queue`` explicitly and runs without django-tenants'
``SET search_path``: the job table lives in the public schema only, so the schema path
cannot change what it reads, and skipping the SET saves a round trip per poll. The tenant
filter is part of the statement, as in every tenant-facing read (DESIGN.md).
"""

import uuid

from django.conf import settings
from django.db import connection
from django.utils.http import parse_etags
from django_tenants.utils import get_public_schema_name

from jobs.exceptions import JobNotFound, UnknownJobType
from jobs.models import FINAL_STATUSES, Job, JobStatus
from jobs.registry import get_job_type
from tenants.search_path import without_search_path

# Columns that JobOutputSerializer reads and that can change after a job is created.
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
)
# Bump when JobOutputSerializer changes what it renders from the same columns, so clients'
# cached copies stop matching.
REPRESENTATION_VERSION = "1"

_SELECTED = ("id", "tenant_id", "created_at", *REPRESENTED_COLUMNS)


def _poll_sql() -> str:
    table = f"{connection.ops.quote_name(get_public_schema_name())}.job_queue"
    digest = f"md5(row({', '.join(REPRESENTED_COLUMNS)})::text)"
    return (
        f"SELECT {', '.join(_SELECTED)}, {digest} AS representation_digest "  # noqa: S608
        f"FROM {table} WHERE tenant_id = %s AND id = %s"
    )


def job_poll_get(*, tenant, job_id: uuid.UUID) -> Job:
    """The tenant's job ``job_id`` with only the represented columns loaded and ``etag`` set.

    Raises ``JobNotFound`` when the job is missing or belongs to another tenant.
    """
    with without_search_path():
        found = list(Job.objects.raw(_poll_sql(), [tenant.pk, job_id]))
    if not found:
        raise JobNotFound(job_id)
    job = found[0]
    job.etag = f'"{REPRESENTATION_VERSION}-{job.representation_digest}"'
    return job


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against the current ``etag``."""
    if not if_none_match:
        return False
    candidates = parse_etags(if_none_match)
    if "*" in candidates:
        return True
    return any(candidate.removeprefix("W/") == etag for candidate in candidates)


def poll_after_seconds(job: Job) -> int | None:
    """Suggested seconds before the next poll: None for final jobs, else the job type's
    ``poll_after`` (``JOBS_POLL_AFTER`` for a type no longer registered), at least 1."""
    if job.status in FINAL_STATUSES:
        return None
    try:
        seconds = get_job_type(job.type).poll_after
    except UnknownJobType:
        seconds = settings.JOBS_POLL_AFTER
    return max(1, int(seconds))


def poll_headers(job: Job) -> dict[str, str]:
    """Headers of a poll's 200 and 304: the validator, the caching rule, the next poll."""
    headers = {"ETag": job.etag, "Cache-Control": "private, no-cache"}
    poll_after = poll_after_seconds(job)
    if poll_after is not None:
        headers["Retry-After"] = str(poll_after)
    return headers


def is_waitable(job: Job) -> bool:
    """Whether a long poll on ``job`` can wait for a change: unfinished jobs only."""
    return job.status in {JobStatus.PENDING, JobStatus.PROCESSING}
