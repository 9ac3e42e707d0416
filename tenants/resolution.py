"""Host → tenant resolution, cached in the shared cache with invalidation on change.

A poll must not pay a database round trip to find its tenant. The cached entry is deleted
whenever a Tenant or Domain row is saved or deleted (signals below), in every process at
once since the cache is the shared Redis. Unknown hosts are not cached, so random
hostnames cannot fill the cache. If Redis is unreachable, resolution falls back to the
database.
"""

import logging
import time

from django.core.cache import cache
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 300


def _key(hostname: str) -> str:
    return f"tenant-for-host:{hostname}"


def tenant_for_host(hostname: str) -> Tenant | None:
    """The tenant served at ``hostname``, or None."""
    try:
        tenant = cache.get(_key(hostname))
    except Exception:
        logger.warning("tenant cache unavailable; reading the database", exc_info=True)
        tenant = None
    if tenant is not None:
        return tenant
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    if domain is None:
        return None
    try:
        cache.set(_key(hostname), domain.tenant, CACHE_TTL_SECONDS)
    except Exception:
        logger.warning("tenant cache unavailable; not caching", exc_info=True)
    return domain.tenant


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
    """Drop cached resolutions of ``hostnames`` (called on every change)."""
    keys = [_key(name) for name in hostnames if name]
    if keys:
        cache.delete_many(keys)


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
