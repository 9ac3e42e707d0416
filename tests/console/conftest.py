"""Fixtures of the job console's tests: tenant URLs on the live server, a real worker."""

import threading
from urllib.parse import urlsplit

import pytest

from jobs.api.realtime.longpoll import listener
from jobs.worker import Worker


def host_url(live_server, host: str, path: str = "/") -> str:
    """``live_server``'s address under another hostname: ``*.localhost`` is loopback for
    Chromium, and django-tenants routes by that name."""
    return f"http://{host}:{urlsplit(live_server.url).port}{path}"


@pytest.fixture(autouse=True)
def _stop_long_poll_listener():
    """The console long-polls (``?wait=``): the live server's process then keeps one
    LISTEN connection, which must not outlive the test database (DROP DATABASE fails)."""
    yield
    listener.stop()


@pytest.fixture
def acme_url(live_server, acme):
    return host_url(live_server, "acme.localhost")


@pytest.fixture
def globex_url(live_server, globex):
    return host_url(live_server, "globex.localhost")


@pytest.fixture
def worker(transactional_db):
    """A real worker (the claim loop, runner threads and heartbeats) in a background thread.

    live_server tests are transactional, so the worker's own connections see the data the
    server commits. It stops before the database is flushed (it depends on
    ``transactional_db``), closing its connections.
    """
    worker = Worker(worker_id="console-tests", concurrency=4, grace=1, poll_interval=0.2)
    thread = threading.Thread(target=worker.run, name="console-worker", daemon=True)
    thread.start()
    yield worker
    worker.request_stop()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the worker did not stop"
