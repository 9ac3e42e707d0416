from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from tenants.models import Domain, Tenant

DEMO_PASSWORD = "demo-password"  # noqa: S105 - documented demo credentials, dev only

TENANTS = [("acme", "Acme Corp", "acme.localhost"), ("globex", "Globex", "globex.localhost")]
USERS = [
    # username, tenant schema (None: platform staff), is_staff, is_superuser
    ("alice", "acme", False, False),
    ("bob", "globex", False, False),
    ("carol", "acme", True, False),
    ("admin", None, True, True),
]


class Command(BaseCommand):
    help = "Create the demo tenants and users (idempotent). Refused when DJANGO_ENV=production."

    def handle(self, *args, **options):
        """Create them, unless in production mode: a superuser with a published password
        would be a way in. Refused with exit status 1 before anything is written."""
        if settings.PRODUCTION:
            raise CommandError(
                "seed_demo refuses to run with DJANGO_ENV=production: it creates a superuser "
                "whose password is published in the README."
            )
        tenants = {}
        for schema, name, host in TENANTS:
            tenant, _ = Tenant.objects.get_or_create(schema_name=schema, defaults={"name": name})
            Domain.objects.get_or_create(
                domain=host, defaults={"tenant": tenant, "is_primary": True}
            )
            tenants[schema] = tenant
        for username, schema, is_staff, is_superuser in USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "tenant": tenants.get(schema),
                    "is_staff": is_staff,
                    "is_superuser": is_superuser,
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
        self.stdout.write(
            self.style.SUCCESS(
                "Demo ready: alice@acme.localhost, bob@globex.localhost, carol (acme staff), "
                f"admin@{settings.PUBLIC_HOST}; password {DEMO_PASSWORD!r}"
            )
        )
