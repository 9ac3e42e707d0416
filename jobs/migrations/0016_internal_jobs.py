"""Internal jobs and the platform's own keys (``Job.internal``, ``Job.system_key``).

- ``internal``: existing ``webhooks.deliver`` jobs, the only internal type there has been,
  are marked; from now on ``services`` sets it from the job type at enqueue.
- ``system_key``: schedule ticks and webhook deliveries used to key their jobs
  ``schedule:<id>:<tick>`` and ``webhook:<delivery>`` in the clients' Idempotency-Key
  space, where a client could take a tick's key first. The keys those two wrote (no
  creator; a delivery's own type) move to ``system_key``, unique per tenant on its own; keys
  clients sent, whatever they look like, stay theirs.
- The tenant listing index gains ``internal`` after ``tenant``, so a tenant's list (which
  skips internal jobs) reads no internal row.

Not atomic: the indexes are built and dropped ``CONCURRENTLY``, so a large ``job_queue``
keeps taking writes meanwhile; each data step is one statement. The index statements are
``RunSQL`` rather than ``AddIndexConcurrently``: the router skips them when django-tenants
migrates a new tenant's schema inside a transaction, where ``AddIndexConcurrently`` refuses
to run at all.
"""

from django.db import migrations, models

MARK_INTERNAL = "UPDATE job_queue SET internal = true WHERE type = 'webhooks.deliver'"

MOVE_KEYS = """
UPDATE job_queue SET system_key = idempotency_key, idempotency_key = ''
WHERE created_by_id IS NULL
  AND (idempotency_key LIKE 'schedule:%'
       OR (type = 'webhooks.deliver' AND idempotency_key LIKE 'webhook:%'))
"""

# Back to the shared space, unless a client has since taken the same key there.
RESTORE_KEYS = """
UPDATE job_queue AS job SET idempotency_key = job.system_key, system_key = ''
WHERE job.system_key <> '' AND NOT EXISTS (
    SELECT FROM job_queue client
    WHERE client.tenant_id = job.tenant_id AND client.idempotency_key = job.system_key
)
"""

LIST_INDEX = models.Index(
    models.F("tenant"),
    models.F("internal"),
    models.OrderBy(models.F("created_at"), descending=True),
    models.F("id"),
    name="job_queue_tenant_list_idx",
)
CREATE_LIST_INDEX = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS job_queue_tenant_list_idx "
    "ON job_queue (tenant_id, internal, created_at DESC, id)"
)
DROP_LIST_INDEX = "DROP INDEX CONCURRENTLY IF EXISTS job_queue_tenant_list_idx"
CREATE_OLD_LIST_INDEX = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS job_queue_tenant_created_idx "
    "ON job_queue (tenant_id, created_at DESC, id)"
)
DROP_OLD_LIST_INDEX = "DROP INDEX CONCURRENTLY IF EXISTS job_queue_tenant_created_idx"

SYSTEM_KEY_UNIQUE = models.UniqueConstraint(
    models.F("tenant"),
    models.F("system_key"),
    condition=~models.Q(system_key=""),
    name="job_queue_tenant_system_key_uniq",
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0015_row_level_security_for_tenant_tables"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="internal",
            field=models.BooleanField(db_default=False, default=False, editable=False),
        ),
        migrations.AddField(
            model_name="job",
            name="system_key",
            field=models.CharField(
                blank=True, db_default="", default="", editable=False, max_length=255
            ),
        ),
        migrations.RunSQL(MARK_INTERNAL, migrations.RunSQL.noop),
        migrations.RunSQL(MOVE_KEYS, RESTORE_KEYS),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "
                    "job_queue_tenant_system_key_uniq ON job_queue (tenant_id, system_key) "
                    "WHERE NOT (system_key = '')",
                    "DROP INDEX CONCURRENTLY IF EXISTS job_queue_tenant_system_key_uniq",
                ),
            ],
            state_operations=[
                migrations.AddConstraint(model_name="job", constraint=SYSTEM_KEY_UNIQUE),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(CREATE_LIST_INDEX, DROP_LIST_INDEX)],
            state_operations=[migrations.AddIndex(model_name="job", index=LIST_INDEX)],
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(DROP_OLD_LIST_INDEX, CREATE_OLD_LIST_INDEX)],
            state_operations=[
                migrations.RemoveIndex(model_name="job", name="job_queue_tenant_created_idx")
            ],
        ),
    ]
