"""What the management commands that manage one tenant's rows share (``jobs_schedule``,
``jobs_webhook``): the customer tenant named on the command line, and a refusal that lists
every reason a row was not stored."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from tenants.models import Tenant


def tenant_named(schema_name: str) -> Tenant:
    """The customer tenant with this schema name; ``CommandError`` if there is none (the
    public schema is the platform's own, with no jobs of its own)."""
    tenant = Tenant.objects.customers().filter(schema_name=schema_name).first()
    if tenant is None:
        raise CommandError(f"no customer tenant with schema {schema_name!r}")
    return tenant


def refusal(exc: ValidationError) -> CommandError:
    """A ``CommandError`` listing every message of ``exc``, field by field."""
    lines = [
        f"{field}: {message}"
        for field, messages in exc.message_dict.items()
        for message in messages
    ]
    return CommandError("not stored:\n  " + "\n  ".join(lines))
