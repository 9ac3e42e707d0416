"""Correlated logs (core/log_context.py): every line written while serving a request carries
its request id, tenant and user; every line written inside ``bind_job`` carries the job's
tenant, creator, id and attempt. Read from the JSON lines of the handler that settings'
LOGGING installs, so the filter and formatter in use are the ones under test.

This module doubles as a test urlconf: the tenant URLs plus one API view that logs.
"""

import io
import json
import logging

import pytest
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as tenant_urlpatterns
from core import log_context
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

view_logger = logging.getLogger("tests.view")


class LoggingView(APIView):
    """Authenticated like every API view (JWT bound to the tenant); logs one warning."""

    def get(self, request):
        view_logger.warning("inside the view")
        return Response({})


urlpatterns = [*tenant_urlpatterns, path("test/log", LoggingView.as_view())]


@pytest.fixture
def log_lines():
    """The JSON lines the root logger's configured handler writes during the test."""
    (handler,) = [h for h in logging.getLogger().handlers if h.name == "console"]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        handler.setStream(previous)


def _line(lines, message: str) -> dict:
    (line,) = [entry for entry in lines if entry["message"] == message]
    return line


def test_a_warning_inside_a_view_carries_the_request_tenant_and_user(
    settings, alice_client, alice, log_lines
):
    settings.ROOT_URLCONF = __name__
    response = alice_client.get("/test/log")
    assert response.status_code == 200
    line = _line(log_lines(), "inside the view")
    assert line["request_id"] == response["X-Request-ID"]
    assert (line["tenant"], line["user_id"]) == ("acme", alice.pk)
    assert "job_id" not in line


def test_requests_do_not_share_their_fields(settings, alice_client, bob_client, bob, log_lines):
    settings.ROOT_URLCONF = __name__
    alice_client.get("/test/log")
    response = bob_client.get("/test/log")
    bobs = [line for line in log_lines() if line["message"] == "inside the view"][1]
    assert (bobs["request_id"], bobs["tenant"], bobs["user_id"]) == (
        response["X-Request-ID"],
        "globex",
        bob.pk,
    )


def test_lines_inside_bind_job_carry_the_job_and_nothing_after_it(acme, alice, log_lines):
    job = JobFactory(tenant=acme, created_by=alice, attempts=2)
    with log_context.bind_job(job):
        logging.getLogger("tests.handler").warning("inside the handler")
    logging.getLogger("tests.handler").warning("after the job")
    lines = log_lines()
    inside = _line(lines, "inside the handler")
    assert {k: inside[k] for k in ("request_id", "tenant", "user_id", "job_id", "attempt")} == {
        "request_id": None,
        "tenant": "acme",
        "user_id": alice.pk,
        "job_id": str(job.id),
        "attempt": 2,
    }
    assert not {"request_id", "tenant", "user_id", "job_id"} & set(_line(lines, "after the job"))


def test_a_field_given_with_extra_wins_over_the_bound_one(acme, alice, log_lines):
    job = JobFactory(tenant=acme, created_by=alice)
    with log_context.bind_job(job):
        logging.getLogger("tests.handler").warning("explicit", extra={"job_id": "other"})
    assert _line(log_lines(), "explicit")["job_id"] == "other"
