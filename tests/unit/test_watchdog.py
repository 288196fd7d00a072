"""The watchdog part's device driver (against a stand-in file: this machine has no watchdog
driver), the guard that decides when a cluster node stops feeding it, and the node daemon's
watchdog shell that joins them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from hastack.daemon.watchdog_shell import WatchdogShell, device_timeout
from hastack.fencing.fencer import WatchdogReport
from hastack.watchdog.device import (
    WDIOC_GETSUPPORT,
    WDIOC_GETTIMEOUT,
    WDIOC_KEEPALIVE,
    WDIOC_SETTIMEOUT,
    WatchdogDevice,
)
from hastack.watchdog.guard import QuorumGuard, guard_problem, guard_window

# ---- the device ---------------------------------------------------------------------------


def test_ioctl_numbers_are_linux_watchdog_h() -> None:
    # _IOR('W', 0, struct watchdog_info) and friends, as the kernel header computes them
    assert WDIOC_GETSUPPORT == 0x80285700
    assert WDIOC_KEEPALIVE == 0x80045705
    assert WDIOC_SETTIMEOUT == 0xC0045706
    assert WDIOC_GETTIMEOUT == 0x80045707


def test_a_stand_in_records_keepalives_and_the_magic_close(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    device = WatchdogDevice(str(path), timeout=7)
    assert device.driver == "" and device.timeout == 7  # not a driver: what was asked
    device.keepalive()
    device.keepalive()
    device.close(magic=True)
    assert path.read_bytes() == b"\0\0V"
    device.close(magic=True)  # closing twice does nothing
    assert path.read_bytes() == b"\0\0V"


def test_closing_without_magic_leaves_the_timer_running(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    device = WatchdogDevice(str(path))
    device.keepalive()
    device.close(magic=False)
    assert path.read_bytes() == b"\0"
    with pytest.raises(OSError):
        device.keepalive()


def test_a_missing_device_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        WatchdogDevice(str(tmp_path / "none"))


# ---- the guard ----------------------------------------------------------------------------


def test_guard_window_and_problems() -> None:
    assert guard_window(10.0, 5.0) == 10.0
    assert guard_window(-1.0, 5.0) == 10.0  # negative: twice the device's timeout
    assert guard_window(0.0, 5.0) == 0.0
    assert guard_problem(10.0, 5.0, 1.0) == ""
    assert "at least twice the watchdog timeout (10 s)" in guard_problem(5.5, 5.0, 1.0)
    assert guard_problem(0.0, 5.0, 1.0) == ""  # no watchdog fencing: no promise to keep


def test_a_quorate_or_idle_node_is_fed() -> None:
    guard = QuorumGuard(10.0, 5.0, 1.0)
    assert guard.decide(0.0, True, ("web",)).feed
    idle = guard.decide(1.0, False, ())
    assert idle.feed and idle.state == "feeding" and "nothing runs here" in idle.reason
    assert guard.decide(100.0, False, ()).feed


def test_a_node_without_quorum_has_a_grace_to_stop_then_starves_for_good() -> None:
    guard = QuorumGuard(10.0, 5.0, 1.0)  # grace = 10 - 5 - 1 = 4 s
    first = guard.decide(0.0, False, ("web",))
    assert first.feed and first.state == "grace" and first.deadline == 4.0
    assert guard.decide(3.9, False, ("web",)).feed
    late = guard.decide(4.0, False, ("web",))
    assert not late.feed and late.state == "starving" and "web still running" in late.reason
    # quorum back, resources gone: the promised reset must still happen
    assert not guard.decide(4.5, True, ()).feed


def test_stopping_in_time_keeps_the_node_fed_and_quorum_back_restarts_the_grace() -> None:
    guard = QuorumGuard(10.0, 5.0, 1.0)
    guard.decide(0.0, False, ("web",))
    assert guard.decide(2.0, False, ()).feed  # stopped within the grace
    assert guard.decide(6.0, False, ()).feed
    # held again without quorum (no-quorum-policy=ignore started it): counted from the loss
    assert not guard.decide(6.5, False, ("web",)).feed
    fresh = QuorumGuard(10.0, 5.0, 1.0)
    fresh.decide(0.0, False, ("web",))
    fresh.decide(1.0, True, ("web",))  # quorum back: the loss is forgotten
    assert fresh.decide(20.0, False, ("web",)).deadline == 24.0


def test_without_watchdog_fencing_the_guard_only_catches_a_hung_daemon() -> None:
    guard = QuorumGuard(0.0, 5.0, 1.0)
    assert not guard.armed
    assert guard.decide(0.0, False, ("web",)).feed
    assert guard.decide(1000.0, False, ("web",)).feed


# ---- the node daemon's shell --------------------------------------------------------------


def test_the_shell_feeds_reports_and_disarms_on_a_clean_close(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    reports: list[WatchdogReport] = []
    health = {"quorate": True, "holding": ("web",)}

    def observe() -> tuple[bool, tuple[str, ...]]:
        return bool(health["quorate"]), tuple(health["holding"])  # type: ignore[arg-type]

    async def scenario() -> None:
        shell = WatchdogShell(str(path), 0.1, observe, reports.append)
        shell.open(4.0)  # stonith-watchdog-timeout 4 s: the device's timeout is 2 s
        assert reports[-1] == WatchdogReport(True, 2.0, 4.0)
        await asyncio.sleep(1.2)  # fed every 0.5 s
        fed = path.read_bytes().count(b"\0")
        assert fed >= 2
        assert shell.describe()["state"] == "feeding"
        health["quorate"] = False  # grace: 4 - 2 - (0.5 + 0.1) = 1.4 s
        await asyncio.sleep(0.6)
        assert shell.describe()["state"] == "grace"
        await asyncio.sleep(1.5)
        described = shell.describe()
        assert described["state"] == "starving" and "web still running" in described["reason"]
        starved = path.read_bytes().count(b"\0")
        await asyncio.sleep(0.6)
        assert path.read_bytes().count(b"\0") == starved  # no keep-alive any more
        shell.configure(0.0)  # watchdog fencing turned off: no longer a promise to others
        assert reports[-1].armed is False
        await shell.close(clean=True)

    asyncio.run(scenario())
    assert path.read_bytes().endswith(b"V")


def test_a_shell_whose_device_cannot_be_opened_reports_why(tmp_path: Path) -> None:
    reports: list[WatchdogReport] = []

    async def scenario() -> None:
        shell = WatchdogShell(str(tmp_path / "none"), 0.1, lambda: (True, ()), reports.append)
        shell.open(10.0)
        assert shell.describe()["open"] is False
        await shell.close(clean=True)

    asyncio.run(scenario())
    (report,) = reports
    assert not report.armed and "cannot open the watchdog" in report.problem


def test_an_unclean_close_leaves_the_device_armed(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:

        async def scenario() -> None:
            shell = WatchdogShell(str(path), 0.1, lambda: (True, ("web",)), lambda r: None)
            shell.open(10.0)
            await shell.close(clean=False)

        asyncio.run(scenario())
        assert os.read(reader, 100) == b"\0"  # fed once at open, then closed without "V"
    finally:
        os.close(reader)


def test_device_timeout_is_half_the_fencing_timeout() -> None:
    assert device_timeout(10.0) == 5
    assert device_timeout(3.0) == 1
    assert device_timeout(1.0) == 1
    assert device_timeout(0.0) == 5 and device_timeout(-1.0) == 5


def test_no_promise_in_a_two_node_cluster_without_a_quorum_server(tmp_path: Path) -> None:
    path = tmp_path / "watchdog"
    path.write_bytes(b"")
    reports: list[WatchdogReport] = []

    async def scenario() -> None:
        shell = WatchdogShell(str(path), 0.1, lambda: (True, ()), reports.append, two_node=True)
        shell.open(10.0)
        await shell.close(clean=True)

    asyncio.run(scenario())
    assert not reports[-1].armed and "two_node without a quorum server" in reports[-1].problem
    assert path.read_bytes() == b"\0V"  # still fed: a hung daemon is still reset
