"""A long poll behind PgBouncer in transaction mode: a uvicorn whose ``DATABASE_URL`` goes
through the pooler and whose ``DATABASE_DIRECT_URL`` is PostgreSQL answers within a second
of the change. The control: without ``DATABASE_DIRECT_URL`` its LISTEN goes through the
pooler, no notification ever reaches it, and the wait only ends at its limit."""

import http.client
import subprocess
import threading
import time
import uuid

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Job, JobStatus
from tests.factories import JobFactory
from tests.helpers import start_uvicorn, stop_process, subprocess_env
from tests.jobs.api.asgi import auth_headers

pytestmark = pytest.mark.django_db(transaction=True)

ANSWER_WITHIN = 1.0  # seconds after the change
CHANGE_AFTER = 2.0  # seconds into the wait


@pytest.fixture
def pooled_uvicorn(bouncer):
    """``start(direct=…)``: a uvicorn with ``DATABASE_URL`` through ``bouncer`` (transaction
    mode) and ``DATABASE_DIRECT_URL`` set to PostgreSQL, or unset; returns its port."""
    started: list[subprocess.Popen] = []

    def start(*, direct: bool) -> int:
        env = subprocess_env(CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}")
        direct_url = env["DATABASE_URL"]
        env.update(
            DATABASE_URL=bouncer.url(connection.settings_dict["NAME"]),
            DATABASE_POOL_MODE="transaction",
        )
        env.pop("DATABASE_DIRECT_URL", None)
        if direct:
            env["DATABASE_DIRECT_URL"] = direct_url
        server = start_uvicorn(env=env)
        started.append(server)
        return server.port

    yield start
    for server in started:
        stop_process(server)


def _complete_later(job_id, delay: float, changed: list[float]) -> threading.Thread:
    """Complete the job (directly on PostgreSQL, autocommit) after ``delay``; append the
    time the change was committed to ``changed``."""

    def change():
        time.sleep(delay)
        try:
            Job.objects.filter(pk=job_id).update(
                status=JobStatus.COMPLETED, result={"ok": True}, completed_at=timezone.now()
            )
            changed.append(time.monotonic())
        finally:
            connection.close()

    thread = threading.Thread(target=change)
    thread.start()
    return thread


def _long_poll(port: int, alice, job, *, wait: int, change_after: float):
    """Read the job's ETag, then long-poll it while it is completed ``change_after``
    seconds into the wait: (status, body, seconds from the change to the answer)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=wait + 10)
    try:
        conn.request("GET", f"/api/jobs/{job.id}", headers=auth_headers(alice))
        first = conn.getresponse()
        first.read()
        assert first.status == 200
        etag = first.getheader("ETag")
        changed: list[float] = []
        changer = _complete_later(job.id, change_after, changed)
        try:
            conn.request(
                "GET",
                f"/api/jobs/{job.id}?wait={wait}",
                headers={**auth_headers(alice), "If-None-Match": etag},
            )
            response = conn.getresponse()
            body = response.read()
            answered = time.monotonic()
        finally:
            changer.join(timeout=30)
    finally:
        conn.close()
    assert changed, "the change was not made"
    return response.status, body, answered - changed[0]


def test_a_long_poll_behind_the_pooler_answers_within_a_second_of_the_change(
    pooled_uvicorn, alice, acme
):
    port = pooled_uvicorn(direct=True)
    job = JobFactory(tenant=acme)
    status, body, latency = _long_poll(port, alice, job, wait=20, change_after=CHANGE_AFTER)
    assert status == 200
    assert b'"completed"' in body
    assert 0 <= latency < ANSWER_WITHIN, latency


def test_control_a_listener_through_the_pooler_hears_nothing(pooled_uvicorn, alice, acme):
    port = pooled_uvicorn(direct=False)
    job = JobFactory(tenant=acme)
    status, body, latency = _long_poll(port, alice, job, wait=4, change_after=1)
    # Answered at the wait's limit (3 s after the change) by its fresh read, not by a
    # notification.
    assert status == 200
    assert b'"completed"' in body
    assert latency > 2, latency
