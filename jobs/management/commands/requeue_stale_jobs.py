from django.core.management.base import BaseCommand

from jobs import selectors, services
from jobs.models import ReaperError


class Command(BaseCommand):
    help = (
        "Run the lease reaper now: fail running jobs past their timeout and requeue (or fail "
        f"as '{ReaperError.WORKER_LOST}', or end cancelled when that was requested) jobs whose "
        "worker stopped renewing its lease. Workers also run it every JOBS_REAP_INTERVAL "
        "seconds."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; change nothing."
        )

    def handle(self, *args, **options):
        if options["dry_run"]:
            preview = selectors.jobs_stale_preview()
            self.stdout.write(f"timed out: {preview.timed_out}")
            self.stdout.write(f"requeued: {preview.requeue}")
            self.stdout.write(f"failed ({ReaperError.WORKER_LOST}): {preview.lost}")
            self.stdout.write(f"cancelled (as requested): {preview.cancelled}")
            self.stdout.write("Dry run: nothing changed.")
            return
        reaped = services.jobs_requeue_stale()
        self.stdout.write(f"timed out: {len(reaped.timed_out)}")
        self.stdout.write(f"requeued: {len(reaped.requeued)}")
        self.stdout.write(f"failed ({ReaperError.WORKER_LOST}): {len(reaped.lost)}")
        self.stdout.write(f"cancelled (as requested): {len(reaped.cancelled)}")
