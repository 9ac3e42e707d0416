import pytest
from django.db import connection


@pytest.fixture
def executions():
    """The table ``tests.tasks.record`` writes one row per execution into (created and
    dropped around the test, outside Django's models)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS public.test_job_executions ("
            " seq bigserial PRIMARY KEY, job_id uuid NOT NULL, worker_id text, pid int,"
            " at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
        cursor.execute("TRUNCATE public.test_job_executions")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE public.test_job_executions")
