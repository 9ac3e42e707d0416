"""Input and output shapes of the jobs API. Clients can never write state fields."""

from rest_framework import serializers

from jobs.exceptions import UnknownJobType
from jobs.models import Job, JobStatus
from jobs.registry import get_job_type, job_types

_datetime = serializers.DateTimeField()


def _iso(value):
    return _datetime.to_representation(value) if value is not None else None


class JobOutputSerializer(serializers.BaseSerializer):
    """The polling contract of DESIGN.md: each key appears only in the states it belongs to.

    pending/processing: ``id, type, status, created_at`` (+ ``attempts`` once tried,
    ``started_at``, ``progress`` and ``progress_message`` while processing);
    completed: + ``result, completed_at``; failed: + ``error, completed_at``;
    cancelled: + ``cancelled_at``.
    """

    def to_representation(self, job: Job) -> dict:
        body = {
            "id": str(job.id),
            "type": job.type,
            "status": job.status,
            "created_at": _iso(job.created_at),
        }
        if job.attempts:
            body["attempts"] = job.attempts
        if job.status == JobStatus.PROCESSING:
            body["started_at"] = _iso(job.started_at)
            if job.progress is not None:
                body["progress"] = job.progress
            if job.progress_message:
                body["progress_message"] = job.progress_message
        elif job.status == JobStatus.COMPLETED:
            body["result"] = job.result
            body["completed_at"] = _iso(job.completed_at)
        elif job.status == JobStatus.FAILED:
            body["error"] = job.error
            body["completed_at"] = _iso(job.completed_at)
        elif job.status == JobStatus.CANCELLED:
            body["cancelled_at"] = _iso(job.completed_at)
        return body


class JobCreateSerializer(serializers.Serializer):
    """``POST /api/jobs``: ``type`` and ``payload``, optionally ``run_at`` and ``priority``.

    Any other field (``status``, ``tenant``, ``result``, timestamps…) is rejected with 400,
    so a client learns at once that it was not stored.
    """

    type = serializers.CharField(max_length=100)
    payload = serializers.JSONField(required=False, default=dict)
    run_at = serializers.DateTimeField(required=False)
    priority = serializers.IntegerField(required=False, default=0, min_value=-100, max_value=100)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def validate_type(self, value: str) -> str:
        try:
            get_job_type(value)
        except UnknownJobType:
            known = ", ".join(sorted(job_types()))
            raise serializers.ValidationError(
                f"Unknown job type. Registered types: {known}."
            ) from None
        return value

    def validate(self, attrs):
        attrs["payload"] = get_job_type(attrs["type"]).validate_payload(attrs["payload"])
        return attrs


class JobListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    type = serializers.CharField(max_length=100, required=False)
