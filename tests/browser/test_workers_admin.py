"""The Workers page in headless Chromium against the live server, with two real worker
processes: the superuser sees both, their pools and the job one of them runs (a link to the
job's page); carol (staff of acme) is offered no Workers page and is refused its URL. The
screenshot is kept under artifacts/ (workers-admin.png; docs/img/workers-admin.png is a
copy)."""

import pytest
from playwright.sync_api import expect

from jobs import services
from jobs.models import WorkerProcess
from tests.browser import ARTIFACTS, chromium_page
from tests.browser.test_admin import TIMEOUT_MS, WIDE
from tests.browser.test_flow_admin import log_in
from tests.factories import UserFactory
from tests.helpers import start_manage
from tests.jobs.test_engine import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WORKERS = "/admin/jobs/workerprocess/"
FAST = {"JOBS_HEARTBEAT_SECONDS": "0.5", "JOBS_POLL_INTERVAL": "0.5"}


def test_admin_sees_the_live_workers_and_carol_does_not(
    live_server, public_tenant, acme, processes
):
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    UserFactory(username="carol", tenant=acme, is_staff=True)
    for args in (["--concurrency", "4"], ["--queues", "reports:2,default", "--grace", "1"]):
        processes.append(start_manage("run_worker", *args, **FAST))
    wait_for(lambda: WorkerProcess.objects.count() == 2, timeout=30)
    job = services.job_enqueue(tenant=acme, type="test.crash_once", payload={"seconds": 60})
    wait_for(
        lambda: WorkerProcess.objects.filter(running_job_ids__contains=[job.id]).exists(),
        timeout=30,
    )
    holder = WorkerProcess.objects.get(running_job_ids__contains=[job.id])
    workers = list(WorkerProcess.objects.all())  # no ORM under Playwright's event loop

    with chromium_page(viewport=WIDE) as page:
        log_in(page, live_server.url, "admin", WORKERS)
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(2, timeout=TIMEOUT_MS)
        expect(page.get_by_role("heading", name="last beat within")).to_be_visible()
        for worker in workers:
            expect(rows.filter(has_text=worker.worker_id)).to_contain_text(worker.pools_text)
        holding = rows.filter(has_text=holder.worker_id)
        expect(holding.locator(".field-jobs_held")).to_contain_text("1:")
        page.screenshot(path=str(ARTIFACTS / "workers-admin.png"), full_page=True)
        holding.get_by_role("link", name=str(job.id)[:8]).click()
        expect(page.locator("#content")).to_contain_text(str(job.id))
        assert page.console_errors == []

    with chromium_page() as page:
        log_in(page, live_server.url, "carol", "/admin/")
        expect(page.locator("#content")).not_to_contain_text("Workers")
        response = page.goto(f"{live_server.url}{WORKERS}")
        assert response.status == 403
