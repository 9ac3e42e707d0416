"""System checks of settings that Django cannot check itself, run by ``manage.py check``
(and before ``runserver``, ``migrate`` and the tests), so a bad value stops a deploy
instead of failing the first request that reads it. Registered in ``CoreConfig.ready``."""

from django.conf import settings
from django.core.checks import Error, register

from core.rates import RATE_SETTINGS, parse_rate


@register()
def check_rates(app_configs, **kwargs) -> list[Error]:
    """``core.E001`` for each rate setting (``core.rates.RATE_SETTINGS``) that is not
    ``N/period``."""
    errors = []
    for name in RATE_SETTINGS:
        value = getattr(settings, name)
        try:
            parse_rate(value)
        except ValueError as exc:
            errors.append(
                Error(
                    f"{name} is malformed: {exc}.",
                    hint="Write a count of at least 1, a slash, an optional multiplier and "
                    "s, m, h or d: 300/m (300 a minute), 10/15m (10 per 15 minutes).",
                    id="core.E001",
                )
            )
    return errors


# JWT_READ_TOKEN_MINUTES: a job read token is short-lived, at most a day.
READ_TOKEN_MINUTES = range(1, 24 * 60 + 1)


@register()
def check_read_token_minutes(app_configs, **kwargs) -> list[Error]:
    """``core.E002`` when ``JWT_READ_TOKEN_MINUTES`` is not a whole number of minutes from
    1 to 1440."""
    value = settings.JWT_READ_TOKEN_MINUTES
    if type(value) is int and value in READ_TOKEN_MINUTES:
        return []
    return [
        Error(
            f"JWT_READ_TOKEN_MINUTES is {value!r}: a job read token must live "
            f"{READ_TOKEN_MINUTES.start} to {READ_TOKEN_MINUTES.stop - 1} minutes.",
            hint="Set it to a whole number of minutes from 1 to 1440 (a day).",
            id="core.E002",
        )
    ]
