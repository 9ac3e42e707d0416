"""Rate settings written ``N/period`` (``JOBS_API_RATE``, ``AUTH_LOGIN_IP_RATE``,
``AUTH_LOGIN_USERNAME_RATE``): a count of at least 1, a slash, an optional multiplier and a
unit, ``s``, ``m``, ``h`` or ``d``: ``300/m`` is 300 per minute, ``10/15m`` 10 per 15
minutes. ``core.checks`` refuses any other spelling at ``manage.py check``."""

import re

RATE_SETTINGS = ("JOBS_API_RATE", "AUTH_LOGIN_IP_RATE", "AUTH_LOGIN_USERNAME_RATE")

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"(\d+)/(\d*)([smhd])")


def parse_rate(text) -> tuple[int, int]:
    """``(count, window in seconds)`` of a rate written ``N/[k]unit``; ``ValueError``
    for anything else, including a count or a multiplier of 0 and an upper-case unit."""
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not N/period (such as 300/m or 10/15m)")
    count, multiplier, unit = match.groups()
    if int(count) < 1 or (multiplier and int(multiplier) < 1):
        raise ValueError(f"{text!r} allows nothing: the count and multiplier must be 1 or more")
    return int(count), int(multiplier or 1) * _UNIT_SECONDS[unit]
