"""Clients of the cluster: submissions and polls through both web hosts, as an SPA behind a
load balancer would make them.

Each request goes to the next web host in turn; a request no host answers in time (a host
that is gone) is retried on the other, as a load balancer's health-checked retry does.
Every answer is kept with the host that gave it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from tests.cluster.stack import TENANTS, WEB_HOSTS, Cluster
from tests.faults import servers

FINAL = {"completed", "failed", "cancelled"}


@dataclass
class Answered:
    web: str
    job_id: str | None
    answer: servers.Answer
    sent_at: float  # time.monotonic() when the request was sent


class Clients:
    """One login per tenant; ``submit`` and ``poll`` through the web hosts with failover."""

    def __init__(self, cluster: Cluster, *, timeout: float = 3.0):
        self.cluster = cluster
        self.timeout = timeout
        self.tokens = {schema: cluster.token(schema) for schema in TENANTS}
        self.tenant_of: dict[str, str] = {}  # job id → the schema that submitted it
        self.answers: list[Answered] = []
        self.unreachable: list[str] = []  # a host that gave no answer (then retried)
        self._lock = threading.Lock()
        self._turn = 0

    def _send(self, schema: str, method: str, path: str, *, job_id=None, **kwargs) -> Answered:
        with self._lock:
            self._turn += 1
            first = self._turn % len(WEB_HOSTS)
        order = WEB_HOSTS[first:] + WEB_HOSTS[:first]
        for web in order:
            sent_at = time.monotonic()
            try:
                answer = self.cluster.request(
                    web, method, path, host=TENANTS[schema][0], token=self.tokens[schema],
                    timeout=self.timeout, **kwargs,
                )  # fmt: skip
            except OSError:
                with self._lock:
                    self.unreachable.append(web)
                continue
            answered = Answered(web, job_id, answer, sent_at)
            with self._lock:
                self.answers.append(answered)
            return answered
        raise AssertionError(f"no web host answered {method} {path}")

    def submit(
        self, schema: str, count: int, *, sleep: float, job_type: str = "test.cluster_work"
    ) -> list[str]:
        """``count`` jobs of ``job_type`` (a type whose task is ``tests.tasks.cluster_work``)
        for ``schema``, each sleeping ``sleep`` seconds; their ids."""
        ids = []
        for _ in range(count):
            body = {"type": job_type, "payload": {"tenant": schema, "sleep": sleep}}
            answered = self._send(schema, "POST", "/api/jobs", body=body)
            assert answered.answer.status == 202, answered.answer
            ids.append(answered.answer.json()["id"])
        with self._lock:
            self.tenant_of.update(dict.fromkeys(ids, schema))
        return ids

    def poll(self, job_id: str, *, as_schema: str | None = None) -> Answered:
        schema = as_schema or self.tenant_of[job_id]
        return self._send(schema, "GET", f"/api/jobs/{job_id}", job_id=job_id)

    def statuses(self) -> set[int]:
        with self._lock:
            return {answered.answer.status for answered in self.answers}

    def count(self, status: int, *, sent_after: float = 0.0, web: str | None = None) -> int:
        """Answers with ``status`` (from ``web``) to requests sent after ``sent_after`` (a
        ``time.monotonic()``): a request already on its way when a host is cut off is not
        one sent after it."""
        with self._lock:
            return sum(
                1
                for answered in self.answers
                if answered.answer.status == status
                and answered.sent_at > sent_after
                and web in (None, answered.web)
            )


class Pollers:
    """Threads that poll ``job_ids`` round-robin through ``clients`` until stopped."""

    def __init__(self, clients: Clients, job_ids: list[str], threads: int = 4):
        self.clients = clients
        self.job_ids = job_ids
        self._stop = threading.Event()
        self.errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)
        ]

    def __enter__(self) -> Pollers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not self.errors, self.errors[:3]

    def _run(self, offset: int) -> None:
        turn = offset
        while not self._stop.is_set():
            try:
                self.clients.poll(self.job_ids[turn % len(self.job_ids)])
            except BaseException as exc:  # reported by __exit__
                self.errors.append(exc)
                return
            turn += 1


def unfinished(cluster: Cluster, job_ids: list[str]) -> int:
    return cluster.sql(
        "SELECT count(*) FROM job_queue WHERE id = ANY(%s::uuid[])"
        " AND status NOT IN ('completed', 'failed', 'cancelled')",
        [job_ids],
    )[0][0]
