"""The console on the ASGI server: one ``GET /api/events`` stream carries a job's progress
and completion to the page (headless Chromium, a uvicorn process, a real worker), and no
job is polled while the stream is open; without streams (WSGI: 503) it long-polls."""

import re
import time

import pytest
from playwright.sync_api import expect

from tests.browser import chromium_page, screenshot
from tests.console.steps import log_in, status_of, submit
from tests.helpers import start_uvicorn, stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

STEP_TIMEOUT_MS = 20_000


@pytest.fixture
def uvicorn_url(transactional_db, acme):
    """A uvicorn process serving the console and the API on the test database."""
    server = start_uvicorn("tests.console.asgi_static:application")
    yield f"http://acme.localhost:{server.port}/"
    stop_process(server)


def _poll_of(job_id: str) -> re.Pattern:
    return re.compile(rf"/api/jobs/{job_id}(\?|$)")


def test_progress_and_completion_arrive_through_the_stream(uvicorn_url, alice, worker):
    with chromium_page() as page:
        requests = []
        page.on("request", lambda request: requests.append((request.method, request.url)))
        with page.expect_response(lambda r: r.url.endswith("/api/events")) as stream:
            log_in(page, uvicorn_url, "alice")
        assert stream.value.status == 200
        assert stream.value.headers["content-type"].startswith("text/event-stream")

        sleeper = submit(page, "demo.sleep", {"seconds": 4})
        progress = page.locator(f"#job-{sleeper} progress")
        seen = []
        deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
        while (
            time.monotonic() < deadline and "completed" not in status_of(page, sleeper).inner_text()
        ):
            # One read in the page: the bar may vanish (the job completed) between a count
            # and a second call, which would then wait for it for STEP_TIMEOUT_MS.
            value = progress.evaluate_all("bars => bars[0]?.getAttribute('value') ?? null")
            if value is not None and (not seen or seen[-1] != int(value)):
                seen.append(int(value))
            page.wait_for_timeout(100)
        expect(status_of(page, sleeper)).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
        screenshot(page, "console-stream-completed")
        assert len(seen) >= 2, f"the progress bar never moved: {seen}"
        # Everything came through the stream: the job was never polled.
        polls = [
            url for method, url in requests if method == "GET" and _poll_of(sleeper).search(url)
        ]
        assert polls == []
        assert page.console_errors == []


def test_without_streams_the_console_long_polls(acme_url, alice, worker):
    with chromium_page() as page:
        log_in(page, acme_url, "alice")  # the live server is WSGI: /api/events is 503
        with page.expect_response(lambda r: "?wait=" in r.url, timeout=STEP_TIMEOUT_MS):
            job = submit(page, "demo.sleep", {"seconds": 2})
        expect(status_of(page, job)).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
        assert [e for e in page.console_errors if "503" not in e] == []
