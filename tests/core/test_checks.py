"""core.checks and jobs.checks: a malformed rate (core.E001) or duration setting (core.E002,
core.E003, jobs.E002) stops ``manage.py check`` instead of failing the first request or
worker round that reads it."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from core.checks import DURATIONS, check_durations, check_rates
from core.rates import RATE_SETTINGS, parse_rate
from jobs.checks import check_retention

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("300/m", (300, 60)), ("10/15m", (10, 900)), ("1/s", (1, 1)), ("5/2d", (5, 172800))],
)
def test_a_rate_is_a_count_per_window(text, parsed):
    assert parse_rate(text) == parsed


@pytest.mark.parametrize(
    "text", ["abc", "", "300", "300/", "300/M", "300/m ", "300/min", "0/m", "10/0m", "-1/m", None]
)
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError, match=r"N/period|allows nothing"):
        parse_rate(text)


def test_the_configured_rates_pass():
    assert check_rates(None) == []


@pytest.mark.parametrize("name", RATE_SETTINGS)
def test_check_names_the_malformed_setting(settings, name):
    setattr(settings, name, "abc")
    with pytest.raises(SystemCheckError) as refused:
        call_command("check")
    message = str(refused.value)
    assert f"(core.E001) {name} is malformed: 'abc' is not N/period" in message
    assert [error.id for error in check_rates(None)] == ["core.E001"]


def test_the_configured_durations_pass():
    assert check_durations(None) == []
    assert check_retention(None) == []


SETTINGS_DURATIONS = [duration for duration in DURATIONS if duration.read is None]


def _refused() -> tuple[list[str], str]:
    """The ids of the duration checks' errors, and what ``manage.py check`` said."""
    with pytest.raises(SystemCheckError) as refused:
        call_command("check")
    return [error.id for error in check_durations(None)], str(refused.value)


@pytest.mark.parametrize("duration", SETTINGS_DURATIONS, ids=lambda d: d.variable)
def test_a_duration_below_its_bound_is_refused_naming_it(settings, duration):
    too_small = duration.least if duration.above else duration.least - 1
    setattr(settings, duration.variable, too_small)
    ids, message = _refused()
    assert ids == ["core.E002"]
    bound = "more than" if duration.above else "at least"
    assert (
        f"(core.E002) {duration.variable} is {too_small!r}: it must be a number of "
        f"{duration.unit}, {bound} {duration.least:g}"
    ) in message


@pytest.mark.parametrize("duration", SETTINGS_DURATIONS, ids=lambda d: d.variable)
def test_the_bound_itself_passes_unless_it_must_be_exceeded(settings, duration):
    setattr(settings, duration.variable, duration.least + (1 if duration.above else 0))
    if duration.variable == "JOBS_LEASE_SECONDS":
        settings.JOBS_HEARTBEAT_SECONDS = 0.5
    assert check_durations(None) == []


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "30", None, True])
def test_a_duration_must_be_a_finite_number(settings, value):
    settings.JOBS_POLL_INTERVAL = value
    assert [error.id for error in check_durations(None)] == ["core.E002"]


def test_token_lifetimes_and_the_idempotency_window_are_checked_too(settings):
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(0)}
    settings.JOBS_IDEMPOTENCY_TTL = timedelta(minutes=30)
    messages = [error.msg for error in check_durations(None)]
    assert messages == [
        "JWT_ACCESS_TOKEN_SECONDS is 0.0: it must be a number of seconds, at least 1.",
        "JOBS_IDEMPOTENCY_TTL_HOURS is 0.5: it must be a number of hours, at least 1.",
    ]


def test_a_heartbeat_as_long_as_the_lease_is_refused(settings):
    settings.JOBS_LEASE_SECONDS = 10
    settings.JOBS_HEARTBEAT_SECONDS = 10.0
    ids, message = _refused()
    assert ids == ["core.E003"]
    assert "JOBS_HEARTBEAT_SECONDS (10) must be shorter than JOBS_LEASE_SECONDS (10)" in message


@pytest.mark.parametrize(
    ("retention", "problem"),
    [("2h", "'2h' is shorter than 24h"), ("30 days", "is not a duration like 30d")],
)
def test_a_retention_cleanup_jobs_would_refuse_is_refused(settings, retention, problem):
    settings.JOBS_RETENTION = retention
    (error,) = check_retention(None)
    assert error.id == "jobs.E002"
    assert problem in error.msg


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("JOBS_API_RATE", "abc", "(core.E001) JOBS_API_RATE is malformed: 'abc'"),
        ("JOBS_LEASE_SECONDS", "0", "(core.E002) JOBS_LEASE_SECONDS is 0: it must be"),
        ("JOBS_RETENTION", "1h", "(jobs.E002) JOBS_RETENTION is not a retention"),
    ],
)
def test_manage_py_check_exits_non_zero_on_a_bad_environment_variable(variable, value, expected):
    env = {**os.environ, variable: value, "DJANGO_SETTINGS_MODULE": "config.settings"}
    run = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert expected in run.stderr


@pytest.mark.parametrize("minutes", [0, -5, 1441, 10**9, "60"])
def test_a_read_token_lifetime_out_of_bounds_stops_check(settings, minutes):
    settings.JWT_READ_TOKEN_MINUTES = minutes
    with pytest.raises(SystemCheckError) as refused:
        call_command("check")
    assert "(core.E002) JWT_READ_TOKEN_MINUTES is" in str(refused.value)


@pytest.mark.parametrize("minutes", [1, 60, 1440])
def test_a_read_token_lifetime_of_a_minute_to_a_day_passes(settings, minutes):
    settings.JWT_READ_TOKEN_MINUTES = minutes
    assert check_durations(None) == []
