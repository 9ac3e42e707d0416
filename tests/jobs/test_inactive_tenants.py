"""A deactivated tenant's jobs wait: workers claim none of them, other tenants' jobs run,
and everything waiting runs once the tenant is reactivated."""

import pytest
from django_tenants.utils import tenant_context

from jobs import demo, services
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.helpers import start_manage
from tests.jobs.test_engine import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def enqueue(tenant) -> Job:
    return services.job_enqueue(tenant=tenant, type="demo.echo", payload={})


def set_active(tenant, active: bool) -> None:
    tenant.is_active = active
    tenant.save(update_fields=["is_active"])


def states(jobs) -> list[tuple[str, int]]:
    """(status, attempts) of each job, from the database."""
    return [tuple(Job.objects.values_list("status", "attempts").get(pk=job.pk)) for job in jobs]


def run_burst() -> int:
    return Worker(burst=True, poll_interval=0.05, concurrency=2).run()


@pytest.mark.parametrize("cap", [None, 2], ids=["uncapped", "capped-per-tenant"])
def test_inactive_tenants_jobs_stay_pending_until_it_is_reactivated(acme, globex, settings, cap):
    settings.JOBS_MAX_RUNNING_PER_TENANT = cap
    waiting = [enqueue(acme) for _ in range(3)]
    set_active(acme, False)
    others = [enqueue(globex) for _ in range(3)]

    assert run_burst() == 3  # globex's; with acme's jobs still pending the burst ends idle
    assert states(others) == [(JobStatus.COMPLETED, 1)] * 3
    assert states(waiting) == [(JobStatus.PENDING, 0)] * 3

    set_active(acme, True)
    assert run_burst() == 3
    assert states(waiting) == [(JobStatus.COMPLETED, 1)] * 3


def test_a_task_enqueued_for_an_inactive_tenant_waits_for_its_reactivation(acme):
    set_active(acme, False)
    with tenant_context(acme):
        result = demo.echo.enqueue(greeting="later")
    assert run_burst() == 0
    with tenant_context(acme):
        assert demo.echo.get_result(result.id).status == "READY"

    set_active(acme, True)
    assert run_burst() == 1
    with tenant_context(acme):
        assert demo.echo.get_result(result.id).return_value == {"echo": {"greeting": "later"}}


@pytest.mark.slow
def test_a_running_worker_process_skips_a_tenant_deactivated_under_it(acme, globex):
    process = start_manage("run_worker", JOBS_POLL_INTERVAL="0.2", JOBS_HEARTBEAT_SECONDS="0.2")
    try:
        warm_up = enqueue(globex)
        wait_for(lambda: states([warm_up]) == [(JobStatus.COMPLETED, 1)], timeout=60)
        set_active(acme, False)
        waiting = enqueue(acme)
        # Were ``waiting`` claimable, it would be claimed no later than this younger job.
        after = enqueue(globex)
        wait_for(lambda: states([after]) == [(JobStatus.COMPLETED, 1)], timeout=30)
        assert states([waiting]) == [(JobStatus.PENDING, 0)]

        set_active(acme, True)  # no wake-up is sent: the worker's next poll finds the job
        wait_for(lambda: states([waiting]) == [(JobStatus.COMPLETED, 1)], timeout=30)
    finally:
        process.kill()
        process.wait(timeout=10)
