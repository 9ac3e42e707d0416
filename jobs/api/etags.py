"""This process's copies of the ETags of jobs polled here: a conditional poll that matches
one is answered 304 without PostgreSQL.

A copy is kept after a poll's read, once that read's transaction has committed (a read
inside a transaction that later rolls back may have seen rows that never existed), only
for a job past ``pending``: a pending job's ``waiting`` follows flow control's pauses and
budgets, which change no job row and so send no notification. A copy holds the job's
tenant and answers that tenant's polls only; any other tenant's poll reads the database
(404, as before).

What keeps the copies current is the ``job_changed`` notification (the trigger of
migration ``jobs/0003`` sends it on every change of a represented column): a thread of
each process (``_Copies``) listens on its own ``LISTEN`` connection (``core.listen``) and
drops the job's copy as each arrives. Copies are used only while that connection is up:
when it is lost (and when it comes back) every copy is dropped. A read that overlapped a
notification of its job keeps nothing. A notification that is lost all the same (the
connection silently gone until its TCP timeout; a job deleted, which notifies nothing)
leaves a copy stale for at most ``JOBS_POLL_ETAG_SECONDS``, the lifetime of every copy
(0: no copies). Between a change's commit and its notification reaching this process
(normally well under a millisecond) a poll here can still be answered 304.
"""

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from core import listen
from core.process_local import ProcessLocal
from jobs.models import JobStatus

logger = logging.getLogger(__name__)

CHANNEL = "job_changed"
MAX_COPIES = 10_000  # the oldest copy goes first beyond it
_RECENT_CHANGES = 10_000  # job ids whose last notification is remembered, for reads in flight
_STOP_CHECK_SECONDS = 1.0
_clock = time.monotonic  # when copies expire (a process's own clock: nothing is shared)


@dataclass(frozen=True, slots=True)
class Copy:
    """What a 304 needs of a job: its tenant, its ETag and the poll's headers."""

    tenant_id: int
    etag: str
    headers: dict[str, str]
    expires: float  # _clock()


@dataclass(frozen=True, slots=True)
class ReadMark:
    """Where the notifications stood before a read (``_Copies.mark``)."""

    connection: int
    seq: int


class _Copies:
    def __init__(self):
        self.lock = threading.Lock()
        self.copies: OrderedDict[str, Copy] = OrderedDict()
        self.changed: OrderedDict[str, int] = OrderedDict()  # job id → seq of its last change
        self.forgotten_seq = 0  # the latest seq dropped from ``changed``
        self.seq = 0
        self.connection = 0  # counts the LISTEN connections made: a new one drops everything
        self.live = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="job-etags", daemon=True)
        self.thread.start()

    def get(self, tenant_id: int, job_id: uuid.UUID) -> Copy | None:
        key = str(job_id)
        with self.lock:
            found = self.copies.get(key) if self.live else None
        if found is None or found.tenant_id != tenant_id or found.expires <= _clock():
            return None
        return found

    def mark(self) -> ReadMark:
        with self.lock:
            return ReadMark(self.connection, self.seq)

    def keep(self, mark: ReadMark, tenant_id: int, job_id: uuid.UUID, etag, headers) -> None:
        """Keep a copy of what a read begun at ``mark`` found, unless a notification of the
        job (or a new connection) came in since."""
        key = str(job_id)
        expires = _clock() + settings.JOBS_POLL_ETAG_SECONDS
        with self.lock:
            changed_since = self.changed.get(key, self.forgotten_seq) > mark.seq
            if not self.live or mark.connection != self.connection or changed_since:
                return
            self.copies[key] = Copy(tenant_id, etag, headers, expires)
            self.copies.move_to_end(key)
            while len(self.copies) > MAX_COPIES:
                self.copies.popitem(last=False)

    def _changed(self, job_id: str) -> None:
        with self.lock:
            self.seq += 1
            self.copies.pop(job_id, None)
            self.changed[job_id] = self.seq
            self.changed.move_to_end(job_id)
            while len(self.changed) > _RECENT_CHANGES:
                _, self.forgotten_seq = self.changed.popitem(last=False)

    def _lost(self) -> None:
        with self.lock:
            self.live = False
            self.connection += 1
            self.copies.clear()
            self.changed.clear()
            self.forgotten_seq = self.seq

    def _run(self) -> None:
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                with listen.listen(CHANNEL, application_name="tenant-jobs-etags") as conn:
                    self._lost()  # what changed while nobody listened is unknown
                    self.live = True
                    backoff = 0.5
                    while not self.stopping.is_set():
                        # Bounded, to notice stop(); notifications arriving between two
                        # calls are kept by the connection and yielded by the next.
                        for notification in conn.notifies(timeout=_STOP_CHECK_SECONDS):
                            self._changed(notification.payload)
            except Exception:
                logger.warning("job_changed listener of the ETag copies lost", exc_info=True)
            self._lost()
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, 10.0)


_copies = ProcessLocal(_Copies)  # started on first use (again in a forked child)


def stop(timeout: float = 5.0) -> None:
    """Stop listening and drop every copy (tests: the connection would block DROP
    DATABASE); the next use starts again."""
    found = _copies.take()
    if found is not None:
        found.stopping.set()
        found.thread.join(timeout)


def enabled() -> bool:
    return settings.JOBS_POLL_ETAG_SECONDS > 0


def listening() -> bool:
    """Whether this process's copies are in use (its LISTEN connection is up)."""
    return _copies.get().live


def current(tenant_id: int, job_id: uuid.UUID) -> Copy | None:
    """The copy of ``tenant_id``'s job ``job_id`` (None: read the database)."""
    return _copies.get().get(tenant_id, job_id) if enabled() else None


def mark() -> ReadMark | None:
    """Call before reading a job to keep a copy of: where the notifications stand."""
    return _copies.get().mark() if enabled() else None


def keep_after_commit(mark: ReadMark | None, tenant_id: int, job, headers) -> None:
    """Keep a copy of ``job`` (read by ``selectors.job_poll_get`` after ``mark``) once the
    current transaction commits, if its ETag can only change with its row."""
    if mark is None or job.status == JobStatus.PENDING:
        return
    copies = _copies.get()
    transaction.on_commit(lambda: copies.keep(mark, tenant_id, job.id, job.etag, dict(headers)))
