"""`make run`'s development server keeps no database connection past its request.

runserver serves each request on a new thread, so a connection kept for reuse
(``DB_CONN_MAX_AGE``) is never reused: it stays open until the dead thread's objects are
collected, and a burst of requests held as many connections, exhausting
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

from tests.faults.servers import free_port, request, wait_until
from tests.helpers import ROOT, subprocess_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BURST = 100
LEFT_OPEN = 2  # at most, once the burst is answered


def dev_server_command(port: int) -> tuple[dict[str, str], list[str]]:
    """The runserver line of ``make run``: its variable assignments and its command."""
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"PORT={port}", f"PY={sys.executable}"],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    line = next(line for line in printed.splitlines() if " manage.py runserver " in line)
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
    """runserver as ``make run`` starts it (autoreloader included), on the test database;
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
    with (tmp_path / "runserver.log").open("w") as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the reloader's child stops too
        )  # fmt: skip

    def answers():
        assert server.poll() is None, (tmp_path / "runserver.log").read_text()[-3000:]
        try:
            return request(port, "GET", "/healthz", host="localhost", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_until(answers, timeout=60, what="runserver to answer")
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
