"""``manage.py jobs``: show, list, retry, cancel and enqueue, on real jobs (a burst worker
runs them where an outcome matters), through jobs.services and jobs.selectors; bad input
is a CommandError and changes nothing."""

import json
import re
from datetime import UTC, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs import services
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.factories import JobFactory


def run(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out)
    return out.getvalue()


def rows(text: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line) for line in text.splitlines()]


def utc_text(moment) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def enqueued(out: str) -> Job:
    return Job.objects.get(id=re.match(r"enqueued (\S+):", out).group(1))


# --- show, with a real worker's attempts -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_show_prints_the_fields_and_the_attempts_and_the_traceback_only_when_asked(acme):
    job = enqueued(
        run("enqueue", "--tenant", "acme", "--type", "demo.fail", "--payload", '{"n": 1}')
    )
    Worker(burst=True, poll_interval=0.05).run()
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED

    shown = run("show", str(job.id))

    head, attempts_table = shown.rstrip("\n").split("\n\n")
    fields = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in head.splitlines())
    assert fields["id"] == str(job.id)
    assert fields["tenant"] == "acme"
    assert fields["type"] == "demo.fail"
    assert fields["status"] == "failed"
    assert fields["attempts"] == "1/1"
    assert fields["error"] == "demo failure"
    assert fields["payload"] == '{"n": 1}'
    assert fields["result"] == "-"
    assert fields["completed (UTC)"] == utc_text(job.completed_at)
    attempts = rows(attempts_table)
    assert attempts[0] == [
        "attempt", "worker", "started (UTC)", "finished (UTC)", "outcome", "error",
    ]  # fmt: skip
    assert (attempts[1][0], attempts[1][4], attempts[1][5]) == ("1", "failed", "demo failure")
    assert "Traceback" not in shown
    assert "None" not in shown

    traced = run("show", str(job.id), "--traceback")
    assert traced.startswith(shown.rstrip("\n"))
    assert traced.count("Traceback (most recent call last)") == 1  # one traceback
    assert "demo failure" in traced.split("\n\n")[-1]


@pytest.mark.django_db
def test_show_of_a_job_never_run_and_of_none(acme):
    job = JobFactory(tenant=acme, pending=True)
    shown = run("show", str(job.id), "--traceback")
    assert shown.endswith("\n\nno attempts\n\nno traceback\n")
    with pytest.raises(CommandError, match="no job 00000000-0000-0000-0000-000000000000"):
        run("show", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(CommandError, match="'abc' is not a job id"):
        run("show", "abc")


# --- list -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_empty_list_says_so(acme):
    assert run("list") == "no jobs\n"
    JobFactory(tenant=acme, failed=True)
    assert run("list", "--status", "pending") == "no jobs\n"


@pytest.mark.django_db
def test_list_has_a_header_and_filters_by_tenant_status_type_and_queue(acme, globex):
    failed = JobFactory(tenant=acme, failed=True, queue="reports")
    JobFactory(tenant=acme, pending=True)
    JobFactory(tenant=globex, failed=True)
    JobFactory(tenant=acme, failed=True, type="demo.fail")

    listed = rows(
        run("list", "--tenant", "acme", "--status", "failed,cancelled", "--type", "demo.echo")
    )

    assert listed[0] == [
        "id", "tenant", "type", "status", "queue", "priority", "attempts",
        "created (UTC)", "run at (UTC)", "error",
    ]  # fmt: skip
    assert listed[1:] == [
        [
            str(failed.id), "acme", "demo.echo", "failed", "reports", "0", "1/1",
            utc_text(failed.created_at),
            utc_text(failed.run_at),
            "demo failure",
        ]
    ]  # fmt: skip
    assert len(rows(run("list", "--queue", "reports"))) == 2
    assert len(rows(run("list"))) == 5  # every tenant's, header included


@pytest.mark.django_db
def test_list_shows_the_newest_up_to_the_limit_and_says_so(acme):
    jobs = [JobFactory(tenant=acme, pending=True) for _ in range(3)]
    for minutes, job in enumerate(jobs):
        Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=minutes))
    lines = run("list", "--limit", "2").splitlines()
    assert [line.split()[0] for line in lines[1:3]] == [str(jobs[0].id), str(jobs[1].id)]
    assert lines[3] == "(the newest 2 shown; --limit for more)"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "done"], "unknown status done"),
        (["--tenant", "nope"], "no customer tenant with schema 'nope'"),
        (["--limit", "0"], "--limit must be 1 or more"),
    ],
)
def test_bad_list_filters_are_refused(acme, args, message):
    with pytest.raises(CommandError, match=message):
        run("list", *args)


