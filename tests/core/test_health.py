"""GET /healthz and /readyz: no auth, any host, and a 503 with a reason when a dependency
is down, exercised against real refused connections."""

import ast
import logging
import socket
import subprocess
import sys

import psycopg
import pytest
import redis
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import ConnectionHandler
from django.test import Client
from django.utils.module_loading import import_string

from jobs.health import live_worker
from tests.helpers import ROOT, subprocess_env

pytestmark = pytest.mark.django_db


@pytest.fixture
def closed_port():
    """A local port bound but never listening: connecting to it is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(autouse=True)
def _recheck_migrations(monkeypatch):
    monkeypatch.setattr("core.health._migrations_checked", False)


@pytest.mark.parametrize("host", ["localhost", "acme.localhost", "10.0.0.7:8000"])
def test_healthz_and_readyz_answer_on_any_host(public_tenant, acme, host):
    client = Client(HTTP_HOST=host)
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_503_when_the_database_is_unreachable(
    public_client, closed_port, monkeypatch, caplog
):
    broken = ConnectionHandler(
        {"default": {**connection.settings_dict, "HOST": "127.0.0.1", "PORT": closed_port}}
    )
    monkeypatch.setattr("core.health.connections", broken)
    with caplog.at_level(logging.WARNING, logger="core.health"):
        response = public_client.get("/readyz")
    broken.close_all()
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "unreachable", "redis": "ok"},
    }
    # The real failure path: a refused PostgreSQL connection, not a stub.
    (record,) = [r for r in caplog.records if r.message == "readiness: database unreachable"]
    assert isinstance(record.exc_info[1].__cause__, psycopg.OperationalError)
    assert public_client.get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_is_503_when_redis_is_unreachable(public_client, closed_port, settings, caplog):
    settings.CACHES = {
        "default": {
            **settings.CACHES["default"],
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
        }
    }
    with caplog.at_level(logging.WARNING, logger="core.health"):
        response = public_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "unreachable"}
    (record,) = [r for r in caplog.records if r.message == "readiness: redis unreachable"]
    assert isinstance(record.exc_info[1], redis.ConnectionError)


def test_readyz_is_503_with_unapplied_migrations(public_client):
    MigrationRecorder(connection).record_unapplied("sessions", "0001_initial")
    response = public_client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unapplied migrations"


def failing_check():
    raise ConnectionError("the check's own dependency is down")


def test_a_configured_check_that_raises_is_unreachable_without_details(public_client, settings):
    # READYZ_REQUIRE_WORKER names the worker check here (tests/jobs/test_worker_registry.py).
    settings.READINESS_CHECKS = {"worker": "tests.core.test_health.failing_check"}
    response = public_client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "redis": "ok", "worker": "unreachable"},
    }
    assert "down" not in response.content.decode()


@pytest.mark.parametrize(("flag", "checks"), [("0", {}), ("1", {"worker": live_worker})])
def test_readyz_require_worker_turns_on_the_engine_check(flag, checks):
    done = subprocess.run(
        [sys.executable, "-c", "from config import settings; print(settings.READINESS_CHECKS)"],
        cwd=ROOT,
        env=subprocess_env(READYZ_REQUIRE_WORKER=flag),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    configured = ast.literal_eval(done.stdout.strip())
    assert {name: import_string(path) for name, path in configured.items()} == checks
