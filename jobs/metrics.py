"""Prometheus metrics, served at ``GET /metrics`` on the public host.

Where each number comes from, and why:

- ``job_queue_jobs{status,queue}`` (the live queue: pending and processing) and
  ``job_queue_oldest_pending_age_seconds{queue}``: the database, one statement per scrape
  served by the partial claim and lease indexes, so any web process answers the same and
  the cost follows the backlog, not the months of history in the table. Finished jobs are
  counted where they happen: ``job_duration_seconds_count{outcome}``.
- ``job_duration_seconds{type,outcome}`` and ``job_queue_wait_seconds{type}`` (enqueue, or
  due time for scheduled jobs and retries, to start): histograms observed by the workers
  through ``jobs.signals``.
- ``api_requests_total{endpoint,method,status}`` and ``api_rate_limited_total{endpoint}``:
  counted by ``ApiMetricsMiddleware`` in every web process (a 429 is only ever a rate-limit
  rejection in this service).

Workers and web processes run as many processes on many machines, so prometheus-client's
in-process metrics (and its multiprocess mode, which shares a directory on one host only)
would show one process per scrape. Histograms and counters therefore live in Redis hashes
that every process increments atomically (``HINCRBY``), in the cache's Redis under the
cache's key prefix; any web process renders the sum. A hash not written for a week
expires, which Prometheus treats as a counter reset. Metric writes never fail a request
or a job: if Redis is down they are dropped with a warning.
"""

import atexit
import bisect
import hmac
import json
import logging
import threading
from collections import defaultdict
from functools import cache

import redis
from django.conf import settings
from django.dispatch import receiver
from django.http import HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.utils import floatToGoString

from core.problems import ProblemCode, problem_response
from jobs import selectors
from jobs.models import JobStatus
from jobs.signals import job_finished, job_started

logger = logging.getLogger(__name__)

# Seconds; the same buckets serve run time and queue wait (from sub-second jobs to hours).
BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_RETENTION_SECONDS = 7 * 24 * 3600
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

JOB_DURATION = "job_duration_seconds"
JOB_QUEUE_WAIT = "job_queue_wait_seconds"
API_REQUESTS = "api_requests"
API_RATE_LIMITED = "api_rate_limited"


# --- the shared store ------------------------------------------------------------------


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _redis() -> redis.Redis:
    """The Redis of the default cache (settings.REDIS_URL unless overridden)."""
    return _client(settings.CACHES["default"]["LOCATION"])


def _key(metric: str) -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:metrics:{metric}"


def _field(*parts) -> str:
    return json.dumps(parts, separators=(",", ":"))


# Increments are buffered in the process and sent in one pipeline at most every
# _FLUSH_SECONDS (and at exit), so a worker finishing hundreds of jobs a second makes a
# few Redis round trips a second, not two per job. Readers flush their own buffer first.
_FLUSH_SECONDS = 0.5
_buffer: dict[tuple[str, str], float] = defaultdict(float)
_buffer_lock = threading.Lock()
_flush_timer: threading.Timer | None = None


def _write(metric: str, increments: list[tuple[str, float]]) -> None:
    global _flush_timer
    key = _key(metric)
    with _buffer_lock:
        for field, amount in increments:
            _buffer[(key, field)] += amount
        if _flush_timer is None:
            _flush_timer = threading.Timer(_FLUSH_SECONDS, flush)
            _flush_timer.daemon = True
            _flush_timer.start()


def flush() -> None:
    """Send the buffered increments to Redis (dropped, with a warning, if it is down)."""
    global _flush_timer
    with _buffer_lock:
        pending = dict(_buffer)
        _buffer.clear()
        _flush_timer = None
    if not pending:
        return
    try:
        pipe = _redis().pipeline(transaction=False)
        for (key, field), amount in pending.items():
            if float(amount).is_integer():
                pipe.hincrby(key, field, int(amount))
            else:
                pipe.hincrbyfloat(key, field, amount)
        for key in {key for key, _ in pending}:
            pipe.expire(key, _RETENTION_SECONDS)
        pipe.execute()
    except redis.RedisError:
        logger.warning(
            "metrics: redis unavailable, dropping %d increments", len(pending), exc_info=True
        )


atexit.register(flush)


