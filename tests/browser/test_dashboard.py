"""The queue dashboard in headless Chromium against the live server: the superuser logs in
and sees the charts drawn from an hour of rollup rows, with no console error (so no CSP
violation). The screenshot is docs/dashboard.png, shown by docs/operations.md."""

import math
import shutil
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.browser import chromium_page, docs_screenshot, screenshot
from tests.factories import PASSWORD, JobFactory, UserFactory
from tests.helpers import ROOT
from tests.insights.helpers import rollup_record

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TIMEOUT_MS = 20_000


def _an_hour_of_runs(tenants) -> None:
    """A busy hour: throughput rising and falling, a slow spell of long waits, some failures."""
    now = timezone.now()
    for minute in range(60):
        at = now - timedelta(minutes=minute)
        load = 3 + round(3 * (1 + math.sin(minute / 8)))
        for index in range(load):
            tenant = tenants[index % len(tenants)]
            slow = 20 <= minute < 30
            rollup_record(
                tenant_id=tenant.pk,
                queue="reports" if index % 3 == 0 else "default",
                type="ai_generation" if index % 2 else "demo.echo",
                outcome="failed" if index == 0 and minute % 7 == 0 else "completed",
                wait=(25 if slow else 0.3) * (1 + index % 3),
                run=0.2 + index * 0.7,
                at=at,
            )


def test_the_dashboard_draws_its_charts_and_is_screenshotted(
    live_server, public_tenant, acme, globex
):
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    _an_hour_of_runs([acme, globex])
    for _ in range(7):
        JobFactory(tenant=acme, created_by=None)
    JobFactory(tenant=globex, created_by=None, queue="reports", processing=True)

    with chromium_page(viewport={"width": 1280, "height": 1000}) as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/dashboard/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("h1")).to_have_text("Queue dashboard", timeout=TIMEOUT_MS)
        expect(page.locator("svg polyline")).to_have_count(8)  # 2 counts, 3 + 3 quantiles
        expect(page.locator("#live-queue")).to_contain_text("reports")
        expect(page.locator("#breakdown")).to_contain_text("ai_generation")
        assert page.console_errors == []
        shot = screenshot(page, "dashboard")
    shutil.copyfile(shot, ROOT / "docs" / "dashboard.png")


def test_admin_picks_a_tenant_and_follows_a_row_and_carol_sees_acme(
    live_server, public_tenant, acme, globex
):
    """Issue 23: the index links to the dashboard, the breadcrumbs are the admin's own, the
    platform staff's tenant picker and ranges, a breakdown row opens its jobs; carol (staff
    of acme) gets acme's figures and no picker."""
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    UserFactory(username="carol", tenant=acme, is_staff=True)
    _an_hour_of_runs([acme, globex])
    JobFactory(tenant=acme, created_by=None, type="ai_generation", queue="reports")

    with chromium_page(viewport={"width": 1440, "height": 1000}) as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.get_by_role("link", name="Queue dashboard").click()
        expect(page.locator("ol.breadcrumbs li")).to_have_text(["Home", "Jobs", "Queue dashboard"])
        page.select_option("#tenant-choice", label="Acme (acme)")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#dashboard-scope")).to_contain_text("Acme")
        page.get_by_role("link", name="7d").click()
        expect(page.locator("#dashboard-scope")).to_contain_text("last 7d")
        assert f"tenant={acme.pk}" in page.url
        docs_screenshot(page, "dashboard-admin-acme-7d")
        page.locator("#breakdown a", has_text="demo.echo").first.click()
        expect(page.locator("#changelist")).to_be_visible(timeout=TIMEOUT_MS)
        assert "type=demo.echo" in page.url
        assert page.console_errors == []

    with chromium_page(viewport={"width": 1440, "height": 1000}) as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/jobs/dashboard/")
        page.fill("#id_username", "carol")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#dashboard-scope")).to_contain_text("Acme")
        expect(page.locator("#tenant-picker")).to_have_count(0)
        docs_screenshot(page, "dashboard-carol")
        assert page.console_errors == []
