"""ICMP echo for ping nodes (ha.cf `ping` / `ping_group`, heartbeat's pingd).

An unprivileged ICMP datagram socket is used when net.ipv4.ping_group_range allows it (the
kernel then handles identifiers and only hands us our own replies); otherwise a raw socket,
which needs root, and replies are matched by our identifier.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from hastack.transport.throttle import ErrorThrottle

logger = logging.getLogger("hastack.transport.icmp")

ECHO_REQUEST = 8
ECHO_REPLY = 0
HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
PAYLOAD = b"hastack-ping"

# Called with the ping target (as configured) when it answered.
ReplyCallback = Callable[[str], None]


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(identifier: int, sequence: int) -> bytes:
    header = HEADER.pack(ECHO_REQUEST, 0, 0, identifier, sequence)
    return HEADER.pack(ECHO_REQUEST, 0, checksum(header + PAYLOAD), identifier, sequence) + PAYLOAD


class IcmpPinger:
    def __init__(self, on_reply: ReplyCallback) -> None:
        self.on_reply = on_reply
        self.sock: socket.socket | None = None
        self.mode: str | None = None  # "dgram" or "raw"
        self.identifier = os.getpid() & 0xFFFF
        self.sequence = 0
        self.sent = 0
        self.replies = 0
        self.send_errors = ErrorThrottle(logger, "ping-send-error")
        self._targets: dict[str, str] = {}  # address -> target as configured
        self._resolving: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
            self.mode = "dgram"
        except PermissionError:
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            except PermissionError as exc:
                raise OSError(
                    "cannot send ICMP echo: not root and net.ipv4.ping_group_range does not "
                    "include this group (sysctl -w net.ipv4.ping_group_range='0 2147483647')"
                ) from exc
            self.mode = "raw"
        sock.setblocking(False)
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)

    def ping(self, target: str) -> None:
        """Send one echo request to `target` (an IPv4 address; a name is resolved once)."""
        if self.sock is None:
            return
        address = self._address_of(target)
        if address is None:
            return
        self.sequence = (self.sequence + 1) & 0xFFFF
        try:
            self.sock.sendto(echo_request(self.identifier, self.sequence), (address, 0))
        except OSError as exc:
            self.send_errors.record(f"ping {target}", exc, target=target)
            return
        self.sent += 1

    def _address_of(self, target: str) -> str | None:
        try:
            ipaddress.IPv4Address(target)
        except ValueError:
            pass
        else:
            self._targets[target] = target
            return target
        for address, name in self._targets.items():
            if name == target:
                return address
        # A host name: resolve it off the loop; this round's echo is skipped.
        if target not in self._resolving and self._loop is not None:
            self._resolving.add(target)
            task = self._loop.create_task(self._resolve(target))
            self._tasks.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)
        return None

    async def _resolve(self, target: str) -> None:
        assert self._loop is not None
        try:
            infos = await self._loop.getaddrinfo(target, None, family=socket.AF_INET)
        except OSError as exc:
            self.send_errors.record(f"ping {target}", exc, target=target)
        else:
            if infos:
                self._targets[str(infos[0][4][0])] = target
        finally:
            self._resolving.discard(target)

    def _on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(64):
            try:
                data, (address, *_rest) = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if self.mode == "raw":
                if not data:
                    continue
                data = data[(data[0] & 0x0F) * 4 :]  # strip the IP header
            if len(data) < HEADER.size:
                continue
            kind, _code, _sum, identifier, _seq = HEADER.unpack_from(data)
            if kind != ECHO_REPLY:
                continue  # raw sockets also see requests, ours included
            if self.mode == "raw" and identifier != self.identifier:
                continue  # another process's ping
            target = self._targets.get(address)
            if target is None:
                continue
            self.replies += 1
            self.on_reply(target)

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "sent": self.sent,
            "replies": self.replies,
            "send_errors": self.send_errors.count,
            "last_send_error": self.send_errors.last_error,
        }

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
