"""Reads of flow control for staff and operators: each budget's use, and the pauses. The
admin's Limits page, ``manage.py jobs_flow status``, ``jobs_stats`` and the Prometheus
gauges (``insights.metrics``) all read these.

Both take ``tenant`` (keyword-only): ``ALL_TENANTS`` for platform staff and operators, or
one tenant, whose staff see its own budgets and pauses and the platform-wide ones (global
limits, paused queues and types), never another tenant's.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Q
from django.db.models.functions import Now

from accounts.roles import ALL_TENANTS
from jobs.flow import sql
from jobs.flow.limits import Figures, figures_for, limit_of_key, limits
from jobs.flow.models import LimitBudget, LimitOverride, Pause, PauseScope
from tenants.models import Tenant


@dataclass(frozen=True)
class LimitUse:
    """One budget now. ``figures``: what applies to it now (the tenant's override, else its
    plan's, else the limit's own); ``running``: units of processing jobs taking it;
    ``tokens``: rate tokens left now (None: no rate; a budget no claim has created yet is
    full); ``waiting``: due pending jobs taking it; ``throttled``: the last claim that looked
    at it left jobs waiting on it."""

    key: str
    limit: str
    scope: str
    tenant: Tenant | None
    figures: Figures
    running: int
    tokens: float | None
    waiting: int
    throttled: bool

    @property
    def throttled_jobs(self) -> int:
        """Jobs held back by this budget: its due pending jobs while the last claim found it
        spent (they may also wait on another budget or a pause); 0 while it has room."""
        return self.waiting if self.throttled else 0


@dataclass(frozen=True)
class PauseRow:
    """A pause as shown: ``label`` is the queue's or type's name, or the tenant's schema."""

    scope: str
    target: str
    label: str
    reason: str
    paused_by: str
    paused_at: datetime


def limit_usage(*, tenant) -> list[LimitUse]:
    """One row per budget in ``tenant``'s view (``ALL_TENANTS``: every budget), ordered by
    key: every budget with a row in ``flow_budget``, every global limit, and every
    overridden budget (the last two even before a claim creates their row). A budget of a
    limit no longer configured binds nothing and is left out. Three queries."""
    scoped = tenant is not ALL_TENANTS
    overrides = LimitOverride.objects.all()
    if scoped:
        overrides = overrides.filter(tenant=tenant)
    overrides = {(o.tenant_id, o.limit): o.figures for o in overrides if o.limit in limits()}
    keys = [name for name, limit in limits().items() if limit.scope == "global"]
    keys += [limits()[name].key(tenant_id) for tenant_id, name in overrides]
    with connection.cursor() as cursor:
        cursor.execute(sql.LIMIT_USAGE, {"keys": keys, "tenant_id": tenant.pk if scoped else None})
        rows = [row for row in cursor.fetchall() if limit_of_key(row[0]) in limits()]
    tenant_ids = {int(row[0].split(":", 1)[1]) for row in rows if ":" in row[0]}
    tenants = Tenant.objects.in_bulk(tenant_ids)
    found = []
    for key, running, waiting, has_row, tokens, throttled in rows:
        name = limit_of_key(key)
        limit = limits()[name]
        owner = tenants.get(int(key.split(":", 1)[1])) if ":" in key else None
        if limit.scope != "global" and owner is None:
            continue  # a budget of a tenant since removed
        override = overrides.get((owner.pk, name)) if owner else None
        figures = figures_for(name, owner.plan if owner else "", override)
        if figures.rate is None:
            tokens = None
        elif not has_row or tokens is None:
            tokens = figures.burst
        found.append(
            LimitUse(
                key=key,
                limit=name,
                scope=limit.scope,
                tenant=owner,
                figures=figures,
                running=int(running),
                tokens=tokens,
                waiting=int(waiting),
                throttled=bool(throttled),
            )
        )
    return found


def pauses(*, tenant) -> list[PauseRow]:
    """The pauses in ``tenant``'s view (``ALL_TENANTS``: all; a tenant: the paused queues and
    types, and its own pause), oldest first."""
    rows = Pause.objects.order_by("paused_at", "id")
    if tenant is not ALL_TENANTS:
        own = Q(scope=PauseScope.TENANT, target=str(tenant.pk))
        rows = rows.filter(~Q(scope=PauseScope.TENANT) | own)
    rows = list(rows)
    tenant_ids = [int(p.target) for p in rows if p.scope == PauseScope.TENANT]
    schemas = dict(Tenant.objects.filter(pk__in=tenant_ids).values_list("pk", "schema_name"))
    return [
        PauseRow(
            scope=p.scope,
            target=p.target,
            label=schemas.get(int(p.target), p.target)
            if p.scope == PauseScope.TENANT
            else p.target,
            reason=p.reason,
            paused_by=p.paused_by,
            paused_at=p.paused_at,
        )
        for p in rows
    ]


def paused_jobs(*, tenant) -> Q:
    """Pending jobs held by a pause in ``tenant``'s view: their queue, type or tenant is
    paused (the job list's "paused" filter). One query, for the pauses."""
    held = Q()
    for row in pauses(tenant=tenant):
        field = {PauseScope.QUEUE: "queue", PauseScope.TYPE: "type"}.get(row.scope, "tenant_id")
        held |= Q(**{field: row.target})
    return Q(status="pending") & held if held else Q(pk__in=[])


def throttled_jobs(*, tenant) -> Q:
    """Due pending jobs taking a budget that the last claim found spent, in ``tenant``'s
    view (its own budgets and the global ones): the job list's "throttled" filter, the
    jobs whose poll says ``waiting: throttled``. One query, for the spent budgets."""
    spent = LimitBudget.objects.filter(throttled=True)
    if tenant is not ALL_TENANTS:
        spent = spent.filter(Q(key__endswith=f":{tenant.pk}") | ~Q(key__contains=":"))
    keys = list(spent.values_list("key", flat=True))
    if not keys:
        return Q(pk__in=[])
    return Q(status="pending", run_at__lte=Now(), limit_keys__overlap=keys)
