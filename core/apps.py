from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: problem documents, request bounds, logging, health, caches."""

    name = "core"

    def ready(self):
        from core import (  # noqa: F401
            checks,  # registers the settings' system checks
            cors,  # connects the per-tenant CORS receiver
            tracing,
        )

        if tracing.enabled():
            tracing.configure()
