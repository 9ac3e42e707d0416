"""Row-level security on the tenant-keyed tables added since 0005 (tenants/row_security.py).

``0005_row_level_security`` put ``job_queue`` and ``accounts_user`` under RLS; the tables
of schedules (0008), webhook endpoints and deliveries (0010) and the rollup (0013) each
carry a ``tenant_id`` too, and get exactly 0005's policies here, from 0005's own template:
RLS enabled and FORCEd, ``<table>_tenant_isolation`` for ``tenant_jobs_web`` (only rows
whose ``tenant_id`` is the transaction's ``app.tenant_id``, none when it is unset; writes
of another tenant's rows fail the ``WITH CHECK``) and ``<table>_service`` for
``tenant_jobs_service`` (every row). The workers, the admin (platform host, where tenant
staff use it too, scoped by ``jobs.admin``) and management commands run as the login role,
a member of the service role, so they keep seeing every tenant's rows.

Grants: none. No request on a tenant host reads or writes these tables (the API and the
console touch ``job_queue`` only; schedules, webhooks and the dashboard live in the admin
on the platform host), so, as 0007 requires, the web role holds nothing on them; the
REVOKE only makes sure of it. A later change that serves one of them on a tenant host
grants it there (tests/security/test_web_role.py), and the policies are already in place.

``job_attempt`` has no ``tenant_id`` (its job's tenant is its tenant) and is not covered;
the web role holds nothing on it either. ``tenants_domain`` is routing, public by design
(docs/security.md).

Reversing drops the policies and disables RLS on these four tables.
"""

import importlib

from django.db import migrations

# 0005's template, imported so both migrations emit the same policies (a module name that
# starts with a digit cannot be imported with an import statement).
_rls_0005 = importlib.import_module("jobs.migrations.0005_row_level_security")

TABLES = ("job_schedule", "job_webhook_endpoint", "job_webhook_delivery", "job_rollup")

REVOKE_WEB_ROLE = "REVOKE ALL ON {tables} FROM tenant_jobs_web;".format(
    tables=", ".join(f"public.{table}" for table in TABLES)
)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0014_webhook_delivery_plural"),
    ]

    operations = [
        *(
            migrations.RunSQL(
                _rls_0005.POLICIES.format(table=table),
                _rls_0005.DROP_POLICIES.format(table=table),
            )
            for table in TABLES
        ),
        migrations.RunSQL(REVOKE_WEB_ROLE, migrations.RunSQL.noop),
    ]
