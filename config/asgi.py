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
    async def __call__(self, scope, receive, send):
        if longpoll.is_long_poll_scope(scope):
            # Without Django's per-request thread context, the few thread-sensitive calls
            # (request_started/finished receivers) share asgiref's one sync thread, so a
            # waiting client does not keep an idle thread of its own.
            await self.handle(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def run_get_response(self, request):
        if not longpoll.is_long_poll(request):
            return await super().run_get_response(request)
        response = await longpoll.get_response(request)
        response._handler_class = self.__class__
        return response


application = Application()
