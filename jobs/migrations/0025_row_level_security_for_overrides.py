"""Row-level security on ``flow_limit_override`` (0023), the one tenant-keyed table of flow
control, with exactly 0005's policies, as 0015 gave the tables before it: RLS enabled and
FORCEd, ``flow_limit_override_tenant_isolation`` for ``tenant_jobs_web`` (its tenant's rows
only) and ``flow_limit_override_service`` for ``tenant_jobs_service`` (every row: the
claim, the admin and ``jobs_flow`` run as the login role, a member of it).

Grants: none; the web role holds nothing on it (0007). ``flow_budget``, ``flow_pause`` and
``flow_audit`` carry no ``tenant_id`` column: the web role holds nothing on them either,
and the poll reads them only through ``job_waiting`` (0024), which answers for the
request's tenant alone.
"""

import importlib

from django.db import migrations

_rls_0005 = importlib.import_module("jobs.migrations.0005_row_level_security")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0024_job_waiting")]

    operations = [
        migrations.RunSQL(
            _rls_0005.POLICIES.format(table="flow_limit_override"),
            _rls_0005.DROP_POLICIES.format(table="flow_limit_override"),
        ),
        migrations.RunSQL(
            "REVOKE ALL ON public.flow_limit_override FROM tenant_jobs_web;",
            migrations.RunSQL.noop,
        ),
    ]
