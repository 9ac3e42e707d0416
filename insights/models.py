"""The rollup of finished runs. The table is ``job_rollup``, created by the jobs app's
migration 0013 before this app existed (``migrations/0001_initial`` takes it over in
Django's state only).

Durations are counted in log-scale buckets of a fixed relative error (DDSketch's mapping):
bucket ``i`` holds the durations in ``(GAMMA**(i-1), GAMMA**i]`` and reads as the one value
within ``RELATIVE_ERROR`` of both ends, so a quantile read from the counts is within
``RELATIVE_ERROR`` of the run at that rank, for any duration from ``MIN_SECONDS`` to
``MAX_SECONDS`` (shorter ones read as ``MIN_SECONDS``, longer ones as ``MAX_SECONDS``).
"""

import math

from django.db import models

RELATIVE_ERROR = 0.02
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
MIN_SECONDS = 0.001
MAX_SECONDS = 100 * 86_400.0  # past the longest range the dashboard shows (30 days)


def bucket_of(seconds: float) -> int:
    """The index of the bucket that counts a duration of ``seconds`` (clamped to
    ``MIN_SECONDS`` … ``MAX_SECONDS``): one of 573 indexes, -172 to 400."""
    clamped = min(max(seconds, MIN_SECONDS), MAX_SECONDS)
    return math.ceil(math.log(clamped) / math.log(GAMMA))


def bucket_value(index: int) -> float:
    """What bucket ``index`` reads as: within ``RELATIVE_ERROR`` of every duration in it."""
    return 2 * GAMMA**index / (GAMMA + 1)


class JobRollup(models.Model):
    """Per tenant, minute, queue and job type: the runs that ended completed or failed, and
    histograms of their wait (due → start) and run time. Upserted as each run ends
    (``insights.services``), so the dashboard and ``jobs_stats`` never scan ``job_queue``'s
    history."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField()
    queue = models.CharField(max_length=64)
    type = models.CharField(max_length=100)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Sparse histograms: JSON objects of bucket index (``bucket_of``, as a string) → runs,
    # only the buckets that counted any.
    wait_buckets = models.JSONField()
    run_buckets = models.JSONField()

    class Meta:
        db_table = "job_rollup"
        constraints = [
            models.UniqueConstraint(
                "tenant", "minute", "queue", "type", name="job_rollup_one_row_per_minute"
            ),
        ]
        indexes = [models.Index("minute", name="job_rollup_minute_idx")]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.queue} {self.type}"
