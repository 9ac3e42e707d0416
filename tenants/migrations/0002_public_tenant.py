from django.conf import settings
from django.db import migrations


def create_public_tenant(apps, schema_editor):
    """The platform itself is the tenant of the public schema, served at PUBLIC_HOST."""
    Tenant = apps.get_model("tenants", "Tenant")
    Domain = apps.get_model("tenants", "Domain")
    public, _ = Tenant.objects.get_or_create(schema_name="public", defaults={"name": "Platform"})
    Domain.objects.get_or_create(domain=settings.PUBLIC_HOST,
                                 defaults={"tenant": public, "is_primary": True})


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    operations = [migrations.RunPython(create_public_tenant, migrations.RunPython.noop)]
