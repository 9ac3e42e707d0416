"""The ``Worker``: its main loop (claims, waits, the reaper's rounds), runner threads,
recorder and heartbeat (``jobs.worker`` describes them together)."""

import contextlib
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
from django.tasks.signals import task_started
from django_tenants.utils import tenant_context

from core import listen, tracing
from core.log_context import bind_job, capture
from jobs import periodic, services
from jobs.backends import send_task_signal
from jobs.context import JobContext, JobError, Snooze
from jobs.exceptions import UnknownJobType
from jobs.registry import get_job_type
from jobs.signals import job_started
from jobs.worker.outcomes import OutcomeWriter
from jobs.worker.pools import Pool, parse_pools
from jobs.worker.registration import worker_card
from jobs.worker.runs import Cut, Ending, Raised, Returned, Run, Snoozed, exception_path

logger = logging.getLogger("jobs.worker")

_STOP = object()


# What a lost or restarting database raises through Django, and psycopg on the listener.
DB_ERRORS = (DatabaseError, psycopg.Error)


def _close_quietly(listener) -> None:
    if listener is not None:
        with contextlib.suppress(psycopg.Error):
            listener.close()


# Jobs shorter than this on average are claimed ahead of free threads (see _free_slots).
_SHORT_JOB_SECONDS = 0.05
# While jobs are short, a pool claims ahead what its threads run in this long at their
# recent pace (at least as many as it has threads, at most _MAX_CLAIMED_AHEAD): one claim
# round trip then feeds many jobs, and a job of another tenant that arrives meanwhile waits
# behind those queued here about this long.
_CLAIM_AHEAD_SECONDS = 0.05
_MAX_CLAIMED_AHEAD = 100
# Most endings passed to the outcome writer in one call of the recorder.
_MAX_COMPLETION_BATCH = 500


def _task_of(job):
    try:
        return get_job_type(job.type).task
    except UnknownJobType:
        return None


