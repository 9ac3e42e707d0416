"""Prometheus metrics with prometheus-client's own objects, and the registry a scrape reads.

A process keeps its metrics in memory. Under gunicorn, whose workers are several processes
of one host, ``PROMETHEUS_MULTIPROC_DIR`` is set (``config/gunicorn.conf.py`` does it and
empties the directory when the server starts): each worker writes its samples to files
there and any worker answering ``/metrics`` sums them (prometheus-client's multiprocess
mode). Nothing is kept in Redis: Prometheus scrapes each host (docs/operations.md "Metrics").

``RequestMetricsMiddleware`` is the outermost middleware, so every answer is counted,
including the ones given before a view runs (413, unknown host, inactive tenant, 503).
"""

import time

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, multiprocess
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.values import ValueClass

# Seconds, from a cached poll to a long poll's full wait.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer HTTP requests, by route pattern (never the raw path), method and status.",
    ["route", "method", "status"],
    buckets=REQUEST_BUCKETS,
)


def multiprocess_mode() -> bool:
    """Whether this process writes its metrics to ``PROMETHEUS_MULTIPROC_DIR`` (read by
    prometheus-client when it is first imported)."""
    return getattr(ValueClass, "_multiprocess", False)


def scrape_registry(*collectors) -> CollectorRegistry:
    """A registry for one scrape: this process's metrics (in multiprocess mode the sum of the
    directory's processes), its process, platform and GC collectors, and ``collectors``."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)
        # Of the process answering the scrape: the others' are in no shared file.
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    else:
        registry.register(REGISTRY)  # its collect() yields the default registry's metrics
    for collector in collectors:
        registry.register(collector)
    return registry


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.route if match else None) or "unrouted"


class RequestMetricsMiddleware:
    """Observes every response's duration in ``http_request_duration_seconds`` by the URL
    pattern that served it (``unrouted`` when none did), method and status."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        method = request.method if request.method in _METHODS else "other"
        REQUEST_DURATION.labels(_route(request), method, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response
