"""Flow control's staff side (jobs.flow.services, jobs.flow.selectors): pause and resume,
overrides, each validated, written with its audit entry, and read back per scope."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.roles import ALL_TENANTS
from jobs import services as engine
from jobs.flow import selectors, services
from jobs.flow.limits import limits
from jobs.flow.models import FlowAuditEntry, LimitBudget, LimitOverride, Pause
from jobs.models import Job, JobStatus
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db


def audit() -> list[tuple[str, str, str]]:
    return list(FlowAuditEntry.objects.order_by("id").values_list("actor", "action", "target"))


def budget_jobs(tenant, key: str, *, count: int, **traits) -> list[Job]:
    """``count`` jobs of ``tenant`` that take one unit of budget ``key``."""
    return JobFactory.create_batch(
        count, tenant=tenant, created_by=None, limit_keys=[key], limit_units=[1], **traits
    )


# --- pause and resume ------------------------------------------------------------------


def test_pausing_writes_the_pause_and_its_audit_entry_once(acme):
    pause, created = services.pause(scope="queue", target="reports", actor="ann", reason="db")
    assert created
    assert (pause.scope, pause.target, pause.reason, pause.paused_by) == (
        "queue",
        "reports",
        "db",
        "ann",
    )
    again, created = services.pause(scope="queue", target="reports", actor="bob", reason="x")
    assert not created
    assert (again.pk, again.paused_by, again.reason) == (pause.pk, "ann", "db")
    assert audit() == [("ann", "pause", "queue:reports")]
    assert FlowAuditEntry.objects.get().detail == {"reason": "db"}


def test_a_tenant_is_paused_by_its_id_and_logged_by_its_schema(acme):
    pause, _ = services.pause(scope="tenant", target="acme", actor="ann")
    assert pause.target == str(acme.pk)
    assert services.pause(scope="tenant", target=acme, actor="ann")[1] is False
    assert audit() == [("ann", "pause", "tenant:acme")]


@pytest.mark.parametrize(
    ("scope", "target", "message"),
    [
        ("type", "no.such.type", "no job type 'no.such.type' is registered"),
        ("tenant", "nobody", "no customer tenant 'nobody'"),
        ("tenant", "public", "no customer tenant 'public'"),
        ("queue", "", "a queue name of 1-100 characters"),
        ("queue", "q" * 101, "a queue name of 1-100 characters"),
        ("worker", "w1", "scope must be one of queue, type, tenant"),
    ],
)
def test_a_bad_pause_is_refused_and_nothing_is_written(acme, public_tenant, scope, target, message):
    with pytest.raises(ValidationError) as refused:
        services.pause(scope=scope, target=target, actor="ann")
    assert refused.value.messages == [message]
    assert not Pause.objects.exists()
    assert audit() == []


def test_any_queue_name_and_internal_types_may_be_paused(acme):
    assert services.pause(scope="queue", target="not-yet-used", actor="ann")[1]
    assert services.pause(scope="type", target="webhooks.deliver", actor="ann")[1]


def test_resume_lifts_the_pause_logs_it_and_wakes_every_worker_in_its_transaction(acme):
    services.pause(scope="type", target="demo.sleep", actor="ann")
    with CaptureQueriesContext(connection) as queries:
        assert services.resume(scope="type", target="demo.sleep", actor="bob")
    sent = [q["sql"] for q in queries]
    notify = next(i for i, q in enumerate(sent) if "pg_notify('job_queue', '*')" in q)
    assert sent[0].startswith("SAVEPOINT")
    assert sent[-1].startswith("RELEASE SAVEPOINT")
    assert 0 < notify < len(sent) - 1  # inside the transaction of the delete and the log
    assert not Pause.objects.exists()
    assert audit() == [("ann", "pause", "type:demo.sleep"), ("bob", "resume", "type:demo.sleep")]
    assert FlowAuditEntry.objects.order_by("id").last().detail["paused_by"] == "ann"


def test_resuming_what_is_not_paused_writes_nothing(acme):
    assert services.resume(scope="queue", target="reports", actor="bob") is False
    assert services.resume(scope="tenant", target=acme, actor="bob") is False
    assert audit() == []
    with pytest.raises(ValidationError):
        services.resume(scope="tenant", target="nobody", actor="bob")


def test_a_paused_type_is_not_claimed_until_it_is_resumed(acme):
    jobs = JobFactory.create_batch(
        3, tenant=acme, created_by=None, type="test.record", pending=True
    )
    services.pause(scope="type", target="test.record", actor="ann")
    assert list(engine.job_claim(worker_id="w", queues=["default"], limit=5)) == []
    assert set(Job.objects.values_list("status", flat=True)) == {JobStatus.PENDING}

    services.resume(scope="type", target="test.record", actor="ann")
    claimed = engine.job_claim(worker_id="w", queues=["default"], limit=5)
    assert sorted(job.id for job in claimed) == sorted(job.id for job in jobs)


# --- overrides -------------------------------------------------------------------------


def test_an_override_is_logged_and_drops_the_tenants_budget_row(acme, globex):
    mine = LimitBudget.objects.create(key=f"generations:{acme.pk}", concurrency=1)
    theirs = LimitBudget.objects.create(key=f"generations:{globex.pk}", concurrency=1)
    services.override_set(
        tenant=acme, limit="generations", figures={"concurrency": 3}, actor="ann", reason="deal"
    )
    services.override_set(
        tenant=acme, limit="generations", figures={"rate": "5/s", "burst": 5}, actor="bob"
    )
    override = LimitOverride.objects.get()
    assert (override.figures, override.changed_by) == ({"rate": "5/s", "burst": 5}, "bob")
    assert not LimitBudget.objects.filter(pk=mine.pk).exists()
    assert LimitBudget.objects.filter(pk=theirs.pk).exists()
    assert audit() == [
        ("ann", "override_set", "generations:acme"),
        ("bob", "override_set", "generations:acme"),
    ]
    first, second = FlowAuditEntry.objects.order_by("id")
    assert first.detail == {"figures": {"concurrency": 3}, "previous": None, "reason": "deal"}
    assert second.detail["previous"] == {"concurrency": 3}


def test_an_override_applies_at_the_next_claim(acme):
    key = f"generations:{acme.pk}"  # the free plan: one generation at a time
    budget_jobs(acme, key, count=1, processing=True)
    waiting = budget_jobs(acme, key, count=2, pending=True)
    assert list(engine.job_claim(worker_id="w", queues=["default"], limit=5)) == []

    services.override_set(tenant=acme, limit="generations", figures={"concurrency": 3}, actor="a")
    claimed = engine.job_claim(worker_id="w", queues=["default"], limit=5)
    assert sorted(job.id for job in claimed) == sorted(job.id for job in waiting)


@pytest.mark.parametrize(
    ("limit", "figures", "message"),
    [
        ("llm_requests", {"concurrency": 2}, "'llm_requests' is not a tenant or plan limit"),
        ("nope", {"concurrency": 2}, "'nope' is not a tenant or plan limit"),
        ("generations", {"concurrency": 0}, "concurrency must be a positive integer"),
        ("generations", {"rate": "fast"}, "rate must look like '10/s', '600/m', '5/h'"),
        ("generations", {"burst": 3}, "burst needs a rate"),
        ("generations", {}, "give a concurrency, a rate or both"),
        ("generations", {"scope": "global", "concurrency": 1}, "figures like"),
        ("generations", {"colour": "red"}, "unknown keys ['colour']"),
    ],
)
def test_a_bad_override_is_refused_and_nothing_is_written(acme, limit, figures, message):
    LimitBudget.objects.create(key=f"generations:{acme.pk}", concurrency=1)
    with pytest.raises(ValidationError) as refused:
        services.override_set(tenant=acme, limit=limit, figures=figures, actor="ann")
    assert message in refused.value.messages[0]
    assert not LimitOverride.objects.exists()
    assert LimitBudget.objects.exists()
    assert audit() == []


def test_clearing_an_override_is_logged_and_drops_the_budget_row(acme):
    services.override_set(tenant=acme, limit="llm_per_tenant", figures={"rate": "1/s"}, actor="a")
    LimitBudget.objects.create(key=f"llm_per_tenant:{acme.pk}", rate=1, burst=1)
    assert services.override_clear(tenant=acme, limit="llm_per_tenant", actor="bob")
    assert not LimitOverride.objects.exists()
    assert not LimitBudget.objects.exists()
    assert audit()[-1] == ("bob", "override_clear", "llm_per_tenant:acme")
    assert FlowAuditEntry.objects.order_by("id").last().detail == {
        "previous": {"rate": "1/s"},
        "reason": "",
    }

    assert services.override_clear(tenant=acme, limit="llm_per_tenant", actor="bob") is False
    assert len(audit()) == 2
    with pytest.raises(ValidationError):
        services.override_clear(tenant=acme, limit="llm_requests", actor="bob")


# --- reads -----------------------------------------------------------------------------


def test_limit_usage_counts_running_units_waiting_jobs_and_tokens(acme, globex):
    acme_key, globex_key = f"generations:{acme.pk}", f"generations:{globex.pk}"
    LimitBudget.objects.create(key=acme_key, concurrency=1, throttled=True)
    LimitBudget.objects.create(key=globex_key, concurrency=1)
    LimitBudget.objects.create(key="llm_requests", rate=10, burst=10, tokens=-5)
    JobFactory(
        tenant=acme,
        created_by=None,
        processing=True,
        limit_keys=[acme_key, "llm_requests"],
        limit_units=[1, 1],
    )
    budget_jobs(acme, acme_key, count=2, pending=True)
    budget_jobs(acme, acme_key, count=1, scheduled=True)  # not due: not waiting
    budget_jobs(globex, globex_key, count=1, pending=True)

    uses = {use.key: use for use in selectors.limit_usage(tenant=ALL_TENANTS)}
    global_keys = {name for name, limit in limits().items() if limit.scope == "global"}
    assert set(uses) == {*global_keys, acme_key, globex_key}
    mine = uses[acme_key]
    assert (mine.limit, mine.scope, mine.tenant, mine.running) == ("generations", "plan", acme, 1)
    assert (mine.figures.concurrency, mine.tokens, mine.waiting, mine.throttled_jobs) == (
        1,
        None,
        2,
        2,
    )
    assert (uses[globex_key].waiting, uses[globex_key].throttled_jobs) == (1, 0)
    requests = uses["llm_requests"]
    assert (requests.tenant, requests.running, requests.figures.rate) == (None, 1, 10)
    assert -5 < requests.tokens < 10  # refilled since the row was written, at most the burst
    assert uses["llm_tokens"].tokens == 20000  # no claim yet: full

    assert {use.key for use in selectors.limit_usage(tenant=acme)} == {*global_keys, acme_key}


def test_an_overridden_budget_is_listed_before_any_claim_with_its_new_figures(acme):
    services.override_set(tenant=acme, limit="generations", figures={"concurrency": 7}, actor="a")
    use = next(u for u in selectors.limit_usage(tenant=acme) if u.tenant == acme)
    assert (use.key, use.figures.concurrency, use.running) == (f"generations:{acme.pk}", 7, 0)


def test_pauses_in_a_tenants_view_leave_out_other_tenants(acme, globex):
    services.pause(scope="tenant", target=globex, actor="ann")
    services.pause(scope="tenant", target=acme, actor="ann")
    services.pause(scope="queue", target="reports", actor="ann")
    everything = [(p.scope, p.label) for p in selectors.pauses(tenant=ALL_TENANTS)]
    assert everything == [("tenant", "globex"), ("tenant", "acme"), ("queue", "reports")]
    assert [(p.scope, p.label) for p in selectors.pauses(tenant=acme)] == [
        ("tenant", "acme"),
        ("queue", "reports"),
    ]
