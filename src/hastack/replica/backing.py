"""One volume's local disk: its data area and its metadata (superblock, activity log, bitmap).

The replication engine decides *what* to write; this module writes it so that a crash at any
point leaves metadata that overstates, never understates, what may differ from the peer:

* Before a write to a cold 4 MiB extent, an activity-log transaction naming it is on stable
  storage (activitylog.py). The extent stays in the log while any write to it is unfinished --
  for an application write, until the engine completes it (under protocol C: until the peer
  has it), not merely until the local write is done.
* When the log evicts an extent, the bitmap is written (and made stable) first: from then on
  the bitmap is the only record of that extent's unsynchronised blocks.
* A bitmap with bits cleared (resync progress) is written only after the data it vouches for
  is stable (fdatasync of the data, then the bitmap).
* The superblock (generation identifiers, flags) is rewritten whenever they change; a role,
  disk or connection change is rare, so this is synchronous.

Methods that block (pread/pwrite/fdatasync) are plain functions: the daemon runs them in a
thread. Activity-log bookkeeping (`begin_write`/`end_write`) runs on the event loop's thread and
only hands the blocking part a snapshot, so the log is never touched by two threads.
"""

from __future__ import annotations

import os
import stat
import threading
import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from hastack.replica.activitylog import (
    Access,
    ActivityLog,
    extents_of,
    mark_dirty,
    replay,
)
from hastack.replica.generations import Generations, Rng
from hastack.replica.metadata import (
    BITMAP_OFFSET,
    SECTOR,
    SUPERBLOCK_SIZE,
    Layout,
    MdFlags,
    Metadata,
    MetadataError,
    NoMetadataError,
    Superblock,
    create_md,
    layout_for,
)
from hastack.replica.model import MetaDisk
from hastack.replica.states import ConnState, DiskState, Role

if TYPE_CHECKING:
    from hastack.replica.engine import ReplicaEngine

BITMAP_WRITE_INTERVAL = 1.0  # seconds: how often a changed bitmap is written while running


class BackingError(Exception):
    """The backing device or its metadata cannot be used; the message says which and why."""


