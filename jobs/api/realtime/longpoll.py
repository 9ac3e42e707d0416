"""Long polling: ``GET /api/jobs/{id}?wait=N`` answers when the job's representation
changes, or after N seconds (1 ≤ N ≤ ``JOBS_LONGPOLL_MAX_WAIT``) with the current state.

The request goes through the ordinary middleware + view chain **once**: tenant, token,
rate limit (charged once, whatever the answer), the cap on concurrent waits
(``jobs.api.realtime.waits``) and the first read. When the client's copy is current and the job
unfinished, the view attaches a ``PendingWait`` to its response instead of blocking; the
wait then happens after the chain's transaction has ended, holding no connection, and ends
with a fresh read however it ends (a change, the deadline, a lost notification). What
authorized it (``jobs.api.realtime.grants``) is checked again before it answers and every few
seconds while it waits; once it no longer holds, the chain answers again, as it would a
new request (401 or 403):

- **ASGI** (``config.asgi``, under uvicorn): ``LongPollASGIHandler`` waits on the loop's
  ``fanout.Hub``, where one read per change answers every waiter of the job; a client
  that disconnects is dropped at once (``http.disconnect`` ends the wait); the answer of a
  change is encoded once for all its waiters (``encoded_answer``).
- **WSGI** (gunicorn, the test client): ``LongPollWaitMiddleware``, outside the row
  security transaction, closes the thread's connection and blocks the thread on the
  listener. At most half of a process's threads wait at once (``waits.take_thread``);
  past that, and under sync workers, a long poll answers at once as a plain poll. Route
  ``wait=`` requests and event streams to the ASGI server (docs/operations.md, "Production").

The access log line and the API metrics of a long poll are written when its wait starts.
"""

import asyncio
import enum
import io
import re
import threading
import time
import uuid
from contextlib import aclosing, closing
from dataclasses import dataclass
from functools import partial
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.db import connection
from django.urls import set_script_prefix

from core.problems import Problem, ProblemCode
from jobs.api import polling
from jobs.api.realtime import fanout, waits
from jobs.api.realtime.fanout import CHANNEL, listener  # noqa: F401 (the process's listener)
from jobs.api.realtime.grants import Grant, revocations
from jobs.api.serializers import JobPollQuerySerializer

_DETAIL_PATH = re.compile(r"^/api/jobs/(?P<pk>[^/]+)$")
_STREAM_PATH = re.compile(r"^/api/(jobs/[^/]+/)?events$")


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


def listen_before_read() -> int:
    """Make sure this process listens, and return ``listener.seq`` to hand to ``defer``:
    call before the read whose state the wait starts from."""
    if not listener.listening:
        listener.ensure_listening()
    return listener.seq


@dataclass
class PendingWait:
    """A long poll whose chain has answered and whose wait is still to come."""

    tenant: object
    job_id: uuid.UUID
    baseline: str
    held: frozenset[str]  # the ETags of If-None-Match (polling.held_etags)
    seq: int
    wait: int
    slot: waits.WaitSlot
    grant: Grant


def defer(request, response, *, state: fanout.Snapshot, wait: int, seq: int | None) -> None:
    """Attach a ``PendingWait`` to the poll's ``response`` when the client's copy is current
    (``If-None-Match``, else the ``state`` it was answered from) and the job unfinished;
    takes one of the caller's wait slots (429 when they are all taken). ``seq``:
    ``listen_before_read``'s, None only when the chain answers again (no wait)."""
    if_none_match = request.headers.get("If-None-Match")
    held = polling.held_etags(if_none_match)
    if (
        getattr(request, "long_poll_done", False)
        or not state.waitable
        or (if_none_match and not polling.holds_etag(held, state.etag))
    ):
        return
    slot = waits.acquire(request, lease_seconds=wait + waits.LEASE_MARGIN_SECONDS)
    response.long_poll = PendingWait(
        request.tenant, state.job_id, state.etag, held, seq, wait, slot, Grant.of(request)
    )


# The headers of a long poll's answer that its snapshot and status decide (``answer_parts``);
# the chain's others (request id, rate limit, Vary, CORS, security headers) are the waiter's.
ANSWER_HEADERS = frozenset(
    {"etag", "retry-after", "cache-control", "content-type", "content-length"}
)


