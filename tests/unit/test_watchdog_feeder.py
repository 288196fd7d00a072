"""Keep-alives as 5.16 gives them: one byte per keep-alive to a stand-in device, errors as
results (or ignored with watchdog-refresh-ignore-errors), and the heartbeat-file ring."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from hastack.watchdog.feeder import RESTART, Feeder
from hastack.watchdog.model import WatchdogConfig


def test_each_keepalive_is_one_byte_and_a_clean_close_writes_the_magic_v(tmp_path: Path) -> None:
    device = tmp_path / "watchdog"
    device.touch()
    feeder = Feeder(WatchdogConfig(watchdog_device=str(device), watchdog_timeout=10))
    feeder.open()
    assert feeder.armed and feeder.device is not None and feeder.device.driver == ""
    for _ in range(3):
        assert feeder.keepalive() == 0
    feeder.close(magic=True)
    assert device.read_bytes() == b"\0\0\0V"
    assert feeder.keepalives == 3 and not feeder.closed_by_reset


def test_a_failed_keepalive_is_its_errno_unless_errors_are_ignored(tmp_path: Path) -> None:
    fifo = tmp_path / "watchdog"
    os.mkfifo(fifo)
    for ignore, expected in ((False, errno.EPIPE), (True, 0)):
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        feeder = Feeder(
            WatchdogConfig(watchdog_device=str(fifo), watchdog_refresh_ignore_errors=ignore)
        )
        feeder.open()
        assert feeder.keepalive() == 0
        os.close(reader)  # the "driver" is gone: the next write fails with EPIPE
        assert feeder.keepalive() == expected
        feeder.close(magic=False)


def test_the_heartbeat_file_keeps_the_last_stamps_and_marks_each_start(tmp_path: Path) -> None:
    device = tmp_path / "watchdog"
    device.touch()
    beats = tmp_path / "heartbeat"
    cfg = WatchdogConfig(watchdog_device=str(device), heartbeat_file=str(beats), heartbeat_stamps=4)
    first = Feeder(cfg)
    first.open()
    first.keepalive()
    first.close(magic=True)
    second = Feeder(cfg)
    second.open()
    for _ in range(3):
        second.keepalive()
    second.close(magic=True)
    lines = beats.read_text().splitlines()
    assert len(lines) == 4  # the ring holds heartbeat-stamps entries
    assert lines[0].strip() == RESTART  # the second start, then its three keep-alives
    assert all(line.strip().isdigit() and len(line) == 11 for line in lines[1:])


def test_without_a_device_nothing_is_fed(tmp_path: Path) -> None:
    feeder = Feeder(WatchdogConfig())
    feeder.open()
    assert not feeder.armed and feeder.keepalive() == 0 and feeder.keepalives == 0
