"""URLs of tenant hosts: the API and the job console."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", include("console.urls")),
    path("api/auth/", include("accounts.urls")),
    path("api/", include("jobs.api.urls")),
    # The OpenAPI schema of this API and its docs page (assets from our static files).
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs",
        # GET and HEAD only: DRF's OPTIONS would render its metadata with the page's template.
        SpectacularSwaggerView.as_view(url_name="schema", http_method_names=["get", "head"]),
        name="docs",
    ),
    path("", include("core.urls")),
]

handler400 = "core.errors.bad_request_view"
handler403 = "core.errors.permission_denied_view"
handler404 = "core.errors.not_found_view"
handler500 = "core.errors.server_error_view"
