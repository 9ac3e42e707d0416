"""Flow control in the admin: the Limits page per scope, pauses and overrides added, changed
and removed through the services (audit-logged), the audit log read-only, everything but
the Limits page closed to staff of a tenant (carol, staff of acme), and the tenant's plan."""

import pytest

from jobs.flow import services
from jobs.flow.models import FlowAuditEntry, LimitBudget, LimitOverride, Pause
from tenants.admin import TenantChangeForm
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

LIMITS = "/admin/jobs/limitbudget/"
PAUSES = "/admin/jobs/pause/"
OVERRIDES = "/admin/jobs/limitoverride/"
AUDIT = "/admin/jobs/flowauditentry/"


def audit() -> list[tuple[str, str, str]]:
    return list(FlowAuditEntry.objects.order_by("id").values_list("actor", "action", "target"))


@pytest.fixture
def budgets(acme, globex):
    """A budget of each tenant's plan limit, acme's with a job running and two throttled."""
    mine, theirs = f"generations:{acme.pk}", f"generations:{globex.pk}"
    LimitBudget.objects.create(key=mine, concurrency=1, throttled=True)
    LimitBudget.objects.create(key=theirs, concurrency=1)
    keys = {"limit_keys": [mine], "limit_units": [1], "created_by": None}
    JobFactory(tenant=acme, processing=True, **keys)
    JobFactory.create_batch(2, tenant=acme, pending=True, **keys)
    return mine, theirs


def limits_page(client, query: str = "") -> dict[str, str]:
    response = client.get(LIMITS + query)
    assert response.status_code == 200, response
    return {use.key: use for use in response.context["uses"]}


# --- the Limits page -------------------------------------------------------------------


def test_platform_staff_see_every_budget_with_its_use(superuser_client, budgets):
    mine, theirs = budgets
    uses = limits_page(superuser_client)
    assert {mine, theirs, "llm_requests"} <= set(uses)
    body = superuser_client.get(LIMITS).content.decode()
    assert f'<tr data-key="{mine}">' in body
    assert (uses[mine].running, uses[mine].waiting, uses[mine].throttled_jobs) == (1, 2, 2)
    assert '<td class="num">1 / 1</td>' in body  # running / concurrency
    assert '<td class="num flow-throttled">2</td>' in body
    assert "Limits" in body
    assert 'href="/admin/jobs/pause/add/"' in body

    globex_only = limits_page(superuser_client, f"?tenant={theirs.split(':')[1]}")
    assert theirs in globex_only
    assert mine not in globex_only


def test_the_limits_page_is_listed_in_the_jobs_admin(superuser_client, carol_client):
    for client in (superuser_client, carol_client):
        assert LIMITS in client.get("/admin/jobs/").content.decode()


def test_tenant_staff_see_their_budgets_and_the_global_ones_only(carol_client, budgets, globex):
    mine, theirs = budgets
    uses = limits_page(carol_client)
    assert mine in uses
    assert "llm_requests" in uses
    assert theirs not in uses
    body = carol_client.get(LIMITS).content.decode()
    assert "globex" not in body
    assert 'href="/admin/jobs/pause/' not in body  # no links to pages closed to them
    assert carol_client.get(f"{LIMITS}?tenant={globex.pk}").status_code == 404
    assert carol_client.get(f"{LIMITS}?tenant=abc").status_code == 404
    assert limits_page(carol_client, f"?tenant={mine.split(':')[1]}").keys() == uses.keys()


def test_tenant_staff_see_pauses_of_queues_types_and_their_own_tenant(carol_client, acme, globex):
    services.pause(scope="tenant", target=globex, actor="ann", reason="noisy")
    services.pause(scope="type", target="demo.sleep", actor="ann")
    pauses = carol_client.get(LIMITS).context["pauses"]
    assert [(p.scope, p.label) for p in pauses] == [("type", "demo.sleep")]


