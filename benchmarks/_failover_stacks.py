"""The three stacks of benchmarks/failover.py, each a 2-node cluster (n1 active, n2 standby)
with a floating IP on link 0 plus a `client` host, in a namespace lab; and the client's prober.

Every node host runs a tiny TCP listener on 0.0.0.0 from the start (restarted when its host
is powered back on), so only the address moves, as with keepalived. The prober, in the client
host, starts a fresh non-blocking TCP connect to the floating IP every millisecond (each with
its own short timeout) and prints a line each time the answer changes: `up START END` for the
first success after failures, `down START END` for the first failure after successes, on
CLOCK_MONOTONIC, which every namespace shares with the benchmark.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from _common import Cluster, Lab, LogTail, Timers

from hastack.lab.cluster import converged
from hastack.lab.heartbeat import ACTIVE_LINE, HeartbeatCluster
from hastack.lab.logwatch import wait_for_all
from hastack.lab.process import ManagedProcess
from hastack.lab.services import (
    external_fence_primitive,
    hosts_holding,
    ip_primitive,
    lab_address,
    lab_fence_script,
)
from hastack.lab.watchdog import StandInWatchdog

Fault = Literal["crash", "cut"]
PORT = 7070
VIP_INDEX = 200  # the floating IP: .200 on link 0's subnet

LISTENER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(__import__("sys").argv[1])))
s.listen(4096)
while True:
    c, _ = s.accept()
    c.close()
"""

PROBER = """
import errno, select, socket, struct, sys, time
vip, port = sys.argv[1], int(sys.argv[2])
period, timeout = float(sys.argv[3]), float(sys.argv[4])
linger = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT piles up at 1000 connects/s
pending = {}  # fd -> (socket, start)
state = None
next_start = time.monotonic()
poller = select.poll()

def report(ok, start, end):
    global state
    if ok != state:
        state = ok
        sys.stdout.write(f"{'up' if ok else 'down'} {start:.6f} {end:.6f}\\n")
        sys.stdout.flush()

def finish(fd, ok, now):
    s, start = pending.pop(fd)
    poller.unregister(fd)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    s.close()
    report(ok, start, now)

while True:
    now = time.monotonic()
    if now >= next_start:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((vip, port))
        if err in (0, errno.EINPROGRESS):
            pending[s.fileno()] = (s, now)
            poller.register(s.fileno(), select.POLLOUT)
        else:
            s.close()
            report(False, now, now)
        next_start = now + period
    wait = max(0.0, next_start - time.monotonic())
    for fd, _ev in poller.poll(wait * 1000):
        s, _start = pending[fd]
        ok = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        finish(fd, ok, time.monotonic())
    now = time.monotonic()
    for fd in [fd for fd, (_s, st) in pending.items() if now - st > timeout]:
        finish(fd, False, now)
"""


@dataclass
class ProbeEvent:
    up: bool
    start: float
    end: float


def parse_probe_line(line: str) -> ProbeEvent | None:
    """One prober line (`up|down START END`), or None for anything else (never raises)."""
    words = line.split()
    if len(words) != 3 or words[0] not in ("up", "down"):
        return None
    try:
        start, end = float(words[1]), float(words[2])
    except ValueError:
        return None
    return ProbeEvent(words[0] == "up", start, end)


def failover_time(events: list[ProbeEvent], t_fault: float) -> float | None:
    """Seconds from the fault to the end of the first successful connect that follows a failed
    one finishing after the fault (the service was lost, then came back); None: not yet."""
    lost = False
    for ev in events:
        if not ev.up and ev.end >= t_fault:
            lost = True
        elif ev.up and lost:
            return ev.end - t_fault
    return None


# hastack's log lines that mark the steps of a failover, as the survivor logs them
TIMELINE_EVENTS = {
    "node_dead": re.compile(r" node-dead "),
    "dc_lost": re.compile(r" dc-lost "),
    "dc_elected": re.compile(r" dc-elected \S+ is DC "),
    "transition": re.compile(r" crm-transition transition \d+: .*vip_start_0 "),
    "input_saved": re.compile(r" crm-input-saved "),
    "vip_started": re.compile(r" resource-started .*resource=vip task=start rc=0"),
}