def answer_parts(snapshot: fanout.Snapshot, held: frozenset[str]) -> tuple[int, dict, bytes]:
    """The status, ``ANSWER_HEADERS`` and body of the answer for ``snapshot`` to a client
    holding the ETags ``held``: 304 when it holds the snapshot's, else 200 with the JSON of
    ``GET /api/jobs/{id}``, headers as that GET answers them."""
    if polling.holds_etag(held, snapshot.etag):
        return 304, {**snapshot.headers, "Content-Length": "0"}, b""
    headers = {"Content-Type": "application/json", **snapshot.headers}
    headers["Content-Length"] = str(len(snapshot.body))
    return 200, headers, snapshot.body


def answer(response, pending: PendingWait, snapshot: fanout.Snapshot):
    """The chain's ``response`` (its request id, rate-limit and Vary headers kept) made
    into the answer for ``snapshot`` (``answer_parts``)."""
    status, headers, body = answer_parts(snapshot, pending.held)
    for name in ANSWER_HEADERS:
        if name in response:
            del response[name]
    response.status_code = status
    response.content = body
    for name, value in headers.items():
        response[name] = value
    return response


# --- WSGI: the thread waits, outside the transaction -------------------------------------------


def _holds_without_connection(grant: Grant) -> bool:
    """``grant.holds()``, closing a connection it had to open: a waiting thread holds none."""
    try:
        return grant.holds()
    finally:
        if not connection.in_atomic_block:
            connection.close()


def _wait_in_thread(pending: PendingWait) -> fanout.Snapshot | None:
    """The snapshot that answers ``pending``; None when the chain must answer instead (the
    job is gone, or its grant no longer holds)."""
    deadline = time.monotonic() + pending.wait
    with listener.subscription(pending.job_id) as waiter:
        if listener.seq != pending.seq:
            waiter.wake()
        while (remaining := deadline - time.monotonic()) > 0:
            woken = waiter.event.wait(min(remaining, pending.grant.recheck_in()))
            if not _holds_without_connection(pending.grant):
                return None
            if not woken:
                continue
            waiter.event.clear()
            snapshot = fanout.read_snapshot(pending.tenant, pending.job_id)
            if snapshot is None or snapshot.etag != pending.baseline:
                return snapshot
    # The deadline, with or without a notification heard: a fresh read.
    return fanout.read_snapshot(pending.tenant, pending.job_id)


class LongPollWaitMiddleware:
    """Serves a ``PendingWait`` under WSGI: closes the thread's connection, blocks until
    a change or the deadline, answers from a fresh read. Place right before
    ``TenantRowSecurityMiddleware`` (outside its transaction). Under ASGI the handler
    waits instead (``request.defer_waits``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        pending = getattr(response, "long_poll", None)
        if pending is None or getattr(request, "defer_waits", False):
            return response
        del response.long_poll
        if not waits.take_thread():  # the threads left must serve plain requests
            pending.slot.release()
            return response  # the plain poll's answer, Retry-After included
        try:
            if not connection.in_atomic_block:
                connection.close()  # hold no connection while waiting
            snapshot = _wait_in_thread(pending)
        finally:
            pending.slot.release()
            waits.give_thread()
        if snapshot is None:  # the chain answers (404, 401, 403)
            request.long_poll_done = True
            return self.get_response(request)
        return answer(response, pending, snapshot)


# --- ASGI: the wait costs a future on the loop -------------------------------------------------


def is_deferred_scope(scope) -> bool:
    """A long poll (``GET /api/jobs/{id}?wait=``) or an event stream: served without a
    thread of its own (``LongPollASGIHandler``)."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    path = scope["path"].removeprefix(scope.get("root_path", ""))
    if _STREAM_PATH.match(path):
        return True
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return "wait" in query and _DETAIL_PATH.match(path) is not None


class _SyncChain(BaseHandler):
    """The WSGI-style middleware + view chain, to answer from a pool thread."""

    def __init__(self):
        super().__init__()
        self.load_middleware(is_async=False)


_chain: _SyncChain | None = None
_chain_lock = threading.Lock()


