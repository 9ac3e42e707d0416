"""System checks of settings that Django cannot check itself, run by ``manage.py check``
(and before ``runserver``, ``migrate``, every other command and the tests), so a bad value
stops a deploy instead of failing the first request or the first worker round that reads
it. Registered in ``CoreConfig.ready``."""

import math
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Duration:
    """A duration setting: the environment variable that sets it, the least value that
    works (``above``: the value must be more than ``least``, which itself would stall or
    spin what reads it), its unit, and how to read it from settings when it is not the
    setting of the variable's name."""

    variable: str
    least: float
    above: bool = False
    unit: str = "seconds"
    read: Callable[[], object] | None = None
    most: float = math.inf

    def value(self) -> object:
        return self.read() if self.read else getattr(settings, self.variable)


def _lifetime_seconds(name: str) -> Callable[[], object]:
    return lambda: settings.SIMPLE_JWT[name].total_seconds()


# Every duration, interval and timeout read from the environment (config/settings.py).
# JOBS_RETENTION, written 30d, is checked by the engine (jobs.E002).
DURATIONS = (
    # None (never closed) cannot come from the environment; 0 closes after each request.
    Duration("DB_CONN_MAX_AGE", 0, read=lambda: settings.DATABASES["default"]["CONN_MAX_AGE"] or 0),
    # 0 would let a statement sent into a network partition wait for many minutes.
    Duration("DB_NETWORK_TIMEOUT", 1),
    Duration("DB_IDLE_IN_TRANSACTION_TIMEOUT", 0),
    Duration("AUTH_USER_CACHE_SECONDS", 0),
    Duration("JWT_ACCESS_TOKEN_SECONDS", 1, read=_lifetime_seconds("ACCESS_TOKEN_LIFETIME")),
    Duration("JWT_REFRESH_TOKEN_SECONDS", 1, read=_lifetime_seconds("REFRESH_TOKEN_LIFETIME")),
    Duration(
        "JOBS_IDEMPOTENCY_TTL_HOURS",
        1,
        unit="hours",
        read=lambda: settings.JOBS_IDEMPOTENCY_TTL.total_seconds() / 3600,
    ),
    Duration("JOBS_MAX_RUN_AT_DAYS", 0, unit="days"),
    Duration("JOBS_POLL_AFTER", 1),
    Duration("JOBS_LONGPOLL_MAX_WAIT", 0),
    Duration("JOBS_EVENTS_HEARTBEAT_SECONDS", 0, above=True),
    # How stale a copied ETag may be after a lost notification: a minute at most.
    Duration("JOBS_POLL_ETAG_SECONDS", 0, most=60),
    Duration("JOBS_POLL_INTERVAL", 0, above=True),
    Duration("JOBS_LEASE_SECONDS", 1),
    Duration("JOBS_HEARTBEAT_SECONDS", 0, above=True),
    # 0: the reaper runs every round of the worker.
    Duration("JOBS_REAP_INTERVAL", 0),
    Duration("JOBS_DEFAULT_TIMEOUT", 1),
    Duration("JOBS_BACKOFF_BASE", 0),
    Duration("JOBS_BACKOFF_MAX", 0),
    Duration("JOBS_START_PATIENCE", 0),
    # The claim divides a job's wait by it.
    Duration("JOBS_PRIORITY_AGEING_SECONDS", 1),
    Duration("JOBS_SCHEDULE_MIN_INTERVAL", 0),
    Duration("JOBS_WEBHOOK_TIMEOUT", 0, above=True),
    Duration("SECURE_HSTS_SECONDS", 0),
    # A job read token is short-lived: at most a day.
    Duration("JWT_READ_TOKEN_MINUTES", 1, unit="minutes", most=24 * 60),
)


def _duration_error(duration: Duration) -> Error | None:
    value = duration.value()
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and math.isfinite(value) and value <= duration.most:
        if value > duration.least or (value == duration.least and not duration.above):
            return None
    bound = f"{'more than' if duration.above else 'at least'} {duration.least:g}"
    if math.isfinite(duration.most):
        bound += f" and at most {duration.most:g}"
    return Error(
        f"{duration.variable} is {value!r}: it must be a number of {duration.unit}, {bound}.",
        hint=f"Set {duration.variable} in {duration.unit}, {bound} (docs/configuration.md).",
        id="core.E002",
    )


@register()
def check_durations(app_configs, **kwargs) -> list[Error]:
    """``core.E002`` for each duration setting (``DURATIONS``) that is not a finite number
    of its unit within its bound; ``core.E003`` when a running job's lease would expire
    between two heartbeats."""
    errors = {duration.variable: _duration_error(duration) for duration in DURATIONS}
    errors = {variable: error for variable, error in errors.items() if error}
    heartbeat, lease = settings.JOBS_HEARTBEAT_SECONDS, settings.JOBS_LEASE_SECONDS
    if not {"JOBS_HEARTBEAT_SECONDS", "JOBS_LEASE_SECONDS"} & errors.keys() and heartbeat >= lease:
        errors["JOBS_HEARTBEAT_SECONDS"] = Error(
            f"JOBS_HEARTBEAT_SECONDS ({heartbeat:g}) must be shorter than JOBS_LEASE_SECONDS "
            f"({lease:g}): a running job's lease would expire between two heartbeats and the "
            "reaper would hand the job to another worker while it runs.",
            hint="Keep the heartbeat a fraction of the lease (the defaults are 2 and 30).",
            id="core.E003",
        )
    return list(errors.values())
