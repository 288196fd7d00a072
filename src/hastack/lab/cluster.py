"""Real `hastack node` daemons on one machine: in namespace hosts (root) or on loopback addresses.

`Cluster` writes one configuration directory per node (ha.cf + authkeys), starts
`hastack node start -c DIR --node NAME` for each node, reads each node's status straight from
its control socket (fast enough to poll every 10 ms), and controls nodes by PID (SIGKILL,
SIGSTOP/SIGCONT, SIGTERM). Everything it started is removed on exit, exceptions included.

Namespace mode: a `Lab` with one host per node and `links` links; each node has one
`ucast ethJ ADDR` line per peer and link (or, with `media`, one `bcast`/`mcast` line per
link). Loopback mode (no root needed): node i listens on 127.0.0.(10+i) (`bind lo ADDR`,
hastack's local receive address) on a free high `udpport`, one link.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import hastack
from hastack.lab.netns import Host, Lab, lab_unavailable_reason
from hastack.lab.process import ManagedProcess

Mode = Literal["netns", "loopback", "auto"]
Media = Literal["ucast", "bcast", "mcast"]
Status = dict[str, Any]

LOOPBACK_BASE = 10  # node i gets 127.0.0.(LOOPBACK_BASE + i)


def media_lines(media: Media, links: int, peers: Sequence[Sequence[str]], port: int) -> list[str]:
    """ha.cf media lines for a lab host with `links` interfaces eth0.., given each peer's
    addresses (one per link): a ucast line per peer, or one bcast/mcast line per link."""
    lines: list[str] = []
    for j in range(links):
        if media == "ucast":
            lines += [f"ucast eth{j} {addresses[j]}" for addresses in peers]
        elif media == "bcast":
            lines.append(f"bcast eth{j}")
        else:
            lines.append(f"mcast eth{j} 239.255.{j}.1 {port} 1 0")
    return lines


def hastack_argv(*args: str) -> list[str]:
    """The `hastack` command line, run with this interpreter (works without installing)."""
    return [
        sys.executable,
        "-c",
        "import sys; from hastack.cli.main import main; sys.exit(main())",
        *args,
    ]


def hastack_env() -> dict[str, str]:
    """The environment for started commands: ours, with hastack importable."""
    env = dict(os.environ)
    src = str(Path(hastack.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach the log file when they happen
    return env


def fmt_duration(seconds: float) -> str:
    """ha.cf's duration syntax: whole seconds as `5`, anything else in milliseconds."""
    if seconds >= 1 and float(seconds).is_integer():
        return str(int(seconds))
    return f"{round(seconds * 1000)}ms"


