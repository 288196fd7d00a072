"""`hastack replica serve`: this node's replication daemon, the asyncio shell around the engines.

For every resource of drbd.conf that has a host section for this node, the daemon attaches each
volume's backing device (backing.py), runs one ReplicaEngine per volume, keeps the resource's
one TCP connection to its peer (peer_stream.py, with peer_link.py's framing), and serves each
volume over NBD (nbd_server.py) while the resource is Primary. Verbs arrive on a control socket
(control.py).

What the shell decides, and why:

* Who connects: the node whose name sorts first dials, the other accepts. Two nodes dialling
  each other at once would need a tie-break between two live connections; one dialler never
  does. The dialler retries every `connect-int`; a refused (StandAlone) resource waits for
  `connect`.
* Local writes go through the activity log (backing.Backing.begin_write) before they are
  issued; an application write keeps its extent in the log until the engine completes it, so a
  crash never forgets an extent whose write the peer may lack. Writes that overlap one still in
  flight wait for it: the disk sees them in the order the engine issued them.
* The superblock follows the engine: after every batch of effects, the identifiers and flags
  are compared and rewritten when they changed, before anything else happens on the loop (so a
  new data generation is stable before the first write under it is acknowledged).
* The bitmap is written when it changed, at most once a second, after the data it vouches for
  is stable, and at a clean stop.
* While the peer connection's send buffer is full, new application writes wait in order
  (DRBD's on-congestion block), so a slow peer cannot make this side buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import random
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hastack.replica import peer_link, reconfigure
from hastack.replica.activitylog import ActivityLogBusy
from hastack.replica.backing import (
    Backing,
    BackingError,
    MetadataKeeper,
    Prepared,
    attach_disk_state,
    attach_peer_disk,
)
from hastack.replica.config import select_host
from hastack.replica.engine import (
    AWAITED_HANDLERS,
    MAX_PEER_READ,
    CloseConnection,
    Complete,
    DetachLocal,
    Effect,
    EngineError,
    FlushLocal,
    Log,
    ReadLocal,
    Released,
    ReplicaEngine,
    RunHandler,
    Send,
    WriteLocal,
)
from hastack.replica.engine_resize import ResizeAsked, Resized
from hastack.replica.model import Address, DrbdConf, Host, Resource, Volume
from hastack.replica.nbd_server import Access, Export, NBDServer, WriteDone
from hastack.replica.peer_stream import PeerStream
from hastack.replica.ranges import RangeIndex
from hastack.replica.states import ConnState, DiskState, Role

log = logging.getLogger("hastack.replica")

TICK = 0.1  # engine ticks: pings, epoch closing, resync pacing
HANDLER_TIMEOUT = 60.0
_ZERO_CHUNK = 1 << 20
_READY = Prepared(None, None)  # nothing to make stable first
INLINE_WRITE = 128 * 1024  # local writes up to this size are issued on the event loop
DETACH_DRAIN = 10.0  # seconds a detach waits for local I/O in flight before closing anyway


class ReplicaCommandError(Exception):
    """A verb the daemon refuses; the message goes back to the operator."""


# --- one volume ----------------------------------------------------------------------------


class _Write:
    """A local write in flight. Later writes that overlap it wait for it; the future they
    wait on is made only then (most writes overlap nothing, and a future per write costs)."""

    __slots__ = ("_done", "_finished")

    def __init__(self) -> None:
        self._done: asyncio.Future[None] | None = None
        self._finished = False

    def done(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        if self._done is None:
            self._done = loop.create_future()
            if self._finished:
                self._done.set_result(None)
        return self._done

    def finish(self) -> None:
        self._finished = True
        if self._done is not None:
            self._done.set_result(None)


class VolumeRunner:
    """One volume of a resource on this node: backing, engine, the effects between them."""

    def __init__(self, resource: ResourceRunner, volume: Volume, backing: Backing) -> None:
        self.resource = resource
        self.volume = volume
        self.backing = backing
        res = resource.config
        sb = backing.superblock
        disk_opts = res.volume_disk(volume)
        disk_state = attach_disk_state(sb.flags, disk_opts.fencing)
        self.engine = ReplicaEngine(
            node=resource.node,
            size=backing.size,
            net=res.net,
            disk=disk_opts,
            rng=random.SystemRandom(),
            role=Role.SECONDARY,
            disk_state=disk_state,
            generations=sb.generations,
            bitmap=backing.bitmap,
            crashed_primary=backing.crashed_primary,
            now=time.monotonic(),
            handlers=res.handlers,
            peer_disk=attach_peer_disk(sb.flags),
        )
        self._handles = 0
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._done: dict[int, WriteDone] = {}  # handle -> submit_write's callback
        # application writes admitted to the activity log (handle -> range), until Released
        self._admitted: dict[int, tuple[int, int]] = {}
        self._issued: set[int] = set()  # admitted writes the engine issued locally
        self._metadata_event = asyncio.Event()  # replaced each time a transaction is stable
        self._inflight: dict[int, _Write] = {}  # token -> local write in flight
        self._inflight_ranges = RangeIndex()  # their byte ranges, by token
        # Application writes waiting for room in the peer connection's send buffer.
        self._held_back: deque[tuple[int, bytes, bool, WriteDone]] = deque()
        self.metadata: MetadataKeeper | None = MetadataKeeper(
            backing, self.engine, time.monotonic()
        )
        self.nbd: NBDServer | None = None
        # Diskless operation: `backing` is None once a detached disk is closed. The task that
        # lets go of it; the shell's own uses of the disk (activity-log writes, reads served
        # here) it waits for; a meta-data write failed (reported to the engine once).
        self._detaching: asyncio.Task[None] | None = None
        self._shell_io = 0
        self._meta_failed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        # Asked for on every write: the running loop, found once (a runner lives in one loop).
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    # --- effects -------------------------------------------------------------------------

    def run(self, effects: list[Effect]) -> None:
        """Carry out an engine's effects."""
        for effect in effects:
            if isinstance(effect, WriteLocal):
                self._write(effect)
            elif isinstance(effect, ReadLocal):
                self._io(effect.token, self.backing.read, effect.offset, effect.length)
            elif isinstance(effect, FlushLocal):
                self._io(effect.token, self.backing.flush)
            elif isinstance(effect, Send):
                self.resource.send(self.volume.number, effect.parts)
            elif isinstance(effect, Released):
                self._release(effect.handle)
            elif isinstance(effect, Complete):
                if effect.handle not in self._issued:
                    self._release(effect.handle)  # refused before any write was issued
                done = self._done.pop(effect.handle, None)
                if done is not None:
                    done(None if effect.ok else OSError(_errno_for(effect.error), effect.error))
                future = self._waiting.pop(effect.handle, None)
                if future is not None and not future.done():
                    if effect.ok:
                        future.set_result(effect.data)
                    else:
                        future.set_exception(OSError(_errno_for(effect.error), effect.error))
            elif isinstance(effect, DetachLocal):
                if self._detaching is None or self._detaching.done():
                    self._detaching = self.loop.create_task(self._let_go(effect))
            elif isinstance(effect, CloseConnection):
                self.resource.close_connection(effect.reason)
            elif isinstance(effect, RunHandler):
                self.resource.run_handler(effect.name, self.volume)
            elif isinstance(effect, Log):
                level = {"warning": logging.WARNING, "error": logging.ERROR}.get(
                    effect.level, logging.INFO
                )
                log.log(level, "%s/%d: %s", self.resource.name, self.volume.number, effect.text)
            elif isinstance(effect, ResizeAsked | Resized):
                reconfigure.resize_effect(self, effect)
        self.persist()

    def _write(self, effect: WriteLocal) -> None:
        start, stop = effect.offset, effect.offset + len(effect.data)
        overlapping = self._inflight_ranges.overlapping(start, stop)
        before = [self._inflight[token].done(self.loop) for token in overlapping]
        entry = _Write()
        self._inflight[effect.token] = entry
        self._inflight_ranges.add(effect.token, start, stop)
        prepared: Prepared | None
        if effect.handle is not None and effect.handle in self._admitted:
            # An application write was admitted to the activity log before the engine saw it.
            self._issued.add(effect.handle)
            prepared = _READY
        else:
            try:  # a peer's or a resync write: the log is updated in the engine's order
                prepared = self.backing.begin_write(effect.offset, len(effect.data))
            except ActivityLogBusy:
                prepared = None
        if (
            not before
            and prepared is not None
            and prepared.ready
            and not effect.fua
            and len(effect.data) <= INLINE_WRITE
        ):
            # A small write to the page cache costs microseconds: a thread hop costs more.
            # After this batch of effects, so the engine sees its effects in order.
            self.loop.call_soon(self._write_inline, effect, entry)
        else:
            self.loop.create_task(self._do_write(effect, before, entry, prepared))

    def _write_inline(self, effect: WriteLocal, entry: _Write) -> None:
        self._finish_write(effect, entry, self._write_now(effect))

    def _write_now(self, effect: WriteLocal) -> bool:
        try:
            self.backing.write_data(effect.offset, effect.data, effect.fua)
        except OSError as err:
            self.resource.io_error(self.volume, f"write at {effect.offset}: {err}")
            return False
        return True

    def _finish_write(self, effect: WriteLocal, entry: _Write, ok: bool) -> None:
        if effect.handle is None or effect.handle not in self._admitted:
            self.backing.end_write(effect.offset, len(effect.data))
        # An application write keeps its extent hot until the engine says the write is
        # settled on both sides (Released), not merely done here.
        self._inflight.pop(effect.token, None)
        self._inflight_ranges.remove(effect.token)
        entry.finish()
        self.run(self.engine.io_done(time.monotonic(), effect.token, ok))

    async def _do_write(
        self,
        effect: WriteLocal,
        before: list[asyncio.Future[None]],
        entry: _Write,
        prepared: Prepared | None,
    ) -> None:
        if before:
            await asyncio.wait(before)
        if prepared is None:
            prepared = await self._begin(effect.offset, len(effect.data))
        ok = await self._make_stable(prepared, effect.offset)
        if ok:
            ok = await self.resource.daemon.blocking(self._write_now, effect)
        self._finish_write(effect, entry, ok)

    async def _begin(self, offset: int, length: int) -> Prepared:
        while True:
            if self.backing is None:
                raise OSError(errno.ENODEV, "the disk was detached")
            try:
                return self.backing.begin_write(offset, length)
            except ActivityLogBusy:
                # Every extent of the log has writes in flight: wait for one to finish.
                await asyncio.sleep(0.001)

    async def _make_stable(self, prepared: Prepared, offset: int) -> bool:
        """Write what the log needs (this write's transaction) and wait for what it depends
        on (earlier writes' transactions): then the data may go to disk, or to the peer."""
        ok = True
        if prepared.needs_metadata:
            try:
                await self.resource.daemon.blocking(self.backing.write_metadata, prepared)
            except OSError as err:
                ok = False
                self.resource.io_error(self.volume, f"meta-data before {offset}: {err}", meta=True)
            self.backing.transaction_stable(prepared)
            self._metadata_written()
        while not self.backing.stable(prepared.wait):
            await self._metadata_event.wait()  # another write's transaction, in flight
        return ok

    def _metadata_written(self) -> None:
        """Wake the writes waiting for an activity-log transaction to be stable."""
        event, self._metadata_event = self._metadata_event, asyncio.Event()
        event.set()

    def _io(self, token: int, func: Callable[..., Any], *args: Any) -> None:
        async def go() -> None:
            ok, data = True, b""
            try:
                result = await self.resource.daemon.blocking(func, *args)
                if isinstance(result, bytes):
                    data = result
            except OSError as err:
                ok = False
                self.resource.io_error(self.volume, str(err))
            self.run(self.engine.io_done(time.monotonic(), token, ok, data))

        self.loop.create_task(go())

    def persist(self, *, force_bitmap: bool = False) -> None:
        if self.metadata is None or self._meta_failed:
            return  # Diskless, or the meta-data cannot be written (the engine detaches)
        try:
            self.metadata.persist(time.monotonic(), force_bitmap=force_bitmap)
        except OSError as err:
            self._meta_failed = True
            self.resource.io_error(self.volume, f"meta-data write: {err}", meta=True)

    # --- Diskless operation --------------------------------------------------------------

    @property
    def detaching(self) -> bool:
        return self._detaching is not None and not self._detaching.done()

    async def wait_detached(self) -> None:
        if self._detaching is not None:
            await asyncio.shield(self._detaching)

    async def _let_go(self, effect: DetachLocal) -> None:
        """The engine detached (DetachLocal): once its local I/O and the shell's own are
        done, write the metadata (the state the disk leaves with, the bitmap) and close the
        disk; then the engine may ack barriers without a flush of its own."""
        backing = self.backing
        if backing is None:
            return
        deadline = time.monotonic() + DETACH_DRAIN
        while self._busy_locally() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        drained = not self._busy_locally()
        self.persist(force_bitmap=True)
        clean = effect.clean and drained and not self._meta_failed
        try:
            await self.resource.daemon.blocking(backing.close, clean=clean)
        except OSError as err:
            log.error("%s/%d: closing the disk: %s", self.resource.name, self.volume.number, err)
        self.backing = None
        self.metadata = None
        self._admitted.clear()
        self._issued.clear()
        log.warning(
            "%s/%d: detached (%s; %s): Diskless",
            self.resource.name,
            self.volume.number,
            effect.reason,
            "clean" if clean else "unclean",
        )
        self.run(self.engine.disk_closed(time.monotonic()))

    def _busy_locally(self) -> bool:
        return self.engine.local_io_busy or bool(self._inflight) or self._shell_io > 0

    async def reattach(self) -> None:
        """`attach` of a detached volume: open the disk, read its metadata, hand both to the
        engine (which says Hello again to a connected peer: the resync brings it UpToDate)."""
        await self.wait_detached()
        if self.backing is not None:
            return
        name = f"{self.resource.name}/{self.volume.number}"
        disk_opts = self.resource.config.volume_disk(self.volume)
        assert self.volume.disk is not None
        try:
            backing = await self.resource.daemon.blocking(
                Backing.attach, self.volume.disk, self.volume.meta_disk, size_sectors=disk_opts.size
            )
        except BackingError as err:
            raise ReplicaCommandError(f"{name}: attach failed: {err}") from None
        problem = ""
        if backing.size != self.engine.size:
            problem = f"the disk has {backing.size} bytes, the volume {self.engine.size}"
        else:
            try:
                effects = self.engine.attach(
                    time.monotonic(),
                    disk_state=attach_disk_state(backing.superblock.flags, disk_opts.fencing),
                    generations=backing.superblock.generations,
                    bitmap=backing.bitmap,
                    crashed_primary=backing.crashed_primary,
                )
            except EngineError as err:
                problem = str(err)
        if problem:
            await self.resource.daemon.blocking(backing.close, clean=True)
            raise ReplicaCommandError(f"{name}: attach: {problem}")
        self.backing = backing
        self._meta_failed = False
        self.metadata = MetadataKeeper(backing, self.engine, time.monotonic())
        self.run(effects)
        self.persist(force_bitmap=True)
        log.info("%s: attached again (%s)", name, self.engine.disk_state.literal)

    # --- the application's side (NBD) ----------------------------------------------------

    def _next_handle(self) -> tuple[int, asyncio.Future[bytes]]:
        self._handles += 1
        future = self.loop.create_future()
        self._waiting[self._handles] = future
        return self._handles, future

    async def app_write(self, offset: int, data: bytes, fua: bool) -> None:
        future: asyncio.Future[None] = self.loop.create_future()

        def done(error: OSError | None) -> None:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

        self.submit_write(offset, data, fua, done)
        await future

    def submit_write(self, offset: int, data: bytes, fua: bool, done: WriteDone) -> None:
        """An application write; `done` is called once the engine completed it. Without a
        coroutine when the write's extent is hot and stable (the common case): the NBD server
        submits every write here, and a task per write costs more than the rest of the write's
        path on this node.

        DRBD's order: the extent is in the activity log on disk before the write goes to the
        local disk or to the peer, so a crash never leaves a block on either side that the
        crashed node's log does not name. A Diskless volume's writes go to the peer only."""
        if self._held_back or self.resource.congested:
            # DRBD's on-congestion block: the peer's send buffer is full, so the write waits
            # (in order) instead of growing the buffer without bound; under protocol A a
            # write completes once it is in that buffer.
            self._held_back.append((offset, data, fua, done))
            return
        self._submit(offset, data, fua, done)

    def resume_writes(self) -> None:
        """The send buffer drained (or the connection is gone): writes held back go on."""
        while self._held_back and not self.resource.congested:
            self._submit(*self._held_back.popleft())

    def _submit(self, offset: int, data: bytes, fua: bool, done: WriteDone) -> None:
        if self.backing is None or self.engine.disk_state is DiskState.DISKLESS:
            self._admit(offset, data, fua, done, admitted=False)
            return
        try:
            prepared: Prepared | None = self.backing.begin_write(offset, len(data))
        except (ActivityLogBusy, OSError):
            prepared = None  # the slow path waits for a slot, or finds the disk gone
        if prepared is not None and prepared.ready:
            self._admit(offset, data, fua, done, admitted=True)
        else:
            self.loop.create_task(self._admit_later(prepared, offset, data, fua, done))

    async def _admit_later(
        self, prepared: Prepared | None, offset: int, data: bytes, fua: bool, done: WriteDone
    ) -> None:
        """An activity-log transaction to write or wait for first. Waiting here (not with the
        write already in the peer stream) lets earlier writes' barrier acks through, which
        free log slots."""
        admitted = False
        self._shell_io += 1
        try:
            if prepared is None:
                prepared = await self._begin(offset, len(data))
            admitted = await self._make_stable(prepared, offset)
            if not admitted and self.backing is not None:
                self.backing.end_write(offset, len(data))
        except OSError:
            admitted = False  # the disk was let go of meanwhile
        finally:
            self._shell_io -= 1
        if not admitted and self.engine.disk_state is not DiskState.DISKLESS:
            done(OSError(errno.EIO, "activity log write failed"))
            return
        self._admit(offset, data, fua, done, admitted)

    def _admit(self, offset: int, data: bytes, fua: bool, done: WriteDone, admitted: bool) -> None:
        self._handles += 1
        self._done[self._handles] = done
        if admitted:
            self._admitted[self._handles] = (offset, len(data))
        self.run(self.engine.app_write(time.monotonic(), self._handles, offset, data, fua=fua))

    def _release(self, handle: int) -> None:
        held = self._admitted.pop(handle, None)
        self._issued.discard(handle)
        if held is not None and self.backing is not None:
            self.backing.end_write(*held)

    async def app_flush(self) -> None:
        handle, future = self._next_handle()
        self.run(self.engine.app_flush(time.monotonic(), handle))
        await future

    async def app_read(self, offset: int, length: int) -> bytes:
        """An UpToDate disk serves reads here; otherwise (Diskless, Inconsistent) and when the
        local read fails, the engine does: from the good local blocks or from the peer."""
        backing = self.backing
        if backing is not None and self.engine.disk_state is DiskState.UP_TO_DATE:
            self._shell_io += 1
            try:
                data = await self.resource.daemon.blocking(backing.read, offset, length)
            except OSError as err:
                self.resource.io_error(self.volume, f"read at {offset}: {err}")
                return await self._engine_read(offset, length, local_failed=True)
            finally:
                self._shell_io -= 1
            self.run(self.engine.note_app_read(time.monotonic(), length))
            return data
        return await self._engine_read(offset, length)

    async def _engine_read(self, offset: int, length: int, *, local_failed: bool = False) -> bytes:
        parts: list[bytes] = []
        end = offset + length
        while offset < end:
            chunk = min(MAX_PEER_READ, end - offset)
            handle, future = self._next_handle()
            self.run(
                self.engine.app_read(
                    time.monotonic(), handle, offset, chunk, local_failed=local_failed
                )
            )
            parts.append(await future)
            local_failed = False  # the policy is applied once
            offset += chunk
        return b"".join(parts)

    def status(self) -> dict[str, Any]:
        st = dict(self.engine.status)
        stats = dict(st.get("stats") or {})
        stats["al"] = self.backing.stats["al"] if self.backing is not None else 0
        stats["bm"] = self.backing.stats["bm"] if self.backing is not None else 0
        nbd = self.volume.nbd_export
        return {
            "volume": self.volume.number,
            "minor": self.volume.minor,
            "device": self.volume.device,
            "disk": _literal(st.get("disk")),
            "peer_disk": _literal(st.get("peer_disk")),
            "oos": st.get("oos", 0),
            "size_kib": self.engine.size // 1024,
            "nbd": f"{nbd.host_port}" if self.nbd is not None else "",
            "stats": stats,
            "sync": st.get("sync"),
            # What the peer reported at the last handshake: `resolve --dry-run` shows it.
            "peer_changed_blocks": self.engine.peer_changed_blocks,
        }


