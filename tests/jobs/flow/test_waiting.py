"""A client tells a job held back by flow control from one merely queued: ``waiting`` on
``GET /api/jobs/{id}`` (the poll's one statement), in its ETag, and never about another
tenant."""

import pytest
from django.db import connection

from jobs import services
from jobs.flow.models import LimitBudget, Pause
from jobs.models import Job, JobStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)


def poll(client, job, **headers):
    return client.get(f"/api/jobs/{job.id}", **headers)


def test_a_paused_or_throttled_job_says_so_and_a_queued_one_does_not(acme, alice):
    client = client_for(alice, host="acme.localhost")
    queued = services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    slotted = services.job_enqueue(tenant=acme, type="test.slotted", payload={})
    assert "waiting" not in poll(client, queued).json()
    first = poll(client, slotted)
    assert "waiting" not in first.json()

    LimitBudget.objects.create(key=f"test.slots:{acme.pk}", concurrency=2, throttled=True)
    throttled = poll(client, slotted, HTTP_IF_NONE_MATCH=first["ETag"])
    assert throttled.status_code == 200  # the ETag changed with it
    assert throttled.json()["waiting"] == "throttled"

    Pause.objects.create(scope="tenant", target=str(acme.pk), paused_by="staff")
    assert poll(client, queued).json()["waiting"] == "paused"
    assert poll(client, slotted).json()["waiting"] == "paused"


def test_job_waiting_tells_nothing_of_another_tenant(acme, globex):
    # Called as a request's transaction calls it, for acme, about globex's budget and pause.
    LimitBudget.objects.create(key=f"test.slots:{globex.pk}", throttled=True)
    Pause.objects.create(scope="tenant", target=str(globex.pk), paused_by="staff")
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.tenant_id', %s, false)", [str(acme.pk)])
        try:
            for tenant_id in (globex.pk, acme.pk):
                cursor.execute(
                    "SELECT public.job_waiting('default', 'demo.echo', %s, %s)",
                    [tenant_id, [f"test.slots:{globex.pk}"]],
                )
                assert cursor.fetchone()[0] is None
        finally:
            cursor.execute("SELECT set_config('app.tenant_id', '', false)")


def test_a_job_behind_a_spent_budget_reads_throttled_after_the_next_claim(acme, alice):
    client = client_for(alice, host="acme.localhost")
    for _ in range(3):
        services.job_enqueue(tenant=acme, type="test.single", payload={})  # concurrency 1
    # A claim of one takes the only unit and looks at no other job: nothing is marked yet.
    assert len(services.job_claim(worker_id="w1", queues=["default"], limit=1)) == 1
    waiting = services.job_claim(worker_id="w1", queues=["default"], limit=5)
    assert waiting == []  # the next claim skips them, the budget being spent...
    pending = Job.objects.filter(type="test.single", status=JobStatus.PENDING).first()
    assert poll(client, pending).json()["waiting"] == "throttled"  # ...and marks it
