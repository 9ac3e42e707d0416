"""Signed completion webhooks (webhooks) against real HTTP receivers on loopback and
the real worker loop: the Standard Webhooks signature, retries, tenant isolation, and
refusal of non-public addresses at registration and at delivery."""

import base64
import hmac
import json
import re
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F
from django.db.models.functions import Now
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from insights.models import JobRollup
from jobs import services
from jobs.models import Job, JobStatus
from jobs.signals import JobOutcome, jobs_finished
from jobs.worker import Worker
from tests.webhooks.helpers import add_endpoint, new_secret
from webhooks import services as webhook_services
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db(transaction=True)

LATER = timezone.now() + timedelta(days=1)


def verify(secret: str, headers, body: bytes) -> bool:
    """The Standard Webhooks check, written from the specification: the signed content is
    ``{webhook-id}.{webhook-timestamp}.{body}``, the key the base64-decoded secret after
    ``whsec_``; the header holds space-separated ``v1,<base64 HMAC-SHA256>`` entries."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.digest(key, content, "sha256")).decode()
    return any(
        hmac.compare_digest(entry.split(",", 1)[1], expected)
        for entry in headers["webhook-signature"].split(" ")
        if entry.startswith("v1,")
    )


class Receiver:
    """An HTTP server on 127.0.0.1 that records each request and answers the next status
    of ``answers`` (then 200)."""

    def __init__(self, answers=()):
        self.requests = []
        self.answers = list(answers)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), body))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"try again")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/jobs"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    started = []

    def start(answers=()):
        receiver = Receiver(answers)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()


@pytest.fixture
def allow_loopback(settings):
    settings.JOBS_WEBHOOK_ALLOW_PRIVATE = True
    settings.JOBS_BACKOFF_BASE = 0.01
    settings.JOBS_BACKOFF_MAX = 0.02


def run_until(predicate, rounds=50):
    """Burst workers, one after another, until ``predicate()`` (a retry waits its backoff:
    a burst worker leaves when nothing is runnable yet)."""
    for _ in range(rounds):
        Worker(burst=True, poll_interval=0.05).run()
        if predicate():
            return
    raise AssertionError("not reached")


def test_a_finished_job_is_posted_signed_with_its_api_representation(
    acme, alice_client, allow_loopback, receivers
):
    receiver = receivers()
    secret = new_secret()
    add_endpoint(acme, receiver.url, secret)
    job = services.job_enqueue(tenant=acme, type="demo.echo", payload={"n": 1})

    run_until(lambda: receiver.requests)

    ((path, headers, body),) = receiver.requests
    assert path == "/hooks/jobs"
    assert headers["Content-Type"] == "application/json"
    assert verify(secret, headers, body)
    assert not verify(new_secret(), headers, body)
    assert json.loads(body) == alice_client.get(f"/api/jobs/{job.id}").json()
    assert json.loads(body)["status"] == JobStatus.COMPLETED
    delivery = WebhookDelivery.objects.get()
    assert headers["webhook-id"] == f"msg_{delivery.id.hex}"
    assert delivery.delivered_at is not None
    assert [(a["status"], a["body"]) for a in delivery.attempts] == [(200, "ok")]


def test_a_failing_receiver_gets_retries_with_the_same_id(acme, allow_loopback, receivers):
    receiver = receivers(answers=[500, 503])
    secret = new_secret()
    add_endpoint(acme, receiver.url, secret, statuses="failed")
    services.job_enqueue(tenant=acme, type="demo.fail", payload={})

    run_until(lambda: len(receiver.requests) == 3)

    ids = {headers["webhook-id"] for _, headers, _ in receiver.requests}
    assert len(ids) == 1
    assert all(verify(secret, headers, body) for _, headers, body in receiver.requests)
    assert json.loads(receiver.requests[0][2])["error"] == "demo failure"
    delivery = WebhookDelivery.objects.get()
    assert [a["status"] for a in delivery.attempts] == [500, 503, 200]
    assert delivery.attempts[0]["body"] == "try again"
    deliverer = Job.objects.get(type="webhooks.deliver")
    assert (deliverer.status, deliverer.attempts) == (JobStatus.COMPLETED, 3)


def test_a_job_of_another_tenant_is_never_delivered_here(acme, globex, allow_loopback, receivers):
    acme_receiver, globex_receiver = receivers(), receivers()
    add_endpoint(acme, acme_receiver.url, new_secret())
    add_endpoint(globex, globex_receiver.url, new_secret())
    acme_job = services.job_enqueue(tenant=acme, type="demo.echo", payload={"who": "acme"})

    run_until(lambda: acme_receiver.requests)
    globex_job = services.job_enqueue(tenant=globex, type="demo.echo", payload={})
    run_until(lambda: globex_receiver.requests)

    assert [json.loads(body)["id"] for _, _, body in acme_receiver.requests] == [str(acme_job.id)]
    assert [json.loads(body)["id"] for _, _, body in globex_receiver.requests] == [
        str(globex_job.id)
    ]
    for delivery in WebhookDelivery.objects.select_related("endpoint"):
        assert delivery.tenant_id == delivery.endpoint.tenant_id
        assert Job.objects.get(pk=delivery.job_id).tenant_id == delivery.tenant_id


def test_endings_no_worker_reports_are_swept_and_delivered_once(
    acme, globex, alice_client, allow_loopback, receivers
):
    """A pending job cancelled through the API and a job the reaper fails after its worker
    died reach no worker's outcome writer: the reaper round's sweep delivers them, each
    once, and only to their own tenant's endpoint."""
    receiver = receivers()
    add_endpoint(acme, receiver.url, new_secret())
    cancelled = services.job_enqueue(tenant=acme, type="demo.echo", payload={}, run_at=LATER)
    assert alice_client.post(f"/api/jobs/{cancelled.id}/cancel").status_code == 200
    orphan = services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    Job.objects.filter(pk=orphan.pk).update(  # claimed by a worker that then died
        status=JobStatus.PROCESSING,
        worker_id="dead",
        attempts=F("max_attempts"),
        started_at=Now(),
        lease_expires_at=Now() - timedelta(seconds=1),
    )
    foreign = services.job_enqueue(tenant=globex, type="demo.echo", payload={}, run_at=LATER)
    services.job_cancel(tenant=globex, job_id=foreign.id)

    run_until(lambda: len(receiver.requests) == 2)
    assert webhook_services.sweep() == 0  # nothing twice

    bodies = {json.loads(body)["id"]: json.loads(body) for _, _, body in receiver.requests}
    assert set(bodies) == {str(cancelled.id), str(orphan.id)}
    assert bodies[str(cancelled.id)]["status"] == JobStatus.CANCELLED
    assert (bodies[str(orphan.id)]["status"], bodies[str(orphan.id)]["error"]) == (
        JobStatus.FAILED,
        "worker lost",
    )
    assert not WebhookDelivery.objects.filter(job_id=foreign.id).exists()


