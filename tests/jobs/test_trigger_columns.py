"""The ``job_changed`` trigger (migration ``jobs/0003``) watches exactly the columns the
poll's ETag is made of (``jobs.models.REPRESENTED_COLUMNS``).

Read from PostgreSQL as migrated, not from the migration's text: a later migration that
redefines the trigger is what counts.
"""

import re

import pytest
from django.db import connection

from jobs.models import REPRESENTED_COLUMNS

pytestmark = pytest.mark.django_db

# pg_get_triggerdef writes each comparison as ``(old.status)::text IS DISTINCT FROM
# (new.status)::text``, quoting a column name only where SQL needs it.
_COMPARISON = re.compile(
    r'\(?old\.("?)(?P<old>\w+)\1\)?(?:::[\w ]+)?\s+IS DISTINCT FROM\s+'
    r'\(?new\.("?)(?P<new>\w+)\3\)?(?:::[\w ]+)?',
    re.IGNORECASE,
)


def _trigger_definition() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t"
            " WHERE t.tgrelid = 'public.job_queue'::regclass AND t.tgname = 'job_queue_changed'"
        )
        (row,) = cursor.fetchall()
    return row[0]


def watched_columns(definition: str) -> set[str]:
    """The columns of ``definition``'s ``WHEN`` clause, each compared OLD against NEW."""
    when = re.search(r"\bWHEN\s*\((?P<condition>.*)\)\s*EXECUTE\b", definition, re.S)
    assert when, definition
    condition = when["condition"]
    comparisons = list(_COMPARISON.finditer(condition))
    assert all(match["old"] == match["new"] for match in comparisons), condition
    assert len(comparisons) == len(re.findall(r"\bold\.", condition, re.IGNORECASE)), (
        "every OLD column is compared with its NEW self",
        condition,
    )
    return {match["old"] for match in comparisons}


def test_the_trigger_fires_after_an_update_of_each_job_row():
    definition = _trigger_definition()
    assert "AFTER UPDATE ON public.job_queue FOR EACH ROW" in definition
    assert "EXECUTE FUNCTION job_queue_notify_changed()" in definition


def test_the_trigger_watches_exactly_the_represented_columns():
    assert watched_columns(_trigger_definition()) == set(REPRESENTED_COLUMNS)


def test_the_parser_reads_a_definition_as_postgresql_writes_it():
    """Guards the comparison above against a parser that reads nothing."""
    definition = (
        "CREATE TRIGGER t AFTER UPDATE ON public.job_queue FOR EACH ROW WHEN "
        '(((old.status)::text IS DISTINCT FROM (new.status)::text) OR (old."order" IS '
        'DISTINCT FROM new."order")) EXECUTE FUNCTION f()'
    )
    assert watched_columns(definition) == {"status", "order"}
