"""What drf-spectacular cannot infer about the API: the shapes it renders by hand, the
problem-details errors, and the HTTP headers of each operation.

The serializers here only describe; the views' own serializers still parse and render.
Settings-dependent parts (registered job types, the longest ``?wait=``) are read when the
schema is generated, in serializers' ``__init__``, so the schema always matches the
running configuration.
"""

from django.conf import settings
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers

from config.problems import PROBLEM_CONTENT_TYPE
from jobs.api.serializers import JobListQuerySerializer
from jobs.models import JobStatus


class TenantJWTScheme(SimpleJWTScheme):
    """``Authorization: Bearer <access token>``, valid on its own tenant's host only."""

    target_class = "accounts.authentication.TenantJWTAuthentication"
    name = "jwtAuth"


# --- errors: RFC 9457 problem details ------------------------------------------------------


class ProblemSerializer(serializers.Serializer):
    """Every error of the API (``application/problem+json``)."""

    type = serializers.CharField(help_text='Always "about:blank": see `code`.')
    title = serializers.CharField(help_text="The HTTP status phrase.")
    status = serializers.IntegerField()
    detail = serializers.CharField(help_text="Human-readable explanation.")
    code = serializers.CharField(
        help_text="Stable machine code: invalid, parse_error, json_too_deep, invalid_job_id, "
        "invalid_wait, invalid_cursor, invalid_content_length, not_authenticated, "
        "token_not_valid, invalid_credentials, "
        "token_tenant_mismatch, user_inactive, tenant_inactive, unknown_host, not_found, "
        "invalid_transition, idempotency_key_reused, payload_too_large, "
        "unsupported_media_type, rate_limited…"
    )
    request_id = serializers.CharField(allow_null=True, help_text="Also in X-Request-ID.")
    errors = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="Field validation errors (400 `invalid` only): field → messages.",
    )


_PROBLEM_DESCRIPTIONS = {
    400: "Invalid request: `invalid` (see `errors`), `parse_error`, `json_too_deep`, "
    "`invalid_job_id`, `invalid_wait`, `invalid_cursor`, `invalid_idempotency_key`, "
    "`invalid_content_length`, `invalid_host`.",
    401: "No valid token (`not_authenticated`, `token_not_valid`), or wrong credentials "
    "(`invalid_credentials`).",
    403: "Token of another tenant (`token_tenant_mismatch`), inactive user (`user_inactive`) "
    "or tenant (`tenant_inactive`).",
    404: "Unknown host (`unknown_host`), or a job that does not exist or belongs to another "
    "tenant (`not_found`: the two are indistinguishable).",
    409: "The job has already ended (`invalid_transition`).",
    413: "Body larger than the service's limit (`payload_too_large`).",
    415: "Body that is not `application/json` (`unsupported_media_type`).",
    422: "Idempotency-Key already used with a different request (`idempotency_key_reused`).",
    429: "Rate limited (`rate_limited`): retry after `Retry-After` seconds.",
}


def problems(*codes: int) -> dict:
    """``responses`` entries for the given error statuses, as problem details."""
    return {
        (code, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            ProblemSerializer, description=_PROBLEM_DESCRIPTIONS[code]
        )
        for code in codes
    }


NO_CONTENT = OpenApiResponse(description="Done; no body.")


# --- auth ------------------------------------------------------------------------------------

TokenPairSerializer = inline_serializer(
    "TokenPair",
    {
        "access": serializers.CharField(
            help_text="JWT for `Authorization: Bearer …` on this tenant's host (5 minutes)."
        ),
        "refresh": serializers.CharField(
            help_text="JWT for /api/auth/token/refresh and /api/auth/logout; single use."
        ),
    },
)


# --- jobs --------------------------------------------------------------------------------------


class JobSerializer(serializers.Serializer):
    """A job as polled. Keys other than id/type/status/created_at appear only in the
    states named in their descriptions."""

    id = serializers.UUIDField()
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    created_at = serializers.DateTimeField()
    attempts = serializers.IntegerField(required=False, help_text="Once tried.")
    started_at = serializers.DateTimeField(required=False, allow_null=True, help_text="processing.")
    progress = serializers.IntegerField(
        required=False, min_value=0, max_value=100, help_text="processing, when reported."
    )
    progress_message = serializers.CharField(required=False, help_text="processing, when reported.")
    result = serializers.JSONField(required=False, allow_null=True, help_text="completed.")
    error = serializers.CharField(required=False, help_text="failed: a message safe to show.")
    completed_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="completed, failed."
    )
    cancelled_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="cancelled."
    )


