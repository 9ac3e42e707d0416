"""The console's forms in Chromium: payload errors explained, a phone-width screen, and
nothing that needs a mouse."""

import pytest
from playwright.sync_api import expect

from tests.browser import chromium_page, screenshot
from tests.console.steps import log_in, status_of
from tests.factories import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_invalid_json_and_rejected_payloads_are_explained(acme_url, alice, worker):
    with chromium_page() as page:
        log_in(page, acme_url, "alice")
        posts = []
        page.on(
            "request", lambda r: r.method == "POST" and "/api/jobs" in r.url and posts.append(r)
        )
        page.get_by_label("Job type").select_option("demo.sleep")
        payload = page.get_by_label("Payload (JSON object)")
        error = page.locator("#submit-error")
        submit_button = page.get_by_role("button", name="Submit job")

        payload.fill('{"seconds": 5,}')
        submit_button.click()
        expect(error).to_contain_text("The payload is not valid JSON")
        expect(payload).to_have_attribute("aria-invalid", "true")
        expect(payload).to_be_focused()

        payload.fill("[5]")
        submit_button.click()
        expect(error).to_contain_text("The payload must be a JSON object")
        assert posts == []  # neither reached the server

        payload.fill('{"seconds": 999}')
        with page.expect_response(lambda r: r.url.endswith("/api/jobs")) as rejected:
            submit_button.click()
        assert rejected.value.status == 400
        expect(error).to_contain_text("The job was not accepted")
        expect(error).to_contain_text(
            "payload.seconds: Ensure this value is less than or equal to 60."
        )
        screenshot(page, "console-7-rejected-payload")

        payload.fill('{"seconds": 0}')
        submit_button.click()
        expect(error).to_be_hidden()
        expect(payload).not_to_have_attribute("aria-invalid", "true")
        expect(page.locator("#jobs-body tr")).to_have_count(1)
        # Ends before the browser closes: no poll is left waiting on the server.
        expect(page.locator("#jobs-body .status-text")).to_have_text("completed", timeout=20_000)
        assert page.console_errors == [
            "Failed to load resource: the server responded with a status of 400 (Bad Request)"
        ]


def test_phone_width_and_keyboard_only(acme_url, alice, worker):
    with chromium_page(viewport={"width": 375, "height": 740}) as page:
        page.goto(acme_url)
        expect(page.get_by_label("Username")).to_be_focused()
        page.keyboard.type("alice")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Submit a job")).to_be_focused()

        page.keyboard.press("Tab")
        expect(page.get_by_label("Job type")).to_be_focused()
        while page.get_by_label("Job type").input_value() != "demo.sleep":
            page.keyboard.press("ArrowDown")
        page.keyboard.press("Tab")
        expect(page.get_by_label("Payload (JSON object)")).to_be_focused()
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.type('{"seconds": 30}')
        page.keyboard.press("Tab")
        with page.expect_response(lambda r: r.url.endswith("/api/jobs")) as created:
            page.keyboard.press("Enter")
        job_id = created.value.json()["id"]
        expect(status_of(page, job_id)).to_have_text("processing", timeout=20_000)

        cancel = page.get_by_role("button", name=f"Cancel demo.sleep {job_id[:8]}")
        for _ in range(5):
            page.keyboard.press("Tab")
            if cancel.evaluate("button => button === document.activeElement"):
                break
        expect(cancel).to_be_focused()
        screenshot(page, "console-8-phone")
        page.keyboard.press("Enter")
        expect(status_of(page, job_id)).to_have_text("cancelled", timeout=20_000)

        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"the page scrolls sideways at 375px ({width}px)"
        assert page.console_errors == []
