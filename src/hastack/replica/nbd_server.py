"""The NBD server's asyncio shell: sockets and a backend around `nbd_protocol.ServerConnection`.

Everything the protocol decides lives in the core; this module only accepts connections, moves
bytes, runs each request against a `Backend` concurrently (so replies go out in completion order,
tagged with the client's cookie) and stops cleanly. `FileBackend` serves a regular file or a block
device; the replication engine provides its own backend (writes mirrored to the peer, `access()`
following the resource's role).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, TypeVar, cast

from hastack.replica.nbd_protocol import (
    DEFAULT_BLOCK_MIN,
    DEFAULT_MAX_IN_FLIGHT,
    Closed,
    Command,
    Event,
    ExportInfo,
    NBDError,
    Negotiated,
    Request,
    ServerConnection,
    error_from_errno,
)

__all__ = ["DEFAULT_ADDRESS", "Access", "Backend", "Export", "FileBackend", "NBDServer"]

DEFAULT_ADDRESS = ("127.0.0.1", 10809)
INLINE_WRITE = 128 * 1024  # FileBackend writes up to this size run on the event loop

log = logging.getLogger(__name__)
T = TypeVar("T")


class Access(Enum):
    """How an export may be used now: a Primary serves it read-write; a Secondary serves it
    read-only or refuses it, whichever the resource's policy says."""

    READ_WRITE = "read-write"
    READ_ONLY = "read-only"
    REFUSED = "refused"


class Backend(Protocol):
    """The storage behind one export. Methods raise OSError (its errno becomes the NBD error).

    A method returns only when its effect is visible to later reads; with `fua` (and for
    `flush`) only when it is durable."""

    def size(self) -> int: ...

    def access(self) -> Access: ...

    async def read(self, offset: int, length: int) -> bytes: ...

    async def write(self, offset: int, data: bytes, fua: bool) -> None: ...

    async def flush(self) -> None: ...

    async def trim(self, offset: int, length: int) -> None: ...

    async def write_zeroes(
        self, offset: int, length: int, fua: bool, no_hole: bool = False
    ) -> None: ...


WriteDone = Callable[[OSError | None], None]


class SubmitsWrites(Protocol):
    """A backend that also takes writes without a coroutine: `submit_write` starts the write
    and calls `done(None)` (or `done(error)`) on the event loop once `write` would have
    returned. The server uses it when a backend has it: on a busy export a task per write
    costs more than the write."""

    def submit_write(self, offset: int, data: bytes, fua: bool, done: WriteDone) -> None: ...


_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_ZERO_CHUNK = bytes(1024 * 1024)


def _libc_fallocate() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.fallocate
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    func.restype = ctypes.c_int
    return func


_fallocate = _libc_fallocate()


