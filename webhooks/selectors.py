"""Reads of webhook endpoints, always scoped: one tenant's, or every tenant's for
``ALL_TENANTS``."""

from tenants.scope import tenant_scope
from webhooks.models import WebhookEndpoint


def endpoints_for(*, tenant):
    """The endpoints of ``tenant`` (or every tenant's, for ``ALL_TENANTS``)."""
    return WebhookEndpoint.objects.select_related("tenant").filter(tenant_scope(tenant))
