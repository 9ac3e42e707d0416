"""Prometheus metrics of the queue, served at ``GET /metrics`` on the public host
(``insights.views.metrics_view``).

Where each number comes from:

- ``job_queue_jobs{status,queue}`` (the live queue: pending and processing) and
  ``job_queue_oldest_pending_age_seconds{queue}``: the database, read by a custom collector
  at scrape time, one statement served by the partial claim and lease indexes, so any web
  process answers the same and the cost follows the backlog, not the table's history.
- ``jobs_limit_running_units``, ``jobs_limit_tokens`` and ``jobs_limit_throttled_jobs``
  ``{limit,scope,tenant}`` (flow control's budgets; ``tenant`` empty for a global one) and
  ``jobs_paused{scope,target}``: the database at scrape time too, through
  ``jobs.flow.selectors``. A per-tenant budget has a series only once a claim created it
  or staff overrode it, so the series follow the tenants that use limits.
- ``job_duration_seconds{type,outcome}`` and ``job_queue_wait_seconds{type}`` (enqueue, or
  due time for scheduled jobs and retries, to start): prometheus-client histograms observed
  in the worker process through ``jobs.signals``; a worker serves them on its own port
  (``run_worker --metrics-port``).
- ``http_request_duration_seconds`` and the process, platform and GC metrics:
  ``core.metrics``.
"""

from collections import defaultdict

from django.dispatch import receiver
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from accounts.roles import ALL_TENANTS
from core.metrics import scrape_registry
from jobs import selectors
from jobs.flow import selectors as flow_selectors
from jobs.models import JobStatus
from jobs.signals import job_finished, job_started

# Seconds; the same buckets serve run time and queue wait (from sub-second jobs to hours).
# Coarse on purpose: each is one series per type (and outcome) in every scrape, and
# PromQL's histogram_quantile interpolates between them. The dashboard's quantiles come
# from the rollup's finer log-scale buckets instead (``insights.models``).
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

JOB_DURATION = Histogram(
    "job_duration_seconds",
    "Run time of job attempts by type and outcome.",
    ["type", "outcome"],
    buckets=BUCKETS,
)
JOB_QUEUE_WAIT = Histogram(
    "job_queue_wait_seconds",
    "Wait from enqueue (or due time) to start of job attempts, by type.",
    ["type"],
    buckets=BUCKETS,
)


@receiver(job_started, dispatch_uid="insights.metrics.queue_wait")
def _observe_queue_wait(sender, job, **kwargs):
    if job.started_at is None:
        return
    due = max(job.created_at, job.run_at)
    JOB_QUEUE_WAIT.labels(job.type).observe(max(0.0, (job.started_at - due).total_seconds()))


@receiver(job_finished, dispatch_uid="insights.metrics.duration")
def _observe_duration(sender, job, outcome, duration, **kwargs):
    JOB_DURATION.labels(job.type, outcome).observe(duration)


def _queue_gauges():
    jobs = GaugeMetricFamily(
        "job_queue_jobs",
        "Jobs waiting or running (status pending or processing), by queue.",
        labels=["status", "queue"],
    )
    oldest = GaugeMetricFamily(
        "job_queue_oldest_pending_age_seconds",
        "Age of the oldest pending job that is due (0 when none), by queue.",
        labels=["queue"],
    )
    live = (JobStatus.PENDING, JobStatus.PROCESSING)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(live, 0))
    ages: dict[str, float] = {}
    for status, queue, count, oldest_created, now in selectors.live_queue_by_queue():
        counts[queue][status] = count
        if oldest_created is not None:
            ages[queue] = max(0.0, (now - oldest_created).total_seconds())
    for queue, by_status in sorted(counts.items()):
        for status, count in by_status.items():
            jobs.add_metric([status, queue], count)
        oldest.add_metric([queue], ages.get(queue, 0.0))
    return [jobs, oldest]


class QueueCollector:
    """The live queue's gauges, read from the database at each scrape."""

    def collect(self):
        yield from _queue_gauges()


def _flow_gauges():
    labels = ["limit", "scope", "tenant"]
    running = GaugeMetricFamily(
        "jobs_limit_running_units", "Units of running jobs on each budget.", labels=labels
    )
    tokens = GaugeMetricFamily(
        "jobs_limit_tokens", "Rate tokens left now on each rate-limited budget.", labels=labels
    )
    throttled = GaugeMetricFamily(
        "jobs_limit_throttled_jobs",
        "Due pending jobs on each budget that the last claim left waiting (0 while it has room).",
        labels=labels,
    )
    for use in flow_selectors.limit_usage(tenant=ALL_TENANTS):
        values = [use.limit, use.scope, use.tenant.schema_name if use.tenant else ""]
        running.add_metric(values, use.running)
        throttled.add_metric(values, use.throttled_jobs)
        if use.tokens is not None:
            tokens.add_metric(values, use.tokens)
    paused = GaugeMetricFamily(
        "jobs_paused", "1 for each paused queue, job type or tenant.", labels=["scope", "target"]
    )
    for pause in flow_selectors.pauses(tenant=ALL_TENANTS):
        paused.add_metric([pause.scope, pause.label], 1)
    return [running, tokens, throttled, paused]


class FlowCollector:
    """Flow control's gauges, read from the database at each scrape."""

    def collect(self):
        yield from _flow_gauges()


def render(accept: str = "") -> tuple[bytes, str]:
    """The current metrics and their content type: Prometheus text format, or OpenMetrics
    when ``accept`` (the scraper's Accept header) asks for it."""
    encoder, content_type = choose_encoder(accept)
    return encoder(scrape_registry(QueueCollector(), FlowCollector())), content_type
