"""What a woken long poll answers: exactly what a fresh GET of the same state answers
(status, JSON body, every header but the per-request ones: its request id and rate-limit
count), whether the change wakes it with a 200 or, for a client holding every ETag (``*``),
a 304, though the answer is encoded once for all the waiters of a change; and only ever its
own tenant's job. config.asgi in process, and the WSGI wait (the test client)."""

import asyncio
import json
import threading
import time

import pytest
from django.db import connection

from accounts.tokens import tokens_for
from jobs.api.realtime import fanout
from jobs.api.realtime.longpoll import listener
from jobs.models import Job, JobStatus
from tests.factories import JobFactory
from tests.jobs.api.asgi import (
    PER_REQUEST_HEADERS,
    asgi_get,
    asgi_get_raw,
    auth_headers,
    run_app,
    shared_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)

START = {"status": JobStatus.PROCESSING, "attempts": 1, "worker_id": "w1"}
ORIGIN = "https://app.example.com"


def _update(job_ids, **fields) -> None:
    """Change every job of ``job_ids`` in one statement (one transaction, one notification
    each)."""
    try:
        Job.objects.filter(pk__in=job_ids).update(**fields)
    finally:
        connection.close()


async def _waiting(count: int) -> None:
    while listener.waiting() < count:
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("if_none_match", "status"), [("the current ETag", 200), ("*", 304)])
def test_a_woken_long_poll_answers_as_a_fresh_get_of_the_same_state(
    alice, alice_client, acme, if_none_match, status
):
    acme.allowed_origins = [ORIGIN]  # the CORS headers are the waiter's own, kept too
    acme.save()
    job = JobFactory(tenant=acme)
    path = f"/api/jobs/{job.id}"
    held = alice_client.get(path)["ETag"] if status == 200 else "*"
    auth = {**auth_headers(alice), "Origin": ORIGIN}

    async def scenario():
        poll = asyncio.ensure_future(asgi_get_raw(path, "wait=20", {**auth, "If-None-Match": held}))
        await _waiting(1)
        await asyncio.to_thread(_update, [job.id], **START)
        woken = await poll
        fresh = await asgi_get_raw(
            path, "", auth if status == 200 else {**auth, "If-None-Match": "*"}
        )
        return woken, fresh

    woken, fresh = run_app(scenario)
    assert woken[0] == fresh[0] == status
    assert woken[2] == fresh[2]
    assert shared_headers(woken[1]) == shared_headers(fresh[1])
    names = {name for name, _ in woken[1]}
    assert PER_REQUEST_HEADERS | {"etag", "access-control-allow-origin"} <= names
    assert dict(woken[1])["x-request-id"] != dict(fresh[1])["x-request-id"]
    if status == 200:
        assert json.loads(woken[2])["status"] == "processing"


def test_a_woken_wsgi_long_poll_answers_as_a_fresh_get_of_the_same_state(alice_client, acme):
    job = JobFactory(tenant=acme)
    path = f"/api/jobs/{job.id}"
    etag = alice_client.get(path)["ETag"]

    def change_later():
        time.sleep(0.3)  # the poll waits by then; if not, it answers the changed job at once
        _update([job.id], **START)

    changer = threading.Thread(target=change_later)
    changer.start()
    woken = alice_client.get(f"{path}?wait=20", HTTP_IF_NONE_MATCH=etag)
    changer.join()
    fresh = alice_client.get(path)
    assert woken.status_code == fresh.status_code == 200
    assert woken.content == fresh.content
    assert json.loads(woken.content)["status"] == "processing"
    assert shared_headers([(k.lower(), v) for k, v in woken.items()]) == shared_headers(
        [(k.lower(), v) for k, v in fresh.items()]
    )


def test_waiters_of_two_tenants_jobs_changed_together_each_get_their_own(
    settings, alice, bob, acme, globex
):
    settings.JOBS_MAX_WAITS_PER_USER = 3
    ours, theirs = JobFactory(tenant=acme), JobFactory(tenant=globex)
    alices = auth_headers(alice)
    bobs = {"Host": "globex.localhost", "Authorization": f"Bearer {tokens_for(bob).access_token}"}

    async def scenario():
        polls = [
            asyncio.ensure_future(asgi_get(f"/api/jobs/{job.id}", "wait=20", auth))
            for job, auth in [(ours, alices), (theirs, bobs)] * 3
        ]
        await _waiting(6)
        await asyncio.to_thread(_update, [ours.id, theirs.id], **START)
        return await asyncio.gather(*polls)

    answers = run_app(scenario)
    assert [status for status, _, _ in answers] == [200] * 6
    seen = [json.loads(body)["id"] for _, _, body in answers]
    assert seen == [str(ours.id), str(theirs.id)] * 3


def test_the_fan_out_offers_a_watch_of_another_tenants_job_nothing_of_it(acme, globex):
    """The fan-out reads a job for each tenant watching it, as that tenant: a waiter that
    got past the chain with another tenant's job id would be offered None (the chain then
    answers it 404), never the job."""
    job = JobFactory(tenant=acme)

    async def scenario():
        await asyncio.to_thread(listener.ensure_listening)
        hub = fanout.hub()
        with hub.watch_job(acme, job.id) as mine, hub.watch_job(globex, job.id) as forged:
            await asyncio.to_thread(_update, [job.id], **START)
            await asyncio.wait_for(asyncio.gather(mine.future, forged.future), 10)
        return mine.future.result(), forged.future.result()

    mine, forged = run_app(scenario)
    assert mine.job_id == job.id
    assert json.loads(mine.body)["status"] == "processing"
    assert forged is None
