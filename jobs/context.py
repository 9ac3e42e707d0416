"""What a running handler can see and do: report progress, notice cancellation."""

import threading

from django.tasks import TaskContext, TaskResult

from jobs import services


class JobError(Exception):
    """Raise from a handler to fail the job with a message safe to show the client.

    Any other exception fails the job with a generic message; its traceback is kept for
    staff and the log only.
    """


class Snooze(Exception):
    """Raise from a handler to hand its job back for ``seconds`` (e.g. a provider's
    ``Retry-After``) without spending an attempt: pending again, run at the earliest then.
    The attempt history shows the run as ``snoozed``. A job may snooze ``JOBS_MAX_SNOOZES``
    times; one more counts as a failed attempt. ``seconds`` is kept within 0 to 86,400."""

    def __init__(self, seconds: float):
        self.seconds = min(max(float(seconds), 0.0), 86400.0)
        super().__init__(f"snooze for {self.seconds:g} s")


class JobContext(TaskContext):
    """Passed as ``context`` to ``@task(takes_context=True)`` handlers run by the worker.

    It is a Django ``TaskContext``: ``task_result`` is the job as a ``TaskResult`` (status
    RUNNING, one worker id per attempt so far, this one included), built on first use;
    ``attempt`` is the job's attempt number, 1 for the first run.

    ``cancelled()`` is cheap (flags the worker sets: its heartbeat, when cancellation is
    requested or the job was taken away; its shutdown, when the job is handed back), so
    handlers may call it in tight loops. The flags only ever go from unset to set; they
    tell the handler to stop, while the worker records how the run ended.
    ``report_progress`` writes through a guarded UPDATE, so a worker that lost the job
    cannot overwrite someone else's progress.
    """

    # TaskContext is a frozen, slotted dataclass; its one field is a lazy property here, and
    # this subclass keeps its own state in ordinary (settable) attributes.
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__

    def __init__(self, *, job, worker_id: str):
        self._task_result = None
        self.job = job
        self.job_id = job.id
        self.worker_id = worker_id
        self._cancelled = threading.Event()
        self._lost = threading.Event()

    @property
    def task_result(self) -> TaskResult:
        if self._task_result is None:
            from jobs.backends import running_result  # the backend imports this module

            self._task_result = running_result(self.job, worker_id=self.worker_id)
        return self._task_result

    @property
    def attempt(self) -> int:
        return self.job.attempts

    def __repr__(self) -> str:
        return f"JobContext(job_id={self.job_id}, attempt={self.attempt})"

    def report_progress(self, percent: float, message: str | None = None) -> bool:
        """Record 0–100 % progress; returns False if this worker no longer owns the job."""
        percent = max(0, min(100, round(percent)))
        owned = services.job_report_progress(
            job_id=self.job_id,
            worker_id=self.worker_id,
            progress=percent,
            message=(message or "")[:200],
        )
        if not owned:
            self._lost.set()
        return owned

    def cancelled(self) -> bool:
        """True once cancellation was requested or the job was taken away from this worker."""
        return self._cancelled.is_set() or self._lost.is_set()

    def mark_cancel_requested(self) -> None:
        self._cancelled.set()

    def mark_lost(self) -> None:
        self._lost.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancelled.is_set()
