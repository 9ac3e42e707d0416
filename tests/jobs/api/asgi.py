"""Calling ``config.asgi.application`` in this process, as an ASGI server would: the scope,
a client that may leave (``disconnect``), and an event loop whose one executor thread's
database connection is closed afterwards; and ``asgi_server``, a fixture serving it from a
uvicorn process."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from accounts.tokens import tokens_for
from config.asgi import application
from tests.helpers import start_uvicorn, stop_process, subprocess_env

HOST = "acme.localhost"


@pytest.fixture
def asgi_server(transactional_db, request):
    """A uvicorn process on the test database; ``request.param``: extra environment."""
    env = subprocess_env(
        CACHE_KEY_PREFIX=f"test-{uuid.uuid4().hex}", **getattr(request, "param", {})
    )
    server = start_uvicorn(env=env)
    yield server
    stop_process(server)


def auth_headers(user) -> dict[str, str]:
    """Host and a fresh access token of ``user`` (issuing it writes: call it outside the
    event loop)."""
    return {"Host": HOST, "Authorization": f"Bearer {tokens_for(user).access_token}"}


def scope(path: str, query: str, headers: dict[str, str]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }


async def asgi_get(path: str, query: str, headers: dict[str, str], disconnect=None):
    """(status, headers, body) of one GET; ``disconnect``: an ``asyncio.Event`` after which
    the client leaves (None: it stays). (None, {}, b"") when nothing was sent."""
    status, response_headers, body = await asgi_get_raw(path, query, headers, disconnect)
    return status, dict(response_headers), body


async def asgi_get_raw(path: str, query: str, headers: dict[str, str], disconnect=None):
    """``asgi_get`` with the headers as sent: a list of (lowercased name, value), in order,
    repeats included. (None, [], b"") when nothing was sent."""
    sent = []
    request_read = False

    async def receive():
        nonlocal request_read
        if not request_read:
            request_read = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await (disconnect or asyncio.Event()).wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await application(scope(path, query, headers), receive, send)
    if not sent:
        return None, [], b""
    response_headers = [(k.decode().lower(), v.decode()) for k, v in sent[0]["headers"]]
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return sent[0]["status"], response_headers, body


def run_app(coroutine_factory):
    """Run the coroutine on a fresh loop with a one-thread pool, whose DB connection is
    closed at the end (it would outlive the test database otherwise)."""

    async def main():
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        try:
            return await coroutine_factory()
        finally:
            await loop.run_in_executor(None, connections.close_all)

    return asyncio.run(main())


# The headers that differ between two answers of the same state: each request's own.
PER_REQUEST_HEADERS = frozenset({"x-request-id", "ratelimit"})


def shared_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Every header but the per-request ones, repeats kept, sorted: what two answers of the
    same state must agree on."""
    return sorted((name, value) for name, value in headers if name not in PER_REQUEST_HEADERS)
