"""One process's fan-out of job changes to every waiting long poll and event stream.

A trigger (migration ``jobs/0003``) sends ``NOTIFY job_changed, '<job id>'`` whenever a
represented column changes. ``ChangeListener`` holds the process's **one** LISTEN
connection (``core.listen``, a daemon thread) and hands each job id to:

- ``Hub`` (one per event loop, ASGI): the waiters of a job are woken by **one** read of it
  (``read_snapshot``: tenant-filtered, row security, rendered once), shared by every
  long poll and stream of that job; a waiter costs a small object and a future, and holds
  no thread, connection or transaction. Reads run on a small thread pool
  (``_READ_THREADS``) that keeps no connection between reads, so the database sees at
  most that many short transactions at once whatever the number of waiters.
- ``_Waiter`` (WSGI): a ``threading.Event`` per waiting request.

``seq`` counts notifications and reconnects: a waiter that records it before its first
read and finds it changed once registered re-reads, so a change in between is not missed.
While the connection is down nothing is heard: on reconnect every waiter re-reads (tenant
streams end, their clients reconnect), and a wait that runs out re-reads anyway.

The listener also keeps the first state that long polls and job streams read
(``first_state``), so the long polls and streams of one job that start together (a burst,
or a reconnect storm: every client of a job reconnecting after a deploy) share one read
instead of one each. A kept state is dropped as soon as a notification of its job arrives,
or any when the connection is lost; it is kept only from a committed read during which
nothing was heard, only while listening, at most ``FIRST_STATE_SECONDS``, and only for
unfinished jobs (only final jobs are deleted).
"""

import asyncio
import logging
import os
import threading
import time
import uuid
import weakref
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import close_old_connections, connections, transaction
from rest_framework.renderers import JSONRenderer

from core import listen
from core.loop_local import LoopLocal
from jobs import selectors, sql
from jobs.api import polling
from jobs.api.realtime import waits
from jobs.api.serializers import JobOutputSerializer
from jobs.exceptions import JobNotFound
from jobs.models import FINAL_STATUSES
from tenants.row_security import tenant_row_security
from tenants.search_path import without_search_path

logger = logging.getLogger(__name__)

CHANNEL = "job_changed"
_STOP_CHECK_SECONDS = 1.0
_READ_THREADS = 4
# How long a job's first state is shared at most (a notification drops it at once), and how
# many jobs' states a process keeps.
FIRST_STATE_SECONDS = 5.0
FIRST_STATES = 1_000
# What a stream's watch holds at most for a client that reads nothing (its sends blocked):
# past it the stream ends instead, and its client reconnects from the current state.
MAX_ARRIVALS = 1_000


# --- what a read hands every waiter of a job -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A job as ``GET /api/jobs/{id}`` shows it: ``body`` is that response's exact JSON."""

    job_id: uuid.UUID
    etag: str
    body: bytes
    headers: dict
    final: bool
    waitable: bool


def read_snapshot(tenant, job_id: uuid.UUID) -> Snapshot | None:
    """Read ``tenant``'s job ``job_id`` (tenant filter and row security, one short
    transaction) and render it; None when the tenant has no such job. Blocking."""
    close_old_connections()
    try:
        with tenant_row_security(tenant):
            job = selectors.job_poll_get(tenant=tenant, job_id=job_id)
        return snapshot_of(job)
    except JobNotFound:
        return None
    finally:
        connections.close_all()  # a read thread keeps no connection between reads


def snapshot_of(job) -> Snapshot:
    """The ``Snapshot`` of a job read by ``selectors.job_poll_get``."""
    return Snapshot(
        job_id=job.id,
        etag=job.etag,
        body=JSONRenderer().render(JobOutputSerializer(job).data),
        headers=polling.poll_headers(job),
        final=job.status in FINAL_STATUSES,
        waitable=polling.is_waitable(job),
    )


def first_state(tenant, job_id: uuid.UUID, seq: int | None) -> Snapshot:
    """A long poll's or stream's first state of ``tenant``'s job ``job_id``: the one
    another of this process read, unless a change of the job was heard since, else a read
    (in the request's row security transaction; ``JobNotFound`` when there is no such job),
    kept once that transaction has committed (a read in one that rolls back may have seen
    rows that never existed). ``seq``: ``listener.seq`` taken before
    (``longpoll.listen_before_read``); None shares nothing (WSGI streams)."""
    if seq is not None:
        kept = listener.kept_state(tenant.pk, job_id)
        if kept is not None:
            return kept
    snapshot = snapshot_of(selectors.job_poll_get(tenant=tenant, job_id=job_id))
    if seq is not None and not snapshot.final:
        transaction.on_commit(lambda: listener.keep_state(tenant.pk, snapshot, seq))
    return snapshot


