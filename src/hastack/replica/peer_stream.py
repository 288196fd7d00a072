"""The socket side of one peer connection: an asyncio protocol around peer_link's framing.

The bytes the event loop reads go straight to the framing and on to the engines, in the same
callback: no StreamReader in between (it copied every read twice and woke a task for each), so
a 1 MiB write is decoded from the very bytes object the loop received.

Both ends greet first (peer_link). The dialling side greets at once and checks the answer
when it comes; the accepting side waits for the dialler's greeting (GREETING_TIMEOUT), lets
its owner check it, and only then answers and hands the connection over. What arrives with a
greeting, before the owner has taken the connection, is kept and delivered when it does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from typing import Protocol, cast

from hastack.replica import peer_link

log = logging.getLogger("hastack.replica")

GREETING_TIMEOUT = 10.0
# DRBD's on-congestion block: when the send buffer is full, new application writes wait. The
# send buffer is the kernel's (sndbuf-size) and, above it, what the transport holds: over
# WRITE_HIGH bytes the connection is congested until it is down to WRITE_LOW (one 1 MiB write
# plus its frame fits under WRITE_HIGH).
WRITE_HIGH = 2 << 20
WRITE_LOW = 512 << 10
# Frames wait for the end of the loop iteration to leave in one write, but not more than this
# many: the peer starts on the first writes of a batch (or this side on the first acks) while
# the rest are still being worked through here, so the two daemons work at the same time
# instead of in turns. (Protocol C, 4 KiB writes at queue depth 32: about 3,000 IOPS sending
# once per iteration, 4,500-5,000 sending every 4 frames; docs/benchmarks.md.)
SEND_EVERY = 4


class PeerOwner(Protocol):
    """What a PeerStream reports to (the resource's runner)."""

    name: str

    def greeted(self, stream: PeerStream, greeting: peer_link.Greeting) -> str:
        """The other side's greeting: "" to go on, else why the connection is refused."""
        ...

    def accepted(self, stream: PeerStream) -> None:
        """An accepted connection passed its greeting check: it is the peer connection now."""
        ...

    def chunks(self, stream: PeerStream, chunks: list[tuple[int, peer_link.Chunk]]) -> None:
        """Chunks of the peer's stream, in order."""
        ...

    def lost(self, stream: PeerStream, reason: str) -> None:
        """The connection ended (closed, reset, or a framing error)."""
        ...

    def congestion_over(self, stream: PeerStream) -> None:
        """The send buffer drained below WRITE_LOW: writes held back may go."""
        ...


class PeerStream(asyncio.Protocol):
    """One TCP connection to the peer, from either side: greeting, framing, the frames this
    side sends (written at the end of the loop iteration or every SEND_EVERY frames), and the
    send buffer's congestion."""

    def __init__(
        self,
        owner: PeerOwner,
        greeting: bytes,
        *,
        accepting: bool,
        sndbuf: int = 0,
        rcvbuf: int = 0,
    ) -> None:
        self.owner = owner
        self.accepting = accepting
        self.congested = False  # the send buffer is full (over WRITE_HIGH)
        self._sndbuf, self._rcvbuf = sndbuf, rcvbuf  # drbd.conf's sizes; 0: the kernel's
        self.transport: asyncio.Transport | None = None
        self.decoder = peer_link.Decoder()
        self._pending: list[bytes | memoryview] = []  # chunk headers, frame pieces not yet sent
        self._frames = 0  # frames in _pending
        self._greeting = greeting  # this side's own
        self._taken = False  # the owner has this connection; before that chunks are kept
        self._early: list[tuple[int, peer_link.Chunk]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._ended = False
        self._end_reason = ""  # why a dialled connection ended before the owner took it

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        sock = transport.get_extra_info("socket")
        for option, size in ((socket.SO_SNDBUF, self._sndbuf), (socket.SO_RCVBUF, self._rcvbuf)):
            if size and sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, option, size)
        if self.accepting:
            self._timer = asyncio.get_running_loop().call_later(
                GREETING_TIMEOUT, self._refuse, f"no greeting within {GREETING_TIMEOUT:g} s"
            )
        else:
            self.transport.write(self._greeting)

    def data_received(self, data: bytes) -> None:
        if self._ended:
            return
        had_greeting = self.decoder.greeting is not None
        try:
            chunks = self.decoder.feed(data)
        except peer_link.PeerLinkError as err:
            self._fail(err)
            return
        greeting = self.decoder.greeting
        if greeting is not None and not had_greeting and not self._check(greeting):
            return
        if not self._taken:
            self._early += chunks
        elif chunks:
            try:
                self.owner.chunks(self, chunks)
            except peer_link.PeerLinkError as err:
                self._fail(err)

    def pause_writing(self) -> None:
        self.congested = True

    def resume_writing(self) -> None:
        self.congested = False
        if self._taken and not self._ended:
            self.owner.congestion_over(self)

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._ended:
            return
        self._ended = True
        reason = f"connection error: {exc}" if exc else "connection closed by peer"
        if self._taken:
            self.owner.lost(self, reason)
        elif self.accepting:
            why = f"connection error: {exc}" if exc else "closed before its greeting"
            log.warning("%s: refused a peer connection: %s", self.owner.name, why)
        else:
            self._end_reason = reason

    # --- the owner's side ---------------------------------------------------------------

    def take(self) -> None:
        """The owner has this connection: chunks that came early are delivered now (or the
        loss, if a dialled connection ended before the owner took it)."""
        self._taken = True
        if self._end_reason:
            self.owner.lost(self, self._end_reason)
            return
        early, self._early = self._early, []
        if early and not self._ended:
            try:
                self.owner.chunks(self, early)
            except peer_link.PeerLinkError as err:
                self._fail(err)

    def send(self, volume: int, parts: Sequence[bytes | memoryview]) -> None:
        """Queue one engine frame of `volume`, in pieces, for the peer."""
        if not self._pending:
            # Frames of the same loop iteration leave in one send: one syscall, not dozens.
            asyncio.get_running_loop().call_soon(self.send_pending)
        self._pending.append(peer_link.chunk_header(volume, sum(len(p) for p in parts)))
        self._pending += parts
        self._frames += 1
        if self._frames >= SEND_EVERY:
            self.send_pending()

    def send_pending(self) -> None:
        if not self._pending:
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(self._pending)  # one vectored write: frames not joined
        self._pending.clear()
        self._frames = 0

    def close(self) -> None:
        """The owner is done with this connection (it reports no loss for it). Frames queued
        before still go out: a handshake that ends in a refusal (a split brain, say) must
        reach the peer, which decides the same from it."""
        self.send_pending()
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
        if self.transport is not None:
            self.transport.close()

    # --- inside -------------------------------------------------------------------------

    def _check(self, greeting: peer_link.Greeting) -> bool:
        problem = self.owner.greeted(self, greeting)
        if self.accepting:
            if self._timer is not None:
                self._timer.cancel()
            if problem:
                self._refuse(problem)
                return False
            assert self.transport is not None
            self.transport.write(self._greeting)
            self.owner.accepted(self)
            return not self._ended
        if problem:
            self._fail(peer_link.PeerLinkError(problem))
            return False
        return True

    def _refuse(self, why: str) -> None:
        """An accepted connection that never became the peer connection."""
        if self._ended:
            return
        log.warning("%s: refused a peer connection: %s", self.owner.name, why)
        self.close()

    def _fail(self, err: Exception) -> None:
        if not self._taken:
            if self.accepting:
                self._refuse(str(err))
            else:
                self._end_reason = f"protocol error: {err}"
                self.close()
            return
        if self._ended:
            return
        self.close()
        self.owner.lost(self, f"protocol error: {err}")
