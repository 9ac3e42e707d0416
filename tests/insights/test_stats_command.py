"""manage.py jobs_stats: the live queue and the rollup per tenant, never job_queue's
history."""

import io
import json
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import JobStatus
from tests.factories import JobFactory
from tests.insights.helpers import rollup_record

pytestmark = pytest.mark.django_db


def run(command, *args) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def mixed_jobs(acme, globex):
    """Live jobs, finished jobs the workers counted in the rollup at various ages, and
    finished jobs in job_queue that jobs_stats must not count (no rollup row)."""
    JobFactory(tenant=acme, created_by=None)  # pending, due
    JobFactory(tenant=acme, created_by=None, created_at=timezone.now() - timedelta(hours=2))
    JobFactory(tenant=globex, created_by=None, scheduled=True)  # not due
    JobFactory(tenant=globex, created_by=None, processing=True)
    for tenant, outcome, ago in [
        (acme, "completed", timedelta(minutes=10)),
        (acme, "completed", timedelta(hours=3)),
        (acme, "failed", timedelta(minutes=30)),
        (globex, "completed", timedelta(minutes=5)),
        (globex, "completed", timedelta(minutes=80)),
    ]:
        rollup_record(
            tenant_id=tenant.pk,
            queue="default",
            type="demo.echo",
            outcome=outcome,
            wait=1,
            run=1,
            at=timezone.now() - ago,
        )
    for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED):
        JobFactory(tenant=acme, created_by=None, **{status: True}, completed_at=timezone.now())


def test_jobs_stats_json(mixed_jobs):
    stats = json.loads(run("jobs_stats", "--json"))
    assert stats["window_seconds"] == 3600
    acme, globex = stats["tenants"]["acme"], stats["tenants"]["globex"]
    assert (acme["pending"], acme["processing"], acme["completed"], acme["failed"]) == (2, 0, 1, 1)
    assert (globex["pending"], globex["processing"], globex["completed"]) == (1, 1, 1)
    # now() in the command is the test transaction's start, a moment before the fixture's
    # timezone.now(): the two hours can read a fraction of a second short.
    assert 7190 <= acme["oldest_pending_age_seconds"] < 7500
    assert globex["oldest_pending_age_seconds"] is None  # its only pending job isn't due
    totals = stats["totals"]
    assert (totals["pending"], totals["processing"], totals["completed"], totals["failed"]) == (
        3,
        1,
        2,
        1,
    )
    assert totals["oldest_pending_age_seconds"] == acme["oldest_pending_age_seconds"]


def test_jobs_stats_table(mixed_jobs):
    lines = run("jobs_stats").splitlines()
    assert lines[0].split() == [
        "tenant",
        "pending",
        "processing",
        "oldest",
        "pending",
        "completed",
        "1h",
        "failed",
        "1h",
    ]
    # The tenants' table ends at the blank line before flow control's (test_flow_metrics).
    rows = {line.split()[0]: line.split()[1:] for line in lines[1 : lines.index("")]}
    assert rows["acme"][:2] == ["2", "0"]
    assert rows["acme"][3:] == ["1", "1"]
    assert rows["globex"] == ["1", "1", "-", "1", "0"]
    assert rows["TOTAL"][:2] == ["3", "1"]
    assert rows["TOTAL"][3:] == ["2", "1"]


def test_jobs_stats_of_an_empty_queue(db):
    stats = json.loads(run("jobs_stats", "--json"))
    assert stats["tenants"] == {}
    assert stats["totals"]["oldest_pending_age_seconds"] is None
    assert run("jobs_stats").splitlines()[1].split() == ["TOTAL", "0", "0", "-", "0", "0"]


def test_jobs_stats_of_one_tenant_over_a_chosen_window(mixed_jobs):
    stats = json.loads(run("jobs_stats", "--json", "--tenant", "globex", "--window", "90m"))
    assert set(stats["tenants"]) == {"globex"}
    assert stats["window_seconds"] == 5400
    assert stats["tenants"]["globex"]["completed"] == 2
    assert json.loads(run("jobs_stats", "--json", "--window", "4h"))["totals"]["completed"] == 4
    assert run("jobs_stats", "--window", "45s").splitlines()[0].split()[-4:] == [
        "completed",
        "45s",
        "failed",
        "45s",
    ]


def test_jobs_stats_never_reads_job_queue_history(mixed_jobs):
    with CaptureQueriesContext(connection) as queries:
        run("jobs_stats", "--json", "--window", "30d")
    job_queue = [q["sql"] for q in queries if '"job_queue"' in q["sql"]]
    assert len(job_queue) == 1, job_queue
    assert """"job_queue"."status" IN ('pending', 'processing')""" in job_queue[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "nobody"], "no tenant with schema 'nobody'"),
        (["--window", "1 hour"], "--window: '1 hour' is not a duration"),
        (["--window", "0s"], "--window must be longer than 0s"),
    ],
)
def test_jobs_stats_refuses_an_unknown_tenant_or_a_bad_window(db, args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("jobs_stats", *args)
