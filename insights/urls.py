"""The platform host's insights (``config.urls_public`` includes them before the admin's
own URLs): the queue dashboard, a page of the admin, and ``/metrics``."""

from django.contrib import admin
from django.urls import path

from insights.views import dashboard_view, metrics_view

urlpatterns = [
    path("admin/jobs/dashboard/", admin.site.admin_view(dashboard_view), name="jobs-dashboard"),
    path("metrics", metrics_view, name="metrics"),
]
