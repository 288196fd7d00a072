"""The daemon's parts on their own: run dir, clock, control socket, log format, reload diff."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from pathlib import Path

import pytest

from hastack.config.model import (
    AuthKey,
    AuthKeys,
    ClusterConfig,
    HaCf,
    Link,
    NodeSpec,
    Source,
)
from hastack.daemon import clock
from hastack.daemon.control import ControlServer, query, unix_address
from hastack.daemon.logsetup import EventFormatter
from hastack.daemon.node import config_changes
from hastack.daemon.rundir import AlreadyRunning, NodeRunDir

# --- run dir --------------------------------------------------------------------------------


def test_generation_starts_at_1_and_is_bumped_at_every_start(tmp_path: Path) -> None:
    rundir = NodeRunDir(tmp_path, "n1")
    rundir.create()
    assert [rundir.bump_generation() for _ in range(3)] == [1, 2, 3]
    assert (tmp_path / "n1" / "generation").read_text() == "3\n"
    assert not list((tmp_path / "n1").glob(".*tmp")), "no temporary file is left behind"


def test_a_second_lock_on_the_same_node_is_refused_with_the_pid(tmp_path: Path) -> None:
    first = NodeRunDir(tmp_path, "n1")
    first.create()
    first.lock()
    first.write_pid()
    second = NodeRunDir(tmp_path, "n1")
    with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
        second.lock()
    # Another node in the same run_dir is independent.
    other = NodeRunDir(tmp_path, "n2")
    other.create()
    other.lock()
    first.cleanup()
    assert not first.pid_path.exists()
    second.lock()  # free again once released
    second.cleanup()
    other.cleanup()


# --- clock ----------------------------------------------------------------------------------


def test_now_is_boottime_and_never_goes_back() -> None:
    a = clock.now()
    b = clock.now()
    assert b >= a
    assert abs(a - time.clock_gettime(time.CLOCK_BOOTTIME)) < 1.0
    assert a >= time.monotonic() - 1.0  # boottime includes suspend, so it is never behind


def test_wall_clock_jumps_are_detected_in_both_directions() -> None:
    watch = clock.WallClockWatch(threshold=1.0)
    assert watch.check(100.0, 5000.0) is None  # first sample
    assert watch.check(101.0, 5001.0) is None  # both moved one second
    assert watch.check(102.0, 5061.0) == pytest.approx(59.0)  # wall stepped forward
    assert watch.check(103.0, 5000.0) == pytest.approx(-62.0)  # and back
    assert watch.check(104.0, 5001.2) is None  # small disagreement is not a jump


# --- control socket -------------------------------------------------------------------------


def test_control_server_answers_good_and_bad_requests(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def body() -> None:
        server = ControlServer(path, {"status": lambda r: {"node": "n1"}, "boom": _boom})
        await server.start()
        try:
            ask = asyncio.to_thread
            assert await ask(query, path, {"cmd": "status"}) == {"node": "n1"}
            unknown = await ask(query, path, {"cmd": "nope"})
            assert "unknown command 'nope'" in unknown["error"] and "status" in unknown["error"]
            assert "error" in await ask(query, path, {"command": "status"})
            failed = await ask(query, path, {"cmd": "boom"})
            assert "failed" in failed["error"]
            assert await ask(query, path, {"cmd": "status"}) == {"node": "n1"}
            assert server.bad_requests == 3
        finally:
            await server.close()
        assert not path.exists()

    asyncio.run(body())


def _boom(_request: dict[str, object]) -> dict[str, object]:
    raise RuntimeError("handler bug")


def test_control_socket_works_at_a_path_longer_than_sun_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "control.sock"
    assert len(str(path)) > 108

    async def body() -> None:
        server = ControlServer(path, {"status": lambda r: {"ok": True}})
        await server.start()
        try:
            assert path.exists()
            assert await asyncio.to_thread(query, path, {"cmd": "status"}) == {"ok": True}
        finally:
            await server.close()

    asyncio.run(body())
    with unix_address("/short") as address:
        assert address == "/short"


def test_query_without_a_daemon_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        query(tmp_path / "absent.sock", {"cmd": "status"})


# --- log lines ------------------------------------------------------------------------------


def test_log_lines_carry_node_level_event_message_and_fields() -> None:
    record = logging.LogRecord("hastack.membership", logging.WARNING, "", 0, "link down", (), None)
    record.event = "link-down"
    record.fields = {"link": "ucast eth1", "node": "n2", "n": 3}
    line = EventFormatter("n1").format(record)
    assert line.split(" ")[1:5] == ["n1", "warning", "link-down", "link"]
    assert 'link="ucast eth1"' in line and "node=n2" in line and "n=3" in line
    assert "\n" not in line


# --- reload ---------------------------------------------------------------------------------


def _config(**changes: object) -> ClusterConfig:
    hacf = HaCf(
        file="/etc/ha.d/ha.cf",
        nodes=(NodeSpec("n1", 1, source=Source("ha.cf", 1)),),
        links=(Link("ucast", "ucast eth0", "eth0", ("10.0.0.2",), source=Source("ha.cf", 2)),),
    )
    hacf = dataclasses.replace(hacf, **changes)  # type: ignore[arg-type]
    keys = AuthKeys(1, {1: AuthKey(1, "sha256", b"k")})
    return ClusterConfig("/etc/ha.d", hacf, keys)


def test_reload_diff_names_changed_directives_and_ignores_line_moves() -> None:
    old = _config()
    moved = _config(
        nodes=(NodeSpec("n1", 1, source=Source("ha.cf", 9)),),
        links=(Link("ucast", "ucast eth0", "eth0", ("10.0.0.2",), source=Source("ha.cf", 8)),),
    )
    assert config_changes(old, moved) == []
    assert config_changes(old, _config(udpport=700, logfile="/x")) == ["udpport", "logfile"]
