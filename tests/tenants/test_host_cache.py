"""The cached host → tenant resolution: one entry per host whatever its letter case, and
never put back by a request racing a change.

The race tests use two real database connections: this test's, which makes the change
inside a transaction and commits it, and a second thread's (its own Django connection),
which serves a request in between, reads the old, still committed rows and caches them.
"""

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tenants.models import Domain
from tests.conftest import client_for

HOST = "acme.localhost"


@pytest.fixture
def racing_acme(acme, settings):
    """acme, with an empty cache: recreating its rows after another transactional test's
    flush left tombstones, which would keep the racing request from caching anything."""
    caches = {alias: dict(conf) for alias, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches
    return acme


def request_on_another_connection(path="/api/jobs"):
    """A request to ``HOST`` served by another thread, so on another connection."""

    def serve():
        try:
            return Client(HTTP_HOST=HOST).get(path)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(serve).result(timeout=30)


def change_while_a_request_resolves_the_host(change) -> None:
    with transaction.atomic():
        change()
        # The change is not committed: the other connection still sees acme active and
        # served at HOST, and caches that.
        assert request_on_another_connection().status_code == 401


@pytest.mark.django_db(transaction=True)
def test_deactivation_racing_a_request_refuses_the_next_one(racing_acme):
    def deactivate():
        racing_acme.is_active = False
        racing_acme.save(update_fields=["is_active"])

    change_while_a_request_resolves_the_host(deactivate)
    for response in (Client(HTTP_HOST=HOST).get("/api/jobs"), request_on_another_connection()):
        assert response.status_code == 403
        assert response.json()["code"] == "tenant_inactive"


@pytest.mark.django_db(transaction=True)
def test_domain_removal_racing_a_request_stops_the_host_at_once(racing_acme):
    change_while_a_request_resolves_the_host(Domain.objects.get(domain=HOST).delete)
    for response in (Client(HTTP_HOST=HOST).get("/api/jobs"), request_on_another_connection()):
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_host"


@pytest.mark.django_db
def test_host_lookup_ignores_case_and_both_spellings_share_one_cache_entry(alice, acme):
    assert client_for(alice, host="ACME.localhost").get("/api/jobs").status_code == 200
    with CaptureQueriesContext(connection) as captured:
        assert client_for(alice, host="acme.localhost").get("/api/jobs").status_code == 200
        assert client_for(alice, host="WWW.Acme.LOCALHOST").get("/api/jobs").status_code == 200
    assert not [query for query in captured if "tenants_domain" in query["sql"]]
