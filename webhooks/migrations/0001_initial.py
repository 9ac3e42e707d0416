"""Webhook endpoints and deliveries move from the jobs app to their own, with their tables
(``job_webhook_endpoint`` and ``job_webhook_delivery``, made by jobs' migrations 0010 to
0018, the delivery's cascading foreign key to its job included): this app takes the models
over in Django's state only, and jobs' 0022 drops them from its own state; the database is
not touched. The content types move with the models, so permissions granted on them still
hold."""

import uuid

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from core.moved_models import move_content_types


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0021_rollup_moved_to_insights"),
        ("tenants", "0003_allowed_origins"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="WebhookEndpoint",
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
                        ("url", models.URLField(max_length=2000)),
                        (
                            "secret",
                            models.CharField(
                                help_text="whsec_ then base64 of 24 to 64 random bytes.",
                                max_length=200,
                            ),
                        ),
                        (
                            "statuses",
                            models.JSONField(
                                default=list, help_text="The final statuses delivered."
                            ),
                        ),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "swept_until",
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
                    options={"db_table": "job_webhook_endpoint"},
                ),
                migrations.CreateModel(
                    name="WebhookDelivery",
                    fields=[
                        (
                            "id",
                            models.UUIDField(
                                default=uuid.uuid4,
                                editable=False,
                                primary_key=True,
                                serialize=False,
                            ),
                        ),
                        ("job_status", models.CharField(max_length=16)),
                        ("attempts", models.JSONField(blank=True, default=list)),
                        ("delivered_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "created_at",
                            models.DateTimeField(
                                db_default=django.db.models.functions.datetime.Now(),
                                editable=False,
                            ),
                        ),
                        (
                            "job",
                            models.ForeignKey(
                                db_constraint=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="jobs.job",
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
                        (
                            "endpoint",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="deliveries",
                                to="webhooks.webhookendpoint",
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "webhook deliveries",
                        "db_table": "job_webhook_delivery",
                        "indexes": [
                            models.Index(
                                models.F("tenant"),
                                models.OrderBy(models.F("created_at"), descending=True),
                                name="job_webhook_delivery_recent",
                            )
                        ],
                        "constraints": [
                            models.UniqueConstraint(
                                models.F("endpoint"),
                                models.F("job_id"),
                                name="job_webhook_delivery_once",
                            )
                        ],
                    },
                ),
            ],
        ),
        move_content_types("jobs", "webhooks", ["webhookendpoint", "webhookdelivery"]),
    ]
