"""The ASGI server as docs/operations.md runs it (config/asgi_server.py): a connection that never
completes a request head (nothing sent, or half a header) is closed within the keep-alive
timeout (5 s), under gunicorn's uvicorn worker and under uvicorn alone; a head over 16 KiB
is refused (431) before the rest is read, an HTTP/1.1 request without Host too (400);
complete requests, kept-alive and pipelined connections work as before. Raw sockets
against real servers."""

import re
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.faults.servers import Process, free_port, wait_until
from tests.helpers import start_uvicorn, stop_process, subprocess_env

pytestmark = pytest.mark.django_db  # the test database's settings, for the servers

KEEP_ALIVE = 5  # uvicorn's --timeout-keep-alive default; gunicorn.conf.py's keepalive
BOUND = KEEP_ALIVE + 5  # with room for a loaded machine
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"


def _gunicorn():
    """docs/operations.md, "Production": gunicorn -c config/gunicorn.conf.py -k
    config.asgi_server.UvicornWorker --workers 2 --bind … config.asgi:application (one
    worker here)."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="gunicorn-asgi-", suffix=".log")[1])
    process = Process(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
         "-k", "config.asgi_server.UvicornWorker", "--workers", "1",
         "--bind", f"127.0.0.1:{port}", "config.asgi:application"],
        env=subprocess_env(),
        log_path=log,
    )  # fmt: skip
    process.port = port

    def answers():
        assert process.alive(), process.log()[-3000:]
        try:
            return _exchange(port, HEALTH).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    wait_until(answers, timeout=60, what="gunicorn's uvicorn worker")
    return process


@pytest.fixture(params=["gunicorn", "uvicorn"])
def server(request):
    if request.param == "gunicorn":
        process = _gunicorn()
        yield process.port
        process.stop()
    else:
        process = start_uvicorn()
        yield process.port
        stop_process(process)


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` and read one response (``Connection: close`` is not sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        return sock.recv(65536)


def _closed_after(port: int, data: bytes) -> float:
    """Seconds from sending ``data`` on a new connection until the server closes it
    (fails the test after 3 × ``BOUND``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3 * BOUND) as sock:
        if data:
            sock.sendall(data)
        started = time.monotonic()
        while sock.recv(65536):
            pass
        return time.monotonic() - started


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /healthz HTTP/1.1\r\nHost: local", b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"],
    ids=["nothing", "half a header", "no blank line"],
)
def test_a_connection_without_a_complete_request_head_is_closed(server, sent):
    assert _closed_after(server, sent) < BOUND


def test_a_request_head_trickled_a_byte_at_a_time_is_closed(server):
    """Each byte would restart a timer that counted idleness: the bound is the whole head's."""
    with socket.create_connection(("127.0.0.1", server), timeout=3 * BOUND) as sock:
        started = time.monotonic()
        try:
            for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 200:
                sock.sendall(bytes([byte]))
                time.sleep(0.5)
        except OSError:  # closed by the server (a reset when unread bytes were pending)
            pass
        else:
            raise AssertionError("the server read a 100-second head")
    assert time.monotonic() - started < BOUND


def test_complete_requests_are_answered_on_a_kept_alive_connection(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        for _ in range(2):
            sock.sendall(HEALTH)
            assert _response(sock).startswith(b"HTTP/1.1 200")
            time.sleep(1)  # idle, within the keep-alive timeout


def test_two_pipelined_requests_are_both_answered(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(HEALTH + HEALTH)
        first = _response(sock)
        assert first.startswith(b"HTTP/1.1 200")
        received = first
        while received.count(b"HTTP/1.1 200") < 2:
            received += sock.recv(65536)


def test_a_head_over_16_kib_is_refused_before_the_rest_is_read(server):
    """llhttp bounds no head: the protocol does, whether the head comes in pieces or at once."""
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: ")
        answer, refused = b"", False
        try:
            for _ in range(4096):  # 16 MiB, more than socket buffers hold, were it all read
                sock.sendall(b"a" * 4096)
        except OSError:  # closed by the server: a reset once unread bytes are pending
            refused = True
        assert refused
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    if answer:  # the 431 is lost when the reset overtakes it
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    big = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n"
    assert _exchange(server, big).startswith(b"HTTP/1.1 431")
    within = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 15_000 + b"\r\n\r\n"
    assert _exchange(server, within).startswith(b"HTTP/1.1 200")


def test_an_http_1_1_request_without_host_is_refused(server):
    """The tenant is chosen by hostname; RFC 9112 asks for a 400 (h11 answered so too)."""
    assert _exchange(server, b"GET /healthz HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert _exchange(server, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")


def _response(sock) -> bytes:
    """One whole response (``Content-Length`` or chunked) read from ``sock``."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    while not (len(body) >= int(length[1]) if length else body.endswith(b"0\r\n\r\n")):
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body
