"""The real worker loop against committed data (transactional tests)."""

import threading

import psycopg
import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from documents.models import Document
from jobs import services
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.factories import JobFactory
from tests.jobs.writes import job_complete

pytestmark = pytest.mark.django_db(transaction=True)


def run_burst(**options) -> int:
    """Run a worker until nothing is runnable; return how many jobs it finished."""
    return Worker(burst=True, poll_interval=0.1, **options).run()


def enqueue(tenant, type_="demo.echo", payload=None, **kwargs) -> Job:
    return services.job_enqueue(tenant=tenant, type=type_, payload=payload or {}, **kwargs)


def test_worker_takes_a_job_from_pending_to_completed(acme):
    job = enqueue(acme, payload={"n": 1})
    assert run_burst() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert job.result == {"echo": {"n": 1}}
    assert job.attempts == 1
    assert job.started_at <= job.completed_at
    assert job.worker_id  # the last owner stays on record
    assert job.lease_expires_at is None


def test_job_is_processing_while_its_handler_runs(acme):
    job = enqueue(acme, "demo.sleep", {"seconds": 1.5})
    worker = Worker(burst=True, poll_interval=0.1)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        seen = set()
        for _ in range(100):
            job.refresh_from_db()
            seen.add(job.status)
            if job.status == JobStatus.COMPLETED:
                break
            threading.Event().wait(0.05)
    finally:
        thread.join(timeout=30)
    assert JobStatus.PROCESSING in seen
    assert job.status == JobStatus.COMPLETED


def test_failing_handler_ends_failed_with_a_client_safe_error(acme):
    job = enqueue(acme, "demo.fail")
    run_burst()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "demo failure"
    assert "Traceback" in job.error_traceback  # for staff, never the API


def test_unexpected_exception_hides_internals(acme):
    job = enqueue(acme, "test.explode")
    run_burst()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "internal error"
    assert "hunter2" in job.error_traceback


def test_unknown_type_fails_with_a_clear_error(acme):
    job = JobFactory(tenant=acme, type="no.such.type")
    run_burst()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "unknown job type 'no.such.type'"


def test_handler_runs_inside_the_jobs_tenant_schema(acme, globex):
    job = enqueue(acme, "ai_generation", {"prompt": "Q3"})
    run_burst()
    job.refresh_from_db()
    document_id = job.result["document_id"]
    assert job.result["success"] is True
    with tenant_context(acme):
        assert Document.objects.filter(pk=document_id, title="Q3").exists()
    with tenant_context(globex):
        assert not Document.objects.filter(pk=document_id).exists()


def test_claim_skips_a_row_locked_by_another_connection(acme):
    locked = enqueue(acme)
    free = enqueue(acme)
    db = connection.settings_dict
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    assert db["NAME"] == params["dbname"]
    with psycopg.connect(**params) as other:
        other.execute("SELECT 1 FROM job_queue WHERE id = %s FOR UPDATE", [locked.id])
        claimed = services.job_claim(worker_id="w-test", queues=["default"], limit=10)
        assert [job.id for job in claimed] == [free.id]
        other.rollback()
    claimed = services.job_claim(worker_id="w-test", queues=["default"], limit=10)
    assert [job.id for job in claimed] == [locked.id]


def test_a_claimed_job_is_never_claimed_again(acme):
    enqueue(acme)
    first = services.job_claim(worker_id="w1", queues=["default"], limit=5)
    second = services.job_claim(worker_id="w2", queues=["default"], limit=5)
    assert len(first) == 1
    assert second == []


def test_outcome_of_a_worker_that_lost_the_job_is_discarded(acme):
    enqueue(acme)
    (job,) = services.job_claim(worker_id="w1", queues=["default"])
    # The reaper gave it to w2 meanwhile.
    Job.objects.filter(pk=job.pk).update(worker_id="w2")
    assert not job_complete(job_id=job.id, worker_id="w1", result={"late": True})
    assert services.job_fail(job_id=job.id, worker_id="w1", attempts=1, error="x") is None
    job.refresh_from_db()
    assert job.status == JobStatus.PROCESSING
    assert job.result is None


def test_worker_only_takes_jobs_of_its_queues(acme):
    other = enqueue(acme, queue="reports")
    mine = enqueue(acme)
    run_burst(queues=["default"])
    other.refresh_from_db()
    mine.refresh_from_db()
    assert (mine.status, other.status) == (JobStatus.COMPLETED, JobStatus.PENDING)


def test_max_jobs_stops_the_worker(acme):
    for _ in range(3):
        enqueue(acme)
    assert Worker(max_jobs=2, poll_interval=0.1).run() == 2
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 1
