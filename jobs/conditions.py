"""Conditions shared by reads (``jobs.selectors``) and writes (``jobs.services``), each
defined once: which jobs a tenant reaches. Which tenants a call covers is
``tenants.scope``; which running jobs the reaper takes, ``jobs.sql``."""

from django.db.models import Q

from accounts.roles import ALL_TENANTS
from tenants.scope import one_tenant


def reachable_jobs(tenant) -> Q:
    """The jobs a scope reaches: a tenant's own jobs except internal ones (its clients and
    its staff never read, list, stream or change those: they are missing to them), or
    every job for ``ALL_TENANTS`` (platform staff, who filter for internal ones).
    ``TypeError`` for anything else."""
    if tenant is ALL_TENANTS:
        return Q()
    return Q(tenant=one_tenant(tenant), internal=False)


# ``reachable_jobs`` of one tenant as SQL over job_queue's columns, for raw statements (the
# poll); its one parameter is the tenant's id.
REACHABLE_JOBS_SQL = "tenant_id = %s AND NOT internal"
