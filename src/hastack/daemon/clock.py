"""The node's clock.

`now()` is CLOCK_BOOTTIME: monotonic (no wall-clock steps) and, unlike CLOCK_MONOTONIC, it
keeps counting while the machine is suspended. A DC lease measured on it therefore runs out
during a suspend instead of surviving it: a node that wakes up after a long sleep must not
believe it still holds authority its peers have long since given to someone else.

The wall clock is used for nothing but logs; `WallClockWatch` reports when it jumps (an NTP
step, an operator's `date -s`) so that log timestamps can be read correctly around the jump.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


def now() -> float:
    """Seconds on the node's monotonic, suspend-counting clock."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def wall() -> float:
    return time.time()


@dataclass
class WallClockWatch:
    """Compares how far the wall clock and the monotonic clock moved between two checks."""

    threshold: float = 1.0  # seconds of disagreement reported as a jump
    _last: tuple[float, float] | None = None

    def check(self, monotonic: float, wall_time: float) -> float | None:
        """The wall clock's jump since the previous check in seconds (+ forward), or None."""
        last, self._last = self._last, (monotonic, wall_time)
        if last is None:
            return None
        jump = (wall_time - last[1]) - (monotonic - last[0])
        return jump if abs(jump) >= self.threshold else None
