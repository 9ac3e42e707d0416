from django.apps import AppConfig


class InsightsConfig(AppConfig):
    """What the queue did and does: the rollup and its dashboard, the job metrics and
    ``jobs_stats``. A feature above the job engine, fed by its signals."""

    name = "insights"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the receivers of jobs.signals (the rollup's writes and pruning, the job
        # histograms), in web and worker processes alike.
        from insights import metrics, services  # noqa: F401
