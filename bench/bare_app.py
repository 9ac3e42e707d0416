"""The ceiling of the poll benchmark: Django answering a JSON body of the same shape as a
poll, with no middleware, no database, no cache. ``gunicorn bench.bare_app:application``."""

import uuid

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only",  # noqa: S106 - a throwaway app on loopback
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
)

_BODY = {
    "id": str(uuid.uuid4()),
    "type": "demo.echo",
    "status": "pending",
    "created_at": "2026-01-25T12:00:00Z",
}


def job(request, pk):
    return JsonResponse(_BODY)


urlpatterns = [path("api/jobs/<str:pk>", job)]

application = get_wsgi_application()
