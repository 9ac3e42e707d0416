from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The job console and the platform's front page: templates, static files, views."""

    name = "console"
