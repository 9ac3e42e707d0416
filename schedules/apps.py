from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    """Jobs enqueued on a cron expression, per tenant: a feature above the job engine."""

    name = "schedules"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the tick with the worker's reaper round (jobs.periodic).
        from schedules import services  # noqa: F401
