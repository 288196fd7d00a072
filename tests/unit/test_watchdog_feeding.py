"""The daemon's feeding thread keeps a steady beat while the event loop is merely busy, and
stops when the loop stops running: a daemon whose loop hangs is reset by its device."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from hastack.lab.watchdog import StandInWatchdog
from hastack.watchdog.daemon import WatchdogDaemon
from hastack.watchdog.model import WatchdogConfig

LOOP_DEADLINE = 2  # watchdog-timeout: how long the loop may be silent before feeding stops


def _config(tmp_path: Path) -> WatchdogConfig:
    return WatchdogConfig(
        watchdog_device=str(tmp_path / "watchdog"),
        watchdog_timeout=LOOP_DEADLINE,
        interval=1,
        state_dir=str(tmp_path / "state"),
        log_dir=str(tmp_path / "log"),
    )


async def _until(condition: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_a_hung_event_loop_stops_the_keepalives_and_a_busy_one_does_not(tmp_path: Path) -> None:
    device = StandInWatchdog(tmp_path / "watchdog", 60, lambda: None)
    device.start()
    daemon = WatchdogDaemon(_config(tmp_path))

    async def scenario() -> tuple[list[float], float, float]:
        running = asyncio.get_running_loop().create_task(daemon.run())
        await _until(lambda: device.keepalives >= 2)
        stamps = []
        for _ in range(3):  # the loop busy for 0.8 s each second: the beat goes on
            time.sleep(0.8)
            stamps.append(device.last_keepalive or 0.0)
            await asyncio.sleep(0.2)
        hung_at = time.monotonic()
        time.sleep(LOOP_DEADLINE + 3)  # the loop hangs (a bug, a blocking call)
        last_during_hang = device.last_keepalive or 0.0
        daemon.stop()
        assert await running == 0
        return stamps, hung_at, last_during_hang

    try:
        stamps, hung_at, last = asyncio.run(scenario())
    finally:
        device.close()
    assert len(set(stamps)) == 3  # a new keep-alive in each busy second
    # fed for at most LOOP_DEADLINE (+ one interval) into the hang, then nothing
    assert hung_at < last <= hung_at + LOOP_DEADLINE + 1.2
    assert device.times("disarmed")  # the clean stop afterwards still disarms
