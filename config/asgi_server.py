"""uvicorn as the ASGI server runs it (docs/operations.md "Production"): under gunicorn,
``gunicorn -c config/gunicorn.conf.py -k config.asgi_server.UvicornWorker
config.asgi:application``, or alone, ``uvicorn config.asgi:application --http
config.asgi_server:H11Protocol``.

uvicorn closes a keep-alive connection that stays idle ``timeout_keep_alive`` seconds after
a response, but stops counting at the first byte of the next request, and never counts on
a new connection: a client that sends nothing, or half a request head, holds its
connection for as long as it likes. ``H11Protocol`` gives each request head the same
bound, counted from the connection's start or the end of the previous response until the
head is complete (``--timeout-keep-alive``, default 5 s; gunicorn's ``keepalive``, 5 s in
``config/gunicorn.conf.py``); h11 refuses a head larger than 16 KiB (400).
"""

import asyncio

import h11
import uvicorn_worker
from uvicorn.protocols.http.h11_impl import H11Protocol as _UvicornH11Protocol


class H11Protocol(_UvicornH11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head is not complete
    within ``timeout_keep_alive`` seconds."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_head()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a request head has arrived
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        self._await_head()  # the next request's head, if the connection is kept
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class UvicornWorker(uvicorn_worker.UvicornWorker):
    """gunicorn's uvicorn worker with ``H11Protocol``."""

    CONFIG_KWARGS = {**uvicorn_worker.UvicornWorker.CONFIG_KWARGS, "http": H11Protocol}
