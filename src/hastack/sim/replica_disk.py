"""A simulated block device with a volatile write cache, for the replica simulator.

It implements backing.BlockFile, so the real Backing runs over it unchanged. What it models is
what a crash does to a disk behind a write cache:

* `pwrite` lands in the cache: reads see it at once, a crash may lose it.
* `fdatasync` makes stable every write made before it (and, when the shell models an
  fdatasync issued earlier than it ran, only those made before that point: `sync_limit`).
* `crash` keeps the stable image plus a random subset of the unflushed writes, chosen per
  4 KiB page (a multi-page write may be torn). Among the writes kept, a newer version of a page
  always wins over an older one: a cache holds only the newest copy of a page, so the disk can
  have written an older copy before the newer one replaced it, never after.

Backing makes each metadata write stable before it returns (pwrite + fdatasync), so the
metadata a crash leaves is exactly what Backing promised; only data writes are at risk.
"""

from __future__ import annotations

import random

PAGE = 4096


class SimBlockFile:
    """A bytearray-backed device: `view` is what reads return, `stable` what survives a crash."""

    def __init__(self, size: int, name: str = "disk") -> None:
        self.size = size
        self.name = name
        self.view = bytearray(size)
        self.stable = bytearray(size)
        # Unflushed writes, oldest first: (sequence, offset, data).
        self.pending: list[tuple[int, int, bytes]] = []
        self._seq = 0
        # When set, `fdatasync` stabilises only writes with a sequence up to this: the shell
        # sets it to model a flush that was issued before later writes reached the cache.
        self.sync_limit: int | None = None
        self.closed = False
        self.stats = {"writes": 0, "syncs": 0, "lost_pages": 0, "kept_pages": 0}

    # --- BlockFile -------------------------------------------------------------------------

    def pread(self, length: int, offset: int) -> bytes:
        return bytes(self.view[offset : offset + length])

    def pwrite(self, data: bytes, offset: int) -> None:
        if offset < 0 or offset + len(data) > self.size:
            raise OSError(f"{self.name}: write [{offset}, +{len(data)}) beyond {self.size}")
        self.view[offset : offset + len(data)] = data
        self._seq += 1
        self.pending.append((self._seq, offset, bytes(data)))
        self.stats["writes"] += 1

    def fdatasync(self) -> None:
        self.stats["syncs"] += 1
        limit = self.sync_limit
        if limit is None:
            self._stabilise(self.pending)
            self.pending = []
            return
        done = [w for w in self.pending if w[0] <= limit]
        self._stabilise(done)
        self.pending = [w for w in self.pending if w[0] > limit]

    def close(self) -> None:
        self.closed = True

    # --- the simulator's side --------------------------------------------------------------

    def mark(self) -> int:
        """The sequence of the newest write so far (for `sync_limit`)."""
        return self._seq

    def _stabilise(self, writes: list[tuple[int, int, bytes]]) -> None:
        for _, offset, data in writes:
            self.stable[offset : offset + len(data)] = data

    def crash(self, rng: random.Random, keep: float = 0.5) -> None:
        """Power loss: the stable image plus a random subset of the cached pages survives."""
        image = self.stable
        for _, offset, data in self.pending:
            for start in range(0, len(data), PAGE):
                if rng.random() < keep:
                    chunk = data[start : start + PAGE]
                    image[offset + start : offset + start + len(chunk)] = chunk
                    self.stats["kept_pages"] += 1
                else:
                    self.stats["lost_pages"] += 1
        self.pending = []
        self.view = bytearray(image)
        self.closed = False

    def data_digest(self, length: int) -> str:
        import hashlib

        return hashlib.sha256(self.view[:length]).hexdigest()


class DataFlushLiesFile(SimBlockFile):
    """A broken disk for the checker's own test: fdatasync makes the metadata stable but not
    the data area, so data the replication protocol relies on being stable (a Secondary's
    flushed epochs, a Primary's FUA writes) can vanish in a crash."""

    data_size = 0  # bytes of data area at the start of the device; set by the simulator

    def fdatasync(self) -> None:
        self.stats["syncs"] += 1
        meta = [w for w in self.pending if w[1] >= self.data_size]
        self._stabilise(meta)
        self.pending = [w for w in self.pending if w[1] < self.data_size]
