"""UDP heartbeat media: ucast, mcast and bcast links on plain non-blocking sockets.

The sockets are plain sockets rather than asyncio datagram transports, so that each
destination's send error is seen (and counted) where it happens and nothing is queued: a
heartbeat that cannot leave now is worthless later.

Nothing wakes the node when a datagram arrives: the daemon drains every UDP link on its read
timer (Timing.read_interval), because on a busy cluster the wake-ups, not the messages, are
most of a node's CPU. The kernel stamps each datagram with its arrival time (SO_TIMESTAMPNS),
so reading later does not make a peer look silent for longer than it was.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import struct

from hastack.config.model import Link
from hastack.transport.base import LinkEndpoint, ReceiveCallback, logger
from hastack.transport.logevents import emit
from hastack.transport.netif import broadcast_address, interface_index, ipv4_addresses

MAX_DATAGRAM = 65535
# A flooded link must not starve the loop: read at most this many datagrams per drain (32
# nodes x 2 copies in a read interval is far less); the rest wait for the next one.
READ_LIMIT = 1024
# Linux's value; Python's socket module does not name it. The control message it enables
# carries a struct timespec (time_t seconds, long nanoseconds) of CLOCK_REALTIME.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@ql")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)

Address = tuple[str, int]


class UdpEndpoint(LinkEndpoint):
    """Common part: one socket that both receives and sends."""

    def __init__(self, link: Link, on_receive: ReceiveCallback) -> None:
        super().__init__(link, on_receive)
        self.sock: socket.socket | None = None
        self.destinations: list[Address] = []

    reads_on_timer = True

    def _attach(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock = sock

    @property
    def local_address(self) -> Address | None:
        return self.sock.getsockname()[:2] if self.sock else None

    def send(self, data: bytes) -> None:
        sock = self.sock
        if sock is None:
            return
        sent = 0
        sendto = sock.sendto
        for destination in self.destinations:  # (with ucast, one per peer every round)
            try:
                sendto(data, destination)
            except OSError as exc:  # ENETUNREACH, EPERM (firewall), EAGAIN (full queue), ...
                self.send_errors.record(self.name, exc, destination=destination[0])
            else:
                sent += 1
        self.stats.tx += sent
        self.stats.tx_bytes += sent * len(data)

    def drain(self) -> list[tuple[float | None, bytes]]:
        sock = self.sock
        received: list[tuple[float | None, bytes]] = []
        if sock is None:
            return received
        recvmsg = sock.recvmsg
        rx_bytes = 0
        for _ in range(READ_LIMIT):
            try:
                data, ancillary, _flags, _address = recvmsg(MAX_DATAGRAM, _ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ECONNREFUSED reported for an earlier send
                self.receive_errors.record(self.name, exc)
                break
            stamp = None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(payload)
                    stamp = seconds + nanoseconds * 1e-9
            rx_bytes += len(data)
            received.append((stamp, data))
        self.stats.rx += len(received)
        self.stats.rx_bytes += rx_bytes
        return received

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class UcastEndpoint(UdpEndpoint):
    """`ucast IF ADDR` lines of one interface: send to every listed peer address."""

    async def open(self) -> None:
        link = self.link
        destinations = [await _resolve(a, link.port) for a in link.addresses]
        family = _family_of(link.bind or (destinations[0][0] if destinations else "0.0.0.0"))
        sock = _udp_socket(family)
        try:
            if link.bind:
                sock.bind((link.bind, link.port))
            else:
                _bind_to_device_if_possible(sock, link)
                sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", link.port))
        except BaseException:
            sock.close()
            raise
        own = {link.bind} if link.bind else await asyncio.to_thread(_own_addresses, link.interface)
        # A shared ha.cf lists every node's address; sending to ourselves is pointless.
        self.destinations = [d for d in destinations if d[0] not in own]
        self._attach(sock)


class McastEndpoint(UdpEndpoint):
    """`mcast IF GROUP PORT TTL LOOP`: join GROUP on IF, send to it with TTL and LOOP."""

    async def open(self) -> None:
        link = self.link
        if not link.addresses:
            raise OSError(f"{link.name}: no multicast group configured")
        group = link.addresses[0]
        if link.interface is None:
            raise OSError(f"{link.name}: no interface configured")
        index = interface_index(link.interface)
        if index is None:
            raise OSError(f"{link.name}: interface {link.interface!r} does not exist")
        local = link.bind or "0.0.0.0"
        mreqn = struct.pack("4s4si", socket.inet_aton(group), socket.inet_aton(local), index)
        sock = _udp_socket(socket.AF_INET)
        try:
            # Bound to the group itself so that other traffic to the port is not received.
            sock.bind((group, link.port))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, link.ttl)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1 if link.loop else 0)
        except BaseException:
            sock.close()
            raise
        self.destinations = [(group, link.port)]
        self._attach(sock)


class BcastEndpoint(UdpEndpoint):
    """`bcast IF`: send to the interface's broadcast address, receive everything on the port."""

    async def open(self) -> None:
        link = self.link
        if link.interface is None:
            raise OSError(f"{link.name}: no interface configured")
        # pyroute2's synchronous API runs its own event loop: keep it off ours.
        target = await asyncio.to_thread(broadcast_address, link.interface)
        sock = _udp_socket(socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            _bind_to_device_if_possible(sock, link)
            # Broadcasts are addressed to the broadcast address, so the socket cannot be bound
            # to a unicast `bind` address and still receive them.
            sock.bind(("0.0.0.0", link.port))
        except BaseException:
            sock.close()
            raise
        self.destinations = [(target, link.port)]
        self._attach(sock)


def _udp_socket(family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    # Several links (or, in tests, several nodes on one host) may share one port.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _bind_to_device_if_possible(sock: socket.socket, link: Link) -> None:
    """Receive only what arrives on the link's interface (needs root: CAP_NET_RAW)."""
    if link.interface is None:
        return
    if interface_index(link.interface) is None:
        emit(
            logger,
            "warning",
            "link-no-interface",
            f"{link.name}: interface {link.interface!r} does not exist; receiving on all",
            link=link.name,
            interface=link.interface,
        )
        return
    if os.geteuid() != 0:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, link.interface.encode())


def _own_addresses(ifname: str | None) -> set[str]:
    if ifname is None:
        return set()
    try:
        return {a.address for a in ipv4_addresses(ifname)}
    except OSError:
        return set()


def _family_of(address: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


async def _resolve(address: str, port: int) -> Address:
    """A numeric address as is; a host name once, at open (heartbeat accepts both)."""
    try:
        ipaddress.ip_address(address)
        return (address, port)
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(
        address, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
    )
    if not infos:
        raise OSError(f"cannot resolve {address!r}")
    return (str(infos[0][4][0]), port)
