"""The node side of the quorum server: QuorumLink (a thin asyncio shell around QClientCore),
and query_status (the operator's status query through the server's port).

A node creates one QuorumLink, calls `set_membership(...)` whenever its membership changes,
and adds one vote to its count while `has_vote()` is true. `on_change(vote, reason)` is called
when the vote is gained or lost (for logs and to re-evaluate quorum at once); the lease expiry
is noticed by the link's own timer, but a caller deciding quorum should still ask `has_vote()`
at that moment rather than remember the last callback.

How a node counts the vote (what the membership layer does with it): with a quorum server the
expected votes grow by one, and a partition's votes are its members' plus one while
`has_vote()` is true AND the members being counted are the ones last given to
`set_membership` (the client core keeps them in `core.members`/`core.ring`). A lease that
quorum decided (the DC's) must not outlive `core.vote_until` when that vote was needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import Callable
from typing import Any

from hastack.config.model import AuthKeys, ClusterConfig
from hastack.quorum import protocol
from hastack.quorum.client import QClientCore
from hastack.quorum.daemon import log_effect
from hastack.quorum.effects import ClientEffect, Close, Connect, Log, Send, VoteChanged
from hastack.quorum.protocol import FrameReader, ProtocolError, make, seal

CONNECT_TIMEOUT = 5.0
TICK_MAX = 0.5


def client_tls(cert: str, key: str, ca: str, check_hostname: bool = True) -> ssl.SSLContext:
    """A client context presenting `cert` and trusting servers signed by `ca`."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.load_cert_chain(cert, key)
    context.check_hostname = check_hostname
    return context


def split_address(address: str, default_port: int = protocol.DEFAULT_PORT) -> tuple[str, int]:
    """HOST[:PORT] or [IPv6]:PORT -> (host, port); ValueError names what is wrong."""
    host, port = address, str(default_port)
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"{address!r}: an IPv6 address is written [ADDR]:PORT")
        host, rest = address[1:end], address[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{address!r}: write [ADDR]:PORT")
            port = rest[1:]
    elif address.count(":") == 1:
        host, port = address.split(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{address!r}: write HOST:PORT with PORT a number 0..65535")
    return host, int(port)


class QuorumLink:
    """One node's connection to the quorum server."""

    def __init__(
        self,
        core: QClientCore,
        host: str,
        port: int = protocol.DEFAULT_PORT,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        on_change: Callable[[bool, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.core = core
        self.host, self.port = host, port
        self.tls, self.server_hostname = tls, server_hostname
        self.on_change = on_change
        self.clock = clock
        self._writer: asyncio.StreamWriter | None = None
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False

    @classmethod
    def from_config(
        cls,
        config: ClusterConfig,
        node: str,
        *,
        tls: ssl.SSLContext | None = None,
        on_change: Callable[[bool, str], None] | None = None,
        interval: float | None = None,
    ) -> QuorumLink:
        """A link to ha.cf's `quorum_server` for `node`, heartbeating every keepalive."""
        hacf = config.hacf
        if hacf.quorum_server is None:
            raise ValueError(f"{hacf.file}: no quorum_server line")
        spec = hacf.node(node)
        if interval is None:
            interval = hacf.timing.keepalive if hacf.timing is not None else 1.0
        core = QClientCore(
            hacf.cluster_name,
            node,
            spec.node_id,
            config.authkeys,
            os.urandom,
            votes=spec.votes,
            interval=interval,
        )
        host, port = split_address(hacf.quorum_server)
        return cls(core, host, port, tls=tls, on_change=on_change)

    # -- the node's API ------------------------------------------------------------------

    def start(self) -> None:
        """Begin connecting (call from within the running loop)."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())

    def has_vote(self, now: float | None = None) -> bool:
        return self.core.has_vote(self.clock() if now is None else now)

    def set_membership(
        self, members: tuple[str, ...], ring: tuple[int, int], resources: int = 0
    ) -> None:
        """What this node sees now (reported at once; a change drops the vote until the
        server grants it for the new membership)."""
        self._apply(self.core.membership(members, ring, resources, self.clock()))

    def status(self) -> dict[str, Any]:
        return self.core.status(self.clock())

    async def close(self) -> None:
        self._closed = True
        for task in [self._runner, *self._tasks]:
            if task is not None:
                task.cancel()
        for task in [self._runner, *self._tasks]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # -- the shell -----------------------------------------------------------------------

    def _apply(self, effects: list[ClientEffect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                if self._writer is not None and not self._writer.is_closing():
                    self._writer.write(effect.data)
            elif isinstance(effect, Close):
                self._generation += 1  # the reader of that connection must not report on it
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            elif isinstance(effect, Connect):
                self._generation += 1
                self._spawn(self._connect(self._generation))
            elif isinstance(effect, VoteChanged):
                if self.on_change is not None:
                    self.on_change(effect.vote, effect.reason)
            elif isinstance(effect, Log):
                log_effect(effect)
        self._wake.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        while not self._closed:
            self._apply(self.core.tick(self.clock()))
            self._wake.clear()
            deadline = self.core.next_deadline()
            wait = TICK_MAX if deadline is None else deadline - self.clock()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.005, min(TICK_MAX, wait)))

    async def _connect(self, generation: int) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=(self.server_hostname or self.host) if self.tls else None,
                ),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            if generation == self._generation:
                reason = f"cannot connect to {self.host}:{self.port}: {exc or 'timeout'}"
                self._apply(self.core.disconnected(self.clock(), reason))
            return
        if generation != self._generation or self._closed:
            writer.close()
            return
        self._writer = writer
        self._apply(self.core.connected(self.clock()))
        reason = "the server closed the connection"
        try:
            while generation == self._generation:
                data = await reader.read(65536)
                if not data:
                    break
                if generation != self._generation:
                    return
                self._apply(self.core.received(data, self.clock()))
        except (OSError, ssl.SSLError) as exc:
            reason = f"connection error: {exc}"
        if generation == self._generation:
            self._writer = None
            writer.close()
            self._apply(self.core.disconnected(self.clock(), reason))


async def query_status(
    host: str,
    port: int,
    cluster: str,
    keys: AuthKeys,
    *,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    timeout: float = 5.0,
) -> dict[str, Any]:
    """The server's status of `cluster` (the question is signed with the cluster's key).
    Raises OSError/TimeoutError when the server cannot be reached, ProtocolError when it
    refuses or answers something else."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            host, port, ssl=tls, server_hostname=(server_hostname or host) if tls else None
        ),
        timeout,
    )
    frames = FrameReader()
    waiting: list[bytes] = []
    try:

        async def next_message() -> protocol.Message:
            while not waiting:
                data = await asyncio.wait_for(reader.read(65536), timeout)
                if not data:
                    raise ProtocolError("the server closed the connection")
                waiting.extend(frames.feed(data))
            return protocol.parse_body(waiting.pop(0), "s")

        challenge = await next_message()
        if challenge.type != "challenge":
            raise ProtocolError(f"expected a challenge, got {challenge.type!r}")
        session = challenge["nonce"] + os.urandom(protocol.NONCE_SIZE).hex()
        writer.write(seal(make("status", c=cluster, s=session, d="c", n=0), keys.signing))
        reply = await next_message()
        if reply.type == "refused":
            raise ProtocolError(f"the server refused: {reply['reason']}")
        if reply.type != "status-reply" or not reply.verify(keys) or reply["s"] != session:
            raise ProtocolError("the server's answer is not signed with the cluster's key")
        return dict(reply["status"])
    finally:
        writer.close()
