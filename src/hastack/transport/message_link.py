"""UDP endpoints for the messaging datagrams (hastack.messaging), one per UDP heartbeat link.

hastack's own addition to heartbeat's media: cluster messages (the DC's actions, operation
results, CIB updates) travel on the same media as the heartbeat but on the next port
(`link.port + 1`, same interface, peers, group or broadcast address). The heartbeat port is
read on a timer to save CPU (see transport/udp.py); these sockets are read the moment a datagram
arrives (loop.add_reader), because a failover action must not wait for a read interval. Each
wake-up drains the socket fully, hands every datagram to `on_receive(data, link_name)`, then
calls `on_batch_end` once: the shell calls `MessagingCore.flush` there, so a burst read in one
wake-up is acknowledged once.

The link keeps its heartbeat name ("ucast eth1"), so the core and the counters name it alike.

Serial links are not handled here: on a serial line the messaging datagrams share the heartbeat
endpoint (one tty), and the shell routes each frame by its magic ("HM1" messaging, "HS2"
heartbeat); `message_endpoint_for` returns None for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket

from hastack.config.model import Link
from hastack.transport.base import LinkEndpoint, ReceiveCallback
from hastack.transport.udp import BcastEndpoint, McastEndpoint, UcastEndpoint, UdpEndpoint

# A burst of a window of fragments must fit in the socket buffers rather than be dropped by
# the kernel (Linux's default is about 200 KiB, some 25 datagrams of 8 KB). As root the limit
# (net.core.rmem_max / wmem_max) is overridden with the *FORCE options.
BUFFER_SIZE = 8 * 1024 * 1024
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SO_SNDBUFFORCE = getattr(socket, "SO_SNDBUFFORCE", 32)


class _ReadOnArrival(UdpEndpoint):
    """The UDP endpoint's socket, read on arrival instead of on the daemon's timer."""

    reads_on_timer = False

    def __init__(self, link: Link, on_receive: ReceiveCallback) -> None:
        super().__init__(link, on_receive)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1

    def _attach(self, sock: socket.socket) -> None:
        super()._attach(sock)
        _grow_buffers(sock)
        self._loop = asyncio.get_running_loop()
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        on_receive, name = self.on_receive, self.name
        while True:
            batch = self.drain()  # at most READ_LIMIT; counts rx
            for _stamp, data in batch:
                on_receive(data, name)
            if len(batch) < 1024 or self.sock is None:
                break
        self.batch_end()

    def close(self) -> None:
        if self.sock is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._fd)
        super().close()


def _grow_buffers(sock: socket.socket) -> None:
    for force, plain in (
        (SO_RCVBUFFORCE, socket.SO_RCVBUF),
        (SO_SNDBUFFORCE, socket.SO_SNDBUF),
    ):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, BUFFER_SIZE)
        except OSError:  # not root: as much as net.core.*mem_max allows
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, plain, BUFFER_SIZE)


class MessageUcastEndpoint(_ReadOnArrival, UcastEndpoint):
    """A `ucast` link's messaging socket."""


class MessageMcastEndpoint(_ReadOnArrival, McastEndpoint):
    """An `mcast` link's messaging socket (same group, port + 1)."""


class MessageBcastEndpoint(_ReadOnArrival, BcastEndpoint):
    """A `bcast` link's messaging socket."""


MESSAGE_ENDPOINTS: dict[str, type[_ReadOnArrival]] = {
    "ucast": MessageUcastEndpoint,
    "mcast": MessageMcastEndpoint,
    "bcast": MessageBcastEndpoint,
}


def messaging_link(link: Link) -> Link:
    """The heartbeat link moved to the messaging port (port + 1), its name unchanged."""
    if not 0 < link.port < 65535:
        raise ValueError(f"{link.name}: port {link.port} leaves no port above it for messaging")
    return dataclasses.replace(link, port=link.port + 1)


def message_endpoint_for(link: Link, on_receive: ReceiveCallback) -> LinkEndpoint | None:
    """The (not yet opened) messaging endpoint for a UDP `link`, or None for a serial one
    (its messaging datagrams share the heartbeat endpoint). Set `on_batch_end` on it, then
    `await endpoint.open()`."""
    if link.kind == "serial":
        return None
    try:
        cls = MESSAGE_ENDPOINTS[link.kind]
    except KeyError:
        raise ValueError(
            f"unknown link kind {link.kind!r}: one of {', '.join(MESSAGE_ENDPOINTS)} or serial"
        ) from None
    return cls(messaging_link(link), on_receive)
