"""The job console end to end: headless Chromium, the live server and a real worker.

alice logs in on acme's host, watches a demo.sleep job's progress bar move until it
completes, sees demo.fail's error, cancels a running job; bob on globex's host sees none
of it. Every step leaves a screenshot under artifacts/; any console error fails the test.
"""

import time

import pytest
from playwright.sync_api import expect

from tests.browser import chromium_page, screenshot
from tests.console.steps import log_in, status_of, submit
from tests.helpers import insert_finished_jobs

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Generous: CI machines are slow, and every step involves the worker.
STEP_TIMEOUT_MS = 20_000


def test_alice_runs_fails_and_cancels_jobs_and_bob_sees_none(
    acme_url, globex_url, alice, bob, worker
):
    with chromium_page() as page:
        log_in(page, acme_url, "alice")
        screenshot(page, "console-1-logged-in")

        # demo.sleep: the progress bar moves, then the status reaches completed.
        sleeper = submit(page, "demo.sleep", {"seconds": 6})
        progress = page.locator(f"#job-{sleeper} progress")
        seen = []
        deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
        while time.monotonic() < deadline:
            if "completed" in status_of(page, sleeper).inner_text():
                break
            if progress.count():
                value = progress.get_attribute("value")
                if value is not None and (not seen or seen[-1] != int(value)):
                    seen.append(int(value))
                    if len(seen) == 2:
                        screenshot(page, "console-2-progress")
            page.wait_for_timeout(100)
        assert len(seen) >= 2, f"the progress bar never moved: {seen}"
        assert seen == sorted(seen), f"progress went backwards: {seen}"
        expect(status_of(page, sleeper)).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
        expect(page.locator(f"#job-{sleeper}")).to_contain_text('{"slept":6}')
        expect(page.get_by_role("button", name=f"Cancel demo.sleep {sleeper[:8]}")).to_be_hidden()
        screenshot(page, "console-3-completed")

        # demo.fail: the status reaches failed and the row shows the job's error.
        failing = submit(page, "demo.fail", {})
        expect(status_of(page, failing)).to_have_text("failed", timeout=STEP_TIMEOUT_MS)
        expect(page.locator(f"#job-{failing}")).to_contain_text("Error demo failure")
        screenshot(page, "console-4-failed")

        # A long demo.sleep, cancelled while it runs.
        long_job = submit(page, "demo.sleep", {"seconds": 60})
        expect(status_of(page, long_job)).to_contain_text("processing", timeout=STEP_TIMEOUT_MS)
        cancel = page.get_by_role("button", name=f"Cancel demo.sleep {long_job[:8]}")
        with page.expect_response(
            lambda r: r.url.endswith(f"/api/jobs/{long_job}/cancel")
        ) as answer:
            cancel.click()
        assert answer.value.status == 202  # it was running: cancellation requested
        expect(status_of(page, long_job)).to_have_text("cancelled", timeout=STEP_TIMEOUT_MS)
        expect(cancel).to_be_hidden()
        screenshot(page, "console-5-cancelled")

        # Three rows, newest first, each status in words.
        rows = page.locator("#jobs-body tr")
        expect(rows).to_have_count(3)
        assert [rows.nth(i).get_attribute("data-job-id") for i in range(3)] == [
            long_job,
            failing,
            sleeper,
        ]
        alice_jobs = {sleeper, failing, long_job}
        assert page.console_errors == []

    with chromium_page() as page:
        log_in(page, globex_url, "bob")
        expect(page.locator("#jobs-body tr")).to_have_count(0)
        expect(page.get_by_text("No jobs yet")).to_be_visible()
        content = page.content()
        assert not [job_id for job_id in alice_jobs if job_id in content]
        screenshot(page, "console-6-bob-sees-nothing")
        assert page.console_errors == []


def test_older_jobs_are_paged_in_with_the_lists_cursor(acme_url, alice):
    insert_finished_jobs(alice.tenant, 25, days_old=1)
    with chromium_page() as page:
        log_in(page, acme_url, "alice")
        rows = page.locator("#jobs-body tr")
        expect(rows).to_have_count(20)
        older = page.get_by_role("button", name="Show older jobs")
        with page.expect_response(lambda r: "cursor=" in r.url) as listing:
            older.click()
        assert listing.value.status == 200
        expect(rows).to_have_count(25)
        expect(older).to_be_hidden()
        assert page.console_errors == []
