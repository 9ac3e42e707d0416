"""Schedules (schedules.services): validation on save, the command, ticks with an injected
clock, and real worker processes ticking one schedule together."""

import signal
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job
from schedules import services
from schedules.models import Schedule
from tests.helpers import start_manage
from tests.jobs.test_engine import wait_for

MINUTE = timedelta(minutes=1)


def command(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("jobs_schedule", *args, stdout=out)
    return out.getvalue()


def add(tenant, name="nightly", cron="*/1 * * * *", **options) -> Schedule:
    args = ["add", "--tenant", tenant.schema_name, "--name", name, "--cron", cron]
    args += ["--type", options.pop("type", "demo.echo")]
    for option, value in options.items():
        args += [f"--{option}", value]
    command(*args)
    return Schedule.objects.get(tenant=tenant, name=name)


def keys_of(schedule) -> list[str]:
    return list(
        Job.objects.filter(tenant=schedule.tenant, system_key__startswith="schedule:")
        .order_by("created_at")
        .values_list("system_key", flat=True)
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"type": "no.such"}, "type: Unknown job type 'no.such'"),
        ({"type": "demo.sleep", "payload": '{"seconds": "x"}'}, "payload: Invalid payload"),
        ({"payload": "[1]"}, "payload: Invalid payload: Must be a JSON object."),
        ({"payload": "{nope"}, "payload: not JSON"),
        ({"cron": "61 * * * *"}, "cron: Invalid cron expression '61 * * * *'"),
        ({"cron": "* * *"}, "cron: Invalid cron expression"),
        ({"timezone": "Mars/Olympus"}, "timezone: Unknown timezone 'Mars/Olympus'"),
    ],
)
def test_an_invalid_schedule_is_refused_with_a_clear_error_and_nothing_stored(
    acme, options, message
):
    cron = options.pop("cron", "0 3 * * *")
    with pytest.raises(CommandError, match="not stored") as refused:
        add(acme, cron=cron, **options)
    assert message in str(refused.value)
    assert not Schedule.objects.exists()


@pytest.mark.django_db
def test_add_list_disable_enable_remove_per_tenant(acme, globex):
    schedule = add(acme, cron="0 3 * * *", timezone="Europe/Paris", payload='{"n": 1}')
    assert (schedule.payload, schedule.enabled) == ({"n": 1}, True)
    assert schedule.next_run_at.astimezone(ZoneInfo("Europe/Paris")).hour == 3
    add(globex)  # the same name in another tenant

    with pytest.raises(CommandError, match="already has a schedule named 'nightly'"):
        add(acme)
    listed = command("list", "--tenant", "acme")
    assert listed.splitlines()[1].startswith("nightly  demo.echo  0 3 * * *  Europe/Paris")
    assert "*/1" not in listed  # globex's schedule is not acme's

    command("disable", "nightly", "--tenant", "acme")
    schedule.refresh_from_db()
    assert (schedule.enabled, schedule.next_run_at) == (False, None)
    command("enable", "nightly", "--tenant", "acme")
    schedule.refresh_from_db()
    assert schedule.enabled
    assert schedule.next_run_at is not None

    with pytest.raises(CommandError, match="no schedule 'other' in acme"):
        command("enable", "other", "--tenant", "acme")
    command("remove", "nightly", "--tenant", "acme")
    assert list(Schedule.objects.values_list("tenant__schema_name", flat=True)) == ["globex"]
    with pytest.raises(CommandError, match="no customer tenant with schema 'nope'"):
        command("list", "--tenant", "nope")


@pytest.mark.django_db
def test_each_tick_enqueues_one_job_and_a_disabled_schedule_none(acme):
    schedule = add(acme, payload='{"n": 1}')
    first = schedule.next_run_at
    assert first.second == 0

    assert services.tick(now=first - timedelta(seconds=1)) == []  # not due yet
    (job,) = services.tick(now=first)
    assert (job.tenant, job.type, job.payload) == (acme, "demo.echo", {"n": 1})
    assert services.tick(now=first) == []  # the same tick again: nothing
    schedule.refresh_from_db()
    assert (schedule.last_tick_at, schedule.last_job_id) == (first, job.id)
    assert schedule.next_run_at == first + MINUTE

    services.schedule_set_enabled(tenant=acme, name="nightly", enabled=False)
    assert services.tick(now=first + MINUTE) == []
    services.schedule_set_enabled(tenant=acme, name="nightly", enabled=True)
    assert len(services.tick(now=first + 2 * MINUTE)) == 1
    assert keys_of(schedule) == [
        f"schedule:{schedule.pk}:{first.isoformat()}",
        f"schedule:{schedule.pk}:{(first + 2 * MINUTE).isoformat()}",
    ]


@pytest.mark.django_db
def test_after_downtime_only_the_latest_missed_tick_runs(acme):
    schedule = add(acme)
    first = schedule.next_run_at
    (job,) = services.tick(now=first + 10 * MINUTE + timedelta(seconds=30))
    assert job.system_key == f"schedule:{schedule.pk}:{(first + 10 * MINUTE).isoformat()}"
    schedule.refresh_from_db()
    assert schedule.next_run_at == first + 11 * MINUTE


