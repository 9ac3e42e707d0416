"""Webhook endpoints for tests: a fresh secret, and an endpoint added as an operator does."""

import base64
import secrets
from io import StringIO

from django.core.management import call_command

from webhooks.models import WebhookEndpoint


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def add_endpoint(tenant, url, secret, statuses=None) -> WebhookEndpoint:
    args = ["add", "--tenant", tenant.schema_name, "--url", url, "--secret", secret]
    if statuses:
        args += ["--statuses", statuses]
    call_command("jobs_webhook", *args, stdout=StringIO())
    return WebhookEndpoint.objects.filter(tenant=tenant).latest("pk")
