"""Input and output shapes of the jobs API, and the source of its OpenAPI schema: each
field's type, bounds, ``required`` and ``help_text`` are what ``/api/schema`` shows
(``jobs.api.schema`` adds only the operations' parameters, headers and problems).
Clients can never write state fields.

Settings-dependent parts (the registered job types, the ``run_at`` horizon, the longest
``?wait=``) are read per instance, so the checks and the schema follow the running
configuration.
"""

import re
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.fields import empty

from core.serializers import MAX_REPORTED_ERRORS, StrictSerializer
from jobs.models import Job, JobStatus, job_representation
from jobs.registry import get_job_type, job_types
from jobs.selectors import LIST_RESULT_MAX_CHARS

_ASCII_DIGITS = re.compile(r"[0-9]+")


@extend_schema_serializer(component_name="Job")
class JobOutputSerializer(serializers.Serializer):
    """A job as polled: ``id, type, status, created_at`` always, every other key only in
    the states its description names.

    pending/processing: + ``attempts`` once tried, ``last_error`` and ``next_attempt_at``
    while pending after a failed attempt (waiting for its retry), ``waiting`` while a due
    pending job is held back by flow control (docs/flow.md), ``started_at``,
    ``progress`` and ``progress_message`` while processing; completed: + ``result,
    completed_at``; failed: + ``error, completed_at``; cancelled: + ``cancelled_at``.
    """

    # Output only. The fields are the schema; to_representation writes the keys itself
    # (the poll is the hot path), and tests/security/test_openapi.py holds it to them.
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
    last_error = serializers.CharField(
        required=False,
        help_text="pending after a failed attempt: that attempt's message, safe to show.",
    )
    next_attempt_at = serializers.DateTimeField(
        required=False,
        help_text="pending after a failed attempt: the retry runs not before this time.",
    )
    waiting = serializers.ChoiceField(
        choices=["paused", "throttled"],
        required=False,
        help_text="pending and due, on GET /api/jobs/{id}: held back by flow control, its "
        "queue, type or tenant paused, or a limit it takes spent; absent: merely queued.",
    )
    result = serializers.JSONField(required=False, allow_null=True, help_text="completed.")
    error = serializers.CharField(required=False, help_text="failed: a message safe to show.")
    completed_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="completed, failed."
    )
    cancelled_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="cancelled."
    )

    def to_representation(self, job: Job) -> dict:
        return job_representation(job, self.result_of)

    def result_of(self, job: Job) -> dict:
        """The keys a completed job's result gives its representation."""
        return {"result": job.result}


@extend_schema_serializer(component_name="JobListItem")
class JobListItemSerializer(JobOutputSerializer):
    """A job as ``GET /api/jobs`` lists it: as polled, except that a ``result`` longer than
    ``LIST_RESULT_MAX_CHARS`` characters of JSON is left out, and ``result_omitted`` is true
    instead (poll the job for it). Reads the rows of ``selectors.job_list``."""

    result_omitted = serializers.BooleanField(
        required=False,
        help_text=f"completed, instead of a result longer than {LIST_RESULT_MAX_CHARS} "
        "characters of JSON: poll the job for it.",
    )

    def result_of(self, job: Job) -> dict:
        if job.result_omitted:
            return {"result_omitted": True}
        return {"result": job.listed_result}


class JobLogLineSerializer(serializers.Serializer):
    """One line the job's handler logged while it ran."""

    attempt = serializers.IntegerField(help_text="The run that logged it, 1 for the first.")
    logged_at = serializers.DateTimeField(help_text="When it was logged (the worker's clock).")
    level = serializers.CharField(help_text="`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`.")
    logger = serializers.CharField(help_text="The logger's name.")
    message = serializers.CharField(
        help_text="The message, cut to `JOBS_LOG_LINE_CHARS` characters; never a traceback."
    )


@extend_schema_serializer(component_name="JobLog")
class JobLogSerializer(serializers.Serializer):
    """What the job's handler logged through its loggers while it ran, oldest first, over
    all its attempts; the worker stores a run's lines when the run ends."""

    lines = JobLogLineSerializer(many=True)
    capped = serializers.BooleanField(
        help_text="The job holds `JOBS_LOG_MAX_LINES` lines, the most kept: later lines "
        "were not kept."
    )


def _registered_types(field: serializers.ChoiceField) -> None:
    """Limit ``field`` to the public job types as registered now (``job_types()``: no
    internal type), naming them when it refuses another."""
    field.choices = sorted(job_types())
    known = ", ".join(field.choices)
    field.error_messages["invalid_choice"] = f"Unknown job type. Registered types: {known}."


@extend_schema_field(OpenApiTypes.OBJECT)
class _PayloadField(serializers.JSONField):
    """Any JSON is read; the job type refuses what is not an object of its shape (400)."""


