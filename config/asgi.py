"""ASGI entry point: ``uvicorn config.asgi:application``.

Everything is served by Django's ASGI handler, except long polls (``GET /api/jobs/{id}
?wait=N``), which wait for a change without holding a thread (jobs.api.longpoll) and are
then answered by the same middleware and views as under WSGI.
"""

import os

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)

from jobs.api import longpoll  # noqa: E402 - needs the apps loaded


class Application(ASGIHandler):
    async def run_get_response(self, request):
        if not longpoll.is_long_poll(request):
            return await super().run_get_response(request)
        response = await longpoll.get_response(request)
        response._handler_class = self.__class__
        return response


application = Application()
