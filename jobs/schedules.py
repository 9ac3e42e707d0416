"""Schedules: a job of a registered type enqueued on a cron expression, per tenant.

Every write of a ``Schedule`` goes through this module, which validates it first (job
type, payload per the type's serializer, cron expression, timezone): an invalid schedule
raises ``ValidationError`` and nothing is stored.

Any worker ticks (``tick``, at each of its reaper rounds, every ``JOBS_REAP_INTERVAL``);
a tick enqueues exactly one job however many workers run: the due schedules are locked
(``FOR UPDATE SKIP LOCKED``) and advanced in the transaction that enqueues their jobs,
and each job's key ``schedule:<id>:<tick>`` is unique in its tenant (``Job.system_key``, a
space no client writes, so no Idempotency-Key can take a tick's place). A tick is
enqueued up to one reaper interval after its time. After downtime (no worker running,
or the tenant inactive) only the latest missed tick runs; ticks missed while a schedule
was disabled never run.
"""

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from rest_framework import serializers

from accounts.roles import ALL_TENANTS
from jobs import services
from jobs.exceptions import UnknownJobType
from jobs.models import Job, Schedule
from jobs.registry import job_types
from tenants.models import Tenant

logger = logging.getLogger("jobs.schedules")

# Most due schedules one tick takes (the next tick takes the rest).
TICK_BATCH = 100


def one_tenant(tenant) -> Tenant:
    """``tenant`` itself; ``TypeError`` for anything else (``ALL_TENANTS``, None)."""
    if not isinstance(tenant, Tenant):
        raise TypeError(f"tenant must be a Tenant, not {tenant!r}")
    return tenant


def _messages(detail) -> list[str]:
    """DRF error detail (nested dicts and lists) as flat ``field: message`` lines."""
    if isinstance(detail, dict):
        return [
            f"{key}: {message}" if key != "non_field_errors" else message
            for key, value in detail.items()
            for message in _messages(value)
        ]
    if isinstance(detail, list):
        return [message for item in detail for message in _messages(item)]
    return [str(detail)]


def validate(*, type: str, payload, cron: str, timezone: str) -> dict:
    """The normalised payload of a valid schedule; ``ValidationError`` naming each bad
    field (``type``, ``payload``, ``cron``, ``timezone``) otherwise."""
    errors = {}
    registered = job_types()
    if type not in registered:
        known = ", ".join(sorted(registered))
        errors["type"] = f"Unknown job type {type!r}. Registered types: {known}."
    else:
        try:
            payload = registered[type].validate_payload(payload)
        except serializers.ValidationError as exc:
            detail = exc.detail.get("payload", exc.detail)  # always a dict here
            errors["payload"] = ["Invalid payload: " + "; ".join(_messages(detail))]
    if timezone not in available_timezones():
        errors["timezone"] = f"Unknown timezone {timezone!r} (an IANA name such as Europe/Paris)."
    try:
        CronSim(cron, datetime.now(ZoneInfo("UTC")))
    except CronSimError as exc:
        errors["cron"] = f"Invalid cron expression {cron!r}: {exc}."
    if errors:
        raise ValidationError(errors)
    return payload


def next_tick(schedule: Schedule, after: datetime) -> datetime:
    """The first tick of ``schedule`` strictly after ``after``."""
    zone = ZoneInfo(schedule.timezone)
    return next(CronSim(schedule.cron, after.astimezone(zone)))


def latest_tick(schedule: Schedule, at: datetime) -> datetime:
    """The last tick of ``schedule`` at or before ``at`` (ticks fall on whole seconds)."""
    zone = ZoneInfo(schedule.timezone)
    start = at.astimezone(zone).replace(microsecond=0) + timedelta(seconds=1)
    return next(CronSim(schedule.cron, start, reverse=True))


