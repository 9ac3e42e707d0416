"""The transition table: every service that changes a job, from every state, once.

Each row builds one job in a state (``JobFactory`` traits), calls the service and checks
the whole row afterwards. An allowed transition gives the service's answer and exactly the
listed column changes; every other column keeps its value. A refused one gives the
service's refusal (False, None, nothing claimed, or the exception it raises) and changes
no column at all. Then the scope rules: ``tenant`` is a ``Tenant`` or ``ALL_TENANTS``,
never None.

The tests run inside one transaction, where PostgreSQL's ``now()`` is the transaction's
start and ``statement_timestamp()`` (Django's ``Now()``) a little later; ``RECENT`` accepts
either.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection

from accounts.roles import ALL_TENANTS
from insights.selectors import stats_by_tenant
from jobs import selectors, services
from jobs.exceptions import InvalidTransition, JobNotFound
from jobs.models import FINAL_STATUSES, Job, JobStatus
from tests.factories import WORKER_ID, JobFactory, UserFactory
from tests.jobs.writes import job_complete

pytestmark = pytest.mark.django_db

STATES = [
    "pending",
    "scheduled",
    "processing",
    "cancelling",
    "expired_lease",
    "timed_out",
    "completed",
    "failed",
    "cancelled",
]
RUNNING = ["processing", "cancelling", "expired_lease", "timed_out"]
FINAL = ["completed", "failed", "cancelled"]


@dataclass(frozen=True)
class Window:
    """The database's times around a call: ``now()`` before it, the clock after it."""

    start: datetime
    end: datetime


class Matcher:
    def matches(self, value, window: Window) -> bool:
        raise NotImplementedError


class _Recent(Matcher):
    """Set by the service to the database's current time."""

    def matches(self, value, window):
        return value is not None and window.start <= value <= window.end

    def __repr__(self):
        return "RECENT"


class _Lease(Matcher):
    """A lease of ``JOBS_LEASE_SECONDS`` from the transaction's ``now()``."""

    def matches(self, value, window):
        return value == window.start + timedelta(seconds=settings.JOBS_LEASE_SECONDS)

    def __repr__(self):
        return "LEASE"


class _Backoff(Matcher):
    """The first retry's due time: half to all of ``JOBS_BACKOFF_BASE`` from ``now()``."""

    def matches(self, value, window):
        ceiling = timedelta(seconds=min(settings.JOBS_BACKOFF_MAX, settings.JOBS_BACKOFF_BASE))
        return window.start + ceiling / 2 <= value <= window.start + ceiling

    def __repr__(self):
        return "BACKOFF"


RECENT, LEASE, BACKOFF = _Recent(), _Lease(), _Backoff()
DELETED = object()  # the row is gone


@dataclass(frozen=True)
class Allowed:
    """What an allowed call answers and the columns it changes (``DELETED``: the row)."""

    answer: Callable[[Job], object]
    changes: dict | object = field(default_factory=dict)


@dataclass(frozen=True)
class Service:
    """One service under test: ``call`` returns a comparable form of its answer."""

    name: str
    call: Callable[[Job, object], object]
    allowed: dict[str, Allowed]
    refusal: object  # the answer when refused, or the exception class it raises
    extra: dict = field(default_factory=dict)  # factory fields for every state


def _claim(job, tenant):
    return [claimed.id for claimed in services.job_claim(worker_id="worker-2", queues=["default"])]


def _heartbeat(job, tenant):
    card = services.WorkerCard(
        worker_id=WORKER_ID, host="test", pid=1, pools={"default": 1}, version="test"
    )
    beat = services.worker_beat(card=card, job_ids=[job.id])
    return beat.renewed, beat.cancel_requested


def _reap(job, tenant):
    """The reaper, after its dry run: the preview must count what the reaper then does."""
    preview = selectors.jobs_stale_preview()
    reaped = services.jobs_requeue_stale()
    assert preview == selectors.StalePreview(
        timed_out=len(reaped.timed_out),
        requeue=len(reaped.requeued),
        lost=len(reaped.lost),
        cancelled=len(reaped.cancelled),
    )
    return reaped


def _reaped(**lists):
    def answer(job):
        empty = {"requeued": [], "lost": [], "timed_out": [], "cancelled": []}
        return services.ReapResult(**{**empty, **{name: [job.id] for name in lists}})

    return answer


NOTHING_REAPED = services.ReapResult(requeued=[], lost=[], timed_out=[], cancelled=[])


def _fail(*, retry):
    def call(job, tenant):
        return services.job_fail(
            job_id=job.id,
            worker_id=WORKER_ID,
            attempts=job.attempts,
            error="boom",
            traceback="tb",
            retry=retry,
        )

    return call


