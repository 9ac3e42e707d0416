"""The job admin in headless Chromium against the live server (public host "localhost"):
the superuser filters, opens a failed job and retries it; carol (staff of acme) sees only
acme's jobs. A screenshot of the job list is kept under artifacts/."""

import pytest
from django.db.models.functions import Now
from playwright.sync_api import expect

from jobs.models import Job, JobStatus
from tests.browser import chromium_page, screenshot
from tests.factories import PASSWORD, JobFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TIMEOUT_MS = 20_000
WIDE = {"width": 1600, "height": 900}  # a staff desktop: every column of the list visible


def _job(tenant, status, **fields):
    job = JobFactory(tenant=tenant, created_by=None)
    Job.objects.filter(pk=job.pk).update(status=status, **fields)
    job.refresh_from_db()
    return job


def _failed(tenant):
    return _job(
        tenant,
        JobStatus.FAILED,
        type="demo.fail",
        attempts=1,
        max_attempts=1,
        error="demo failure",
        error_traceback="Traceback (most recent call last):\nJobError: demo failure",
        started_at=Now(),
        completed_at=Now(),
    )


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/jobs/job/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#result_list")).to_be_visible(timeout=TIMEOUT_MS)


def short(job) -> str:
    return str(job.id)[:8]


def test_staff_filter_open_and_retry_a_job_and_carol_sees_only_acme(
    live_server, public_tenant, acme, globex
):
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    UserFactory(username="carol", tenant=acme, is_staff=True)
    acme_failed = _failed(acme)
    acme_done = _job(acme, JobStatus.COMPLETED, completed_at=Now(), progress=100)
    globex_failed = _failed(globex)
    globex_pending = _job(globex, JobStatus.PENDING)
    rows = "#result_list tbody tr"

    with chromium_page(viewport=WIDE) as page:
        log_in(page, live_server.url, "admin")
        expect(page.locator(rows)).to_have_count(4)
        expect(page.locator("#job-summary")).to_contain_text("oldest pending")
        screenshot(page, "admin-job-list")

        page.locator("#changelist-filter").get_by_role("link", name="Failed").click()
        assert "status=failed" in page.url
        expect(page.locator(f"{rows} th a")).to_have_text(
            [short(globex_failed), short(acme_failed)]  # newest first
        )

        page.get_by_role("link", name=short(acme_failed), exact=True).click()
        expect(page.locator(".job-status")).to_have_text("Failed")
        expect(page.locator(".job-traceback pre")).to_contain_text("JobError: demo failure")
        page.select_option("select[name='CHANGE_FORM-action']", "retry_jobs")
        page.get_by_role("button", name="Run").click()
        expect(page.locator("ul.messagelist")).to_contain_text("1 job(s) retried")
        expect(page.locator(".job-status")).to_have_text("Pending")
        screenshot(page, "admin-job-retried")
        assert page.console_errors == []

    acme_failed.refresh_from_db()
    assert (acme_failed.status, acme_failed.attempts) == (JobStatus.PENDING, 0)

    with chromium_page() as page:
        log_in(page, live_server.url, "carol")
        expect(page.locator(f"{rows} th a")).to_have_text([short(acme_done), short(acme_failed)])
        body = page.locator("#content").inner_text()
        assert short(globex_failed) not in body
        assert short(globex_pending) not in body
        expect(page.locator("#changelist-filter")).not_to_contain_text("By tenant")
        expect(page.locator("#result_list thead")).not_to_contain_text("Tenant")
        screenshot(page, "admin-job-list-carol")
        assert page.console_errors == []
