"""Routing by Host: tenant hosts serve the API, the platform host serves admin and health."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_unknown_host_is_404_json_and_never_another_tenant(alice):
    response = Client(HTTP_HOST="nobody.localhost").get("/api/jobs")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_host"


def test_host_outside_allowed_hosts_is_400_not_500(acme):
    response = Client(HTTP_HOST="evil.example.com").get("/api/jobs")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_host"


def test_api_is_not_served_on_the_public_host(public_tenant):
    response = Client(HTTP_HOST="localhost").get("/api/jobs")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_public_host_serves_health_and_admin(public_tenant):
    client = Client(HTTP_HOST="localhost")
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    assert client.get("/admin/login/").status_code == 200


def test_unknown_path_on_tenant_host_is_problem_json(acme):
    response = Client(HTTP_HOST="acme.localhost").get("/nowhere")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_renaming_a_domain_invalidates_the_cached_tenant(acme, alice):
    from tenants.models import Domain

    client = Client(HTTP_HOST="acme.localhost")
    assert client.get("/api/jobs").status_code == 401  # routed; resolution now cached
    domain = Domain.objects.get(domain="acme.localhost")
    domain.domain = "acme-renamed.localhost"
    domain.save()
    try:
        assert client.get("/api/jobs").json()["code"] == "unknown_host"
        assert Client(HTTP_HOST="acme-renamed.localhost").get("/api/jobs").status_code == 401
    finally:
        domain.domain = "acme.localhost"
        domain.save()


def test_request_id_is_generated_by_the_server(acme):
    client = Client(HTTP_HOST="acme.localhost")
    assert client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] != "abc-123"
    generated = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert generated != "bad id\nwith newline"
    assert len(generated) == 32
