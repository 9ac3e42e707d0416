from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Signed completion webhooks: a feature above the job engine, fed by its signals."""

    name = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the jobs_finished receiver and registers the sweep with the worker's
        # reaper round (jobs.periodic), in web and worker processes alike.
        from webhooks import services  # noqa: F401
