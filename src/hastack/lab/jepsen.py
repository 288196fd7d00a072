"""A Jepsen-style run: random partitions, kills, pauses and crashes against a fenced 3-node
cluster serving a floating IP and a counter, checked afterwards for dual-active periods (there
must be none) and for availability (reported).

Why it is built this way:

* The service is a counter (``counter`` below, run by ``ocf:hastack:anything`` in the group
  ``web`` after the floating IP). Its state lives in the node's own run directory and does not
  move with the service: each answer names the node that gave it, so the client's record says
  exactly which node was active at each instant.
* The client is a lab host that runs no node (``client`` below, a process in that namespace).
  It opens a fresh connection to the floating IP for every request (short timeouts) and records
  (start, end, answering node). Every namespace shares CLOCK_MONOTONIC, so its times compare
  with ours directly.
* The observer looks from outside, every ``SAMPLE_INTERVAL``: which node namespaces hold the
  floating IP (netlink sockets opened once in each namespace; each node is read twice, in
  forward then reverse order, so that "two nodes hold it" is only concluded when both holdings
  bracket each other and cannot be an artefact of reading one namespace after the other), which
  are powered on (their own address is on eth0: a power-off flushes it), and which MAC the
  client's neighbour table has for the IP. A second thread sends an ARP who-has for the IP from
  a separate ``watcher`` host (raw packet socket, no arping needed; a host of its own so that
  its requests never refresh the client's cache) and records every MAC that answers. Each
  request names a different sender address of a pool (``ARP_SOURCES`` of them), and a reply is
  addressed to the sender of the request it answers: so a reply is matched to its request by
  its content, not by when this thread, which a loaded machine can hold up for longer than the
  interval, happened to read it.
* The nemesis (seeded) cuts a node off, partitions one node from the two others, cuts one
  direction, SIGKILLs a daemon, SIGSTOPs one for longer than deadtime, or powers a node off;
  then heals and revives what is down (a powered-off host must be powered on and its daemon
  started, as an operator would after fencing), sometimes letting faults compound first. At the
  end everything is healed and the cluster must recover.
* Checks: dual-active (two nodes hold the IP at one instant, two MACs answer one ARP request,
  two nodes' answers within one sample window or interleaved) must be zero; every takeover
  from X (the IP seen on another node) must come after X was fenced, unless X released the IP
  itself while powered on (a clean stop); availability (the fraction of requests answered,
  outages: count, median, max) is reported in the output and in a JSON report.

By hand: ``python -m hastack.lab.jepsen --duration 600 --seed 7`` (root; see docs/jepsen.md).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import json
import os
import random
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from hastack.lab.cluster import Cluster
    from hastack.lab.netns import Host, Lab

COUNTER_PORT = 8090
SAMPLE_INTERVAL = 0.02  # seconds between observer samples and between ARP requests
CLIENT_INTERVAL = 0.02  # seconds between the end of one request and the next
CLIENT_TIMEOUT = 0.25  # connect and answer timeout of one request
# Two answers from one node with another node's answer between them, closer than this, cannot
# come from legitimate moves (each move is a stop, a message to the DC and a start).
INTERLEAVE_WINDOW = 1.0
# The watcher's ARP requests rotate over this many sender addresses (a reply older than
# ARP_SOURCES * SAMPLE_INTERVAL would be matched to a later request of the same address).
ARP_SOURCES = 64
NODES = ("n1", "n2", "n3")
CLIENT, WATCHER = "client", "watcher"


# ====================================================================== the counter service
def counter_identity(node: str | None, state: str | None) -> tuple[str, Path]:
    """The node name and state file of a counter started by a node: the daemon gives each
    node its own HA_VARRUN (RUN_DIR/NODE/varrun), so both follow from it unless given."""
    varrun = os.environ.get("HA_VARRUN")
    if node is None or state is None:
        if not varrun:
            raise SystemExit("counter: give --node and --state (HA_VARRUN is not set)")
        node = node or Path(varrun).parent.name
        state = state or str(Path(varrun) / "jepsen-counter.state")
    return node, Path(state)


def serve_counter(port: int, node: str, state: Path) -> None:
    """Answer each connection's ``INC`` line with ``NODE VALUE`` (the node's own counter,
    incremented and written to `state` before answering). Single-threaded: one short
    exchange per connection, so a slow client cannot hold the others up for long."""
    try:
        value = int(state.read_text().strip() or "0")
    except (OSError, ValueError):
        value = 0
    state.parent.mkdir(parents=True, exist_ok=True)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        srv.bind(("0.0.0.0", port))
    except OSError as err:
        raise SystemExit(f"counter: cannot listen on port {port}: {err.strerror}") from None
    srv.listen(64)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(0.5)
            try:
                line = conn.recv(64)
                if not line.startswith(b"INC"):
                    conn.sendall(b"ERR expected INC\n")
                    continue
                value += 1
                tmp = state.with_suffix(".tmp")
                tmp.write_text(f"{value}\n")
                os.replace(tmp, state)
                conn.sendall(f"{node} {value}\n".encode())
            except OSError:
                continue


# ====================================================================== the client
def request(vip: str, port: int, timeout: float) -> tuple[bool, str, int | None]:
    """One increment through a fresh connection: (ok, node or error, value)."""
    try:
        with socket.create_connection((vip, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"INC\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(64)
                if not chunk:
                    break
                data += chunk
    except TimeoutError:
        return False, "timeout", None
    except OSError as err:
        return False, type(err).__name__, None
    parts = data.decode(errors="replace").split()
    if len(parts) != 2 or not parts[1].isdigit():
        return False, "bad-answer", None
    return True, parts[0], int(parts[1])


def run_client(
    vip: str, port: int, interval: float, timeout: float, out: TextIO, workers: int = 2
) -> None:
    """Send increments until SIGTERM; one line per request: ``START END ok NODE VALUE`` or
    ``START END fail ERROR`` (times: time.monotonic()). `workers` threads, started
    `interval / workers` apart, each send one request at a time: answers then come closer
    together than one observer sample, so two active nodes would answer within one."""
    lock = threading.Lock()

    def worker(delay: float) -> None:
        time.sleep(delay)
        while True:
            t0 = time.monotonic()
            ok, who, value = request(vip, port, timeout)
            t1 = time.monotonic()
            line = f"{t0:.6f} {t1:.6f} {'ok' if ok else 'fail'} {who} {value or ''}".rstrip()
            with lock:
                out.write(line + "\n")
                out.flush()
            time.sleep(interval)

    for i in range(workers):
        threading.Thread(target=worker, args=(i * interval / workers,), daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


@dataclass(frozen=True)
class Response:
    start: float
    end: float
    ok: bool
    node: str | None  # the answering node (ok) or None
    value: int | None
    error: str | None


def parse_client_log(text: str) -> list[Response]:
    """The client's records; a line cut short by the client's termination is skipped."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        try:
            t0, t1 = float(parts[0]), float(parts[1])
        except (IndexError, ValueError):
            continue
        if len(parts) == 5 and parts[2] == "ok" and parts[4].isdigit():
            out.append(Response(t0, t1, True, parts[3], int(parts[4]), None))
        elif len(parts) == 4 and parts[2] == "fail":
            out.append(Response(t0, t1, False, None, None, parts[3]))
    return out


