"""Long polling, ``GET /api/jobs/{id}?wait=N``: answers on a change (made from another
connection, heard through the job_changed trigger), at its limit, at once when there is
nothing to wait for, and refuses bad values. Covered under WSGI (the test client), under
ASGI in process (config.asgi.application) and under a real uvicorn."""

import asyncio
import http.client
import threading
import time

import pytest
from django.db import connection

from jobs.api.realtime.longpoll import listener
from jobs.models import Job, JobStatus
from tests.factories import JobFactory
from tests.helpers import start_uvicorn, stop_process
from tests.jobs.api.asgi import HOST, asgi_get, auth_headers, run_app


def _change_later(job_id, delay: float = 0.3, **fields) -> threading.Thread:
    """Update the job from another thread (its own connection, autocommit) after ``delay``."""

    def change():
        time.sleep(delay)
        try:
            Job.objects.filter(pk=job_id).update(**fields)
        finally:
            connection.close()

    thread = threading.Thread(target=change)
    thread.start()
    return thread


START = {"status": JobStatus.PROCESSING, "attempts": 1, "worker_id": "w1"}


# --- validation --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("wait", ["0", "31", "x", "", "-1", "1.5"])
def test_bad_wait_values_are_400_problems(alice_client, acme, wait):
    job = JobFactory(tenant=acme)
    response = alice_client.get(f"/api/jobs/{job.id}?wait={wait}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_wait"


@pytest.mark.django_db
def test_the_limit_follows_the_setting(settings, alice_client, acme):
    settings.JOBS_LONGPOLL_MAX_WAIT = 5
    job = JobFactory(tenant=acme, status=JobStatus.COMPLETED)
    assert alice_client.get(f"/api/jobs/{job.id}?wait=6").status_code == 400
    assert alice_client.get(f"/api/jobs/{job.id}?wait=5").status_code == 200


# --- WSGI: the view's thread waits -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_wait_returns_when_the_job_changes(alice_client, acme):
    job = JobFactory(tenant=acme)
    etag = alice_client.get(f"/api/jobs/{job.id}")["ETag"]
    started = time.monotonic()
    changer = _change_later(job.id, **START)
    response = alice_client.get(f"/api/jobs/{job.id}?wait=20", HTTP_IF_NONE_MATCH=etag)
    changer.join()
    assert response.status_code == 200
    assert response.json()["status"] == "processing"
    assert response["ETag"] != etag
    assert time.monotonic() - started < 20


@pytest.mark.django_db(transaction=True)
def test_wait_without_a_validator_returns_on_the_next_change(alice_client, acme):
    job = JobFactory(tenant=acme)
    changer = _change_later(job.id, **START)
    response = alice_client.get(f"/api/jobs/{job.id}?wait=20")
    changer.join()
    assert response.json()["status"] == "processing"


@pytest.mark.django_db(transaction=True)
def test_wait_answers_at_its_limit_with_the_current_state(alice_client, acme):
    job = JobFactory(tenant=acme)
    etag = alice_client.get(f"/api/jobs/{job.id}")["ETag"]
    started = time.monotonic()
    response = alice_client.get(f"/api/jobs/{job.id}?wait=1", HTTP_IF_NONE_MATCH=etag)
    assert time.monotonic() - started >= 1
    assert response.status_code == 304
    assert response["ETag"] == etag
    plain = alice_client.get(f"/api/jobs/{job.id}?wait=1")
    assert plain.status_code == 200
    assert plain.json()["status"] == "pending"


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_does_not_end_the_wait(alice_client, acme):
    job = JobFactory(tenant=acme, status=JobStatus.PROCESSING, attempts=1, worker_id="w1")
    etag = alice_client.get(f"/api/jobs/{job.id}")["ETag"]
    changer = _change_later(job.id, delay=0.1, lease_expires_at=job.created_at)
    response = alice_client.get(f"/api/jobs/{job.id}?wait=1", HTTP_IF_NONE_MATCH=etag)
    changer.join()
    assert response.status_code == 304


@pytest.mark.django_db
def test_stale_copy_or_final_job_answers_at_once(alice_client, acme):
    job = JobFactory(tenant=acme)
    started = time.monotonic()
    stale = alice_client.get(f"/api/jobs/{job.id}?wait=30", HTTP_IF_NONE_MATCH='"old"')
    assert stale.status_code == 200
    done = JobFactory(tenant=acme, status=JobStatus.COMPLETED, result={"ok": True})
    assert alice_client.get(f"/api/jobs/{done.id}?wait=30").status_code == 200
    assert time.monotonic() - started < 30


@pytest.mark.django_db
def test_wait_on_another_tenants_job_is_404(alice_client, globex):
    job = JobFactory(tenant=globex)
    assert alice_client.get(f"/api/jobs/{job.id}?wait=30").status_code == 404


# --- ASGI in process: config.asgi.application ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_asgi_wait_returns_when_the_job_changes(alice, acme):
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)  # outside the event loop: issuing a token writes to the database
    changer = _change_later(job.id, delay=0.5, **START)
    started = time.monotonic()
    status, headers, body = run_app(lambda: asgi_get(f"/api/jobs/{job.id}", "wait=20", auth))
    changer.join()
    assert status == 200
    assert b'"processing"' in body
    assert "etag" in headers
    assert "ratelimit" in headers
    assert time.monotonic() - started < 20


