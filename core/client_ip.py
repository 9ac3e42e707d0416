"""The client's IP address, as far as it can be trusted: the key of anonymous rate limits.

``REMOTE_ADDR`` is the peer of this process and cannot be forged over TCP. ``X-Forwarded-For``
can: any client may send one. It is read only when the peer is one of
``settings.TRUSTED_PROXIES`` (addresses or networks), and then from the right: each trusted
proxy appends the address it saw, so the right-most entry that is *not* a trusted proxy is
the first address no proxy of ours vouches for — the client. Entries to its left are the
client's own claims and are ignored.

IPv6 clients are keyed by their /64 network: one subscriber usually holds a whole /64, so
a per-address key would let it rotate through 2^64 addresses.
"""

import ipaddress
from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

IPV6_PREFIX = 64

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@cache
def _trusted_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in settings.TRUSTED_PROXIES)


@receiver(setting_changed)
def _reload_on_settings_change(setting, **kwargs):
    if setting == "TRUSTED_PROXIES":
        _trusted_networks.cache_clear()


def _parse(value: str) -> Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "192.0.2.1:443"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address) -> bool:
    return any(address in network for network in _trusted_networks())


def client_address(request) -> Address | None:
    """The client's address (see the module docstring); None if even the peer is unknown."""
    peer = _parse(request.META.get("REMOTE_ADDR", ""))
    if peer is None or not _is_trusted(peer):
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for entry in reversed(forwarded.split(",")):
        address = _parse(entry)
        if address is None:
            # Only a client can write garbage here (our proxies append real addresses), and
            # only to the left of what our proxies appended: the hop we trust last is the key.
            return peer
        if not _is_trusted(address):
            return address
        peer = address
    return peer


def client_ip_key(request) -> str:
    """A rate-limit key for the client: its address, or its /64 network for IPv6."""
    address = client_address(request)
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False))
    return str(address)
