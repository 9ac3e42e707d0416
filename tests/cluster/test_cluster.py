"""Scenarios on six hosts (tests/cluster/stack.py), each bounded in time and each ending
with every job counted (tests/cluster/ledger.py): every job completed, ended exactly once,
no execution beyond the first without a lost lease to explain it, every tenant row in its
tenant's schema. The counts are printed (``make test-cluster`` shows them)."""

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from tests.cluster import ledger
from tests.cluster.budget import RunningUnits
from tests.cluster.stack import TENANTS, WEB_HOSTS, WORKER_TIMING
from tests.cluster.traffic import FINAL, Clients, Pollers, unfinished
from tests.faults import servers

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def _settle(cluster, job_ids: list[str], *, timeout: float) -> None:
    servers.wait_until(
        lambda: unfinished(cluster, job_ids) == 0,
        timeout=timeout,
        what=f"{unfinished(cluster, job_ids)} of {len(job_ids)} jobs to end",
        interval=0.5,
    )


def _report(name: str, count: ledger.Ledger) -> None:
    print(f"\n[{name}] {count}")
    count.assert_exact()


def _assert_unavailable(answer: servers.Answer) -> None:
    assert answer.status == 503, answer
    assert answer.is_problem, answer.headers
    assert answer.json()["code"] == "service_unavailable"
    assert int(answer.headers["retry-after"]) >= 1


def _worker_runs(cluster, host: str, job_ids: list[str]) -> set[str]:
    """The jobs whose handler ran in the worker process of ``host`` (its PID)."""
    pid = cluster.workers[host].pid
    return {
        job_id
        for (job_id,) in cluster.sql(
            "SELECT DISTINCT job_id::text FROM fault_executions"
            " WHERE pid = %s AND job_id = ANY(%s::uuid[])",
            [pid, job_ids],
        )
    }


def _worker_claims(cluster, process: servers.Process, job_ids: list[str]) -> set[str]:
    """The jobs that the worker process claimed at least once (its attempt rows)."""
    return {
        job_id
        for (job_id,) in cluster.sql(
            "SELECT DISTINCT job_id::text FROM job_attempt"
            " WHERE worker_id LIKE %s AND job_id = ANY(%s::uuid[])",
            [f"%-{process.pid}-%", job_ids],
        )
    }


def _live_workers(cluster) -> dict[str, int]:
    """The worker registry's live workers (last beat within ``JOBS_WORKER_EXPIRY``), as
    hostname → PID."""
    return dict(
        cluster.sql(
            "SELECT host, pid FROM job_worker"
            " WHERE last_beat_at >= now() - make_interval(secs => %s)",
            [settings.JOBS_WORKER_EXPIRY],
        )
    )


def _log_lines(process: servers.Process) -> Iterator[tuple[str, dict | None]]:
    """Each line of the process's log with its JSON record (None: a line that is not one)."""
    for line in process.log().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        yield line, record if isinstance(record, dict) else None


def _log_records(process: servers.Process) -> list[dict]:
    return [record for _line, record in _log_lines(process) if record is not None]


def _log_since(process: servers.Process, since: float, *, limit: int = 60) -> str:
    """The worker's last ``limit`` log lines from ``since`` (``time.monotonic()``): each record
    with its seconds since then and its exception's last line, and any line that is not a
    record (a crash's traceback) as it is; then whether the process is alive."""
    start = datetime.now(UTC) - timedelta(seconds=time.monotonic() - since)
    lines, after = [], False
    for line, record in _log_lines(process):
        if record is None:
            if after:
                lines.append(f"        {line[:300]}")
            continue
        at = datetime.fromisoformat(record.pop("time", "1970-01-01T00:00:00+00:00"))
        after = at >= start
        if after:
            error = (record.pop("exc_info", "").strip().splitlines() or [""])[-1]
            entry = f"{(at - start).total_seconds():+7.2f} {json.dumps(record)[:300]} {error}"
            lines.append(entry.rstrip())
    return "\n".join([*lines[-limit:], f"(alive: {process.alive()})"])


def _until_back(cut_off: servers.Process, cut_at: float, predicate, *, detail=str, **wait):
    """``servers.wait_until`` for a worker back from a cut, within ``_BACK_TO_WORK_SECONDS``
    of the mend; a timeout's failure carries ``detail()`` and the worker's log since the
    cut."""
    try:
        return servers.wait_until(predicate, timeout=_BACK_TO_WORK_SECONDS, **wait)
    except AssertionError as timed_out:
        raise AssertionError(
            f"{timed_out}{detail()}; its log since the cut:\n{_log_since(cut_off, cut_at)}"
        ) from None


