"""Rate limiting of the jobs API: one counter per tenant + user in the shared Redis.

The check runs after authentication and raises ``RateLimited`` (429 with ``Retry-After``).
Each check is one Lua script (``_COUNT``), one Redis round trip: it reads or increments the
counter and returns it with the time left in its window, which starts at the first request
charged and lasts the window of ``JOBS_API_RATE`` (``N/[k]s|m|h|d``). If Redis cannot be
reached the check fails closed: the redis-py error becomes 503 (``core.errors``).

Polls that the client could answer from its own copy cost nothing: a poll that names the
ETags it holds (``If-None-Match`` without ``*``) is checked against the limit first and
charged only when it returns something other than 304 (GitHub's rule for conditional
requests), which costs a second round trip only when the job changed. Every other request,
a poll with ``If-None-Match: *`` included, is checked and charged at once. Every response of
the API carries the IETF draft (draft-ietf-httpapi-ratelimit-headers) ``RateLimit-Policy``
and ``RateLimit`` fields for the caller's partition.
"""

import math
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django_ratelimit.core import _split_rate

from core.problems import Problem, ProblemCode, RateLimited
from core.redis_cache import Script
from jobs.api.polling import names_etags

GROUP = "jobs-api"
POLICY_NAME = "jobs-api"

# KEYS[1]: the counter. ARGV[1]: the window (ms); ARGV[2]: '1' to charge, '0' to read.
# Returns {count, milliseconds left in the window}.
_COUNT = Script(
    """
local count
if ARGV[2] == '1' then
  count = redis.call('INCR', KEYS[1])
else
  count = tonumber(redis.call('GET', KEYS[1]) or '0')
end
local left = redis.call('PTTL', KEYS[1])
if count > 0 and left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
"""
)


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
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    limit, window = _split_rate(settings.JOBS_API_RATE)
    key = cache.make_key(f"rl:{GROUP}:{tenant_user_key(GROUP, request)}")
    count, left_ms = _COUNT([key], [window * 1000, "1" if increment else "0"])
    left_ms = left_ms if left_ms >= 0 else window * 1000
    return RateLimitUsage(
        limit=limit,
        window_seconds=window,
        count=int(count),
        reset_seconds=math.ceil(left_ms / 1000),
    )


def check_rate_limit(request, *, charge: bool = True) -> RateLimitUsage | None:
    """Check the caller's partition and count this request against it, unless ``charge``
    is False and the request names the ETags it holds (``polling.names_etags``): then call
    ``charge_rate_limit`` once the response is known to cost (it does nothing for a request
    already charged).

    Raises ``RateLimited`` when the partition is spent. The usage is also kept on the
    request (``request.rate_limit_usage``) so the 429 carries the RateLimit fields too.
    """
    charge = charge or not names_etags(request.headers.get("If-None-Match"))
    usage = _usage(request, increment=charge)
    request.rate_limit_usage = usage
    request.rate_limit_charged = charge
    if usage is not None:
        spent = usage.count > usage.limit if charge else usage.count >= usage.limit
        if spent:
            raise RateLimited(wait=usage.reset_seconds)
    return usage


# KEYS[1]: the counter. ARGV[1]: the window (ms); ARGV[2]: units; ARGV[3]: the limit.
# Adds the units only if they all fit under the limit. Returns {count, ms left, charged}.
_CHARGE_UNITS = Script(
    """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local units = tonumber(ARGV[2])
local charged = 0
if count + units <= tonumber(ARGV[3]) then
  count = redis.call('INCRBY', KEYS[1], units)
  charged = 1
end
local left = redis.call('PTTL', KEYS[1])
if count > 0 and left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left, charged}
"""
)


def charge_rate_limit_units(request, units: int) -> RateLimitUsage | None:
    """Charge ``units`` requests' worth at once (a batch: one per job), all or nothing:
    raises ``RateLimited`` and charges nothing when fewer are left. One round trip.

    More units than the limit can never fit in a window, and a 429 would have a compliant
    client retry forever: such a request is charged one unit, as any request is, and
    refused for good with 422 ``batch_too_large``, which names the largest batch."""
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return None
    limit, window = _split_rate(settings.JOBS_API_RATE)
    if units > limit:
        charge_rate_limit_units(request, 1)
        raise Problem(
            status_code=422,
            code=ProblemCode.BATCH_TOO_LARGE,
            detail=f"A batch costs one unit of rate limit per job and the limit is {limit} "
            f"per {window} s: a batch of {units} jobs can never be accepted. Send at most "
            f"{limit} jobs per batch.",
        )
    key = cache.make_key(f"rl:{GROUP}:{tenant_user_key(GROUP, request)}")
    count, left_ms, charged = _CHARGE_UNITS([key], [window * 1000, units, limit])
    left_ms = left_ms if left_ms >= 0 else window * 1000
    usage = RateLimitUsage(
        limit=limit,
        window_seconds=window,
        count=int(count),
        reset_seconds=math.ceil(left_ms / 1000),
    )
    request.rate_limit_usage = usage
    request.rate_limit_charged = True
    if not charged:
        raise RateLimited(wait=usage.reset_seconds)
    return usage


def charge_rate_limit(request) -> RateLimitUsage | None:
    """Count a request that was only checked against the partition (once)."""
    if getattr(request, "rate_limit_charged", False):
        return request.rate_limit_usage
    usage = _usage(request, increment=True)
    request.rate_limit_usage = usage
    request.rate_limit_charged = True
    return usage


class RateLimitedView:
    """A DRF view mixin (before the view's base class): every answer of the view, errors
    included, carries the caller's ``RateLimit-Policy`` and ``RateLimit`` fields, written
    here only. A view that only checked the request (``charge_later`` true, set in its
    ``initial``) is charged here, unless it answers 304 or 429."""

    charge_later = False

    def finalize_response(self, request, response, *args, **kwargs):
        usage = getattr(request, "rate_limit_usage", None)
        if usage is not None:
            if self.charge_later and response.status_code not in (304, 429):
                usage = charge_rate_limit(request)
            for name, value in usage.headers().items():
                response[name] = value
        return super().finalize_response(request, response, *args, **kwargs)
