"""Staff actions over every job a filter matches, run as a job (the internal job type
``jobs.bulk``), so any number of jobs is changed in batches by a worker, with progress,
while the admin's request only enqueues it.

The bulk job belongs to the tenant whose staff started it, or to the platform's own tenant
for platform staff; that tenant, never the payload, is the scope of what it changes
(``ALL_TENANTS`` for the platform's). Its payload is written by the admin only: an internal
type is no public one, so no API request or schedule can enqueue it. Each batch is one
guarded statement of ``jobs.services`` (``jobs_retry``, ``jobs_cancel``,
``jobs_delete_chosen``): a job that changed meanwhile is skipped and counted. It runs in
the platform's queue (``JOBS_PLATFORM_QUEUE``), which every worker serves.
"""

import dataclasses
from datetime import datetime

from django.conf import settings
from django.tasks import task
from django_tenants.utils import get_public_schema_name

from accounts.roles import ALL_TENANTS
from core.clock import db_now
from jobs import selectors, services
from jobs.models import Job
from tenants.models import Tenant

BATCH_SIZE = 500
ACTIONS = {
    "retry": services.jobs_retry,
    "cancel": services.jobs_cancel,
    "delete": services.jobs_delete_chosen,
}
_DATES = {"created_from", "created_until", "created_before"}


def bulk_start(*, tenant, action: str, match: selectors.JobMatch, requested_by) -> Job:
    """Enqueue a ``jobs.bulk`` job applying ``action`` (a key of ``ACTIONS``) to every job of
    ``tenant`` (or ``ALL_TENANTS``) that ``match`` covers now: jobs created after this call
    are left alone."""
    if action not in ACTIONS:
        raise ValueError(f"unknown bulk action {action!r}")
    match = dataclasses.replace(match, created_before=db_now())
    owner = (
        Tenant.objects.get(schema_name=get_public_schema_name())
        if tenant is ALL_TENANTS
        else tenant
    )
    return services.job_enqueue(
        tenant=owner,
        type=selectors.BULK_TYPE,
        payload={"action": action, "match": _match_payload(match)},
        created_by=requested_by,
        queue=settings.JOBS_PLATFORM_QUEUE,  # every worker serves it, beside tenants' work
    )


def _match_payload(match: selectors.JobMatch) -> dict:
    fields = dataclasses.asdict(match)
    fields["statuses"] = list(match.statuses)
    for name in _DATES:
        fields[name] = fields[name].isoformat() if fields[name] else None
    return fields


def _match_from_payload(fields: dict) -> selectors.JobMatch:
    fields = dict(fields, statuses=tuple(fields["statuses"]))
    for name in _DATES:
        fields[name] = datetime.fromisoformat(fields[name]) if fields[name] else None
    return selectors.JobMatch(**fields)


@task(takes_context=True)
def bulk_change(context, action: str, match: dict) -> dict:
    """``jobs.bulk``: walk the matched jobs in id order, ``BATCH_SIZE`` at a time, apply
    ``action`` to each batch and report progress ("1,500 of 5,000"); stops early when
    cancelled. Returns the counts: matched, done, asked (running jobs asked to stop),
    skipped."""
    owner = context.job.tenant
    scope = ALL_TENANTS if owner.is_platform else owner
    wanted = _match_from_payload(match)
    change = ACTIONS[action]
    total = selectors.jobs_matching(tenant=scope, match=wanted).count()
    counts = {"matched": total, "done": 0, "asked": 0, "skipped": 0}
    after, seen = None, 0
    while not context.cancelled() and (
        ids := selectors.job_ids_matching(tenant=scope, match=wanted, after=after, limit=BATCH_SIZE)
    ):
        outcome = change(tenant=scope, job_ids=ids)
        counts["done"] += outcome.done
        counts["asked"] += outcome.asked
        counts["skipped"] += outcome.skipped
        after, seen = ids[-1], seen + len(ids)
        context.report_progress(100 * seen / max(total, 1), f"{action}: {seen:,} of {total:,}")
    return counts
