"""Engine behaviour through the real worker loop: retries, timeouts, progress,
cancellation, scheduling, priority, fairness and the Django Tasks backend.

Time is PostgreSQL's: instead of sleeping, tests move ``run_at``, ``started_at`` and leases
in SQL."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.utils import timezone
from django_tenants.utils import tenant_context

from jobs import demo, services
from jobs.backends import NoTenantContext
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.conftest import client_for
from tests.jobs.writes import job_complete

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_heartbeat(settings):
    settings.JOBS_HEARTBEAT_SECONDS = 0.1


def executed_job_ids() -> list:
    with connection.cursor() as cursor:
        cursor.execute("SELECT job_id FROM public.test_job_executions ORDER BY seq")
        return [row[0] for row in cursor.fetchall()]


def enqueue(tenant, type_="demo.echo", payload=None, **kwargs) -> Job:
    return services.job_enqueue(tenant=tenant, type=type_, payload=payload or {}, **kwargs)


def run_burst(**options) -> int:
    return Worker(burst=True, poll_interval=0.05, **options).run()


class BackgroundWorker:
    """A Worker running in a thread of this process, stopped at the end of the test."""

    def __init__(self, **options):
        self.worker = Worker(poll_interval=0.05, grace=5, **options)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.worker

    def __exit__(self, *exc):
        self.worker.request_stop()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive()


def wait_for(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def status_of(job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def make_runnable(job) -> None:
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now() - timedelta(seconds=1))


# --- retries ------------------------------------------------------------------------


def test_failed_attempt_is_retried_after_a_backoff_then_succeeds(acme, alice):
    job = enqueue(acme, "test.flaky", {"fail_times": 1})
    run_burst()
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.attempts == 1
    assert job.error == "internal error"  # kept for staff; not shown while pending
    assert job.run_at > timezone.now()  # backoff: not runnable yet
    assert run_burst() == 0  # nothing runs early
    body = client_for(alice, host="acme.localhost").get(f"/api/jobs/{job.id}").json()
    assert (body["status"], body["attempts"]) == ("pending", 1)
    assert "error" not in body

    make_runnable(job)
    run_burst()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.COMPLETED, 2, {"attempt": 2})


def test_job_fails_only_when_attempts_are_exhausted(acme):
    job = enqueue(acme, "test.flaky", {"fail_times": 10})
    assert job.max_attempts == 3
    for attempt in range(1, 4):
        run_burst()
        job.refresh_from_db()
        assert job.attempts == attempt
        expected = JobStatus.FAILED if attempt == 3 else JobStatus.PENDING
        assert job.status == expected
        make_runnable(job)
    assert job.error == "internal error"
    assert job.completed_at is not None


def test_backoff_grows_exponentially_with_jitter(settings):
    settings.JOBS_BACKOFF_BASE = 2
    settings.JOBS_BACKOFF_MAX = 30
    for attempts, ceiling in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (9, 30)]:
        delays = {services.backoff_seconds(attempts) for _ in range(20)}
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(delays) > 1  # jittered


# --- timeouts, progress, cancellation ------------------------------------------------


def test_timed_out_job_fails_and_its_late_result_is_discarded(acme):
    job = enqueue(acme, "test.block", {"seconds": 1.5})
    with BackgroundWorker():
        wait_for(lambda: status_of(job) == JobStatus.PROCESSING)
        Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=1))
        reaped = services.jobs_requeue_stale()
        assert reaped.timed_out == [job.id]
        time.sleep(2)  # let the handler return its (late) result
    job.refresh_from_db()
    assert (job.status, job.error, job.result) == (JobStatus.FAILED, "timed out", None)


def test_progress_is_reported_while_processing(acme, alice):
    job = enqueue(acme, "demo.sleep", {"seconds": 3})
    client = client_for(alice, host="acme.localhost")
    with BackgroundWorker():
        body = wait_for(
            lambda: (
                (b := client.get(f"/api/jobs/{job.id}").json()).get("progress")
                and b["progress"] > 0
                and b
            )
        )
        assert body["status"] == "processing"
        assert 0 < body["progress"] <= 100
        assert body["progress_message"].endswith("of 3s")
        wait_for(lambda: status_of(job) == JobStatus.COMPLETED)
    final = client.get(f"/api/jobs/{job.id}").json()
    assert "progress" not in final


def test_cancel_running_job_ends_cancelled_within_a_heartbeat(acme, alice):
    job = enqueue(acme, "demo.sleep", {"seconds": 30})
    client = client_for(alice, host="acme.localhost")
    with BackgroundWorker():
        wait_for(lambda: status_of(job) == JobStatus.PROCESSING)
        response = client.post(f"/api/jobs/{job.id}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "processing"
        wait_for(lambda: status_of(job) == JobStatus.CANCELLED, timeout=3)
    job.refresh_from_db()
    assert job.result is None
    assert client.post(f"/api/jobs/{job.id}/cancel").status_code == 409


def test_cancel_of_a_handler_that_ignores_it_discards_the_late_result(acme, alice):
    job = enqueue(acme, "test.block", {"seconds": 1})
    Job.objects.filter(pk=job.pk).update(timeout_seconds=600)
    with BackgroundWorker():
        wait_for(lambda: status_of(job) == JobStatus.PROCESSING)
        services.job_cancel(tenant=acme, job_id=job.id)
        wait_for(lambda: status_of(job) == JobStatus.CANCELLED, timeout=3)
        time.sleep(1.5)  # the handler returns {"blocked": 1} after the cancel
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.CANCELLED, None)


# --- scheduling and priority -----------------------------------------------------------


def test_scheduled_job_is_not_run_early_and_run_now_releases_it(acme):
    job = enqueue(acme, run_at=timezone.now() + timedelta(hours=1))
    assert run_burst() == 0
    assert status_of(job) == JobStatus.PENDING
    services.job_run_now(job_id=job.id, tenant=acme)
    assert run_burst() == 1
    assert status_of(job) == JobStatus.COMPLETED


def test_submit_with_run_at_and_priority_through_the_api(acme, alice):
    later = (timezone.now() + timedelta(hours=2)).isoformat()
    client = client_for(alice, host="acme.localhost")
    response = client.post(
        "/api/jobs", {"type": "demo.echo", "run_at": later, "priority": 7}, format="json"
    )
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert job.priority == 7
    assert abs((job.run_at - timezone.now()).total_seconds() - 7200) < 60
    bad = client.post("/api/jobs", {"type": "demo.echo", "priority": 101}, format="json")
    assert bad.status_code == 400


def test_claims_follow_priority_then_run_at_then_created_at(acme, executions):
    # Waits shorter than JOBS_PRIORITY_AGEING_SECONDS: no priority has aged (tests/jobs/flow).
    low = enqueue(acme, "test.record", priority=-5)
    first_default = enqueue(acme, "test.record")
    second_default = enqueue(acme, "test.record")
    high = enqueue(acme, "test.record", priority=50)
    earlier = enqueue(acme, "test.record")
    Job.objects.filter(pk=earlier.pk).update(run_at=timezone.now() - timedelta(seconds=30))
    run_burst(concurrency=1)
    assert executed_job_ids() == [high.id, earlier.id, first_default.id, second_default.id, low.id]


# --- fairness --------------------------------------------------------------------------


def _flood(tenant, count: int) -> None:
    """``count`` pending test.record jobs of ``tenant``, inserted in one statement."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO job_queue (id, tenant_id, type, status, payload, error,
                error_traceback, queue, priority, run_at, attempts, max_attempts,
                timeout_seconds, progress_message, worker_id, cancel_requested,
                idempotency_key, request_fingerprint, created_at, updated_at)
            SELECT gen_random_uuid(), %s, 'test.record', 'pending', '{}', '', '', 'default',
                0, now() - interval '1 hour', 0, 3, 600, '', '', false, '', '',
                now() - interval '1 hour' + n * interval '1 ms', now()
            FROM generate_series(1, %s) AS n
            """,
            [tenant.pk, count],
        )


def test_a_flood_of_one_tenant_does_not_delay_another_tenants_job(acme, globex):
    _flood(acme, 5000)
    newcomer = enqueue(globex, "test.record")
    first = services.job_claim(worker_id="w1", queues=["default"], limit=4)
    assert newcomer.id in {job.id for job in first}
    assert sum(job.tenant_id == acme.pk for job in first) == 3


def test_claims_interleave_tenants(acme, globex):
    _flood(acme, 20)
    _flood(globex, 20)
    claimed = services.job_claim(worker_id="w1", queues=["default"], limit=10)
    tenants = [job.tenant_id for job in claimed]
    assert tenants.count(acme.pk) == tenants.count(globex.pk) == 5


def test_per_tenant_cap_limits_running_jobs(settings, acme, globex):
    settings.JOBS_MAX_RUNNING_PER_TENANT = 2
    _flood(acme, 10)
    _flood(globex, 10)
    first = services.job_claim(worker_id="w1", queues=["default"], limit=10)
    assert len(first) == 4
    assert services.job_claim(worker_id="w2", queues=["default"], limit=10) == []
    job_complete(job_id=first[0].id, worker_id="w1", result={})
    (next_job,) = services.job_claim(worker_id="w2", queues=["default"], limit=10)
    assert next_job.tenant_id == first[0].tenant_id


# --- Django Tasks backend -------------------------------------------------------------


def test_django_task_enqueues_into_the_current_tenant_and_reports_results(acme):
    with tenant_context(acme):
        result = demo.echo.enqueue(greeting="hi")
    job = Job.objects.get(pk=result.id)
    assert (job.tenant, job.type, job.payload) == (acme, "demo.echo", {"greeting": "hi"})
    assert result.status == "READY"
    run_burst()
    with tenant_context(acme):
        finished = demo.echo.get_result(result.id)
    assert finished.status == "SUCCESSFUL"
    assert finished.return_value == {"echo": {"greeting": "hi"}}
    assert finished.finished_at is not None


def test_django_task_failure_maps_to_failed(acme):
    with tenant_context(acme):
        result = demo.fail.enqueue()
    run_burst()
    with tenant_context(acme):
        finished = demo.fail.get_result(result.id)
    assert finished.status == "FAILED"
    assert finished.errors


def test_django_task_outside_a_tenant_fails_loudly(acme):
    with pytest.raises(NoTenantContext):
        demo.echo.enqueue(greeting="hi")
    assert not Job.objects.exists()


def test_django_task_results_are_tenant_scoped(acme, globex):
    with tenant_context(acme):
        result = demo.echo.enqueue()
    with tenant_context(globex), pytest.raises(TaskResultDoesNotExist):
        demo.echo.get_result(result.id)


def test_django_task_validates_the_payload_and_rejects_positional_args(acme):
    from rest_framework.exceptions import ValidationError

    with tenant_context(acme):
        with pytest.raises(ValidationError):
            demo.sleep.enqueue(seconds=999)
        with pytest.raises(InvalidTask):
            demo.echo.enqueue("positional")
    assert not Job.objects.exists()


# --- claiming ahead ------------------------------------------------------------------------


def test_short_jobs_are_claimed_ahead_and_a_queued_job_cancelled_meanwhile_never_runs(
    acme, executions
):
    blocker = enqueue(acme, "test.block", {"seconds": 1}, priority=10)
    queued = enqueue(acme, "test.record")
    worker = Worker(concurrency=1, poll_interval=0.05, grace=5)
    worker.pools[0].recent_duration = 0.0  # recent jobs were short: claim one ahead
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: status_of(blocker) == JobStatus.PROCESSING)
        assert status_of(queued) == JobStatus.PROCESSING  # claimed ahead, waiting locally
        assert services.job_cancel(tenant=acme, job_id=queued.id).finished is False
        wait_for(lambda: status_of(queued) == JobStatus.CANCELLED, timeout=3)
        wait_for(lambda: status_of(blocker) == JobStatus.COMPLETED, timeout=10)
    finally:
        worker.request_stop()
        thread.join(timeout=15)
    assert executed_job_ids() == []  # the cancelled job's handler never ran


def test_long_jobs_are_not_claimed_ahead(acme):
    first = enqueue(acme, "test.block", {"seconds": 0.5})
    second = enqueue(acme, "test.block", {"seconds": 0.5})
    worker = Worker(concurrency=1, poll_interval=0.05, grace=5)
    worker.pools[0].recent_duration = 1.0  # recent jobs were long
    with_thread = threading.Thread(target=worker.run, daemon=True)
    with_thread.start()
    try:
        wait_for(lambda: status_of(first) == JobStatus.PROCESSING)
        assert status_of(second) == JobStatus.PENDING  # left for other workers
        wait_for(lambda: status_of(second) == JobStatus.COMPLETED, timeout=10)
    finally:
        worker.request_stop()
        with_thread.join(timeout=15)