def test_statuses_not_listed_are_not_delivered(acme, allow_loopback, receivers):
    receiver = receivers()
    add_endpoint(acme, receiver.url, new_secret(), statuses="failed,cancelled")
    services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    Worker(burst=True, poll_interval=0.05).run()
    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/x", "resolves to a non-public address (127.0.0.1)"),
        ("http://localhost/x", "resolves to a non-public address"),
        ("http://10.1.2.3/x", "non-public address (10.1.2.3)"),
        ("http://169.254.169.254/latest", "non-public address (169.254.169.254)"),
        ("http://[::1]/x", "non-public address (::1)"),
        ("http://[::ffff:127.0.0.1]/x", "non-public address"),
        ("ftp://example.com/x", "must be http:// or https://"),
        ("http://user:pw@example.com/x", "must not carry credentials"),
    ],
)
def test_registration_refuses_urls_that_are_not_public(acme, url, message):
    with pytest.raises(CommandError, match="not stored") as refused:
        add_endpoint(acme, url, new_secret())
    assert message in str(refused.value)
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("secret", "statuses", "message"),
    [
        ("plain", None, "secret: Invalid: the secret must start with whsec_"),
        ("whsec_not base64!", None, "must be base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), None, "24 to 64 bytes"),
        (None, "completed,pending", "statuses: A non-empty list of final statuses"),
    ],
)
def test_registration_refuses_bad_secrets_and_statuses(
    acme, allow_loopback, secret, statuses, message
):
    with pytest.raises(CommandError, match="not stored") as refused:
        add_endpoint(acme, "http://127.0.0.1:9/x", secret or new_secret(), statuses)
    assert message in str(refused.value)
    assert not WebhookEndpoint.objects.exists()


