"""The rollup's writes: runs counted as they end, and pruning with the jobs.

As runs end completed or failed (``jobs_finished``, per batch; a timeout counts as failed),
one ``job_rollup`` row per tenant, minute, queue and job type is upserted: the counts, and
the runs' wait (due → start) and run time as sparse histograms of log-scale buckets
(``insights.models.bucket_of``: index → runs), the whole batch summed per row, bucket by
bucket, in one statement. ``cleanup_jobs`` prunes the rows as old as the jobs
it deletes (``jobs_cleaned``), never those of the dashboard's last day.
"""

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, connection
from django.dispatch import receiver

from insights.models import JobRollup, bucket_of
from insights.selectors import RANGES, db_minute
from jobs.signals import JobOutcome, jobs_cleaned, jobs_finished
from tenants.scope import tenant_scope

logger = logging.getLogger(__name__)

_FINAL = {
    JobOutcome.COMPLETED: "completed",
    JobOutcome.FAILED: "failed",
    JobOutcome.TIMED_OUT: "failed",
}
ROLLUP_KEPT = RANGES["day"][0]  # cleanup never prunes what the dashboard's day shows


def _add(column: str) -> str:
    """The sum, bucket by bucket, of the stored histogram ``column`` and the new one."""
    return f"""(SELECT COALESCE(jsonb_object_agg(key, runs), jsonb_build_object()) FROM (
        SELECT key, SUM(value::bigint) AS runs FROM (
            SELECT * FROM jsonb_each_text(job_rollup.{column})
            UNION ALL SELECT * FROM jsonb_each_text(EXCLUDED.{column})
        ) AS buckets GROUP BY key) AS summed)"""  # noqa: S608 (a column name of this module)


_UPSERT = f"""
INSERT INTO public.job_rollup
    (tenant_id, minute, queue, type, completed, failed, wait_buckets, run_buckets)
VALUES {{values}}
ON CONFLICT (tenant_id, minute, queue, type) DO UPDATE SET
    completed = job_rollup.completed + EXCLUDED.completed,
    failed = job_rollup.failed + EXCLUDED.failed,
    wait_buckets = {_add("wait_buckets")},
    run_buckets = {_add("run_buckets")}
"""  # noqa: S608 (the interpolations are constants of this module)
_ROW = "(%s, date_trunc('minute', COALESCE(%s, now())), %s, %s, %s, %s, %s::jsonb, %s::jsonb)"


@dataclass
class RollupRow:
    """The runs of one ``job_rollup`` key to add: counts and histograms (bucket index →
    runs)."""

    tenant_id: int
    queue: str
    type: str
    at: datetime | None = None  # the minute's moment; None: the database's now
    completed: int = 0
    failed: int = 0
    wait: Counter[int] = field(default_factory=Counter)
    run: Counter[int] = field(default_factory=Counter)

    def count(self, outcome: str, wait: float, run: float) -> None:
        """Add one run that ended ``outcome`` (``completed`` or ``failed``)."""
        self.completed += outcome == "completed"
        self.failed += outcome == "failed"
        self.wait[bucket_of(wait)] += 1
        self.run[bucket_of(run)] += 1


def rollup_add(rows: list[RollupRow]) -> None:
    """Add ``rows`` to the rollup in one statement. Their keys (tenant, minute of ``at``,
    queue, type) must differ: ``ON CONFLICT`` may not touch one row twice."""
    if not rows:
        return
    params = []
    for row in rows:
        params += [row.tenant_id, row.at, row.queue, row.type, row.completed, row.failed]
        params += [json.dumps(row.wait), json.dumps(row.run)]
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT.format(values=", ".join([_ROW] * len(rows))), params)


@receiver(jobs_finished, dispatch_uid="insights.services.rollup")
def _roll_up(sender, runs, **kwargs):
    """Count a batch of runs: summed per tenant, queue and type in Python, then one
    statement (the minute is the database's now, as for a single run)."""
    rows: dict[tuple[int, str, str], RollupRow] = {}
    for job, outcome, duration in runs:
        final = _FINAL.get(outcome)
        if final is None:
            continue
        wait = 0.0
        if job.started_at is not None:
            wait = (job.started_at - max(job.created_at, job.run_at)).total_seconds()
        key = (job.tenant_id, job.queue, job.type)
        if key not in rows:
            rows[key] = RollupRow(tenant_id=job.tenant_id, queue=job.queue, type=job.type)
        rows[key].count(final, wait, duration)
    try:
        rollup_add(list(rows.values()))
    except DatabaseError:  # the outcomes are recorded; only the dashboard misses these runs
        logger.warning(
            "rollup: could not count runs",
            exc_info=True,
            extra={"jobs": sum(r.completed + r.failed for r in rows.values())},
        )


@receiver(jobs_cleaned, dispatch_uid="insights.services.rollup_prune")
def _prune_with_the_jobs(sender, tenant, before, **kwargs) -> str:
    pruned = rollup_prune(tenant=tenant, before=before)
    return f"Pruned {pruned} dashboard rollup row(s) (the last day is kept)."


def rollup_prune(*, tenant, before: datetime) -> int:
    """Delete the rollup rows of ``tenant`` (or ``ALL_TENANTS``) older than ``before``, but
    never those of the last ``ROLLUP_KEPT``; the number deleted."""
    before = min(before, db_minute() - ROLLUP_KEPT)
    deleted, _ = JobRollup.objects.filter(tenant_scope(tenant), minute__lt=before).delete()
    return deleted
