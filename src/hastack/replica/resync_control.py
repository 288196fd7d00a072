"""How fast a resync (or an online verify) asks its peer for blocks. Sans-IO.

Two pacers with one interface, chosen by drbd.conf's `c-plan-ahead`:

* `FixedRate` (c-plan-ahead 0): `resync-rate` as a token bucket holding at most a tenth of a
  second of rate (at least one block), so bursts stay small and the average is the rate.
* `DynamicController` (c-plan-ahead > 0): DRBD's dynamic resync-speed controller as drbd.conf(5)
  documents it. Every step (0.1 s) it looks at how much data is in flight towards this node and
  how much arrived during the step, and plans corrections over the next `c-plan-ahead` steps so
  that the data in flight reaches the target: `c-fill-target` sectors when that is set, else what
  arrives in `c-delay-target` at the current rate. It starts from `resync-rate`, never asks for
  more than `c-max-rate`, and (hastack's reading of `c-min-rate`, as the floor the controller never
  throttles a resync below) never for less than `c-min-rate`.

Quantities inside the controller are 512-byte sectors, DRBD's unit for c-fill-target; the engine
talks bytes.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from hastack.replica.bitmap import BLOCK_SIZE
from hastack.replica.model import Disk

STEP = 0.1  # s: one controller step (DRBD's SLEEP_TIME)
SECTOR = 512
_SECTORS_PER_KIB = 1024 // SECTOR


class Pacer(Protocol):
    def allowance(self, now: float, in_flight: int) -> int:
        """Bytes that may be requested now, given `in_flight` bytes requested but not arrived."""
        ...

    def spend(self, nbytes: int) -> None:
        """`nbytes` were requested."""
        ...

    def received(self, nbytes: int) -> None:
        """`nbytes` of requested data arrived."""
        ...


class FixedRate:
    """`resync-rate` KiB/s as a token bucket; starts full so the first block goes at once."""

    def __init__(self, rate_kib_s: int, now: float) -> None:
        self.rate = rate_kib_s * 1024.0  # bytes/s
        self.size = max(self.rate / 10, float(BLOCK_SIZE))
        self._bucket = self.size
        self._time = now

    def allowance(self, now: float, in_flight: int) -> int:
        if now > self._time:
            self._bucket = min(self.size, self._bucket + (now - self._time) * self.rate)
            self._time = now
        return int(self._bucket)

    def spend(self, nbytes: int) -> None:
        self._bucket -= nbytes

    def received(self, nbytes: int) -> None:
        pass  # a fixed rate does not react to what arrives


class DynamicController:
    """DRBD's plan-ahead controller. `step` is the pure per-step rule; `allowance` runs the
    steps that elapsed since the last call and hands out what they planned."""

    def __init__(self, disk: Disk, now: float) -> None:
        if disk.c_plan_ahead <= 0:
            raise ValueError("the dynamic controller needs c-plan-ahead > 0")
        self.disk = disk
        self.steps = disk.c_plan_ahead  # c-plan-ahead is in 0.1 s, one step each
        self._plan: deque[int] = deque([0] * self.steps)  # sectors planned for coming steps
        self._planned = 0  # sum of _plan
        self._received = 0  # bytes arrived since the last step
        self._budget = 0  # bytes that may still be requested in this step
        self._time = now
        self._started = False

    @property
    def max_sectors(self) -> int:
        return int(self.disk.c_max_rate * _SECTORS_PER_KIB * STEP)

    @property
    def min_sectors(self) -> int:
        return min(int(self.disk.c_min_rate * _SECTORS_PER_KIB * STEP), self.max_sectors)

    def step(self, sect_in: int, in_flight: int) -> int:
        """One step: `sect_in` sectors arrived during it, `in_flight` sectors are requested and
        not yet arrived. Returns the sectors to request during the next step."""
        if sect_in + in_flight == 0:
            # Nothing moving (the start of a resync): plan to fill the path at resync-rate.
            want = int(self.disk.resync_rate * _SECTORS_PER_KIB * STEP) * self.steps
        elif self.disk.c_fill_target:
            want = self.disk.c_fill_target
        else:
            # Keep c-delay-target worth of the current arrival rate in flight.
            want = sect_in * self.disk.c_delay_target  # both per 0.1 s
        correction = want - in_flight - self._planned
        per_step = int(correction / self.steps)  # truncates toward zero, as the kernel does
        for i in range(self.steps):
            self._plan[i] += per_step
        self._planned += per_step * self.steps
        now_corr = self._plan.popleft()
        self._plan.append(0)
        self._planned -= now_corr
        request = sect_in + now_corr
        return max(self.min_sectors, min(max(request, 0), self.max_sectors))

    def allowance(self, now: float, in_flight: int) -> int:
        if not self._started:
            self._started = True
            self._time = now
            self._budget = self.step(0, 0) * SECTOR
        elapsed = int((now - self._time) / STEP + 1e-9)
        if elapsed > 0:
            self._time += elapsed * STEP
            # After a long pause only the last plan window matters; what a step did not use
            # is not carried over (a burst after idling would defeat the controller).
            budget = 0
            for i in range(min(elapsed, self.steps)):
                sect_in = -(-self._received // SECTOR) if i == 0 else 0
                budget += self.step(sect_in, -(-in_flight // SECTOR)) * SECTOR
            self._received = 0
            self._budget = budget
        return self._budget

    def spend(self, nbytes: int) -> None:
        self._budget -= nbytes

    def received(self, nbytes: int) -> None:
        self._received += nbytes


def pacer_for(disk: Disk, now: float) -> FixedRate | DynamicController:
    """The pacer drbd.conf asks for: c-plan-ahead 0 means the fixed resync-rate."""
    if disk.c_plan_ahead > 0:
        return DynamicController(disk, now)
    return FixedRate(disk.resync_rate, now)
