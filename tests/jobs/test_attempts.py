"""Attempt history: every run of a job is kept (JobAttempt: number, worker, start, end,
outcome, client-safe error, staff-only traceback), written by the worker's outcome writer
and by the reaper, shown in the admin's job page, pruned with its job; a job waiting for
its retry shows ``last_error`` and ``next_attempt_at`` in the API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import services
from jobs.api.serializers import JobOutputSerializer
from jobs.models import Job, JobAttempt
from tests.factories import UserFactory
from tests.helpers import admin_client_for
from tests.jobs.test_engine import enqueue, make_runnable, run_burst

pytestmark = pytest.mark.django_db(transaction=True)


def attempts_of(job) -> list[JobAttempt]:
    return list(JobAttempt.objects.filter(job=job).order_by("number"))


def test_each_attempt_is_kept_and_a_waiting_retry_shows_its_error_and_time(acme, alice_client):
    job = enqueue(acme, "test.flaky", {"fail_times": 1})
    run_burst(worker_id="w-first")
    (first,) = attempts_of(job)
    assert (first.number, first.worker_id, first.outcome) == (1, "w-first", "retrying")
    assert first.error == "internal error"
    assert "flaky attempt 1" in first.traceback  # for staff only
    assert first.started_at <= first.finished_at

    job.refresh_from_db()
    body = alice_client.get(f"/api/jobs/{job.id}").json()
    assert body["status"] == "pending"
    assert body["last_error"] == "internal error"
    assert body["next_attempt_at"] == JobOutputSerializer(job).data["next_attempt_at"]
    assert body["next_attempt_at"] == job.run_at.isoformat().replace("+00:00", "Z")
    assert "flaky attempt" not in str(body)

    make_runnable(job)
    run_burst(worker_id="w-second")
    first_again, second = attempts_of(job)
    assert first_again == first
    assert (second.number, second.worker_id, second.outcome, second.error) == (
        2,
        "w-second",
        "completed",
        "",
    )
    body = alice_client.get(f"/api/jobs/{job.id}").json()
    assert body["status"] == "completed"
    assert not {"last_error", "next_attempt_at"} & set(body)


def test_a_new_job_and_a_final_failure_show_no_retry_keys(acme, alice_client):
    fresh = enqueue(acme)
    assert not {"last_error", "next_attempt_at"} & set(
        alice_client.get(f"/api/jobs/{fresh.id}").json()
    )
    failed = enqueue(acme, "demo.fail")
    run_burst()
    body = alice_client.get(f"/api/jobs/{failed.id}").json()
    assert body["status"] == "failed"
    assert not {"last_error", "next_attempt_at"} & set(body)
    (attempt,) = attempts_of(failed)
    assert (attempt.outcome, attempt.error) == ("failed", body["error"])


def test_moving_the_retry_changes_the_etag(acme, alice_client):
    job = enqueue(acme, "test.flaky", {"fail_times": 1})
    run_burst()
    before = alice_client.get(f"/api/jobs/{job.id}")
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now() + timedelta(hours=1))
    after = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200
    assert after.json()["next_attempt_at"] != before.json()["next_attempt_at"]


def _expire_lease(job) -> None:
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_the_reaper_closes_the_attempt_of_a_lost_or_timed_out_run(acme):
    lost = enqueue(acme, "test.record")
    services.job_claim(worker_id="w-dead", queues=["default"])
    (opened,) = attempts_of(lost)
    assert (opened.number, opened.worker_id, opened.outcome, opened.finished_at) == (
        1,
        "w-dead",
        "",
        None,
    )
    _expire_lease(lost)
    services.jobs_requeue_stale()
    (closed,) = attempts_of(lost)
    assert (closed.outcome, closed.error) == ("lost", "worker lost")
    assert closed.finished_at is not None
    services.job_cancel(tenant=acme, job_id=lost.id)  # pending again: out of the way

    slow = enqueue(acme, "test.block")
    services.job_claim(worker_id="w-slow", queues=["default"])
    Job.objects.filter(pk=slow.pk).update(started_at=timezone.now() - timedelta(hours=1))
    services.jobs_requeue_stale()
    ((number, outcome, error),) = JobAttempt.objects.filter(job=slow).values_list(
        "number", "outcome", "error"
    )
    assert (number, outcome, error) == (1, "timed_out", "timed out")
    # The late worker's own write changes nothing the reaper wrote.
    services.job_attempts_close(
        worker_id="w-slow",
        endings=[services.AttemptEnding(job_id=slow.id, number=1, outcome="completed")],
    )
    assert JobAttempt.objects.get(job=slow).outcome == "timed_out"


def test_a_run_handed_back_is_no_attempt(acme):
    job = enqueue(acme, "test.record")
    services.job_claim(worker_id="w-stop", queues=["default"])
    assert services.job_release(job_id=job.id, worker_id="w-stop")
    services.job_attempts_close(
        worker_id="w-stop",
        endings=[services.AttemptEnding(job_id=job.id, number=1, outcome="handed_back")],
    )
    assert attempts_of(job) == []


def test_attempts_are_pruned_with_their_job(acme):
    job = enqueue(acme, "demo.fail")
    run_burst()
    assert len(attempts_of(job)) == 1
    deleted = list(
        services.jobs_delete_finished(
            tenant=acme, statuses=["failed"], cutoff=timezone.now() + timedelta(days=1)
        )
    )
    assert deleted == [{"failed": 1}]
    assert not JobAttempt.objects.filter(job_id=job.id).exists()


def test_the_admin_job_page_shows_the_attempts_with_their_traceback(acme, public_tenant):
    job = enqueue(acme, "test.flaky", {"fail_times": 1})
    run_burst(worker_id="w-admin")
    carol = UserFactory(username="carol", tenant=acme, is_staff=True)
    page = admin_client_for(carol).get(f"/admin/jobs/job/{job.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    for shown in ("w-admin", "retrying", "internal error", "flaky attempt 1"):
        assert shown in html
