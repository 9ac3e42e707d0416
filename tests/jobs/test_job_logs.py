"""Per-job logs: what a handler logs while the real worker runs it is kept with its job,
capped, tenant-scoped, shown to the tenant (``GET /api/jobs/{id}/logs``) and to staff (the
job's admin page), and deleted with the job."""

import logging
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.roles import ALL_TENANTS
from core.log_context import capture
from jobs import services
from jobs.models import Job, JobLogLine, JobStatus
from jobs.worker import Worker
from jobs.worker.logs import LogLine, RunLog
from tests.helpers import admin_client_for

pytestmark = pytest.mark.django_db(transaction=True)


def run_burst() -> int:
    return Worker(burst=True, poll_interval=0.1).run()


def submit(client, **payload) -> str:
    response = client.post("/api/jobs", {"type": "test.chatty", "payload": payload}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_the_handlers_lines_are_kept_and_read_by_its_tenant(alice_client):
    job_id = submit(alice_client, lines=3)
    run_burst()

    response = alice_client.get(f"/api/jobs/{job_id}/logs")

    assert response.status_code == 200
    body = response.json()
    # Only the handler's own lines: not the worker's "job completed", nor the request's.
    assert [line["message"] for line in body["lines"]] == [
        "line 1 of attempt 1",
        "line 2 of attempt 1",
        "line 3 of attempt 1",
    ]
    assert {(line["level"], line["logger"], line["attempt"]) for line in body["lines"]} == {
        ("INFO", "tests.chatty", 1)
    }
    assert body["capped"] is False
    assert "RateLimit" in response.headers  # charged like every read


def test_a_job_that_logged_nothing_has_an_empty_log(alice_client):
    job_id = submit(alice_client, lines=0)
    assert alice_client.get(f"/api/jobs/{job_id}/logs").json() == {"lines": [], "capped": False}


def test_the_cap_holds_over_all_attempts(alice_client, settings):
    settings.JOBS_LOG_MAX_LINES = 5
    job_id = submit(alice_client, lines=3, fail_first=True)
    run_burst()
    # The retry waits for its backoff: make it due now.
    Job.objects.filter(id=job_id).update(run_at=timezone.now() - timedelta(seconds=1))
    run_burst()
    assert Job.objects.get(id=job_id).status == JobStatus.COMPLETED

    body = alice_client.get(f"/api/jobs/{job_id}/logs").json()

    assert [line["message"] for line in body["lines"]] == [
        "line 1 of attempt 1",
        "line 2 of attempt 1",
        "line 3 of attempt 1",
        "line 1 of attempt 2",
        "line 2 of attempt 2",
    ]
    assert [line["attempt"] for line in body["lines"]] == [1, 1, 1, 2, 2]
    assert body["capped"] is True


def test_one_run_keeps_at_most_the_cap_and_each_line_is_cut(alice_client, settings):
    settings.JOBS_LOG_MAX_LINES = 4
    settings.JOBS_LOG_LINE_CHARS = 12
    job_id = submit(alice_client, lines=50, message="a long message")
    run_burst()

    lines = list(JobLogLine.objects.filter(job_id=job_id))

    assert [line.message for line in lines] == ["a long messa"] * 4


def test_nul_which_postgresql_text_refuses_is_replaced():
    lines = _record_in_a_run(lambda: logging.getLogger("tests.chatty").info("a\x00b"))
    assert [line.message for line in lines] == ["a\ufffdb"]


def test_a_traceback_is_never_kept():
    """A handler's ``logger.exception`` keeps its message; the traceback stays in the log."""
    lines = _record_in_a_run(lambda: _log_exception("it broke"))
    assert [line.message for line in lines] == ["it broke"]


def _log_exception(message: str) -> None:
    try:
        raise RuntimeError("secret in the traceback")
    except RuntimeError:
        logging.getLogger("tests.chatty").exception(message)


def _record_in_a_run(log):
    """The lines ``log()`` leaves in a RunLog, as the worker captures them (a line logged
    after the capture is not among them)."""
    run_log = RunLog()
    with capture(run_log):
        log()
    logging.getLogger("tests.chatty").info("after the run: not kept")
    return run_log.lines


def test_lines_of_many_runs_are_stored_in_one_statement(acme, django_assert_num_queries):
    jobs = [services.job_enqueue(tenant=acme, type="test.chatty", payload={}) for _ in range(3)]
    line = LogLine(logged_at=timezone.now(), level="INFO", logger="x", message="hello")
    runs = [services.KeptLines(job_id=job.id, attempt=1, lines=[line, line]) for job in jobs]
    missing = services.KeptLines(job_id=uuid.uuid4(), attempt=1, lines=[line])

    with django_assert_num_queries(1):
        stored = services.job_logs_keep(runs=[*runs, missing], max_lines=10)

    assert stored == 6  # the missing job keeps none
    assert {row.tenant_id for row in JobLogLine.objects.all()} == {acme.pk}


def test_the_lines_are_deleted_with_their_job(alice_client, acme):
    job_id = submit(alice_client, lines=2)
    run_burst()
    assert JobLogLine.objects.filter(job_id=job_id).count() == 2
    Job.objects.filter(id=job_id).update(completed_at=timezone.now() - timedelta(days=2))

    deleted = list(
        services.jobs_delete_finished(
            tenant=ALL_TENANTS, statuses=["completed"], cutoff=timezone.now() - timedelta(days=1)
        )
    )

    assert deleted == [{"completed": 1}]
    assert not JobLogLine.objects.filter(job_id=job_id).exists()


def test_the_job_page_shows_its_lines(alice_client, superuser):
    job_id = submit(alice_client, lines=2, message="shown to staff")
    run_burst()

    page = admin_client_for(superuser).get(f"/admin/jobs/job/{job_id}/change/")

    assert page.status_code == 200
    assert "shown to staff 1 of attempt 1" in page.text
    assert "shown to staff 2 of attempt 1" in page.text
