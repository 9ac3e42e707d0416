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
from jobs.flow.limits import plan_in_force
from jobs.models import Job, JobStatus, job_representation
from jobs.registry import get_job_type, job_types
from jobs.selectors import LIST_PAYLOAD_MAX_CHARS, LIST_RESULT_MAX_CHARS

_ASCII_DIGITS = re.compile(r"[0-9]+")


@extend_schema_field(OpenApiTypes.OBJECT)
class _PayloadField(serializers.JSONField):
    """Any JSON is read; the job type refuses what is not an object of its shape (400)."""


class _JobShown(serializers.Serializer):
    """What every job shows, whatever its status. Schema only, like its subclasses:
    ``job_representation`` writes the keys, and tests/security/test_openapi.py holds each
    state's rendering to its component."""

    id = serializers.UUIDField()
    type = serializers.CharField(help_text="Its job type.")
    payload = _PayloadField(
        required=False,
        help_text="Its input as stored at submit (after its type's validation: the shapes "
        "of JobSubmit); from the API at most MAX_REQUEST_BODY_BYTES. Absent only in a list, "
        f"for one longer than {LIST_PAYLOAD_MAX_CHARS} characters of JSON (payload_omitted).",
    )
    payload_omitted = serializers.BooleanField(
        required=False,
        help_text=f"In a list, instead of a payload longer than {LIST_PAYLOAD_MAX_CHARS} "
        "characters of JSON: poll the job for it.",
    )
    queue = serializers.CharField(help_text="The queue its type runs in.")
    priority = serializers.IntegerField(
        min_value=-100, max_value=100, help_text="Higher runs first."
    )
    run_at = serializers.DateTimeField(
        help_text="Not run before this time: as submitted (default: when submitted), or, "
        "after a failed attempt, when its retry may run."
    )
    created_by = serializers.IntegerField(
        allow_null=True,
        help_text="The id of the user who submitted it (`GET /api/me`: `user.id`); null "
        "for a job the platform submitted (a schedule, an operator) or whose user was deleted.",
    )
    created_at = serializers.DateTimeField()
    attempts = serializers.IntegerField(required=False, min_value=1, help_text="Once tried.")


def _status(value: JobStatus) -> serializers.ChoiceField:
    """The discriminator of one state's shape: ``status`` is exactly ``value``."""
    return serializers.ChoiceField(choices=[value])


class JobPendingSerializer(_JobShown):
    """A job waiting to run."""

    status = _status(JobStatus.PENDING)
    waiting = serializers.ChoiceField(
        choices=["paused", "throttled"],
        required=False,
        help_text="Due, on GET /api/jobs/{id} and in streams: held back by flow control, its "
        "queue, type or tenant paused, or a limit it takes spent; absent: merely queued.",
    )
    last_error = serializers.CharField(
        required=False,
        help_text="After a failed attempt: that attempt's message, safe to show.",
    )
    next_attempt_at = serializers.DateTimeField(
        required=False,
        help_text="After a failed attempt: the retry runs not before this time.",
    )


class JobProcessingSerializer(_JobShown):
    """A job a worker runs."""

    status = _status(JobStatus.PROCESSING)
    started_at = serializers.DateTimeField(allow_null=True)
    progress = serializers.IntegerField(
        required=False, min_value=0, max_value=100, help_text="When reported."
    )
    progress_message = serializers.CharField(required=False, help_text="When reported.")


class JobCompletedSerializer(_JobShown):
    """A job that succeeded: its result."""

    status = _status(JobStatus.COMPLETED)
    result = serializers.JSONField(  # any JSON value, null included
        required=False,
        help_text="What its handler returned. Absent only in a list, for one longer than "
        f"{LIST_RESULT_MAX_CHARS} characters of JSON (result_omitted).",
    )
    result_omitted = serializers.BooleanField(
        required=False,
        help_text=f"In a list, instead of a result longer than {LIST_RESULT_MAX_CHARS} "
        "characters of JSON: poll the job for it.",
    )
    completed_at = serializers.DateTimeField(allow_null=True)


class JobFailedSerializer(_JobShown):
    """A job that failed for good: its error."""

    status = _status(JobStatus.FAILED)
    error = serializers.CharField(help_text="A message safe to show.")
    completed_at = serializers.DateTimeField(allow_null=True)


class JobCancelledSerializer(_JobShown):
    """A job that was cancelled."""

    status = _status(JobStatus.CANCELLED)
    cancelled_at = serializers.DateTimeField(allow_null=True)


# Each status's shape: the members of the ``Job`` union (jobs.api.schema).
JOB_SHAPES = {
    JobStatus.PENDING: JobPendingSerializer,
    JobStatus.PROCESSING: JobProcessingSerializer,
    JobStatus.COMPLETED: JobCompletedSerializer,
    JobStatus.FAILED: JobFailedSerializer,
    JobStatus.CANCELLED: JobCancelledSerializer,
}


class JobOutputSerializer(serializers.Serializer):
    """A job as polled (``job_representation``); documented as the ``Job`` union of
    ``JOB_SHAPES`` by ``status``."""

    def to_representation(self, job: Job) -> dict:
        return job_representation(job, self.result_of, self.payload_of)

    def result_of(self, job: Job) -> dict:
        """The keys a completed job's result gives its representation."""
        return {"result": job.result}

    def payload_of(self, job: Job) -> dict:
        """The keys a job's payload gives its representation."""
        return {"payload": job.payload}


