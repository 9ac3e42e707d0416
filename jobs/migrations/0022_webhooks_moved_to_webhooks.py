"""``WebhookEndpoint`` and ``WebhookDelivery`` now belong to the webhooks app (its
migration 0001), with their tables: the jobs app drops them from its state only; the
tables, and the delivery's cascading foreign key to its job (0018), stay as they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0021_rollup_moved_to_insights"),
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="WebhookDelivery"),
                migrations.DeleteModel(name="WebhookEndpoint"),
            ],
        ),
    ]
