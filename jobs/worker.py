"""The worker: claims jobs from PostgreSQL and runs them in threads, inside the job's tenant.

Delivery is at least once: a job runs again only if its worker lost it (crash, lease
expiry), never while its current run still owns it, because every outcome write is
guarded by ``worker_id`` and status (see ``jobs.services``).

How a run ended is decided, recorded and reported in one place, the outcome writer
``Worker._record_outcomes``: one ``JobOutcome`` per run (claim), sent with ``job_finished``
and logged as ``job <outcome>``. Whichever ending of a run reaches it first wins; a later
one (a handler's result after its job was cancelled or handed back) changes nothing.

Threads, each with its own database connection (Django connections are per thread):

- the main thread waits for a ``NOTIFY`` (or the poll interval, or a freed slot), claims
  up to as many jobs as it has free slots in one statement, and hands them to runners; it
  also runs the reaper (expired leases, timeouts) for the whole queue, at start-up and
  every ``JOBS_REAP_INTERVAL``;
- runner threads execute handlers, in pools: each pool has its own queues, concurrency
  and claims (``queues=["reports:2", "default:8"]``: two threads for ``reports``, eight for
  ``default``; queues named without a count share one pool of ``concurrency`` threads), so
  a flood in one queue never takes another queue's threads. A failure goes to the outcome
  writer at once, a result to
- the recorder thread, which passes everything that has piled up to the outcome writer in
  one call (so the results are one guarded UPDATE: one round trip for many short jobs; a
  runner never waits for its write);
- a heartbeat thread renews leases and raises flags on the runs' contexts: cancellation
  requested, or job lost. A run to cancel is also handed to the recorder, which ends it
  ``cancelled`` within the heartbeat, whether or not its handler notices. The heartbeat
  writes no outcome.
"""

import contextlib
import dataclasses
import enum
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
from django.db import DatabaseError, close_old_connections, connection
from django.tasks import TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django_tenants.utils import tenant_context

from core import listen
from core.log_context import bind_job
from jobs import periodic, selectors, services
from jobs.backends import JOB_ERROR, JobQueueBackend
from jobs.context import JobContext, JobError
from jobs.exceptions import JobNotFound, UnknownJobType
from jobs.models import JobStatus
from jobs.registry import get_job_type
from jobs.signals import JobOutcome, job_finished, job_started, jobs_finished

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
# Most endings passed to the outcome writer in one call of the recorder.
_MAX_COMPLETION_BATCH = 500
# Seconds the writes of a hand-back at shutdown wait for the database: a job not handed
# back goes back to pending through the reaper once its lease expires.
_HAND_BACK_PATIENCE = 5.0
# The error the reaper (jobs.services.jobs_requeue_stale) fails a timed-out job with.
_TIMED_OUT_ERROR = "timed out"
# Outcomes of a run whose handler failed (the ending is a _Raised).
_FAILURES = frozenset({JobOutcome.FAILED, JobOutcome.RETRYING})
# Outcomes logged as warnings: the run did not end the way its handler did.
_UNTOWARD = frozenset({JobOutcome.TIMED_OUT, JobOutcome.LOST, JobOutcome.HANDED_BACK})


@dataclasses.dataclass(eq=False)
class _Pool:
    """Runner threads serving some queues, with their own concurrency and claims."""

    queues: tuple[str, ...]
    concurrency: int
    work: queue.Queue = dataclasses.field(default_factory=queue.Queue)
    recent_duration: float | None = None  # moving average of handler run times, seconds
    # Jobs may be claimable in its queues: its last claim filled every free thread, or since
    # then a NOTIFY for one of its queues, the poll interval, a reaper's requeue or an
    # outcome written for one of its runs. A pool without sends no claim when another
    # pool's thread frees up.
    maybe_work: bool = True


