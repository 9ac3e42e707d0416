"""A tenant is a customer: its own PostgreSQL schema, reached through its own hostnames."""

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.utils import get_public_schema_name


def normalize_origin(value: str) -> str:
    """``value`` as a browser writes it in ``Origin`` (``https://app.example.com``,
    ``http://127.0.0.1:8080``): lowercase scheme and host, a port only when one was
    given. Raises ``ValidationError`` for anything else (a path, a query, credentials,
    a scheme other than http or https, ``null``, ``*``)."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValidationError(f"{value!r} is not an origin.") from None
    if (
        parts.scheme.lower() not in {"http", "https"}
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.path
        or parts.query
        or parts.fragment
        or "*" in text
        or text.endswith(":")
    ):
        raise ValidationError(
            f"{value!r} is not an origin: use scheme://host[:port], e.g. https://app.example.com."
        )
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")


def validate_origins(value) -> None:
    """A list of origins, each written as ``normalize_origin`` writes it."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("Expected a list of origins.")
    for origin in value:
        if normalize_origin(origin) != origin:
            raise ValidationError(f"Write the origin as {normalize_origin(origin)!r}.")


class TenantQuerySet(models.QuerySet):
    def customers(self):
        """Every tenant but the platform's own (``Tenant.is_platform``)."""
        return self.exclude(schema_name=get_public_schema_name())


class Tenant(TenantMixin):
    """One customer. ``schema_name`` is also its public identifier in tokens and logs.

    Saving a new tenant creates its schema and migrates TENANT_APPS into it. An inactive
    tenant's hosts answer 403 to everything.
    """

    name = models.CharField(max_length=100)
    is_active = models.BooleanField(default=True)
    allowed_origins = models.JSONField(
        default=list,
        db_default=models.Value([], output_field=models.JSONField()),
        validators=[validate_origins],
        blank=True,
        help_text="Browser origins (https://app.example.com) whose pages may call this "
        "tenant's API (CORS).",
    )
    # The plan sold to the tenant: it sets the figures of the "plan" limits of flow control
    # (settings.JOBS_PLANS); empty: JOBS_DEFAULT_PLAN.
    plan = models.CharField(max_length=32, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)

    auto_create_schema = True

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["schema_name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    @property
    def is_platform(self) -> bool:
        """Whether this is the platform's own tenant (the public schema, the platform host),
        not a customer."""
        return self.schema_name == get_public_schema_name()


class Domain(DomainMixin):
    """A hostname routed to a tenant, e.g. ``acme.localhost``."""

    def __str__(self) -> str:
        return self.domain
