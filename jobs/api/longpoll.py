"""Long polling: ``GET /api/jobs/{id}?wait=N`` answers when the job's representation
changes, or after N seconds (1 ≤ N ≤ ``JOBS_LONGPOLL_MAX_WAIT``) with the current state.

Changes are heard through PostgreSQL: a trigger (migration ``jobs/0003``) sends
``NOTIFY job_changed, '<job id>'`` whenever a represented column changes, whoever writes
it. Each process keeps **one** listening connection (``ChangeListener``, a daemon thread)
and fans notifications out to the requests waiting on that job; a waiting request holds
no database connection.

Two ways to serve it:

- **ASGI** (``config.asgi``, under uvicorn): ``get_response`` waits on an ``asyncio.Event``,
  so a waiting client costs a coroutine, not a thread. The request is checked (tenant,
  token, rate limit, job) before and after each wake-up in the event loop's bounded thread
  pool, and answered by the ordinary sync middleware + view chain run in that pool, so it
  is logged, counted and rate limited like any poll.
- **WSGI** (gunicorn, the test client): the view blocks its thread on a
  ``threading.Event``. Each waiting client then holds one worker thread for up to N
  seconds: capacity is workers × threads concurrent waits. Route ``wait=`` requests to
  the ASGI server (README, "Production").

A notification can be lost only while the listening connection is down; on reconnect every
waiter is woken to re-read, and a wait never outlasts N seconds anyway.
"""

import asyncio
import logging
import os
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from copy import copy
from urllib.parse import parse_qs

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.base import BaseHandler
from django.db import close_old_connections, connections
from django_tenants.utils import remove_www

from core.problems import Problem, ProblemCode
from jobs import selectors
from jobs.api import polling
from jobs.api.serializers import JobPollQuerySerializer
from jobs.models import Job

logger = logging.getLogger(__name__)

CHANNEL = "job_changed"
_STOP_CHECK_SECONDS = 1.0
_DETAIL_PATH = re.compile(r"^/api/jobs/(?P<pk>[^/]+)$")


def wait_seconds(query_params) -> int | None:
    """The ``wait`` query parameter in seconds (``JobPollQuerySerializer``, which the schema
    documents), None when absent; 400 ``invalid_wait`` when invalid."""
    query = JobPollQuerySerializer(data=query_params)
    if not query.is_valid():
        raise Problem(
            status_code=400,
            code=ProblemCode.INVALID_WAIT,
            detail="wait must be a whole number of seconds from 1 to "
            f"{settings.JOBS_LONGPOLL_MAX_WAIT}.",
        )
    return query.validated_data.get("wait")


# --- one listening connection per process --------------------------------------------------


class _Waiter:
    """What a waiting request blocks on: a ``threading.Event`` or, from an event loop, an
    ``asyncio.Event`` set thread-safely."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self.loop = loop
        self.event = asyncio.Event() if loop else threading.Event()

    def wake(self) -> None:
        if self.loop is None:
            self.event.set()
            return
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass


def _listen_params() -> dict:
    db = connections["default"].settings_dict
    params = {
        "dbname": db["NAME"],
        "user": db.get("USER"),
        "password": db.get("PASSWORD"),
        "host": db.get("HOST"),
        "port": db.get("PORT"),
        "application_name": "tenant-jobs-longpoll",
        # Notice a silently dead connection (no traffic flows on an idle LISTEN).
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    for name, value in (db.get("OPTIONS") or {}).items():
        if name.startswith("ssl"):
            params[name] = value
    return {name: value for name, value in params.items() if value not in (None, "")}


class ChangeListener:
    """``LISTEN job_changed`` on one connection per process; wakes the waiters of a job."""

    def __init__(self, channel: str = CHANNEL):
        self.channel = channel
        self._lock = threading.Lock()
        self._waiters: dict[str, set[_Waiter]] = defaultdict(set)
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

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

    @contextmanager
    def subscription(self, job_id: uuid.UUID, loop: asyncio.AbstractEventLoop | None = None):
        """A ``_Waiter`` woken on every notification for ``job_id`` while inside the block."""
        waiter = _Waiter(loop)
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

    def waiting(self) -> int:
        with self._lock:
            return sum(len(waiters) for waiters in self._waiters.values())

    def _wake(self, job_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        for waiter in waiters:
            waiter.wake()

    def _wake_all(self) -> None:
        with self._lock:
            waiters = [waiter for group in self._waiters.values() for waiter in group]
        for waiter in waiters:
            waiter.wake()

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
                with psycopg.connect(**_listen_params(), autocommit=True) as conn:
                    conn.execute(f"LISTEN {self.channel}")
                    self._listening.set()
                    backoff = 0.5
                    # Changes made while nobody listened were not heard: re-read all.
                    self._wake_all()
                    while not self._stopping.is_set():
                        # Bounded, to notice stop(); notifications arriving between two
                        # calls are kept by the connection and yielded by the next.
                        for notification in conn.notifies(timeout=_STOP_CHECK_SECONDS):
                            self._wake(notification.payload)
            except Exception:
                logger.warning("job_changed listener lost its connection", exc_info=True)
            self._listening.clear()
            self._wake_all()
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 10.0)


listener = ChangeListener()


# --- WSGI: the view's thread waits -----------------------------------------------------------


def read_and_wait(request, *, job_id: uuid.UUID, wait: int, read: Callable[[], Job]) -> Job:
    """Read the job; if the client's copy (``If-None-Match``, else the state just read) is
    current and the job unfinished, block until it changes or ``wait`` seconds pass.

    Returns the job as it is when the wait ends. Under the ASGI server the wait has
    already happened without a thread (``get_response``), so this only reads.
    """
    if getattr(request, "long_poll_done", False):
        return read()
    listener.ensure_listening()
    deadline = time.monotonic() + wait
    with listener.subscription(job_id) as waiter:
        job = read()
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match and not polling.etag_matches(if_none_match, job.etag):
            return job
        baseline = job.etag
        while polling.is_waitable(job) and job.etag == baseline:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not waiter.event.wait(remaining):
                break
            waiter.event.clear()
            job = read()
    return job


# --- ASGI: the wait costs a coroutine ----------------------------------------------------------


def is_long_poll(request) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and "wait" in request.GET
        and _DETAIL_PATH.match(request.path_info) is not None
    )


def is_long_poll_scope(scope) -> bool:
    """``is_long_poll`` for an ASGI scope, before a request object exists."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    path = scope["path"].removeprefix(scope.get("root_path", ""))
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return "wait" in query and _DETAIL_PATH.match(path) is not None


