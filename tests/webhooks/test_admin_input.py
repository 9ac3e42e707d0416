"""Hostile input to the webhook-endpoint and delivery admins: filters from the URL that
PostgreSQL cannot evaluate (NUL, patterns, transforms) are a clear answer (Django's
invalid-filter redirect, 400), never a 500, and change nothing."""

import pytest

from tests.admin_input import HOSTILE_FILTERS, assert_refused, staff_clients

pytestmark = pytest.mark.django_db

CHANGELISTS = {
    "webhooks/webhookendpoint": "url",
    "webhooks/webhookdelivery": "job_status",
}


@pytest.fixture
def clients(public_tenant, acme):
    return staff_clients(acme)


@pytest.mark.parametrize("model", sorted(CHANGELISTS))
@pytest.mark.parametrize(("query", "status"), HOSTILE_FILTERS)
def test_changelist_filters_that_postgresql_cannot_evaluate_are_refused(
    clients, model, query, status
):
    url = f"/admin/{model}/?" + query.format(field=CHANGELISTS[model])
    assert_refused(clients, url, status)
