"""Debian's real agents run by hastack's LocalExecutor inside a network namespace, as root.

The executor runs in a small driver process started with `ip netns exec` in a namespace this
test creates (joined by a veth pair to a second namespace, so the interface has a peer). The
test talks to the driver over its stdin/stdout, one JSON object a line, and looks at the
interface from outside with `ip -n NS`:

- `ocf:heartbeat:IPaddr2` (resource-agents): probe, start, a recurring monitor that notices an
  address removed behind the agent's back, stop, stop again.
- heartbeat's R1 script `/etc/ha.d/resource.d/IPaddr2` as `heartbeat:IPaddr2`: start, status,
  stop, status.

Everything created here (namespaces hslab<pid>xreal..., the driver and whatever the agents
left running in the namespace, e.g. IPaddr2's background send_arp) is removed at the end,
also when a test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hastack.agents.names import AgentError, locate, parse_agent
from hastack.lab.netns import NETNS_PREFIX

pytestmark = pytest.mark.lab

SRC = Path(__file__).resolve().parents[2] / "src"
VETH = "hsreal0"  # the interface's name in both namespaces (each has its own)
AGENT_ADDR, PEER_ADDR = "10.78.0.1/24", "10.78.0.2/24"
OCF_VIP = "10.78.0.50"
R1_VIP = "10.78.0.60"
MONITOR_INTERVAL = 0.3

_ns_counter = itertools.count(1)

# The driver: a LocalExecutor in the namespace, told what to do one JSON line at a time.
# Commands: submit (a one-shot action; replies with its OpResult), recur (starts a recurring
# op), events (every OpCompleted so far), close (closes the executor, replies, exits).
DRIVER = r"""
import asyncio
import json
import sys

from hastack.agents.invocation import ResourceAgentCall
from hastack.agents.local import LocalExecutor
from hastack.agents.names import parse_agent


def call_of(d):
    return ResourceAgentCall(
        resource=d["resource"],
        agent=parse_agent(d["agent"]),
        action=d["action"],
        params=d.get("params", {}),
        interval=d.get("interval", 0.0),
        timeout=d.get("timeout", 20.0),
        r1_args=tuple(d.get("r1_args", ())),
    )


def reply(obj):
    print(json.dumps(obj), flush=True)


async def main():
    events = []

    def on_event(ev):
        rec = ev.record
        events.append({
            "resource": rec.key.resource, "action": rec.key.action,
            "interval": rec.key.interval, "call_id": rec.call_id, "rc": int(rec.rc),
            "status": rec.status, "failed": ev.failed, "exit_reason": rec.exit_reason,
            "last_run": rec.last_run, "exec_time": rec.exec_time,
        })

    executor = LocalExecutor("lab", on_event)
    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                return
            req = json.loads(line)
            cmd = req["cmd"]
            if cmd == "submit":
                r = await executor.submit(call_of(req["call"]))
                reply({"rc": int(r.rc), "status": r.status, "exit_reason": r.exit_reason,
                       "output": r.output})
            elif cmd == "recur":
                reply({"key": str(executor.start_recurring(call_of(req["call"])))})
            elif cmd == "events":
                reply({"events": events})
            elif cmd == "close":
                await executor.close()
                reply({"closed": True, "events": events})
                return
            else:
                reply({"error": "unknown command " + repr(cmd)})
    finally:
        await executor.close()


