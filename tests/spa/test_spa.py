"""The example SPA (clients/spa-example: React, built with Vite, on @tenant-jobs/client's
useJob and useJobs) in headless Chromium, on its own origin, against the API under
uvicorn and a real worker process: progress comes through the job's stream; with streams
refused the same app long-polls; a server restart mid-job loses and repeats no state; a
hidden tab sends nothing and catches up when shown again.

The app appends every state useJob reports to its "Seen" list ("<status> <progress>");
``assert_in_order`` checks that list.
"""

import json
import re
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from django.db import connection
from playwright.sync_api import expect

from jobs.models import Job
from tests.browser import chromium_page, screenshot
from tests.factories import PASSWORD
from tests.helpers import start_uvicorn, stop_process, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

STEP_TIMEOUT_MS = 30_000
JOB_STREAM = re.compile(r"/api/jobs/[^/]+/events$")  # not the list's /api/events
STATUS_ORDER = ["pending", "processing", "completed"]


@pytest.fixture
def uvicorn_env(transactional_db, acme):
    return subprocess_env(CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}")


@pytest.fixture
def uvicorn_server(uvicorn_env, spa_origin):
    """The API under uvicorn (config.asgi), started after acme allowed the SPA's origin."""
    server = start_uvicorn(env=uvicorn_env)
    yield server
    if server.poll() is None:
        stop_process(server)


def api_url(port: int) -> str:
    return f"http://acme.localhost:{port}"


class Spa:
    """The app in a page, with every request the page sends to the API recorded."""

    def __init__(self, page, origin: str, api: str):
        self.page = page
        self.api = api
        self.requests = []  # (method, url, headers) of each request to the API, in order
        api_host = urlsplit(api).netloc
        page.on(
            "request",
            lambda request: (
                urlsplit(request.url).netloc == api_host
                and self.requests.append((request.method, request.url, request.headers))
            ),
        )
        page.goto(f"{origin}/?api={api}")

    def log_in(self, username: str = "alice") -> None:
        self.page.get_by_label("Username").fill(username)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page.get_by_text(f"Signed in as {username}")).to_be_visible()

    def submit(self, payload: dict, job_type: str = "demo.sleep") -> str:
        self.page.get_by_label("Job type").fill(job_type)
        self.page.get_by_label("Payload").fill(json.dumps(payload))
        with self.page.expect_response(
            lambda r: r.url == f"{self.api}/api/jobs" and r.request.method == "POST"
        ) as created:
            self.page.get_by_role("button", name="Submit job").click()
        assert created.value.status == 202, created.value.text()
        return created.value.json()["id"]

    @property
    def status(self):
        return self.page.get_by_test_id("status")

    @property
    def mode(self):
        return self.page.get_by_test_id("mode")

    def seen(self) -> list[str]:
        return self.page.get_by_test_id("seen").locator("li").all_inner_texts()

    def wait_for_progress(self) -> None:
        """Until the app has shown the job processing with some progress."""
        deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
        while not any(re.fullmatch(r"processing [\d.]+", line) for line in self.seen()):
            assert time.monotonic() < deadline, f"no progress shown: {self.seen()}"
            self.page.wait_for_timeout(100)

    def polls_of(self, job_id: str) -> list[str]:
        """Reads of the job itself (GET /api/jobs/<id>, with or without ?wait=)."""
        poll = re.compile(rf"/api/jobs/{job_id}(\?|$)")
        return [url for method, url, _ in self.requests if method == "GET" and poll.search(url)]


