"""The web role's privileges (jobs/migrations/0007): exactly the tables and verbs a request
on a tenant host uses, nothing on any other table, sequence or tenant schema, and nothing on
tables created later. Asked of PostgreSQL itself (``has_*_privilege``), for every object."""

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection

from accounts.models import User
from tenants import row_security as rls
from tests.conftest import TENANTS
from tests.factories import PASSWORD, UserFactory
from tests.security.conftest import login

pytestmark = pytest.mark.django_db

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")

# (table, privilege) pairs the web role holds in the public schema; every other pair of
# every relation there is false.
EXPECTED_TABLE_PRIVILEGES = {
    ("accounts_user", "SELECT"),
    ("job_log", "SELECT"),
    ("job_queue", "INSERT"),
    ("job_queue", "SELECT"),
    ("job_queue", "UPDATE"),
    ("tenants_tenant", "SELECT"),
    ("token_blacklist_blacklistedtoken", "INSERT"),
    ("token_blacklist_blacklistedtoken", "SELECT"),
    ("token_blacklist_outstandingtoken", "INSERT"),
    ("token_blacklist_outstandingtoken", "SELECT"),
}
# Privileges on single columns, beyond the table-level ones above.
EXPECTED_COLUMN_PRIVILEGES = {("accounts_user", "password", "UPDATE")}


def _rows(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _table_privileges(schema: str) -> tuple[set[str], set[tuple[str, str]]]:
    """Every relation of ``schema`` (tables, views, …), and the (relation, privilege) pairs
    the web role holds on them."""
    rows = _rows(
        "SELECT c.relname, p.privilege, has_table_privilege(%s, c.oid, p.privilege)"
        " FROM pg_class c CROSS JOIN unnest(%s::text[]) AS p(privilege)"
        " WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        [rls.WEB_ROLE, list(TABLE_PRIVILEGES), schema],
    )
    return {name for name, _, _ in rows}, {(name, priv) for name, priv, held in rows if held}


def _column_privileges(schema: str) -> set[tuple[str, str, str]]:
    """(table, column, privilege) held on a column without being held on its table."""
    rows = _rows(
        "SELECT c.relname, a.attname, p.privilege FROM pg_class c"
        " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) AS p(privilege)"
        " WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        " AND has_column_privilege(%s, c.oid, a.attnum, p.privilege)"
        " AND NOT has_table_privilege(%s, c.oid, p.privilege)",
        [schema, rls.WEB_ROLE, rls.WEB_ROLE],
    )
    return set(rows)


def _sequence_privileges(schema: str) -> tuple[set[str], set[tuple[str, str]]]:
    rows = _rows(
        "SELECT c.relname, p.privilege, has_sequence_privilege(%s, c.oid, p.privilege)"
        " FROM pg_class c CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p(privilege)"
        " WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'S'",
        [rls.WEB_ROLE, schema],
    )
    return {name for name, _, _ in rows}, {(name, priv) for name, priv, held in rows if held}


def _schema_privileges(schema: str) -> set[str]:
    rows = _rows(
        "SELECT p.privilege FROM unnest(ARRAY['USAGE', 'CREATE']) AS p(privilege)"
        " WHERE has_schema_privilege(%s, %s, p.privilege)",
        [rls.WEB_ROLE, schema],
    )
    return {privilege for (privilege,) in rows}


def test_the_web_role_holds_exactly_the_public_tables_and_verbs_requests_use():
    tables, held = _table_privileges("public")

    # Every table of the schema was asked about, those it must not write among them.
    assert {
        "django_session",
        "django_migrations",
        "tenants_domain",
        "auth_permission",
        "auth_group",
        "django_admin_log",
        "django_content_type",
    } <= tables
    assert {table for table, _ in EXPECTED_TABLE_PRIVILEGES} <= tables
    assert held == EXPECTED_TABLE_PRIVILEGES
    assert _column_privileges("public") == EXPECTED_COLUMN_PRIVILEGES
    # It may look up names in the schema, never create anything there.
    assert _schema_privileges("public") == {"USAGE"}


def test_the_web_role_holds_no_sequence():
    sequences, held = _sequence_privileges("public")
    assert "token_blacklist_blacklistedtoken_id_seq" in sequences
    assert held == set()


def test_tenant_schemas_give_the_web_role_nothing(acme, globex):
    """acme's and globex's schemas were created after every migration had run, as a new
    tenant's would be."""
    schemas = [schema for (schema,) in _rows("SELECT schema_name FROM tenants_tenant")]
    assert {"acme", "globex"} <= set(schemas)
    for schema in set(schemas) - {"public"}:
        tables, held_tables = _table_privileges(schema)
        _, held_sequences = _sequence_privileges(schema)
        assert "documents_document" in tables
        assert (held_tables, held_sequences, _column_privileges(schema)) == (set(), set(), set())
        assert _schema_privileges(schema) == set()


def test_tables_created_later_give_the_web_role_nothing():
    assert (
        _rows(
            "SELECT d.defaclobjtype FROM pg_default_acl d, aclexplode(d.defaclacl) a"
            " WHERE a.grantee = %s::regrole",
            [rls.WEB_ROLE],
        )
        == []
    )
    # What a later migration would do (rolled back with the test's transaction).
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE public.web_role_probe (id bigint GENERATED BY DEFAULT AS IDENTITY)"
        )
        cursor.execute("CREATE SEQUENCE public.web_role_probe_seq")
    _, held_tables = _table_privileges("public")
    _, held_sequences = _sequence_privileges("public")
    assert not {pair for pair in held_tables if pair[0] == "web_role_probe"}
    assert held_sequences == set()


def test_a_login_that_upgrades_the_password_hash_writes_it_as_the_web_role(settings, acme):
    """Django re-hashes a password stored with another hasher when it logs in: the one
    UPDATE a tenant-host request makes on accounts_user."""
    settings.PASSWORD_HASHERS = [
        *settings.PASSWORD_HASHERS,
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    user = UserFactory(username="old-hash", tenant=acme)
    old_hash = PBKDF2PasswordHasher().encode(PASSWORD, "somesalt1234", iterations=1000)
    User.objects.filter(pk=user.pk).update(password=old_hash)

    response = login(TENANTS["acme"], "old-hash")

    assert response.status_code == 200, response.content
    user.refresh_from_db()
    assert user.password != old_hash
    assert user.check_password(PASSWORD)
