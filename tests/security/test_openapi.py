"""The OpenAPI schema (/api/schema) and the offline docs page (/api/docs)."""

import re
from datetime import UTC, datetime
from io import StringIO

import pytest
import yaml
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command

from core.problems import ProblemCode
from jobs.api.serializers import (
    BATCH_MAX_JOBS,
    LIST_MAX_PAGE_SIZE,
    JobListItemSerializer,
    JobListQuerySerializer,
    JobOutputSerializer,
)
from jobs.models import JobStatus
from jobs.registry import job_types
from jobs.selectors import job_list
from tests.conftest import client_for
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

ACME = "acme.localhost"
PROBLEM = "application/problem+json"
OPERATIONS = {
    ("/api/auth/token", "post"),
    ("/api/auth/token/refresh", "post"),
    ("/api/auth/logout", "post"),
    ("/api/jobs", "get"),
    ("/api/jobs", "post"),
    ("/api/jobs/batch", "post"),
    ("/api/jobs/{id}", "get"),
    ("/api/jobs/{id}/cancel", "post"),
    ("/api/jobs/{id}/logs", "get"),
    ("/api/jobs/{id}/events", "get"),
    ("/api/events", "get"),
    ("/api/me", "get"),
}


@pytest.fixture
def schema(acme):
    response = client_for(host=ACME).get("/api/schema", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _operation(schema, path, method):
    return schema["paths"][path][method]


def _response_headers(operation, status) -> set[str]:
    return set(operation["responses"][str(status)].get("headers", {}))


def test_schema_is_served_anonymously_and_lists_every_operation(schema):
    assert schema["openapi"].startswith("3.")
    listed = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert listed == OPERATIONS


def test_schema_generates_without_warnings_and_validates():
    """``--fail-on-warn``: every view, serializer and authenticator is understood."""
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "/api/jobs/{id}/cancel" in yaml.safe_load(out.getvalue())["paths"]


def test_the_logs_operation_documents_its_response(schema):
    operation = _operation(schema, "/api/jobs/{id}/logs", "get")
    assert operation["operationId"] == "getJobLogs"
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobLog"}
    log = schema["components"]["schemas"]["JobLog"]
    assert set(log["required"]) == {"lines", "capped"}
    line = schema["components"]["schemas"]["JobLogLine"]
    assert set(line["properties"]) == {"attempt", "logged_at", "level", "logger", "message"}


def test_every_error_is_a_problem_document(schema):
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code", "request_id"}
    for path, method in OPERATIONS:
        responses = _operation(schema, path, method)["responses"]
        errors = {status for status in responses if int(status) >= 400}
        assert {"400", "401", "403", "404"} <= errors, (path, method)
        for status in errors:
            assert set(responses[status]["content"]) == {PROBLEM}, (path, method, status)
            ref = responses[status]["content"][PROBLEM]["schema"]["$ref"]
            assert ref == "#/components/schemas/Problem"


def _component(schema, ref: dict) -> dict:
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


def test_problem_codes_are_the_enum_with_their_meanings(schema):
    code = schema["components"]["schemas"]["Problem"]["properties"]["code"]
    (enum_ref,) = code["allOf"]
    assert _component(schema, enum_ref)["enum"] == [member.value for member in ProblemCode]
    for member in ProblemCode:
        assert f"`{member}` - {member.description}" in code["description"]


def test_each_error_response_lists_exactly_the_codes_of_its_status(schema):
    for path, method in OPERATIONS:
        for status, response in _operation(schema, path, method)["responses"].items():
            if int(status) < 400:
                continue
            listed = re.findall(r"^- `(\w+)`: (.+)$", response["description"], re.MULTILINE)
            expected = [(m.value, m.description) for m in ProblemCode if m.status == int(status)]
            assert listed == expected, (path, method, status)


_NOW = datetime(2026, 1, 1, tzinfo=UTC)
# A job in each state, with every column its representation can read set.
_STATES = {
    "pending": {"status": JobStatus.PENDING},
    "processing": {
        "status": JobStatus.PROCESSING,
        "attempts": 1,
        "started_at": _NOW,
        "progress": 10,
        "progress_message": "working",
    },
    "completed": {
        "status": JobStatus.COMPLETED,
        "attempts": 1,
        "started_at": _NOW,
        "completed_at": _NOW,
        "result": {"done": True},
    },
    "failed": {
        "status": JobStatus.FAILED,
        "attempts": 1,
        "started_at": _NOW,
        "completed_at": _NOW,
        "error": "boom",
    },
    "cancelled": {"status": JobStatus.CANCELLED, "completed_at": _NOW},
}


def _shape(schema, status: str) -> dict:
    """The member of the ``Job`` union for ``status``, by its discriminator."""
    union = schema["components"]["schemas"]["Job"]
    assert union["discriminator"]["propertyName"] == "status"
    return _component(schema, {"$ref": union["discriminator"]["mapping"][status]})


def test_job_is_a_union_discriminated_by_status(schema):
    union = schema["components"]["schemas"]["Job"]
    assert set(union["discriminator"]["mapping"]) == set(JobStatus.values)
    assert len(union["oneOf"]) == len(JobStatus)
    for status in JobStatus.values:
        (enum_ref,) = [_shape(schema, status)["properties"]["status"]]
        assert _component(schema, enum_ref)["enum"] == [status]
    assert "result" in _shape(schema, "completed")["properties"]
    assert "error" in _shape(schema, "failed")["required"]
    for status in ("pending", "processing", "failed", "cancelled"):
        assert "result" not in _shape(schema, status)["properties"]


@pytest.mark.parametrize("state", list(_STATES))
@pytest.mark.parametrize("listed", [False, True])
def test_a_rendered_job_has_the_documented_keys(schema, acme, state, listed):
    """Each state's member of the Job union is that shape's fields; the hand-written
    rendering must keep to them: every key documented, every required key present (in a
    poll and in a list)."""
    shape = _shape(schema, state)
    job = JobFactory(tenant=acme, **_STATES[state])
    rendered = (
        JobListItemSerializer(job_list(tenant=acme).get(pk=job.pk)).data
        if listed
        else JobOutputSerializer(job).data
    )
    assert set(shape["required"]) <= set(rendered) <= set(shape["properties"])


def test_submit_is_a_union_of_the_registered_types_with_their_payloads(schema):
    union = schema["components"]["schemas"]["JobSubmitRequest"]
    assert union["discriminator"]["propertyName"] == "type"
    assert sorted(union["discriminator"]["mapping"]) == sorted(job_types())
    sleep = _component(schema, {"$ref": union["discriminator"]["mapping"]["demo.sleep"]})
    assert sleep["additionalProperties"] is False
    assert "payload" in sleep["required"]  # its payload serializer requires seconds
    (payload_ref,) = sleep["properties"]["payload"]["allOf"]
    seconds = _component(schema, payload_ref)["properties"]["seconds"]
    assert (seconds["minimum"], seconds["maximum"]) == (0, 60)
    echo = _component(schema, {"$ref": union["discriminator"]["mapping"]["demo.echo"]})
    assert "payload" not in echo["required"]
    assert echo["properties"]["payload"]["type"] == "object"


def test_every_strict_body_refuses_additional_properties_and_the_batch_is_bounded(schema):
    components = schema["components"]["schemas"]
    for path, method in OPERATIONS:
        body = _operation(schema, path, method).get("requestBody")
        if body is None:
            continue
        component = _component(schema, body["content"]["application/json"]["schema"])
        members = [_component(schema, ref) for ref in component.get("oneOf", [])] or [component]
        for member in members:
            assert member["additionalProperties"] is False, (path, member)
    jobs = components["JobBatchSubmitRequest"]["properties"]["jobs"]
    assert (jobs["minItems"], jobs["maxItems"]) == (1, BATCH_MAX_JOBS)


def test_streams_describe_their_job_event(schema):
    for path in ("/api/events", "/api/jobs/{id}/events"):
        ok = _operation(schema, path, "get")["responses"]["200"]["content"]["text/event-stream"]
        event = _component(schema, ok["schema"])
        assert set(event["required"]) == {"event", "id", "data"}
        assert _component(schema, event["properties"]["event"])["enum"] == ["job"]
        data = event["properties"]["data"]  # a Job as JSON text (JSON Schema 2020-12)
        assert (data["type"], data["contentMediaType"]) == ("string", "application/json")
        assert data["contentSchema"] == {"$ref": "#/components/schemas/Job"}


def test_the_list_documents_every_query_parameter_it_accepts(schema):
    listed = _operation(schema, "/api/jobs", "get")
    parameters = {p["name"]: p for p in listed["parameters"] if p["in"] == "query"}
    assert set(parameters) == set(JobListQuerySerializer().fields)
    status = parameters["status"]
    assert (status["explode"], status["schema"]["type"]) == (False, "array")
    assert status["schema"]["items"]["enum"] == JobStatus.values
    assert parameters["created_by"]["schema"]["enum"] == ["me"]
    assert parameters["page_size"]["schema"]["maximum"] == LIST_MAX_PAGE_SIZE


def test_token_answers_are_documented_from_their_serializers(schema):
    for path in ("/api/auth/token", "/api/auth/token/refresh"):
        ok = _operation(schema, path, "post")["responses"]["200"]
        answer = _component(schema, ok["content"]["application/json"]["schema"])
        assert set(answer["properties"]) == set(answer["required"]) == {"access", "refresh"}


def test_jobs_operations_require_a_token_and_auth_operations_do_not(schema):
    assert schema["components"]["securitySchemes"]["jwtAuth"]["scheme"] == "bearer"
    assert schema["components"]["securitySchemes"]["jobReadToken"]["scheme"] == "bearer"
    # A job read token is offered only where it reads: its job's poll and stream.
    job_reads = {("/api/jobs/{id}", "get"), ("/api/jobs/{id}/events", "get")}
    for path, method in OPERATIONS:
        security = _operation(schema, path, method).get("security")
        if (path, method) in job_reads:
            assert security == [{"jwtAuth": []}, {"jobReadToken": []}], path
        elif path.startswith(("/api/jobs", "/api/events", "/api/me")):
            assert security == [{"jwtAuth": []}], path
        else:
            assert not security, path


def test_poll_documents_conditional_requests_long_polling_and_its_headers(schema):
    poll = _operation(schema, "/api/jobs/{id}", "get")
    parameters = {(p["in"], p["name"]): p for p in poll["parameters"]}
    assert ("header", "If-None-Match") in parameters
    wait = parameters[("query", "wait")]["schema"]
    assert (wait["minimum"], wait["maximum"]) == (1, settings.JOBS_LONGPOLL_MAX_WAIT)
    assert parameters[("path", "id")]["schema"]["format"] == "uuid"
    assert {"200", "304", "400", "429"} <= set(poll["responses"])
    assert "content" not in poll["responses"]["304"]
    for status in (200, 304):
        assert {"ETag", "Retry-After", "RateLimit", "RateLimit-Policy"} <= _response_headers(
            poll, status
        )
    assert {"Retry-After", "RateLimit"} <= _response_headers(poll, 429)


def test_submit_documents_idempotency_location_and_limits(schema):
    submit = _operation(schema, "/api/jobs", "post")
    (key,) = [p for p in submit["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header"
    assert {"202", "200", "413", "415", "422", "429"} <= set(submit["responses"])
    assert "Location" in _response_headers(submit, 202)
    assert "Retry-After" in _response_headers(submit, 429)
    union = _component(schema, submit["requestBody"]["content"]["application/json"]["schema"])
    members = [_component(schema, ref) for ref in union["oneOf"]]
    for member in members:
        assert set(member["properties"]) == {"type", "payload", "run_at", "priority"}
    # Every registered type a client may submit; internal ones (webhook deliveries) are not.
    types = {_component(schema, member["properties"]["type"])["enum"][0] for member in members}
    assert types == set(job_types()) == {n for n in settings.JOBS_TYPES if n in job_types()}
    assert "webhooks.deliver" in settings.JOBS_TYPES
    assert "webhooks.deliver" not in types


def test_cancel_documents_200_202_and_409_and_takes_no_body(schema):
    cancel = _operation(schema, "/api/jobs/{id}/cancel", "post")
    assert {"200", "202", "409"} <= set(cancel["responses"])
    assert "requestBody" not in cancel


def test_logout_is_documented_as_204(schema):
    logout = _operation(schema, "/api/auth/logout", "post")
    assert "content" not in logout["responses"]["204"]
    assert "429" in _operation(schema, "/api/auth/token", "post")["responses"]


def test_the_public_host_serves_the_same_schema(public_tenant, schema):
    response = client_for(host=settings.PUBLIC_HOST).get("/api/schema", {"format": "json"})
    assert response.status_code == 200
    assert response.json()["paths"] == schema["paths"]


@pytest.mark.parametrize("host", [ACME, "localhost"])
def test_docs_page_loads_only_our_own_static_files(acme, public_tenant, host):
    """Offline: every script, stylesheet and icon of the page is one of our static files."""
    response = client_for(host=host).get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/api/schema" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert not re.search(r"https?://", html), "the page must not load anything from elsewhere"
    for asset in assets:
        assert asset.startswith(settings.STATIC_URL), asset
        assert finders.find(asset.removeprefix(settings.STATIC_URL)), asset
