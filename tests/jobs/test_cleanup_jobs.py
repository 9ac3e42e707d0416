"""manage.py cleanup_jobs: what it deletes, what it never deletes, and how (batches)."""

import io
import time
from datetime import timedelta

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from accounts.roles import ALL_TENANTS
from jobs import selectors, services
from jobs.management.commands._durations import parse_age
from jobs.models import FINAL_STATUSES, Job, JobStatus
from tests.factories import JobFactory
from tests.helpers import insert_finished_jobs, start_manage


def _aged(tenant, state=JobStatus.COMPLETED, *, age: timedelta):
    """A job in ``state`` (a factory trait) created and completed ``age`` ago. Pending and
    processing jobs get a completed_at too, so they look ancient even by it (a retried job
    keeps no completed_at, but the guard must not depend on that)."""
    moment = timezone.now() - age
    return JobFactory(
        tenant=tenant, created_by=None, **{state: True}, completed_at=moment, created_at=moment
    )


def cleanup(*args) -> str:
    out = io.StringIO()
    call_command("cleanup_jobs", *args, stdout=out, stderr=out)
    return out.getvalue()


def remaining(*jobs) -> set:
    return set(Job.objects.filter(pk__in=[job.pk for job in jobs]).values_list("pk", flat=True))


OLD = timedelta(days=40)


@pytest.mark.django_db
def test_deletes_old_finished_jobs_and_keeps_unfinished_and_recent(acme):
    old = [_aged(acme, status, age=OLD) for status in sorted(FINAL_STATUSES)]
    pending = _aged(acme, JobStatus.PENDING, age=OLD)
    processing = _aged(acme, JobStatus.PROCESSING, age=OLD)
    recent = _aged(acme, age=timedelta(days=29))
    output = cleanup("--older-than", "30d")
    assert remaining(*old, pending, processing, recent) == {pending.pk, processing.pk, recent.pk}
    assert "completed: 1\nfailed: 1\ncancelled: 1\n" in output
    assert "Deleted 3 job(s)" in output


@pytest.mark.django_db
def test_never_deletes_pending_or_processing_even_when_asked(acme):
    pending = _aged(acme, JobStatus.PENDING, age=OLD)
    processing = _aged(acme, JobStatus.PROCESSING, age=OLD)
    completed = _aged(acme, age=OLD)
    failed = _aged(acme, JobStatus.FAILED, age=OLD)
    output = cleanup("--older-than", "1d", "--status", "pending,processing,completed")
    assert remaining(pending, processing, completed, failed) == {
        pending.pk,
        processing.pk,
        failed.pk,
    }
    assert "Ignoring pending, processing: pending and processing jobs are never deleted." in output
    assert "completed: 1\n" in output
    assert "failed:" not in output


@pytest.mark.django_db
def test_only_unfinished_statuses_asked_deletes_nothing(acme):
    pending = _aged(acme, JobStatus.PENDING, age=OLD)
    output = cleanup("--older-than", "1d", "--status", "pending")
    assert remaining(pending) == {pending.pk}
    assert "Deleted 0 job(s)" in output


@pytest.mark.django_db
def test_unknown_status_is_an_error(acme):
    with pytest.raises(CommandError, match="unknown status: complete"):
        cleanup("--status", "complete")


@pytest.mark.django_db
def test_tenant_option_limits_to_that_tenant(acme, globex):
    acme_job = _aged(acme, age=OLD)
    globex_job = _aged(globex, age=OLD)
    cleanup("--older-than", "30d", "--tenant", "globex")
    assert remaining(acme_job, globex_job) == {acme_job.pk}
    with pytest.raises(CommandError, match="no tenant with schema 'nosuch'"):
        cleanup("--tenant", "nosuch")


@pytest.mark.django_db
def test_dry_run_counts_and_deletes_nothing(acme):
    jobs = [_aged(acme, age=OLD), _aged(acme, JobStatus.FAILED, age=OLD)]
    output = cleanup("--older-than", "30d", "--dry-run")
    assert remaining(*jobs) == {job.pk for job in jobs}
    assert "completed: 1\nfailed: 1\ncancelled: 0\n" in output
    assert "Would delete 2 job(s)" in output


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("older_than", "deleted"), [("3h", False), ("90m", True), ("1d", False), ("1h", True)]
)
def test_older_than_units(acme, older_than, deleted):
    job = _aged(acme, age=timedelta(hours=2))
    cleanup("--older-than", older_than)
    assert remaining(job) == (set() if deleted else {job.pk})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        ("0s", timedelta(0)),
        (" 7 d ", timedelta(days=7)),
    ],
)
def test_durations_in_days_hours_minutes_or_seconds(value, expected):
    assert parse_age(value) == expected


@pytest.mark.parametrize("value", ["30", "d", "-1d", "1.5h", "1w", "10S", ""])
def test_durations_other_than_whole_days_hours_minutes_seconds_are_refused(value):
    with pytest.raises(ValueError, match="not a duration"):
        parse_age(value)


@pytest.mark.django_db
def test_older_than_0s_deletes_every_finished_job(acme):
    finished = _aged(acme, age=timedelta(seconds=1))
    pending = _aged(acme, JobStatus.PENDING, age=timedelta(seconds=1))
    assert "Deleted 1 job(s)" in cleanup("--older-than", "0s")
    assert remaining(finished, pending) == {pending.pk}