def _by_volume(
    chunks: list[tuple[int, peer_link.Chunk]],
) -> list[tuple[int, list[peer_link.Chunk]]]:
    """Consecutive chunks of one volume grouped: the engine takes a read's frames in one call
    (one batch of effects, one metadata check) instead of one call per frame."""
    grouped: list[tuple[int, list[peer_link.Chunk]]] = []
    for volume, chunk in chunks:
        if grouped and grouped[-1][0] == volume:
            grouped[-1][1].append(chunk)
        else:
            grouped.append((volume, [chunk]))
    return grouped


def _literal(value: object) -> str:
    """The engine reports DRBD's spellings; older engines reported enum names."""
    text = str(value)
    for state in DiskState:
        if text == state.name:
            return state.literal
    return text


def _errno_for(message: str) -> int:
    if "read-only" in message:
        return errno.EROFS
    return errno.EIO


class ReplicaBackend:
    """The NBD backend of a volume: writes and flushes go through the engine."""

    def __init__(self, runner: VolumeRunner) -> None:
        self.runner = runner

    def size(self) -> int:
        return self.runner.engine.size

    def access(self) -> Access:
        # Only a Primary serves its device; a Secondary's belongs to the replication stream.
        return Access.READ_WRITE if self.runner.engine.role is Role.PRIMARY else Access.REFUSED

    async def read(self, offset: int, length: int) -> bytes:
        return await self.runner.app_read(offset, length)

    async def write(self, offset: int, data: bytes, fua: bool) -> None:
        await self.runner.app_write(offset, data, fua)

    def submit_write(self, offset: int, data: bytes, fua: bool, done: WriteDone) -> None:
        self.runner.submit_write(offset, data, fua, done)

    async def flush(self) -> None:
        await self.runner.app_flush()

    async def trim(self, offset: int, length: int) -> None:
        # TRIM is advisory in NBD; discarding on one side only would make the replicas
        # differ under `verify`, so hastack ignores it (docs/compat.md).
        return None

    async def write_zeroes(
        self, offset: int, length: int, fua: bool, no_hole: bool = False
    ) -> None:
        end = offset + length
        while offset < end:
            chunk = min(_ZERO_CHUNK, end - offset)
            await self.runner.app_write(offset, bytes(chunk), fua)
            offset += chunk


