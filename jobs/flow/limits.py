"""The named limits of ``JOBS_LIMITS``, the plans of ``JOBS_PLANS``, and each job's budgets.

A limit is a *concurrency* limit (at most ``concurrency`` units running), a *rate* limit
(at most ``rate`` units started per period, with a ``burst``), or both, with a scope::

    JOBS_LIMITS = {
        "llm_requests": {"scope": "global", "rate": "10/s"},           # the provider's key
        "llm_per_tenant": {"scope": "tenant", "rate": "2/s", "burst": 2},
        "generations": {"scope": "plan"},                              # figures per plan
    }
    JOBS_PLANS = {"free": {"generations": {"concurrency": 1}},
                  "pro": {"generations": {"concurrency": 5}}}

``global``: one budget for the whole platform; ``tenant``: one budget per tenant, the same
figures for all; ``plan``: one budget per tenant, its figures from the tenant's plan (a
plan that does not name the limit leaves it unlimited). Staff may override one tenant's
figures of a tenant or plan limit (``LimitOverride``). A job type consumes limits by name,
each with its units: an integer, or the payload key whose integer value it is::

    "ai_generation": {..., "limits": {"llm_requests": 1, "llm_per_tenant": 1,
                                       "llm_tokens": "max_tokens", "generations": 1}}

A job's budgets (``Budget``: key and units) are fixed when it is submitted.
"""

import re
from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

SCOPES = ("global", "tenant", "plan")
_PERIODS = {"s": 1, "m": 60, "h": 3600}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([smh])\s*$")


@dataclass(frozen=True)
class Figures:
    """What a budget allows: ``concurrency`` units running, ``rate`` units started per
    second with ``burst`` at once (None: no such bound)."""

    concurrency: int | None = None
    rate: float | None = None
    burst: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.concurrency is None and self.rate is None


@dataclass(frozen=True)
class Limit:
    name: str
    scope: str
    figures: Figures  # global and tenant scopes; a plan limit's come from the plan

    def key(self, tenant_id: int) -> str:
        """The budget's key: the limit's name, or name and tenant for a per-tenant one."""
        return self.name if self.scope == "global" else f"{self.name}:{tenant_id}"


@dataclass(frozen=True)
class Budget:
    """What one job takes of one budget."""

    key: str
    units: int


def parse_figures(spec: dict, where: str) -> Figures:
    """``{"concurrency": N, "rate": "N/s|m|h", "burst": B}`` (each optional) as ``Figures``;
    raises ``ImproperlyConfigured`` (naming ``where``) for anything else."""
    unknown = set(spec) - {"concurrency", "rate", "burst", "scope"}
    if unknown:
        raise ImproperlyConfigured(f"{where}: unknown keys {sorted(unknown)}")
    concurrency = spec.get("concurrency")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ImproperlyConfigured(f"{where}: concurrency must be a positive integer")
    rate = burst = None
    if spec.get("rate") is not None:
        match = _RATE.match(str(spec["rate"]))
        if not match or int(match[1]) < 1:
            raise ImproperlyConfigured(f"{where}: rate must look like '10/s', '600/m', '5/h'")
        rate = int(match[1]) / _PERIODS[match[2]]
        burst = spec.get("burst", int(match[1]))
        if not isinstance(burst, int) or burst < 1:
            raise ImproperlyConfigured(f"{where}: burst must be a positive integer")
    elif "burst" in spec:
        raise ImproperlyConfigured(f"{where}: burst needs a rate")
    return Figures(concurrency=concurrency, rate=rate, burst=burst)