asyncio.run(main())
"""


def need_agent(text: str) -> None:
    """Skip, saying why, when Debian's agent is not installed here."""
    try:
        locate(parse_agent(text))
    except AgentError as exc:
        reason = f"{text} is not available ({exc}); install resource-agents and heartbeat"
        print(f"skipping: {reason}")
        pytest.skip(reason)


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def _delete_netns(name: str) -> None:
    # Kill everything still inside (the driver, agents' background helpers) until it is
    # empty, then delete the namespace itself.
    for _ in range(40):
        out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        pids = [int(word) for word in out.stdout.split() if word.isdigit()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@dataclass(frozen=True)
class Pair:
    """Two namespaces joined by a veth: the one the agents run in, and its peer."""

    agent: str
    peer: str

    def addresses(self) -> list[dict[str, Any]]:
        """The IPv4 addresses on the agent side's veth, as `ip -n NS -j addr` lists them."""
        out = _ip("-n", self.agent, "-j", "-4", "addr", "show", "dev", VETH)
        return list(json.loads(out)[0]["addr_info"])

    def has(self, ip: str) -> list[dict[str, Any]]:
        return [a for a in self.addresses() if a["local"] == ip]


@pytest.fixture
def pair() -> Iterator[Pair]:
    n = next(_ns_counter)
    pid = os.getpid()
    made = Pair(f"{NETNS_PREFIX}{pid}xreala{n}", f"{NETNS_PREFIX}{pid}xrealp{n}")
    try:
        for ns in (made.agent, made.peer):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", made.agent, "link", "add", VETH, "type", "veth",
            "peer", "name", VETH, "netns", made.peer)  # fmt: skip
        for ns, addr in ((made.agent, AGENT_ADDR), (made.peer, PEER_ADDR)):
            _ip("-n", ns, "addr", "add", addr, "dev", VETH)
            _ip("-n", ns, "link", "set", VETH, "up")
        yield made
    finally:
        _delete_netns(made.agent)
        _delete_netns(made.peer)


class Driver:
    """The driver process in a namespace, and the JSON conversation with it."""

    def __init__(self, netns: str, tmp_path: Path) -> None:
        script = tmp_path / "driver.py"
        script.write_text(DRIVER)
        self.stderr_path = tmp_path / "driver.stderr"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
        with self.stderr_path.open("w") as stderr:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", netns, sys.executable, str(script)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                text=True, env=env, cwd="/",
            )  # fmt: skip
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")  # end of output

    def _stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:]

    def ask(self, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"driver gave no answer to {request} in {timeout}s") from None
        assert line, f"driver exited ({self.proc.poll()}); stderr:\n{self._stderr()}"
        answer: dict[str, Any] = json.loads(line)
        assert "error" not in answer, answer
        return answer

    def submit(self, **call: Any) -> dict[str, Any]:
        return self.ask({"cmd": "submit", "call": call})

    def recur(self, **call: Any) -> str:
        return str(self.ask({"cmd": "recur", "call": call})["key"])

    def events(self) -> list[dict[str, Any]]:
        return list(self.ask({"cmd": "events"})["events"])

    def wait_event(
        self, matches: Callable[[dict[str, Any]], bool], after: int, seconds: float
    ) -> tuple[int, dict[str, Any]]:
        """The first event from index `after` on that matches, and its index."""
        deadline = time.monotonic() + seconds
        while True:
            events = self.events()
            for index in range(after, len(events)):
                if matches(events[index]):
                    return index, events[index]
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching event in {seconds}s; events: {events[after:]}")
            time.sleep(0.1)

    def close(self) -> dict[str, Any]:
        answer = self.ask({"cmd": "close"})
        assert self.proc.wait(timeout=30) == 0, self._stderr()
        return answer

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def driver(pair: Pair, tmp_path: Path) -> Iterator[Driver]:
    made = Driver(pair.agent, tmp_path)
    try:
        yield made
    finally:
        made.kill()  # the namespace's deletion (pair) kills what the agents left behind


@pytest.fixture
def ocf_ipaddr2() -> None:
    need_agent("ocf:heartbeat:IPaddr2")


@pytest.fixture
def r1_ipaddr2() -> None:
    need_agent("heartbeat:IPaddr2")
    need_agent("ocf:heartbeat:IPaddr2")  # the R1 script runs the OCF agent


# The agent fixtures come first: a missing agent skips before any namespace is made.


