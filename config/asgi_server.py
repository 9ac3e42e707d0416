"""uvicorn as the ASGI server runs it (docs/operations.md "Production"): under gunicorn,
``gunicorn -c config/gunicorn.conf.py -k config.asgi_server.UvicornWorker
config.asgi:application``, or alone, ``uvicorn config.asgi:application --http
config.asgi_server:HttpToolsProtocol``. The parser is httptools (llhttp, in C) and the
loop uvloop, which uvicorn picks when installed (``--loop auto``): uvicorn's pure-Python
h11 parser and asyncio's loop were half the CPU of admitting a connection (bench/RESULTS.md,
issue 24's reconnect storm).

uvicorn closes a keep-alive connection that stays idle ``timeout_keep_alive`` seconds after
a response, but stops counting at the first byte of the next request, and never counts on
a new connection: a client that sends nothing, or half a request head, holds its
connection for as long as it likes. ``HttpToolsProtocol`` gives each request head the same
bound, counted from the connection's start or the end of the previous response until the
head is complete (``--timeout-keep-alive``, default 5 s; gunicorn's ``keepalive``, 5 s in
``config/gunicorn.conf.py``). llhttp bounds no head's size either: a head larger than
``MAX_HEAD_BYTES`` is refused with 431 (before the rest of it is read when it comes in
pieces), and an HTTP/1.1 request without ``Host`` with 400, as RFC 9112 asks and as h11
(uvicorn's other parser) does: the tenant is chosen by hostname.
"""

import asyncio

import uvicorn_worker
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornHttpToolsProtocol

MAX_HEAD_BYTES = 16 * 1024  # h11's default bound (uvicorn's --h11-max-incomplete-event-size)
_HEAD_TOO_LARGE = b"Request header fields too large."


class HttpToolsProtocol(_UvicornHttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head is not
    complete within ``timeout_keep_alive`` seconds, and refusing (431) a head larger than
    ``MAX_HEAD_BYTES``."""

    _head_timer: asyncio.TimerHandle | None = None  # set while a request head is awaited
    _head_bytes = 0  # received since the awaited head began
    _head_too_large = False

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        awaited = self._head_timer is not None
        if awaited:
            self._head_bytes += len(data)
        super().data_received(data)
        if (
            awaited
            and self._head_timer is not None  # the head is still incomplete
            and self._head_bytes > MAX_HEAD_BYTES
            and not self.transport.is_closing()
        ):
            self._refuse_head()

    def on_headers_complete(self) -> None:
        if self._head_bytes > MAX_HEAD_BYTES and self._head_size() > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise ValueError("request head too large")  # the parser's error: a refusal
        if self.parser.get_http_version() == "1.1" and not self._has_host():
            raise ValueError("HTTP/1.1 request without Host")  # 400, as h11 answers
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        if not self.pipeline and not self.transport.is_closing():
            self._await_head()  # the next request's, if the connection is kept
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request the parser refused; 431 for a head too large."""
        if self._head_too_large:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _has_host(self) -> bool:
        return any(name == b"host" for name, _ in self.headers)

    def _head_size(self) -> int:
        """The complete head's size in bytes, as sent but for optional whitespace."""
        fields = sum(len(name) + len(value) + 4 for name, value in self.headers)
        return len(self.url) + fields + 16  # the method, version, CRLFs and blank line

    def _refuse_head(self) -> None:
        self._cancel_head_timer()
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    *(b"%s: %s\r\n" % header for header in self.server_state.default_headers),
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: %d\r\n" % len(_HEAD_TOO_LARGE),
                    b"connection: close\r\n\r\n",
                    _HEAD_TOO_LARGE,
                ]
            )
        )
        self.transport.close()

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class UvicornWorker(uvicorn_worker.UvicornWorker):
    """gunicorn's uvicorn worker with ``HttpToolsProtocol`` (and uvloop, its default
    ``loop="auto"``)."""

    CONFIG_KWARGS = {**uvicorn_worker.UvicornWorker.CONFIG_KWARGS, "http": HttpToolsProtocol}
