"""POST /api/jobs/batch: all valid → 202 with the jobs in order, one INSERT and one NOTIFY;
any invalid → 400 naming each bad item by index, nothing stored; an Idempotency-Key covers
the whole batch; one unit of rate limit per job."""

import json
import select
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.models import Job
from tests.conftest import client_for
from tests.jobs.test_engine import run_burst

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/jobs/batch"


def post(client, jobs, **headers):
    return client.post(URL, {"jobs": jobs}, format="json", **headers)


def test_a_valid_batch_is_stored_in_one_insert_in_order_and_runs(alice_client, acme):
    later = timezone.now() + timedelta(hours=1)
    items = [{"type": "demo.echo", "payload": {"n": n}} for n in range(5)]
    items.append({"type": "test.report", "priority": 5, "run_at": later.isoformat()})
    with CaptureQueriesContext(connection) as queries:
        response = post(alice_client, items)
    assert response.status_code == 202, response.json()
    jobs = response.json()["jobs"]
    assert [job["type"] for job in jobs] == ["demo.echo"] * 5 + ["test.report"]
    assert {job["status"] for job in jobs} == {"pending"}
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert sum("pg_notify" in q["sql"] for q in queries.captured_queries) == 1

    stored = {job.id: job for job in Job.objects.filter(tenant=acme)}
    assert len(stored) == 6
    last = stored[_uuid(jobs[-1]["id"])]
    assert (last.queue, last.priority, last.run_at) == ("reports", 5, later)
    assert [stored[_uuid(job["id"])].payload for job in jobs[:5]] == [{"n": n} for n in range(5)]
    run_burst()
    assert {stored_job.status for stored_job in Job.objects.filter(queue="default")} == {
        "completed"
    }


def _uuid(text):
    return uuid.UUID(text)


def test_one_notify_wakes_a_listener(alice_client):
    params = connection.get_connection_params()
    for name in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(name, None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {services.NOTIFY_CHANNEL}")
        response = post(alice_client, [{"type": "demo.echo"}, {"type": "test.report"}])
        assert response.status_code == 202
        select.select([listener.fileno()], [], [], 5)
        notes = list(listener.notifies(timeout=1, stop_after=5))
    assert [note.payload for note in notes] == ["default,reports"]


def test_any_invalid_item_is_400_by_index_and_nothing_is_stored(alice_client, acme):
    items = [
        {"type": "demo.echo"},
        {"type": "no.such.type"},
        {"type": "demo.echo"},
        {"type": "demo.sleep", "payload": {"seconds": "forever"}},
        {"type": "demo.echo", "status": "completed"},
    ]
    response = post(alice_client, items)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    errors = response.json()["errors"]["jobs"]
    assert sorted(errors) == ["1", "3", "4"]
    assert "type" in errors["1"]
    assert "payload" in errors["3"]
    assert errors["4"] == {"status": ["Unknown field."]}
    assert not Job.objects.filter(tenant=acme).exists()


@pytest.mark.parametrize(
    "body",
    [{"jobs": []}, {"jobs": {"type": "demo.echo"}}, {"jobs": [{"type": "demo.echo"}] * 1001}, {}],
)
def test_an_empty_oversized_or_malformed_list_is_400(alice_client, acme, body):
    response = alice_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert "jobs" in response.json()["errors"]
    assert not Job.objects.filter(tenant=acme).exists()


def test_one_thousand_jobs_are_accepted(settings, alice_client, acme):
    settings.JOBS_API_RATE = "5000/m"
    response = post(alice_client, [{"type": "demo.echo"}] * 1000)
    assert response.status_code == 202
    assert len(response.json()["jobs"]) == 1000
    assert Job.objects.filter(tenant=acme).count() == 1000


def test_an_idempotency_key_covers_the_whole_batch(alice_client, acme):
    items = [{"type": "demo.echo", "payload": {"n": n}} for n in range(3)]
    first = post(alice_client, items, HTTP_IDEMPOTENCY_KEY="batch-1")
    again = post(alice_client, items, HTTP_IDEMPOTENCY_KEY="batch-1")
    assert first.status_code == again.status_code == 202
    assert [job["id"] for job in again.json()["jobs"]] == [
        job["id"] for job in first.json()["jobs"]
    ]
    assert Job.objects.filter(tenant=acme).count() == 3

    other = post(alice_client, items[:2], HTTP_IDEMPOTENCY_KEY="batch-1")
    assert other.status_code == 422
    single = alice_client.post("/api/jobs", items[0], format="json", HTTP_IDEMPOTENCY_KEY="batch-1")
    assert single.status_code == 422
    assert Job.objects.filter(tenant=acme).count() == 3

    run_burst()
    final = post(alice_client, items, HTTP_IDEMPOTENCY_KEY="batch-1")
    assert final.status_code == 200
    assert {job["status"] for job in final.json()["jobs"]} == {"completed"}


def test_a_batch_key_is_per_tenant(alice_client, bob_client, acme, globex):
    items = [{"type": "demo.echo"}]
    mine = post(alice_client, items, HTTP_IDEMPOTENCY_KEY="shared")
    theirs = post(bob_client, items, HTTP_IDEMPOTENCY_KEY="shared")
    assert theirs.status_code == 202
    assert theirs.json()["jobs"][0]["id"] != mine.json()["jobs"][0]["id"]


def test_each_job_costs_one_unit_and_a_batch_too_big_for_what_is_left_is_429(
    settings, alice_client, acme
):
    settings.JOBS_API_RATE = "10/m"
    assert post(alice_client, [{"type": "demo.echo"}] * 7).status_code == 202
    refused = post(alice_client, [{"type": "demo.echo"}] * 4)
    assert refused.status_code == 429
    assert refused["Retry-After"]
    assert Job.objects.filter(tenant=acme).count() == 7
    fits = post(alice_client, [{"type": "demo.echo"}] * 3)
    assert fits.status_code == 202
    assert "r=0;" in fits["RateLimit"]
    assert alice_client.get("/api/jobs").status_code == 429


def test_an_invalid_batch_costs_a_unit_per_job(settings, alice_client):
    """Checking the jobs is the work, so a batch costs a unit per job, valid or not."""
    settings.JOBS_API_RATE = "6/m"
    assert post(alice_client, [{"type": "nope"}] * 5).status_code == 400
    assert post(alice_client, [{"type": "demo.echo"}] * 2).status_code == 429
    assert post(alice_client, [{"type": "demo.echo"}]).status_code == 202


def test_the_body_limit_holds(settings, alice_client, acme):
    settings.MAX_REQUEST_BODY_BYTES = 2048
    response = alice_client.post(
        URL, json.dumps({"jobs": [{"type": "demo.echo"}] * 200}), content_type="application/json"
    )
    assert response.status_code == 413
    assert not Job.objects.filter(tenant=acme).exists()


def test_anonymous_is_401(acme):
    assert post(client_for(host="acme.localhost"), [{"type": "demo.echo"}]).status_code == 401
