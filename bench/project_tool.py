"""Project-side helpers of the benchmark, run with the project's virtualenv and settings
(DATABASE_URL points at the benchmark database). Prints JSON on stdout.

    python bench/project_tool.py seed           tenant "bench" + 99 SQL-only tenants, a user
    python bench/project_tool.py rows N         INSERT … SELECT generate_series: N finished jobs
    python bench/project_tool.py poll-target [processing]  a pending (or running) job of
                                                "bench", its ETag, a token
    python bench/project_tool.py round-trips J E T  Redis and PostgreSQL round trips of a warm
                                                poll of job J (200, and 304 with ETag E)
    python bench/project_tool.py fill N         N pending no-op jobs (demo.echo) in one INSERT
    python bench/project_tool.py latency K S    enqueue K jobs through job_enqueue, S s apart
"""

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.db.models.functions import Now  # noqa: E402

from accounts.models import User  # noqa: E402
from accounts.tokens import tokens_for  # noqa: E402
from jobs import services  # noqa: E402
from jobs.models import Job, JobStatus  # noqa: E402
from jobs.selectors import job_poll_get  # noqa: E402
from tenants.models import Domain, Tenant  # noqa: E402

HOST = "bench.localhost"
TENANTS = 100


def seed() -> dict:
    tenant = Tenant.objects.filter(schema_name="bench").first()
    if tenant is None:
        tenant = Tenant(schema_name="bench", name="Bench")
        tenant.save(verbosity=0)  # creates its schema
    Domain.objects.get_or_create(domain=HOST, defaults={"tenant": tenant, "is_primary": True})
    with connection.cursor() as cursor:
        # The other tenants exist as rows (and hosts) only: the job table is in public.
        cursor.execute(
            """
            INSERT INTO tenants_tenant (schema_name, name, is_active, created_at)
            SELECT 'bench' || i, 'Bench ' || i, true, now() FROM generate_series(2, %s) i
            ON CONFLICT (schema_name) DO NOTHING;
            INSERT INTO tenants_domain (domain, is_primary, tenant_id)
            SELECT t.schema_name || '.localhost', true, t.id FROM tenants_tenant t
            WHERE t.schema_name ~ '^bench[0-9]+$'
            ON CONFLICT (domain) DO NOTHING;
            """,
            [TENANTS],
        )
    user, _ = User.objects.get_or_create(username="bench", defaults={"tenant": tenant})
    return {"tenant_id": tenant.pk, "user_id": user.pk}


def finished_jobs(
    count: int,
    *,
    tenant_run: int = 1,
    payload: str = "'{}'::jsonb",
    error: str = "CASE WHEN i %% 100 = 0 THEN 'demo failure' ELSE '' END",
    result: str = """'{"echo": {}}'::jsonb""",
) -> None:
    """``count`` finished ``demo.echo`` jobs in one ``INSERT … SELECT``, job ``i`` created
    ``i`` seconds ago, over the bench tenants (``seed``) in runs of ``tenant_run``
    consecutive jobs each. ``payload``, ``error`` and ``result`` are SQL expressions of ``i``
    (``%%`` for a modulo): a job with an error failed and has no result, the others
    completed. The shared seed of ``rows`` and bench/search.py; the caller analyzes."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH tenants AS (
                SELECT array_agg(id ORDER BY id) AS ids FROM tenants_tenant
                WHERE schema_name = 'bench' OR schema_name ~ '^bench[0-9]+$'
            )
            INSERT INTO job_queue (
                id, tenant_id, type, status, payload, result, error, error_traceback, queue,
                priority, run_at, attempts, max_attempts, timeout_seconds, progress,
                progress_message, worker_id, cancel_requested, idempotency_key,
                request_fingerprint, created_at, started_at, updated_at, completed_at)
            SELECT gen_random_uuid(), ids[1 + (i / %s) %% array_length(ids, 1)], 'demo.echo',
                   CASE WHEN e.error = '' THEN 'completed' ELSE 'failed' END,
                   {payload},
                   CASE WHEN e.error = '' THEN ({result})::jsonb END,
                   e.error, '', 'default', 0, ts, 1, 3, 600, 100, '', '', false, '', '',
                   ts, ts, ts, ts
            FROM tenants, generate_series(1, %s) i,
                 LATERAL (SELECT now() - make_interval(secs => i) AS ts) t,
                 LATERAL (SELECT {error} AS error) e
            """,
            [tenant_run, count],
        )


