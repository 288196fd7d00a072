"""LocalExecutor: real agents driven by the executor core through asyncio."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hastack.agents.executor import OpCompleted
from hastack.agents.invocation import ResourceAgentCall
from hastack.agents.local import ExecutorClosed, LocalExecutor
from hastack.agents.names import AgentPaths, parse_agent
from hastack.agents.rc import OcfRc, OpResult

DUMMY = Path("/usr/lib/ocf/resource.d/heartbeat/Dummy")


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


@pytest.fixture
def pids() -> Iterator[list[int]]:
    """PIDs of agents a test started (read from pid files they wrote), killed afterwards."""
    started: list[int] = []
    yield started
    for pid in started:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def ocf_root(tmp_path: Path) -> Path:
    root = tmp_path / "ocf"
    (root / "resource.d" / "test").mkdir(parents=True)
    return root


def agent(ocf_root: Path, name: str, body: str) -> str:
    path = ocf_root / "resource.d" / "test" / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return f"ocf:test:{name}"


def call(
    resource: str, agent_name: str, action: str, interval: float = 0.0, **kw: object
) -> ResourceAgentCall:
    kw.setdefault("timeout", 20.0)  # the advised-timeout tests below pass None
    return ResourceAgentCall(resource, parse_agent(agent_name), action, interval=interval, **kw)  # type: ignore[arg-type]


async def next_event(
    events: asyncio.Queue[OpCompleted], match: Callable[[OpCompleted], bool], within: float = 5.0
) -> OpCompleted:
    async def find() -> OpCompleted:
        while True:
            event = await events.get()
            if match(event):
                return event

    return await asyncio.wait_for(find(), within)


@pytest.mark.skipif(not DUMMY.exists(), reason="Debian's resource-agents is not installed")
def test_dummy_monitor_failure_arrives_as_an_event(tmp_path: Path) -> None:
    state = tmp_path / "dummy.state"
    params = {"state": str(state)}

    async def body() -> None:
        events: asyncio.Queue[OpCompleted] = asyncio.Queue()
        async with LocalExecutor("n1", events.put_nowait) as lx:
            started = await lx.submit(call("d1", "ocf:heartbeat:Dummy", "start", params=params))
            assert (started.rc, started.status) == (OcfRc.SUCCESS, "done")
            lx.start_recurring(call("d1", "ocf:heartbeat:Dummy", "monitor", 0.2, params=params))

            def is_monitor(e: OpCompleted) -> bool:
                return e.record.operation_key == "d1_monitor_200"

            first = await next_event(events, is_monitor)
            second = await next_event(events, is_monitor)
            assert (first.record.rc, first.failed, second.record.rc) == (0, False, 0)
            # The interval is counted from the end of one run to the start of the next.
            assert second.record.last_run >= first.record.last_run + first.record.exec_time + 0.2
            state.unlink()  # behind the agent's back
            failed = await next_event(events, is_monitor)
            assert failed.failed is True
            assert (failed.record.rc, failed.record.status) == (OcfRc.NOT_RUNNING, "done")
            assert lx.core.lrm_rsc_ops("d1")["d1_last_failure_0"] == failed.record
            stopped = await lx.submit(call("d1", "ocf:heartbeat:Dummy", "stop", params=params))
            assert stopped.rc == OcfRc.SUCCESS
            assert lx.core.recurring() == []  # the stop cancelled the monitor

    asyncio.run(asyncio.wait_for(body(), 20))


def test_two_resources_run_in_parallel(ocf_root: Path) -> None:
    slow = agent(ocf_root, "slow", "sleep 1\nexit 0\n")

    async def body() -> float:
        async with LocalExecutor(paths=AgentPaths(ocf_root=ocf_root)) as lx:
            begin = time.monotonic()
            results = await asyncio.gather(
                lx.submit(call("a", slow, "start")), lx.submit(call("b", slow, "start"))
            )
            assert [r.rc for r in results] == [0, 0]
            return time.monotonic() - begin

    took = asyncio.run(asyncio.wait_for(body(), 20))
    assert 1.0 <= took < 1.9, f"two 1 s agents of two resources took {took:.2f}s"


def test_actions_of_one_resource_run_one_after_another(ocf_root: Path) -> None:
    slow = agent(ocf_root, "slow", "sleep 0.4\necho $1\n")

    async def body() -> float:
        async with LocalExecutor(paths=AgentPaths(ocf_root=ocf_root)) as lx:
            begin = time.monotonic()
            first, second = await asyncio.gather(
                lx.submit(call("a", slow, "start")), lx.submit(call("a", slow, "reload"))
            )
            assert (first.output, second.output) == ("start\n", "reload\n")
            return time.monotonic() - begin

    assert asyncio.run(asyncio.wait_for(body(), 20)) >= 0.8


def test_hung_agent_does_not_block_another_resource_and_close_kills_it(
    ocf_root: Path, tmp_path: Path, pids: list[int]
) -> None:
    pidfile = tmp_path / "hung.pid"
    hung = agent(ocf_root, "hung", f"trap '' TERM\necho $$ > {pidfile}\nsleep 600\n")
    quick = agent(ocf_root, "quick", "exit 0\n")

    async def body() -> None:
        lx = LocalExecutor(paths=AgentPaths(ocf_root=ocf_root))
        hanging = asyncio.ensure_future(lx.submit(call("h", hung, "start", timeout=600)))
        queued = asyncio.ensure_future(lx.submit(call("h", hung, "stop", timeout=600)))
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        pids.append(int(pidfile.read_text()))
        begin = time.monotonic()
        result = await lx.submit(call("q", quick, "start"))
        assert result.rc == 0
        assert time.monotonic() - begin < 2.0
        assert not hanging.done()
        begin = time.monotonic()
        await lx.close()
        assert time.monotonic() - begin < 3.0
        assert (await hanging).status == "cancelled"
        assert (await queued).status == "cancelled"  # never ran
        assert gone(pids[0])
        with pytest.raises(ExecutorClosed):
            await lx.submit(call("q", quick, "start"))

    asyncio.run(asyncio.wait_for(body(), 20))


def test_timeout_is_reported(ocf_root: Path, tmp_path: Path, pids: list[int]) -> None:
    pidfile = tmp_path / "pid"
    hung = agent(ocf_root, "hung", f"trap '' TERM\necho $$ > {pidfile}\nsleep 600\n")

    async def body() -> None:
        async with LocalExecutor(paths=AgentPaths(ocf_root=ocf_root), grace=0.2) as lx:
            result = await lx.submit(call("h", hung, "start", timeout=0.5))
            pids.append(int(pidfile.read_text()))
            assert (result.status, result.rc) == ("timeout", OcfRc.ERR_GENERIC)
            assert lx.core.lrm_rsc_ops("h")["h_last_failure_0"].status == "timeout"

    asyncio.run(asyncio.wait_for(body(), 20))
    assert gone(pids[0])


def test_unknown_and_non_executable_agents_give_results(ocf_root: Path) -> None:
    agent(ocf_root, "plain", "exit 0\n")
    (ocf_root / "resource.d" / "test" / "plain").chmod(0o644)

    async def body() -> None:
        async with LocalExecutor(paths=AgentPaths(ocf_root=ocf_root)) as lx:
            missing = await lx.submit(call("m", "ocf:test:nothing", "start"))
            assert (missing.status, missing.rc) == ("not-installed", OcfRc.ERR_GENERIC)
            assert "not found" in missing.exit_reason
            plain = await lx.submit(call("p", "ocf:test:plain", "start"))
            assert plain.status == "error"
            assert "not executable" in plain.exit_reason

    asyncio.run(asyncio.wait_for(body(), 20))


def test_close_cancels_recurring_monitors(ocf_root: Path) -> None:
    ok = agent(ocf_root, "ok", "exit 0\n")

    async def body() -> list[OpCompleted]:
        events: list[OpCompleted] = []
        lx = LocalExecutor(on_event=events.append, paths=AgentPaths(ocf_root=ocf_root))
        lx.start_recurring(call("r", ok, "monitor", 0.1))
        await asyncio.sleep(0.5)
        await lx.close()
        seen = len(events)
        await asyncio.sleep(0.3)
        assert len(events) == seen, "a monitor ran after close()"
        assert lx.core.recurring() == [] and lx.core.running() == {}
        return events

    events = asyncio.run(asyncio.wait_for(body(), 20))
    runs = [e for e in events if e.record.status == "done"]
    assert len(runs) >= 2
    assert events[-1].record.status == "cancelled"


def test_cancel_recurring_and_broken_callback(ocf_root: Path) -> None:
    ok = agent(ocf_root, "ok", "exit 0\n")
    events: list[OpCompleted] = []

    def listener(event: OpCompleted) -> None:
        events.append(event)
        raise RuntimeError("listener bug")

    async def body() -> None:
        async with LocalExecutor(on_event=listener, paths=AgentPaths(ocf_root=ocf_root)) as lx:
            lx.start_recurring(call("r", ok, "monitor", 0.1))
            await asyncio.sleep(0.35)
            lx.cancel_recurring("r", "monitor", 0.1)
            await asyncio.sleep(0.05)
            count = len(events)
            await asyncio.sleep(0.3)
            assert len(events) == count
            assert (await lx.submit(call("r", ok, "start"))).rc == 0

    asyncio.run(asyncio.wait_for(body(), 20))
    assert sum(e.record.status == "done" for e in events) >= 2


def test_submit_and_start_recurring_check_the_interval(ocf_root: Path) -> None:
    ok = agent(ocf_root, "ok", "exit 0\n")

    async def body() -> None:
        async with LocalExecutor(paths=AgentPaths(ocf_root=ocf_root)) as lx:
            with pytest.raises(ValueError, match="use start_recurring"):
                await lx.submit(call("r", ok, "monitor", 5.0))
            with pytest.raises(ValueError, match="needs an interval > 0"):
                lx.start_recurring(call("r", ok, "monitor"))

    asyncio.run(body())


def test_event_loop_ending_without_close_still_kills_agents(
    ocf_root: Path, tmp_path: Path, pids: list[int]
) -> None:
    pidfile = tmp_path / "pid"
    hung = agent(ocf_root, "hung", f"trap '' TERM\necho $$ > {pidfile}\nsleep 600\n")
    events: list[OpCompleted] = []

    async def body() -> None:
        lx = LocalExecutor(on_event=events.append, paths=AgentPaths(ocf_root=ocf_root))
        submits = [
            asyncio.ensure_future(lx.submit(call("h", hung, action, timeout=600)))
            for action in ("start", "stop")
        ]
        while not pidfile.exists() or not pidfile.read_text().strip():
            await asyncio.sleep(0.02)
        pids.append(int(pidfile.read_text()))
        assert not any(s.done() for s in submits)
        # returns without close(): asyncio.run cancels the executor's tasks

    asyncio.run(asyncio.wait_for(body(), 20))
    assert gone(pids[0])
    # the queued stop was dropped, not started while the loop went down
    assert [e.record.key.action for e in events] == ["stop", "start"]
    assert all(e.record.status == "cancelled" for e in events)


ADVISING = """<?xml version="1.0"?>
<resource-agent name="advising" version="1.0"><version>1.1</version>
<shortdesc lang="en">advises</shortdesc><longdesc lang="en">advises a short start</longdesc>
<parameters/><actions><action name="start" timeout="0.5s"/>
<action name="monitor" timeout="7s" interval="10s"/></actions></resource-agent>"""


def test_a_call_without_timeout_gets_the_agents_advised_timeout(ocf_root: Path) -> None:
    body = f'[ "$1" = meta-data ] && {{ cat <<EOF\n{ADVISING}\nEOF\nexit 0; }}\n'
    name = agent(
        ocf_root, "advising", body + 'echo "timeout=$OCF_RESKEY_CRM_meta_timeout"\nsleep 5\n'
    )

    async def body_() -> tuple[OpResult, OpResult]:
        async with LocalExecutor(paths=AgentPaths(ocf_root=ocf_root)) as lx:
            start = await lx.submit(call("a", name, "start", timeout=None))
            given = await lx.submit(call("b", name, "start", timeout=0.3))
            return start, given

    start, given = asyncio.run(asyncio.wait_for(body_(), 20))
    assert start.status == "timeout" and "timeout=500" in start.output
    assert 0.5 <= start.duration < 4, "killed at the advised 0.5 s, not the 5 s sleep"
    assert given.status == "timeout" and "timeout=300" in given.output, "explicit wins"


def test_an_agent_without_readable_meta_data_gets_the_default_timeout(ocf_root: Path) -> None:
    name = agent(
        ocf_root, "mute", '[ "$1" = meta-data ] && exit 1\necho "t=$OCF_RESKEY_CRM_meta_timeout"\n'
    )

    async def body_() -> OpResult:
        async with LocalExecutor(paths=AgentPaths(ocf_root=ocf_root)) as lx:
            return await lx.submit(call("a", name, "start", timeout=None))

    result = asyncio.run(asyncio.wait_for(body_(), 20))
    assert result.status == "done" and "t=20000" in result.output
