import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ALL_TENANTS
from jobs import selectors, services
from jobs.management.commands._durations import parse_age
from jobs.models import FINAL_STATUSES, JobStatus
from jobs.signals import jobs_cleaned
from tenants.models import Tenant

MIN_RETENTION = parse_age("24h")
PROGRESS_SECONDS = 5  # between progress lines of a long delete (default verbosity)


class Command(BaseCommand):
    help = (
        "Delete finished jobs older than a cutoff, in batches that each commit on their own, "
        "so it can run beside busy workers, and the dashboard's rollup rows as old (never "
        "those of the last day). Pending and processing jobs are never deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            default=None,
            help="Age of the jobs to delete, by completion time: 30d, 12h, 90m or 45s "
            "(default: JOBS_RETENTION).",
        )
        parser.add_argument(
            "--status",
            default="completed,failed,cancelled",
            help="Comma-separated final statuses to delete (default: all three); pending "
            "and processing are ignored.",
        )
        parser.add_argument("--tenant", default=None, help="Only this tenant's schema name.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size", type=int, default=1000, help="Rows per transaction (default 1000)."
        )

    def handle(self, *args, **options):
        older_than = self._older_than(options["older_than"])
        try:
            statuses, refused = services.deletable_statuses(options["status"].split(","))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if refused:
            self.stderr.write(
                f"Ignoring {', '.join(refused)}: pending and processing jobs are never deleted."
            )
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        tenant = ALL_TENANTS
        if options["tenant"]:
            tenant = Tenant.objects.filter(schema_name=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant with schema {options['tenant']!r}")

        cutoff = selectors.cleanup_cutoff(older_than)
        if options["dry_run"]:
            counts = selectors.jobs_count_finished(tenant=tenant, statuses=statuses, cutoff=cutoff)
            self._report(counts, statuses, "Would delete", cutoff)
            return

        counts = dict.fromkeys(statuses, 0)
        batches = 0
        reported = None
        for batch in services.jobs_delete_finished(
            tenant=tenant, statuses=statuses, cutoff=cutoff, batch_size=options["batch_size"]
        ):
            batches += 1
            for status, deleted in batch.items():
                counts[status] += deleted
            # Progress: every batch with -v 2, else the first and one every PROGRESS_SECONDS.
            now = time.monotonic()
            if options["verbosity"] >= 2 or (
                options["verbosity"] >= 1
                and (reported is None or now - reported >= PROGRESS_SECONDS)
            ):
                reported = now
                self.stdout.write(
                    f"batch {batches}: deleted {sum(batch.values())} "
                    f"({sum(counts.values())} so far)"
                )
        self._report(counts, statuses, "Deleted", cutoff, batches=batches)
        for _receiver, line in jobs_cleaned.send(sender=Command, tenant=tenant, before=cutoff):
            if line:
                self.stdout.write(line)

    def _older_than(self, value):
        if value is not None:
            try:
                return parse_age(value)
            except ValueError as exc:
                raise CommandError(f"--older-than: {exc}") from None
        try:
            retention = parse_age(settings.JOBS_RETENTION)
        except ValueError as exc:
            raise CommandError(f"JOBS_RETENTION: {exc}") from None
        if retention < MIN_RETENTION:
            raise CommandError("JOBS_RETENTION must be at least 24h")
        return retention

    def _report(self, counts, statuses, verb, cutoff, batches=None):
        for status in JobStatus.values:
            if status in FINAL_STATUSES and status in statuses:
                self.stdout.write(f"{status}: {counts.get(status, 0)}")
        total = sum(counts.values())
        in_batches = f" in {batches} batch(es)" if batches is not None else ""
        self.stdout.write(
            f"{verb} {total} job(s) finished before {cutoff.isoformat()}{in_batches}."
        )
