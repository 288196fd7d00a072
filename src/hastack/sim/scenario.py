"""A random schedule of faults, drawn from one seeded generator.

The run alternates fault windows with quiet periods long enough for the liveness invariants
(c) and (d) to be checked; within a window one to three faults of the chosen kinds overlap.
Durations are drawn relative to the timers so a schedule means the same at 100 ms or 1 s.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from hastack.config.model import Timing
from hastack.sim.bounds import Bounds

NET_KINDS: tuple[str, ...] = ("loss", "delay", "reorder", "dup", "partition", "asym")
FAULT_KINDS: tuple[str, ...] = (*NET_KINDS, "crash", "pause", "drift")
# Kinds drawn only when asked for (or by the fencing mode's default), so that the seeds of
# the other modes keep their schedules: `flap` cuts and heals one partition several times in
# a row; `dcpause` pauses whichever node is DC at that moment for longer than its lease (it
# wakes up deposed: its old orders must be refused, and it must be fenced before its
# resources move); `qserver` gives the cluster a quorum server (hastack.sim.qserver: the real
# server core on a host of its own, the real client core on every node) and crashes its
# process for a window (its state and connections are lost; it starts again at the end).
# Among other kinds, only a share of the seeds get a quorum server (alone, every seed gets
# one): the others keep running two-node clusters' fence race, and the server's heartbeats
# (a report and a vote per node every keepalive, through the real cores) make a seed that
# has one cost about two thirds more; these shares keep the fencing sweep within about 5% of
# its time without the server. Two sites of one node are what a quorum server is for:
# two-node clusters get one more often.
EXTRA_KINDS: tuple[str, ...] = ("flap", "dcpause", "qserver")
QSERVER_SHARE = {2: 0.15}  # by node count
QSERVER_SHARE_OTHERS = 0.04
# The server's lease (`hastack qserver serve --lease`), x deadtime, drawn per seed; the lab's
# quorum-server test runs 1 s at deadtime 0.5 s. Shorter than deadtime renews it more often
# than the heartbeats go round; longer keeps a vote (and holds its move) for longer.
QSERVER_LEASE_DEADTIMES = (0.5, 4.0)
QSERVER_TIE_BREAKERS = ("lowest", "highest", "resources")
# How long the server's process stays down, x deadtime: from less than a lease to several.
QSERVER_DOWN_DEADTIMES = (0.5, 8.0)
# With a quorum server, a drawn fault is its crash this often besides its own draw: a seed
# is the costly part, so the seeds that have a server see it fail often.
QSERVER_DOWN_BIAS = 0.25
FENCING_FAULT_KINDS: tuple[str, ...] = (*FAULT_KINDS, *EXTRA_KINDS)


@dataclass(frozen=True)
class NetFault:
    """A network fault acting on directed node pairs on some links from `start` to `end`."""

    kind: str
    start: float
    end: float
    links: tuple[int, ...]  # link indexes
    pairs: tuple[tuple[int, int], ...]  # (src, dst) node indexes, directed
    value: float = 0.0  # loss/dup probability, extra delay or jitter in seconds
    groups: tuple[tuple[int, ...], ...] = ()  # partition: the sides, for the log

    def describe(self, names: list[str], links: tuple[str, ...]) -> str:
        where = "all links" if len(self.links) == len(links) else links[self.links[0]]
        if self.kind == "partition":
            sides = " | ".join(",".join(names[i] for i in g) for g in self.groups)
            return f"partition [{sides}] on {where}"
        shown = ", ".join(f"{names[s]}->{names[d]}" for s, d in self.pairs[:6])
        more = f" (+{len(self.pairs) - 6})" if len(self.pairs) > 6 else ""
        what = self.kind if self.kind == "asym" else f"{self.kind} {self.value:.3g}"
        return f"{what} on {where}: {shown}{more}"


@dataclass(frozen=True)
class Crash:
    node: int
    at: float
    restart_after: float
    graceful: bool  # leave() first, like a clean `systemctl stop`


@dataclass(frozen=True)
class Pause:
    node: int
    at: float
    duration: float
    dc: bool = False  # pause the DC of that moment instead (`node` when there is none)


@dataclass(frozen=True)
class RateChange:
    node: int
    at: float
    rate: float


@dataclass(frozen=True)
class QServerHost:
    """The cluster's quorum server: a host of its own (index `nodes` in a NetFault's pairs,
    a RateChange's node), reached by every node over the first link's network."""

    lease: float  # --lease, seconds
    tie_breaker: str  # --tie-breaker
    offset: float  # its clock reading at real time 0
    rate: float  # its initial clock rate


@dataclass(frozen=True)
class QServerDown:
    """The quorum server's process crashes at `at` and is started again `duration` later."""

    at: float
    duration: float


