"""A lab of hosts in Linux network namespaces, with nftables fault injection and process control.

Layout: one "switch" namespace holds one bridge per link (`br0`, `br1`, ...); every host is a
namespace with loopback up and one veth per link (`eth0`, `eth1`, ... inside the host) whose peer
end is a port of that link's bridge. Nothing is created in the root namespace, and the hosts have
no route out of the lab, so lab traffic never leaves namespaces this object created.

Faults are nftables rules inside the host's own namespace (table `inet hastack_lab`), so cutting
one direction of one link of one host touches nothing else. The whole table is rewritten in one
`nft -f` transaction on every change, which keeps the rule set exactly equal to `Lab.cuts`.

Teardown kills every process the lab started (by PID), then deletes the namespaces (which
destroys the veths and bridges). It runs on `__exit__` (exceptions and KeyboardInterrupt
included) and from an atexit hook for labs that were never closed. Namespace names carry the
creating process's PID, so parallel labs never collide and `cleanup_stale()` can remove what a
killed process left behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import itertools
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hastack.lab.process import ManagedProcess

Direction = Literal["in", "out", "both"]

NETNS_PREFIX = "hslab"  # every namespace this module creates starts with this, then the pid
NFT_TABLE = "hastack_lab"
# Namespaces of detached labs (`hastack demo --keep`) are listed here so that cleanup_stale()
# leaves them alone although their creator has exited.
KEPT_DIR = "/run/hastack-lab-kept"

_counter = itertools.count(1)
_live_labs: set[Lab] = set()
_live_lock = threading.Lock()


class LabError(RuntimeError):
    """A lab command failed; the message carries the command and its stderr."""


def lab_unavailable_reason() -> str | None:
    """Why a namespace lab cannot run here, or None when it can (root, `ip`, `nft`)."""
    if os.geteuid() != 0:
        return "the namespace lab needs root (network namespaces, veth, nftables)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"the namespace lab needs `{tool}` on PATH (Debian: iproute2 / nftables)"
    return None


def _run(argv: Sequence[str], stdin: str | None = None, timeout: float = 20.0) -> str:
    proc = subprocess.run(
        list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def list_netns() -> list[str]:
    """Names of all named network namespaces (`ip netns list`)."""
    out = _run(["ip", "netns", "list"])
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete lab namespaces whose creating process is gone; return their names.

    Needed only after the creating process was SIGKILLed (no atexit then).
    """
    removed = []
    for name in list_netns():
        if not name.startswith(NETNS_PREFIX):
            continue
        pid_part = name[len(NETNS_PREFIX) :].split("x", 1)[0]
        if not pid_part.isdigit() or _pid_alive(int(pid_part)):
            continue
        if os.path.exists(os.path.join(KEPT_DIR, name)):
            continue
        _kill_netns_pids(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        removed.append(name)
    return removed


def _kill_netns_pids(netns: str, rounds: int = 40) -> None:
    """SIGKILL processes still inside a namespace (ones we did not start ourselves, e.g.
    daemons forked by a started process), so deleting it really frees it. Repeated until the
    namespace is empty: a process can fork between the listing and the kill, and its child
    would otherwise outlive the namespace (heartbeat forks helpers like mach_down)."""
    for _ in range(rounds):
        proc = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
        pids = [int(word) for word in proc.stdout.split() if word.isdigit()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


@dataclass(frozen=True)
class Cut:
    """One dropped direction: traffic of `host` on `interface` in `direction`, optionally only
    to/from `peer` (an address)."""

    host: str
    interface: str
    direction: Literal["in", "out"]
    peer: str | None = None

    def nft_rule(self) -> str:
        if self.direction == "in":
            match = f'iifname "{self.interface}"'
            if self.peer:
                match += f" ip saddr {self.peer}"
        else:
            match = f'oifname "{self.interface}"'
            if self.peer:
                match += f" ip daddr {self.peer}"
        return f"{match} counter drop"


# Kept as a name of its own for readers of lab code: a process started inside a host.
LabProcess = ManagedProcess


@dataclass
class Host:
    """One lab host: a namespace with `eth<i>` on link i at `addresses[i]`."""

    lab: Lab
    name: str
    index: int
    netns: str
    addresses: list[str] = field(default_factory=list)
    processes: list[ManagedProcess] = field(default_factory=list)

    def addr(self, link: int = 0) -> str:
        return self.addresses[link]

    def ns_argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(
        self,
        argv: Sequence[str],
        timeout: float = 20.0,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside this host."""
        proc = subprocess.run(
            self.ns_argv(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise LabError(
                f"[{self.name}] {' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def start(
        self,
        argv: Sequence[str],
        log_path: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> ManagedProcess:
        """Start a command inside this host; output goes to `log_path` (or is discarded)."""
        proc = ManagedProcess.spawn(self.ns_argv(argv), log_path, env, cwd, where=self.name)
        self.processes.append(proc)
        self.lab._processes.append(proc)
        return proc

    # Fault injection, as shortcuts to the lab's.
    def cut(
        self, link: int | None = None, direction: Direction = "both", peer: str | Host | None = None
    ) -> list[Cut]:
        return self.lab.cut(self, link=link, direction=direction, peer=peer)

    def power_off(self) -> None:
        """What a power failure does to this host: every process in it dies at once (SIGKILL)
        and its interfaces go down, losing every address added at run time (a floating IP)."""
        _kill_netns_pids(self.netns)
        cmds = []
        for j in range(len(self.addresses)):
            cmds += [f"addr flush dev eth{j}", f"link set eth{j} down"]
        _run(["ip", "-n", self.netns, "-batch", "-"], stdin="\n".join(cmds) + "\n")

    def power_on(self) -> None:
        """The host back up with its own addresses (start its node daemon again after)."""
        cmds = []
        for j, addr in enumerate(self.addresses):
            cmds += [f"addr replace {addr}/24 brd + dev eth{j}", f"link set eth{j} up"]
        _run(["ip", "-n", self.netns, "-batch", "-"], stdin="\n".join(cmds) + "\n")

    def nft_counters(self) -> str:
        return self.run(["nft", "list", "table", "inet", NFT_TABLE], check=False).stdout


class Lab:
    """Hosts in network namespaces joined by `links` bridges. Use as a context manager."""

    def __init__(
        self, hosts: int | Sequence[str], links: int = 2, network: str | None = None
    ) -> None:
        names = [f"n{i + 1}" for i in range(hosts)] if isinstance(hosts, int) else list(hosts)
        if not names or len(set(names)) != len(names):
            raise ValueError("a lab needs one or more distinct host names")
        if len(names) > 250 or not 1 <= links <= 16:
            raise ValueError("a lab has 1..250 hosts and 1..16 links")
        self.host_names = names
        self.links = links
        self.id = f"{NETNS_PREFIX}{os.getpid()}x{next(_counter)}"
        # 10.<b>.<link>.<host>/24: b varies per lab only to make captures readable; the
        # addresses exist in our namespaces alone, so they cannot clash with anything outside.
        self.network = ipaddress.ip_network(network or f"10.{(os.getpid() + 17) % 200 + 40}.0.0/16")
        self.switch_netns = f"{self.id}-sw"
        self.hosts: dict[str, Host] = {}
        self.cuts: list[Cut] = []
        self._processes: list[ManagedProcess] = []
        self._namespaces: list[str] = []
        self._closed = False

    # ---------------------------------------------------------------- build / teardown
    def __enter__(self) -> Lab:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_netns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)

    def link_subnet(self, link: int) -> ipaddress.IPv4Network:
        base = int(self.network.network_address) + (link << 8)
        return ipaddress.IPv4Network((base, 24))

    def build(self) -> None:
        reason = lab_unavailable_reason()
        if reason:
            raise LabError(reason)
        with _live_lock:
            _live_labs.add(self)
        self._add_netns(self.switch_netns)
        sw = [
            f"link add br{j} type bridge stp_state 0 forward_delay 0 mcast_snooping 0"
            for j in range(self.links)
        ]
        sw += ["link set lo up"] + [f"link set br{j} up" for j in range(self.links)]
        _run(["ip", "-n", self.switch_netns, "-batch", "-"], stdin="\n".join(sw) + "\n")
        ports = []
        for i, name in enumerate(self.host_names):
            netns = f"{self.id}-{name}"
            self._add_netns(netns)
            host = Host(self, name, i, netns)
            cmds = ["link set lo up"]
            for j in range(self.links):
                subnet = self.link_subnet(j)
                addr = str(subnet.network_address + i + 1)
                host.addresses.append(addr)
                port = f"h{i}l{j}"
                cmds += [
                    f"link add eth{j} type veth peer name {port} netns {self.switch_netns}",
                    f"addr add {addr}/24 brd + dev eth{j}",
                    f"link set eth{j} up",
                ]
                ports += [f"link set {port} master br{j}", f"link set {port} up"]
            _run(["ip", "-n", netns, "-batch", "-"], stdin="\n".join(cmds) + "\n")
            self.hosts[name] = host
        _run(["ip", "-n", self.switch_netns, "-batch", "-"], stdin="\n".join(ports) + "\n")

    def close(self) -> None:
        """Kill started processes, delete every namespace. Idempotent; never raises."""
        if self._closed:
            return
        self._closed = True
        for proc in self._processes:
            with contextlib.suppress(Exception):
                proc.reap()
        for netns in reversed(self._namespaces):
            with contextlib.suppress(Exception):
                _kill_netns_pids(netns)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False)
        with _live_lock:
            _live_labs.discard(self)

    def detach(self) -> None:
        """Leave everything running and forget it: neither close() nor atexit will remove it."""
        self._closed = True
        with _live_lock:
            _live_labs.discard(self)
        os.makedirs(KEPT_DIR, exist_ok=True)
        for netns in self._namespaces:
            with open(os.path.join(KEPT_DIR, netns), "w") as f:
                f.write(f"{os.getpid()}\n")

    @property
    def namespaces(self) -> list[str]:
        return list(self._namespaces)

    # ---------------------------------------------------------------- access
    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.hosts.values())

    # ---------------------------------------------------------------- faults
    def _host(self, host: str | Host) -> Host:
        return host if isinstance(host, Host) else self.hosts[host]

    def cut(
        self,
        host: str | Host,
        link: int | None = None,
        direction: Direction = "both",
        peer: str | Host | None = None,
    ) -> list[Cut]:
        """Drop traffic of `host` on link `link` (None: every link) in `direction`, only to/from
        `peer` when given (a Host means its address on that link). Returns the cuts added."""
        h = self._host(host)
        links = range(self.links) if link is None else [link]
        dirs: list[Literal["in", "out"]] = ["in", "out"] if direction == "both" else [direction]
        added = []
        for j in links:
            peer_addr = (
                self._host(peer).addr(j)
                if isinstance(peer, Host) or (isinstance(peer, str) and peer in self.hosts)
                else peer
            )
            for d in dirs:
                c = Cut(h.name, f"eth{j}", d, peer_addr)  # type: ignore[arg-type]
                if c not in self.cuts:
                    self.cuts.append(c)
                    added.append(c)
        self._apply(h)
        return added

    def cut_between(
        self, a: str | Host, b: str | Host, link: int | None = None, one_way: bool = False
    ) -> list[Cut]:
        """Drop a -> b traffic (and b -> a too unless one_way) on one link or all, dropping at
        a's output and, for the reverse direction, at a's input."""
        cuts = self.cut(a, link=link, direction="out", peer=self._host(b))
        if not one_way:
            cuts += self.cut(a, link=link, direction="in", peer=self._host(b))
        return cuts

    def partition(self, *groups: Iterable[str | Host]) -> None:
        """Split the hosts into groups that cannot reach each other on any link."""
        sets = [[self._host(h) for h in g] for g in groups]
        for gi, group in enumerate(sets):
            for other in sets[gi + 1 :]:
                for a in group:
                    for b in other:
                        self.cut_between(a, b)

    def heal(self, host: str | Host | None = None, cuts: Iterable[Cut] | None = None) -> None:
        """Remove the given cuts, or every cut of `host`, or every cut in the lab."""
        if cuts is not None:
            drop = set(cuts)
        elif host is not None:
            drop = {c for c in self.cuts if c.host == self._host(host).name}
        else:
            drop = set(self.cuts)
        touched = {c.host for c in drop}
        self.cuts = [c for c in self.cuts if c not in drop]
        for name in touched:
            self._apply(self.hosts[name])

    def _apply(self, host: Host) -> None:
        mine = [c for c in self.cuts if c.host == host.name]
        rules = {"in": [], "out": []}  # type: dict[str, list[str]]
        for c in mine:
            rules[c.direction].append("    " + c.nft_rule())
        # "add table" makes "delete table" valid when the table does not exist yet; the file is
        # one transaction, so the host never sees a half-written rule set.
        script = (
            f"add table inet {NFT_TABLE}\n"
            f"delete table inet {NFT_TABLE}\n"
            f"table inet {NFT_TABLE} {{\n"
            "  chain input {\n    type filter hook input priority 0; policy accept;\n"
            + "\n".join(rules["in"])
            + "\n  }\n"
            "  chain output {\n    type filter hook output priority 0; policy accept;\n"
            + "\n".join(rules["out"])
            + "\n  }\n}\n"
        )
        _run(host.ns_argv(["nft", "-f", "-"]), stdin=script)

    # ---------------------------------------------------------------- processes
    @property
    def processes(self) -> list[ManagedProcess]:
        return list(self._processes)


def _close_live_labs() -> None:
    with _live_lock:
        labs = list(_live_labs)
    for lab in labs:
        lab.close()


atexit.register(_close_live_labs)
