"""A Django Tasks backend that stores tasks in ``job_queue``.

``@task`` functions registered in ``settings.JOBS_TYPES`` enqueue as jobs of the current
tenant (``connection.tenant``), run on our workers with retries, leases and progress, and
report through ``get_result``. Enqueueing outside a tenant context fails loudly, because a
job without a tenant could run in the wrong schema.

The Django Tasks contract: ``async def`` tasks run (in the runner thread, through
``async_to_sync``); ``task_enqueued`` is sent by ``enqueue``, ``task_started`` and
``task_finished`` by the worker around each run (sender: this class); a ``TaskResult``'s
``worker_ids`` has one entry per attempt (``JobAttempt``), so ``attempts`` counts them, and
``errors`` one ``TaskError`` per failed attempt, oldest first.
"""

import uuid

from django.db import connection
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import DEFAULT_TASK_BACKEND_ALIAS, TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from jobs import services
from jobs.exceptions import JobNotFound
from jobs.models import Job, JobAttempt, JobStatus
from jobs.registry import get_job_type, job_type_for_task
from jobs.selectors import job_get

_STATUS = {
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.PROCESSING: TaskResultStatus.RUNNING,
    JobStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}


# Attempt outcomes that are a failure of the task (a TaskError each).
_FAILED_ATTEMPTS = frozenset({"failed", "retrying", "timed_out", "lost"})


class NoTenantContext(RuntimeError):
    """A task was enqueued outside a tenant (public schema or no tenant set)."""


class JobQueueBackend(BaseTaskBackend):
    supports_async_task = True
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
        result = to_result(job, task, attempts=[], backend=self.alias)
        task_enqueued.send(sender=type(self), task_result=result)
        return result

    def get_result(self, result_id):
        """The job ``result_id`` of the current tenant as a ``TaskResult``."""
        tenant = getattr(connection, "tenant", None)
        if tenant is None:
            raise TaskResultDoesNotExist(result_id)
        try:
            job = job_get(tenant=tenant, job_id=uuid.UUID(str(result_id)))
        except (JobNotFound, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        attempts = list(JobAttempt.objects.filter(job=job).order_by("started_at", "id"))
        return to_result(job, get_job_type(job.type).task, attempts=attempts, backend=self.alias)


def to_result(
    job: Job, task, *, attempts: list[JobAttempt], backend: str, status=None
) -> TaskResult:
    """``job`` as a ``TaskResult`` of ``task``, with one worker id per attempt and one
    ``TaskError`` per failed attempt (``attempts``: the job's ``JobAttempt`` rows, oldest
    first). ``status`` overrides the one the job's status maps to."""
    errors = [
        TaskError(
            exception_class_path="jobs.context.JobError",
            traceback=attempt.traceback or attempt.error,
        )
        for attempt in attempts
        if attempt.outcome in _FAILED_ATTEMPTS
    ]
    result = TaskResult(
        task=task,
        id=str(job.id),
        status=status or _STATUS[job.status],
        enqueued_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.completed_at,
        last_attempted_at=attempts[-1].started_at if attempts else job.started_at,
        args=[],
        kwargs=job.payload,
        backend=backend,
        errors=errors,
        worker_ids=[attempt.worker_id for attempt in attempts],
    )
    if job.status == JobStatus.COMPLETED:
        object.__setattr__(result, "_return_value", job.result)
    return result


def running_result(job: Job, *, worker_id: str) -> TaskResult:
    """The ``TaskResult`` of a job this worker has just claimed (status RUNNING). A first
    attempt costs no query: its only attempt is this one."""
    if job.attempts <= 1:
        attempts = [JobAttempt(job=job, number=1, worker_id=worker_id, started_at=job.started_at)]
    else:
        attempts = list(JobAttempt.objects.filter(job=job).order_by("started_at", "id"))
    task = get_job_type(job.type).task
    return to_result(
        job,
        task,
        attempts=attempts,
        backend=task.backend or DEFAULT_TASK_BACKEND_ALIAS,
        status=TaskResultStatus.RUNNING,
    )
