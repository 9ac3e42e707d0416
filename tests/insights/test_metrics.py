"""GET /metrics: Prometheus text, public host only, METRICS_TOKEN, and each family fed by
its real source: the database (queue gauges), the worker (job histograms, on its own port),
the outermost middleware (request histogram) and prometheus-client's process collectors.
A process's metrics only grow, so the tests compare a scrape with the one before."""

import signal
import time
import urllib.request
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from insights import metrics
from jobs import services
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.factories import JobFactory
from tests.faults.servers import free_port
from tests.helpers import start_manage


def parse(text: str) -> dict[tuple, float]:
    """``{(sample name, sorted label items): value}`` of a scrape's text."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client) -> dict[tuple, float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


@pytest.mark.django_db
def test_served_on_the_public_host_only(public_client, acme):
    assert "# TYPE job_queue_jobs gauge" in public_client.get("/metrics").content.decode()
    assert Client(HTTP_HOST="acme.localhost").get("/metrics").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("authorization", "expected"),
    [(None, 401), ("Bearer wrong", 401), ("s3cret", 401), ("Bearer s3cret", 200)],
)
def test_token_required_when_set(public_client, settings, authorization, expected):
    settings.METRICS_TOKEN = "s3cret"
    headers = {"Authorization": authorization} if authorization else {}
    response = public_client.get("/metrics", headers=headers)
    assert response.status_code == expected
    if expected == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"job_queue" not in response.content


@pytest.mark.django_db
def test_live_queue_gauges_come_from_the_database_in_one_query(public_client, acme, globex):
    old = JobFactory(tenant=acme, created_by=None)
    Job.objects.filter(pk=old.pk).update(created_at=Now() - timedelta(minutes=10))
    JobFactory(tenant=globex, created_by=None, queue="reports")
    JobFactory(tenant=globex, created_by=None, queue="reports", run_at=Now() + timedelta(days=1))
    processing = JobFactory(tenant=acme, created_by=None)
    Job.objects.filter(pk=processing.pk).update(status=JobStatus.PROCESSING)
    done = JobFactory(tenant=acme, created_by=None)
    Job.objects.filter(pk=done.pk).update(status=JobStatus.COMPLETED, completed_at=Now())

    samples = scrape(public_client)
    gauge = "job_queue_jobs"
    assert samples[(gauge, (("queue", "default"), ("status", "pending")))] == 1
    assert samples[(gauge, (("queue", "default"), ("status", "processing")))] == 1
    assert samples[(gauge, (("queue", "reports"), ("status", "pending")))] == 2
    assert samples[(gauge, (("queue", "reports"), ("status", "processing")))] == 0
    oldest = "job_queue_oldest_pending_age_seconds"
    assert 600 <= samples[(oldest, (("queue", "default"),))] < 900
    assert 0 <= samples[(oldest, (("queue", "reports"),))] < 60
    with CaptureQueriesContext(connection) as queries:
        metrics.render()
    # The queue gauges' one read (flow control's gauges read their budgets apart).
    queue_reads = [q for q in queries if "job_queue" in q["sql"] and "flow_budget" not in q["sql"]]
    assert len(queue_reads) == 1


def _histogram(samples, name, **labels) -> dict:
    wanted = tuple(sorted(labels.items()))

    def value(suffix, **extra):
        key = (f"{name}_{suffix}", tuple(sorted({**dict(wanted), **extra}.items())))
        return samples.get(key, 0.0)

    return {
        "count": value("count"),
        "sum": value("sum"),
        "inf": value("bucket", le="+Inf"),
        "le_60": value("bucket", le="60.0"),
    }


def _grown(before, after, name, **labels) -> dict:
    old, new = _histogram(before, name, **labels), _histogram(after, name, **labels)
    return {key: new[key] - old[key] for key in new}


@pytest.mark.django_db(transaction=True)
def test_job_histograms_are_fed_by_a_worker(public_client, acme):
    before = scrape(public_client)
    for _ in range(2):
        services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    services.job_enqueue(tenant=acme, type="demo.fail", payload={})
    assert Worker(burst=True, poll_interval=0.1).run() == 3

    after = scrape(public_client)
    echo = _grown(before, after, "job_duration_seconds", type="demo.echo", outcome="completed")
    assert echo["count"] == echo["inf"] == echo["le_60"] == 2
    assert echo["sum"] > 0
    fail = _grown(before, after, "job_duration_seconds", type="demo.fail", outcome="failed")
    assert fail["count"] == 1
    wait = _grown(before, after, "job_queue_wait_seconds", type="demo.echo")
    assert wait["count"] == wait["inf"] == 2


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http, loopback)
            return response.read().decode()
    except OSError:
        return None


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_serves_its_metrics_on_its_own_port(acme):
    """A worker is another process (another machine): it is scraped itself."""
    port = free_port()
    worker = start_manage("run_worker", "--metrics-port", str(port), "--grace", "1")
    try:
        for _ in range(3):
            services.job_enqueue(tenant=acme, type="demo.echo", payload={})
        deadline = time.monotonic() + 60
        samples = {}
        while time.monotonic() < deadline:
            text = _get(f"http://127.0.0.1:{port}/")
            samples = parse(text) if text else {}
            done = _histogram(
                samples, "job_duration_seconds", type="demo.echo", outcome="completed"
            )
            if done["count"] == 3:
                break
            assert worker.poll() is None, worker.log_path.read_text()
            time.sleep(0.2)
        assert _histogram(samples, "job_queue_wait_seconds", type="demo.echo")["count"] == 3
        assert samples[("process_cpu_seconds_total", ())] > 0
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, worker.log_path.read_text()


def _requests(samples, route, method, status) -> float:
    labels = (("method", method), ("route", route), ("status", status))
    return samples.get(("http_request_duration_seconds_count", labels), 0.0)


@pytest.mark.django_db
def test_every_answer_is_in_the_request_histogram_by_route_method_and_status(
    public_client, alice_client, acme, settings
):
    settings.JOBS_API_RATE = "3/m"
    settings.MAX_REQUEST_BODY_BYTES = 1024
    before = scrape(public_client)
    assert alice_client.get("/api/jobs").status_code == 200
    missing = uuid.uuid4()
    assert alice_client.get(f"/api/jobs/{missing}").status_code == 404
    assert alice_client.get("/api/jobs").status_code == 200
    assert alice_client.get("/api/jobs").status_code == 429
    too_large = alice_client.post("/api/jobs", data="x" * 2048, content_type="application/json")
    assert too_large.status_code == 413
    assert Client(HTTP_HOST="nobody.localhost").get("/api/jobs").status_code == 404
    after = scrape(public_client)

    def grown(route, method, status):
        return _requests(after, route, method, status) - _requests(before, route, method, status)

    list_route = alice_client.get("/api/jobs").wsgi_request.resolver_match.route
    detail_route = alice_client.get(f"/api/jobs/{missing}").wsgi_request.resolver_match.route
    assert grown(list_route, "GET", "200") == 2
    assert grown(list_route, "GET", "429") == 1
    assert grown(detail_route, "GET", "404") == 1
    assert not any(str(missing) in str(labels) for _, labels in after)  # patterns, never paths
    # Answered before routing: no route pattern, still counted with their status.
    assert grown("unrouted", "POST", "413") == 1
    assert grown("unrouted", "GET", "404") == 1
    # prometheus-client's default collectors: this process, its platform and its GC.
    assert after[("process_cpu_seconds_total", ())] > 0
    assert ("python_gc_collections_total", (("generation", "0"),)) in after
    assert any(name == "python_info" for name, _ in after)
