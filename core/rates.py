"""Rate limits: settings written ``N/period`` and their counters in the shared Redis.

A rate setting (``JOBS_API_RATE``, ``AUTH_LOGIN_IP_RATE``, ``AUTH_LOGIN_USERNAME_RATE``) is a
count of at least 1, a slash, an optional multiplier and a unit, ``s``, ``m``, ``h`` or
``d``: ``300/m`` is 300 per minute, ``10/15m`` 10 per 15 minutes. ``core.checks`` refuses
any other spelling at ``manage.py check``.

A counter (``RateCounter``) counts the units one partition (a user, an address) took in a
fixed window that starts at the first unit taken and lasts the rate's period. Every
operation on it is one Lua script, one Redis round trip, atomic however many processes
share the counter. A Redis error propagates: the callers fail closed (503, ``core.errors``).
"""

import functools
import math
import re
from dataclasses import dataclass

from django.core.cache import cache

from core.redis_cache import Script

RATE_SETTINGS = ("JOBS_API_RATE", "AUTH_LOGIN_IP_RATE", "AUTH_LOGIN_USERNAME_RATE")

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"(\d+)/(\d*)([smhd])")


def parse_rate(text) -> tuple[int, int]:
    """``(count, window in seconds)`` of a rate written ``N/[k]unit``; ``ValueError``
    for anything else, including a count or a multiplier of 0 and an upper-case unit."""
    # A rate-limited request reads its rate each time: a string is parsed once.
    return _parse_rate_string(text) if isinstance(text, str) else _parse_rate(text)


def _parse_rate(text) -> tuple[int, int]:
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not N/period (such as 300/m or 10/15m)")
    count, multiplier, unit = match.groups()
    if int(count) < 1 or (multiplier and int(multiplier) < 1):
        raise ValueError(f"{text!r} allows nothing: the count and multiplier must be 1 or more")
    return int(count), int(multiplier or 1) * _UNIT_SECONDS[unit]


_parse_rate_string = functools.lru_cache(maxsize=64)(_parse_rate)


# KEYS[1]: the counter. ARGV[1]: the window (ms); ARGV[2]: '1' to take a unit, '0' to read.
# Returns {units taken in the window, milliseconds left in it}.
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
# KEYS[1]: the counter. ARGV[1]: the window (ms); ARGV[2]: units; ARGV[3]: the limit.
# Adds the units only if they all fit under the limit. Returns {count, ms left, taken}.
_TAKE_ALL_OR_NONE = Script(
    """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local units = tonumber(ARGV[2])
local taken = 0
if count + units <= tonumber(ARGV[3]) then
  count = redis.call('INCRBY', KEYS[1], units)
  taken = 1
end
local left = redis.call('PTTL', KEYS[1])
if count > 0 and left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {count, left, taken}
"""
)
# KEYS[1]: the counter. Gives a unit back, unless the window has ended meanwhile (nothing
# to give back to).
_GIVE_BACK = Script(
    """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
"""
)


@dataclass(frozen=True)
class RateUsage:
    """A counter's state after an operation."""

    limit: int
    window_seconds: int
    count: int  # units taken in the current window, this operation's included
    reset_seconds: int  # until the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def exceeded(self) -> bool:
        """More units were taken than the limit allows: the last one is refused."""
        return self.count > self.limit


@dataclass(frozen=True)
class RateCounter:
    """The counter of one partition (``key``) of the limit ``group`` under ``rate``
    (``N/period``), stored in the default cache's Redis as ``rl:<group>:<key>``."""

    group: str
    key: str
    rate: str

    @property
    def _redis_key(self) -> str:
        return cache.make_key(f"rl:{self.group}:{self.key}")

    def _usage(self, count, left_ms) -> RateUsage:
        limit, window = parse_rate(self.rate)
        left_ms = left_ms if left_ms >= 0 else window * 1000
        return RateUsage(limit, window, int(count), math.ceil(left_ms / 1000))

    def take(self) -> RateUsage:
        """Take one unit, whatever is left (``exceeded`` says whether it was over)."""
        return self._usage(*_COUNT([self._redis_key], [parse_rate(self.rate)[1] * 1000, "1"]))

    def peek(self) -> RateUsage:
        """The counter as it is, taking nothing."""
        return self._usage(*_COUNT([self._redis_key], [parse_rate(self.rate)[1] * 1000, "0"]))

    def take_all_or_none(self, units: int) -> tuple[RateUsage, bool]:
        """Take ``units`` at once if they all fit under the limit, else nothing; the usage
        and whether they were taken."""
        limit, window = parse_rate(self.rate)
        count, left_ms, taken = _TAKE_ALL_OR_NONE([self._redis_key], [window * 1000, units, limit])
        return self._usage(count, left_ms), bool(taken)

    def give_back(self) -> None:
        """Return one unit taken in the current window (none once it has ended)."""
        _GIVE_BACK([self._redis_key], [])
