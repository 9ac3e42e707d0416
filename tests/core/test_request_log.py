"""One JSON access-log line per request, with the fields operators search by; request ids
the server makes; no session machinery on tenant hosts."""

import json
import logging
import re

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from config.logging import JsonFormatter
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ACME = "acme.localhost"


def _log_line(caplog, send) -> tuple[dict, object]:
    """The one access-log line written while ``send()`` runs, and ``send``'s response."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="api.access"):
        response = send()
    (record,) = [r for r in caplog.records if r.name == "api.access"]
    return json.loads(JsonFormatter().format(record)), response


def _touches_session_or_user(queries) -> list[str]:
    return [q["sql"] for q in queries if re.search(r"django_session|accounts_user", q["sql"])]


@pytest.fixture
def platform_admin(public_tenant):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def platform_session(platform_admin) -> str:
    """The session cookie of the superuser logged in to the admin on the platform host."""
    client = Client(HTTP_HOST=settings.PUBLIC_HOST)
    client.force_login(platform_admin)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def test_each_api_request_logs_one_json_line_with_its_context(alice_client, alice, caplog):
    line, response = _log_line(
        caplog, lambda: alice_client.get("/api/jobs", HTTP_X_REQUEST_ID="trace-42")
    )
    assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
    assert line["request_id"] == response["X-Request-ID"]
    assert line["client_request_id"] == "trace-42"
    assert (line["tenant"], line["user_id"]) == ("acme", alice.pk)
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/jobs", 200)
    assert line["duration_ms"] >= 0


def test_a_client_cannot_choose_the_request_id_of_its_request(alice_client, caplog):
    seen = set()
    for _ in range(2):
        line, response = _log_line(
            caplog, lambda: alice_client.get("/api/jobs", HTTP_X_REQUEST_ID="someone-elses-id")
        )
        assert response["X-Request-ID"] == line["request_id"] != "someone-elses-id"
        seen.add(line["request_id"])
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("sent", "logged"),
    [
        ("trace 7/b:c", "trace 7/b:c"),
        ("x" * 128, "x" * 128),
        ("x" * 129, None),  # too long: dropped, not cut
        ("bad id\nwith newline", None),
        ("tab\there", None),
        ("caf\u00e9", None),  # not ASCII
        ("", None),
    ],
)
def test_the_client_request_id_is_logged_only_when_short_printable_ascii(
    alice_client, caplog, sent, logged
):
    line, response = _log_line(
        caplog, lambda: alice_client.get("/api/jobs", HTTP_X_REQUEST_ID=sent)
    )
    assert line["client_request_id"] == logged
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_tenant_hosts_read_no_session_set_no_cookie_and_log_only_the_api_user(
    alice, alice_client, platform_session, caplog
):
    """Even with the platform admin's session cookie: the console, an unknown path and an
    anonymous API call read neither sessions nor users, and log no user; an authenticated
    API call logs its token's user."""
    anonymous = Client(HTTP_HOST=ACME)
    anonymous.cookies[settings.SESSION_COOKIE_NAME] = platform_session
    alice_client.cookies[settings.SESSION_COOKIE_NAME] = platform_session
    alice_client.get("/api/jobs")  # the token's user is now in the cache

    cases = [
        (anonymous, "/", 200, None),
        (anonymous, "/no-such-page", 404, None),
        (anonymous, "/api/jobs", 401, None),
        (alice_client, "/api/jobs", 200, alice.pk),
    ]
    for client, path, status, user_id in cases:
        with CaptureQueriesContext(connection) as queries:
            line, response = _log_line(caplog, lambda c=client, p=path: c.get(p))
        assert response.status_code == status, path
        assert _touches_session_or_user(queries.captured_queries) == [], path
        assert settings.SESSION_COOKIE_NAME not in response.cookies, path
        assert not hasattr(response.wsgi_request, "session"), path
        assert line["user_id"] == user_id, path


def test_the_platform_host_logs_the_user_only_where_its_view_resolved_it(
    platform_admin, platform_session, caplog
):
    client = Client(HTTP_HOST=settings.PUBLIC_HOST)
    client.cookies[settings.SESSION_COOKIE_NAME] = platform_session
    admin_line, response = _log_line(caplog, lambda: client.get("/admin/"))
    assert response.status_code == 200
    assert admin_line["user_id"] == platform_admin.pk

    with CaptureQueriesContext(connection) as queries:
        home_line, response = _log_line(caplog, lambda: client.get("/"))
    assert response.status_code == 200
    assert home_line["user_id"] is None
    assert _touches_session_or_user(queries.captured_queries) == []


def test_a_500_logs_the_traceback_but_answers_without_internals(alice_client, monkeypatch):
    from jobs import selectors

    def broken(**kwargs):
        raise RuntimeError("secret connection string postgres://admin:pw@db")

    monkeypatch.setattr(selectors, "job_list", broken)
    response = alice_client.get("/api/jobs")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "server_error"
    assert "secret" not in json.dumps(body)
    assert body["request_id"] == response["X-Request-ID"]