def free_udp_port(addresses: Sequence[str], low: int = 20000, high: int = 32000) -> int:
    """A UDP port free on every address, below the kernel's ephemeral range so that no
    outgoing socket can take it between this check and the daemons' bind."""
    start = low + (os.getpid() * 7919 + int(time.monotonic() * 1000)) % (high - low)
    for offset in range(high - low):
        port = low + (start - low + offset) % (high - low)
        socks = []
        try:
            for addr in addresses:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((addr, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return port
    raise RuntimeError(f"no free UDP port in {low}..{high} on {', '.join(addresses)}")


@dataclass
class Timers:
    keepalive: float = 1.0
    deadtime: float = 5.0
    warntime: float | None = None
    initdead: float | None = None

    def hacf_lines(self) -> list[str]:
        lines = [
            f"keepalive {fmt_duration(self.keepalive)}",
            f"deadtime {fmt_duration(self.deadtime)}",
        ]
        if self.warntime is not None:
            lines.append(f"warntime {fmt_duration(self.warntime)}")
        if self.initdead is not None:
            lines.append(f"initdead {fmt_duration(self.initdead)}")
        return lines


@dataclass
class ClusterNode:
    name: str
    config_dir: Path
    run_dir: Path
    log_path: Path
    addresses: list[str]
    host: Host | None = None
    process: ManagedProcess | None = None
    starts: int = 0

    @property
    def control_path(self) -> Path:
        return self.run_dir / self.name / "control.sock"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.alive

    def status(self, timeout: float = 1.0) -> Status | None:
        """The node's status from its control socket, or None when it does not answer."""
        from hastack.daemon.control import ControlError, query

        try:
            answer = query(self.control_path, {"cmd": "status"}, timeout=timeout)
        except (OSError, ControlError):
            return None
        return answer if isinstance(answer, dict) and "error" not in answer else None

    def status_cli(self, timeout: float = 20.0) -> Status:
        """The node's status through `hastack status --json`, as a user would read it."""
        out = subprocess.run(
            hastack_argv("status", "-c", str(self.config_dir), "--node", self.name, "--json"),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=hastack_env(),
            check=True,
        )
        return json.loads(out.stdout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster:
    """N hastack nodes on this machine. Use as a context manager."""

    nodes: int | Sequence[str] = 3
    mode: Mode = "auto"
    timers: Timers = field(default_factory=Timers)
    links: int = 2  # namespace mode only; loopback mode has one link
    media: Media = "ucast"  # namespace mode only; loopback mode uses ucast
    workdir: str | None = None
    extra_hacf: Sequence[str] = ()
    # lines for one node's ha.cf only (its watchdog device, say): node name -> lines
    node_hacf: Callable[[str], Sequence[str]] | None = None
    # leave the work directory (logs, configs) in place on close; HASTACK_LAB_KEEP=1 sets it
    keep: bool = field(default_factory=lambda: os.environ.get("HASTACK_LAB_KEEP") == "1")
    start_nodes: bool = True
    # the resources: written as every node's DIR/cib.xml (None: no cib.xml, an empty CIB); a
    # function of the cluster when it needs the lab's addresses (a floating IP on its subnet)
    cib: bytes | Callable[[Cluster], bytes] | None = None
    # heartbeat R1 instead: DIR/haresources
    haresources: str | None = None
    # namespace hosts that run no node (a client of the cluster's services), on every link
    extra_hosts: Sequence[str] = ()

    def __post_init__(self) -> None:
        names = self.nodes
        self.names = [f"n{i + 1}" for i in range(names)] if isinstance(names, int) else list(names)
        if self.mode == "auto":
            self.mode = "netns" if lab_unavailable_reason() is None else "loopback"
        self.cluster_name = f"lab{os.getpid()}"
        self.lab: Lab | None = None
        self.members: dict[str, ClusterNode] = {}
        self._own_workdir = self.workdir is None
        self.udpport = 694
        self._closed = False

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> Cluster:
        try:
            self.build()
            if self.start_nodes:
                for name in self.names:
                    self.start(name)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> None:
        if self.workdir is None:
            self.workdir = tempfile.mkdtemp(prefix=f"hastack-lab-{os.getpid()}-")
        work = Path(self.workdir)
        if self.mode == "netns":
            self.lab = Lab([*self.names, *self.extra_hosts], links=self.links)
            self.lab.build()
            addresses = {n: list(self.lab[n].addresses) for n in self.names}
        else:
            addresses = {n: [f"127.0.0.{LOOPBACK_BASE + i}"] for i, n in enumerate(self.names)}
            self.udpport = free_udp_port([a[0] for a in addresses.values()])
        key = secrets.token_hex(32)
        for name in self.names:
            node_dir = work / name
            node = ClusterNode(
                name=name,
                config_dir=node_dir / "conf",
                run_dir=node_dir / "run",
                log_path=node_dir / "node.log",
                addresses=addresses[name],
                host=self.lab[name] if self.lab else None,
            )
            node.config_dir.mkdir(parents=True, exist_ok=True)
            node.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_config(node, addresses, key)
            self.members[name] = node

    def _write_config(self, node: ClusterNode, addresses: dict[str, list[str]], key: str) -> None:
        lines = [
            f"# written by hastack.lab.cluster for node {node.name}",
            f"cluster_name {self.cluster_name}",
            f"udpport {self.udpport}",  # before the media lines, as heartbeat requires
            *self.timers.hacf_lines(),
            f"run_dir {node.run_dir}",
        ]
        peers = [n for n in self.names if n != node.name]
        if self.mode == "netns":
            lines += media_lines(self.media, self.links, [addresses[p] for p in peers], 694)
        else:
            lines.append(f"bind lo {node.addresses[0]}")
            lines += [f"ucast lo {addresses[p][0]}" for p in peers]
        lines += list(self.extra_hacf)
        if self.node_hacf is not None:
            lines += list(self.node_hacf(node.name))
        lines += [f"node {n}" for n in self.names]
        (node.config_dir / "ha.cf").write_text("\n".join(lines) + "\n")
        if self.cib is not None:
            cib = self.cib(self) if callable(self.cib) else self.cib
            (node.config_dir / "cib.xml").write_bytes(cib)
        if self.haresources is not None:
            (node.config_dir / "haresources").write_text(self.haresources)
        authkeys = node.config_dir / "authkeys"
        fd = os.open(authkeys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"auth 1\n1 sha256 {key}\n")
        os.chmod(authkeys, 0o600)

    def close(self) -> None:
        """Stop every node (SIGKILL by PID), remove namespaces and the work directory."""
        if self._closed:
            return
        self._closed = True
        for node in self.members.values():
            if node.process is not None:
                with contextlib.suppress(Exception):
                    node.process.reap()
        if self.lab is not None:
            self.lab.close()
        if self._own_workdir and not self.keep and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def detach(self) -> None:
        """Leave the nodes, namespaces and files in place; nothing will remove them."""
        self._closed = True
        if self.lab is not None:
            self.lab.detach()

    # ---------------------------------------------------------------- node control
    def __getitem__(self, name: str) -> ClusterNode:
        return self.members[name]

    def start(self, name: str) -> ClusterNode:
        node = self.members[name]
        if node.running:
            raise RuntimeError(f"node {name} is already running")
        argv = hastack_argv("node", "start", "-c", str(node.config_dir), "--node", name)
        with open(node.log_path, "a") as f:
            f.write(f"=== lab: start {name} at {time.time():.6f}\n")
        if node.host is not None:
            node.process = node.host.start(argv, log_path=str(node.log_path), env=hastack_env())
        else:
            node.process = ManagedProcess.spawn(
                argv, log_path=str(node.log_path), env=hastack_env(), where=name
            )
        node.starts += 1
        return node

    def _proc(self, name: str) -> ManagedProcess:
        proc = self.members[name].process
        if proc is None:
            raise RuntimeError(f"node {name} was never started")
        return proc

    def kill(self, name: str) -> float:
        """SIGKILL the node; returns time.monotonic() just before the signal."""
        proc = self._proc(name)
        t = time.monotonic()
        proc.kill()
        proc.wait(5)
        return t

    def crash(self, name: str) -> float:
        """The node's machine loses power (namespace mode): its daemon and everything it ran
        die, its addresses go; returns time.monotonic() just before. `restart` brings it back."""
        node = self.members[name]
        if node.host is None:
            raise RuntimeError("crash needs namespace mode")
        t = time.monotonic()
        node.host.power_off()
        if node.process is not None:
            node.process.wait(5)
        return t

    def restart(self, name: str) -> ClusterNode:
        """Power a crashed node's machine on again and start its daemon."""
        node = self.members[name]
        if node.host is not None:
            node.host.power_on()
        return self.start(name)

    def stop(self, name: str) -> None:
        self._proc(name).stop()

    def cont(self, name: str) -> None:
        self._proc(name).cont()

    def term(self, name: str, timeout: float = 10.0) -> int:
        proc = self._proc(name)
        proc.cont()
        proc.term()
        return proc.wait(timeout)

    # ---------------------------------------------------------------- observation
    @property
    def running(self) -> list[str]:
        return [n for n, node in self.members.items() if node.running]

    def statuses(self, names: Iterable[str] | None = None) -> dict[str, Status | None]:
        return {n: self.members[n].status() for n in (names or self.running)}

    def wait_for(
        self,
        predicate: Callable[[dict[str, Status | None]], bool],
        timeout: float,
        names: Iterable[str] | None = None,
        interval: float = 0.01,
    ) -> dict[str, Status | None]:
        """Poll the statuses of `names` (default: running nodes) until `predicate` holds."""
        deadline = time.monotonic() + timeout
        chosen = list(names) if names is not None else None
        while True:
            states = self.statuses(chosen)
            if predicate(states):
                return states
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout:g} s: {summary(states)}")
            time.sleep(interval)

    def wait_converged(
        self, names: Iterable[str] | None = None, timeout: float = 30.0
    ) -> dict[str, Status | None]:
        """Wait until the nodes `names` (default: the running ones) agree: each sees exactly
        them as members, is quorate, and names the same DC, which is one of them."""
        group = sorted(names or self.running)
        return self.wait_for(lambda s: converged(s, group), timeout, names=group)


def converged(states: dict[str, Status | None], group: Sequence[str]) -> bool:
    if any(states.get(n) is None for n in group):
        return False
    views = [states[n] for n in group]
    dcs = {v["dc"] for v in views if v is not None}
    return (
        all(v is not None and sorted(v["members"]) == sorted(group) and v["quorate"] for v in views)
        and len(dcs) == 1
        and next(iter(dcs)) in group
    )


def acting_dcs(states: dict[str, Status | None]) -> list[str]:
    """The nodes that claim, right now, to hold a DC lease."""
    return sorted(n for n, s in states.items() if s is not None and s.get("is_dc"))


def summary(states: dict[str, Status | None]) -> str:
    parts = []
    for name, s in sorted(states.items()):
        if s is None:
            parts.append(f"{name}: no answer")
        else:
            parts.append(
                f"{name}: dc={s.get('dc')} term={s.get('term')} quorate={s.get('quorate')} "
                f"is_dc={s.get('is_dc')} members={s.get('members')}"
            )
    return "; ".join(parts)