class FileBackend:
    """A regular file or block device: pread/pwrite in a thread pool (they block), fdatasync for
    FLUSH and FUA, hole punching for TRIM and WRITE_ZEROES where the kernel supports it."""

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, threads: int = 8):
        self.path = os.fspath(path)
        self.read_only = read_only
        self._fd = os.open(self.path, (os.O_RDONLY if read_only else os.O_RDWR) | os.O_CLOEXEC)
        mode = os.fstat(self._fd).st_mode
        self._is_block = stat.S_ISBLK(mode)
        self._punch = _fallocate is not None
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nbd-file")

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        os.close(self._fd)

    def size(self) -> int:
        # A block device's st_size is 0; its end is where lseek says.
        if self._is_block:
            return os.lseek(self._fd, 0, os.SEEK_END)
        return os.fstat(self._fd).st_size

    def access(self) -> Access:
        return Access.READ_ONLY if self.read_only else Access.READ_WRITE

    async def _run(self, func: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, func, *args)

    async def read(self, offset: int, length: int) -> bytes:
        return await self._run(self._read, offset, length)

    def _read(self, offset: int, length: int) -> bytes:
        parts = []
        while length:
            chunk = os.pread(self._fd, length, offset)
            if not chunk:
                raise OSError(errno.EIO, "short read: end of backing store")
            parts.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(parts)

    async def write(self, offset: int, data: bytes, fua: bool) -> None:
        if not fua and len(data) <= INLINE_WRITE:
            # A small write lands in the page cache in microseconds; a thread hop costs
            # more than that. FUA (a data sync) still goes to a thread.
            self._write(offset, data, False)
            return
        await self._run(self._write, offset, data, fua)

    def submit_write(self, offset: int, data: bytes, fua: bool, done: WriteDone) -> None:
        if not fua and len(data) <= INLINE_WRITE:
            try:
                self._write(offset, data, False)
            except OSError as err:
                done(err)
                return
            done(None)
            return
        future = asyncio.get_running_loop().run_in_executor(
            self._pool, self._write, offset, data, fua
        )
        future.add_done_callback(lambda f: done(_os_error(f)))

    def _write(self, offset: int, data: bytes, fua: bool) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, offset)
            view = view[n:]
            offset += n
        if fua:
            os.fdatasync(self._fd)

    async def flush(self) -> None:
        await self._run(os.fdatasync, self._fd)

    async def trim(self, offset: int, length: int) -> None:
        await self._run(self._zero, offset, length, False, False)

    async def write_zeroes(
        self, offset: int, length: int, fua: bool, no_hole: bool = False
    ) -> None:
        await self._run(self._zero, offset, length, fua, no_hole)

    def _zero(self, offset: int, length: int, fua: bool, no_hole: bool) -> None:
        # A punched hole reads as zeroes and frees the space; NO_HOLE asks for allocated zeroes.
        if not no_hole and self._punch and _fallocate is not None:
            mode = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
            if _fallocate(self._fd, mode, offset, length) == 0:
                if fua:
                    os.fdatasync(self._fd)
                return
            err = ctypes.get_errno()
            if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise OSError(err, os.strerror(err))
            self._punch = False  # this file system cannot; stop asking
        end = offset + length
        while offset < end:
            n = os.pwrite(self._fd, _ZERO_CHUNK[: min(len(_ZERO_CHUNK), end - offset)], offset)
            offset += n
        if fua:
            os.fdatasync(self._fd)


def _os_error(future: asyncio.Future[None]) -> OSError | None:
    """A finished future's outcome as `WriteDone` takes it: anything but an OSError is a bug,
    logged and answered EIO (the request must be answered, or the connection never settles)."""
    error = future.exception()
    if error is None or isinstance(error, OSError):
        return error
    log.error("NBD write failed", exc_info=error)
    return OSError(errno.EIO, f"internal error: {error!r}")


@dataclass
class Export:
    """One named export. `multi_conn`: advertise CAN_MULTI_CONN (safe when a FLUSH on any
    connection makes every completed write durable, as with one file and fdatasync)."""

    name: str
    backend: Backend
    description: str = ""
    multi_conn: bool = True

    def info(self) -> ExportInfo:
        access = self.backend.access()
        return ExportInfo(
            name=self.name,
            size=self.backend.size(),
            read_only=access is not Access.READ_WRITE,
            refused=access is Access.REFUSED,
            description=self.description,
            multi_conn=self.multi_conn,
        )