@pytest.mark.django_db(transaction=True)
def test_asgi_wait_answers_304_at_its_limit_and_400_for_bad_values(alice, alice_client, acme):
    job = JobFactory(tenant=acme)
    etag = alice_client.get(f"/api/jobs/{job.id}")["ETag"]
    path = f"/api/jobs/{job.id}"
    headers = {**auth_headers(alice), "If-None-Match": etag}
    status, response_headers, body = run_app(lambda: asgi_get(path, "wait=1", headers))
    assert (status, body, response_headers["etag"]) == (304, b"", etag)
    status, _, body = run_app(lambda: asgi_get(path, "wait=31", headers))
    assert status == 400
    assert b"invalid_wait" in body


@pytest.mark.django_db(transaction=True)
def test_asgi_waits_hold_no_thread_each(settings, alice, acme):
    """Fifty clients wait at once on a one-thread pool; one change wakes them all."""
    job = JobFactory(tenant=acme)
    clients = 50
    settings.JOBS_MAX_WAITS_PER_USER = clients
    auth = auth_headers(alice)

    async def many():
        polls = [
            asyncio.ensure_future(asgi_get(f"/api/jobs/{job.id}", "wait=20", auth))
            for _ in range(clients)
        ]
        while listener.waiting() < clients:
            await asyncio.sleep(0.05)
        threads_while_waiting = threading.active_count()
        await asyncio.to_thread(_change_later(job.id, delay=0, **START).join)
        return threads_while_waiting, await asyncio.gather(*polls)

    threads_before = threading.active_count()
    threads_while_waiting, results = run_app(many)
    assert threads_while_waiting - threads_before < 10
    assert [status for status, _, _ in results] == [200] * clients
    assert all(b'"processing"' in body for _, _, body in results)


@pytest.mark.django_db(transaction=True)
def test_asgi_long_poll_without_token_is_401(acme):
    job = JobFactory(tenant=acme)
    status, _, _ = run_app(lambda: asgi_get(f"/api/jobs/{job.id}", "wait=5", {"Host": HOST}))
    assert status == 401


# --- a real uvicorn ------------------------------------------------------------------------


@pytest.fixture
def uvicorn_server(transactional_db):
    server = start_uvicorn()
    yield server.port
    stop_process(server)


def test_uvicorn_long_poll_returns_when_the_job_changes(uvicorn_server, alice, acme):
    job = JobFactory(tenant=acme)
    conn = http.client.HTTPConnection("127.0.0.1", uvicorn_server, timeout=30)
    conn.request("GET", f"/api/jobs/{job.id}", headers=auth_headers(alice))
    first = conn.getresponse()
    etag = first.getheader("ETag")
    first.read()
    assert first.status == 200
    changer = _change_later(job.id, delay=0.5, **START)
    started = time.monotonic()
    conn.request(
        "GET", f"/api/jobs/{job.id}?wait=20", headers={**auth_headers(alice), "If-None-Match": etag}
    )
    response = conn.getresponse()
    body = response.read()
    changer.join()
    conn.close()
    assert response.status == 200
    assert b'"processing"' in body
    assert time.monotonic() - started < 20
