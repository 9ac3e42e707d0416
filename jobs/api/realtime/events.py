"""Push streams: ``GET /api/jobs/{id}/events`` (one job) and ``GET /api/events`` (every job
of the caller's tenant), ``text/event-stream``.

Each event is ``event: job``, ``id:`` the job's ETag and ``data:`` exactly the JSON of
``GET /api/jobs/{id}``. A job stream sends the current state at once (unless
``Last-Event-ID`` already names it), then every change, and ends after the final state.
The tenant stream sends each unfinished job's state at once (the newest
``TENANT_STREAM_INITIAL_JOBS``, read in one statement), then every change of any of the
tenant's jobs, each state of a job once; it ends when changes may have gone unheard (the
listener reconnected), so the client reconnects and gets the current states again. A
comment line every ``JOBS_EVENTS_HEARTBEAT_SECONDS`` keeps proxies from closing an idle
stream (``Heartbeats``: one timer per event loop for all its streams).

Authentication, tenant, rate limit (charged once per stream) and the cap on concurrent
waits (``jobs.api.realtime.waits``) are checked by the ordinary chain; the stream then runs on the
event loop through the same fan-out as long polls (``jobs.api.realtime.fanout``), holding no
thread, connection or transaction (the ASGI handler sends its body without keeping the
request or the response: ``event_stream``), and ends as soon as what authorized it no longer
holds (``jobs.api.realtime.grants``: checked before each batch of events, and for every idle
stream of the process together every few seconds). ``HEAD`` answers a ``GET``'s headers
and ends. Streams need the ASGI server; under WSGI a ``GET`` or ``HEAD`` is 503 (other
methods are answered as on any route).
"""

import asyncio
import time
from collections import OrderedDict
from contextlib import aclosing, contextmanager
from functools import partial
from types import SimpleNamespace

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.cache import patch_vary_headers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from accounts.authentication import TenantJWTAuthentication
from core.loop_local import LoopLocal
from core.problems import Problem, ProblemCode
from jobs import selectors
from jobs.api import schema
from jobs.api.ratelimit import RateLimitedView, check_rate_limit
from jobs.api.read_tokens import JobReadTokenAuthentication
from jobs.api.realtime import fanout, longpoll, waits
from jobs.api.realtime.fanout import listener
from jobs.api.realtime.grants import Grant, revocations
from jobs.api.views import _job_id

TENANT_STREAM_INITIAL_JOBS = 200
# The jobs a tenant stream remembers the last sent ETag of, oldest forgotten first. Several
# reads can follow one change (a read per notification, and a job that starts and ends
# within one read shows its final state twice), so a state already sent is dropped.
TENANT_STREAM_MEMORY = 1_000
HEARTBEAT = b": keep-alive\n\n"


class EventStreamRenderer(JSONRenderer):
    """Lets ``Accept: text/event-stream`` through content negotiation; only problem
    documents (JSON) are ever rendered with it."""

    media_type = "text/event-stream"
    format = "sse"


def event(snapshot: fanout.Snapshot) -> bytes:
    """One ``job`` event: ``id:`` the ETag, ``data:`` the poll's JSON (one line)."""
    return b"event: job\nid: %s\ndata: %s\n\n" % (snapshot.etag.encode(), snapshot.body)


class _ByAcceptOnly(DefaultContentNegotiation):
    """Chooses by ``Accept`` alone: a stream takes no query parameter, ``?format=``
    included (DRF's URL override), which would otherwise be read."""

    settings = SimpleNamespace(URL_FORMAT_OVERRIDE=None)


class _StreamView(RateLimitedView, APIView):
    # Its transaction opens with its first statement (tenants.row_security): a stream that
    # starts from a first state another stream read sends none.
    row_security_on_demand = True
    renderer_classes = [JSONRenderer, EventStreamRenderer]
    content_negotiation_class = _ByAcceptOnly

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication and permissions first
        check_rate_limit(request, charge=True)  # once, for the whole stream

    @staticmethod
    def listen(request) -> int | None:
        """``listener.seq`` before the stream's first read (``longpoll.listen_before_read``);
        None under WSGI, which streams nothing and so starts no listener."""
        return longpoll.listen_before_read() if getattr(request, "defer_waits", False) else None

    def stream(self, request, events):
        """The response of a ``GET`` (``events(slot, grant)``: the stream's body, holding one
        of the caller's wait slots) or of a ``HEAD`` (its headers only); 503 under WSGI."""
        if not getattr(request, "defer_waits", False):
            raise Problem(
                status_code=503,
                code=ProblemCode.SERVICE_UNAVAILABLE,
                detail="Event streams are served by the ASGI server; long-poll with ?wait= "
                "instead.",
            )
        if request.method == "HEAD":
            response = HttpResponse(content_type="text/event-stream")
        else:
            slot = waits.acquire(request, lease_seconds=waits.stream_lease_seconds())
            body = events(slot, Grant.of(request))
            response = StreamingHttpResponse(body, content_type="text/event-stream")
            # LongPollASGIHandler sends the body without holding the response for its life.
            response.event_stream = body
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        patch_vary_headers(response, ("Authorization",))
        return response


