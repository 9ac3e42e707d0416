"""The platform's front page, at ``/`` on the public host."""

from django.urls import path

from console.views import platform_home

urlpatterns = [path("", platform_home, name="platform_home")]
