"""Which tenants a call covers, defined once for every app: a call that serves exactly one
tenant, and the filter of a call scoped to one tenant or to ``ALL_TENANTS``; and the
bound on how many rows of a kind one tenant may have (schedules, webhook endpoints)."""

from django.conf import settings
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


def tenant_lock(tenant) -> None:
    """Lock ``tenant``'s row until the end of the transaction (``FOR NO KEY UPDATE``, which
    inserts referring to the tenant do not wait for), so that its count-bounded writes
    happen one at a time."""
    Tenant.objects.select_for_update(no_key=True).filter(pk=one_tenant(tenant).pk).first()


def tenant_bound_refusal(rows, *, setting: str, noun: str) -> str:
    """Why one more of ``rows`` (one tenant's rows of a kind) is refused: it already has
    ``settings.<setting>`` of them; empty while there is room. Call it after
    ``tenant_lock`` for a bound that concurrent writes cannot pass together."""
    bound = getattr(settings, setting)
    if rows.count() < bound:
        return ""
    return f"The tenant already has {bound} {noun}, the most it may have ({setting})."
