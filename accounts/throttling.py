"""Brute-force limits of the logins: per client IP and per username.

``POST /api/auth/token`` and the admin's login form (``accounts.admin_site``) spend the same
counters, so a username or an address has one budget for both.

Both counters live in the shared Redis (the IP's is django-ratelimit's), and both are keyed
**without the tenant**: usernames are unique across the platform, so
rotating the Host header over tenants' hosts gives an attacker no fresh counters.

- **Per client IP** (``AUTH_LOGIN_IP_RATE``): every login attempt counts, before the body
  is even parsed. The address comes from ``core.client_ip`` (``X-Forwarded-For`` only
  behind ``TRUSTED_PROXIES``).
- **Per username** (``AUTH_LOGIN_USERNAME_RATE``): an attempt **reserves** a unit (one
  atomic increment in Redis) *before* its password is checked, and once the budget is
  spent the username is refused with 429 without a check, so however many guesses arrive
  at once, from however many addresses, at most the budget's count of them are hashed in a
  window. A failed attempt keeps its unit; a successful login gives it back (``refund``), so
  logging in costs nothing. The window starts at the first attempt. Usernames are keyed
  case-folded (and NFKC-normalised, as Django stores them), so ``Alice`` and ``alice``
  share one counter.

Anyone can spend a username's budget and lock its owner out of new logins for the rest of
the window (sessions already open go on): docs/security.md states this limit.
"""

import hashlib
import math
import unicodedata
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django_ratelimit.core import _split_rate, get_usage

from core.client_ip import client_ip_key
from core.problems import RateLimited
from core.redis_cache import Script

IP_GROUP = "auth-login-ip"
USERNAME_GROUP = "auth-login-username"


def _ip_key(group, request) -> str:
    return client_ip_key(request)


# KEYS[1]: a username's counter. ARGV[1]: the window (ms). Takes a unit; returns
# {units taken in the window, this one included; milliseconds left in the window}.
_RESERVE = Script(
    """
local count = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left}
"""
)
# Gives a unit back, unless the window has ended meanwhile (nothing to give back to).
_REFUND = Script(
    """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
"""
)


def _username_counter(username: str) -> str:
    normalised = unicodedata.normalize("NFKC", username).casefold()
    # Hashed: the cache key stays short and plain whatever a client sends as a username.
    digest = hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()
    return cache.make_key(f"{USERNAME_GROUP}:{digest}")


def check_client_ip(request) -> None:
    """Count this login attempt against the client's address; 429 once it is spent."""
    usage = get_usage(
        request, group=IP_GROUP, key=_ip_key, rate=settings.AUTH_LOGIN_IP_RATE, increment=True
    )
    if usage is None:  # RATELIMIT_ENABLE = False
        return
    if usage["limit"] == 0 and usage["time_left"] == -1:
        # The counter could not be read (Redis down): fail closed, as the jobs API does.
        raise RateLimited(wait=1)
    if usage["count"] > usage["limit"]:
        raise RateLimited(wait=max(1, usage["time_left"]))


@dataclass(frozen=True)
class Reservation:
    """The unit of a username's budget that one login attempt took."""

    counter: str

    def refund(self) -> None:
        """Give the unit back: the login succeeded."""
        _REFUND([self.counter], [])


def reserve_username(username: str) -> Reservation:
    """Take a unit of ``username``'s budget before its password is checked; 429 once the
    budget is spent (the refused attempt's unit stays taken). Fails closed like the jobs
    API: a Redis error propagates (503)."""
    limit, window_seconds = _split_rate(settings.AUTH_LOGIN_USERNAME_RATE)
    counter = _username_counter(username)
    count, left_ms = _RESERVE([counter], [window_seconds * 1000])
    if count > limit:
        raise RateLimited(wait=max(1, math.ceil(left_ms / 1000)))
    return Reservation(counter)
