"""Which tenants a call covers, defined once for every app: a call that serves exactly one
tenant, and the filter of a call scoped to one tenant or to ``ALL_TENANTS``."""

from django.db.models import Q

from accounts.roles import ALL_TENANTS
from tenants.models import Tenant


def one_tenant(tenant) -> Tenant:
    """``tenant`` itself, for calls that serve exactly one tenant; ``TypeError`` for
    anything else, ``ALL_TENANTS`` and None included."""
    if not isinstance(tenant, Tenant):
        raise TypeError(f"tenant must be a Tenant, not {tenant!r}")
    return tenant


def tenant_scope(tenant) -> Q:
    """The filter of a scoped call over a model with a ``tenant`` field: its tenant's rows,
    or every row for ``ALL_TENANTS``. ``TypeError`` for anything else: a None is a forgotten
    tenant, never "all of them"."""
    if tenant is ALL_TENANTS:
        return Q()
    return Q(tenant=one_tenant(tenant))
