"""Round trips counted at the servers' protocol level, not from Django's query log.

PostgreSQL: libpq's protocol trace (PQtrace) of the Django connection's socket; every
simple ``Query`` message and every ``Sync`` (which ends an extended-protocol exchange) is
one round trip, so BEGIN and COMMIT sent by psycopg count like any statement.
Redis: every ``send_packed_command`` of a redis-py connection, i.e. one command or one
whole pipeline written to the socket, then answered.
"""

import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection
from django.db.backends.utils import CursorWrapper
from psycopg import pq
from redis.connection import AbstractConnection

from core import row_cache
from jobs.api import etags

_MESSAGE = re.compile(r"^F\t\d+\t(Query|Sync)\b(.*)$")


@dataclass
class RoundTrips:
    postgres: list[str] = field(default_factory=list)  # the Query texts; "Sync" otherwise
    redis: list[bytes] = field(default_factory=list)


@contextmanager
def counted_round_trips(monkeypatch):
    """Count the round trips the block makes to PostgreSQL (the default connection, which
    must be open) and to Redis (any connection)."""
    counted = RoundTrips()
    send = AbstractConnection.send_packed_command

    def counting_send(self, command, check_health=True):
        packed = command if isinstance(command, (bytes, bytearray)) else b"".join(command)
        counted.redis.append(bytes(packed))
        return send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting_send)
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield counted
        finally:
            pgconn.untrace()
            monkeypatch.setattr(AbstractConnection, "send_packed_command", send)
            trace.seek(0)
            for line in trace:
                if match := _MESSAGE.match(line.rstrip("\n")):
                    counted.postgres.append(match[2].strip() or match[1])


def wait_for_invalidations():
    """Until this process listens to the row caches' invalidations (core.row_cache): its
    in-memory copies are used only then."""
    deadline = time.monotonic() + 10
    while not row_cache._invalidations.get().live:
        assert time.monotonic() < deadline, "no subscription to the invalidations"
        time.sleep(0.01)


def wait_for_etag_copies():
    """Until this process listens to job changes (jobs.api.etags): a poll read from then on
    leaves a copy of its ETag."""
    deadline = time.monotonic() + 10
    while not etags.listening():
        assert time.monotonic() < deadline, "no LISTEN job_changed for the ETag copies"
        time.sleep(0.01)


def executed_statements(monkeypatch, containing: str) -> list[str]:
    """The statements holding ``containing`` that Django's cursors execute from here on, in
    any thread (the trace above follows one connection)."""
    statements = []
    execute = CursorWrapper._execute

    def recording(self, sql, params, *args):
        if containing in sql:
            statements.append(sql)
        return execute(self, sql, params, *args)

    monkeypatch.setattr(CursorWrapper, "_execute", recording)
    return statements
