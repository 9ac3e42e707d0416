"""Tenants and users copied in each process's memory (core.row_cache): a change made and
published by another process drops the copy before that process's next request here."""

import time
import uuid

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache

from accounts.authentication import _user_key
from accounts.models import User
from core import row_cache
from tenants.models import Tenant
from tenants.resolution import _key as _host_key
from tests.factories import JobFactory
from tests.jobs.api.round_trips import wait_for_invalidations

pytestmark = pytest.mark.django_db


@pytest.fixture
def warm(alice, alice_client, acme, settings):
    """acme's job polled twice by alice with empty caches: the tenant and the user are then
    copied in this process's memory."""
    job = JobFactory(tenant=acme)
    caches = {alias: dict(conf) for alias, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex}"
    settings.CACHES = caches
    wait_for_invalidations()
    for _ in range(2):
        assert alice_client.get(f"/api/jobs/{job.id}").status_code == 200
    assert cache.make_key(_user_key(alice.pk)) in row_cache._invalidations.get().copies
    return job


def changed_by_another_process(key: str) -> None:
    """What ``row_cache.forget`` does in another process after a change (its own Redis
    connection), then the wait for this process's subscriber to drop the copy."""
    full_key = cache.make_key(key)
    other = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        other.delete(full_key)
        other.publish(row_cache.CHANNEL, full_key)
    finally:
        other.close()
    deadline = time.monotonic() + 10
    while full_key in row_cache._invalidations.get().copies:
        assert time.monotonic() < deadline, "the copy was not dropped"
        time.sleep(0.01)


def test_a_user_deactivated_elsewhere_is_refused_here(warm, alice, alice_client):
    User.objects.filter(pk=alice.pk).update(is_active=False)  # no signal in this process
    changed_by_another_process(_user_key(alice.pk))
    response = alice_client.get(f"/api/jobs/{warm.id}")
    assert response.status_code == 403
    assert response.json()["code"] == "user_inactive"


def test_a_tenant_deactivated_elsewhere_is_refused_here(warm, acme, alice_client):
    Tenant.objects.filter(pk=acme.pk).update(is_active=False)
    changed_by_another_process(_host_key("acme.localhost"))
    response = alice_client.get(f"/api/jobs/{warm.id}")
    assert response.status_code == 403
    assert response.json()["code"] == "tenant_inactive"


def test_a_read_that_overlaps_an_invalidation_keeps_no_copy(alice, acme, settings):
    wait_for_invalidations()
    key = f"probe:{uuid.uuid4().hex}"

    def load():
        row_cache._invalidations.get().drop([cache.make_key(key)])  # a change arrives meanwhile
        return "old row"

    assert row_cache.read_through(key, load, 60, label="probe") == "old row"
    assert cache.make_key(key) not in row_cache._invalidations.get().copies
