"""The database's clock, the one every worker and web process shares."""

from datetime import datetime

from django.db import connection


def db_now() -> datetime:
    """PostgreSQL's ``statement_timestamp()``, as Django's ``Now()`` reads it in SQL
    (``now()`` would be the start of the current transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]
