"""The worker: claims jobs from PostgreSQL and runs them in threads, inside the job's tenant.

Delivery is at least once: a job runs again only if its worker lost it (crash, lease
expiry), never while its current run still owns it, because every outcome write is
guarded by ``worker_id`` and status (see ``jobs.services``).

Threads, each with its own database connection (Django connections are per thread):

- the main thread waits for a ``NOTIFY`` (or the poll interval, or a freed slot), claims
  up to as many jobs as it has free slots in one statement, and hands them to runners;
- ``concurrency`` runner threads execute handlers and record failures, retries and
  cancellations; a successful result goes to
- the recorder thread, which writes the results that have piled up in one guarded UPDATE
  (one round trip for many short jobs; a runner never waits for its write);
- a heartbeat thread renews leases, notices cancellation requests and lost jobs, and
  periodically runs the reaper (expired leases, timeouts) for the whole queue.
"""

import contextlib
import dataclasses
import json
import logging
import os
import queue
import select
import signal
import socket
import threading
import time
import traceback
import uuid

import psycopg
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, connections
from django_tenants.utils import tenant_context

from jobs import services
from jobs.context import JobContext, JobError
from jobs.exceptions import UnknownJobType
from jobs.registry import get_job_type
from jobs.signals import job_finished, job_started

logger = logging.getLogger("jobs.worker")

_STOP = object()


# What a lost or restarting database raises through Django, and psycopg on the listener.
DB_ERRORS = (DatabaseError, psycopg.Error)


def _close_quietly(listener) -> None:
    if listener is not None:
        with contextlib.suppress(psycopg.Error):
            listener.close()


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


# Jobs shorter than this on average are claimed ahead of free threads (see _free_slots).
_SHORT_JOB_SECONDS = 0.05
# Most results written by one statement of the recorder.
_MAX_COMPLETION_BATCH = 500


@dataclasses.dataclass
class _Succeeded:
    """A handler's result, not yet recorded."""

    result: object


