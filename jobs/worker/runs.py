"""One run of a job in a worker, and how it ended as the worker saw it (the outcome writer
maps an ending to a ``JobOutcome``)."""

import dataclasses
import enum
import threading
import time

from core.log_context import job_trace_fields
from jobs.backends import JOB_ERROR
from jobs.context import JobContext
from jobs.worker.logs import RunLog
from jobs.worker.pools import Pool


@dataclasses.dataclass(eq=False)
class Run:
    """One claim of a job by this worker, from the claim until its outcome is reported."""

    job: object
    context: JobContext
    pool: Pool
    task: object = None  # the job type's django.tasks Task; None for an unknown type
    claimed: float = dataclasses.field(default_factory=time.monotonic)
    started: float | None = None  # time.monotonic() when the handler started
    thread: threading.Thread | None = None  # the runner thread running the handler
    withdrawn: bool = False  # handed back before it started (under the worker's lock)
    abandoned: bool = False  # past its timeout: its thread is no longer waited for
    duration: float | None = None  # the handler's run time, once it returned or raised
    settled: bool = False  # taken by the outcome writer (under the worker's lock)
    log: RunLog = dataclasses.field(default_factory=RunLog)  # what its handler logged

    def elapsed(self) -> float:
        """The handler's run time: so far while it runs, 0 if it never started."""
        if self.duration is not None:
            return self.duration
        return 0.0 if self.started is None else time.monotonic() - self.started

    def log_fields(self) -> dict:
        return {
            "job_id": str(self.job.id),
            "type": self.job.type,
            "tenant": self.job.tenant.schema_name,
            "attempt": self.job.attempts,
            **job_trace_fields(self.job),
        }


@dataclasses.dataclass(frozen=True)
class Returned:
    """The handler returned this (JSON-serialisable) result."""

    result: object


@dataclasses.dataclass(frozen=True)
class Raised:
    """The handler raised, or could not be run; ``error`` is safe to show the client,
    ``exception_class`` the dotted path of what was raised (a ``TaskError``'s)."""

    error: str
    traceback: str = ""
    retry: bool = True
    exception_class: str = JOB_ERROR


@dataclasses.dataclass(frozen=True)
class Snoozed:
    """The handler asked to run again in ``seconds`` (``jobs.context.Snooze``)."""

    seconds: float


class Cut(enum.Enum):
    """Endings with no handler result."""

    # Cancellation requested or job lost: the handler never started, or is to stop now.
    INTERRUPTED = enum.auto()
    # The worker is stopping and the run was still queued or running after the grace, or
    # the run waited longer than JOBS_START_PATIENCE for a thread.
    HAND_BACK = enum.auto()
    # The handler ran past the job's timeout: the worker stops waiting for it.
    TIMED_OUT = enum.auto()


Ending = Returned | Raised | Snoozed | Cut


def exception_path(exc: BaseException) -> str:
    """The dotted path of ``exc``'s class, as Django's backends name it in a ``TaskError``."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"
