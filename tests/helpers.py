"""Helpers for tests that start real processes against the test database."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child ``manage.py`` that uses this test run's database and Redis
    (``extra`` may override either)."""
    db = connection.settings_dict
    host = db["HOST"] or ""
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    location = quote(host, safe="") if host.startswith("/") else host
    if db.get("PORT"):
        location += f":{db['PORT']}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"postgres://{auth}@{location}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
        DJANGO_SETTINGS_MODULE="tests.settings",
    )
    env.update(extra)
    return env


def start_manage(*args: str, **env: str) -> subprocess.Popen:
    """Start ``python manage.py *args`` as a child process on the test database.

    Its output goes to a temporary file (``process.log_path``), never to a pipe that
    could fill up and block the child.
    """
    with tempfile.NamedTemporaryFile(prefix="manage-", suffix=".log", delete=False) as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=subprocess_env(**env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.log_path = Path(log.name)
    return process


def start_uvicorn(
    app: str = "config.asgi:application", env: dict | None = None, port: int | None = None
):
    """A uvicorn serving ``app`` as docs/operations.md runs it (``config.asgi_server``'s
    protocol) on loopback ``port`` (default: a free one), with ``env`` (default: the test
    database's, ``subprocess_env``, under a cache prefix of its own), returned once it
    accepts connections; ``.port`` and ``.log_path`` say where. Stop it with
    ``stop_process``."""
    from tests.faults.servers import free_port

    port = port or free_port()
    env = env or subprocess_env(CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}")
    with tempfile.NamedTemporaryFile(prefix="uvicorn-", suffix=".log", delete=False) as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
             "--http", "config.asgi_server:HttpToolsProtocol", "--no-access-log"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server.port = port
    server.log_path = Path(log.name)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                stop_process(server)
                raise AssertionError(server.log_path.read_text()[-4000:]) from None
            time.sleep(0.1)


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def admin_client_for(user) -> Client:
    """A Django test client on the platform host (where the admin lives), logged in."""
    client = Client(HTTP_HOST=settings.PUBLIC_HOST)
    client.force_login(user)
    return client


def insert_finished_jobs(tenant, count: int, *, days_old: int) -> None:
    """``count`` finished jobs of ``tenant`` in one INSERT … SELECT generate_series: 88%
    completed, 8% failed, 4% cancelled, all finished ``days_old`` days ago (and a bit)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO job_queue (
                id, tenant_id, type, status, payload, error, error_traceback, queue,
                priority, run_at, attempts, max_attempts, timeout_seconds, progress_message,
                worker_id, cancel_requested, idempotency_key, request_fingerprint,
                created_at, started_at, updated_at, completed_at)
            SELECT gen_random_uuid(), %(tenant_id)s, 'demo.echo',
                   CASE WHEN g %% 25 = 0 THEN 'cancelled'
                        WHEN g %% 25 < 3 THEN 'failed' ELSE 'completed' END,
                   '{}', '', '', 'default', 0, finished, 1, 3, 600, '', '', false, '', '',
                   finished, finished, finished, finished
            FROM generate_series(1, %(count)s) AS g,
                 LATERAL (SELECT now() - make_interval(days => %(days)s)
                                 - make_interval(secs => g) AS finished) AS t
            """,
            {"tenant_id": tenant.pk, "count": count, "days": days_old},
        )
