"""The token's user is read from a cached record that drops on every change."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def test_warm_poll_reads_no_user_row(alice_client, acme):
    job = JobFactory(tenant=acme)
    alice_client.get(f"/api/jobs/{job.id}")
    with CaptureQueriesContext(connection) as captured:
        alice_client.get(f"/api/jobs/{job.id}")
    assert not [q for q in captured if "accounts_user" in q["sql"]]


def test_deactivated_user_is_refused_on_the_next_request(alice, alice_client, acme):
    job = JobFactory(tenant=acme)
    assert alice_client.get(f"/api/jobs/{job.id}").status_code == 200
    alice.is_active = False
    alice.save()
    response = alice_client.get(f"/api/jobs/{job.id}")
    assert response.status_code == 403
    assert response.json()["code"] == "user_inactive"


def test_deleted_user_is_refused_on_the_next_request(alice, alice_client, acme):
    job = JobFactory(tenant=acme, created_by=None)
    assert alice_client.get(f"/api/jobs/{job.id}").status_code == 200
    alice.delete()
    assert alice_client.get(f"/api/jobs/{job.id}").status_code == 401


def test_user_moved_to_another_tenant_is_refused(alice, alice_client, acme, globex):
    job = JobFactory(tenant=acme)
    assert alice_client.get(f"/api/jobs/{job.id}").status_code == 200
    alice.tenant = globex
    alice.save()
    response = alice_client.get(f"/api/jobs/{job.id}")
    # Row-level security hides a user of another tenant from this host's requests, so the
    # token's user no longer exists here.
    assert response.status_code == 401
    assert response.json()["code"] == "user_not_found"
