"""Hostile input to the schedule, webhook-endpoint and delivery admins: filters from the URL
that PostgreSQL cannot evaluate (NUL, patterns, transforms) and schedule payloads the API
would refuse are a clear answer (Django's invalid-filter redirect, 400, a form error),
never a 500, and change nothing."""

import pytest

from schedules.models import Schedule

pytestmark = pytest.mark.django_db

CHANGELISTS = {
    "schedules/schedule": "name",
    "jobs/webhookendpoint": "url",
    "jobs/webhookdelivery": "job_status",
}


@pytest.fixture
def clients(public_tenant, acme):
    from tests.factories import UserFactory
    from tests.helpers import admin_client_for

    boss = UserFactory(username="boss", is_staff=True, is_superuser=True)
    carol = UserFactory(username="carol", tenant=acme, is_staff=True)
    return {"platform staff": admin_client_for(boss), "tenant staff": admin_client_for(carol)}


@pytest.mark.parametrize("model", sorted(CHANGELISTS))
@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("{field}=%00", 302),  # NUL in a value: Django's invalid-filter redirect
        ("{field}%00=x", 302),  # NUL in a name
        ("tenant__name=a%00b", 302),
        ("{field}__regex=(", 400),  # a bad pattern
        ("{field}__iregex=%5B", 400),
        ("tenant__name__regex=(", 400),
        ("created_at__year=99999999", 400),  # a transform out of range
    ],
)
def test_changelist_filters_that_postgresql_cannot_evaluate_are_refused(
    clients, model, query, status
):
    url = f"/admin/{model}/?" + query.format(field=CHANGELISTS[model])
    for who, client in clients.items():
        response = client.get(url)
        assert response.status_code == status, (who, url)
        if status == 302:
            assert response["Location"].endswith("?e=1"), (who, url)


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