def device_size(path: str) -> int:
    """Bytes of a regular file or block device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise BackingError(f"{path}: {err.strerror}") from None
    try:
        if stat.S_ISBLK(os.fstat(fd).st_mode):
            return os.lseek(fd, 0, os.SEEK_END)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def volume_layout(disk: str, meta_disk: MetaDisk, size_sectors: int = 0) -> Layout:
    """Where the data and metadata of a volume on `disk` are. `size_sectors` is drbd.conf's
    `disk { size }` (0: all of it); with internal metadata it is capped by what remains."""
    backing_sectors = device_size(disk) // SECTOR
    try:
        layout = layout_for(meta_disk, backing_sectors)
    except MetadataError as err:
        raise BackingError(f"{disk}: {err}") from None
    if size_sectors:
        if size_sectors > layout.data_sectors:
            raise BackingError(
                f"{disk}: `size` asks for {size_sectors} sectors, only {layout.data_sectors} "
                "are available"
            )
        layout = replace(layout, data_sectors=size_sectors)
    return layout


def attach_disk_state(flags: MdFlags, fencing: str) -> DiskState:
    """The disk state a volume attaches with, from its metadata flags (DRBD 8.4's rule: a
    consistent disk that was UpToDate is UpToDate again if fencing is dont-care or the peer
    is remembered Outdated (PEER_OUTDATED); otherwise Consistent, until the handshake or a
    fence-peer handler says the peer has nothing newer. Not UpToDate at the stop: Outdated)."""
    if not flags & MdFlags.CONSISTENT:
        return DiskState.INCONSISTENT
    if not flags & MdFlags.WAS_UP_TO_DATE:
        return DiskState.OUTDATED
    if fencing == "dont-care" or flags & MdFlags.PEER_OUTDATED:
        return DiskState.UP_TO_DATE
    return DiskState.CONSISTENT


def attach_peer_disk(flags: MdFlags) -> DiskState:
    """The peer's disk state a volume attaches with: Outdated if the metadata remembers it
    fenced (or Inconsistent) at the last stop, as DRBD 8.4 reads MDF_PEER_OUT_DATED."""
    return DiskState.OUTDATED if flags & MdFlags.PEER_OUTDATED else DiskState.UNKNOWN


def flags_for(
    base: MdFlags,
    *,
    primary: bool,
    disk: DiskState,
    connected: bool,
    peer_outdated: bool,
    crashed_primary: bool = False,
) -> MdFlags:
    """The superblock flags describing a running volume (AL_CLEAN is cleared while it runs;
    CRASHED_PRIMARY is set while it is Primary, so a crash leaves it set, and stays set after
    a crash until a handshake has accounted for it)."""
    keep = base & (MdFlags.FULL_SYNC | MdFlags.AL_DISABLED)
    flags = keep
    if disk in (DiskState.UP_TO_DATE, DiskState.CONSISTENT, DiskState.OUTDATED):
        flags |= MdFlags.CONSISTENT
    if disk in (DiskState.UP_TO_DATE, DiskState.CONSISTENT):
        flags |= MdFlags.WAS_UP_TO_DATE
    if primary:
        flags |= MdFlags.PRIMARY | MdFlags.CRASHED_PRIMARY
    if crashed_primary:
        flags |= MdFlags.CRASHED_PRIMARY
    if connected:
        flags |= MdFlags.CONNECTED
    if peer_outdated:
        flags |= MdFlags.PEER_OUTDATED
    return flags


@dataclass(frozen=True)
class Prepared:
    """What must be stable before a write's data is issued: the evicted extents' bitmap (a
    snapshot) and this write's activity-log transaction (`sequence`), and the transactions of
    earlier writes that made its extents hot and are not stable yet (`wait`)."""

    bitmap: bytes | None
    transaction: bytes | None
    ring_offset: int = 0  # the transaction's offset within the activity-log ring
    sequence: int | None = None
    wait: frozenset[int] = frozenset()
    bitmap_generation: int = 0  # orders bitmap snapshots (see Backing._bitmap_snapshot)

    @property
    def needs_metadata(self) -> bool:
        return self.transaction is not None or self.bitmap is not None

    @property
    def ready(self) -> bool:
        """Nothing to make stable first: the data may be issued now."""
        return not self.needs_metadata and not self.wait


class BlockFile(Protocol):
    """What Backing needs of a device: positioned I/O and a barrier to stable storage. The
    daemon gives it OsFile; the simulator a file whose unflushed writes a crash can lose."""

    def pread(self, length: int, offset: int) -> bytes: ...

    def pwrite(self, data: bytes, offset: int) -> None: ...

    def fdatasync(self) -> None: ...

    def close(self) -> None: ...


class OsFile:
    """A regular file or block device, opened read-write."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as err:
            raise BackingError(f"{path}: {err.strerror}") from None

    def pread(self, length: int, offset: int) -> bytes:
        return _pread_fd(self.fd, offset, length)

    def pwrite(self, data: bytes, offset: int) -> None:
        _pwrite_all(self.fd, data, offset)

    def fdatasync(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class Backing:
    """An attached volume. Open with `Backing.attach` (or `open_files`); `close(clean=True)`
    detaches cleanly."""

    def __init__(
        self,
        data: BlockFile,
        meta: BlockFile,
        layout: Layout,
        metadata: Metadata,
        *,
        crashed: bool,
    ) -> None:
        self.layout = layout
        self.superblock = metadata.superblock
        self.bitmap = metadata.bitmap
        # Unclean stop: the extents the log names may differ from the peer (they are now set
        # in the bitmap); `crashed_primary` tells the handshake who has the newer copy.
        self.crashed = crashed
        self.crashed_primary = crashed and bool(self.superblock.flags & MdFlags.CRASHED_PRIMARY)
        self.al = ActivityLog.restore(replay(metadata.al_ring, self.superblock.al_extents))
        self.size = layout.data_sectors * SECTOR
        self._data = data
        self._meta = meta
        self._md_lock = threading.Lock()  # one metadata write at a time, in order
        # activity-log transactions handed out but not yet stable: sequence -> their extents
        self._unstable: dict[int, frozenset[int]] = {}
        self._bitmap_generation = 0  # snapshots taken
        self._bitmap_on_disk = 0  # the newest snapshot written
        self.stats = {"al": 0, "bm": 0}

    # --- lifecycle -----------------------------------------------------------------------

    @classmethod
    def attach(cls, disk: str, meta_disk: MetaDisk, *, size_sectors: int = 0) -> Backing:
        """Open a volume's backing device and read its metadata; replay the activity log of
        an unclean stop into the bitmap (and write that bitmap, so a second crash keeps it)."""
        layout = volume_layout(disk, meta_disk, size_sectors)
        meta_path = meta_disk.device or disk
        data = OsFile(disk)
        try:
            meta: BlockFile = data if meta_path == disk else OsFile(meta_path)
        except BackingError:
            data.close()
            raise
        try:
            return cls.open_files(data, meta, layout, name=meta_path)
        except BackingError:
            if meta is not data:
                meta.close()
            data.close()
            raise

    @classmethod
    def open_files(
        cls, data: BlockFile, meta: BlockFile, layout: Layout, *, name: str = "meta-data"
    ) -> Backing:
        """Attach over open files (`meta` may be `data`): what `attach` does after opening."""
        area = meta.pread(layout.md_bytes, layout.md_offset)
        if len(area) != layout.md_bytes:
            raise BackingError(f"{name}: short read of the meta-data (device too small?)")
        try:
            metadata = Metadata.decode(area, layout)
        except NoMetadataError as err:
            hint = ""
            if layout.kind == "internal":
                hint = (
                    "; or the device grew while it was not attached, and its meta-data is at "
                    "the old end: shrink it back, attach, then grow it and `resize` "
                    "(docs/replica.md)"
                )
            raise BackingError(f"{name}: {err}{hint}") from None
        except MetadataError as err:
            raise BackingError(f"{name}: {err}") from None
        crashed = not metadata.superblock.flags & MdFlags.AL_CLEAN
        # metadata.layout: the data size the superblock records (the last agreed size).
        backing = cls(data, meta, metadata.layout, metadata, crashed=crashed)
        if crashed:
            mark_dirty(backing.bitmap, backing.al.active)
        if metadata.superblock.flags & MdFlags.FULL_SYNC:
            backing.bitmap.set_all()
        # The bitmap first: FULL_SYNC is cleared only once the bitmap that replaces it (every
        # bit set) is stable -- the one on disk may be half-written (an interrupted resize).
        backing.write_bitmap()
        # Running: the log is no longer clean until a clean detach says so.
        backing.write_superblock(
            replace(
                metadata.superblock,
                flags=metadata.superblock.flags & ~MdFlags.AL_CLEAN & ~MdFlags.FULL_SYNC,
            )
        )
        return backing

    def close(self, *, clean: bool) -> None:
        """Detach. Clean: data and bitmap stable, the log marked clean (nothing to replay),
        the crashed-primary mark cleared. Unclean (a failed disk): just close."""
        try:
            if clean:
                self._data.fdatasync()
                self.write_bitmap()
                sb = self.superblock
                flags = (sb.flags | MdFlags.AL_CLEAN) & ~MdFlags.CRASHED_PRIMARY
                self.write_superblock(replace(sb, flags=flags))
        finally:
            if self._meta is not self._data:
                self._meta.close()
            self._data.close()

    # --- metadata ------------------------------------------------------------------------

    def write_superblock(self, sb: Superblock) -> None:
        """Write and make stable a new superblock (blocking; rare)."""
        block = sb.encode()
        with self._md_lock:
            self._meta.pwrite(block, self.layout.md_offset)
            self._meta.fdatasync()
        self.superblock = sb

    def update(
        self, *, generations: Generations | None = None, flags: MdFlags | None = None
    ) -> bool:
        """Write the superblock if the identifiers or flags changed; True when it did."""
        sb = self.superblock
        new = replace(
            sb,
            generations=sb.generations if generations is None else generations,
            flags=sb.flags if flags is None else (flags & ~MdFlags.AL_CLEAN),
        )
        if new == sb:
            return False
        self.write_superblock(new)
        return True

    def write_bitmap(self, *, data_first: bool = False) -> None:
        """Write the whole bitmap and make it stable (blocking). `data_first`: the bitmap has
        bits cleared by a resync, so the data they vouch for must be stable before it."""
        snapshot, generation = self._bitmap_snapshot()
        if data_first:
            self._data.fdatasync()
        self._write_bitmap_bytes(snapshot, generation)

    def _bitmap_snapshot(self) -> tuple[bytes, int]:
        """The bitmap now, numbered: snapshots written out of order (two threads) must not
        let an older one replace a newer one on disk, which could hold bits the older lacks."""
        self._bitmap_generation += 1
        return self.bitmap.to_bytes(), self._bitmap_generation

    def _write_bitmap_bytes(self, data: bytes, generation: int) -> None:
        with self._md_lock:
            if generation <= self._bitmap_on_disk:
                return  # a newer snapshot is already stable
            self._meta.pwrite(data, self.layout.md_offset + BITMAP_OFFSET)
            self._meta.fdatasync()
            self._bitmap_on_disk = generation
        self.stats["bm"] += 1

    def resize(self, layout: Layout) -> None:
        """Blocking: `resize` -- the metadata written for `layout` (moved, for internal
        meta-data of a grown device), in resize.py's crash-safe order. The bitmap was
        resized (in place) by the engine already; the data size follows `layout`."""
        from hastack.replica.resize import write_moved_metadata

        with self._md_lock:
            self._bitmap_generation += 1
            generation = self._bitmap_generation
            self.superblock = write_moved_metadata(
                self._meta, self.layout, layout, self.superblock, self.bitmap.to_bytes()
            )
            self.layout = layout
            self.size = layout.data_sectors * SECTOR
            self._bitmap_on_disk = generation  # older snapshots must not be written after
        self.stats["bm"] += 1

    # --- data ----------------------------------------------------------------------------

    def begin_write(self, offset: int, length: int) -> Prepared:
        """On the event loop's thread, before a write is issued: the activity-log update it
        needs (raises activitylog.ActivityLogBusy when every extent has writes in flight)."""
        sector, count = offset // SECTOR, -(-length // SECTOR)
        access: Access = self.al.begin_write(sector, count)
        mine = frozenset(extents_of(sector, count))
        # An extent made hot by a transaction that is not on disk yet is not hot on disk: a
        # write to it waits for that transaction as much as the write that caused it.
        wait = frozenset(seq for seq, exts in self._unstable.items() if exts & mine)
        if access.transaction is None:
            return Prepared(None, None, wait=wait)
        bitmap, generation = self._bitmap_snapshot() if access.evicted else (None, 0)
        tr = access.transaction
        self._unstable[tr.sequence] = frozenset(extent for _, extent in tr.updates)
        return Prepared(
            bitmap,
            tr.encode(),
            tr.ring_offset,  # within the ring: where the ring is is read at write time
            tr.sequence,
            wait,
            generation,
        )

    def stable(self, wait: frozenset[int]) -> bool:
        """Whether every transaction in `wait` is on stable storage."""
        return not any(seq in self._unstable for seq in wait)

    def transaction_stable(self, prepared: Prepared) -> None:
        """On the event loop's thread, once write_metadata(prepared) returned."""
        if prepared.sequence is not None:
            self._unstable.pop(prepared.sequence, None)

    def end_write(self, offset: int, length: int) -> None:
        """On the event loop's thread, once the write is finished for the activity log."""
        self.al.end_write(offset // SECTOR, -(-length // SECTOR))

    def write_metadata(self, prepared: Prepared) -> None:
        """Blocking: the bitmap of evicted extents, then the transaction, each stable."""
        if prepared.bitmap is not None:
            # Bits a resync cleared vouch for data that must be stable before they are.
            self._data.fdatasync()
            self._write_bitmap_bytes(prepared.bitmap, prepared.bitmap_generation)
        if prepared.transaction is not None:
            with self._md_lock:
                # The ring's place is read under the lock: a `resize` may have moved it.
                offset = self.layout.al_offset + prepared.ring_offset
                self._meta.pwrite(prepared.transaction, offset)
                self._meta.fdatasync()
            self.stats["al"] += 1

    def write_data(self, offset: int, data: bytes, fua: bool) -> None:
        """Blocking: the data (stable, with `fua`). Only once its Prepared is stable."""
        self._data.pwrite(data, offset)
        if fua:
            self._data.fdatasync()

    def write(self, prepared: Prepared, offset: int, data: bytes, fua: bool) -> None:
        """For one-at-a-time callers: the metadata the write needs, then the data."""
        self.write_metadata(prepared)
        self.transaction_stable(prepared)
        self.write_data(offset, data, fua)

    def read(self, offset: int, length: int) -> bytes:
        """Blocking read of the data area."""
        return self._data.pread(length, offset)

    def flush(self) -> None:
        self._data.fdatasync()


class MetadataKeeper:
    """Keeps a Backing's superblock and bitmap in step with its engine, after every batch of
    the engine's effects: the superblock when the identifiers or the flags the engine's state
    implies changed (before anything else happens, so a new data generation is stable before
    a write under it is acknowledged); the bitmap when it changed, at most every
    BITMAP_WRITE_INTERVAL unless forced, after the data it vouches for. The daemon and the
    simulator both use it, so the simulator checks the daemon's rule."""

    def __init__(self, backing: Backing, engine: ReplicaEngine, now: float) -> None:
        self.backing = backing
        self.engine = engine
        self._state: tuple[object, ...] = ()  # the engine state the superblock reflects
        self._bitmap_crc = zlib.crc32(backing.bitmap.to_bytes())
        self._bitmap_written = now

    def persist(self, now: float, *, force_bitmap: bool = False) -> None:
        engine = self.engine
        state = (
            engine.role,
            engine.disk_state,
            engine.peer_disk,
            engine.cstate,
            engine.generations,
            engine.crashed_primary,
        )
        if state != self._state:
            flags = flags_for(
                self.backing.superblock.flags,
                primary=engine.role is Role.PRIMARY,
                # a detached disk leaves with the state the engine chose for it
                disk=engine.metadata_disk_state,
                connected=engine.cstate not in (ConnState.STANDALONE, ConnState.CONNECTING),
                # DRBD's MDF_PEER_OUT_DATED: the peer is Outdated or Inconsistent (fenced,
                # or a resync target), so this node may be promoted without fencing it.
                peer_outdated=engine.peer_disk in (DiskState.OUTDATED, DiskState.INCONSISTENT),
                # A crashed Primary stays marked until a handshake has accounted for it.
                crashed_primary=engine.crashed_primary,
            )
            self.backing.update(generations=engine.generations, flags=flags)
            self._state = state
        if force_bitmap or now - self._bitmap_written >= BITMAP_WRITE_INTERVAL:
            crc = zlib.crc32(engine.bitmap.to_bytes())
            if crc != self._bitmap_crc:
                self.backing.write_bitmap(data_first=True)
                self._bitmap_crc = crc
            self._bitmap_written = now


def create_metadata(
    disk: str,
    meta_disk: MetaDisk,
    *,
    al_extents: int,
    rng: Rng,
    node_name: str = "",
    peer_name: str = "",
    size_sectors: int = 0,
) -> Layout:
    """`create-md`: write fresh metadata (identifiers "just created", bitmap clean, log clean)."""
    layout = volume_layout(disk, meta_disk, size_sectors)
    metadata = create_md(
        layout, al_extents=al_extents, rng=rng, node_name=node_name, peer_name=peer_name
    )
    meta_path = meta_disk.device or disk
    if device_size(meta_path) < layout.md_offset + layout.md_bytes:
        raise BackingError(
            f"{meta_path}: too small for the meta-data ({layout.md_offset + layout.md_bytes} "
            "bytes needed)"
        )
    fd = os.open(meta_path, os.O_RDWR | os.O_CLOEXEC)
    try:
        _pwrite_all(fd, metadata.encode(), layout.md_offset)
        os.fsync(fd)
    finally:
        os.close(fd)
    return layout


def read_metadata(disk: str, meta_disk: MetaDisk, size_sectors: int = 0) -> Metadata:
    """The metadata of a volume that is not attached (`dump-md`, `create-md`'s check)."""
    layout = volume_layout(disk, meta_disk, size_sectors)
    meta_path = meta_disk.device or disk
    area = _pread_exact(meta_path, layout.md_offset, layout.md_bytes)
    try:
        return Metadata.decode(area, layout)
    except MetadataError as err:
        raise BackingError(f"{meta_path}: {err}") from None


def has_metadata(disk: str, meta_disk: MetaDisk) -> bool:
    layout = volume_layout(disk, meta_disk)
    head = _pread_exact(meta_disk.device or disk, layout.md_offset, SUPERBLOCK_SIZE)
    return any(head)


def _pread_exact(path: str, offset: int, length: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise BackingError(f"{path}: {err.strerror}") from None
    try:
        data = _pread_fd(fd, offset, length)
    finally:
        os.close(fd)
    if len(data) != length:
        raise BackingError(f"{path}: short read at {offset} (device smaller than its meta-data?)")
    return data


def _pread_fd(fd: int, offset: int, length: int) -> bytes:
    parts: list[bytes] = []
    while length:
        chunk = os.pread(fd, length, offset)
        if not chunk:
            break  # past the end: the caller sees a short result
        parts.append(chunk)
        offset += len(chunk)
        length -= len(chunk)
    return b"".join(parts)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


__all__ = [
    "Backing",
    "BackingError",
    "BlockFile",
    "OsFile",
    "Prepared",
    "attach_disk_state",
    "create_metadata",
    "device_size",
    "flags_for",
    "has_metadata",
    "read_metadata",
    "volume_layout",
]
