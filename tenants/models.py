"""A tenant is a customer: its own PostgreSQL schema, reached through its own hostnames."""

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Tenant(TenantMixin):
    """One customer. ``schema_name`` is also its public identifier in tokens and logs.

    Saving a new tenant creates its schema and migrates TENANT_APPS into it. An inactive
    tenant's hosts answer 403 to everything.
    """

    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True

    class Meta:
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"


class Domain(DomainMixin):
    """A hostname routed to a tenant, e.g. ``acme.localhost``."""

    def __str__(self) -> str:
        return self.domain