def _answer(value):
    return lambda job: value


FAILED_FINAL = {
    "status": JobStatus.FAILED,
    "completed_at": RECENT,
    "error": "boom",
    "error_traceback": "tb",
    "worker_id": "",
    "lease_expires_at": None,
    "updated_at": RECENT,
}
RETRIED_LATER = {
    "status": JobStatus.PENDING,
    "run_at": BACKOFF,
    "completed_at": None,
    "error": "boom",
    "error_traceback": "tb",
    "worker_id": "",
    "lease_expires_at": None,
    "updated_at": RECENT,
}
COMPLETED = {
    "status": JobStatus.COMPLETED,
    "result": {"answer": 42},
    "completed_at": RECENT,
    "updated_at": RECENT,
    "lease_expires_at": None,
    "progress": 100,
}
HANDED_BACK = {
    "worker_id": "",
    "lease_expires_at": None,
    "started_at": None,
    "attempts": 0,
    "progress": None,
    "progress_message": "",
    "updated_at": RECENT,
}
REQUEUED = {
    "status": JobStatus.PENDING,
    "completed_at": None,
    "worker_id": "",
    "lease_expires_at": None,
    "updated_at": RECENT,
}
REAPED_AS = {
    "completed_at": RECENT,
    "worker_id": "",
    "lease_expires_at": None,
    "updated_at": RECENT,
}
TIMED_OUT = {**REAPED_AS, "status": JobStatus.FAILED, "error": "timed out"}
FRESH_PENDING = {
    "status": JobStatus.PENDING,
    "attempts": 0,
    "result": None,
    "error": "",
    "error_traceback": "",
    "completed_at": None,
    "started_at": None,
    "run_at": RECENT,
    "cancel_requested": False,
    "progress": None,
    "progress_message": "",
    "worker_id": "",
    "lease_expires_at": None,
    "updated_at": RECENT,
}
CANCEL_REQUESTED = Allowed(_answer(False), {"cancel_requested": True, "updated_at": RECENT})
CANCELLED_NOW = Allowed(
    _answer(True), {"status": JobStatus.CANCELLED, "completed_at": RECENT, "updated_at": RECENT}
)


