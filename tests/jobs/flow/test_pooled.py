"""Flow control's claim behind PgBouncer in transaction mode: admission (``flow_admit``) and
the take travel with the claim's ``COMMIT`` and depend on no session state, so two worker
processes sharing one server connection hold a limit as they do directly (test.one: one
running at once, sampled from PostgreSQL while they drain)."""

import time

import pytest
from django.db import connection

from jobs import services
from jobs.models import Job, JobStatus
from tests.helpers import start_manage
from tests.pgbouncer import PgBouncer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JOBS = 12


@pytest.fixture
def bouncer():
    bouncer = PgBouncer(connection.settings_dict, pool_size=1).start()
    yield bouncer
    bouncer.stop()


def test_two_workers_behind_a_transaction_pooler_hold_a_limit(acme, executions, bouncer):
    for _ in range(JOBS):
        services.job_enqueue(tenant=acme, type="test.single", payload={"sleep": 0.1})
    env = {
        "DATABASE_URL": bouncer.url(connection.settings_dict["NAME"]),
        "DATABASE_POOL_MODE": "transaction",
        "JOBS_POLL_INTERVAL": "0.2",
        "JOBS_HEARTBEAT_SECONDS": "0.5",
    }
    workers = [start_manage("run_worker", "--concurrency", "2", "--burst", **env) for _ in range(2)]
    most = 0
    deadline = time.monotonic() + 120
    try:
        with connection.cursor() as cursor:
            while any(worker.poll() is None for worker in workers):
                assert time.monotonic() < deadline, [w.log_path.read_text()[-999:] for w in workers]
                cursor.execute(
                    "SELECT count(*) FROM job_queue"
                    " WHERE type = 'test.single' AND status = 'processing'"
                )
                most = max(most, cursor.fetchone()[0])
                time.sleep(0.02)
        for worker in workers:
            assert worker.wait(timeout=60) == 0, worker.log_path.read_text()[-4000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)

    assert most == 1
    assert Job.objects.filter(status=JobStatus.COMPLETED, attempts=1).count() == JOBS
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT job_id), count(*) FROM public.test_job_executions")
        assert cursor.fetchone() == (JOBS, JOBS)