def _tenant_of_job(job_id: str) -> int | None:
    """Which tenant a changed job belongs to, to route it to that tenant's streams only.

    The id comes from the database's own notification, never from a client, and only the
    tenant id is read (as the login role): the job's data reaches a client only through
    ``read_snapshot``, tenant-filtered under row security."""
    close_old_connections()
    try:
        connection = connections["default"]
        statement = sql.JOB_TENANT.format(table=sql.public_table("job_queue"))
        with without_search_path(), connection.cursor() as cursor:
            cursor.execute(statement, [job_id])
            row = cursor.fetchone()
    finally:
        connections.close_all()
    return row[0] if row else None


# --- the listening connection ----------------------------------------------------------------


class _Waiter:
    """What a WSGI long poll blocks on."""

    def __init__(self):
        self.event = threading.Event()

    def wake(self) -> None:
        self.event.set()


class ChangeListener:
    """``LISTEN job_changed`` on one connection per process, handed to every ``Hub`` and
    to the WSGI waiters of the job."""

    def __init__(self, channel: str = CHANNEL):
        self.channel = channel
        self.seq = 0
        self._lock = threading.Lock()
        self._waiters: dict[str, set[_Waiter]] = defaultdict(set)
        self._hubs: weakref.WeakSet[Hub] = weakref.WeakSet()
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        # job id → (its tenant's pk, when kept (monotonic), the snapshot), oldest first
        self._states: dict[str, tuple[int, float, Snapshot]] = {}

    def ensure_listening(self, timeout: float = 5.0) -> bool:
        """Start the listener thread if needed (also after a fork); True once LISTEN is
        active, so a state read after this call cannot miss a later change."""
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if not alive or self._pid != os.getpid():
                self._pid = os.getpid()
                self._listening.clear()
                self._thread = threading.Thread(
                    target=self._run, name="job-changed-listener", daemon=True
                )
                self._thread.start()
        return self._listening.wait(timeout)

    @property
    def listening(self) -> bool:
        return self._listening.is_set() and self._pid == os.getpid()

    def add_hub(self, hub: "Hub") -> None:
        with self._lock:
            self._hubs.add(hub)

    @contextmanager
    def subscription(self, job_id: uuid.UUID):
        """A ``_Waiter`` woken on every notification for ``job_id`` inside the block."""
        waiter = _Waiter()
        key = str(job_id)
        with self._lock:
            self._waiters[key].add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]

    def keep_state(self, tenant_pk: int, snapshot: Snapshot, seq: int) -> None:
        """Keep ``snapshot`` for ``first_state`` if nothing was heard since ``seq`` (taken
        before the read began) and this process listens."""
        key = str(snapshot.job_id)
        with self._lock:
            if self.seq != seq or not self.listening:
                return
            self._states.pop(key, None)
            if len(self._states) >= FIRST_STATES:
                del self._states[next(iter(self._states))]
            self._states[key] = (tenant_pk, time.monotonic(), snapshot)

    def kept_state(self, tenant_pk: int, job_id: uuid.UUID) -> Snapshot | None:
        """The state kept for ``tenant_pk``'s job, if no change of it was heard since and
        it is younger than ``FIRST_STATE_SECONDS``."""
        with self._lock:
            kept = self._states.get(str(job_id))
        if kept is None or kept[0] != tenant_pk or not self.listening:
            return None
        if time.monotonic() - kept[1] > FIRST_STATE_SECONDS:
            return None
        return kept[2]

    def waiting(self) -> int:
        """Waiting requests of this process: WSGI waiters and every hub's watches."""
        with self._lock:
            hubs = list(self._hubs)
            count = sum(len(waiters) for waiters in self._waiters.values())
        return count + sum(hub.watching() for hub in hubs)

    def _deliver(self, job_id: str | None) -> None:
        with self._lock:
            self.seq += 1
            if job_id is None:
                waiters = [waiter for group in self._waiters.values() for waiter in group]
                self._states.clear()
            else:
                waiters = list(self._waiters.get(job_id, ()))
                self._states.pop(job_id, None)
            hubs = list(self._hubs)
        for waiter in waiters:
            waiter.wake()
        for hub in hubs:
            hub.notify_threadsafe(job_id)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop listening and close the connection (tests; a process exit needs nothing)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join(timeout)
            self._stopping.clear()

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                with listen.listen(self.channel, application_name="tenant-jobs-longpoll") as conn:
                    self._listening.set()
                    backoff = 0.5
                    # Changes made while nobody listened were not heard: re-read all.
                    self._deliver(None)
                    while not self._stopping.is_set():
                        # Bounded, to notice stop(); notifications arriving between two
                        # calls are kept by the connection and yielded by the next.
                        for notification in conn.notifies(timeout=_STOP_CHECK_SECONDS):
                            self._deliver(notification.payload)
            except Exception:
                logger.warning("job_changed listener lost its connection", exc_info=True)
            self._listening.clear()
            self._deliver(None)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 10.0)