class _Connection(asyncio.Protocol):
    """One client connection: bytes from the socket into the core, events to the server,
    the core's bytes back. An asyncio protocol rather than a stream reader: the bytes the
    transport hands over go to the core as they are (a 1 MiB WRITE is not copied into and out
    of a stream buffer first)."""

    def __init__(self, server: NBDServer) -> None:
        self.server = server
        self.core = ServerConnection(
            server._snapshot(),
            default_export=server.default_export,
            block_min=server.block_min,
            max_in_flight=server.max_in_flight,
        )
        self.transport: asyncio.Transport | None = None
        self.peer: object = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.export: Export | None = None
        self.reply_scheduled = False  # a send of the completed replies is queued
        self.submit: Callable[[int, bytes, bool, WriteDone], None] | None = None
        self.submitted = 0  # writes handed to `submit`, not done yet
        self.drained = asyncio.Event()  # set when submitted is 0
        self.ended = asyncio.get_running_loop().create_future()  # the transport is gone
        self._reading_paused = False
        self._writing_paused = False
        self._finishing = False
        self._handling = False  # inside _events: completions wait for it to look
        self._hand_out_scheduled = False  # a _hand_out is queued

    # --- asyncio's side ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not asyncio's class
        self.peer = transport.get_extra_info("peername")
        self.server._connections.add(self)
        if self.server._server is None or not self.server._server.is_serving():
            self.core.shutdown()
        self.flush()

    def data_received(self, data: bytes) -> None:
        if not self.core.in_transmission:
            self.core.exports = self.server._snapshot()  # role changes show in the next answer
        self._events(self.core.receive_data(data))

    def eof_received(self) -> bool:
        self._events(self.core.receive_data(b""))
        return True  # half-open: the replies of requests still running go out first

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.info("NBD client %s: %s", self.peer, exc)
        if not self.core.closed:
            self._events(self.core.receive_data(b""))  # requests still running may end
        self.server._connections.discard(self)
        if not self.ended.done():
            self.ended.set_result(None)

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests until it does.
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()
        self.completed()  # requests held back meanwhile

    # --- ours -------------------------------------------------------------------------------

    def _events(self, events: list[Event]) -> None:
        self._handling = True
        try:
            self.server._handle(self, events, self.peer)
            # Writes can complete inside the handler (inline): then the slots they freed
            # are used here, for requests the limit held back.
            while self._may_hand_out():
                self.server._handle(self, self.core.next_events(), self.peer)
        finally:
            self._handling = False
        self.flush()
        self._update_reading()
        if self.core.closed and not self._finishing:
            self._finishing = True
            task = asyncio.get_running_loop().create_task(self._finish())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def flush(self) -> None:
        """Send what the core has framed."""
        self.reply_scheduled = False
        if self.transport is not None and not self.transport.is_closing():
            out = self.core.data_to_send()
            if out:
                self.transport.write(out)

    def completed(self) -> None:
        """A request was answered: a slot is free, so requests held back may run -- after
        the events being handled, if it was answered while handling them, or else in a
        callback of their own. Never from here: the answer may come from a backend in the
        middle of its own work (the replica's engine carrying out a list of effects), which a
        new request must not enter; its frames to the peer would overtake earlier ones."""
        if self._handling or self._hand_out_scheduled or not self._may_hand_out():
            return  # _events looks at held_back when the handler returns
        self._hand_out_scheduled = True
        asyncio.get_running_loop().call_soon(self._hand_out)

    def _hand_out(self) -> None:
        self._hand_out_scheduled = False
        if self._may_hand_out():
            self._events(self.core.next_events())

    def _may_hand_out(self) -> bool:
        # Not while the client leaves its replies unread: their buffer would grow unbounded.
        return self.core.want_read and self.core.held_back and not self._writing_paused

    def _update_reading(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        want = self.core.want_read and not self._writing_paused
        if want and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        elif not want and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    async def _finish(self) -> None:
        """The client is done (DISC, EOF or a protocol error): outstanding requests still
        finish and are answered (proto.md), then the connection is closed."""
        await self.settle()
        self.flush()
        if self.transport is not None:
            self.transport.close()

    async def settle(self, timeout: float | None = None) -> None:
        """Until every request handed out is answered (or `timeout`)."""

        async def both() -> None:
            running = [t for t in self.tasks if t is not asyncio.current_task()]
            if running:
                await asyncio.wait(running)
            while self.submitted:
                self.drained.clear()
                await self.drained.wait()

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both(), timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class NBDServer:
    """Serve `exports` on host:port until `stop()`; `port=0` picks a free port (see `.port`)."""

    def __init__(
        self,
        exports: Sequence[Export],
        *,
        host: str = DEFAULT_ADDRESS[0],
        port: int = DEFAULT_ADDRESS[1],
        default_export: str | None = None,
        block_min: int = DEFAULT_BLOCK_MIN,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self.exports = {e.name: e for e in exports}
        if default_export is None and len(exports) == 1:
            # One export: clients that name none (qemu's nbd://host:port) get it.
            default_export = exports[0].name
        self.default_export = default_export
        self.host = host
        self.port = port
        self.block_min = block_min
        self.max_in_flight = max_in_flight
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("NBD server listening on %s:%d", self.host, self.port)

    async def stop(self, grace: float = 5.0, linger: float = 0.2) -> None:
        """Close the listener, answer new requests ESHUTDOWN, let in-flight ones finish (up to
        `grace` seconds), give clients `linger` seconds to disconnect by themselves (proto.md's
        soft disconnect: a client told ESHUTDOWN should send NBD_CMD_DISC), then close the
        connections that remain."""
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for conn in connections:
            conn.core.shutdown()
            conn.completed()  # requests held back are now answered ESHUTDOWN
        if connections:
            await asyncio.wait(
                [asyncio.create_task(c.settle()) for c in connections], timeout=grace
            )
        ended = [c.ended for c in connections]
        if ended and linger > 0:
            await asyncio.wait(ended, timeout=linger)
        for conn in connections:
            conn.close()
        if ended:
            await asyncio.wait(ended, timeout=grace)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> NBDServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _snapshot(self) -> dict[str, ExportInfo]:
        return {name: export.info() for name, export in self.exports.items()}

    def _handle(self, conn: _Connection, events: list[Event], peer: object) -> None:
        for event in events:
            if isinstance(event, Request):
                assert conn.export is not None
                if (
                    event.command is Command.WRITE
                    and conn.submit is not None
                    and conn.export.backend.access() is Access.READ_WRITE
                ):
                    conn.submitted += 1
                    try:
                        conn.submit(event.offset, event.data, event.fua, self._written(conn, event))
                    except OSError as err:
                        self._written(conn, event)(err)
                    except Exception as exc:  # a bug: answered EIO, as _execute does
                        log.exception("NBD WRITE failed")
                        self._written(conn, event)(OSError(errno.EIO, f"internal error: {exc!r}"))
                    continue
                task = asyncio.create_task(self._execute(conn, conn.export, event))
                conn.tasks.add(task)
                task.add_done_callback(conn.tasks.discard)
            elif isinstance(event, Negotiated):
                conn.export = self.exports[event.export.name]
                conn.submit = getattr(conn.export.backend, "submit_write", None)
                log.info("NBD client %s uses export %r", peer, event.export.name)
            elif isinstance(event, Closed):
                level = logging.INFO if event.clean else logging.WARNING
                log.log(level, "NBD client %s: %s", peer, event.reason)

    async def _execute(self, conn: _Connection, export: Export, req: Request) -> None:
        backend = export.backend
        data = b""
        error = NBDError.OK
        try:
            access = backend.access()
            if access is Access.REFUSED:
                # Demoted and refusing: ask the client to go away.
                error = NBDError.ESHUTDOWN
            elif access is Access.READ_ONLY and req.command in (
                Command.WRITE,
                Command.TRIM,
                Command.WRITE_ZEROES,
            ):
                # Advertised writable, but the role changed since the handshake.
                error = NBDError.EPERM
            elif req.command is Command.READ:
                data = await backend.read(req.offset, req.length)
                if len(data) != req.length:
                    raise OSError(errno.EIO, f"backend returned {len(data)} bytes")
            elif req.command is Command.WRITE:
                await backend.write(req.offset, req.data, req.fua)
            elif req.command is Command.FLUSH:
                await backend.flush()
            elif req.command is Command.TRIM:
                await backend.trim(req.offset, req.length)
                if req.fua:
                    await backend.flush()
            elif req.command is Command.WRITE_ZEROES:
                await backend.write_zeroes(req.offset, req.length, req.fua, req.no_hole)
        except OSError as exc:
            error = error_from_errno(exc.errno)
            log.warning("NBD %s at %d+%d: %s", req.command.name, req.offset, req.length, exc)
        except Exception:
            log.exception("NBD %s failed", req.command.name)
            error = NBDError.EIO
        self._reply(conn, req, error, data if error == NBDError.OK else b"")

    def _written(self, conn: _Connection, req: Request) -> WriteDone:
        """The `done` of a submitted write: answers the request once."""
        answered = False

        def done(err: OSError | None) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            error = NBDError.OK
            if err is not None:
                error = error_from_errno(err.errno)
                log.warning("NBD WRITE at %d+%d: %s", req.offset, req.length, err)
            conn.submitted -= 1
            if not conn.submitted:
                conn.drained.set()
            self._reply(conn, req, error)

        return done

    def _reply(self, conn: _Connection, req: Request, error: int, data: bytes = b"") -> None:
        conn.core.complete(req.cookie, error, data)
        if not conn.reply_scheduled:
            # Replies completed in the same loop iteration go out in one send.
            conn.reply_scheduled = True
            asyncio.get_running_loop().call_soon(conn.flush)
        conn.completed()
