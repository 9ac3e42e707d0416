"""``Job.batch_id``: the jobs of one ``POST /api/jobs/batch``, for an idempotent replay."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0010_webhooks"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="batch_id",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                models.F("batch_id"),
                condition=models.Q(("batch_id__isnull", False)),
                name="job_queue_batch_idx",
            ),
        ),
    ]
