"""The `hastack` command line: every subcommand's --help, argument errors, config commands."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hastack
from hastack.cli import plugins
from hastack.cli.main import build_parser, main
from hastack.cli.status_cmd import format_status

SRC = str(Path(hastack.__file__).resolve().parent.parent)


def subcommand_paths(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append((*prefix, name))
                paths += subcommand_paths(sub, (*prefix, name))
    return paths


ALL_COMMANDS = subcommand_paths(build_parser())


def test_the_expected_subcommands_exist() -> None:
    for path in [
        ("node", "start"),
        ("status",),
        ("config", "check"),
        ("config", "init"),
        ("config", "timing"),
        ("sim",),
        ("demo",),
    ]:
        assert path in ALL_COMMANDS


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=" ".join)
def test_every_subcommand_has_help(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: hastack " + " ".join(path))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"hastack {hastack.__version__}"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["frobnicate"], "invalid choice"),
        ([], "required"),
        (["status"], "-c/--config"),
        (["node"], "required"),
        (["config", "check"], "-c/--config"),
        (["config", "init", "-c", "/nonexistent"], "--node"),
        (["config", "init", "-c", "/x", "--node", "a", "--keepalive", "soon"], "not a duration"),
    ],
)
def test_bad_command_lines_exit_2_with_a_clear_error(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_the_module_runs_as_a_program() -> None:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "hastack.cli.main", "--help"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0
    for command in ("node", "status", "config", "sim", "demo"):
        assert command in result.stdout


def test_config_init_check_and_timing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(tmp_path / "conf")
    argv = [
        "config",
        "init",
        "-c",
        directory,
        "--node",
        "a",
        "--node",
        "b",
        "--node",
        "c",
        "--ucast",
        "eth1",
        "10.9.0.1",
        "10.9.0.2",
        "10.9.0.3",
        "--keepalive",
        "500ms",
        "--deadtime",
        "3s",
    ]
    assert main(argv) == 0
    assert (os.stat(os.path.join(directory, "authkeys")).st_mode & 0o777) == 0o600
    capsys.readouterr()

    assert main(argv) == 1, "an existing configuration is not overwritten"
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    capsys.readouterr()

    assert main(["config", "check", "-c", directory, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and report["errors"] == []

    assert main(["config", "timing", "-c", directory, "--json"]) == 0
    timers = {row["name"]: row["seconds"] for row in json.loads(capsys.readouterr().out)}
    assert timers["keepalive"] == 0.5 and timers["deadtime"] == 3.0
    assert main(["config", "timing", "-c", directory]) == 0
    text = capsys.readouterr().out
    assert "keepalive" in text and "500 ms" in text


def test_config_check_lists_every_error_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ha.cf").write_text("node a\nnode b\nkeepalive often\nfrob 1\nbcast eth0\n")
    keys = tmp_path / "authkeys"
    keys.write_text("auth 1\n1 sha256 secret\n")
    keys.chmod(0o644)
    assert main(["config", "check", "-c", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) >= 3, out  # the duration, the unknown directive, the key file's mode
    assert "ha.cf:3" in out and "ha.cf:4" in out and "chmod 600" in out

    assert main(["config", "check", "-c", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert {e["line"] for e in report["errors"] if e["file"] and e["file"].endswith("ha.cf")} >= {
        3,
        4,
    }


def test_config_timing_on_a_bad_config_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "timing", "-c", str(tmp_path / "missing")]) == 1
    assert "not a configuration directory" in capsys.readouterr().err


def test_a_missing_plugin_leaves_a_subcommand_that_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        plugins, "PLUGINS", (("later", "hastack.not_written_yet", "a future subcommand"),)
    )
    assert main(["later"]) == 1
    err = capsys.readouterr().err
    assert "not available" in err and "hastack.not_written_yet" in err


def test_human_status_shows_nodes_links_quorum_and_dc() -> None:
    status = {
        "node": "a",
        "generation": 3,
        "dc": "b",
        "term": 7,
        "is_dc": False,
        "quorate": True,
        "votes": 2,
        "expected_votes": 3,
        "quorum": 2,
        "members": ["a", "b"],
        "members_version": [7, 2],
        "ping": {"10.0.0.254": "up"},
        "counters": {},
        "nodes": {
            "a": {
                "name": "a",
                "node_id": 1,
                "votes": 1,
                "state": "online",
                "links": {"ucast eth1": "up", "serial /dev/ttyS0": "up"},
                "generation": 3,
                "last_heard": 0.0,
                "attributes": {"pingd": 1},
            },
            "b": {
                "name": "b",
                "node_id": 2,
                "votes": 1,
                "state": "online",
                "links": {"ucast eth1": "up", "serial /dev/ttyS0": "down"},
                "generation": 5,
                "last_heard": 0.25,
                "attributes": {},
            },
            "c": {
                "name": "c",
                "node_id": 3,
                "votes": 1,
                "state": "offline",
                "links": {"ucast eth1": "down", "serial /dev/ttyS0": "down"},
                "generation": None,
                "last_heard": None,
                "attributes": {},
            },
        },
    }
    text = format_status(status)
    assert "DC: b   term: 7" in text
    assert "2 of 3 votes (needs 2)" in text
    rows = {
        line.split()[0]: line for line in text.splitlines() if line[:1] in "abc" and "  " in line
    }
    assert "offline" in rows["c"] and "(DC)" in rows["b"]
    assert rows["b"].split()[-2:] == ["up", "down"]
    assert "ucast eth1" in text and "serial /dev/ttyS0" in text
    assert "10.0.0.254 up" in text
