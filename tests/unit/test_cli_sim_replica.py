"""`hastack sim --replica`: the replica simulator from the command line -- the report, JSON,
usage errors, and a deliberately broken disk whose violation replays from its printed command."""

from __future__ import annotations

import json
import shlex

import pytest

from hastack.sim.cli import main
from hastack.sim.replica import INVARIANTS
from hastack.sim.replica_cli import ReplicaOptions

LYING_DISK = "hastack.sim.replica_disk:DataFlushLiesFile"


def _args(command: str) -> list[str]:
    words = shlex.split(command)
    assert words[:2] == ["hastack", "sim"]
    return words[2:]


def test_clean_seeds_report_no_violations_and_the_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--replica", "--seeds", "2", "--duration", "0.5", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("violations: none\n")
    assert "2 seed(s) of the replica simulator" in out
    assert ": 0 violation(s) in 0 seed(s)" in out
    assert "checked: " + ", ".join(INVARIANTS) in out
    assert "failing seeds" not in out


def test_json_summary_counts(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--replica", "--seeds", "2", "--first-seed", "5", "--duration", "0.5"]
    assert main([*argv, "--protocol", "C", "--jobs", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    summary = doc["summary"]
    assert summary["kind"] == "replica"
    assert summary["seeds"] == 2
    assert summary["protocols"] == {"A": 0, "B": 0, "C": 2}
    assert summary["violations"] == 0 and summary["failing_seeds"] == []
    assert summary["totals"]["writes_acked"] > 0
    assert summary["totals"]["connects"] >= 2  # each seed connects its pair at least once
    assert summary["invariants"] == list(INVARIANTS)
    assert doc["violations"] == [] and doc["results"] is None


def test_one_seed_replays_to_the_same_trace(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--replica", "--seed", "3", "--duration", "0.5"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (result,) = doc["results"]
    assert result["seed"] == 3 and result["ok"]
    assert result["replay"] == "hastack sim --replica --seed 3 --duration 0.5"
    assert f"trace {result['trace_hash']}" in first


def test_a_broken_disk_fails_with_a_command_that_replays_the_seed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # fdatasync that leaves the data area volatile: a Secondary's flushed epochs vanish in a
    # crash, so an acknowledged protocol C write is missing from an UpToDate disk.
    argv = ["--replica", "--seed", "1", "--duration", "1", "--protocol", "C"]
    assert main([*argv, "--disk", LYING_DISK]) == 1
    out = capsys.readouterr().out
    assert "VIOLATION seed=1 " in out and "acked-write-lost" in out
    replay = f"hastack sim --replica --seed 1 --duration 1 --protocol C --disk {LYING_DISK}"
    assert f"replay:    {replay}" in out
    assert ": 1 violation(s) in 1 seed(s)" in out
    trace = next(line for line in out.splitlines() if line.startswith("  trace "))
    assert main(_args(replay)) == 1
    assert trace in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--replica", "--crm"], "--crm is the cluster simulator's"),
        (["--replica", "--nodes", "3"], "--nodes is the cluster simulator's"),
        (["--replica", "--faults", "loss"], "--faults is the cluster simulator's"),
        (["--protocol", "C", "--seeds", "1"], "--protocol needs --replica"),
        (["--no-faults", "--seeds", "1"], "--no-faults needs --replica"),
        (["--replica", "--engine", "nowhere:Engine"], "No module named 'nowhere'"),
        (["--replica", "--shell", "hastack.sim.replica"], "expected MODULE:CLASS"),
        (["--replica", "--engine", LYING_DISK], "is not a subclass of"),
    ],
)
def test_options_that_do_not_go_together_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_help_documents_the_replica_simulator(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "10000")  # argparse wraps at hyphens otherwise
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--replica", "--protocol {A,B,C}", "--no-faults", "--engine MODULE:CLASS"):
        assert words in text
    for invariant in INVARIANTS:
        assert invariant in text


def test_replay_command_round_trips_through_the_shell() -> None:
    options = ReplicaOptions(duration=2.5, protocol="B", faults=False, shell="my mod:Shell")
    command = options.replay(7)
    assert shlex.split(command) == [
        "hastack",
        "sim",
        "--replica",
        "--seed",
        "7",
        "--duration",
        "2.5",
        "--protocol",
        "B",
        "--no-faults",
        "--shell",
        "my mod:Shell",
    ]
