"""``manage.py jobs_schedule add|list|enable|disable|remove --tenant T …``: a tenant's
schedules (``schedules.services``). An invalid schedule is refused with each error, and
nothing is stored. Times are shown in the schedule's own timezone, with their UTC offset;
``list`` prints a table with a header (``-`` where a value is missing), or "no schedules"."""

from datetime import UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ParseError

from core.limits import parse_json
from core.tables import MISSING, table
from schedules import selectors, services
from schedules.models import Schedule
from tenants.commands import refusal, tenant_named


class Command(BaseCommand):
    help = "Add, list, enable, disable or remove a tenant's schedules."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="Add a schedule.")
        add.add_argument("--name", required=True)
        add.add_argument("--type", required=True, help="A registered job type.")
        add.add_argument("--cron", required=True, help="5 fields, or 6 with seconds first.")
        add.add_argument("--payload", default="{}", help="The job's payload (JSON object).")
        add.add_argument("--timezone", default="UTC", help="IANA name, default UTC.")
        actions.add_parser("list", help="List the tenant's schedules.")
        for action in ("enable", "disable", "remove"):
            sub = actions.add_parser(action, help=f"{action.title()} a schedule.")
            sub.add_argument("name")
        for sub in actions.choices.values():
            sub.add_argument("--tenant", required=True, help="The tenant's schema name.")

    def handle(self, *args, **options):
        tenant = tenant_named(options["tenant"])
        action = options["action"]
        if action == "add":
            self._add(tenant, options)
        elif action == "list":
            self._list(tenant)
        elif action == "remove":
            if not services.schedule_remove(tenant=tenant, name=options["name"]):
                raise CommandError(f"no schedule {options['name']!r} in {tenant.schema_name}")
            self.stdout.write(f"removed {options['name']}")
        else:
            try:
                schedule = services.schedule_set_enabled(
                    tenant=tenant, name=options["name"], enabled=action == "enable"
                )
            except Schedule.DoesNotExist:
                raise CommandError(
                    f"no schedule {options['name']!r} in {tenant.schema_name}"
                ) from None
            except ValidationError as exc:  # enabling a row stored before today's checks
                raise refusal(exc) from None
            if schedule.enabled:
                next_run = local_time(schedule, schedule.next_run_at)
                self.stdout.write(f"enabled {schedule.name}; next run {next_run}")
            else:
                self.stdout.write(f"disabled {schedule.name}")

    def _add(self, tenant, options):
        try:
            payload = parse_json(options["payload"])
        except ParseError as exc:
            raise CommandError(f"not stored:\n  payload: not JSON ({exc.detail})") from None
        schedule = Schedule(
            tenant=tenant,
            name=options["name"],
            type=options["type"],
            payload=payload,
            cron=options["cron"],
            timezone=options["timezone"],
        )
        try:
            services.schedule_save(schedule)
        except ValidationError as exc:
            raise refusal(exc) from None
        next_run = local_time(schedule, schedule.next_run_at)
        self.stdout.write(f"added {schedule.name}; next run {next_run}")

    def _list(self, tenant):
        schedules = list(selectors.schedules_for(tenant=tenant).order_by("name"))
        if not schedules:
            self.stdout.write("no schedules")
            return
        rows = [
            [
                schedule.name,
                schedule.type,
                schedule.cron,
                schedule.timezone,
                "enabled" if schedule.enabled else "disabled",
                local_time(schedule, schedule.next_run_at),
                local_time(schedule, schedule.last_tick_at),
                schedule.last_job_id,
            ]
            for schedule in schedules
        ]
        self.stdout.write("\n".join(table(LIST_HEADER, rows)))


LIST_HEADER = ["name", "type", "cron", "timezone", "state", "next run", "last run", "last job"]


def local_time(schedule: Schedule, moment) -> str:
    """``moment`` in ``schedule``'s timezone with its UTC offset (``2026-12-07
    03:00:00+01:00``), as ``add``, ``enable`` and ``list`` print it; ``-`` for none. A
    timezone this machine does not know (a row stored before today's checks) shows UTC."""
    if moment is None:
        return MISSING
    try:
        zone = ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    return moment.astimezone(zone).isoformat(sep=" ", timespec="seconds")
