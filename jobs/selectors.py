"""Reads of jobs that tenants can reach. Every function takes the tenant; none skips it."""

import uuid

from django.db.models import QuerySet

from jobs.exceptions import JobNotFound
from jobs.models import Job


def job_get(*, tenant, job_id: uuid.UUID) -> Job:
    """The tenant's job ``job_id``; ``JobNotFound`` if missing or another tenant's."""
    job = Job.objects.filter(tenant=tenant, id=job_id).first()
    if job is None:
        raise JobNotFound(job_id)
    return job


def job_list(*, tenant, status: str | None = None, type: str | None = None) -> QuerySet[Job]:
    """The tenant's jobs, newest first, optionally filtered by status and type."""
    jobs = Job.objects.filter(tenant=tenant)
    if status:
        jobs = jobs.filter(status=status)
    if type:
        jobs = jobs.filter(type=type)
    return jobs.order_by("-created_at", "-id")
