"""Flow control held by several real worker processes (``manage.py run_worker``) on the
test database: a global rate, per-tenant and per-plan concurrency sampled under a flood,
throttled and snoozed jobs starting as soon as they may, pauses. Times are PostgreSQL's
(attempts' ``started_at``, jobs' ``completed_at``), never the test's clock.
"""

import time
from collections import Counter

import pytest
from django.db import connection

from jobs import services
from jobs.flow.models import Pause
from jobs.flow.services import override_set
from jobs.models import Job, JobAttempt, JobStatus
from tests.jobs.test_engine import wait_for
from tests.jobs.test_processes import log_of, worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def submit(tenant, type_, count=1, **payload):
    return services.jobs_enqueue_batch(
        tenant=tenant, items=[{"type": type_, "payload": dict(payload)}] * count
    )[0]


def finished(type_) -> int:
    return Job.objects.filter(type=type_, status=JobStatus.COMPLETED).count()


def test_a_global_rate_holds_within_ten_percent_over_30_s_with_two_processes(
    acme, globex, executions, processes
):
    # test.rate: 10/s, burst 3, global; two tenants, two processes of four threads.
    submit(acme, "test.rated", 250)
    submit(globex, "test.rated", 250)
    for _ in range(2):
        worker(processes, "--concurrency", "4")
    wait_for(lambda: finished("test.rated") >= 340, timeout=60)
    starts = sorted(
        JobAttempt.objects.filter(job__type="test.rated").values_list("started_at", flat=True)
    )
    first = starts[0]
    window = [s for s in starts if 1 <= (s - first).total_seconds() < 31]
    assert 270 <= len(window) <= 330, len(window)  # 10/s over 30 s, within 10%
    pids = set(
        Job.objects.filter(type="test.rated", result__isnull=False).values_list(
            "result__pid", flat=True
        )
    )
    assert len(pids) == 2  # both processes started jobs: the limit is held across them


def test_tenant_plan_and_unit_limits_are_never_exceeded_under_a_flood(
    acme, globex, executions, processes
):
    acme.plan = "pro"  # test.plan_slots: 3 for pro, 1 for free (globex)
    acme.save(update_fields=["plan"])
    # test.slots: 2 per tenant, but staff gave globex 3.
    override_set(tenant=globex, limit="test.slots", figures={"concurrency": 3}, actor="staff")
    for tenant in (acme, globex):
        submit(tenant, "test.slotted", 20, sleep=0.3)
        submit(tenant, "test.planned", 20, sleep=0.3)
        submit(tenant, "test.weighted", 5, sleep=0.3, size=4)  # test.units: 10, global
    for _ in range(2):
        worker(processes, "--concurrency", "8")
    most = Counter()  # the most units running at once, per (tenant, type) and per type
    deadline = time.monotonic() + 90
    with connection.cursor() as cursor:
        while Job.objects.exclude(status=JobStatus.COMPLETED).exists():
            assert time.monotonic() < deadline, [log_of(p)[-2000:] for p in processes]
            cursor.execute(
                "SELECT tenant_id, type, sum(limit_units[1]) FROM job_queue"
                " WHERE status = 'processing' GROUP BY tenant_id, type"
            )
            per_type = Counter()
            for tenant_id, type_, units in cursor.fetchall():
                most[(tenant_id, type_)] = max(most[(tenant_id, type_)], units)
                per_type[type_] += units
            for type_, units in per_type.items():
                most[type_] = max(most[type_], units)
            time.sleep(0.05)
    assert most[(acme.pk, "test.slotted")] == 2
    assert most[(globex.pk, "test.slotted")] == 3  # the override applies
    assert most[(acme.pk, "test.planned")] == 3
    assert most[(globex.pk, "test.planned")] == 1
    assert most["test.weighted"] == 8  # two jobs of 4 units: a third would make 12 > 10
    assert not Job.objects.exclude(attempts=1).exists()  # waiting spent no attempt


def _gap(earlier_end, later_job) -> float:
    started = JobAttempt.objects.get(job=later_job, number=1).started_at
    return (started - earlier_end).total_seconds()