@cache
def limits() -> dict[str, Limit]:
    """Every limit of ``JOBS_LIMITS`` by name (checked: a bad one raises at first use and
    in ``manage.py check``)."""
    found = {}
    for name, spec in settings.JOBS_LIMITS.items():
        where = f"JOBS_LIMITS[{name!r}]"
        if not re.fullmatch(r"[a-z0-9_.-]{1,64}", name):
            raise ImproperlyConfigured(f"{where}: a name of 1-64 of a-z 0-9 _ . -")
        scope = spec.get("scope", "global")
        if scope not in SCOPES:
            raise ImproperlyConfigured(f"{where}: scope must be one of {SCOPES}")
        figures = parse_figures(spec, where)
        if scope == "plan" and not figures.unlimited:
            raise ImproperlyConfigured(f"{where}: a plan limit takes its figures from JOBS_PLANS")
        if scope != "plan" and figures.unlimited:
            raise ImproperlyConfigured(f"{where}: give a concurrency, a rate or both")
        found[name] = Limit(name=name, scope=scope, figures=figures)
    return found


@cache
def plans() -> dict[str, dict[str, Figures]]:
    """Each plan of ``JOBS_PLANS``: its figures by limit name."""
    known = limits()
    found = {}
    for plan, entries in settings.JOBS_PLANS.items():
        found[plan] = {}
        for name, spec in entries.items():
            where = f"JOBS_PLANS[{plan!r}][{name!r}]"
            if name not in known or known[name].scope != "plan":
                raise ImproperlyConfigured(f"{where}: not a limit of scope 'plan'")
            found[plan][name] = parse_figures(spec, where)
    if settings.JOBS_DEFAULT_PLAN not in found:
        raise ImproperlyConfigured("JOBS_DEFAULT_PLAN must name a plan of JOBS_PLANS")
    return found


def plan_in_force(plan: str) -> str:
    """The plan a tenant whose ``Tenant.plan`` is ``plan`` is on: that plan, or the default
    plan for an empty or unknown name (as ``figures_for`` reads it)."""
    return plan if plan in plans() else settings.JOBS_DEFAULT_PLAN


def figures_for(name: str, plan: str, override: dict | None) -> Figures:
    """The figures of limit ``name`` for a tenant on ``plan`` with staff's ``override``
    (``LimitOverride.figures``, or None): the override, else the plan's (a tenant on an
    unknown plan has the default plan's), else the limit's own."""
    limit = limits()[name]
    if override is not None and limit.scope != "global":
        return parse_figures(override, f"override of {name}")
    if limit.scope == "plan":
        return plans()[plan_in_force(plan)].get(name, Figures())
    return limit.figures


def parse_consumption(spec: dict, where: str) -> dict[str, int | str]:
    """A job type's ``limits`` option checked: limit name → units (a positive integer, or a
    payload key)."""
    if not isinstance(spec, dict):
        raise ImproperlyConfigured(f"{where}: limits must map limit names to units")
    known = limits()
    for name, units in spec.items():
        if name not in known:
            raise ImproperlyConfigured(f"{where}: no limit {name!r} in JOBS_LIMITS")
        if not (isinstance(units, str) or (isinstance(units, int) and units >= 1)):
            raise ImproperlyConfigured(f"{where}: units of {name!r} must be >= 1 or a key")
    return dict(spec)


def budgets(consumption: dict[str, int | str], tenant_id: int, payload: dict) -> list[Budget]:
    """What a job of a type consuming ``consumption`` takes, for ``tenant_id`` and its
    ``payload``: one ``Budget`` per limit, in key order. Units named by a payload key are
    that key's integer value (at least 1; 1 when absent or not an integer)."""
    taken = []
    for name, units in consumption.items():
        if isinstance(units, str):
            value = payload.get(units)
            units = value if isinstance(value, int) and not isinstance(value, bool) else 1
        taken.append(Budget(key=limits()[name].key(tenant_id), units=max(1, units)))
    return sorted(taken, key=lambda budget: budget.key)


def limit_of_key(key: str) -> str:
    """The limit's name in a budget's key."""
    return key.split(":", 1)[0]


@receiver(setting_changed)
def _reload_on_settings_change(setting, **kwargs):
    if setting in {"JOBS_LIMITS", "JOBS_PLANS", "JOBS_DEFAULT_PLAN"}:
        limits.cache_clear()
        plans.cache_clear()
