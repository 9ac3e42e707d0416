"""Fixtures of the SPA's browser tests: the example app's build (clients/spa-example/dist)
served on an origin of its own, allowed by acme's CORS list, and a real worker process."""

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from jobs.api.realtime.longpoll import listener
from tests.helpers import ROOT, start_manage, stop_process

SPA_DIST = ROOT / "clients" / "spa-example" / "dist"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def spa_origin(acme):
    """The built app on ``http://127.0.0.1:<port>``, an origin acme allows (core/cors.py).
    Fails, never skips, when the app was not built."""
    if not (SPA_DIST / "index.html").is_file():
        pytest.fail(
            f"the example SPA is not built ({SPA_DIST} has no index.html): "
            "run `make test-client` (npm ci and vite build in clients/spa-example)"
        )
    handler = functools.partial(_QuietHandler, directory=str(SPA_DIST))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="spa-files", daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    acme.allowed_origins = [origin]
    acme.save(update_fields=["allowed_origins"])
    yield origin
    server.shutdown()
    server.server_close()


@pytest.fixture
def worker_process(transactional_db):
    """``manage.py run_worker`` on the test database, stopped (SIGTERM) after the test."""
    process = start_manage(
        "run_worker", "--concurrency", "2", JOBS_POLL_INTERVAL="0.2", JOBS_HEARTBEAT_SECONDS="0.5"
    )
    yield process
    stop_process(process)


@pytest.fixture
def _stop_long_poll_listener():
    """Long polls on ``live_server`` (WSGI, in this process) keep one LISTEN connection,
    which must not outlive the test database (DROP DATABASE fails)."""
    yield
    listener.stop()
