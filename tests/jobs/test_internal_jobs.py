"""Internal jobs (webhook deliveries) are the platform's, not the tenant's: over HTTP, a
tenant's users and staff find them missing (list, ``?type=``, get, long poll, cancel, both
streams under uvicorn, the admin), platform staff list them under "internal: yes". The
platform's own keys (schedule ticks, deliveries) live where no ``Idempotency-Key`` reaches.
"""

import importlib
import json
import uuid

import httpx
import pytest
from django.db import connection

from jobs import services
from jobs.api.realtime.longpoll import listener
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from schedules import services as schedule_services
from schedules.models import Schedule
from tests.factories import JobFactory
from tests.jobs.api import asgi
from tests.jobs.api.asgi import auth_headers

asgi_server = asgi.asgi_server  # the fixture: a uvicorn on the test database

ADMIN_JOBS = "/admin/jobs/job/"
START = {"status": JobStatus.PROCESSING, "attempts": 1, "worker_id": "w1"}


@pytest.fixture(autouse=True)
def _stop_longpoll_listener():
    """A long poll starts this process's LISTEN connection, which must not outlive the test
    database (it would block DROP DATABASE)."""
    yield
    listener.stop()


def delivery(tenant) -> Job:
    """A pending webhook delivery job of ``tenant``, enqueued as the webhooks module does."""
    return services.job_enqueue(
        tenant=tenant, type="webhooks.deliver", payload={"delivery": str(uuid.uuid4())}
    )


def without_instance(response) -> dict:
    """A problem document less what names the request (its path, with the id asked for,
    and its id)."""
    return {k: v for k, v in response.json().items() if k not in ("instance", "request_id")}


# --- the API ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_internal_jobs_are_enqueued_internal_and_stay_so_whatever_the_registry_says(
    settings, alice_client, acme
):
    internal = delivery(acme)
    submitted = alice_client.post("/api/jobs", {"type": "demo.echo"}, format="json").json()
    assert internal.internal
    assert not Job.objects.get(pk=submitted["id"]).internal
    # A later registry that no longer calls the type internal does not expose old rows.
    types = dict(settings.JOBS_TYPES)
    types["webhooks.deliver"] = {**types["webhooks.deliver"], "internal": False}
    settings.JOBS_TYPES = types
    assert alice_client.get(f"/api/jobs/{internal.id}").status_code == 404


@pytest.mark.django_db
def test_the_list_leaves_internal_jobs_out_and_refuses_their_type_as_any_unknown_one(
    alice_client, acme
):
    delivery(acme)
    mine = JobFactory(tenant=acme)
    for query in ("", "?status=pending"):
        listed = [job["id"] for job in alice_client.get(f"/api/jobs{query}").json()["results"]]
        assert listed == [str(mine.id)]
    internal_type = alice_client.get("/api/jobs?type=webhooks.deliver")
    unknown_type = alice_client.get("/api/jobs?type=no.such.type")
    assert internal_type.status_code == unknown_type.status_code == 400
    assert internal_type.json()["code"] == unknown_type.json()["code"] == "invalid"
    assert "webhooks.deliver" not in json.dumps(internal_type.json())
    assert alice_client.get("/api/jobs?type=demo.echo").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["", "?wait=1"], ids=["poll", "long poll"])
def test_an_internal_job_is_not_found_like_a_missing_one(alice_client, acme, query):
    internal = delivery(acme)
    response = alice_client.get(f"/api/jobs/{internal.id}{query}")
    missing = alice_client.get(f"/api/jobs/{uuid.uuid4()}{query}")
    assert response.status_code == missing.status_code == 404
    assert without_instance(response) == without_instance(missing)


@pytest.mark.django_db
def test_a_client_cannot_cancel_an_internal_job(alice_client, acme):
    internal = delivery(acme)
    response = alice_client.post(f"/api/jobs/{internal.id}/cancel")
    missing = alice_client.post(f"/api/jobs/{uuid.uuid4()}/cancel")
    assert response.status_code == missing.status_code == 404
    assert without_instance(response) == without_instance(missing)
    internal.refresh_from_db()
    assert (internal.status, internal.cancel_requested) == (JobStatus.PENDING, False)


# --- streams (uvicorn) --------------------------------------------------------------------


def _events(lines):
    """The ``data:`` of each event, as they arrive."""
    for line in lines:
        if line.startswith("data: "):
            yield line.removeprefix("data: ")


@pytest.mark.parametrize("asgi_server", [{"JOBS_EVENTS_HEARTBEAT_SECONDS": "0.2"}], indirect=True)
def test_streams_leave_internal_jobs_out(asgi_server, alice, acme):
    internal = delivery(acme)
    mine = JobFactory(tenant=acme)
    base = f"http://127.0.0.1:{asgi_server.port}"
    one = httpx.get(
        f"{base}/api/jobs/{internal.id}/events", headers=auth_headers(alice), timeout=10
    )
    assert one.status_code == 404
    assert one.headers["content-type"] == "application/problem+json"
    with httpx.stream("GET", f"{base}/api/events", headers=auth_headers(alice), timeout=20) as all_:
        events = _events(all_.iter_lines())
        first = json.loads(next(events))
        assert (first["id"], first["status"]) == (str(mine.id), "pending")
        # The internal job changes first, then alice's: the next event is alice's.
        Job.objects.filter(pk=internal.id).update(**START)  # autocommit: heard at once
        Job.objects.filter(pk=mine.id).update(**START)
        second = json.loads(next(events))
    assert (second["id"], second["status"]) == (str(mine.id), "processing")


