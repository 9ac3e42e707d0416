from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the receivers of jobs.signals (completion webhooks) and registers the
        # periodic work (jobs.periodic: the webhook sweep), in web and worker processes
        # alike.
        from jobs import webhooks  # noqa: F401
