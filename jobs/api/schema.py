"""The jobs API's OpenAPI description beyond its serializers: each operation's parameters,
headers and problem responses, and the unions its serializers are documented as: ``Job``,
one shape per ``status`` (``JOB_SHAPES``), and ``JobSubmit``, one shape per registered job
type with that type's payload serializer (``jobs.registry``). The shapes are the views' own
serializers (``jobs.api.serializers``), documented in place.
"""

from functools import cache

from django.utils.text import camel_case_to_spaces
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.serializers import PolymorphicProxySerializerExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import serializers

from core import openapi
from jobs.api.read_tokens import SUBMIT_PARAMETERS as READ_TOKEN_PARAMETERS
from jobs.api.serializers import (
    JOB_SHAPES,
    JobBatchCreateSerializer,
    JobBatchOutputSerializer,
    JobCreateSerializer,
    JobListQuerySerializer,
    JobLogSerializer,
    JobOutputSerializer,
    JobPollQuerySerializer,
    MeSerializer,
)
from jobs.models import JobStatus
from jobs.registry import JobType, job_types


class _Union(PolymorphicProxySerializer):
    """A union of shapes by ``field`` whose members (value of ``field`` → serializer) are
    read at each schema generation (``members()``), so it follows the running settings."""

    def __init__(self, component_name: str, field: str, members):
        self._members = members
        super().__init__(component_name, serializers=[], resource_type_field_name=field)

    @property
    def serializers(self):
        return self._members()

    @serializers.setter
    def serializers(self, value):
        pass  # the members are always read from members()


def _component_name(job_type_name: str) -> str:
    """``demo.echo`` → ``DemoEcho``, ``ai_generation`` → ``AiGeneration``."""
    words = camel_case_to_spaces(job_type_name).replace(".", " ").replace("_", " ")
    return "".join(word.capitalize() for word in words.split())


@cache
def submit_shape(job_type: JobType) -> type[JobCreateSerializer]:
    """The shape of a submit of ``job_type``: its name as ``type``, and as ``payload`` its
    payload serializer (required when that has a required field), else any object."""
    if job_type.payload_serializer is None:
        payload = JobCreateSerializer._declared_fields["payload"]
    else:
        fields = job_type.payload_serializer().fields.values()
        payload = job_type.payload_serializer(
            required=any(field.required for field in fields),
            help_text=f"The input of {job_type.name}.",
        )
    shape = type(
        f"JobSubmit{_component_name(job_type.name)}Serializer",
        (JobCreateSerializer,),
        {
            "__doc__": f"A job of type `{job_type.name}`.",
            "__module__": __name__,
            "shown_type": job_type.name,
            "type": serializers.ChoiceField(choices=[job_type.name]),
            "payload": payload,
        },
    )
    return extend_schema_serializer(component_name=f"JobSubmit{_component_name(job_type.name)}")(
        shape
    )


JOB_COMPONENT = "Job"
_JOB = _Union(
    JOB_COMPONENT, "status", lambda: {status.value: JOB_SHAPES[status] for status in JobStatus}
)
_JOB_SUBMIT = _Union(
    "JobSubmit",
    "type",
    lambda: {name: submit_shape(job_type) for name, job_type in sorted(job_types().items())},
)


class JobSchema(OpenApiSerializerExtension):
    """``JobOutputSerializer`` (a poll, a stream's event, a batch's jobs, a list's items) is
    the ``Job`` union by ``status``."""

    target_class = JobOutputSerializer

    def get_name(self, auto_schema, direction):
        return JOB_COMPONENT

    def map_serializer(self, auto_schema, direction):
        return PolymorphicProxySerializerExtension(_JOB).map_serializer(auto_schema, direction)


class JobSubmitSchema(OpenApiSerializerExtension):
    """``JobCreateSerializer`` (a submit, each job of a batch) is the ``JobSubmit`` union by
    ``type``."""

    target_class = JobCreateSerializer
    priority = 1  # before core.openapi.StrictBodySchema, which would describe it as one shape

    def get_name(self, auto_schema, direction):
        return "JobSubmit"

    def map_serializer(self, auto_schema, direction):
        union = PolymorphicProxySerializerExtension(_JOB_SUBMIT).map_serializer(
            auto_schema, direction
        )
        # Every member requires its discriminator: so does the union (and a body is required).
        return {**union, "required": [_JOB_SUBMIT.resource_type_field_name]}


# The one definition of a valid Idempotency-Key: documented here, checked by the views.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="1–255 printable ASCII characters (sent empty: 400); the same key returns "
    "the same job for JOBS_IDEMPOTENCY_TTL_HOURS.",
    pattern=IDEMPOTENCY_KEY_PATTERN,
)

_JOB_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id (400 if not a UUID)."
)

