"""Bounds on schedules (schedules.services), on every route that writes one (service, command,
admin), and ticks fair across tenants: hundreds of one tenant's due schedules (rows from
before the bounds) never make another tenant's tick late beyond one round, or lost."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from core.clock import db_now
from jobs.models import Job
from schedules import services
from schedules.models import Schedule
from tenants.models import Tenant

ROUND = timedelta(seconds=10)  # JOBS_REAP_INTERVAL's default: a worker's tick interval


def add(tenant, name, cron="0 3 * * *", payload="{}"):
    call_command(
        "jobs_schedule",
        *("add", "--tenant", tenant.schema_name, "--name", name, "--type", "demo.echo"),
        *("--cron", cron, "--payload", payload),
        stdout=StringIO(),
    )


@pytest.fixture
def carol_admin(public_tenant, acme):
    from tests.factories import UserFactory
    from tests.helpers import admin_client_for

    return admin_client_for(UserFactory(username="carol", tenant=acme, is_staff=True))


def admin_form(name, cron="0 3 * * *", payload="{}"):
    return {
        "name": name,
        "type": "demo.echo",
        "payload": payload,
        "cron": cron,
        "timezone": "UTC",
        "enabled": "on",
    }


@pytest.mark.django_db
def test_a_tenant_has_at_most_its_bound_of_schedules_by_every_route(
    carol_admin, acme, globex, settings
):
    settings.JOBS_SCHEDULES_PER_TENANT = 2
    add(acme, "one")
    add(acme, "two")
    with pytest.raises(CommandError, match="already has 2 schedules"):
        add(acme, "three")
    with pytest.raises(ValidationError, match="JOBS_SCHEDULES_PER_TENANT"):
        services.schedule_save(
            Schedule(tenant=acme, name="four", type="demo.echo", cron="0 3 * * *")
        )
    refused = carol_admin.post("/admin/schedules/schedule/add/", admin_form("five"))
    assert refused.status_code == 200
    assert "already has 2 schedules" in refused.content.decode()
    assert sorted(Schedule.objects.filter(tenant=acme).values_list("name", flat=True)) == [
        "one",
        "two",
    ]
    one = Schedule.objects.get(tenant=acme, name="one")
    edited = carol_admin.post(
        f"/admin/schedules/schedule/{one.pk}/change/", admin_form("one", cron="0 4 * * *")
    )
    assert edited.status_code == 302  # a change is no new schedule
    services.schedule_set_enabled(tenant=acme, name="two", enabled=False)
    add(globex, "theirs")  # each tenant's count is its own


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cron", "interval"),
    [
        ("* * * * * *", 1),  # every second
        ("*/30 * * * * *", 30),
        ("0,5 0 0 1 1 *", 5),  # twice, 5 s apart, once a year
        ("59 23 * * *", None),  # daily: allowed
        ("*/1 * * * *", None),  # minutely: the minimum itself
    ],
)
def test_a_schedule_ticks_no_more_often_than_the_minimum_interval(
    carol_admin, acme, cron, interval
):
    """JOBS_SCHEDULE_MIN_INTERVAL (60 s) on the command, the service and the admin, also for
    an expression whose short gap comes once a year."""
    if interval is None:
        add(acme, "ok", cron=cron)
        assert Schedule.objects.filter(tenant=acme, name="ok").exists()
        return
    message = f"ticks {interval} s apart; schedules tick at most every 60 s"
    with pytest.raises(CommandError, match=message):
        add(acme, "fast", cron=cron)
    with pytest.raises(ValidationError, match="JOBS_SCHEDULE_MIN_INTERVAL"):
        services.schedule_save(Schedule(tenant=acme, name="fast", type="demo.echo", cron=cron))
    refused = carol_admin.post("/admin/schedules/schedule/add/", admin_form("fast", cron=cron))
    assert refused.status_code == 200
    assert message in refused.content.decode()
    ok = Schedule.objects.create(tenant=acme, name="slow", type="demo.echo", cron="0 3 * * *")
    changed = carol_admin.post(
        f"/admin/schedules/schedule/{ok.pk}/change/", admin_form("slow", cron)
    )
    assert message in changed.content.decode()
    assert not Schedule.objects.filter(tenant=acme, name="fast").exists()
    assert Schedule.objects.get(pk=ok.pk).cron == "0 3 * * *"


@pytest.mark.django_db
def test_a_schedule_stored_before_the_bounds_can_still_be_disabled(acme):
    """A row past today's minimum interval (stored before it) is disabled by the command,
    which saves no other field; enabling it again checks it like a new one."""
    Schedule.objects.create(tenant=acme, name="old", type="demo.echo", cron="* * * * * *")
    call_command("jobs_schedule", "disable", "old", "--tenant", "acme", stdout=StringIO())
    old = Schedule.objects.get(tenant=acme, name="old")
    assert (old.enabled, old.next_run_at) == (False, None)
    with pytest.raises(CommandError, match="JOBS_SCHEDULE_MIN_INTERVAL"):
        call_command("jobs_schedule", "enable", "old", "--tenant", "acme", stdout=StringIO())
    assert not Schedule.objects.get(tenant=acme, name="old").enabled


@pytest.mark.django_db
def test_the_command_refuses_the_public_tenant(public_tenant):
    with pytest.raises(CommandError, match="no customer tenant with schema 'public'"):
        add(public_tenant, "platform")
    assert not Schedule.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"a": NaN}', "NaN is not valid JSON"),
        ('{"a": Infinity}', "Infinity is not valid JSON"),
        ('{"a": -Infinity}', "Infinity is not valid JSON"),
        ('{"a": 1e999}', "number out of range"),
        ('{"a": "\\u0000"}', "NUL characters"),
        ('{"a": ' + "1" * 5000 + "}", "JSON parse error"),
        ("[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
    ],
)
def test_the_command_refuses_a_payload_the_api_would_refuse(acme, payload, message):
    with pytest.raises(CommandError, match=f"payload: not JSON \\(.*{message}"):
        add(acme, "bad", payload=payload)
    assert not Schedule.objects.exists()


@pytest.mark.django_db
def test_the_service_refuses_a_payload_the_api_would_refuse(acme):
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    for payload, message in [
        ({"a": float("nan")}, "NaN is not valid JSON"),
        ({"a": "\x00"}, "NUL characters"),
        ({"a": 10**5000}, "not JSON the API would accept"),
        ({"a": deep}, "not JSON the API would accept"),
        ({"a": {"b": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}, "deeper"),
    ]:
        schedule = Schedule(tenant=acme, name="bad", type="demo.echo", cron="0 3 * * *")
        schedule.payload = payload
        with pytest.raises(ValidationError, match=message):
            services.schedule_save(schedule)
    assert not Schedule.objects.exists()


def _bulk_schedules(tenant: Tenant, count: int, cron: str, due):
    """``count`` schedules of ``tenant`` due at ``due``, stored in SQL past every bound, as
    rows created before the bounds existed are."""
    Schedule.objects.bulk_create(
        Schedule(tenant=tenant, name=f"s{n}", type="demo.echo", cron=cron, next_run_at=due)
        for n in range(count)
    )


@pytest.mark.django_db(transaction=True)
def test_hundreds_of_one_tenants_schedules_never_delay_another_tenants_tick(acme, globex):
    """Acme has 400 every-second schedules (stored before the bounds), all overdue; globex
    one minutely schedule. Workers tick every 10 s for three minutes: in every round,
    globex's tick that is due is enqueued in that round, none is lost; acme's take at most
    TICKS_PER_TENANT per round. (One global batch of the 100 oldest due schedules put
    globex's tick behind acme's, late and then lost.)"""
    add(globex, "minutely", cron="* * * * *")
    minutely = Schedule.objects.get(tenant=globex)
    start = minutely.next_run_at
    _bulk_schedules(acme, 400, "* * * * * *", due=start - timedelta(minutes=5))

    enqueued_ticks = set()
    for round_number in range(19):
        now = start + round_number * ROUND
        jobs = services.tick(now=now)
        mine = [job for job in jobs if job.tenant_id == globex.pk]
        minutely.refresh_from_db()
        assert minutely.next_run_at > now, f"globex's tick due by {now} is late"
        assert len(jobs) - len(mine) <= services.TICKS_PER_TENANT
        enqueued_ticks |= {job.system_key for job in mine}

    ticks = [start + timedelta(minutes=n) for n in range(4)]  # start + 0..3 min, within 180 s
    assert enqueued_ticks == {f"schedule:{minutely.pk}:{tick.isoformat()}" for tick in ticks}
    assert Job.objects.filter(tenant=globex).count() == len(ticks)


@pytest.mark.django_db(transaction=True)
def test_a_round_reaches_every_tenant_with_due_schedules(acme, globex, monkeypatch):
    """More tenants with due schedules than one transaction takes (here TICK_BATCH = 1):
    the round carries on, with the tenants it has not reached yet, until each had one."""
    monkeypatch.setattr(services, "TICK_BATCH", 1)
    due = db_now() - timedelta(seconds=1)
    _bulk_schedules(acme, 5, "* * * * *", due=due)
    _bulk_schedules(globex, 5, "* * * * *", due=due)
    jobs = services.tick()
    assert sorted(job.tenant_id for job in jobs) == sorted([acme.pk, globex.pk])
