"""Tenants, domains and users in the admin: create a tenant with its schema and primary
domain, deactivate and reactivate it (its hosts follow at once), manage users' tenant."""

import pytest
from django.test import Client
from django_tenants.utils import schema_exists

from accounts.models import User
from tenants.models import Domain, Tenant

pytestmark = pytest.mark.django_db

TENANTS = "/admin/tenants/tenant/"


def test_create_tenant_with_schema_and_primary_domain(superuser_client):
    response = superuser_client.post(
        f"{TENANTS}add/",
        {
            "schema_name": "initech",
            "name": "Initech",
            "primary_domain": "Initech.localhost",
            "is_active": "on",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    tenant = Tenant.objects.get(schema_name="initech")
    assert schema_exists("initech")
    domain = Domain.objects.get(tenant=tenant)
    assert (domain.domain, domain.is_primary) == ("initech.localhost", True)
    # routed at once: an API answer (401 without a token), not "unknown host"
    assert Client(HTTP_HOST="initech.localhost").get("/api/jobs").status_code == 401


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"schema_name": "Bad-Name", "primary_domain": "bad.localhost"}, "schema_name"),
        ({"schema_name": "pg_evil", "primary_domain": "evil.localhost"}, "schema_name"),
        ({"schema_name": "dup", "primary_domain": "acme.localhost"}, "primary_domain"),
        ({"schema_name": "web", "primary_domain": "http://web.localhost"}, "primary_domain"),
    ],
)
def test_create_tenant_rejects_bad_names_and_taken_domains(
    superuser_client, acme, fields, error_field
):
    response = superuser_client.post(f"{TENANTS}add/", {"name": "X", **fields})
    assert response.status_code == 200
    assert error_field in response.context["adminform"].form.errors
    assert not Tenant.objects.filter(schema_name=fields["schema_name"]).exists()


def _action(client, name, *tenants):
    return client.post(
        TENANTS,
        {"action": name, "_selected_action": [t.pk for t in tenants], "index": "0"},
    )


def test_deactivate_and_activate_take_effect_on_the_tenant_hosts(
    superuser_client, bob_client, globex
):
    assert bob_client.get("/api/jobs").status_code == 200  # host resolution now cached
    _action(superuser_client, "deactivate", globex)
    globex.refresh_from_db()
    assert not globex.is_active
    response = bob_client.get("/api/jobs")
    assert (response.status_code, response.json()["code"]) == (403, "tenant_inactive")
    _action(superuser_client, "activate", globex)
    assert bob_client.get("/api/jobs").status_code == 200


def test_platform_tenant_is_never_deactivated(superuser_client, public_tenant):
    _action(superuser_client, "deactivate", public_tenant)
    public_tenant.refresh_from_db()
    assert public_tenant.is_active
    form = superuser_client.get(f"{TENANTS}{public_tenant.pk}/change/").context["adminform"]
    assert "is_active" in form.readonly_fields


def test_tenants_are_never_deleted_here(superuser_client, acme):
    assert superuser_client.get(f"{TENANTS}{acme.pk}/delete/").status_code == 403


def test_add_a_domain_to_a_tenant(superuser_client, acme):
    url = f"{TENANTS}{acme.pk}/change/"
    data = {"name": "Acme", "is_active": "on"}
    domains = list(acme.domains.all())
    data.update(
        {
            "domains-TOTAL_FORMS": str(len(domains) + 1),
            "domains-INITIAL_FORMS": str(len(domains)),
            "domains-MIN_NUM_FORMS": "0",
            "domains-MAX_NUM_FORMS": "1000",
        }
    )
    for i, domain in enumerate(domains):
        data.update(
            {
                f"domains-{i}-id": str(domain.pk),
                f"domains-{i}-tenant": str(acme.pk),
                f"domains-{i}-domain": domain.domain,
                f"domains-{i}-is_primary": "on" if domain.is_primary else "",
            }
        )
    data[f"domains-{len(domains)}-domain"] = "acme-eu.localhost"
    data[f"domains-{len(domains)}-tenant"] = str(acme.pk)
    response = superuser_client.post(url, data)
    assert response.status_code == 302
    assert Domain.objects.filter(domain="acme-eu.localhost", tenant=acme).exists()


def test_create_a_user_in_a_tenant_and_find_them_by_tenant(superuser_client, acme):
    response = superuser_client.post(
        "/admin/accounts/user/add/",
        {
            "username": "erin",
            "password1": "a-long-unusual-passphrase",
            "password2": "a-long-unusual-passphrase",
            "usable_password": "true",
            "tenant": acme.pk,
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    erin = User.objects.get(username="erin")
    assert erin.tenant == acme
    assert erin.check_password("a-long-unusual-passphrase")
    listed = superuser_client.get("/admin/accounts/user/", {"q": "acme"}).context["cl"]
    assert "erin" in {user.username for user in listed.result_list}
