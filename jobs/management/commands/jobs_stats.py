import json

from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ALL_TENANTS
from jobs import selectors
from jobs.management.commands._durations import parse_age
from jobs.models import JobStatus
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Jobs per tenant and status, the age of the oldest due pending job, and throughput "
        "(jobs completed and failed) over the last hour, or --window."
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
        stats = selectors.jobs_stats(tenant=tenant, throughput_window=window)
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2, sort_keys=True))
            return
        statuses = JobStatus.values
        span = options["window"].strip()
        header = ["tenant", *statuses, "oldest pending", f"completed {span}", f"failed {span}"]
        rows = [
            [
                schema,
                *(str(entry["counts"][status]) for status in statuses),
                _age(entry["oldest_pending_age_seconds"]),
                str(entry["completed_last_window"]),
                str(entry["failed_last_window"]),
            ]
            for schema, entry in stats["tenants"].items()
        ]
        rows.append(
            [
                "TOTAL",
                *(str(stats["totals"][status]) for status in statuses),
                _age(stats["oldest_pending_age_seconds"]),
                str(stats["completed_last_window"]),
                str(stats["failed_last_window"]),
            ]
        )
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(row, widths, strict=True)
                ).rstrip()
            )


def _age(seconds) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"
