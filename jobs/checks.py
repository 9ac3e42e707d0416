"""System checks of the engine's settings, run by ``manage.py check`` (and before
``runserver``, ``migrate`` and the tests): a bad ``JOBS_TYPES``, ``JOBS_LIMITS`` or
``JOBS_PLANS`` stops a deploy instead of the first claim or submit that reads it.
Registered in ``JobsConfig.ready``."""

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from jobs.flow.limits import limits, plans
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
