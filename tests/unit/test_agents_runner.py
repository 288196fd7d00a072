"""run_invocation: one agent run as a subprocess, with its timeout, output and exit reason."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hastack.agents.invocation import Invocation, ResourceAgentCall, build_invocation
from hastack.agents.names import parse_agent
from hastack.agents.rc import OcfRc, OpResult
from hastack.agents.runner import DRAIN_AFTER_EXIT, OUTPUT_LIMIT, run_invocation

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def script(tmp_path: Path, name: str, body: str, mode: int = 0o755) -> Path:
    path = tmp_path / name
    path.write_text(body)
    path.chmod(mode)
    return path


def inv(path: Path | str, action: str = "start", env: dict[str, str] | None = None) -> Invocation:
    return Invocation((str(path), action), env if env is not None else ENV, "ocf", action)


def run(
    invocation: Invocation, timeout: float = 10.0, grace: float = 5.0, **kw: object
) -> OpResult:
    return asyncio.run(run_invocation(invocation, timeout, grace, **kw))  # type: ignore[arg-type]


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for init counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return gone(pid)


@pytest.fixture
def pids(tmp_path: Path) -> Iterator[list[int]]:
    """PIDs a test's agents left behind (read from files the agents wrote), killed afterwards."""
    started: list[int] = []
    yield started
    for pid in started:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


def read_pid(path: Path, pids: list[int]) -> int:
    pid = int(path.read_text().split()[0])
    pids.append(pid)
    return pid


@pytest.mark.skipif(not DUMMY.exists(), reason="Debian's resource-agents is not installed")
def test_debian_dummy_start_monitor_stop(tmp_path: Path) -> None:
    state = tmp_path / "dummy.state"

    def action(name: str) -> OpResult:
        call = ResourceAgentCall(
            "d1", parse_agent("ocf:heartbeat:Dummy"), name, params={"state": str(state)}
        )
        return run(build_invocation(call))

    assert action("monitor").rc == OcfRc.NOT_RUNNING
    started = action("start")
    assert (started.rc, started.status) == (OcfRc.SUCCESS, "done")
    assert state.exists()
    assert action("monitor").rc == OcfRc.SUCCESS
    assert action("stop").rc == OcfRc.SUCCESS
    assert action("monitor").rc == OcfRc.NOT_RUNNING


def test_exit_code_output_and_exit_reason(tmp_path: Path) -> None:
    agent = script(
        tmp_path,
        "agent",
        "#!/bin/sh\necho doing $1\necho 'ocf-exit-reason:no config file' >&2\n"
        "echo 'ocf-exit-reason: no config file' >&2\necho 'ocf-exit-reason:second' >&2\nexit 6\n",
    )
    result = run(inv(agent))
    assert (result.rc, result.status) == (OcfRc.ERR_CONFIGURED, "done")
    assert result.exit_reason == "no config file; second"  # in order, repeats once
    assert result.output.startswith("doing start\n")
    assert "ocf-exit-reason:second" in result.output


def test_environment_is_exactly_the_invocations(tmp_path: Path) -> None:
    agent = script(tmp_path, "agent", '#!/bin/sh\necho "[$OCF_RESKEY_ip] [$HOME]"\n')
    result = run(inv(agent, env={**ENV, "OCF_RESKEY_ip": "10.0.0.1"}))
    assert result.output.strip() == "[10.0.0.1] []"


def test_output_keeps_the_last_4_kib_from_a_line_start(tmp_path: Path) -> None:
    agent = script(tmp_path, "agent", "#!/bin/sh\nseq 1 30000\necho 'ocf-exit-reason:late'\n")
    result = run(inv(agent))
    assert result.rc == 0
    assert len(result.output.encode()) <= OUTPUT_LIMIT
    assert len(result.output.encode()) > OUTPUT_LIMIT - 100
    lines = result.output.splitlines()
    assert lines[-1] == "ocf-exit-reason:late"
    assert lines[-2] == "30000"
    assert int(lines[0]) == int(lines[1]) - 1  # the first kept line is whole
    assert result.exit_reason == "late"


