"""`hastack history`: the command's arguments, its output, its time parsing and its errors."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.cli import history_cmd
from hastack.cli.history_cmd import parse_time
from hastack.cli.main import main
from hastack.crm.events import ClusterEvent
from hastack.crm.history import HISTORY_FILE, EventHistory

NOW = 1_700_000_000.0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hastack")
    history_cmd.register(top.add_subparsers(dest="command", required=True))
    return top


def run(argv: list[str], now: float = NOW) -> int:
    args = parser().parse_args(["history", *argv])
    return int(history_cmd.run(args, now=now))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    with EventHistory(tmp_path / "n1") as history:
        history.append(
            ClusterEvent.make(
                1, NOW - 3600, "node-joined", node="n2", previous="lost", desc="node n2 joined"
            )
        )
        history.append(
            ClusterEvent.make(
                2,
                NOW - 600,
                "resource-started",
                node="n2",
                resource="vip",
                task="start",
                rc=0,
                previous="Stopped",
            )
        )
        history.append(
            ClusterEvent.make(
                3,
                NOW - 60,
                "resource-failed",
                node="n2",
                resource="web",
                task="monitor",
                rc=7,
                desc="web monitor: not running",
            )
        )
    return tmp_path


def test_the_history_is_shown_oldest_first(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--run-dir", str(run_dir), "--node", "n1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TIME", "SEQ", "EVENT", "NODE", "RESOURCE", "WHAT"]
    assert [line.split()[3] for line in lines[1:]] == [
        "node-joined",
        "resource-started",
        "resource-failed",
    ]
    assert "node n2 joined (was lost)" in lines[1]
    assert "start rc=0 (was Stopped)" in lines[2]
    stamp = dt.datetime.fromtimestamp(NOW - 60).strftime("%Y-%m-%d %H:%M:%S")
    assert lines[3].startswith(stamp + ".000")


def test_a_time_window_and_filters_select_events(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--run-dir", str(run_dir), "--node", "n1", "--json"]
    assert run([*base, "--since", "-15m"]) == 0
    assert [e["seq"] for e in json.loads(capsys.readouterr().out)["events"]] == [2, 3]
    assert run([*base, "--since", "2h ago", "--until", "5 min ago"]) == 0
    assert [e["seq"] for e in json.loads(capsys.readouterr().out)["events"]] == [1, 2]
    assert run([*base, "--resource", "web"]) == 0
    assert [e["seq"] for e in json.loads(capsys.readouterr().out)["events"]] == [3]
    assert run([*base, "--kind", "node", "--on", "n2"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [e["seq"] for e in document["events"]] == [1]
    assert document["node"] == "n1" and document["unreadable_lines"] == 0
    iso = dt.datetime.fromtimestamp(NOW - 120).isoformat()
    assert run([*base, "--since", iso]) == 0
    assert [e["seq"] for e in json.loads(capsys.readouterr().out)["events"]] == [3]


@pytest.mark.parametrize("bad", ["yesterday-ish", "-10q", "2024-13-01", "", "@nan"])
def test_a_bad_time_is_a_clear_error_not_a_traceback(
    run_dir: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    assert run(["--run-dir", str(run_dir), "--node", "n1", "--since", bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hastack history: --since: bad time")
    assert "ISO 8601" in err and "1h ago" in err and "Traceback" not in err


def test_until_before_since_is_refused(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--run-dir", str(run_dir), "--node", "n1", "--since", "-1m", "--until", "-1h"]
    assert run(argv) == 2
    assert "before --since" in capsys.readouterr().err


def test_a_node_without_history_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["--run-dir", str(tmp_path), "--node", "ghost"]) == 1
    err = capsys.readouterr().err
    assert "no history for node 'ghost'" in err and str(tmp_path / "ghost") in err


def test_an_empty_history_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "n1").mkdir()
    assert run(["--run-dir", str(tmp_path), "--node", "n1"]) == 0
    assert capsys.readouterr().out.strip() == "no events"


def test_torn_lines_are_reported_on_stderr(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(run_dir / "n1" / HISTORY_FILE, "a") as f:
        f.write('{"seq":4,"ti')
    assert run(["--run-dir", str(run_dir), "--node", "n1"]) == 0
    out, err = capsys.readouterr()
    assert "resource-failed" in out
    assert "1 line(s) could not be read" in err


def test_the_node_is_checked_against_the_configuration(
    tmp_path: Path, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = str(tmp_path / "conf")
    argv = [
        "config",
        "init",
        "-c",
        conf,
        "--node",
        "n1",
        "--node",
        "n2",
        "--ucast",
        "eth1",
        "10.9.0.1",
        "10.9.0.2",
    ]
    assert main(argv) == 0
    capsys.readouterr()
    assert run(["-c", conf, "--node", "n9", "--run-dir", str(run_dir)]) == 1
    assert "node 'n9' is not in" in capsys.readouterr().err
    assert run(["-c", conf, "--node", "n1", "--run-dir", str(run_dir), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["events"]) == 3


def test_relative_and_absolute_times() -> None:
    assert parse_time("now", NOW) == NOW
    assert parse_time("-10m", NOW) == NOW - 600
    assert parse_time("1h ago", NOW) == NOW - 3600
    assert parse_time("1h30m ago", NOW) == NOW - 5400
    assert parse_time("2 days ago", NOW) == NOW - 2 * 86400
    assert parse_time("@1234.5", NOW) == 1234.5
    assert parse_time("2023-11-14T22:13:20Z", NOW) == NOW
    assert parse_time("2023-11-14T23:13:20+01:00", NOW) == NOW
    local = dt.datetime.fromtimestamp(NOW)
    assert parse_time(local.strftime("%H:%M"), NOW) == local.replace(second=0).timestamp()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_a_time_or_a_value_error(text: str) -> None:
    try:
        value = parse_time(text, NOW)
    except ValueError as exc:
        assert "bad time" in str(exc)
    else:
        assert isinstance(value, float)


def test_a_relative_time_is_not_taken_for_an_option(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["--since", "-2m"], ["--since=-2m"]):
        assert run(["--run-dir", str(run_dir), "--node", "n1", "--json", *argv]) == 0
        assert [e["seq"] for e in json.loads(capsys.readouterr().out)["events"]] == [3]