SERVICES = [
    Service(
        "claim",
        _claim,
        allowed={
            "pending": Allowed(
                lambda job: [job.id],
                {
                    "status": JobStatus.PROCESSING,
                    "worker_id": "worker-2",
                    "attempts": 1,
                    "started_at": RECENT,
                    "updated_at": RECENT,
                    "cancel_requested": False,
                    "lease_expires_at": LEASE,
                    "progress": None,
                    "progress_message": "",
                },
            )
        },
        refusal=[],
    ),
    Service(
        "heartbeat",
        _heartbeat,
        allowed={
            **{
                state: Allowed(lambda job: ({job.id}, set()), {"lease_expires_at": LEASE})
                for state in ["processing", "expired_lease", "timed_out"]
            },
            "cancelling": Allowed(lambda job: ({job.id}, {job.id}), {"lease_expires_at": LEASE}),
        },
        refusal=(set(), set()),
    ),
    Service(
        "report_progress",
        lambda job, tenant: services.job_report_progress(
            job_id=job.id, worker_id=WORKER_ID, progress=50, message="half"
        ),
        allowed={
            state: Allowed(
                _answer(True), {"progress": 50, "progress_message": "half", "updated_at": RECENT}
            )
            for state in RUNNING
        },
        refusal=False,
    ),
    Service(
        "complete",
        lambda job, tenant: job_complete(job_id=job.id, worker_id=WORKER_ID, result={"answer": 42}),
        allowed={
            state: Allowed(_answer(True), COMPLETED)
            for state in ["processing", "expired_lease", "timed_out"]
        },
        refusal=False,
    ),
    Service(
        "complete_batch",
        lambda job, tenant: services.jobs_complete(
            worker_id=WORKER_ID, results=[(job.id, {"answer": 42}), (uuid.uuid4(), None)]
        ),
        allowed={
            state: Allowed(lambda job: {job.id}, COMPLETED)
            for state in ["processing", "expired_lease", "timed_out"]
        },
        refusal=set(),
    ),
    Service(
        "fail_retry",
        _fail(retry=True),
        allowed={
            state: Allowed(_answer(JobStatus.PENDING), RETRIED_LATER)
            for state in ["processing", "expired_lease", "timed_out"]
        },
        refusal=None,
    ),
    Service(
        "fail_attempts_used_up",
        _fail(retry=True),
        allowed={
            state: Allowed(_answer(JobStatus.FAILED), FAILED_FINAL)
            for state in ["processing", "expired_lease", "timed_out"]
        },
        refusal=None,
        extra={"max_attempts": 1},
    ),
    Service(
        "fail_final",
        _fail(retry=False),
        allowed={
            state: Allowed(_answer(JobStatus.FAILED), FAILED_FINAL)
            for state in ["processing", "expired_lease", "timed_out"]
        },
        refusal=None,
    ),
    Service(
        "cancel",
        lambda job, tenant: services.job_cancel(tenant=tenant, job_id=job.id).finished,
        allowed={
            "pending": CANCELLED_NOW,
            "scheduled": CANCELLED_NOW,
            **{state: CANCEL_REQUESTED for state in RUNNING},
        },
        refusal=InvalidTransition,
    ),
    Service(
        "finish_cancelled",
        lambda job, tenant: services.job_finish_cancelled(job_id=job.id, worker_id=WORKER_ID),
        allowed={
            "cancelling": Allowed(
                _answer(True),
                {
                    "status": JobStatus.CANCELLED,
                    "completed_at": RECENT,
                    "updated_at": RECENT,
                    "lease_expires_at": None,
                },
            )
        },
        refusal=False,
    ),
    Service(
        "release",
        lambda job, tenant: services.job_release(job_id=job.id, worker_id=WORKER_ID),
        allowed={
            **{
                state: Allowed(_answer(True), {**HANDED_BACK, "status": JobStatus.PENDING})
                for state in ["processing", "expired_lease", "timed_out"]
            },
            # Pending again, its next claim would clear the request and run it.
            "cancelling": Allowed(
                _answer(True),
                {**HANDED_BACK, "status": JobStatus.CANCELLED, "completed_at": RECENT},
            ),
        },
        refusal=False,
    ),
    Service(
        "requeue_stale",
        _reap,
        allowed={
            "expired_lease": Allowed(_reaped(requeued=True), REQUEUED),
            "timed_out": Allowed(_reaped(timed_out=True), TIMED_OUT),
        },
        refusal=NOTHING_REAPED,
    ),
    Service(
        "requeue_stale_lost",
        _reap,
        allowed={
            "expired_lease": Allowed(
                _reaped(lost=True),
                {**REAPED_AS, "status": JobStatus.FAILED, "error": "worker lost"},
            ),
            "timed_out": Allowed(_reaped(timed_out=True), TIMED_OUT),
        },
        refusal=NOTHING_REAPED,
        extra={"max_attempts": 1},
    ),
    Service(
        "requeue_stale_cancel_requested",
        _reap,
        allowed={
            "expired_lease": Allowed(
                _reaped(cancelled=True), {**REAPED_AS, "status": JobStatus.CANCELLED}
            ),
            "timed_out": Allowed(_reaped(timed_out=True), TIMED_OUT),
        },
        refusal=NOTHING_REAPED,
        extra={"cancel_requested": True},
    ),
    Service(
        "retry",
        lambda job, tenant: services.job_retry(tenant=tenant, job_id=job.id).id,
        allowed={
            state: Allowed(lambda job: job.id, FRESH_PENDING) for state in ["failed", "cancelled"]
        },
        refusal=InvalidTransition,
    ),
    Service(
        "run_now",
        lambda job, tenant: services.job_run_now(tenant=tenant, job_id=job.id).id,
        allowed={
            "scheduled": Allowed(lambda job: job.id, {"run_at": RECENT, "updated_at": RECENT})
        },
        refusal=InvalidTransition,
    ),
    Service(
        "delete_finished",
        lambda job, tenant: services.job_delete_finished(tenant=tenant, job_id=job.id),
        allowed={state: Allowed(_answer(True), DELETED) for state in FINAL},
        refusal=False,
    ),
    Service(
        "delete_finished_batches",
        lambda job, tenant: list(
            services.jobs_delete_finished(
                tenant=tenant,
                statuses=JobStatus.values,  # the unfinished ones are ignored
                cutoff=selectors.cleanup_cutoff(timedelta(0)),
            )
        ),
        allowed={state: Allowed(lambda job: [{job.status: 1}], DELETED) for state in FINAL},
        refusal=[],
    ),
    Service(
        "enqueue_again_with_its_idempotency_key",
        lambda job, tenant: _enqueue_once_answer(tenant),
        allowed={state: Allowed(lambda job: (job.id, False)) for state in STATES},
        refusal=None,  # every state answers with the job, unchanged
        extra={
            "idempotency_key": "key-1",
            "request_fingerprint": services.request_fingerprint(type="demo.echo", payload={}),
        },
    ),
]


