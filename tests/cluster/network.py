"""A small network of hosts made of Linux network namespaces, created and removed by the test.

Each host is a namespace ``<run>-<name>`` with one link, ``eth0`` (10.N.0.i/24), whose far
end is a port of the delay switch (tests/cluster/switch.py) in the namespace
``<run>-switch``. The client (the test itself) is the root namespace, on 10.N.0.250
through a link of its own. Everything created here carries the run's prefix, is removed by
``destroy`` (the namespaces, their links, the client's link) and stops only the switch
process it started, by PID. Needs root (CI runs as root).
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

from tests.faults import servers

CLIENT_HOST_NUMBER = 250
# Whole frames of at most the MTU, with their checksums written: the switch copies frames
# from one link to another, and a frame left for the hardware to segment or checksum
# would arrive too big, or with a wrong checksum.
_OFFLOADS = ("rx", "tx", "sg", "tso", "gso", "gro")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _no_offloads(interface: str, netns: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    for feature in _OFFLOADS:
        # A feature the link does not have cannot be turned off; that is fine.
        subprocess.run(
            [*prefix, "ethtool", "-K", interface, feature, "off"], capture_output=True, timeout=30
        )


def _free_subnet() -> ipaddress.IPv4Network:
    """A 10.N.0.0/24 that no route of this machine covers."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout
    taken = []
    for line in routes.splitlines():
        first = line.split()[0] if line.split() else ""
        for word in (first, *line.split()[1:2]):
            try:
                taken.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                pass
    for n in random.sample(range(100, 250), 150):
        candidate = ipaddress.ip_network(f"10.{n}.0.0/24")
        if not any(candidate.overlaps(route) for route in taken if route.prefixlen > 0):
            return candidate
    raise AssertionError("no free 10.N.0.0/24 for the cluster network")


class Network:
    """Hosts ``names`` on one switched segment, ``delay_ms`` added to every frame between two
    of them. ``address(name)``: a host's IP; ``prefix(name)``: the command prefix that runs a
    program on it; ``cut``/``mend``: its link down/up."""

    def __init__(self, names: list[str], *, delay_ms: float, log_dir: Path):
        self.run = f"tjc{os.getpid() % 10000:04d}"
        self.names = list(names)
        self.delay_ms = delay_ms
        self.log_dir = log_dir
        self.subnet = _free_subnet()
        self.switch: servers.Process | None = None
        self._created: list[str] = []  # namespaces, for destroy
        self._client_link: str | None = None

    def netns(self, name: str) -> str:
        return f"{self.run}-{name}"

    def address(self, name: str) -> str:
        number = CLIENT_HOST_NUMBER if name == "client" else self.names.index(name) + 1
        return str(self.subnet[number])

    def prefix(self, name: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.netns(name))

    def create(self) -> Network:
        switch = self.netns("switch")
        _ip("netns", "add", switch)
        self._created.append(switch)
        _ip("-n", switch, "link", "set", "lo", "up")
        ports = []
        for number, name in enumerate(self.names):
            netns = self.netns(name)
            _ip("netns", "add", netns)
            self._created.append(netns)
            port = f"p{number}"
            _ip(
                "link",
                "add",
                f"{self.run}h{number}",
                "type",
                "veth",
                "peer",
                "name",
                f"{self.run}s{number}",
            )
            _ip("link", "set", f"{self.run}h{number}", "netns", netns, "name", "eth0")
            _ip("link", "set", f"{self.run}s{number}", "netns", switch, "name", port)
            _ip("-n", netns, "addr", "add", f"{self.address(name)}/24", "dev", "eth0")
            for link in ("lo", "eth0"):
                _ip("-n", netns, "link", "set", link, "up")
            _ip("-n", switch, "link", "set", port, "up")
            _no_offloads("eth0", netns)
            _no_offloads(port, switch)
            ports.append(port)
        # The client: the root namespace, on a link of its own to the switch.
        self._client_link = f"{self.run}c"
        _ip("link", "add", self._client_link, "type", "veth", "peer", "name", f"{self.run}cs")
        _ip("link", "set", f"{self.run}cs", "netns", switch, "name", "pc")
        _ip("addr", "add", f"{self.address('client')}/24", "dev", self._client_link)
        _ip("link", "set", self._client_link, "up")
        _ip("-n", switch, "link", "set", "pc", "up")
        _no_offloads(self._client_link)
        _no_offloads("pc", switch)
        ports.append("pc")
        self.switch = servers.Process(
            [*self.prefix("switch"), sys.executable, "-m", "tests.cluster.switch",
             "--delay-ms", str(self.delay_ms), *ports],
            env=dict(os.environ),
            log_path=self.log_dir / "switch.log",
        )  # fmt: skip
        servers.wait_until(
            lambda: self._reaches(self.names[0]), timeout=20, what="the switch to carry frames"
        )
        return self

    def _reaches(self, name: str) -> bool:
        """True once a TCP connection to the host is answered (refused counts: the host
        sent the refusal)."""
        if self.switch is not None and not self.switch.alive():
            raise AssertionError(f"the switch exited:\n{self.switch.log()[-3000:]}")
        try:
            socket.create_connection((self.address(name), 9), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return True

    def cut(self, name: str) -> None:
        """Take the host's link down: nothing reaches it or leaves it until ``mend``."""
        _ip("-n", self.netns(name), "link", "set", "eth0", "down")

    def mend(self, name: str) -> None:
        _ip("-n", self.netns(name), "link", "set", "eth0", "up")

    def destroy(self) -> None:
        if self.switch is not None:
            self.switch.stop(timeout=10)
        if self._client_link:
            subprocess.run(["ip", "link", "del", self._client_link], capture_output=True)
        for netns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        self._created.clear()