listener = ChangeListener()


# --- ASGI: one hub per event loop ------------------------------------------------------------


class StreamEnded(Exception):
    """A stream must end: its job is gone, or changes may have gone unheard (a tenant
    stream, when the listener reconnected)."""


class Watch:
    """One long poll or stream. ``offer`` is called on the loop with each new snapshot.

    A stream's watch keeps what arrived in a list and at most one future, while it awaits
    ``arrivals``: an ``asyncio.Queue`` (four deques and an event) was a tenth of an idle
    stream's memory."""

    __slots__ = ("arrived", "baseline", "future", "tenant")

    def __init__(self, tenant, *, baseline: str | None = None, stream: bool = False):
        self.tenant = tenant
        self.baseline = baseline
        self.future = None if stream else asyncio.get_running_loop().create_future()
        self.arrived = [] if stream else None

    def offer(self, snapshot: Snapshot | None) -> None:
        if self.arrived is not None:
            self.put(StreamEnded() if snapshot is None else snapshot)
        elif not self.future.done() and (snapshot is None or snapshot.etag != self.baseline):
            self.future.set_result(snapshot)

    def put(self, item) -> None:
        """A stream's: hand ``item`` to ``arrivals``; a heartbeat (None) already waiting
        is not repeated, and past ``MAX_ARRIVALS`` the stream is ended instead."""
        arrived = self.arrived
        if item is None and arrived and arrived[-1] is None:
            return
        if len(arrived) >= MAX_ARRIVALS:
            if not isinstance(arrived[-1], StreamEnded):
                arrived.append(StreamEnded())
            return
        arrived.append(item)
        if self.future is not None and not self.future.done():
            self.future.set_result(None)

    async def arrivals(self) -> list:
        """A stream's: what was put since the last call, in order; waits for something."""
        if not self.arrived:
            self.future = asyncio.get_running_loop().create_future()
            try:
                await self.future
            finally:
                self.future = None
        arrived, self.arrived = self.arrived, []
        return arrived


