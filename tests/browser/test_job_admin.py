"""Issue 23's job admin in headless Chromium at 1,440 px, as carol (staff of acme) and as
admin (platform staff): the list refreshes itself when jobs change, searches error text,
filters, fits the screen, and the job page leads with status, error and attempts; a bulk
retry of 5,000 jobs matching a filter completes through the UI, run by a real worker
process. Screenshots go to docs/img/ (docs/operations.md shows them)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connection, connections
from playwright.sync_api import expect

from jobs import services
from jobs.models import Job, JobStatus
from tests.browser import chromium_page, docs_screenshot
from tests.browser.test_admin import _failed, _job, log_in, short
from tests.factories import UserFactory
from tests.helpers import start_manage, stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TIMEOUT_MS = 20_000
SCREEN = {"width": 1440, "height": 900}
ROWS = "#result_list tbody tr"


def _fits(page) -> bool:
    """Whether the list's table shows every column without a horizontal scroll."""
    return page.evaluate(
        "() => { const box = document.querySelector('#changelist .results');"
        " return box.scrollWidth <= box.clientWidth; }"
    )


def test_carol_watches_searches_and_filters_acme_jobs(live_server, public_tenant, acme, globex):
    UserFactory(username="carol", tenant=acme, is_staff=True)
    acme_failed = _failed(acme)
    globex_failed = _failed(globex)
    running = _job(acme, JobStatus.PENDING, queue="reports")

    with chromium_page(viewport=SCREEN) as page:
        log_in(page, live_server.url, "carol")
        expect(page.locator(ROWS)).to_have_count(2)
        expect(page.locator("#result_list thead")).not_to_contain_text("Tenant")
        assert _fits(page)

        _outside_the_browser_loop(services.job_cancel, tenant=acme, job_id=running.id)
        row = page.locator(ROWS, has_text=short(running))
        expect(row.locator(".job-status")).to_have_text("Cancelled", timeout=TIMEOUT_MS)
        docs_screenshot(page, "admin-jobs-carol")

        page.fill("#searchbar", "demo failure")
        page.press("#searchbar", "Enter")
        expect(page.locator(f"{ROWS} th a")).to_have_text([short(acme_failed)])
        assert short(globex_failed) not in page.locator("#content").inner_text()
        page.locator("#changelist-filter").get_by_role("link", name="reports").click()
        expect(page.locator(ROWS)).to_have_count(0)
        assert "queue=reports" in page.url

        page.goto(f"{live_server.url}/admin/jobs/job/{acme_failed.pk}/change/")
        first = page.locator("fieldset").first
        expect(first.locator(".job-status")).to_have_text("Failed")
        expect(first.locator(".job-error-text")).to_have_text("demo failure")
        expect(page.locator(".job-traceback pre")).to_have_count(1)
        expect(page.locator("#content")).not_to_contain_text("Worker id")
        docs_screenshot(page, "admin-job-page-carol")
        assert page.console_errors == []


def test_admin_retries_5000_matching_jobs_in_bulk(live_server, public_tenant, acme, globex):
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    _insert_failed(acme, 5000, error="demo failure")
    _insert_failed(globex, 20, error="demo failure")
    _insert_failed(acme, 10, error="other trouble")
    worker = start_manage("run_worker", "--queues", settings.JOBS_PLATFORM_QUEUE)
    try:
        with chromium_page(viewport=SCREEN) as page:
            log_in(page, live_server.url, "admin")
            page.goto(
                f"{live_server.url}/admin/jobs/job/?tenant={acme.pk}&has_error=yes&q=demo+failure"
            )
            expect(page.locator(".paginator")).to_contain_text("5000 jobs")
            assert _fits(page)
            page.check("#action-toggle")
            page.get_by_role("button", name="Select all 5000 jobs").click()
            page.select_option("select[name='action']", "retry_jobs")
            page.get_by_role("button", name="Run").click()
            expect(page.locator("ul.messagelist")).to_contain_text("Started in the background")
            bulk = page.locator("#job-bulk")
            expect(bulk).to_contain_text("5000 matched: 5000 done", timeout=120_000)
            docs_screenshot(page, "admin-bulk-retry")
            assert page.console_errors == []
    finally:
        stop_process(worker)
    assert Job.objects.filter(tenant=acme, status=JobStatus.PENDING).count() == 5000
    assert Job.objects.filter(tenant=acme, status=JobStatus.FAILED).count() == 10
    assert Job.objects.filter(tenant=globex, status=JobStatus.FAILED).count() == 20


def test_admin_list_and_job_page(live_server, public_tenant, acme, globex):
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    for tenant in (acme, globex):
        _failed(tenant)
        _job(tenant, JobStatus.PENDING, queue="reports")
    with chromium_page(viewport=SCREEN) as page:
        log_in(page, live_server.url, "admin")
        expect(page.locator(ROWS)).to_have_count(4)
        expect(page.locator("#result_list thead")).to_contain_text("Tenant")
        expect(page.locator("#changelist-filter")).to_contain_text("By tenant")
        assert _fits(page)
        docs_screenshot(page, "admin-jobs-admin")
        assert page.console_errors == []


def _outside_the_browser_loop(call, **kwargs):
    """``call(**kwargs)`` in a thread of its own (Playwright's sync API runs an event loop in
    this one, where Django refuses database calls), with its own connection."""

    def run():
        try:
            return call(**kwargs)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _insert_failed(tenant, count: int, *, error: str) -> None:
    """``count`` failed jobs of ``tenant`` with ``error``, in one INSERT … SELECT."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO job_queue (
                id, tenant_id, type, status, payload, error, error_traceback, queue,
                priority, run_at, attempts, max_attempts, timeout_seconds, progress_message,
                worker_id, cancel_requested, idempotency_key, request_fingerprint,
                created_at, started_at, updated_at, completed_at)
            SELECT gen_random_uuid(), %s, 'demo.fail', 'failed', '{}', %s, '', 'default', 0,
                   now(), 1, 1, 600, '', '', false, '', '', now() - make_interval(secs => g),
                   now(), now(), now()
            FROM generate_series(1, %s) AS g
            """,
            [tenant.pk, error, count],
        )