def test_a_throttled_job_starts_within_a_second_of_its_unit_freeing(acme, executions, processes):
    # test.one: global concurrency 1. The poll interval is 10 s, so only the wake-up sent
    # when the first job's unit frees can start the second within a second.
    first = submit(acme, "test.single", 1, sleep=1.5)[0]
    worker(processes, "--concurrency", "2", JOBS_POLL_INTERVAL="10")
    wait_for(lambda: Job.objects.get(pk=first.pk).status == JobStatus.PROCESSING, timeout=30)
    second = submit(acme, "test.single", 1)[0]
    wait_for(lambda: finished("test.single") == 2, timeout=30)
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.attempts == 1
    assert 0 <= _gap(first.completed_at, second) < 1.0


def test_a_snoozed_job_spends_no_attempt_and_runs_when_due(acme, executions, processes):
    (job,) = submit(acme, "test.snoozy", 1, seconds=1, times=2)
    worker(processes, JOBS_POLL_INTERVAL="0.5")
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED, timeout=30)
    job.refresh_from_db()
    assert (job.attempts, job.snoozes) == (1, 2)
    history = list(JobAttempt.objects.filter(job=job).values_list("outcome", "error"))
    assert history == [
        ("snoozed", "snoozed for 1 s"),
        ("snoozed", "snoozed for 1 s"),
        ("completed", ""),
    ]


def test_a_job_snoozing_past_the_bound_spends_attempts_and_fails(acme, processes):
    (job,) = submit(acme, "test.snoozy", 1, seconds=0, times=1000)
    worker(processes, JOBS_MAX_SNOOZES="3", JOBS_POLL_INTERVAL="0.2", JOBS_BACKOFF_BASE="0.1")
    wait_for(lambda: Job.objects.get(pk=job.pk).status == JobStatus.FAILED, timeout=30)
    job.refresh_from_db()
    assert (job.snoozes, job.attempts, job.error) == (3, 2, "snoozed more than 3 times")


def test_nothing_paused_starts_and_resume_restarts_within_a_second(acme, executions, processes):
    Pause.objects.create(scope="type", target="test.record", paused_by="test")
    worker(processes, JOBS_POLL_INTERVAL="10")
    paused = submit(acme, "test.record", 3)
    other = submit(acme, "demo.echo", 1)[0]
    wait_for(lambda: Job.objects.get(pk=other.pk).status == JobStatus.COMPLETED, timeout=30)
    time.sleep(1.0)  # a claim round after the other job: still nothing of the paused type
    assert (
        not Job.objects.filter(pk__in=[j.pk for j in paused])
        .exclude(status=JobStatus.PENDING)
        .exists()
    )
    with connection.cursor() as cursor:
        Pause.objects.filter(target="test.record").delete()
        cursor.execute("SELECT pg_notify('job_queue', '*'), clock_timestamp()")
        resumed_at = cursor.fetchone()[1]
    wait_for(lambda: finished("test.record") == 3, timeout=30)
    first_start = JobAttempt.objects.filter(job__in=paused).order_by("started_at").first()
    assert (first_start.started_at - resumed_at).total_seconds() < 1.0


def test_a_burst_worker_waits_for_rate_limited_jobs_before_it_ends(acme, executions, processes):
    submit(acme, "test.bursty", 5)  # 60/m, burst 2: two at once, then one a second
    burst = worker(processes, "--burst", "--concurrency", "4")
    assert burst.wait(timeout=60) == 0, log_of(burst)
    assert finished("test.bursty") == 5


def test_a_low_priority_job_ages_ahead_of_newer_high_priority_ones(acme, executions, processes):
    # One step a second: the priority-97 job counts as 100 after 3 s and then goes before
    # every priority-100 job submitted after it, instead of after all of them.
    (old,) = [
        services.job_enqueue(tenant=acme, type="test.record", payload={"sleep": 0.5}, priority=97)
    ]
    newer = [
        services.job_enqueue(tenant=acme, type="test.record", payload={"sleep": 0.5}, priority=100)
        for _ in range(20)
    ]
    worker(processes, "--concurrency", "1", JOBS_PRIORITY_AGEING_SECONDS="1")
    wait_for(lambda: finished("test.record") == 21, timeout=60)
    order = list(
        JobAttempt.objects.filter(job__type="test.record")
        .order_by("started_at")
        .values_list("job_id", flat=True)
    )
    position = order.index(old.id)
    assert 0 < position < len(newer)  # behind the first newer ones, but not starved
