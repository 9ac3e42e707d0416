"""Row-level security on every tenant-keyed table of the public schema (jobs/migrations/0005
and 0015, tenants/row_security.py), not only on the ones someone remembered.

The tables are derived from the models: every model with a foreign key to the tenant
model must live in the public schema, have RLS enabled and FORCEd, and carry 0005's two
policies, so a table added later without them fails here until it gets them (or a reason
in ``NOT_UNDER_RLS``). The suite connects as a superuser, whom PostgreSQL exempts from
RLS: the checks below run as the web role (through ``tenant_row_security``, as a request
does), as the service role, and as an unprivileged member of the service role standing in
for the production login role.
"""

import re
import uuid
from contextlib import contextmanager

import pytest
from django.apps import apps
from django.conf import settings
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone

from accounts.models import User
from insights.models import JobRollup
from jobs.flow.models import LimitOverride
from jobs.models import Job, JobLogLine
from schedules.models import Schedule
from tenants import row_security as rls
from tests.helpers import admin_client_for
from webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

# Tenant-keyed public tables deliberately left without RLS, and why.
NOT_UNDER_RLS = {
    "tenants_domain": "routing: hostnames are public (docs/security.md)",
}


def _tenant_keyed_tables() -> list[str]:
    """The table of every concrete model with a foreign key to the tenant model."""
    tenant_model = apps.get_model(settings.TENANT_MODEL)
    return sorted(
        model._meta.db_table
        for model in apps.get_models()
        if model._meta.managed
        and not model._meta.proxy
        and any(
            isinstance(field, models.ForeignKey) and field.related_model is tenant_model
            for field in model._meta.concrete_fields
        )
    )


RLS_TABLES = [table for table in _tenant_keyed_tables() if table not in NOT_UNDER_RLS]


# One unsaved row of ``tenant`` per table (its own foreign rows saved as the caller's role).
def _endpoint(tenant) -> WebhookEndpoint:
    return WebhookEndpoint(tenant=tenant, url="https://example.com/hook", secret="whsec_x")


ROWS = {
    "accounts_user": lambda tenant: User(username=f"rls-{uuid.uuid4().hex}", tenant=tenant),
    "job_queue": lambda tenant: Job(tenant=tenant, type="demo.echo"),
    "job_log": lambda tenant: JobLogLine(
        job=Job.objects.create(tenant=tenant, type="demo.echo"),  # deleted with its job
        tenant=tenant,
        attempt=1,
        logged_at=timezone.now(),
        level="INFO",
        logger="rls",
        message="a line",
    ),
    "job_rollup": lambda tenant: JobRollup(
        tenant=tenant,
        minute=timezone.now().replace(second=0, microsecond=0),
        queue="default",
        type=f"rls-{uuid.uuid4().hex}",
        wait_buckets={},
        run_buckets={},
    ),
    "job_schedule": lambda tenant: Schedule(
        tenant=tenant, name=f"rls-{uuid.uuid4().hex}", type="demo.echo", cron="* * * * *"
    ),
    "job_webhook_delivery": lambda tenant: WebhookDelivery(
        tenant=tenant,
        endpoint=WebhookEndpoint.objects.create(tenant=tenant, url="https://example.com/d"),
        job=Job.objects.create(tenant=tenant, type="demo.echo"),  # deleted with its job
        job_status="completed",
    ),
    "job_webhook_endpoint": _endpoint,
    "flow_limit_override": lambda tenant: LimitOverride(
        tenant=tenant, limit=f"rls-{uuid.uuid4().hex}", figures={}, changed_by="staff"
    ),
}


def _row(table: str, tenant):
    assert table in ROWS, f"{table} is tenant-keyed: add a row for it to ROWS"
    return ROWS[table](tenant)


def _rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _visible_tenants(table: str) -> set[int]:
    rows = _rows(f"SELECT DISTINCT tenant_id FROM public.{table}")  # noqa: S608 (a model's table)
    return {tenant_id for (tenant_id,) in rows}


def _count(table: str, statement: str, tenant) -> int:
    """The rows ``statement`` (``{}``: the table) changes, with ``%s`` the tenant's id."""
    with connection.cursor() as cursor:
        cursor.execute(statement.format(f"public.{table}"), [tenant.pk])
        return cursor.rowcount


def _refusal(write) -> str:
    """The database's message refusing ``write()`` (in a savepoint), or '' if it succeeds."""
    try:
        with transaction.atomic():
            write()
    except DatabaseError as error:
        return str(error)
    return ""


