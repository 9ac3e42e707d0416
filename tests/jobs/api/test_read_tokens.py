"""Job read tokens (jobs/api/read_tokens.py): a submit with ``?read_token=true`` returns a
token that reads its job by poll, long poll (WSGI and ASGI) and stream (a real uvicorn),
rate-limited under the job's own identity; the stream ends at the token's expiry. What it
cannot do is the attack table's (tests/security/test_attacks.py)."""

import time
from datetime import timedelta

import httpx
import jwt
import pytest
from rest_framework.test import APIClient

from accounts.tokens import JobReadToken, read_token_audience
from jobs.api.realtime.grants import RECHECK_SECONDS
from jobs.models import JobStatus
from tests.factories import JobFactory
from tests.jobs.api import asgi
from tests.jobs.api.asgi import HOST, asgi_get, auth_headers, run_app
from tests.jobs.api.realtime.test_longpoll import START, _change_later

asgi_server = asgi.asgi_server  # the fixture: a uvicorn on the test database

DONE = {"status": JobStatus.COMPLETED, "result": {"ok": True}, "progress": 100}


def _submit(client, query: str = "?read_token=true", **extra):
    return client.post(f"/api/jobs{query}", {"type": "demo.echo"}, format="json", **extra)


def _reader(token: str) -> APIClient:
    client = APIClient(HTTP_HOST=HOST)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
def test_a_submit_returns_a_read_token_only_when_asked(alice_client, acme, settings):
    settings.JWT_READ_TOKEN_MINUTES = 5
    plain = _submit(alice_client, query="")
    declined = _submit(alice_client, query="?read_token=false")
    asked = _submit(alice_client)
    assert plain.status_code == declined.status_code == asked.status_code == 202
    assert "Job-Read-Token" not in plain
    assert "Job-Read-Token" not in declined
    claims = jwt.decode(asked["Job-Read-Token"], options={"verify_signature": False})
    assert claims["job"] == asked.json()["id"]
    assert claims["tenant"] == acme.schema_name
    assert claims["aud"] == read_token_audience()
    assert claims["token_type"] == "job_read"
    assert "user_id" not in claims
    assert claims["exp"] - claims["iat"] == 5 * 60


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["?read_token=yes", "?read_token=true&wait=1", "?=false"])
def test_a_bad_or_unknown_submit_parameter_is_400_and_submits_nothing(alice_client, query):
    response = _submit(alice_client, query=query)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid"
    assert alice_client.get("/api/jobs").json()["results"] == []


@pytest.mark.django_db
def test_a_replayed_submit_mints_a_token_for_the_same_job(alice_client):
    first = _submit(alice_client, HTTP_IDEMPOTENCY_KEY="k1")
    again = _submit(alice_client, HTTP_IDEMPOTENCY_KEY="k1")
    assert again.json()["id"] == first.json()["id"]
    assert _reader(again["Job-Read-Token"]).get(first["Location"]).status_code == 200


@pytest.mark.django_db
def test_the_token_polls_its_job_as_its_user_does(alice_client):
    submitted = _submit(alice_client)
    reader = _reader(submitted["Job-Read-Token"])
    read = reader.get(submitted["Location"])
    own = alice_client.get(submitted["Location"])
    assert read.status_code == 200
    assert read.json() == own.json()
    assert read["ETag"] == own["ETag"]
    assert reader.head(submitted["Location"]).status_code == 200
    assert reader.get(submitted["Location"], HTTP_IF_NONE_MATCH=read["ETag"]).status_code == 304


@pytest.mark.django_db
def test_reads_with_tokens_share_the_jobs_budget_apart_from_the_users(alice_client, settings):
    """The rate-limit identity is the job: two tokens of one job spend one budget; the
    user's own budget is untouched."""
    settings.JOBS_API_RATE = "2/m"
    submitted = _submit(alice_client)  # alice: 1 of 2
    url = submitted["Location"]
    second_token = str(JobReadToken.for_job(tenant_schema="acme", job_id=submitted.json()["id"]))
    statuses = [
        _reader(token).get(url).status_code
        for token in (submitted["Job-Read-Token"], second_token, submitted["Job-Read-Token"])
    ]
    assert statuses == [200, 200, 429]
    assert alice_client.get(url).status_code == 200  # alice: 2 of 2


@pytest.mark.django_db(transaction=True)
def test_the_token_long_polls_its_job(alice_client):
    submitted = _submit(alice_client)
    reader = _reader(submitted["Job-Read-Token"])
    etag = reader.get(submitted["Location"])["ETag"]
    changer = _change_later(submitted.json()["id"], **START)
    response = reader.get(f"{submitted['Location']}?wait=20", HTTP_IF_NONE_MATCH=etag)
    changer.join()
    assert response.status_code == 200
    assert response.json()["status"] == "processing"


@pytest.mark.django_db(transaction=True)
def test_the_token_long_polls_its_job_under_asgi(acme):
    job = JobFactory(tenant=acme)
    token = JobReadToken.for_job(tenant_schema=acme.schema_name, job_id=job.id)
    headers = {"Host": HOST, "Authorization": f"Bearer {token}"}
    changer = _change_later(job.id, delay=0.5, **START)
    status, response_headers, body = run_app(
        lambda: asgi_get(f"/api/jobs/{job.id}", "wait=20", headers)
    )
    changer.join()
    assert status == 200
    assert b'"processing"' in body
    assert "ratelimit" in response_headers


def _events(lines) -> list[str]:
    """The ``data:`` lines of a stream, to its end."""
    return [line.removeprefix("data: ") for line in lines if line.startswith("data:")]


@pytest.mark.parametrize("asgi_server", [{"JOBS_EVENTS_HEARTBEAT_SECONDS": "0.2"}], indirect=True)
def test_the_token_streams_its_job_to_the_final_state(asgi_server, alice):
    base = f"http://127.0.0.1:{asgi_server.port}"
    submitted = httpx.post(
        f"{base}/api/jobs?read_token=true", json={"type": "demo.echo"}, headers=auth_headers(alice)
    )
    assert submitted.status_code == 202
    job_id = submitted.json()["id"]
    headers = {"Host": HOST, "Authorization": f"Bearer {submitted.headers['Job-Read-Token']}"}
    changer = _change_later(job_id, delay=0.5, **DONE)
    with httpx.stream(
        "GET", f"{base}/api/jobs/{job_id}/events", headers=headers, timeout=20
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.iter_lines())  # ends: the stream closes after "completed"
    changer.join()
    assert '"status":"pending"' in events[0]
    assert '"status":"completed"' in events[-1]
    assert httpx.get(f"{base}/api/events", headers=headers).status_code == 401


@pytest.mark.parametrize("asgi_server", [{"JOBS_EVENTS_HEARTBEAT_SECONDS": "0.2"}], indirect=True)
def test_a_stream_ends_when_its_read_token_expires(asgi_server, acme):
    job = JobFactory(tenant=acme)
    token = JobReadToken.for_job(tenant_schema=acme.schema_name, job_id=job.id)
    token.set_exp(lifetime=timedelta(seconds=3))
    expires_at = token["exp"]
    headers = {"Host": HOST, "Authorization": f"Bearer {token}"}
    url = f"http://127.0.0.1:{asgi_server.port}/api/jobs/{job.id}/events"
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
        deadline = expires_at + RECHECK_SECONDS + 6
        ended = False
        for _ in lines:
            if time.time() > deadline:
                break
        else:
            ended = True
    assert ended, "still streaming well past the token's expiry"
    assert time.time() >= expires_at
    assert httpx.get(url, headers=headers, timeout=5).status_code == 401
