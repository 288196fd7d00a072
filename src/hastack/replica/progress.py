"""Progress of a resync or online verify, as /proc/drbd reports it. Sans-IO.

DRBD keeps a ring of "sync marks" (blocks left, time) taken every 3 seconds; the current speed
is measured from the oldest mark still in the ring (a recent window), the average from the
start, and the time to finish from the current speed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hastack.replica.bitmap import BLOCK_SIZE

MARK_STEP = 3.0  # s between marks (DRBD's DRBD_SYNC_MARK_STEP)
MARKS = 8  # marks kept (DRBD_SYNC_MARKS): the recent window is up to ~21 s
_KIB_PER_BLOCK = BLOCK_SIZE // 1024


@dataclass
class SyncProgress:
    kind: str  # the connection state shown: SyncSource, SyncTarget, VerifyS, VerifyT
    total: int  # blocks to handle
    started: float
    marks: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=MARKS))

    def __post_init__(self) -> None:
        if not self.marks:
            self.marks.append((self.started, self.total))

    def update(self, now: float, left: int) -> None:
        """Record a mark if one is due; `left` is the blocks still to do."""
        self.total = max(self.total, left)  # blocks may be added (a failed write) mid-way
        if now - self.marks[-1][0] >= MARK_STEP:
            self.marks.append((now, left))

    def snapshot(self, now: float, left: int) -> dict[str, object]:
        self.update(now, left)
        left = min(left, self.total)
        done = self.total - left
        mark_time, mark_left = self.marks[0]
        rate = _kib_rate(mark_left - left, now - mark_time)
        avg = _kib_rate(done, now - self.started)
        eta = left * _KIB_PER_BLOCK / rate if rate > 0 else (0.0 if left == 0 else None)
        return {
            "kind": self.kind,
            "total_kib": self.total * _KIB_PER_BLOCK,
            "done_kib": done * _KIB_PER_BLOCK,
            "percent": 100.0 * done / self.total if self.total else 100.0,
            "rate_kib_s": rate,
            "avg_rate_kib_s": avg,
            "eta_s": eta,
        }


def _kib_rate(blocks: int, seconds: float) -> float:
    if seconds <= 0 or blocks <= 0:
        return 0.0
    return blocks * _KIB_PER_BLOCK / seconds
