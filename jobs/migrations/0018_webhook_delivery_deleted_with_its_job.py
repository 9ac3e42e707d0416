"""A webhook delivery is deleted with its job (``WebhookDelivery.job``), as its attempts are:
the foreign key cascades in PostgreSQL too, so the batched raw DELETEs of finished jobs
(``cleanup_jobs``) take the deliveries with them. Deliveries whose job is already gone are
deleted first; the index serves the cascade."""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
DELETE FROM public.job_webhook_delivery AS delivery
WHERE NOT EXISTS (SELECT 1 FROM public.job_queue AS job WHERE job.id = delivery.job_id);
CREATE INDEX job_webhook_delivery_job_id ON public.job_webhook_delivery (job_id);
ALTER TABLE public.job_webhook_delivery ADD CONSTRAINT job_webhook_delivery_job_id_fk
    FOREIGN KEY (job_id) REFERENCES public.job_queue (id)
    ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
"""
BACKWARD = """
ALTER TABLE public.job_webhook_delivery DROP CONSTRAINT job_webhook_delivery_job_id_fk;
DROP INDEX public.job_webhook_delivery_job_id;
"""


class Migration(migrations.Migration):
    dependencies = [("jobs", "0017_attempt_exception_class")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.RemoveField(model_name="webhookdelivery", name="job_id"),
                migrations.AddField(
                    model_name="webhookdelivery",
                    name="job",
                    field=models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="jobs.job",
                    ),
                    preserve_default=False,
                ),
            ],
        ),
    ]
