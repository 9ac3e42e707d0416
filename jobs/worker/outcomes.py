"""The worker's one outcome writer: how each run ended, decided, recorded and reported once.

One ``JobOutcome`` per run (claim), sent with ``job_finished`` and logged as
``job <outcome>``; the lines its handler logged are kept with the job in the same pass.
Whichever ending of a run reaches it first wins; a later one (a handler's result after its
job was cancelled or handed back) changes nothing.
"""

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connection
from django.tasks.base import TaskError
from django.tasks.signals import task_finished

from jobs import selectors, services
from jobs.backends import finished_result, send_task_signal
from jobs.models import JobStatus
from jobs.signals import JobOutcome, job_finished, jobs_finished
from jobs.worker.runs import Cut, Ending, Raised, Returned, Run, Snoozed

logger = logging.getLogger("jobs.worker")

# Seconds the writes of a hand-back at shutdown wait for the database: a job not handed
# back goes back to pending through the reaper once its lease expires.
HAND_BACK_PATIENCE = 5.0
# Outcomes of a run whose handler failed (the ending is a Raised).
_FAILURES = frozenset({JobOutcome.FAILED, JobOutcome.RETRYING})
# Outcomes whose attempt is closed elsewhere: by the reaper, or by the results' statement.
_CLOSED_ELSEWHERE = frozenset({JobOutcome.LOST, JobOutcome.TIMED_OUT, JobOutcome.COMPLETED})
# Outcomes logged as warnings: the run did not end the way its handler did.
_UNTOWARD = frozenset({JobOutcome.TIMED_OUT, JobOutcome.LOST, JobOutcome.HANDED_BACK})


def _retrying(record, *, patience: float | None = None, **kwargs):
    """Call an outcome-recording service, retrying through a database outage.

    A result is worth keeping: the write is retried with backoff for up to ``patience``
    seconds (default: one lease, after which the reaper would hand the job to another
    worker anyway). The writes are compare-and-set, so a retry after a commit whose reply
    was lost simply matches nothing.
    """
    deadline = time.monotonic() + (settings.JOBS_LEASE_SECONDS if patience is None else patience)
    delay = 0.1
    while True:
        try:
            return record(**kwargs)
        except DatabaseError:
            connection.close()
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("database unavailable while recording an outcome; retrying")
            time.sleep(delay)
            delay = min(2.0, delay * 2)


