"""The project's user and job tables as the peer reads them (unmanaged: never migrated)."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    tenant_id = models.IntegerField(null=True)

    class Meta:
        managed = False
        db_table = "accounts_user"


class Job(models.Model):
    id = models.UUIDField(primary_key=True)
    tenant_id = models.IntegerField()
    created_by = models.IntegerField(null=True, db_column="created_by_id")
    type = models.CharField(max_length=100)
    status = models.CharField(max_length=16)
    payload = models.JSONField()
    result = models.JSONField(null=True)
    error = models.TextField()
    queue = models.CharField(max_length=64)
    priority = models.SmallIntegerField()
    run_at = models.DateTimeField()
    attempts = models.SmallIntegerField()
    progress = models.SmallIntegerField(null=True)
    progress_message = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True)
    completed_at = models.DateTimeField(null=True)

    class Meta:
        managed = False
        db_table = "job_queue"

    def __str__(self):
        return f"{self.type} {self.id}"
