"""The plain poll behind PgBouncer in transaction mode: its one round trip (BEGIN, the
row-security settings, the read, COMMIT in one simple query) holds a server connection for
that query only, shows the tenant its own job and no other's, and leaves every server
connection idle, outside any transaction, with no setting left on it."""

import http.client
import uuid

import psycopg
import pytest
from django.db import connection

from tests.factories import JobFactory
from tests.helpers import start_uvicorn, stop_process, subprocess_env
from tests.jobs.api.asgi import auth_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pooled(bouncer):
    """(port, url): a uvicorn whose ``DATABASE_URL`` goes through ``bouncer`` (two server
    connections), and that URL."""
    url = bouncer.url(connection.settings_dict["NAME"])
    env = subprocess_env(CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}")
    env.update(
        DATABASE_URL=url,
        DATABASE_POOL_MODE="transaction",
    )
    server = start_uvicorn(env=env)
    yield server.port, url
    stop_process(server)


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, str | None, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheader("ETag"), response.read()
    finally:
        conn.close()


def _pooled_server_connections() -> list[tuple[str, str]]:
    """(state, query) of PgBouncer's server connections to the test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT state, query FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name LIKE '%% - 127.0.0.1:%%' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchall()


def test_plain_polls_through_the_pooler_keep_row_security(pooled, alice, acme, globex):
    pooled_port, url = pooled
    mine, theirs = JobFactory(tenant=acme), JobFactory(tenant=globex)
    headers = auth_headers(alice)
    for _ in range(10):  # over both server connections, warm and cold
        status, etag, body = _get(pooled_port, f"/api/jobs/{mine.id}", headers)
        assert status == 200
        assert str(mine.id) in body.decode()
        assert _get(pooled_port, f"/api/jobs/{theirs.id}", headers)[0] == 404
        conditional = {**headers, "If-None-Match": etag}
        assert _get(pooled_port, f"/api/jobs/{mine.id}", conditional)[0] == 304
    servers = _pooled_server_connections()
    assert any(query.startswith("BEGIN; SELECT set_config('role'") for _, query in servers)
    for state, query in servers:
        assert state == "idle", (state, query)  # not "idle in transaction"
    with psycopg.connect(url, autocommit=True) as pooled_client:
        for _ in range(4):  # whichever server connection the pooler hands out
            role, tenant = pooled_client.execute(
                "SELECT current_user, current_setting('app.tenant_id', true)"
            ).fetchone()
            assert (role, tenant or "") == (connection.settings_dict["USER"], "")
