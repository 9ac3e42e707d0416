"""A Django Tasks backend that stores tasks in ``job_queue``.

``@task`` functions registered in ``settings.JOBS_TYPES`` enqueue as jobs of the current
tenant (``connection.tenant``), run on our workers with retries, leases and progress, and
report through ``get_result``. Enqueueing outside a tenant context fails loudly, because a
job without a tenant could run in the wrong schema.

The Django Tasks contract: ``async def`` tasks run (in the runner thread, through
``async_to_sync``); ``task_enqueued`` is sent by ``enqueue``, ``task_started`` by the worker
(through ``send_task_signal``) before each attempt and ``task_finished`` (its result built by
``finished_result``) once the result is final (SUCCESSFUL or FAILED;
an attempt that will be retried sends none), sender: this class. A ``TaskResult``'s
``worker_ids`` has one entry per attempt (``JobAttempt``), so ``attempts`` counts them, and
``errors`` one ``TaskError`` per failed attempt, oldest first, naming the exception class
the task raised; ``started_at`` is the first attempt's start; ``task`` carries the job's
priority, queue and ``run_after``. Any queue name is valid (``TASKS``' ``QUEUES: []``) up to
the job's 64 characters; workers serve the queues given to ``run_worker --queues``.
"""

import dataclasses
import logging
import uuid

from django.db import connection
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import DEFAULT_TASK_BACKEND_ALIAS, TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils import timezone

from jobs import services
from jobs.exceptions import JobNotFound
from jobs.models import Job, JobAttempt, JobStatus
from jobs.registry import get_job_type, job_type_for_task
from jobs.selectors import job_get
from jobs.signals import JobOutcome
from tenants.models import Tenant

_STATUS = {
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.PROCESSING: TaskResultStatus.RUNNING,
    JobStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}


logger = logging.getLogger("jobs.worker")  # the worker sends the task signals

# Attempt outcomes that are a failure of the task (a TaskError each).
_FAILED_ATTEMPTS = frozenset(
    {JobOutcome.FAILED, JobOutcome.RETRYING, JobOutcome.TIMED_OUT, JobOutcome.LOST}
)
# Outcomes of a run after which the task runs again: no ``task_finished`` yet.
_UNFINISHED = frozenset({JobOutcome.RETRYING, JobOutcome.HANDED_BACK, JobOutcome.SNOOZED})
# The exception class of a failed attempt that stored none (closed by the reaper: timed
# out, worker lost; or closed before classes were stored).
JOB_ERROR = "jobs.context.JobError"
_QUEUE_NAME_MAX = Job._meta.get_field("queue").max_length


class NoTenantContext(RuntimeError):
    """A task was enqueued outside a tenant (public schema or no tenant set)."""


def _current_tenant() -> Tenant | None:
    """The tenant the connection is set to; None in the public schema or with no tenant
    (django-tenants' stand-in for a bare schema is no ``Tenant``)."""
    tenant = getattr(connection, "tenant", None)
    if not isinstance(tenant, Tenant) or tenant.is_platform:
        return None
    return tenant


class JobQueueBackend(BaseTaskBackend):
    supports_async_task = True
    supports_defer = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task):
        """Django's checks, and a queue name that fits the job's ``queue`` column."""
        super().validate_task(task)
        if not isinstance(task.queue_name, str) or not 0 < len(task.queue_name) <= _QUEUE_NAME_MAX:
            raise InvalidTask(f"queue_name must be 1 to {_QUEUE_NAME_MAX} characters.")

    def enqueue(self, task, args, kwargs):
        self.validate_task(task)
        job_type = job_type_for_task(task)
        if job_type is None:
            raise InvalidTask(f"{task.module_path} is not registered in JOBS_TYPES.")
        if args:
            raise InvalidTask("JobQueueBackend takes keyword arguments only (the job payload).")
        tenant = _current_tenant()
        if tenant is None:
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
        """The job ``result_id`` of the current tenant as a ``TaskResult``; outside a tenant
        no result exists."""
        tenant = _current_tenant()
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
            exception_class_path=attempt.exception_class or JOB_ERROR,
            traceback=attempt.traceback or attempt.error,
        )
        for attempt in attempts
        if attempt.outcome in _FAILED_ATTEMPTS
    ]
    result = TaskResult(
        task=_as_enqueued(task, job),
        id=str(job.id),
        status=status or _STATUS[job.status],
        enqueued_at=job.created_at,
        started_at=attempts[0].started_at if attempts else job.started_at,
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


def _as_enqueued(task, job: Job):
    """``task`` with the job's priority and queue, and its ``run_at`` as ``run_after``
    unless it is the enqueue time (a job to run at once): what ``.using()`` set, or after a
    failed attempt the retry's time. Built without ``Task``'s constructor, which validates
    against today's settings: the job's queue may come from ``JOBS_TYPES`` or a ``QUEUES``
    since changed, and a stored job's result must still be readable."""
    values = {field.name: getattr(task, field.name) for field in dataclasses.fields(task)}
    values.update(
        priority=job.priority,
        queue_name=job.queue,
        run_after=job.run_at if job.run_at != job.created_at else None,
    )
    enqueued = object.__new__(type(task))
    for name, value in values.items():
        object.__setattr__(enqueued, name, value)
    return enqueued


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


def finished_result(
    running: TaskResult,
    *,
    outcome: JobOutcome,
    attempts_left: bool,
    return_value=None,
    error: TaskError | None = None,
) -> TaskResult | None:
    """A run's ``running`` result (``JobContext.task_result``) as the run ended with
    ``outcome``, for ``task_finished``: SUCCESSFUL with ``return_value``, or FAILED, adding
    the run's ``error``. None when the task has not finished: the job will run again
    (retried, handed back, or lost with ``attempts_left``); Django sends ``task_finished``
    once per task, when its result is final."""
    if outcome in _UNFINISHED or (outcome is JobOutcome.LOST and attempts_left):
        return None
    completed = outcome is JobOutcome.COMPLETED
    finished = dataclasses.replace(
        running,
        status=TaskResultStatus.SUCCESSFUL if completed else TaskResultStatus.FAILED,
        errors=[*running.errors, *([error] if error is not None else [])],
        finished_at=timezone.now(),
    )
    if completed:
        object.__setattr__(finished, "_return_value", return_value)
    return finished


def send_task_signal(signal, task_result: TaskResult | None, *, log_fields: dict) -> None:
    """Send a ``django.tasks`` signal (``task_started``, ``task_finished``) as Django's own
    backends do, sender ``JobQueueBackend``; nothing for no result. A receiver that raises
    is logged with ``log_fields``, never the worker's problem."""
    if task_result is None:
        return
    for receiver, response in signal.send_robust(sender=JobQueueBackend, task_result=task_result):
        if isinstance(response, Exception):
            logger.error(
                "task signal receiver raised",
                extra={**log_fields, "receiver": repr(receiver)},
                exc_info=response,
            )
