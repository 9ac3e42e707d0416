"""Platform work apart from tenants' jobs, with the real worker loop: webhook deliveries to
an endpoint that trickles its answer (a byte every 3 s, on loopback) hold only the
worker's platform pool, so another tenant's jobs start at once."""

import base64
import secrets
import socket
import threading

import pytest
from django.db import connection

from jobs import services
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.faults.servers import wait_until
from webhooks.models import WebhookEndpoint
from webhooks.services import DELIVERY_TYPE

pytestmark = pytest.mark.django_db(transaction=True)


class TricklingEndpoint:
    """A TCP server on 127.0.0.1 that reads each request, then answers one byte every 3 s
    until the client goes away: every read is quick, the answer never ends."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hooks"
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(client,), daemon=True).start()

    def _trickle(self, client: socket.socket):
        with client:
            client.recv(65536)
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                    client.sendall(bytes([byte]))
                    if self.stopped.wait(3):
                        return
            except OSError:
                return

    def close(self):
        self.stopped.set()
        self.listener.close()


def _count(sql: str, ids) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids])
        return cursor.fetchone()[0]


@pytest.fixture
def trickling():
    endpoint = TricklingEndpoint()
    yield endpoint
    endpoint.close()


def test_deliveries_to_a_trickling_endpoint_never_delay_another_tenants_jobs(
    acme, globex, trickling, executions, settings
):
    settings.JOBS_WEBHOOK_ALLOW_PRIVATE = True
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    WebhookEndpoint.objects.create(
        tenant=acme, url=trickling.url, secret=secret, statuses=["completed"]
    )
    worker = Worker(concurrency=4, poll_interval=0.1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        for n in range(4):
            services.job_enqueue(tenant=acme, type="demo.echo", payload={"n": n})
        deliveries = Job.objects.filter(type=DELIVERY_TYPE, status=JobStatus.PROCESSING)
        wait_until(lambda: deliveries.count() >= 2, timeout=20, what="deliveries to trickle")
        # As many of globex's jobs as the worker has threads for tenants' jobs; each records
        # when its handler ran (a claim alone proves nothing: a worker claims ahead).
        jobs = [
            services.job_enqueue(tenant=globex, type="test.record", payload={}) for _ in range(4)
        ]
        ran = "SELECT count(*) FROM public.test_job_executions WHERE job_id = ANY(%s)"
        ids = [job.id for job in jobs]
        wait_until(lambda: _count(ran, ids) == 4, timeout=10, what="globex's jobs to run")
        assert deliveries.count() >= 2, "the trickling deliveries ended before the check"
        late = (
            "SELECT count(*) FROM public.test_job_executions e JOIN job_queue j ON j.id = e.job_id"
            " WHERE e.job_id = ANY(%s) AND e.at - j.created_at > interval '1 second'"
        )
        assert _count(late, ids) == 0
    finally:
        worker.request_stop()
        thread.join(timeout=60)


def test_a_burst_ends_only_after_a_round_in_which_every_pool_claimed(acme, settings):
    """A pool that found nothing sends no claim until told of work (a NOTIFY, the poll
    interval): a burst must not end on such a round, or a job enqueued on a run's outcome
    (a delivery) whose NOTIFY is not read yet is left behind."""
    job = services.job_enqueue(
        tenant=acme, type="demo.echo", payload={}, queue=settings.JOBS_PLATFORM_QUEUE
    )
    worker = Worker(burst=True, poll_interval=0.05)
    for pool in worker.pools:
        pool.maybe_work = False  # as after rounds that found nothing
    assert worker.run() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