# ====================================================================== observation
CLONE_NEWNET = 0x40000000


def enter_netns(netns: str) -> None:
    """Move the calling thread (only it) into network namespace `netns` (Python 3.11 has no
    os.setns); sockets it creates afterwards belong to that namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({netns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def arp_source_pool(lab: Lab) -> list[str]:
    """ARP_SOURCES addresses of link 0's subnet that no host takes (hosts take .1 upwards,
    the floating IP is .200): the watcher's requests rotate over them."""
    from hastack.lab.services import lab_address

    return [lab_address(lab, 128 + i) for i in range(ARP_SOURCES)]


@dataclass(frozen=True)
class Sample:
    t: float
    held: tuple[str, ...]  # nodes seen holding the IP in both reads of this sample
    seen: tuple[str, ...]  # nodes seen holding it in either read
    powered: tuple[str, ...]  # nodes whose own address is on eth0
    client_mac: str | None  # the client's neighbour entry for the IP (its lladdr)


@dataclass(frozen=True)
class ArpAnswer:
    request: int  # number of the who-has it answers (0 for an announcement)
    t: float
    mac: str
    gratuitous: bool  # unsolicited (an announcement) rather than an answer to us


@dataclass(frozen=True)
class View:
    t: float
    node: str
    members: tuple[str, ...]  # the membership `node` reported at `t`