def parse_pools(queues, concurrency: int) -> list[_Pool]:
    """Pools from queue specs: ``"name:N"`` is a pool of N threads for that queue; plain
    names share one pool of ``concurrency`` threads. Raises ``ValueError`` for a queue
    named twice, an empty name or a count below 1."""
    shared, pools, seen = [], [], set()
    for spec in queues:
        name, sep, count = spec.strip().partition(":")
        name = name.strip()
        if not name or name in seen:
            raise ValueError(f"queue {name!r} is empty or named twice")
        seen.add(name)
        if not sep:
            shared.append(name)
            continue
        if not count.strip().isdigit() or int(count) < 1:
            raise ValueError(f"queue {name!r}: the concurrency must be a whole number >= 1")
        pools.append(_Pool(queues=(name,), concurrency=int(count)))
    if shared:
        pools.insert(0, _Pool(queues=tuple(shared), concurrency=max(1, concurrency)))
    if not pools:
        raise ValueError("no queue to take jobs from")
    return pools


@dataclasses.dataclass(eq=False)
class _Run:
    """One claim of a job by this worker, from the claim until its outcome is reported."""

    job: object
    context: JobContext
    pool: _Pool
    task: object = None  # the job type's django.tasks Task; None for an unknown type
    claimed: float = dataclasses.field(default_factory=time.monotonic)
    started: float | None = None  # time.monotonic() when the handler started
    thread: threading.Thread | None = None  # the runner thread running the handler
    withdrawn: bool = False  # handed back before it started (under Worker._lock)
    abandoned: bool = False  # past its timeout: its thread is no longer waited for
    duration: float | None = None  # the handler's run time, once it returned or raised
    settled: bool = False  # taken by the outcome writer (under Worker._lock)

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
        }


# How a run ended, as its worker saw it; the outcome writer maps it to a JobOutcome.


@dataclasses.dataclass(frozen=True)
class _Returned:
    """The handler returned this (JSON-serialisable) result."""

    result: object


@dataclasses.dataclass(frozen=True)
class _Raised:
    """The handler raised, or could not be run; ``error`` is safe to show the client,
    ``exception_class`` the dotted path of what was raised (a ``TaskError``'s)."""

    error: str
    traceback: str = ""
    retry: bool = True
    exception_class: str = JOB_ERROR


class _Cut(enum.Enum):
    """Endings with no handler result."""

    # Cancellation requested or job lost: the handler never started, or is to stop now.
    INTERRUPTED = "interrupted"
    # The worker is stopping and the run was still queued or running after the grace, or
    # the run waited longer than JOBS_START_PATIENCE for a thread.
    HAND_BACK = "hand back"
    # The handler ran past the job's timeout: the worker stops waiting for it.
    TIMED_OUT = "timed out"


_Ending = _Returned | _Raised | _Cut


