"""A PgBouncer of the test's own, in transaction mode, in front of the test database.

PgBouncer comes from Debian's ``pgbouncer`` package (``make test`` installs it when
missing). It refuses to run as root, so under root it switches (``-u``) to the owner of the
database's socket directory (the embedded server's user) or to ``postgres``. The test
starts it on a free loopback port and stops it by its own PID.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.faults.servers import free_port

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


class PgBouncer:
    """``pool_mode = transaction`` with ``pool_size`` server connections to ``db``'s server
    (a Django ``settings_dict``). ``url(name)`` is a DATABASE_URL through it."""

    def __init__(self, db: dict, *, pool_size: int):
        self.db = db
        self.pool_size = pool_size
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.process: subprocess.Popen | None = None

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        host = self.db["HOST"] or ""
        if host.startswith("/"):
            return pwd.getpwuid(os.stat(host).st_uid).pw_name
        return "postgres"

    def start(self) -> "PgBouncer":
        host = self.db["HOST"] or "127.0.0.1"
        port = self.db["PORT"] or "5432"
        user = self.db["USER"] or "postgres"
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={host} port={port} user={user}\n"
            "[pgbouncer]\n"
            # A server connection's application_name says which client it serves
            # ("name - host:port"), so a test can tell a pooled session from a direct one.
            "application_name_add_host = 1\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = any\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\n"
            "min_pool_size = 0\n"
            "reserve_pool_size = 0\n"
            "max_client_conn = 500\n"
            "server_lifetime = 3600\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\n"
            f"pidfile = {self.dir / 'pgbouncer.pid'}\n"
        )
        args = [BINARY]
        run_as = self._run_as()
        if run_as:
            entry = pwd.getpwnam(run_as)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            args += ["-u", run_as]
        args.append(str(ini))
        with (self.dir / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"pgbouncer exited:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"pgbouncer did not listen:\n{self.log()}") from None
                time.sleep(0.05)

    def url(self, database: str) -> str:
        return f"postgres://{self.db['USER'] or 'postgres'}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        parts = [self.dir / "stdout.log", self.dir / "pgbouncer.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())[-4000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
