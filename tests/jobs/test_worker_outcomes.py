"""How a run ended, as the worker reports it: exactly one ``job_finished`` per run, with a
``JobOutcome``, and one log line ``job <outcome>`` that agree with the job's row.

Real Workers in threads against committed data; time moves in SQL, never by sleeping."""

import logging
import threading
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from jobs import services
from jobs.models import Job, JobStatus
from jobs.signals import JobOutcome, job_finished, jobs_finished
from jobs.worker import Worker
from tests.conftest import client_for
from tests.jobs.test_engine import status_of, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_heartbeat(settings):
    settings.JOBS_HEARTBEAT_SECONDS = 0.1


@pytest.fixture
def finished():
    """(job id, outcome) of every ``job_finished`` sent during the test, in order."""
    seen = []

    def receiver(sender, job, outcome, duration, **kwargs):
        seen.append((job.id, outcome))

    job_finished.connect(receiver, weak=False, dispatch_uid="test_worker_outcomes")
    yield seen
    job_finished.disconnect(dispatch_uid="test_worker_outcomes")


@pytest.fixture
def worker_log(caplog):
    caplog.set_level(logging.INFO, logger="jobs.worker")
    return caplog


class Running:
    """A Worker running in a thread of this process; stopped (and joined) on exit."""

    def __init__(self, grace: float = 5.0):
        self.worker = Worker(poll_interval=0.05, grace=grace)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.worker

    def __exit__(self, *exc):
        self.worker.request_stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def enqueue(tenant, type_, payload=None) -> Job:
    return services.job_enqueue(tenant=tenant, type=type_, payload=payload or {})


def reports_of(job, finished) -> list:
    return [outcome for job_id, outcome in finished if job_id == job.id]


def assert_reported(job, finished, worker_log, outcome, message, level=logging.INFO):
    """The job's one report: the signal's outcome is ``outcome`` (the enum member) and
    the worker logged ``message`` once, at ``level``, with the outcome as a field."""
    (reported,) = reports_of(job, finished)
    assert reported is outcome
    lines = [
        record
        for record in worker_log.records
        if record.name == "jobs.worker" and getattr(record, "job_id", None) == str(job.id)
        if hasattr(record, "outcome")
    ]
    assert [(r.getMessage(), r.levelno, r.outcome) for r in lines] == [
        (message, level, str(outcome))
    ]


# --- cancellation through the API -------------------------------------------------------


def test_a_job_cancelled_through_the_api_while_running_is_reported_cancelled(
    acme, alice, finished, worker_log
):
    job = enqueue(acme, "demo.sleep", {"seconds": 30})
    client = client_for(alice, host="acme.localhost")
    with Running():
        wait_for(lambda: status_of(job) == JobStatus.PROCESSING)
        response = client.post(f"/api/jobs/{job.id}/cancel")
        assert response.status_code == 202
        wait_for(lambda: reports_of(job, finished))
        # demo.sleep notices the cancel and returns; that late ending is no second report.
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.CANCELLED, None)
    assert_reported(job, finished, worker_log, JobOutcome.CANCELLED, "job cancelled")
    assert client.get(f"/api/jobs/{job.id}").json()["status"] == "cancelled"


def test_a_handler_ignoring_the_cancel_is_ended_cancelled_while_it_still_runs(
    acme, alice, finished, worker_log
):
    # test.block sleeps 30 s without looking: the report can only come from the worker.
    job = enqueue(acme, "test.block", {"seconds": 30})
    client = client_for(alice, host="acme.localhost")
    with Running(grace=0.2):
        wait_for(lambda: status_of(job) == JobStatus.PROCESSING)
        assert client.post(f"/api/jobs/{job.id}/cancel").status_code == 202
        wait_for(lambda: reports_of(job, finished))
        assert status_of(job) == JobStatus.CANCELLED
    # Stopping the worker while the handler still sleeps hands nothing back.
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.CANCELLED, None)
    assert_reported(job, finished, worker_log, JobOutcome.CANCELLED, "job cancelled")


# --- every outcome once ------------------------------------------------------------------


def run_burst() -> int:
    return Worker(burst=True, poll_interval=0.05).run()


def test_completed(acme, finished, worker_log):
    job = enqueue(acme, "demo.echo", {"n": 1})
    assert run_burst() == 1
    job.refresh_from_db()
    assert (job.status, job.result) == (JobStatus.COMPLETED, {"echo": {"n": 1}})
    assert_reported(job, finished, worker_log, JobOutcome.COMPLETED, "job completed")