class Hub:
    """The waiters of one event loop, by job and by tenant; one read per change of a job."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._jobs: dict[str, dict[int, set[Watch]]] = {}
        self._tenants: dict[int, set[Watch]] = {}
        self._tenant_objects: dict[int, object] = {}
        self._reads: dict[tuple[int, str], asyncio.Future] = {}
        self._again: set[tuple[int, str]] = set()
        self._executor = ThreadPoolExecutor(_READ_THREADS, thread_name_prefix="fanout-read")
        self._releases: list = []
        self._renewals: list = []
        listener.add_hub(self)

    def release_soon(self, slot) -> None:
        """Give ``slot`` back without delaying the answer: the slots of every waiter a
        change answers go back together, in one Redis round trip."""
        self._releases.append(slot)
        if len(self._releases) == 1:
            self.loop.call_soon(self._release_batch)

    def _release_batch(self) -> None:
        batch, self._releases = self._releases, []
        future = self.loop.run_in_executor(None, waits.release_many, batch)
        future.add_done_callback(_log_release_failure)

    def renew_soon(self, slot) -> None:
        """Renew ``slot``'s stream lease; the renewals asked for in one turn of the loop
        (heartbeats are due on a shared grid) go in one Redis round trip."""
        self._renewals.append(slot)
        if len(self._renewals) == 1:
            self.loop.call_soon(self._renew_batch)

    def _renew_batch(self) -> None:
        batch, self._renewals = self._renewals, []
        lease = waits.stream_lease_seconds()
        future = self.loop.run_in_executor(None, waits.renew_many, batch, lease)
        future.add_done_callback(_log_release_failure)

    def watching(self) -> int:
        return sum(len(w) for group in self._jobs.values() for w in group.values()) + sum(
            len(w) for w in self._tenants.values()
        )

    def notify_threadsafe(self, job_id: str | None) -> None:
        try:
            self.loop.call_soon_threadsafe(self._notify, job_id)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass

    def _notify(self, job_id: str | None) -> None:
        if job_id is None:
            for key, by_tenant in list(self._jobs.items()):
                for tenant_pk in list(by_tenant):
                    self.read(self._tenant_objects[tenant_pk], uuid.UUID(key))
            for watches in list(self._tenants.values()):
                for watch in list(watches):
                    watch.offer(None)
            return
        by_tenant = self._jobs.get(job_id, {})
        for tenant_pk in list(by_tenant):
            self.read(self._tenant_objects[tenant_pk], uuid.UUID(job_id))
        if any(pk not in by_tenant for pk in self._tenants):
            self.loop.create_task(self._route_to_tenant(job_id))

    async def _route_to_tenant(self, job_id: str) -> None:
        try:
            tenant_pk = await self.loop.run_in_executor(self._executor, _tenant_of_job, job_id)
        except Exception:
            logger.warning("could not route a job change to its tenant", exc_info=True)
            return
        if tenant_pk in self._tenants and tenant_pk not in self._jobs.get(job_id, {}):
            self.read(self._tenant_objects[tenant_pk], uuid.UUID(job_id))

    def read(self, tenant, job_id: uuid.UUID) -> asyncio.Future:
        """A read of the job, shared with one already running (which is then repeated
        once it ends, so a change during it is not missed); its snapshot is offered to
        every watch of the job and of the tenant's streams."""
        key = (tenant.pk, str(job_id))
        running = self._reads.get(key)
        if running is not None:
            self._again.add(key)
            return running
        future = self.loop.create_future()
        self._reads[key] = future
        self.loop.create_task(self._read(key, tenant, job_id, future))
        return future

    async def _read(self, key, tenant, job_id, future) -> None:
        try:
            snapshot = await self.loop.run_in_executor(
                self._executor, read_snapshot, tenant, job_id
            )
        except Exception as error:
            logger.warning("fan-out read failed", exc_info=True)
            del self._reads[key]
            self._again.discard(key)
            future.set_exception(error)
            future.exception()  # retrieved: waiters that did not ask are not told
            return
        del self._reads[key]
        future.set_result(snapshot)
        for watch in list(self._jobs.get(key[1], {}).get(key[0], ())):
            watch.offer(snapshot)
        if snapshot is not None:
            for watch in list(self._tenants.get(key[0], ())):
                watch.offer(snapshot)
        if key in self._again:
            self._again.discard(key)
            self.read(tenant, job_id)

    @contextmanager
    def watch_job(self, tenant, job_id: uuid.UUID, *, baseline=None, stream=False):
        """Register a watch of ``tenant``'s job ``job_id`` for the block."""
        watch = Watch(tenant, baseline=baseline, stream=stream)
        key = str(job_id)
        self._tenant_objects[tenant.pk] = tenant
        self._jobs.setdefault(key, {}).setdefault(tenant.pk, set()).add(watch)
        try:
            yield watch
        finally:
            by_tenant = self._jobs.get(key, {})
            watches = by_tenant.get(tenant.pk, set())
            watches.discard(watch)
            if not watches:
                by_tenant.pop(tenant.pk, None)
                if not by_tenant:
                    self._jobs.pop(key, None)

    @contextmanager
    def watch_tenant(self, tenant):
        """Register a stream of every job of ``tenant`` for the block."""
        watch = Watch(tenant, stream=True)
        self._tenant_objects[tenant.pk] = tenant
        self._tenants.setdefault(tenant.pk, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._tenants.get(tenant.pk, set())
            watches.discard(watch)
            if not watches:
                self._tenants.pop(tenant.pk, None)


def _log_release_failure(future) -> None:
    if future.exception() is not None:  # leases end released slots; renewed ones last 4 beats
        logger.warning("could not renew or give back wait slots", exc_info=future.exception())


_hubs = LoopLocal(Hub)


def hub() -> Hub:
    """The running event loop's ``Hub``."""
    return _hubs.get()
