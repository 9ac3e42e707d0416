"""The round-trip budget of a warm poll, counted at the servers (tests/jobs/api/round_trips.py):
at most 1 Redis and 3 PostgreSQL round trips, BEGIN and COMMIT included, for a 200 and a 304;
a pending job's makes 1 PostgreSQL round trip (its transaction travels with its read).

These tests commit (``transaction=True``): a request opens and commits its own
transaction, as in production, only outside a test's transaction."""

import time
import uuid

import pytest
from django.db import DEFAULT_DB_ALIAS, InternalError, connection, connections
from django.db.backends.base import base

from jobs.models import Job
from tenants.row_security import tenant_row_security
from tests.conftest import client_for
from tests.factories import JobFactory
from tests.jobs.api.round_trips import counted_round_trips, wait_for_invalidations

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def warm(alice, acme, settings):
    """A job of acme's, alice's client, and its ETag from a first poll that warms every
    cache (tenant, user, connection). The caches start empty under a prefix of their own:
    creating the rows left tombstones (core.row_cache) that would keep them from caching."""
    job = JobFactory(tenant=acme)
    caches = {alias: dict(conf) for alias, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches
    client = client_for(alice, host="acme.localhost")
    etag = client.get(f"/api/jobs/{job.id}")["ETag"]
    wait_for_invalidations()
    client.get(f"/api/jobs/{job.id}")  # copies in this process's memory too
    return job, client, etag


def poll(client, job, **headers):
    """One poll as a server serves it: Django's request_started handling first (the test
    client skips it), which puts the connection's health check due."""
    connection.close_if_unusable_or_obsolete()
    return client.get(f"/api/jobs/{job.id}", **headers)


@pytest.mark.parametrize("conditional", [False, True], ids=["200", "304"])
def test_warm_poll_makes_at_most_three_postgres_round_trips(warm, monkeypatch, conditional):
    """BEGIN with the row-security settings, the read, COMMIT: in that order, in at most
    three round trips."""
    job, client, etag = warm
    headers = {"HTTP_IF_NONE_MATCH": etag} if conditional else {}
    with counted_round_trips(monkeypatch) as counted:
        response = poll(client, job, **headers)
    assert response.status_code == (304 if conditional else 200)
    assert len(counted.postgres) <= 3, counted.postgres
    sent = "; ".join(text.strip('"') for text in counted.postgres)
    assert sent.startswith("BEGIN; SELECT set_config('role', 'tenant_jobs_web', true)")
    assert "set_config('idle_in_transaction_session_timeout', '60s', true)" in sent
    assert sent.index("set_config('app.tenant_id'") < sent.index("job_queue")
    assert sent.endswith("; COMMIT")


def test_warm_poll_of_a_pending_job_makes_one_postgres_round_trip(warm, monkeypatch):
    """BEGIN, the settings, the read and COMMIT travel together, as one simple query, for
    the 200 and for the 304 (a pending job's reads its row)."""
    job, client, etag = warm
    for headers, status in (({}, 200), ({"HTTP_IF_NONE_MATCH": etag}, 304)):
        with counted_round_trips(monkeypatch) as counted:
            answered = poll(client, job, **headers).status_code
        assert (answered, len(counted.postgres)) == (status, 1), counted.postgres
        assert counted.postgres[0].startswith("\"BEGIN; SELECT set_config('role'")
        assert counted.postgres[0].endswith('; COMMIT"')


@pytest.mark.parametrize("conditional", [False, True], ids=["200", "304"])
def test_warm_poll_makes_one_redis_round_trip(warm, monkeypatch, conditional):
    """The rate limit's; the tenant and the user come from this process's memory."""
    job, client, etag = warm
    headers = {"HTTP_IF_NONE_MATCH": etag} if conditional else {}
    with counted_round_trips(monkeypatch) as counted:
        response = poll(client, job, **headers)
    assert response.status_code == (304 if conditional else 200)
    assert len(counted.redis) == 1, counted.redis
    assert b"EVALSHA" in counted.redis[0]


def test_a_connection_dropped_between_requests_is_replaced(warm):
    """The BEGIN statement stands for Django's health check: a dead connection is replaced
    and the request served."""
    job, client, _ = warm
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid]
            )
    finally:
        other.close()
    assert poll(client, job).status_code == 200


def test_a_poll_on_the_first_connection_of_a_process_is_served(warm, monkeypatch):
    """Connecting first checks the server's version with a statement, which opens the
    request's transaction before the read."""
    job, client, _ = warm
    connection.close()
    monkeypatch.setattr(base, "RAN_DB_VERSION_CHECK", set())
    connections[DEFAULT_DB_ALIAS].__dict__.pop("pg_version", None)
    assert poll(client, job).status_code == 200


def _idle_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        return cursor.fetchone()[0]


def test_the_idle_timeout_is_the_request_transactions_only(settings, acme):
    settings.DB_IDLE_IN_TRANSACTION_TIMEOUT = 7
    with tenant_row_security(acme):
        assert _idle_timeout() == "7s"
    assert _idle_timeout() == "0"


def test_an_idle_request_transaction_is_ended_by_postgresql(settings, acme):
    settings.DB_IDLE_IN_TRANSACTION_TIMEOUT = 1

    def idle_then_read():
        with tenant_row_security(acme):
            time.sleep(1.5)  # idle for longer than the timeout: PostgreSQL ends the session
            Job.objects.filter(tenant=acme).exists()

    with pytest.raises(InternalError, match="idle-in-transaction timeout"):
        idle_then_read()
    connection.close()