class Observer:
    """Samples the nodes' addresses and the client's neighbour table from outside, and asks
    for the IP by ARP from the watcher host; with `status` (a node's status, or None when it
    does not answer) it also records every VIEW_INTERVAL the membership each node reports.
    All in threads of this process."""

    VIEW_INTERVAL = 0.1

    def __init__(
        self,
        netns: dict[str, str],
        client_ns: str,
        watcher_ns: str,
        vip: str,
        own: dict[str, str],
        arp_sources: Sequence[str],
        interval: float = SAMPLE_INTERVAL,
        status: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        from pyroute2 import IPRoute

        self.vip, self.own, self.interval = vip, own, interval
        self.arp_sources = list(arp_sources)  # sender addresses of the ARP requests
        self.names = sorted(netns)
        self.ipr = {name: IPRoute(netns=ns) for name, ns in netns.items()}
        self.client_ipr = IPRoute(netns=client_ns)
        self.watcher_ns = watcher_ns
        self.macs: dict[str, str] = {}
        for name, ipr in self.ipr.items():
            (link,) = ipr.get_links(ifname="eth0")
            self.macs[link.get("IFLA_ADDRESS")] = name
        self.samples: list[Sample] = []
        self.views: list[View] = []
        self.status = status
        self.arp: list[ArpAnswer] = []
        self.arp_requests = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._guard(self._sample_loop), daemon=True),
            threading.Thread(target=self._guard(self._arp_loop), daemon=True),
        ]
        if status is not None:
            self._threads.append(threading.Thread(target=self._guard(self._view_loop), daemon=True))

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except Exception as err:  # recorded: a silent observer would hide everything
                self.errors.append(f"{loop.__name__}: {type(err).__name__}: {err}")

        return run

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        for ipr in [*self.ipr.values(), self.client_ipr]:
            with contextlib.suppress(Exception):
                ipr.close()

    def holder(self) -> str | None:
        """The one node seen holding the IP in the latest sample (None: none, or several)."""
        last = self.samples[-1] if self.samples else None
        return last.held[0] if last is not None and len(last.held) == 1 else None

    def mac_node(self, mac: str | None) -> str | None:
        return self.macs.get(mac or "", mac)

    def _addresses(self, name: str) -> set[str]:
        return {m.get("IFA_ADDRESS") for m in self.ipr[name].get_addr(family=socket.AF_INET)}

    def read(self) -> Sample:
        """One sample: every node read in order, then in reverse order."""
        t = time.monotonic()
        first = {n: self._addresses(n) for n in self.names}
        second = {n: self._addresses(n) for n in reversed(self.names)}
        held = tuple(n for n in self.names if self.vip in first[n] and self.vip in second[n])
        seen = tuple(n for n in self.names if self.vip in first[n] | second[n])
        powered = tuple(n for n in self.names if self.own[n] in first[n] | second[n])
        mac = None
        for neigh in self.client_ipr.get_neighbours(family=socket.AF_INET):
            if neigh.get("NDA_DST") == self.vip and neigh.get("NDA_LLADDR"):
                mac = neigh.get("NDA_LLADDR")
        return Sample(t, held, seen, powered, self.mac_node(mac))

    def _sample_loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.samples.append(self.read())
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _view_loop(self) -> None:
        assert self.status is not None
        while not self._stop.wait(self.VIEW_INTERVAL):
            for name in self.names:
                state = self.status(name)
                if state is not None and isinstance(state.get("members"), list):
                    self.views.append(View(time.monotonic(), name, tuple(state["members"])))

    def _arp_loop(self) -> None:
        """Ask who has the IP every interval (see ArpProbe). A thread held up past its next
        request skips the missed ones rather than sending a burst."""
        enter_netns(self.watcher_ns)
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806)) as s:
            s.bind(("eth0", 0x0806))
            probe = ArpProbe(s.getsockname()[4][:6], self.vip, self.arp_sources)
            next_at = time.monotonic()
            while not self._stop.is_set():
                s.send(probe.request())
                self.arp_requests = probe.sent
                next_at = max(next_at + self.interval, time.monotonic())
                while (left := next_at - time.monotonic()) > 0:
                    ready, _, _ = select.select([s], [], [], left)
                    if ready and (answer := probe.answer(s.recv(128), time.monotonic())):
                        self.arp.append(answer)


class ArpProbe:
    """The watcher's ARP who-has requests for `vip` and the replies to them. Request k names
    sender address k mod the pool (`sources`, addresses no host has), and Linux addresses a
    reply to the sender of the request it answers: so the reply's target address says which
    request it answers however late it is read, and two MACs answering one request are two
    holders at one instant, not a reply read after the thread fell behind."""

    def __init__(self, mac: bytes, vip: str, sources: Sequence[str]) -> None:
        self.mac, self.vip = mac, socket.inet_aton(vip)
        self.sources = [socket.inet_aton(a) for a in sources]
        self.sent = 0
        self._latest: dict[bytes, int] = {}  # sender address -> number of its latest request
        self._header = b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)

    def request(self) -> bytes:
        """The next request (an Ethernet frame), numbered from 1."""
        source = self.sources[self.sent % len(self.sources)]
        self.sent += 1
        self._latest[source] = self.sent
        return self._header + self.mac + source + b"\0" * 6 + self.vip

    def answer(self, frame: bytes, t: float) -> ArpAnswer | None:
        """The ARP packet from the IP's holder in `frame`, or None for any other frame."""
        if len(frame) < 42 or frame[12:14] != b"\x08\x06":
            return None
        op = struct.unpack("!H", frame[20:22])[0]
        sender_mac, sender_ip, target_mac, target_ip = (
            frame[22:28],
            frame[28:32],
            frame[32:38],
            frame[38:42],
        )
        if sender_ip != self.vip:
            return None
        request = self._latest.get(target_ip)
        # an announcement: a request, a reply to everyone (the target is the IP itself), or a
        # reply to someone else than one of our requests
        gratuitous = op == 1 or request is None or target_mac != self.mac
        mac = ":".join(f"{b:02x}" for b in sender_mac)
        return ArpAnswer(0 if gratuitous else request or 0, t, mac, gratuitous)


# ====================================================================== the checks
@dataclass
class Incident:
    kind: str  # "vip" | "arp" | "answers" | "takeover"
    t: float
    nodes: list[str]
    detail: str


def periods(times: Sequence[float], gap: float) -> list[tuple[float, float]]:
    """Consecutive instants (no two further apart than `gap`) merged into periods."""
    out: list[tuple[float, float]] = []
    for t in sorted(times):
        if out and t - out[-1][1] <= gap:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def dual_vip(samples: Sequence[Sample], interval: float = SAMPLE_INTERVAL) -> list[Incident]:
    """Periods in which two or more nodes held the IP at once (each period one incident)."""
    times = [s.t for s in samples if len(s.held) >= 2]
    out = []
    for start, end in periods(times, 3 * interval):
        nodes = sorted({n for s in samples if start <= s.t <= end for n in s.held})
        out.append(Incident("vip", start, nodes, f"held by {nodes} for {end - start:.3f} s"))
    return out


