"""The state of flow control, in the public schema beside ``job_queue``.

``LimitBudget`` rows are written by the claim only (admission, the database function
``flow_admit`` of migration 0030, and ``jobs.sql.MARK_THROTTLED``, the throttled hint of
the budgets the candidates found spent);
``Pause`` and ``LimitOverride`` rows by staff and operators through ``jobs.flow.services``,
which writes a ``FlowAuditEntry`` for each change.
"""

from django.db import models


class LimitBudget(models.Model):
    """One budget of a limit (``jobs.flow.limits.Limit.key``): the figures the last claim
    applied, the rate limit's token bucket, and whether that claim left jobs waiting on it.
    Running units are not stored: the claim counts them from ``job_queue``."""

    key = models.CharField(max_length=100, primary_key=True)
    concurrency = models.IntegerField(null=True)
    rate = models.FloatField(null=True, help_text="Units started per second.")
    burst = models.FloatField(null=True)
    tokens = models.FloatField(default=0)
    refreshed_at = models.DateTimeField(db_default=models.functions.Now())
    # Jobs were left pending on this budget at the last claim that looked at it.
    throttled = models.BooleanField(default=False)

    class Meta:
        db_table = "flow_budget"

    def __str__(self) -> str:
        return self.key


class PauseScope(models.TextChoices):
    QUEUE = "queue"
    TYPE = "type"
    TENANT = "tenant"


class Pause(models.Model):
    """Nothing of a paused queue, job type or tenant is claimed; its jobs stay pending and
    running ones run on. ``target``: the queue's or type's name, or the tenant's id."""

    scope = models.CharField(max_length=16, choices=PauseScope.choices)
    target = models.CharField(max_length=100)
    reason = models.CharField(max_length=200, blank=True, default="")
    paused_by = models.CharField(max_length=150)
    paused_at = models.DateTimeField(db_default=models.functions.Now())

    class Meta:
        db_table = "flow_pause"
        constraints = [
            models.UniqueConstraint("scope", "target", name="flow_pause_scope_target_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.target}"


class LimitOverride(models.Model):
    """Staff's figures for one tenant's budget of a tenant or plan limit, in place of its
    plan's or the limit's own (``jobs.flow.limits.figures_for``)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    limit = models.CharField(max_length=64)
    figures = models.JSONField(help_text='e.g. {"concurrency": 10} or {"rate": "5/s"}')
    reason = models.CharField(max_length=200, blank=True, default="")
    changed_by = models.CharField(max_length=150)
    changed_at = models.DateTimeField(db_default=models.functions.Now())

    class Meta:
        db_table = "flow_limit_override"
        constraints = [models.UniqueConstraint("tenant", "limit", name="flow_limit_override_uniq")]

    def __str__(self) -> str:
        return f"{self.limit} for tenant {self.tenant_id}"


class FlowAuditEntry(models.Model):
    """One change of flow control (pause, resume, override set or removed): who, when,
    what. Written in the change's transaction; never updated."""

    at = models.DateTimeField(db_default=models.functions.Now())
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=32)
    target = models.CharField(max_length=200)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "flow_audit"
        ordering = ("-at", "-id")
        verbose_name_plural = "flow audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"
