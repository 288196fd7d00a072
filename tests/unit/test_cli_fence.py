"""`hastack fence` and `hastack quorum`: command-line forms, their errors and the text they
print (the daemon side is tested in tests/lab/test_fencing_lab.py)."""

from __future__ import annotations

import pytest

from hastack.cli.fence_cmd import parse_words, render
from hastack.cli.main import main


@pytest.mark.parametrize(
    ("words", "parsed"),
    [
        (["n2"], ("reboot", "n2")),
        (["off", "n2"], ("off", "n2")),
        (["confirm", "n3"], ("confirm", "n3")),
        (["test"], ("test", None)),
        (["test", "n2"], ("test", "n2")),
        (["history"], ("history", None)),
        (["reboot", "test"], ("reboot", "test")),  # a node named like a form
    ],
)
def test_forms(words: list[str], parsed: tuple[str, str | None]) -> None:
    assert parse_words(words) == parsed


@pytest.mark.parametrize(
    ("words", "says"),
    [
        (["confirm"], "fence confirm needs the node"),
        (["kill", "n2"], "unknown form 'kill'"),
        (["off", "n1", "n2"], "at most one node"),
    ],
)
def test_bad_forms_say_what_is_allowed(words: list[str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_words(words)


def test_a_bad_form_exits_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fence", "kill", "n2"]) == 2
    assert "unknown form 'kill'" in capsys.readouterr().err


def test_no_daemon_is_a_clear_error(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fence", "history", "-c", "/nonexistent-hastack-dir"]) == 1
    assert "hastack fence:" in capsys.readouterr().err


def test_rendering() -> None:
    record = {
        "target": "n2",
        "action": "reboot",
        "state": "done",
        "devices": ["ipmi-n2"],
        "origin": "n1",
        "requesters": ["controller"],
        "started": 0,
        "completed": 1,
        "error": "",
        "reason": "node n2 is unclean",
    }
    assert (
        render("reboot", "n2", {"ok": True, "record": record})
        == "n2 was fenced (reboot) by ipmi-n2"
    )
    failed = {"ok": False, "record": {**record, "error": "BMC unreachable"}}
    assert render("off", "n2", failed) == "fencing n2 failed: BMC unreachable"
    table = render("history", None, {"history": [record]})
    assert "ipmi-n2" in table and "controller" in table
    test = render(
        "test",
        None,
        {
            "node": "n1",
            "devices": {"ipmi-n2": {"ok": False, "reason": "monitor: timed out"}},
            "paths": {"n2": {"ok": False, "why": "ipmi-n2: monitor: timed out", "working": []}},
        },
    )
    assert "ipmi-n2: FAILED (monitor: timed out)" in test
    assert "n2: NO WORKING FENCE PATH" in test


def test_agent_info_describes_fence_devices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "info", "stonith:hastack/ipmi"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("stonith:hastack/ipmi: ") and "ipaddr" in out
    assert main(["agent", "info", "stonith:fence_no_such_agent"]) != 0
    assert "fence_no_such_agent not found" in capsys.readouterr().err