def _job_span(job):
    """The run's span (``core.tracing``; nothing when tracing is off)."""
    return tracing.job_span(
        traceparent=job.traceparent,
        tenant=job.tenant.schema_name,
        job_id=str(job.id),
        job_type=job.type,
        attempt=job.attempts,
        not_errors=(Snooze,),  # handed back for later: no failure
    )


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
            self.pools.append(Pool(queues=(platform,), concurrency=platform_concurrency))
        self.queues = [name for pool in self.pools for name in pool.queues]
        self.concurrency = sum(pool.concurrency for pool in self.pools)
        self.burst = burst
        self.max_jobs = max_jobs
        self.grace = grace
        self.poll_interval = poll_interval or settings.JOBS_POLL_INTERVAL
        self._card = worker_card(self.worker_id, self.pools)  # what the heartbeat registers

        self._stop = threading.Event()
        self._stopped_heartbeat = threading.Event()
        self._lock = threading.Lock()
        self._wake_lock = threading.Lock()
        # Jobs this worker claimed whose handler has not ended (queued locally or running):
        # their leases are renewed by the heartbeat, and they are handed back at shutdown.
        self._owned: dict[uuid.UUID, Run] = {}
        self._claimed_total = 0
        self.outcomes = OutcomeWriter(worker_id=self.worker_id, lock=self._lock, sender=Worker)
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
        but ``handed_back``. The worker is in the registry from its first heartbeat until
        it returns (``jobs.models.WorkerProcess``)."""
        logger.info(
            "worker started",
            extra={
                "worker_id": self.worker_id,
                "queues": self.queues,
                "concurrency": self.concurrency,
                "pools": self._card.pools,
                "version": self._card.version,
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
            self._deregister()
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

    def _deregister(self) -> None:
        """Leave the registry at a clean stop; in an outage the row expires instead."""
        try:
            services.worker_deregister(worker_id=self.worker_id)
        except DB_ERRORS:
            logger.warning(
                "could not leave the worker registry; its row will expire",
                extra={"worker_id": self.worker_id},
                exc_info=True,
            )

    @property
    def finished_total(self) -> int:
        """Runs that ended here with any outcome but ``handed_back``."""
        return self.outcomes.finished_total

    @property
    def abandoned_threads(self) -> int:
        """Runner threads abandoned past their run's timeout whose handler is still running."""
        with self._lock:
            return len(self._abandoned)

    def _start_runner(self, pool: Pool) -> None:
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

    def _free_slots(self, pool: Pool) -> int:
        """How many jobs to claim now for ``pool``: its free threads, plus, while jobs are
        short (under ``_SHORT_JOB_SECONDS``, on average and for every run in progress),
        what its threads run in ``_CLAIM_AHEAD_SECONDS`` queued ahead (at least as many as
        it has threads, at most ``_MAX_CLAIMED_AHEAD``), so one claim round trip feeds many
        jobs; claimed once fewer jobs wait than it has threads, so that the claim's round
        trip overlaps the runs. Behind a long run nothing is queued ahead: another worker
        may run it."""
        with self._lock:
            runs = [run for run in self._owned.values() if run.pool is pool]
            busy = len(runs)
            short = (
                pool.recent_duration is not None
                and pool.recent_duration < _SHORT_JOB_SECONDS
                and all(run.elapsed() < _SHORT_JOB_SECONDS for run in runs)
            )
            queued = sum(1 for run in runs if run.started is None)
        ahead = 0
        if short:
            if queued >= pool.concurrency:
                return 0  # a job queued for each thread: claim more once they run low
            pace = pool.concurrency * _CLAIM_AHEAD_SECONDS / max(pool.recent_duration, 1e-4)
            ahead = min(_MAX_CLAIMED_AHEAD, max(pool.concurrency, int(pace)))
        free = pool.concurrency + ahead - busy
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
        """Run the reaper for the whole queue and the worker registry (expired workers),
        then the registered periodic work (``jobs.periodic``): at start-up, then every
        ``JOBS_REAP_INTERVAL``."""
        reaped = services.jobs_requeue_stale()
        services.workers_expire()
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
        # Idle before claiming: then no run of ours can enqueue a job (a webhook delivery on
        # its outcome) while the pools claim, and a burst that finds nothing may end.
        idle = self.burst and self._idle()
        claimed_any = more = skipped = False
        for pool in self.pools:
            free = self._free_slots(pool)
            if not free:
                continue
            if not pool.maybe_work:
                skipped = True
                continue
            claimed = services.job_claim(worker_id=self.worker_id, queues=pool.queues, limit=free)
            for job in claimed:
                self._claimed_total += 1
                context = JobContext(job=job, worker_id=self.worker_id)
                run = Run(job=job, context=context, pool=pool, task=_task_of(job))
                with self._lock:
                    self._owned[job.id] = run
                pool.work.put(run)
            claimed_any = claimed_any or bool(claimed)
            pool.maybe_work = len(claimed) == free
            # A rate budget held jobs back: claim again when it has a token.
            pool.retry_at = (
                None if claimed.retry_in is None else time.monotonic() + claimed.retry_in
            )
            more = more or pool.maybe_work
        if more:
            return True  # there may be more: claim again as soon as a slot frees
        # A burst ends only when nothing is left to wait for: not while a rate budget holds
        # jobs back that its next token lets run.
        waiting = any(pool.retry_at is not None for pool in self.pools)
        if idle and not claimed_any and not waiting:
            if not skipped:
                return False
            for pool in self.pools:  # a burst ends on a round in which every pool claimed
                pool.maybe_work = True
            return True
        self._wait(listener)
        return True

    def _idle(self) -> bool:
        """No job of this worker is queued, running or waiting for its result's write."""
        with self._lock:
            return not self._owned and not self._unrecorded

    def _wait(self, listener: psycopg.Connection) -> None:
        """Sleep until a NOTIFY, a freed slot, a stop request, a spent rate budget's next
        token (``Pool.retry_at``) or the poll interval. A NOTIFY (its payload is the job's
        queue, or ``*``: a budget of flow control freed units, a pause was lifted) marks the
        pools of that queue as having work; the poll interval marks every pool (a job that
        became due, a NOTIFY missed), and a pool's next token marks it."""
        now = time.monotonic()
        timeout = min(
            [self.poll_interval]
            + [max(0.0, pool.retry_at - now) for pool in self.pools if pool.retry_at is not None]
        )
        readable, _, _ = select.select([listener.fileno(), self._wake_r], [], [], timeout)
        now = time.monotonic()
        for pool in self.pools:
            if pool.retry_at is not None and pool.retry_at <= now:
                # Its token is due: one claim for it, then no more waking for it (a pool
                # with no free thread would otherwise be woken again at once, and spin).
                pool.maybe_work, pool.retry_at = True, None
            elif not readable and timeout >= self.poll_interval:
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
                    if notify.payload == "*" or notify.payload in pool.queues:
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
        self.outcomes.record([(run, Cut.HAND_BACK) for run in leftovers])
        for run in leftovers:
            run.context.mark_lost()  # tells a handler still running to stop

    # --- runners -----------------------------------------------------------------

    def _runner_loop(self, pool: Pool) -> None:
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

    def _disown(self, run: Run) -> None:
        """Forget ``run`` as one of this worker's (call under ``_lock``): no lease renewal,
        no slot. The same job may have been claimed here again since: that run stays."""
        if self._owned.get(run.job.id) is run:
            del self._owned[run.job.id]

    def _execute(self, run: Run) -> None:
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
            self.outcomes.record([(run, Cut.INTERRUPTED)])
            return
        try:
            started = run.context.task_result if run.task else None  # reads its attempts
        except DatabaseError:
            # The database went away while the job waited in this worker's queue (claimed
            # ahead): hand it back unstarted, and keep this runner for the next job.
            logger.warning("database unavailable as a job started; handed back", exc_info=True)
            with self._lock:
                run.started = run.thread = None
                self._disown(run)
            self.outcomes.record([(run, Cut.HAND_BACK)])
            return
        job_started.send_robust(sender=Worker, job=job)
        send_task_signal(task_started, started, log_fields=run.log_fields())
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
        if isinstance(ending, Returned | Raised):
            # Written by the recorder, in one statement with other runners' results (or
            # failures); this runner's slot is free for the next job at once.
            self._to_recorder(run, ending)
        else:
            self.outcomes.record([(run, ending)])

    def _run_handler(self, run: Run) -> Returned | Raised | Snoozed:
        """Run the job's handler inside its tenant; how it ended."""
        job = run.job
        try:
            job_type = get_job_type(job.type)
        except UnknownJobType as exc:
            return Raised(
                f"unknown job type {job.type!r}", retry=False, exception_class=exception_path(exc)
            )
        try:
            task = job_type.task
            arguments = (run.context,) if task.takes_context else ()
            with bind_job(job), capture(run.log), _job_span(job), tenant_context(job.tenant):
                # Task.call runs an async def task to its end in this thread (async_to_sync).
                result = task.call(*arguments, **job.payload)
            json.dumps(result)  # fail here, not in the UPDATE, if it can't be stored
        except Snooze as exc:
            if job.snoozes >= settings.JOBS_MAX_SNOOZES:  # a failed attempt like any other
                return Raised(
                    f"snoozed more than {settings.JOBS_MAX_SNOOZES} times",
                    exception_class=exception_path(exc),
                )
            return Snoozed(exc.seconds)
        except JobError as exc:
            return Raised(str(exc), traceback.format_exc(), exception_class=exception_path(exc))
        except Exception as exc:
            if not run.context.cancelled():  # a handler told to stop may raise anything
                logger.exception("job handler raised", extra={"job_id": str(job.id)})
            return Raised(
                "internal error", traceback.format_exc(), exception_class=exception_path(exc)
            )
        return Returned(result)

    # --- recorder --------------------------------------------------------------------

    def _to_recorder(self, run: Run, ending: Ending) -> None:
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
                        self.outcomes.record(batch)
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
        """In one statement, write this worker's row of the registry (its last beat, the
        jobs it holds) and renew the leases of its jobs; then raise flags on their
        contexts: lost for a job taken from it, cancel requested for a job to cancel. A run
        to cancel is also handed to the recorder, whose outcome writer ends it now; a
        cancel requested again in later beats changes nothing. First, the runs that waited
        too long for a thread are handed back and those past their timeout abandoned."""
        self._enforce_deadlines()
        with self._lock:
            runs = dict(self._owned)
        beat = services.worker_beat(card=self._card, job_ids=list(runs))
        for job_id, run in runs.items():
            if job_id not in beat.renewed:
                run.context.mark_lost()
            elif job_id in beat.cancel_requested and not run.context.cancel_requested:
                run.context.mark_cancel_requested()
                self._to_recorder(run, Cut.INTERRUPTED)

    def _enforce_deadlines(self) -> None:
        """Part of the heartbeat: hand back the runs that waited longer than
        ``JOBS_START_PATIENCE`` for a thread, and abandon those whose handler ran past its
        job's timeout: the outcome writer fails them ``timed out``, another thread takes
        the pool's place, and the handler is told to stop (``context.cancelled()``)."""
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
            self.outcomes.record([(run, Cut.HAND_BACK) for run in waited])
        for run in overdue:
            run.context.mark_lost()
            self._start_runner(run.pool)
            logger.warning(
                "runner abandoned past the job's timeout",
                extra={**run.log_fields(), "worker_id": self.worker_id, "abandoned": abandoned},
            )
        if overdue:
            self.outcomes.record([(run, Cut.TIMED_OUT) for run in overdue])
            if abandoned > self.concurrency:
                logger.error(
                    "too many abandoned runner threads; stopping for a clean restart",
                    extra={"worker_id": self.worker_id, "abandoned": abandoned},
                )
                self.request_stop()
        if waited or overdue:
            self._wake()
