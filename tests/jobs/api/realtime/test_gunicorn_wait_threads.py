"""Under gunicorn (WSGI), long polls never take the threads plain requests need: a worker
lets at most half of its threads wait (``jobs.api.realtime.waits.take_thread``), and a long
poll past that answers at once as a plain poll. So one user holding every long poll they are allowed
(``JOBS_MAX_WAITS_PER_USER``) leaves another tenant's plain poll answered at once, with
config/gunicorn.conf.py as shipped (sync workers: no long poll waits) and with threads."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings

from accounts.tokens import tokens_for
from tests.conftest import TENANTS
from tests.factories import JobFactory
from tests.faults.servers import free_port, request, start_gunicorn
from tests.helpers import subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WAIT = 5  # seconds each long poll asks for
PLAIN_POLL_BOUND = 1.0  # seconds; 0.07 s unloaded, 17.5 s when long polls held the tier


@pytest.fixture
def serve(tmp_path):
    """Start gunicorn with the shipped config file (``workers=None``: its own count)."""
    started = []

    def start(*, workers: int | None = None, **env):
        server = start_gunicorn(
            env=subprocess_env(
                CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}", GUNICORN_MAX_REQUESTS="0", **env
            ),
            port=free_port(),
            log_path=tmp_path / f"gunicorn-{len(started)}.log",
            workers=workers,
        )
        started.append(server)
        return server.port

    yield start
    for server in started:
        server.stop()


def _poll(port: int, user, job, *, wait: int | None = None, etag: str | None = None):
    """One poll of ``job`` as ``user``; the answer and the seconds it took."""
    path = f"/api/jobs/{job.id}" + (f"?wait={wait}" if wait else "")
    started = time.monotonic()
    answer = request(
        port,
        "GET",
        path,
        host=TENANTS[job.tenant.schema_name],
        token=str(tokens_for(user).access_token),
        headers={"If-None-Match": etag} if etag else None,
        timeout=WAIT + 20,
    )
    return answer, time.monotonic() - started


def _hold_long_polls_and_poll_elsewhere(port: int, alice, bob, acme, globex):
    """alice opens all her allowed long polls at once; while they are in flight, bob (another
    tenant) polls plainly. Returns the long polls' (answer, seconds) and bob's seconds."""
    alice_job, bob_job = JobFactory(tenant=acme), JobFactory(tenant=globex)
    first = _poll(port, alice, alice_job)[0]
    assert first.status == 200, first.body[:500]
    etag = first.headers["etag"]
    count = settings.JOBS_MAX_WAITS_PER_USER
    with ThreadPoolExecutor(count) as pool:
        long_polls = [
            pool.submit(_poll, port, alice, alice_job, wait=WAIT, etag=etag) for _ in range(count)
        ]
        time.sleep(1)  # every long poll has reached the server
        plain, plain_seconds = _poll(port, bob, bob_job)
        assert plain.status == 200
        return [future.result() for future in long_polls], plain_seconds


def test_as_shipped_long_polls_leave_plain_polls_alone(serve, alice, bob, acme, globex):
    port = serve()

    long_polls, plain_seconds = _hold_long_polls_and_poll_elsewhere(port, alice, bob, acme, globex)

    assert plain_seconds < PLAIN_POLL_BOUND
    # Sync workers (one thread each) let no long poll wait: each is a plain poll's answer.
    for answer, seconds in long_polls:
        assert answer.status == 304
        assert int(answer.headers["retry-after"]) >= 1
        assert seconds < WAIT


def test_with_threads_half_of_them_wait_and_the_rest_serve(serve, alice, bob, acme, globex):
    port = serve(workers=1, GUNICORN_THREADS="4")

    long_polls, plain_seconds = _hold_long_polls_and_poll_elsewhere(port, alice, bob, acme, globex)

    assert plain_seconds < PLAIN_POLL_BOUND
    assert all(answer.status == 304 for answer, _ in long_polls)
    waited = [seconds for _, seconds in long_polls if seconds >= WAIT]
    assert len(waited) == 2  # half of the worker's 4 threads; the others answered at once