def test_failed(acme, finished, worker_log):
    job = enqueue(acme, "demo.fail")
    assert run_burst() == 1
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "demo failure")
    assert_reported(job, finished, worker_log, JobOutcome.FAILED, "job failed")


def test_retrying(acme, finished, worker_log):
    job = enqueue(acme, "test.flaky", {"fail_times": 1})
    assert run_burst() == 1
    job.refresh_from_db()
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
    assert_reported(job, finished, worker_log, JobOutcome.RETRYING, "job retrying")


def test_cancelled(acme, finished, worker_log):
    job = enqueue(acme, "demo.sleep", {"seconds": 30})
    with Running():
        wait_for(lambda: status_of(job) == JobStatus.PROCESSING)
        assert services.job_cancel(tenant=acme, job_id=job.id).finished is False
        wait_for(lambda: reports_of(job, finished))
    assert status_of(job) == JobStatus.CANCELLED
    assert_reported(job, finished, worker_log, JobOutcome.CANCELLED, "job cancelled")


def test_timed_out(acme, finished, worker_log):
    job = enqueue(acme, "test.block", {"seconds": 1})
    with Running():
        wait_for(lambda: status_of(job) == JobStatus.PROCESSING)
        Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=1))
        assert services.jobs_requeue_stale().timed_out == [job.id]
        wait_for(lambda: reports_of(job, finished))  # once the handler's late result is in
    job.refresh_from_db()
    assert (job.status, job.error, job.result) == (JobStatus.FAILED, "timed out", None)
    assert_reported(
        job, finished, worker_log, JobOutcome.TIMED_OUT, "job timed out", logging.WARNING
    )


def test_lost(acme, finished, worker_log):
    job = enqueue(acme, "test.block", {"seconds": 1})
    Job.objects.filter(pk=job.pk).update(max_attempts=1)
    with Running():
        wait_for(lambda: status_of(job) == JobStatus.PROCESSING)
        # The lease expires (the worker stalled) and a reaper takes the job, in one
        # transaction, so no heartbeat renews the lease in between.
        with transaction.atomic():
            Job.objects.filter(pk=job.pk).update(
                lease_expires_at=timezone.now() - timedelta(seconds=1)
            )
            assert services.jobs_requeue_stale().lost == [job.id]
        wait_for(lambda: reports_of(job, finished))  # once the handler's late result is in
    job.refresh_from_db()
    assert (job.status, job.error, job.result) == (JobStatus.FAILED, "worker lost", None)
    assert_reported(job, finished, worker_log, JobOutcome.LOST, "job lost", logging.WARNING)


def test_handed_back(acme, finished, worker_log):
    job = enqueue(acme, "test.block", {"seconds": 2})
    running = Running(grace=0)
    with running as worker:
        wait_for(lambda: status_of(job) == JobStatus.PROCESSING)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.PENDING, 0, "")
    assert worker.finished_total == 0  # a job handed back did not end here
    assert_reported(
        job, finished, worker_log, JobOutcome.HANDED_BACK, "job handed back", logging.WARNING
    )


def test_each_outcome_writer_call_sends_its_runs_once_as_a_batch(acme, finished):
    """``jobs_finished``: the runs of each outcome-writer call, once, after their
    ``job_finished``, with the same jobs and outcomes."""
    batches = []

    def receiver(sender, runs, **kwargs):
        assert sender is Worker
        batches.append([(job.id, outcome, duration) for job, outcome, duration in runs])

    jobs_finished.connect(receiver, weak=False, dispatch_uid="test_worker_outcomes_batch")
    try:
        jobs = [enqueue(acme, "demo.echo", {"n": n}) for n in range(5)]
        jobs.append(enqueue(acme, "demo.fail"))
        assert run_burst() == 6
    finally:
        jobs_finished.disconnect(dispatch_uid="test_worker_outcomes_batch")
    assert all(batches)
    flat = [(job_id, outcome) for batch in batches for job_id, outcome, _ in batch]
    assert sorted(flat) == sorted(finished)
    assert len(flat) == len({job_id for job_id, _ in flat}) == 6
    assert all(duration >= 0 for batch in batches for _, _, duration in batch)
