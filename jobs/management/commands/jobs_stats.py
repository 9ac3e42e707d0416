import json

from django.core.management.base import BaseCommand

from accounts.roles import ALL_TENANTS
from jobs import selectors
from jobs.models import JobStatus


class Command(BaseCommand):
    help = (
        "Jobs per tenant and status, the age of the oldest due pending job, and throughput "
        "(jobs completed and failed) over the last hour."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        stats = selectors.jobs_stats(tenant=ALL_TENANTS)
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2, sort_keys=True))
            return
        statuses = JobStatus.values
        header = ["tenant", *statuses, "oldest pending", "completed 1h", "failed 1h"]
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
