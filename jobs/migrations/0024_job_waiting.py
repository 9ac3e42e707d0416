"""``job_waiting(queue, type, tenant_id, limit_keys)``: why a due pending job is not running
yet, for the poll (``jobs.sql.POLL``): ``'paused'`` (its queue, type or tenant is paused),
``'throttled'`` (a budget it takes left jobs waiting at the last claim), else NULL.

The web role holds nothing on ``flow_pause`` and ``flow_budget`` (0007), so the function
runs as its owner (SECURITY DEFINER, a fixed search path) and answers only for the tenant
of the request's row-security transaction (``app.tenant_id``, when set) and only from that
tenant's budgets and the global ones: whatever it is passed, it tells nothing of another
tenant.
"""

from django.db import migrations

JOB_WAITING = """
CREATE FUNCTION job_waiting(job_queue_name text, job_type text, job_tenant bigint,
                            job_keys text[])
RETURNS text LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT CASE
        WHEN coalesce(nullif(current_setting('app.tenant_id', true), '')::bigint, job_tenant)
             <> job_tenant THEN NULL
        WHEN EXISTS (SELECT 1 FROM flow_pause p
                     WHERE (p.scope = 'queue' AND p.target = job_queue_name)
                        OR (p.scope = 'type' AND p.target = job_type)
                        OR (p.scope = 'tenant' AND p.target = job_tenant::text))
            THEN 'paused'
        WHEN EXISTS (SELECT 1 FROM flow_budget b
                     WHERE b.key = ANY(job_keys) AND b.throttled
                       AND (position(':' IN b.key) = 0 OR b.key LIKE ('%:' || job_tenant)))
            THEN 'throttled'
    END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("jobs", "0023_flow_control")]

    operations = [
        migrations.RunSQL(
            JOB_WAITING, "DROP FUNCTION IF EXISTS job_waiting(text, text, bigint, text[]);"
        )
    ]
