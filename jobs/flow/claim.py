"""Admission: which of a claim's candidates fit their budgets, decided under the budgets' row
locks inside the claim's transaction (``jobs.services.job_claim``).

The claim's statements (``jobs.sql``), in two round trips (``jobs.services``): ``BEGIN``
and ``CANDIDATES``, which locks the candidate jobs in claim order, taking at once those
before the first that consumes a limit (no budget could hold them back); then
``ADMIT_AND_TAKE``, ``MARK_THROTTLED`` (the budgets the candidates found spent) and
``COMMIT``: given the others and the figures of the budgets they
take (``budget_figures``, from this process's settings), the database function
``flow_admit`` (migration 0030) locks those budgets in key order, counts the units running
on each in a snapshot that starts once the locks are held (so every committed claim is
counted: two workers never both take the last unit), admits in claim order and writes the
tokens left; the statement takes the admitted jobs. A budget admits a job when its running
units plus the job's stay within its concurrency (or nothing runs on it: a job larger than
the budget runs alone) and it holds a token for each of the job's units (or is full: a
larger job takes them all and leaves a debt). The locks are held for no network round trip
and no Python: they are taken and released within the last one.
"""

import json
from dataclasses import dataclass

from django.conf import settings

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


def admission_params(candidates: list[Candidate], free: int) -> dict:
    """The parameters of ``sql.ADMIT_AND_TAKE`` that admit up to ``free`` of ``candidates``
    (in claim order): their ids; what each takes of the budgets that bind, as triples
    (the candidate's place from 1, the budget's place from 1, units) in claim order; and
    those budgets' keys and figures, in key order."""
    figures = budget_figures(candidates)
    keys = sorted(figures)
    place_of = {key: place for place, key in enumerate(keys, 1)}
    taken = [
        (place, place_of[key], units)
        for place, candidate in enumerate(candidates, 1)
        for key, units in zip(candidate.keys, candidate.units, strict=True)
        if key in place_of
    ]
    return {
        "ids": [candidate.id for candidate in candidates],
        "taken_by": [place for place, _, _ in taken],
        "taken_budgets": [budget for _, budget, _ in taken],
        "taken_units": [units for _, _, units in taken],
        "keys": keys,
        "concurrency": [figures[key].concurrency for key in keys],
        "rate": [figures[key].rate for key in keys],
        "burst": [figures[key].burst for key in keys],
        "free": free,
    }
