"""Reads of schedules, always scoped: one tenant's, or every tenant's for ``ALL_TENANTS``."""

from schedules.models import Schedule
from tenants.scope import one_tenant, tenant_scope


def schedules_for(*, tenant):
    """The schedules of ``tenant`` (or every tenant's, for ``ALL_TENANTS``)."""
    return Schedule.objects.select_related("tenant").filter(tenant_scope(tenant))


def schedule_get(*, tenant, name: str) -> Schedule:
    """The schedule ``name`` of ``tenant``; ``Schedule.DoesNotExist`` otherwise."""
    return schedules_for(tenant=one_tenant(tenant)).get(name=name)