class JobSubmitSerializer(serializers.Serializer):
    """``POST /api/jobs``; any other field is refused (400)."""

    type = serializers.ChoiceField(choices=[], help_text="A registered job type.")
    payload = serializers.DictField(
        required=False, help_text="The job type's input (validated per type); default {}."
    )
    run_at = serializers.DateTimeField(required=False, help_text="Not before this time.")
    priority = serializers.IntegerField(
        required=False, min_value=-100, max_value=100, help_text="Higher runs first."
    )

    def __init__(self, *args, **kwargs):
        from jobs.registry import job_types

        super().__init__(*args, **kwargs)
        self.fields["type"].choices = sorted(job_types())


class JobPollQuerySerializer(serializers.Serializer):
    wait = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="Long poll: answer as soon as the job differs from If-None-Match (or from "
        "its state when the request arrived), at the latest after this many seconds.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["wait"].max_value = settings.JOBS_LONGPOLL_MAX_WAIT


def _header(name: str, description: str, responses, type=str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        type,
        OpenApiParameter.HEADER,
        description=description,
        response=list(responses),
    )


def _rate_limit_headers(*codes) -> list[OpenApiParameter]:
    return [
        _header(
            "RateLimit-Policy",
            'The caller\'s quota (IETF draft): `"jobs-api";q=<requests>;w=<seconds>`.',
            codes,
        ),
        _header(
            "RateLimit",
            'What is left (IETF draft): `"jobs-api";r=<remaining>;t=<seconds to reset>`.',
            codes,
        ),
    ]


_RETRY_AFTER_429 = _header(
    "Retry-After", "Seconds to wait before the next request.", [429], OpenApiTypes.INT
)
_JOB_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id (400 if not a UUID)."
)

job_viewset_schema = extend_schema_view(
    list=extend_schema(
        summary="List jobs",
        description="The tenant's jobs, newest first, with cursor pagination.",
        parameters=[JobListQuerySerializer, *_rate_limit_headers(200, 429), _RETRY_AFTER_429],
        responses={200: JobSerializer(many=True), **problems(400, 401, 403, 404, 429)},
        tags=["jobs"],
    ),
    create=extend_schema(
        summary="Submit a job",
        description="Enqueues a job (202). With `Idempotency-Key`, repeating the request "
        "returns the same job (202 while unfinished, 200 once final) instead of a new one.",
        request=JobSubmitSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="1–255 printable ASCII characters; the same key returns the same "
                "job for JOBS_IDEMPOTENCY_TTL_HOURS.",
                pattern=r"^[\x21-\x7e]{1,255}$",
            ),
            _header("Location", "The job's URL: `/api/jobs/{id}`.", [200, 202]),
            *_rate_limit_headers(200, 202, 429),
            _RETRY_AFTER_429,
        ],
        responses={
            202: OpenApiResponse(JobSerializer, description="Accepted: the job, pending."),
            200: OpenApiResponse(
                JobSerializer, description="Idempotent replay of a job that has ended."
            ),
            **problems(400, 401, 403, 404, 413, 415, 422, 429),
        },
        tags=["jobs"],
    ),
    retrieve=extend_schema(
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
            _header("ETag", "Validator of this representation (strong).", [200, 304]),
            _header("Cache-Control", "`private, no-cache`.", [200, 304]),
            _header(
                "Retry-After",
                "Seconds until the next poll is worth making; absent once the job is final. "
                "On 429: seconds to wait.",
                [200, 304, 429],
                OpenApiTypes.INT,
            ),
            *_rate_limit_headers(200, 304, 429),
        ],
        responses={
            200: JobSerializer,
            304: OpenApiResponse(description="Not modified: the client's copy is current."),
            **problems(400, 401, 403, 404, 429),
        },
        tags=["jobs"],
    ),
    cancel=extend_schema(
        summary="Cancel a job",
        description="A pending job is cancelled at once (200); a processing one is asked to "
        "stop (202: poll it); a job that has ended cannot be cancelled (409).",
        request=None,
        parameters=[_JOB_ID, *_rate_limit_headers(200, 202, 429), _RETRY_AFTER_429],
        responses={
            200: OpenApiResponse(JobSerializer, description="Cancelled."),
            202: OpenApiResponse(JobSerializer, description="Cancellation requested."),
            **problems(400, 401, 403, 404, 409, 429),
        },
        tags=["jobs"],
    ),
)
