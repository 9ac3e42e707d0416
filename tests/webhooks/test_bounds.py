"""Bounds on completion webhooks (webhooks), against real sockets, PostgreSQL and the
worker loop: a whole delivery ends by its deadline however slowly its endpoint answers,
deliveries run in the platform queue, a tenant's endpoints are counted, the sweep and the
``jobs_finished`` receiver never deadlock, delivery rows go with their jobs, and addresses
that embed an IPv4 address (or port 0) are refused."""

import logging
import select
import socket
import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models.functions import Now

from jobs import services
from jobs.models import Job, JobStatus
from jobs.signals import JobOutcome, jobs_finished
from jobs.worker import Worker
from tests.webhooks.helpers import add_endpoint, new_secret
from webhooks import services as webhook_services
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)


class TricklingEndpoint:
    """A TCP server on 127.0.0.1 that reads each request, then answers one byte of an HTTP
    response every ``interval`` seconds; ``closed`` holds, per connection, the seconds from
    its accept until the client closed it."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Slow: " + b"z" * 200 + b"\r\n\r\nok"

    def __init__(self, interval: float = 3.0):
        self.interval = interval
        self.closed: list[float] = []
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/hooks"
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self):
        while not self._stop.is_set():
            if select.select([self._server], [], [], 0.1)[0]:
                client, _ = self._server.accept()
                threading.Thread(target=self._trickle, args=(client,), daemon=True).start()

    def _trickle(self, client: socket.socket):
        accepted = time.monotonic()
        with client:
            client.recv(65536)  # the request (headers and the small body)
            for byte in self.RESPONSE:
                readable = select.select([client], [], [], self.interval)[0]
                if self._stop.is_set() or (readable and not client.recv(65536)):
                    break  # the client closed the connection
                client.sendall(bytes([byte]))
        self.closed.append(time.monotonic() - accepted)

    def close(self):
        self._stop.set()
        self._acceptor.join()
        self._server.close()


@pytest.fixture
def trickling():
    endpoint = TricklingEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def allow_loopback(settings):
    settings.JOBS_WEBHOOK_ALLOW_PRIVATE = True


def test_a_trickling_endpoint_holds_each_delivery_no_longer_than_its_deadline(
    acme, settings, allow_loopback, trickling
):
    """One byte every 3 s never lets a single read time out: only a deadline for the whole
    delivery ends it. Four deliveries run at once in the platform queue's pool and each
    ends (failed, to be retried) within JOBS_WEBHOOK_TIMEOUT, not after the 200-odd bytes
    (10 minutes) the endpoint would take."""
    settings.JOBS_WEBHOOK_TIMEOUT = 4.0
    settings.JOBS_BACKOFF_BASE = 600.0  # no retry within the test
    add_endpoint(acme, trickling.url, new_secret())
    for _ in range(4):
        services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    worker = Worker(burst=True, poll_interval=0.05, platform_concurrency=4)
    run = threading.Thread(target=worker.run, daemon=True)
    started = time.monotonic()
    run.start()
    run.join(timeout=30)
    try:
        assert not run.is_alive(), "a delivery still runs 30 s later"
    finally:
        worker.request_stop()
        trickling.close()
        run.join(timeout=10)
    assert time.monotonic() - started < 30
    assert len(trickling.closed) == 4
    assert all(seconds < 4.0 + 1.5 for seconds in trickling.closed), trickling.closed

    deliveries = Job.objects.filter(type=webhook_services.DELIVERY_TYPE)
    assert {job.queue for job in deliveries} == {settings.JOBS_PLATFORM_QUEUE}
    assert {(job.status, job.attempts) for job in deliveries} == {(JobStatus.PENDING, 1)}
    errors = [delivery.attempts[0]["error"] for delivery in WebhookDelivery.objects.all()]
    assert errors == ["unreachable: TimeoutError"] * 4


def test_a_tenant_has_at_most_its_bound_of_endpoints_by_every_route(
    public_tenant, acme, globex, settings, allow_loopback
):
    """The command, the service and the admin refuse an endpoint past
    JOBS_WEBHOOK_MAX_ENDPOINTS; another tenant's count is its own, and editing one of the
    tenant's endpoints is still allowed."""
    from tests.factories import UserFactory
    from tests.helpers import admin_client_for

    settings.JOBS_WEBHOOK_MAX_ENDPOINTS = 2
    first = add_endpoint(acme, "http://127.0.0.1:9/a", new_secret())
    add_endpoint(acme, "http://127.0.0.1:9/b", new_secret())
    with pytest.raises(CommandError, match="already has 2 webhook endpoints"):
        add_endpoint(acme, "http://127.0.0.1:9/c", new_secret())
    extra = WebhookEndpoint(
        tenant=acme, url="http://127.0.0.1:9/d", secret=new_secret(), statuses=["failed"]
    )
    with pytest.raises(ValidationError, match="JOBS_WEBHOOK_MAX_ENDPOINTS"):
        webhook_services.endpoint_save(extra)
    carol = admin_client_for(UserFactory(username="carol", tenant=acme, is_staff=True))
    form = {"url": "http://127.0.0.1:9/e", "secret": new_secret(), "statuses": ["completed"]}
    refused = carol.post("/admin/webhooks/webhookendpoint/add/", form)
    assert refused.status_code == 200
    assert "already has 2 webhook endpoints" in refused.content.decode()
    assert WebhookEndpoint.objects.filter(tenant=acme).count() == 2

    edited = carol.post(f"/admin/webhooks/webhookendpoint/{first.pk}/change/", form)
    assert edited.status_code == 302
    first.refresh_from_db()
    assert first.url == form["url"]
    add_endpoint(globex, "http://127.0.0.1:9/globex", new_secret())  # its own count


