"""Flow control in the claim itself (``services.job_claim``, one process): each kind and
scope of limit, plans and overrides, units from the payload, pauses, and priority ageing.
The limits are tests/settings.py's ``test.*`` ones. Several worker processes: test_workers.
"""

import threading
import time
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from jobs import services
from jobs.flow.models import LimitBudget, LimitOverride, Pause
from jobs.models import Job, JobStatus
from jobs.worker import Worker
from tests.jobs.writes import job_complete

pytestmark = pytest.mark.django_db(transaction=True)


def submit(tenant, type_, count=1, **payload):
    return [
        services.job_enqueue(tenant=tenant, type=type_, payload=dict(payload)) for _ in range(count)
    ]


def claim(limit=20, queues=("default",)):
    return services.job_claim(worker_id="w1", queues=list(queues), limit=limit)


def running(tenant=None, type_=None) -> int:
    jobs = Job.objects.filter(status=JobStatus.PROCESSING)
    if tenant is not None:
        jobs = jobs.filter(tenant=tenant)
    if type_ is not None:
        jobs = jobs.filter(type=type_)
    return jobs.count()


def test_a_job_takes_the_budgets_of_its_type_when_submitted(acme):
    (job,) = submit(acme, "test.weighted", size=7)
    (plain,) = submit(acme, "demo.echo")
    assert (job.limit_keys, job.limit_units) == (["test.units"], [7])
    assert (plain.limit_keys, plain.limit_units) == ([], [])
    (slotted,) = submit(acme, "test.slotted")
    assert slotted.limit_keys == [f"test.slots:{acme.pk}"]


def test_a_tenant_limit_admits_at_most_its_concurrency_per_tenant(acme, globex):
    submit(acme, "test.slotted", 5)
    submit(globex, "test.slotted", 5)
    taken = claim()
    assert len(taken) == 4
    assert (running(acme), running(globex)) == (2, 2)
    assert claim() == []  # full: the others wait, pending, no attempt spent
    assert not Job.objects.filter(status=JobStatus.PENDING).exclude(attempts=0).exists()
    assert LimitBudget.objects.get(key=f"test.slots:{acme.pk}").throttled

    acme_job = next(job for job in taken if job.tenant_id == acme.pk)
    assert job_complete(job_id=acme_job.id, worker_id="w1", result=None)
    (next_one,) = claim()
    assert next_one.tenant_id == acme.pk


def test_a_plan_sets_a_tenants_figures_and_an_override_replaces_them(acme, globex):
    acme.plan = "pro"
    acme.save(update_fields=["plan"])
    submit(acme, "test.planned", 5)
    submit(globex, "test.planned", 5)  # globex: the default plan, "free"
    claim()
    assert (running(acme), running(globex)) == (3, 1)

    LimitOverride.objects.create(
        tenant=globex, limit="test.plan_slots", figures={"concurrency": 2}, changed_by="staff"
    )
    LimitBudget.objects.filter(key=f"test.plan_slots:{globex.pk}").delete()  # as the service
    claim()
    assert (running(acme), running(globex)) == (3, 2)


def test_a_rate_budget_admits_its_burst_then_one_job_per_token(acme):
    submit(acme, "test.bursty", 5)  # 60/m, burst 2
    taken = claim()
    assert len(taken) == 2
    assert 0 < taken.retry_in <= 1.0  # the next token, in at most a second
    assert claim() == []
    # Three seconds later (moved in the database, not slept): three tokens, two kept (burst).
    LimitBudget.objects.filter(key="test.burst").update(
        refreshed_at=timezone.now() - timedelta(seconds=3)
    )
    assert len(claim()) == 2
    assert running(type_="test.bursty") == 4


def test_units_come_from_the_payload(acme):
    six, another_six, three = (submit(acme, "test.weighted", size=n)[0] for n in (6, 6, 3))
    taken = {job.id for job in claim()}
    assert taken == {six.id, three.id}  # 6 + 3 of 10; 6 more would be 15
    assert Job.objects.get(pk=another_six.pk).status == JobStatus.PENDING


def test_a_job_larger_than_its_budget_runs_alone(acme):
    (big,) = submit(acme, "test.weighted", size=25)
    (small,) = submit(acme, "test.weighted", size=1)
    assert [job.id for job in claim(limit=1)] == [big.id]
    assert claim() == []  # nothing beside it
    assert job_complete(job_id=big.id, worker_id="w1", result=None)
    assert [job.id for job in claim()] == [small.id]


