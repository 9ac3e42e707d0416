"""The rollup moves from the jobs app to this one, with its table (``job_rollup``, made by
jobs' migration 0013): this app takes the model over in Django's state only, and jobs' 0021
drops it from its own state; the database is not touched. The content type moves with the
model."""

import django.db.models.deletion
from django.db import migrations, models

from core.moved_models import move_content_types


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0020_schedule_moved_to_schedules"),
        ("tenants", "0003_allowed_origins"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="JobRollup",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("minute", models.DateTimeField()),
                        ("queue", models.CharField(max_length=64)),
                        ("type", models.CharField(max_length=100)),
                        ("completed", models.PositiveIntegerField(default=0)),
                        ("failed", models.PositiveIntegerField(default=0)),
                        ("wait_buckets", models.JSONField()),
                        ("run_buckets", models.JSONField()),
                        (
                            "tenant",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="tenants.tenant",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "job_rollup",
                        "indexes": [models.Index(models.F("minute"), name="job_rollup_minute_idx")],
                        "constraints": [
                            models.UniqueConstraint(
                                models.F("tenant"),
                                models.F("minute"),
                                models.F("queue"),
                                models.F("type"),
                                name="job_rollup_one_row_per_minute",
                            )
                        ],
                    },
                ),
            ],
        ),
        move_content_types("jobs", "insights", ["jobrollup"]),
    ]
