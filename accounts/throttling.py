"""Brute-force limits of the logins: per client IP and per username.

``POST /api/auth/token`` and the admin's login form (``accounts.admin_site``) spend the same
counters, so a username or an address has one budget for both.

Both counters are the project's own in the shared Redis (``core.rates.RateCounter``: one
round trip per attempt), and both are keyed **without the tenant**: usernames are unique
across the platform, so rotating the Host header over tenants' hosts gives an attacker no
fresh counters.

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
import unicodedata
from dataclasses import dataclass

from django.conf import settings

from core.client_ip import client_ip_key
from core.problems import RateLimited
from core.rates import RateCounter

IP_GROUP = "auth-login-ip"
USERNAME_GROUP = "auth-login-username"


def _username_key(username: str) -> str:
    normalised = unicodedata.normalize("NFKC", username).casefold()
    # Hashed: the cache key stays short and plain whatever a client sends as a username.
    return hashlib.sha256(normalised.encode("utf-8", "surrogatepass")).hexdigest()


def _take(counter: RateCounter) -> None:
    """Take a unit of ``counter``; 429 with the rest of its window once it is spent (the
    refused attempt's unit stays taken). A Redis error propagates: 503, as in the jobs API."""
    usage = counter.take()
    if usage.exceeded:
        raise RateLimited(wait=max(1, usage.reset_seconds))


def check_client_ip(request) -> None:
    """Count this login attempt against the client's address; 429 once it is spent."""
    _take(RateCounter(IP_GROUP, client_ip_key(request), settings.AUTH_LOGIN_IP_RATE))


@dataclass(frozen=True)
class Reservation:
    """The unit of a username's budget that one login attempt took."""

    counter: RateCounter

    def refund(self) -> None:
        """Give the unit back: the login succeeded."""
        self.counter.give_back()


def reserve_username(username: str) -> Reservation:
    """Take a unit of ``username``'s budget before its password is checked; 429 once the
    budget is spent (the refused attempt's unit stays taken)."""
    counter = RateCounter(
        USERNAME_GROUP, _username_key(username), settings.AUTH_LOGIN_USERNAME_RATE
    )
    _take(counter)
    return Reservation(counter)
