"""Batch submit beside single submits: 1,000 jobs through ``POST /api/jobs/batch`` (one
request, one INSERT, one NOTIFY) and through 1,000 ``POST /api/jobs``.

    .venv/bin/python bench/batch.py [--rounds 3]

Recreates the database ``bench_batch`` on ``DATABASE_URL``'s server (127.0.0.1:5432 by
default), migrates it, then sends the requests through Django's test client: the whole
middleware stack (tenant routing, JWT, rate limit, body limit, row-level security, the
view) over in-process WSGI, against real PostgreSQL and Redis, with no network and no
server process in between. The rate limit is set high enough to count but never refuse.
Appends a table to bench/RESULTS.md with the machine and date. Tests never run this.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench_batch"
JOBS = 1000


def _database_url() -> str:
    url = urlsplit(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    return urlunsplit(url._replace(path=f"/{DATABASE}"))


def prepare() -> str:
    import psycopg

    admin = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    url = _database_url()
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "manage.py", "migrate_schemas", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    return url


def measure(rounds: int) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["JOBS_API_RATE"] = f"{JOBS * rounds * 10}/h"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from rest_framework.test import APIClient

    from accounts.models import User
    from accounts.tokens import tokens_for
    from jobs.models import Job
    from tenants.models import Domain, Tenant

    tenant = Tenant.objects.filter(schema_name="bench").first()
    if tenant is None:
        tenant = Tenant(schema_name="bench", name="Bench")
        tenant.save(verbosity=0)
    Domain.objects.get_or_create(domain="bench.localhost", defaults={"tenant": tenant})
    user = User.objects.filter(username="bench").first() or User.objects.create_user(
        username="bench", password="x" * 12, tenant=tenant
    )
    client = APIClient(HTTP_HOST="bench.localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens_for(user).access_token}")
    item = {"type": "demo.echo", "payload": {"n": 1}}

    singles, batches = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(JOBS):
            assert client.post("/api/jobs", item, format="json").status_code == 202
        singles.append(time.perf_counter() - started)
        started = time.perf_counter()
        response = client.post("/api/jobs/batch", {"jobs": [item] * JOBS}, format="json")
        assert response.status_code == 202, response.content[:300]
        batches.append(time.perf_counter() - started)
        Job.objects.all().delete()
    return {"single": statistics.median(singles), "batch": statistics.median(batches)}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} cores, {cpu}, load average {load}"


def main() -> None:
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
    if "--measure" in sys.argv:
        print(json.dumps(measure(rounds)))
        return
    url = prepare()
    out = subprocess.run(
        [sys.executable, __file__, "--measure", "--rounds", str(rounds)],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    single, batch = result["single"], result["batch"]
    table = (
        f"\n### Batch submit: {JOBS:,} jobs, median of {rounds} rounds "
        f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine()})\n\n"
        "In-process WSGI (Django test client, full middleware stack), real PostgreSQL and "
        "Redis (`bench/batch.py`).\n\n"
        "| how | seconds | jobs/s |\n|---|---|---|\n"
        f"| {JOBS:,} × `POST /api/jobs` | {single:.3f} | {JOBS / single:,.0f} |\n"
        f"| 1 × `POST /api/jobs/batch` ({JOBS:,} jobs) | {batch:.3f} | {JOBS / batch:,.0f} |\n\n"
        f"Batch / single: {single / batch:.1f}× faster.\n"
    )
    with (ROOT / "bench" / "RESULTS.md").open("a") as results:
        results.write(table)
    print(table)


if __name__ == "__main__":
    main()