def test_output_limit_can_be_raised_for_whole_output(tmp_path: Path) -> None:
    agent = script(tmp_path, "agent", "#!/bin/sh\nseq 1 30000\n")
    result = asyncio.run(run_invocation(inv(agent), 10, output_limit=1 << 20))
    assert result.output.splitlines() == [str(n) for n in range(1, 30001)]


@pytest.mark.skipif(not DUMMY.exists(), reason="Debian's resource-agents is not installed")
def test_debian_dummy_meta_data_is_whole_with_a_raised_limit() -> None:
    call = ResourceAgentCall("d1", parse_agent("ocf:heartbeat:Dummy"), "meta-data")
    result = asyncio.run(run_invocation(build_invocation(call), 10, output_limit=1 << 20))
    assert result.rc == 0
    assert result.output.lstrip().startswith("<?xml")
    assert result.output.rstrip().endswith("</resource-agent>")


def test_hung_agent_that_ignores_sigterm_is_killed_at_timeout(
    tmp_path: Path, pids: list[int]
) -> None:
    pidfile = tmp_path / "pid"
    agent = script(
        tmp_path,
        "agent",
        f"#!/bin/sh\ntrap '' TERM\necho $$ > {pidfile}\nwhile :; do sleep 1; done\n",
    )
    begin = time.monotonic()
    result = run(inv(agent), timeout=0.5, grace=0.5)
    took = time.monotonic() - begin
    assert (result.rc, result.status) == (OcfRc.ERR_GENERIC, "timeout")
    assert result.exit_reason == "timed out after 0.5s (killed with SIGKILL after 0.5s grace)"
    assert 1.0 <= took < 4.0
    assert wait_gone(read_pid(pidfile, pids))


def test_agent_that_exits_on_sigterm_ends_within_grace(tmp_path: Path, pids: list[int]) -> None:
    pidfile = tmp_path / "pid"
    agent = script(
        tmp_path,
        "agent",
        f"#!/bin/sh\ntrap 'echo caught TERM; exit 1' TERM\necho $$ > {pidfile}\n"
        "while :; do sleep 0.05; done\n",
    )
    begin = time.monotonic()
    result = run(inv(agent), timeout=0.3, grace=10)
    assert time.monotonic() - begin < 3.0  # not the 10 s grace
    assert result.status == "timeout"
    assert result.exit_reason == "timed out after 0.3s (terminated with SIGTERM)"
    assert "caught TERM" in result.output
    assert wait_gone(read_pid(pidfile, pids))


def test_timeout_kills_the_whole_process_group(tmp_path: Path, pids: list[int]) -> None:
    child = tmp_path / "child"
    agent = script(
        tmp_path,
        "agent",
        f"#!/bin/sh\nsh -c 'trap \"\" TERM; echo $$ > {child}; exec sleep 60' &\nsleep 60\n",
    )
    result = run(inv(agent), timeout=0.5, grace=0.3)
    assert result.status == "timeout"
    assert wait_gone(read_pid(child, pids)), "the agent's child survived the timeout"


def test_child_holding_the_pipe_does_not_block_after_agent_exits(
    tmp_path: Path, pids: list[int]
) -> None:
    child = tmp_path / "child"
    agent = script(
        tmp_path,
        "agent",
        f"#!/bin/sh\nsleep 60 &\necho $! > {child}\necho started\nexit 0\n",
    )
    begin = time.monotonic()
    result = run(inv(agent), timeout=30)
    assert time.monotonic() - begin < DRAIN_AFTER_EXIT + 2.0
    assert (result.rc, result.status) == (0, "done")
    assert result.output == "started\n"
    # A finished agent's children are left alone: a start may leave a daemon running.
    assert not gone(read_pid(child, pids))


