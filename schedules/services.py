"""Every write of schedules (a job of a registered type enqueued on a cron expression, per
tenant), and the tick that enqueues their jobs.

Every write of a ``Schedule`` goes through this module, which validates it first (job
type, payload per the API's JSON bounds and the type's serializer, cron expression and its
shortest interval, timezone, the tenant's schedule count): an invalid schedule raises
``ValidationError`` and nothing is stored. Scheduled jobs pass no rate limit, so a tenant
has at most ``JOBS_SCHEDULES_PER_TENANT`` schedules, none ticking more often than every
``JOBS_SCHEDULE_MIN_INTERVAL`` seconds.

Any worker ticks (``tick``, at each of its reaper rounds, every ``JOBS_REAP_INTERVAL``);
a tick enqueues exactly one job however many workers run: the due schedules are locked
(``FOR UPDATE SKIP LOCKED``) and advanced in the transaction that enqueues their jobs,
and each job's key ``schedule:<id>:<tick>`` is unique in its tenant (``Job.system_key``, a
space no client writes, so no Idempotency-Key can take a tick's place). A tick is
enqueued up to one reaper interval after its time. Ticks are fair across tenants, as claims
are: one round takes at most ``TICKS_PER_TENANT`` due schedules of each tenant, each
tenant's first due one before any tenant's second, so a tenant with many due schedules (rows
from before the bounds) delays only its own. After downtime (no worker running,
or the tenant inactive) only the latest missed tick runs; ticks missed while a schedule
was disabled never run.
"""

import json
import logging
from datetime import datetime
from zoneinfo import available_timezones

from cronsim import CronSimError
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from rest_framework import serializers
from rest_framework.exceptions import ParseError

from core.clock import db_now
from core.limits import parse_json
from jobs import services
from jobs.exceptions import UnknownJobType
from jobs.models import Job
from jobs.periodic import periodic
from jobs.registry import job_types
from schedules.cron import latest_tick, next_tick, shortest_interval
from schedules.models import Schedule
from schedules.selectors import schedule_get
from tenants.scope import one_tenant, tenant_bound_refusal, tenant_lock

logger = logging.getLogger(__name__)

# Most due schedules one transaction of a tick takes.
TICK_BATCH = 100
# Most due schedules of one tenant one tick takes (the next tick takes the rest).
TICKS_PER_TENANT = 20

# The due schedules of active tenants, ranked per tenant (oldest due first); one tick's
# transaction takes the first TICK_BATCH by rank, of tenants no earlier transaction of the
# tick took any of.
_FAIR_DUE_SQL = """
SELECT id FROM (
    SELECT schedule.id, schedule.next_run_at,
           row_number() OVER (
               PARTITION BY schedule.tenant_id ORDER BY schedule.next_run_at, schedule.id
           ) AS rank
    FROM job_schedule AS schedule
    JOIN tenants_tenant AS tenant ON tenant.id = schedule.tenant_id
    WHERE schedule.enabled AND schedule.next_run_at <= %s AND tenant.is_active
      AND NOT (schedule.tenant_id = ANY(%s))
) AS due
WHERE rank <= %s
ORDER BY rank, next_run_at
LIMIT %s
"""


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
    field (``type``, ``payload``, ``cron``, ``timezone``) otherwise. The payload must be
    JSON the API would accept (``core.limits``: depth, finite numbers, storable strings)."""
    errors = {}
    registered = job_types()
    try:
        payload = parse_json(json.dumps(payload))
    except (ParseError, TypeError, ValueError, RecursionError) as exc:
        # ParseError (the API's bounds); what json.dumps refuses: an object that is no
        # JSON, an integer too long to write, nesting beyond Python's recursion limit.
        detail = getattr(exc, "detail", None) or "not JSON the API would accept"
        errors["payload"] = [f"Invalid payload: {detail}"]
    if type not in registered:
        known = ", ".join(sorted(registered))
        errors["type"] = f"Unknown job type {type!r}. Registered types: {known}."
    elif "payload" not in errors:
        try:
            payload = registered[type].validate_payload(payload)
        except serializers.ValidationError as exc:
            detail = exc.detail.get("payload", exc.detail)  # always a dict here
            errors["payload"] = ["Invalid payload: " + "; ".join(_messages(detail))]
    if timezone not in available_timezones():
        errors["timezone"] = f"Unknown timezone {timezone!r} (an IANA name such as Europe/Paris)."
    try:
        interval = shortest_interval(cron)
    except CronSimError as exc:
        errors["cron"] = f"Invalid cron expression {cron!r}: {exc}."
    else:
        if interval < settings.JOBS_SCHEDULE_MIN_INTERVAL:
            errors["cron"] = (
                f"{cron!r} ticks {interval} s apart; schedules tick at most every "
                f"{settings.JOBS_SCHEDULE_MIN_INTERVAL} s (JOBS_SCHEDULE_MIN_INTERVAL)."
            )
    if errors:
        raise ValidationError(errors)
    return payload


def schedule_validate(schedule: Schedule) -> None:
    """Check ``schedule`` (new or changed) and normalise its payload; ``ValidationError``
    naming each bad field (``name``, ``type``, ``payload``, ``cron``, ``timezone``), or the
    tenant's schedule count (``__all__``) for a new one."""
    one_tenant(schedule.tenant)
    errors = {}
    try:
        schedule.clean_fields(exclude=["tenant", "payload"])  # names and lengths
    except ValidationError as exc:
        errors.update(exc.message_dict)
    try:
        schedule.payload = validate(
            type=schedule.type,
            payload=schedule.payload,
            cron=schedule.cron,
            timezone=schedule.timezone,
        )
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, messages)
    others = Schedule.objects.filter(tenant=schedule.tenant).exclude(pk=schedule.pk)
    if "name" not in errors and others.filter(name=schedule.name).exists():
        errors["name"] = [f"The tenant already has a schedule named {schedule.name!r}."]
    if schedule.pk is None and (
        full := tenant_bound_refusal(others, setting="JOBS_SCHEDULES_PER_TENANT", noun="schedules")
    ):
        errors["__all__"] = [full]
    if errors:
        raise ValidationError(errors)


