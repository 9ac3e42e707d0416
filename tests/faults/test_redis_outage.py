"""Redis stopped: the documented policy (docs/security.md) holds, and never a 500.

Policy: rate limits fail closed. Requests they guard (the jobs API, login) get 503 problem
details with Retry-After and an error is logged; what only caches in Redis (tenant by host,
the token's user) falls back to PostgreSQL; readiness reports Redis unreachable. When Redis
is back, the same processes serve again.
"""

import pytest

from tests.faults import servers
from tests.faults.conftest import DEMO_PASSWORD, token

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

HOST = "acme.localhost"


def _assert_unavailable(answer: servers.Answer) -> None:
    assert answer.status == 503, answer
    assert answer.is_problem, answer.headers
    assert answer.json()["code"] == "service_unavailable"
    assert int(answer.headers["retry-after"]) >= 1


def test_redis_outage_fails_closed_with_503_and_recovers(faults):
    web = faults.gunicorn(workers=1)
    access = token(web.port)
    created = servers.request(
        web.port,
        "POST",
        "/api/jobs",
        host=HOST,
        token=access,
        body={"type": "demo.echo", "payload": {"n": 1}},
    )
    assert created.status == 202, created
    job_path = f"/api/jobs/{created.json()['id']}"
    assert servers.request(web.port, "GET", job_path, host=HOST, token=access).status == 200

    (jobs_before,) = faults.sql("SELECT count(*) FROM job_queue")[0]

    faults.redis.stop()
    try:
        answers = {
            "poll": servers.request(web.port, "GET", job_path, host=HOST, token=access),
            "list": servers.request(web.port, "GET", "/api/jobs", host=HOST, token=access),
            "submit": servers.request(
                web.port,
                "POST",
                "/api/jobs",
                host=HOST,
                token=access,
                body={"type": "demo.echo", "payload": {}},
            ),
            "cancel": servers.request(
                web.port, "POST", f"{job_path}/cancel", host=HOST, token=access
            ),
            "login": servers.request(
                web.port,
                "POST",
                "/api/auth/token",
                host=HOST,
                body={"username": "alice", "password": DEMO_PASSWORD},
            ),
        }
        for name, answer in answers.items():
            assert answer.status == 503, (name, answer)
            _assert_unavailable(answer)

        # Not guarded by a rate limit: served from PostgreSQL.
        console = servers.request(web.port, "GET", "/", host=HOST)
        assert console.status == 200, console
        unknown = servers.request(web.port, "GET", "/api/jobs", host="nobody.localhost")
        assert (unknown.status, unknown.json()["code"]) == (404, "unknown_host")
        assert servers.request(web.port, "GET", "/healthz", host="localhost").status == 200
        readiness = servers.request(web.port, "GET", "/readyz", host="localhost")
        assert (readiness.status, readiness.json()["checks"]) == (
            503,
            {"database": "ok", "redis": "unreachable"},
        )
        # The refused submission stored nothing, the refused cancel changed nothing.
        assert faults.sql("SELECT count(*) FROM job_queue")[0] == (jobs_before,)
        assert faults.sql("SELECT status FROM job_queue WHERE id = %s", [created.json()["id"]]) == [
            ("pending",)
        ]
        assert "cache unavailable" in web.log()
    finally:
        faults.redis.start()

    servers.wait_until(
        lambda: servers.request(web.port, "GET", job_path, host=HOST, token=access).status == 200,
        timeout=30,
        what="polls to succeed once Redis is back",
    )
    assert web.alive()
    assert "Internal Server Error" not in web.log()
