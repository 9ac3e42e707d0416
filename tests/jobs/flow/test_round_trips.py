"""Flow control's claim in round trips to PostgreSQL, counted at the protocol level as
tests/jobs/test_worker_round_trips.py counts the worker's (each simple ``Query`` and each
``Sync`` is one; ``BEGIN`` and ``COMMIT`` included). The jobs take ``test.roomy``, a limit
that never binds (as the bench's cost-of-limits drain attaches), so every claim admits.
"""

import pytest
from django.db import connection

from jobs import services, sql
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.jobs.test_engine import _flood
from tests.jobs.test_worker_round_trips import _FIXED, _PER_JOB, _round_trips
from tests.jobs.test_worker_round_trips import traced_connections as traced_connections

pytestmark = pytest.mark.django_db(transaction=True)


def _roomy(tenant, count: int) -> None:
    """``count`` pending jobs that take one unit of ``test.roomy`` each."""
    _flood(tenant, count)
    Job.objects.update(type="test.roomy", limit_keys=["test.roomy"], limit_units=[1])


def _claim_round_trips(traces, limit: int) -> tuple[int, int]:
    """The jobs one claim of ``limit`` took, and its round trips on the traced
    connections."""
    before = _round_trips(traces)
    claimed = services.job_claim(worker_id="w1", queues=["default"], limit=limit)
    return len(claimed), _round_trips(traces) - before


def test_a_claim_that_admits_is_two_round_trips(acme, traced_connections):
    # BEGIN with the candidates; admission (the budgets' locks, their running units, the
    # decision: flow_admit, in the database) with the take and COMMIT. It was three: the
    # budgets' locks and running units made a round trip of their own, and the worker
    # decided between them and the take, the locks held meanwhile.
    _roomy(acme, 30)
    connection.close()  # the claims open a traced connection
    assert _claim_round_trips(traced_connections, 1)[0] == 1  # the connection, its tenant
    assert _claim_round_trips(traced_connections, 8) == (8, 2)
    assert Job.objects.filter(status=JobStatus.PROCESSING).count() == 9


def test_a_claim_with_no_budget_at_stake_is_two_round_trips(acme, traced_connections):
    # Flow control in use, the jobs taking no limit: BEGIN with the candidates, COMMIT.
    _flood(acme, 30)
    connection.close()
    assert _claim_round_trips(traced_connections, 1)[0] == 1
    assert _claim_round_trips(traced_connections, 8) == (8, 2)


def test_a_limited_drain_stays_within_the_workers_round_trip_budget(acme, traced_connections):
    jobs = 400
    _roomy(acme, jobs)
    connection.close()

    finished = Worker(burst=True, concurrency=4, poll_interval=0.1).run()

    assert finished == jobs
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == jobs
    round_trips = _round_trips(traced_connections)
    assert round_trips <= _FIXED + _PER_JOB * jobs, round_trips


@pytest.mark.django_db  # in the test's transaction: its ANALYZE's statistics roll back with it
def test_the_take_finds_the_admitted_jobs_by_their_primary_key(acme):
    # flow_admit declares the few rows it returns (ROWS 10): with the thousand a
    # set-returning function is assumed to return, the take hashed the whole of job_queue,
    # a sequential scan of every job under the budgets' locks.
    _roomy(acme, 3000)
    ids = list(Job.objects.values_list("id", flat=True)[:20])
    params = {
        "ids": ids,
        "taken_by": list(range(1, 21)),
        "taken_budgets": [1] * 20,
        "taken_units": [1] * 20,
        "keys": ["test.roomy"],
        "concurrency": [1000],
        "rate": [100000.0],
        "burst": [100000.0],
        "free": 10,
        "worker_id": "w1",
        "lease": 60,
    }
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE job_queue")
        cursor.execute(f"EXPLAIN {sql.ADMIT_AND_TAKE}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using job_queue_pkey on job_queue" in plan, plan
    assert "Seq Scan on job_queue" not in plan, plan
