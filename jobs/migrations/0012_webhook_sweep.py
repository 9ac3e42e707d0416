import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0011_job_batch"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="swept_until",
            field=models.DateTimeField(
                db_default=django.db.models.functions.datetime.Now(), editable=False
            ),
        ),
    ]
