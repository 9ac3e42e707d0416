"""What a single-page app asks of the API (issue 22, item 5): ``created_by`` and
``?created_by=me``, several statuses in one filter, the list's query checked (a bad value
or an unknown parameter is 400), and ``GET /api/me``."""

import pytest
from django.conf import settings

from jobs.models import JobStatus
from tests.conftest import TENANTS, client_for
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _listed(client, **query) -> set[str]:
    response = client.get("/api/jobs", query)
    assert response.status_code == 200, response.content
    return {item["id"] for item in response.json()["results"]}


def test_created_by_me_lists_only_the_callers_jobs(alice_client, alice, acme):
    carol = UserFactory(username="carol", tenant=acme)
    mine = JobFactory(tenant=acme, created_by=alice)
    JobFactory(tenant=acme, created_by=carol)
    JobFactory(tenant=acme, created_by=None)
    assert _listed(alice_client, created_by="me") == {str(mine.id)}
    assert len(_listed(alice_client)) == 3
    (item,) = alice_client.get("/api/jobs", {"created_by": "me"}).json()["results"]
    assert item["created_by"] == alice.pk == alice_client.get("/api/me").json()["user"]["id"]


def test_several_statuses_in_one_filter(alice_client, alice, acme):
    jobs = {
        status: JobFactory(tenant=acme, created_by=alice, status=status) for status in JobStatus
    }
    active = _listed(alice_client, status="pending,processing")
    assert active == {str(jobs[JobStatus.PENDING].id), str(jobs[JobStatus.PROCESSING].id)}
    assert _listed(alice_client, status="failed") == {str(jobs[JobStatus.FAILED].id)}
    every = ",".join(JobStatus.values)
    assert len(_listed(alice_client, status=every)) == len(JobStatus)


@pytest.mark.parametrize(
    "query",
    [
        {"status": "pending,running"},
        {"status": "pending,pending"},
        {"status": ""},
        {"status": "pending,"},
        {"type": "nope"},
        {"type": "webhooks.deliver"},  # internal: no type of the API
        {"created_by": "alice"},
        {"created_by": ""},
        {"page_size": "0"},
        {"page_size": "201"},
        {"page_size": "5.0"},
        {"page_size": ""},
        {"state": "pending"},
        {"format": "json"},
    ],
)
def test_a_bad_or_unknown_query_parameter_is_400(alice_client, query):
    response = alice_client.get("/api/jobs", query)
    assert response.status_code == 400, (query, response.content)
    assert response["Content-Type"] == PROBLEM
    body = response.json()
    assert body["code"] == "invalid"
    assert set(body["errors"]) == set(query)


@pytest.mark.parametrize("cursor", ["", "bz1hYmM="])  # blank; base64 of "o=abc"
def test_a_bad_cursor_is_400_invalid_cursor(alice_client, cursor):
    response = alice_client.get("/api/jobs", {"cursor": cursor})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_cursor"


def test_a_parameter_given_twice_is_400(alice_client):
    response = alice_client.get("/api/jobs?status=pending&status=failed")
    assert response.status_code == 400
    assert response.json()["errors"] == {"status": ["Given twice."]}


def test_page_size_and_cursor_still_page(alice_client, alice, acme):
    for _ in range(3):
        JobFactory(tenant=acme, created_by=alice)
    first = alice_client.get("/api/jobs", {"page_size": "2"}).json()
    assert len(first["results"]) == 2
    second = alice_client.get("/api/jobs" + first["next"].split("/api/jobs", 1)[1]).json()
    assert len(second["results"]) == 1


def test_me_names_the_user_tenant_and_plan(acme, settings):
    dora = UserFactory(username="dora", tenant=acme, first_name="Dora", last_name="Explorer")
    client = client_for(dora, host=TENANTS["acme"])
    response = client.get("/api/me")
    assert response.status_code == 200
    assert response.json() == {
        "user": {"id": dora.pk, "username": "dora"},
        "display_name": "Dora Explorer",
        "tenant": {"id": "acme", "name": acme.name},
        "plan": settings.JOBS_DEFAULT_PLAN,
    }
    assert {"RateLimit", "RateLimit-Policy"} <= set(response.headers)


def test_me_shows_the_tenants_plan_and_the_username_without_a_name(alice_client, acme):
    plan = next(name for name in settings.JOBS_PLANS if name != settings.JOBS_DEFAULT_PLAN)
    acme.plan = plan
    acme.save(update_fields=["plan"])
    body = alice_client.get("/api/me").json()
    assert (body["plan"], body["display_name"]) == (plan, "alice")


def test_me_needs_a_token_of_the_hosts_tenant(acme, bob):
    assert client_for(host=TENANTS["acme"]).get("/api/me").status_code == 401
    assert client_for(bob, host=TENANTS["acme"]).get("/api/me").status_code in (401, 403)


def test_me_is_rate_limited_like_any_read(alice_client, settings):
    settings.JOBS_API_RATE = "2/m"
    assert alice_client.get("/api/me").status_code == 200
    assert alice_client.get("/api/me").status_code == 200
    refused = alice_client.get("/api/me")
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
