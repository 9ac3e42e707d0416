from django.core.management.base import BaseCommand, CommandError

from jobs.worker import Worker, parse_pools


class Command(BaseCommand):
    help = "Run a job worker until SIGTERM/SIGINT (or until idle with --burst)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency",
            type=int,
            default=1,
            help="Jobs run at once, one thread each (default 1).",
        )
        parser.add_argument(
            "--queues",
            default="default",
            help="Comma-separated queues to take jobs from (default: default); name:N gives"
            " a queue its own N threads (reports:2,default:8), plain names share"
            " --concurrency threads.",
        )
        parser.add_argument("--burst", action="store_true", help="Exit once nothing is runnable.")
        parser.add_argument(
            "--max-jobs", type=int, default=None, help="Exit after claiming this many jobs."
        )
        parser.add_argument(
            "--worker-id",
            default=None,
            help="Identity recorded on claimed jobs (default host-pid-random).",
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=30.0,
            help="Seconds running jobs get to finish after SIGTERM (default 30).",
        )

    def handle(self, *args, **options):
        try:
            pools = [q.strip() for q in options["queues"].split(",") if q.strip()]
            parse_pools(pools, options["concurrency"])
        except ValueError as exc:
            raise CommandError(f"--queues: {exc}") from None
        worker = Worker(
            worker_id=options["worker_id"],
            queues=pools,
            concurrency=options["concurrency"],
            burst=options["burst"],
            max_jobs=options["max_jobs"],
            grace=options["grace"],
        )
        worker.install_signal_handlers()
        worker.run()
