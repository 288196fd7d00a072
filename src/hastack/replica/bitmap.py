"""The out-of-sync bitmap: one bit per 4 KiB block of a replicated volume.

A set bit means "this block may differ from the peer's copy and must be resynchronised". The
bitmap lives in a `bytearray`; bit `i` is bit `i % 8` (least significant first) of byte `i // 8`,
so `int.from_bytes(data, "little")` has bit `i` at position `i`. That one fact lets counting,
merging and finding dirty runs run in C (big-int and regex operations over the whole buffer)
instead of a Python loop per bit: a 1 GiB volume has 262144 bits (32 KiB) and a 1 TiB one has
2^28 bits (32 MiB), and a resync after 1% of random writes has thousands of runs.

Serialised form: the bytes above, exactly `byte_length(nbits)` long; bits past `nbits` in the
last byte must be zero (they describe blocks that do not exist).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

BLOCK_SIZE = 4096  # bytes covered by one bit
SECTORS_PER_BIT = BLOCK_SIZE // 512

_NONZERO = re.compile(rb"[^\x00]+")


class BitmapError(ValueError):
    """A serialised bitmap that does not fit the volume it is read for."""


def bits_for_sectors(sectors: int) -> int:
    """How many bits cover `sectors` 512-byte sectors (a partial last block gets a bit)."""
    if sectors < 0:
        raise ValueError(f"a volume cannot have {sectors} sectors")
    return -(-sectors // SECTORS_PER_BIT)


def byte_length(nbits: int) -> int:
    return -(-nbits // 8)


class Bitmap:
    """A mutable bitmap of `nbits` blocks, all clean (zero) when created."""

    __slots__ = ("_data", "nbits")

    def __init__(self, nbits: int) -> None:
        if nbits < 0:
            raise ValueError(f"a bitmap cannot have {nbits} bits")
        self.nbits = nbits
        self._data = bytearray(byte_length(nbits))

    # --- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.nbits

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bitmap):
            return NotImplemented
        return self.nbits == other.nbits and self._data == other._data

    def __repr__(self) -> str:
        return f"Bitmap(nbits={self.nbits}, dirty={self.count()})"

    def test(self, bit: int) -> bool:
        self._check_bit(bit)
        return bool(self._data[bit >> 3] >> (bit & 7) & 1)

    def count(self) -> int:
        """Number of dirty blocks (DRBD's "bits set", the bitmap's weight)."""
        return int.from_bytes(self._data, "little").bit_count()

    def count_range(self, start: int, stop: int) -> int:
        """Dirty blocks in [start, stop)."""
        start, stop = self._check_range(start, stop)
        if start == stop:
            return 0
        value = int.from_bytes(self._data[start >> 3 : byte_length(stop)], "little")
        value >>= start & 7
        return (value & ((1 << (stop - start)) - 1)).bit_count()

    def out_of_sync_kib(self) -> int:
        """What /proc/drbd shows as `oos:`: dirty blocks times 4 KiB."""
        return self.count() * (BLOCK_SIZE // 1024)

    def runs(self) -> Iterator[tuple[int, int]]:
        """Maximal runs of dirty blocks as (start, stop) half-open ranges, in order."""
        data = self._data
        pending: tuple[int, int] | None = None
        # Zero bytes are skipped by the regex engine; only non-zero stretches are examined.
        for match in _NONZERO.finditer(data):
            base = match.start() * 8
            value = int.from_bytes(match.group(), "little")
            while value:
                low = (value & -value).bit_length() - 1
                shifted = value >> low
                length = (~shifted & (shifted + 1)).bit_length() - 1  # trailing ones
                start, stop = base + low, base + low + length
                if pending is not None and pending[1] == start:
                    pending = (pending[0], stop)  # a run that crossed a byte boundary
                else:
                    if pending is not None:
                        yield pending
                    pending = (start, stop)
                value = shifted >> length << (low + length)
        if pending is not None:
            yield pending

    def dirty(self) -> Iterator[int]:
        """Every dirty block number, in order (for small bitmaps and tests)."""
        for start, stop in self.runs():
            yield from range(start, stop)

    # --- changes -------------------------------------------------------------------------

    def set_range(self, start: int, stop: int) -> None:
        """Mark blocks [start, stop) dirty."""
        self._fill(start, stop, True)

    def clear_range(self, start: int, stop: int) -> None:
        """Mark blocks [start, stop) clean (they were resynchronised)."""
        self._fill(start, stop, False)

    def set(self, bit: int) -> None:
        self._check_bit(bit)
        self._data[bit >> 3] |= 1 << (bit & 7)

    def clear(self, bit: int) -> None:
        self._check_bit(bit)
        self._data[bit >> 3] &= ~(1 << (bit & 7)) & 0xFF

    def set_all(self) -> None:
        """Full sync: every block dirty."""
        self.set_range(0, self.nbits)

    def clear_all(self) -> None:
        self._data[:] = bytes(len(self._data))

    def set_sectors(self, sector: int, count: int) -> None:
        """Mark the blocks touched by a write of `count` sectors at `sector` dirty: any block
        partly written counts, since the peer's copy of it no longer matches."""
        if count <= 0:
            return
        first = sector // SECTORS_PER_BIT
        last = (sector + count - 1) // SECTORS_PER_BIT
        self.set_range(first, min(last + 1, self.nbits))

    def merge(self, other: Bitmap) -> None:
        """OR another bitmap of the same volume into this one (e.g. the peer's bitmap after a
        split brain: both sides' changes must be resynchronised)."""
        if other.nbits != self.nbits:
            raise BitmapError(f"cannot merge a bitmap of {other.nbits} bits into {self.nbits}")
        merged = int.from_bytes(self._data, "little") | int.from_bytes(other._data, "little")
        self._data[:] = merged.to_bytes(len(self._data), "little")

    def resize(self, nbits: int) -> None:
        """Grow or shrink in place (`resize` of the volume): blocks kept keep their bits, new
        blocks start clean, bits of blocks cut off are dropped. In place, so every holder of
        this bitmap (the engine, the backing) sees the new size at once."""
        if nbits < 0:
            raise ValueError(f"a bitmap cannot have {nbits} bits")
        if nbits < self.nbits:
            self.clear_range(nbits, self.nbits)  # spare bits of the last byte must be zero
        length = byte_length(nbits)
        if length < len(self._data):
            del self._data[length:]
        else:
            self._data.extend(bytes(length - len(self._data)))
        self.nbits = nbits

    def copy(self) -> Bitmap:
        clone = Bitmap(self.nbits)
        clone._data[:] = self._data
        return clone

    # --- bytes ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return bytes(self._data)

    @classmethod
    def from_bytes(cls, data: bytes, nbits: int) -> Bitmap:
        """Read a bitmap written by to_bytes for a volume of `nbits` blocks."""
        expected = byte_length(nbits)
        if len(data) != expected:
            raise BitmapError(
                f"bitmap for {nbits} blocks must be {expected} bytes, got {len(data)}"
            )
        spare = expected * 8 - nbits
        if spare and data[-1] >> (8 - spare):
            raise BitmapError(f"bitmap has bits set past its last block ({nbits - 1})")
        bitmap = cls(nbits)
        bitmap._data[:] = data
        return bitmap

    @classmethod
    def from_runs(cls, nbits: int, runs: Iterable[tuple[int, int]]) -> Bitmap:
        bitmap = cls(nbits)
        for start, stop in runs:
            bitmap.set_range(start, stop)
        return bitmap

    # --- internals -----------------------------------------------------------------------

    def _check_bit(self, bit: int) -> None:
        if not 0 <= bit < self.nbits:
            raise IndexError(f"block {bit} is outside 0..{self.nbits - 1}")

    def _check_range(self, start: int, stop: int) -> tuple[int, int]:
        if not 0 <= start <= stop <= self.nbits:
            raise IndexError(f"block range [{start}, {stop}) is outside [0, {self.nbits})")
        return start, stop

    def _fill(self, start: int, stop: int, value: bool) -> None:
        start, stop = self._check_range(start, stop)
        if start == stop:
            return
        data = self._data
        first, last = start >> 3, (stop - 1) >> 3
        if first == last:
            mask = ((1 << (stop - start)) - 1) << (start & 7)
            data[first] = data[first] | mask if value else data[first] & ~mask & 0xFF
            return
        head = (0xFF << (start & 7)) & 0xFF
        tail = 0xFF >> (7 - ((stop - 1) & 7))
        if value:
            data[first] |= head
            data[last] |= tail
        else:
            data[first] &= ~head & 0xFF
            data[last] &= ~tail & 0xFF
        # Whole bytes in between: one slice assignment, not a loop.
        data[first + 1 : last] = (b"\xff" if value else b"\x00") * (last - first - 1)
