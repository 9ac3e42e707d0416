"""``manage.py run_worker``: one worker process (jobs/worker/) until SIGTERM/SIGINT.

Bad arguments are refused before anything starts, with a message naming the argument and a
non-zero exit. ``--reload`` (DEBUG only) restarts the process when a Python file it imported
changes (``django.utils.autoreload``, as runserver does); running jobs get ``--grace``
seconds to finish first, and so on SIGTERM/SIGINT to the reloaded process. Stopping the
reloader's parent ends that process at once (as for runserver): its jobs run again once their
leases expire.
"""

import argparse
import os
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import autoreload
from prometheus_client import start_http_server

from core.metrics import scrape_registry
from jobs.worker import Worker, parse_pools


def _whole_number(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds >= 0")
    return value


class Command(BaseCommand):
    help = "Run a job worker until SIGTERM/SIGINT (or until idle with --burst)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--concurrency",
            type=_whole_number(1),
            default=1,
            help="Jobs run at once, one thread each (default 1; at least 1).",
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
            "--max-jobs",
            type=_whole_number(1),
            default=None,
            help="Exit after claiming this many jobs (at least 1).",
        )
        parser.add_argument(
            "--worker-id",
            default=None,
            help="Identity recorded on claimed jobs (default host-pid-random).",
        )
        parser.add_argument(
            "--grace",
            type=_seconds,
            default=30.0,
            help="Seconds running jobs get to finish after SIGTERM (default 30).",
        )
        parser.add_argument(
            "--metrics-port",
            type=_whole_number(1),
            default=None,
            help="Serve this worker's Prometheus metrics (job histograms, process and GC) "
            "at http://<--metrics-host>:<port>/ (default: not served).",
        )
        parser.add_argument(
            "--metrics-host",
            default="127.0.0.1",
            help="Address the metrics port listens on (default 127.0.0.1; it has no "
            "authentication: expose it to the scraper only).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Development (DEBUG only): restart when a Python file changes.",
        )

    def handle(self, *args, **options):
        pools = [q.strip() for q in options["queues"].split(",")]
        try:
            parse_pools(pools, options["concurrency"])
        except ValueError as exc:
            raise CommandError(f"--queues: {exc}") from None
        if options["reload"] and not settings.DEBUG:
            raise CommandError("--reload is for development: set DEBUG=1")
        if options["reload"] and (options["burst"] or options["max_jobs"]):
            raise CommandError("--reload runs until stopped: drop --burst and --max-jobs")
        worker = Worker(
            worker_id=options["worker_id"],
            queues=pools,
            concurrency=options["concurrency"],
            burst=options["burst"],
            max_jobs=options["max_jobs"],
            grace=options["grace"],
        )
        # Under --reload, the reloaded child serves them (the parent only restarts it).
        reloader_parent = options["reload"] and not _reloaded_child()
        if options["metrics_port"] and not reloader_parent:
            start_http_server(
                options["metrics_port"], addr=options["metrics_host"], registry=scrape_registry()
            )
        if options["reload"]:
            _run_with_reloader(worker, options["grace"])
            return
        worker.install_signal_handlers()
        worker.run()


def _reloaded_child() -> bool:
    return os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"


def _run_with_reloader(worker: Worker, grace: float) -> None:
    """Run ``worker`` under Django's autoreloader. In the reloaded child the worker runs in
    the reloader's thread; the main thread watches files and, on a change or SIGTERM/SIGINT,
    stops the worker and waits for it (``grace``, plus a margin) before restarting or exiting."""
    stopped = threading.Event()

    def run_worker():
        try:
            worker.run()
        finally:
            stopped.set()

    def stop_worker():
        worker.request_stop()
        stopped.wait(grace + 10)

    def on_started(sender, **kwargs):  # the reloader's main thread: signals can be set here
        def exit_on_signal(*_args):
            stop_worker()
            sender.stop()

        signal.signal(signal.SIGTERM, exit_on_signal)
        signal.signal(signal.SIGINT, exit_on_signal)

    def on_file_changed(sender, file_path, **kwargs):
        stop_worker()  # then the reloader restarts the process

    autoreload.autoreload_started.connect(on_started, weak=False)
    autoreload.file_changed.connect(on_file_changed, weak=False)
    autoreload.run_with_reloader(run_worker)
