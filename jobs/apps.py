from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the metrics receivers of jobs.signals, in web and worker processes alike.
        from jobs import metrics  # noqa: F401
