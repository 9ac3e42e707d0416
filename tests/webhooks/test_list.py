"""``manage.py jobs_webhook list``: a header, aligned columns, "no webhooks" when empty,
never a secret."""

import re
from datetime import UTC
from io import StringIO

import pytest
from django.core.management import call_command

from tests.webhooks.helpers import add_endpoint, new_secret
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


def listing(tenant) -> list[str]:
    out = StringIO()
    call_command("jobs_webhook", "list", "--tenant", tenant.schema_name, stdout=out)
    return out.getvalue().splitlines()


def test_an_empty_list_says_so(acme):
    assert listing(acme) == ["no webhooks"]


def test_the_list_has_a_header_and_aligned_columns(acme, globex, settings):
    settings.JOBS_WEBHOOK_ALLOW_PRIVATE = True
    add_endpoint(acme, "http://127.0.0.1:9/a-much-longer-path", new_secret())
    add_endpoint(acme, "http://127.0.0.1:9/b", new_secret(), "failed")
    add_endpoint(globex, "http://127.0.0.1:9/theirs", new_secret())
    first, second = WebhookEndpoint.objects.filter(tenant=acme).order_by("pk")

    lines = listing(acme)

    assert [re.split(r"\s{2,}", line) for line in lines] == [
        ["id", "url", "statuses", "created (UTC)"],
        [
            str(first.pk),
            "http://127.0.0.1:9/a-much-longer-path",
            "cancelled,completed,failed",
            f"{first.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
        ],
        [
            str(second.pk),
            "http://127.0.0.1:9/b",
            "failed",
            f"{second.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
        ],
    ]
    assert lines[0].index("url") == lines[1].index("http") == lines[2].index("http")
    assert lines[0].index("statuses") == lines[2].index("failed")
    assert not any("whsec_" in line or "\t" in line for line in lines)
