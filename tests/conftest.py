"""Fixtures shared by the suite: real PostgreSQL (test database), real Redis, tenants
acme and globex with their schemas, users, authenticated API clients."""

import os
import uuid

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.test.testcases import ThreadedWSGIServer
from rest_framework.test import APIClient

from accounts.tokens import tokens_for
from jobs.api import etags
from tests.factories import UserFactory
from tests.helpers import admin_client_for
from tests.pgbouncer import PgBouncer

TENANTS = {"acme": "acme.localhost", "globex": "globex.localhost"}

# The live server (pytest-django's ``live_server``, Django's ThreadedWSGIServer) listens with
# a backlog of 10. A test that sends more connections at once (25 logins, the quota race)
# overflows it; the kernel then answers with SYN cookies, and now and then a connection is
# reset before the server has read it (CI: "Possible SYN flooding ... Sending cookies").
# A backlog deeper than any burst a test sends.
ThreadedWSGIServer.request_queue_size = 128


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Let concurrent runs on one server use separate test databases (TEST_DB_SUFFIX)."""
    suffix = os.environ.get("TEST_DB_SUFFIX")
    if suffix:
        db = django_settings.DATABASES["default"]
        db.setdefault("TEST", {})["NAME"] = f"test_{db['NAME']}_{suffix}"


def ensure_tenant(schema_name: str, host: str):
    """Get or create a tenant and its domain. Its schema is created (and migrated) only the
    first time in a test database; later calls, e.g. after a transactional test's flush,
    only recreate the rows."""
    from tenants.models import Domain, Tenant

    tenant = Tenant.objects.filter(schema_name=schema_name).first()
    if tenant is None:
        tenant = Tenant(schema_name=schema_name, name=schema_name.title())
        tenant.save(verbosity=0)
    Domain.objects.get_or_create(domain=host, defaults={"tenant": tenant, "is_primary": True})
    return tenant


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        for schema, host in TENANTS.items():
            ensure_tenant(schema, host)
    yield
    etags.stop()  # its LISTEN connection would block DROP DATABASE


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    """A fresh cache key prefix per test: rate-limit counters never leak between tests or
    between runs sharing one Redis, and nothing is flushed from under other users."""
    caches = {alias: dict(conf) for alias, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture
def public_tenant(db):
    return ensure_tenant("public", django_settings.PUBLIC_HOST)


@pytest.fixture
def acme(db):
    return ensure_tenant("acme", TENANTS["acme"])


@pytest.fixture
def globex(db):
    return ensure_tenant("globex", TENANTS["globex"])


@pytest.fixture
def alice(acme):
    return UserFactory(username="alice", tenant=acme)


@pytest.fixture
def bob(globex):
    return UserFactory(username="bob", tenant=globex)


def client_for(user=None, *, host: str) -> APIClient:
    """An API client on ``host``, with a bearer token for ``user`` when given."""
    client = APIClient(HTTP_HOST=host)
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user).access_token}")
    return client


@pytest.fixture
def alice_client(alice):
    return client_for(alice, host=TENANTS["acme"])


@pytest.fixture
def bob_client(bob):
    return client_for(bob, host=TENANTS["globex"])


@pytest.fixture
def superuser(public_tenant):
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def carol(public_tenant, acme):
    """Staff of acme."""
    return UserFactory(username="carol", tenant=acme, is_staff=True)


@pytest.fixture
def superuser_client(superuser):
    return admin_client_for(superuser)


@pytest.fixture
def carol_client(carol):
    return admin_client_for(carol)


@pytest.fixture
def public_client(public_tenant):
    """An anonymous client on the platform host (admin, health, metrics)."""
    return Client(HTTP_HOST=django_settings.PUBLIC_HOST)


@pytest.fixture
def bouncer(db):
    """A PgBouncer of the test's own in transaction mode (tests/pgbouncer.py), two server
    connections in front of the test database; ``bouncer.url(name)`` is a URL through it."""
    bouncer = PgBouncer(connection.settings_dict, pool_size=2).start()
    yield bouncer
    bouncer.stop()


@pytest.fixture
def processes():
    """Started processes; any still running at the end are killed (by their own PID)."""
    started = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
