"""Health probes, on every host (the middleware answers them first; these name them)."""

from django.urls import path

from core.health import healthz, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
