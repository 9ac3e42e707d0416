"""A stream or a long poll holds only while what authorized it holds (jobs/api/realtime/grants.py):
deactivating the user or the tenant, or the access token's expiry, ends an open
``/api/events``, job stream or waiting long poll within a few seconds (``RECHECK_SECONDS``,
2 s, plus the change's propagation), on a real uvicorn with tokens it issued itself; and a
long poll blocking a thread under WSGI.

The test process shares the server's cache prefix, so its saves drop the server's cached
user and tenant exactly as the admin's saves do in production."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db import connections

from jobs.api.realtime.grants import RECHECK_SECONDS
from jobs.models import Job, JobStatus
from tests.conftest import client_for
from tests.factories import PASSWORD, JobFactory, UserFactory
from tests.helpers import start_uvicorn, stop_process, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "acme.localhost"
# How long past the change the stream may last: the re-check interval, with room for a
# loaded machine.
BOUND = RECHECK_SECONDS + 6
DONE = {"status": JobStatus.COMPLETED, "result": {"secret": "bob's"}, "progress": 100}


@pytest.fixture
def server(request, settings):
    """A uvicorn whose cache prefix this process uses too; ``request.param``: extra env."""
    prefix = f"test-{uuid.uuid4().hex}"
    caches = {alias: dict(conf) for alias, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = prefix
    settings.CACHES = caches
    env = {"JOBS_EVENTS_HEARTBEAT_SECONDS": "0.2", **getattr(request, "param", {})}
    process = start_uvicorn(env=subprocess_env(CACHE_KEY_PREFIX=prefix, **env))
    process.url = f"http://127.0.0.1:{process.port}"
    yield process
    stop_process(process)


def _login(server, user) -> dict[str, str]:
    """A token the server issues (its own lifetime), as headers."""
    response = httpx.post(
        f"{server.url}/api/auth/token",
        json={"username": user.username, "password": PASSWORD},
        headers={"Host": HOST},
    )
    assert response.status_code == 200, response.text
    return {"Host": HOST, "Authorization": f"Bearer {response.json()['access']}"}


def _read_to_the_end(lines, deadline: float) -> tuple[list[str], float | None]:
    """The stream's ``lines`` until it ends (then the time it ended) or ``deadline`` (None)."""
    read = []
    for line in lines:
        read.append(line)
        if time.monotonic() > deadline:
            return read, None
    return read, time.monotonic()


def _wait_refused(server, headers, status: int) -> None:
    """Until a new request with ``headers`` gets ``status`` (the change has reached the
    server's caches)."""
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/api/jobs", headers=headers).status_code != status:
        assert time.monotonic() < deadline, "the change never reached the server"
        time.sleep(0.05)


def _deactivate_user(user, acme):
    user.is_active = False
    user.save()


def _deactivate_tenant(user, acme):
    acme.is_active = False
    acme.save()


@pytest.fixture
def bob_of_acme(acme):
    """Another user of alice's tenant, whose job results her tenant stream shows."""
    return UserFactory(username="bob-of-acme", tenant=acme)


@pytest.mark.parametrize(
    ("deactivate", "status", "code"),
    [(_deactivate_user, 403, "user_inactive"), (_deactivate_tenant, 403, "tenant_inactive")],
    ids=["user", "tenant"],
)
@pytest.mark.parametrize("path", ["/api/events", "/api/jobs/{job}/events"])
def test_deactivation_ends_an_open_stream(
    server, alice, acme, bob_of_acme, deactivate, status, code, path
):
    job = JobFactory(tenant=acme, created_by=bob_of_acme)
    headers = _login(server, alice)
    url = server.url + path.format(job=job.id)
    try:
        with httpx.stream("GET", url, headers=headers, timeout=20) as response:
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
            deactivate(alice, acme)
            changed = time.monotonic()
            _wait_refused(server, headers, status)
            Job.objects.filter(pk=job.pk).update(**DONE)  # bob's result, after the change
            rest, ended = _read_to_the_end(lines, changed + BOUND)
        refused = httpx.get(url, headers=headers, timeout=5)
    finally:
        acme.is_active = True
        acme.save()
    assert ended is not None, f"still streaming {BOUND} s after the deactivation"
    assert not [line for line in rest if "bob's" in line]
    assert (refused.status_code, refused.json()["code"]) == (status, code)


