"""A run's hard deadline and a claimed job's start patience, with the real worker loop:
a stuck handler never keeps its slot, and a job claimed behind one goes to another worker."""

import threading

import pytest
from django.db import OperationalError, transaction

from jobs import backends, services
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.faults.servers import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _start(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def _status(job: Job) -> str:
    job.refresh_from_db()
    return job.status


def test_a_run_past_its_timeout_frees_its_thread_for_the_next_job(acme, settings):
    """test.block times out after 2 s: its job fails "timed out", the next job runs in the
    pool of one thread at once, and the stuck thread is counted until its handler ends."""
    settings.JOBS_HEARTBEAT_SECONDS = 0.2
    stuck = services.job_enqueue(tenant=acme, type="test.block", payload={"seconds": 6})
    worker = Worker(concurrency=1, poll_interval=0.1, platform_concurrency=0)
    thread = _start(worker)
    try:
        wait_until(lambda: _status(stuck) == JobStatus.PROCESSING, timeout=10, what="start")
        after = services.job_enqueue(tenant=acme, type="demo.echo", payload={"n": 1})
        wait_until(lambda: _status(after) == JobStatus.COMPLETED, timeout=4, what="next job")
        stuck.refresh_from_db()
        assert (stuck.status, stuck.error) == (JobStatus.FAILED, "timed out")
        assert worker.abandoned_threads == 1
        # The handler ends at last: its late result changes nothing, its thread goes away.
        wait_until(lambda: worker.abandoned_threads == 0, timeout=10, what="thread to end")
        stuck.refresh_from_db()
        assert (stuck.status, stuck.result) == (JobStatus.FAILED, None)
    finally:
        worker.request_stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_job_claimed_behind_a_long_run_is_handed_back_to_another_worker(acme, settings):
    """Short jobs make the worker claim ahead; a long one then holds its only thread, and
    the job claimed with it waits JOBS_START_PATIENCE, goes back to pending (no attempt
    spent) and runs on the other worker."""
    settings.JOBS_HEARTBEAT_SECONDS = 0.2
    settings.JOBS_START_PATIENCE = 0.5
    first = Worker(worker_id="first", concurrency=1, poll_interval=0.1, platform_concurrency=0)
    thread = _start(first)
    second = None
    try:
        warm = [services.job_enqueue(tenant=acme, type="demo.echo", payload={}) for _ in range(5)]
        wait_until(
            lambda: all(_status(job) == JobStatus.COMPLETED for job in warm),
            timeout=10,
            what="short jobs",
        )
        assert first.pools[0].recent_duration < 0.05
        # Two jobs in one claim (one transaction, the long one first): the long one starts,
        # the other waits behind it.
        with transaction.atomic():
            long = services.job_enqueue(
                tenant=acme, type="test.block", payload={"seconds": 4}, priority=10
            )
            waiting = services.job_enqueue(tenant=acme, type="demo.echo", payload={"n": 2})
        both = Job.objects.filter(id__in=[long.id, waiting.id], worker_id="first")
        wait_until(lambda: both.count() == 2, timeout=10, what="both claimed by the first")
        second = Worker(
            worker_id="second", concurrency=1, poll_interval=0.1, platform_concurrency=0
        )
        second_thread = _start(second)
        wait_until(lambda: _status(waiting) == JobStatus.COMPLETED, timeout=3, what="hand-back")
        waiting.refresh_from_db()
        assert (waiting.attempts, waiting.worker_id) == (1, "second")
    finally:
        first.request_stop()
        if second is not None:
            second.request_stop()
            second_thread.join(timeout=30)
        thread.join(timeout=30)


def test_a_job_whose_start_finds_the_database_gone_is_handed_back(acme, settings, monkeypatch):
    """Reading a run's attempts as it starts (for task_started) fails once, as on a closed
    connection: the job goes back to pending with no attempt spent, the runner lives on,
    and the job and the next one run."""
    settings.JOBS_HEARTBEAT_SECONDS = 0.2
    read = backends.running_result
    failed = []

    def gone_once(job, **kwargs):
        if not failed:
            failed.append(job.id)
            raise OperationalError("the connection is closed")
        return read(job, **kwargs)

    monkeypatch.setattr(backends, "running_result", gone_once)
    job = services.job_enqueue(tenant=acme, type="demo.echo", payload={"n": 1})
    worker = Worker(concurrency=1, poll_interval=0.1, platform_concurrency=0)
    thread = _start(worker)
    try:
        wait_until(lambda: _status(job) == JobStatus.COMPLETED, timeout=10, what="the job")
        after = services.job_enqueue(tenant=acme, type="demo.echo", payload={"n": 2})
        wait_until(lambda: _status(after) == JobStatus.COMPLETED, timeout=10, what="next job")
    finally:
        worker.request_stop()
        thread.join(timeout=30)
    job.refresh_from_db()
    assert failed == [job.id]
    assert job.attempts == 1  # the handed-back start spent no attempt
    assert not thread.is_alive()
