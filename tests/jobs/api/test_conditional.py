"""Cheap polling: ETag/304, Retry-After, caching headers, RateLimit fields, 304s that do not
spend the rate limit, and the query budget of a warm poll."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobStatus
from tests.conftest import client_for
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def _set(job, **fields):
    Job.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


# --- ETag and 304 ------------------------------------------------------------------------


def test_poll_sends_a_strong_etag_and_private_no_cache(alice_client, acme):
    job = JobFactory(tenant=acme)
    response = alice_client.get(f"/api/jobs/{job.id}")
    assert response.status_code == 200
    assert re.fullmatch(r'"[^"]+"', response["ETag"])  # strong: no W/ prefix
    assert response["Cache-Control"] == "private, no-cache"
    assert "Authorization" in response["Vary"]


def test_unchanged_job_answers_304_with_etag_and_no_body(alice_client, acme):
    job = JobFactory(tenant=acme)
    etag = alice_client.get(f"/api/jobs/{job.id}")["ETag"]
    response = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304
    assert response.content == b""
    assert response["ETag"] == etag
    assert response["Cache-Control"] == "private, no-cache"
    assert "Authorization" in response["Vary"]


def test_weak_and_listed_validators_also_match(alice_client, acme):
    job = JobFactory(tenant=acme)
    etag = alice_client.get(f"/api/jobs/{job.id}")["ETag"]
    listed = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=f'"other", W/{etag}')
    assert listed.status_code == 304


@pytest.mark.parametrize(
    "change",
    [
        {"status": JobStatus.PROCESSING, "attempts": 1, "worker_id": "w1"},
        {"progress": 40},
        {"progress_message": "half way"},
        {"status": JobStatus.COMPLETED, "result": {"document_id": "d1"}},
        {"status": JobStatus.FAILED, "error": "boom"},
    ],
)
def test_changed_job_answers_200_with_a_new_etag(alice_client, acme, change):
    job = JobFactory(tenant=acme)
    if "progress" in change or "progress_message" in change:
        _set(job, status=JobStatus.PROCESSING, attempts=1, started_at=job.created_at)
    etag = alice_client.get(f"/api/jobs/{job.id}")["ETag"]
    _set(job, **change)
    response = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response["ETag"] != etag
    assert response.json()["status"] == Job.objects.get(pk=job.pk).status


def test_a_new_result_of_a_completed_job_changes_the_etag(alice_client, acme):
    job = JobFactory(tenant=acme)
    _set(job, status=JobStatus.COMPLETED, result={"n": 1}, completed_at=job.created_at)
    etag = alice_client.get(f"/api/jobs/{job.id}")["ETag"]
    _set(job, result={"n": 2})
    response = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 200
    assert response.json()["result"] == {"n": 2}


def test_a_lease_renewal_does_not_change_the_etag(alice_client, acme):
    job = JobFactory(tenant=acme)
    _set(job, status=JobStatus.PROCESSING, attempts=1, worker_id="w1", started_at=job.created_at)
    etag = alice_client.get(f"/api/jobs/{job.id}")["ETag"]
    _set(job, lease_expires_at=job.created_at)
    assert alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_another_tenants_job_is_404_even_with_its_etag(alice_client, bob_client, globex):
    job = JobFactory(tenant=globex)
    etag = bob_client.get(f"/api/jobs/{job.id}")["ETag"]
    response = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 404
    assert "ETag" not in response


# --- Retry-After -------------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING])
def test_unfinished_jobs_carry_retry_after(alice_client, acme, status):
    job = _set(JobFactory(tenant=acme), status=status)
    response = alice_client.get(f"/api/jobs/{job.id}")
    assert int(response["Retry-After"]) >= 1
    not_modified = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=response["ETag"])
    assert not_modified.status_code == 304
    assert not_modified["Retry-After"] == response["Retry-After"]


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_final_jobs_have_no_retry_after(alice_client, acme, status):
    job = _set(JobFactory(tenant=acme), status=status, completed_at=None)
    response = alice_client.get(f"/api/jobs/{job.id}")
    assert response.status_code == 200
    assert "Retry-After" not in response


def test_retry_after_comes_from_settings_and_the_job_type(settings, alice_client, acme):
    settings.JOBS_POLL_AFTER = 3
    job = JobFactory(tenant=acme, type="demo.echo")
    assert alice_client.get(f"/api/jobs/{job.id}")["Retry-After"] == "3"
    settings.JOBS_TYPES = {
        **settings.JOBS_TYPES,
        "demo.echo": {"task": "jobs.demo.echo", "poll_after": 7},
    }
    assert alice_client.get(f"/api/jobs/{job.id}")["Retry-After"] == "7"


# --- rate limits -------------------------------------------------------------------------

_POLICY = re.compile(r'^"jobs-api";q=(\d+);w=(\d+)$')
_STATE = re.compile(r'^"jobs-api";r=(\d+);t=(\d+)$')


def _remaining(response) -> int:
    return int(_STATE.match(response["RateLimit"])[1])


def test_responses_carry_ratelimit_policy_and_state(settings, alice_client, acme):
    settings.JOBS_API_RATE = "10/m"
    job = JobFactory(tenant=acme)
    first = alice_client.get(f"/api/jobs/{job.id}")
    assert _POLICY.match(first["RateLimit-Policy"]).groups() == ("10", "60")
    state = _STATE.match(first["RateLimit"])
    assert int(state[1]) == 9
    assert 0 <= int(state[2]) <= 60
    assert _remaining(alice_client.get("/api/jobs")) == 8
    assert "RateLimit" in alice_client.post("/api/jobs", {"type": "demo.echo"}, format="json")


def test_304s_do_not_spend_the_limit(settings, alice_client, acme):
    settings.JOBS_API_RATE = "3/m"
    job = JobFactory(tenant=acme)
    first = alice_client.get(f"/api/jobs/{job.id}")
    etag = first["ETag"]
    for _ in range(10):
        response = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=etag)
        assert response.status_code == 304
        assert _remaining(response) == 2
    codes = [alice_client.get(f"/api/jobs/{job.id}").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_429_carries_the_ratelimit_fields(settings, alice_client, acme):
    settings.JOBS_API_RATE = "1/m"
    job = JobFactory(tenant=acme)
    alice_client.get(f"/api/jobs/{job.id}")
    limited = alice_client.get(f"/api/jobs/{job.id}")
    assert limited.status_code == 429
    assert _remaining(limited) == 0
    assert int(limited["Retry-After"]) >= 1


# --- query budget ------------------------------------------------------------------------


def test_warm_poll_and_304_run_at_most_two_queries(alice, acme):
    job = JobFactory(tenant=acme)
    client = client_for(alice, host="acme.localhost")
    etag = client.get(f"/api/jobs/{job.id}")["ETag"]  # warms the tenant and user caches
    with CaptureQueriesContext(connection) as poll:
        assert client.get(f"/api/jobs/{job.id}").status_code == 200
    with CaptureQueriesContext(connection) as not_modified:
        assert client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=etag).status_code == 304
    for captured in (poll, not_modified):
        sql = [query["sql"] for query in captured]
        assert len(sql) <= 2, sql
        assert any("tenant_id" in statement and "job_queue" in statement for statement in sql)


def test_the_poll_read_is_tenant_scoped_without_a_search_path(alice, acme):
    job = JobFactory(tenant=acme)
    client = client_for(alice, host="acme.localhost")
    client.get(f"/api/jobs/{job.id}")
    with CaptureQueriesContext(connection) as captured:
        client.get(f"/api/jobs/{job.id}")
    setup, read = [query["sql"] for query in captured]
    # Row-level security and the tenant's search_path, per request, in one statement.
    assert setup.startswith("SELECT set_config('role'")
    assert "set_config('search_path', '\"acme\",\"public\"', true)" in setup
    assert '"public".job_queue' in read
    assert f"tenant_id = {acme.pk}" in read
    # The test's transaction outlives the request: the next statement in the public schema
    # first puts the public path back, locally to that transaction.
    with CaptureQueriesContext(connection) as after:
        Job.objects.filter(pk=job.pk).exists()
    assert after.captured_queries[0]["sql"] == (
        "SELECT set_config('search_path', '\"public\"', true)"
    )
