"""Several real worker processes (``manage.py run_worker``) against the test database:
exactly-once execution under contention, crashes (SIGKILL) and graceful shutdown (SIGTERM).
"""

import signal
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs import services
from jobs.models import Job, JobStatus
from tests.helpers import start_manage
from tests.jobs.test_engine import _flood, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"JOBS_HEARTBEAT_SECONDS": "0.2", "JOBS_POLL_INTERVAL": "0.2"}


def worker(processes, *args, **env):
    process = start_manage("run_worker", *args, **{**FAST, **env})
    processes.append(process)
    return process


def log_of(process) -> str:
    return process.log_path.read_text()


def status_of(job_id) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job_id)


def test_2000_jobs_4_processes_each_runs_exactly_once(acme, globex, executions, processes):
    _flood(acme, 1000)
    _flood(globex, 1000)
    Job.objects.update(type="test.record")
    workers = [worker(processes, "--burst", "--concurrency", "4") for _ in range(4)]
    for process in workers:
        assert process.wait(timeout=240) == 0, log_of(process)

    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 2000
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(DISTINCT job_id), count(DISTINCT pid)"
            " FROM public.test_job_executions"
        )
        executions_total, distinct_jobs, distinct_pids = cursor.fetchone()
    assert (executions_total, distinct_jobs) == (2000, 2000)  # none twice, none missing
    assert distinct_pids > 1  # the work really was shared between processes
    assert not Job.objects.exclude(attempts=1).exists()


def test_sigkilled_worker_job_is_requeued_after_its_lease_and_completes(acme, processes):
    job = services.job_enqueue(tenant=acme, type="test.crash_once", payload={"seconds": 60})
    victim = worker(processes)
    wait_for(lambda: status_of(job.id) == JobStatus.PROCESSING, timeout=30)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)

    # The lease would expire after JOBS_LEASE_SECONDS; expire it now, in SQL.
    assert services.jobs_requeue_stale().requeued == []  # lease still valid: untouched
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.jobs_requeue_stale().requeued == [job.id]
    assert status_of(job.id) == JobStatus.PENDING

    rescuer = worker(processes, "--burst")
    assert rescuer.wait(timeout=60) == 0, log_of(rescuer)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.result) == (JobStatus.COMPLETED, 2, {"attempt": 2})


def test_sigkilled_worker_job_with_no_attempts_left_fails_worker_lost(acme, processes):
    job = services.job_enqueue(tenant=acme, type="test.crash_once", payload={"seconds": 60})
    Job.objects.filter(pk=job.pk).update(max_attempts=1)
    victim = worker(processes)
    wait_for(lambda: status_of(job.id) == JobStatus.PROCESSING, timeout=30)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    # Any live worker's reaper does this on its own (JOBS_REAP_INTERVAL).
    reaper = worker(processes, "--burst", JOBS_REAP_INTERVAL="0")
    wait_for(lambda: status_of(job.id) == JobStatus.FAILED, timeout=30)
    reaper.wait(timeout=30)
    job.refresh_from_db()
    assert job.error == "worker lost"


def test_sigterm_lets_a_running_job_finish_within_the_grace_period(acme, processes):
    job = services.job_enqueue(tenant=acme, type="demo.sleep", payload={"seconds": 1.5})
    process = worker(processes, "--grace", "20")
    wait_for(lambda: status_of(job.id) == JobStatus.PROCESSING, timeout=30)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log_of(process)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


def test_sigterm_hands_back_a_job_that_overruns_the_grace_period(acme, processes):
    job = services.job_enqueue(tenant=acme, type="test.crash_once", payload={"seconds": 60})
    process = worker(processes, "--grace", "1")
    wait_for(lambda: status_of(job.id) == JobStatus.PROCESSING, timeout=30)
    stopped_at = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log_of(process)
    assert time.monotonic() - stopped_at < 20
    job.refresh_from_db()
    assert (job.status, job.attempts, job.worker_id) == (JobStatus.PENDING, 0, "")
    assert "handed back" in log_of(process)


def test_a_new_tenants_job_starts_next_despite_a_flood(acme, globex, executions, processes):
    """With two workers busy on acme's 5,000 jobs, globex's job takes the next free slot."""
    _flood(acme, 5000)
    Job.objects.update(type="test.record", payload={"sleep": 0.2})
    for _ in range(2):
        worker(processes, "--concurrency", "2")
    wait_for(lambda: Job.objects.filter(status=JobStatus.COMPLETED).count() >= 8, timeout=60)
    newcomer = services.job_enqueue(tenant=globex, type="test.record", payload={})
    wait_for(lambda: status_of(newcomer.id) == JobStatus.COMPLETED, timeout=30)
    newcomer.refresh_from_db()
    # acme jobs that started after the newcomer was enqueued and before it started: at
    # most one per slot (4), i.e. it waited about one job duration, not for the flood.
    overtaken = Job.objects.filter(
        tenant=acme, started_at__gt=newcomer.created_at, started_at__lt=newcomer.started_at
    ).count()
    assert overtaken <= 4
    assert Job.objects.filter(tenant=acme, status=JobStatus.PENDING).count() > 4000


def test_per_tenant_cap_holds_across_processes(acme, executions, processes):
    _flood(acme, 12)
    Job.objects.update(type="test.record", payload={"sleep": 0.3})
    workers = [
        worker(processes, "--burst", "--concurrency", "3", JOBS_MAX_RUNNING_PER_TENANT="2")
        for _ in range(2)
    ]
    peak = 0
    while any(process.poll() is None for process in workers):
        peak = max(peak, Job.objects.filter(status=JobStatus.PROCESSING).count())
        time.sleep(0.02)
    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 12
    assert 1 <= peak <= 2
