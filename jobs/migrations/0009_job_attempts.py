"""Attempt history (``JobAttempt``), and ``run_at`` among the columns the poll represents.

The attempts' foreign key also cascades in PostgreSQL, so the batched raw DELETEs of
finished jobs (``jobs.services.jobs_delete_finished``) take their attempts with them. The
``job_changed`` trigger now also watches ``run_at``: a failed job waiting for its retry
shows ``next_attempt_at`` (``jobs.models.REPRESENTED_COLUMNS``).
"""

import django.db.models.deletion
from django.db import migrations, models

FK_CASCADE = """
ALTER TABLE public.job_attempt ADD CONSTRAINT job_attempt_job_id_fk
    FOREIGN KEY (job_id) REFERENCES public.job_queue (id)
    ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
"""
FK_DROP = "ALTER TABLE public.job_attempt DROP CONSTRAINT job_attempt_job_id_fk;"

_TRIGGER = """
CREATE OR REPLACE TRIGGER job_queue_changed
AFTER UPDATE ON job_queue
FOR EACH ROW
WHEN (
    OLD.type IS DISTINCT FROM NEW.type
    OR OLD.status IS DISTINCT FROM NEW.status
    OR OLD.attempts IS DISTINCT FROM NEW.attempts
    OR OLD.progress IS DISTINCT FROM NEW.progress
    OR OLD.progress_message IS DISTINCT FROM NEW.progress_message
    OR OLD.result IS DISTINCT FROM NEW.result
    OR OLD.error IS DISTINCT FROM NEW.error
    OR OLD.started_at IS DISTINCT FROM NEW.started_at
    OR OLD.completed_at IS DISTINCT FROM NEW.completed_at%s
)
EXECUTE FUNCTION job_queue_notify_changed();
"""
TRIGGER_WITH_RUN_AT = _TRIGGER % "\n    OR OLD.run_at IS DISTINCT FROM NEW.run_at"
TRIGGER_WITHOUT_RUN_AT = _TRIGGER % ""


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0008_schedules"),
    ]

    operations = [
        migrations.CreateModel(
            name="JobAttempt",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveSmallIntegerField()),
                ("worker_id", models.CharField(max_length=100)),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("outcome", models.CharField(blank=True, default="", max_length=16)),
                ("error", models.CharField(blank=True, default="", max_length=500)),
                ("traceback", models.TextField(blank=True, default="")),
                (
                    "job",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempt_history",
                        to="jobs.job",
                    ),
                ),
            ],
            options={
                "db_table": "job_attempt",
                "ordering": ("started_at", "id"),
            },
        ),
        migrations.RunSQL(FK_CASCADE, FK_DROP),
        migrations.RunSQL(TRIGGER_WITH_RUN_AT, TRIGGER_WITHOUT_RUN_AT),
    ]
