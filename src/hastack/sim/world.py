"""The simulated world: an event queue in real time, node clocks, the network and processes.

Determinism: every random draw comes from generators seeded from the run's one seed; the
event queue breaks ties by insertion order; nodes are kept in lists, never iterated from sets.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
import struct
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from hastack.membership.effects import Effect, Fence, Log, Send, SendPing
from hastack.membership.params import CoreParams
from hastack.sim.bounds import Bounds, derive_bounds
from hastack.sim.clock import SimClock
from hastack.sim.crm import ControllerFactory, CrmWorld, derive_crm_bounds, derive_fencing_bounds
from hastack.sim.fencing import FenceWorld
from hastack.sim.network import Network
from hastack.sim.params import with_quorum_server
from hastack.sim.qserver import Q_DOWN, Q_UP, QServerWorld
from hastack.sim.result import SimConfig, SimResult, Violation
from hastack.sim.scenario import (
    Crash,
    NetFault,
    Pause,
    RateChange,
    Scenario,
    auto_duration,
    generate_scenario,
)

INF = math.inf
MAX_STUCK_TICKS = 1000  # ticks in a row at one instant: the core is not advancing its deadline
PING_DELAY = (0.0003, 0.002)

# event kinds
DELIVER, TICK, PING, FENCE_DONE, FENCE_OFF = 0, 1, 2, 3, 4
NET_START, NET_END, CRASH, RESTART, PAUSE, RESUME, RATE, SAMPLE, START, READ = range(5, 15)


class Core(Protocol):
    """The part of MembershipCore the simulator drives (a factory may return a subclass)."""

    def start(self, now: float) -> list[Effect]: ...
    def receive(
        self, data: bytes, link: str, now: float, arrived: float | None = None
    ) -> list[Effect]: ...
    def tick(self, now: float) -> list[Effect]: ...
    def next_deadline(self) -> float: ...
    def ping_reply(self, target: str, now: float) -> list[Effect]: ...
    def fence_done(self, target: str, ok: bool, now: float) -> list[Effect]: ...
    def leave(self, now: float) -> list[Effect]: ...
    def is_dc(self, now: float) -> bool: ...
    def crm_view(self, now: float) -> View: ...


CoreFactory = Callable[[CoreParams, str, int, float], Core]
# MembershipCore.crm_view: the DC (or None), its term, is_dc, the members, quorate. The
# invariants (b) and (d) read this rather than status(), which reports the same values but
# costs ten times as much (a record per peer) and would be asked for at every sample.
View = tuple[str | None, int, bool, tuple[str, ...], bool]


class CoreFailed(Exception):
    """The core raised or stopped advancing; the run ends with a core-error violation."""


class SimNode:
    __slots__ = (
        "buffer",
        "buffered",
        "clock",
        "core",
        "down_token",
        "generation",
        "idx",
        "inbox",
        "incarnation",
        "last_wake",
        "name",
        "pause_token",
        "paused",
        "read_token",
        "scheduled",
        "stuck",
        "tick_token",
        "votes",
    )

    def __init__(self, idx: int, name: str, votes: int, clock: SimClock) -> None:
        self.idx = idx
        self.name = name
        self.votes = votes
        self.clock = clock
        self.core: Core | None = None
        self.generation = 0
        self.incarnation = 0  # which process: deliveries addressed to an older one are lost
        self.paused = False
        self.buffer: list[tuple[int, Any, float]] = []  # what arrived while paused, in order
        # Datagrams in the socket, not read yet: (arrival on the local clock, link, data). The
        # daemon reads its links on a timer that runs every read_interval from its last
        # wake-up (whatever woke it); a READ event stands for the first of those reads that
        # finds something, and a tick reads first too.
        self.inbox: list[tuple[float, str, bytes]] = []
        self.last_wake = -INF  # local time of the last wake-up that read the links
        self.read_token = 0  # only the newest scheduled read is live
        self.buffered: dict[str, int] = {}  # per link, for the socket-buffer bound
        self.tick_token = 0  # only the newest scheduled tick is live
        self.scheduled = INF  # the local deadline the live tick is for
        self.pause_token = 0
        self.down_token = 0
        self.stuck = 0


class World:
    def __init__(
        self,
        seed: int,
        config: SimConfig,
        params: CoreParams,
        core_factory: CoreFactory,
        scenario: Scenario | None = None,
        controller_factory: ControllerFactory | None = None,
    ) -> None:
        """`scenario` replaces the drawn fault schedule (for tests of one situation);
        `controller_factory` the resource manager's controller class (with `config.crm`)."""
        root = random.Random(seed)
        scenario_rng = random.Random(root.getrandbits(64))
        net_rng = random.Random(root.getrandbits(64))
        self.rng = random.Random(root.getrandbits(64))  # deliveries, fencing, resume order
        self.seed = seed
        self.config = config
        self.params = params
        self.factory = core_factory
        self.timing = params.timing
        n = len(params.nodes)
        self.network = Network(n, params.links, net_rng)
        self.bounds: Bounds = derive_bounds(self.timing, n, self.network.max_delay)
        fencing = config.crm and config.fencing
        if fencing:
            # the strict checks need no sampling (they run at every change); the liveness
            # ones lose nothing but a little latency when sampled every keepalive
            self.bounds = replace(self.bounds, sample=self.timing.keepalive)
        extra_quiet = 0.0
        extra_warmup: float | None = None
        if config.crm:
            network_faults = any(k not in ("crash", "drift") for k in config.faults)
            derive = derive_fencing_bounds if fencing else derive_crm_bounds
            crm_bounds = derive(self.bounds, self.timing, self.network.max_delay, network_faults)
            extra_quiet = crm_bounds.converge - self.bounds.converge + self.timing.deadtime
            if fencing:
                # the first start needs no fencing retries: a shorter warm-up
                first = derive_crm_bounds(
                    self.bounds, self.timing, self.network.max_delay, network_faults
                )
                extra_warmup = first.converge - self.bounds.converge + self.timing.deadtime
        if config.duration is None:
            self.duration = float(
                auto_duration(
                    self.bounds, self.timing, extra_quiet=extra_quiet, extra_warmup=extra_warmup
                )
            )
        else:
            self.duration = float(config.duration)
        self.scenario = scenario or generate_scenario(
            scenario_rng,
            n,
            len(params.links),
            config.faults,
            self.duration,
            self.timing,
            self.bounds,
            extra_quiet,
            extra_warmup,
        )
        sc = self.scenario
        if sc.qserver is not None:
            # ha.cf's quorum_server: one more expected vote, and no two_node (as votequorum
            # with a quorum device); the server's host joins the network
            self.params = params = with_quorum_server(params)
            self.network.add_quorum_server(net_rng)
        self.nodes = [
            SimNode(i, spec.name, spec.votes, SimClock(sc.offsets[i], sc.rates[i]))
            for i, spec in enumerate(params.nodes)
        ]
        self.index = {node.name: node.idx for node in self.nodes}
        self.total_votes = params.total_votes
        self.now = 0.0
        self.queue: list[tuple[float, int, int, int, Any]] = []
        self.seq = 0
        self.incarnations = 0
        self.last_change = 0.0  # the latest fault/process change, or fault-delayed delivery
        self.net_change = 0.0  # the same for network faults only (the minority check)
        self.log: deque[tuple[float, str, Any]] = deque(maxlen=config.log_lines)
        self.trace = hashlib.blake2b(digest_size=16)
        self.violations: list[Violation] = []
        self.seen_invariants: set[str] = set()
        self.stats: dict[str, float] = dict.fromkeys(
            (
                "events",
                "deliveries",
                "sends",
                "lost",
                "blocked",
                "duplicated",
                "to_dead",
                "overflow",
                "crashes",
                "restarts",
                "pauses",
                "fences",
                "net_faults",
                "checks_a",
                "checks_b",
                "checks_c",
                "checks_d",
            ),
            0,
        )
        self.stats["max_elect_s"] = 0.0
        self.stats["max_converge_s"] = 0.0
        self.stats["elect_bound_s"] = round(self.bounds.elect, 3)
        self.stats["converge_bound_s"] = round(self.bounds.converge, 3)
        self._period_start = -1.0  # the stable period whose latencies were already recorded
        self._elected_in: float | None = None
        self._converged_in: float | None = None
        # fencing (with the CRM): a real fencer per node and a simulated fence device
        self.fence: FenceWorld | None = FenceWorld(self) if config.crm and config.fencing else None
        self.crm: CrmWorld | None = CrmWorld(self, controller_factory) if config.crm else None
        # the quorum server and every node's client of it (when the scenario has one)
        self.qs: QServerWorld | None = QServerWorld(self, sc.qserver) if sc.qserver else None
        self._schedule_scenario()

    # ---- the event queue ------------------------------------------------------------------

    def push(self, at: float, kind: int, node: int, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, node, payload))

    def _schedule_scenario(self) -> None:
        sc = self.scenario
        for i, at in enumerate(sc.start_at):
            self.push(at, START, i)
        for fault in sc.net:
            self.push(fault.start, NET_START, -1, fault)
            self.push(fault.end, NET_END, -1, fault)
        for crash in sc.crashes:
            self.push(crash.at, CRASH, crash.node, crash)
        for pause in sc.pauses:
            self.push(pause.at, PAUSE, pause.node, pause)
        for change in sc.rate_changes:
            self.push(change.at, RATE, change.node, change)
        for down in sc.qserver_downs:
            self.push(down.at, Q_DOWN, -1, down)
            self.push(down.at + down.duration, Q_UP, -1, down)
        self.push(self.bounds.sample, SAMPLE, -1)

    def run(self) -> SimResult:
        queue = self.queue
        pop = heapq.heappop
        handlers = {
            DELIVER: self._deliver,
            TICK: self._tick,
            PING: self._ping,
            FENCE_DONE: self._fence_done,
            FENCE_OFF: self._fence_off,
            NET_START: self._net_start,
            NET_END: self._net_end,
            CRASH: self._crash_event,
            RESTART: self._restart,
            PAUSE: self._pause,
            RESUME: self._resume,
            RATE: self._rate,
            SAMPLE: self._sample,
            START: self._start,
            READ: self._read,
        }
        if self.crm is not None:
            handlers.update(self.crm.handlers())
        if self.fence is not None:
            handlers.update(self.fence.handlers())
        if self.qs is not None:
            handlers.update(self.qs.handlers())
        events = 0
        try:
            while queue and queue[0][0] <= self.duration:
                at, _, kind, node, payload = pop(queue)
                self.now = at
                events += 1
                handlers[kind](node, payload)
        except CoreFailed:
            pass
        self.stats["events"] = events
        return SimResult(
            seed=self.seed,
            config=self.config,
            duration=self.duration,
            violations=self.violations,
            trace_hash=self.trace.hexdigest(),
            stats=self.stats,
        )

    # ---- calling the core -----------------------------------------------------------------

    def call(self, node: SimNode, what: str, fn: Callable[..., list[Effect]], *args: Any) -> None:
        """Run one membership core entry point of `node` (for hastack.sim.fencing)."""
        self._call(node, what, fn, *args)

    def _call(self, node: SimNode, what: str, fn: Callable[..., list[Effect]], *args: Any) -> None:
        """Run one core entry point at the node's local now, apply its effects, check (a)."""
        local = node.clock.local(self.now)
        self.trace.update(struct.pack("<dBs", self.now, node.idx, what[:1].encode()))
        try:
            effects = fn(*args, local)
        except Exception:
            self._core_error(node, f"{what} raised:\n{traceback.format_exc()}")
        self._apply(node, effects)
        self._after_step(node, local)

    def _after_step(self, node: SimNode, local: float) -> None:
        core = node.core
        if core is None:
            return
        try:
            deadline = core.next_deadline()
            dc = core.is_dc(local)
        except Exception:
            self._core_error(node, f"next_deadline/is_dc raised:\n{traceback.format_exc()}")
        if deadline != node.scheduled and not node.paused:
            self._schedule_tick(node, deadline)
        if dc:
            self._check_one_dc(node)
        if self.crm is not None:
            self.crm.sync(node, local)

    def _schedule_tick(self, node: SimNode, deadline: float) -> None:
        node.tick_token += 1
        node.scheduled = deadline
        if deadline == INF:
            return
        at = max(self.now, node.clock.real_at(deadline))
        self.push(at, TICK, node.idx, node.tick_token)

    def _core_error(self, node: SimNode, message: str) -> None:
        self.violate("core-error", f"{node.name}: {message}")
        raise CoreFailed

    def _apply(self, node: SimNode, effects: list[Effect]) -> None:
        for effect in effects:
            kind = type(effect)
            if kind is Send:
                self._send(node, effect.data)  # type: ignore[union-attr]
            elif kind is Log:
                self.log.append((self.now, node.name, effect))
            elif kind is SendPing:
                # ping nodes always answer (the sim has no fault for them)
                self.push(
                    self.now + self.rng.uniform(*PING_DELAY),
                    PING,
                    node.idx,
                    (node.incarnation, effect.target),  # type: ignore[union-attr]
                )
            elif kind is Fence:
                self._fence(node, effect.target)  # type: ignore[union-attr]
            else:
                self._core_error(node, f"unknown effect {effect!r}")

    def transmit(self, node: SimNode, data: bytes, kind: int) -> None:
        """A datagram of another layer (the CRM's messaging) on every link, delivered as an
        event of `kind` on arrival (read the moment it arrives, like the messaging port)."""
        self._send(node, data, kind)

    def _send(self, node: SimNode, data: bytes, kind: int = DELIVER) -> None:
        self.trace.update(data)
        self.stats["sends"] += 1
        rng = self.rng
        now = self.now
        nodes = self.nodes
        for route in self.network.routes[node.idx]:
            if route.blocked:
                self.stats["blocked"] += 1
                continue
            if route.loss and rng.random() < route.loss:
                self.stats["lost"] += 1
                continue
            copies = 1
            if route.dup and rng.random() < route.dup:
                copies = 2
                self.stats["duplicated"] += 1
            dst = nodes[route.dst]
            for _ in range(copies):
                at = now + route.delay + rng.random() * route.jitter
                self.seq += 1
                heapq.heappush(
                    self.queue,
                    (at, self.seq, kind, route.dst, (dst.incarnation, route.link, data)),
                )
                if route.faulty and at > self.last_change:
                    self.last_change = at  # a faulty delivery: not stable until it is in
                if route.faulty and at > self.net_change:
                    self.net_change = at

    # ---- event handlers -------------------------------------------------------------------

    def _live(self, node: SimNode, incarnation: int) -> bool:
        if node.core is None or node.incarnation != incarnation:
            self.stats["to_dead"] += 1
            return False
        return True

    def _deliver(self, idx: int, payload: tuple[int, str, bytes]) -> None:
        node = self.nodes[idx]
        incarnation, link, data = payload
        if not self._live(node, incarnation):
            return
        local = node.clock.local(self.now)
        if node.paused:
            count = node.buffered.get(link, 0)
            if count >= self.config.socket_buffer:
                self.stats["overflow"] += 1  # a full socket buffer drops new datagrams
                return
            node.buffered[link] = count + 1
            node.buffer.append((DELIVER, payload, local))
            return
        node.inbox.append((local, link, data))
        if len(node.inbox) == 1:
            self._schedule_read(node, local)

    def _schedule_read(self, node: SimNode, local: float) -> None:
        """The next read at or after `local` on the node's read timer."""
        interval = self.timing.read_interval
        at = node.last_wake + interval
        if at < local:
            at += math.ceil((local - at) / interval) * interval
        node.read_token += 1
        self.push(max(self.now, node.clock.real_at(at)), READ, node.idx, node.read_token)

    def _read(self, idx: int, token: int) -> None:
        node = self.nodes[idx]
        if node.core is None or node.paused or token != node.read_token:
            return
        self._read_inbox(node)
        if self.qs is not None:
            self.qs.sync(node)  # the daemon's timer: Node._on_timer
        if node.core is not None:
            self._after_step(node, node.clock.local(self.now))

    def _read_inbox(self, node: SimNode) -> None:
        """A wake-up: the core gets every unread datagram, at the local now, each with its
        arrival."""
        node.last_wake = node.clock.local(self.now)
        node.read_token += 1
        inbox, node.inbox = node.inbox, []
        for arrived, link, data in inbox:
            if node.core is None or node.paused:
                return
            self.stats["deliveries"] += 1
            self._receive(node, data, link, arrived)

    def _receive(self, node: SimNode, data: bytes, link: str, arrived: float | None) -> None:
        core = node.core
        assert core is not None
        self._call(node, "receive", lambda now: core.receive(data, link, now, arrived))

    def _tick(self, idx: int, token: int) -> None:
        node = self.nodes[idx]
        core = node.core
        if core is None or node.paused or token != node.tick_token:
            return
        node.scheduled = INF
        local = node.clock.local(self.now)
        self._read_inbox(node)
        if node.core is not core or node.paused:
            return
        self._call(node, "tick", core.tick)
        if node.core is core and core.next_deadline() <= local:
            node.stuck += 1
            if node.stuck > MAX_STUCK_TICKS:
                self._core_error(node, f"next_deadline() stays at or before now ({local})")
        else:
            node.stuck = 0
        if self.qs is not None:
            self.qs.sync(node)  # the daemon's timer: Node._on_timer

    def _ping(self, idx: int, payload: tuple[int, str]) -> None:
        node = self.nodes[idx]
        incarnation, target = payload
        if not self._live(node, incarnation):
            return
        if node.paused:
            node.buffer.append((PING, payload, 0.0))
            return
        assert node.core is not None
        self._call(node, "ping", node.core.ping_reply, target)

    def _fence(self, requester: SimNode, target: str) -> None:
        """Without fencing mode the sim is the fencer: power the target off after a delay,
        then report success. With it, the node's real fencer is asked (Node._fence)."""
        if self.fence is not None:
            self.fence.membership_request(requester, target)
            return
        self.stats["fences"] += 1
        t = self.timing
        off_at = self.now + self.rng.uniform(0.1, 1.0) * t.deadtime
        restart_after = self.rng.uniform(0.5, 2.0) * t.deadtime
        idx = self.index.get(target, -1)
        self.push(off_at, FENCE_OFF, idx, (requester.name, restart_after))
        done_at = off_at + self.rng.uniform(0.001, 0.02)
        self.push(done_at, FENCE_DONE, requester.idx, (requester.incarnation, target))

    def _fence_off(self, idx: int, payload: tuple[str, float]) -> None:
        requester, restart_after = payload
        if idx < 0:
            return  # not a node of the cluster: nothing to power off
        node = self.nodes[idx]
        self._note(f"fence: {requester} powers off {node.name}")
        if node.core is not None:
            self._kill(node, graceful=False, restart_after=restart_after, powered_off=True)

    def power_off(self, node: SimNode, restart_after: float) -> None:
        """A fence device powers `node` off (a crash); it is powered on after `restart_after`."""
        if node.core is not None:
            self._kill(node, graceful=False, restart_after=restart_after, powered_off=True)

    def _fence_done(self, idx: int, payload: tuple[int, str]) -> None:
        node = self.nodes[idx]
        incarnation, target = payload
        if node.core is None or node.incarnation != incarnation:
            return  # the requester died meanwhile: nobody to tell
        if node.paused:
            node.buffer.append((FENCE_DONE, payload, 0.0))
            return
        self._call(node, "fence_done", node.core.fence_done, target, True)

    def _net_start(self, _: int, fault: NetFault) -> None:
        self.stats["net_faults"] += 1
        self.network.add(fault)
        self._changed()
        self.net_change = max(self.net_change, self.now)
        self._note(f"fault start: {fault.describe(self._names(), self.params.links)}")

    def _net_end(self, _: int, fault: NetFault) -> None:
        self.network.remove(fault)
        self._changed()
        self.net_change = max(self.net_change, self.now)
        self._note(f"fault end: {fault.describe(self._names(), self.params.links)}")

    def _start(self, idx: int, _: Any) -> None:
        self._boot(self.nodes[idx])

    def _boot(self, node: SimNode) -> None:
        self.incarnations += 1
        node.incarnation = self.incarnations
        node.generation += 1
        node.paused = False
        node.buffer = []
        node.buffered = {}
        node.inbox = []
        node.last_wake = -INF
        node.read_token += 1
        node.stuck = 0
        node.scheduled = INF
        node.tick_token += 1
        local = node.clock.local(self.now)
        try:
            node.core = self.factory(self.params, node.name, node.generation, local)
        except Exception:
            self._core_error(node, f"construction raised:\n{traceback.format_exc()}")
        self._changed()
        self._note(f"start {node.name} generation {node.generation}")
        if self.crm is not None:
            self.crm.boot(node)
        if self.qs is not None:
            self.qs.boot(node)
        self._call(node, "start", node.core.start)

    def _crash_event(self, idx: int, crash: Crash) -> None:
        node = self.nodes[idx]
        if node.core is not None:
            self._kill(node, crash.graceful and not node.paused, crash.restart_after)

    def _kill(
        self, node: SimNode, graceful: bool, restart_after: float, powered_off: bool = False
    ) -> None:
        """The process is gone: crashed or stopped (`graceful`: leave() first), or the
        machine `powered_off` (then not even its kernel closes its connections)."""
        assert node.core is not None
        if graceful:
            self._note(f"stop {node.name} (leave)")
            self._call(node, "leave", node.core.leave)
        self.stats["crashes"] += 1
        self._note(f"crash {node.name}; restart in {restart_after:.3f}s")
        node.core = None
        node.paused = False
        node.buffer = []
        node.buffered = {}
        node.inbox = []
        node.read_token += 1
        node.tick_token += 1
        node.scheduled = INF
        node.down_token += 1
        self._changed()
        if self.crm is not None:
            self.crm.kill(node)
        if self.fence is not None:
            self.fence.kill(node)
        if self.qs is not None:
            self.qs.kill(node, powered_off)
        self.push(self.now + restart_after, RESTART, node.idx, node.down_token)

    def _restart(self, idx: int, token: int) -> None:
        node = self.nodes[idx]
        if node.core is None and token == node.down_token:
            self.stats["restarts"] += 1
            self._boot(node)

    def _pause(self, idx: int, pause: Pause) -> None:
        if pause.dc:
            # the DC of this moment, if any (a deposed DC waking up is the case to see)
            for candidate in self.nodes:
                core = candidate.core
                local = candidate.clock.local(self.now)
                if core is not None and not candidate.paused and core.is_dc(local):
                    idx = candidate.idx
                    self.stats["dc_pauses"] = self.stats.get("dc_pauses", 0) + 1
                    break
        node = self.nodes[idx]
        if node.core is None or node.paused:
            return
        self.stats["pauses"] += 1
        node.paused = True
        node.pause_token += 1
        node.tick_token += 1  # timers do not fire while stopped
        node.read_token += 1
        node.scheduled = INF
        self._changed()
        self._note(f"pause {node.name} for {pause.duration:.3f}s")
        if self.crm is not None:
            self.crm.pause(node)
        if self.fence is not None:
            self.fence.pause(node)
        if self.qs is not None:
            self.qs.pause(node)
        self.push(self.now + pause.duration, RESUME, idx, node.pause_token)

    def _resume(self, idx: int, token: int) -> None:
        node = self.nodes[idx]
        if node.core is None or not node.paused or token != node.pause_token:
            return
        node.paused = False
        self._changed()
        self._note(f"resume {node.name} ({len(node.buffer)} queued)")
        queued, node.buffer, node.buffered = node.buffer, [], {}
        # The datagrams wait in the sockets for the daemon's timer, which is overdue and reads
        # them all before it ticks; ping replies and fence results are callbacks of their own.
        # An event loop that wakes up finds expired timers and ready callbacks together; which
        # it serves first differs between loops, so the seed picks.
        node.inbox += [(arrived, p[1], p[2]) for kind, p, arrived in queued if kind == DELIVER]
        timers_first = self.rng.random() < 0.5
        if timers_first:
            self._read_inbox(node)
            self._late_tick(node)
        for kind, payload, _ in queued:
            if node.core is None or node.paused:
                break
            if kind == PING:
                self._call(node, "ping", node.core.ping_reply, payload[1])
            elif kind == FENCE_DONE:
                self._call(node, "fence_done", node.core.fence_done, payload[1], True)
        if not timers_first:
            self._read_inbox(node)
            self._late_tick(node)
        if self.qs is not None and node.core is not None and not node.paused:
            # the quorum link's own loop and socket, then the daemon's timer syncs the vote
            self.qs.resume(node)
            self.qs.sync(node)
        if node.core is not None:
            self._after_step(node, node.clock.local(self.now))
        if self.crm is not None and node.core is not None:
            self.crm.resume(node)
        if self.fence is not None and node.core is not None and not node.paused:
            self.fence.resume(node)

    def _late_tick(self, node: SimNode) -> None:
        core = node.core
        if core is None:
            return
        local = node.clock.local(self.now)
        if core.next_deadline() <= local:
            self._call(node, "tick", core.tick)

    def _rate(self, idx: int, change: RateChange) -> None:
        if idx == len(self.nodes):
            if self.qs is not None:  # the quorum server's host
                self.qs.set_server_rate(change.rate)
                self._note(f"clock of the quorum server now runs at rate {change.rate:.5f}")
            return
        node = self.nodes[idx]
        node.clock.set_rate(self.now, change.rate)
        self._note(f"clock of {node.name} now runs at rate {change.rate:.5f}")
        if node.core is not None and not node.paused:
            node.scheduled = -INF  # force a reschedule at the new rate
            self._after_step(node, node.clock.local(self.now))
            if self.qs is not None:
                self.qs.clock_changed(node)

    def _changed(self) -> None:
        if self.now > self.last_change:
            self.last_change = self.now

    # ---- invariants -----------------------------------------------------------------------

    def _check_one_dc(self, node: SimNode) -> None:
        """(a) Called whenever a step leaves `node` holding the DC lease.

        A lease only ends by time passing, never starts without a step, so two leases that
        overlap overlap at the step that started the later one: checking every other node
        (paused ones included: they could act on resume) at every step after which the
        stepping node is DC finds every overlap.
        """
        self.stats["checks_a"] += 1
        for other in self.nodes:
            if other is node or other.core is None:
                continue
            if other.core.is_dc(other.clock.local(self.now)):
                state = " (paused)" if other.paused else ""
                self.violate(
                    "two-dc",
                    f"{node.name} and {other.name}{state} both hold a valid DC lease",
                )

    def _sample(self, _: int, __: Any) -> None:
        self.push(self.now + self.bounds.sample, SAMPLE, -1)
        if self.crm is not None:
            self.crm.sample()
        if any(n.paused for n in self.nodes):
            return
        groups = self.network.partition_groups()
        if groups is None:
            return
        stable = self.now - self.last_change
        if stable <= 0:
            return
        if self.last_change != self._period_start:
            self._period_start = self.last_change
            self._elected_in = None
            self._converged_in = None
        self._check_elected(groups, stable)
        clean = not self.network.nodes_active
        if stable <= self.bounds.settle and not clean:
            return
        views = {
            n.idx: n.core.crm_view(n.clock.local(self.now))
            for n in self.nodes
            if n.core is not None
        }
        # With real fencing a two_node cluster's halves both keep quorum until the fence
        # race ends (priority-fencing-delay, device time, retries after a device failure):
        # not within `settle`. Safety there is the CRM's strict checks, not (b).
        race = self.fence is not None and self.params.two_node
        if stable > self.bounds.settle and not race:
            self._check_split_quorum(groups, views)
        if clean:
            self._check_converged(views, stable)

    def _check_split_quorum(self, groups: list[list[int]], views: dict[int, View]) -> None:
        """(b) quorate nodes in at most one side of a stable partition."""
        self.stats["checks_b"] += 1
        quorate = [[self.nodes[i].name for i in g if i in views and views[i][4]] for g in groups]
        sides = [q for q in quorate if q]
        if len(sides) > 1:
            shown = " | ".join(",".join(q) for q in sides)
            self.violate(
                "split-quorum",
                f"quorate nodes on {len(sides)} sides of a partition stable for "
                f"{self.now - self.last_change:.3f}s (settle bound {self.bounds.settle:.3f}s): "
                f"{shown}",
            )

    def _check_elected(self, groups: list[list[int]], stable: float) -> None:
        """(c) every side holding a majority of the votes among its live nodes has a DC."""
        for group in groups:
            live = [self.nodes[i] for i in group if self.nodes[i].core is not None]
            if 2 * sum(n.votes for n in live) <= self.total_votes:
                continue
            has_dc = any(n.core.is_dc(n.clock.local(self.now)) for n in live)  # type: ignore[union-attr]
            if has_dc and self._elected_in is None:
                self._elected_in = stable
                self.stats["max_elect_s"] = max(self.stats["max_elect_s"], round(stable, 3))
            if stable > self.bounds.elect:
                self.stats["checks_c"] += 1
                if not has_dc:
                    names = ",".join(n.name for n in live)
                    self.violate(
                        "no-dc",
                        f"quorate side [{names}] stable for {stable:.3f}s has no DC "
                        f"(bound {self.bounds.elect:.3f}s)",
                    )

    def _check_converged(self, views: dict[int, View], stable: float) -> None:
        """(d) on a clean network every live node holds the same members and DC."""
        held = {self.nodes[i].name: (tuple(v[3]), v[0]) for i, v in views.items()}
        terms = {self.nodes[i].name: v[1] for i, v in views.items()}
        live = sorted(held)
        distinct = list(dict.fromkeys(held.values()))
        quorate = 2 * sum(self.nodes[i].votes for i in views) > self.total_votes
        agreed = len(distinct) == 1 and (
            not quorate or (distinct[0][1] is not None and sorted(distinct[0][0]) == live)
        )
        if agreed and self._converged_in is None:
            self._converged_in = stable
            self.stats["max_converge_s"] = max(self.stats["max_converge_s"], round(stable, 3))
        if stable > self.bounds.converge:
            self.stats["checks_d"] += 1
            if not agreed:
                shown = "; ".join(
                    f"{name}: members={list(m)} dc={dc} term={terms[name]}"
                    for name, (m, dc) in held.items()
                )
                self.violate(
                    "no-convergence",
                    f"network clean for {stable:.3f}s (bound {self.bounds.converge:.3f}s) but "
                    f"live nodes {live} disagree: {shown}",
                )

    def violate(self, invariant: str, message: str) -> None:
        """Record the first violation of each invariant, with the recent events."""
        self.stats[f"violations_{invariant}"] = self.stats.get(f"violations_{invariant}", 0) + 1
        if invariant in self.seen_invariants:
            return
        self.seen_invariants.add(invariant)
        self.violations.append(
            Violation(
                seed=self.seed,
                time=self.now,
                invariant=invariant,
                message=message,
                log=tuple(self._render_log()),
                replay=self.config.replay_command(self.seed, self.duration),
            )
        )

    # ---- the log ring ---------------------------------------------------------------------

    def _note(self, text: str) -> None:
        self.log.append((self.now, "sim", text))

    def _render_log(self) -> list[str]:
        lines = []
        for at, who, item in self.log:
            if isinstance(item, Log):
                fields = f" {item.fields}" if item.fields else ""
                lines.append(
                    f"{at:11.6f} {who:>5} {item.level:<7} {item.event}: {item.message}{fields}"
                )
            else:
                lines.append(f"{at:11.6f} {who:>5} {'sim':<7} {item}")
        return lines

    def _names(self) -> list[str]:
        """The hosts as the faults name them: the nodes, then the quorum server's."""
        return [n.name for n in self.nodes] + (["qs"] if self.qs is not None else [])
