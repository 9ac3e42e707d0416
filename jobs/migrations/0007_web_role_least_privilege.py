"""The web role holds only what tenant-host requests use (tenants/row_security.py).

``0005_row_level_security`` let ``tenant_jobs_web`` read and write every table and
sequence of the public schema, and every table later migrations create there (default
privileges). A request on a tenant host needs far less:

- ``tenants_tenant``: SELECT (a login reads the user's tenant for the token's claim);
- ``accounts_user``: SELECT, and UPDATE of ``password`` alone (a login re-hashes a password
  stored with an outdated hasher);
- ``job_queue``: SELECT, INSERT, UPDATE (list, detail, submit with its idempotency key,
  cancel); never DELETE;
- ``token_blacklist_outstandingtoken``, ``token_blacklist_blacklistedtoken``: SELECT,
  INSERT (refresh and logout check the refresh token sent is not revoked, then revoke it).

Everything else is revoked: all other tables (sessions, domains, permissions, the migration
history…), every sequence (identity columns need none), and every default privilege the web
role had in this database (0005 set them for the migrating role; another role's need that
role's membership), so tables created later give it nothing. Tenant schemas were never
granted, and new tenants' schemas grant nothing: their tables are written by job handlers
in workers, which run as the login role. Foreign-key checks run as the referenced table's
owner, so no REFERENCES is needed. A later migration adding a table a request uses grants
it there, and tests/security/test_web_role.py lists it.

Reversing restores 0005's grants.
"""

from django.db import migrations

GRANTS = """
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM tenant_jobs_web;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM tenant_jobs_web;
DO $$
DECLARE
    entry record;
BEGIN
    FOR entry IN
        SELECT d.defaclrole::regrole AS owner,
               CASE WHEN d.defaclnamespace = 0 THEN ''
                    ELSE 'IN SCHEMA ' || d.defaclnamespace::regnamespace END AS scope,
               CASE d.defaclobjtype
                   WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS'
                   WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS'
               END AS objects
        FROM pg_default_acl d, aclexplode(d.defaclacl) a
        WHERE a.grantee = 'tenant_jobs_web'::regrole
    LOOP
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s %s REVOKE ALL ON %s FROM %I',
                       entry.owner, entry.scope, entry.objects, 'tenant_jobs_web');
    END LOOP;
END
$$;

GRANT SELECT ON public.tenants_tenant TO tenant_jobs_web;
GRANT SELECT, UPDATE (password) ON public.accounts_user TO tenant_jobs_web;
GRANT SELECT, INSERT, UPDATE ON public.job_queue TO tenant_jobs_web;
GRANT SELECT, INSERT ON public.token_blacklist_outstandingtoken,
    public.token_blacklist_blacklistedtoken TO tenant_jobs_web;
"""

# 0005's grants, as they were.
BROAD_GRANTS = """
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tenant_jobs_web;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO tenant_jobs_web;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO tenant_jobs_web;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO tenant_jobs_web;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0006_claim_walk_without_fk_index"),
        ("tenants", "0002_public_tenant"),
        ("accounts", "0001_initial"),
        ("token_blacklist", "0013_alter_blacklistedtoken_options_and_more"),
    ]

    operations = [migrations.RunSQL(GRANTS, BROAD_GRANTS)]
