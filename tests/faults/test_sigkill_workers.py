"""A worker killed with SIGKILL every couple of seconds while 500 jobs run: the others
keep going, a replacement is started each time, and every job ends in a final state
exactly once. None is lost; none is completed twice."""

import time
import uuid

import pytest

from tests.faults import servers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

JOBS = 500
WORKERS = 3
KILL_EVERY_SECONDS = 1.5

# Short leases, so the jobs of a killed worker go back to pending within seconds
# (heartbeats every 0.3 s keep the live workers' leases).
FAST_RECOVERY = {
    "JOBS_LEASE_SECONDS": "3",
    "JOBS_HEARTBEAT_SECONDS": "0.3",
    "JOBS_REAP_INTERVAL": "0.5",
    "JOBS_POLL_INTERVAL": "0.2",
}

ENQUEUE = """
from jobs import services
from tenants.models import Tenant
tenants = list(Tenant.objects.exclude(schema_name="public").order_by("schema_name"))
for n in range({jobs}):
    services.job_enqueue(
        tenant=tenants[n % len(tenants)], type="test.record_attempt",
        payload={{"sleep": 0.25}}, queue="{queue}",
    )
"""


def test_sigkilled_workers_lose_no_job_and_end_none_twice(faults):
    queue = f"sigkill-{uuid.uuid4().hex[:8]}"
    servers.run_manage(
        "shell",
        "-c",
        ENQUEUE.format(jobs=JOBS, queue=queue),
        env=faults.env,
        log_path=faults.log("enqueue"),
    )
    assert faults.sql("SELECT count(*) FROM job_queue WHERE queue = %s", [queue]) == [(JOBS,)]

    def start_worker() -> servers.Process:
        return faults.worker("--queues", queue, "--concurrency", "4", **FAST_RECOVERY)

    def unfinished() -> int:
        return faults.sql(
            "SELECT count(*) FROM job_queue"
            " WHERE queue = %s AND status IN ('pending', 'processing')",
            [queue],
        )[0][0]

    workers = [start_worker() for _ in range(WORKERS)]
    kills = 0
    deadline = time.monotonic() + 300
    while unfinished():
        assert time.monotonic() < deadline, f"{unfinished()} jobs still unfinished"
        time.sleep(KILL_EVERY_SECONDS)  # pacing of the killer, not an assertion
        if not unfinished():
            break
        slot = kills % WORKERS
        assert workers[slot].alive(), workers[slot].log()[-3000:]  # only the killer ends one
        workers[slot].kill()
        workers[slot] = start_worker()
        kills += 1
    for worker in workers:
        assert worker.alive(), worker.log()[-3000:]

    assert kills >= 3, "the jobs ended before the workers were killed often enough"
    by_status = dict(
        faults.sql(
            "SELECT status, count(*) FROM job_queue WHERE queue = %s GROUP BY status", [queue]
        )
    )
    # Final, all of them: completed, or failed "worker lost" by a job killed 5 times over.
    assert sum(by_status.values()) == JOBS
    assert set(by_status) <= {"completed", "failed"}, by_status
    assert faults.sql(
        "SELECT count(*) FROM job_queue WHERE queue = %s AND status = 'failed'"
        " AND error <> 'worker lost'",
        [queue],
    ) == [(0,)]

    # Ended exactly once each, as recorded by a trigger on every final transition.
    assert faults.sql(
        "SELECT count(*), count(DISTINCT f.job_id) FROM fault_finals f"
        " JOIN job_queue j ON j.id = f.job_id WHERE j.queue = %s",
        [queue],
    ) == [(JOBS, JOBS)]

    # Ran at least once, the same attempt never twice; a completed job's last recorded
    # attempt is the one that completed it.
    executions, distinct_attempts = faults.sql(
        "SELECT count(*), count(DISTINCT (e.job_id, e.attempt)) FROM fault_executions e"
        " JOIN job_queue j ON j.id = e.job_id WHERE j.queue = %s",
        [queue],
    )[0]
    assert executions == distinct_attempts >= by_status.get("completed", 0)
    assert faults.sql(
        "SELECT count(*) FROM job_queue j WHERE j.queue = %s AND j.status = 'completed'"
        " AND j.attempts <> (SELECT max(attempt) FROM fault_executions e WHERE e.job_id = j.id)",
        [queue],
    ) == [(0,)]
    # The kills hit running jobs, which were taken over by another worker and retried.
    (retried,) = faults.sql(
        "SELECT count(*) FROM job_queue WHERE queue = %s AND attempts > 1", [queue]
    )[0]
    assert retried >= 1
