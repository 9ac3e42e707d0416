"""Push streams, ``GET /api/jobs/{id}/events`` and ``GET /api/events``, on a real uvicorn:
the events (data exactly the poll's JSON, ``id:`` its ETag), ``Last-Event-ID``, the
heartbeat, the end after the final state, tenant isolation, the cap and its release; each
state once with a real worker; the methods of a stream route (OPTIONS, HEAD, 405); the
tenant stream's first read in one statement."""

import asyncio
import json
import socket
import threading
import time
from collections import Counter

import httpx
import pytest
from django.db import connection

from jobs.api.realtime.fanout import listener
from jobs.models import Job, JobStatus
from tests.factories import JobFactory
from tests.helpers import start_manage, stop_process
from tests.jobs.api import asgi
from tests.jobs.api.asgi import asgi_get, auth_headers, run_app
from tests.jobs.api.round_trips import executed_statements

asgi_server = asgi.asgi_server  # the fixture: a uvicorn on the test database

STREAM_ENV = {"JOBS_EVENTS_HEARTBEAT_SECONDS": "0.2", "JOBS_MAX_WAITS_PER_USER": "2"}
START = {"status": JobStatus.PROCESSING, "attempts": 1, "worker_id": "w1"}
DONE = {"status": JobStatus.COMPLETED, "result": {"ok": True}, "progress": 100}
FAST_WORKER = {"JOBS_POLL_INTERVAL": "0.2", "JOBS_HEARTBEAT_SECONDS": "0.2"}


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


# --- every state once, whatever the number of reads (issue 19, item 2) ---------------------


@on_uvicorn
def test_the_tenant_stream_sends_each_state_of_a_job_once_with_a_real_worker(
    asgi_server, alice, acme
):
    """Jobs that start and finish within one batch of the worker's outcome writer are read
    several times each (one read per notification); each state reaches the stream once."""
    worker = start_manage("run_worker", "--concurrency", "4", **FAST_WORKER)
    try:
        ids, events = set(), []
        with httpx.stream(
            "GET", _url(asgi_server, "/api/events"), headers=auth_headers(alice), timeout=20
        ) as response:
            lines = response.iter_lines()
            for _round in range(3):
                submitted = httpx.post(
                    _url(asgi_server, "/api/jobs/batch"),
                    json={"jobs": [{"type": "demo.echo", "payload": {"n": n}} for n in range(8)]},
                    headers=auth_headers(alice),
                )
                assert submitted.status_code == 202, submitted.text
                ids |= {job["id"] for job in submitted.json()["jobs"]}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _finished(events) != ids:
                events.extend(_events_until(lines, time.monotonic() + 0.5))
            # Late reads of the same final states would come now: listen a while longer.
            events.extend(_events_until(lines, time.monotonic() + 2))
    finally:
        stop_process(worker)
    completed = Counter(json.loads(e["data"])["id"] for e in events if '"completed"' in e["data"])
    assert set(completed) == ids, worker.log_path.read_text()[-3000:]
    assert [job for job, count in completed.items() if count > 1] == []
    states = Counter((json.loads(e["data"])["id"], e["id"]) for e in events)
    assert [state for state, count in states.items() if count > 1] == []


def _events_until(lines, deadline: float) -> list[dict]:
    """The events read until the first heartbeat past ``deadline`` (or the stream's end)."""
    events, fields = [], {}
    for line in lines:
        if line.startswith(":") and time.monotonic() > deadline:
            break
        if line and not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
        elif not line and fields:
            events.append(fields)
            fields = {}
    return events


def _finished(events) -> set[str]:
    return {json.loads(e["data"])["id"] for e in events if '"completed"' in e["data"]}


# --- methods (items 3 and 25) ----------------------------------------------------------------

STREAMS = ["/api/events", "/api/jobs/{job}/events"]


@on_uvicorn
@pytest.mark.parametrize("path", STREAMS)
def test_a_stream_route_answers_options_and_refuses_write_methods_like_any_route(
    asgi_server, alice, acme, path
):
    url = _url(asgi_server, path.format(job=JobFactory(tenant=acme).id))
    options = httpx.options(url, headers=auth_headers(alice))
    assert (options.status_code, options.content) == (200, b"")
    assert options.headers["allow"] == "GET, HEAD, OPTIONS"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        refused = httpx.request(method, url, headers=auth_headers(alice))
        assert refused.status_code == 405, method
        assert refused.json()["code"] == "method_not_allowed"
    with httpx.stream("GET", url, headers=auth_headers(alice), timeout=20) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")


@pytest.mark.django_db
@pytest.mark.parametrize("path", STREAMS)
def test_under_wsgi_a_stream_route_answers_other_methods_like_any_route(alice_client, acme, path):
    url = path.format(job=JobFactory(tenant=acme).id)
    options = alice_client.options(url)
    assert (options.status_code, options.content) == (200, b"")
    assert options["Allow"] == "GET, HEAD, OPTIONS"
    for method in ("post", "put", "patch", "delete"):
        assert getattr(alice_client, method)(url).status_code == 405, method
    assert alice_client.get(url).status_code == 503
    assert alice_client.head(url).status_code == 503


@on_uvicorn
@pytest.mark.parametrize("path", STREAMS)
def test_head_on_a_stream_answers_the_headers_of_a_get_and_ends(asgi_server, alice, acme, path):
    """The response ends: the server closes the connection (``Connection: close``) within
    the socket's timeout, instead of keeping an endless body that HEAD never shows."""
    path = path.format(job=JobFactory(tenant=acme).id)
    headers = {**auth_headers(alice), "Host": "acme.localhost"}
    lines = [f"HEAD {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection(("127.0.0.1", asgi_server.port), timeout=5) as raw:
        raw.sendall("\r\n".join([*lines, "Connection: close", "", ""]).encode())
        received = b""
        while chunk := raw.recv(65536):  # socket.timeout (a failure) if it never ends
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert body == b""
    fields = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    }
    assert fields[b"content-type"].startswith(b"text/event-stream")
    assert fields[b"cache-control"] == b"no-store"
    assert b"ratelimit" in fields


# --- the tenant stream's first read (item 25) ------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_opening_the_tenant_stream_reads_its_unfinished_jobs_in_one_statement(
    monkeypatch, alice, acme
):
    for _ in range(30):
        JobFactory(tenant=acme)
    JobFactory(tenant=acme, **START)
    JobFactory(tenant=acme, status=JobStatus.COMPLETED, result={"ok": True})
    auth = auth_headers(alice)
    listener.ensure_listening()
    time.sleep(0.5)  # the reconnect's re-read signal (seq) has gone by
    statements = executed_statements(monkeypatch, "job_queue")

    async def scenario():
        gone = asyncio.Event()
        asyncio.get_running_loop().call_later(1.0, gone.set)
        return await asgi_get("/api/events", "", auth, disconnect=gone)

    status, _, body = run_app(scenario)
    assert status == 200
    assert body.count(b"event: job") == 31
    assert len(statements) == 1, statements
