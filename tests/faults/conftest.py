"""A private stack for fault tests: our own PostgreSQL cluster and Redis (tests/faults/
servers.py), migrated and seeded, that the tests may stop and restart at will.

The application connects as ``app``, a non-superuser that owns the database (as in a
managed PostgreSQL), so row-level security applies to it and workers pass through the
``tenant_jobs_service`` policy, not through superuser privileges.
"""

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jobs.management.commands.seed_demo import DEMO_PASSWORD
from tests.faults import servers
from tests.pgbouncer import PgBouncer


@dataclass
class Stack:
    root: Path
    postgres: servers.PostgresCluster
    redis: servers.RedisServer
    env: dict
    started: list = field(default_factory=list)

    def log(self, name: str) -> Path:
        return self.root / f"{name}-{len(self.started)}.log"

    def gunicorn(self, workers: int = 2, **extra_env) -> servers.Process:
        # No recycling after GUNICORN_MAX_REQUESTS: these tests assert that an outage
        # restarts no process, and a planned recycle under their polling load would too.
        process = servers.start_gunicorn(
            env={**self.env, "GUNICORN_MAX_REQUESTS": "0", **extra_env},
            port=servers.free_port(),
            log_path=self.log("gunicorn"),
            workers=workers,
        )
        self.started.append(process)
        return process

    def worker(self, *args: str, **extra_env) -> servers.Process:
        process = servers.manage(
            "run_worker", *args, env={**self.env, **extra_env}, log_path=self.log("worker")
        )
        self.started.append(process)
        return process

    def sql(self, statement: str, params=None) -> list:
        """Rows of one statement, run as the superuser (sees every row, whatever RLS says)."""
        with self.postgres.connect(database="faults") as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def assert_each_completed_once(self, job_ids: list[str]) -> None:
        """Each job completed, with one final transition; its handler ran at least once,
        never the same attempt twice, and the last attempt is the one that completed it."""
        rows = self.sql(
            "SELECT j.id::text, j.status, j.attempts,"
            " (SELECT count(*) FROM fault_finals f WHERE f.job_id = j.id),"
            " (SELECT count(*) FROM fault_executions e WHERE e.job_id = j.id),"
            " (SELECT count(DISTINCT attempt) FROM fault_executions e WHERE e.job_id = j.id),"
            " (SELECT max(attempt) FROM fault_executions e WHERE e.job_id = j.id)"
            " FROM job_queue j WHERE j.id = ANY(%s::uuid[])",
            [job_ids],
        )
        assert len(rows) == len(job_ids)
        for job_id, status, attempts, finals, executions, distinct_attempts, last in rows:
            assert status == "completed", (job_id, status)
            assert finals == 1, f"job {job_id} ended {finals} times"
            assert executions == distinct_attempts >= 1
            assert last == attempts

    def stop_started(self) -> None:
        for process in reversed(self.started):
            process.stop(timeout=20)
        self.started.clear()


def token(port: int, username: str = "alice", host: str = "acme.localhost") -> str:
    answer = servers.request(
        port,
        "POST",
        "/api/auth/token",
        host=host,
        body={"username": username, "password": DEMO_PASSWORD},
    )
    assert answer.status == 200, answer
    return answer.json()["access"]


@pytest.fixture(scope="package")
def stack():
    # A short path under /tmp: it holds the PostgreSQL socket (path length limit), and the
    # pgserver system user must be able to reach it.
    root = Path(tempfile.mkdtemp(prefix="tenant-jobs-faults-"))
    postgres = servers.PostgresCluster(root, servers.free_port())
    redis = servers.RedisServer(root, servers.free_port())
    try:
        postgres.init()
        postgres.start()
        with postgres.connect() as connection:
            connection.execute("CREATE ROLE app LOGIN CREATEROLE")
            connection.execute("CREATE DATABASE faults OWNER app")
        redis.start()
        env = servers.app_env(
            database_url=postgres.url("app", "faults"),
            redis_url=redis.url,
            root=root,
            cache_prefix="faults",
        )
        env.update(
            JOBS_POLL_INTERVAL="0.2",
            JOBS_HEARTBEAT_SECONDS="0.5",
        )
        servers.run_manage("migrate_schemas", "--noinput", env=env, log_path=root / "migrate.log")
        servers.run_manage("seed_demo", env=env, log_path=root / "seed.log")
        with postgres.connect(user="app", database="faults") as connection:
            connection.execute(servers.FAULT_TABLES)
        yield Stack(root=root, postgres=postgres, redis=redis, env=env)
    finally:
        redis.stop()
        if postgres.running():
            postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def faults(stack):
    """The stack, with every process a test started stopped (by PID) afterwards, and both
    servers running again whatever the test did to them."""
    yield stack
    stack.stop_started()
    if not stack.postgres.running():
        stack.postgres.start()
    if not stack.redis.answers():
        stack.redis.start()


class Pooler:
    """A PgBouncer (transaction mode) in front of the stack's PostgreSQL, logging in as
    ``app``; ``stop``/``start`` simulate an outage and a restart on the same port. ``env``:
    what processes behind it get (DATABASE_URL through it, DATABASE_DIRECT_URL direct)."""

    def __init__(self, stack: Stack, pool_size: int = 10):
        self.db = {"HOST": "127.0.0.1", "PORT": str(stack.postgres.port), "USER": "app"}
        self.pool_size = pool_size
        self.port = servers.free_port()
        self.bouncer: PgBouncer | None = None
        self.env = {
            "DATABASE_URL": f"postgres://app@127.0.0.1:{self.port}/faults",
            "DATABASE_POOL_MODE": "transaction",
            "DATABASE_DIRECT_URL": stack.env["DATABASE_URL"],
        }

    def start(self) -> None:
        bouncer = PgBouncer(self.db, pool_size=self.pool_size)
        bouncer.port = self.port  # the same address every time: clients are not told
        self.bouncer = bouncer.start()

    def stop(self, *, crash: bool = False) -> None:
        """Shut PgBouncer down (SIGINT: it lets running transactions end), or with
        ``crash`` kill it (SIGKILL: every connection through it is cut mid-conversation)."""
        if self.bouncer is not None:
            if crash and self.bouncer.process.poll() is None:
                self.bouncer.process.kill()
                self.bouncer.process.wait(timeout=10)
            self.bouncer.stop()
            self.bouncer = None


@pytest.fixture
def pooler(faults):
    """A running ``Pooler``; the test's processes are stopped before it, it is stopped
    after them."""
    pooler = Pooler(faults)
    pooler.start()
    yield pooler
    faults.stop_started()
    pooler.stop()
