"""``tenant_row_security_on_demand``: the row-security transaction of a conditional GET is
opened right before its first statement, so a request answered without one costs
PostgreSQL nothing, and a request with one runs every statement as the web role.

These tests commit (``transaction=True``): outside a test's transaction the block opens
and commits its own, as a request does."""

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError

from jobs.models import Job
from tenants.row_security import WEB_ROLE, tenant_row_security_on_demand
from tests.factories import JobFactory
from tests.jobs.api.round_trips import counted_round_trips

pytestmark = pytest.mark.django_db(transaction=True)


def _role_and_tenant() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, coalesce(current_setting('app.tenant_id', true), '')")
        return cursor.fetchone()


def test_a_block_without_statements_sends_nothing(acme, monkeypatch):
    with counted_round_trips(monkeypatch) as counted:
        with tenant_row_security_on_demand(acme) as owns_transaction:
            pass
    assert counted.postgres == []
    assert not owns_transaction()


def test_the_first_statement_opens_the_transaction_as_the_web_role(acme, globex, monkeypatch):
    JobFactory(tenant=globex)
    with counted_round_trips(monkeypatch) as counted:
        with tenant_row_security_on_demand(acme) as owns_transaction:
            assert _role_and_tenant() == (WEB_ROLE, str(acme.pk))
            assert not Job.objects.filter(tenant=globex).exists()  # row security holds
            assert owns_transaction()
    begin, *_, commit = counted.postgres
    assert begin.startswith("\"BEGIN; SELECT set_config('role', 'tenant_jobs_web', true)")
    assert commit == '"COMMIT"'
    assert _role_and_tenant()[1] == ""  # the settings ended with the transaction


def test_an_atomic_block_before_the_first_statement_is_refused(acme):
    with pytest.raises(TransactionManagementError), tenant_row_security_on_demand(acme):
        with transaction.atomic():
            pass  # its statements would run without the web role
    assert _role_and_tenant()[1] == ""


def test_an_error_after_the_first_statement_rolls_the_transaction_back(acme):
    job = JobFactory(tenant=acme, progress_message="before")

    def failing_request():
        with tenant_row_security_on_demand(acme):
            Job.objects.filter(pk=job.pk).update(progress_message="written")
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        failing_request()
    job.refresh_from_db()
    assert job.progress_message == "before"
