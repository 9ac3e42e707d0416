"""``job_queue_search_idx``: the admin's search in job errors and payloads, a GIN index of
their words (``jobs.models.SEARCH_VECTOR``). Built concurrently, as 0019 explains, from
the model's own index definition so the SQL cannot drift from the query's expression."""

from django.db import migrations

from jobs.models import Job

INDEX_NAME = "job_queue_search_idx"


def _index():
    return next(index for index in Job._meta.indexes if index.name == INDEX_NAME)


def create(apps, schema_editor):
    model = apps.get_model("jobs", "Job")
    sql = str(_index().create_sql(model, schema_editor, concurrently=True))
    schema_editor.execute(
        sql.replace("CREATE INDEX CONCURRENTLY", "CREATE INDEX CONCURRENTLY IF NOT EXISTS", 1)
    )


def drop(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX_NAME}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("jobs", "0026_worker_registry")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(create, drop)],
            state_operations=[migrations.AddIndex(model_name="job", index=_index())],
        ),
    ]
