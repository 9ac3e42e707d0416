"""Admission: which of a claim's candidates fit their budgets, decided under the budgets' row
locks inside the claim's transaction (``jobs.services.job_claim``).

The claim's statements (``jobs.sql``), in three round trips (``jobs.services``): ``BEGIN``
and ``CANDIDATES``, which locks the candidate jobs in claim order, taking at once those
before the first that consumes a limit (no budget could hold them back); ``LOCK_BUDGETS``,
which locks the budgets the others take, in key order, refilling rate tokens, with
``RUNNING_UNITS``, a statement whose snapshot starts after those locks are held, which
counts the units running on each (so every committed claim is counted: two workers never
both take the last unit); ``TAKE_ADMITTED``, which writes the tokens left and takes the
admitted jobs, with ``COMMIT``. A budget admits a job when its running units plus the job's
stay within its concurrency (or nothing runs on it: a job larger than the budget runs
alone) and it holds a token for each of the job's units (or is full: a larger job takes
them all and leaves a debt).
"""

import json
from dataclasses import dataclass, field

from django.conf import settings

from jobs import sql
from jobs.flow.limits import Figures, figures_for, limit_of_key, limits


@dataclass(frozen=True)
class Candidate:
    """A job the claim may take, as ``sql.CANDIDATES`` returns it."""

    id: object
    tenant_id: int
    keys: list[str]
    units: list[int]
    plan: str
    overrides: dict | None

    @classmethod
    def from_row(cls, row) -> "Candidate":
        """From a row of ``sql.CANDIDATES`` (its overrides arrive as JSON text)."""
        job_id, tenant_id, keys, units, plan, overrides = row[:6]
        return cls(
            job_id, tenant_id, keys, units, plan, json.loads(overrides) if overrides else None
        )


@dataclass
class Admission:
    """What a claim takes: the admitted jobs' ids in claim order, each budget's tokens after
    their starts, the budgets that left a job waiting, and the seconds until a spent rate
    budget has a token again (None: no rate budget held a job back)."""

    ids: list = field(default_factory=list)
    tokens: dict[str, float] = field(default_factory=dict)
    throttled: set[str] = field(default_factory=set)
    retry_in: float | None = None


def budget_figures(candidates: list[Candidate]) -> dict[str, Figures]:
    """The figures of every budget the candidates take that binds (a budget of a limit no
    longer configured, or unlimited for the tenant's plan, binds nothing): the budgets
    admission must lock; none, and it decides nothing."""
    found = {}
    for candidate in candidates:
        for key in candidate.keys:
            name = limit_of_key(key)
            if key in found or name not in limits():
                continue
            override = (candidate.overrides or {}).get(name)
            figures = figures_for(name, candidate.plan or settings.JOBS_DEFAULT_PLAN, override)
            if not figures.unlimited:
                found[key] = figures
    return found


def lock_budgets(cursor, figures: dict[str, Figures]) -> tuple[dict[str, float], dict[str, int]]:
    """Lock the budgets of ``figures`` in the claim's transaction (``cursor``: Django's, on
    the claim's connection) and return their rate tokens and their running units, in one
    round trip: ``LOCK_BUDGETS``, then ``RUNNING_UNITS``, a statement of its own whose
    snapshot starts once the locks are held. One simple query, not a psycopg pipeline:
    psycopg ends a pipeline with a Flush after its Sync, which leaves the claim's idle
    timeout (``sql.CANDIDATES``) disarmed, and that timeout bounds how long a worker cut
    off here holds these locks."""
    keys = sorted(figures)
    cursor.execute(
        f"{sql.LOCK_BUDGETS};{sql.RUNNING_UNITS}",
        {
            "keys": keys,
            "concurrency": [figures[key].concurrency for key in keys],
            "rate": [figures[key].rate for key in keys],
            "burst": [figures[key].burst for key in keys],
        },
    )
    tokens = dict(cursor.fetchall())
    cursor.nextset()
    return tokens, dict(cursor.fetchall())


def _short(figures: Figures, running: int, tokens: float, units: int) -> float | None:
    """None if a budget admits ``units`` more; else the tokens it lacks (0 when it is its
    concurrency that is full)."""
    if figures.concurrency is not None and running and running + units > figures.concurrency:
        return 0.0
    if figures.rate is not None and tokens < min(units, figures.burst):
        return min(units, figures.burst) - tokens
    return None


def admit(
    candidates: list[Candidate],
    figures: dict[str, Figures],
    tokens: dict[str, float],
    running: dict[str, int],
    limit: int,
) -> Admission:
    """Admit up to ``limit`` of ``candidates`` (in claim order) within their budgets'
    ``figures``, given the ``tokens`` and ``running`` units ``lock_budgets`` read under the
    budgets' locks (``running`` is updated with the units admitted)."""
    admission = Admission(tokens=dict(tokens))
    waits = []
    for candidate in candidates:
        if len(admission.ids) == limit:
            break
        taken = [
            (k, u) for k, u in zip(candidate.keys, candidate.units, strict=True) if k in figures
        ]
        lacking = {
            key: short
            for key, units in taken
            if (short := _short(figures[key], running.get(key, 0), admission.tokens[key], units))
            is not None
        }
        if lacking:
            admission.throttled.update(lacking)
            waits.extend(short / figures[key].rate for key, short in lacking.items() if short)
            continue
        for key, units in taken:
            running[key] = running.get(key, 0) + units
            if figures[key].rate is not None:
                admission.tokens[key] -= units
        admission.ids.append(candidate.id)
    admission.retry_in = min(waits, default=None)
    return admission