async def _changes(watch: fanout.Watch, slot: waits.WaitSlot, grant: Grant):
    """What arrives on ``watch``, and None each time a heartbeat is due (``Heartbeats``; the
    slot's lease renewed then, with the loop's other streams in one round trip). Ends as
    soon as ``grant`` no longer holds: checked before each batch of arrivals is handed on,
    and on the loop's grid while idle (``Revocations``, which ends the watch: a
    ``StreamEnded`` arrives)."""
    with (
        revocations().watch(grant, partial(watch.offer, None)),
        heartbeats().beating(watch),
    ):
        while True:
            arrived = await watch.arrivals()
            changes = [item for item in arrived if item is not None]
            if changes and not await grant.aholds():
                return
            for item in changes:
                yield item
            if len(changes) < len(arrived):
                fanout.hub().renew_soon(slot)
                yield None


class Heartbeats:
    """The streams of one event loop, beating together: one timer on a grid every
    ``JOBS_EVENTS_HEARTBEAT_SECONDS`` that every process shares puts None on every
    stream's watch, so the beats and lease renewals come together (one Redis round trip),
    and an idle stream holds no timer of its own."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._watches: set[fanout.Watch] = set()
        self._timer: asyncio.TimerHandle | None = None

    @contextmanager
    def beating(self, watch: fanout.Watch):
        """Put None on ``watch`` at each beat within the block."""
        self._watches.add(watch)
        if self._timer is None:
            every = settings.JOBS_EVENTS_HEARTBEAT_SECONDS
            self._timer = self.loop.call_later(every - time.time() % every, self._beat)
        try:
            yield
        finally:
            self._watches.discard(watch)

    def _beat(self) -> None:
        self._timer = None
        for watch in self._watches:
            watch.put(None)
        if self._watches:
            # The grid's tick after the one just beaten (the nearest to now: a timer may
            # fire a little early or late), so no stream beats twice for one tick.
            every = settings.JOBS_EVENTS_HEARTBEAT_SECONDS
            now = time.time()
            following = (round(now / every) + 1) * every
            self._timer = self.loop.call_later(following - now, self._beat)


_heartbeats = LoopLocal(Heartbeats)


def heartbeats() -> Heartbeats:
    """The running event loop's ``Heartbeats``."""
    return _heartbeats.get()


async def job_events(tenant, first: fanout.Snapshot, *, last_event_id, seq, slot, grant):
    """The events of one job, from ``first`` (read by the chain) to its final state."""
    hub = fanout.hub()
    try:
        with hub.watch_job(tenant, first.job_id, stream=True) as watch:
            if listener.seq != seq:
                hub.read(tenant, first.job_id)
            sent = last_event_id
            if first.etag != sent:
                yield event(first)
                sent = first.etag
            if first.final:
                return
            async with aclosing(_changes(watch, slot, grant)) as changes:
                async for item in changes:
                    if item is None:
                        yield HEARTBEAT
                        continue
                    if not isinstance(item, fanout.Snapshot):  # the job is gone
                        return
                    if item.etag != sent:
                        yield event(item)
                        sent = item.etag
                    if item.final:
                        return
    finally:
        hub.release_soon(slot)  # with the other streams ending now, in one round trip


async def tenant_events(tenant, initial: list[fanout.Snapshot], *, seq, slot, grant):
    """The events of every job of ``tenant``: ``initial``, then each change, each state of
    a job once (of the last ``TENANT_STREAM_MEMORY`` jobs seen)."""
    hub = fanout.hub()
    sent: OrderedDict = OrderedDict()  # job id → the ETag last sent, oldest first

    def seen(snapshot) -> bool:
        """Whether ``snapshot``'s state was sent already; remembers it as sent."""
        known = sent.get(snapshot.job_id) == snapshot.etag
        sent[snapshot.job_id] = snapshot.etag
        sent.move_to_end(snapshot.job_id)
        if len(sent) > TENANT_STREAM_MEMORY:
            sent.popitem(last=False)
        return known

    try:
        with hub.watch_tenant(tenant) as watch:
            if listener.seq != seq:
                for snapshot in initial:
                    hub.read(tenant, snapshot.job_id)
            for snapshot in initial:
                seen(snapshot)
                yield event(snapshot)
            async with aclosing(_changes(watch, slot, grant)) as changes:
                async for item in changes:
                    if item is None:
                        yield HEARTBEAT
                    elif isinstance(item, fanout.StreamEnded):
                        return
                    elif not seen(item):
                        yield event(item)
    finally:
        hub.release_soon(slot)  # with the other streams ending now, in one round trip


class JobEventsView(_StreamView):
    """``GET /api/jobs/{id}/events``; a job read token of the job may stream it too."""

    authentication_classes = [TenantJWTAuthentication, JobReadTokenAuthentication]

    @schema.job_events_schema
    def get(self, request, pk=None):
        job_id = _job_id(pk)
        seq = self.listen(request)
        first = fanout.first_state(request.tenant, job_id, seq)
        last_event_id = request.headers.get("Last-Event-ID")
        return self.stream(
            request,
            lambda slot, grant: job_events(
                request.tenant, first, last_event_id=last_event_id, seq=seq, slot=slot, grant=grant
            ),
        )


class TenantEventsView(_StreamView):
    """``GET /api/events``."""

    @schema.tenant_events_schema
    def get(self, request):
        seq = self.listen(request)
        jobs = selectors.job_poll_unfinished(
            tenant=request.tenant, limit=TENANT_STREAM_INITIAL_JOBS
        )
        initial = [fanout.snapshot_of(job) for job in jobs]
        return self.stream(
            request,
            lambda slot, grant: tenant_events(
                request.tenant, initial, seq=seq, slot=slot, grant=grant
            ),
        )
