"""Hostile input to the schedule admin: filters from the URL that PostgreSQL cannot evaluate
(NUL, patterns, transforms) and schedule payloads the API would refuse are a clear answer
(Django's invalid-filter redirect, 400, a form error), never a 500, and change nothing."""

import pytest

from schedules.models import Schedule
from tests.admin_input import HOSTILE_FILTERS, assert_refused, staff_clients

pytestmark = pytest.mark.django_db


@pytest.fixture
def clients(public_tenant, acme):
    return staff_clients(acme)


@pytest.mark.parametrize(("query", "status"), HOSTILE_FILTERS)
def test_changelist_filters_that_postgresql_cannot_evaluate_are_refused(clients, query, status):
    assert_refused(clients, "/admin/schedules/schedule/?" + query.format(field="name"), status)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"a": NaN}', "NaN is not valid JSON"),
        ('{"a": Infinity}', "Infinity is not valid JSON"),
        ('{"a": "\\u0000"}', "NUL characters"),
        ('{"a": ' + "1" * 5000 + "}", "Not valid JSON"),
        ("[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
    ],
)
def test_schedule_payloads_the_api_would_refuse_are_a_form_error(clients, payload, message):
    form = {"name": "bad", "type": "demo.echo", "payload": payload, "cron": "0 3 * * *"}
    form |= {"timezone": "UTC", "enabled": "on"}
    for who, client in clients.items():
        response = client.post("/admin/schedules/schedule/add/", form)
        assert response.status_code == 200, who
        assert message in response.content.decode(), who
    assert not Schedule.objects.exists()
