"""Row-level security, the second wall (tenants/row_security.py, jobs/migrations/0005): a
request on a tenant host sees and writes only its tenant's jobs and users, even through a query that
forgets the tenant filter.

The suite connects as a superuser, whom PostgreSQL exempts from RLS; these tests pass only
because requests switch to the unprivileged web role. This module doubles as the test
urlconf: ``urlpatterns`` below adds deliberately unfiltered views to the tenant URLs.
"""

import uuid

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.http import JsonResponse
from django.test import Client
from django.urls import path

from accounts.models import User
from config.urls import urlpatterns as tenant_urlpatterns
from jobs import selectors
from jobs.models import Job, JobStatus
from tenants import row_security as rls
from tests.conftest import TENANTS, client_for
from tests.factories import JobFactory, UserFactory

# --- test-only views: no tenant filter anywhere -----------------------------------------


def unfiltered_jobs(request):
    return JsonResponse(
        {
            "jobs": sorted(str(pk) for pk in Job.objects.all().values_list("pk", flat=True)),
            "users": sorted(User.objects.all().values_list("username", flat=True)),
            "role": _current_role(),
        }
    )


def unfiltered_writes(request):
    """Tries to change, delete and create rows of the job whose id is ``?job=``'s tenant."""
    target = Job.objects.filter(pk=request.GET["job"])
    updated = target.update(status=JobStatus.CANCELLED)
    return JsonResponse(
        {
            "updated": updated,
            "deleted": _succeeds(lambda: _delete_job(request.GET["job"])),
            "created": _succeeds(
                lambda: Job.objects.create(tenant_id=int(request.GET["tenant"]), type="demo.echo")
            ),
        }
    )


def _delete_job(job_id: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM job_queue WHERE id = %s", [job_id])


def _succeeds(write) -> bool:
    """Whether ``write()`` is allowed (in a savepoint, so a refusal spoils nothing)."""
    try:
        with transaction.atomic():
            write()
    except DatabaseError:
        return False
    return True


def create_then_fail(request):
    Job.objects.create(tenant=request.tenant, type="demo.echo", payload={"marker": "rollback"})
    raise RuntimeError("the view fails after writing")


def _current_role() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return cursor.fetchone()[0]


urlpatterns = [
    *tenant_urlpatterns,
    path("test/rls/read", unfiltered_jobs),
    path("test/rls/write", unfiltered_writes),
    path("test/rls/fail", create_then_fail),
]
handler500 = "core.errors.server_error_view"


@pytest.fixture
def unfiltered_urls(settings):
    settings.ROOT_URLCONF = __name__


def _as_web_role(tenant_id: str | None) -> tuple[int, list]:
    """Count and tenants of job_queue rows visible to the web role with ``app.tenant_id``
    set to ``tenant_id`` (or unset), in a savepoint that is rolled back afterwards."""

    class _Undo(Exception):
        pass

    seen = {}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('role', %s, true)", [rls.WEB_ROLE])
            if tenant_id is not None:
                cursor.execute("SELECT set_config(%s, %s, true)", [rls.TENANT_SETTING, tenant_id])
            cursor.execute("SELECT count(*), array_agg(DISTINCT tenant_id) FROM job_queue")
            seen["count"], seen["tenants"] = cursor.fetchone()
            raise _Undo
    except _Undo:
        pass
    return seen["count"], seen["tenants"] or []


# --- the wall ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_unfiltered_query_in_a_request_sees_only_the_hosts_tenant(
    unfiltered_urls, alice, bob, acme, globex
):
    acme_jobs = {str(JobFactory(tenant=acme).pk) for _ in range(2)}
    globex_jobs = {str(JobFactory(tenant=globex).pk) for _ in range(3)}
    UserFactory(username="staff", tenant=None, is_staff=True)
    assert Job.objects.count() == 5  # the test itself (the login role) sees everything

    on_acme = Client(HTTP_HOST=TENANTS["acme"]).get("/test/rls/read").json()
    on_globex = Client(HTTP_HOST=TENANTS["globex"]).get("/test/rls/read").json()

    assert on_acme["role"] == on_globex["role"] == rls.WEB_ROLE
    assert set(on_acme["jobs"]) == acme_jobs
    assert set(on_globex["jobs"]) == globex_jobs
    # Users too: the host's tenant's only; other tenants' and platform staff are invisible.
    assert "alice" in on_acme["users"]
    assert not {"bob", "staff"} & set(on_acme["users"])
    assert "bob" in on_globex["users"]
    assert not {"alice", "staff"} & set(on_globex["users"])


@pytest.mark.django_db
def test_the_real_api_with_its_tenant_filter_removed_still_lists_only_the_tenants_jobs(
    monkeypatch, alice_client, acme, globex
):
    mine = JobFactory(tenant=acme)
    JobFactory(tenant=globex)
    # A regression that drops the tenant's condition from the list selector (which keeps
    # the rest: its order and the columns it annotates).
    monkeypatch.setattr(selectors, "reachable_jobs", lambda scope: Q())

    response = alice_client.get("/api/jobs")

    assert response.status_code == 200
    assert [job["id"] for job in response.json()["results"]] == [str(mine.pk)]