def dual_arp(
    answers: Sequence[ArpAnswer], macs: dict[str, str], interval: float = SAMPLE_INTERVAL
) -> list[Incident]:
    """Periods in which ARP requests were answered by two different MACs (consecutive such
    requests are one incident)."""
    by_request: dict[int, list[ArpAnswer]] = {}
    for a in answers:
        if not a.gratuitous:
            by_request.setdefault(a.request, []).append(a)
    dual: list[tuple[float, list[str]]] = []
    for answers_of in by_request.values():
        who = sorted({macs.get(a.mac, a.mac) for a in answers_of})
        if len(who) >= 2:
            dual.append((answers_of[0].t, who))
    out = []
    for start, end in periods([t for t, _ in dual], 3 * interval):
        within = [(t, who) for t, who in dual if start <= t <= end]
        nodes = sorted({n for _, who in within for n in who})
        out.append(
            Incident(
                "arp",
                start,
                nodes,
                f"{len(within)} ARP requests in {end - start:.3f} s answered by {nodes}",
            )
        )
    return out


def dual_answers(
    responses: Sequence[Response],
    window: float = SAMPLE_INTERVAL,
    interleave: float = INTERLEAVE_WINDOW,
) -> list[Incident]:
    """Answers that only two active nodes can give: two nodes answering within `window` of each
    other, or a node's answer between two answers of another node less than `interleave`
    apart (a move and a move back that fast cannot both be clean)."""
    ok = sorted((r for r in responses if r.ok), key=lambda r: r.end)
    out = []
    for a, b in itertools.pairwise(ok):
        if a.node != b.node and b.end - a.end < window:
            out.append(
                Incident(
                    "answers",
                    a.end,
                    sorted({a.node or "", b.node or ""}),
                    f"{a.node} and {b.node} answered {b.end - a.end:.3f} s apart",
                )
            )
    last: dict[str, float] = {}
    between: dict[str, set[str]] = {}
    for r in ok:
        node = r.node or ""
        if node in last and r.end - last[node] < interleave and between.get(node):
            others = sorted(between[node])
            out.append(
                Incident(
                    "answers",
                    last[node],
                    sorted({node, *others}),
                    f"{others} answered between two answers of {node} "
                    f"{r.end - last[node]:.3f} s apart",
                )
            )
        for other in between:
            if other != node:
                between[other].add(node)
        last[node] = r.end
        between[node] = set()
    return out


@dataclass
class Takeover:
    t: float
    source: str
    target: str
    how: str  # "fenced" | "released" | "rejoined" | "unfenced"
    fenced_at: float | None


def rejoined(views: Sequence[View], node: str, after: float, before: float) -> bool:
    """Whether some other node saw `node` leave its membership after `after` and come back
    before `before`: the cluster then asked it what it runs instead of guessing."""
    left: set[str] = set()
    for v in views:
        if v.node == node or not after < v.t <= before:
            continue
        if node not in v.members:
            left.add(v.node)
        elif v.node in left:
            return True
    return False


def takeovers(
    samples: Sequence[Sample],
    fences: Sequence[tuple[float, str, str]],
    views: Sequence[View] = (),
) -> list[Takeover]:
    """Every move of the IP from X to Y seen by the observer, and why X lost it: it was powered
    on and let it go (a clean stop), or it was powered off, which is safe only when the fence
    log has X fenced after X took the IP and before Y took it, or when X came back and rejoined
    (its new daemon reported that it runs nothing) before Y took it."""
    out = []
    holder: str | None = None
    since = 0.0  # when the current (or last) holder was last seen taking the IP
    lost_powered: bool | None = None  # was the last holder powered on when it was seen without
    lost_at = 0.0
    for s in samples:
        current = s.seen[0] if len(s.seen) == 1 else None
        if holder is not None and holder not in s.seen and lost_powered is None:
            lost_powered, lost_at = holder in s.powered, s.t
        if current is not None and current == holder and lost_powered is not None:
            since, lost_powered = s.t, None  # the same node took it again: a new holding
        if current is None or current == holder:
            continue
        if holder is not None:
            offs = [
                t
                for t, action, host in fences
                if host == holder and action in ("off", "reboot") and since <= t <= s.t
            ]
            if offs:
                out.append(Takeover(s.t, holder, current, "fenced", offs[0]))
            elif lost_powered:
                out.append(Takeover(s.t, holder, current, "released", None))
            elif rejoined(views, holder, lost_at, s.t):
                out.append(Takeover(s.t, holder, current, "rejoined", None))
            else:
                out.append(Takeover(s.t, holder, current, "unfenced", None))
        holder, since, lost_powered = current, s.t, None
    return out


@dataclass
class Availability:
    requests: int
    answered: int
    fraction: float
    outages: int
    outage_median: float
    outage_max: float
    outage_total: float
    outage_list: list[tuple[float, float]] = field(default_factory=list)


def availability(responses: Sequence[Response], since: float | None = None) -> Availability:
    """The fraction of requests answered and the outages: from the last answer before a run
    of failed requests to the first answer after it (a run still open at the end counts to
    the last request)."""
    rs = [r for r in sorted(responses, key=lambda r: r.start) if since is None or r.start >= since]
    answered = sum(r.ok for r in rs)
    outages: list[tuple[float, float]] = []
    last_ok = rs[0].start if rs else 0.0
    failing = False
    for r in rs:
        if r.ok:
            if failing:
                outages.append((last_ok, r.end))
            last_ok, failing = r.end, False
        else:
            failing = True
    if failing and rs:
        outages.append((last_ok, rs[-1].end))
    lengths = [b - a for a, b in outages]
    return Availability(
        requests=len(rs),
        answered=answered,
        fraction=answered / len(rs) if rs else 0.0,
        outages=len(outages),
        outage_median=statistics.median(lengths) if lengths else 0.0,
        outage_max=max(lengths, default=0.0),
        outage_total=sum(lengths),
        outage_list=outages,
    )