class JobListItemSerializer(JobOutputSerializer):
    """A job as ``GET /api/jobs`` lists it: as polled, except that a ``result`` or
    ``payload`` longer than ``LIST_RESULT_MAX_CHARS`` / ``LIST_PAYLOAD_MAX_CHARS``
    characters of JSON is left out, and ``result_omitted`` / ``payload_omitted`` is true
    instead (poll the job for it). Reads the rows of ``selectors.job_list``."""

    def result_of(self, job: Job) -> dict:
        if job.result_omitted:
            return {"result_omitted": True}
        return {"result": job.listed_result}

    def payload_of(self, job: Job) -> dict:
        if job.payload_omitted:
            return {"payload_omitted": True}
        return {"payload": job.listed_payload}


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

    # The one type the schema of a subclass names (``jobs.api.schema``: a submit's shape
    # per type, its own ``type`` and ``payload`` declared); None: every registered type.
    shown_type: str | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.shown_type is None:
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
        many=True,
        min_length=1,
        max_length=BATCH_MAX_JOBS,
        help_text="The jobs to submit, 1 to 1,000; stored in this order.",
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


@extend_schema_field(OpenApiTypes.STR)
class _CursorField(serializers.Field):
    """``?cursor=``: known to the query, and read by the pagination alone, which answers
    400 ``invalid_cursor`` for anything it did not hand out (blank, not base64, a NUL
    included): one code for every bad cursor."""

    def to_internal_value(self, data):
        return data


class _WholeNumberField(serializers.IntegerField):
    """ASCII digits only: ``5``, never ``5.0``, `` 5``, ``+5`` or ``٥`` (which ``int()``
    reads), and an empty value is refused rather than taken as absent."""

    def get_value(self, dictionary):
        return dictionary.get(self.field_name, empty)

    def to_internal_value(self, data):
        if not (isinstance(data, str) and _ASCII_DIGITS.fullmatch(data)):
            self.fail("invalid")
        return super().to_internal_value(data)


class _StatusesField(serializers.CharField):
    """Statuses separated by commas (``pending,processing``): each a status, none twice."""

    def to_internal_value(self, data) -> list[str]:
        statuses = super().to_internal_value(data).split(",")
        unknown = [status for status in statuses if status not in JobStatus.values]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown status {unknown[0]!r}; statuses: {', '.join(JobStatus.values)}."
            )
        if len(set(statuses)) < len(statuses):
            raise serializers.ValidationError("A status is named twice.")
        return statuses


# The list's pages (``jobs.api.views.JobCursorPagination``): jobs per page by default, at most.
LIST_PAGE_SIZE = 50
LIST_MAX_PAGE_SIZE = 200


class JobListQuerySerializer(StrictSerializer):
    """``GET /api/jobs``'s query: filters (statuses, a registered job type, ``created_by=me``)
    and the pagination's ``cursor`` and ``page_size``. Any other parameter, or a parameter
    given twice, is a 400 like a bad value (an unknown type included: internal types are
    none)."""

    json_typed = False  # a query's values are text

    status = _StatusesField(
        required=False,
        max_length=len(",".join(JobStatus.values)),
        help_text="Jobs in any of these statuses, separated by commas: `pending,processing`.",
    )
    type = serializers.ChoiceField(choices=(), required=False, help_text="A registered job type.")
    created_by = serializers.ChoiceField(
        choices=["me"], required=False, help_text="`me`: only the jobs the caller submitted."
    )
    cursor = _CursorField(
        required=False,
        help_text="The position to continue from: follow a page's `next` or `previous` link.",
    )
    page_size = _WholeNumberField(
        required=False,
        min_value=1,
        max_value=LIST_MAX_PAGE_SIZE,
        help_text=f"Jobs per page; default {LIST_PAGE_SIZE}.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _registered_types(self.fields["type"])

    def to_internal_value(self, data):
        repeated = sorted(name for name in data if len(data.getlist(name)) > 1)
        if repeated:
            raise serializers.ValidationError({name: ["Given twice."] for name in repeated})
        # A plain dict: an empty value is then refused, not taken as absent (form rules).
        return super().to_internal_value({name: data[name] for name in data})


class JobPollQuerySerializer(serializers.Serializer):
    """``GET /api/jobs/{id}`` query: ``wait``, whole seconds from 1 to
    ``JOBS_LONGPOLL_MAX_WAIT`` (``jobs.api.realtime.longpoll.wait_seconds`` answers 400
    ``invalid_wait`` otherwise)."""

    def get_fields(self):
        return {
            "wait": _WholeNumberField(
                required=False,
                min_value=1,
                max_value=settings.JOBS_LONGPOLL_MAX_WAIT,
                help_text="Long poll: answer as soon as the job differs from If-None-Match "
                "(or from its state when the request arrived), at the latest after this many "
                "seconds.",
            )
        }


class MeUserSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="What `created_by` of the user's jobs holds.")
    username = serializers.CharField()


class MeTenantSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The tenant's public identifier.")
    name = serializers.CharField()


@extend_schema_serializer(component_name="Me")
class MeSerializer(serializers.Serializer):
    """``GET /api/me``: the caller, its tenant (the host's) and the tenant's plan."""

    user = MeUserSerializer()
    display_name = serializers.CharField(help_text="The user's full name, else the username.")
    tenant = MeTenantSerializer()
    plan = serializers.CharField(
        help_text="The tenant's plan (`JOBS_PLANS`), the default plan when it names none."
    )

    def to_representation(self, request) -> dict:
        user, tenant = request.user, request.tenant
        return {
            "user": {"id": user.pk, "username": user.username},
            "display_name": user.get_full_name() or user.username,
            "tenant": {"id": tenant.schema_name, "name": tenant.name},
            "plan": plan_in_force(tenant.plan),
        }
