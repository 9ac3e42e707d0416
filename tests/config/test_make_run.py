"""`make run`'s development server: the ASGI server (uvicorn with reload), so streams and
the console's static files are served, and no database connection kept past its request.

Django runs each ASGI request's code on a thread of its own, so a connection kept for
reuse (``DB_CONN_MAX_AGE``) is never reused: it stays open until the dead thread's objects
are collected, and a burst of requests held as many connections, exhausting
``max_connections`` for every other process on the server. The server is started with the
environment and command that ``make run`` uses (read from ``make -n run``, which only
prints them), its connections told apart in ``pg_stat_activity`` by ``PGAPPNAME``.
"""

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from accounts.tokens import tokens_for
from tests.faults.servers import free_port, request, wait_until
from tests.helpers import ROOT, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BURST = 100
LEFT_OPEN = 2  # at most, once the burst is answered


def dev_server_command(port: int) -> tuple[dict[str, str], list[str]]:
    """The server line of ``make run``: its variable assignments and its command."""
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"PORT={port}", f"PY={sys.executable}"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.replace("\\\n", " ")  # fmt: skip
    # The recipe's lines, continuations joined, split into its shell commands.
    commands = [part for line in printed.splitlines() for part in line.split("; ")]
    line = next(command for command in commands if " -m uvicorn " in command)
    words = shlex.split(line)
    program = words.index(sys.executable)
    return dict(word.split("=", 1) for word in words[:program]), words[program:]


def connections_of(application_name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [application_name],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def dev_server(tmp_path):
    """The server as ``make run`` starts it (reloader included), on the test database;
    yields its port and the application_name its connections carry."""
    port = free_port()
    make_env, command = dev_server_command(port)
    application_name = f"make-run-{uuid.uuid4().hex[:8]}"
    env = subprocess_env(
        **make_env,
        DJANGO_SETTINGS_MODULE="config.settings",  # what manage.py uses, not the tests'
        CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}",
        PGAPPNAME=application_name,
    )
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the reloader's child stops too
        )  # fmt: skip

    def answers():
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        try:
            return request(port, "GET", "/healthz", host="localhost", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_until(answers, timeout=60, what="the server to answer")
        yield port, application_name
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)


def test_a_burst_of_requests_leaves_no_connection_per_thread(dev_server):
    port, application_name = dev_server
    start = threading.Barrier(BURST)

    def ready() -> int:
        start.wait(timeout=30)
        return request(port, "GET", "/readyz", host="localhost", timeout=120).status

    with ThreadPoolExecutor(BURST) as pool:
        statuses = list(pool.map(lambda _: ready(), range(BURST)))
    assert statuses == [200] * BURST  # each one read the database

    deadline = time.monotonic() + 10  # a request closes its connection right after answering
    while connections_of(application_name) > LEFT_OPEN and time.monotonic() < deadline:
        time.sleep(0.2)
    assert connections_of(application_name) <= LEFT_OPEN


def test_streams_and_the_consoles_files_are_served(dev_server, alice):
    """Streams answer (a ``HEAD`` of ``/api/events`` is what a ``GET`` would start; the
    WSGI server answers 503), so the console follows its jobs live, and ``/static/`` is
    served as runserver served it."""
    port, _ = dev_server
    host = "acme.localhost"
    token = str(tokens_for(alice).access_token)
    stream = request(port, "HEAD", "/api/events", host=host, token=token)
    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    script = request(port, "GET", "/static/console/console.js", host=host)
    assert script.status == 200
