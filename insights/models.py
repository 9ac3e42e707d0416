"""The rollup of finished runs. The table is ``job_rollup``, created by the jobs app's
migration 0013 before this app existed (``migrations/0001_initial`` takes it over in
Django's state only)."""

from django.db import models

# Upper bounds (seconds) of the duration buckets of JobRollup: counts per bucket give the
# dashboard's p50/p95 without reading job_queue; the last bucket is everything above.
ROLLUP_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
# The counts of one histogram: one per bucket, and one above the largest bound.
SLOTS = len(ROLLUP_BUCKETS) + 1


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
    # JSON arrays of SLOTS counts (the last: above the largest bound).
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
