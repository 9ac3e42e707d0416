"""The database backend never sets a session-level search_path (tenants.postgresql_backend).

Each case reads what reached PostgreSQL from Django's query log and what the *session*
kept from ``SHOW search_path`` on the driver's connection, outside any transaction: a
session path other than the server default is what a transaction pooler hands to the next
client.
"""

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context, tenant_context

from documents.models import Document
from tenants.search_path import without_search_path

pytestmark = pytest.mark.django_db(transaction=True)

ACME_PATH = "SELECT set_config('search_path', '\"acme\",\"public\"', true)"


def session_search_path() -> str:
    return connection.connection.execute("SHOW search_path").fetchone()[0]


@pytest.fixture
def default_path(acme, globex):
    """The session's path before the test; the tenants' documents emptied (a flush
    between transactional tests empties the public schema only)."""
    with connection.cursor() as cursor:
        cursor.execute('TRUNCATE "acme".documents_document, "globex".documents_document')
    return session_search_path()


def statements(captured) -> list[str]:
    return [query["sql"] for query in captured]


def test_an_autocommit_statement_in_a_tenant_schema_runs_in_a_transaction_of_its_own(
    acme, default_path
):
    with tenant_context(acme), CaptureQueriesContext(connection) as captured:
        Document.objects.create(title="a")
    begin, insert, commit = statements(captured)
    assert begin == f"BEGIN; {ACME_PATH}"
    assert insert.startswith('INSERT INTO "documents_document"')
    assert commit == "COMMIT"
    assert session_search_path() == default_path
    with schema_context("acme"):
        assert Document.objects.filter(title="a").exists()


def test_a_transaction_sets_the_tenant_path_once_and_only_for_itself(acme, globex, default_path):
    with CaptureQueriesContext(connection) as captured, transaction.atomic():
        with tenant_context(acme):
            Document.objects.create(title="a1")
            Document.objects.create(title="a2")
        with tenant_context(globex):
            Document.objects.create(title="g1")
        Document.objects.none()  # no statement: nothing sent
        with tenant_context(acme):
            assert Document.objects.count() == 2
    sent = statements(captured)
    assert (sent[0], sent[1], sent[-1]) == ("BEGIN", ACME_PATH, "COMMIT")
    assert sent[4] == "SELECT set_config('search_path', '\"globex\",\"public\"', true)"
    assert sent[6] == ACME_PATH
    assert len(sent) == 9
    assert session_search_path() == default_path
    with schema_context("globex"):
        assert list(Document.objects.values_list("title", flat=True)) == ["g1"]


def test_back_in_public_inside_the_transaction_the_public_path_is_restored(acme, default_path):
    with transaction.atomic():
        with tenant_context(acme):
            Document.objects.exists()
        with CaptureQueriesContext(connection) as captured:
            Document.objects.none().exists()
            connection.cursor().execute("SELECT 1")
        assert statements(captured)[0] == "SELECT set_config('search_path', '\"public\"', true)"
        assert connection.connection.execute("SHOW search_path").fetchone()[0] == '"public"'


def test_a_rolled_back_savepoint_takes_the_path_with_it_and_it_is_set_again(acme, default_path):
    with transaction.atomic():
        connection.cursor().execute("SELECT 1")
        try:
            with transaction.atomic(), tenant_context(acme):  # the path is set after SAVEPOINT
                Document.objects.create(title="undone")
                raise RuntimeError
        except RuntimeError:
            pass
        with tenant_context(acme), CaptureQueriesContext(connection) as captured:
            Document.objects.create(title="kept")
        assert statements(captured)[0] == ACME_PATH
    with schema_context("acme"):
        assert list(Document.objects.values_list("title", flat=True)) == ["kept"]


def test_public_statements_in_autocommit_are_sent_as_they_are(acme):
    with CaptureQueriesContext(connection) as captured:
        connection.cursor().execute("SELECT 1")
    assert statements(captured) == ["SELECT 1"]


def test_statements_that_name_their_schema_skip_the_path(acme):
    with tenant_context(acme), without_search_path(), CaptureQueriesContext(connection) as c:
        connection.cursor().execute('SELECT count(*) FROM "acme".documents_document')
    assert statements(c) == ['SELECT count(*) FROM "acme".documents_document']


def test_a_failing_autocommit_statement_is_rolled_back_and_the_connection_goes_on(
    acme, default_path
):
    with tenant_context(acme):
        with pytest.raises(DatabaseError), CaptureQueriesContext(connection) as captured:
            connection.cursor().execute("SELECT no_such_column FROM documents_document")
        assert statements(captured)[-1] == "ROLLBACK"
        assert Document.objects.count() == 0
    assert session_search_path() == default_path
