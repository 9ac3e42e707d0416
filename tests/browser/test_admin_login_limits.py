"""The admin login's brute-force limit in headless Chromium against the live server: once
the username's budget is spent, the right password gets the login page again with the
message (429, Retry-After) and no session. A screenshot is kept under artifacts/."""

import pytest
from playwright.sync_api import expect

from tests.accounts.test_admin_login_limits import LIMITED, WRONG_PASSWORD
from tests.browser import chromium_page, screenshot
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TIMEOUT_MS = 20_000


def _submit(page, username: str, password: str):
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.click("input[type=submit]")
    page.wait_for_load_state()
    return posted.value


def test_a_spent_budget_shows_the_message_on_the_login_page(live_server, public_tenant, settings):
    settings.AUTH_LOGIN_USERNAME_RATE = "2/m"
    UserFactory(username="admin", is_staff=True, is_superuser=True)

    with chromium_page() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        for _ in range(2):
            assert _submit(page, "admin", "wrong").status == 200
            expect(page.locator(".errornote")).to_contain_text(WRONG_PASSWORD, timeout=TIMEOUT_MS)

        response = _submit(page, "admin", PASSWORD)
        assert response.status == 429
        assert 1 <= int(response.headers["retry-after"]) <= 60
        expect(page.locator(".errornote")).to_contain_text(LIMITED, timeout=TIMEOUT_MS)
        expect(page.locator("#login-form")).to_be_visible()
        screenshot(page, "admin-login-rate-limited")
        # Chromium reports the 429 itself; the page has no error of its own.
        assert page.console_errors == [
            "Failed to load resource: the server responded with a status of 429 (Too Many Requests)"
        ]

        page.goto(f"{live_server.url}/admin/")
        expect(page).to_have_url(f"{live_server.url}/admin/login/?next=/admin/")
