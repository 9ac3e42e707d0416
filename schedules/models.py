"""A tenant's schedules. The table is ``job_schedule``, created by the jobs app's
migration 0008 before this app existed (``migrations/0001_initial`` takes it over in
Django's state only)."""

from django.db import models
from django.db.models import Q


class Schedule(models.Model):
    """A job enqueued on a cron schedule, in its tenant (``schedules.services``).

    Written through ``schedules.services`` (validated: type, payload, cron, timezone);
    ``next_run_at`` is when the next tick is due, ``last_tick_at`` and ``last_job_id`` what
    the latest tick enqueued.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=100, help_text="A registered job type.")
    payload = models.JSONField(default=dict, blank=True)
    cron = models.CharField(
        max_length=200,
        help_text="5 fields (minute hour day month weekday) or 6 (seconds first).",
    )
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA name.")
    enabled = models.BooleanField(default=True)
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_tick_at = models.DateTimeField(null=True, blank=True, editable=False)
    # No foreign key: finished jobs are deleted in SQL (cleanup_jobs), and the id outlives
    # its job.
    last_job_id = models.UUIDField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(db_default=models.functions.Now(), editable=False)

    class Meta:
        db_table = "job_schedule"
        constraints = [
            models.UniqueConstraint("tenant", "name", name="job_schedule_tenant_name_uniq"),
        ]
        indexes = [
            # The tick: enabled schedules that are due.
            models.Index("next_run_at", name="job_schedule_due_idx", condition=Q(enabled=True)),
        ]

    def __str__(self) -> str:
        return self.name