@dataclasses.dataclass
class _Finished:
    """A job whose handler returned, on its way to being recorded and reported."""

    job: object
    context: JobContext
    duration: float
    log: dict
    result: object = None


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs jobs until stopped (``request_stop``/SIGTERM), or until idle with ``burst``.

    ``grace``: seconds running jobs get to finish after a stop request; jobs still running
    then are handed back (``pending``, attempt not counted).
    """

    def __init__(
        self,
        *,
        worker_id: str | None = None,
        queues: list[str] | tuple[str, ...] = ("default",),
        concurrency: int = 1,
        burst: bool = False,
        max_jobs: int | None = None,
        grace: float = 30.0,
        poll_interval: float | None = None,
    ):
        self.worker_id = worker_id or default_worker_id()
        self.queues = list(queues)
        self.concurrency = max(1, concurrency)
        self.burst = burst
        self.max_jobs = max_jobs
        self.grace = grace
        self.poll_interval = poll_interval or settings.JOBS_POLL_INTERVAL

        self._stop = threading.Event()
        self._stopped_heartbeat = threading.Event()
        self._lock = threading.Lock()
        self._wake_lock = threading.Lock()
        # Jobs this worker claimed and has not finished (queued locally or running): their
        # leases are renewed by the heartbeat, and they are handed back at shutdown.
        self._owned: dict[uuid.UUID, JobContext] = {}
        self._recent_duration = None  # moving average of handler run times, seconds
        self._claimed_total = 0
        self.finished_total = 0
        self._work: queue.Queue = queue.Queue()
        self._completions: queue.Queue = queue.Queue()
        self._unrecorded = 0  # results handed to the recorder and not yet written
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # --- control -----------------------------------------------------------------

    def request_stop(self, *_args) -> None:
        """Stop claiming; running jobs get ``grace`` seconds. Safe from signal handlers."""
        self._stop.set()
        # No lock here: the main thread may hold one when the signal arrives.
        fd = self._wake_w
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, b"x")

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_w is None:
                return  # the worker has stopped; a straggling thread has no one to wake
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass  # the pipe is full: the main loop will wake anyway

    # --- main loop -----------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; returns the number of jobs this worker finished."""
        logger.info(
            "worker started",
            extra={
                "worker_id": self.worker_id,
                "queues": self.queues,
                "concurrency": self.concurrency,
            },
        )
        runners = [
            threading.Thread(target=self._runner_loop, name=f"runner-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        recorder = threading.Thread(target=self._recorder_loop, name="recorder", daemon=True)
        for thread in [*runners, heartbeat, recorder]:
            thread.start()
        try:
            self._claim_loop()
        finally:
            self._shutdown(runners)
            # Results of finished handlers are written before the worker goes away (for as
            # long as a lease: after that the reaper would hand the jobs on anyway).
            self._completions.put(_STOP)
            recorder.join(timeout=settings.JOBS_LEASE_SECONDS)
            self._stopped_heartbeat.set()
            heartbeat.join(timeout=5)
            with self._wake_lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_w = None
            connection.close()
            logger.info(
                "worker stopped",
                extra={"worker_id": self.worker_id, "finished": self.finished_total},
            )
        return self.finished_total

    def _listen(self) -> psycopg.Connection:
        """A dedicated autocommit connection LISTENing for new jobs."""
        params = connections["default"].get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        listener = psycopg.connect(**params, autocommit=True)
        listener.execute(f"LISTEN {services.NOTIFY_CHANNEL}")
        return listener

    def _free_slots(self) -> int:
        """How many jobs to claim now: free threads, plus as many again queued ahead while
        jobs are short (under ``_SHORT_JOB_SECONDS``), so one claim round trip feeds
        several jobs. Long jobs are never queued ahead: another worker may run them."""
        with self._lock:
            busy = len(self._owned)
            short = self._recent_duration is not None and (
                self._recent_duration < _SHORT_JOB_SECONDS
            )
        free = self.concurrency * (2 if short else 1) - busy
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self._claimed_total)
        return max(0, free)

    def _claim_loop(self) -> None:
        """Claim and dispatch until stopped; survives database outages by reconnecting."""
        listener = None
        outage_delay = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if listener is None:
                        self._reap()  # recover what crashed workers left behind first
                        listener = self._listen()
                    if not self._claim_once(listener):
                        break
                    outage_delay = 0.0
                except DB_ERRORS:
                    outage_delay = min(5.0, max(0.2, outage_delay * 2))
                    logger.warning(
                        "database unavailable; retrying",
                        extra={"worker_id": self.worker_id, "retry_in": outage_delay},
                        exc_info=True,
                    )
                    _close_quietly(listener)
                    listener = None
                    connection.close()
                    self._stop.wait(outage_delay)
        finally:
            _close_quietly(listener)

    def _claim_once(self, listener: psycopg.Connection) -> bool:
        """One claim-and-wait round; False when the worker should exit (burst/max_jobs)."""
        if self.max_jobs is not None and self._claimed_total >= self.max_jobs:
            return False
        free = self._free_slots()
        claimed = []
        if free:
            claimed = services.job_claim(worker_id=self.worker_id, queues=self.queues, limit=free)
            for job in claimed:
                self._claimed_total += 1
                with self._lock:
                    self._owned[job.id] = JobContext(job=job, worker_id=self.worker_id)
                self._work.put(job)
        if claimed and len(claimed) == free:
            return True  # there may be more: claim again as soon as a slot frees
        if self.burst and not claimed and self._idle():
            return False
        self._wait(listener)
        return True

    def _idle(self) -> bool:
        """No job of this worker is queued, running or waiting for its result's write."""
        with self._lock:
            return not self._owned and not self._unrecorded

    def _wait(self, listener: psycopg.Connection) -> None:
        """Sleep until a NOTIFY, a freed slot, a stop request or the poll interval."""
        readable, _, _ = select.select(
            [listener.fileno(), self._wake_r], [], [], self.poll_interval
        )
        if self._wake_r in readable:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        if listener.fileno() in readable:
            for _notify in listener.notifies(timeout=0):
                pass

    def _shutdown(self, runners: list[threading.Thread]) -> None:
        """Let claimed jobs finish, then hand back whatever is left.

        After ``burst``/``max_jobs`` every claimed job runs to its end. After a stop
        request, running jobs get ``grace`` seconds from the request.
        """
        for _ in runners:
            self._work.put(_STOP)
        grace_deadline = None
        while any(thread.is_alive() for thread in runners):
            if self._stop.is_set():
                grace_deadline = grace_deadline or time.monotonic() + self.grace
                if time.monotonic() >= grace_deadline:
                    break
            for thread in runners:
                thread.join(timeout=0.05)
        # Jobs still queued locally were never started; jobs still running overran grace.
        with self._lock:
            leftovers = list(self._owned)
            for context in self._owned.values():
                context.mark_lost()  # late results from these threads are discarded
        for job_id in leftovers:
            released = _retrying(
                services.job_release, job_id=job_id, worker_id=self.worker_id, patience=5
            )
            if released:
                logger.warning(
                    "job handed back at shutdown",
                    extra={"job_id": str(job_id), "worker_id": self.worker_id},
                )

    # --- runners -----------------------------------------------------------------

    def _runner_loop(self) -> None:
        last_checked = 0.0
        try:
            while True:
                job = self._work.get()
                if job is _STOP:
                    return
                if time.monotonic() - last_checked > 1.0:
                    # Drop a broken or expired connection; at most once a second, since
                    # with health checks on each call costs a round trip.
                    close_old_connections()
                    last_checked = time.monotonic()
                try:
                    self._execute(job)
                except Exception:
                    # The outcome could not be recorded (database gone for longer than a
                    # lease): the reaper will hand the job to another worker.
                    logger.exception("job outcome not recorded", extra={"job_id": str(job.id)})
                    connection.close()
                self._wake()
        finally:
            connection.close()

    def _execute(self, job) -> None:
        with self._lock:
            context = self._owned[job.id]
        started = time.monotonic()
        log = {
            "job_id": str(job.id),
            "type": job.type,
            "tenant": job.tenant.schema_name,
            "worker_id": self.worker_id,
            "attempt": job.attempts,
        }
        if context.cancelled():
            # Cancelled or lost while it waited in this worker's queue: never started.
            with self._lock:
                self._owned.pop(job.id, None)
            self._report(_Finished(job, context, 0.0, log), self._finish_cancelled(job, context))
            return
        job_started.send_robust(sender=Worker, job=job)
        try:
            outcome = self._run_handler(job, context)
        finally:
            duration = time.monotonic() - started
            with self._lock:
                self._owned.pop(job.id, None)
                previous = self._recent_duration
                self._recent_duration = (
                    duration if previous is None else 0.8 * previous + 0.2 * duration
                )
        finished = _Finished(job, context, duration, log)
        if isinstance(outcome, _Succeeded):
            # Recorded by the recorder thread, in a batch with other runners' results;
            # this runner's slot is free for the next job at once.
            finished.result = outcome.result
            with self._lock:
                self._unrecorded += 1
            self._completions.put(finished)
        else:
            self._report(finished, outcome)

    def _report(self, finished: "_Finished", outcome: str) -> None:
        with self._lock:
            self.finished_total += 1
        job_finished.send_robust(
            sender=Worker, job=finished.job, outcome=outcome, duration=finished.duration
        )
        finished.log["duration_ms"] = round(finished.duration * 1000, 2)
        logger.info("job %s", outcome, extra=finished.log)

    def _run_handler(self, job, context: JobContext) -> "str | _Succeeded":
        """Run the handler; returns the recorded outcome, or ``_Succeeded`` for a result
        still to be recorded."""
        try:
            job_type = get_job_type(job.type)
        except UnknownJobType:
            _retrying(
                services.job_fail,
                job_id=job.id,
                worker_id=self.worker_id,
                attempts=job.attempts,
                error=f"unknown job type {job.type!r}",
                retry=False,
            )
            return "failed"
        try:
            with tenant_context(job.tenant):
                result = job_type.task.func(context, **job.payload)
            json.dumps(result)  # fail here, not in the UPDATE, if it can't be stored
        except Exception as exc:
            if context.cancelled():
                return self._finish_cancelled(job, context)
            client_error = str(exc) if isinstance(exc, JobError) else "internal error"
            if not isinstance(exc, JobError):
                logger.exception("job handler raised", extra={"job_id": str(job.id)})
            status = _retrying(
                services.job_fail,
                job_id=job.id,
                worker_id=self.worker_id,
                attempts=job.attempts,
                error=client_error,
                traceback=traceback.format_exc(),
            )
            return {None: "discarded", "pending": "retrying"}.get(status, "failed")
        if context.cancelled():
            return self._finish_cancelled(job, context)
        return _Succeeded(result)

    # --- recorder --------------------------------------------------------------------

    def _recorder_loop(self) -> None:
        """Write succeeded jobs' results, as many per statement as have piled up."""
        try:
            stopping = False
            while not stopping:
                batch = [self._completions.get()]
                while len(batch) < _MAX_COMPLETION_BATCH:
                    try:
                        batch.append(self._completions.get_nowait())
                    except queue.Empty:
                        break
                if _STOP in batch:
                    stopping = True
                    batch = [item for item in batch if item is not _STOP]
                if batch:
                    try:
                        self._record(batch)
                    finally:
                        with self._lock:
                            self._unrecorded -= len(batch)
                        self._wake()  # the claim loop may now see free capacity
        finally:
            connection.close()

    def _record(self, batch: list["_Finished"]) -> None:
        try:
            recorded = _retrying(
                services.jobs_complete,
                worker_id=self.worker_id,
                results=[(finished.job.id, finished.result) for finished in batch],
            )
        except Exception:
            # Not recorded (database gone for longer than a lease): the reaper will hand
            # these jobs to another worker.
            logger.exception("job results not recorded", extra={"jobs": len(batch)})
            connection.close()
            return
        for finished in batch:
            if finished.job.id in recorded:
                outcome = "completed"
            else:  # cancellation was requested meanwhile, or the job was taken away
                outcome = self._finish_cancelled(finished.job, finished.context)
            self._report(finished, outcome)

    def _finish_cancelled(self, job, context: JobContext) -> str:
        if _retrying(services.job_finish_cancelled, job_id=job.id, worker_id=self.worker_id):
            return "cancelled"
        return "discarded"

    # --- heartbeat -------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        last_reap = time.monotonic()  # run() reaped once at start-up
        try:
            while True:
                close_old_connections()
                try:
                    self._beat()
                    if time.monotonic() - last_reap >= settings.JOBS_REAP_INTERVAL:
                        last_reap = time.monotonic()
                        self._reap()
                except Exception:
                    # A database outage must not kill the heartbeat: retry next beat.
                    logger.exception("heartbeat failed", extra={"worker_id": self.worker_id})
                    connection.close()
                if self._stopped_heartbeat.wait(settings.JOBS_HEARTBEAT_SECONDS):
                    return
        finally:
            connection.close()

    def _reap(self) -> None:
        """Run the reaper for the whole queue (at start-up, then every JOBS_REAP_INTERVAL)."""
        reaped = services.jobs_requeue_stale()
        if reaped.requeued or reaped.lost or reaped.timed_out:
            logger.warning(
                "reaper",
                extra={
                    "requeued": len(reaped.requeued),
                    "lost": len(reaped.lost),
                    "timed_out": len(reaped.timed_out),
                },
            )
            self._wake()

    def _beat(self) -> None:
        with self._lock:
            running = dict(self._owned)
        if not running:
            return
        beat = services.job_heartbeat(worker_id=self.worker_id, job_ids=list(running))
        for job_id, context in running.items():
            if job_id not in beat.renewed:
                context.mark_lost()
            elif job_id in beat.cancel_requested:
                context.mark_cancel_requested()
                # End it now, within this heartbeat; the handler's late result is dropped.
                services.job_finish_cancelled(job_id=job_id, worker_id=self.worker_id)
