"""A node's monotonic clock in simulated real time: local = offset + rate * real.

The rate is within [1 - d, 1 + d] for the drift bound d. Changing the rate keeps the clock
continuous (a crystal that warms up, not a time jump), so it stays monotonic.
"""

from __future__ import annotations

import math


class SimClock:
    __slots__ = ("offset", "rate")

    def __init__(self, offset: float, rate: float = 1.0) -> None:
        self.offset = offset
        self.rate = rate

    def local(self, real: float) -> float:
        return self.offset + self.rate * real

    def set_rate(self, real: float, rate: float) -> None:
        here = self.local(real)
        self.rate = rate
        self.offset = here - rate * real

    def real_at(self, local: float) -> float:
        """The earliest real time at which this clock reads at least `local`.

        Float rounding could leave local(real_at(x)) a hair below x, and a core ticked before its
        deadline would ask for the same deadline again: step up to the next float until it holds.
        """
        real = (local - self.offset) / self.rate
        while self.local(real) < local:
            real = math.nextafter(real, math.inf)
        return real