def test_delivery_time_check_refuses_an_address_no_longer_allowed(
    acme, settings, allow_loopback, receivers
):
    """What DNS rebinding would exploit: a URL that was public when registered and now
    resolves to a private address is checked again, and never called."""
    receiver = receivers()
    add_endpoint(acme, receiver.url, new_secret())
    settings.JOBS_WEBHOOK_ALLOW_PRIVATE = False
    services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    Worker(burst=True, poll_interval=0.05).run()

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.delivered_at is None
    assert delivery.attempts[0]["error"].startswith("refused: the host '127.0.0.1' resolves")


def test_list_and_remove_per_tenant(acme, globex, allow_loopback):
    mine = add_endpoint(acme, "http://127.0.0.1:9/a", new_secret())
    theirs = add_endpoint(globex, "http://127.0.0.1:9/b", new_secret())
    out = StringIO()
    call_command("jobs_webhook", "list", "--tenant", "acme", stdout=out)
    row = re.split(r"\s{2,}", out.getvalue().splitlines()[1])
    assert row[:3] == [str(mine.pk), "http://127.0.0.1:9/a", "cancelled,completed,failed"]
    assert "whsec_" not in out.getvalue()
    with pytest.raises(CommandError, match=f"no endpoint {theirs.pk} in acme"):
        call_command("jobs_webhook", "remove", str(theirs.pk), "--tenant", "acme")
    call_command("jobs_webhook", "remove", str(mine.pk), "--tenant", "acme", stdout=StringIO())
    assert list(WebhookEndpoint.objects.all()) == [theirs]


def test_the_delivery_type_is_not_offered_to_clients(alice_client):
    response = alice_client.post(
        "/api/jobs", {"type": "webhooks.deliver", "payload": {}}, format="json"
    )
    assert response.status_code == 400
    assert "webhooks.deliver" not in json.dumps(response.json())


@pytest.fixture
def carol_admin(public_tenant, acme):
    from tests.factories import UserFactory
    from tests.helpers import admin_client_for

    return admin_client_for(UserFactory(username="carol", tenant=acme, is_staff=True))


def test_tenant_staff_manage_their_endpoints_and_see_their_deliveries(
    carol_admin, acme, globex, allow_loopback, receivers, settings
):
    receiver = receivers()
    add_endpoint(globex, "http://127.0.0.1:9/globex", new_secret())
    form = {"url": receiver.url, "secret": new_secret(), "statuses": ["completed"]}
    form["tenant"] = str(globex.pk)
    assert carol_admin.post("/admin/webhooks/webhookendpoint/add/", form).status_code == 302
    mine = WebhookEndpoint.objects.get(url=receiver.url)
    assert mine.tenant == acme
    settings.JOBS_WEBHOOK_ALLOW_PRIVATE = False
    refused = carol_admin.post("/admin/webhooks/webhookendpoint/add/", form)
    assert "resolves to a non-public address" in refused.content.decode()
    settings.JOBS_WEBHOOK_ALLOW_PRIVATE = True

    services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    run_until(lambda: receiver.requests)
    listing = carol_admin.get("/admin/webhooks/webhookendpoint/").content.decode()
    assert receiver.url in listing
    assert "/globex" not in listing
    delivery = WebhookDelivery.objects.get()
    page = carol_admin.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/").content
    assert b"<td>200</td>" in page
    endpoint_page = carol_admin.get(f"/admin/webhooks/webhookendpoint/{mine.pk}/change/")
    assert f"msg_{delivery.pk.hex}</a> job {delivery.job_id} completed: 200" in (
        endpoint_page.content.decode()
    )
    assert carol_admin.get("/admin/webhooks/webhookdelivery/").status_code == 200


def _finished_batch(tenants, count):
    """``count`` completed jobs spread over ``tenants``, as ``jobs_finished`` carries them."""
    jobs = [
        services.job_enqueue(tenant=tenants[n % len(tenants)], type="demo.echo", payload={})
        for n in range(count)
    ]
    Job.objects.filter(pk__in=[job.pk for job in jobs]).update(
        status=JobStatus.COMPLETED, completed_at=Now()
    )
    return [(job, JobOutcome.COMPLETED, 0.01) for job in jobs]


