"""A tenant's webhook endpoints and the deliveries made to them. The tables are
``job_webhook_endpoint`` and ``job_webhook_delivery``, created by the jobs app's migrations
0010 to 0018 before this app existed (``migrations/0001_initial`` takes them over in
Django's state only)."""

import uuid

from django.db import models

from jobs.models import Job


class WebhookEndpoint(models.Model):
    """A URL of a tenant told when its jobs end in one of ``statuses``
    (``webhooks.services``): validated on save (public address unless allowed, ``whsec_``
    secret, final statuses)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    secret = models.CharField(
        max_length=200, help_text="whsec_ then base64 of 24 to 64 random bytes."
    )
    statuses = models.JSONField(default=list, help_text="The final statuses delivered.")
    created_at = models.DateTimeField(db_default=models.functions.Now(), editable=False)
    # Jobs that ended before this have been looked at by the sweep (webhooks.services.sweep).
    swept_until = models.DateTimeField(db_default=models.functions.Now(), editable=False)

    class Meta:
        db_table = "job_webhook_endpoint"

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One job's ending told to one endpoint: its id is the ``webhook-id`` of every
    attempt; ``attempts`` lists each attempt's time, response status and body excerpt or
    error."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    # Deleted with its job: CASCADE in Python and in PostgreSQL, for the raw DELETEs of
    # finished jobs (cleanup_jobs); the constraint is jobs' migration 0018's, ON DELETE
    # CASCADE.
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    job_status = models.CharField(max_length=16)
    attempts = models.JSONField(default=list, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=models.functions.Now(), editable=False)

    class Meta:
        db_table = "job_webhook_delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint("endpoint", "job_id", name="job_webhook_delivery_once"),
        ]
        indexes = [
            models.Index(
                "tenant", models.F("created_at").desc(), name="job_webhook_delivery_recent"
            ),
        ]

    def __str__(self) -> str:
        return f"msg_{self.id.hex}"