def test_tenant_staff_may_not_pause_override_or_read_the_audit_log(carol_client, acme):
    services.pause(scope="queue", target="reports", actor="ann")
    pause = Pause.objects.get()
    for url in (PAUSES, f"{PAUSES}add/", OVERRIDES, f"{OVERRIDES}add/", AUDIT):
        assert carol_client.get(url).status_code == 403, url
    refused = carol_client.post(f"{PAUSES}add/", {"scope": "tenant", "target": "acme"})
    assert refused.status_code == 403
    assert carol_client.post(f"{PAUSES}{pause.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Pause.objects.count() == 1
    assert audit() == [("ann", "pause", "queue:reports")]


# --- pauses ----------------------------------------------------------------------------


def test_adding_a_pause_pauses_through_the_service(superuser_client, acme):
    response = superuser_client.post(
        f"{PAUSES}add/", {"scope": "tenant", "target": "acme", "reason": "noisy"}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    pause = Pause.objects.get()
    assert (pause.scope, pause.target, pause.paused_by) == ("tenant", str(acme.pk), "admin")
    assert audit() == [("admin", "pause", "tenant:acme")]
    body = superuser_client.get(PAUSES).content.decode()
    assert '<td class="field-target_label">acme</td>' in body


@pytest.mark.parametrize(
    ("scope", "target", "error"),
    [
        ("type", "no.such", "no job type &#x27;no.such&#x27; is registered"),
        ("tenant", "nobody", "no customer tenant &#x27;nobody&#x27;"),
    ],
)
def test_a_bad_pause_is_a_form_error(superuser_client, acme, scope, target, error):
    response = superuser_client.post(f"{PAUSES}add/", {"scope": scope, "target": target})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Pause.objects.exists()
    assert audit() == []


def test_pausing_what_is_paused_is_a_form_error_and_writes_nothing(superuser_client, acme):
    services.pause(scope="tenant", target=acme, actor="ann")
    response = superuser_client.post(f"{PAUSES}add/", {"scope": "tenant", "target": "acme"})
    assert response.status_code == 200
    assert "tenant acme is paused already." in response.content.decode()
    assert len(audit()) == 1


def test_deleting_a_pause_resumes_through_the_service(superuser_client, acme):
    pause, _ = services.pause(scope="queue", target="reports", actor="ann")
    response = superuser_client.post(f"{PAUSES}{pause.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Pause.objects.exists()
    assert audit()[-1] == ("admin", "resume", "queue:reports")


def test_resume_selected(superuser_client, acme):
    first, _ = services.pause(scope="queue", target="reports", actor="ann")
    second, _ = services.pause(scope="tenant", target=acme, actor="ann")
    actions = superuser_client.get(PAUSES).context["action_form"].fields["action"].choices
    assert [name for name, _ in actions] == ["", "resume_pauses"]
    response = superuser_client.post(
        PAUSES, {"action": "resume_pauses", "_selected_action": [first.pk, second.pk]}
    )
    assert response.status_code == 302
    assert not Pause.objects.exists()
    assert sorted(audit()[2:]) == [
        ("admin", "resume", "queue:reports"),
        ("admin", "resume", "tenant:acme"),
    ]


# --- overrides -------------------------------------------------------------------------


def test_overrides_are_added_changed_and_removed_through_the_service(superuser_client, acme):
    LimitBudget.objects.create(key=f"generations:{acme.pk}", concurrency=1)
    response = superuser_client.post(
        f"{OVERRIDES}add/",
        {"tenant": acme.pk, "limit": "generations", "concurrency": "3", "reason": "deal"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    override = LimitOverride.objects.get()
    assert (override.figures, override.changed_by, override.reason) == (
        {"concurrency": 3},
        "admin",
        "deal",
    )
    assert not LimitBudget.objects.exists()

    page = superuser_client.get(f"{OVERRIDES}{override.pk}/change/")
    assert page.context["adminform"].form.initial["concurrency"] == 3
    response = superuser_client.post(
        f"{OVERRIDES}{override.pk}/change/", {"rate": "5/s", "burst": "5", "reason": "deal"}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    override.refresh_from_db()
    assert override.figures == {"rate": "5/s", "burst": 5}

    response = superuser_client.post(f"{OVERRIDES}{override.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not LimitOverride.objects.exists()
    assert audit() == [
        ("admin", "override_set", "generations:acme"),
        ("admin", "override_set", "generations:acme"),
        ("admin", "override_clear", "generations:acme"),
    ]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"limit": "llm_requests", "concurrency": "2"}, "Select a valid choice"),
        ({"limit": "generations", "rate": "fast"}, "rate must look like"),
        ({"limit": "generations", "burst": "2"}, "burst needs a rate"),
        ({"limit": "generations"}, "give a concurrency, a rate or both"),
    ],
)
def test_a_bad_override_is_a_form_error(superuser_client, acme, data, error):
    response = superuser_client.post(f"{OVERRIDES}add/", {"tenant": acme.pk, **data})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not LimitOverride.objects.exists()
    assert audit() == []


def test_a_second_override_of_one_limit_is_a_form_error(superuser_client, acme):
    services.override_set(tenant=acme, limit="generations", figures={"concurrency": 2}, actor="a")
    response = superuser_client.post(
        f"{OVERRIDES}add/", {"tenant": acme.pk, "limit": "generations", "concurrency": "3"}
    )
    assert response.status_code == 200
    assert "acme has an override of generations: change it." in response.content.decode()
    assert LimitOverride.objects.get().figures == {"concurrency": 2}


# --- the audit log ---------------------------------------------------------------------


def test_the_audit_log_is_read_only(superuser_client, acme):
    services.pause(scope="queue", target="reports", actor="ann")
    entry = FlowAuditEntry.objects.get()
    body = superuser_client.get(AUDIT).content.decode()
    assert "queue:reports" in body
    assert superuser_client.get(f"{AUDIT}add/").status_code == 403
    page = superuser_client.get(f"{AUDIT}{entry.pk}/change/")
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert superuser_client.post(f"{AUDIT}{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert FlowAuditEntry.objects.count() == 1


# --- the tenant's plan -----------------------------------------------------------------


def test_a_tenants_plan_is_one_of_the_configured_plans(acme, settings):
    def form(plan):
        data = {"name": "Acme", "plan": plan, "is_active": True, "allowed_origins": ""}
        return TenantChangeForm(data=data, instance=acme)

    choices = [value for value, _ in form("").fields["plan"].choices]
    assert choices == ["", *settings.JOBS_PLANS]
    assert not form("gold").is_valid()
    chosen = form("pro")
    assert chosen.is_valid(), chosen.errors
    chosen.save()
    acme.refresh_from_db()
    assert acme.plan == "pro"