def test_a_batch_costs_the_receivers_a_constant_number_of_round_trips(acme, globex):
    """The webhook and rollup receivers of ``jobs_finished``: one query for the endpoints
    of every tenant in the batch and one upsert for its counts, whatever its size."""
    for count in (2, 20):
        runs = _finished_batch([acme, globex], count)
        with CaptureQueriesContext(connection) as queries:
            jobs_finished.send(sender=Worker, runs=runs)
        assert len(queries) == 2, [q["sql"] for q in queries]
        (endpoints,) = [q["sql"] for q in queries if "webhook_endpoint" in q["sql"]]
        assert " IN (" in endpoints
    totals = {
        (row.tenant_id, row.type): row.completed
        for row in JobRollup.objects.filter(type="demo.echo")
    }
    assert totals == {(acme.pk, "demo.echo"): 11, (globex.pk, "demo.echo"): 11}


def test_a_batch_enqueues_deliveries_only_for_tenants_with_endpoints(acme, globex, allow_loopback):
    endpoint = WebhookEndpoint.objects.create(
        tenant=acme, url="http://127.0.0.1:9/hooks", secret=new_secret(), statuses=["completed"]
    )
    runs = _finished_batch([acme, globex], 6)
    retrying = services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    runs.append((retrying, JobOutcome.RETRYING, 0.0))
    jobs_finished.send(sender=Worker, runs=runs)
    acme_jobs = {job.pk for job, outcome, _ in runs if job.tenant_id == acme.pk}
    acme_jobs.discard(retrying.pk)
    delivered = set(WebhookDelivery.objects.values_list("job_id", flat=True))
    assert delivered == acme_jobs
    assert set(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == {endpoint.pk}
    assert Job.objects.filter(type=webhook_services.DELIVERY_TYPE).count() == 3
    jobs_finished.send(sender=Worker, runs=runs)  # told twice: nothing twice
    assert WebhookDelivery.objects.count() == 3


# --- issue 23: secrets masked after save, "send test", "redeliver" ------------------------


def test_a_saved_secret_is_never_shown_and_an_empty_field_keeps_it(
    carol_admin, acme, allow_loopback, receivers
):
    secret = new_secret()
    endpoint = add_endpoint(acme, receivers().url, secret)
    url = f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/"
    page = carol_admin.get(url).content.decode()
    assert secret not in page
    assert f"Saved (ending …{secret[-4:]})" in page
    form = {"url": endpoint.url, "secret": "", "statuses": ["completed", "failed"]}
    assert carol_admin.post(url, form).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.secret == secret
    replaced = new_secret()
    assert carol_admin.post(url, {**form, "secret": replaced}).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.secret == replaced


def test_send_test_posts_a_signed_test_message(carol_admin, acme, allow_loopback, receivers):
    receiver = receivers(answers=[204])
    secret = new_secret()
    endpoint = add_endpoint(acme, receiver.url, secret)
    response = carol_admin.post(
        "/admin/webhooks/webhookendpoint/",
        {"action": "send_test", "_selected_action": [str(endpoint.pk)], "index": "0"},
        follow=True,
    )
    shown = [str(message) for message in response.context["messages"]]
    assert shown == [f"{receiver.url}: answered 204"], response.content.decode()[-3000:]
    ((_, headers, body),) = receiver.requests
    assert json.loads(body)["type"] == "webhook.test"
    assert verify(secret, headers, body)
    assert not WebhookDelivery.objects.exists()


def test_carol_cannot_send_a_test_to_another_tenants_endpoint(
    carol_admin, globex, allow_loopback, receivers
):
    receiver = receivers()
    theirs = add_endpoint(globex, receiver.url, new_secret())
    carol_admin.post(
        "/admin/webhooks/webhookendpoint/",
        {"action": "send_test", "_selected_action": [str(theirs.pk)], "index": "0"},
    )
    assert receiver.requests == []


def test_redeliver_queues_the_delivery_again(carol_admin, acme, allow_loopback, receivers):
    receiver = receivers()
    add_endpoint(acme, receiver.url, new_secret())
    services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    run_until(lambda: len(receiver.requests) == 1)
    delivery = WebhookDelivery.objects.get()
    carol_admin.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [str(delivery.pk)], "index": "0"},
    )
    run_until(lambda: len(receiver.requests) == 2)
    delivery.refresh_from_db()
    assert [attempt["status"] for attempt in delivery.attempts] == [200, 200]
    assert receiver.requests[0][2] == receiver.requests[1][2]  # the same job's JSON
