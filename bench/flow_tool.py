"""Project-side helpers of make bench's flow-control part (bench/flow.py), run with the
project's virtualenv, ``DJANGO_SETTINGS_MODULE=bench.flow_settings`` and DATABASE_URL on
the benchmark's database. Prints JSON on stdout.

    python bench/flow_tool.py fill TYPE TENANT_ID N QUEUE
        N pending jobs of TYPE for the tenant in one INSERT … SELECT, with the budgets the
        type takes (as job_enqueue would fix them), then one NOTIFY of QUEUE's workers
    python bench/flow_tool.py trickle SECONDS PERIOD QUEUE TENANT_ID...
        each tenant enqueues one ``bench.second`` job every PERIOD s through job_enqueue
        (the tenants staggered evenly within the period) for SECONDS s
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.flow_settings")

import django

django.setup()

from django.db import connection  # noqa: E402

from jobs import services, sql  # noqa: E402
from jobs.registry import get_job_type  # noqa: E402
from tenants.models import Tenant  # noqa: E402


def fill(type_name: str, tenant_id: int, count: int, queue: str) -> dict:
    taken = get_job_type(type_name).budgets(tenant_id, {})
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO job_queue (
                id, tenant_id, type, status, payload, error, error_traceback, queue,
                priority, attempts, max_attempts, timeout_seconds, progress_message,
                worker_id, cancel_requested, idempotency_key, request_fingerprint,
                limit_keys, limit_units)
            SELECT gen_random_uuid(), %s, %s, 'pending', '{}', '', '', %s, 0, 0, 3, 600, '',
                   '', false, '', '', %s, %s
            FROM generate_series(1, %s)
            """,
            [
                tenant_id,
                type_name,
                queue,
                [budget.key for budget in taken],
                [budget.units for budget in taken],
                count,
            ],
        )
        cursor.execute(sql.NOTIFY_WORKERS, [services.NOTIFY_CHANNEL, queue])
    return {"pending": count, "budgets": [budget.key for budget in taken]}


def trickle(seconds: float, period: float, queue: str, tenant_ids: list[int]) -> dict:
    tenants = [Tenant.objects.get(pk=tenant_id) for tenant_id in tenant_ids]
    step = period / len(tenants)
    started = time.monotonic()
    sent = 0
    while (due := started + sent * step) < started + seconds:
        time.sleep(max(0.0, due - time.monotonic()))
        tenant = tenants[sent % len(tenants)]
        services.job_enqueue(tenant=tenant, type="bench.second", payload={}, queue=queue)
        sent += 1
    return {"enqueued": sent}


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "fill":
        result = fill(args[0], int(args[1]), int(args[2]), args[3])
    elif command == "trickle":
        result = trickle(float(args[0]), float(args[1]), args[2], [int(a) for a in args[3:]])
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
