"""Byte ranges in flight, found by the 64 KiB buckets they touch. Sans-IO.

A write must wait for an earlier write in flight that it overlaps (a disk may reorder
concurrent writes). A resync keeps up to max-buffers writes in flight and a read of the peer's
stream can bring hundreds at once; scanning everything in flight for each new write made that
quadratic. Here the cost of a lookup is the number of buckets the new range touches plus the
ranges in them: 64 KiB buckets hold at most 16 of the resync's 4 KiB writes, and a 1 MiB
application write touches 16 buckets, not 256 blocks.
"""

from __future__ import annotations

_SHIFT = 16  # 64 KiB


def _buckets(start: int, stop: int) -> range:
    # A zero-length range is looked up at its bucket too (the exact test below decides).
    return range(start >> _SHIFT, ((max(stop, start + 1) - 1) >> _SHIFT) + 1)


class RangeIndex:
    """Ranges [start, stop) under integer keys (tokens); which of them overlap a range."""

    __slots__ = ("_by_bucket", "_ranges")

    def __init__(self) -> None:
        self._ranges: dict[int, tuple[int, int]] = {}
        self._by_bucket: dict[int, dict[int, tuple[int, int]]] = {}

    def __len__(self) -> int:
        return len(self._ranges)

    def add(self, key: int, start: int, stop: int) -> None:
        self._ranges[key] = (start, stop)
        for bucket in _buckets(start, stop):
            self._by_bucket.setdefault(bucket, {})[key] = (start, stop)

    def remove(self, key: int) -> None:
        """Forget `key` (nothing happens if it is not here)."""
        found = self._ranges.pop(key, None)
        if found is None:
            return
        start, stop = found
        for bucket in _buckets(start, stop):
            keys = self._by_bucket.get(bucket)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del self._by_bucket[bucket]

    def overlapping(self, start: int, stop: int) -> list[int]:
        """Keys of the ranges that share a byte with [start, stop), each once."""
        found: dict[int, None] = {}
        for bucket in _buckets(start, stop):
            keys = self._by_bucket.get(bucket)
            if keys:
                for key, (a, b) in keys.items():
                    if a < stop and start < b:
                        found[key] = None
        return list(found)
