"""The activity log: which 4 MiB extents of a volume may have writes in flight.

Before a write to an extent that is not "hot" (not in the log) is issued, a transaction naming it
must be on stable storage. After a crash of a Primary, then, only the hot extents can hold blocks
that reached one disk and not the other, and only they are resynchronised -- not the whole
device. The log holds `al-extents` extents; when a cold extent is needed and the log is full, the
least recently used extent with no write in flight is evicted (the caller must first write the
bitmap bits of the evicted extent, since from then on they are the only record of its changes).

On disk the log is a ring of `RING_SLOTS` transactions of 4 KiB (32 KiB in all: with the 4 KiB
superblock, the 72 sectors of the seed's metadata formula). A transaction carries the slot
changes it makes (up to `MAX_UPDATES`) and, like DRBD's, a rotating window of the whole log's
state (`CONTEXT_ENTRIES` slots), so that the newest `RING_SLOTS - 1` transactions together restate
every slot even if the newest one was torn by the crash. That bounds `al-extents` to
`MAX_AL_EXTENTS` in this layout. Replay applies every transaction that has the right magic and a
good CRC32, oldest sequence number first, so the newest valid one wins each slot.

The format is hastack's own (big-endian, CRC32 from zlib), not byte-compatible with DRBD's.

Transaction layout (4096 bytes):
    0  u32 magic "HSAL"     4  u64 sequence      12  u32 crc32 (of the 4 KiB, this field zero)
   16  u32 al-extents      20  u16 updates      22  u16 context entries   24 u32 context start
   28  updates: MAX_UPDATES x (u32 slot, u32 extent)
  540  context: CONTEXT_ENTRIES x u32 extent (0xFFFFFFFF: empty slot); zero padding
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hastack.replica.bitmap import BLOCK_SIZE, Bitmap

EXTENT_SIZE = 4 << 20
BLOCKS_PER_EXTENT = EXTENT_SIZE // BLOCK_SIZE  # 1024
SECTORS_PER_EXTENT = EXTENT_SIZE // 512  # 8192
TRANSACTION_SIZE = 4096
RING_SLOTS = 8
RING_SIZE = RING_SLOTS * TRANSACTION_SIZE  # 32 KiB
MAGIC = 0x4853414C  # "HSAL"
EMPTY = 0xFFFFFFFF
MAX_UPDATES = 64
_HEADER = struct.Struct(">IQIIHHI")
_UPDATES_AT = _HEADER.size
_CONTEXT_AT = _UPDATES_AT + MAX_UPDATES * 8
CONTEXT_ENTRIES = (TRANSACTION_SIZE - _CONTEXT_AT) // 4
# The newest RING_SLOTS - 1 transactions must restate every slot (one may be torn).
MAX_AL_EXTENTS = (RING_SLOTS - 1) * CONTEXT_ENTRIES
MIN_AL_EXTENTS = 7


class ActivityLogError(ValueError):
    """An activity-log transaction that cannot be trusted, or a bad log configuration."""


class ActivityLogBusy(RuntimeError):
    """Every extent in the log has writes in flight: the new write must wait for one."""


def check_al_extents(al_extents: int) -> int:
    if not MIN_AL_EXTENTS <= al_extents <= MAX_AL_EXTENTS:
        raise ActivityLogError(
            f"al-extents {al_extents} is outside {MIN_AL_EXTENTS}..{MAX_AL_EXTENTS}, what "
            f"hastack's {RING_SIZE // 1024} KiB activity log can hold"
        )
    return al_extents


def extents_of(sector: int, count: int) -> range:
    """The extents a write of `count` sectors at `sector` touches."""
    if count <= 0:
        return range(0)
    return range(sector // SECTORS_PER_EXTENT, (sector + count - 1) // SECTORS_PER_EXTENT + 1)


@dataclass(frozen=True)
class Transaction:
    sequence: int
    al_extents: int
    updates: tuple[tuple[int, int], ...]  # (slot, extent); extent EMPTY frees the slot
    context_start: int
    context: tuple[int, ...]  # the extents in slots context_start.., EMPTY for none

    @property
    def ring_slot(self) -> int:
        """Where in the ring this transaction is written."""
        return self.sequence % RING_SLOTS

    @property
    def ring_offset(self) -> int:
        return self.ring_slot * TRANSACTION_SIZE

    def encode(self) -> bytes:
        if len(self.updates) > MAX_UPDATES or len(self.context) > CONTEXT_ENTRIES:
            raise ActivityLogError("transaction too large for one 4 KiB slot")
        block = bytearray(TRANSACTION_SIZE)
        _HEADER.pack_into(
            block,
            0,
            MAGIC,
            self.sequence,
            0,
            self.al_extents,
            len(self.updates),
            len(self.context),
            self.context_start,
        )
        for i, (slot, extent) in enumerate(self.updates):
            struct.pack_into(">II", block, _UPDATES_AT + 8 * i, slot, extent)
        struct.pack_into(f">{len(self.context)}I", block, _CONTEXT_AT, *self.context)
        struct.pack_into(">I", block, 12, zlib.crc32(block))
        return bytes(block)

    @classmethod
    def decode(cls, block: bytes) -> Transaction:
        if len(block) != TRANSACTION_SIZE:
            raise ActivityLogError(f"a transaction is {TRANSACTION_SIZE} bytes, not {len(block)}")
        magic, seq, crc, al_extents, n_updates, n_context, start = _HEADER.unpack_from(block)
        if magic != MAGIC:
            raise ActivityLogError(f"no transaction here (magic {magic:#010x})")
        zeroed = bytearray(block)
        zeroed[12:16] = bytes(4)
        if zlib.crc32(zeroed) != crc:
            raise ActivityLogError(f"transaction {seq}: checksum mismatch (torn or corrupt)")
        if n_updates > MAX_UPDATES or n_context > CONTEXT_ENTRIES:
            raise ActivityLogError(f"transaction {seq}: impossible entry counts")
        if not MIN_AL_EXTENTS <= al_extents <= MAX_AL_EXTENTS or start >= al_extents:
            raise ActivityLogError(f"transaction {seq}: al-extents {al_extents}, start {start}")
        updates = tuple(
            struct.unpack_from(">II", block, _UPDATES_AT + 8 * i) for i in range(n_updates)
        )
        if any(slot >= al_extents for slot, _ in updates):
            raise ActivityLogError(f"transaction {seq}: a slot beyond al-extents {al_extents}")
        context = struct.unpack_from(f">{n_context}I", block, _CONTEXT_AT)
        return cls(seq, al_extents, updates, start, context)


@dataclass(frozen=True)
class Access:
    """The effect of preparing a write: a transaction to make stable before issuing it (None
    when every extent was hot) and the extents it evicted."""

    transaction: Transaction | None
    evicted: tuple[int, ...] = ()


class ActivityLog:
    """The in-memory log: an LRU of hot extents in `al_extents` slots."""

    def __init__(
        self,
        al_extents: int,
        *,
        next_sequence: int = 1,
        slots: Sequence[int | None] | None = None,
    ) -> None:
        self.al_extents = check_al_extents(al_extents)
        self._slots: list[int | None] = list(slots) if slots is not None else [None] * al_extents
        if len(self._slots) != al_extents:
            raise ActivityLogError(f"{len(self._slots)} slots for al-extents {al_extents}")
        self._where = {extent: i for i, extent in enumerate(self._slots) if extent is not None}
        self._lru: OrderedDict[int, None] = OrderedDict.fromkeys(self._where)  # oldest first
        self._inflight: dict[int, int] = {}
        self._next_sequence = next_sequence
        self._context_cursor = 0

    @property
    def active(self) -> frozenset[int]:
        return frozenset(self._where)

    def is_hot(self, extent: int) -> bool:
        return extent in self._where

    def begin_write(self, sector: int, count: int) -> Access:
        """Prepare a write; the caller issues it once the returned transaction (if any) is
        stable, and calls end_write when it completes."""
        access = self.touch(extents_of(sector, count))
        for extent in extents_of(sector, count):
            self._inflight[extent] = self._inflight.get(extent, 0) + 1
        return access

    def end_write(self, sector: int, count: int) -> None:
        for extent in extents_of(sector, count):
            left = self._inflight[extent] - 1
            if left:
                self._inflight[extent] = left
            else:
                del self._inflight[extent]

    def touch(self, extents: Iterable[int]) -> Access:
        wanted = list(dict.fromkeys(extents))
        cold = [extent for extent in wanted if extent not in self._where]
        for extent in wanted:
            if extent in self._where:
                self._lru.move_to_end(extent)
        if not cold:
            return Access(None)
        if len(cold) > MAX_UPDATES:
            raise ActivityLogError(f"one write may touch at most {MAX_UPDATES} cold extents")
        free = [i for i, extent in enumerate(self._slots) if extent is None]
        protected = set(wanted)
        victims: list[int] = []
        for candidate in self._lru:  # oldest first
            if len(free) + len(victims) >= len(cold):
                break
            if candidate not in protected and candidate not in self._inflight:
                victims.append(candidate)
        if len(free) + len(victims) < len(cold):
            raise ActivityLogBusy(
                f"activity log full: {self.al_extents} extents, all with writes in flight"
            )
        # Decide everything before changing state, so a Busy leaves the log as it was.
        for victim in victims:
            free.append(self._where.pop(victim))
            del self._lru[victim]
        updates = []
        for extent, slot in zip(cold, sorted(free), strict=False):
            self._slots[slot] = extent
            self._where[extent] = slot
            self._lru[extent] = None
            updates.append((slot, extent))
        return Access(self._transaction(tuple(updates)), tuple(victims))

    def _transaction(self, updates: tuple[tuple[int, int], ...]) -> Transaction:
        width = min(CONTEXT_ENTRIES, self.al_extents)
        start = self._context_cursor
        context = tuple(
            EMPTY if (e := self._slots[(start + i) % self.al_extents]) is None else e
            for i in range(width)
        )
        self._context_cursor = (start + width) % self.al_extents
        tr = Transaction(self._next_sequence, self.al_extents, updates, start, context)
        self._next_sequence += 1
        return tr

    @classmethod
    def restore(cls, replayed: Replay) -> ActivityLog:
        """The log as it was at the crash, to continue from after recovery."""
        return cls(
            replayed.al_extents, next_sequence=replayed.last_sequence + 1, slots=replayed.slots
        )


@dataclass(frozen=True)
class Replay:
    al_extents: int
    slots: tuple[int | None, ...]
    last_sequence: int  # 0: no valid transaction
    rejected: tuple[tuple[int, str], ...]  # (ring slot, why) of slots that were not used

    @property
    def extents(self) -> frozenset[int]:
        return frozenset(extent for extent in self.slots if extent is not None)


def replay(ring: bytes | Sequence[bytes], al_extents: int) -> Replay:
    """Reconstruct the log from its on-disk ring (RING_SIZE bytes or RING_SLOTS blocks).
    Slots that are empty, torn or corrupt are skipped and reported, never fatal."""
    check_al_extents(al_extents)
    blocks = (
        [ring[i : i + TRANSACTION_SIZE] for i in range(0, len(ring), TRANSACTION_SIZE)]
        if isinstance(ring, bytes | bytearray)
        else list(ring)
    )
    if len(blocks) != RING_SLOTS:
        raise ActivityLogError(f"the ring has {RING_SLOTS} slots, got {len(blocks)}")
    valid: list[Transaction] = []
    rejected: list[tuple[int, str]] = []
    for index, block in enumerate(blocks):
        if not any(block):
            continue  # never written (create-md zeroes the ring)
        try:
            tr = Transaction.decode(bytes(block))
        except ActivityLogError as err:
            rejected.append((index, str(err)))
            continue
        if tr.al_extents != al_extents:
            rejected.append((index, f"written for al-extents {tr.al_extents}"))
            continue
        valid.append(tr)
    slots: list[int | None] = [None] * al_extents
    for tr in sorted(valid, key=lambda t: t.sequence):
        for i, extent in enumerate(tr.context):
            slots[(tr.context_start + i) % al_extents] = None if extent == EMPTY else extent
        for slot, extent in tr.updates:
            slots[slot] = None if extent == EMPTY else extent
    last = max((tr.sequence for tr in valid), default=0)
    return Replay(al_extents, tuple(slots), last, tuple(rejected))


def resync_runs(extents: Iterable[int], nbits: int) -> list[tuple[int, int]]:
    """The 4 KiB blocks (as sorted (start, stop) runs, clipped to the volume) that must be
    marked out of sync after a crash, given the replayed log's extents."""
    runs: list[tuple[int, int]] = []
    for extent in sorted(set(extents)):
        start = extent * BLOCKS_PER_EXTENT
        stop = min(start + BLOCKS_PER_EXTENT, nbits)
        if start >= stop:
            continue
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], stop)
        else:
            runs.append((start, stop))
    return runs


def mark_dirty(bitmap: Bitmap, extents: Iterable[int]) -> int:
    """Set the bits of every block in `extents`; returns how many blocks that covers."""
    total = 0
    for start, stop in resync_runs(extents, bitmap.nbits):
        bitmap.set_range(start, stop)
        total += stop - start
    return total


def empty_ring() -> bytes:
    return bytes(RING_SIZE)


def write_to_ring(ring: bytearray, transaction: Transaction) -> None:
    """Place an encoded transaction in its ring slot (for tests and the simulator's disk)."""
    offset = transaction.ring_offset
    ring[offset : offset + TRANSACTION_SIZE] = transaction.encode()
