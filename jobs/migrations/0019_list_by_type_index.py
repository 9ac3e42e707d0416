"""``job_queue_tenant_type_idx``: a tenant's jobs of one type, newest first (``GET
/api/jobs?type=``), without reading the tenant's other jobs. Built concurrently: the table
stays writable while it is."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0018_webhook_delivery_deleted_with_its_job"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                models.F("tenant"),
                models.F("type"),
                models.OrderBy(models.F("created_at"), descending=True),
                models.OrderBy(models.F("id"), descending=True),
                name="job_queue_tenant_type_idx",
            ),
        ),
    ]
