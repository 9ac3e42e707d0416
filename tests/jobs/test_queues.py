"""Queues: a job type names its queue in JOBS_TYPES; API and ``@task.enqueue()`` jobs land
there; ``run_worker --queues reports:2,default:8`` gives each queue its own threads."""

import signal

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from jobs import services
from jobs.models import Job, JobStatus
from jobs.worker import parse_pools
from tests import tasks
from tests.helpers import start_manage
from tests.jobs.test_engine import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

FAST = {"JOBS_HEARTBEAT_SECONDS": "0.2", "JOBS_POLL_INTERVAL": "0.2"}


def test_an_api_job_lands_in_the_queue_its_type_names(alice_client):
    response = alice_client.post("/api/jobs", {"type": "test.report"}, format="json")
    assert response.status_code == 202, response.json()
    assert Job.objects.get(pk=response.json()["id"]).queue == "reports"
    other = alice_client.post("/api/jobs", {"type": "demo.echo"}, format="json")
    assert Job.objects.get(pk=other.json()["id"]).queue == "default"


def test_a_keyed_api_job_lands_in_its_types_queue(alice_client):
    response = alice_client.post(
        "/api/jobs", {"type": "test.report"}, format="json", HTTP_IDEMPOTENCY_KEY="q-1"
    )
    assert Job.objects.get(pk=response.json()["id"]).queue == "reports"


def test_task_enqueue_lands_in_the_registered_queue_unless_using_names_another(acme, settings):
    settings.JOBS_TYPES = {"test.record": {"task": "tests.tasks.record", "queue": "reports"}}
    # Django's QUEUES: the queues a task may name with .using() (default: "default" only).
    settings.TASKS = {
        "default": {"BACKEND": "jobs.backends.JobQueueBackend", "QUEUES": ["default", "urgent"]}
    }
    with tenant_context(acme):
        registered = tasks.record.enqueue()
        chosen = tasks.record.using(queue_name="urgent").enqueue()
    assert Job.objects.get(pk=registered.id).queue == "reports"
    assert Job.objects.get(pk=chosen.id).queue == "urgent"


def test_queue_specs_are_parsed_into_pools():
    pools = parse_pools(["reports:2", "default:8", "mail", "sms"], 3)
    assert [(pool.queues, pool.concurrency) for pool in pools] == [
        (("mail", "sms"), 3),
        (("reports",), 2),
        (("default",), 8),
    ]
    for bad in (["a", "a:2"], ["a:0"], ["a:x"], [":2"], []):
        with pytest.raises(ValueError, match="queue"):
            parse_pools(bad, 1)


def test_run_worker_refuses_a_bad_queue_spec():
    with pytest.raises(CommandError, match="--queues"):
        call_command("run_worker", "--queues", "reports:zero", "--burst")


def _count(queue: str, status: str) -> int:
    return Job.objects.filter(queue=queue, status=status).count()


def test_each_queue_has_its_own_concurrency_in_one_worker_process(acme, executions, processes):
    blockers = [
        services.job_enqueue(tenant=acme, type="test.report_block", payload={"seconds": 60})
        for _ in range(4)
    ]
    quick = [services.job_enqueue(tenant=acme, type="test.record", payload={}) for _ in range(20)]
    assert {job.queue for job in blockers} == {"reports"}
    worker = start_manage("run_worker", "--queues", "reports:2,default:8", "--grace", "0.5", **FAST)
    processes.append(worker)

    # The default queue's jobs all run while reports holds exactly its two threads.
    wait_for(lambda: _count("default", JobStatus.COMPLETED) == len(quick), timeout=60)
    wait_for(lambda: _count("reports", JobStatus.PROCESSING) == 2, timeout=30)
    assert _count("reports", JobStatus.PENDING) == 2
    assert set(Job.objects.filter(queue="reports").values_list("worker_id", flat=True)) - {
        ""
    } == set(Job.objects.filter(queue="default").values_list("worker_id", flat=True))

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.log_path.read_text()
    assert _count("reports", JobStatus.PENDING) == 4  # handed back after the grace
