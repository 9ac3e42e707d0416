"""Helpers for tests that start real processes against the test database."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

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
