"""Host → tenant resolution, cached in the shared cache with invalidation on change.

A poll must not pay a database round trip to find its tenant. Hostnames are
case-insensitive: lookups and cache keys use the lowercased name (the admin stores
domains lowercased). Whenever a Tenant or Domain row is saved or deleted (signals below)
its hosts' entries are dropped, in Redis and in every process's memory (``core.row_cache``),
and kept out for a moment after the change commits, so a request racing the change
cannot cache the old row (``core.row_cache``). Unknown hosts are not cached, so random
hostnames cannot fill the cache. If Redis is unreachable, resolution falls back to the
database.
"""

import time

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from core import row_cache
from tenants.models import Domain, Tenant

CACHE_TTL_SECONDS = 300


def _key(hostname: str) -> str:
    return f"tenant-for-host:{hostname.lower()}"


def tenant_for_host(hostname: str) -> Tenant | None:
    """The tenant served at ``hostname`` (any letter case), or None."""

    def load():
        domain = Domain.objects.select_related("tenant").filter(domain=hostname.lower()).first()
        return None if domain is None else domain.tenant

    return row_cache.read_through(_key(hostname), load, CACHE_TTL_SECONDS, label="tenant")


# Tenants by id, per process, for workers: a tenant's schema name never changes, so a
# short-lived local copy is safe; changes in this process drop it at once (signals below).
_LOCAL_TTL_SECONDS = 60.0
_local_tenants: dict[int, tuple[float, Tenant]] = {}


def tenants_by_id(ids) -> dict[int, Tenant]:
    """The tenants with primary keys ``ids`` (all must exist), from a per-process cache
    refreshed every minute."""
    now = time.monotonic()
    found = {
        pk: entry[1]
        for pk in ids
        if (entry := _local_tenants.get(pk)) and now - entry[0] < _LOCAL_TTL_SECONDS
    }
    missing = set(ids) - set(found)
    if missing:
        for tenant in Tenant.objects.filter(pk__in=missing):
            _local_tenants[tenant.pk] = (now, tenant)
            found[tenant.pk] = tenant
    return found


def forget_hosts(hostnames) -> None:
    """Drop cached resolutions of ``hostnames`` (called on every change), and keep them out
    for a moment once the change commits."""
    row_cache.forget([_key(name) for name in hostnames if name], label="tenant")


@receiver(pre_save, sender=Domain)
def _forget_renamed_domain(sender, instance, **kwargs):
    if instance.pk:
        previous = Domain.objects.filter(pk=instance.pk).values_list("domain", flat=True).first()
        forget_hosts([previous])


@receiver(post_save, sender=Domain)
@receiver(post_delete, sender=Domain)
def _forget_domain(sender, instance, **kwargs):
    forget_hosts([instance.domain])


@receiver(post_save, sender=Tenant)
@receiver(post_delete, sender=Tenant)
def _forget_tenant(sender, instance, **kwargs):
    _local_tenants.pop(instance.pk, None)
    forget_hosts(Domain.objects.filter(tenant_id=instance.pk).values_list("domain", flat=True))
