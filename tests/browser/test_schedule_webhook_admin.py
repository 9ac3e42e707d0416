"""Issue 23's schedules and webhooks in headless Chromium, as carol (staff of acme) and as
admin (platform staff): disable, enable and run a schedule now, its next five runs and the
timezone chooser; a webhook endpoint's secret is masked once saved, "send test" reaches
the endpoint. Screenshots go to docs/img/."""

import pytest
from playwright.sync_api import expect

from jobs.models import Job
from schedules.models import Schedule
from tests.browser import chromium_page, docs_screenshot
from tests.factories import PASSWORD, UserFactory
from tests.schedules.test_schedules import add
from tests.webhooks.helpers import add_endpoint, new_secret
from tests.webhooks.test_webhooks import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TIMEOUT_MS = 20_000
SCREEN = {"width": 1440, "height": 900}


def _log_in(page, base_url: str, username: str, next_url: str) -> None:
    page.goto(f"{base_url}/admin/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def _act(page, action: str, name: str) -> None:
    page.locator("#result_list tr", has_text=name).locator("input.action-select").check()
    page.select_option("select[name='action']", action)
    page.get_by_role("button", name="Run", exact=True).click()


@pytest.mark.parametrize("who", ["carol", "admin"])
def test_schedule_actions_next_runs_and_timezones(live_server, public_tenant, acme, who):
    UserFactory(username="carol", tenant=acme, is_staff=True)
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    schedule = add(acme, name="paris-nine", cron="0 9 * * *", timezone="Europe/Paris")

    with chromium_page(viewport=SCREEN) as page:
        _log_in(page, live_server.url, who, "/admin/schedules/schedule/")
        _act(page, "disable_schedules", "paris-nine")
        expect(page.locator("ul.messagelist")).to_contain_text("1 schedule(s) disabled")
        _act(page, "enable_schedules", "paris-nine")
        expect(page.locator("ul.messagelist")).to_contain_text("1 schedule(s) enabled")
        _act(page, "run_schedules_now", "paris-nine")
        expect(page.locator("ul.messagelist")).to_contain_text("run now")
        page.get_by_role("link", name="paris-nine").click()
        expect(page.locator("ol.schedule-next-runs li")).to_have_count(5, timeout=TIMEOUT_MS)
        expect(page.locator("ol.schedule-next-runs li").first).to_contain_text(
            "09:00:00 Europe/Paris"
        )
        expect(page.locator("#id_timezone")).to_have_value("Europe/Paris")
        page.select_option("#id_timezone", "Asia/Tokyo")
        page.get_by_role("button", name="Save and continue editing").click()
        expect(page.locator("ol.schedule-next-runs li").first).to_contain_text("Asia/Tokyo")
        docs_screenshot(page, f"admin-schedule-{who}")
        assert page.console_errors == []
    assert Schedule.objects.get(pk=schedule.pk).timezone == "Asia/Tokyo"
    assert Job.objects.filter(tenant=acme, type="demo.echo").count() == 1


@pytest.mark.parametrize("who", ["carol", "admin"])
def test_webhook_secret_masked_and_a_test_sent(live_server, public_tenant, acme, settings, who):
    settings.JOBS_WEBHOOK_ALLOW_PRIVATE = True
    UserFactory(username="carol", tenant=acme, is_staff=True)
    UserFactory(username="admin", is_staff=True, is_superuser=True)
    receiver = Receiver()
    secret = new_secret()
    try:
        endpoint = add_endpoint(acme, receiver.url, secret)
        with chromium_page(viewport=SCREEN) as page:
            _log_in(page, live_server.url, who, "/admin/webhooks/webhookendpoint/")
            page.goto(f"{live_server.url}/admin/webhooks/webhookendpoint/{endpoint.pk}/change/")
            expect(page.locator("#id_secret")).to_have_value("")
            expect(page.locator("#content")).to_contain_text(f"Saved (ending …{secret[-4:]})")
            assert secret not in page.content()
            docs_screenshot(page, f"admin-webhook-{who}")
            page.goto(f"{live_server.url}/admin/webhooks/webhookendpoint/")
            _act(page, "send_test", receiver.url)
            expect(page.locator("ul.messagelist")).to_contain_text("answered 200")
            assert page.console_errors == []
        assert len(receiver.requests) == 1
    finally:
        receiver.close()
