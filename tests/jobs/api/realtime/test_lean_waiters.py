"""What a waiter costs once authorized: a waiting long poll holds no request, view or
response object, and idle waiters' grants are checked by the loop's ``Revocations``, once
per distinct grant per tick, ending only the waiters of a grant that no longer holds (or
whose token expires). config.asgi in process."""

import asyncio
import gc
import time

import pytest
from django.core.handlers.asgi import ASGIRequest
from rest_framework.response import Response

from jobs.api.realtime import grants
from jobs.api.realtime.grants import Grant, revocations
from jobs.api.realtime.longpoll import listener
from tests.factories import JobFactory
from tests.jobs.api.asgi import asgi_get, auth_headers, run_app


def _alive(kind) -> int:
    return sum(1 for thing in gc.get_objects() if issubclass(type(thing), kind))


@pytest.mark.django_db(transaction=True)
def test_a_waiting_long_poll_holds_no_request_or_response(alice, acme):
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)

    async def scenario():
        gc.collect()
        before = _alive(ASGIRequest), _alive(Response)  # what earlier tests left about
        gone = asyncio.Event()
        poll = asyncio.ensure_future(asgi_get(f"/api/jobs/{job.id}", "wait=30", auth, gone))
        while listener.waiting() < 1:
            await asyncio.sleep(0.05)
        gc.collect()
        held = _alive(ASGIRequest), _alive(Response)
        gone.set()
        await poll
        return before, held

    before, held = run_app(scenario)
    assert held == before


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
