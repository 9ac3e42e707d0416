"""Idempotency-Key on POST /api/jobs: safe client retries, scoped per tenant."""

from datetime import timedelta

import pytest

from jobs.models import Job, JobStatus
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BODY = {"type": "demo.echo", "payload": {"report": 42}}


def submit(client, body=BODY, key="order-7f3a"):
    return client.post("/api/jobs", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_same_key_and_body_returns_the_same_job(alice_client):
    first = submit(alice_client)
    again = submit(alice_client)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert Job.objects.count() == 1


def test_replay_of_a_finished_job_is_200(alice_client):
    first = submit(alice_client)
    Job.objects.filter(pk=first.json()["id"]).update(status=JobStatus.COMPLETED, result={})
    again = submit(alice_client)
    assert again.status_code == 200
    assert again.json()["status"] == "completed"


def test_same_key_with_a_different_body_is_422(alice_client):
    submit(alice_client)
    response = submit(alice_client, {"type": "demo.echo", "payload": {"report": 43}})
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Job.objects.count() == 1


def test_keys_are_scoped_per_tenant(alice_client, bob_client):
    mine = submit(alice_client).json()
    theirs = submit(bob_client).json()
    assert mine["id"] != theirs["id"]
    assert Job.objects.count() == 2


def test_keys_are_shared_by_users_of_one_tenant(alice_client, acme):
    """The key identifies the tenant's operation, whichever user retries it."""
    colleague = client_for(UserFactory(tenant=acme), host="acme.localhost")
    assert submit(alice_client).json()["id"] == submit(colleague).json()["id"]


def test_an_expired_key_starts_a_new_job(alice_client):
    first = submit(alice_client).json()
    Job.objects.filter(pk=first["id"]).update(
        created_at=Job.objects.get(pk=first["id"]).created_at - timedelta(hours=25)
    )
    second = submit(alice_client).json()
    assert second["id"] != first["id"]
    assert Job.objects.get(pk=first["id"]).idempotency_key == ""


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\tkey"])
def test_malformed_keys_are_400(alice_client, key):
    """An empty header is a key sent empty, not "no key" (issue 19 item 4)."""
    response = submit(alice_client, key=key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