def _finish(tenant, count: int) -> list:
    """``count`` jobs of ``tenant`` completed now, as ``jobs_finished`` carries them."""
    jobs = [services.job_enqueue(tenant=tenant, type="demo.echo", payload={}) for _ in range(count)]
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        status=JobStatus.COMPLETED, completed_at=Now()
    )
    return [(job, JobOutcome.COMPLETED, 0.01) for job in jobs]


def test_the_sweep_and_the_finished_jobs_receiver_never_deadlock(acme, globex, caplog):
    """Many endpoints; two threads report batches of finished jobs to the receiver (as two
    workers' outcome writers do) while two threads sweep (as their reaper rounds do), each
    on its own connection. The sweep locked every endpoint (and its tenant) FOR UPDATE in
    one transaction, which the deliveries' foreign-key checks wait for, while it waited for
    the receiver's uncommitted delivery of the same job: DeadlockDetected. Now: none, and
    every job has exactly one delivery per endpoint."""
    endpoints_per_tenant, batches, batch_size = 12, 6, 4
    WebhookEndpoint.objects.bulk_create(  # past the bound: rows that predate it
        WebhookEndpoint(
            tenant=tenant,
            url=f"http://127.0.0.1:9/{n}",
            secret=new_secret(),
            statuses=["completed"],
        )
        for tenant in (acme, globex)
        for n in range(endpoints_per_tenant)
    )
    failures = []
    reporting = threading.Event()

    def report(tenant):
        try:
            for _ in range(batches):
                jobs_finished.send(sender=Worker, runs=_finish(tenant, batch_size))
        except Exception as exc:
            failures.append(exc)
        finally:
            connection.close()

    def sweep():
        try:
            while reporting.is_set():
                webhook_services.sweep()
        except Exception as exc:
            failures.append(exc)
        finally:
            connection.close()

    caplog.set_level(logging.ERROR, logger="webhooks.services")
    reporting.set()
    reporters = [threading.Thread(target=report, args=(tenant,)) for tenant in (acme, globex)]
    sweepers = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in sweepers + reporters:
        thread.start()
    for thread in reporters:
        thread.join(timeout=120)
    reporting.clear()
    for thread in sweepers:
        thread.join(timeout=60)

    logged = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert failures + logged == []
    webhook_services.sweep()  # whatever a failure would have left
    jobs = batches * batch_size * 2
    assert WebhookDelivery.objects.count() == jobs * endpoints_per_tenant
    assert (
        Job.objects.filter(type=webhook_services.DELIVERY_TYPE).count()
        == jobs * endpoints_per_tenant
    )