# --- retry and cancel ---------------------------------------------------------------------


@pytest.mark.django_db
def test_retry_and_cancel_one_job(acme):
    failed = JobFactory(tenant=acme, failed=True)
    assert run("retry", str(failed.id)) == f"{failed.id} retried\n"
    failed.refresh_from_db()
    assert (failed.status, failed.attempts, failed.error) == (JobStatus.PENDING, 0, "")

    assert run("cancel", str(failed.id)) == f"{failed.id} cancelled\n"
    running = JobFactory(tenant=acme, processing=True)
    assert run("cancel", str(running.id)) == f"{running.id} asked to stop (running)\n"
    running.refresh_from_db()
    assert (running.status, running.cancel_requested) == (JobStatus.PROCESSING, True)

    completed = JobFactory(tenant=acme, completed=True)
    with pytest.raises(CommandError, match="A completed job cannot be retried"):
        run("retry", str(completed.id))
    with pytest.raises(CommandError, match="A completed job cannot be cancelled"):
        run("cancel", str(completed.id))
    completed.refresh_from_db()
    assert completed.status == JobStatus.COMPLETED


@pytest.mark.django_db
def test_an_internal_job_is_reached_as_platform_staff_reach_it(acme):
    internal = JobFactory(tenant=acme, failed=True, type="webhooks.deliver", internal=True)
    assert "webhooks.deliver (internal)" in run("show", str(internal.id))
    assert str(internal.id) in run("list", "--tenant", "acme")
    run("retry", str(internal.id))
    assert Job.objects.get(pk=internal.pk).status == JobStatus.PENDING


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a job id, or --all with filters"),
        (["--tenant", "acme", "00000000-0000-0000-0000-000000000000"], "go with --all"),
        (["--all", "00000000-0000-0000-0000-000000000000"], "not both"),
        (["--all", "--status", "completed"], "applies to failed and cancelled jobs, not completed"),
    ],
)
def test_bad_retry_arguments_are_refused(acme, args, message):
    JobFactory(tenant=acme, failed=True)
    with pytest.raises(CommandError, match=message):
        run("retry", *args)
    assert Job.objects.get().status == JobStatus.FAILED


@pytest.mark.django_db
def test_more_than_one_job_needs_yes_and_nothing_changes_without_it(acme):
    JobFactory.create_batch(2, tenant=acme, failed=True)
    with pytest.raises(CommandError, match="2 jobs match; add --yes to retry them all"):
        run("retry", "--all")
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.FAILED}
    assert run("retry", "--all", "--status", "cancelled") == "no jobs match\n"


@pytest.mark.django_db
def test_retry_all_walks_every_matching_job_in_batches(acme, globex, monkeypatch):
    """More jobs than a batch: every matching job is retried once, with progress lines, and
    jobs outside the filters are left alone."""
    monkeypatch.setattr("jobs.management.commands.jobs.BATCH_SIZE", 4)
    failed = JobFactory.create_batch(9, tenant=acme, failed=True)
    cancelled = JobFactory.create_batch(2, tenant=acme, cancelled=True)
    theirs = JobFactory(tenant=globex, failed=True)
    other_type = JobFactory(tenant=acme, failed=True, type="demo.fail")

    out = run("retry", "--all", "--tenant", "acme", "--type", "demo.echo", "--yes")

    assert out.splitlines() == [
        "retry: 4 of 11",
        "retry: 8 of 11",
        "retry: 11 of 11",
        "11 jobs matched: 11 retried",
    ]
    retried = Job.objects.filter(pk__in=[job.pk for job in failed + cancelled])
    assert set(retried.values_list("status", flat=True)) == {JobStatus.PENDING}
    for job in (theirs, other_type):
        assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


