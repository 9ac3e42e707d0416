from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: problem documents, request bounds, logging, health, caches."""

    name = "core"
