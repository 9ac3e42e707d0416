"""Rate limiting of the jobs API with django-ratelimit counters in the shared Redis cache.

The check runs after authentication, keyed by tenant + user, and raises ``RateLimited``
(429 with ``Retry-After``) instead of django-ratelimit's default 403.

Polls that the client could answer from its own copy cost nothing: a poll of one job is
checked against the limit first and charged only when it returns something other than
304 (GitHub's rule for conditional requests). Every response of the API carries the IETF
draft (draft-ietf-httpapi-ratelimit-headers) ``RateLimit-Policy`` and ``RateLimit`` fields
for the caller's partition.
"""

import dataclasses
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django_ratelimit import ALL
from django_ratelimit.core import _get_window, _make_cache_key, _split_rate, get_usage

from core.problems import RateLimited

GROUP = "jobs-api"
POLICY_NAME = "jobs-api"


@dataclass(frozen=True)
class RateLimitUsage:
    limit: int
    window_seconds: int
    count: int  # requests charged in the current window, this one included when charged
    reset_seconds: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def headers(self) -> dict[str, str]:
        """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers)."""
        return {
            "RateLimit-Policy": f'"{POLICY_NAME}";q={self.limit};w={self.window_seconds}',
            "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={max(0, self.reset_seconds)}',
        }


def tenant_user_key(group, request) -> str:
    return f"{request.tenant.schema_name}:{request.user.pk}"


def _usage(request, *, increment: bool) -> RateLimitUsage | None:
    rate = settings.JOBS_API_RATE
    usage = get_usage(request, group=GROUP, key=tenant_user_key, rate=rate, increment=increment)
    if usage is None:  # RATELIMIT_ENABLE = False
        return None
    if usage["limit"] == 0 and usage["time_left"] == -1:
        # django-ratelimit could not read the counter: it fails closed (RATELIMIT_FAIL_OPEN).
        raise RateLimited(wait=1)
    _, window = _split_rate(rate)
    return RateLimitUsage(
        limit=usage["limit"],
        window_seconds=window,
        count=usage["count"],
        reset_seconds=usage["time_left"],
    )


def check_rate_limit(request, *, charge: bool = True) -> RateLimitUsage | None:
    """Check the caller's partition and, when ``charge``, count this request against it.

    Raises ``RateLimited`` when the partition is spent. The usage is also kept on the
    request (``request.rate_limit_usage``) so the 429 carries the RateLimit fields too.
    Without ``charge``, call ``charge_rate_limit`` once the response is known to cost.
    """
    usage = _usage(request, increment=charge)
    request.rate_limit_usage = usage
    if usage is not None:
        spent = usage.count > usage.limit if charge else usage.count >= usage.limit
        if spent:
            raise RateLimited(wait=usage.reset_seconds)
    return usage


def charge_rate_limit_units(request, units: int) -> RateLimitUsage | None:
    """Charge ``units`` requests' worth at once (a batch: one per job): raises
    ``RateLimited``, charging nothing, when fewer are left. Two concurrent batches can
    both pass the check and overshoot the limit by at most one batch."""
    usage = _usage(request, increment=False)
    request.rate_limit_usage = usage
    if usage is None:
        return None
    if usage.count + units > usage.limit:
        raise RateLimited(wait=usage.reset_seconds)
    usage = _usage(request, increment=True)  # starts the window's counter if need be
    if units > 1:
        rate = settings.JOBS_API_RATE
        value = tenant_user_key(GROUP, request)
        key = _make_cache_key(GROUP, _get_window(value, _split_rate(rate)[1]), rate, value, ALL)
        cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
        usage = dataclasses.replace(usage, count=cache.incr(key, units - 1))
    request.rate_limit_usage = usage
    return usage


def charge_rate_limit(request) -> RateLimitUsage | None:
    """Count a request that was only checked (``charge=False``) against the partition."""
    usage = _usage(request, increment=True)
    request.rate_limit_usage = usage
    return usage
