"""The worker registry with real worker processes (``manage.py run_worker``): a worker
registers itself and beats, with the jobs it holds; a clean shutdown deregisters it; one
killed with SIGKILL stops being live within ``JOBS_WORKER_EXPIRY`` (off the Workers page,
``jobs_stats`` and the selectors) and the next reaper round deletes its row; ``/readyz``
configured to require a live worker follows it. A heartbeat round stays one statement."""

import io
import json
import signal
import socket
import tomllib

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from jobs import selectors, services
from jobs.context import JobContext
from jobs.models import Job, JobStatus, WorkerProcess
from jobs.worker import Worker
from jobs.worker.runs import Run
from tests.factories import UserFactory
from tests.helpers import ROOT, admin_client_for, start_manage
from tests.jobs.test_engine import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"JOBS_HEARTBEAT_SECONDS": "0.2", "JOBS_POLL_INTERVAL": "0.2"}
WORKERS_PAGE = "/admin/jobs/workerprocess/"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def worker(processes, *args, **env):
    process = start_manage("run_worker", *args, **{**FAST, **env})
    processes.append(process)
    return process


def registered(process) -> WorkerProcess | None:
    return WorkerProcess.objects.filter(pid=process.pid, host=socket.gethostname()).first()


def live_ids() -> set[str]:
    return set(selectors.workers_live().values_list("worker_id", flat=True))


def jobs_stats_json() -> dict:
    out = io.StringIO()
    call_command("jobs_stats", "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def admin_client(public_tenant):
    return admin_client_for(UserFactory(username="admin", is_staff=True, is_superuser=True))


@pytest.fixture
def readyz_requires_a_worker(settings):
    settings.READINESS_CHECKS = {"worker": "jobs.health.live_worker"}


def readyz() -> tuple[int, dict]:
    response = Client(HTTP_HOST="localhost").get("/readyz")
    return response.status_code, response.json()["checks"]


def test_a_worker_registers_beats_with_its_jobs_and_leaves_at_a_clean_stop(
    acme, processes, admin_client, readyz_requires_a_worker
):
    assert readyz() == (503, {"database": "ok", "redis": "ok", "worker": "no live worker"})
    process = worker(
        processes, "--queues", "default,reports:2", "--concurrency", "3", "--grace", "0.5"
    )
    row = wait_for(lambda: registered(process), timeout=30)
    assert row.pools == {"default": 3, "reports": 2, settings.JOBS_PLATFORM_QUEUE: 2}
    assert row.queues == ["default", "reports", settings.JOBS_PLATFORM_QUEUE]
    assert row.concurrency == 7
    assert row.version.startswith(VERSION)
    assert row.running_job_ids == []
    assert row.worker_id in live_ids()

    # It beats: its last beat moves on while its start stays.
    wait_for(lambda: registered(process).last_beat_at > row.last_beat_at, timeout=30)
    assert registered(process).started_at == row.started_at

    # The job it runs is in its row from the next beat.
    job = services.job_enqueue(tenant=acme, type="test.crash_once", payload={"seconds": 60})
    wait_for(lambda: registered(process).running_job_ids == [job.id], timeout=30)

    assert readyz() == (200, {"database": "ok", "redis": "ok", "worker": "ok"})
    (listed,) = jobs_stats_json()["workers"]
    assert (listed["worker_id"], listed["pid"]) == (row.worker_id, process.pid)
    assert listed["running_job_ids"] == [str(job.id)]
    table = io.StringIO()
    call_command("jobs_stats", stdout=table)
    lines = table.getvalue().splitlines()
    header = lines.index(next(line for line in lines if line.startswith("worker ")))
    cells = lines[header + 1].split()
    assert cells[:5] == [row.worker_id, row.host, str(process.pid), "default:3", "reports:2"]
    page = admin_client.get(WORKERS_PAGE).content.decode()
    assert row.worker_id in page
    assert f'href="/admin/jobs/job/{job.id}/change/"' in page

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, process.log_path.read_text()
    assert not WorkerProcess.objects.filter(worker_id=row.worker_id).exists()
    assert row.worker_id not in admin_client.get(WORKERS_PAGE).content.decode()
    assert readyz()[0] == 503
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING  # handed back


def test_a_killed_worker_is_gone_within_its_expiry_and_reaped(
    acme, processes, admin_client, settings, readyz_requires_a_worker
):
    settings.JOBS_WORKER_EXPIRY = 5  # short for the test, many heartbeats of 0.2 s
    victim = worker(processes)
    row = wait_for(lambda: registered(victim), timeout=30)
    wait_for(lambda: row.worker_id in admin_client.get(WORKERS_PAGE).content.decode())
    assert readyz()[0] == 200

    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    # No deregistration: its row stays, and stops being live once its last beat is older
    # than the expiry (by the database's clock).
    assert WorkerProcess.objects.filter(worker_id=row.worker_id).exists()
    wait_for(lambda: row.worker_id not in live_ids(), timeout=settings.JOBS_WORKER_EXPIRY + 10)
    assert row.worker_id not in admin_client.get(WORKERS_PAGE).content.decode()
    assert jobs_stats_json()["workers"] == []
    assert readyz() == (503, {"database": "ok", "redis": "ok", "worker": "no live worker"})

    # Another worker's reaper round deletes the dead one's row.
    survivor = worker(processes, JOBS_WORKER_EXPIRY="5", JOBS_REAP_INTERVAL="0.2")
    wait_for(lambda: not WorkerProcess.objects.filter(worker_id=row.worker_id).exists(), 30)
    alive = wait_for(lambda: registered(survivor), timeout=30)  # its first beat may come later
    assert live_ids() == {alive.worker_id}
    assert readyz()[0] == 200


def test_only_platform_staff_see_the_workers_page(acme, public_tenant, processes):
    process = worker(processes)
    row = wait_for(lambda: registered(process), timeout=30)
    carol = admin_client_for(UserFactory(username="carol", tenant=acme, is_staff=True))
    assert carol.get(WORKERS_PAGE).status_code == 403
    assert "Workers" not in carol.get("/admin/").content.decode()
    platform = admin_client_for(UserFactory(username="ops", is_staff=True, is_superuser=True))
    assert row.worker_id in platform.get(WORKERS_PAGE).content.decode()
    assert "Workers" in platform.get("/admin/").content.decode()


def test_a_heartbeat_round_is_one_statement_whatever_the_jobs_held(acme, django_assert_num_queries):
    """The registry rides on the lease renewal: beating costs no round trip of its own."""
    beating = Worker(concurrency=3)
    for _ in range(3):
        services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    pool = beating.pools[0]
    for job in services.job_claim(worker_id=beating.worker_id, queues=["default"], limit=3):
        context = JobContext(job=job, worker_id=beating.worker_id)
        beating._owned[job.id] = Run(job=job, context=context, pool=pool)
    with django_assert_num_queries(1):
        beating._beat()
    row = WorkerProcess.objects.get(worker_id=beating.worker_id)
    assert sorted(row.running_job_ids) == sorted(beating._owned)
    assert not any(run.context.cancelled() for run in beating._owned.values())  # renewed
    beating._owned.clear()
    with django_assert_num_queries(1):
        beating._beat()  # idle: the registry alone
    assert WorkerProcess.objects.get(worker_id=beating.worker_id).running_job_ids == []
