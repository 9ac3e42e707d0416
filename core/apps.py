from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: problem documents, request bounds, logging, health, caches."""

    name = "core"

    def ready(self):
        from core import cors  # noqa: F401 - connects the per-tenant CORS receiver