def _enqueue_once_answer(tenant):
    job, created = services.job_enqueue_once(
        tenant=tenant, idempotency_key="key-1", type="demo.echo", payload={}
    )
    return job.id, created


def _row(job) -> dict | None:
    return Job.objects.filter(pk=job.pk).values().first()


def _db(sql: str) -> datetime:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def test_every_state_has_a_trait_with_its_status():
    statuses = {state: JobFactory.build(**{state: True}).status for state in STATES}
    assert set(statuses.values()) == set(JobStatus.values)
    assert JobFactory.build(cancelling=True).cancel_requested is True


@pytest.mark.parametrize(
    ("service", "state"),
    [
        pytest.param(service, state, id=f"{service.name}-from-{state}")
        for service in SERVICES
        for state in STATES
    ],
)
def test_transition(acme, service, state):
    job = JobFactory(tenant=acme, **{state: True, **service.extra})
    before = _row(job)
    start = _db("SELECT now()")
    outcome = service.allowed.get(state)

    if outcome is None and isinstance(service.refusal, type):
        with pytest.raises(service.refusal):
            service.call(job, acme)
        assert _row(job) == before
        return
    answer = service.call(job, acme)
    after = _row(job)
    window = Window(start=start, end=_db("SELECT clock_timestamp()"))

    if outcome is None:
        assert answer == service.refusal
        assert after == before
        return
    assert answer == outcome.answer(job)
    if outcome.changes is DELETED:
        assert after is None
        return
    assert after is not None
    changed = {name: after[name] for name in after if after[name] != before[name]}
    expected = outcome.changes
    for name, value in expected.items():
        if isinstance(value, Matcher):
            assert value.matches(after[name], window), (name, after[name], value)
        else:
            assert after[name] == value, (name, after[name], value)
    unexpected = {name: value for name, value in changed.items() if name not in expected}
    assert unexpected == {}


def test_enqueue_creates_a_pending_job_of_the_type(acme, alice):
    job = services.job_enqueue(
        tenant=acme, type="demo.fail", payload={"a": 1}, created_by=alice, priority=5
    )
    row = _row(job)
    assert row["status"] == JobStatus.PENDING
    assert (row["tenant_id"], row["created_by_id"], row["type"]) == (acme.pk, alice.pk, "demo.fail")
    assert (row["payload"], row["priority"], row["attempts"]) == ({"a": 1}, 5, 0)
    assert row["max_attempts"] == 1  # demo.fail's, from the registry
    assert (row["started_at"], row["completed_at"], row["worker_id"]) == (None, None, "")
    assert row["run_at"] == row["created_at"]


def test_enqueue_once_with_the_key_for_another_request_changes_nothing(acme):
    job = JobFactory(
        tenant=acme,
        completed=True,
        idempotency_key="key-1",
        request_fingerprint=services.request_fingerprint(type="demo.echo", payload={}),
    )
    before = _row(job)
    with pytest.raises(services.IdempotencyConflict):
        services.job_enqueue_once(
            tenant=acme, idempotency_key="key-1", type="demo.echo", payload={"other": 1}
        )
    assert _row(job) == before
    assert Job.objects.count() == 1


# --- scopes: a Tenant or ALL_TENANTS, never None ----------------------------------------

SCOPED = {
    "job_get": lambda tenant: selectors.job_get(tenant=tenant, job_id=uuid.uuid4()),
    "job_list": lambda tenant: selectors.job_list(tenant=tenant),
    "job_poll_get": lambda tenant: selectors.job_poll_get(tenant=tenant, job_id=uuid.uuid4()),
    "jobs_for_staff": lambda tenant: selectors.jobs_for_staff(tenant=tenant),
    "job_search": lambda tenant: selectors.job_search(
        tenant=tenant, jobs=Job.objects.all(), text="alice"
    ),
    "queue_summary": lambda tenant: selectors.queue_summary(tenant=tenant),
    "stats_by_tenant": lambda tenant: stats_by_tenant(tenant=tenant, window=timedelta(hours=1)),
    "jobs_count_finished": lambda tenant: selectors.jobs_count_finished(
        tenant=tenant, statuses=list(FINAL_STATUSES), cutoff=selectors.cleanup_cutoff(timedelta(0))
    ),
    "job_enqueue": lambda tenant: services.job_enqueue(tenant=tenant, type="demo.echo", payload={}),
    "job_enqueue_once": lambda tenant: services.job_enqueue_once(
        tenant=tenant, idempotency_key="k", type="demo.echo", payload={}
    ),
    "job_cancel": lambda tenant: services.job_cancel(tenant=tenant, job_id=uuid.uuid4()),
    "job_retry": lambda tenant: services.job_retry(tenant=tenant, job_id=uuid.uuid4()),
    "job_run_now": lambda tenant: services.job_run_now(tenant=tenant, job_id=uuid.uuid4()),
    "job_delete_finished": lambda tenant: services.job_delete_finished(
        tenant=tenant, job_id=uuid.uuid4()
    ),
    "jobs_delete_finished": lambda tenant: services.jobs_delete_finished(
        tenant=tenant, statuses=list(FINAL_STATUSES), cutoff=selectors.cleanup_cutoff(timedelta(0))
    ),
}
# These serve one tenant's clients (the API, a task inside a tenant): never every tenant.
ONE_TENANT_ONLY = {"job_get", "job_list", "job_poll_get", "job_enqueue", "job_enqueue_once"}


