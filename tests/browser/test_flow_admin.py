"""Flow control's admin pages in headless Chromium against the live server: the superuser
reads the Limits page and the pauses, pauses a queue from the admin, and carol (staff of
acme) sees acme's budgets and the global ones only. The screenshot of the Limits page above
the pause list is kept under artifacts/ (flow-admin.png; docs/img/flow-admin.png is a copy)."""

import base64

import pytest
from playwright.sync_api import expect

from config import settings as config_settings
from jobs.flow import services
from jobs.flow.models import LimitBudget, Pause
from tests.browser import ARTIFACTS, chromium_page
from tests.browser.test_admin import TIMEOUT_MS, WIDE
from tests.factories import PASSWORD, JobFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def log_in(page, base_url: str, username: str, landing: str) -> None:
    page.goto(f"{base_url}/admin/login/?next={landing}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#content")).to_be_visible(timeout=TIMEOUT_MS)


def _budgets(acme, globex) -> None:
    """acme on the free plan, one generation running and three held back; globex with an
    override; the provider's request budget half spent."""
    for tenant, running, waiting in ((acme, 1, 3), (globex, 2, 0)):
        key = f"generations:{tenant.pk}"
        LimitBudget.objects.create(key=key, concurrency=1, throttled=bool(waiting))
        keys = {"created_by": None, "limit_keys": [key, "llm_requests"], "limit_units": [1, 1]}
        JobFactory.create_batch(running, tenant=tenant, processing=True, **keys)
        JobFactory.create_batch(waiting, tenant=tenant, pending=True, **keys)
    LimitBudget.objects.create(key="llm_requests", rate=10, burst=10, tokens=5)
    services.override_set(
        tenant=globex, limit="generations", figures={"concurrency": 5}, actor="admin"
    )
    services.pause(scope="tenant", target=globex, actor="admin", reason="flooding the queue")


def test_limits_page_and_pauses_and_carol_sees_only_acme(
    live_server, public_tenant, acme, globex, settings
):
    # The service's own limits only (the docs' screenshot), not the test suite's.
    settings.JOBS_LIMITS = config_settings.JOBS_LIMITS
    settings.JOBS_PLANS = config_settings.JOBS_PLANS
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    UserFactory(username="carol", tenant=acme, is_staff=True)
    _budgets(acme, globex)
    limits, pauses = "/admin/jobs/limitbudget/", "/admin/jobs/pause/"

    with chromium_page(viewport=WIDE) as page:
        log_in(page, live_server.url, "admin", limits)
        table = page.locator("#flow-limits")
        expect(table.locator(f'tr[data-key="generations:{acme.pk}"]')).to_contain_text("1 / 1")
        expect(page.locator("#flow-pauses")).to_contain_text("flooding the queue")
        limits_png = page.screenshot(full_page=True)

        page.get_by_role("link", name="Pause a queue, type or tenant").click()
        page.select_option("#id_scope", "queue")
        page.fill("#id_target", "reports")
        page.fill("#id_reason", "database upgrade")
        page.locator("input[name=_save]").click()
        expect(page.locator("#result_list")).to_contain_text("database upgrade")
        assert page.url.endswith(pauses)
        pauses_png = page.locator("#content").screenshot()
        assert page.console_errors == []

        images = (base64.b64encode(png).decode() for png in (limits_png, pauses_png))
        page.set_content(
            "<body style='margin:0;background:#fff'>"
            + "".join(
                f"<img style='display:block' src='data:image/png;base64,{b64}'>" for b64 in images
            )
            + "</body>"
        )
        page.screenshot(path=str(ARTIFACTS / "flow-admin.png"), full_page=True)

    assert Pause.objects.filter(scope="queue", target="reports", paused_by="admin").exists()

    with chromium_page() as page:
        log_in(page, live_server.url, "carol", limits)
        keys = page.locator("#flow-limits tbody tr").evaluate_all(
            "rows => rows.map(row => row.dataset.key)"
        )
        assert f"generations:{acme.pk}" in keys
        assert f"generations:{globex.pk}" not in keys
        assert "globex" not in page.locator("#content").inner_text()
        assert page.console_errors == []