def test_ocf_ipaddr2_probe_start_monitor_failure_and_stop(
    ocf_ipaddr2: None, pair: Pair, driver: Driver
) -> None:
    base = {
        "resource": "vip",
        "agent": "ocf:heartbeat:IPaddr2",
        "params": {"ip": OCF_VIP, "cidr_netmask": "24", "nic": VETH},
    }

    probe = driver.submit(**base, action="monitor", interval=0.0)
    assert (probe["rc"], probe["status"]) == (7, "done"), probe
    assert pair.has(OCF_VIP) == []

    started = driver.submit(**base, action="start")
    assert (started["rc"], started["status"]) == (0, "done"), started
    vip = pair.has(OCF_VIP)
    assert len(vip) == 1 and vip[0]["prefixlen"] == 24, pair.addresses()

    # The recurring monitor reports success, run after run, each `interval` after the
    # previous one ended.
    driver.recur(**base, action="monitor", interval=MONITOR_INTERVAL)

    def monitor_ok(e: dict[str, Any]) -> bool:
        return (e["action"], e["interval"], e["rc"], e["failed"]) == (
            "monitor", MONITOR_INTERVAL, 0, False,
        )  # fmt: skip

    first_at, first = driver.wait_event(monitor_ok, 0, 10.0)
    second_at, second = driver.wait_event(monitor_ok, first_at + 1, 10.0)
    gap = second["last_run"] - (first["last_run"] + first["exec_time"])
    assert gap >= MONITOR_INTERVAL - 0.01, (first, second)

    # Removed behind the agent's back: the next monitor fails with "not running".
    _ip("-n", pair.agent, "addr", "del", f"{OCF_VIP}/24", "dev", VETH)
    _, failure = driver.wait_event(
        lambda e: e["action"] == "monitor" and e["interval"] == MONITOR_INTERVAL and e["failed"],
        second_at + 1,
        10.0,
    )
    assert (failure["rc"], failure["status"]) == (7, "done"), failure

    # Put it back so stop has something to remove, then stop (which also cancels the monitor).
    _ip("-n", pair.agent, "addr", "add", f"{OCF_VIP}/24", "dev", VETH)
    stopped = driver.submit(**base, action="stop")
    assert (stopped["rc"], stopped["status"]) == (0, "done"), stopped
    assert pair.has(OCF_VIP) == []
    again = driver.submit(**base, action="stop")
    assert (again["rc"], again["status"]) == (0, "done"), again

    events = driver.close()["events"]
    probes = [e for e in events if e["action"] == "monitor" and e["interval"] == 0]
    assert [(e["rc"], e["failed"]) for e in probes] == [(7, False)]  # a probe's answer
    stops = [e for e in events if e["action"] == "stop"]
    assert [(e["rc"], e["failed"]) for e in stops] == [(0, False), (0, False)]


def test_heartbeat_r1_ipaddr2_start_status_stop(
    r1_ipaddr2: None, pair: Pair, driver: Driver
) -> None:
    base = {
        "resource": "vip-r1",
        "agent": "heartbeat:IPaddr2",
        "r1_args": [f"{R1_VIP}/24/{VETH}"],
    }

    started = driver.submit(**base, action="start")
    assert (started["rc"], started["status"]) == (0, "done"), started
    vip = pair.has(R1_VIP)
    assert len(vip) == 1 and vip[0]["prefixlen"] == 24, pair.addresses()

    running = driver.submit(**base, action="status")
    assert (running["rc"], running["status"]) == (0, "done"), running
    assert "Running OK" in running["output"], running

    stopped = driver.submit(**base, action="stop")
    assert (stopped["rc"], stopped["status"]) == (0, "done"), stopped
    assert pair.has(R1_VIP) == []

    status = driver.submit(**base, action="status")
    assert (status["rc"], status["status"]) == (7, "done"), status
    assert "stopped" in status["output"], status
    driver.close()
