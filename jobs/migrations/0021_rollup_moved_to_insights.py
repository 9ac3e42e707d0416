"""``JobRollup`` now belongs to the insights app (its migration 0001), with its table: the
jobs app drops it from its state only; the table stays as it is."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0020_schedule_moved_to_schedules"),
        ("insights", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="JobRollup")],
        ),
    ]
