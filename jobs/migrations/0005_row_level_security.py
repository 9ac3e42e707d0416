"""Row-level security on the tenant-keyed tables of the public schema (tenants/row_security.py).

- Roles (cluster-wide, created once, never dropped: other databases of the cluster may use
  them): ``tenant_jobs_web``, the role web requests on tenant hosts run as, and
  ``tenant_jobs_service``, the bypass. Both NOLOGIN and without BYPASSRLS. The role running
  this migration (the application's login role) becomes a member of both: it may
  ``SET ROLE tenant_jobs_web``, and it passes the service policy. Creating roles needs
  CREATEROLE (or a DBA who created them beforehand; docs/security.md "Database roles").
- Grants: the web role may read and write the public schema's tables (not alter, own or
  truncate them), now and those later migrations create. It has no access to tenant
  schemas: handlers, not web requests, write business data.
- ``job_queue`` and ``accounts_user``: RLS enabled and FORCEd (the owner is subject too);
  the web role sees and writes only rows whose ``tenant_id`` equals the transaction's
  ``app.tenant_id`` (none when it is unset); the service role sees everything.

Idempotent: safe to run on a cluster where another database already created the roles,
including concurrently (test runs sharing one server).
"""

from django.db import migrations

ROLES = """
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['tenant_jobs_web', 'tenant_jobs_service'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) THEN
            BEGIN
                EXECUTE format(
                    'CREATE ROLE %I NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT '
                    'NOREPLICATION NOBYPASSRLS', name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a migration of another database
            END;
        END IF;
        -- USAGE: inherited membership (PostgreSQL 16 gives a role's creator only ADMIN).
        -- A superuser counts as a member of everything and needs no grant.
        IF NOT pg_has_role(current_user, name, 'USAGE') THEN
            EXECUTE format('GRANT %I TO CURRENT_USER', name);
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO tenant_jobs_web;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tenant_jobs_web;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO tenant_jobs_web;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO tenant_jobs_web;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO tenant_jobs_web;
"""

POLICIES = """
ALTER TABLE public.{table} ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.{table} FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS {table}_tenant_isolation ON public.{table};
CREATE POLICY {table}_tenant_isolation ON public.{table} FOR ALL TO tenant_jobs_web
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint)
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::bigint);
DROP POLICY IF EXISTS {table}_service ON public.{table};
CREATE POLICY {table}_service ON public.{table} FOR ALL TO tenant_jobs_service
    USING (true) WITH CHECK (true);
"""

DROP_POLICIES = """
DROP POLICY IF EXISTS {table}_tenant_isolation ON public.{table};
DROP POLICY IF EXISTS {table}_service ON public.{table};
ALTER TABLE public.{table} NO FORCE ROW LEVEL SECURITY;
ALTER TABLE public.{table} DISABLE ROW LEVEL SECURITY;
"""

REVOKE = """
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM tenant_jobs_web;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM tenant_jobs_web;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM tenant_jobs_web;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM tenant_jobs_web;
"""

TABLES = ("job_queue", "accounts_user")


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0004_admin_list_index"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(ROLES, REVOKE),
        *(
            migrations.RunSQL(POLICIES.format(table=table), DROP_POLICIES.format(table=table))
            for table in TABLES
        ),
    ]
