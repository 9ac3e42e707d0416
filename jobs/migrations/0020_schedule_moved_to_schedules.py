"""``Schedule`` now belongs to the schedules app (its migration 0001), with its table: the
jobs app drops it from its state only; the table stays as it is."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0019_list_by_type_index"),
        ("schedules", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Schedule")],
        ),
    ]
