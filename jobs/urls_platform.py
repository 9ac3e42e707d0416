"""The jobs app's platform-host URL: ``/metrics`` (public host only, never a tenant's)."""

from django.urls import path

from jobs.metrics import metrics_view

urlpatterns = [path("metrics", metrics_view, name="metrics")]