@pytest.mark.django_db
def test_an_inactive_tenants_schedule_does_not_tick(acme):
    schedule = add(acme)
    acme.is_active = False
    acme.save(update_fields=["is_active"])
    try:
        assert services.tick(now=schedule.next_run_at) == []
    finally:
        acme.is_active = True
        acme.save(update_fields=["is_active"])


# --- real workers -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_worker_processes_enqueue_exactly_one_job_per_tick(acme, processes, settings):
    settings.JOBS_SCHEDULE_MIN_INTERVAL = 1  # many ticks in a few seconds
    schedule = add(acme, name="every-second", cron="* * * * * *")
    fast = {"JOBS_REAP_INTERVAL": "0.05", "JOBS_POLL_INTERVAL": "0.05"}
    for _ in range(2):
        processes.append(start_manage("run_worker", **fast))

    wait_for(lambda: len(keys_of(schedule)) >= 4, timeout=60)
    keys = keys_of(schedule)
    assert len(keys) == len(set(keys)) == Job.objects.filter(tenant=acme).count() >= 4
    # The key is schedule:<pk>:<tick as ISO 8601>; compare instants, not text pieces,
    # so a run that crosses a minute or an hour still reads in order.
    ticks = [datetime.fromisoformat(key.split(":", 2)[2]) for key in keys]
    assert ticks == sorted(ticks)  # each tick once, in order

    services.schedule_set_enabled(tenant=acme, name="every-second", enabled=False)
    settled = len(keys_of(schedule))  # a tick in flight when it was disabled has committed
    time.sleep(2)  # two ticks' worth: a disabled schedule enqueues nothing
    assert len(keys_of(schedule)) == settled

    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        assert process.wait(timeout=30) == 0
        log = process.log_path.read_text()
        assert "already enqueued" not in log, log  # the lock, not the unique key, decided


# --- the admin ------------------------------------------------------------------------------


@pytest.fixture
def carol_admin(public_tenant, acme):
    from tests.factories import UserFactory
    from tests.helpers import admin_client_for

    return admin_client_for(UserFactory(username="carol", tenant=acme, is_staff=True))


@pytest.mark.django_db
def test_tenant_staff_see_and_add_only_their_tenants_schedules(carol_admin, acme, globex):
    add(acme, name="acme-nightly")
    add(globex, name="globex-nightly")
    listing = carol_admin.get("/admin/schedules/schedule/").content.decode()
    assert "acme-nightly" in listing
    assert "globex-nightly" not in listing
    theirs = Schedule.objects.get(tenant=globex)
    assert carol_admin.get(f"/admin/schedules/schedule/{theirs.pk}/change/").status_code == 302

    form = {"name": "hourly", "type": "demo.echo", "payload": "{}", "cron": "0 * * * *"}
    form |= {"timezone": "UTC", "enabled": "on", "tenant": str(globex.pk)}
    bad = carol_admin.post("/admin/schedules/schedule/add/", {**form, "cron": "0 * *"})
    assert bad.status_code == 200
    assert "Invalid cron expression" in bad.content.decode()
    assert carol_admin.post("/admin/schedules/schedule/add/", form).status_code == 302
    created = Schedule.objects.get(name="hourly")
    assert created.tenant == acme  # never the tenant the form was sent
    assert created.next_run_at is not None
    duplicate = carol_admin.post("/admin/schedules/schedule/add/", form)
    assert "already has a schedule named" in duplicate.content.decode()


# --- issue 23: enable/disable and "run now" actions, the next runs, the timezone chooser -


def _act(client, name: str, *schedules):
    return client.post(
        "/admin/schedules/schedule/",
        {"action": name, "_selected_action": [str(s.pk) for s in schedules], "index": "0"},
    )


@pytest.mark.django_db
def test_disable_enable_and_run_now_actions(carol_admin, acme, globex):
    mine = add(acme, name="acme-hourly", cron="0 * * * *")
    theirs = add(globex, name="globex-hourly", cron="0 * * * *")
    _act(carol_admin, "disable_schedules", mine, theirs)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.enabled, mine.next_run_at) == (False, None)
    assert theirs.enabled  # another tenant's: out of carol's reach
    _act(carol_admin, "enable_schedules", mine)
    mine.refresh_from_db()
    assert mine.enabled
    assert mine.next_run_at is not None
    next_run = mine.next_run_at
    _act(carol_admin, "run_schedules_now", mine, theirs)
    assert list(Job.objects.values_list("tenant", "type")) == [(acme.pk, "demo.echo")]
    mine.refresh_from_db()
    assert mine.next_run_at == next_run  # a run now is no tick


@pytest.mark.django_db
def test_the_form_shows_the_next_five_runs_and_offers_timezones(carol_admin, acme):
    schedule = add(acme, name="paris-nine", cron="0 9 * * *", timezone="Europe/Paris")
    page = carol_admin.get(f"/admin/schedules/schedule/{schedule.pk}/change/").content.decode()
    runs = page.split('<ol class="schedule-next-runs">', 1)[1].split("</ol>", 1)[0]
    assert runs.count("<li>") == 5
    assert "09:00:00 Europe/Paris" in runs
    assert '<option value="Europe/Paris" selected>' in page
    form = {"name": "x", "type": "demo.echo", "payload": "{}", "cron": "0 * * * *"}
    refused = carol_admin.post(
        "/admin/schedules/schedule/add/", {**form, "timezone": "Mars/Olympus", "enabled": "on"}
    )
    assert "Select a valid choice" in refused.content.decode()