def _path(exc: BaseException) -> str:
    """The dotted path of ``exc``'s class, as Django's backends name it in a ``TaskError``."""
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def _task_of(job):
    try:
        return get_job_type(job.type).task
    except UnknownJobType:
        return None


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs jobs until stopped (``request_stop``/SIGTERM), or until idle with ``burst``.

    ``queues``: queue names, each optionally ``name:N`` for a pool of its own (see
    ``parse_pools``); ``concurrency`` is the size of the pool of plain names.
    ``grace``: seconds running jobs get to finish after a stop request; jobs still running
    then are handed back (``pending``, attempt not counted). ``platform_concurrency``
    (default ``JOBS_PLATFORM_CONCURRENCY``) threads serve ``JOBS_PLATFORM_QUEUE`` in a pool
    of their own, unless ``queues`` names it.

    A run has a hard deadline, its job's timeout: past it the job fails ``timed out`` and
    the worker abandons the handler's thread (it cannot be killed), starting another in its
    place, so a stuck handler never holds a slot. Abandoned threads are counted
    (``abandoned_threads``, the log); past as many as the worker has threads, it stops so
    that its supervisor starts a clean process. A job claimed here that waits longer than
    ``JOBS_START_PATIENCE`` for a thread is handed back for another worker.
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
        platform_concurrency: int | None = None,
    ):
        self.worker_id = worker_id or default_worker_id()
        self.pools = parse_pools(queues, concurrency)
        platform = settings.JOBS_PLATFORM_QUEUE
        if platform_concurrency is None:
            platform_concurrency = settings.JOBS_PLATFORM_CONCURRENCY
        if platform_concurrency > 0 and not any(platform in pool.queues for pool in self.pools):
            self.pools.append(_Pool(queues=(platform,), concurrency=platform_concurrency))
        self.queues = [name for pool in self.pools for name in pool.queues]
        self.concurrency = sum(pool.concurrency for pool in self.pools)
        self.burst = burst
        self.max_jobs = max_jobs
        self.grace = grace
        self.poll_interval = poll_interval or settings.JOBS_POLL_INTERVAL

        self._stop = threading.Event()
        self._stopped_heartbeat = threading.Event()
        self._lock = threading.Lock()
        self._wake_lock = threading.Lock()
        # Jobs this worker claimed whose handler has not ended (queued locally or running):
        # their leases are renewed by the heartbeat, and they are handed back at shutdown.
        self._owned: dict[uuid.UUID, _Run] = {}
        self._claimed_total = 0
        self.finished_total = 0
        self._completions: queue.Queue = queue.Queue()
        self._unrecorded = 0  # endings handed to the recorder and not yet written
        self._runners: list[threading.Thread] = []
        self._abandoned: set[threading.Thread] = set()  # alive, past their run's timeout
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
        """Run until stopped; returns the number of runs that ended here with any outcome
        but ``handed_back``."""
        logger.info(
            "worker started",
            extra={
                "worker_id": self.worker_id,
                "queues": self.queues,
                "concurrency": self.concurrency,
                "pools": {",".join(pool.queues): pool.concurrency for pool in self.pools},
            },
        )
        for pool in self.pools:
            for _ in range(pool.concurrency):
                self._start_runner(pool)
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        recorder = threading.Thread(target=self._recorder_loop, name="recorder", daemon=True)
        for thread in [heartbeat, recorder]:
            thread.start()
        try:
            self._claim_loop()
        finally:
            self._shutdown()
            # Endings handed to the recorder are written before the worker goes away (for
            # as long as a lease: after that the reaper would hand the jobs on anyway).
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

    @property
    def abandoned_threads(self) -> int:
        """Runner threads abandoned past their run's timeout whose handler is still running."""
        with self._lock:
            return len(self._abandoned)

    def _start_runner(self, pool: _Pool) -> None:
        thread = threading.Thread(
            target=self._runner_loop,
            args=(pool,),
            name=f"runner-{self.pools.index(pool)}-{len(self._runners)}",
            daemon=True,
        )
        with self._lock:
            self._runners.append(thread)
        thread.start()

    def _listen(self) -> psycopg.Connection:
        """A dedicated autocommit connection LISTENing for new jobs, to
        ``DATABASE_DIRECT_URL`` (``core.listen``): through a transaction pooler the LISTEN
        would register a server session the pooler hands to other clients, and no wake-up
        would arrive. Raises ``psycopg.Error`` (one of ``DB_ERRORS``) when unreachable."""
        return listen.listen(services.NOTIFY_CHANNEL, application_name="tenant-jobs-worker")

    def _free_slots(self, pool: _Pool) -> int:
        """How many jobs to claim now for ``pool``: its free threads, plus as many again
        queued ahead while jobs are short (under ``_SHORT_JOB_SECONDS``, on average and for
        every run in progress), so one claim round trip feeds several jobs. Behind a long
        run nothing is queued ahead: another worker may run it."""
        with self._lock:
            runs = [run for run in self._owned.values() if run.pool is pool]
            busy = len(runs)
            short = (
                pool.recent_duration is not None
                and pool.recent_duration < _SHORT_JOB_SECONDS
                and all(run.elapsed() < _SHORT_JOB_SECONDS for run in runs)
            )
        free = pool.concurrency * (2 if short else 1) - busy
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self._claimed_total)
        return max(0, free)

    def _claim_loop(self) -> None:
        """Claim and dispatch until stopped, reaping every ``JOBS_REAP_INTERVAL``; survives
        database outages by reconnecting."""
        listener = None
        outage_delay = 0.0
        last_reap = 0.0
        try:
            while not self._stop.is_set():
                try:
                    # At (re)connection first: recover what crashed workers left behind.
                    if listener is None or (
                        time.monotonic() - last_reap >= settings.JOBS_REAP_INTERVAL
                    ):
                        last_reap = time.monotonic()
                        self._reap()
                    if listener is None:
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

    def _reap(self) -> None:
        """Run the reaper for the whole queue, then the registered periodic work
        (``jobs.periodic``): at start-up, then every ``JOBS_REAP_INTERVAL``."""
        reaped = services.jobs_requeue_stale()
        periodic.run_registered()  # the features' periodic work (due schedules, sweeps)
        if reaped.requeued:
            for pool in self.pools:
                pool.maybe_work = True
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

    def _claim_once(self, listener: psycopg.Connection) -> bool:
        """One claim-and-wait round; False when the worker should exit (burst/max_jobs)."""
        if self.max_jobs is not None and self._claimed_total >= self.max_jobs:
            return False
        claimed_any = more = False
        for pool in self.pools:
            free = self._free_slots(pool)
            if not free or not pool.maybe_work:
                continue
            claimed = services.job_claim(worker_id=self.worker_id, queues=pool.queues, limit=free)
            for job in claimed:
                self._claimed_total += 1
                context = JobContext(job=job, worker_id=self.worker_id)
                run = _Run(job=job, context=context, pool=pool, task=_task_of(job))
                with self._lock:
                    self._owned[job.id] = run
                pool.work.put(run)
            claimed_any = claimed_any or bool(claimed)
            pool.maybe_work = len(claimed) == free
            more = more or pool.maybe_work
        if more:
            return True  # there may be more: claim again as soon as a slot frees
        if self.burst and not claimed_any and self._idle():
            return False
        self._wait(listener)
        return True

    def _idle(self) -> bool:
        """No job of this worker is queued, running or waiting for its result's write."""
        with self._lock:
            return not self._owned and not self._unrecorded

    def _wait(self, listener: psycopg.Connection) -> None:
        """Sleep until a NOTIFY, a freed slot, a stop request or the poll interval. A NOTIFY
        (its payload is the job's queue) marks the pool of that queue as having work; the
        poll interval marks every pool (a job that became due, a NOTIFY missed)."""
        readable, _, _ = select.select(
            [listener.fileno(), self._wake_r], [], [], self.poll_interval
        )
        if not readable:
            for pool in self.pools:
                pool.maybe_work = True
        if self._wake_r in readable:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        if listener.fileno() in readable:
            for notify in listener.notifies(timeout=0):
                for pool in self.pools:
                    if notify.payload in pool.queues:
                        pool.maybe_work = True

    def _shutdown(self) -> None:
        """Let claimed jobs finish, then hand back whatever is left.

        After ``burst``/``max_jobs`` every claimed job runs to its end. After a stop
        request, running jobs get ``grace`` seconds from the request. Abandoned threads
        are not waited for.
        """
        for pool in self.pools:
            for _ in range(pool.concurrency):
                pool.work.put(_STOP)
        with self._lock:
            runners = [thread for thread in self._runners if thread not in self._abandoned]
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
            leftovers = list(self._owned.values())
        self._record_outcomes([(run, _Cut.HAND_BACK) for run in leftovers])
        for run in leftovers:
            run.context.mark_lost()  # tells a handler still running to stop

    # --- runners -----------------------------------------------------------------

    def _runner_loop(self, pool: _Pool) -> None:
        last_checked = 0.0
        try:
            while True:
                run = pool.work.get()
                if run is _STOP:
                    return
                if time.monotonic() - last_checked > 1.0:
                    # Drop a broken or expired connection; at most once a second, since
                    # with health checks on each call costs a round trip.
                    close_old_connections()
                    last_checked = time.monotonic()
                self._execute(run)
                self._wake()
                if run.abandoned:
                    return  # another thread serves the pool since the run timed out
        finally:
            connection.close()
            with self._lock:
                self._abandoned.discard(threading.current_thread())

    def _disown(self, run: _Run) -> None:
        """Forget ``run`` as one of this worker's (call under ``_lock``): no lease renewal,
        no slot. The same job may have been claimed here again since: that run stays."""
        if self._owned.get(run.job.id) is run:
            del self._owned[run.job.id]

    def _execute(self, run: _Run) -> None:
        """Run a claimed job's handler and pass how it ended to the outcome writer: a
        result through the recorder, anything else at once. A run handed back while it
        waited here is dropped: its hand-back is being recorded."""
        job = run.job
        with self._lock:
            if run.withdrawn:
                return
            if not run.context.cancelled():
                run.started = time.monotonic()
                run.thread = threading.current_thread()
            else:
                # Cancelled or lost while it waited in this worker's queue: never started.
                self._disown(run)
        if run.started is None:
            self._record_outcomes([(run, _Cut.INTERRUPTED)])
            return
        job_started.send_robust(sender=Worker, job=job)
        self._send_task_signal(run, task_started, run.context.task_result if run.task else None)
        try:
            ending = self._run_handler(run)
        finally:
            run.duration = time.monotonic() - run.started
            with self._lock:
                self._disown(run)
                previous = run.pool.recent_duration
                run.pool.recent_duration = (
                    run.duration if previous is None else 0.8 * previous + 0.2 * run.duration
                )
        if isinstance(ending, _Returned):
            # Written by the recorder, in one statement with other runners' results; this
            # runner's slot is free for the next job at once.
            self._to_recorder(run, ending)
        else:
            self._record_outcomes([(run, ending)])

    def _run_handler(self, run: _Run) -> _Returned | _Raised:
        """Run the job's handler inside its tenant; how it ended."""
        job = run.job
        try:
            job_type = get_job_type(job.type)
        except UnknownJobType as exc:
            return _Raised(
                f"unknown job type {job.type!r}", retry=False, exception_class=_path(exc)
            )
        try:
            task = job_type.task
            arguments = (run.context,) if task.takes_context else ()
            with bind_job(job), tenant_context(job.tenant):
                # Task.call runs an async def task to its end in this thread (async_to_sync).
                result = task.call(*arguments, **job.payload)
            json.dumps(result)  # fail here, not in the UPDATE, if it can't be stored
        except JobError as exc:
            return _Raised(str(exc), traceback.format_exc(), exception_class=_path(exc))
        except Exception as exc:
            if not run.context.cancelled():  # a handler told to stop may raise anything
                logger.exception("job handler raised", extra={"job_id": str(job.id)})
            return _Raised("internal error", traceback.format_exc(), exception_class=_path(exc))
        return _Returned(result)

    # --- the outcome writer ----------------------------------------------------------

    def _record_outcomes(self, endings: list[tuple[_Run, _Ending]]) -> None:
        """The one outcome writer: decide how each run ended, record it through
        ``jobs.services`` and report it (``_report``), once per run; then the runs it
        recorded, together, with one ``jobs_finished``.

        A run already taken by an earlier call is skipped. All results of the call are
        written in one statement; each other run takes its own guarded writes
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
        results = [(run.job.id, end.result) for run, end in taken if isinstance(end, _Returned)]
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
                taken = [(run, end) for run, end in taken if not isinstance(end, _Returned)]
        decided = []
        for run, ending in taken:
            try:
                if run.job.id in completed:
                    outcome = JobOutcome.COMPLETED
                else:
                    outcome = self._write_outcome(run, ending)
            except Exception:
                logger.exception("job outcome not recorded", extra=run.log_fields())
                connection.close()
            else:
                decided.append((run, ending, outcome))
        self._close_attempts(decided)
        for run, ending, outcome in decided:
            # A run that ended here may have freed what held its pool's next job back (its
            # tenant's running cap): the pool claims again at its next round.
            run.pool.maybe_work = True
            self._report(run, outcome)
            if run.started is not None:  # task_started was sent
                finished = self._finished_result(run, ending, outcome)
                self._send_task_signal(run, task_finished, finished)
        if decided:  # the batch, for receivers that query: one round trip, not one per run
            runs = [(run.job, outcome, run.elapsed()) for run, _ending, outcome in decided]
            jobs_finished.send_robust(sender=Worker, runs=runs)

    def _close_attempts(self, decided: list[tuple[_Run, _Ending, JobOutcome]]) -> None:
        """Part of the outcome writer: close the runs' attempts (``JobAttempt``) in one
        statement, with the client-safe error and the traceback of a failure. One the
        database refused past its patience stays open (logged)."""
        endings = [
            services.AttemptEnding(
                job_id=run.job.id,
                number=run.job.attempts,
                outcome=str(outcome),
                error=ending.error if outcome in _FAILURES else "",
                traceback=ending.traceback if outcome in _FAILURES else "",
                exception_class=ending.exception_class if outcome in _FAILURES else "",
            )
            for run, ending, outcome in decided
            if outcome not in (JobOutcome.LOST, JobOutcome.TIMED_OUT)  # the reaper's
        ]
        if not endings:
            return
        try:
            _retrying(services.job_attempts_close, worker_id=self.worker_id, endings=endings)
        except Exception:
            logger.exception("attempt history not recorded", extra={"jobs": len(endings)})
            connection.close()

    def _write_outcome(self, run: _Run, ending: _Ending) -> JobOutcome:
        """Part of the outcome writer: the guarded writes of a run that the batch did not
        complete, first to match wins: its failure; its cancellation; its hand-back; else
        its job was taken from this worker (timed out or lost)."""
        job = run.job
        patience = _HAND_BACK_PATIENCE if ending is _Cut.HAND_BACK else None
        if isinstance(ending, _Raised):
            status = _retrying(
                services.job_fail,
                job_id=job.id,
                worker_id=self.worker_id,
                attempts=job.attempts,
                error=ending.error,
                traceback=ending.traceback,
                retry=ending.retry,
            )
            if status == JobStatus.PENDING:
                return JobOutcome.RETRYING
            if status == JobStatus.FAILED:
                return JobOutcome.FAILED
        # No handler outcome counts from here: cancellation was requested, the job was
        # taken away, or it is being handed back.
        owner = {"job_id": job.id, "worker_id": self.worker_id, "patience": patience}
        if _retrying(services.job_finish_cancelled, **owner):
            return JobOutcome.CANCELLED
        if ending is _Cut.HAND_BACK and _retrying(services.job_release, **owner):
            return JobOutcome.HANDED_BACK
        if ending is _Cut.TIMED_OUT and _retrying(services.job_time_out, **owner):
            return JobOutcome.TIMED_OUT
        return JobOutcome.TIMED_OUT if self._timed_out(run) else JobOutcome.LOST

    def _timed_out(self, run: _Run) -> bool:
        """Whether the reaper took the run's job for running past its timeout, rather than
        for an expired lease: the job failed "timed out" at this very attempt."""
        try:
            job = selectors.job_get(tenant=run.job.tenant, job_id=run.job.id, include_internal=True)
        except JobNotFound:
            return False  # deleted since
        return (
            job.status == JobStatus.FAILED
            and job.error == _TIMED_OUT_ERROR
            and job.attempts == run.job.attempts
        )

    def _finished_result(self, run: _Run, ending: _Ending, outcome: JobOutcome):
        """The run's ``TaskResult`` as it ended, for ``task_finished``: SUCCESSFUL with the
        return value, or FAILED; a failed run adds its ``TaskError``. None when the task has
        not finished (the job will run again: retried, handed back, or lost with attempts
        left; Django sends ``task_finished`` once per task, when its result is final) or
        its job type is no longer registered."""
        if run.task is None:
            return None
        if outcome in (JobOutcome.RETRYING, JobOutcome.HANDED_BACK) or (
            outcome is JobOutcome.LOST and run.job.attempts < run.job.max_attempts
        ):
            return None
        running = run.context.task_result
        status = (
            TaskResultStatus.SUCCESSFUL
            if outcome is JobOutcome.COMPLETED
            else TaskResultStatus.FAILED
        )
        errors = list(running.errors)
        if isinstance(ending, _Raised):
            errors.append(
                TaskError(exception_class_path=ending.exception_class, traceback=ending.traceback)
            )
        finished = dataclasses.replace(
            running, status=status, errors=errors, finished_at=timezone.now()
        )
        if isinstance(ending, _Returned) and outcome is JobOutcome.COMPLETED:
            object.__setattr__(finished, "_return_value", ending.result)
        return finished

    def _send_task_signal(self, run: _Run, signal, task_result) -> None:
        """Send a ``django.tasks`` signal like Django's own backends (sender: the backend
        class); a receiver that raises is logged, never the worker's problem."""
        if task_result is None:
            return
        for receiver, response in signal.send_robust(
            sender=JobQueueBackend, task_result=task_result
        ):
            if isinstance(response, Exception):
                logger.error(
                    "task signal receiver raised",
                    extra={**run.log_fields(), "receiver": repr(receiver)},
                    exc_info=response,
                )

    def _report(self, run: _Run, outcome: JobOutcome) -> None:
        """Tell observers how a run ended: ``job_finished`` and the line ``job <outcome>``."""
        duration = run.elapsed()
        if outcome is not JobOutcome.HANDED_BACK:
            with self._lock:
                self.finished_total += 1
        job_finished.send_robust(sender=Worker, job=run.job, outcome=outcome, duration=duration)
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

    # --- recorder --------------------------------------------------------------------

    def _to_recorder(self, run: _Run, ending: _Ending) -> None:
        with self._lock:
            self._unrecorded += 1
        self._completions.put((run, ending))

    def _recorder_loop(self) -> None:
        """Pass the endings handed to it to the outcome writer, as many per call as have
        piled up."""
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
                        self._record_outcomes(batch)
                    finally:
                        with self._lock:
                            self._unrecorded -= len(batch)
                        self._wake()  # the claim loop may now see free capacity
        finally:
            connection.close()

    # --- heartbeat -------------------------------------------------------------------

    def _heartbeat_loop(self) -> None:
        try:
            while True:
                close_old_connections()
                try:
                    self._beat()
                except Exception:
                    # A database outage must not kill the heartbeat: retry next beat.
                    logger.exception("heartbeat failed", extra={"worker_id": self.worker_id})
                    connection.close()
                if self._stopped_heartbeat.wait(settings.JOBS_HEARTBEAT_SECONDS):
                    return
        finally:
            connection.close()

    def _beat(self) -> None:
        """Renew the leases of this worker's jobs and raise flags on their contexts: lost
        for a job taken from it, cancel requested for a job to cancel. A run to cancel is
        also handed to the recorder, whose outcome writer ends it now; a cancel requested
        again in later beats changes nothing. First, the runs that waited too long for a
        thread are handed back and those past their timeout abandoned."""
        self._enforce_deadlines()
        with self._lock:
            runs = dict(self._owned)
        if not runs:
            return
        beat = services.job_heartbeat(worker_id=self.worker_id, job_ids=list(runs))
        for job_id, run in runs.items():
            if job_id not in beat.renewed:
                run.context.mark_lost()
            elif job_id in beat.cancel_requested and not run.context.cancel_requested:
                run.context.mark_cancel_requested()
                self._to_recorder(run, _Cut.INTERRUPTED)

    def _enforce_deadlines(self) -> None:
        """Part of the heartbeat: hand back the runs that waited longer than
        ``JOBS_START_PATIENCE`` for a thread, and abandon those whose handler ran past its
        job's timeout: the outcome writer fails them ``timed out``, another thread takes
        the pool's place, and the handler is told to stop (``context.lost``)."""
        now = time.monotonic()
        with self._lock:
            waited = [
                run
                for run in self._owned.values()
                if run.started is None
                and not run.context.cancelled()
                and now - run.claimed > settings.JOBS_START_PATIENCE
            ]
            overdue = [
                run
                for run in self._owned.values()
                if run.started is not None and now - run.started > run.job.timeout_seconds
            ]
            for run in waited:
                run.withdrawn = True
                self._disown(run)
            for run in overdue:
                run.abandoned = True
                self._disown(run)
                self._abandoned.add(run.thread)
            abandoned = len(self._abandoned)
        if waited:
            self._record_outcomes([(run, _Cut.HAND_BACK) for run in waited])
        for run in overdue:
            run.context.mark_lost()
            self._start_runner(run.pool)
            logger.warning(
                "runner abandoned past the job's timeout",
                extra={**run.log_fields(), "worker_id": self.worker_id, "abandoned": abandoned},
            )
        if overdue:
            self._record_outcomes([(run, _Cut.TIMED_OUT) for run in overdue])
            if abandoned > self.concurrency:
                logger.error(
                    "too many abandoned runner threads; stopping for a clean restart",
                    extra={"worker_id": self.worker_id, "abandoned": abandoned},
                )
                self.request_stop()
        if waited or overdue:
            self._wake()
