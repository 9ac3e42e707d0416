"""Long polls at scale: one read per change for every waiter, no connection or transaction
held while waiting, the cap on concurrent waits (across processes), the once-per-wait
charge, a fresh read when the wait runs out with a notification lost, and a disconnect
freeing its waiter. Real uvicorn processes, and config.asgi in process."""

import asyncio
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection

from jobs.api.realtime import fanout
from jobs.api.realtime.longpoll import listener
from jobs.models import Job, JobStatus
from tests.conftest import client_for
from tests.factories import JobFactory
from tests.jobs.api import asgi
from tests.jobs.api.asgi import HOST, asgi_get, auth_headers, run_app

asgi_server = asgi.asgi_server  # the fixture: a uvicorn on the test database

START = {"status": JobStatus.PROCESSING, "attempts": 1, "worker_id": "w1"}


async def http_get(port: int, path: str, headers: dict[str, str]):
    """One GET over a raw socket: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    writer.write(("\r\n".join([*lines, "Connection: close", "", ""])).encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if parsed.get("transfer-encoding") == "chunked":
        body = _dechunk(body)
    return int(status_line.split()[1]), parsed, body


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, body = out + rest[:size], rest[size + 2 :]
    return out


def _backends() -> list[tuple[str, str]]:
    """(state, application_name) of every other backend on the test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(state, ''), application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        rows = cursor.fetchall()
    connection.close()  # a worker thread's connection would outlive the test database
    return rows


