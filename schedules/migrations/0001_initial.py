"""Schedules move from the jobs app to their own, with their table (``job_schedule``, made
by jobs' migration 0008): this app takes the model over in Django's state only, and jobs'
0020 drops it from its own state; the database is not touched. The content type moves
with the model, so permissions granted on schedules still hold."""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from core.moved_models import move_content_types


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0019_list_by_type_index"),
        ("tenants", "0002_public_tenant"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Schedule",
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
                        ("name", models.CharField(max_length=100)),
                        (
                            "type",
                            models.CharField(help_text="A registered job type.", max_length=100),
                        ),
                        ("payload", models.JSONField(blank=True, default=dict)),
                        (
                            "cron",
                            models.CharField(
                                help_text=(
                                    "5 fields (minute hour day month weekday) or 6 (seconds "
                                    "first)."
                                ),
                                max_length=200,
                            ),
                        ),
                        (
                            "timezone",
                            models.CharField(default="UTC", help_text="IANA name.", max_length=64),
                        ),
                        ("enabled", models.BooleanField(default=True)),
                        (
                            "next_run_at",
                            models.DateTimeField(blank=True, editable=False, null=True),
                        ),
                        (
                            "last_tick_at",
                            models.DateTimeField(blank=True, editable=False, null=True),
                        ),
                        ("last_job_id", models.UUIDField(blank=True, editable=False, null=True)),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
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
                        "db_table": "job_schedule",
                        "indexes": [
                            models.Index(
                                models.F("next_run_at"),
                                condition=models.Q(("enabled", True)),
                                name="job_schedule_due_idx",
                            )
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                models.F("tenant"),
                                models.F("name"),
                                name="job_schedule_tenant_name_uniq",
                            )
                        ],
                    },
                ),
            ],
        ),
        move_content_types("jobs", "schedules", ["schedule"]),
    ]