@pytest.mark.parametrize(
    ("deactivate", "status", "code"),
    [(_deactivate_user, 403, "user_inactive"), (_deactivate_tenant, 403, "tenant_inactive")],
    ids=["user", "tenant"],
)
def test_deactivation_answers_a_waiting_long_poll_as_a_new_request(
    server, alice, acme, bob_of_acme, deactivate, status, code
):
    job = JobFactory(tenant=acme, created_by=bob_of_acme)
    headers = _login(server, alice)
    with ThreadPoolExecutor(1) as pool:
        try:
            answer = _long_poll(pool, server, job, headers)
            deactivate(alice, acme)
            changed = time.monotonic()
            response = answer.result()
        finally:
            acme.is_active = True
            acme.save()
    assert time.monotonic() - changed < BOUND, "the long poll waited on"
    assert (response.status_code, response.json()["code"]) == (status, code)


def _long_poll(pool, server, job, headers):
    """A ``?wait=30`` long poll of ``job`` from the state it is in, waiting once this
    returns; its answer is the future's result."""
    url = f"{server.url}/api/jobs/{job.id}"
    etag = httpx.get(url, headers=headers).headers["ETag"]
    poll_headers = {**headers, "If-None-Match": etag}
    answer = pool.submit(httpx.get, f"{url}?wait=30", headers=poll_headers, timeout=40)
    time.sleep(1)
    assert not answer.done()
    return answer


TOKEN_SECONDS = 5


@pytest.mark.parametrize(
    "server", [{"JWT_ACCESS_TOKEN_SECONDS": str(TOKEN_SECONDS)}], indirect=True
)
def test_an_access_token_that_expires_ends_the_stream_and_the_long_poll(
    server, alice, acme, bob_of_acme
):
    headers = _login(server, alice)
    expires = time.monotonic() + TOKEN_SECONDS
    job = JobFactory(tenant=acme, created_by=bob_of_acme)
    with (
        ThreadPoolExecutor(1) as pool,
        httpx.stream("GET", f"{server.url}/api/events", headers=headers, timeout=20) as response,
    ):
        assert response.status_code == 200
        answer = _long_poll(pool, server, job, headers)
        lines, ended = _read_to_the_end(response.iter_lines(), expires + BOUND)
        poll = answer.result()
    assert ended is not None, f"still streaming {BOUND} s after the token expired"
    assert ended >= expires - 2  # it served until the expiry (exp is in whole seconds)
    assert any(str(job.id) in line for line in lines)
    assert (poll.status_code, poll.json()["code"]) == (401, "token_not_valid")
    refused = httpx.get(f"{server.url}/api/events", headers=headers)
    assert (refused.status_code, refused.json()["code"]) == (401, "token_not_valid")


def test_under_wsgi_deactivation_answers_a_waiting_long_poll_as_a_new_request(alice, acme):
    """The same check where a long poll blocks a thread (LongPollWaitMiddleware)."""
    job = JobFactory(tenant=acme)
    client = client_for(alice, host=HOST)
    etag = client.get(f"/api/jobs/{job.id}")["ETag"]

    def poll():
        try:
            return client.get(f"/api/jobs/{job.id}?wait=20", HTTP_IF_NONE_MATCH=etag)
        finally:
            connections.close_all()  # this thread's connection must not outlive the test

    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(poll)
        time.sleep(1)
        assert not answer.done()
        alice.is_active = False
        alice.save()
        changed = time.monotonic()
        response = answer.result()
    assert time.monotonic() - changed < BOUND, "the long poll waited on"
    assert (response.status_code, response.json()["code"]) == (403, "user_inactive")