@extend_schema_serializer(component_name="JobSubmit")
class JobCreateSerializer(StrictSerializer):
    """``POST /api/jobs``: ``type`` and ``payload``, optionally ``run_at`` and ``priority``.

    Any other field (``status``, ``tenant``, ``result``, timestamps…) is rejected with 400,
    so a client learns at once that it was not stored.
    """

    type = serializers.ChoiceField(choices=(), help_text="A registered job type.")
    payload = _PayloadField(
        required=False,
        default=dict,
        help_text="The job type's input (validated per type); default {}.",
    )
    run_at = serializers.DateTimeField(required=False)
    priority = serializers.IntegerField(
        required=False, default=0, min_value=-100, max_value=100, help_text="Higher runs first."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _registered_types(self.fields["type"])
        horizon = settings.JOBS_MAX_RUN_AT_DAYS
        self.fields["run_at"].help_text = f"Not before this time; at most {horizon} days ahead."

    def validate_run_at(self, value):
        latest = timezone.now() + timedelta(days=settings.JOBS_MAX_RUN_AT_DAYS)
        if value > latest:
            raise serializers.ValidationError(
                f"At most {settings.JOBS_MAX_RUN_AT_DAYS} days from now."
            )
        return value

    def validate(self, attrs):
        attrs["payload"] = get_job_type(attrs["type"]).validate_payload(attrs["payload"])
        return attrs


# Most jobs in one POST /api/jobs/batch (the body limit, MAX_REQUEST_BODY_BYTES, also holds,
# and so does the rate limit: a batch costs a unit per job).
BATCH_MAX_JOBS = 1000


def batch_size(data) -> int | None:
    """The number of jobs in a ``POST /api/jobs/batch`` body of the right shape (an object
    whose ``jobs`` is a list of 1 to ``BATCH_MAX_JOBS`` items, not yet checked), else None."""
    items = data.get("jobs") if isinstance(data, dict) else None
    if isinstance(items, list) and 1 <= len(items) <= BATCH_MAX_JOBS:
        return len(items)
    return None


@extend_schema_serializer(component_name="JobBatchSubmit")
class JobBatchCreateSerializer(StrictSerializer):
    """``POST /api/jobs/batch``: ``{"jobs": [JobSubmit, ...]}``, 1 to 1,000 items, each
    checked as ``POST /api/jobs`` checks one. Any bad item makes the whole batch 400, its
    errors under ``jobs.<index>`` (0-based) for the first ``MAX_REPORTED_ERRORS`` bad items,
    and, when there are more, their count under ``non_field_errors``; nothing is stored."""

    jobs = JobCreateSerializer(
        many=True, help_text="The jobs to submit, 1 to 1,000; stored in this order."
    )

    def to_internal_value(self, data):
        self.refuse_unknown_fields(data)
        if batch_size(data) is None:
            raise serializers.ValidationError(
                {"jobs": [f"Expected a list of 1 to {BATCH_MAX_JOBS} jobs."]}
            )
        validated, errors, invalid = [], {}, 0
        for index, item in enumerate(data["jobs"]):
            one = JobCreateSerializer(data=item)
            if one.is_valid():
                validated.append(one.validated_data)
                continue
            invalid += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors[str(index)] = one.errors
        if errors:
            detail = {"jobs": errors}
            if invalid > len(errors):
                detail["non_field_errors"] = [
                    f"{invalid} of {len(data['jobs'])} jobs are invalid; the errors of the "
                    f"first {len(errors)} are under jobs."
                ]
            raise serializers.ValidationError(detail)
        return {"jobs": validated}


@extend_schema_serializer(component_name="JobBatch")
class JobBatchOutputSerializer(serializers.Serializer):
    """The jobs of a batch, in the order submitted."""

    jobs = JobOutputSerializer(many=True)


class JobListQuerySerializer(serializers.Serializer):
    """``GET /api/jobs`` filters: a status, a registered job type (internal types are none:
    400 like any unknown name)."""

    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    type = serializers.ChoiceField(choices=(), required=False, help_text="A registered job type.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _registered_types(self.fields["type"])


class _WholeSecondsField(serializers.IntegerField):
    """ASCII digits only: ``5``, never ``5.0``, `` 5``, ``+5`` or ``٥`` (which ``int()``
    reads), and an empty value is refused rather than taken as absent."""

    def get_value(self, dictionary):
        return dictionary.get(self.field_name, empty)

    def to_internal_value(self, data):
        if not (isinstance(data, str) and _ASCII_DIGITS.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class JobPollQuerySerializer(serializers.Serializer):
    """``GET /api/jobs/{id}`` query: ``wait``, whole seconds from 1 to
    ``JOBS_LONGPOLL_MAX_WAIT`` (``jobs.api.realtime.longpoll.wait_seconds`` answers 400
    ``invalid_wait`` otherwise)."""

    def get_fields(self):
        return {
            "wait": _WholeSecondsField(
                required=False,
                min_value=1,
                max_value=settings.JOBS_LONGPOLL_MAX_WAIT,
                help_text="Long poll: answer as soon as the job differs from If-None-Match "
                "(or from its state when the request arrived), at the latest after this many "
                "seconds.",
            )
        }
