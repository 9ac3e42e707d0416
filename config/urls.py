"""URLs of tenant hosts: the API and the job console."""

from django.urls import include, path

from config.health import healthz, readyz
from config.pages import console

urlpatterns = [
    path("", console, name="console"),
    path("api/auth/", include("accounts.urls")),
    path("api/", include("jobs.api.urls")),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]

handler400 = "config.errors.bad_request_view"
handler403 = "config.errors.permission_denied_view"
handler404 = "config.errors.not_found_view"
handler500 = "config.errors.server_error_view"