def _redis_connections(pid: int) -> int:
    """TCP connections of process ``pid`` to port 6379 (Redis)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[2].endswith(":18EB") and fields[9] in inodes:
                count += 1
    return count


def _update(job_id, **fields) -> None:
    try:
        Job.objects.filter(pk=job_id).update(**fields)
    finally:
        connection.close()


# --- a real uvicorn ---------------------------------------------------------------------------


@pytest.mark.parametrize("asgi_server", [{"JOBS_MAX_WAITS_PER_USER": "1000"}], indirect=True)
def test_200_waiters_hold_no_connection_and_one_change_answers_them_all(asgi_server, alice, acme):
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)
    waiters = 200

    async def scenario():
        first = await http_get(asgi_server.port, f"/api/jobs/{job.id}", auth)
        etag = first[1]["etag"]
        baseline = await asyncio.to_thread(_backends)
        polls = [
            asyncio.ensure_future(
                http_get(
                    asgi_server.port,
                    f"/api/jobs/{job.id}?wait=30",
                    {**auth, "If-None-Match": etag},
                )
            )
            for _ in range(waiters)
        ]
        await asyncio.sleep(3)  # every request has run its chain and waits
        during = await asyncio.to_thread(_backends)
        redis_during = _redis_connections(asgi_server.pid)
        assert not any(poll.done() for poll in polls)
        await asyncio.to_thread(_update, job.id, **START)
        return baseline, during, redis_during, await asyncio.gather(*polls)

    baseline, during, redis_during, results = asyncio.run(scenario())
    connection.close()
    assert [status for status, _, _ in results] == [200] * waiters
    assert all(b'"processing"' in body for _, _, body in results)
    assert not [state for state, _ in during if state.startswith("idle in transaction")]
    # The listener's LISTEN connection and the server's thread pool, nothing per waiter.
    assert len(during) <= len(baseline) + 10
    assert redis_during <= 10  # one pool for the process, not a connection per waiter


@pytest.mark.parametrize("asgi_server", [{"JOBS_MAX_WAITS_PER_USER": "2"}], indirect=True)
def test_the_cap_on_concurrent_waits_holds_across_processes(
    asgi_server, settings, alice, alice_client, acme
):
    settings.JOBS_MAX_WAITS_PER_USER = 2
    settings.CACHES = {**settings.CACHES}  # same Redis, the server's key prefix
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)

    async def scenario():
        polls = [
            asyncio.ensure_future(http_get(asgi_server.port, f"/api/jobs/{job.id}?wait=30", auth))
            for _ in range(2)
        ]
        await asyncio.sleep(1.5)
        third = await http_get(asgi_server.port, f"/api/jobs/{job.id}?wait=30", auth)
        plain = await http_get(asgi_server.port, f"/api/jobs/{job.id}", auth)
        await asyncio.to_thread(_update, job.id, **START)
        done = await asyncio.gather(*polls)
        after = await http_get(asgi_server.port, f"/api/jobs/{job.id}?wait=1", auth)
        return third, plain, done, after

    third, plain, done, after = asyncio.run(scenario())
    connection.close()
    status, headers, body = third
    assert status == 429
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["retry-after"]) >= 1
    assert b'"rate_limited"' in body
    assert plain[0] == 200  # plain polls are not capped
    assert [status for status, _, _ in done] == [200, 200]
    assert after[0] == 200  # slots are given back when the waits end


# --- config.asgi in process ----------------------------------------------------------------


def _remaining(headers: dict[str, str]) -> int:
    return int(re.search(r";r=(\d+)", headers["ratelimit"]).group(1))


@pytest.mark.django_db(transaction=True)
def test_a_wait_that_runs_out_with_a_lost_notification_answers_a_fresh_read(
    monkeypatch, alice, alice_client, acme
):
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)
    path = f"/api/jobs/{job.id}"
    deliver = listener._deliver
    monkeypatch.setattr(
        listener, "_deliver", lambda job_id: None if job_id == str(job.id) else deliver(job_id)
    )

    etag = alice_client.get(path)["ETag"]

    async def scenario():
        poll = asyncio.ensure_future(asgi_get(path, "wait=2", {**auth, "If-None-Match": etag}))
        while listener.waiting() < 1:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(_update, job.id, **START)  # heard by nobody
        return await poll

    status, headers, body = run_app(scenario)
    assert status == 200
    assert b'"processing"' in body
    assert headers["etag"] != etag


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_is_charged_once_whatever_it_answers(alice, alice_client, acme):
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)
    path = f"/api/jobs/{job.id}"
    first = alice_client.get(path)
    conditional = {**auth, "If-None-Match": first["ETag"]}
    status, _, _ = run_app(lambda: asgi_get(path, "wait=1", conditional))  # runs out: 304
    after = alice_client.get(path)
    assert status == 304
    # The long poll, then this plain poll.
    assert (
        _remaining({"ratelimit": first["RateLimit"]})
        - _remaining({"ratelimit": after["RateLimit"]})
        == 2
    )


@pytest.mark.django_db(transaction=True)
def test_a_client_that_disconnects_frees_its_waiter_and_its_slot(settings, alice, acme):
    settings.JOBS_MAX_WAITS_PER_USER = 1
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)
    path = f"/api/jobs/{job.id}"

    async def scenario():
        gone = asyncio.Event()
        poll = asyncio.ensure_future(asgi_get(path, "wait=30", auth, disconnect=gone))
        while listener.waiting() < 1:
            await asyncio.sleep(0.05)
        gone.set()
        await asyncio.wait_for(poll, 1)
        waiting = listener.waiting()
        status, _, _ = await asgi_get(path, "wait=1", auth)  # the slot is free again
        return waiting, status

    waiting, status = run_app(scenario)
    assert waiting == 0
    assert status == 304 or status == 200


@pytest.mark.django_db(transaction=True)
def test_one_read_answers_every_waiter_of_a_change(monkeypatch, settings, alice, acme):
    settings.JOBS_MAX_WAITS_PER_USER = 30
    job = JobFactory(tenant=acme)
    auth = auth_headers(alice)
    reads = []
    read_snapshot = fanout.read_snapshot

    def counted(tenant, job_id):
        reads.append(job_id)
        return read_snapshot(tenant, job_id)

    monkeypatch.setattr(fanout, "read_snapshot", counted)

    async def scenario():
        polls = [
            asyncio.ensure_future(asgi_get(f"/api/jobs/{job.id}", "wait=20", auth))
            for _ in range(30)
        ]
        while listener.waiting() < 30:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(_update, job.id, **START)
        return await asyncio.gather(*polls)

    results = run_app(scenario)
    assert [status for status, _, _ in results] == [200] * 30
    assert reads == [job.id]


# --- WSGI --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_wsgi_waits_hold_no_connection_or_transaction(alice, acme):
    job = JobFactory(tenant=acme)
    waiters = 5
    clients = [client_for(alice, host=HOST) for _ in range(waiters)]
    baseline = _backends()

    def poll(client):
        try:
            return client.get(f"/api/jobs/{job.id}?wait=20").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(waiters) as pool:
        polls = [pool.submit(poll, client) for client in clients]
        while listener.waiting() < waiters:
            time.sleep(0.05)
        during = _backends()
        _update(job.id, **START)
        statuses = [p.result() for p in polls]
    assert statuses == [200] * waiters
    assert not [state for state, _ in during if state.startswith("idle in transaction")]
    assert len(during) <= len(baseline) + 1  # the listener's connection