def _logged_outcomes(process: servers.Process, outcome: str) -> set[str]:
    """Job ids of the worker's ``job <outcome>`` log lines."""
    return {
        record.get("job_id") for record in _log_records(process) if record.get("outcome") == outcome
    }


def _logged_unrecorded(process: servers.Process) -> set[str]:
    """Job ids whose run's ending the worker gave up writing (the database out of reach
    for longer than the write's patience): logged, not reported."""
    ids = set()
    for record in _log_records(process):
        if record.get("message") == "job results not recorded":
            ids.update(record.get("job_ids", []))
        elif record.get("message") == "job outcome not recorded":
            ids.add(record.get("job_id"))
    return ids


def test_mixed_load_through_both_web_hosts_and_both_worker_hosts(cluster):
    clients = Clients(cluster)
    job_ids = [job for schema in TENANTS for job in clients.submit(schema, 30, sleep=0.2)]
    with Pollers(clients, job_ids):
        # A long poll on each web host's ASGI server, through the pooler: it is woken by
        # the change (its listener LISTENs on DATABASE_DIRECT_URL) and answers the new state.
        for web in WEB_HOSTS:
            (fresh,) = clients.submit("acme", 1, sleep=0.5)
            job_ids.append(fresh)
            status, started = "pending", time.monotonic()
            while status not in FINAL:
                assert time.monotonic() - started < 30, f"long poll on {web} saw {status}"
                answer = cluster.request(
                    web, "GET", f"/api/jobs/{fresh}?wait=10", asgi=True,
                    host=TENANTS["acme"][0], token=clients.tokens["acme"], timeout=15,
                )  # fmt: skip
                assert answer.status == 200, answer
                status = answer.json()["status"]
        _settle(cluster, job_ids, timeout=180)
    # Another tenant's job is a 404, exactly as a missing one, on either host.
    for job_id in job_ids[:: len(job_ids) // 12]:
        owner = clients.tenant_of[job_id]
        other = next(schema for schema in TENANTS if schema != owner)
        answered = clients.poll(job_id, as_schema=other)
        assert answered.answer.status == 404, answered.answer
        assert answered.answer.json()["code"] == "not_found"
    # Every answer is the caller's: 200 for its own jobs (the job asked for), 404 otherwise.
    assert clients.statuses() <= {200, 202, 404}, clients.statuses()
    for answered in clients.answers:
        if answered.answer.status == 200 and answered.job_id:
            assert answered.answer.json()["id"] == answered.job_id
    assert {answered.web for answered in clients.answers} == set(WEB_HOSTS)
    assert all(_worker_runs(cluster, host, job_ids) for host in cluster.workers), (
        "both worker hosts must have run jobs"
    )
    # Both are live in the worker registry, each under its own host's name.
    assert _live_workers(cluster) == {host: w.pid for host, w in cluster.workers.items()}
    assert not clients.unreachable
    _report("mixed load", ledger.count(cluster, job_ids))


# The worker partition: how long the link stays down, and the bound docs/deploy.md states
# for a worker back on the network to claim again (DB_NETWORK_TIMEOUT 10 s, then at most one
# reconnect back-off of 5 s).
_PARTITION_SECONDS = 60.0
_BACK_TO_WORK_SECONDS = 15.0


def test_worker_partition_leases_expire_and_late_writes_are_refused(cluster):
    clients = Clients(cluster)
    cut_off = cluster.workers["worker1"]
    job_ids = clients.submit("acme", 8, sleep=2.0) + clients.submit("globex", 8, sleep=2.0)

    def held() -> set[str]:
        return {
            job_id
            for (job_id,) in cluster.sql(
                "SELECT id::text FROM job_queue WHERE status = 'processing'"
                " AND worker_id LIKE %s AND id = ANY(%s::uuid[])",
                [f"%-{cut_off.pid}-%", job_ids],
            )
        }

    servers.wait_until(held, timeout=60, what="worker1 to hold jobs")
    cluster.network.cut("worker1")
    cut_at = time.monotonic()
    try:
        # What it holds once cut off: a run that ended just before the cut is not taken.
        time.sleep(0.5)
        taken = held()
        assert taken, "worker1 finished its jobs before the cut"
        # Its leases expire; worker2 takes the jobs over and completes them.
        servers.wait_until(
            lambda: unfinished(cluster, list(taken)) == 0,
            timeout=120,
            what="worker2 to finish worker1's jobs",
            interval=0.5,
        )
        assert cut_off.alive()
        # Long enough that a statement sent into the cut waits on TCP retransmission back-off
        # (its next try lands ~100 s after the cut): only the connections' network timeout
        # (DB_NETWORK_TIMEOUT) brings the worker back within the bound below.
        time.sleep(max(0.0, _PARTITION_SECONDS - (time.monotonic() - cut_at)))
    finally:
        cluster.network.mend("worker1")
    mended_at = time.monotonic()
    # Back on the network, it claims again within the bound docs/deploy.md states: of jobs
    # more than worker2's four threads can take at once, worker1 starts some in time.
    later = clients.submit("initech", 24, sleep=3.0)
    _until_back(
        cut_off,
        cut_at,
        lambda: _worker_claims(cluster, cut_off, later),
        what=f"worker1 to claim again within {_BACK_TO_WORK_SECONDS} s of the mend",
        interval=0.25,
    )
    print(f"\n[worker partition] back to work {time.monotonic() - mended_at:.1f} s after the mend")
    _settle(cluster, job_ids, timeout=120)
    # worker1's outcomes for those runs never count: a write that reached the database once
    # the link was back was refused (the run reported lost), one that could not reach it
    # within its patience (a lease) was given up and logged; each job keeps the result of
    # the run that owned it (worker2's).
    servers.wait_until(
        lambda: taken <= _logged_outcomes(cut_off, "lost") | _logged_unrecorded(cut_off),
        timeout=120,
        what="worker1 to report its cut-off runs lost or unrecorded",
    )
    assert _worker_runs(cluster, "worker2", list(taken)) == taken
    owners = cluster.sql(
        "SELECT count(*) FROM job_queue j WHERE j.id = ANY(%s::uuid[]) AND j.attempts > 1"
        " AND j.result = jsonb_build_object('attempt', j.attempts)",
        [list(taken)],
    )[0][0]
    assert owners == len(taken)
    _settle(cluster, later, timeout=120)
    assert cut_off.alive()  # the same process, never restarted
    count = ledger.count(cluster, job_ids + later)
    assert count.lost_leases >= len(taken)
    _report("worker partition", count)


# A global limit held across both worker hosts (issue 21): its figures and job type
# (tests/settings.py), each job's length, the sampling of its running units.
_LIMIT_KEY, _LIMITED_TYPE, _LIMIT = "test.cluster_slots", "test.cluster_limited", 3
_LIMITED_SLEEP = 1.0
_SAMPLE_INTERVAL = 0.05
# The units worker1 held are free again after its lease and one pass of the reaper
# (stack.WORKER_TIMING), and worker2, woken by their release, takes them within a few
# seconds. Unless worker1 was cut off inside a claim's transaction: it holds the limit's
# budget row lock, which every claim of the limit waits for (and worker2's reaper with it:
# it runs in the claim loop), until PgBouncer drops the dead client (tcp_user_timeout 10 s,
# keepalives after 5 s idle: ~11 s, stack.Pooler) and PostgreSQL rolls the claim back.
_POOLER_DROPS_DEAD_CLIENT_SECONDS = 11.0
_UNITS_BACK_SECONDS = (
    max(
        float(WORKER_TIMING["JOBS_LEASE_SECONDS"]) + float(WORKER_TIMING["JOBS_REAP_INTERVAL"]),
        _POOLER_DROPS_DEAD_CLIENT_SECONDS,
    )
    + 4.0
)
# How long worker1 is cut off: past the units' return, with time left to see worker2
# alone hold the limit.
_LIMITED_CUT_SECONDS = _UNITS_BACK_SECONDS + 3.0
# Claims waiting for a budget row lock: a second after the cut (worker2 polls every 0.5 s),
# only the lock of a claim worker1 was cut off in holds them.
_CLAIMS_WAITING_ON_A_BUDGET = """
SELECT count(*) FROM pg_stat_activity
WHERE cardinality(pg_blocking_pids(pid)) > 0 AND query LIKE '%INSERT INTO flow_budget%'
"""


def test_global_limit_held_across_worker_hosts_through_a_partition(cluster):
    """Both worker hosts serve a type whose jobs take one unit of a global concurrency limit
    of 3, through PgBouncer, with more jobs than the limit lets run for the whole scenario.
    PostgreSQL's count of the limit's running units, sampled every 50 ms, never exceeds the
    limit: before worker1 is cut off, while it is (its units come back when its leases
    expire, and worker2 takes them), and once it is back and claims again beside worker2
    (what it wrote late, for the runs it lost, is refused or given up)."""
    clients = Clients(cluster)
    cut_off = cluster.workers["worker1"]
    running_on_cut_off = (
        "SELECT id::text FROM job_queue WHERE status = 'processing' AND type = %s"
        " AND worker_id LIKE %s"
    )
    with RunningUnits(
        cluster, _LIMIT_KEY, _LIMITED_TYPE, watched_pid=cut_off.pid, interval=_SAMPLE_INTERVAL
    ) as units:
        # 150 one-second jobs, 50 s of the limit's work: it stays saturated to the end.
        job_ids = [
            job
            for _ in range(10)
            for schema in TENANTS
            for job in clients.submit(schema, 5, sleep=_LIMITED_SLEEP, job_type=_LIMITED_TYPE)
        ]
        servers.wait_until(
            lambda: units.first(0.0, lambda sample: sample.running == _LIMIT),
            timeout=60,
            what=f"the limit's {_LIMIT} units to run",
        )
        # Cut worker1 off while it runs a job it has just started, so it still holds it then.
        servers.wait_until(
            lambda: cluster.sql(
                f"{running_on_cut_off} AND started_at > clock_timestamp() - interval '0.3 s'",
                [_LIMITED_TYPE, f"%-{cut_off.pid}-%"],
            ),
            timeout=60,
            what="worker1 to start a limited job",
            interval=0.02,
        )
        cluster.network.cut("worker1")
        cut_at = time.monotonic()
        try:
            time.sleep(0.5)  # what it holds once cut off: no write of it reaches PostgreSQL now
            taken = {
                job_id
                for (job_id,) in cluster.sql(
                    running_on_cut_off, [_LIMITED_TYPE, f"%-{cut_off.pid}-%"]
                )
            }
            assert taken, "worker1 finished its jobs before the cut"
            time.sleep(0.5)
            budget_held_by_the_cut = cluster.sql(_CLAIMS_WAITING_ON_A_BUDGET)[0][0] > 0
            # Its units come back when its leases expire; worker2 takes the limit whole.
            try:
                back = servers.wait_until(
                    lambda: units.first(
                        cut_at, lambda sample: sample.running == _LIMIT and sample.on_watched == 0
                    ),
                    timeout=_UNITS_BACK_SECONDS,
                    what=f"worker2 to hold all {_LIMIT} units after the cut",
                    interval=0.05,
                )
            except AssertionError as timed_out:
                raise AssertionError(
                    f"{timed_out}; running (worker1's) waiting since the cut:"
                    f" {units.timeline(cut_at, cut_at)}"
                ) from None
            time.sleep(max(0.0, _LIMITED_CUT_SECONDS - (time.monotonic() - cut_at)))
        finally:
            cluster.network.mend("worker1")
        mended_at = time.monotonic()
        # Back on the network, worker1 claims units of the limit again beside worker2.
        returned = _until_back(
            cut_off,
            cut_at,
            lambda: units.first(mended_at, lambda sample: sample.on_watched > 0),
            what=f"worker1 to run limited jobs within {_BACK_TO_WORK_SECONDS} s of the mend",
            detail=lambda: (
                f"; since, running (worker1's) waiting: {units.timeline(mended_at, mended_at)}"
            ),
            interval=0.1,
        )
        _settle(cluster, job_ids, timeout=120)
    before, during, after = (
        units.between(0.0, cut_at),
        units.between(cut_at, mended_at),
        units.between(mended_at),
    )
    peaks = [max(sample.running for sample in phase) for phase in (before, during, after)]
    shared = sum(1 for s in after if 0 < s.on_watched < s.running)
    print(
        f"\n[global limit partition] limit {_LIMIT}: {len(units.samples)} samples (widest gap"
        f" {units.widest_gap() * 1000:.0f} ms), peak running before/during/after the cut"
        f" {peaks[0]}/{peaks[1]}/{peaks[2]}; worker1 held {len(taken)} at the cut"
        f" (its claim cut off holding the budget's lock: {budget_held_by_the_cut}), worker2 held"
        f" the limit"
        f" {back.at - cut_at:.1f} s after it; worker1 back {returned.at - mended_at:.1f}"
        f" s after the mend, {shared} samples with both hosts running"
    )
    over = [sample.at for sample in units.samples if sample.running > _LIMIT]
    assert not over, (
        f"the limit was exceeded {len(over)} times; running (worker1's) waiting, in s since the"
        f" cut (mended at {mended_at - cut_at:+.2f}):"
        f" {units.timeline(cut_at, over[0] - 1, over[-1] + 1)}"
    )
    assert returned.waiting > 0, "the jobs ran out before worker1 was back: nothing contended"
    assert _worker_runs(cluster, "worker2", list(taken)) == taken
    count = ledger.count(cluster, job_ids)
    assert count.lost_leases >= len(taken)
    _report("global limit partition", count)


def test_web_host_lost_clients_retry_on_the_other(cluster):
    clients = Clients(cluster, timeout=2.0)
    job_ids = [job for schema in TENANTS for job in clients.submit(schema, 10, sleep=0.5)]
    before = {name: web.pids() for name, web in cluster.webs.items()}
    with Pollers(clients, job_ids):
        servers.wait_until(lambda: clients.count(200) >= 40, timeout=60, what="polls")
        cluster.network.cut("web1")
        try:
            during = time.monotonic()
            servers.wait_until(
                lambda: clients.count(200, sent_after=during, web="web2") >= 60,
                timeout=60,
                what="web2 to answer the retried polls",
            )
            later = clients.submit("globex", 10, sleep=0.2)  # submissions, too
            job_ids += later
            _settle(cluster, job_ids, timeout=120)
            assert clients.count(200, sent_after=during, web="web1") == 0
        finally:
            cluster.network.mend("web1")
        # web1 comes back as it was: the same processes answer again.
        mended = time.monotonic()
        servers.wait_until(
            lambda: clients.count(200, sent_after=mended, web="web1") >= 5,
            timeout=60,
            what="web1 to answer again",
        )
    assert "web1" in clients.unreachable, "the cut never reached a client"
    assert set(clients.unreachable) == {"web1"}
    assert clients.statuses() <= {200, 202}, clients.statuses()  # no 5xx, from anyone
    assert {name: web.pids() for name, web in cluster.webs.items()} == before
    _report("web host lost", ledger.count(cluster, job_ids))


@pytest.mark.parametrize("outage", ["pooler", "database"])
def test_restart_under_load_is_503_then_recovers_without_restarts(cluster, outage):
    # Longer than PgBouncer's query_wait_timeout: every request gets an answer, 200 or 503.
    clients = Clients(cluster, timeout=10.0)
    job_ids = [job for schema in TENANTS for job in clients.submit(schema, 12, sleep=0.3)]
    webs_before = {name: web.pids() for name, web in cluster.webs.items()}
    workers_before = {name: worker.pid for name, worker in cluster.workers.items()}
    server = cluster.pooler if outage == "pooler" else cluster.postgres
    with Pollers(clients, job_ids):
        servers.wait_until(lambda: clients.count(200) >= 20, timeout=60, what="polls")
        server.stop()
        try:
            start = time.monotonic()
            servers.wait_until(
                lambda: clients.count(503, sent_after=start) >= 20, timeout=60, what="503 answers"
            )
            for web in WEB_HOSTS:
                _assert_unavailable(
                    cluster.request(
                        web, "POST", "/api/jobs", host=TENANTS["acme"][0],
                        token=clients.tokens["acme"],
                        body={"type": "test.cluster_work", "payload": {"tenant": "acme"}},
                    )
                )  # fmt: skip
        finally:
            server.start()
        back = time.monotonic()
        servers.wait_until(
            lambda: clients.count(200, sent_after=back) >= 20, timeout=90, what="polls to succeed"
        )
        job_ids += clients.submit("acme", 5, sleep=0.1)
        _settle(cluster, job_ids, timeout=180)
    assert clients.statuses() <= {200, 202, 503}, clients.statuses()
    for answered in clients.answers:
        if answered.answer.status == 503:
            _assert_unavailable(answered.answer)
    assert not clients.unreachable
    assert all(cluster.all_alive().values()), cluster.all_alive()
    assert {name: web.pids() for name, web in cluster.webs.items()} == webs_before
    assert {name: worker.pid for name, worker in cluster.workers.items()} == workers_before
    _report(f"{outage} restart", ledger.count(cluster, job_ids))
