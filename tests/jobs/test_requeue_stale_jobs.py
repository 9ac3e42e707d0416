"""manage.py requeue_stale_jobs."""

import io

import pytest
from django.core.management import call_command

from jobs.models import Job, JobStatus
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def run(command, *args) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def stale_jobs(acme):
    """One running job past its timeout, one with an expired lease and attempts left, one
    with an expired lease and none left, one with an expired lease and a cancellation
    request, and a healthy one."""
    return {
        "timed_out": JobFactory(tenant=acme, created_by=None, timed_out=True),
        "requeue": JobFactory(tenant=acme, created_by=None, expired_lease=True),
        "lost": JobFactory(
            tenant=acme, created_by=None, expired_lease=True, attempts=3, max_attempts=3
        ),
        "cancelled": JobFactory(
            tenant=acme, created_by=None, expired_lease=True, cancel_requested=True
        ),
        "healthy": JobFactory(tenant=acme, created_by=None, processing=True),
    }


def test_requeue_stale_jobs_dry_run_reports_and_changes_nothing(stale_jobs):
    output = run("requeue_stale_jobs", "--dry-run")
    assert output.splitlines() == [
        "timed out: 1",
        "requeued: 1",
        "failed (worker lost): 1",
        "cancelled (as requested): 1",
        "Dry run: nothing changed.",
    ]
    assert Job.objects.filter(status=JobStatus.PROCESSING).count() == 5


def test_requeue_stale_jobs_runs_the_reaper(stale_jobs):
    output = run("requeue_stale_jobs")
    assert output.splitlines() == [
        "timed out: 1",
        "requeued: 1",
        "failed (worker lost): 1",
        "cancelled (as requested): 1",
    ]
    for job in stale_jobs.values():
        job.refresh_from_db()
    assert (stale_jobs["timed_out"].status, stale_jobs["timed_out"].error) == (
        JobStatus.FAILED,
        "timed out",
    )
    assert stale_jobs["requeue"].status == JobStatus.PENDING
    assert (stale_jobs["lost"].status, stale_jobs["lost"].error) == (
        JobStatus.FAILED,
        "worker lost",
    )
    assert stale_jobs["cancelled"].status == JobStatus.CANCELLED
    assert stale_jobs["healthy"].status == JobStatus.PROCESSING
    assert run("requeue_stale_jobs", "--dry-run").splitlines()[:4] == [
        "timed out: 0",
        "requeued: 0",
        "failed (worker lost): 0",
        "cancelled (as requested): 0",
    ]