@pytest.mark.django_db
def test_default_age_comes_from_jobs_retention(acme, settings):
    settings.JOBS_RETENTION = "2d"
    old = _aged(acme, age=timedelta(days=3))
    young = _aged(acme, age=timedelta(days=1))
    cleanup()
    assert remaining(old, young) == {young.pk}


@pytest.mark.django_db
@pytest.mark.parametrize(("retention", "error"), [("23h", "at least 24h"), ("soon", "JOBS_")])
def test_jobs_retention_must_be_a_duration_of_at_least_a_day(acme, settings, retention, error):
    settings.JOBS_RETENTION = retention
    job = _aged(acme, age=timedelta(days=3))
    with pytest.raises(CommandError, match=error):
        cleanup()
    assert remaining(job) == {job.pk}


@pytest.mark.django_db
def test_a_long_delete_reports_progress_at_the_default_verbosity(acme):
    for _ in range(3):
        _aged(acme, age=OLD)
    output = cleanup("--older-than", "0s", "--batch-size", "1")
    assert output.startswith("batch 1: deleted 1 (1 so far)\n")  # at once, then every 5 s
    assert "Deleted 3 job(s)" in output
    assert "in 3 batch(es)" in output


@pytest.mark.django_db
def test_deletes_in_batches_of_the_given_size(acme):
    for _ in range(5):
        _aged(acme, age=OLD)
    output = cleanup("--older-than", "30d", "--batch-size", "2", "-v", "2")
    assert (
        "batch 1: deleted 2 (2 so far)\nbatch 2: deleted 2 (4 so far)\n"
        "batch 3: deleted 1 (5 so far)\n"
    ) in output
    assert "Deleted 5 job(s)" in output
    assert "in 3 batch(es)" in output


def _second_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    return psycopg.connect(**params)


@pytest.mark.django_db(transaction=True)
def test_each_batch_commits_before_the_next_starts(acme):
    insert_finished_jobs(acme, 30, days_old=40)
    batches = services.jobs_delete_finished(
        tenant=ALL_TENANTS,
        statuses=list(FINAL_STATUSES),
        cutoff=selectors.cleanup_cutoff(timedelta(days=30)),
        batch_size=10,
    )
    with _second_connection() as other:
        count = "SELECT count(*) FROM job_queue"
        assert other.execute(count).fetchone()[0] == 30
        assert sum(next(batches).values()) == 10
        other.rollback()  # a fresh snapshot
        assert other.execute(count).fetchone()[0] == 20  # visible to others: committed
        assert sum(sum(batch.values()) for batch in batches) == 20
        other.rollback()
        assert other.execute(count).fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_rows_locked_by_another_transaction_are_skipped_not_waited_for(acme):
    insert_finished_jobs(acme, 5, days_old=40)
    locked_id = Job.objects.values_list("pk", flat=True).first()
    with _second_connection() as other:
        other.execute("SELECT id FROM job_queue WHERE id = %s FOR UPDATE", [locked_id])
        output = cleanup("--older-than", "30d")
        assert "Deleted 4 job(s)" in output
        assert list(Job.objects.values_list("pk", flat=True)) == [locked_id]


class _WorkerCheckpoints(io.StringIO):
    """Command output that, every ``every`` batches, enqueues a job and waits until the
    worker process has completed it: proof that the worker keeps completing jobs while
    the cleanup is under way, with no timing assumption."""

    def __init__(self, tenant, every: int):
        super().__init__()
        self.tenant, self.every, self.jobs = tenant, every, []

    def write(self, text):
        if text.startswith("batch ") and int(text.split()[1].rstrip(":")) % self.every == 0:
            job = services.job_enqueue(tenant=self.tenant, type="demo.echo", payload={})
            self.jobs.append(job.pk)
            _wait_until_completed(job.pk)
        return super().write(text)


def _wait_until_completed(job_id, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not Job.objects.filter(pk=job_id, status=JobStatus.COMPLETED).exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"the worker did not complete {job_id} within {timeout}s")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cleanup_of_100k_finished_jobs_in_batches_while_a_worker_completes_jobs(acme, globex):
    insert_finished_jobs(acme, 60_000, days_old=40)
    insert_finished_jobs(globex, 40_000, days_old=40)
    expected = {
        row["status"]: row["n"] for row in Job.objects.values("status").annotate(n=Count("*"))
    }
    assert sum(expected.values()) == 100_000
    old_pending = _aged(acme, "scheduled", age=OLD)  # not due: never run
    old_processing = _aged(globex, JobStatus.PROCESSING, age=OLD)  # its lease is valid

    worker = start_manage("run_worker", "--concurrency", "2")
    try:
        output = _WorkerCheckpoints(acme, every=10)
        call_command(
            "cleanup_jobs", "--older-than", "30d", "--batch-size", "1000", "-v", "2", stdout=output
        )
    finally:
        worker.terminate()
        worker.communicate(timeout=60)

    text = output.getvalue()
    assert "in 100 batch(es)" in text
    assert text.count(": deleted 1000 (") == 100
    for status, count in expected.items():
        assert f"{status}: {count}\n" in text
    assert len(output.jobs) == 10
    survivors = set(Job.objects.values_list("pk", flat=True))
    assert survivors == {*output.jobs, old_pending.pk, old_processing.pk}
    assert Job.objects.filter(pk__in=output.jobs, status=JobStatus.COMPLETED).count() == 10
