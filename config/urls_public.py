"""URLs of the platform host (the public schema): front page, admin, health and metrics."""

from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.health import healthz, readyz
from config.pages import platform_home
from jobs.metrics import metrics_view

urlpatterns = [
    path("", platform_home, name="platform_home"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),  # public host only, never a tenant's
    # The tenant hosts' API, documented here too (the platform page links it).
    path("api/schema", SpectacularAPIView.as_view(urlconf="config.urls"), name="schema"),
    path(
        "api/docs",
        # GET and HEAD only: DRF's OPTIONS would render its metadata with the page's template.
        SpectacularSwaggerView.as_view(url_name="schema", http_method_names=["get", "head"]),
        name="docs",
    ),
]

handler400 = "config.errors.bad_request_view"
handler403 = "config.errors.permission_denied_view"
handler404 = "config.errors.not_found_view"
handler500 = "config.errors.server_error_view"