def log_time(line: str) -> float | None:
    """The wall-clock time (time.time() scale) of a hastack log line, or None."""
    stamp = line.split(" ", 1)[0]
    try:
        return datetime.fromisoformat(stamp).timestamp()  # naive: local time, as logged
    except ValueError:
        return None


def hastack_timeline(log: str, fault_wall: float, node: str) -> dict[str, float]:
    """Milliseconds from the fault to the first of each failover step in `node`'s log (only
    lines `node` wrote, from the fault up to the floating IP's start)."""
    out: dict[str, float] = {}
    for line in log.splitlines():
        t = log_time(line)
        if t is None or t < fault_wall - 0.001 or f" {node} " not in line[:40]:
            continue
        for key, pattern in TIMELINE_EVENTS.items():
            if key not in out and pattern.search(line):
                out[key] = round((t - fault_wall) * 1000, 1)
        if "vip_started" in out:
            break  # the failover is over; later lines belong to the recovery
    return out


class Prober:
    """The prober process in the client host, and a thread collecting its events."""

    def __init__(self, lab: Lab, vip: str, period: float = 0.001, timeout: float = 0.01) -> None:
        argv = lab["client"].ns_argv(
            [sys.executable, "-c", PROBER, vip, str(PORT), str(period), str(timeout)]
        )
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.events: list[ProbeEvent] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def drain(self) -> list[ProbeEvent]:
        while True:
            try:
                ev = parse_probe_line(self._lines.get_nowait())
            except queue.Empty:
                return self.events
            if ev is not None:
                self.events.append(ev)

    def is_up(self) -> bool:
        ev = self.drain()
        return bool(ev) and ev[-1].up

    def up_since(self) -> float | None:
        """When the current run of successes began (None: the service is down now)."""
        ev = self.drain()
        return ev[-1].end if ev and ev[-1].up else None

    def wait_failover(self, t_fault: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = [e for e in self.drain() if e.end >= t_fault - 1.0]
            took = failover_time(events, t_fault)
            if took is not None:
                return took
            if self.proc.poll() is not None:
                raise RuntimeError("the prober exited")
            time.sleep(0.005)
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class Stack:
    """One 2-node cluster with a floating IP: start, fault, recover, readiness."""

    name = "?"
    nodes = ("n1", "n2")
    preferred: str | None = "n1"  # where the IP returns after recovery (None: stays put)

    def __init__(self, timers: Timers, keep: bool = False) -> None:
        self.timers = timers
        self.keep = keep
        self.lab: Lab | None = None
        self.vip = ""
        self.listeners: dict[str, ManagedProcess] = {}

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _vip_of(self, lab: Lab) -> str:
        return lab_address(lab, VIP_INDEX)

    def start_listener(self, node: str) -> None:
        assert self.lab is not None
        self.listeners[node] = self.lab[node].start([sys.executable, "-c", LISTENER, str(PORT)])

    def holders(self) -> list[str]:
        assert self.lab is not None
        return hosts_holding(self.lab, self.nodes, self.vip)

    def crash(self, node: str) -> float:
        assert self.lab is not None
        t = time.monotonic()
        self.lab[node].power_off()
        return t

    def cut(self, node: str) -> float:
        assert self.lab is not None
        t = time.monotonic()
        self.lab.cut(node)
        return t

    def fault(self, kind: Fault, node: str) -> float:
        return self.crash(node) if kind == "crash" else self.cut(node)

    def recover(self, kind: Fault, node: str) -> None:
        assert self.lab is not None
        if kind == "cut":
            self.lab.heal(node)
            return
        self.lab[node].power_on()
        self.start_listener(node)
        self.power_on_node(node)

    def power_on_node(self, node: str) -> None:
        raise NotImplementedError

    def settled(self) -> bool:
        """The stack's own view is back to normal (both nodes up, in agreement)."""
        return True

    def log_paths(self) -> dict[str, str]:
        return {}

    def timeline(self, survivor: str, fault_wall: float) -> dict[str, float] | None:
        """Where the time went, from the survivor's log (hastack only)."""
        return None

    def dc(self) -> str | None:
        """The DC now (hastack only): whether the survivor must take over the DC role."""
        return None


def _hastack_cib(
    vip: str,
    stickiness: int,
    monitor: str,
    stonith: str = "",
    fence_delay: str | None = None,
    watchdog_timeout: float = 0.0,
) -> bytes:
    """Only the floating IP, preferring n1 (score 100); stonith off unless `stonith` gives
    fence device primitives (then priority-fencing-delay is `fence_delay`, when given, and
    stonith-watchdog-timeout `watchdog_timeout` when not 0)."""
    enabled = "true" if stonith else "false"
    delay = (
        f'<nvpair id="opt-pfd" name="priority-fencing-delay" value="{fence_delay}"/>'
        if fence_delay is not None
        else ""
    )
    if watchdog_timeout:
        delay += (
            f'<nvpair id="opt-swt" name="stonith-watchdog-timeout" value="{watchdog_timeout:g}s"/>'
        )
    return f"""<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.7">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="opt-stonith" name="stonith-enabled" value="{enabled}"/>{delay}
      </cluster_property_set>
    </crm_config>
    <nodes/>
    <resources>
      {ip_primitive(vip, monitor)}{stonith}
    </resources>
    <constraints>
      <rsc_location id="vip-prefers-n1" rsc="vip" node="n1" score="100"/>
    </constraints>
    <rsc_defaults>
      <meta_attributes id="rd">
        <nvpair id="rd-stick" name="resource-stickiness" value="{stickiness}"/>
      </meta_attributes>
    </rsc_defaults>
  </configuration>
  <status/>
</cib>
""".encode()


class HastackStack(Stack):
    name = "hastack"

    def __init__(
        self, timers: Timers, keep: bool = False, extra_hacf: tuple[str, ...] = ()
    ) -> None:
        super().__init__(timers, keep)
        self.extra_hacf = ("two_node yes", *extra_hacf)
        self.cluster: Cluster | None = None

    def stonith(self, cluster: Cluster) -> str:
        """The fence device primitives (none: fencing off)."""
        return ""

    def fence_delay(self) -> str | None:
        return None

    def watchdog_timeout(self) -> float:
        """stonith-watchdog-timeout (0: not set)."""
        return 0.0

    def node_hacf(self, node: str) -> list[str]:
        """Lines of one node's ha.cf only."""
        return []

    def before_nodes_start(self) -> None:
        """The lab is built, no node runs yet."""

    def start(self) -> None:
        def cib(c: Cluster) -> bytes:
            assert c.lab is not None
            vip = self._vip_of(c.lab)
            return _hastack_cib(
                vip, 0, "1s", self.stonith(c), self.fence_delay(), self.watchdog_timeout()
            )

        self.cluster = Cluster(
            list(self.nodes),
            mode="netns",
            timers=self.timers,
            links=2,
            extra_hosts=["client"],
            extra_hacf=self.extra_hacf,
            node_hacf=self.node_hacf,
            keep=self.keep,
            cib=cib,
            start_nodes=False,
        )
        self.cluster.build()
        self.lab = self.cluster.lab
        assert self.lab is not None
        self.vip = self._vip_of(self.lab)
        self.before_nodes_start()
        for n in self.nodes:
            self.start_listener(n)
            self.cluster.start(n)

    def close(self) -> None:
        if self.cluster is not None:
            if self.keep:
                print(f"   kept hastack logs in {self.cluster.workdir}")
            self.cluster.close()

    def crash(self, node: str) -> float:
        assert self.cluster is not None
        return self.cluster.crash(node)

    def power_on_node(self, node: str) -> None:
        assert self.cluster is not None
        self.cluster.start(node)

    def settled(self) -> bool:
        assert self.cluster is not None
        return converged(self.cluster.statuses(list(self.nodes)), list(self.nodes))

    def log_paths(self) -> dict[str, str]:
        assert self.cluster is not None
        return {n: str(self.cluster[n].log_path) for n in self.nodes}

    def dc(self) -> str | None:
        assert self.cluster is not None
        states = self.cluster.statuses(list(self.nodes))
        return next((s["dc"] for s in states.values() if s and s.get("dc")), None)

    def timeline(self, survivor: str, fault_wall: float) -> dict[str, float] | None:
        assert self.cluster is not None
        return hastack_timeline(self.cluster[survivor].log(), fault_wall, survivor)


# priority-fencing-delay of the fenced stacks: longer than a fence action of the device takes
# (fence_dummy: a Python start, ~0.2 s; the lab script: ~20 ms), so that in a fence race the
# node holding the address shoots first; the survivor of a crash waits it out.
BENCH_FENCE_DELAY = "1s"


class HastackFenceDummyStack(HastackStack):
    """hastack with fencing through Debian's fence_dummy (it records the power-off in its
    status file and powers nothing off): only for crashes, where the victim is really down."""

    name = "hastack-fence_dummy"

    def stonith(self, cluster: Cluster) -> str:
        assert cluster.workdir is not None
        status = Path(cluster.workdir) / "fence_dummy.status"
        return f"""
      <primitive id="fence-dummy" class="stonith" type="fence_dummy">
        <instance_attributes id="fence-dummy-ia">
          <nvpair id="fd-file" name="status_file" value="{status}"/>
          <nvpair id="fd-hosts" name="pcmk_host_list" value="{" ".join(self.nodes)}"/>
          <nvpair id="fd-reboot" name="pcmk_reboot_action" value="off"/>
        </instance_attributes>
      </primitive>"""

    def fence_delay(self) -> str | None:
        return BENCH_FENCE_DELAY


class HastackFencePowerStack(HastackStack):
    """hastack with fencing through an external device that powers the lab host off (as a
    power switch would); a fenced node stays off until recover."""

    name = "hastack-fence_power"

    def stonith(self, cluster: Cluster) -> str:
        assert cluster.lab is not None and cluster.workdir is not None
        work = Path(cluster.workdir)
        script = lab_fence_script(cluster.lab, self.nodes, work / "fence.sh", work / "fence.log")
        return external_fence_primitive(script, self.nodes)

    def fence_delay(self) -> str | None:
        return BENCH_FENCE_DELAY

    def recover(self, kind: Fault, node: str) -> None:
        assert self.lab is not None and self.cluster is not None
        if kind == "cut":
            self.lab.heal(node)
            if self.cluster[node].running:
                return
            fenced = self.cluster[node].process  # its daemon died with its host
            if fenced is not None:
                fenced.reap()
        self.lab[node].power_on()
        self.start_listener(node)
        self.power_on_node(node)


def keepalived_conf(node: str, priority: int, advert_int: float, vip: str) -> str:
    """VRRPv3 on eth0, the floating IP as the virtual address; both start as BACKUP and the
    higher priority (n1) preempts, so the address returns to n1 as it does with hastack."""
    return f"""global_defs {{
    router_id {node}
    vrrp_version 3
    script_user root
    enable_script_security
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {advert_int:g}
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


class KeepalivedStack(Stack):
    """keepalived (VRRPv3) in the foreground in each node host, advert_int = keepalive."""

    name = "keepalived"

    def __init__(self, timers: Timers, keep: bool = False) -> None:
        super().__init__(timers, keep)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"hastack-ka-{os.getpid()}-"))
        self.procs: dict[str, ManagedProcess] = {}

    def start(self) -> None:
        binary = shutil.which("keepalived")
        if binary is None:
            raise RuntimeError("keepalived is not installed (Debian package `keepalived`)")
        self.binary = binary
        self.lab = Lab([*self.nodes, "client"], links=2)
        self.lab.build()
        self.vip = self._vip_of(self.lab)
        for i, n in enumerate(self.nodes):
            conf = self.workdir / f"{n}.conf"
            conf.write_text(keepalived_conf(n, 150 - 50 * i, self.timers.keepalive, self.vip))
            self.start_listener(n)
            self.power_on_node(n)

    def power_on_node(self, node: str) -> None:
        assert self.lab is not None
        d = self.workdir
        argv = [
            self.binary, "-n", "-l", "-D", "-G", "-P",
            "-f", str(d / f"{node}.conf"),
            "-p", str(d / f"{node}.pid"),
            "-r", str(d / f"{node}.vrrp.pid"),
            "-c", str(d / f"{node}.checkers.pid"),
            "-i", node,
        ]  # fmt: skip
        for suffix in ("pid", "vrrp.pid", "checkers.pid"):  # left by a power-off
            (d / f"{node}.{suffix}").unlink(missing_ok=True)
        self.procs[node] = self.lab[node].start(argv, log_path=str(d / f"{node}.log"))

    def close(self) -> None:
        if self.lab is not None:
            self.lab.close()  # SIGKILLs every process in the hosts, then deletes them
        if self.keep:
            print(f"   kept keepalived logs in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log_paths(self) -> dict[str, str]:
        return {n: str(self.workdir / f"{n}.log") for n in self.nodes}


class HeartbeatStack(Stack):
    """heartbeat 3, R1: `n1 IPaddr2::VIP/24/eth0`, auto_failback off (so the address stays
    where it went; the next fault hits whichever node holds it)."""

    name = "heartbeat"
    preferred = None

    def __init__(self, timers: Timers, keep: bool = False) -> None:
        super().__init__(timers, keep)
        self.hb: HeartbeatCluster | None = None
        self._rejoin: tuple[str, dict[str, LogTail]] | None = None

    def start(self) -> None:
        def haresources(hb: HeartbeatCluster) -> str:
            assert hb.lab is not None
            return f"n1 IPaddr2::{self._vip_of(hb.lab)}/24/eth0\n"

        self.hb = HeartbeatCluster(
            list(self.nodes),
            timers=self.timers,
            links=2,
            keep=self.keep,
            haresources=haresources,
            extra_hosts=["client"],
        )
        self.hb.build()
        self.lab = self.hb.lab
        assert self.lab is not None
        self.vip = self._vip_of(self.lab)
        for n in self.nodes:
            self.start_listener(n)
            self.hb.start(n)
        for n in self.nodes:
            others = [o for o in self.nodes if o != n]
            self.hb.wait_sees_active(others, n, timeout=120)

    def power_on_node(self, node: str) -> None:
        assert self.hb is not None
        others = [o for o in self.nodes if o != node]
        self._rejoin = (node, self.hb.tails(others))
        # a power cycle empties /run: without this heartbeat may find its old PID (not yet
        # reaped after the SIGKILL) and refuse to start, "already running"
        (self.hb.node_dir(node) / "run" / "heartbeat.pid").unlink(missing_ok=True)
        self.hb.start(node)

    def recover(self, kind: Fault, node: str) -> None:
        assert self.hb is not None
        assert self.lab is not None
        if kind == "cut":
            # heartbeat 3 (R1) does not always settle a healed split brain by itself (both
            # nodes kept the address for minutes in one run): the cut node is power-cycled
            # after the heal, as an operator would, so every run starts from the same state
            self.lab.heal(node)
            self.lab[node].power_off()
            kind = "crash"
        super().recover(kind, node)

    def settled(self) -> bool:
        if self._rejoin is None:
            return True
        node, tails = self._rejoin
        try:
            wait_for_all(tails, ACTIVE_LINE.format(node=node), 0.0)
        except TimeoutError:
            return False
        self._rejoin = None
        return True

    def close(self) -> None:
        if self.hb is not None:
            if self.keep:
                print(f"   kept heartbeat logs in {self.hb.workdir}")
            self.hb.close()

    def log_paths(self) -> dict[str, str]:
        assert self.hb is not None
        return {n: str(self.hb.log_path(n)) for n in self.nodes}


class HastackWatchdogStack(HastackFencePowerStack):
    """hastack with watchdog self-fencing: three nodes (two_node cannot use it: a cut-off
    node keeps quorum), each feeding a stand-in watchdog that powers its lab host off when
    it is not fed in time (:class:`hastack.lab.watchdog.StandInWatchdog`; this machine has
    no softdog), the ``hastack/watchdog`` device and stonith-watchdog-timeout: the survivors
    take over once it has passed since they lost the node."""

    name = "hastack-watchdog"
    nodes = ("n1", "n2", "n3")

    def __init__(self, timers: Timers, keep: bool = False) -> None:
        super().__init__(timers, keep)
        self.extra_hacf = ()  # three nodes: a majority, no two_node
        self.dogs: dict[str, StandInWatchdog] = {}
        # the device's timeout: short with fast timers, sbd's 5 s with heartbeat's defaults;
        # stonith-watchdog-timeout is twice that, as sbd advises
        self.device_timeout = 1 if timers.keepalive <= 0.1 else 5

    def stonith(self, cluster: Cluster) -> str:
        return """
      <primitive id="wd" class="stonith" type="hastack/watchdog">
        <instance_attributes id="wd-ia">
          <nvpair id="wd-check" name="pcmk_host_check" value="none"/>
        </instance_attributes>
      </primitive>"""

    def fence_delay(self) -> str | None:
        return None  # three nodes: the majority fences at once

    def watchdog_timeout(self) -> float:
        return 2.0 * self.device_timeout

    def _dog_path(self, node: str) -> Path:
        assert self.cluster is not None and self.cluster.workdir is not None
        return Path(self.cluster.workdir) / f"watchdog-{node}"

    def node_hacf(self, node: str) -> list[str]:
        return [f"watchdog {self._dog_path(node)}"]

    def before_nodes_start(self) -> None:
        assert self.lab is not None
        for node in self.nodes:
            dog = StandInWatchdog(
                self._dog_path(node), self.device_timeout, self.lab[node].power_off
            )
            dog.start()
            self.dogs[node] = dog

    def crash(self, node: str) -> float:
        t = super().crash(node)
        self.dogs[node].power_cycle()  # a machine without power has no running watchdog
        return t

    def recover(self, kind: Fault, node: str) -> None:
        self.dogs[node].power_cycle()  # a reset machine comes back with its watchdog off
        super().recover(kind, node)

    def close(self) -> None:
        for dog in self.dogs.values():
            dog.close()
        super().close()


STACKS: dict[str, Callable[..., Stack]] = {
    "hastack": HastackStack,
    "hastack-fence_dummy": HastackFenceDummyStack,
    "hastack-fence_power": HastackFencePowerStack,
    "hastack-watchdog": HastackWatchdogStack,
    "keepalived": KeepalivedStack,
    "heartbeat": HeartbeatStack,
}


def wait_ready(stack: Stack, prober: Prober, stable: float, timeout: float) -> str:
    """Wait until exactly one node holds the IP (the preferred one, if the stack has one), the
    stack is settled, and the client has connected without a failure for `stable` seconds;
    returns the holder (the next fault's victim)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        where = stack.holders()
        last = where
        if len(where) == 1 and (stack.preferred in (None, where[0])) and stack.settled():
            since = prober.up_since()
            # still the same holder after the stable window: no move in flight
            if (
                since is not None
                and time.monotonic() - since >= stable
                and stack.holders() == where
            ):
                return where[0]
        time.sleep(0.05)
    raise TimeoutError(
        f"{stack.name}: not ready within {timeout:g} s (holders {last}, client up {prober.is_up()})"
    )
