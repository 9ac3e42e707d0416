"""Staff's and operators' changes of flow control: pause and resume a queue, a job type or a
tenant, and set or clear one tenant's override of a limit's figures.

Every change is validated first (``ValidationError``, nothing written) and then written in
one transaction together with its ``FlowAuditEntry`` (``actor``: the staff member's
username, or ``cli:<os login>`` from ``manage.py jobs_flow``). The admin
(``jobs.flow.admin``) and the command are the callers; the claim reads the rows.

- Pausing what is paused already changes nothing and writes no audit entry (``pause``
  returns ``created=False``); resuming what is not paused likewise (``resume`` returns
  False). A pause keeps its first reason and author.
- A resume wakes every worker in its transaction (``NOTIFY job_queue, '*'``: every queue),
  so the resumed jobs start without waiting for a poll.
- An override change deletes the tenant's budget row of that limit, so the next claim
  creates it with the new figures (full, for a rate limit) instead of keeping the old ones.
"""

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import connection, transaction

from jobs import sql as engine_sql
from jobs.exceptions import UnknownJobType
from jobs.flow import sql
from jobs.flow.limits import Figures, limits, parse_figures
from jobs.flow.models import FlowAuditEntry, LimitBudget, LimitOverride, Pause, PauseScope
from jobs.registry import get_job_type
from jobs.services import NOTIFY_CHANNEL
from tenants.models import Tenant

# What a NOTIFY on the workers' channel names to wake the workers of every queue.
EVERY_QUEUE = "*"
_QUEUE_NAME_MAX = 100  # flow_pause.target


def pause_target(scope: str, target) -> tuple[str, str]:
    """``(target as stored, label)`` of a pause of ``scope``: a queue's name (any name: a
    queue need not exist yet), a registered job type's name (internal ones included), or
    a customer tenant given as a ``Tenant``, its id or its schema name (stored as its id,
    labelled by its schema). ``ValidationError`` for anything else."""
    if scope not in PauseScope.values:
        raise ValidationError(f"scope must be one of {', '.join(PauseScope.values)}")
    if scope == PauseScope.TENANT:
        tenant = _tenant(target)
        return str(tenant.pk), tenant.schema_name
    name = str(target or "").strip()
    if not name or len(name) > _QUEUE_NAME_MAX:
        raise ValidationError(f"a {scope} name of 1-{_QUEUE_NAME_MAX} characters")
    if scope == PauseScope.TYPE:
        try:
            get_job_type(name)
        except UnknownJobType:
            raise ValidationError(f"no job type {name!r} is registered") from None
    return name, name


def pause(*, scope: str, target, actor: str, reason: str = "") -> tuple[Pause, bool]:
    """Pause ``target`` of ``scope`` (``pause_target``): its pending jobs stay pending, its
    running ones run on. Returns the pause and whether it is new (False: it was paused
    already, and nothing was written)."""
    stored, label = pause_target(scope, target)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql.PAUSE, [scope, stored, reason[:200], actor])
            created = cursor.fetchone() is not None
        if created:
            _audit(actor, "pause", f"{scope}:{label}", {"reason": reason})
        return Pause.objects.get(scope=scope, target=stored), created


def resume(*, scope: str, target, actor: str) -> bool:
    """Lift the pause of ``target`` of ``scope`` and wake every worker; False (nothing
    written) if it was not paused. A job type need not be registered any more to be
    resumed."""
    if scope == PauseScope.TYPE and str(target or "").strip():
        stored = label = str(target).strip()
    else:
        stored, label = pause_target(scope, target)
    with transaction.atomic():
        lifted = Pause.objects.filter(scope=scope, target=stored).select_for_update().first()
        if lifted is None:
            return False
        lifted.delete()
        detail = {"paused_by": lifted.paused_by, "paused_at": lifted.paused_at.isoformat()}
        _audit(actor, "resume", f"{scope}:{label}", detail)
        with connection.cursor() as cursor:
            cursor.execute(engine_sql.NOTIFY_WORKERS, [NOTIFY_CHANNEL, EVERY_QUEUE])
    return True


