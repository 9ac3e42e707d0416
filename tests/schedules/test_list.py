"""``manage.py jobs_schedule list``: a header, aligned columns, ``-`` for a missing value,
"no schedules" when empty, and times in the schedule's own timezone as ``add`` prints
them."""

import re
from datetime import UTC, datetime
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command

from schedules.models import Schedule

pytestmark = pytest.mark.django_db
PARIS = ZoneInfo("Europe/Paris")


def command(*args) -> str:
    out = StringIO()
    call_command("jobs_schedule", *args, stdout=out)
    return out.getvalue()


def add(tenant, name: str, cron: str, timezone: str) -> str:
    return command(
        "add", "--tenant", tenant.schema_name, "--name", name, "--type", "demo.echo",
        "--cron", cron, "--timezone", timezone,
    )  # fmt: skip


def columns(line: str) -> list[str]:
    return re.split(r"\s{2,}", line)


def test_an_empty_list_says_so(acme):
    assert command("list", "--tenant", "acme") == "no schedules\n"


def test_the_list_has_a_header_aligned_columns_and_no_none(acme, globex):
    added = add(acme, "nightly", "0 3 * * *", "Europe/Paris")
    add(acme, "a-long-schedule-name", "*/5 * * * *", "UTC")
    add(globex, "theirs", "0 4 * * *", "UTC")
    command("disable", "a-long-schedule-name", "--tenant", "acme")
    nightly = Schedule.objects.get(name="nightly")
    next_run = nightly.next_run_at.astimezone(PARIS).isoformat(sep=" ", timespec="seconds")

    lines = command("list", "--tenant", "acme").splitlines()

    assert "None" not in "\n".join(lines)
    assert "\t" not in "\n".join(lines)
    assert columns(lines[0]) == [
        "name", "type", "cron", "timezone", "state", "next run", "last run", "last job",
    ]  # fmt: skip
    assert columns(lines[1]) == [
        "a-long-schedule-name", "demo.echo", "*/5 * * * *", "UTC", "disabled", "-", "-", "-",
    ]  # fmt: skip
    assert columns(lines[2]) == [
        "nightly", "demo.echo", "0 3 * * *", "Europe/Paris", "enabled", next_run, "-", "-",
    ]  # fmt: skip
    assert next_run[11:19] == "03:00:00"  # 3 a.m. in Paris, not the UTC time
    assert added == f"added nightly; next run {next_run}\n"  # add prints the same time
    # Aligned: each column starts at the same place on every line.
    assert lines[1].index("demo.echo") == lines[2].index("demo.echo") == lines[0].index("type")
    assert lines[1].index("disabled") == lines[2].index("enabled") == lines[0].index("state")
    assert len(lines) == 3  # globex's schedule is not listed


def test_the_last_run_shows_in_the_schedules_timezone(acme):
    add(acme, "nightly", "0 3 * * *", "Europe/Paris")
    Schedule.objects.filter(name="nightly").update(
        last_tick_at=datetime(2026, 7, 1, 1, 0, tzinfo=UTC)
    )
    row = columns(command("list", "--tenant", "acme").splitlines()[1])
    assert row[6] == "2026-07-01 03:00:00+02:00"  # summer time in Paris


def test_disable_and_enable_say_what_they_did(acme):
    add(acme, "nightly", "0 3 * * *", "Europe/Paris")
    assert command("disable", "nightly", "--tenant", "acme") == "disabled nightly\n"
    enabled = command("enable", "nightly", "--tenant", "acme")
    next_run = Schedule.objects.get().next_run_at.astimezone(PARIS)
    assert enabled == f"enabled nightly; next run {next_run:%Y-%m-%d %H:%M:%S%:z}\n"
