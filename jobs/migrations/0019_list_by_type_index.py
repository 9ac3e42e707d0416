"""``job_queue_tenant_type_idx``: a tenant's jobs of one type, newest first (``GET
/api/jobs?type=``), without reading the tenant's other jobs. Built concurrently: the table
stays writable while it is.

Raw ``CREATE INDEX CONCURRENTLY`` rather than ``AddIndexConcurrently``: that operation
refuses to run inside a transaction before asking the router, and django-tenants migrates
a new tenant's schema inside one (where this public-schema index is skipped anyway)."""

from django.db import migrations, models

INDEX = models.Index(
    models.F("tenant"),
    models.F("type"),
    models.OrderBy(models.F("created_at"), descending=True),
    models.OrderBy(models.F("id"), descending=True),
    name="job_queue_tenant_type_idx",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0018_webhook_delivery_deleted_with_its_job"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "CREATE INDEX CONCURRENTLY IF NOT EXISTS job_queue_tenant_type_idx"
                    " ON job_queue (tenant_id, type, created_at DESC, id DESC)",
                    reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS job_queue_tenant_type_idx",
                ),
            ],
            state_operations=[migrations.AddIndex(model_name="job", index=INDEX)],
        ),
    ]
