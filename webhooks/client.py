"""The outbound HTTP client of webhook deliveries, safe against server-side request
forgery and slow endpoints.

A URL whose host resolves to a loopback, private, link-local or otherwise non-public
address, or to an IPv6 address that embeds an IPv4 one (NAT64, 6to4, Teredo,
IPv4-compatible: the IPv4 address it reaches is not checked), or that names port 0, is
refused (``resolve``), unless ``JOBS_WEBHOOK_ALLOW_PRIVATE``. A delivery resolves the host
once and connects to that very address, so a DNS answer changed since the check cannot
redirect it. Redirects are never followed. ``JOBS_WEBHOOK_TIMEOUT`` bounds the whole POST
(connecting, TLS, sending and every read: each socket operation may take only what is
left), so an endpoint that answers one byte at a time holds a thread no longer than that.
"""

import http.client
import ipaddress
import socket
import ssl
import time
from urllib.parse import urlsplit

from django.conf import settings

# The most bytes of a response body kept per attempt.
BODY_EXCERPT = 500
# IPv6 ranges whose addresses carry an IPv4 address that a gateway or the host reaches:
# NAT64 (well-known and local-use prefixes), 6to4, Teredo and IPv4-compatible.
_EMBEDDING_IPV4 = tuple(
    ipaddress.ip_network(prefix)
    for prefix in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32", "::/96")
)


class WebhookRefused(Exception):
    """The endpoint's URL may not be called (scheme, host, or a non-public address)."""


def resolve(url: str) -> tuple[str, int, str]:
    """``(host, port, address)`` to connect to for ``url``: the host resolved once, its
    first address. ``WebhookRefused`` for a scheme other than http(s), credentials in the
    URL, port 0, a host that does not resolve, or any address that is not public
    (``_public``; unless ``JOBS_WEBHOOK_ALLOW_PRIVATE``)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise WebhookRefused("the URL must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise WebhookRefused("the URL must not carry credentials")
    try:
        port = parts.port
    except ValueError:
        raise WebhookRefused("the port must be a number from 1 to 65535") from None
    if port == 0:
        raise WebhookRefused("the port must be a number from 1 to 65535")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError):
        raise WebhookRefused(f"the host {parts.hostname!r} does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]
    if not settings.JOBS_WEBHOOK_ALLOW_PRIVATE:
        for address in addresses:
            if not _public(address):
                raise WebhookRefused(
                    f"the host {parts.hostname!r} resolves to a non-public address ({address})"
                )
    return parts.hostname, port, str(addresses[0])


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` is global unicast, judged by the IPv4 address of an IPv4-mapped
    one; an IPv6 address embedding an IPv4 address any other way is never public."""
    if address.version == 6:
        if address.ipv4_mapped:
            address = address.ipv4_mapped
        elif any(address in network for network in _EMBEDDING_IPV4):
            return False
    return address.is_global and not address.is_multicast


class _Deadline:
    """A moment on the monotonic clock; ``left()`` is the time until it, or ``TimeoutError``
    once it has passed."""

    def __init__(self, seconds: float):
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the webhook delivery ran out of time")
        return left


class _DeadlineMixin:
    """For a socket class: each send and receive may take only what is left of
    ``self.deadline`` (its timeout is set to that first), so many slow operations together
    still end by the deadline."""

    deadline: _Deadline

    def send(self, *args, **kwargs):
        self.settimeout(self.deadline.left())
        return super().send(*args, **kwargs)

    def sendall(self, *args, **kwargs):
        self.settimeout(self.deadline.left())
        return super().sendall(*args, **kwargs)

    def recv(self, *args, **kwargs):
        self.settimeout(self.deadline.left())
        return super().recv(*args, **kwargs)

    def recv_into(self, *args, **kwargs):
        self.settimeout(self.deadline.left())
        return super().recv_into(*args, **kwargs)


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    pass


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    pass


def _connect(address: str, port: int, deadline: _Deadline) -> _DeadlineSocket:
    """A TCP connection to ``address`` (an IP address), made within ``deadline``."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = _DeadlineSocket(family, socket.SOCK_STREAM)
    sock.deadline = deadline
    try:
        sock.settimeout(deadline.left())
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to ``address``, whatever ``host`` (the Host header) resolves to now; every
    socket operation within ``deadline``."""

    def __init__(self, host, port, address, deadline: _Deadline):
        super().__init__(host, port)
        self._address = address
        self._deadline = deadline

    def connect(self):
        self.sock = _connect(self._address, self.port, self._deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to ``address``, with SNI and certificate checked for ``host``; the handshake and
    every later socket operation within ``deadline``."""

    def __init__(self, host, port, address, deadline: _Deadline):
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        super().__init__(host, port, context=context)
        self._address = address
        self._deadline = deadline

    def connect(self):
        sock = _connect(self._address, self.port, self._deadline)
        try:
            sock.settimeout(self._deadline.left())  # the handshake, in wrap_socket
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock.deadline = self._deadline


def post(url: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` to ``url`` (resolved and checked by ``resolve``), all of it within
    ``JOBS_WEBHOOK_TIMEOUT`` seconds of the call; the status and the body's first bytes."""
    deadline = _Deadline(settings.JOBS_WEBHOOK_TIMEOUT)
    host, port, address = resolve(url)
    parts = urlsplit(url)
    pinned = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = pinned(host, port, address, deadline)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read(BODY_EXCERPT)
    finally:
        connection.close()
