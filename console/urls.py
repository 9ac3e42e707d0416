"""The job console, at ``/`` on tenant hosts."""

from django.urls import path

from console.views import console

urlpatterns = [path("", console, name="console")]
