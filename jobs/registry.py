"""The registry of public job types.

``settings.JOBS_TYPES`` maps each public name (``demo.echo``, ``ai_generation``) to a Django
``@task`` function, by dotted path, or to a dict of options::

    JOBS_TYPES = {
        "demo.echo": "jobs.demo.echo",
        "demo.fail": {"task": "jobs.demo.fail", "max_attempts": 1},
    }

Options: ``task`` (required), ``payload`` (dotted path of a DRF serializer that validates
and normalises the payload on submit), ``max_attempts`` (default ``JOBS_DEFAULT_MAX_ATTEMPTS``),
``timeout`` (seconds, default ``JOBS_DEFAULT_TIMEOUT``), ``poll_after`` (the polling
interval suggested to clients, seconds), ``queue`` (the queue its jobs land in, from the API
and from ``@task.enqueue()``; default the task's ``queue_name``, itself ``"default"``
unless the ``@task`` names one), ``internal`` (true: workers run it, but it is no public
type: ``job_types()`` leaves it out, so the API and schedules refuse it; its jobs are
marked ``Job.internal`` at enqueue, which is what hides them from the tenant), ``limits``
(the flow-control limits its jobs consume, name → units: ``jobs.flow.limits``). The API
accepts only names listed here.
"""

from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.tasks import Task
from django.utils.module_loading import import_string
from rest_framework import serializers

from core.serializers import mistyped_fields
from jobs.exceptions import UnknownJobType
from jobs.flow.limits import Budget, budgets, parse_consumption


@dataclass(frozen=True)
class JobType:
    name: str
    task: Task
    payload_serializer: type[serializers.Serializer] | None
    max_attempts: int
    timeout_seconds: int
    poll_after: int
    queue: str
    internal: bool = False
    limits: tuple[tuple[str, int | str], ...] = ()  # (limit name, units) pairs

    def budgets(self, tenant_id: int, payload: dict) -> list[Budget]:
        """The flow-control budgets a job of this type takes (``jobs.flow.limits``)."""
        return budgets(dict(self.limits), tenant_id, payload) if self.limits else []

    def validate_payload(self, payload: Any) -> dict:
        """Return the normalised payload; raise ``serializers.ValidationError`` if invalid
        (a field of its serializer not of its JSON type included: ``mistyped_fields``)."""
        if not isinstance(payload, dict):
            raise serializers.ValidationError({"payload": ["Must be a JSON object."]})
        if self.payload_serializer is None:
            return payload
        serializer = self.payload_serializer(data=payload)
        if mistyped := mistyped_fields(serializer, payload):
            raise serializers.ValidationError({"payload": mistyped})
        if not serializer.is_valid():
            raise serializers.ValidationError({"payload": serializer.errors})
        return dict(serializer.validated_data)


def _build(name: str, spec: str | dict) -> JobType:
    options = {"task": spec} if isinstance(spec, str) else dict(spec)
    task = import_string(options["task"])
    if not isinstance(task, Task):
        raise TypeError(f"JOBS_TYPES[{name!r}] must point to a @task function")
    payload = options.get("payload")
    return JobType(
        name=name,
        task=task,
        payload_serializer=import_string(payload) if payload else None,
        max_attempts=int(options.get("max_attempts", settings.JOBS_DEFAULT_MAX_ATTEMPTS)),
        timeout_seconds=int(options.get("timeout", settings.JOBS_DEFAULT_TIMEOUT)),
        poll_after=max(1, int(options.get("poll_after", settings.JOBS_POLL_AFTER))),
        queue=str(options.get("queue", task.queue_name)),
        internal=bool(options.get("internal", False)),
        limits=tuple(parse_consumption(options.get("limits", {}), f"JOBS_TYPES[{name!r}]").items()),
    )


@cache
def _registry() -> dict[str, JobType]:
    return {name: _build(name, spec) for name, spec in settings.JOBS_TYPES.items()}


def job_types() -> dict[str, JobType]:
    """Every public job type (not ``internal``) by name."""
    return {name: job_type for name, job_type in _registry().items() if not job_type.internal}


def registered_type_names() -> frozenset[str]:
    """The names of every job type, internal ones included."""
    return frozenset(_registry())


def limits_in_use() -> bool:
    """Whether any job type, internal ones included, consumes a limit of flow control."""
    return any(job_type.limits for job_type in _registry().values())


def get_job_type(name: str) -> JobType:
    """The job type registered as ``name``; raises ``UnknownJobType`` otherwise."""
    try:
        return _registry()[name]
    except KeyError:
        raise UnknownJobType(name) from None


def job_type_for_task(task: Task) -> JobType | None:
    """The public job type whose task is ``task`` (same function), if any."""
    for job_type in _registry().values():
        if job_type.task.func is task.func:
            return job_type
    return None


@receiver(setting_changed)
def _reload_on_settings_change(setting, **kwargs):
    if setting in {
        "JOBS_TYPES",
        "JOBS_DEFAULT_MAX_ATTEMPTS",
        "JOBS_DEFAULT_TIMEOUT",
        "JOBS_POLL_AFTER",
        "JOBS_LIMITS",
        "JOBS_PLANS",
    }:
        _registry.cache_clear()