job_viewset_schema = extend_schema_view(
    list=extend_schema(
        operation_id="listJobs",
        summary="List jobs",
        description="The tenant's jobs, newest first, with cursor pagination. Each is the job "
        "as `getJob` returns it, except a `result` or `payload` too long for a list "
        "(`result_omitted`, `payload_omitted`). A bad value, a parameter given twice or an "
        "unknown parameter is 400.",
        parameters=[
            JobListQuerySerializer,
            OpenApiParameter(
                "status",
                {
                    "type": "array",
                    "items": {"type": "string", "enum": list(JobStatus.values)},
                    "minItems": 1,
                    "maxItems": len(JobStatus.values),
                    "uniqueItems": True,
                },
                OpenApiParameter.QUERY,
                explode=False,
                description="Jobs in any of these statuses, separated by commas: "
                "`pending,processing`.",
            ),
            *openapi.rate_limit_headers(200, 429),
            openapi.RETRY_AFTER_429,
        ],
        responses={
            200: JobOutputSerializer(many=True),
            **openapi.problems(400, 401, 403, 404, 429),
        },
        tags=["jobs"],
    ),
    create=extend_schema(
        operation_id="submitJob",
        summary="Submit a job",
        description="Enqueues a job (202). With `Idempotency-Key`, repeating the request "
        "returns the same job (202 while unfinished, 200 once final) instead of a new one. "
        "409 `job_quota_exceeded` when the tenant already has `JOBS_MAX_UNFINISHED_PER_TENANT` "
        "unfinished jobs.",
        request=JobCreateSerializer,
        parameters=[
            _IDEMPOTENCY_KEY,
            *READ_TOKEN_PARAMETERS,
            openapi.header("Location", "The job's URL: `/api/jobs/{id}`.", [200, 202]),
            *openapi.rate_limit_headers(200, 202, 429),
            openapi.RETRY_AFTER_429,
        ],
        responses={
            202: OpenApiResponse(JobOutputSerializer, description="Accepted: the job, pending."),
            200: OpenApiResponse(
                JobOutputSerializer, description="Idempotent replay of a job that has ended."
            ),
            **openapi.problems(400, 401, 403, 404, 409, 413, 415, 422, 429),
        },
        tags=["jobs"],
    ),
    batch=extend_schema(
        operation_id="submitJobBatch",
        summary="Submit a batch of jobs",
        description="Enqueues 1 to 1,000 jobs at once, all or none: 202 with the jobs in the "
        "order submitted; if any item is invalid, 400 with the errors of the first 10 invalid "
        "items under `errors.jobs.<index>` (0-based), their count under "
        "`errors.non_field_errors` when there are more, and nothing stored. Costs one unit of "
        "rate limit per job, valid or not (429, nothing stored, if fewer are left); a batch of "
        "more jobs than the rate limit allows in a window can never pass: 422 "
        "`batch_too_large`, which names the largest batch. 409 `job_quota_exceeded` when the "
        "jobs would take the tenant beyond `JOBS_MAX_UNFINISHED_PER_TENANT` unfinished jobs. "
        "An `Idempotency-Key` covers the whole batch: repeating it returns the same jobs (202 "
        "while any is unfinished, 200 once all are final).",
        request=JobBatchCreateSerializer,
        parameters=[
            _IDEMPOTENCY_KEY,
            *openapi.rate_limit_headers(200, 202, 429),
            openapi.RETRY_AFTER_429,
        ],
        responses={
            202: OpenApiResponse(JobBatchOutputSerializer, description="Accepted: the jobs."),
            200: OpenApiResponse(
                JobBatchOutputSerializer, description="Idempotent replay; every job has ended."
            ),
            **openapi.problems(400, 401, 403, 404, 409, 413, 415, 422, 429),
        },
        tags=["jobs"],
    ),
    retrieve=extend_schema(
        operation_id="getJob",
        summary="Poll a job",
        description="A cheap, conditional poll. Send the last `ETag` as `If-None-Match`: an "
        "unchanged job answers 304 (which does not count against the rate limit). "
        "`?wait=N` long-polls.",
        parameters=[
            _JOB_ID,
            JobPollQuerySerializer,
            OpenApiParameter(
                "If-None-Match",
                str,
                OpenApiParameter.HEADER,
                description="The `ETag` of the client's copy.",
            ),
            openapi.header("ETag", "Validator of this representation (strong).", [200, 304]),
            openapi.header("Cache-Control", "`private, no-cache`.", [200, 304]),
            openapi.header(
                "Retry-After",
                "Seconds until the next poll is worth making; absent once the job is final. "
                "On 429: seconds to wait.",
                [200, 304, 429],
                OpenApiTypes.INT,
            ),
            *openapi.rate_limit_headers(200, 304, 429),
        ],
        responses={
            200: JobOutputSerializer,
            304: OpenApiResponse(description="Not modified: the client's copy is current."),
            **openapi.problems(400, 401, 403, 404, 429),
        },
        tags=["jobs"],
    ),
    logs=extend_schema(
        operation_id="getJobLogs",
        summary="Read a job's log",
        description="What the job's handler logged through its loggers while it ran, over "
        "all its attempts, oldest first: at most `JOBS_LOG_MAX_LINES` lines, each message "
        "cut to `JOBS_LOG_LINE_CHARS` characters. A run's lines appear when the run ends.",
        parameters=[_JOB_ID, *openapi.rate_limit_headers(200, 429), openapi.RETRY_AFTER_429],
        responses={200: JobLogSerializer, **openapi.problems(400, 401, 403, 404, 429)},
        tags=["jobs"],
    ),
    cancel=extend_schema(
        operation_id="cancelJob",
        summary="Cancel a job",
        description="A pending job is cancelled at once (200); a processing one is asked to "
        "stop (202: poll it); a job that has ended cannot be cancelled (409).",
        request=None,
        parameters=[_JOB_ID, *openapi.rate_limit_headers(200, 202, 429), openapi.RETRY_AFTER_429],
        responses={
            200: OpenApiResponse(JobOutputSerializer, description="Cancelled."),
            202: OpenApiResponse(JobOutputSerializer, description="Cancellation requested."),
            **openapi.problems(400, 401, 403, 404, 409, 429),
        },
        tags=["jobs"],
    ),
)


