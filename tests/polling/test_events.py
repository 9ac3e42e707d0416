"""Push streams, ``GET /api/jobs/{id}/events`` and ``GET /api/events``, on a real uvicorn:
the events (data exactly the poll's JSON, ``id:`` its ETag), ``Last-Event-ID``, the
heartbeat, the end after the final state, tenant isolation, the cap and its release."""

import threading
import time

import httpx
import pytest
from django.db import connection

from jobs.models import Job, JobStatus
from tests.factories import JobFactory
from tests.polling import test_longpoll_scale
from tests.polling.asgi import auth_headers

asgi_server = test_longpoll_scale.asgi_server  # the fixture: a uvicorn on the test database

STREAM_ENV = {"JOBS_EVENTS_HEARTBEAT_SECONDS": "0.2", "JOBS_MAX_WAITS_PER_USER": "2"}
START = {"status": JobStatus.PROCESSING, "attempts": 1, "worker_id": "w1"}
DONE = {"status": JobStatus.COMPLETED, "result": {"ok": True}, "progress": 100}


def _update(job_id, **fields) -> None:
    try:
        Job.objects.filter(pk=job_id).update(**fields)
    finally:
        connection.close()


def _later(job_id, delay: float = 0.5, **fields) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(delay), _update(job_id, **fields)))
    thread.start()
    return thread


def _read(lines) -> tuple[list[str], dict | None]:
    """Lines up to the end of the next event: (comment lines before it, the event)."""
    comments, fields = [], {}
    for line in lines:
        if line.startswith(":"):
            comments.append(line)
        elif line:
            name, _, value = line.partition(": ")
            fields[name] = value
        elif fields:
            return comments, fields
    return comments, None


def _url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def _poll(server, alice, job) -> httpx.Response:
    return httpx.get(_url(server, f"/api/jobs/{job.id}"), headers=auth_headers(alice))


on_uvicorn = pytest.mark.parametrize("asgi_server", [STREAM_ENV], indirect=True)


@on_uvicorn
def test_a_job_stream_sends_each_state_as_the_poll_shows_it_and_ends_after_the_final_one(
    asgi_server, alice, acme
):
    job = JobFactory(tenant=acme)
    polled = _poll(asgi_server, alice, job)
    url = _url(asgi_server, f"/api/jobs/{job.id}/events")
    with httpx.stream("GET", url, headers=auth_headers(alice), timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "ratelimit" in response.headers
        lines = response.iter_lines()
        _, first = _read(lines)
        assert first == {"event": "job", "id": polled.headers["ETag"], "data": polled.text}
        _later(job.id, **START).join()
        _, second = _read(lines)
        assert second["data"] == _poll(asgi_server, alice, job).text
        _later(job.id, **DONE).join()
        _, third = _read(lines)
        final = _poll(asgi_server, alice, job)
        assert (third["id"], third["data"]) == (final.headers["ETag"], final.text)
        assert list(lines) == []  # the stream ended


@on_uvicorn
def test_last_event_id_at_the_current_etag_sends_only_heartbeats_until_the_next_change(
    asgi_server, alice, acme
):
    job = JobFactory(tenant=acme)
    etag = _poll(asgi_server, alice, job).headers["ETag"]
    url = _url(asgi_server, f"/api/jobs/{job.id}/events")
    headers = {**auth_headers(alice), "Last-Event-ID": etag}
    with httpx.stream("GET", url, headers=headers, timeout=20) as response:
        lines = response.iter_lines()
        changer = _later(job.id, delay=1.0, **START)
        comments, event = _read(lines)
        changer.join()
    assert len(comments) >= 2  # a heartbeat every 0.2 s while nothing changed
    assert set(comments) == {": keep-alive"}
    assert '"processing"' in event["data"]
    assert event["id"] != etag


@on_uvicorn
def test_a_final_job_named_by_last_event_id_ends_the_stream_at_once(asgi_server, alice, acme):
    job = JobFactory(tenant=acme, status=JobStatus.COMPLETED, result={"ok": True})
    etag = _poll(asgi_server, alice, job).headers["ETag"]
    url = _url(asgi_server, f"/api/jobs/{job.id}/events")
    response = httpx.get(url, headers={**auth_headers(alice), "Last-Event-ID": etag}, timeout=20)
    assert (response.status_code, response.text) == (200, "")


@on_uvicorn
def test_the_tenant_stream_carries_the_callers_tenants_jobs_only(asgi_server, alice, acme, globex):
    mine = JobFactory(tenant=acme)
    JobFactory(tenant=acme, status=JobStatus.COMPLETED, result={"ok": True})
    theirs = JobFactory(tenant=globex)
    url = _url(asgi_server, "/api/events")
    with httpx.stream("GET", url, headers=auth_headers(alice), timeout=20) as response:
        lines = response.iter_lines()
        _, first = _read(lines)
        assert first["data"] == _poll(asgi_server, alice, mine).text  # unfinished jobs only
        _later(theirs.id, **START).join()
        _later(mine.id, **START).join()
        _, second = _read(lines)
    assert second["data"] == _poll(asgi_server, alice, mine).text


@on_uvicorn
def test_streams_are_authenticated_tenant_scoped_and_capped(asgi_server, alice, acme, globex):
    theirs = JobFactory(tenant=globex)
    job = JobFactory(tenant=acme)
    token = auth_headers(alice)["Authorization"].removeprefix("Bearer ")
    events = _url(asgi_server, "/api/events")
    host = {"Host": "acme.localhost"}
    assert httpx.get(f"{events}?token={token}", headers=host).status_code == 401
    other = httpx.get(
        _url(asgi_server, f"/api/jobs/{theirs.id}/events"), headers=auth_headers(alice)
    )
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"
    job_url = _url(asgi_server, f"/api/jobs/{job.id}/events")
    with (
        httpx.stream("GET", events, headers=auth_headers(alice), timeout=20) as one,
        httpx.stream("GET", job_url, headers=auth_headers(alice), timeout=20) as two,
    ):
        assert (one.status_code, two.status_code) == (200, 200)
        third = httpx.get(events, headers=auth_headers(alice))
        assert third.status_code == 429
        assert int(third.headers["Retry-After"]) >= 1
    # Closing a stream gives its slot back.
    deadline = time.monotonic() + 10
    while (status := _stream_status(events, alice)) == 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200


def _stream_status(url, alice) -> int:
    with httpx.stream("GET", url, headers=auth_headers(alice), timeout=20) as response:
        return response.status_code


@pytest.mark.django_db
def test_under_wsgi_a_stream_is_a_503_problem(alice_client, acme):
    response = alice_client.get("/api/events")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
