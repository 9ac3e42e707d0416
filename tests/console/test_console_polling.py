"""The console's client rules, in Chromium against a scripted API.

The live server serves the page; Playwright answers every ``/api/`` request from a script
(``FakeApi``), so each rule is shown with exact headers and timings: ``?wait=`` and its
fallback, ``If-None-Match``, ``Retry-After``, 429, backoff on network errors, stopping at a
final state, pausing while hidden, refreshing the in-memory token before it expires.
"""

import base64
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser import chromium_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JOB_ID = "0b5a1d2e-3f40-4c5d-8e6f-708192a3b4c5"
JOB_URL = f"/api/jobs/{JOB_ID}"
CREATED = "2026-01-25T12:00:00Z"
PROCESSING = {"id": JOB_ID, "type": "demo.sleep", "status": "processing", "created_at": CREATED}
COMPLETED = {
    "id": JOB_ID,
    "type": "demo.sleep",
    "status": "completed",
    "created_at": CREATED,
    "result": {"slept": 3},
    "completed_at": CREATED,
}
PROBLEM = "application/problem+json"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def fake_token(kind: str, serial: int, lifetime: int) -> str:
    now = int(time.time())
    claims = {"token_type": kind, "iat": now, "exp": now + lifetime, "jti": f"{kind}{serial}"}
    return f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}.signature{serial}"


def answer(status=200, body=None, **headers):
    return {"status": status, "body": body, "headers": headers}


@dataclass
class Seen:
    at: float
    method: str
    url: str
    headers: dict
    body: str | None

    @property
    def query(self) -> dict:
        return parse_qs(urlsplit(self.url).query)


class FakeApi:
    """Answers the page's API calls. ``job_answers`` are used in order for
    ``GET /api/jobs/{id}`` (the last one repeats); ``"abort"`` is a network error."""

    def __init__(self, job_answers, *, listed=PROCESSING, token_lifetime=300):
        self.job_answers = list(job_answers)
        self.listed = listed
        self.token_lifetime = token_lifetime
        self.tokens_issued = 0
        self.seen: list[Seen] = []

    def tokens(self) -> dict:
        self.tokens_issued += 1
        n = self.tokens_issued
        return {
            "access": fake_token("access", n, self.token_lifetime),
            "refresh": fake_token("refresh", n, 86400),
        }

    def polls(self) -> list[Seen]:
        return [s for s in self.seen if urlsplit(s.url).path == JOB_URL and s.method == "GET"]

    def handle(self, route, request):
        path = urlsplit(request.url).path
        self.seen.append(
            Seen(time.monotonic(), request.method, request.url, request.headers, request.post_data)
        )
        if path in ("/api/auth/token", "/api/auth/token/refresh"):
            reply = answer(body=self.tokens())
        elif path == "/api/auth/logout" and request.method == "POST":
            reply = answer(204, None)
        elif path == "/api/jobs" and request.method == "GET":
            reply = answer(body={"results": [self.listed], "next": None, "previous": None})
        elif path == JOB_URL and request.method == "GET":
            reply = self.job_answers.pop(0) if len(self.job_answers) > 1 else self.job_answers[0]
        elif path == "/api/events":
            # A server without streams (WSGI): the console long-polls instead.
            reply = answer(503, {"detail": "No streams here.", "code": "service_unavailable"})
        else:
            reply = answer(404, {"detail": "Not found.", "code": "not_found"})
        if reply == "abort":
            route.abort("connectionreset")
            return
        headers = dict(reply["headers"])
        if reply["body"] is not None:
            headers.setdefault(
                "Content-Type", PROBLEM if reply["status"] >= 400 else "application/json"
            )
        route.fulfill(
            status=reply["status"],
            headers=headers,
            body=json.dumps(reply["body"]) if reply["body"] is not None else "",
        )


class _ErrorsBesidesTheStream(list):
    """Console errors, without the expected one of the refused event stream (503)."""

    def append(self, text):
        if "status of 503" not in text:
            super().append(text)


@contextmanager
def console_with(acme_url, api: FakeApi):
    """The console, logged in as alice against ``api``; yields the page."""
    with chromium_page() as page:
        page.console_errors = _ErrorsBesidesTheStream()
        page.route("**/api/**", api.handle)
        page.goto(acme_url)
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("anything")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_text("Signed in as alice")).to_be_visible()
        yield page


def gaps(polls: list[Seen]) -> list[float]:
    return [later.at - earlier.at for earlier, later in pairwise(polls)]


def wait_for_polls(page, api: FakeApi, count: int, timeout: float = 15) -> list[Seen]:
    deadline = time.monotonic() + timeout
    while len(api.polls()) < count and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert len(api.polls()) >= count, f"only {len(api.polls())} polls"
    return api.polls()


def failed_loads(*statuses: str) -> list[str]:
    return [f"Failed to load resource: the server responded with a status of {s}" for s in statuses]


def test_long_polls_with_etags_at_the_retry_after_pace_and_stops_when_final(acme_url, acme):
    api = FakeApi(
        [
            answer(200, {**PROCESSING, "progress": 10}, ETag='"v1"', **{"Retry-After": "1"}),
            answer(304, None, ETag='"v1"', **{"Retry-After": "1"}),
            answer(200, {**PROCESSING, "progress": 60}, ETag='"v2"', **{"Retry-After": "1"}),
            answer(200, COMPLETED, ETag='"v3"'),
        ]
    )
    with console_with(acme_url, api) as page:
        expect(page.locator(f"#job-{JOB_ID} .status-text")).to_have_text("completed")
        page.wait_for_timeout(2500)  # nothing more after a final state
        polls = api.polls()
        assert len(polls) == 4
        assert all(p.query.get("wait") == ["20"] for p in polls)
        assert [p.headers.get("if-none-match") for p in polls] == [None, '"v1"', '"v1"', '"v2"']
        assert min(gaps(polls)) >= 0.9  # Retry-After: 1 between poll starts
        expect(page.locator(f"#job-{JOB_ID}")).to_contain_text('{"slept":3}')
        assert page.console_errors == []


