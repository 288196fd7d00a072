"""LogTail / wait_for_line: lines are seen once, whole, and only after the starting offset."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hastack.lab.logwatch import LogTail, wait_for_all, wait_for_line

NEEDS_ROOT = False


def test_tail_starts_at_the_end_and_returns_only_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("old line\n")
    tail = LogTail(log)
    with log.open("a") as f:
        f.write("new li")
        f.flush()
        assert tail.read() == []  # half a line is not a line yet
        f.write("ne\nsecond\n")
    assert [line.text for line in tail.read()] == ["new line", "second"]
    assert tail.read() == []


def test_wait_for_line_sees_a_line_written_later(tmp_path: Path) -> None:
    log = tmp_path / "b.log"
    log.write_text("")
    tails = {"b": LogTail(log)}

    def write_later() -> None:
        time.sleep(0.1)
        with log.open("a") as f:
            f.write("x info node-dead node n3 is dead node=n3\n")

    threading.Thread(target=write_later).start()
    t0 = time.monotonic()
    name, line = wait_for_line(tails, r"node-dead .*node=n3", timeout=5)
    assert name == "b" and "n3" in line.text
    assert 0.09 <= line.seen - t0 < 1.0


def test_waits_time_out_with_the_missing_files_named(tmp_path: Path) -> None:
    (tmp_path / "c.log").write_text("")
    (tmp_path / "d.log").write_text("")
    tails = {"c": LogTail(tmp_path / "c.log"), "d": LogTail(tmp_path / "d.log")}
    with (tmp_path / "c.log").open("a") as f:
        f.write("ready\n")
    with pytest.raises(TimeoutError, match=r"\['d'\]"):
        wait_for_all(tails, "ready", timeout=0.2)