def increment(metric: str, *labels: str) -> None:
    """Add one to the counter ``metric`` for ``labels``."""
    _write(metric, [(_field(*labels), 1)])


def observe(metric: str, *labels: str, value: float) -> None:
    """Record ``value`` (seconds) in the histogram ``metric`` for ``labels``."""
    index = bisect.bisect_left(BUCKETS, value)
    upper = BUCKETS[index] if index < len(BUCKETS) else float("inf")
    _write(metric, [(_field(*labels, upper), 1), (_field(*labels, "sum"), float(value))])


def _read(metric: str) -> dict[tuple, float]:
    flush()
    raw = _redis().hgetall(_key(metric))
    return {tuple(json.loads(field)): float(value) for field, value in raw.items()}


# --- observers ---------------------------------------------------------------------------


@receiver(job_started, dispatch_uid="jobs.metrics.queue_wait")
def _observe_queue_wait(sender, job, **kwargs):
    if job.started_at is None:
        return
    due = max(job.created_at, job.run_at)
    observe(JOB_QUEUE_WAIT, job.type, value=max(0.0, (job.started_at - due).total_seconds()))


@receiver(job_finished, dispatch_uid="jobs.metrics.duration")
def _observe_duration(sender, job, outcome, duration, **kwargs):
    observe(JOB_DURATION, job.type, outcome, value=duration)


class ApiMetricsMiddleware:
    """Counts every ``/api/`` response by endpoint (the URL name, so ids don't multiply
    series), method and status, and rate-limit rejections (429) by endpoint."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            match = getattr(request, "resolver_match", None)
            endpoint = (match.view_name if match else None) or "unmatched"
            method = request.method if request.method in _HTTP_METHODS else "other"
            increment(API_REQUESTS, endpoint, method, str(response.status_code))
            if response.status_code == 429:
                increment(API_RATE_LIMITED, endpoint)
        return response


# --- rendering ---------------------------------------------------------------------------


def _histogram(metric: str, documentation: str, labels: list[str]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(metric, documentation, labels=labels)
    series: dict[tuple, dict] = defaultdict(lambda: {"buckets": defaultdict(int), "sum": 0.0})
    for (*label_values, bound), value in _read(metric).items():
        entry = series[tuple(label_values)]
        if bound == "sum":
            entry["sum"] = value
        else:
            entry["buckets"][float(bound)] += int(value)
    for label_values, entry in sorted(series.items()):
        counts = entry["buckets"]
        cumulative = [
            (floatToGoString(bound), sum(n for b, n in counts.items() if b <= bound))
            for bound in BUCKETS
        ]
        cumulative.append(("+Inf", sum(counts.values())))
        family.add_metric(list(label_values), cumulative, entry["sum"])
    return family


def _counter(metric: str, documentation: str, labels: list[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(metric, documentation, labels=labels)
    for label_values, value in sorted(_read(metric).items()):
        family.add_metric(list(label_values), value)
    return family


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


class _Collector:
    def collect(self):
        yield from _queue_gauges()
        yield _histogram(
            JOB_DURATION, "Run time of job attempts by type and outcome.", ["type", "outcome"]
        )
        yield _histogram(
            JOB_QUEUE_WAIT,
            "Wait from enqueue (or due time) to start of job attempts, by type.",
            ["type"],
        )
        yield _counter(
            API_REQUESTS,
            "API responses by endpoint, method and status.",
            ["endpoint", "method", "status"],
        )
        yield _counter(API_RATE_LIMITED, "API requests rejected by the rate limit.", ["endpoint"])


def render(accept: str = "") -> tuple[bytes, str]:
    """The current metrics and their content type: Prometheus text format, or OpenMetrics
    when ``accept`` (the scraper's Accept header) asks for it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def _authorized(request) -> bool:
    token = settings.METRICS_TOKEN
    if not token:
        return True
    supplied = request.headers.get("Authorization", "")
    return hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())


@require_safe
def metrics_view(request):
    """``GET /metrics``, routed on the public host only; requires ``Authorization: Bearer
    <METRICS_TOKEN>`` when that setting is non-empty (checked before any query)."""
    if not _authorized(request):
        response = problem_response(
            request,
            status_code=401,
            code=ProblemCode.NOT_AUTHENTICATED,
            detail="A valid metrics token is required.",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body, content_type = render(request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
