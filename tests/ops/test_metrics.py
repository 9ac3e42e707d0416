"""GET /metrics: Prometheus text, public host only, METRICS_TOKEN, and each family fed by
its real source (the database, worker signals across processes, API middleware)."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.models.functions import Now
from django.test import Client
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from jobs import metrics, services
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.factories import JobFactory
from tests.helpers import start_manage


def scrape(client) -> dict[tuple, float]:
    """``{(sample name, sorted label items): value}`` of one scrape."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


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
    assert len([q for q in queries if "job_queue" in q["sql"]]) == 1


def _histogram(samples, name, **labels) -> dict:
    wanted = tuple(sorted(labels.items()))

    def value(suffix, **extra):
        return samples[(f"{name}_{suffix}", tuple(sorted({**dict(wanted), **extra}.items())))]

    return {
        "count": value("count"),
        "sum": value("sum"),
        "inf": value("bucket", le="+Inf"),
        "le_60": value("bucket", le="60.0"),
    }


@pytest.mark.django_db(transaction=True)
def test_job_histograms_are_fed_by_a_worker(public_client, acme):
    for _ in range(2):
        services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    services.job_enqueue(tenant=acme, type="demo.fail", payload={})
    assert Worker(burst=True, poll_interval=0.1).run() == 3

    samples = scrape(public_client)
    echo = _histogram(samples, "job_duration_seconds", type="demo.echo", outcome="completed")
    assert echo["count"] == echo["inf"] == echo["le_60"] == 2
    assert echo["sum"] > 0
    fail = _histogram(samples, "job_duration_seconds", type="demo.fail", outcome="failed")
    assert fail["count"] == 1
    wait = _histogram(samples, "job_queue_wait_seconds", type="demo.echo")
    assert wait["count"] == wait["inf"] == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_processes_report_to_the_web_process(public_client, acme):
    """Workers are other processes (other machines): what one records, /metrics shows."""
    for _ in range(3):
        services.job_enqueue(tenant=acme, type="demo.echo", payload={})
    worker = start_manage(
        "run_worker",
        "--burst",
        CACHE_KEY_PREFIX=django_settings.CACHES["default"]["KEY_PREFIX"],
    )
    output, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, output
    samples = scrape(public_client)
    assert (
        _histogram(samples, "job_duration_seconds", type="demo.echo", outcome="completed")["count"]
        == 3
    )
    assert _histogram(samples, "job_queue_wait_seconds", type="demo.echo")["count"] == 3


@pytest.mark.django_db
def test_api_requests_by_endpoint_and_status_and_rate_limit_rejections(
    public_client, alice_client, settings
):
    settings.JOBS_API_RATE = "3/m"
    assert alice_client.get("/api/jobs").status_code == 200
    assert alice_client.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
    assert alice_client.get("/api/jobs").status_code == 200
    assert alice_client.get("/api/jobs").status_code == 429
    samples = scrape(public_client)

    def requests(endpoint, status):
        labels = (("endpoint", endpoint), ("method", "GET"), ("status", status))
        return samples.get(("api_requests_total", labels))

    assert requests("job-list", "200") == 2
    assert requests("job-detail", "404") == 1
    assert requests("job-list", "429") == 1
    assert samples[("api_rate_limited_total", (("endpoint", "job-list"),))] == 1
    assert not any(
        name == "api_requests_total" and ("endpoint", "metrics") in labels
        for name, labels in samples
    )  # /metrics itself is not an API request


@pytest.mark.django_db
def test_metric_writes_never_fail_when_redis_is_down(alice_client, settings, caplog):
    location = settings.CACHES["default"]["LOCATION"]
    broken = {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    metrics.increment(metrics.API_REQUESTS, "probe", "GET", "200")
    metrics.flush()  # works with Redis up
    settings.CACHES = {"default": broken}
    metrics.increment(metrics.API_REQUESTS, "probe", "GET", "200")
    metrics.observe(metrics.JOB_DURATION, "demo.echo", "completed", value=0.5)
    metrics.flush()  # buffered increments are dropped with one warning, never raised
    assert [r.getMessage() for r in caplog.records].count(
        "metrics: redis unavailable, dropping 3 increments"
    ) == 1
    assert settings.CACHES["default"]["LOCATION"] != location