def schedule_save(schedule: Schedule) -> Schedule:
    """Validate (``schedule_validate``) and store ``schedule``; its next run is computed
    from now (None while disabled). The tenant's row is locked meanwhile, so concurrent
    saves cannot pass the count bound or take one name together."""
    one_tenant(schedule.tenant)
    with transaction.atomic():
        tenant_lock(schedule.tenant)
        schedule_validate(schedule)
        schedule.next_run_at = next_tick(schedule, db_now()) if schedule.enabled else None
        schedule.save()
    return schedule


def schedule_set_enabled(*, tenant, name: str, enabled: bool) -> Schedule:
    """Enable or disable a schedule of ``tenant``. Enabling counts from now: ticks missed
    while it was disabled never run; it validates the schedule as ``schedule_save`` does.
    Disabling always succeeds, even for a row stored before today's bounds."""
    schedule = schedule_get(tenant=tenant, name=name)
    schedule.enabled = enabled
    if enabled:
        return schedule_save(schedule)
    schedule.next_run_at = None
    schedule.save(update_fields=["enabled", "next_run_at"])
    return schedule


def schedule_run_now(*, tenant, name: str, created_by=None) -> Job:
    """Enqueue one job of ``tenant``'s schedule ``name`` now, with its type and payload,
    beside its ticks (its next run stays as it was), whether it is enabled or not."""
    schedule = schedule_get(tenant=tenant, name=name)
    return services.job_enqueue(
        tenant=schedule.tenant,
        type=schedule.type,
        payload=schedule.payload,
        created_by=created_by,
    )


def schedule_remove(*, tenant, name: str) -> bool:
    """Delete a schedule of ``tenant`` (its jobs stay); False if there is none."""
    deleted, _ = Schedule.objects.filter(tenant=one_tenant(tenant), name=name).delete()
    return bool(deleted)


@periodic("schedules.tick")
def tick(*, now: datetime | None = None) -> list[Job]:
    """Enqueue one job for each enabled schedule that is due (of an active tenant), for
    its latest tick at or before ``now`` (default: PostgreSQL's clock), and move each to
    its next tick: at most ``TICKS_PER_TENANT`` of each tenant, fairly (module docstring),
    in transactions of up to ``TICK_BATCH``. Returns the jobs enqueued. Safe from every
    worker at once: schedules another worker is ticking are skipped, and a tick's key is
    unique."""
    enqueued = []
    now = now or db_now()
    taken: set[int] = set()  # tenants this tick has taken schedules of
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(_FAIR_DUE_SQL, [now, list(taken), TICKS_PER_TENANT, TICK_BATCH])
                fair = [row[0] for row in cursor.fetchall()]
            due = list(
                Schedule.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("tenant")
                .filter(pk__in=fair)
                # Again on the locked row: another worker may have advanced it meanwhile.
                .filter(enabled=True, next_run_at__lte=now, tenant__is_active=True)
            )
            for schedule in due:
                job = _enqueue_tick(schedule, now)
                if job is not None:
                    enqueued.append(job)
        taken.update(schedule.tenant_id for schedule in due)
        if len(due) < TICK_BATCH:
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
