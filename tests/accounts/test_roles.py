"""accounts.roles: platform staff are scoped to ``ALL_TENANTS``, an explicit sentinel that
is never None and has no truth value; tenant staff to their tenant."""

import copy
import pickle

import pytest

from accounts.roles import ALL_TENANTS, admin_tenant_is_active, is_tenant_staff, staff_tenant
from tests.factories import UserFactory


def test_all_tenants_is_one_named_object_without_a_truth_value():
    assert repr(ALL_TENANTS) == "ALL_TENANTS"
    assert ALL_TENANTS is not None
    assert copy.copy(ALL_TENANTS) is ALL_TENANTS
    assert copy.deepcopy({"tenant": ALL_TENANTS})["tenant"] is ALL_TENANTS
    assert pickle.loads(pickle.dumps(ALL_TENANTS)) is ALL_TENANTS  # noqa: S301 - our own bytes
    with pytest.raises(TypeError, match="no truth value"):
        bool(ALL_TENANTS)
    with pytest.raises(TypeError):
        ALL_TENANTS or "a fallback"  # noqa: B018 - the expression is the test


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("is_superuser", "in_acme", "confined"),
    [(True, False, False), (True, True, False), (False, False, False), (False, True, True)],
    ids=["superuser", "superuser-of-a-tenant", "platform-staff", "tenant-staff"],
)
def test_staff_tenant(acme, is_superuser, in_acme, confined):
    user = UserFactory(
        username="staff", is_staff=True, is_superuser=is_superuser, tenant=acme if in_acme else None
    )
    assert staff_tenant(user) == (acme if confined else ALL_TENANTS)
    assert (staff_tenant(user) is ALL_TENANTS) is not confined
    assert is_tenant_staff(user) is confined
    assert admin_tenant_is_active(user) is True


@pytest.mark.django_db
def test_staff_of_an_inactive_tenant_are_not_let_in(acme):
    carol = UserFactory(username="carol", tenant=acme, is_staff=True)
    acme.is_active = False
    assert admin_tenant_is_active(carol) is False


@pytest.mark.django_db
def test_read_only_admins_refuse_every_change_even_to_a_superuser(rf, acme):
    """``ReadOnlyAdminMixin``: the Workers page (platform staff) and StaffReadOnlyMixin's
    admins (the job log inline: tenant staff too) are viewed, never added to, changed or
    deleted through, whatever the user's permissions."""
    from django.contrib import admin

    from jobs.admin import JobLogInline
    from jobs.models import Job, WorkerProcess
    from jobs.workers_admin import WorkerProcessAdmin

    request = rf.get("/admin/")
    for user in (
        UserFactory(username="root", is_staff=True, is_superuser=True),
        UserFactory(username="carol", tenant=acme, is_staff=True),
    ):
        request.user = user
        platform = not is_tenant_staff(user)
        for model_admin in (
            WorkerProcessAdmin(WorkerProcess, admin.site),
            JobLogInline(Job, admin.site),
        ):
            viewer = platform or isinstance(model_admin, JobLogInline)
            assert model_admin.has_view_permission(request) is viewer
            assert model_admin.has_add_permission(request, None) is False
            assert model_admin.has_change_permission(request) is False
            assert model_admin.has_delete_permission(request) is False
