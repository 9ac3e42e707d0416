"""Who a log record is about: every record written while serving a request or running a
job carries ``request_id``, ``tenant`` and ``user_id`` and, in jobs, ``job_id`` and
``attempt``.

``bind_request`` (``core.request_log.RequestLogMiddleware``) and ``bind_job`` (the worker,
around a handler run) set them in a context variable for a ``with`` block;
``ContextFilter``, on the log handler (settings ``LOGGING``), copies them onto each record.
A field given explicitly with ``extra=`` wins over the bound one. With tracing on
(``core.tracing``), a record written inside a span also carries its ``trace_id``.

``capture(sink)`` passes every record logged inside its block (in this context: this
thread, and the tasks it awaits) to ``sink`` through ``CaptureHandler``, on the root logger
(settings ``LOGGING``): the worker keeps a handler's lines with its job this way.
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.utils.functional import SimpleLazyObject, empty

from core import tracing

_fields: ContextVar[Callable[[], dict] | None] = ContextVar("log_fields", default=None)
_sink: ContextVar[Callable[[logging.LogRecord], None] | None] = ContextVar("log_sink", default=None)


def resolved_user_id(request):
    """The id of the user the request's own code identified, else None.

    The API's authentication (DRF) puts its user on ``request.user``; on the platform host
    Django's authentication middleware puts a lazy one there, which only the admin
    resolves. An unresolved one is left alone: resolving it here would read the session
    and the user outside the request's own code (after its transaction, or in a log call).
    """
    user = vars(request).get("user")
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    return getattr(user, "pk", None)


def request_fields(request) -> dict:
    """``request_id``, and ``tenant`` and ``user_id`` once routing and authentication have
    set them on ``request`` (None before)."""
    tenant = getattr(request, "tenant", None)
    return {
        "request_id": getattr(request, "request_id", None),
        "tenant": getattr(tenant, "schema_name", None),
        "user_id": resolved_user_id(request),
    }


@contextmanager
def _bound(fields: Callable[[], dict]) -> Iterator[None]:
    token = _fields.set(fields)
    try:
        yield
    finally:
        _fields.reset(token)


def bind_request(request):
    """Context manager: records logged inside carry ``request_fields(request)``, read when
    each record is written, so the tenant and user appear as soon as they are known."""
    return _bound(lambda: request_fields(request))


def bind_job(job):
    """Context manager: records logged inside carry the job's ``tenant`` (schema),
    ``user_id`` (its creator), ``job_id``, ``attempt`` (1 for the first run) and a null
    ``request_id`` (a job runs outside any request). ``job.tenant`` must be loaded."""
    fields = {
        "request_id": None,
        "tenant": job.tenant.schema_name,
        "user_id": job.created_by_id,
        "job_id": str(job.id),
        "attempt": job.attempts,
        **job_trace_fields(job),
    }
    return _bound(lambda: fields)


def job_trace_fields(job) -> dict:
    """``trace_id`` of the trace the job was submitted in (its ``traceparent``), {} for a
    job submitted with tracing off."""
    return {"trace_id": job.traceparent[3:35]} if job.traceparent else {}


def current() -> dict:
    """The fields bound here ({} outside any request or job)."""
    fields = _fields.get()
    return fields() if fields is not None else {}


class ContextFilter(logging.Filter):
    """Copies the bound fields onto each record; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if name not in vars(record):
                setattr(record, name, value)
        if tracing.enabled() and "trace_id" not in vars(record):
            trace_id = tracing.current_trace_id()
            if trace_id is not None:
                record.trace_id = trace_id
        return True


@contextmanager
def capture(sink: Callable[[logging.LogRecord], None]) -> Iterator[None]:
    """Records logged inside the block, at levels the loggers let through, go to
    ``sink`` too (besides the log)."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


class CaptureHandler(logging.Handler):
    """Hands each record to the sink ``capture`` bound, if any; does nothing elsewhere."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = _sink.get()
        if sink is not None:
            sink(record)