@pytest.mark.django_db
def test_cancel_all_counts_what_became_of_each_job(acme):
    JobFactory.create_batch(2, tenant=acme, pending=True)
    JobFactory(tenant=acme, processing=True)
    done = JobFactory(tenant=acme, completed=True)
    assert run("cancel", "--all", "--yes") == (
        "3 jobs matched: 1 asked to stop (running), 2 cancelled\n"
    )
    assert Job.objects.get(pk=done.pk).status == JobStatus.COMPLETED
    assert Job.objects.filter(status=JobStatus.CANCELLED).count() == 2


@pytest.mark.django_db
def test_a_job_that_changes_during_a_bulk_action_is_skipped(acme, monkeypatch):
    first, second = JobFactory.create_batch(2, tenant=acme, failed=True)
    retry = services.job_retry

    def racing_retry(*, tenant, job_id):
        # Another operator retries the other job first.
        other = second if job_id == first.id else first
        if Job.objects.get(pk=other.pk).status == JobStatus.FAILED:
            retry(tenant=tenant, job_id=other.id)
        return retry(tenant=tenant, job_id=job_id)

    monkeypatch.setattr(services, "job_retry", racing_retry)
    out = run("retry", "--all", "--yes")
    assert out == "2 jobs matched: 1 retried, 1 skipped (changed meanwhile)\n"


# --- enqueue ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_enqueue_stores_a_pending_job_as_the_api_would(acme):
    paris = timezone.now().replace(microsecond=0).astimezone(ZoneInfo("Europe/Paris"))
    run_at = paris + timedelta(days=10)
    out = run(
        "enqueue", "--tenant", "acme", "--type", "demo.sleep", "--payload", '{"seconds": 2}',
        "--queue", "reports", "--priority", "5", "--run-at", run_at.isoformat(),
    )  # fmt: skip
    job = enqueued(out)
    assert (job.tenant, job.type, job.status) == (acme, "demo.sleep", JobStatus.PENDING)
    assert job.payload == {"seconds": 2}  # checked by the type's serializer
    assert (job.queue, job.priority, job.created_by) == ("reports", 5, None)
    assert job.run_at == run_at
    assert out == (
        f"enqueued {job.id}: demo.sleep for acme in queue reports, run at {utc_text(run_at)} UTC\n"
    )

    default = enqueued(run("enqueue", "--tenant", "acme", "--type", "demo.echo"))
    assert (default.queue, default.payload, default.priority) == ("default", {}, 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "no.such"], "type: Unknown job type 'no.such'. Registered types: "),
        (["--type", "webhooks.deliver"], "type: Unknown job type 'webhooks.deliver'"),
        (["--payload", "{nope"], "payload: not JSON"),
        (["--payload", "[1]"], 'payload: invalid: ["Must be a JSON object."]'),
        (["--type", "demo.sleep", "--payload", '{"seconds": 99}'], '"seconds"'),
        (["--priority", "101"], "priority: must be between -100 and 100"),
        (["--queue", "a,b"], "queue: 1 to 64 characters"),
        (["--run-at", "tomorrow"], "run_at: 'tomorrow' is not an ISO 8601 time"),
        (["--run-at", "2030-01-01T10:00"], "run_at: needs a UTC offset"),
        (["--run-at", "2999-01-01T10:00Z"], "run_at: at most 90 days from now"),
    ],
)
def test_bad_enqueue_input_is_refused_and_nothing_stored(acme, args, message):
    if "--type" not in args:
        args = ["--type", "demo.echo", *args]
    with pytest.raises(CommandError, match="not stored") as refused:
        run("enqueue", "--tenant", "acme", *args)
    assert message in str(refused.value)
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_enqueue_names_every_problem_at_once(acme):
    with pytest.raises(CommandError) as refused:
        run("enqueue", "--tenant", "acme", "--type", "no.such", "--priority", "-101")
    assert "type: Unknown job type" in str(refused.value)
    assert "priority: must be between" in str(refused.value)
    with pytest.raises(CommandError, match="no customer tenant with schema 'public'"):
        run("enqueue", "--tenant", "public", "--type", "demo.echo")
    assert json.loads(json.dumps(list(Job.objects.all()), default=str)) == []
