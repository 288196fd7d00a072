"""What one wake-up of an idle Python process costs on this machine: an asyncio loop whose only
work is a timer firing RATE times a second, measured with getrusage over 20 s.

    python benchmarks/idle_wake.py [RATE ...]      # default: 10 40

The CPU benchmark's figures are mostly this cost times the wake-ups a second (see
docs/benchmarks.md); run it beside the cluster to see it under the same contention.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time

WINDOW = 20.0


async def measure(rate: float) -> tuple[float, float]:
    """(percent of one core, microseconds of CPU per wake-up)"""
    loop = asyncio.get_running_loop()
    fired = 0

    def tick() -> None:
        nonlocal fired
        fired += 1
        loop.call_later(1 / rate, tick)

    tick()
    await asyncio.sleep(2)  # past start-up
    before, t0, fired0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), fired
    await asyncio.sleep(WINDOW)
    after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - t0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return 100 * cpu / elapsed, 1e6 * cpu / max(1, fired - fired0)


def main() -> None:
    rates = [float(a) for a in sys.argv[1:]] or [10.0, 40.0]
    for rate in rates:
        percent, per_wake = asyncio.run(measure(rate))
        print(f"{rate:g} wake-ups/s: {percent:.3f}% of a core, {per_wake:.0f} µs per wake-up")


if __name__ == "__main__":
    main()