def _respond(request):
    """The chain's response to ``request``, in a pool thread, closed: ``request_started``
    and ``request_finished`` are sent in the thread that used the database (their receivers
    drop a connection that is broken or past ``CONN_MAX_AGE``), and nothing is left to do
    after sending it. A stream's body is an async generator, which closing leaves alone."""
    global _chain
    with _chain_lock:
        if _chain is None:
            _chain = _SyncChain()
    signals.request_started.send(sender=LongPollASGIHandler, scope=request.scope)
    response = _chain.get_response(request)
    response._handler_class = LongPollASGIHandler
    response.close()
    return response


_in_pool = sync_to_async(_respond, thread_sensitive=False)


def _encoded_headers(pairs) -> list[tuple[bytes, bytes]]:
    """Header names and values as Django's ``ASGIHandler.send_response`` encodes them."""
    return [(name.encode("ascii"), value.encode("latin1")) for name, value in pairs]


def _response_headers(response, leaving=frozenset()) -> list[tuple[bytes, bytes]]:
    """The headers of ``response`` but those named in ``leaving`` (lower case), encoded,
    cookies included, as Django's ``ASGIHandler.send_response`` sends them."""
    headers = _encoded_headers(
        (name, value) for name, value in response.items() if name.lower() not in leaving
    )
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.OutputString().encode("ascii")))
    return headers


def waiter_headers(response) -> list[tuple[bytes, bytes]]:
    """The headers of the chain's ``response`` that a waiter's answer keeps (all but
    ``ANSWER_HEADERS``), encoded: taken once, when the wait starts."""
    return _response_headers(response, ANSWER_HEADERS)


@dataclass(frozen=True, slots=True)
class EncodedAnswer:
    """``answer_parts`` encoded for ASGI: the same object for every waiter one snapshot
    answers with one status."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


# The answers of the last snapshot that woke waiters (304, 200), which every waiter of its
# change is answered from in turn: encoded once per snapshot, not once per waiter.
_encoded: tuple[fanout.Snapshot, dict[bool, EncodedAnswer]] | None = None


def encoded_answer(snapshot: fanout.Snapshot, held: frozenset[str]) -> EncodedAnswer:
    """``answer_parts(snapshot, held)``, encoded, shared by the waiters of ``snapshot``."""
    global _encoded
    not_modified = polling.holds_etag(held, snapshot.etag)
    kept = _encoded
    if kept is None or kept[0] is not snapshot:
        kept = _encoded = (snapshot, {})
    found = kept[1].get(not_modified)
    if found is None:
        status, headers, body = answer_parts(snapshot, held)
        encoded = EncodedAnswer(status, _encoded_headers(headers.items()), body)
        found = kept[1][not_modified] = encoded
    return found


async def send_answer(send, answer: EncodedAnswer, own_headers: list) -> None:
    """Send a woken long poll's answer: the shared ``answer`` with the waiter's own headers
    (``waiter_headers``), the bytes Django's handler would send for the same response."""
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": answer.headers + own_headers,
        }
    )
    await send({"type": "http.response.body", "body": answer.body})


class _Ended(enum.Enum):
    """What else than a snapshot (or None) can end a wait on the loop."""

    CLIENT_LEFT = "client left"  # http.disconnect
    RAN_OUT = "ran out"  # the wait's deadline


def _end(future: asyncio.Future, outcome: _Ended, *_) -> None:
    if not future.done():
        future.set_result(outcome)


async def _wait_on_loop(hub: fanout.Hub, pending: PendingWait, receive):
    """The snapshot that answers ``pending``; None when the chain must answer instead (the
    job is gone, or its grant no longer holds: checked before answering, and while idle on
    the loop's grid by ``Revocations``, which ends the wait); ``_Ended.CLIENT_LEFT`` when
    the client left first. Whichever comes first (a change, the deadline's timer, the
    client's ``http.disconnect``) ends the watch's one future: a change wakes the waiter's
    own task, with no task, shield or timeout scope of its own to go through."""
    loop = asyncio.get_running_loop()
    with (
        hub.watch_job(pending.tenant, pending.job_id, baseline=pending.baseline) as watch,
        revocations().watch(pending.grant, partial(watch.offer, None)),
    ):
        deadline = loop.call_later(pending.wait, _end, watch.future, _Ended.RAN_OUT)
        left = loop.create_task(receive())  # only http.disconnect can come now
        left.add_done_callback(partial(_end, watch.future, _Ended.CLIENT_LEFT))
        try:
            if listener.seq != pending.seq:
                hub.read(pending.tenant, pending.job_id)
            snapshot = await watch.future
        finally:
            deadline.cancel()
            left.cancel()
    if snapshot is _Ended.CLIENT_LEFT:
        return snapshot
    if snapshot is _Ended.RAN_OUT:
        # Without a change being heard: one may have been lost. The read is shared with the
        # waiters running out with this one (shielded: none may cancel it for the others).
        snapshot = await asyncio.shield(hub.read(pending.tenant, pending.job_id))
    if snapshot is None or not await pending.grant.aholds():
        return None
    return snapshot