def overridable_limits() -> list[str]:
    """The names of the limits one tenant's figures may be overridden for: those of scope
    ``tenant`` or ``plan`` (a global limit has one budget for everybody)."""
    return sorted(name for name, limit in limits().items() if limit.scope != "global")


def override_figures(limit: str, figures: dict) -> Figures:
    """``figures`` checked as an override of ``limit`` (``jobs.flow.limits.parse_figures``):
    a concurrency, a rate (with an optional burst) or both; ``ValidationError`` otherwise."""
    if limit not in overridable_limits():
        raise ValidationError(
            f"{limit!r} is not a tenant or plan limit of JOBS_LIMITS "
            f"(one of: {', '.join(overridable_limits()) or 'none'})"
        )
    if not isinstance(figures, dict) or "scope" in figures:
        raise ValidationError('figures like {"concurrency": 10} or {"rate": "5/s", "burst": 5}')
    try:
        parsed = parse_figures(figures, f"override of {limit}")
    except ImproperlyConfigured as exc:
        raise ValidationError(str(exc)) from None
    if parsed.unlimited:
        raise ValidationError(f"override of {limit}: give a concurrency, a rate or both")
    return parsed


def override_set(
    *, tenant: Tenant, limit: str, figures: dict, actor: str, reason: str = ""
) -> LimitOverride:
    """Set ``tenant``'s figures of ``limit`` (``override_figures``), in place of its plan's
    or the limit's own, from the next claim on."""
    override_figures(limit, figures)
    tenant = _tenant(tenant)
    with transaction.atomic():
        previous = (
            LimitOverride.objects.filter(tenant=tenant, limit=limit)
            .select_for_update()
            .values_list("figures", flat=True)
            .first()
        )
        override, _ = LimitOverride.objects.update_or_create(
            tenant=tenant,
            limit=limit,
            defaults={"figures": figures, "reason": reason[:200], "changed_by": actor},
        )
        _forget_budget(tenant, limit)
        detail = {"figures": figures, "previous": previous, "reason": reason}
        _audit(actor, "override_set", f"{limit}:{tenant.schema_name}", detail)
    return override


def override_clear(*, tenant: Tenant, limit: str, actor: str) -> bool:
    """Remove ``tenant``'s override of ``limit``: its plan's or the limit's own figures
    apply from the next claim on. False (nothing written) if there was none."""
    tenant = _tenant(tenant)
    with transaction.atomic():
        cleared = LimitOverride.objects.filter(tenant=tenant, limit=limit).select_for_update()
        cleared = cleared.first()
        if cleared is None:
            if limit not in overridable_limits():
                raise ValidationError(f"{limit!r} is not a tenant or plan limit of JOBS_LIMITS")
            return False
        cleared.delete()
        _forget_budget(tenant, limit)
        detail = {"previous": cleared.figures, "reason": cleared.reason}
        _audit(actor, "override_clear", f"{limit}:{tenant.schema_name}", detail)
    return True


def _tenant(target) -> Tenant:
    """The customer tenant ``target`` names (a ``Tenant``, its id, or its schema name)."""
    if isinstance(target, Tenant):
        target = target.pk
    value = str(target if target is not None else "").strip()
    tenants = Tenant.objects.customers()
    tenant = tenants.filter(pk=int(value)).first() if value.isascii() and value.isdigit() else None
    tenant = tenant or tenants.filter(schema_name=value).first()
    if tenant is None:
        raise ValidationError(f"no customer tenant {value!r}")
    return tenant


def _forget_budget(tenant: Tenant, limit: str) -> None:
    """Delete the tenant's budget row of ``limit`` (if still configured): the next claim
    writes it with the figures that apply then."""
    if limit in limits():
        LimitBudget.objects.filter(key=limits()[limit].key(tenant.pk)).delete()


def _audit(actor: str, action: str, target: str, detail: dict) -> None:
    FlowAuditEntry.objects.create(actor=actor, action=action, target=target, detail=detail)