def _peek(request, job_id: uuid.UUID) -> str | None:
    """The job's ETag when the caller may keep waiting on it, None otherwise.

    Runs the poll's checks (tenant, token, rate limit without charging, tenant-scoped read)
    on a copy of the request; any refusal ends the wait, and the final pass through the
    normal chain gives the client the proper answer (401, 403, 404, 429…).
    """
    from accounts.authentication import TenantJWTAuthentication
    from jobs.api.ratelimit import check_rate_limit
    from tenants.resolution import tenant_for_host

    close_old_connections()
    probe = copy(request)
    try:
        tenant = tenant_for_host(remove_www(probe.get_host().split(":")[0]))
        if tenant is None or not tenant.is_active:
            return None
        probe.tenant = tenant
        authenticated = TenantJWTAuthentication().authenticate(probe)
        if authenticated is None:
            return None
        probe.user = authenticated[0]
        check_rate_limit(probe, charge=False)
        job = selectors.job_poll_get(tenant=tenant, job_id=job_id)
    except Exception:
        logger.debug("long poll ends early", exc_info=True)
        return None
    return job.etag if polling.is_waitable(job) else None


async def _wait_for_change(request, job_id: uuid.UUID, wait: int) -> None:
    """Return when the job's representation differs from the client's copy, or at the
    deadline; at once when there is nothing to wait for."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    in_pool = sync_to_async(_peek, thread_sensitive=False)
    if not listener.listening:
        await sync_to_async(listener.ensure_listening, thread_sensitive=False)()
    with listener.subscription(job_id, loop) as waiter:
        baseline = await in_pool(request, job_id)
        if_none_match = request.headers.get("If-None-Match")
        if baseline is None or (
            if_none_match and not polling.etag_matches(if_none_match, baseline)
        ):
            return
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(waiter.event.wait(), remaining)
            except TimeoutError:
                return
            waiter.event.clear()
            if await in_pool(request, job_id) != baseline:
                return


class _SyncChain(BaseHandler):
    """The WSGI-style middleware + view chain, to answer a long poll from a pool thread."""

    def __init__(self):
        super().__init__()
        self.load_middleware(is_async=False)


_chain: _SyncChain | None = None
_chain_lock = threading.Lock()


def _respond(request):
    global _chain
    with _chain_lock:
        if _chain is None:
            _chain = _SyncChain()
    # What request_started/request_finished do for a request's own thread: drop a
    # connection that is broken or past CONN_MAX_AGE, keep a healthy one for reuse.
    close_old_connections()
    try:
        return _chain.get_response(request)
    finally:
        close_old_connections()


async def get_response(request):
    """Serve a long poll under ASGI: wait without a thread, then answer through the
    ordinary chain (which sees ``long_poll_done`` and does not wait again)."""
    match = _DETAIL_PATH.match(request.path_info)
    try:
        job_id = uuid.UUID(match["pk"])
        wait = wait_seconds(request.GET)
    except (ValueError, Problem):
        job_id = wait = None  # the chain answers 400
    if job_id is not None and wait is not None:
        await _wait_for_change(request, job_id, wait)
    request.long_poll_done = True
    return await sync_to_async(_respond, thread_sensitive=False)(request)


class LongPollASGIHandler(ASGIHandler):
    """Django's ASGI handler, except for long polls (``GET /api/jobs/{id}?wait=N``), which
    wait for a change without holding a thread and are then answered by the same
    middleware and views as under WSGI (``config.asgi`` serves this)."""

    async def __call__(self, scope, receive, send):
        if is_long_poll_scope(scope):
            # Without Django's per-request thread context, the few thread-sensitive calls
            # (request_started/finished receivers) share asgiref's one sync thread, so a
            # waiting client does not keep an idle thread of its own.
            await self.handle(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def run_get_response(self, request):
        if not is_long_poll(request):
            return await super().run_get_response(request)
        response = await get_response(request)
        response._handler_class = self.__class__
        return response
