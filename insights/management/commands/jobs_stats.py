"""``manage.py jobs_stats``: the live queue and recent throughput, per tenant, then flow
control's budgets in use and the pauses (``jobs.flow.report``).

It reads the live queue (pending and processing jobs, on their partial indexes) and the
rollup the workers write as runs end (``insights.services``), never ``job_queue``'s history:
it costs the same with a thousand finished jobs or a hundred million.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ALL_TENANTS
from core.tables import table
from insights.selectors import stats_by_tenant
from jobs.flow.report import status_json, status_lines
from jobs.management.commands._durations import parse_age
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Pending and processing jobs per tenant, the age of the oldest due pending job, and "
        "the runs completed and failed over the last hour (or --window, in whole minutes), "
        "then each flow-control budget's use and the pauses."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument("--tenant", default=None, help="Only this tenant's schema name.")
        parser.add_argument(
            "--window",
            default="1h",
            help="Throughput over this last stretch: 30d, 12h, 90m or 45s (default 1h).",
        )

    def handle(self, *args, **options):
        try:
            window = parse_age(options["window"])
        except ValueError as exc:
            raise CommandError(f"--window: {exc}") from None
        if not window:
            raise CommandError("--window must be longer than 0s")
        tenant = ALL_TENANTS
        if options["tenant"]:
            tenant = Tenant.objects.filter(schema_name=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant with schema {options['tenant']!r}")
        tenants = stats_by_tenant(tenant=tenant, window=window)
        ages = [t["oldest_pending_age_seconds"] for t in tenants.values()]
        ages = [age for age in ages if age is not None]
        totals = {
            "pending": sum(t["pending"] for t in tenants.values()),
            "processing": sum(t["processing"] for t in tenants.values()),
            "oldest_pending_age_seconds": max(ages) if ages else None,
            "completed": sum(t["completed"] for t in tenants.values()),
            "failed": sum(t["failed"] for t in tenants.values()),
        }
        if options["json"]:
            stats = {
                "window_seconds": int(window.total_seconds()),
                "totals": totals,
                "tenants": tenants,
                **status_json(tenant=tenant),
            }
            self.stdout.write(json.dumps(stats, indent=2, sort_keys=True))
            return
        span = options["window"].strip()
        header = ["tenant", "pending", "processing", "oldest pending"]
        header += [f"completed {span}", f"failed {span}"]
        rows = [[schema, *_cells(entry)] for schema, entry in tenants.items()]
        rows.append(["TOTAL", *_cells(totals)])
        self.stdout.write("\n".join([*table(header, rows), "", *status_lines(tenant=tenant)]))


def _cells(entry: dict) -> list[str]:
    age = entry["oldest_pending_age_seconds"]
    return [
        str(entry["pending"]),
        str(entry["processing"]),
        "-" if age is None else f"{age:.0f}s",
        str(entry["completed"]),
        str(entry["failed"]),
    ]