class OutcomeWriter:
    """The outcome writer of one worker (``worker_id``), sharing its ``lock``; the job
    signals go out with ``sender`` (the ``Worker`` class). ``finished_total`` counts the
    runs reported with any outcome but ``handed_back``."""

    def __init__(self, *, worker_id: str, lock: threading.Lock, sender):
        self.worker_id = worker_id
        self.sender = sender
        self.finished_total = 0
        self._lock = lock

    def record(self, endings: list[tuple[Run, Ending]]) -> None:
        """Decide how each run ended, record it through ``jobs.services`` and report it
        (``_report``), once per run; then the runs it recorded, together, with one
        ``jobs_finished``.

        A run already taken by an earlier call is skipped. All results of the call are
        written in one statement, all failures in another; each other run, and a result or
        failure its statement did not match, takes its own guarded writes
        (``_write_outcome``). Whatever the handler did, a run whose job was cancelled,
        timed out or taken away meanwhile ends so. A run whose writes fail for longer than
        their patience is logged and not reported: the reaper hands its job on.
        """
        taken = []
        with self._lock:
            for run, ending in endings:
                if not run.settled:
                    run.settled = True
                    taken.append((run, ending))
        results = [(run.job.id, end.result) for run, end in taken if isinstance(end, Returned)]
        completed = set()
        if results:
            try:
                completed = _retrying(
                    services.jobs_complete, worker_id=self.worker_id, results=results
                )
            except Exception:
                logger.exception(
                    "job results not recorded",
                    extra={"jobs": len(results), "job_ids": [str(job_id) for job_id, _ in results]},
                )
                connection.close()
                taken = [(run, end) for run, end in taken if not isinstance(end, Returned)]
        failed = self._write_failures(taken)
        decided = []
        for run, ending in taken:
            try:
                if run.job.id in completed:
                    outcome = JobOutcome.COMPLETED
                elif run.job.id in failed:
                    outcome = failed[run.job.id]
                else:
                    outcome = self._write_outcome(run, ending)
            except Exception:
                logger.exception("job outcome not recorded", extra=run.log_fields())
                connection.close()
            else:
                decided.append((run, ending, outcome))
        self._close_attempts(decided)
        self._keep_logs(decided)
        for run, ending, outcome in decided:
            # A run that ended here may have freed what held its pool's next job back (its
            # tenant's running cap): the pool claims again at its next round.
            run.pool.maybe_work = True
            self._report(run, outcome)
            if run.started is not None and run.task is not None:  # task_started was sent
                finished = finished_result(
                    run.context.task_result,
                    outcome=outcome,
                    attempts_left=run.job.attempts < run.job.max_attempts,
                    return_value=ending.result if isinstance(ending, Returned) else None,
                    error=(
                        TaskError(
                            exception_class_path=ending.exception_class,
                            traceback=ending.traceback,
                        )
                        if isinstance(ending, Raised)
                        else None
                    ),
                )
                send_task_signal(task_finished, finished, log_fields=run.log_fields())
        if decided:  # the batch, for receivers that query: one round trip, not one per run
            runs = [(run.job, outcome, run.elapsed()) for run, _ending, outcome in decided]
            jobs_finished.send_robust(sender=self.sender, runs=runs)

    def _write_failures(self, taken: list[tuple[Run, Ending]]) -> dict[object, JobOutcome]:
        """Write the failures among ``taken`` in one statement; the outcome of each job it
        recorded (retrying or failed). A failure the database refused past its patience
        is logged as not recorded and dropped from ``taken``."""
        failures = [
            services.Failure(run.job.id, run.job.attempts, end.error, end.traceback, end.retry)
            for run, end in taken
            if isinstance(end, Raised)
        ]
        if not failures:
            return {}
        try:
            statuses = _retrying(services.jobs_fail, worker_id=self.worker_id, failures=failures)
        except Exception:
            for run, end in taken:
                if isinstance(end, Raised):
                    logger.exception("job outcome not recorded", extra=run.log_fields())
            connection.close()
            taken[:] = [(run, end) for run, end in taken if not isinstance(end, Raised)]
            return {}
        return {
            job_id: JobOutcome.RETRYING if status == JobStatus.PENDING else JobOutcome.FAILED
            for job_id, status in statuses.items()
        }

    def _close_attempts(self, decided: list[tuple[Run, Ending, JobOutcome]]) -> None:
        """Close the runs' attempts (``JobAttempt``) in one statement, with the client-safe
        error and the traceback of a failure (a completed run's was closed with its
        result). One the database refused past its patience stays open (logged)."""
        endings = [
            services.AttemptEnding(
                job_id=run.job.id,
                number=run.job.attempts,
                outcome=outcome,
                error=(
                    ending.error
                    if outcome in _FAILURES
                    else f"snoozed for {ending.seconds:g} s"
                    if outcome is JobOutcome.SNOOZED
                    else ""
                ),
                traceback=ending.traceback if outcome in _FAILURES else "",
                exception_class=ending.exception_class if outcome in _FAILURES else "",
            )
            for run, ending, outcome in decided
            if outcome not in _CLOSED_ELSEWHERE
        ]
        if not endings:
            return
        try:
            _retrying(services.job_attempts_close, worker_id=self.worker_id, endings=endings)
        except Exception:
            logger.exception("attempt history not recorded", extra={"jobs": len(endings)})
            connection.close()

    def _keep_logs(self, decided: list[tuple[Run, Ending, JobOutcome]]) -> None:
        """Store what the runs' handlers logged (``jobs.worker.logs``), in one statement.
        Lines the database refused past its patience are lost (logged)."""
        runs = [
            services.KeptLines(job_id=run.job.id, attempt=run.job.attempts, lines=run.log.lines)
            for run, _ending, _outcome in decided
            if run.log.lines
        ]
        if not runs:
            return
        try:
            _retrying(services.job_logs_keep, runs=runs, max_lines=settings.JOBS_LOG_MAX_LINES)
        except Exception:
            logger.exception("job log lines not recorded", extra={"jobs": len(runs)})
            connection.close()

    def _write_outcome(self, run: Run, ending: Ending) -> JobOutcome:
        """The guarded writes of a run that the batches did not complete or fail, first to
        match wins: its snooze; its cancellation; its hand-back; else its job was taken
        from this worker (timed out or lost)."""
        job = run.job
        patience = HAND_BACK_PATIENCE if ending is Cut.HAND_BACK else None
        if isinstance(ending, Snoozed) and _retrying(
            services.job_snooze, job_id=job.id, worker_id=self.worker_id, seconds=ending.seconds
        ):
            return JobOutcome.SNOOZED
        # No handler outcome counts from here: cancellation was requested, the job was
        # taken away, or it is being handed back.
        owner = {"job_id": job.id, "worker_id": self.worker_id, "patience": patience}
        if _retrying(services.job_finish_cancelled, **owner):
            return JobOutcome.CANCELLED
        if ending is Cut.HAND_BACK and _retrying(services.job_release, **owner):
            return JobOutcome.HANDED_BACK
        if ending is Cut.TIMED_OUT and _retrying(services.job_time_out, **owner):
            return JobOutcome.TIMED_OUT
        return self._reaped_outcome(run)

    def _reaped_outcome(self, run: Run) -> JobOutcome:
        """How the reaper ended the run it took from this worker, as it closed the run's
        attempt: timed out (past the job's timeout), else lost (an expired lease)."""
        reaped = selectors.attempt_outcome(job_id=run.job.id, number=run.job.attempts)
        return JobOutcome.TIMED_OUT if reaped is JobOutcome.TIMED_OUT else JobOutcome.LOST

    def _report(self, run: Run, outcome: JobOutcome) -> None:
        """Tell observers how a run ended: ``job_finished`` and the line ``job <outcome>``."""
        duration = run.elapsed()
        if outcome is not JobOutcome.HANDED_BACK:
            with self._lock:
                self.finished_total += 1
        job_finished.send_robust(
            sender=self.sender, job=run.job, outcome=outcome, duration=duration
        )
        logger.log(
            logging.WARNING if outcome in _UNTOWARD else logging.INFO,
            "job %s",
            outcome.replace("_", " "),
            extra={
                **run.log_fields(),
                "worker_id": self.worker_id,
                "outcome": str(outcome),
                "duration_ms": round(duration * 1000, 2),
            },
        )