# --- one resource --------------------------------------------------------------------------


class ResourceRunner:
    """One resource on this node: its volumes, its peer connection, its verbs."""

    def __init__(self, daemon: ReplicaDaemon, config: Resource, host: Host, peer: Host) -> None:
        self.daemon = daemon
        self.config = config
        self.name = config.name
        self.node = daemon.node
        self.host = host
        self.peer = peer
        self.peer_name = peer.names[0] if peer.names else peer.address.host
        self.volumes: dict[int, VolumeRunner] = {}
        self.conn: PeerStream | None = None
        self.want_connect = False
        self._server: asyncio.base_events.Server | None = None
        self._dialer: asyncio.Task[None] | None = None
        self._wake_dialer = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        # fence-peer runs once per resource (DRBD 8.4: per connection) whatever the number of
        # volumes asking; every handler's end wakes the verbs waiting on it (`primary`).
        self._fence_task: asyncio.Task[None] | None = None
        # One handler at a time, in the order the engines asked (DRBD runs them from one
        # worker): an unfence-peer still running must not undo a later fence-peer.
        self._handler_turn = asyncio.Lock()
        self._handler_event = asyncio.Event()

    @property
    def dials(self) -> bool:
        return self.node < self.peer_name

    @property
    def up(self) -> bool:
        return bool(self.volumes)

    # --- up / down -----------------------------------------------------------------------

    async def attach(self, volume: int | None = None) -> None:
        if self.volumes:
            # Running: attach the volumes that were detached (Diskless) again.
            for runner in self._volumes(volume):
                if runner.backing is None or runner.detaching:
                    await runner.reattach()
            return
        attached: list[VolumeRunner] = []
        try:
            for volume in self.host.volumes:
                if volume.disk is None:
                    raise ReplicaCommandError(
                        f"{self.name}/{volume.number}: `disk none` (diskless) is not supported"
                    )
                size = self.config.volume_disk(volume).size
                backing = await self.daemon.blocking(
                    Backing.attach, volume.disk, volume.meta_disk, size_sectors=size
                )
                attached.append(VolumeRunner(self, volume, backing))
        except BackingError as err:
            for runner in attached:
                runner.backing.close(clean=True)
            raise ReplicaCommandError(f"{self.name}: attach failed: {err}") from None
        for runner in attached:
            self.volumes[runner.volume.number] = runner
            runner.persist(force_bitmap=True)
        for runner in attached:
            await self._start_nbd(runner)
        log.info("%s: attached %d volume(s)", self.name, len(attached))

    async def _start_nbd(self, runner: VolumeRunner) -> None:
        address = runner.volume.nbd_export
        export = Export(
            name=self.name if len(self.volumes) == 1 else f"{self.name}/{runner.volume.number}",
            backend=ReplicaBackend(runner),
            description=runner.volume.device,
        )
        server = NBDServer([export], host=address.host, port=address.port)
        try:
            await server.start()
        except OSError as err:
            raise ReplicaCommandError(
                f"{self.name}/{runner.volume.number}: cannot serve NBD on {address.host_port}: "
                f"{err.strerror or err}"
            ) from None
        runner.nbd = server

    async def connect(self, *, discard_my_data: bool = False) -> None:
        if not self.volumes:
            raise ReplicaCommandError(f"{self.name}: not attached (run `up` or `attach`)")
        for runner in self.volumes.values():
            engine = runner.engine
            if engine.cstate is ConnState.STANDALONE and self.conn is None:
                try:
                    runner.run(engine.connect(time.monotonic(), discard_my_data=discard_my_data))
                except EngineError as err:
                    raise ReplicaCommandError(f"{self.name}: connect: {err}") from None
            elif discard_my_data:
                raise ReplicaCommandError(
                    f"{self.name}: --discard-my-data needs StandAlone (now {engine.cstate.value}):"
                    " disconnect first"
                )
        self.want_connect = True
        if self.dials:
            if self._dialer is None or self._dialer.done():
                self._dialer = asyncio.create_task(self._dial_loop())
            self._wake_dialer.set()
        elif self._server is None:
            await self._listen()

    async def disconnect(self) -> None:
        self.want_connect = False
        for runner in self.volumes.values():
            runner.run(runner.engine.disconnect(time.monotonic()))
        self.close_connection("disconnect requested")
        if self._dialer is not None:
            self._dialer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dialer
            self._dialer = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _volumes(self, volume: int | None) -> list[VolumeRunner]:
        if volume is None:
            return list(self.volumes.values())
        runner = self.volumes.get(volume)
        if runner is None:
            known = ", ".join(str(n) for n in self.volumes) or "none"
            raise ReplicaCommandError(f"{self.name}: no volume {volume} (volumes: {known})")
        return [runner]

    async def detach(self, *, force: bool = False, volume: int | None = None) -> None:
        """`detach [--force] RES[/VOL]`: the volume lets go of its disk and goes on Diskless
        (I/O through the peer). Returns once the disk is closed."""
        if not self.volumes:
            raise ReplicaCommandError(f"{self.name}: not attached")
        runners = self._volumes(volume)
        for runner in runners:
            try:
                runner.run(runner.engine.detach(time.monotonic(), force=force))
            except EngineError as err:
                raise ReplicaCommandError(
                    f"{self.name}/{runner.volume.number}: detach: {err}"
                ) from None
        for runner in runners:
            await runner.wait_detached()

    async def down(self, *, stopping: bool = False) -> None:
        """Demote, disconnect, stop serving, detach cleanly. `stopping` (the daemon's own
        stop): NBD clients are disconnected first instead of refusing to demote."""
        if not self.volumes:
            return
        if stopping:
            await self._stop_nbd()
        if self.role is Role.PRIMARY:
            await self.secondary()
        await self._settle()
        await self.disconnect()
        await self._stop_nbd()
        for runner in self.volumes.values():
            await runner.wait_detached()
            if runner.backing is None:
                continue  # Diskless: its disk was closed at the detach
            deadline = time.monotonic() + 10.0
            while runner._inflight and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            if runner._inflight:
                # A local write that never finished: its extent stays in the log (unclean).
                log.error(
                    "%s/%d: local writes still in flight; detaching uncleanly",
                    self.name,
                    runner.volume.number,
                )
                await self.daemon.blocking(runner.backing.close, clean=False)
                continue
            runner.persist(force_bitmap=True)
            await self.daemon.blocking(runner.backing.close, clean=True)
        self.volumes.clear()
        await self._wait_handlers()
        log.info("%s: down", self.name)

    async def _stop_nbd(self) -> None:
        for runner in self.volumes.values():
            if runner.nbd is not None:
                await runner.nbd.stop(grace=5.0)
                runner.nbd = None

    async def _settle(self, timeout: float = 5.0) -> None:
        """Before a clean disconnect: let the peer confirm every mirrored write (the engine
        closes the open epoch on its next tick), or the bitmap would count them as changed."""
        deadline = time.monotonic() + timeout
        while self.conn is not None and time.monotonic() < deadline:
            if not any(r.engine.transfer_log for r in self.volumes.values()):
                return
            await asyncio.sleep(TICK / 2)

    async def _wait_handlers(self) -> None:
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=HANDLER_TIMEOUT)

    # --- roles ---------------------------------------------------------------------------

    @property
    def role(self) -> Role:
        if any(r.engine.role is Role.PRIMARY for r in self.volumes.values()):
            return Role.PRIMARY
        return Role.SECONDARY

    async def primary(self, *, force: bool = False) -> None:
        if not self.volumes:
            raise ReplicaCommandError(f"{self.name}: not attached (run `up` first)")
        now = time.monotonic()
        done: list[VolumeRunner] = []
        try:
            for runner in self.volumes.values():
                engine = runner.engine
                if engine.role is Role.PRIMARY:
                    continue
                if force and engine.disk_state is not DiskState.UP_TO_DATE:
                    runner.run(engine.force_up_to_date(now))
                    if engine.cstate is ConnState.CONNECTED:
                        try:  # a full sync to the peer on this connection, as DRBD does
                            runner.run(engine.invalidate_remote(now))
                        except EngineError:
                            self._reconnect("primary --force: reconnecting as the source")
                    elif self.conn is not None:
                        self._reconnect("primary --force: reconnecting as the source")
                runner.run(engine.promote(now, force=force))
                done.append(runner)
        except EngineError as err:
            self._demote_all(done)
            raise ReplicaCommandError(f"{self.name}: cannot become Primary: {err}") from None
        await self._await_fenced_promotion(done)
        log.info("%s: Primary", self.name)

    def _demote_all(self, runners: list[VolumeRunner]) -> None:
        for runner in runners:
            if runner.engine.role is Role.PRIMARY or runner.engine.promote_pending:
                with contextlib.suppress(EngineError):
                    runner.run(runner.engine.demote(time.monotonic()))

    async def _await_fenced_promotion(self, runners: list[VolumeRunner]) -> None:
        """A promotion that runs fence-peer first (fencing, the peer DUnknown) ends when the
        handler has answered: wait for it, then every volume is Primary or none is."""
        deadline = time.monotonic() + HANDLER_TIMEOUT + 5.0
        while any(r.engine.promote_pending for r in runners):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = self._handler_event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=remaining)
        failed = [r for r in runners if r.engine.role is not Role.PRIMARY]
        if failed:
            why = "; ".join(
                sorted({r.engine.promote_error or "fence-peer gave no answer" for r in failed})
            )
            self._demote_all(runners)
            raise ReplicaCommandError(f"{self.name}: cannot become Primary: {why}")

    async def secondary(self) -> None:
        if not self.volumes:
            raise ReplicaCommandError(f"{self.name}: not attached")
        for runner in self.volumes.values():
            if runner.nbd is not None and runner.nbd._connections:
                raise ReplicaCommandError(
                    f"{self.name}: device is held open by {len(runner.nbd._connections)} NBD "
                    "client(s); disconnect them (unmount) first"
                )
        for runner in self.volumes.values():
            engine = runner.engine
            if engine.role is not Role.PRIMARY:
                continue
            for _ in range(500):  # requests in flight finish first (up to 5 s)
                try:
                    runner.run(engine.demote(time.monotonic()))
                    break
                except EngineError:
                    await asyncio.sleep(0.01)
            else:
                raise ReplicaCommandError(f"{self.name}: requests still in flight after 5 s")
        log.info("%s: Secondary", self.name)

    def engine_op(self, verb: str, method: str, **kwargs: Any) -> None:
        """A verb that is one engine operation on every volume."""
        if not self.volumes:
            raise ReplicaCommandError(f"{self.name}: not attached")
        for runner in self.volumes.values():
            op = getattr(runner.engine, method, None)
            if op is None:
                raise ReplicaCommandError(f"{verb} is not supported by this hastack")
            try:
                runner.run(op(time.monotonic(), **kwargs))
            except EngineError as err:
                raise ReplicaCommandError(f"{self.name}: {verb}: {err}") from None

    # --- the peer connection -------------------------------------------------------------

    def _peer_address(self) -> Address:
        return self.peer.address

    async def _dial_loop(self) -> None:
        interval = max(1, self.config.net.connect_int)
        loop = asyncio.get_running_loop()
        while self.want_connect:
            if self.conn is None and self.volumes and self._wants_connection():
                addr = self._peer_address()
                greeting = peer_link.encode_greeting(self.name, self.node)
                try:
                    _, stream = await asyncio.wait_for(
                        loop.create_connection(
                            functools.partial(
                                PeerStream, self, greeting, accepting=False, **self._buffers()
                            ),
                            addr.host,
                            addr.port,
                        ),
                        timeout=max(1.0, self.config.net.connect_int),
                    )
                except (TimeoutError, OSError) as err:
                    log.debug("%s: connecting to %s: %s", self.name, addr.host_port, err)
                else:
                    self._connected(stream)
            self._wake_dialer.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake_dialer.wait(), timeout=interval)

    def _wants_connection(self) -> bool:
        return any(r.engine.wants_connection for r in self.volumes.values())

    async def _listen(self) -> None:
        addr = self.host.address
        greeting = peer_link.encode_greeting(self.name, self.node)
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: PeerStream(self, greeting, accepting=True, **self._buffers()),
                addr.host,
                addr.port,
            )
        except OSError as err:
            raise ReplicaCommandError(
                f"{self.name}: cannot listen on {addr.host_port}: {err.strerror or err}"
            ) from None

    def _buffers(self) -> dict[str, int]:
        net = self.config.net
        return {"sndbuf": net.sndbuf_size, "rcvbuf": net.rcvbuf_size}

    @property
    def congested(self) -> bool:
        """The peer connection's send buffer is full: new application writes wait."""
        return self.conn is not None and self.conn.congested

    # --- PeerOwner: what the peer connection reports --------------------------------------

    def greeted(self, stream: PeerStream, greeting: peer_link.Greeting) -> str:
        if not stream.accepting:
            # The dialler checks the accepting side's greeting as it was checked.
            if (greeting.resource, greeting.node) != (self.name, self.peer_name):
                return (
                    f"the peer at {self.peer.address.host_port} answered as "
                    f"{greeting.node!r} for resource {greeting.resource!r}"
                )
            return ""
        if greeting.resource != self.name:
            return f"it is for resource {greeting.resource!r}"
        if greeting.node != self.peer_name:
            return f"it comes from {greeting.node!r}, the peer is {self.peer_name!r}"
        if not self.want_connect or not self.volumes:
            return "this resource is not connecting (StandAlone or down)"
        if self.conn is not None:
            # The peer restarted before we noticed the old connection die.
            self.close_connection("the peer connected again")
        if not self._wants_connection():
            return "this resource is StandAlone (run `connect`)"
        return ""

    def accepted(self, stream: PeerStream) -> None:
        self._connected(stream)

    def chunks(self, stream: PeerStream, chunks: list[tuple[int, peer_link.Chunk]]) -> None:
        for volume, pieces in _by_volume(chunks):
            if self.conn is not stream:
                return
            runner = self.volumes.get(volume)
            if runner is None:
                raise peer_link.PeerLinkError(f"peer sent data for unknown volume {volume}")
            runner.run(runner.engine.receive_bytes(time.monotonic(), *pieces))

    def lost(self, stream: PeerStream, reason: str) -> None:
        if self.conn is stream:
            self._lost(reason)

    def congestion_over(self, stream: PeerStream) -> None:
        if self.conn is stream:
            self._resume_held_writes()

    def _resume_held_writes(self) -> None:
        for runner in list(self.volumes.values()):
            runner.resume_writes()

    def _connected(self, stream: PeerStream) -> None:
        self.conn = stream
        log.info("%s: connected to %s", self.name, self.peer_name)
        now = time.monotonic()
        for runner in self.volumes.values():
            if not runner.engine.wants_connection:
                continue
            with contextlib.suppress(EngineError):
                runner.run(runner.engine.connection_made(now))
        stream.take()

    def send(self, volume: int, parts: Sequence[bytes | memoryview]) -> None:
        """One engine frame of `volume` (in pieces) to the peer."""
        if self.conn is not None:
            self.conn.send(volume, parts)

    def _reconnect(self, reason: str) -> None:
        """Drop the connection and dial again now (the handshake decides afresh)."""
        self.close_connection(reason)
        self._wake_dialer.set()

    def close_connection(self, reason: str) -> None:
        """An engine dropped the link (or an operator asked): close it for every volume."""
        if self.conn is None:
            return
        self._lost(reason)

    def _lost(self, reason: str) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        conn.close()
        log.warning("%s: connection to %s lost: %s", self.name, self.peer_name, reason)
        now = time.monotonic()
        for runner in self.volumes.values():
            runner.run(runner.engine.connection_lost(now, reason))
        self._resume_held_writes()  # no send buffer now: held writes go to the bitmap
        # The dialler tries again after connect-int, not at once: a peer that accepts and
        # then refuses would otherwise be redialled in a busy loop.

    # --- ticks, handlers, errors ---------------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        for runner in self.volumes.values():
            runner.run(runner.engine.tick(now))

    def run_handler(self, name: str, volume: Volume) -> None:
        """Run drbd.conf's handler `name` (if configured) with DRBD's environment, and report
        its exit status back to the engines: fence-peer's to every volume (it runs once per
        resource, as in DRBD 8.4), the others' to the volume that asked. A handler that cannot
        be started, or is killed at HANDLER_TIMEOUT, is reported as None (failed)."""
        command = getattr(self.config.handlers, name.replace("-", "_"), None)
        if not command:
            log.info("%s: event %s (no handler configured)", self.name, name)
            if name in AWAITED_HANDLERS:
                # The engine asks only for configured ones; answer anyway rather than hang.
                asyncio.get_running_loop().call_soon(self._handler_done, name, volume, None)
            return
        if name == "fence-peer" and self._fence_task is not None and not self._fence_task.done():
            return  # already running for another volume: its result goes to every volume
        if name == "unfence-peer" and not all(
            r.engine.disk_state is DiskState.UP_TO_DATE
            and r.engine.peer_disk is DiskState.UP_TO_DATE
            for r in self.volumes.values()
        ):
            return  # as DRBD: once *every* volume is back in sync
        env = dict(os.environ)
        env.update(
            DRBD_RESOURCE=self.name,
            DRBD_MINOR=str(volume.minor),
            DRBD_VOLUME=str(volume.number),
            DRBD_CONF=self.daemon.conf.file,
            DRBD_PEER=self.peer_name,
            DRBD_PEERS=self.peer_name,
            DRBD_PEER_ADDRESS=self.peer.address.host,
            DRBD_PEER_AF=self.peer.address.family,
            DRBD_MY_ADDRESS=self.host.address.host,
            DRBD_MY_AF=self.host.address.family,
            DRBD_BACKING_DEV=volume.disk or "",
            DRBD_MINOR_0=str(volume.minor),
        )
        for other in self.host.volumes:
            env[f"DRBD_MINOR_{other.number}"] = str(other.minor)

        async def go() -> None:
            async with self._handler_turn:
                rc = await self._run_command(name, command, env)
            self._handler_done(name, volume, rc)

        task = asyncio.create_task(go())
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        if name == "fence-peer":
            self._fence_task = task

    async def _run_command(self, name: str, command: str, env: dict[str, str]) -> int | None:
        """The handler's exit status; None if it could not start or was killed at
        HANDLER_TIMEOUT."""
        try:
            proc = await asyncio.create_subprocess_shell(
                command, env=env, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
            )
        except OSError as err:
            log.error("%s: handler %s could not be started: %s", self.name, name, err)
            return None
        try:
            rc = await asyncio.wait_for(proc.wait(), timeout=HANDLER_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            log.error("%s: handler %s timed out after %.0f s", self.name, name, HANDLER_TIMEOUT)
            return None
        log.info("%s: handler %s exited %d", self.name, name, rc)
        return rc

    def _handler_done(self, name: str, volume: Volume, rc: int | None) -> None:
        now = time.monotonic()
        if name == "fence-peer":
            self._fence_task = None  # finished: a new request starts a new run
            targets = list(self.volumes.values())
        else:
            runner = self.volumes.get(volume.number)
            targets = [runner] if runner is not None and runner.volume is volume else []
        for runner in targets:
            runner.run(runner.engine.handler_done(now, name, rc))
        event, self._handler_event = self._handler_event, asyncio.Event()
        event.set()

    def io_error(self, volume: Volume, what: str, *, meta: bool = False) -> None:
        """Log a local I/O error. The engine applies on-io-error (it runs local-io-error and
        detaches as the policy says): data I/O errors reach it by io_done, meta-data ones
        (`meta`: always a detach, as in DRBD) from here."""
        policy = self.config.volume_disk(volume).on_io_error
        log.error(
            "%s/%d: I/O error on %s: %s (on-io-error %s)",
            self.name,
            volume.number,
            volume.disk,
            what,
            policy,
        )
        runner = self.volumes.get(volume.number)
        if meta and runner is not None and runner.volume is volume:
            runner.run(runner.engine.local_io_error(time.monotonic(), what, meta=True))

    def status(self) -> dict[str, Any]:
        first = next(iter(self.volumes.values()), None)
        st = first.engine.status if first is not None else {}
        return {
            "name": self.name,
            "node": self.node,
            "peer": self.peer_name,
            "role": self.role.name.capitalize() if self.volumes else "Unconfigured",
            "peer_role": st.get("peer_role", "Unknown"),
            "cstate": st.get("cstate", "StandAlone") if self.volumes else "Unconfigured",
            "protocol": self.config.net.protocol,
            # /proc/drbd's congestion letter: 'n' while the send buffer holds writes back.
            "congestion": "n" if self.congested else "-",
            # DRBD's reasons ("fencing"), as status_view prints them (`s` in /proc/drbd).
            "suspended": sorted(
                {reason for r in self.volumes.values() for reason in r.engine.suspended}
            ),
            "volumes": [r.status() for r in self.volumes.values()],
        }


# --- the daemon ----------------------------------------------------------------------------


class ReplicaDaemon:
    """Every resource of `conf` that has a section for `node`."""

    def __init__(self, conf: DrbdConf, node: str, *, threads: int = 8) -> None:
        self.conf = conf
        self.node = node
        self.resources: dict[str, ResourceRunner] = {}
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="replica-io")
        self._stopping = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self.problems: list[str] = []
        for res in conf.resources:
            try:
                host, peer = select_host(conf, res, node)
            except Exception as err:  # not this node's resource: said once, not fatal
                self.problems.append(str(err))
                continue
            self.resources[res.name] = ResourceRunner(self, res, host, peer)

    async def blocking(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        if kwargs:
            return await loop.run_in_executor(self._pool, lambda: func(*args, **kwargs))
        return await loop.run_in_executor(self._pool, func, *args)

    def resource(self, name: str) -> ResourceRunner:
        try:
            return self.resources[name]
        except KeyError:
            known = ", ".join(self.resources) or "none"
            raise ReplicaCommandError(
                f"no resource {name!r} for node {self.node} in {self.conf.file} (known: {known})"
            ) from None

    def select(self, name: str) -> list[ResourceRunner]:
        return list(self.resources.values()) if name == "all" else [self.resource(name)]

    async def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop())

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            for res in list(self.resources.values()):
                try:
                    res.tick()
                except Exception:
                    log.exception("%s: tick failed", res.name)

    async def up(self, name: str) -> None:
        for res in self.select(name):
            await res.attach()
            await res.connect()

    async def stop(self) -> None:
        """Clean stop: every resource down (demoted, detached with a clean log)."""
        for res in list(self.resources.values()):
            try:
                await res.down(stopping=True)
            except ReplicaCommandError as err:
                log.error("%s: %s; detaching anyway", res.name, err)
                for runner in res.volumes.values():
                    if runner.nbd is not None:
                        await runner.nbd.stop(grace=1.0)
                    runner.persist(force_bitmap=True)
                    if runner.backing is not None:
                        runner.backing.close(clean=True)
                res.volumes.clear()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._pool.shutdown(wait=True)

    def status(self, name: str = "all") -> list[dict[str, Any]]:
        return [res.status() for res in self.select(name)]