@pytest.mark.parametrize("scope", ["queue", "type", "tenant"])
def test_nothing_paused_is_claimed_and_resuming_releases_it(acme, globex, scope):
    paused_job = submit(acme, "test.record")[0]
    other = submit(globex, "demo.echo")[0]
    target = {"queue": "default", "type": "test.record", "tenant": str(acme.pk)}[scope]
    pause = Pause.objects.create(scope=scope, target=target, paused_by="staff")
    taken = {job.id for job in claim()}
    assert paused_job.id not in taken
    if scope != "queue":
        assert other.id in taken  # the rest of the queue runs on
    pause.delete()
    assert paused_job.id in {job.id for job in claim()}


def _waited(job, seconds):
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now() - timedelta(seconds=seconds))


def test_a_waiting_job_gains_one_priority_per_ageing_step(acme, settings):
    step = settings.JOBS_PRIORITY_AGEING_SECONDS
    old = submit(acme, "test.record")[0]
    Job.objects.filter(pk=old.pk).update(priority=-10)
    _waited(old, 9 * step)  # -10 + 9 = -1: still behind a fresh priority 0
    fresh = services.job_enqueue(tenant=acme, type="test.record", payload={}, priority=0)
    assert [job.id for job in claim(limit=1)] == [fresh.id]
    _waited(old, 11 * step)  # -10 + 11 = 1: ahead of a fresh priority 0
    services.job_enqueue(tenant=acme, type="test.record", payload={}, priority=0)
    assert [job.id for job in claim(limit=1)] == [old.id]


def test_the_ageing_bound_a_job_waiting_long_enough_beats_every_newer_one(acme, settings):
    # The documented bound: after (100 - p) steps, a job of priority p is claimed before any
    # job submitted after it, even a flood of the highest priority.
    step = settings.JOBS_PRIORITY_AGEING_SECONDS
    lowest = services.job_enqueue(tenant=acme, type="test.record", payload={}, priority=-100)
    _waited(lowest, 200 * step)
    for _ in range(30):
        services.job_enqueue(tenant=acme, type="test.record", payload={}, priority=100)
    assert [job.id for job in claim(limit=1)] == [lowest.id]


def test_a_capped_claim_admits_within_the_budgets_inside_its_transaction(acme, settings):
    # Under JOBS_MAX_RUNNING_PER_TENANT the claim runs in the transaction that holds the
    # tenants' locks: admission's statements go there, without a BEGIN or COMMIT of their
    # own, and still hold the limit (test.one: one running at once).
    settings.JOBS_MAX_RUNNING_PER_TENANT = 3
    submit(acme, "test.single", 3)
    assert len(claim(limit=5)) == 1
    assert claim(limit=5) == []
    assert running(type_="test.single") == 1
    assert LimitBudget.objects.filter(key="test.one").exists()


def _quiet_between_round_trips(monkeypatch, release: threading.Event, seconds: float):
    """Make the claims of the thread returned pause between their two round trips (their
    candidates locked, admission not yet sent) until ``release`` or ``seconds``; ``locked``
    is set when it pauses, ``outcome`` says whether it was released and how its claim
    ended."""
    locked, outcome = threading.Event(), {}
    params = services.admission_params

    def admission_params_then_go_quiet(*args, **kwargs):
        found = params(*args, **kwargs)
        if threading.current_thread() is quiet:
            locked.set()
            outcome["released"] = release.wait(seconds)
        return found

    def claim_quietly():
        try:
            outcome["claimed"] = services.job_claim(worker_id="gone", queues=["default"], limit=1)
        except DatabaseError as error:
            outcome["ended"] = str(error)
        finally:
            connection.close()

    monkeypatch.setattr(services, "admission_params", admission_params_then_go_quiet)
    quiet = threading.Thread(target=claim_quietly)
    return quiet, locked, outcome


def test_a_claimer_between_its_round_trips_holds_no_budgets_lock(acme, monkeypatch):
    # Admission locks the budgets in the claim's last round trip: a claimer whose first
    # round trip is done holds its candidates only, so another claim of the same limit
    # admits at once, and the first, back, counts what that one took (test.one: one
    # running at once).
    held, other = submit(acme, "test.single", 2)
    taken = threading.Event()
    quiet, locked, outcome = _quiet_between_round_trips(monkeypatch, taken, 30)
    quiet.start()
    assert locked.wait(30)
    claimed = claim()  # the quiet claimer's candidate skipped, the budget's lock free
    taken.set()
    quiet.join()
    assert [job.id for job in claimed] == [other.id]
    assert outcome == {"released": True, "claimed": []}
    held.refresh_from_db()
    assert (held.status, held.attempts) == (JobStatus.PENDING, 0)


