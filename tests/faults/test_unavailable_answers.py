"""In-process checks of the outage answers (core/errors.py): an unreachable PostgreSQL or
Redis is a 503 problem with Retry-After wherever it surfaces, and only that is. The real
outages are in the other modules of this package (marker ``faults``)."""

import pytest
import redis
from django.db import OperationalError
from django.test import Client

from core import rates
from jobs import selectors
from tenants import row_security as rls
from tests.conftest import TENANTS
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def _assert_unavailable(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["code"]) == (503, "service_unavailable")
    assert "connect" not in body["detail"]  # no internals
    assert int(response["Retry-After"]) >= 1


def _refuse(*args, **kwargs):
    raise OperationalError('connection failed: connection to server at "10.0.0.5" refused')


def test_database_error_in_a_view_is_503(monkeypatch, alice_client):
    monkeypatch.setattr(selectors, "job_list", _refuse)
    _assert_unavailable(alice_client.get("/api/jobs"))


def test_redis_error_in_the_rate_limit_is_503(monkeypatch, alice_client, acme):
    job = JobFactory(tenant=acme)

    def redis_down(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379.")

    monkeypatch.setattr(rates, "_COUNT", redis_down)
    _assert_unavailable(alice_client.get(f"/api/jobs/{job.id}"))


def test_database_error_outside_drf_is_503(monkeypatch, acme):
    # Raised by the tenant-host middleware, before any view: Django's handler500 answers.
    monkeypatch.setattr(rls, "_enter", _refuse)
    response = Client(HTTP_HOST=TENANTS["acme"], raise_request_exception=False).get("/")
    _assert_unavailable(response)


def test_any_other_error_is_still_a_500(monkeypatch, alice_client):
    def bug(**kwargs):
        raise RuntimeError("a bug, not an outage")

    monkeypatch.setattr(selectors, "job_list", bug)
    alice_client.raise_request_exception = False
    response = alice_client.get("/api/jobs")
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    assert "Retry-After" not in response
