"""``manage.py jobs_stats``: the live queue and recent throughput, per tenant, then flow
control's budgets in use and the pauses (``jobs.flow.report``), then the live workers (the
worker registry, every tenant's: ``--tenant`` narrows the rest only).

It reads the live queue (pending and processing jobs, on their partial indexes) and the
rollup the workers write as runs end (``insights.services``), never ``job_queue``'s history:
it costs the same with a thousand finished jobs or a hundred million.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ALL_TENANTS
from core.tables import table, utc
from insights.selectors import stats_by_tenant
from jobs.flow.report import status_json, status_lines
from jobs.management.commands._durations import parse_age
from jobs.models import WorkerProcess
from jobs.selectors import workers_live
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Pending and processing jobs per tenant, the age of the oldest due pending job, and "
        "the runs completed and failed over the last hour (or --window, in whole minutes), "
        "then each flow-control budget's use and the pauses, then the live workers."
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
        workers = list(workers_live())
        if options["json"]:
            stats = {
                "window_seconds": int(window.total_seconds()),
                "totals": totals,
                "tenants": tenants,
                **status_json(tenant=tenant),
                "workers": [_worker_json(worker) for worker in workers],
            }
            self.stdout.write(json.dumps(stats, indent=2, sort_keys=True))
            return
        span = options["window"].strip()
        header = ["tenant", "pending", "processing", "oldest pending"]
        header += [f"completed {span}", f"failed {span}"]
        rows = [[schema, *_cells(entry)] for schema, entry in tenants.items()]
        rows.append(["TOTAL", *_cells(totals)])
        lines = [*table(header, rows), "", *status_lines(tenant=tenant), ""]
        if workers:
            lines += table(WORKER_HEADER, [_worker_cells(worker) for worker in workers])
        else:
            lines.append("no live workers")
        self.stdout.write("\n".join(lines))


WORKER_HEADER = ["worker", "host", "pid", "pools", "jobs", "version", "started (UTC)", "beat"]


def _worker_cells(worker: WorkerProcess) -> list[str]:
    return [
        worker.worker_id,
        worker.host,
        str(worker.pid),
        worker.pools_text,
        str(len(worker.running_job_ids)),
        worker.version,
        utc(worker.started_at),
        f"{worker.since_beat.total_seconds():.1f}s ago",
    ]


def _worker_json(worker: WorkerProcess) -> dict:
    return {
        "worker_id": worker.worker_id,
        "host": worker.host,
        "pid": worker.pid,
        "pools": worker.pools,
        "concurrency": worker.concurrency,
        "running_job_ids": [str(job_id) for job_id in worker.running_job_ids],
        "version": worker.version,
        "started_at": worker.started_at.isoformat(),
        "last_beat_at": worker.last_beat_at.isoformat(),
    }


def _cells(entry: dict) -> list[str]:
    age = entry["oldest_pending_age_seconds"]
    return [
        str(entry["pending"]),
        str(entry["processing"]),
        "-" if age is None else f"{age:.0f}s",
        str(entry["completed"]),
        str(entry["failed"]),
    ]
