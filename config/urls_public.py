"""URLs of the platform host (the public schema): front page, admin, health and metrics."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", include("console.urls_platform")),
    # The queue dashboard, a page of the admin (before the admin's own URLs), and /metrics.
    path("", include("insights.urls")),
    path("admin/", admin.site.urls),
    path("", include("core.urls")),
    # The tenant hosts' API, documented here too (the platform page links it).
    path("api/schema", SpectacularAPIView.as_view(urlconf="config.urls"), name="schema"),
    path(
        "api/docs",
        # GET and HEAD only: DRF's OPTIONS would render its metadata with the page's template.
        SpectacularSwaggerView.as_view(url_name="schema", http_method_names=["get", "head"]),
        name="docs",
    ),
]

handler400 = "core.errors.bad_request_view"
handler403 = "core.errors.permission_denied_view"
handler404 = "core.errors.not_found_view"
handler500 = "core.errors.server_error_view"