# ====================================================================== the nemesis
@dataclass
class Event:
    t: float
    kind: str
    nodes: list[str]
    detail: str = ""


class Nemesis:
    """Seeded faults against the cluster, each logged as an Event."""

    KINDS = ("cut", "partition", "one-way", "kill", "pause", "crash")

    def __init__(
        self,
        cluster: Cluster,
        rng: random.Random,
        deadtime: float,
        holder: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.c, self.rng, self.deadtime = cluster, rng, deadtime
        self.holder = holder  # the node that holds the floating IP now, if one does
        self.events: list[Event] = []
        self.faulted: set[str] = set()  # nodes hit since the last heal
        self.errors: list[str] = []

    def log(self, kind: str, nodes: Sequence[str], detail: str = "") -> None:
        self.events.append(Event(time.monotonic(), kind, list(nodes), detail))

    def host(self, name: str) -> Host:
        host = self.c[name].host
        if host is None:
            raise RuntimeError("the nemesis needs a namespace cluster")
        return host

    def powered_on(self, name: str) -> bool:
        """Every own address of the host is there: a power-off (ours or the fence device's)
        flushes them, and one missing means a power-off was under way when we looked."""
        host = self.host(name)
        out = host.run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
        return all(f" {addr}/" in out for addr in host.addresses)

    def power_on(self, name: str) -> None:
        """Host.power_on made idempotent (`addr replace`): a host the fence device was still
        powering off when we looked may have kept some of its addresses."""
        host = self.host(name)
        cmds = []
        for j, addr in enumerate(host.addresses):
            cmds += [f"addr replace {addr}/24 brd + dev eth{j}", f"link set eth{j} up"]
        subprocess.run(
            ["ip", "-n", host.netns, "-batch", "-"],
            input="\n".join(cmds) + "\n",
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )

    def fault(self) -> None:
        """One random fault on a node not hit since the last heal (at most two such nodes);
        half of the time on the node holding the IP, since only its faults move the service."""
        kind = self.rng.choice(self.KINDS)
        spared = [n for n in self.c.names if n not in self.faulted]
        victim = self.rng.choice(spared)
        holder = self.holder()
        if holder in spared and self.rng.random() < 0.5:
            victim = holder
        lab = self.host(victim).lab
        if kind == "cut":
            lab.cut(victim)
            self.log(kind, [victim], "every link, both directions")
        elif kind == "partition":
            others = [n for n in self.c.names if n != victim]
            lab.partition([victim], others)
            self.log(kind, [victim], f"from {others} (the client still reaches it)")
        elif kind == "one-way":
            peer = self.rng.choice([n for n in self.c.names if n != victim])
            lab.cut_between(victim, peer, one_way=True)
            self.log(kind, [victim, peer], f"{victim} -> {peer} dropped")
        elif kind == "kill":
            if self.c[victim].running:
                self.c.kill(victim)
            self.log(kind, [victim], "SIGKILL to the daemon")
        elif kind == "pause":
            hold = self.deadtime * self.rng.uniform(1.5, 4.0)
            self.c.stop(victim)
            self.log(kind, [victim], f"SIGSTOP for {hold:.2f} s")
            time.sleep(hold)
            self.c.cont(victim)
            self.log("resume", [victim], "SIGCONT")
        else:
            if self.powered_on(victim):
                self.c.crash(victim)
            self.log(kind, [victim], "power off")
        self.faulted.add(victim)

    def revive(self, name: str) -> str:
        """Bring one node back as an operator would: power a host that is off on and start
        its daemon (a daemon left running in a host that is off is killed first), start a
        daemon that died, resume a paused one. Returns what was done ("" for nothing)."""
        node = self.c[name]
        if not self.powered_on(name):
            if node.running:
                self.c.kill(name)
            self.power_on(name)
            self.c.start(name)
            return "power on + start"
        if not node.running:
            self.c.start(name)
            return "start"
        self.c.cont(name)  # a no-op unless it is paused
        return ""

    def recover(self) -> None:
        """Revive every node that needs it, without removing cuts (there are none left)."""
        for name in self.c.names:
            what = self.revive(name)
            if what:
                self.log("revive", [name], what)

    def heal(self) -> None:
        self.host(self.c.names[0]).lab.heal()
        done = {name: self.revive(name) for name in self.c.names}
        self.log(
            "heal",
            [n for n, what in done.items() if what],
            "; ".join(f"{n}: {what}" for n, what in done.items() if what),
        )
        self.faulted.clear()

    def run(self, until: float) -> None:
        """Faults until `until` (time.monotonic()): hold 1-5 s, then heal and give the cluster
        2-6 s, or (one time in three, and while a node is left untouched) compound."""
        while time.monotonic() < until:
            self.step(self.fault)
            time.sleep(min(self.rng.uniform(1.0, 5.0), max(0.0, until - time.monotonic())))
            if len(self.faulted) < 2 and self.rng.random() < 1 / 3:
                continue
            self.step(self.heal)
            time.sleep(min(self.rng.uniform(2.0, 6.0), max(0.0, until - time.monotonic())))
        self.step(self.heal)

    def step(self, action: Callable[[], object]) -> None:
        """Run one nemesis action; a lab command that fails (a race with the fence device) is
        recorded and the run goes on: the next heal, or the final recovery, tries again."""
        try:
            action()
        except (RuntimeError, OSError, subprocess.SubprocessError) as err:
            self.errors.append(f"{type(err).__name__}: {err}")
            self.log("nemesis-error", [], f"{type(err).__name__}: {err}")


# ====================================================================== the run
@dataclass
class Config:
    duration: float = 150.0
    seed: int = 1
    report: Path | None = None
    keepalive: float = 0.2
    deadtime: float = 1.0
    initdead: float = 5.0
    recovery: float = 90.0  # seconds the cluster has to serve again after the final heal
    prefer: str | None = "n1"  # a node the group prefers (moves back when it returns)
    keep: bool = False  # leave the lab's files (node logs) in place
    quiet: bool = False


@dataclass
class Report:
    seed: int
    duration: float
    events: list[Event]
    incidents: list[Incident]
    takeovers: list[Takeover]
    availability: Availability
    recovered: bool
    recovery_seconds: float | None
    fences: list[tuple[float, str, str]]
    samples: int
    arp_requests: int
    arp_answers: int
    observer_errors: list[str]
    nemesis_errors: list[str]
    timeline: list[str]
    workdir: str

    @property
    def ok(self) -> bool:
        return not self.incidents and self.recovered and not self.observer_errors

    def summary(self) -> str:
        a = self.availability
        lines = [
            f"jepsen seed={self.seed} nemesis={self.duration:g}s events={len(self.events)} "
            f"samples={self.samples} arp={self.arp_requests}/{self.arp_answers} "
            f"fences={len(self.fences)} takeovers={len(self.takeovers)}",
            f"dual-active incidents: {len(self.incidents)}",
            f"availability: {a.answered}/{a.requests} requests answered ({a.fraction:.1%}); "
            f"outages: {a.outages}, median {a.outage_median:.2f} s, max {a.outage_max:.2f} s, "
            f"total {a.outage_total:.1f} s",
            "takeovers: "
            + ", ".join(
                f"{k}={sum(t.how == k for t in self.takeovers)}"
                for k in ("fenced", "released", "rejoined", "unfenced")
            ),
            "recovered after the final heal in "
            + (f"{self.recovery_seconds:.1f} s" if self.recovered else "NEVER (stuck cluster)"),
        ]
        lines += [f"incident: {i.kind} at {i.t:.3f}: {i.detail}" for i in self.incidents]
        lines += [f"observer error: {e}" for e in self.observer_errors]
        lines += [f"nemesis error (the run went on): {e}" for e in self.nemesis_errors]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["availability"].pop("outage_list")
        data["availability"]["outage_periods"] = self.availability.outage_list
        data["ok"] = self.ok
        return data


def fence_entries(log: Path, offset: float) -> list[tuple[float, str, str]]:
    """The fence script's log with its wall-clock times moved to time.monotonic()."""
    from hastack.lab.services import fence_log

    return [(t - offset, action, host) for t, action, host in fence_log(log)]


def counter_cib(
    vip: str, port: int, stonith: str, prefer: str | None, monitor: str = "1s"
) -> bytes:
    """Fencing on, and the group ``web``: the floating IP, then the counter."""
    from hastack.lab.services import web_cib

    opts = f"-m hastack.lab.jepsen counter --port {port}"
    return web_cib(vip, monitor=monitor, prefer=prefer, stonith=stonith, service=("counter", opts))


def _say(cfg: Config, text: str) -> None:
    if not cfg.quiet:
        print(text, flush=True)


def _serving(responses: Sequence[Response], since: float) -> bool:
    """The last three requests sent after `since` were all answered."""
    recent = [r for r in responses if r.start >= since][-3:]
    return len(recent) == 3 and all(r.ok for r in recent)


def _log_stamp(line: str) -> float | None:
    try:
        head = line.split(" ", 1)[0]
        base, ms = head.split(".")
        return time.mktime(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(ms) / 1000
    except (ValueError, IndexError):
        return None


def log_excerpt(
    text: str, wall: float, before: float = 3.0, after: float = 3.0, limit: int = 60
) -> list[str]:
    """The lines of a node log stamped within [wall - before, wall + after]."""
    out = []
    for line in text.splitlines():
        stamp = _log_stamp(line)
        if stamp is not None and wall - before <= stamp <= wall + after:
            out.append(line)
    return out[-limit:]


def timeline(
    report_t: float,
    events: Sequence[Event],
    samples: Sequence[Sample],
    responses: Sequence[Response],
    fences: Sequence[tuple[float, str, str]],
    around: float = 3.0,
    views: Sequence[View] = (),
) -> list[str]:
    """What happened within `around` seconds of `report_t`: nemesis events, fences, changes of
    the observed state, of each node's membership and of the answering node (times relative
    to report_t)."""
    rows: list[tuple[float, str]] = []
    members: dict[str, tuple[str, ...]] = {}
    for v in views:
        if abs(v.t - report_t) <= around and members.get(v.node) != v.members:
            rows.append((v.t, f"membership of {v.node}: {list(v.members)}"))
        members[v.node] = v.members
    for e in events:
        if abs(e.t - report_t) <= around:
            rows.append((e.t, f"nemesis {e.kind} {e.nodes} {e.detail}"))
    for t, action, host in fences:
        if abs(t - report_t) <= around:
            rows.append((t, f"fence {action} {host}"))
    last: tuple[Any, ...] | None = None
    for s in samples:
        key = (s.held, s.seen, s.powered, s.client_mac)
        if abs(s.t - report_t) <= around and key != last:
            rows.append(
                (
                    s.t,
                    f"observed held={list(s.held)} seen={list(s.seen)} "
                    f"powered={list(s.powered)} client-arp={s.client_mac}",
                )
            )
        last = key
    prev: str | None = "?"
    for r in responses:
        who = r.node if r.ok else f"fail:{r.error}"
        if abs(r.end - report_t) <= around and who != prev:
            rows.append((r.end, f"client {who}" + (f" value={r.value}" if r.ok else "")))
        prev = who
    return [f"{t - report_t:+8.3f} {text}" for t, text in sorted(rows)]


def run(cfg: Config) -> Report:
    """The whole run: a fenced 3-node cluster with a client and a watcher host, the client and
    observer started, the nemesis for cfg.duration seconds, a final heal, then the checks."""
    from hastack.lab.cluster import Cluster, Timers, converged, hastack_env
    from hastack.lab.services import external_fence_primitive, floating_ip, lab_fence_script

    rng = random.Random(cfg.seed)
    offset = time.time() - time.monotonic()
    cluster_box: dict[str, Path] = {}

    def cib(c: Cluster) -> bytes:
        assert c.lab is not None and c.workdir is not None
        log, script = Path(c.workdir) / "fence.log", Path(c.workdir) / "fence-lab.sh"
        cluster_box["log"] = log
        lab_fence_script(c.lab, NODES, script, log)
        return counter_cib(
            floating_ip(c), COUNTER_PORT, external_fence_primitive(script, NODES), cfg.prefer
        )

    timers = Timers(keepalive=cfg.keepalive, deadtime=cfg.deadtime, initdead=cfg.initdead)
    with Cluster(
        list(NODES),
        mode="netns",
        timers=timers,
        links=2,
        keep=cfg.keep,
        extra_hosts=[CLIENT, WATCHER],
        cib=cib,
    ) as c:
        assert c.lab is not None and c.workdir is not None
        vip = floating_ip(c)
        fence_path = cluster_box["log"]
        _say(cfg, f"jepsen: seed {cfg.seed}, cluster in {c.workdir}, floating IP {vip}")
        c.wait_converged(timeout=60)
        client_log = Path(c.workdir) / "client.log"

        client = c.lab[CLIENT].start(
            [
                sys.executable,
                "-m",
                "hastack.lab.jepsen",
                "client",
                "--vip",
                vip,
                "--port",
                str(COUNTER_PORT),
            ],
            log_path=str(client_log),
            env=hastack_env(),
        )
        observer = Observer(
            {n: c.lab[n].netns for n in NODES},
            c.lab[CLIENT].netns,
            c.lab[WATCHER].netns,
            vip,
            {n: c.lab[n].addr(0) for n in NODES},
            arp_source_pool(c.lab),
            status=lambda name: c[name].status(timeout=0.2),
        )
        observer.start()
        nemesis = Nemesis(c, rng, cfg.deadtime, holder=observer.holder)
        try:
            t_setup = time.monotonic()
            while not _serving(parse_client_log(client_log.read_text()), t_setup):
                if time.monotonic() - t_setup > 60:
                    raise RuntimeError(
                        f"the counter never answered through the floating IP (see {c.workdir})"
                    )
                time.sleep(0.2)
            t0 = time.monotonic()
            nemesis.log("start", [], f"seed {cfg.seed}")
            _say(cfg, f"jepsen: serving; nemesis for {cfg.duration:g} s")
            nemesis.run(t0 + cfg.duration)
            t_heal = time.monotonic()
            recovered_at: float | None = None
            while time.monotonic() - t_heal < cfg.recovery:
                responses = parse_client_log(client_log.read_text())
                held = observer.samples[-1].held if observer.samples else ()
                states = c.statuses(NODES)
                if len(held) == 1 and converged(states, NODES) and _serving(responses, t_heal):
                    recovered_at = time.monotonic()
                    break
                nemesis.step(nemesis.recover)  # a node fenced meanwhile comes back
                time.sleep(0.5)
            nemesis.log("end", [], "recovered" if recovered_at else "not recovered")
            time.sleep(1.0)  # a last look: a second holder right after recovery would show
        finally:
            observer.stop()
            client.term()
            client.wait(5)
        responses = parse_client_log(client_log.read_text())
        fences = fence_entries(fence_path, offset)
        samples = observer.samples
        incidents = dual_vip(samples) + dual_arp(observer.arp, observer.macs)
        incidents += dual_answers(responses)
        moves = takeovers(samples, fences, observer.views)
        incidents += [
            Incident(
                "takeover",
                m.t,
                [m.source, m.target],
                f"{m.target} took the IP from {m.source}, which was neither fenced nor released it",
            )
            for m in moves
            if m.how == "unfenced"
        ]
        incidents.sort(key=lambda i: i.t)
        lines: list[str] = []
        for inc in incidents[:5]:
            lines.append(f"--- {inc.kind} at {inc.t:.3f}: {inc.detail}")
            lines += timeline(
                inc.t, nemesis.events, samples, responses, fences, views=observer.views
            )
            for name in NODES:
                excerpt = log_excerpt(c[name].log(), inc.t + offset)
                lines += [f"  [{name}.log] {line}" for line in excerpt]
        if recovered_at is None:
            lines.append(f"--- stuck: no recovery within {cfg.recovery:g} s of the final heal")
            lines += timeline(
                time.monotonic(),
                nemesis.events,
                samples,
                responses,
                fences,
                around=cfg.recovery,
                views=observer.views,
            )[-80:]
            lines.append(f"statuses: {c.statuses(NODES)}")
            for name in NODES:
                lines += [f"  [{name}.log] {line}" for line in c[name].log().splitlines()[-30:]]
        report = Report(
            seed=cfg.seed,
            duration=cfg.duration,
            events=nemesis.events,
            incidents=incidents,
            takeovers=moves,
            availability=availability(responses, since=t0),
            recovered=recovered_at is not None,
            recovery_seconds=None if recovered_at is None else recovered_at - t_heal,
            fences=fences,
            samples=len(samples),
            arp_requests=observer.arp_requests,
            arp_answers=len(observer.arp),
            observer_errors=observer.errors,
            nemesis_errors=nemesis.errors,
            timeline=lines,
            workdir=str(c.workdir),
        )
        if cfg.report is not None:
            cfg.report.write_text(json.dumps(report.to_json(), indent=1) + "\n")
            if not report.ok:  # the evidence outlives the lab: logs, scheduler inputs
                saved = keep_files(Path(c.workdir), cfg.report.with_name(cfg.report.stem + "-lab"))
                report.timeline.append(f"the lab's files are kept in {saved}")
        return report


def keep_files(workdir: Path, dest: Path) -> Path:
    """Copy the regular files under `workdir` (node logs, configurations, scheduler inputs,
    histories, the client and fence logs) to `dest`; sockets and the like are left out."""
    for path in workdir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            target = dest / path.relative_to(workdir)
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copy2(path, target)
    return dest


# ====================================================================== command line
def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["counter"]:
        p = argparse.ArgumentParser(
            prog="hastack.lab.jepsen counter",
            description="The counter service (run by the cluster).",
        )
        p.add_argument("--port", type=int, default=COUNTER_PORT)
        p.add_argument("--node", help="the name to answer with (default: from HA_VARRUN)")
        p.add_argument("--state", help="the state file (default: HA_VARRUN/jepsen-counter.state)")
        a = p.parse_args(args[1:])
        serve_counter(a.port, *counter_identity(a.node, a.state))
        return 0
    if args[:1] == ["client"]:
        p = argparse.ArgumentParser(
            prog="hastack.lab.jepsen client",
            description="Increment the counter through the floating IP.",
        )
        p.add_argument("--vip", required=True)
        p.add_argument("--port", type=int, default=COUNTER_PORT)
        p.add_argument("--interval", type=_positive, default=CLIENT_INTERVAL)
        p.add_argument("--timeout", type=_positive, default=CLIENT_TIMEOUT)
        p.add_argument("--workers", type=int, choices=range(1, 9), default=2, metavar="1..8")
        a = p.parse_args(args[1:])
        run_client(a.vip, a.port, a.interval, a.timeout, sys.stdout, a.workers)
        return 0
    p = argparse.ArgumentParser(
        prog="python -m hastack.lab.jepsen",
        description="Random partitions, kills, pauses and crashes against a fenced 3-node lab "
        "cluster with a floating IP and a counter; checks for dual-active periods and reports "
        "availability. Needs root (network namespaces).",
    )
    p.add_argument("--duration", type=_positive, default=150.0, help="seconds of nemesis")
    p.add_argument("--seed", type=int, default=None, help="the nemesis's seed (default: random)")
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="write the JSON report here (default: jepsen-SEED.json)",
    )
    p.add_argument("--deadtime", type=_positive, default=1.0)
    p.add_argument("--keepalive", type=_positive, default=0.2)
    p.add_argument(
        "--recovery",
        type=_positive,
        default=90.0,
        help="seconds the cluster has to serve again after the final heal",
    )
    p.add_argument(
        "--no-prefer",
        action="store_true",
        help="no location preference (the group stays where it is)",
    )
    p.add_argument("--keep", action="store_true", help="keep the lab's files (node logs)")
    a = p.parse_args(args)
    if a.keepalive >= a.deadtime:
        p.error(f"--keepalive ({a.keepalive:g}) must be shorter than --deadtime ({a.deadtime:g})")
    from hastack.lab.netns import lab_unavailable_reason

    reason = lab_unavailable_reason()
    if reason:
        print(f"jepsen: {reason}", file=sys.stderr)
        return 2
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)
    cfg = Config(
        duration=a.duration,
        seed=seed,
        report=a.report or Path(f"jepsen-{seed}.json"),
        keepalive=a.keepalive,
        deadtime=a.deadtime,
        recovery=a.recovery,
        prefer=None if a.no_prefer else "n1",
        keep=a.keep,
    )
    report = run(cfg)
    print(report.summary())
    for line in report.timeline:
        print(line)
    print(f"jepsen: report in {cfg.report}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
