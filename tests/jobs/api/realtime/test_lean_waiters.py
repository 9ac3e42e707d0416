"""What a waiter costs once authorized: a waiting long poll or event stream holds no
request, view or response object, idle streams beat on one timer of the loop, and idle
waiters' grants are checked by the loop's ``Revocations``, once per distinct grant per
tick, ending only the waiters of a grant that no longer holds (or whose token expires).
config.asgi in process."""

import asyncio
import gc
import time

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponseBase
from django.test import override_settings

from jobs.api.realtime import fanout, grants
from jobs.api.realtime.events import heartbeats
from jobs.api.realtime.grants import Grant, revocations
from jobs.api.realtime.longpoll import listener
from tests.factories import JobFactory
from tests.jobs.api.asgi import asgi_get, auth_headers, run_app


def _alive(kind) -> int:
    return sum(1 for thing in gc.get_objects() if issubclass(type(thing), kind))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("path", "query"),
    # The stream sends the job's state, then waits for its next change.
    [("/api/jobs/{id}", "wait=30"), ("/api/jobs/{id}/events", "")],
    ids=["long poll", "stream"],
)
def test_a_waiter_holds_no_request_or_response(alice, acme, path, query):
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)

    async def scenario():
        gc.collect()
        before = _alive(ASGIRequest), _alive(HttpResponseBase)  # what earlier tests left
        gone = asyncio.Event()
        waiter = asyncio.ensure_future(asgi_get(path.format(id=job.id), query, auth, gone))
        while listener.waiting() < 1:
            await asyncio.sleep(0.05)
        gc.collect()
        held = _alive(ASGIRequest), _alive(HttpResponseBase)
        gone.set()
        await waiter
        return before, held

    before, held = run_app(scenario)
    assert held == before


@override_settings(JOBS_EVENTS_HEARTBEAT_SECONDS=0.1)
def test_idle_streams_beat_together_once_per_tick_of_the_grid():
    async def scenario():
        watches = [fanout.Watch(None, stream=True) for _ in range(3)]
        with heartbeats().beating(watches[0]), heartbeats().beating(watches[1]):
            first = await asyncio.wait_for(watches[0].arrivals(), 5)
            await asyncio.sleep(0.03)  # within the same tick
            both = [list(watch.arrived) for watch in watches[:2]]
            watches[0].arrived.clear()
            await asyncio.sleep(0.1)  # the next tick
            later = list(watches[0].arrived)
        return first, both, later, watches[2].arrived

    first, both, later, other = asyncio.run(scenario())
    assert first == [None]
    assert both == [[], [None]]  # one beat each for that tick
    assert later == [None]
    assert other == []  # a watch that is not beating gets none


def _grant(user_id: int, *, expires_in: float = 3600.0) -> Grant:
    return Grant("acme.localhost", 1, user_id, time.time() + expires_in)


def test_revocations_check_each_distinct_grant_once_and_end_only_the_revoked(monkeypatch):
    monkeypatch.setattr(grants, "RECHECK_SECONDS", 0.05)
    revoked, kept = _grant(1), _grant(2)
    checked = []

    def holds(self):
        checked.append(self)
        return self != revoked

    monkeypatch.setattr(Grant, "holds", holds)

    async def scenario():
        ended = []
        done = asyncio.Event()

        def end(name):
            ended.append(name)
            done.set()

        registry = revocations()
        with (
            registry.watch(revoked, lambda: end("a")),
            registry.watch(revoked, lambda: end("b")),
            registry.watch(kept, lambda: end("c")),
        ):
            assert registry.watched() == 2
            await asyncio.wait_for(done.wait(), 5)
            await asyncio.sleep(0)  # the same tick ends both waiters of the grant
            return sorted(ended), registry.watched()

    ended, watched = asyncio.run(scenario())
    assert ended == ["a", "b"]
    assert watched == 1  # the kept grant, still watched
    first_tick = checked[:2]
    assert sorted(grant.user_id for grant in first_tick) == [1, 2]


def test_revocations_end_a_waiter_when_its_token_expires(monkeypatch):
    monkeypatch.setattr(Grant, "holds", lambda self: True)  # only the expiry can end it

    async def scenario():
        ended = asyncio.Event()
        with revocations().watch(_grant(1, expires_in=0.05), ended.set):
            await asyncio.wait_for(ended.wait(), 5)
        return revocations().watched()

    assert asyncio.run(scenario()) == 0


def test_a_failed_check_ends_the_waiters_fail_closed(monkeypatch):
    monkeypatch.setattr(grants, "RECHECK_SECONDS", 0.05)

    def broken(grants):
        raise RuntimeError("the check itself failed")

    monkeypatch.setattr(grants, "_check_all", broken)

    async def scenario():
        ended = asyncio.Event()
        with revocations().watch(_grant(1), ended.set):
            await asyncio.wait_for(ended.wait(), 5)
        return True

    assert asyncio.run(scenario())


def test_a_stream_whose_client_reads_nothing_holds_a_bounded_backlog_then_ends():
    """Its sends blocked, a stream consumes nothing: its watch keeps one heartbeat for many,
    at most ``MAX_ARRIVALS`` changes, then ends the stream (the client reconnects)."""
    watch = fanout.Watch(tenant=None, stream=True)
    for _ in range(3):
        watch.put(None)
    assert watch.arrived == [None]
    for number in range(fanout.MAX_ARRIVALS * 3):
        watch.offer(fanout.Snapshot(None, f'"{number}"', b"{}", {}, final=False, waitable=True))
        watch.put(None)
    assert len(watch.arrived) == fanout.MAX_ARRIVALS + 1
    assert isinstance(watch.arrived[-1], fanout.StreamEnded)