@dataclass(frozen=True)
class Scenario:
    offsets: tuple[float, ...]  # each node's clock reading at real time 0
    rates: tuple[float, ...]  # each node's initial clock rate
    start_at: tuple[float, ...]  # when each node's first process starts
    net: tuple[NetFault, ...]
    crashes: tuple[Crash, ...]
    pauses: tuple[Pause, ...]
    rate_changes: tuple[RateChange, ...]
    windows: tuple[tuple[float, float], ...]  # the fault windows, for the summary
    qserver: QServerHost | None = None  # None: the cluster has no quorum server
    qserver_downs: tuple[QServerDown, ...] = ()


def parse_faults(text: str) -> tuple[str, ...]:
    """`loss,crash` -> ("loss", "crash"); "all" or "" -> every kind but the extra ones
    (EXTRA_KINDS, named explicitly). Raises ValueError."""
    if text.strip() in ("", "all"):
        return FAULT_KINDS
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    unknown = [k for k in kinds if k not in FENCING_FAULT_KINDS]
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {', '.join(unknown)}; allowed: {', '.join(FENCING_FAULT_KINDS)}"
        )
    return kinds


def auto_duration(
    bounds: Bounds,
    timing: Timing,
    windows: int = 2,
    extra_quiet: float = 0.0,
    extra_warmup: float | None = None,
) -> float:
    """A run long enough for the warm-up and `windows` fault windows with their quiet periods
    (each `extra_quiet` longer: the resource manager's convergence needs more than (d); the
    warm-up `extra_warmup` longer, `extra_quiet` when None)."""
    return round(
        _warmup(bounds, timing, extra_quiet if extra_warmup is None else extra_warmup)
        + windows * (_quiet(bounds, timing, extra_quiet) + 6 * timing.deadtime)
    )


def _warmup(bounds: Bounds, timing: Timing, extra: float = 0.0) -> float:
    return bounds.converge + 2 * timing.deadtime + extra


def _quiet(bounds: Bounds, timing: Timing, extra: float = 0.0) -> float:
    # After the last fault a fenced node may still be powered off and restarted (fence delay
    # up to deadtime, restart up to 2 x deadtime), then (d) needs `converge`, then a few samples.
    return bounds.converge + 3 * timing.deadtime + 4 * bounds.sample + extra


