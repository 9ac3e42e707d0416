"""The class of the exception a failed attempt raised (``JobAttempt.exception_class``), so a
``TaskError`` names it (``ValueError``, ``JobError``, ...) instead of always ``JobError``.
Attempts closed before keep an empty value (read as ``JobError``). The default is the
database's too, for the claim's raw INSERT of open attempts, which names no such column;
adding a column with a constant default rewrites no row."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("jobs", "0016_internal_jobs")]

    operations = [
        migrations.AddField(
            model_name="jobattempt",
            name="exception_class",
            field=models.TextField(blank=True, default="", db_default=""),
        ),
    ]
