"""Push streams: ``GET /api/jobs/{id}/events`` (one job) and ``GET /api/events`` (every job
of the caller's tenant), ``text/event-stream``.

Each event is ``event: job``, ``id:`` the job's ETag and ``data:`` exactly the JSON of
``GET /api/jobs/{id}``. A job stream sends the current state at once (unless
``Last-Event-ID`` already names it), then every change, and ends after the final state.
The tenant stream sends each unfinished job's state at once (the newest
``TENANT_STREAM_INITIAL_JOBS``), then every change of any of the tenant's jobs; it ends
when changes may have gone unheard (the listener reconnected), so the client reconnects and
gets the current states again. A comment line every ``JOBS_EVENTS_HEARTBEAT_SECONDS``
keeps proxies from closing an idle stream.

Authentication, tenant, rate limit (charged once per stream) and the cap on concurrent
waits (``jobs.api.waits``) are checked once, by the ordinary chain; the stream then runs on
the event loop through the same fan-out as long polls (``jobs.api.fanout``), holding no
thread, connection or transaction. Streams need the ASGI server; under WSGI they are 503.
"""

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils.cache import patch_vary_headers
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from core.problems import Problem, ProblemCode
from jobs import selectors
from jobs.api import fanout, longpoll, schema, waits
from jobs.api.fanout import listener
from jobs.api.ratelimit import check_rate_limit
from jobs.api.views import _job_id
from jobs.exceptions import JobNotFound
from jobs.models import JobStatus

TENANT_STREAM_INITIAL_JOBS = 200
HEARTBEAT = b": keep-alive\n\n"


class EventStreamRenderer(JSONRenderer):
    """Lets ``Accept: text/event-stream`` through content negotiation; only problem
    documents (JSON) are ever rendered with it."""

    media_type = "text/event-stream"
    format = "sse"


def event(snapshot: fanout.Snapshot) -> bytes:
    """One ``job`` event: ``id:`` the ETag, ``data:`` the poll's JSON (one line)."""
    return b"event: job\nid: %s\ndata: %s\n\n" % (snapshot.etag.encode(), snapshot.body)


class _StreamView(APIView):
    renderer_classes = [JSONRenderer, EventStreamRenderer]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication and permissions first
        check_rate_limit(request, charge=True)  # once, for the whole stream
        if not getattr(request, "defer_waits", False):
            raise Problem(
                status_code=503,
                code=ProblemCode.SERVICE_UNAVAILABLE,
                detail="Event streams are served by the ASGI server; long-poll with ?wait= "
                "instead.",
            )

    def finalize_response(self, request, response, *args, **kwargs):
        usage = getattr(request, "rate_limit_usage", None)
        if usage is not None:
            for name, value in usage.headers().items():
                response[name] = value
        return super().finalize_response(request, response, *args, **kwargs)

    def stream(self, content) -> StreamingHttpResponse:
        response = StreamingHttpResponse(content, content_type="text/event-stream")
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        patch_vary_headers(response, ("Authorization",))
        return response


async def _next(queue: asyncio.Queue, slot: waits.WaitSlot):
    """The next item of ``queue``, or None after a heartbeat's interval (the slot's lease
    renewed)."""
    try:
        return await asyncio.wait_for(queue.get(), settings.JOBS_EVENTS_HEARTBEAT_SECONDS)
    except TimeoutError:
        await sync_to_async(slot.renew, thread_sensitive=False)(waits.stream_lease_seconds())
        return None


async def _release(slot: waits.WaitSlot) -> None:
    await asyncio.shield(sync_to_async(slot.release, thread_sensitive=False)())


async def job_events(tenant, first: fanout.Snapshot, *, last_event_id, seq, slot):
    """The events of one job, from ``first`` (read by the chain) to its final state."""
    hub = fanout.hub()
    try:
        with hub.watch_job(tenant, first.job_id, stream=True) as watch:
            if listener.seq != seq:
                hub.read(tenant, first.job_id)
            sent, current = last_event_id, first
            while True:
                if current.etag != sent:
                    yield event(current)
                    sent = current.etag
                if current.final:
                    return
                item = await _next(watch.queue, slot)
                while item is None:
                    yield HEARTBEAT
                    item = await _next(watch.queue, slot)
                if not isinstance(item, fanout.Snapshot):  # the job is gone
                    return
                current = item
    finally:
        await _release(slot)


async def tenant_events(tenant, initial: list[fanout.Snapshot], *, seq, slot):
    """The events of every job of ``tenant``: ``initial``, then each change."""
    hub = fanout.hub()
    sent: dict = {}
    try:
        with hub.watch_tenant(tenant) as watch:
            if listener.seq != seq:
                for snapshot in initial:
                    hub.read(tenant, snapshot.job_id)
            for snapshot in initial:
                yield event(snapshot)
                sent[snapshot.job_id] = snapshot.etag
            while True:
                item = await _next(watch.queue, slot)
                if item is None:
                    yield HEARTBEAT
                elif isinstance(item, fanout.StreamEnded):
                    return
                elif sent.get(item.job_id) != item.etag:
                    yield event(item)
                    sent[item.job_id] = item.etag
                    if item.final:
                        del sent[item.job_id]
    finally:
        await _release(slot)


class JobEventsView(_StreamView):
    """``GET /api/jobs/{id}/events``."""

    @schema.job_events_schema
    def get(self, request, pk=None):
        job_id = _job_id(pk)
        seq = longpoll.listen_before_read()
        first = fanout.snapshot_of(selectors.job_poll_get(tenant=request.tenant, job_id=job_id))
        slot = waits.acquire(request, lease_seconds=waits.stream_lease_seconds())
        last_event_id = request.headers.get("Last-Event-ID")
        return self.stream(
            job_events(request.tenant, first, last_event_id=last_event_id, seq=seq, slot=slot)
        )


class TenantEventsView(_StreamView):
    """``GET /api/events``."""

    @schema.tenant_events_schema
    def get(self, request):
        seq = longpoll.listen_before_read()
        unfinished = selectors.job_list(tenant=request.tenant).filter(
            status__in=(JobStatus.PENDING, JobStatus.PROCESSING)
        )
        initial = []
        for job_id in unfinished.values_list("id", flat=True)[:TENANT_STREAM_INITIAL_JOBS]:
            try:
                job = selectors.job_poll_get(tenant=request.tenant, job_id=job_id)
            except JobNotFound:
                continue
            initial.append(fanout.snapshot_of(job))
        slot = waits.acquire(request, lease_seconds=waits.stream_lease_seconds())
        return self.stream(tenant_events(request.tenant, initial, seq=seq, slot=slot))
