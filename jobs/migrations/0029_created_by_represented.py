"""``created_by`` among the columns the poll represents: the ``job_changed`` trigger now also
watches ``created_by_id``, which becomes NULL when the user is deleted (the job shows
``created_by``; ``jobs.models.REPRESENTED_COLUMNS``). The trigger is 0009's plus that
column."""

import importlib

from django.db import migrations

_0009 = importlib.import_module("jobs.migrations.0009_job_attempts")

WITH_CREATED_BY = _0009.TRIGGER_WITH_RUN_AT.replace(
    "OR OLD.run_at IS DISTINCT FROM NEW.run_at",
    "OR OLD.run_at IS DISTINCT FROM NEW.run_at\n"
    "    OR OLD.created_by_id IS DISTINCT FROM NEW.created_by_id",
)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0028_job_log_and_traceparent")]

    operations = [migrations.RunSQL(WITH_CREATED_BY, _0009.TRIGGER_WITH_RUN_AT)]