def test_a_claimer_between_its_round_trips_holds_no_lock_on_a_budget_it_found_spent(
    acme, monkeypatch
):
    # The quiet claimer's first round trip finds test.one spent (its one unit running) and
    # marks it throttled only in its last, so once that unit is free another claim admits
    # test.one's next job at once, while the quiet one is still away; back, the quiet one
    # leaves that claim's flag as it wrote it. A lock taken in the first round trip would
    # be held across the network, and out of key order could deadlock two claims.
    first, second = submit(acme, "test.single", 2)
    assert [job.id for job in claim(limit=1)] == [first.id]
    (slotted,) = submit(acme, "test.slotted")
    taken = threading.Event()
    quiet, locked, outcome = _quiet_between_round_trips(monkeypatch, taken, 30)
    quiet.start()
    assert locked.wait(30)
    assert job_complete(job_id=first.id, worker_id="w1", result=None)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '5s'")  # a wait for the quiet one's lock fails
    try:
        claimed = claim()
    finally:
        taken.set()
        quiet.join()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert [job.id for job in claimed] == [second.id]
    assert outcome["released"]
    assert [job.id for job in outcome["claimed"]] == [slotted.id]
    assert not LimitBudget.objects.get(key="test.one").throttled


def test_a_budget_found_spent_is_marked_throttled_in_the_claims_last_round_trip(acme):
    first, second = submit(acme, "test.single", 2)
    assert [job.id for job in claim(limit=1)] == [first.id]  # admission refused none
    assert not LimitBudget.objects.get(key="test.one").throttled
    assert claim() == []  # the first statement finds it spent: no candidate
    assert LimitBudget.objects.get(key="test.one").throttled
    second.refresh_from_db()
    assert second.status == JobStatus.PENDING


def test_a_claimer_gone_quiet_inside_its_claim_loses_its_locks(acme, monkeypatch):
    # A worker cut off between the claim's statements holds its candidates (and, in a
    # capped claim, its tenants' locks). Its transaction may sit idle CLAIM_IDLE_TIMEOUT_MS
    # at most: PostgreSQL then ends its session, and another claimer takes the job while
    # the quiet one is still away.
    (job,) = submit(acme, "test.single")
    taken = threading.Event()
    quiet, locked, outcome = _quiet_between_round_trips(monkeypatch, taken, 30)
    quiet.start()
    assert locked.wait(30)
    claimed = []
    for _ in range(300):  # skipped while the quiet session lives: wait for its end
        if claimed := claim():
            break
        time.sleep(0.1)
    taken.set()
    quiet.join()
    assert [found.id for found in claimed] == [job.id]
    assert outcome["released"], outcome
    assert "idle-in-transaction timeout" in outcome["ended"], outcome


def test_admission_counts_a_claim_committed_while_it_waited_for_the_budget(acme):
    # flow_admit counts the running units in a snapshot taken once it holds the budget's
    # lock, not in its statement's: a job another claim started and committed while this
    # claim waited for that lock is counted (test.one: one running at once).
    waiting, other = submit(acme, "test.single", 2)
    LimitBudget.objects.create(key="test.one", concurrency=1)
    outcome = {}

    def claim_and_close():
        try:
            outcome["claimed"] = claim()
        finally:
            connection.close()

    claimer = threading.Thread(target=claim_and_close)
    with transaction.atomic(), connection.cursor() as cursor:
        LimitBudget.objects.select_for_update().get(key="test.one")  # as a claim does
        Job.objects.filter(id=other.id).update(status=JobStatus.PROCESSING, worker_id="w0")
        claimer.start()
        for _ in range(600):  # until the claim waits for this transaction's lock
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted"
                " AND pg_backend_pid() = ANY(pg_blocking_pids(pid)))"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the claim never waited for the budget's lock")
    claimer.join()
    assert outcome["claimed"] == []
    waiting.refresh_from_db()
    assert (waiting.status, waiting.attempts) == (JobStatus.PENDING, 0)
    assert LimitBudget.objects.get(key="test.one").throttled


def test_a_due_token_wakes_its_pool_once_and_then_no_more():
    # A pool whose claim a rate limit held back is woken when the token is due; if it has
    # no free thread then, it must not be woken again at once on every wait (a spin).
    worker = Worker(poll_interval=0.2)
    pool = worker.pools[0]
    pool.maybe_work, pool.retry_at = False, time.monotonic() - 1
    listener = worker._listen()
    try:
        worker._wait(listener)
        assert (pool.maybe_work, pool.retry_at) == (True, None)
    finally:
        listener.close()