@contextmanager
def _as_role(role: str):
    """The block's statements as ``role``, in the test's transaction; the role is put back."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('role', %s, true)", [role])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('role', 'none', true)")


def _grant(privileges: str, table: str, role: str) -> None:
    """Privileges for this test only (rolled back with its transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT {privileges} ON public.{table} TO {role}")


# --- the catalog -----------------------------------------------------------------------------


def test_the_derived_list_holds_the_tenant_tables():
    # Not vacuous: the derivation finds the tables known to be tenant-keyed.
    assert {
        "accounts_user",
        "job_queue",
        "job_schedule",
        "job_webhook_endpoint",
        "job_webhook_delivery",
        "job_rollup",
    } <= set(RLS_TABLES)
    assert set(NOT_UNDER_RLS) <= set(_tenant_keyed_tables())


@pytest.mark.parametrize("table", RLS_TABLES)
def test_every_tenant_keyed_table_is_public_forces_rls_and_has_both_policies(table):
    assert _rows(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
        " WHERE oid = to_regclass(%s) AND relnamespace = 'public'::regnamespace",
        [f"public.{table}"],
    ) == [(True, True)], f"{table}: not a public table under forced RLS"
    policies = _rows(
        "SELECT policyname, cmd, roles::text[], qual, with_check FROM pg_policies"
        " WHERE schemaname = 'public' AND tablename = %s ORDER BY policyname",
        [table],
    )
    isolation = (
        "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::bigint)"
    )
    assert policies == [
        (f"{table}_service", "ALL", [rls.SERVICE_ROLE], "true", "true"),
        (f"{table}_tenant_isolation", "ALL", [rls.WEB_ROLE], isolation, isolation),
    ]


# --- the web role: one tenant's rows ----------------------------------------------------------


@pytest.mark.parametrize("table", RLS_TABLES)
def test_the_web_role_sees_only_its_tenants_rows_and_cannot_write_another_tenants(
    table, acme, globex
):
    _row(table, acme).save()
    _row(table, globex).save()
    theirs, mine = _row(table, globex), _row(table, acme)
    # Whatever the web role holds on the table (often nothing: tests/security/
    # test_web_role.py), the policy alone must confine it once it is granted.
    _grant("SELECT, INSERT, UPDATE, DELETE", table, rls.WEB_ROLE)

    with rls.tenant_row_security(acme):
        assert _visible_tenants(table) == {acme.pk}
        assert "row-level security policy" in _refusal(lambda: theirs.save(force_insert=True))
        assert _refusal(lambda: mine.save(force_insert=True)) == ""
        unchanged = "UPDATE {} SET tenant_id = tenant_id WHERE tenant_id = %s"
        assert _count(table, unchanged, globex) == 0
        assert _count(table, "DELETE FROM {} WHERE tenant_id = %s", globex) == 0
        moved = _refusal(lambda: _count(table, "UPDATE {} SET tenant_id = %s", globex))
        assert "row-level security policy" in moved

    assert _visible_tenants(table) == {acme.pk, globex.pk}  # globex's row untouched


def test_without_the_grant_the_web_role_cannot_read_the_tables_requests_do_not_use(acme):
    """0015 grants nothing: no tenant-host request reads schedules, webhooks or the rollup."""
    for table in ("job_schedule", "job_webhook_endpoint", "job_webhook_delivery", "job_rollup"):
        with rls.tenant_row_security(acme):
            assert "permission denied" in _refusal(lambda table=table: _visible_tenants(table))


# --- the service role and the login role: every tenant's rows --------------------------------


@pytest.mark.parametrize("table", RLS_TABLES)
def test_the_service_role_sees_every_tenants_rows(table, acme, globex):
    _row(table, acme).save()
    _row(table, globex).save()
    _grant("SELECT", table, rls.SERVICE_ROLE)
    with _as_role(rls.SERVICE_ROLE):
        assert {acme.pk, globex.pk} <= _visible_tenants(table)


def _words(page: str) -> set[str]:
    return set(re.findall(r"[\w-]+", page))


@pytest.fixture
def login_role():
    """An unprivileged role (no superuser, no BYPASSRLS, owns nothing) that, like the
    production login role, is a member of the service role and may use every public table;
    created in the test's transaction, so it vanishes with it."""
    name = f"rls_login_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name} NOLOGIN INHERIT NOSUPERUSER NOBYPASSRLS")
        cursor.execute(f"GRANT {rls.SERVICE_ROLE} TO {name}")
        cursor.execute(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {name}")
        cursor.execute(f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {name}")
    return name


def test_the_platform_admin_still_shows_every_tenants_schedules_and_webhooks(
    login_role, public_tenant, acme, globex
):
    for tenant in (acme, globex):
        Schedule.objects.create(
            tenant=tenant, name=f"{tenant.schema_name}-nightly", type="demo.echo", cron="0 0 * * *"
        )
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant, url=f"https://example.com/{tenant.schema_name}", secret="whsec_x"
        )
        WebhookDelivery.objects.create(
            tenant=tenant,
            endpoint=endpoint,
            job=Job.objects.create(tenant=tenant, type="demo.echo"),
            job_status="completed",
        )
        _row("job_rollup", tenant).save()
    superuser = admin_client_for(
        User.objects.create(username="rls-admin", is_staff=True, is_superuser=True)
    )
    carol = admin_client_for(User.objects.create(username="rls-carol", tenant=acme, is_staff=True))

    with _as_role(login_role):
        assert _rows("SELECT current_user") == [(login_role,)]
        for model in (Schedule, WebhookEndpoint, WebhookDelivery, JobRollup):
            assert set(model.objects.values_list("tenant_id", flat=True)) == {acme.pk, globex.pk}
        platform = superuser.get("/admin/schedules/schedule/").content.decode()
        tenant_staff = carol.get("/admin/schedules/schedule/").content.decode()
        endpoints = superuser.get("/admin/webhooks/webhookendpoint/").content.decode()
        own_endpoints = carol.get("/admin/webhooks/webhookendpoint/").content.decode()
        deliveries = superuser.get("/admin/webhooks/webhookdelivery/")
        own_deliveries = carol.get("/admin/webhooks/webhookdelivery/")

    assert {"acme-nightly", "globex-nightly"} <= _words(platform)
    assert "acme-nightly" in _words(tenant_staff)
    assert "globex-nightly" not in _words(tenant_staff)
    assert "example.com/acme" in endpoints
    assert "example.com/globex" in endpoints
    assert "example.com/acme" in own_endpoints
    assert "example.com/globex" not in own_endpoints
    assert deliveries.status_code == own_deliveries.status_code == 200
    assert deliveries.context["cl"].result_count == 2
    assert own_deliveries.context["cl"].result_count == 1
