"""``tenant_row_security_on_demand``: the row-security transaction of a GET is opened right
before its first statement, so a request answered without one costs PostgreSQL nothing, and
a request with one runs every statement as the web role. A read that is the block's only
statement carries the transaction whole (``read_as_transaction``). A GET whose view does
not say it may wait has its transaction opened as the view is resolved.

These tests commit (``transaction=True``): outside a test's transaction the block opens
and commits its own, as a request does."""

import pytest
from django.db import DataError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.http import JsonResponse
from django.test import Client
from django.urls import path
from psycopg import pq

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


_READ = (
    "SELECT current_user, current_setting('app.tenant_id'),"
    " (SELECT count(*) FROM public.job_queue WHERE payload = %s)"
)


def _idle() -> bool:
    return connection.connection.info.transaction_status == pq.TransactionStatus.IDLE


def test_a_read_as_transaction_carries_it_whole_in_one_round_trip(acme, globex, monkeypatch):
    JobFactory(tenant=acme, payload={"marked": True})
    JobFactory(tenant=globex, payload={"marked": True})
    connection.ensure_connection()
    with counted_round_trips(monkeypatch) as counted:
        with tenant_row_security_on_demand(acme) as owns_transaction:
            rows = connection.read_as_transaction(_READ, ['{"marked": true}'])
            assert _idle()  # committed with the read
            assert not owns_transaction()
    assert rows == [(WEB_ROLE, str(acme.pk), 1)]  # row security held: acme's job only
    (sent,) = counted.postgres
    assert sent.startswith("\"BEGIN; SELECT set_config('role', 'tenant_jobs_web', true)")
    assert sent.endswith('; COMMIT"')
    assert _role_and_tenant()[1] == ""


def test_a_statement_after_a_read_as_transaction_opens_the_transaction(acme, monkeypatch):
    with tenant_row_security_on_demand(acme) as owns_transaction:
        connection.read_as_transaction(_READ, ["{}"])
        assert _role_and_tenant() == (WEB_ROLE, str(acme.pk))
        assert owns_transaction()
        assert not _idle()
    assert _idle()


def test_a_failing_read_as_transaction_leaves_no_transaction_open(acme):
    with pytest.raises(DataError), tenant_row_security_on_demand(acme):
        connection.read_as_transaction("SELECT 1 / %s", [0])
    assert _idle()
    assert _role_and_tenant() == (connection.settings_dict["USER"], "")  # it serves on


def test_without_a_deferred_transaction_a_read_as_transaction_sends_nothing(monkeypatch):
    connection.ensure_connection()
    with counted_round_trips(monkeypatch) as counted:
        assert connection.read_as_transaction(_READ, ["{}"]) is None
    assert counted.postgres == []


def _role_in_an_atomic_block(request):
    with transaction.atomic():
        return JsonResponse({"role": _role_and_tenant()[0]})


urlpatterns = [path("atomic-first", _role_in_an_atomic_block)]


@pytest.mark.urls(__name__)
def test_a_get_whose_view_does_not_wait_has_its_transaction_opened_first(acme):
    """Its view may enter atomic() before any statement: the transaction is already open."""
    response = Client(HTTP_HOST="acme.localhost").get("/atomic-first")
    assert response.status_code == 200
    assert response.json() == {"role": WEB_ROLE}
