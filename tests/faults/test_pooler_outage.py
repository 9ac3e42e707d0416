"""PgBouncer (transaction mode) shut down or killed, then restarted, while clients poll and
workers run: gunicorn and the workers reach PostgreSQL through it (``DATABASE_URL``), their
LISTEN connections directly (``DATABASE_DIRECT_URL``). During the outage, 503 problem
details with Retry-After, never a 500; after PgBouncer is back on the same port, recovery
without restarting any process, and every job ends exactly once.

A pooler's errors may carry no SQLSTATE (the driver's own, when the conversation broke) or
name the pooler: the in-process checks at the end pin how core/errors.py classifies them."""

import psycopg
import pytest
from django.db import DatabaseError, InternalError

from jobs import selectors
from tests.faults import servers
from tests.faults.conftest import token
from tests.faults.test_postgres_restart import Pollers, _assert_unavailable, _web_worker_pids

JOBS = 40
HOST = "acme.localhost"


def _submit(port: int, access: str, **payload) -> servers.Answer:
    return servers.request(
        port,
        "POST",
        "/api/jobs",
        host=HOST,
        token=access,
        body={"type": "test.record_attempt", "payload": payload},
    )


@pytest.mark.faults
@pytest.mark.timeout(420)
@pytest.mark.parametrize("crash", [False, True], ids=["shutdown", "killed"])
def test_pgbouncer_restart_under_polling_and_workers(faults, pooler, crash):
    web = faults.gunicorn(workers=2, **pooler.env)
    access = token(web.port)
    submitted = [_submit(web.port, access, sleep=0.5) for _ in range(JOBS)]
    assert {answer.status for answer in submitted} == {202}, submitted[:3]
    job_ids = [answer.json()["id"] for answer in submitted]
    workers = [faults.worker("--concurrency", "2", **pooler.env) for _ in range(2)]
    web_pids = _web_worker_pids(web)

    def finished() -> int:
        (count,) = faults.sql(
            "SELECT count(*) FROM job_queue WHERE id = ANY(%s::uuid[])"
            " AND status IN ('completed', 'failed', 'cancelled')",
            [job_ids],
        )[0]
        return count

    def listeners() -> int:
        # The workers' LISTEN connections, on PostgreSQL itself (not through PgBouncer).
        (count,) = faults.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = 'faults'"
            " AND application_name = 'tenant-jobs-worker' AND query LIKE 'LISTEN %%'"
        )[0]
        return count

    servers.wait_until(lambda: listeners() == 2, timeout=60, what="both workers to LISTEN")
    with Pollers(web.port, access, job_ids) as pollers:
        servers.wait_until(lambda: finished() >= 5, timeout=60, what="the first jobs to end")
        assert finished() < JOBS, "the outage must hit running work"
        servers.wait_until(lambda: pollers.count(200) >= 20, timeout=30, what="polls to succeed")

        pooler.stop(crash=crash)
        try:
            servers.wait_until(
                lambda: pollers.count(503) >= 20, timeout=60, what="polls answered 503"
            )
            _assert_unavailable(
                servers.request(web.port, "GET", f"/api/jobs/{job_ids[0]}", host=HOST, token=access)
            )
            for _ in range(3):
                _assert_unavailable(_submit(web.port, access))
        finally:
            pooler.start()

        answered_after = pollers.count(200)
        servers.wait_until(
            lambda: pollers.count(200) >= answered_after + 20,
            timeout=60,
            what="polls to succeed again",
        )
        after = _submit(web.port, access)
        assert after.status == 202, after
        job_ids.append(after.json()["id"])
        servers.wait_until(lambda: finished() == len(job_ids), timeout=180, what="every job to end")
        # A worker drops its listener with the rest on a database error and opens it again
        # once the database answers: directly, as before.
        servers.wait_until(lambda: listeners() == 2, timeout=30, what="both workers to LISTEN")

    assert not pollers.errors, pollers.errors[:3]
    assert pollers.statuses() <= {200, 503}, pollers.statuses()
    for answer in pollers.answers:
        if answer.status == 503:
            _assert_unavailable(answer)
    assert all(worker.alive() for worker in workers), [w.log()[-2000:] for w in workers]
    assert web.alive()
    assert _web_worker_pids(web) == web_pids  # no web worker was restarted either
    assert "unhandled error" not in web.log()

    faults.assert_each_completed_once(job_ids)


# --- in process: what core/errors.py makes of the errors a pooler causes -----------------------


def _wrapped(django_class, driver_error):
    """``driver_error`` as Django's wrapper raises it: ``django_class`` with it as cause."""
    error = django_class(*driver_error.args)
    error.__cause__ = driver_error
    return error


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    [
        # The driver lost the conversation: no SQLSTATE, whatever class it picked.
        _wrapped(DatabaseError, psycopg.DatabaseError("server closed the connection")),
        _wrapped(InternalError, psycopg.InternalError("got no result from the query")),
        psycopg.InternalError("unexpected result status from query: EMPTY_QUERY"),
        # PgBouncer's own refusals.
        _wrapped(DatabaseError, psycopg.DatabaseError("no more connections allowed")),
        _wrapped(InternalError, psycopg.InternalError("server login failed: FATAL ...")),
        psycopg.ProgrammingError("pgbouncer cannot connect to server"),
        psycopg.OperationalError("query_wait_timeout"),
    ],
    ids=lambda error: f"{type(error).__name__}: {error}",
)
def test_pooler_errors_are_503_problems_without_internals(monkeypatch, alice_client, error):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(selectors, "job_list", fail)
    response = alice_client.get("/api/jobs")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (503, "service_unavailable")
    assert int(response["Retry-After"]) >= 1
    assert str(error) not in response.content.decode()
    assert "pgbouncer" not in response.content.decode().lower()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    [
        # Django's own (no driver error behind it), e.g. a save that matched no row.
        DatabaseError("Save with update_fields did not affect any rows."),
        # PostgreSQL's: they carry an SQLSTATE, and are bugs or races, not outages.
        _wrapped(InternalError, psycopg.errors.InFailedSqlTransaction("aborted")),
        # The driver's own misuse errors.
        psycopg.ProgrammingError("the query has 1 placeholder but 2 parameters were passed"),
    ],
    ids=lambda error: f"{type(error).__name__}: {error}",
)
def test_other_database_errors_stay_500s(monkeypatch, alice_client, error):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(selectors, "job_list", fail)
    alice_client.raise_request_exception = False
    response = alice_client.get("/api/jobs")
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