@extend_schema_field(
    {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": f"#/components/schemas/{JOB_COMPONENT}"},
    }
)
class _JobJSON(serializers.CharField):
    """A ``Job`` as one line of JSON text (an event's ``data``)."""


@extend_schema_serializer(component_name="JobEvent")
class JobEventSerializer(serializers.Serializer):
    """One event of a stream (``jobs.api.realtime.events.event``), a field per line:
    ``event: job``, ``id:`` the job's ``ETag`` (send it back as ``Last-Event-ID``), ``data:``
    the job, exactly as ``GET /api/jobs/{id}`` answers it, as one line of JSON."""

    event = serializers.ChoiceField(choices=["job"])
    id = serializers.CharField()
    data = _JobJSON()


me_schema = extend_schema_view(
    get=extend_schema(
        operation_id="getMe",
        summary="Who am I",
        description="The caller (its `user.id` is what `created_by` of its jobs holds), its "
        "display name, the host's tenant and that tenant's plan. Rate-limited like any read.",
        responses={
            200: MeSerializer,
            **openapi.problems(400, 401, 403, 404, 429),
        },
        parameters=[*openapi.rate_limit_headers(200, 429), openapi.RETRY_AFTER_429],
        tags=["auth"],
    )
)

_EVENTS_DESCRIPTION = (
    " Each event is `event: job`, `id:` the job's `ETag` and `data:` exactly the JSON of "
    "`GET /api/jobs/{id}`; a comment line (`: keep-alive`) is sent every 15 s while nothing "
    "changes. Authenticate with the `Authorization` header (read it with `fetch()`: "
    "`EventSource` cannot send one); a token in the URL is refused. Charged once against "
    "the rate limit; long polls and streams share a cap of concurrent waits per user (429). "
    "The stream ends within 2 s of the access token's expiry or the user's or tenant's "
    "deactivation: reconnect with a fresh token. Served by the ASGI server (503 under WSGI: "
    "long-poll instead)."
)


def _events_schema(operation_id: str, summary: str, description: str, parameters: list):
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description=description + _EVENTS_DESCRIPTION,
        parameters=[
            *parameters,
            # DRF's ?format= override, which a stream does not read (events._ByAcceptOnly).
            OpenApiParameter("format", exclude=True),
            *openapi.rate_limit_headers(200, 429),
            openapi.RETRY_AFTER_429,
        ],
        responses={
            (200, "text/event-stream"): OpenApiResponse(
                JobEventSerializer,
                description="A `text/event-stream` of `job` events, each of the fields of "
                "`JobEvent`: `event: job`, `id: <ETag>`, `data: <Job as one line of JSON>`, "
                "then a blank line.",
            ),
            **openapi.problems(400, 401, 403, 404, 429, 503),
        },
        tags=["jobs"],
    )


job_events_schema = _events_schema(
    "streamJobEvents",
    "Stream a job's changes",
    "The job's state at once, then every change; the stream ends after the final state. "
    "Reconnect with `Last-Event-ID` (the last event's `id`): nothing is sent until the job "
    "differs from it.",
    [
        _JOB_ID,
        OpenApiParameter(
            "Last-Event-ID",
            str,
            OpenApiParameter.HEADER,
            description="The `id` (`ETag`) of the last event received.",
        ),
    ],
)
tenant_events_schema = _events_schema(
    "streamEvents",
    "Stream every job's changes",
    "The state of each unfinished job of the tenant at once (the newest 200), then every "
    "change of any of its jobs. The stream ends when changes may have gone unheard; "
    "reconnect to get the current states again.",
    [],
)
