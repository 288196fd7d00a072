"""Sliding-window replay protection over one sender's sequence numbers.

UDP reorders, so a strictly-increasing check would drop good messages; a window of recent
sequence numbers (as IPsec does) accepts reordered ones once and refuses repeats.
"""

from __future__ import annotations

WINDOW = 128


class ReplayWindow:
    def __init__(self) -> None:
        self.highest = -1
        self._bits = 0  # bit i set: highest - i already seen

    def accept(self, seq: int) -> bool:
        """True the first time `seq` is seen (and it is not too old); records it."""
        if seq > self.highest:
            shift = seq - self.highest
            self._bits = ((self._bits << shift) | 1) & ((1 << WINDOW) - 1)
            self.highest = seq
            return True
        offset = self.highest - seq
        if offset >= WINDOW or self._bits >> offset & 1:
            return False
        self._bits |= 1 << offset
        return True