class ScenarioBuilder:
    def __init__(
        self,
        rng: random.Random,
        nodes: int,
        links: int,
        kinds: tuple[str, ...],
        duration: float,
        timing: Timing,
        bounds: Bounds,
        extra_quiet: float = 0.0,
        extra_warmup: float | None = None,
    ) -> None:
        self.extra_quiet = extra_quiet
        # the first start needs no fencing retries: fencing runs warm up shorter than quiet
        self.extra_warmup = extra_quiet if extra_warmup is None else extra_warmup
        self.rng = rng
        self.n = nodes
        self.links = links
        self.kinds = kinds
        self.duration = duration
        self.t = timing
        self.bounds = bounds
        self.net: list[NetFault] = []
        self.crashes: list[Crash] = []
        self.pauses: list[Pause] = []
        self.rate_changes: list[RateChange] = []
        self.qserver_downs: list[QServerDown] = []
        self.hosts = nodes  # the nodes, and the quorum server when there is one

    def build(self) -> Scenario:
        rng, t = self.rng, self.t
        drift = "drift" in self.kinds
        qserver = None
        if "qserver" in self.kinds:
            # Drawn only when asked for: the seeds of every other mix keep their schedules.
            share = QSERVER_SHARE.get(self.n, QSERVER_SHARE_OTHERS)
            if len(self.kinds) == 1 or rng.random() < share:
                self.hosts = self.n + 1
                qserver = QServerHost(
                    lease=rng.uniform(*QSERVER_LEASE_DEADTIMES) * t.deadtime,
                    tie_breaker=rng.choice(QSERVER_TIE_BREAKERS),
                    offset=rng.uniform(10.0, 100000.0),
                    rate=self._rate() if drift else 1.0,
                )
            else:
                self.kinds = tuple(k for k in self.kinds if k != "qserver")
        offsets = tuple(rng.uniform(10.0, 100000.0) for _ in range(self.n))
        rates = tuple(self._rate() if drift else 1.0 for _ in range(self.n))
        start_at = tuple(rng.uniform(0.0, t.deadtime) for _ in range(self.n))
        windows: list[tuple[float, float]] = []
        at = max(start_at) + _warmup(self.bounds, t, self.extra_warmup)
        quiet = _quiet(self.bounds, t, self.extra_quiet)
        while self.kinds and at + 2 * t.deadtime + quiet <= self.duration:
            length = rng.uniform(2.0, 8.0) * t.deadtime
            length = min(length, self.duration - quiet - at)
            end = at
            for _ in range(rng.randint(1, 3)):
                kind = rng.choice(self.kinds)
                if self.hosts > self.n and kind != "qserver" and rng.random() < QSERVER_DOWN_BIAS:
                    kind = "qserver"
                start = at + rng.uniform(0.0, 0.7) * length
                end = max(end, self._fault(kind, start, at + length))
            windows.append((at, end))
            at = end + quiet * rng.uniform(1.0, 1.3)
        return Scenario(
            offsets=offsets,
            rates=rates,
            start_at=start_at,
            net=tuple(self.net),
            crashes=tuple(self.crashes),
            pauses=tuple(self.pauses),
            rate_changes=tuple(self.rate_changes),
            windows=tuple(windows),
            qserver=qserver,
            qserver_downs=tuple(self.qserver_downs),
        )

    def _rate(self) -> float:
        d = self.t.max_drift
        # the extremes are where the lease arithmetic is tight: draw them often
        return self.rng.choice((1.0 - d, 1.0 + d, self.rng.uniform(1.0 - d, 1.0 + d)))

    def _fault(self, kind: str, start: float, window_end: float) -> float:
        """Add one fault starting at `start`; returns when it is over."""
        rng, t = self.rng, self.t
        span = max(window_end - start, t.keepalive)
        end = start + rng.uniform(0.2, 1.0) * span
        node = rng.randrange(self.n)
        if kind == "crash":
            after = rng.uniform(0.2, 4.0) * t.deadtime
            self.crashes.append(Crash(node, start, after, graceful=rng.random() < 0.25))
            return start + after
        if kind == "pause":
            # often longer than deadtime (and than a lease): the dangerous case
            duration = rng.uniform(0.2, 4.0) * t.deadtime
            self.pauses.append(Pause(node, start, duration))
            return start + duration
        if kind == "dcpause":
            # longer than the lease: the DC wakes up deposed, half of the time before the
            # others could fence it (its buffered timers and messages run first), else after
            longest = max(t.lease, t.deadtime)
            if rng.random() < 0.5:
                duration = rng.uniform(1.05, 1.6) * t.lease
            else:
                duration = rng.uniform(1.6, 4.0) * longest
            self.pauses.append(Pause(node, start, duration, dc=True))
            return start + duration
        if kind == "qserver":
            duration = rng.uniform(*QSERVER_DOWN_DEADTIMES) * t.deadtime
            self.qserver_downs.append(QServerDown(start, duration))
            return start + duration
        hosts = self.hosts
        if kind == "drift":
            if hosts > self.n and rng.random() < 1 / hosts:
                node = self.n  # the quorum server's clock
            self.rate_changes.append(RateChange(node, start, self._rate()))
            return start
        links = self._links()
        if kind == "partition":
            groups = self._groups()
            side = {i: g for g, members in enumerate(groups) for i in members}
            pairs = tuple((s, d) for s in range(hosts) for d in range(hosts) if side[s] != side[d])
            self.net.append(NetFault(kind, start, end, links, pairs, groups=groups))
            return end
        if kind == "flap":
            # one cut, healed and cut again 3-6 times: each cut long enough to be noticed
            # or not, each heal short enough that the cluster has not settled
            groups = self._groups()
            side = {i: g for g, members in enumerate(groups) for i in members}
            pairs = tuple((s, d) for s in range(hosts) for d in range(hosts) if side[s] != side[d])
            at = start
            for _ in range(rng.randint(3, 6)):
                cut = rng.uniform(0.3, 2.0) * t.deadtime
                self.net.append(NetFault("partition", at, at + cut, links, pairs, groups=groups))
                at += cut + rng.uniform(0.1, 1.0) * t.deadtime
            return at
        if kind == "asym":
            cut = rng.sample(range(hosts), rng.randint(1, hosts - 1))
            rest = [i for i in range(hosts) if i not in cut]
            out_of_cut = rng.random() < 0.5
            pairs = (
                tuple((s, d) for s in cut for d in rest)
                if out_of_cut
                else tuple((s, d) for s in rest for d in cut)
            )
            self.net.append(NetFault(kind, start, end, links, pairs))
            return end
        value = {
            "loss": lambda: rng.choice((rng.uniform(0.2, 0.7), rng.uniform(0.7, 1.0), 1.0)),
            "delay": lambda: rng.uniform(0.05, 1.5) * t.deadtime,
            "reorder": lambda: rng.uniform(1.0, 4.0) * t.keepalive,
            "dup": lambda: rng.uniform(0.2, 0.9),
        }[kind]()
        self.net.append(NetFault(kind, start, end, links, self._pairs(), value))
        return end

    def _links(self) -> tuple[int, ...]:
        if self.links == 1 or self.rng.random() < 0.6:
            return tuple(range(self.links))
        return (self.rng.randrange(self.links),)

    def _groups(self) -> tuple[tuple[int, ...], ...]:
        """The sides of a cut; the quorum server (when there is one) lands on one of them or
        on a side of its own (cut off from every node)."""
        hosts = self.hosts
        order = list(range(hosts))
        self.rng.shuffle(order)
        # two nodes and a quorum server: three sides is each site and the server alone
        three = hosts >= 4 or hosts > self.n
        sides = 3 if three and self.rng.random() < 0.25 else 2
        cuts = sorted(self.rng.sample(range(1, hosts), sides - 1))
        bounds = [0, *cuts, hosts]
        return tuple(tuple(sorted(order[a:b])) for a, b in itertools.pairwise(bounds))

    def _pairs(self) -> tuple[tuple[int, int], ...]:
        rng, n = self.rng, self.hosts
        every = [(s, d) for s in range(n) for d in range(n) if s != d]
        node = rng.randrange(n)
        scope = rng.choice(("all", "all", "from", "to", "node", "pair"))
        if scope == "all":
            return tuple(every)
        if scope == "from":
            return tuple(p for p in every if p[0] == node)
        if scope == "to":
            return tuple(p for p in every if p[1] == node)
        if scope == "node":
            return tuple(p for p in every if node in p)
        return (rng.choice(every),)


def generate_scenario(
    rng: random.Random,
    nodes: int,
    links: int,
    kinds: tuple[str, ...],
    duration: float,
    timing: Timing,
    bounds: Bounds,
    extra_quiet: float = 0.0,
    extra_warmup: float | None = None,
) -> Scenario:
    return ScenarioBuilder(
        rng, nodes, links, kinds, duration, timing, bounds, extra_quiet, extra_warmup
    ).build()
