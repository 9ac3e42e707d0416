"""Brute-force limits of the logins: per client IP and per username.

``POST /api/auth/token`` and the admin's login form (``accounts.admin_site``) spend the same
counters, so a username or an address has one budget for both.

Both counters are django-ratelimit counters in the shared Redis (like the jobs API's), and
both are keyed **without the tenant**: usernames are unique across the platform, so
rotating the Host header over tenants' hosts gives an attacker no fresh counters.

- **Per client IP** (``AUTH_LOGIN_IP_RATE``): every login attempt counts, before the body
  is even parsed. The address comes from ``core.client_ip`` (``X-Forwarded-For`` only
  behind ``TRUSTED_PROXIES``).
- **Per username** (``AUTH_LOGIN_USERNAME_RATE``): failed attempts count; once spent, the
  username is refused with 429 *before* its password is checked, so guessing stops even from
  many addresses. Successful logins cost nothing. Usernames are keyed case-folded (and
  NFKC-normalised, as Django stores them), so ``Alice`` and ``alice`` share one counter.

Anyone can spend a username's budget and lock its owner out of new logins for the rest of
the window (sessions already open go on): the README's Security section states this limit.
"""

import hashlib
import unicodedata

from django.conf import settings
from django_ratelimit.core import get_usage

from core.client_ip import client_ip_key
from core.problems import RateLimited

IP_GROUP = "auth-login-ip"
USERNAME_GROUP = "auth-login-username"


def _ip_key(group, request) -> str:
    return client_ip_key(request)


def _username_key(username: str):
    normalised = unicodedata.normalize("NFKC", username).casefold()
    # Hashed: the cache key stays short and plain whatever a client sends as a username.
    digest = hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()
    return lambda group, request: digest


def _spend(request, *, group: str, key, rate: str, increment: bool, charged: bool) -> None:
    usage = get_usage(request, group=group, key=key, rate=rate, increment=increment)
    if usage is None:  # RATELIMIT_ENABLE = False
        return
    if usage["limit"] == 0 and usage["time_left"] == -1:
        # The counter could not be read (Redis down): fail closed, as the jobs API does.
        raise RateLimited(wait=1)
    spent = usage["count"] > usage["limit"] if charged else usage["count"] >= usage["limit"]
    if spent:
        raise RateLimited(wait=max(1, usage["time_left"]))


def check_client_ip(request) -> None:
    """Count this login attempt against the client's address; 429 once it is spent."""
    _spend(
        request,
        group=IP_GROUP,
        key=_ip_key,
        rate=settings.AUTH_LOGIN_IP_RATE,
        increment=True,
        charged=True,
    )


def check_username(request, username: str) -> None:
    """429 when ``username`` has used up its failed attempts (counts nothing)."""
    _spend(
        request,
        group=USERNAME_GROUP,
        key=_username_key(username),
        rate=settings.AUTH_LOGIN_USERNAME_RATE,
        increment=False,
        charged=False,
    )


def record_failure(request, username: str) -> None:
    """Count a failed login against ``username``."""
    get_usage(
        request,
        group=USERNAME_GROUP,
        key=_username_key(username),
        rate=settings.AUTH_LOGIN_USERNAME_RATE,
        increment=True,
    )
