"""`hastack sim`: exit status, the report, JSON, and replaying a failing seed from its command."""

from __future__ import annotations

import json
import shlex

import pytest

from hastack.sim import SimConfig, run_seeds
from hastack.sim.cli import main


def test_clean_run_reports_no_violations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "3", "--nodes", "3", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "violations: none" in out
    assert "3 seed(s), nodes 3" in out


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "2", "--nodes", "3-4", "--jobs", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["seeds"] == 2
    assert doc["summary"]["nodes"] == [3, 4]
    assert doc["violations"] == []


def test_failing_seed_exits_1_and_prints_a_command_that_replays_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = SimConfig(nodes=3, faults=("pause", "partition"), core="mutants:StickyLeaseCore")
    failing = next(r for r in run_seeds(range(20), config) if r.violations)
    assert main(_args(failing.replay)) == 1
    out = capsys.readouterr().out
    assert "VIOLATION" in out and "two-dc" in out
    assert failing.replay in out
    assert f"trace {failing.trace_hash}" in out
    # the printed command, run again, is the same run
    assert main(_args(failing.replay)) == 1
    assert f"trace {failing.trace_hash}" in capsys.readouterr().out


def test_bad_fault_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--faults", "loss,meteor"])
    assert exc.value.code == 2
    assert "unknown fault kind(s) meteor" in capsys.readouterr().err


def test_timers_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--keepalive", "0.3", "--deadtime", "0.5", "--seeds", "1"]) == 2
    assert "deadtime must exceed 2 x keepalive" in capsys.readouterr().err


def _args(command: str) -> list[str]:
    words = shlex.split(command)
    assert words[:2] == ["hastack", "sim"]
    return words[2:]
