"""One JSON access-log line per API request, with the fields operators search by."""

import json
import logging

import pytest

from config.logging import JsonFormatter

pytestmark = pytest.mark.django_db


def test_each_api_request_logs_one_json_line_with_its_context(alice_client, alice, caplog):
    with caplog.at_level(logging.INFO, logger="api.access"):
        response = alice_client.get("/api/jobs", HTTP_X_REQUEST_ID="trace-42")
    (record,) = [r for r in caplog.records if r.name == "api.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "trace-42" == response["X-Request-ID"]
    assert (line["tenant"], line["user_id"]) == ("acme", alice.pk)
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/jobs", 200)
    assert line["duration_ms"] >= 0


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
