"""The watchdog daemon's state on disk: status, the reset reason across a reboot, the pidfile
lock, and the summary the cluster's status shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hastack.cli.status_cmd import format_watchdog_daemon
from hastack.watchdog import state
from hastack.watchdog.state import StateDir, StateError, summary


def test_the_reset_reason_is_synced_and_reported_once_in_a_later_boot(tmp_path: Path) -> None:
    sd = StateDir(tmp_path)
    sd.prepare()
    record = sd.record_reset({"action": "reboot", "code": 250, "check": "file", "object": "/x"})
    assert record["boot_id"] == state.boot_id() and record["reported"] is False
    assert sd.take_unreported_reset() is None  # the same boot: nothing to report yet
    on_disk = json.loads((tmp_path / state.LAST_RESET).read_text())
    on_disk["boot_id"] = "an-earlier-boot"
    (tmp_path / state.LAST_RESET).write_text(json.dumps(on_disk))
    reported = sd.take_unreported_reset()
    assert reported is not None and reported["object"] == "/x"
    assert sd.take_unreported_reset() is None  # reported once
    assert sd.last_reset()["reported"] is True  # and still shown by status


def test_the_pidfile_lock_refuses_a_second_daemon_and_a_stale_file_is_not_running(
    tmp_path: Path,
) -> None:
    first = StateDir(tmp_path)
    first.prepare()
    first.lock()
    # Another process (flock locks belong to the open file) must be refused.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from hastack.watchdog.state import StateDir\nStateDir({str(tmp_path)!r}).lock()",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    )
    assert out.returncode != 0 and "another watchdog daemon" in out.stderr
    assert first.running_pid() == os.getpid()
    first.unlock()
    (tmp_path / state.PIDFILE).write_text("12345\n")  # left behind by a killed daemon
    assert first.running_pid() is None


def test_a_corrupt_status_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / state.STATUS).write_text("{not json")
    with pytest.raises(StateError, match=str(tmp_path / state.STATUS)):
        StateDir(tmp_path).read_status()
    assert summary(str(tmp_path)) == {
        "running": False,
        "problem": f"{tmp_path / state.STATUS}: not a status file (Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1))",
    }


def test_the_cluster_status_line_says_what_the_daemon_does(tmp_path: Path) -> None:
    assert summary(str(tmp_path)) is None  # no daemon ever ran here: no line at all
    sd = StateDir(tmp_path)
    sd.lock()
    sd.write_status(
        {
            "running": True,
            "pid": os.getpid(),
            "device": {
                "path": "/dev/watchdog",
                "armed": True,
                "feeding": True,
                "last_keepalive": 1.0,
            },
            "checks": [
                {"check": "pidfile", "object": "/run/db.pid", "code": 3},
                {"check": "load", "object": "<load-average>", "code": 0},
            ],
            "action": None,
        }
    )
    line = format_watchdog_daemon(summary(str(tmp_path)) or {})
    assert f"pid {os.getpid()}" in line and "/dev/watchdog fed" in line
    assert "2 checks, failing: pidfile /run/db.pid" in line
    sd.unlock()
    assert format_watchdog_daemon(summary(str(tmp_path)) or {}).startswith(
        "WARNING watchdog daemon: not running"
    )