@pytest.mark.parametrize("name", sorted(SCOPED))
@pytest.mark.parametrize("tenant", [None, "acme", 1], ids=["None", "a-name", "an-id"])
def test_a_scope_that_is_no_tenant_is_a_type_error(acme, name, tenant):
    JobFactory(tenant=acme, failed=True)
    before = list(Job.objects.values())
    with pytest.raises(TypeError, match="tenant must be a Tenant"):
        SCOPED[name](tenant)
    assert list(Job.objects.values()) == before


@pytest.mark.parametrize("name", sorted(ONE_TENANT_ONLY))
def test_reads_and_writes_for_a_tenants_clients_refuse_all_tenants(acme, name):
    with pytest.raises(TypeError, match="not ALL_TENANTS"):
        SCOPED[name](ALL_TENANTS)
    assert not Job.objects.exists()


@pytest.mark.parametrize("name", sorted(set(SCOPED) - ONE_TENANT_ONLY))
def test_staff_reads_and_writes_accept_all_tenants(acme, name):
    try:
        SCOPED[name](ALL_TENANTS)
    except JobNotFound:
        pass  # asked for a job that does not exist: the scope itself was accepted


# Staff operations on globex's job: with acme's scope nothing changes, with ALL_TENANTS the
# transition happens.
STAFF_OPERATIONS = {
    "cancel": ("pending", lambda tenant, job: services.job_cancel(tenant=tenant, job_id=job.id)),
    "retry": ("failed", lambda tenant, job: services.job_retry(tenant=tenant, job_id=job.id)),
    "run_now": (
        "scheduled",
        lambda tenant, job: services.job_run_now(tenant=tenant, job_id=job.id),
    ),
    "delete_finished": (
        "completed",
        lambda tenant, job: services.job_delete_finished(tenant=tenant, job_id=job.id),
    ),
    "delete_finished_batches": (
        "completed",
        lambda tenant, job: list(
            services.jobs_delete_finished(
                tenant=tenant,
                statuses=list(FINAL_STATUSES),
                cutoff=selectors.cleanup_cutoff(timedelta(0)),
            )
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(STAFF_OPERATIONS))
def test_staff_operations_reach_only_their_scope(acme, globex, name):
    state, operate = STAFF_OPERATIONS[name]
    job = JobFactory(tenant=globex, **{state: True})
    before = _row(job)
    try:
        answer = operate(acme, job)
    except JobNotFound:
        answer = None
    assert not answer  # not found, False or nothing deleted
    assert _row(job) == before
    operate(ALL_TENANTS, job)
    assert _row(job) != before


def test_staff_reads_of_a_tenant_leave_other_tenants_out(acme, globex):
    mine = JobFactory(tenant=acme, failed=True)
    JobFactory(tenant=globex, failed=True, created_by=UserFactory(username="bob", tenant=globex))
    cutoff = selectors.cleanup_cutoff(timedelta(0))
    assert list(selectors.jobs_for_staff(tenant=acme)) == [mine]
    assert selectors.jobs_for_staff(tenant=ALL_TENANTS).count() == 2
    assert selectors.queue_summary(tenant=acme).counts["failed"] == 1
    assert selectors.queue_summary(tenant=ALL_TENANTS).counts["failed"] == 2
    assert selectors.jobs_count_finished(tenant=acme, statuses=["failed"], cutoff=cutoff) == {
        "failed": 1
    }
    every_job = Job.objects.all()
    assert list(selectors.job_search(tenant=acme, jobs=every_job, text="bob")) == []
    assert selectors.job_search(tenant=ALL_TENANTS, jobs=every_job, text="bob").count() == 1
