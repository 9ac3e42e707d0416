"""The jobs API's OpenAPI description: the shapes it renders by hand and each
operation's parameters, headers and problem responses.

These serializers only describe; the views' own serializers parse and render.
Settings-dependent parts (registered job types, the longest ``?wait=``) are read when the
schema is generated, in serializers' ``__init__``, so the schema always matches the
running configuration.
"""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from core import openapi
from jobs.api.serializers import JobListQuerySerializer
from jobs.models import JobStatus


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


_JOB_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The job's id (400 if not a UUID)."
)

job_viewset_schema = extend_schema_view(
    list=extend_schema(
        summary="List jobs",
        description="The tenant's jobs, newest first, with cursor pagination.",
        parameters=[
            JobListQuerySerializer,
            *openapi.rate_limit_headers(200, 429),
            openapi.RETRY_AFTER_429,
        ],
        responses={200: JobSerializer(many=True), **openapi.problems(400, 401, 403, 404, 429)},
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
            openapi.header("Location", "The job's URL: `/api/jobs/{id}`.", [200, 202]),
            *openapi.rate_limit_headers(200, 202, 429),
            openapi.RETRY_AFTER_429,
        ],
        responses={
            202: OpenApiResponse(JobSerializer, description="Accepted: the job, pending."),
            200: OpenApiResponse(
                JobSerializer, description="Idempotent replay of a job that has ended."
            ),
            **openapi.problems(400, 401, 403, 404, 413, 415, 422, 429),
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
            200: JobSerializer,
            304: OpenApiResponse(description="Not modified: the client's copy is current."),
            **openapi.problems(400, 401, 403, 404, 429),
        },
        tags=["jobs"],
    ),
    cancel=extend_schema(
        summary="Cancel a job",
        description="A pending job is cancelled at once (200); a processing one is asked to "
        "stop (202: poll it); a job that has ended cannot be cancelled (409).",
        request=None,
        parameters=[_JOB_ID, *openapi.rate_limit_headers(200, 202, 429), openapi.RETRY_AFTER_429],
        responses={
            200: OpenApiResponse(JobSerializer, description="Cancelled."),
            202: OpenApiResponse(JobSerializer, description="Cancellation requested."),
            **openapi.problems(400, 401, 403, 404, 409, 429),
        },
        tags=["jobs"],
    ),
)
