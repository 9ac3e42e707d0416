"""Behind PgBouncer in transaction mode, every handler write lands in its own tenant's schema.

The way the misplaced rows were found: two tenants' ``ai_generation`` jobs enqueued
alternately, two ``run_worker`` processes with four threads each, ``DATABASE_URL`` through
a transaction pooler with one (then two) server connections, so consecutive transactions
of every client run on server connections other clients just used. Each document's title
names its tenant; every row of both schemas is checked. The jobs are ``test.generate``,
``ai_generation``'s handler without its flow-control limits (2 a second per tenant would
make the 300 jobs take minutes; tests/jobs/flow holds the limits to account).
"""

import pytest
from django.db import connection

from jobs import services
from jobs.models import Job, JobStatus
from tests.helpers import start_manage
from tests.pgbouncer import PgBouncer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JOBS_PER_TENANT = 150


@pytest.fixture
def bouncer(request):
    bouncer = PgBouncer(connection.settings_dict, pool_size=request.param).start()
    yield bouncer
    bouncer.stop()


def _titles(schema: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT title FROM "{schema}".documents_document')  # noqa: S608
        return [title for (title,) in cursor.fetchall()]


@pytest.mark.parametrize("bouncer", [1, 2], indirect=True, ids=["pool-1", "pool-2"])
def test_handler_writes_stay_in_their_tenants_schema(acme, globex, bouncer):
    tenants = (acme, globex)
    for schema in ("acme", "globex"):
        with connection.cursor() as cursor:
            cursor.execute(f'TRUNCATE "{schema}".documents_document')
    for i in range(JOBS_PER_TENANT):
        for tenant in tenants:
            services.job_enqueue(
                tenant=tenant,
                type="test.generate",
                payload={"prompt": f"{tenant.schema_name}:{i}"},
            )
    env = {
        "DATABASE_URL": bouncer.url(connection.settings_dict["NAME"]),
        "DATABASE_POOL_MODE": "transaction",
        "JOBS_POLL_INTERVAL": "0.2",
        "JOBS_HEARTBEAT_SECONDS": "0.5",
    }
    workers = [start_manage("run_worker", "--concurrency", "4", "--burst", **env) for _ in range(2)]
    try:
        for worker in workers:
            assert worker.wait(timeout=240) == 0, worker.log_path.read_text()[-4000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)

    assert Job.objects.filter(status=JobStatus.COMPLETED).count() == 2 * JOBS_PER_TENANT
    for tenant in tenants:
        titles = _titles(tenant.schema_name)
        misplaced = [title for title in titles if not title.startswith(f"{tenant.schema_name}:")]
        assert misplaced == [], f"{len(misplaced)} rows of another tenant in {tenant.schema_name}"
        assert sorted(titles) == sorted(f"{tenant.schema_name}:{i}" for i in range(JOBS_PER_TENANT))