@pytest.mark.django_db
def test_writes_to_another_tenants_rows_touch_nothing_and_inserts_are_refused(
    unfiltered_urls, acme, globex
):
    theirs = JobFactory(tenant=globex)

    answer = (
        Client(HTTP_HOST=TENANTS["acme"])
        .get("/test/rls/write", {"job": str(theirs.pk), "tenant": str(globex.pk)})
        .json()
    )

    # DELETE is refused outright: the web role holds no DELETE on job_queue (test_web_role.py).
    assert answer == {"updated": 0, "deleted": False, "created": False}
    theirs.refresh_from_db()
    assert theirs.status == JobStatus.PENDING
    assert not Job.objects.filter(tenant=globex).exclude(pk=theirs.pk).exists()


@pytest.mark.django_db
def test_the_same_statement_sees_own_rows_when_the_tenant_matches(unfiltered_urls, acme):
    mine = JobFactory(tenant=acme)
    answer = (
        Client(HTTP_HOST=TENANTS["acme"])
        .get("/test/rls/write", {"job": str(mine.pk), "tenant": str(acme.pk)})
        .json()
    )
    assert answer == {"updated": 1, "deleted": False, "created": True}


@pytest.mark.django_db
def test_without_a_tenant_setting_the_web_role_sees_no_rows(acme, globex):
    JobFactory(tenant=acme)
    JobFactory(tenant=globex)
    assert _as_web_role(None) == (0, [])
    assert _as_web_role("") == (0, [])
    assert _as_web_role(str(acme.pk)) == (1, [acme.pk])


@pytest.mark.django_db
def test_the_web_role_is_unprivileged_and_the_tables_force_rls():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolname, rolsuper, rolbypassrls, rolcanlogin FROM pg_roles"
            " WHERE rolname IN (%s, %s) ORDER BY rolname",
            [rls.SERVICE_ROLE, rls.WEB_ROLE],
        )
        roles = cursor.fetchall()
        cursor.execute(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            " pg_get_userbyid(c.relowner) <> %s"
            " FROM pg_class c WHERE c.oid IN ('public.job_queue'::regclass,"
            " 'public.accounts_user'::regclass) ORDER BY c.relname",
            [rls.WEB_ROLE],
        )
        tables = cursor.fetchall()
        cursor.execute(
            "SELECT tablename, policyname, roles::text[] FROM pg_policies"
            " WHERE schemaname = 'public' ORDER BY tablename, policyname"
        )
        policies = cursor.fetchall()
    assert roles == [
        (rls.SERVICE_ROLE, False, False, False),
        (rls.WEB_ROLE, False, False, False),
    ]
    assert tables == [("accounts_user", True, True, True), ("job_queue", True, True, True)]
    # Each protected table has exactly the pair of policies, one per role (the full list of
    # protected tables is derived from the models in tests/tenants/test_rls_tenant_tables.py).
    protected = sorted({table for table, _name, _roles in policies})
    assert {"accounts_user", "job_queue"} <= set(protected)
    assert policies == [
        row
        for table in protected
        for row in (
            (table, f"{table}_service", [rls.SERVICE_ROLE]),
            (table, f"{table}_tenant_isolation", [rls.WEB_ROLE]),
        )
    ]


@pytest.mark.django_db
def test_the_platform_host_keeps_the_login_role(unfiltered_urls, settings, public_tenant):
    # The public host routes to PUBLIC_SCHEMA_URLCONF; point it at the test views too.
    settings.PUBLIC_SCHEMA_URLCONF = __name__
    answer = Client(HTTP_HOST=settings.PUBLIC_HOST).get("/test/rls/read").json()
    assert answer["role"] != rls.WEB_ROLE


# --- nothing outlives the request's transaction -------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_role_and_tenant_do_not_outlive_the_request(alice, acme):
    job = JobFactory(tenant=acme)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (login_role,) = cursor.fetchone()

    assert client_for(alice, host=TENANTS["acme"]).get(f"/api/jobs/{job.id}").status_code == 200

    # Same thread, same (persistent) connection as the request used.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, current_setting('role'), current_setting(%s, true)",
            [rls.TENANT_SETTING],
        )
        role, role_setting, tenant_setting = cursor.fetchone()
    assert (role, role_setting) == (login_role, "none")
    assert tenant_setting in (None, "")


@pytest.mark.django_db(transaction=True)
def test_a_request_that_fails_after_writing_leaves_nothing_behind(unfiltered_urls, acme):
    response = Client(HTTP_HOST=TENANTS["acme"], raise_request_exception=False).get(
        "/test/rls/fail"
    )
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    assert not Job.objects.filter(payload__marker="rollback").exists()


@pytest.mark.django_db(transaction=True)
def test_a_request_that_succeeds_commits_its_writes(alice, acme):
    response = client_for(alice, host=TENANTS["acme"]).post(
        "/api/jobs", {"type": "demo.echo", "payload": {"n": 1}}, format="json"
    )
    assert response.status_code == 202
    assert Job.objects.filter(pk=uuid.UUID(response.json()["id"]), tenant=acme).exists()
