"""Per-job logs (``JobLogLine``, table ``job_log``) and the job's ``traceparent``.

``job_log`` carries its job's ``tenant_id`` and gets exactly 0005's row-level security, from
0005's template (as 0015 and 0025 gave the tables before it): RLS enabled and FORCEd,
``job_log_tenant_isolation`` for ``tenant_jobs_web`` (its tenant's rows only) and
``job_log_service`` for ``tenant_jobs_service`` (every row: the worker writing the lines,
the admin and ``cleanup_jobs`` run as the login role, a member of it).

Grants: SELECT to the web role, the one verb ``GET /api/jobs/{id}/logs`` uses (0007 keeps
it to what requests use; tests/security/test_web_role.py lists it). The lines cascade in
PostgreSQL with their job, so the batched raw DELETEs of finished jobs
(``jobs.services.jobs_delete_finished``) take them too, as 0009 did for attempts.

``traceparent``: a W3C trace context (55 characters), "" when tracing is off.
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models

_rls_0005 = importlib.import_module("jobs.migrations.0005_row_level_security")

FK_CASCADE = """
ALTER TABLE public.job_log ADD CONSTRAINT job_log_job_id_fk
    FOREIGN KEY (job_id) REFERENCES public.job_queue (id)
    ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED;
"""
FK_DROP = "ALTER TABLE public.job_log DROP CONSTRAINT job_log_job_id_fk;"


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0027_job_search"),
        ("tenants", "0004_flow_control"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="traceparent",
            field=models.CharField(
                blank=True, db_default="", default="", editable=False, max_length=55
            ),
        ),
        migrations.CreateModel(
            name="JobLogLine",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("attempt", models.PositiveSmallIntegerField()),
                ("logged_at", models.DateTimeField()),
                ("level", models.CharField(max_length=10)),
                ("logger", models.CharField(max_length=100)),
                ("message", models.TextField()),
                (
                    "job",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="log",
                        to="jobs.job",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "db_table": "job_log",
                "ordering": ("id",),
            },
        ),
        migrations.RunSQL(FK_CASCADE, FK_DROP),
        migrations.RunSQL(
            _rls_0005.POLICIES.format(table="job_log"),
            _rls_0005.DROP_POLICIES.format(table="job_log"),
        ),
        migrations.RunSQL(
            "GRANT SELECT ON public.job_log TO tenant_jobs_web;",
            "REVOKE ALL ON public.job_log FROM tenant_jobs_web;",
        ),
    ]