def test_a_429_pauses_until_retry_after(acme_url, acme):
    rate_limited = {"detail": "Too many requests.", "code": "rate_limited"}
    api = FakeApi([answer(429, rate_limited, **{"Retry-After": "3"}), answer(200, COMPLETED)])
    with console_with(acme_url, api) as page:
        expect(page.get_by_role("status")).to_contain_text("Too many requests")
        polls = wait_for_polls(page, api, 2)
        assert gaps(polls)[0] >= 2.9
        expect(page.locator(f"#job-{JOB_ID} .status-text")).to_have_text("completed")
        assert page.console_errors == failed_loads("429 (Too Many Requests)")


def test_an_invalid_wait_falls_back_to_plain_polling(acme_url, acme):
    """A server without long polls refuses ``?wait=`` (400 ``invalid_wait``)."""
    invalid = {"detail": "`?wait=` is out of range.", "code": "invalid_wait"}
    api = FakeApi(
        [
            answer(400, invalid),
            answer(200, PROCESSING, **{"Retry-After": "1"}),
            answer(200, COMPLETED),
        ]
    )
    with console_with(acme_url, api) as page:
        expect(page.locator(f"#job-{JOB_ID} .status-text")).to_have_text("completed")
        polls = api.polls()
        assert [p.query.get("wait") for p in polls] == [["20"], None, None]
        assert page.console_errors == failed_loads("400 (Bad Request)")


def test_network_errors_back_off_exponentially(acme_url, acme):
    api = FakeApi(["abort", "abort", "abort", answer(200, COMPLETED)])
    with console_with(acme_url, api) as page:
        expect(page.get_by_role("status")).to_contain_text("Connection problem")
        polls = wait_for_polls(page, api, 4)
        first, second, third = gaps(polls)
        # 1, 2, 4 s ceilings with jitter between half and all of each.
        assert 0.45 <= first <= 1.3
        assert 0.95 <= second <= 2.3
        assert 1.9 <= third <= 4.3
        expect(page.locator(f"#job-{JOB_ID} .status-text")).to_have_text("completed")
        expect(page.get_by_role("status")).to_be_hidden()
        assert page.console_errors == ["Failed to load resource: net::ERR_CONNECTION_RESET"] * 3


def set_hidden(page, hidden: bool) -> None:
    page.evaluate(
        """(hidden) => {
            Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
            Object.defineProperty(document, "visibilityState",
                {value: hidden ? "hidden" : "visible", configurable: true});
            document.dispatchEvent(new Event("visibilitychange"));
        }""",
        hidden,
    )


def test_polling_pauses_while_the_tab_is_hidden(acme_url, acme):
    api = FakeApi([answer(200, PROCESSING, **{"Retry-After": "1"})])
    with console_with(acme_url, api) as page:
        wait_for_polls(page, api, 2)
        set_hidden(page, True)
        page.wait_for_timeout(1500)  # a poll already under way may still land
        paused_at = len(api.polls())
        page.wait_for_timeout(3000)
        assert len(api.polls()) == paused_at
        set_hidden(page, False)
        wait_for_polls(page, api, paused_at + 1, timeout=3)
        assert page.console_errors == []


def test_tokens_live_in_memory_and_are_refreshed_before_expiry(acme_url, acme):
    api = FakeApi([answer(200, PROCESSING, **{"Retry-After": "1"})], token_lifetime=5)
    with console_with(acme_url, api) as page:
        logged_in = time.monotonic()
        stored = page.evaluate("[localStorage.length, sessionStorage.length, document.cookie]")
        assert stored == [0, 0, ""]
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and api.tokens_issued < 2:
            page.wait_for_timeout(50)
        refresh = next(s for s in api.seen if s.url.endswith("/api/auth/token/refresh"))
        # 5 s tokens are renewed a fifth of their lifetime early: at 4 s, before any 401.
        assert 3.0 <= refresh.at - logged_in <= 5.0
        assert json.loads(refresh.body)["refresh"].endswith("signature1")
        later = wait_for_polls(page, api, len(api.polls()) + 1)[-1]
        assert later.headers["authorization"].endswith("signature2")

        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_label("Username")).to_be_focused()
        expect(page.locator("#jobs-body tr")).to_have_count(0)
        stopped_at = len(api.polls())
        page.wait_for_timeout(2500)
        assert len(api.polls()) == stopped_at
        assert page.console_errors == []


def test_a_401_refreshes_the_token_and_retries(acme_url, acme):
    expired = {"detail": "Token is invalid or expired", "code": "token_not_valid"}
    api = FakeApi([answer(401, expired), answer(200, COMPLETED)])
    with console_with(acme_url, api) as page:
        expect(page.locator(f"#job-{JOB_ID} .status-text")).to_have_text("completed")
        first, retried = api.polls()
        assert first.headers["authorization"].endswith("signature1")
        assert retried.headers["authorization"].endswith("signature2")
        assert page.console_errors == failed_loads("401 (Unauthorized)")
