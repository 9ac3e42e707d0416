"""An ASGI process holds at most one PostgreSQL connection per thread of its event loop's
pool, however many requests it has served (docs/deploy.md, "Connections per process"):
every request's chain runs in that pool (``LongPollASGIHandler``). Under Django's own
handler each request had a thread of its own, whose persistent connection outlived it until
the collector found it: a fuzzing run left ~90 idle, and PostgreSQL refused the next
client."""

import http.client
import os
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from django.db import connection

from tests.factories import JobFactory
from tests.jobs.api.asgi import asgi_server, auth_headers  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS, REQUESTS_EACH = 8, 25
# The loop's default executor (``min(32, CPUs + 4)`` threads), the fan-out's LISTEN and
# reads, and the ETag copies' LISTEN.
POOL = min(32, (os.cpu_count() or 1) + 4)
BOUND = POOL + 1 + 4 + 1


def _database_connections(pid: int) -> int:
    port = int(connection.settings_dict["PORT"] or 5432)
    return sum(
        1
        for sock in psutil.Process(pid).net_connections(kind="tcp")
        if sock.raddr and sock.raddr.port == port
    )


def test_plain_requests_keep_one_connection_per_pool_thread(asgi_server, alice, acme):  # noqa: F811
    job = JobFactory(tenant=acme)
    headers = auth_headers(alice)

    def client(_) -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", asgi_server.port, timeout=30)
        statuses = []
        for index in range(REQUESTS_EACH):
            path = f"/api/jobs/{job.id}" if index % 2 else "/api/jobs?page_size=5"
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            statuses.append(response.status)
        conn.close()
        return statuses

    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = [status for batch in pool.map(client, range(CLIENTS)) for status in batch]

    assert statuses == [200] * CLIENTS * REQUESTS_EACH
    assert _database_connections(asgi_server.pid) <= BOUND