def _now() -> datetime:
    """PostgreSQL's clock, shared by every worker."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


def schedule_save(schedule: Schedule) -> Schedule:
    """Validate and store ``schedule`` (new or changed); its next run is computed from
    now (None while disabled). A duplicate name in the tenant is a ``ValidationError``."""
    one_tenant(schedule.tenant)
    schedule.clean_fields(exclude=["tenant", "payload"])  # names and lengths
    schedule.payload = validate(
        type=schedule.type,
        payload=schedule.payload,
        cron=schedule.cron,
        timezone=schedule.timezone,
    )
    schedule.next_run_at = next_tick(schedule, _now()) if schedule.enabled else None
    try:
        with transaction.atomic():
            schedule.save()
    except IntegrityError:
        raise ValidationError(
            {"name": f"The tenant already has a schedule named {schedule.name!r}."}
        ) from None
    return schedule


def schedules_for(*, tenant):
    """The schedules of ``tenant`` (or every tenant's, for ``ALL_TENANTS``)."""
    scheduled = Schedule.objects.select_related("tenant")
    return scheduled if tenant is ALL_TENANTS else scheduled.filter(tenant=one_tenant(tenant))


def schedule_get(*, tenant, name: str) -> Schedule:
    """The schedule ``name`` of ``tenant``; ``Schedule.DoesNotExist`` otherwise."""
    return schedules_for(tenant=one_tenant(tenant)).get(name=name)


def schedule_set_enabled(*, tenant, name: str, enabled: bool) -> Schedule:
    """Enable or disable a schedule of ``tenant``. Enabling counts from now: ticks missed
    while it was disabled never run."""
    schedule = schedule_get(tenant=tenant, name=name)
    schedule.enabled = enabled
    return schedule_save(schedule)


def schedule_remove(*, tenant, name: str) -> bool:
    """Delete a schedule of ``tenant`` (its jobs stay); False if there is none."""
    deleted, _ = Schedule.objects.filter(tenant=one_tenant(tenant), name=name).delete()
    return bool(deleted)


def tick(*, now: datetime | None = None) -> list[Job]:
    """Enqueue one job for each enabled schedule that is due (of an active tenant), for
    its latest tick at or before ``now`` (default: PostgreSQL's clock), and move each to
    its next tick. Returns the jobs enqueued. Safe from every worker at once: schedules
    another worker is ticking are skipped, and a tick's key is unique."""
    enqueued = []
    with transaction.atomic():
        now = now or _now()
        due = (
            Schedule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant")
            .filter(enabled=True, next_run_at__lte=now, tenant__is_active=True)
            .order_by("next_run_at")[:TICK_BATCH]
        )
        for schedule in due:
            job = _enqueue_tick(schedule, now)
            if job is not None:
                enqueued.append(job)
    return enqueued


def _enqueue_tick(schedule: Schedule, now: datetime) -> Job | None:
    fields = {"tenant": schedule.tenant.schema_name, "schedule": schedule.name}
    try:
        tick_at = latest_tick(schedule, now)
        schedule.next_run_at = next_tick(schedule, now)
    except (CronSimError, ValueError, StopIteration):
        logger.warning("schedule has no valid cron expression; not run", extra=fields)
        Schedule.objects.filter(pk=schedule.pk).update(next_run_at=None)
        return None
    job = None
    try:
        with transaction.atomic():
            job = services.job_enqueue(
                tenant=schedule.tenant,
                type=schedule.type,
                payload=schedule.payload,
                system_key=f"schedule:{schedule.pk}:{tick_at.isoformat()}",
            )
    except IntegrityError:
        logger.warning("schedule tick already enqueued", extra=fields)
    except UnknownJobType:
        logger.warning("schedule names a job type no longer registered", extra=fields)
    schedule.last_tick_at = tick_at
    update = ["next_run_at", "last_tick_at"]
    if job is not None:
        schedule.last_job_id = job.id
        update.append("last_job_id")
    schedule.save(update_fields=update)
    return job