def status_in_database(job_id: str) -> str:
    """The job's status as stored, read on a thread of its own: Playwright's sync API runs
    an event loop on the test's thread, where Django refuses database calls."""

    def read():
        try:
            return Job.objects.values_list("status", flat=True).get(pk=job_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(read).result()


def assert_in_order(seen: list[str]) -> None:
    """Each state once, statuses and progress never going back, ending completed."""
    assert seen, "no state shown"
    assert seen[-1] == "completed", seen
    assert len(set(seen)) == len(seen), f"a state was reported twice: {seen}"
    ranks = []
    for line in seen:
        status, _, progress = line.partition(" ")
        ranks.append((STATUS_ORDER.index(status), float(progress or 0)))
    assert ranks == sorted(ranks), f"a state went back: {seen}"


def test_progress_arrives_through_the_stream(uvicorn_server, spa_origin, alice, worker_process):
    with chromium_page() as page:
        spa = Spa(page, spa_origin, api_url(uvicorn_server.port))
        spa.log_in()
        with page.expect_response(lambda r: JOB_STREAM.search(r.url)) as stream:
            job_id = spa.submit({"seconds": 3})
        assert stream.value.url == f"{spa.api}/api/jobs/{job_id}/events"
        assert stream.value.status == 200
        assert stream.value.headers["content-type"].startswith("text/event-stream")
        expect(spa.status).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
        screenshot(page, "spa-stream-completed")
        expect(spa.mode).to_have_text("stream")
        seen = spa.seen()
        assert_in_order(seen)
        assert len([line for line in seen if line.startswith("processing ")]) >= 2, seen
        assert spa.polls_of(job_id) == [], "the job was polled while its stream was open"
        # useJobs: the list, kept current by the tenant stream, shows it completed too.
        row = page.locator(f"tr[data-job-id='{job_id}'] [data-testid=list-status]")
        expect(row).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
        assert page.console_errors == []


@pytest.mark.usefixtures("_stop_long_poll_listener")
def test_with_streams_refused_the_app_long_polls(live_server, spa_origin, alice, worker_process):
    """``live_server`` is the WSGI server, which answers every stream 503."""
    with chromium_page() as page:
        spa = Spa(page, spa_origin, api_url(urlsplit(live_server.url).port))
        spa.log_in()
        with page.expect_response(lambda r: JOB_STREAM.search(r.url)) as stream:
            job_id = spa.submit({"seconds": 2})
        assert stream.value.status == 503
        expect(spa.status).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
        expect(spa.mode).to_have_text("longpoll")
        assert_in_order(spa.seen())
        assert any("?wait=" in url for url in spa.polls_of(job_id)), spa.requests
        assert [error for error in page.console_errors if "503" not in error] == []


def test_a_server_restart_mid_job_loses_and_repeats_no_state(
    uvicorn_server, uvicorn_env, spa_origin, alice, worker_process
):
    with chromium_page() as page:
        spa = Spa(page, spa_origin, api_url(uvicorn_server.port))
        spa.log_in()
        job_id = spa.submit({"seconds": 6})
        spa.wait_for_progress()
        uvicorn_server.send_signal(signal.SIGKILL)  # a crash: streams cut mid-flight
        uvicorn_server.wait(timeout=10)
        sent_before = len(spa.requests)
        page.wait_for_timeout(1_000)
        restarted = start_uvicorn(env=uvicorn_env, port=uvicorn_server.port)
        try:
            expect(spa.status).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
            screenshot(page, "spa-restart-completed")
        finally:
            stop_process(restarted)
        assert_in_order(spa.seen())
        # The job's stream was reopened where it left off, never replaced by polls.
        reopened = [
            headers
            for method, url, headers in spa.requests[sent_before:]
            if url == f"{spa.api}/api/jobs/{job_id}/events"
        ]
        assert reopened, spa.requests[sent_before:]
        assert all(headers.get("last-event-id") for headers in reopened)
        assert spa.polls_of(job_id) == []
        expect(spa.mode).to_have_text("stream")


HIDE = """hidden => {
    window.__hidden = hidden;
    document.dispatchEvent(new Event("visibilitychange"));
}"""

# Page visibility the test controls: a headless page is always visible, so the document's
# visibilityState and hidden answer from a flag the test sets, and a visibilitychange
# event tells the page, as a browser does when the tab is hidden or shown.
VISIBILITY = """
Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true, get: () => (window.__hidden ? "hidden" : "visible"),
});
Object.defineProperty(Document.prototype, "hidden", {
    configurable: true, get: () => Boolean(window.__hidden),
});
"""


def test_a_hidden_tab_sends_nothing_and_catches_up_when_shown(
    uvicorn_server, spa_origin, alice, worker_process
):
    with chromium_page() as page:
        page.add_init_script(VISIBILITY)
        spa = Spa(page, spa_origin, api_url(uvicorn_server.port))
        spa.log_in()
        job_id = spa.submit({"seconds": 3})
        spa.wait_for_progress()
        page.evaluate(HIDE, True)
        sent_before = len(spa.requests)
        # The job finishes while the tab is hidden; then a few more seconds pass.
        deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
        while status_in_database(job_id) != "completed":
            assert time.monotonic() < deadline, "the job did not complete"
            page.wait_for_timeout(200)
        page.wait_for_timeout(3_000)
        assert spa.requests[sent_before:] == [], "the hidden tab sent requests"
        expect(spa.status).to_have_text("processing")

        page.evaluate(HIDE, False)
        expect(spa.status).to_have_text("completed", timeout=STEP_TIMEOUT_MS)
        assert len(spa.requests) > sent_before
        assert_in_order(spa.seen())
        assert page.console_errors == []