class LongPollASGIHandler(ASGIHandler):
    """Django's ASGI handler, with every HTTP request's chain run in the loop's shared pool
    (``_respond``), and long polls and event streams then waiting on the event loop
    (``jobs.api.realtime.events`` for streams), holding no thread (``config.asgi`` serves
    this). Django's own handler gives each request a thread of its own, whose persistent
    database connection outlives it until the collector finds it: a process serving a
    stream of short requests held ~90 idle connections. In the pool, a process holds one
    per pool thread (docs/deploy.md).

    A waiting long poll keeps only its ``PendingWait`` and the chain's headers that are its
    own (``waiter_headers``, encoded): the request, the view and the response (whose
    renderer context holds both) are released before the wait. A change's answer is
    encoded once for all the waiters it wakes (``encoded_answer``) and sent with each
    waiter's own headers, without building a response per waiter. When the wait ends
    without a snapshot (the job is gone, the grant no longer holds) the chain answers a
    request rebuilt from the scope (a ``GET`` has no body), as it would a new one.

    An event stream (``jobs.api.realtime.events``: its response carries its body as
    ``event_stream``) keeps only that body once its head is sent: the response, its
    headers and their encoded copy are released."""

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # Without Django's per-request thread context: the chain runs in the shared pool
        # and sends request_started/finished there (``_respond``), so no request keeps a
        # thread (and its connection) of its own, nor hops to asgiref's one sync thread.
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        with closing(body_file):
            request, response = self.create_request(scope, body_file)
            if request is not None:
                request.defer_waits = is_deferred_scope(scope)
                response = await _in_pool(request)
            del request
        del body_file
        events = response.__dict__.pop("event_stream", None)
        if events is not None:
            await send(_response_start(response))
            del response
            await self._until_disconnect(self._send_events(events, send), receive)
            return
        pending = response.__dict__.pop("long_poll", None)
        if pending is None:
            await self._send_until_disconnect(response, receive, send)
            return
        own_headers = waiter_headers(response)
        del response
        hub = fanout.hub()
        try:
            snapshot = await _wait_on_loop(hub, pending, receive)
        finally:
            hub.release_soon(pending.slot)
        if snapshot is _Ended.CLIENT_LEFT:
            return
        if snapshot is not None:
            await send_answer(send, encoded_answer(snapshot, pending.held), own_headers)
            return
        # The chain answers (404, 401, 403).
        request, response = self.create_request(scope, io.BytesIO())
        if request is not None:
            request.long_poll_done = True
            response = await _in_pool(request)
        await self._send_until_disconnect(response, receive, send)

    async def _send_until_disconnect(self, response, receive, send) -> None:
        """Send ``response`` (a stream's body included) until it ends or the client
        leaves, as Django's ``handle`` does; it is closed already (``_respond``)."""
        if not response.streaming:  # sent at once: nothing to stop when the client leaves
            await self.send_response(response, send)
            return
        await self._until_disconnect(self.send_response(response, send), receive)

    async def _send_events(self, events, send) -> None:
        """An event stream's body, as ``send_response`` sends a streaming one."""
        async with aclosing(events):
            async for part in events:
                for chunk, _ in self.chunk_bytes(part):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body"})

    async def _until_disconnect(self, sending, receive) -> None:
        """Await ``sending`` (a streaming body) until it ends, or cancel it when the
        client leaves."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.listen_for_disconnect(receive))
                await sending
                raise _Sent
        except* (_Sent, RequestAborted):
            pass


class _Sent(Exception):
    """A streaming body ended: stops the wait for the client's disconnect."""


def _response_start(response) -> dict:
    """The ``http.response.start`` message of ``response``, as ``send_response`` sends it."""
    return {
        "type": "http.response.start",
        "status": response.status_code,
        "headers": _response_headers(response),
    }
