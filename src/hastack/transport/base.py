"""What every link endpoint offers the daemon: open, send to all peers, deliver, close."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hastack.config.model import Link
from hastack.transport.throttle import ErrorThrottle

# Called with (datagram, link name) for every datagram that arrived on a link.
ReceiveCallback = Callable[[bytes, str], None]
# Called once after the datagrams read in one wake-up were delivered.
BatchCallback = Callable[[], None]
# (arrival on the wall clock as the kernel stamped it, or None; the datagram)
Received = tuple[float | None, bytes]

logger = logging.getLogger("hastack.transport")


@dataclass
class LinkStats:
    tx: int = 0  # datagrams handed to the kernel (one per destination)
    rx: int = 0  # datagrams delivered to the callback
    tx_bytes: int = 0
    rx_bytes: int = 0
    rx_errors: int = 0  # receive-side errors and, for serial, discarded garbage frames

    def to_json(self) -> dict[str, int]:
        return {
            "tx": self.tx,
            "rx": self.rx,
            "tx_bytes": self.tx_bytes,
            "rx_bytes": self.rx_bytes,
            "rx_errors": self.rx_errors,
        }


class LinkEndpoint(ABC):
    """One configured heartbeat medium (a `Link` of ha.cf), opened on the running loop.

    An endpoint either delivers what arrives to `on_receive` as it arrives (serial lines), or,
    when `reads_on_timer` is set, keeps it for the daemon to `drain` on its read timer (UDP).
    """

    reads_on_timer = False

    def __init__(self, link: Link, on_receive: ReceiveCallback) -> None:
        self.link = link
        self.name = link.name
        self.on_receive = on_receive
        # Work that is needed once per wake-up rather than once per datagram (the daemon
        # re-arms its timer here): a wake-up often reads several datagrams.
        self.on_batch_end: BatchCallback | None = None
        self.stats = LinkStats()
        self.send_errors = ErrorThrottle(logger, "link-send-error")
        self.receive_errors = ErrorThrottle(logger, "link-receive-error")

    @abstractmethod
    async def open(self) -> None:
        """Create the sockets or open the device; raises OSError when that is impossible."""

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Send one datagram to every peer of this link; errors are counted, never raised."""

    @abstractmethod
    def close(self) -> None:
        """Release every resource; safe to call more than once."""

    def deliver(self, data: bytes) -> None:
        self.stats.rx += 1
        self.stats.rx_bytes += len(data)
        self.on_receive(data, self.name)

    def drain(self) -> list[Received]:
        """Everything received since the last drain, oldest first (endpoints that read on
        the timer; the others deliver as they read)."""
        return []

    def batch_end(self) -> None:
        if self.on_batch_end is not None:
            self.on_batch_end()

    def describe(self) -> dict[str, Any]:
        """Counters for `hastack` status/counters output."""
        return {
            "kind": self.link.kind,
            **self.stats.to_json(),
            "tx_errors": self.send_errors.count,
            "last_tx_error": self.send_errors.last_error,
            "rx_errors": self.stats.rx_errors + self.receive_errors.count,
        }