# --- the admin ----------------------------------------------------------------------------


def _listed(response) -> list:
    assert response.status_code == 200
    return [job.id for job in response.context["cl"].result_list]


def _offers_the_internal_filter(response) -> bool:
    return any(
        spec.title == "internal" and spec.has_output()
        for spec in response.context["cl"].filter_specs
    )


@pytest.mark.django_db
def test_tenant_staff_never_reach_internal_jobs(carol_client, acme):
    internal = delivery(acme)
    mine = JobFactory(tenant=acme)
    response = carol_client.get(ADMIN_JOBS)
    assert _listed(response) == [mine.id]
    assert not _offers_the_internal_filter(response)
    assert response.context["job_summary"].counts[JobStatus.PENDING] == 1
    live = carol_client.get("/admin/jobs/dashboard/").context["live"]
    assert sum(queue["pending"] for queue in live.values()) == 1
    assert _listed(carol_client.get(ADMIN_JOBS + "?internal=yes")) == [mine.id]  # not offered
    assert _listed(carol_client.get(ADMIN_JOBS + "?internal__exact=1")) == []
    opened = carol_client.get(f"{ADMIN_JOBS}{internal.id}/change/")
    assert (opened.status_code, opened["Location"]) == (302, "/admin/")
    carol_client.post(
        ADMIN_JOBS,
        {"action": "cancel_jobs", "_selected_action": [str(internal.id)], "index": "0"},
    )
    internal.refresh_from_db()
    assert internal.status == JobStatus.PENDING


@pytest.mark.django_db
def test_platform_staff_see_internal_jobs_behind_the_filter(superuser_client, acme):
    internal = delivery(acme)
    mine = JobFactory(tenant=acme)
    response = superuser_client.get(ADMIN_JOBS)
    assert _listed(response) == [mine.id]
    assert _offers_the_internal_filter(response)
    assert _listed(superuser_client.get(ADMIN_JOBS + "?internal=yes")) == [internal.id]
    assert superuser_client.get(f"{ADMIN_JOBS}{internal.id}/change/").status_code == 200


# --- keys ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_client_cannot_take_a_schedule_ticks_key(alice_client, acme):
    schedule = schedule_services.schedule_save(
        Schedule(tenant=acme, name="generate", type="ai_generation", cron="*/1 * * * *")
    )
    tick = schedule.next_run_at
    key = f"schedule:{schedule.pk}:{tick.isoformat()}"
    taken = alice_client.post(
        "/api/jobs", {"type": "demo.echo"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert taken.status_code == 202
    (scheduled,) = schedule_services.tick(now=tick)
    assert str(scheduled.id) != taken.json()["id"]
    Worker(burst=True, poll_interval=0.05).run()
    scheduled.refresh_from_db()
    assert (scheduled.type, scheduled.status) == ("ai_generation", JobStatus.COMPLETED)
    # Alice's key still answers with her own job.
    again = alice_client.post(
        "/api/jobs", {"type": "demo.echo"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert again.json()["id"] == taken.json()["id"]


@pytest.mark.django_db
def test_the_migration_marks_old_deliveries_and_moves_only_the_platforms_keys(acme, alice):
    """Rows as production has them before 0016: deliveries not marked, the platform's keys
    in the clients' space beside a client's look-alike key."""
    migration = importlib.import_module("jobs.migrations.0016_internal_jobs")
    old_delivery = JobFactory(
        tenant=acme,
        created_by=None,
        type="webhooks.deliver",
        idempotency_key=f"webhook:{uuid.uuid4()}",
    )
    old_tick = JobFactory(
        tenant=acme, created_by=None, idempotency_key="schedule:7:2026-01-01T00:00:00+00:00"
    )
    look_alike = JobFactory(
        tenant=acme, created_by=alice, idempotency_key="schedule:7:2026-01-01T00:01:00+00:00"
    )
    plain = JobFactory(tenant=acme, created_by=alice, idempotency_key="import-42")
    with connection.cursor() as cursor:
        cursor.execute(migration.MARK_INTERNAL)
        cursor.execute(migration.MOVE_KEYS)
    rows = {
        pk: rest
        for pk, *rest in Job.objects.values_list("pk", "internal", "idempotency_key", "system_key")
    }
    assert rows == {
        old_delivery.pk: [True, "", old_delivery.idempotency_key],
        old_tick.pk: [False, "", old_tick.idempotency_key],
        look_alike.pk: [False, look_alike.idempotency_key, ""],
        plain.pk: [False, "import-42", ""],
    }
