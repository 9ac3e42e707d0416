"""The jobs API over real HTTP handling (Django test client, tenant Host headers)."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobStatus
from tests.conftest import client_for
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


def _set(job, **fields):
    """Back-date or move a job to a state directly in SQL (test setup only)."""
    Job.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()
    return job


# --- the polling contract: GET /api/jobs/{id} ------------------------------------------


# The keys of every job, whatever its status.
SEED_KEYS = {
    "id",
    "type",
    "status",
    "payload",
    "queue",
    "priority",
    "run_at",
    "created_by",
    "created_at",
}


def test_pending_job_has_only_the_seed_keys(alice_client, acme, alice):
    job = JobFactory(
        tenant=acme, type="ai_generation", created_by=alice, payload={"prompt": "Q3"}, priority=7
    )
    job.refresh_from_db()
    response = alice_client.get(f"/api/jobs/{job.id}")
    assert response.status_code == 200
    assert response.json() == {
        "id": str(job.id),
        "type": "ai_generation",
        "status": "pending",
        "payload": {"prompt": "Q3"},
        "queue": job.queue,
        "priority": 7,
        "run_at": job.run_at.isoformat().replace("+00:00", "Z"),
        "created_by": alice.pk,
        "created_at": job.created_at.isoformat().replace("+00:00", "Z"),
    }


def test_a_job_whose_user_is_deleted_shows_no_creator_and_a_new_etag(alice_client, acme):
    """``created_by`` is part of the ETag: the poll of a job whose creator is deleted is no
    304 for the copy that named the creator."""
    carol = UserFactory(username="carol", tenant=acme)
    job = JobFactory(tenant=acme, created_by=carol)
    first = alice_client.get(f"/api/jobs/{job.id}")
    assert first.json()["created_by"] == carol.pk
    carol.delete()
    again = alice_client.get(f"/api/jobs/{job.id}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 200
    assert again.json()["created_by"] is None


def test_processing_job_shows_progress_and_attempts(alice_client, acme):
    job = JobFactory(tenant=acme)
    _set(
        job,
        status=JobStatus.PROCESSING,
        attempts=1,
        progress=40,
        progress_message="half",
        started_at=job.created_at,
        worker_id="w1",
    )
    body = alice_client.get(f"/api/jobs/{job.id}").json()
    assert body["status"] == "processing"
    assert body["progress"] == 40
    assert body["progress_message"] == "half"
    assert body["attempts"] == 1
    assert "started_at" in body
    assert not {"result", "error", "completed_at"} & set(body)


def test_completed_job_adds_result_and_completed_at(alice_client, acme):
    job = JobFactory(tenant=acme, type="ai_generation")
    _set(
        job,
        status=JobStatus.COMPLETED,
        attempts=1,
        completed_at=job.created_at,
        result={"document_id": "doc-1", "success": True},
    )
    body = alice_client.get(f"/api/jobs/{job.id}").json()
    assert set(body) == SEED_KEYS | {"attempts", "result", "completed_at"}
    assert body["result"] == {"document_id": "doc-1", "success": True}


def test_failed_job_adds_error_not_result_nor_traceback(alice_client, acme):
    job = JobFactory(tenant=acme)
    _set(
        job,
        status=JobStatus.FAILED,
        attempts=1,
        completed_at=job.created_at,
        error="Error message",
        error_traceback="Traceback: secret internals",
    )
    body = alice_client.get(f"/api/jobs/{job.id}").json()
    assert set(body) == SEED_KEYS | {"attempts", "error", "completed_at"}
    assert body["error"] == "Error message"
    assert "secret" not in str(body)


def test_cancelled_job_shows_cancelled_at(alice_client, acme):
    job = JobFactory(tenant=acme)
    _set(job, status=JobStatus.CANCELLED, completed_at=job.created_at)
    body = alice_client.get(f"/api/jobs/{job.id}").json()
    assert set(body) == SEED_KEYS | {"cancelled_at"}


def test_non_uuid_id_is_400_invalid_job_id(alice_client):
    response = alice_client.get("/api/jobs/not-a-uuid")
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "invalid_job_id"


def test_other_tenants_job_is_the_same_404_as_a_missing_one(alice_client, globex):
    foreign = JobFactory(tenant=globex)
    missing = alice_client.get(f"/api/jobs/{uuid.uuid4()}")
    other = alice_client.get(f"/api/jobs/{foreign.id}")
    assert missing.status_code == other.status_code == 404
    # Only the request's own id and path (which the client sent) differ.
    strip = lambda body: {k: v for k, v in body.items() if k not in {"request_id", "instance"}}  # noqa: E731
    assert strip(missing.json()) == strip(other.json())
    assert missing.json()["code"] == "not_found"


def test_without_token_is_401(acme):
    response = client_for(host="acme.localhost").get(f"/api/jobs/{uuid.uuid4()}")
    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM


def test_garbage_token_is_401(acme):
    client = client_for(host="acme.localhost")
    client.credentials(HTTP_AUTHORIZATION="Bearer not.a.jwt")
    response = client.get("/api/jobs")
    assert response.status_code == 401
    assert response.json()["code"] == "token_not_valid"


def test_poll_runs_at_most_four_queries(alice, acme):
    job = JobFactory(tenant=acme)
    client = client_for(alice, host="acme.localhost")
    client.get(f"/api/jobs/{job.id}")  # warm the process: the tenant's host is now cached
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/api/jobs/{job.id}")
    assert response.status_code == 200
    assert len(queries) <= 4, "\n".join(q["sql"][:90] for q in queries)


# --- listing ---------------------------------------------------------------------------


def test_list_is_newest_first_and_only_this_tenants(alice_client, acme, globex):
    older = JobFactory(tenant=acme)
    newer = JobFactory(tenant=acme)
    _set(older, created_at=newer.created_at.replace(year=2020))
    JobFactory(tenant=globex)
    body = alice_client.get("/api/jobs").json()
    assert [item["id"] for item in body["results"]] == [str(newer.id), str(older.id)]
    assert set(body) == {"results", "next", "previous"}


def test_list_paginates_with_a_cursor(alice_client, acme):
    for _ in range(5):
        JobFactory(tenant=acme)
    first = alice_client.get("/api/jobs?page_size=2").json()
    assert len(first["results"]) == 2
    assert first["next"]
    second = alice_client.get(first["next"]).json()
    assert len(second["results"]) == 2
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}


def test_list_filters_by_status_and_type(alice_client, acme):
    echo = JobFactory(tenant=acme, type="demo.echo")
    JobFactory(tenant=acme, type="demo.sleep")
    failed = _set(JobFactory(tenant=acme, type="demo.echo"), status=JobStatus.FAILED)
    by_type = alice_client.get("/api/jobs?type=demo.echo").json()["results"]
    assert {r["id"] for r in by_type} == {str(echo.id), str(failed.id)}
    by_status = alice_client.get("/api/jobs?status=failed").json()["results"]
    assert [r["id"] for r in by_status] == [str(failed.id)]


def test_list_rejects_an_unknown_status(alice_client):
    response = alice_client.get("/api/jobs?status=exploded")
    assert response.status_code == 400
    assert "status" in response.json()["errors"]


# --- submitting ------------------------------------------------------------------------


def test_submit_returns_202_with_location_and_the_poll_body(alice_client, alice, acme):
    response = alice_client.post(
        "/api/jobs", {"type": "demo.echo", "payload": {"a": 1}}, format="json"
    )
    assert response.status_code == 202
    body = response.json()
    assert response["Location"] == f"/api/jobs/{body['id']}"
    assert body["status"] == "pending"
    assert alice_client.get(response["Location"]).json() == body
    job = Job.objects.get(pk=body["id"])
    assert (job.tenant, job.created_by, job.payload) == (acme, alice, {"a": 1})


def test_submit_unknown_type_is_400_and_stores_nothing(alice_client):
    response = alice_client.post("/api/jobs", {"type": "rm -rf"}, format="json")
    assert response.status_code == 400
    assert "type" in response.json()["errors"]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "field",
    [
        "status",
        "tenant",
        "result",
        "error",
        "attempts",
        "created_at",
        "completed_at",
        "worker_id",
        "id",
    ],
)
def test_submit_rejects_fields_clients_must_not_set(alice_client, field):
    response = alice_client.post(
        "/api/jobs", {"type": "demo.echo", "payload": {}, field: "completed"}, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Job.objects.exists()


def test_submit_malformed_json_is_400(alice_client):
    response = alice_client.post(
        "/api/jobs", data='{"type": "demo.echo",', content_type="application/json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_submit_non_object_json_is_400(alice_client, body):
    response = alice_client.post("/api/jobs", data=body, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("payload", [{"seconds": -1}, {"seconds": 61}, {}, {"seconds": "x"}])
def test_submit_validates_the_payload_of_the_type(alice_client, payload):
    response = alice_client.post(
        "/api/jobs", {"type": "demo.sleep", "payload": payload}, format="json"
    )
    assert response.status_code == 400
    assert "payload" in response.json()["errors"]


# --- cancelling ------------------------------------------------------------------------


def test_cancel_pending_job_is_200_cancelled(alice_client, acme):
    job = JobFactory(tenant=acme)
    response = alice_client.post(f"/api/jobs/{job.id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED


@pytest.mark.parametrize("final", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_cancel_finished_job_is_409(alice_client, acme, final):
    job = _set(JobFactory(tenant=acme), status=final)
    response = alice_client.post(f"/api/jobs/{job.id}/cancel")
    assert response.status_code == 409
    assert response.json()["code"] == "invalid_transition"
    job.refresh_from_db()
    assert job.status == final


def test_cancel_other_tenants_job_is_404_and_changes_nothing(alice_client, globex):
    job = JobFactory(tenant=globex)
    response = alice_client.post(f"/api/jobs/{job.id}/cancel")
    assert response.status_code == 404
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


# --- rate limiting ---------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(settings, alice_client, acme):
    settings.JOBS_API_RATE = "3/m"
    job = JobFactory(tenant=acme)
    codes = [alice_client.get(f"/api/jobs/{job.id}").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = alice_client.get(f"/api/jobs/{job.id}")
    assert limited["Content-Type"] == PROBLEM
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60


def test_one_users_limit_never_throttles_another(settings, acme):
    settings.JOBS_API_RATE = "2/m"
    first = client_for(UserFactory(tenant=acme), host="acme.localhost")
    second = client_for(UserFactory(tenant=acme), host="acme.localhost")
    for _ in range(3):
        first.get("/api/jobs")
    assert first.get("/api/jobs").status_code == 429
    assert second.get("/api/jobs").status_code == 200
