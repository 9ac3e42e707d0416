"""Rate limiting of the jobs API: one counter per tenant + user in the shared Redis.

The check runs after authentication and raises ``RateLimited`` (429 with ``Retry-After``).
Each check is one Redis round trip (``core.rates.RateCounter``): it reads or increments the
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

from django.conf import settings

from core.problems import Problem, ProblemCode, RateLimited
from core.rates import RateCounter, RateUsage, parse_rate
from jobs.api.polling import names_etags

GROUP = "jobs-api"
POLICY_NAME = "jobs-api"


def rate_limit_headers(usage: RateUsage) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers)."""
    return {
        "RateLimit-Policy": f'"{POLICY_NAME}";q={usage.limit};w={usage.window_seconds}',
        "RateLimit": f'"{POLICY_NAME}";r={usage.remaining};t={max(0, usage.reset_seconds)}',
    }


def tenant_user_key(request) -> str:
    return f"{request.tenant.schema_name}:{request.user.pk}"


def _counter(request) -> RateCounter:
    return RateCounter(GROUP, tenant_user_key(request), settings.JOBS_API_RATE)


def check_rate_limit(request, *, charge: bool = True) -> RateUsage:
    """Check the caller's partition and count this request against it, unless ``charge``
    is False and the request names the ETags it holds (``polling.names_etags``): then call
    ``charge_rate_limit`` once the response is known to cost (it does nothing for a request
    already charged).

    Raises ``RateLimited`` when the partition is spent. The usage is also kept on the
    request (``request.rate_limit_usage``) so the 429 carries the RateLimit fields too.
    """
    charge = charge or not names_etags(request.headers.get("If-None-Match"))
    usage = _counter(request).take() if charge else _counter(request).peek()
    request.rate_limit_usage = usage
    request.rate_limit_charged = charge
    spent = usage.exceeded if charge else usage.count >= usage.limit
    if spent:
        raise RateLimited(wait=usage.reset_seconds)
    return usage


def charge_rate_limit_units(request, units: int) -> RateUsage:
    """Charge ``units`` requests' worth at once (a batch: one per job), all or nothing:
    raises ``RateLimited`` and charges nothing when fewer are left. One round trip.

    More units than the limit can never fit in a window, and a 429 would have a compliant
    client retry forever: such a request is charged one unit, as any request is, and
    refused for good with 422 ``batch_too_large``, which names the largest batch."""
    limit, window = parse_rate(settings.JOBS_API_RATE)
    if units > limit:
        charge_rate_limit_units(request, 1)
        raise Problem(
            status_code=422,
            code=ProblemCode.BATCH_TOO_LARGE,
            detail=f"A batch costs one unit of rate limit per job and the limit is {limit} "
            f"per {window} s: a batch of {units} jobs can never be accepted. Send at most "
            f"{limit} jobs per batch.",
        )
    usage, charged = _counter(request).take_all_or_none(units)
    request.rate_limit_usage = usage
    request.rate_limit_charged = True
    if not charged:
        raise RateLimited(wait=usage.reset_seconds)
    return usage


def charge_rate_limit(request) -> RateUsage:
    """Count a request that was only checked against the partition (once)."""
    if getattr(request, "rate_limit_charged", False):
        return request.rate_limit_usage
    usage = _counter(request).take()
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
            for name, value in rate_limit_headers(usage).items():
                response[name] = value
        return super().finalize_response(request, response, *args, **kwargs)
