"""System checks of the engine's settings, run by ``manage.py check`` (and before
``runserver``, ``migrate`` and the tests): a bad ``JOBS_TYPES``, ``JOBS_LIMITS``,
``JOBS_PLANS`` or ``JOBS_RETENTION`` stops a deploy instead of the first claim, submit or
cleanup that reads it, and a ``JOBS_WORKER_EXPIRY`` within a heartbeat one instead of
workers that come and go. Registered in ``JobsConfig.ready``."""

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from jobs.flow.limits import limits, plans
from jobs.management.commands._durations import parse_age
from jobs.management.commands.cleanup_jobs import MIN_RETENTION
from jobs.registry import limits_in_use


@register()
def check_job_types_and_limits(app_configs, **kwargs) -> list[Error]:
    """``jobs.E001`` when the limits, the plans or the job types (their ``limits`` included)
    cannot be read, with what is wrong."""
    try:
        limits()
        plans()
        limits_in_use()  # builds every job type
    except (ImproperlyConfigured, ImportError, TypeError, ValueError) as exc:
        return [
            Error(
                f"Job types or flow-control limits are misconfigured: {exc}",
                hint="See docs/jobs.md (JOBS_TYPES) and docs/flow.md (JOBS_LIMITS, JOBS_PLANS).",
                id="jobs.E001",
            )
        ]
    return []


@register()
def check_retention(app_configs, **kwargs) -> list[Error]:
    """``jobs.E002`` when ``JOBS_RETENTION`` is not a duration (``30d``) of at least
    ``cleanup_jobs.MIN_RETENTION``: the scheduled cleanup would fail on every run."""
    try:
        retention = parse_age(settings.JOBS_RETENTION)
    except ValueError as exc:
        problem = str(exc)
    else:
        if retention >= MIN_RETENTION:
            return []
        problem = f"{settings.JOBS_RETENTION!r} is shorter than 24h"
    return [
        Error(
            f"JOBS_RETENTION is not a retention cleanup_jobs accepts: {problem}.",
            hint="Write whole days, hours, minutes or seconds, at least 24h: 30d, 48h.",
            id="jobs.E002",
        )
    ]


@register()
def check_worker_expiry(app_configs, **kwargs) -> list[Error]:
    """``jobs.E003`` when ``JOBS_WORKER_EXPIRY`` is not above two heartbeats: a live worker
    would drop out of the registry (and fail ``/readyz``) between two of its beats."""
    expiry, beat = settings.JOBS_WORKER_EXPIRY, settings.JOBS_HEARTBEAT_SECONDS
    if expiry > 2 * beat:
        return []
    return [
        Error(
            f"JOBS_WORKER_EXPIRY ({expiry:g} s) must be above two heartbeats "
            f"(JOBS_HEARTBEAT_SECONDS {beat:g} s).",
            hint="The default, 30 s, is fifteen heartbeats of 2 s.",
            id="jobs.E003",
        )
    ]
