"""A conditional poll answered 304 from this process's copy of its job's ETag
(jobs.api.etags): no PostgreSQL round trip once warm, the same headers as a 304 read from
the database, another tenant's poll still 404, a change seen as soon as its notification
arrives, and within ``JOBS_POLL_ETAG_SECONDS`` when the notification is lost.

These tests commit (``transaction=True``): a copy is kept only once a read's transaction
has committed, and notifications are sent only at commit."""

import time
import uuid

import pytest
from django.db import connection

from jobs.api import etags
from jobs.models import Job, JobStatus
from tests.conftest import client_for
from tests.factories import JobFactory
from tests.jobs.api.round_trips import (
    counted_round_trips,
    wait_for_etag_copies,
    wait_for_invalidations,
)
from tests.jobs.api.test_round_trips import poll

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def warm(acme, alice, settings):
    """A running job of acme's, alice's client, and the job's ETag, copied in this process
    by a poll read once the copies listen (caches under a prefix of their own, as in
    test_round_trips)."""
    job = JobFactory(tenant=acme)
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.PROCESSING, attempts=1, worker_id="w1", started_at=job.created_at
    )
    caches = {alias: dict(conf) for alias, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches
    client = client_for(alice, host="acme.localhost")
    _heard_so_far()  # the update's notification would drop the copy made below
    etag = poll(client, job)["ETag"]
    wait_for_invalidations()
    assert etags.current(acme.pk, job.id).etag == etag
    return job, client, etag


def _heard_so_far() -> None:
    """Until this process's copies have heard every notification sent so far: PostgreSQL
    delivers them in commit order, so hearing one sent now is hearing them all."""
    wait_for_etag_copies()
    barrier = f"barrier-{uuid.uuid4()}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [etags.CHANNEL, barrier])
    deadline = time.monotonic() + 10
    while barrier not in etags._copies.get().changed:
        assert time.monotonic() < deadline, "the barrier notification never arrived"
        time.sleep(0.01)


def _until_dropped(tenant, job) -> None:
    deadline = time.monotonic() + 10
    while etags.current(tenant.pk, job.id) is not None:
        assert time.monotonic() < deadline, "the change notification never arrived"
        time.sleep(0.01)


def test_a_warm_conditional_poll_makes_no_postgres_round_trip(warm, monkeypatch):
    """The token, the tenant and the rate limit are still checked: the rate limit's script
    is the one Redis round trip."""
    job, client, etag = warm
    with counted_round_trips(monkeypatch) as counted:
        response = poll(client, job, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert counted.postgres == []
    assert len(counted.redis) == 1, counted.redis
    assert b"EVALSHA" in counted.redis[0]


def test_a_copied_304_sends_the_headers_of_one_read_from_the_database(warm, settings):
    job, client, etag = warm
    copied = poll(client, job, HTTP_IF_NONE_MATCH=etag)
    settings.JOBS_POLL_ETAG_SECONDS = 0  # no copies: the database answers
    read = poll(client, job, HTTP_IF_NONE_MATCH=etag)
    assert copied.status_code == read.status_code == 304
    assert set(copied.headers) == set(read.headers)
    for name in ("ETag", "Cache-Control", "Retry-After", "Vary", "RateLimit-Policy"):
        assert copied[name] == read[name], name


def test_another_tenants_poll_of_a_copied_job_is_404(warm, bob, acme):
    job, _, etag = warm
    bob_client = client_for(bob, host="globex.localhost")
    response = poll(bob_client, job, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 404
    assert "ETag" not in response
    assert etags.current(acme.pk, job.id) is not None  # the copy was there, acme's only


def test_a_change_is_seen_once_its_notification_arrives(warm, acme):
    job, client, etag = warm
    Job.objects.filter(pk=job.pk).update(progress=40)
    _until_dropped(acme, job)
    response = poll(client, job, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["progress"] == 40


def test_a_lost_notification_leaves_a_copy_stale_for_at_most_the_bound(
    warm, acme, monkeypatch, settings
):
    job, client, etag = warm
    monkeypatch.setattr(etags._Copies, "_changed", lambda self, job_id: None)  # lost
    Job.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, result={"n": 1})
    assert poll(client, job, HTTP_IF_NONE_MATCH=etag).status_code == 304  # the stale copy
    now = etags._clock()
    monkeypatch.setattr(etags, "_clock", lambda: now + settings.JOBS_POLL_ETAG_SECONDS)
    response = poll(client, job, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response["ETag"] != etag
    assert response.json()["status"] == "completed"


def test_a_read_that_overlapped_its_jobs_notification_keeps_nothing(warm, acme):
    """The read may have seen the row before the change: its copy could be stale."""
    job, _, etag = warm
    copies = etags._copies.get()
    read_began = copies.mark()
    copies._changed(str(job.id))  # the notification arrives while the read runs
    copies.keep(read_began, acme.pk, job.id, etag, {})
    assert etags.current(acme.pk, job.id) is None


def test_a_pending_job_is_never_copied(acme, alice):
    """Its ``waiting`` follows pauses and budgets, which notify nothing."""
    job = JobFactory(tenant=acme)
    client = client_for(alice, host="acme.localhost")
    wait_for_etag_copies()
    etag = poll(client, job)["ETag"]
    assert poll(client, job, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert etags.current(acme.pk, job.id) is None


def test_no_copy_is_kept_once_the_listener_is_lost(warm, acme):
    job, client, etag = warm
    etags.stop()  # as when its connection drops: every copy goes
    assert etags.current(acme.pk, job.id) is None
    assert poll(client, job, HTTP_IF_NONE_MATCH=etag).status_code == 304  # from the database
