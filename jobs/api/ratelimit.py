"""Rate limiting of the jobs API with django-ratelimit counters in the shared Redis cache.

The check runs after authentication, keyed by tenant + user, and raises ``RateLimited``
(429 with ``Retry-After``) instead of django-ratelimit's default 403.
"""

from django.conf import settings
from django_ratelimit.core import get_usage

from config.problems import RateLimited

GROUP = "jobs-api"


def tenant_user_key(group, request) -> str:
    return f"{request.tenant.schema_name}:{request.user.pk}"


def check_rate_limit(request) -> dict:
    """Count this request against the caller's partition; raise ``RateLimited`` past it.

    Returns django-ratelimit's usage dict (``count``, ``limit``, ``time_left``).
    """
    usage = get_usage(
        request, group=GROUP, key=tenant_user_key, rate=settings.JOBS_API_RATE, increment=True
    )
    if usage is not None and usage["should_limit"]:
        raise RateLimited(wait=usage["time_left"])
    return usage
