"""core.checks: a malformed rate setting stops ``manage.py check`` (core.E001) instead of
failing the first request that reads it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from core.checks import check_rates, check_read_token_minutes
from core.rates import RATE_SETTINGS, parse_rate

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


def test_manage_py_check_exits_non_zero_on_a_bad_environment_variable():
    env = {**os.environ, "JOBS_API_RATE": "abc", "DJANGO_SETTINGS_MODULE": "config.settings"}
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
    assert "(core.E001) JOBS_API_RATE is malformed: 'abc'" in run.stderr


@pytest.mark.parametrize("minutes", [0, -5, 1441, 10**9, "60", 1.5])
def test_a_read_token_lifetime_out_of_bounds_stops_check(settings, minutes):
    settings.JWT_READ_TOKEN_MINUTES = minutes
    with pytest.raises(SystemCheckError) as refused:
        call_command("check")
    assert "(core.E002) JWT_READ_TOKEN_MINUTES is" in str(refused.value)
    assert [error.id for error in check_read_token_minutes(None)] == ["core.E002"]


@pytest.mark.parametrize("minutes", [1, 60, 1440])
def test_a_read_token_lifetime_of_a_minute_to_a_day_passes(settings, minutes):
    settings.JWT_READ_TOKEN_MINUTES = minutes
    assert check_read_token_minutes(None) == []