def test_escaped_child_holding_the_pipe_does_not_block_after_a_timeout(
    tmp_path: Path, pids: list[int]
) -> None:
    child = tmp_path / "child"
    agent = script(
        tmp_path,
        "agent",
        f"#!/bin/sh\nsetsid sh -c 'echo $$ > {child}; exec sleep 60' &\nsleep 60\n",
    )
    begin = time.monotonic()
    result = run(inv(agent), timeout=0.5, grace=0.3)
    assert result.status == "timeout"
    assert time.monotonic() - begin < 0.5 + 0.3 + DRAIN_AFTER_EXIT + 2.0
    read_pid(child, pids)  # outside the agent's group: the fixture kills it


def test_missing_agent_is_an_error_result(tmp_path: Path) -> None:
    result = run(inv(tmp_path / "nothing"))
    assert (result.rc, result.status) == (OcfRc.ERR_GENERIC, "error")
    assert result.exit_reason == f"cannot run {tmp_path / 'nothing'}: no such file"


def test_not_executable_agent_is_an_error_result(tmp_path: Path) -> None:
    agent = script(tmp_path, "agent", "#!/bin/sh\nexit 0\n", mode=0o644)
    result = run(inv(agent))
    assert result.status == "error"
    assert "permission denied" in result.exit_reason
    assert str(agent) in result.exit_reason


def test_script_without_shebang_is_an_error_result(tmp_path: Path) -> None:
    agent = script(tmp_path, "agent", "echo hello\n")
    result = run(inv(agent))
    assert result.status == "error"
    assert (
        result.exit_reason
        == f"cannot run {agent}: exec format error (not a program and no #! line)"
    )


def test_missing_interpreter_is_an_error_result(tmp_path: Path) -> None:
    agent = script(tmp_path, "agent", "#!/nonexistent/interpreter\n")
    result = run(inv(agent))
    assert result.status == "error"
    assert "interpreter on its #! line was not found" in result.exit_reason


def test_agent_killed_by_a_signal_is_an_error_result(tmp_path: Path) -> None:
    agent = script(tmp_path, "agent", "#!/bin/sh\necho 'ocf-exit-reason:oops' >&2\nkill -9 $$\n")
    result = run(inv(agent))
    assert (result.rc, result.status) == (OcfRc.ERR_GENERIC, "error")
    assert result.exit_reason == "killed by signal SIGKILL; oops"


def test_exit_reason_on_an_unterminated_last_line(tmp_path: Path) -> None:
    agent = script(
        tmp_path, "agent", "#!/bin/sh\nprintf 'ocf-exit-reason:no newline' >&2\nexit 1\n"
    )
    result = run(inv(agent))
    assert (result.rc, result.exit_reason) == (1, "no newline")


def test_nul_in_argv_is_an_error_result(tmp_path: Path) -> None:
    result = run(Invocation(("/bin/echo", "a\0b"), ENV, "ocf", "start"))
    assert result.status == "error"
    assert "null byte" in result.exit_reason


def test_bad_timeout_and_empty_argv_are_error_results(tmp_path: Path) -> None:
    assert run(inv("/bin/true"), timeout=0).status == "error"
    empty = Invocation((), ENV, "ocf", "start")
    assert run(empty).exit_reason == "nothing to run: the command line is empty"


def test_durations_use_the_injected_clock(tmp_path: Path) -> None:
    ticks = iter([100.0, 107.5, 1e9])
    result = run(inv("/bin/true"), clock=lambda: next(ticks))
    assert (result.started, result.duration) == (100.0, 7.5)


def test_cancelling_the_run_kills_the_agent(tmp_path: Path, pids: list[int]) -> None:
    pidfile = tmp_path / "pid"
    agent = script(tmp_path, "agent", f"#!/bin/sh\ntrap '' TERM\necho $$ > {pidfile}\nsleep 60\n")

    async def body() -> None:
        task = asyncio.create_task(run_invocation(inv(agent), 60))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(body(), 10))
    assert wait_gone(read_pid(pidfile, pids))
