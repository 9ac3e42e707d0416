"""Tenant.allowed_origins: the browser origins allowed to call the tenant's API (CORS)."""

import tenants.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_public_tenant"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="allowed_origins",
            field=models.JSONField(
                blank=True,
                db_default=models.Value([], output_field=models.JSONField()),
                default=list,
                help_text="Browser origins (https://app.example.com) whose pages may call this tenant's API (CORS).",
                validators=[tenants.models.validate_origins],
            ),
        ),
    ]
