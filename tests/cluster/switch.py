"""The cluster's Ethernet switch: every frame between two hosts arrives ``--delay-ms`` late.

The hosts' links are veth pairs whose far ends sit in the switch's namespace; this process
reads each far end with an ``AF_PACKET`` socket, learns which MAC address is behind which
port, and sends every frame out of the right port (all others while unknown) ``delay``
after it arrived, in arrival order. It stands in for ``tc qdisc … netem delay``: this
kernel has no ``sch_netem``. A port whose link is down drops what is sent to it, as a cut
cable does. Offloads are off on every link (tests/cluster/network.py), so frames are
whole, checksummed Ethernet frames of at most the MTU.

Run inside the switch's namespace: ``python -m tests.cluster.switch --delay-ms 1 p0 p1 …``;
it runs until SIGTERM.
"""

import argparse
import collections
import select
import signal
import socket
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # a frame this process itself sent, seen again on its way out
_RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024


def _port(name: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
    sock.bind((name, 0))
    sock.setblocking(False)
    return sock


def run(names: list[str], delay: float) -> None:
    ports = {sock.fileno(): sock for sock in map(_port, names)}
    behind: dict[bytes, socket.socket] = {}  # MAC address → the port it was last seen on
    in_flight: collections.deque = collections.deque()  # (due, frame, ports to send it to)
    poller = select.epoll()
    for fileno in ports:
        poller.register(fileno, select.EPOLLIN)
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        timeout = max(0.0, in_flight[0][0] - time.monotonic()) if in_flight else 1.0
        for fileno, _events in poller.poll(timeout):
            inbound = ports[fileno]
            arrived = time.monotonic()
            while True:
                try:
                    frame, address = inbound.recvfrom(65536)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # the link went down under us
                    break
                if address[2] == PACKET_OUTGOING or len(frame) < 14:
                    continue
                behind[frame[6:12]] = inbound
                destination = frame[0:6]
                known = None if destination[0] & 1 else behind.get(destination)
                if known is inbound:
                    continue
                targets = (
                    (known,) if known else tuple(p for p in ports.values() if p is not inbound)
                )
                in_flight.append((arrived + delay, frame, targets))
        now = time.monotonic()
        while in_flight and in_flight[0][0] <= now:
            _due, frame, targets = in_flight.popleft()
            for outbound in targets:
                try:
                    outbound.send(frame)
                except OSError:  # link down, or its queue full: the frame is lost
                    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("ports", nargs="+")
    arguments = parser.parse_args()
    run(arguments.ports, arguments.delay_ms / 1000)


if __name__ == "__main__":
    main()