def test_deliveries_are_deleted_with_their_jobs_by_cleanup(acme, allow_loopback):
    """cleanup_jobs deletes finished jobs in raw SQL batches: their delivery rows go in the
    same statement (ON DELETE CASCADE); a newer job's delivery stays."""
    endpoint = add_endpoint(acme, "http://127.0.0.1:9/a", new_secret())
    old, new = _finish(acme, 2)
    jobs_finished.send(sender=Worker, runs=[old, new])
    Job.objects.filter(pk=old[0].pk).update(completed_at=Now() - timedelta(days=3))
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 2

    call_command("cleanup_jobs", "--older-than", "2d", stdout=StringIO())

    assert not Job.objects.filter(pk=old[0].pk).exists()
    assert list(WebhookDelivery.objects.values_list("job_id", flat=True)) == [new[0].pk]


EMBEDDING_IPV4 = [
    "http://[64:ff9b::808:808]/x",  # NAT64 well-known prefix (8.8.8.8)
    "http://[64:ff9b::7f00:1]/x",  # NAT64 of 127.0.0.1
    "http://[64:ff9b:1::808:808]/x",  # NAT64 local-use prefix
    "http://[2002:808:808::1]/x",  # 6to4 (8.8.8.8)
    "http://[2002:7f00:1::1]/x",  # 6to4 of 127.0.0.1
    "http://[::8.8.8.8]/x",  # IPv4-compatible
    "http://[::127.0.0.1]/x",
]


@pytest.mark.parametrize("url", EMBEDDING_IPV4)
def test_registration_refuses_ipv6_addresses_that_embed_ipv4(acme, url):
    with pytest.raises(CommandError, match="resolves to a non-public address"):
        add_endpoint(acme, url, new_secret())
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize("url", ["http://example.com:0/x", "https://93.184.215.14:0/x"])
def test_registration_refuses_port_0(acme, url):
    with pytest.raises(CommandError, match="the port must be a number from 1 to 65535"):
        add_endpoint(acme, url, new_secret())
    assert not WebhookEndpoint.objects.exists()


def test_delivery_refuses_ipv6_addresses_that_embed_ipv4_and_port_0(acme, settings):
    """Endpoints stored before the filter knew these forms are refused at delivery, by the
    same check, and never called."""
    settings.JOBS_WEBHOOK_MAX_ENDPOINTS = 20
    urls = [*EMBEDDING_IPV4, "http://example.com:0/x"]
    WebhookEndpoint.objects.bulk_create(
        WebhookEndpoint(tenant=acme, url=url, secret=new_secret(), statuses=["completed"])
        for url in urls
    )
    jobs_finished.send(sender=Worker, runs=_finish(acme, 1))
    Worker(burst=True, poll_interval=0.05).run()

    errors = {
        delivery.endpoint.url: delivery.attempts[0]["error"]
        for delivery in WebhookDelivery.objects.select_related("endpoint")
    }
    assert set(errors) == set(urls)
    for url, error in errors.items():
        expected = "port must be" if url.endswith(":0/x") else "resolves to a non-public address"
        assert error.startswith("refused: "), (url, error)
        assert expected in error, (url, error)
    assert set(
        Job.objects.filter(type=webhook_services.DELIVERY_TYPE).values_list("status", flat=True)
    ) == {JobStatus.COMPLETED}
