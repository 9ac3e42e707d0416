"""OpenTelemetry tracing, off unless ``settings.TRACING`` (``TRACING=1``).

Off, nothing here imports OpenTelemetry and every function returns at its first line: no
span, context or propagator object is made on the request or job paths
(tests/core/test_tracing.py runs a request and a job with the package made unimportable).

On, ``configure()`` (``core.apps``, at startup) builds the process's tracer provider from
the standard ``OTEL_*`` variables: ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``
name the process, ``OTEL_TRACES_EXPORTER`` picks the exporter (``console``, ``otlp`` with
``opentelemetry-exporter-otlp-proto-http`` installed, or ``none``), ``OTEL_BSP_*`` tune
its batching. Then:

- ``request_span(request)``: each request's server span, the child of a W3C
  ``traceparent`` header when the request carries a valid one (``core.request_log``);
- ``current_traceparent()``: the current span as a ``traceparent`` value, stored with each
  job submitted inside it (``jobs.services``);
- ``job_span(...)``: a worker's run of a job, the child of the span its ``traceparent``
  names, so the request and the run share one trace;
- ``current_trace_id()``: on every log line written inside a span (``core.log_context``).
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# The tracer provider of this process, once configure() has run (tracing on).
_provider = None
_TRACER_NAME = "tenant-jobs"


def enabled() -> bool:
    return settings.TRACING


def configure(*, exporter=None) -> None:
    """Make this process's tracer provider, the global one too (for libraries' spans).
    ``exporter`` replaces the one ``OTEL_TRACES_EXPORTER`` names, exported span by span
    (tests pass the SDK's ``InMemorySpanExporter``)."""
    global _provider
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create())
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        configured = _exporter_from_environment()
        if configured is not None:
            provider.add_span_processor(BatchSpanProcessor(configured))
    if _provider is None:
        trace.set_tracer_provider(provider)
    else:
        _provider.shutdown()
    _provider = provider


def _exporter_from_environment():
    """The exporter ``OTEL_TRACES_EXPORTER`` names (default ``otlp``, as the SDK's)."""
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip() or "otlp"
    if name == "none":
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ImproperlyConfigured(
                "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http "
                "installed (or set OTEL_TRACES_EXPORTER=console or none)"
            ) from None
        return OTLPSpanExporter()
    raise ImproperlyConfigured(
        f"OTEL_TRACES_EXPORTER={name!r} is not valid: expected otlp, console or none"
    )


def _tracer():
    from opentelemetry import trace

    return (_provider or trace.get_tracer_provider()).get_tracer(_TRACER_NAME)


def request_span(request):
    """Context manager: the request's server span, current inside (a null context when
    tracing is off). Its parent is the request's ``traceparent`` header, if valid."""
    if not settings.TRACING:
        return nullcontext()
    return _request_span(request)


@contextmanager
def _request_span(request) -> Iterator[None]:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = {"traceparent": request.headers.get("traceparent", "")}
    parent = TraceContextTextMapPropagator().extract(carrier)
    with _tracer().start_as_current_span(
        f"{request.method} {request.path}",
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": request.method, "url.path": request.path},
    ) as span:
        yield
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            span.set_attribute("tenant", tenant.schema_name)


def current_traceparent() -> str:
    """The current span as a W3C ``traceparent`` value; "" when tracing is off or no span
    is current."""
    if not settings.TRACING:
        return ""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent", "")


def job_span(
    *,
    traceparent: str,
    tenant: str,
    job_id: str,
    job_type: str,
    attempt: int,
    not_errors: tuple[type[BaseException], ...] = (),
):
    """Context manager: a worker's run of a job as a consumer span, current inside, the
    child of ``traceparent`` (the span that submitted the job; a new trace without one).
    An exception leaving it marks the span as an error and is recorded on it, unless it is
    one of ``not_errors`` (a snooze). A null context when tracing is off."""
    if not settings.TRACING:
        return nullcontext()
    return _job_span(traceparent, tenant, job_id, job_type, attempt, not_errors)


@contextmanager
def _job_span(traceparent, tenant, job_id, job_type, attempt, not_errors) -> Iterator[None]:
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
    with _tracer().start_as_current_span(
        f"job {job_type}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={"tenant": tenant, "job.id": job_id, "job.type": job_type, "attempt": attempt},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except not_errors:
            raise
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            raise


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits); None when tracing is off or no span is
    current."""
    if not settings.TRACING:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
