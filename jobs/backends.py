"""A Django Tasks backend that stores tasks in ``job_queue``.

``@task`` functions registered in ``settings.JOBS_TYPES`` enqueue as jobs of the current
tenant (``connection.tenant``), run on our workers with retries, leases and progress, and
report through ``get_result``. Enqueueing outside a tenant context fails loudly, because a
job without a tenant could run in the wrong schema.
"""

import uuid

from django.db import connection
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist

from jobs import services
from jobs.exceptions import JobNotFound
from jobs.models import Job, JobStatus
from jobs.registry import get_job_type, job_type_for_task
from jobs.selectors import job_get

_STATUS = {
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.PROCESSING: TaskResultStatus.RUNNING,
    JobStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}


class NoTenantContext(RuntimeError):
    """A task was enqueued outside a tenant (public schema or no tenant set)."""


class JobQueueBackend(BaseTaskBackend):
    supports_defer = True
    supports_get_result = True
    supports_priority = True

    def enqueue(self, task, args, kwargs):
        self.validate_task(task)
        job_type = job_type_for_task(task)
        if job_type is None:
            raise InvalidTask(f"{task.module_path} is not registered in JOBS_TYPES.")
        if args:
            raise InvalidTask("JobQueueBackend takes keyword arguments only (the job payload).")
        tenant = getattr(connection, "tenant", None)
        if tenant is None or tenant.schema_name == "public":
            raise NoTenantContext("Enqueue tasks inside a tenant context (tenant_context()).")
        job = services.job_enqueue(
            tenant=tenant,
            type=job_type.name,
            payload=job_type.validate_payload(kwargs),
            # The registered queue, unless .using(queue_name=...) chose another.
            queue=(
                job_type.queue if task.queue_name == job_type.task.queue_name else task.queue_name
            ),
            priority=task.priority,
            run_at=task.run_after,
        )
        return self._to_result(job, task)

    def get_result(self, result_id):
        """The job ``result_id`` of the current tenant as a ``TaskResult``."""
        tenant = getattr(connection, "tenant", None)
        if tenant is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            job = job_get(tenant=tenant, job_id=uuid.UUID(str(result_id)))
        except (JobNotFound, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        return self._to_result(job, get_job_type(job.type).task)

    def _to_result(self, job: Job, task) -> TaskResult:
        errors = []
        if job.status == JobStatus.FAILED:
            errors = [
                TaskError(
                    exception_class_path="jobs.context.JobError",
                    traceback=job.error_traceback or job.error,
                )
            ]
        result = TaskResult(
            task=task,
            id=str(job.id),
            status=_STATUS[job.status],
            enqueued_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.completed_at,
            last_attempted_at=job.started_at,
            args=[],
            kwargs=job.payload,
            backend=self.alias,
            errors=errors,
            worker_ids=[job.worker_id] if job.worker_id else [],
        )
        if job.status == JobStatus.COMPLETED:
            object.__setattr__(result, "_return_value", job.result)
        return result