def rows(count: int) -> dict:
    """``count`` jobs, 99% completed and 1% failed, spread over the bench tenants."""
    started = time.perf_counter()
    finished_jobs(count)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE job_queue")
    return {"rows": count, "seconds": round(time.perf_counter() - started, 1)}


def poll_target(status: str = "pending") -> dict:
    """A job of "bench" to poll, its ETag and a token. ``processing``: the job as a client
    polls it while it runs (a worker's lease for an hour, so no reaper takes it back), the
    case a conditional poll answers from the process's ETag copy (``jobs.api.etags``)."""
    tenant = Tenant.objects.get(schema_name="bench")
    user = User.objects.get(username="bench")
    job = services.job_enqueue(tenant=tenant, type="demo.echo", payload={}, queue="bench-poll")
    if status == "processing":
        Job.objects.filter(pk=job.pk).update(
            status=JobStatus.PROCESSING,
            attempts=1,
            worker_id="bench-poll",
            started_at=Now(),
            lease_expires_at=Now() + timedelta(hours=1),
        )
    elif status != "pending":
        raise SystemExit(f"poll-target: pending or processing, not {status}")
    etag = job_poll_get(tenant=tenant, job_id=job.id).etag
    return {
        "job_id": str(job.id),
        "etag": etag,
        "token": str(tokens_for(user).access_token),
        "host": HOST,
    }


def round_trips(job_id: str, etag: str, token: str) -> dict:
    """Round trips of one warm poll, counted at the protocol level as the tests count them
    (tests/jobs/api/round_trips.py), served in this process by Django's test client."""
    import pytest
    from django.test import Client

    from tests.jobs.api.round_trips import (
        counted_round_trips,
        wait_for_etag_copies,
        wait_for_invalidations,
    )

    client = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {token}")
    path = f"/api/jobs/{job_id}"
    counts = {}
    for case, headers in (("200", {}), ("304", {"HTTP_IF_NONE_MATCH": etag})):
        client.get(path, **headers)
        wait_for_invalidations()
        wait_for_etag_copies()
        client.get(path, **headers)
        connection.close_if_unusable_or_obsolete()  # what a server does at request start
        with pytest.MonkeyPatch.context() as patch, counted_round_trips(patch) as counted:
            status = client.get(path, **headers).status_code
        counts[case] = {
            "status": status,
            "redis": len(counted.redis),
            "postgres": len(counted.postgres),
        }
    return counts


def fill(count: int) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO job_queue (
                id, tenant_id, type, status, payload, error, error_traceback, queue,
                priority, attempts, max_attempts, timeout_seconds, progress_message,
                worker_id, cancel_requested, idempotency_key, request_fingerprint)
            SELECT gen_random_uuid(), t.id, 'demo.echo', 'pending', '{"bench": "drain"}',
                   '', '', 'default', 0, 0, 3, 600, '', '', false, '', ''
            FROM tenants_tenant t, generate_series(1, %s)
            WHERE t.schema_name = 'bench'
            """,
            [count],
        )
    return {"pending": count}


def latency(count: int, spacing: float) -> dict:
    tenant = Tenant.objects.get(schema_name="bench")
    for _ in range(count):
        services.job_enqueue(tenant=tenant, type="demo.echo", payload={"bench": "latency"})
        time.sleep(spacing)
    return {"enqueued": count}


def main() -> None:
    command, args = sys.argv[1], sys.argv[2:]
    if command == "seed":
        result = seed()
    elif command == "rows":
        result = rows(int(args[0]))
    elif command == "poll-target":
        result = poll_target(*args)
    elif command == "round-trips":
        result = round_trips(*args)
    elif command == "fill":
        result = fill(int(args[0]))
    elif command == "latency":
        result = latency(int(args[0]), float(args[1]))
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
