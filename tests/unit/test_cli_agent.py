"""`hastack agent list|info|run|install-ocf` against Debian's real agents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hastack.cli.main import main

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
R1_IPADDR2 = Path("/etc/ha.d/resource.d/IPaddr2")


def need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not installed (Debian's resource-agents / heartbeat)")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["agent", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_filters_by_standard_and_provider(capsys: pytest.CaptureFixture[str]) -> None:
    need(DUMMY)
    code, out, _ = run(capsys, "list", "ocf:heartbeat")
    names = out.split()
    assert code == 0 and "ocf:heartbeat:Dummy" in names and "ocf:heartbeat:IPaddr2" in names
    assert all(n.startswith("ocf:heartbeat:") for n in names)
    code, out, _ = run(capsys, "list", "ocf", "--json")
    assert code == 0 and "ocf:heartbeat:Dummy" in json.loads(out)


def test_list_refuses_an_unknown_standard(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "list", "nonsense")
    assert code == 2 and "unknown standard 'nonsense'" in err


def test_info_shows_parameters_and_advised_timeouts(capsys: pytest.CaptureFixture[str]) -> None:
    need(DUMMY)
    code, out, _ = run(capsys, "info", "ocf:heartbeat:Dummy", "--json")
    assert code == 0
    info = json.loads(out)
    assert {p["name"] for p in info["parameters"]} >= {"state", "fake"}
    monitor = next(a for a in info["actions"] if a["name"] == "monitor")
    assert monitor["timeout"] == 20 and monitor["interval"] == 10


def test_run_start_monitor_stop_exit_with_the_ocf_rc(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    need(DUMMY)
    state = f"state={tmp_path / 'dummy.state'}"
    assert run(capsys, "run", "ocf:heartbeat:Dummy", "monitor", "-p", state)[0] == 7
    code, out, _ = run(capsys, "run", "ocf:heartbeat:Dummy", "start", "-p", state)
    assert code == 0 and "rc 0 (success)" in out
    assert run(capsys, "run", "ocf:heartbeat:Dummy", "monitor", "-p", state)[0] == 0
    code, out, _ = run(capsys, "run", "ocf:heartbeat:Dummy", "stop", "-p", state, "--json")
    assert code == 0 and json.loads(out)["status"] == "done"
    code, out, _ = run(capsys, "run", "ocf:heartbeat:Dummy", "monitor", "-p", state)
    assert code == 7 and "not running" in out


def test_run_refuses_missing_required_parameters_unless_forced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    need(Path("/usr/lib/ocf/resource.d/heartbeat/IPaddr2"))
    code, _, err = run(capsys, "run", "ocf:heartbeat:IPaddr2", "monitor")
    assert code == 2
    assert "missing required parameter ip" in err and "--force" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ocf:heartbeat:NoSuchAgent", "start"], "not found: searched"),
        (["ocf:heartbeat", "start"], "ocf needs a provider"),
        (["ocf:heartbeat:Dummy", "start", "-p", "state"], "write NAME=VALUE"),
        (["IPaddr2::bad arg", "status"], "bad haresources entry"),
    ],
)
def test_run_gives_clear_errors_for_bad_input(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, "run", *argv)
    assert code == 2 and message in err, err
    assert "Traceback" not in out + err


def test_run_says_when_systemd_is_not_running(capsys: pytest.CaptureFixture[str]) -> None:
    if Path("/run/systemd/system").exists():
        pytest.skip("systemd runs on this machine: the no-systemd error cannot be shown")
    code, _, err = run(capsys, "run", "systemd:nginx", "start")
    assert code == 2 and "systemd is not running" in err


def test_run_accepts_haresources_form_for_r1_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    need(R1_IPADDR2)
    # 192.0.2.0/24 is TEST-NET-1: never configured here, so the address is not running
    code, out, _ = run(capsys, "run", "IPaddr2::192.0.2.77/24/lo", "status")
    assert code == 7 and out.startswith("heartbeat:IPaddr2 status: rc 7 (not running)")


def ocf_agent(tmp_path: Path, name: str, body: str) -> Path:
    """An OCF root in tmp_path with one agent ocf:test:NAME running `body` (sh)."""
    root = tmp_path / "ocf"
    agent = root / "resource.d" / "test" / name
    agent.parent.mkdir(parents=True, exist_ok=True)
    agent.write_text("#!/bin/sh\n" + body)
    agent.chmod(0o755)
    return root


META = """<?xml version="1.0"?>
<resource-agent name="Hang" version="1.0"><version>1.1</version>
<shortdesc lang="en">hangs</shortdesc><longdesc lang="en">hangs on start</longdesc>
<parameters/><actions><action name="start" timeout="600s"/></actions></resource-agent>"""


def test_run_kills_an_agent_at_its_timeout(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = f'[ "$1" = meta-data ] && {{ cat <<EOF\n{META}\nEOF\nexit 0; }}\nsleep 600\n'
    root = ocf_agent(tmp_path, "Hang", body)
    argv = ["run", "ocf:test:Hang", "start", "--timeout", "0.5", "--ocf-root", str(root)]
    code, out, _ = run(capsys, *argv)
    assert code == 1 and "(timeout 0.5 s)" in out


def test_garbage_meta_data_is_a_clear_error_and_force_runs_anyway(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = ocf_agent(tmp_path, "Garbage", 'echo "<not xml"\nexit 0\n')
    code, _, err = run(capsys, "info", "ocf:test:Garbage", "--ocf-root", str(root))
    assert code == 2 and "ocf:test:Garbage: line 2: meta-data is not valid XML" in err
    argv = ["run", "ocf:test:Garbage", "start", "--ocf-root", str(root)]
    code, _, err = run(capsys, *argv)
    assert code == 2 and "--force" in err
    code, out, err = run(capsys, *argv, "--force")
    assert code == 0 and "rc 0 (success)" in out and "running anyway" in err


def test_a_non_executable_agent_is_named_with_the_fix(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = ocf_agent(tmp_path, "Plain", "exit 0\n")
    (root / "resource.d" / "test" / "Plain").chmod(0o644)
    code, _, err = run(capsys, "run", "ocf:test:Plain", "start", "--ocf-root", str(root))
    assert code == 2 and "chmod +x" in err


def test_install_ocf_then_run_hastacks_own_dummy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "ocf"
    code, out, _ = run(capsys, "install-ocf", "--root", str(root))
    assert code == 0 and str(root / "resource.d" / "hastack" / "Dummy") in out.split()
    state = f"state={tmp_path / 'hastack-dummy.state'}"
    base = ["ocf:hastack:Dummy", "--ocf-root", str(root), "-p", state]
    assert run(capsys, "run", base[0], "monitor", *base[1:])[0] == 7
    assert run(capsys, "run", base[0], "start", *base[1:])[0] == 0
    assert run(capsys, "run", base[0], "monitor", *base[1:])[0] == 0
    assert run(capsys, "run", base[0], "stop", *base[1:])[0] == 0
    code, out, _ = run(capsys, "list", "ocf:hastack", "--ocf-root", str(root))
    assert "ocf:hastack:IPaddr2" in out.split() and "ocf:hastack:Stateful" in out.split()
