"""The quorum server daemon: a thin asyncio shell around QServerCore.

It accepts TCP connections (TLS with client certificates when given a context), feeds the core
the bytes, the openings and closings and a tick, and carries out what the core returns. Status
queries come through the same port (a `status` hello signed with the cluster's key, see
hastack.quorum.link.query_status), so the daemon needs no second socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import ssl
from collections.abc import Awaitable, Callable, Sequence

from hastack.quorum.effects import Close, Log, Send, ServerEffect
from hastack.quorum.server import (
    DEFAULT_LEASE,
    DEFAULT_MAX_DRIFT,
    ClusterSpec,
    QServerCore,
    TieBreaker,
)

logger = logging.getLogger("hastack.quorum")
TICK_MAX = 0.5
READ_SIZE = 65536
TLS_HANDSHAKE_TIMEOUT = 10.0


def log_effect(effect: Log, log: logging.Logger = logger) -> None:
    level = logging.getLevelName(effect.level.upper())
    log.log(level if isinstance(level, int) else logging.INFO, "%s", effect.message)


def server_tls(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by `ca`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=ca)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class QServer:
    """The daemon's state: the core, the listening socket, the open connections."""

    def __init__(
        self,
        clusters: Sequence[ClusterSpec],
        host: str = "0.0.0.0",
        port: int = 5403,
        *,
        tls: ssl.SSLContext | None = None,
        lease: float = DEFAULT_LEASE,
        max_drift: float = DEFAULT_MAX_DRIFT,
        tie_breaker: TieBreaker = "lowest",
        startup_hold: float | None = None,
    ) -> None:
        self.loop_time: Callable[[], float] = asyncio.get_running_loop().time
        self.core = QServerCore(
            list(clusters),
            os.urandom,
            self.loop_time(),
            lease=lease,
            max_drift=max_drift,
            tie_breaker=tie_breaker,
            startup_hold=startup_hold,
        )
        self.host, self.port, self.tls = host, port, tls
        self._ids = itertools.count(1)
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._peers: dict[int, str] = {}
        self._all_writers: set[asyncio.StreamWriter] = set()  # including those in a handshake
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound address (port 0 picks a free one)."""
        # TLS is started per connection (start_tls) so that a failed handshake (no client
        # certificate, a wrong CA) is logged with the peer's address rather than dropped silently.
        loop = asyncio.get_running_loop()
        paused = self.tls is not None
        self._server = await loop.create_server(
            lambda: _StreamProtocol(self._client, paused=paused), self.host, self.port
        )
        self._ticker = asyncio.create_task(self._tick_loop())
        address = self._server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._server is not None:
            self._server.close()
        for writer in list(self._all_writers):
            writer.close()
        if self._handlers:  # let them end on their own (closed streams), not by cancellation
            await asyncio.wait(list(self._handlers), timeout=2)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def _apply(self, effects: list[ServerEffect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                writer = self._writers.get(effect.conn)
                if writer is not None and not writer.is_closing():
                    writer.write(effect.data)
            elif isinstance(effect, Close):
                writer = self._writers.get(effect.conn)
                if writer is not None:
                    writer.close()
            else:
                peer = self._peers.get(effect.fields.get("conn", -1))
                if peer is not None and effect.level != "debug":
                    effect = Log(effect.level, effect.event, f"{effect.message} (from {peer})")
                log_effect(effect)
        self._wake.set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(self._ids)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self._all_writers.add(writer)
        try:
            await self._serve_connection(conn, reader, writer)
        finally:
            self._all_writers.discard(writer)

    async def _serve_connection(
        self, conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        address = writer.get_extra_info("peername")
        peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        if self.tls is not None:
            try:
                await asyncio.wait_for(writer.start_tls(self.tls), TLS_HANDSHAKE_TIMEOUT)
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                why = str(exc) or type(exc).__name__
                logger.warning("connection %d from %s: TLS handshake failed: %s", conn, peer, why)
                writer.close()
                return
        self._peers[conn] = peer
        self._writers[conn] = writer
        self._apply(self.core.connected(conn, self.loop_time()))
        try:
            while not writer.is_closing():
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                self._apply(self.core.received(conn, data, self.loop_time()))
        except (OSError, ssl.SSLError) as exc:
            logger.info("connection %d: %s", conn, exc)
        finally:
            self._writers.pop(conn, None)
            writer.close()
            self._apply(self.core.closed(conn, self.loop_time()))
            self._peers.pop(conn, None)

    async def _tick_loop(self) -> None:
        while True:
            self._apply(self.core.tick(self.loop_time()))
            self._wake.clear()
            deadline = self.core.next_deadline()
            wait = TICK_MAX if deadline is None else deadline - self.loop_time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.005, min(TICK_MAX, wait)))


class _StreamProtocol(asyncio.StreamReaderProtocol):
    """asyncio.start_server's protocol, optionally not reading until TLS starts: a client's
    TLS hello that arrived with the connection would otherwise be read into the plain stream
    before start_tls takes over the transport, and the handshake would wait for it forever
    (it did, on a busy machine)."""

    def __init__(
        self,
        client: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        *,
        paused: bool,
    ) -> None:
        super().__init__(asyncio.StreamReader(), client)
        self._paused_for_tls = paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._paused_for_tls:
            # start_tls resumes reading once its TLS protocol owns the transport.
            transport.pause_reading()  # type: ignore[attr-defined]
        super().connection_made(transport)


async def serve(
    clusters: Sequence[ClusterSpec],
    host: str = "0.0.0.0",
    port: int = 5403,
    *,
    tls: ssl.SSLContext | None = None,
    lease: float = DEFAULT_LEASE,
    max_drift: float = DEFAULT_MAX_DRIFT,
    tie_breaker: TieBreaker = "lowest",
    startup_hold: float | None = None,
    ready: Callable[[tuple[str, int]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run the quorum server until SIGTERM/SIGINT (or `stop` is set); 0 on a clean stop."""
    server = QServer(
        clusters,
        host,
        port,
        tls=tls,
        lease=lease,
        max_drift=max_drift,
        tie_breaker=tie_breaker,
        startup_hold=startup_hold,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        address = await server.start()
        names = ", ".join(c.name for c in clusters)
        logger.info(
            "quorum server listening on %s:%d%s for %s (lease %g s, tie-breaker %s)",
            *address,
            " (TLS, client certificates required)" if tls else "",
            names,
            lease,
            tie_breaker,
        )
        if ready is not None:
            ready(address)
        await stop.wait()
        logger.info("quorum server stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await server.close()
    return 0
