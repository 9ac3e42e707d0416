"""Tracing (core/tracing.py): the request's span and its job's run in the real worker are
one trace, exported through the SDK's in-memory exporter; off, OpenTelemetry is never
imported on the request or job paths."""

import logging
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from core import log_context, tracing
from jobs.models import Job, JobLogLine, JobStatus
from jobs.worker import Worker
from tests.helpers import ROOT, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"


@pytest.fixture
def spans(settings):
    """Tracing on, each span exported at its end to the returned in-memory exporter."""
    settings.TRACING = True
    exporter = InMemorySpanExporter()
    tracing.configure(exporter=exporter)
    return exporter


def _submit(client, *, traceparent: str | None = None, path="/api/jobs", body=None):
    headers = {"HTTP_TRACEPARENT": traceparent} if traceparent else {}
    body = body or {"type": "test.chatty", "payload": {"lines": 1}}
    response = client.post(path, body, format="json", **headers)
    assert response.status_code == 202, response.content
    return response.json()


def test_the_jobs_run_in_the_real_worker_is_the_child_of_the_request_span(
    spans, alice_client, caplog
):
    job_id = _submit(alice_client, traceparent=CLIENT_TRACEPARENT)["id"]
    caplog.set_level(logging.INFO)

    Worker(burst=True, poll_interval=0.1).run()

    assert Job.objects.get(id=job_id).status == JobStatus.COMPLETED
    (request,) = [span for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER]
    (run,) = [span for span in spans.get_finished_spans() if span.kind == SpanKind.CONSUMER]
    # The request continues the client's trace; the run continues the request's span.
    assert format(request.context.trace_id, "032x") == CLIENT_TRACE_ID
    assert format(request.parent.span_id, "016x") == CLIENT_SPAN_ID
    assert run.context.trace_id == request.context.trace_id
    assert run.parent.span_id == request.context.span_id
    assert run.name == "job test.chatty"
    assert dict(run.attributes) == {
        "tenant": "acme",
        "job.id": job_id,
        "job.type": "test.chatty",
        "attempt": 1,
    }
    assert request.attributes["tenant"] == "acme"
    # The handler's line carries the trace id, in the log and kept with the job.
    (handler_line,) = [record for record in caplog.records if record.name == "tests.chatty"]
    assert handler_line.trace_id == CLIENT_TRACE_ID
    assert JobLogLine.objects.filter(job_id=job_id).count() == 1


def test_without_a_traceparent_the_request_starts_the_trace(spans, alice_client):
    job_id = _submit(alice_client)["id"]
    Worker(burst=True, poll_interval=0.1).run()

    (request,) = [span for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER]
    (run,) = [span for span in spans.get_finished_spans() if span.kind == SpanKind.CONSUMER]
    assert request.parent is None
    assert run.parent.span_id == request.context.span_id
    trace_id = format(request.context.trace_id, "032x")
    assert Job.objects.get(id=job_id).traceparent.startswith(f"00-{trace_id}-")


def test_a_failing_run_is_an_error_span(spans, alice_client):
    _submit(alice_client, body={"type": "demo.fail", "payload": {}})
    Worker(burst=True, poll_interval=0.1).run()

    (run,) = [span for span in spans.get_finished_spans() if span.kind == SpanKind.CONSUMER]
    assert run.status.status_code == StatusCode.ERROR
    assert [event.name for event in run.events] == ["exception"]


def test_a_snoozed_run_is_no_error(spans, alice_client):
    _submit(alice_client, body={"type": "test.snoozy", "payload": {"seconds": 60}})
    Worker(burst=True, poll_interval=0.1).run()

    (run,) = [span for span in spans.get_finished_spans() if span.kind == SpanKind.CONSUMER]
    assert run.status.status_code == StatusCode.UNSET
    assert run.events == ()


def test_every_job_of_a_batch_keeps_the_requests_span(spans, alice_client):
    body = {"jobs": [{"type": "demo.echo", "payload": {}}, {"type": "demo.echo", "payload": {}}]}
    jobs = _submit(alice_client, traceparent=CLIENT_TRACEPARENT, path="/api/jobs/batch", body=body)[
        "jobs"
    ]

    (request,) = spans.get_finished_spans()
    request_span = f"00-{CLIENT_TRACE_ID}-{request.context.span_id:016x}-01"
    assert {job.traceparent for job in Job.objects.filter(id__in=[j["id"] for j in jobs])} == {
        request_span
    }


def test_a_malformed_traceparent_is_ignored(spans, alice_client):
    job_id = _submit(alice_client, traceparent="00-not-a-trace-01")["id"]
    (request,) = spans.get_finished_spans()
    assert request.parent is None
    assert Job.objects.get(id=job_id).traceparent[3:35] == format(request.context.trace_id, "032x")


def test_a_record_inside_a_span_carries_its_trace_id(spans, rf):
    request = rf.get("/x", HTTP_TRACEPARENT=CLIENT_TRACEPARENT)
    record = logging.makeLogRecord({"msg": "inside"})
    with tracing.request_span(request):
        log_context.ContextFilter().filter(record)
    assert record.trace_id == CLIENT_TRACE_ID


def test_off_nothing_is_traced_or_stored(settings, alice_client, monkeypatch):
    """Off, a submit and a worker's run never touch OpenTelemetry: made unimportable here,
    any use would fail them."""
    settings.TRACING = False
    for name in [name for name in sys.modules if name.startswith("opentelemetry")]:
        monkeypatch.setitem(sys.modules, name, None)
    job_id = _submit(alice_client, traceparent=CLIENT_TRACEPARENT)["id"]
    Worker(burst=True, poll_interval=0.1).run()
    job = Job.objects.get(id=job_id)
    assert job.status == JobStatus.COMPLETED
    assert job.traceparent == ""


# What serves a request and runs a job, imported and driven in a fresh process with
# tracing off (the default). redis-py imports OpenTelemetry's metrics API when it is
# installed, so the probe looks for what only tracing would load: the SDK's tracer and the
# W3C propagator.
_OFF_PROBE = """
import logging
import sys

import django

django.setup()
from django.http import HttpResponse
from django.test import RequestFactory

import jobs.api.views
import jobs.services
import jobs.worker
from core import log_context, tracing
from core.request_log import RequestLogMiddleware

assert not tracing.enabled()
request = RequestFactory().get("/", HTTP_TRACEPARENT=sys.argv[1])
RequestLogMiddleware(lambda request: HttpResponse())(request)
assert tracing.current_traceparent() == ""
with tracing.job_span(traceparent="", tenant="t", job_id="j", job_type="x", attempt=1):
    log_context.ContextFilter().filter(logging.makeLogRecord({}))
loaded = {"opentelemetry.sdk.trace", "opentelemetry.trace.propagation.tracecontext"}
print(sorted(loaded & set(sys.modules)))
sys.exit(1 if loaded & set(sys.modules) else 0)
"""


def test_off_the_tracer_and_propagator_are_not_even_imported():
    probe = subprocess.run(
        [sys.executable, "-c", _OFF_PROBE, CLIENT_TRACEPARENT],
        cwd=ROOT,
        env=subprocess_env(TRACING="0"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr


def test_an_unknown_exporter_stops_the_start(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin-ish")
    with pytest.raises(ImproperlyConfigured, match="OTEL_TRACES_EXPORTER='zipkin-ish'"):
        tracing.configure()
