"""The worker registry (``jobs.models.WorkerProcess``, table ``job_worker``): one row per
running worker process, written by its heartbeat. No ``tenant_id``, so no row security;
the web role holds nothing on it (0007 revoked its default privileges): the Workers page,
``jobs_stats`` and ``/readyz`` read it as the login role."""

import django.contrib.postgres.fields
import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0025_row_level_security_for_overrides'),
    ]

    operations = [
        migrations.CreateModel(
            name='WorkerProcess',
            fields=[
                ('worker_id', models.CharField(max_length=100, primary_key=True, serialize=False)),
                ('host', models.CharField(max_length=255)),
                ('pid', models.IntegerField()),
                ('queues', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=100))),
                ('pools', models.JSONField()),
                ('concurrency', models.IntegerField()),
                ('running_job_ids', django.contrib.postgres.fields.ArrayField(base_field=models.UUIDField(), default=list)),
                ('version', models.CharField(max_length=100)),
                ('started_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ('last_beat_at', models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
            options={
                'verbose_name': 'worker',
                'db_table': 'job_worker',
                'ordering': ('host', 'started_at', 'worker_id'),
            },
        ),
    ]
