"""Durations given to commands and their settings: ``30d``, ``12h``, ``90m``, ``45s``."""

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*([dhms])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_age(value: str) -> timedelta:
    """A whole number of days, hours, minutes or seconds (``30d``, ``12h``, ``90m``,
    ``0s``) as a timedelta; ``ValueError`` for anything else (no unit, a sign, a fraction)."""
    match = _DURATION.match(value or "")
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30d, 12h, 90m or 45s")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})
