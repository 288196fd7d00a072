"""The resource manager in the simulated world: per node a Controller, a MessagingCore and a
simulated executor, driven by the world's clock, network and process faults.

The cores are the real ones (:class:`hastack.crm.controller.Controller`,
:class:`hastack.messaging.core.MessagingCore`), wired as the daemon wires them
(:mod:`hastack.daemon.crm_shell`): the membership core's ``crm_view`` after every step of it,
messaging datagrams as ``Transmit`` on every link of the same simulated network as the
heartbeats (loss, delay, reorder, duplication and partitions apply; read on arrival, like the
messaging port; one ``flush`` per arrival), one timer per node for both cores' deadlines.

The executor is simulated, as tests/unit/crm_harness.py scripts it: ``start`` makes a resource
run on the node, ``stop`` stops it, ``monitor`` answers what runs; each action takes a duration
drawn from the seed, one action at a time per resource; a recurring monitor re-runs on its
interval. A crashed node runs nothing (a dead machine) and forgets its executor; a restarted
one has a new messaging generation and its controller starts from the configuration it saved.
A paused node's resources keep running (the daemon is stopped, not the service), and its
messages, timers and action results wait until it resumes.

Invariants (see docs/design/crm.md): ``crm-double-active`` (no resource active on two live,
unpaused nodes for longer than the overlap bound), ``crm-no-convergence`` (after a stable
period every resource runs exactly once, groups together, no transition in flight on the DC),
``crm-stale-order`` (every action a node runs on the DC's order came from the DC of the term
it knows, and that node really was DC of that term).

With fencing (``SimConfig.fencing``, :mod:`hastack.sim.fencing`) the CIB has
stonith-enabled=true and a fence device, and the safety invariants are strict:
``crm-double-active`` allows no overlap at all and counts a paused node's resources (a paused
node is alive: the case fencing exists for; only a powered-off node runs nothing);
``fence-before-move`` (a resource starts on a node only when no other powered-on node runs it
or is starting it: the one that ran it was powered off, or stopped it itself); and
``minority-stops`` (a node on the minority side of a stable partition runs nothing once its
bound has passed, derived like the others: the membership's settle bound, the controller's
quorum grace, a stop queued behind one action; with a quorum server, a side that reaches it
is not a minority, and the bound has a keepalive more for the client to hear of the
membership change that drops the vote).
"""

from __future__ import annotations

import struct
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hastack.config.model import Timing
from hastack.crm.controller import (
    JOIN_RETRY,
    CancelAgent,
    Controller,
    Event,
    FenceRequest,
    MembershipView,
    Reply,
    RunAgent,
    SaveCib,
    SaveInput,
    SendMessage,
)
from hastack.daemon.fence_shell import MAGIC as FENCE_MAGIC
from hastack.membership.effects import Log
from hastack.messaging.core import (
    Deliver,
    MessagingCore,
    MessagingParams,
    StreamReset,
    Transmit,
)
from hastack.sim.bounds import Bounds

if TYPE_CHECKING:
    from hastack.sim.world import SimNode, World

INF = float("inf")
WALL0 = 1_800_000_000.0  # the (NTP-synchronised) wall clock at simulated real time 0
# A simulated agent action lasts this many keepalives (drawn per action from the seed).
ACTION_KEEPALIVES = (0.05, 0.5)
MONITOR_INTERVAL = "2s"
MAX_STUCK = 1000
# How many scheduler transitions convergence may take after the DC has everyone's join:
# probes, a stop of what runs twice, the starts of a group (members in order), the monitors.
TRANSITIONS = 6

# The default resources: a group of two primitives and one independent primitive.
GROUP = "grp"
GROUP_MEMBERS = ("grp-a", "grp-b")
SINGLE = "solo"
RESOURCES = (*GROUP_MEMBERS, SINGLE)


def default_cib(names: list[str], fencing: bool = False) -> bytes:
    """The simulated cluster's CIB: stonith-enabled=false, no-quorum-policy=stop, no
    stickiness preference beyond the default, ocf:hastack:Dummy class names (nothing runs).
    With `fencing`: stonith-enabled=true and one simulated device that fences every node."""
    from hastack.sim.fencing import stonith_primitive

    stonith = "true" if fencing else "false"
    device = stonith_primitive(names) if fencing else ""
    nodes = "".join(f'<node id="{i + 1}" uname="{n}"/>' for i, n in enumerate(names))

    def primitive(rid: str) -> str:
        return (
            f'<primitive id="{rid}" class="ocf" provider="hastack" type="Dummy">'
            f'<operations><op id="{rid}-mon" name="monitor" interval="{MONITOR_INTERVAL}" '
            f'timeout="20s"/></operations></primitive>'
        )

    members = "".join(primitive(r) for r in GROUP_MEMBERS)
    return (
        '<cib admin_epoch="0" epoch="1" num_updates="0" validate-with="pacemaker-3.7">'
        "<configuration><crm_config>"
        '<cluster_property_set id="cib-bootstrap-options">'
        f'<nvpair id="o-stonith" name="stonith-enabled" value="{stonith}"/>'
        '<nvpair id="o-quorum" name="no-quorum-policy" value="stop"/>'
        "</cluster_property_set></crm_config>"
        f"<nodes>{nodes}</nodes>"
        f'<resources><group id="{GROUP}">{members}</group>{primitive(SINGLE)}{device}'
        "</resources>"
        "<constraints/></configuration><status/></cib>"
    ).encode()


@dataclass(frozen=True)
class CrmBounds:
    action: float  # the longest simulated agent action, real seconds
    overlap: float  # invariant 1 under network faults or pauses (0 when only crashes)
    converge: float  # invariant 2: stable, everyone up, this long -> placed exactly once
    minority: float = INF  # invariant 5 (fencing): a stable minority runs nothing after this


def derive_crm_bounds(
    bounds: Bounds, timing: Timing, max_delay: float, network_faults: bool
) -> CrmBounds:
    """The CRM's bounds from the timers, in the style of sim/bounds.py (every local interval
    divided by 1 - drift; `trip` a message round trip with one lost fragment repaired).

    overlap, the partition case: the majority starts a resource only after it lost the node
    (deadtime); the cut-off node notices it lost quorum within `settle` (the membership bound
    (b): deadtime, a relayed view's extra deadtime, a keepalive for the tick), then its
    controller stops what runs there on its own (no message; every resource in parallel):
    one action, plus one already running on that resource ahead of it.

    overlap, the rejoin case: the cut heals (or a paused node resumes) before the node
    noticed. The DC sees it back within three heartbeats (its heartbeat, the vote, the new
    member list), asks it to join (a round trip; a lost request is asked again after
    JOIN_RETRY), finds the resource active twice and stops it (an action queued behind
    another, twice: a stop and a stop of the copy). The bound is the larger of the two.
    Only crashes (no cut, no pause): zero — a dead node runs nothing.

    converge: after the membership converged ((d)), the join, then TRANSITIONS transitions,
    each two actions (one ahead in the queue) and a message round trip.
    """
    slow = 1.0 / (1.0 - timing.max_drift)
    action = timing.keepalive * ACTION_KEEPALIVES[1] * slow
    rto_max = timing.keepalive  # MessagingParams.from_timing
    trip = 2 * max_delay + rto_max
    join = slow * JOIN_RETRY + 2 * trip
    hop = timing.keepalive + max_delay
    partition = bounds.settle + 2 * action
    rejoin = slow * 3 * hop + join + 4 * action + 2 * trip
    overlap = max(partition, rejoin) if network_faults else 0.0
    converge = bounds.converge + join + TRANSITIONS * (2 * action + trip)
    return CrmBounds(action=action, overlap=overlap, converge=converge)


def derive_fencing_bounds(
    bounds: Bounds, timing: Timing, max_delay: float, network_faults: bool
) -> CrmBounds:
    """The bounds with fencing: no overlap at all (a node's resources move only once it is
    powered off or stopped them), and the minority bound: the membership's settle bound
    (the node's view loses quorum), the controller's quorum grace (a keepalive, on the
    node's clock) and the tick that acts on it, then the stops, each queued behind at most
    one action of the same resource; a keepalive of slack. Convergence also waits for
    fencing: a failed fencing is asked again FENCE_RETRY later (the DC's and the membership
    layer's), and a fenced node is powered on again after up to two deadtimes."""
    from hastack.crm.controller import FENCE_RETRY

    base = derive_crm_bounds(bounds, timing, max_delay, network_faults)
    slow = 1.0 / (1.0 - timing.max_drift)
    minority = bounds.settle + slow * 2 * timing.keepalive + 2 * base.action + timing.keepalive
    converge = base.converge + slow * FENCE_RETRY + 3 * timing.deadtime
    return CrmBounds(action=base.action, overlap=0.0, converge=converge, minority=minority)


class SimController(Controller):
    """The real controller, instrumented for invariant 3: it records who sent each exec
    order it accepted and what it knew then (the RunAgent effects carry no sender), and the
    last DC join it answered (`answered_join`: DC, term, tenure), on its own bookkeeping."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exec_origin: dict[int, tuple[str, str | None, int, Any, Any]] = {}
        self.answered_join: tuple[str, Any, Any] | None = None

    def _on_join_request(
        self, sender: str, message: dict[str, Any], now: float, wall: float
    ) -> list[Any]:
        if sender == self.view.dc and message.get("term") == self.view.term:
            self.answered_join = (sender, message.get("term"), message.get("tenure"))
        return super()._on_join_request(sender, message, now, wall)

    def _on_exec(self, sender: str, message: dict[str, Any]) -> list[Any]:
        effects = super()._on_exec(sender, message)
        for effect in effects:
            if isinstance(effect, RunAgent):
                self.exec_origin[id(effect)] = (
                    sender,
                    self.view.dc,
                    self.view.term,
                    message.get("tenure"),
                    self.answered_join,
                )
        return effects


ControllerFactory = Callable[..., Controller]


@dataclass
class CrmSlot:
    """One machine's resource manager state. `running` and `saved_cib` belong to the
    machine (survive the process); the rest to the process (gone with it)."""

    name: str
    saved_cib: bytes
    running: dict[str, str] = field(default_factory=dict)
    controller: Controller | None = None
    messaging: MessagingCore | None = None
    view: MembershipView | None = None
    view_key: tuple[Any, ...] = ()  # the view's fields: compared after every membership step
    peers: tuple[str, ...] = ()
    call_id: int = 0
    busy_until: dict[str, float] = field(default_factory=dict)
    recurring: dict[tuple[str, str, int], int] = field(default_factory=dict)  # -> token
    op_token: int = 0
    tick_token: int = 0
    scheduled: float = INF
    stuck: int = 0
    buffer: list[tuple[int, Any]] = field(default_factory=list)  # while paused
    agents: dict[str, str] = field(default_factory=dict)
    recurring_serial: int = 0
    starting: set[str] = field(default_factory=set)  # starts ordered here, not complete yet
    up_since: float = 0.0  # the latest boot or resume of this node's daemon
    # min(controller, messaging).next_deadline(), kept between calls into those cores: it
    # depends only on their state, which changes only in CrmWorld._call, and _arm asks for it
    # after every membership step. None: stale.
    deadline: float | None = None


# event kinds of the CRM (the world's handlers dispatch them here)
MSG, CRM_TICK, OP_DONE = 100, 101, 102


class CrmWorld:
    """The CRM part of a World: hooks the world calls, and the CRM's own events."""

    def __init__(self, world: World, controller_factory: ControllerFactory | None = None) -> None:
        self.world = world
        names = [n.name for n in world.nodes]
        self.names = names
        self.node_ids = {n: str(i + 1) for i, n in enumerate(names)}
        self.fencing = world.config.fencing
        self.cib = default_cib(names, self.fencing)
        self.factory: ControllerFactory = controller_factory or SimController
        self.slots = [CrmSlot(n, self.cib) for n in names]
        self.mparams = MessagingParams.from_timing(world.timing.keepalive)
        kinds = world.config.faults
        self.network_faults = any(k not in ("crash", "drift") for k in kinds)
        derive = derive_fencing_bounds if self.fencing else derive_crm_bounds
        self.bounds = derive(
            world.bounds, world.timing, world.network.max_delay, self.network_faults
        )
        self.dc_of_term: dict[int, str] = {}
        self.overlap_since: dict[str, float] = {}
        self.stats = world.stats
        for key in ("crm_actions", "crm_messages", "checks_crm_converge", "checks_crm_orders"):
            self.stats[key] = 0
        self.stats["max_overlap_s"] = 0.0
        self.stats["overlap_bound_s"] = round(self.bounds.overlap, 3)
        self.stats["max_crm_converge_s"] = 0.0
        self.stats["crm_converge_bound_s"] = round(self.bounds.converge, 3)
        if self.fencing:
            for key in ("checks_fence_move", "checks_minority"):
                self.stats[key] = 0
            self.stats["minority_bound_s"] = round(self.bounds.minority, 3)
            self.stats["max_minority_stop_s"] = 0.0
        self._minority_since: dict[str, float] = {}
        self._period: float | None = None
        self._converged_in: float | None = None

    def handlers(self) -> dict[int, Callable[[int, Any], None]]:
        return {MSG: self._msg_event, CRM_TICK: self._tick_event, OP_DONE: self._op_event}

    # ---- process lifecycle (called by the world) -----------------------------------------

    def boot(self, node: SimNode) -> None:
        slot = self.slots[node.idx]
        extra: dict[str, Any] = {}
        if self.fencing:
            # as the daemon builds it (crm_shell): the two_node flag (priority-fencing-delay
            # on by default) and initdead as the startup grace before startup-fencing
            extra = {
                "two_node": self.world.params.two_node,
                "startup_grace": self.world.timing.initdead,
            }
        try:
            slot.controller = self.factory(
                node.name,
                self.node_ids,
                slot.saved_cib,
                quorum_grace=self.world.timing.keepalive,
                **extra,
            )
            slot.messaging = MessagingCore(
                "sim", node.name, node.generation, self.world.params.authkeys, self.mparams
            )
        except Exception:
            self._error(node, f"construction raised:\n{traceback.format_exc()}")
        slot.view = None
        slot.view_key = ()
        slot.peers = ()
        slot.deadline = None
        slot.busy_until = {}
        slot.recurring = {}
        slot.buffer = []
        slot.scheduled = INF
        slot.tick_token += 1
        slot.op_token += 1
        slot.stuck = 0
        slot.starting = set()
        slot.up_since = self.world.now
        if self.world.fence is not None:
            self.world.fence.boot(node, slot.saved_cib)
        # the first view comes with the membership core's start (World._after_step)

    def kill(self, node: SimNode) -> None:
        """The machine is down: what it ran is gone, and so is its executor."""
        slot = self.slots[node.idx]
        slot.controller = None
        slot.messaging = None
        slot.running.clear()
        slot.starting = set()
        slot.recurring = {}
        slot.busy_until = {}
        slot.buffer = []
        slot.tick_token += 1
        slot.op_token += 1
        slot.call_id = 0
        slot.scheduled = INF
        self._overlaps()

    def pause(self, node: SimNode) -> None:
        slot = self.slots[node.idx]
        slot.tick_token += 1
        slot.scheduled = INF
        self._overlaps()

    def resume(self, node: SimNode) -> None:
        """After the membership core caught up: messages and results that waited, in order,
        then the timer."""
        slot = self.slots[node.idx]
        queued, slot.buffer = slot.buffer, []
        for kind, payload in queued:
            if node.core is None or node.paused or slot.controller is None:
                return
            if kind == MSG:
                self._receive(node, slot, payload[1], payload[2])
            else:
                self._complete(node, slot, payload)
        if node.core is not None and not node.paused:
            slot.up_since = self.world.now
            slot.scheduled = -INF
            self.sync(node, node.clock.local(self.world.now))
            self._overlaps()

    # ---- the membership view --------------------------------------------------------------

    def sync(self, node: SimNode, local: float) -> None:
        """After every membership step: hand the controller the view when it changed (what
        the daemon does after every wake-up), then re-arm the CRM timer."""
        slot = self.slots[node.idx]
        core = node.core
        if core is None or slot.controller is None or node.paused:
            return
        if self.world.fence is not None:
            self.world.fence.release_held(node)
        try:
            dc, term, is_dc, members, quorate = core.crm_view(local)  # type: ignore[attr-defined]
        except Exception:
            self._error(node, f"crm_view raised:\n{traceback.format_exc()}")
        if is_dc:
            # the newest holder: terms start again at 1 when the whole cluster restarted
            # (two holders at once are invariant (a)'s business)
            self.dc_of_term[term] = node.name
        # compared as a plain tuple: most steps change nothing, and then no view is built
        key = (dc, term, is_dc, tuple(members), quorate)
        if key != slot.view_key:
            slot.view_key = key
            view = slot.view = MembershipView(*key)
            peers = tuple(m for m in members if m != node.name)
            effects: list[Any] = []
            if peers != slot.peers:
                slot.peers = peers
                effects += self._call(node, "set_peers", slot.messaging.set_peers, peers)  # type: ignore[union-attr]
            effects += self._call(
                node, "membership_changed", slot.controller.membership_changed, view, wall=True
            )
            self._execute(node, slot, effects)
        self._arm(node, slot)

    # ---- calling the cores ----------------------------------------------------------------

    def call(
        self, node: SimNode, what: str, fn: Callable[..., list[Any]], *args: Any, wall: bool = False
    ) -> list[Any]:
        """Run one entry point of a core of `node` at its local time (for hastack.sim.fencing)."""
        return self._call(node, what, fn, *args, wall=wall)

    def execute(self, node: SimNode, slot: CrmSlot, effects: list[Any]) -> None:
        """Carry out controller/messaging effects of `node` (for hastack.sim.fencing)."""
        self._execute(node, slot, effects)

    def _call(
        self, node: SimNode, what: str, fn: Callable[..., list[Any]], *args: Any, wall: bool = False
    ) -> list[Any]:
        world = self.world
        local = node.clock.local(world.now)
        world.trace.update(struct.pack("<dBs", world.now, node.idx, b"c" + what[:1].encode()))
        self.slots[node.idx].deadline = None  # the call may move the cores' deadlines
        try:
            if wall:
                return list(fn(*args, local, WALL0 + world.now))
            return list(fn(*args, local))
        except Exception:
            self._error(node, f"{what} raised:\n{traceback.format_exc()}")
        return []  # unreachable: _error raises

    def _error(self, node: SimNode, message: str) -> None:
        from hastack.sim.world import CoreFailed

        self.world.violate("crm-error", f"{node.name}: {message}")
        raise CoreFailed

    def _execute(self, node: SimNode, slot: CrmSlot, effects: list[Any]) -> None:
        """Carry out effects in order; those an effect causes come before the rest (the
        daemon's order)."""
        queue = list(effects)
        world = self.world
        while queue:
            if slot.controller is None or slot.messaging is None:
                return
            effect = queue.pop(0)
            more: list[Any] = []
            if isinstance(effect, SendMessage):
                self.stats["crm_messages"] += 1
                more = self._call(
                    node,
                    "send",
                    lambda now, e=effect, m=slot.messaging: m.send(e.payload, now, e.dest),
                )
            elif isinstance(effect, Transmit):
                world.transmit(node, effect.data, MSG)
            elif isinstance(effect, Deliver) and effect.payload[:1] == FENCE_MAGIC:
                # a fence record shared by another node's fencer (crm_shell routes these)
                if world.fence is not None:
                    more = world.fence.receive(node, effect.sender, effect.payload)
            elif isinstance(effect, FenceRequest):
                if world.fence is None:
                    self._error(node, f"a fence request with fencing off: {effect!r}")
                else:
                    world.fence.controller_request(node, effect)
            elif isinstance(effect, Deliver):
                more = self._call(
                    node,
                    "deliver",
                    slot.controller.receive,
                    effect.sender,
                    effect.payload,
                    wall=True,
                )
            elif isinstance(effect, StreamReset):
                more = self._call(
                    node,
                    "peer_reset",
                    slot.controller.peer_reset,
                    effect.sender,
                    effect.generation,
                    effect.reason,
                    wall=True,
                )
            elif isinstance(effect, RunAgent):
                self._run(node, slot, effect)
            elif isinstance(effect, CancelAgent):
                slot.recurring.pop((effect.resource, effect.action, effect.interval_ms), None)
            elif isinstance(effect, SaveCib):
                slot.saved_cib = effect.data
            elif isinstance(effect, Event):
                world.log.append((world.now, node.name, f"event {effect.name} {effect.fields}"))
            elif isinstance(effect, Log):
                world.log.append((world.now, node.name, effect))
                if effect.event == "crm-stale-order":  # an order of a deposed DC, refused
                    self.stats["stale_orders_refused"] = (
                        self.stats.get("stale_orders_refused", 0) + 1
                    )
            elif isinstance(effect, Reply | SaveInput):
                pass  # no operator in the simulation; no disk for the scheduler's inputs
            else:
                self._error(node, f"unknown effect {effect!r}")
            queue[0:0] = more
        self._arm(node, slot)

    def _arm(self, node: SimNode, slot: CrmSlot) -> None:
        if slot.controller is None or slot.messaging is None or node.paused:
            return
        deadline = slot.deadline
        if deadline is None:
            try:
                deadline = min(slot.controller.next_deadline(), slot.messaging.next_deadline())
            except Exception:
                self._error(node, f"next_deadline raised:\n{traceback.format_exc()}")
            slot.deadline = deadline
        if deadline == slot.scheduled:
            return
        slot.tick_token += 1
        slot.scheduled = deadline
        if deadline == INF:
            return
        at = max(self.world.now, node.clock.real_at(deadline))
        self.world.push(at, CRM_TICK, node.idx, slot.tick_token)

    # ---- events ---------------------------------------------------------------------------

    def _msg_event(self, idx: int, payload: tuple[int, str, bytes]) -> None:
        node = self.world.nodes[idx]
        slot = self.slots[idx]
        if node.core is None or node.incarnation != payload[0] or slot.messaging is None:
            self.stats["to_dead"] += 1
            return
        if node.paused:
            if len(slot.buffer) < 4 * self.world.config.socket_buffer:
                slot.buffer.append((MSG, payload))
            else:
                self.stats["overflow"] += 1
            return
        self._receive(node, slot, payload[1], payload[2])

    def _receive(self, node: SimNode, slot: CrmSlot, link: str, data: bytes) -> None:
        assert slot.messaging is not None
        effects = self._call(node, "receive", slot.messaging.receive, data, link)
        effects += self._call(node, "flush", slot.messaging.flush)
        self._execute(node, slot, effects)

    def _tick_event(self, idx: int, token: int) -> None:
        node = self.world.nodes[idx]
        slot = self.slots[idx]
        if node.core is None or node.paused or token != slot.tick_token:
            return
        if slot.controller is None or slot.messaging is None:
            return
        slot.scheduled = INF
        local = node.clock.local(self.world.now)
        effects = self._call(node, "mtick", slot.messaging.tick)
        effects += self._call(node, "tick", slot.controller.tick, wall=True)
        self._execute(node, slot, effects)
        if slot.controller is not None and slot.messaging is not None:
            deadline = min(slot.controller.next_deadline(), slot.messaging.next_deadline())
            if deadline <= local:
                slot.stuck += 1
                if slot.stuck > MAX_STUCK:
                    self._error(node, f"the CRM's next deadline stays at or before now ({local})")
            else:
                slot.stuck = 0

    # ---- the simulated executor -----------------------------------------------------------

    def _run(self, node: SimNode, slot: CrmSlot, run: RunAgent) -> None:
        self._check_order(node, slot, run)
        spec = run.spec
        if spec.action == "start" and self.fencing and spec.resource in RESOURCES:
            self._check_move(node, spec.resource)
            slot.starting.add(spec.resource)
        slot.agents[spec.resource] = spec.agent
        self.stats["crm_actions"] += 1
        world = self.world
        k = world.timing.keepalive
        duration = world.rng.uniform(k * ACTION_KEEPALIVES[0], k * ACTION_KEEPALIVES[1])
        start = max(world.now, slot.busy_until.get(spec.resource, world.now))
        done = start + duration / node.clock.rate  # a local duration, on this node's clock
        slot.busy_until[spec.resource] = done
        world.push(done, OP_DONE, node.idx, (slot.op_token, run, 0))

    def _op_event(self, idx: int, payload: tuple[int, RunAgent, int]) -> None:
        node = self.world.nodes[idx]
        slot = self.slots[idx]
        if node.core is None or payload[0] != slot.op_token or slot.controller is None:
            return
        run, recurring_token = payload[1], payload[2]
        spec = run.spec
        if (
            recurring_token
            and slot.recurring.get((spec.resource, spec.action, spec.interval_ms))
            != recurring_token
        ):
            return  # cancelled
        if node.paused:
            slot.buffer.append((OP_DONE, payload))
            return
        self._complete(node, slot, payload)

    def _complete(self, node: SimNode, slot: CrmSlot, payload: tuple[int, RunAgent, int]) -> None:
        run, recurring_token = payload[1], payload[2]
        spec = run.spec
        rsc = spec.resource
        key = (rsc, spec.action, spec.interval_ms)
        if recurring_token and slot.recurring.get(key) != recurring_token:
            return
        rc = 0
        if spec.action == "start":
            slot.running[rsc] = "Started"
            slot.starting.discard(rsc)
        elif spec.action == "stop":
            slot.running.pop(rsc, None)
            for other in [r for r in slot.recurring if r[0] == rsc]:
                del slot.recurring[other]  # a stopped resource's monitors stop with it
        elif spec.action == "promote":
            slot.running[rsc] = "Promoted"
        elif spec.action == "demote":
            slot.running[rsc] = "Started"
        elif spec.action == "monitor":
            role = slot.running.get(rsc)
            rc = 7 if role is None else 8 if role == "Promoted" else 0
        self._overlaps()
        world = self.world
        if spec.action == "monitor" and spec.interval_ms:
            token = recurring_token
            if not token:
                slot.recurring_serial += 1
                token = slot.recurring_serial
                slot.recurring[key] = token
            at = world.now + spec.interval_ms / 1000 / node.clock.rate
            world.push(at, OP_DONE, node.idx, (slot.op_token, run, token))
        slot.call_id += 1
        report = {
            "operation_key": f"{rsc}_{spec.action}_{spec.interval_ms}",
            "operation": spec.action,
            "interval": str(spec.interval_ms),
            "call-id": str(slot.call_id),
            "rc-code": str(rc),
            "op-status": "0",
            "exit-reason": "",
            "on_node": node.name,
            "last-run": str(int(WALL0 + world.now)),
            "last-rc-change": str(int(WALL0 + world.now)),
            "exec-time": "1",
            "queue-time": "0",
        }
        assert slot.controller is not None
        effects = self._call(
            node,
            "op_completed",
            slot.controller.op_completed,
            report,
            spec.agent,
            run.tag,
            wall=True,
        )
        self._execute(node, slot, effects)

    # ---- invariants -----------------------------------------------------------------------

    def _check_order(self, node: SimNode, slot: CrmSlot, run: RunAgent) -> None:
        """(3) An action ordered by a DC: the sender was the DC this node knew for the term of
        the order, that term is the node's current one, and the sender really held the DC
        lease in that term. A no-quorum stop is the node's own, only without quorum."""
        self.stats["checks_crm_orders"] += 1
        ctl = slot.controller
        assert ctl is not None
        tag = run.tag
        what = f"{run.spec.resource} {run.spec.action} on {node.name}"
        if isinstance(tag, tuple) and tag and tag[0] == "quorum":
            if ctl.view.quorate:
                self.world.violate(
                    "crm-stale-order", f"{what}: a no-quorum stop while the node has quorum"
                )
            return
        origins = getattr(ctl, "exec_origin", {})
        origin = origins.pop(id(run), None)
        if not (isinstance(tag, tuple) and len(tag) == 5 and tag[0] == "tx"):
            self.world.violate("crm-stale-order", f"{what}: an action with no order ({tag!r})")
            return
        term = tag[1]
        if origin is None:
            self.world.violate("crm-stale-order", f"{what}: not from an accepted exec order")
            return
        sender, known_dc, known_term, tenure, answered = origin
        real_dc = self.dc_of_term.get(term)
        if sender != known_dc or term != known_term or real_dc != sender:
            self.world.violate(
                "crm-stale-order",
                f"{what}: ordered by {sender} in term {term}, but the node knew DC "
                f"{known_dc} of term {known_term}, and the DC of term {term} was {real_dc}",
            )
            return
        # The same DC may lose its lease and win it back in the same term: an order of its
        # earlier tenure (delayed in the network) must not run once this node answered the
        # later tenure's join, which did not count it.
        if answered != (sender, term, tenure):
            self.world.violate(
                "crm-stale-order",
                f"{what}: ordered by {sender} in term {term}, tenure {tenure}, after this node "
                f"answered the join of {answered}",
            )

    def _counted(self, node: SimNode) -> bool:
        """Whether what `node` runs counts for (1): a powered-on node's does; without fencing
        a paused one's does not (it stops them when it wakes up and sees it lost quorum,
        within the overlap bound), with fencing it does (nothing but fencing stops them)."""
        return node.core is not None and (self.fencing or not node.paused)

    def _overlaps(self) -> None:
        """(1) Called whenever what runs, or who is live, changes: track since when each
        resource is active on two live nodes, and check the bound."""
        world = self.world
        live = [s for s, n in zip(self.slots, world.nodes, strict=True) if self._counted(n)]
        for rsc in RESOURCES:
            where = [s.name for s in live if rsc in s.running]
            if len(where) < 2:
                since = self.overlap_since.pop(rsc, None)
                if since is not None:
                    lasted = world.now - since
                    self.stats["max_overlap_s"] = max(self.stats["max_overlap_s"], round(lasted, 3))
                continue
            since = self.overlap_since.setdefault(rsc, world.now)
            self._check_overlap(rsc, where, since)

    def _check_overlap(self, rsc: str, where: list[str], since: float) -> None:
        lasted = self.world.now - since
        if lasted > self.bounds.overlap or (self.bounds.overlap == 0.0 and lasted >= 0.0):
            self.world.violate(
                "crm-double-active",
                f"{rsc} active on {', '.join(where)} for {lasted:.3f}s "
                f"(bound {self.bounds.overlap:.3f}s)",
            )

    def sample(self) -> None:
        """Periodic: the overlap bound, and convergence once everything is stable."""
        world = self.world
        for rsc, since in list(self.overlap_since.items()):
            where = [
                s.name
                for s, n in zip(self.slots, world.nodes, strict=True)
                if self._counted(n) and rsc in s.running
            ]
            self._check_overlap(rsc, where, since)
        if self.fencing:
            self._check_minority()
        if world.network.nodes_active or any(n.core is None or n.paused for n in world.nodes):
            return
        stable = world.now - world.last_change
        if stable <= 0:
            return
        if world.last_change != self._period:
            self._period = world.last_change
            self._converged_in = None
        problems = self._placement_problems()
        if not problems and self._converged_in is None:
            self._converged_in = stable
            self.stats["max_crm_converge_s"] = max(
                self.stats["max_crm_converge_s"], round(stable, 3)
            )
        if stable > self.bounds.converge:
            self.stats["checks_crm_converge"] += 1
            if problems:
                world.violate(
                    "crm-no-convergence",
                    f"everyone up and the network clean for {stable:.3f}s (bound "
                    f"{self.bounds.converge:.3f}s), but: {'; '.join(problems)}",
                )

    def _check_move(self, node: SimNode, rsc: str) -> None:
        """(4) `node` begins to start `rsc`: every other powered-on node (paused ones too)
        must neither run it nor be starting it; the one that ran it was powered off
        (fenced or crashed: kill clears what it ran) or completed its own stop."""
        world = self.world
        self.stats["checks_fence_move"] += 1
        for other, slot in zip(world.nodes, self.slots, strict=True):
            if other is node or other.core is None:
                continue
            if rsc in slot.running or rsc in slot.starting:
                state = "running" if rsc in slot.running else "starting"
                paused = " (paused)" if other.paused else ""
                world.violate(
                    "fence-before-move",
                    f"{rsc} starts on {node.name} while {other.name}{paused} is still "
                    f"{state} it: {other.name} was neither powered off nor stopped it",
                )

    def _check_minority(self) -> None:
        """(5) On a stable symmetric partition (no other network fault), a node on a side
        without a majority of the votes runs nothing once the minority bound has passed
        since the network last changed and since the node's daemon last started or resumed
        (a paused node is skipped: it acts when it resumes, or is fenced). Not in two_node
        clusters: there a lone node keeps quorum, and the fence race decides who is left.
        With a quorum server, the votes of a side that reaches the server include its vote
        (whether the server gives it to that side is the server's decision)."""
        world = self.world
        if world.params.two_node:
            return
        groups = world.network.partition_groups()
        if groups is None or len(groups) < 2:
            self._minority_since.clear()
            return
        bound = self.bounds.minority
        reach: list[bool] | None = None
        if world.qs is not None:
            # With a quorum server, a side that reaches it may hold its vote: not a minority.
            # A side that does not drops the vote it held when its membership changes: its
            # client hears of the change at the node's next wake-up, within a keepalive.
            reach = world.network.qserver_reach()
            slow = 1.0 / (1.0 - world.timing.max_drift)
            bound += slow * world.timing.keepalive
        for group in groups:
            votes = sum(world.nodes[i].votes for i in group)
            if reach is not None and any(reach[i] for i in group):
                votes += 1
            if 2 * votes > world.total_votes:
                continue
            for i in group:
                node, slot = world.nodes[i], self.slots[i]
                if node.core is None or node.paused:
                    self._minority_since.pop(node.name, None)
                    continue
                since = max(world.net_change, slot.up_since)
                stable = world.now - since
                running = sorted(r for r in RESOURCES if r in slot.running)
                side = ", ".join(world.nodes[j].name for j in group)
                if running:
                    self._minority_since.setdefault(node.name, since)
                    if stable > bound:
                        world.violate(
                            "minority-stops",
                            f"{node.name} is in a minority ({side}) "
                            f"of a partition stable for {stable:.3f}s (bound "
                            f"{bound:.3f}s) but still runs {', '.join(running)}",
                        )
                else:
                    began = self._minority_since.pop(node.name, None)
                    if began is not None:
                        took = round(world.now - began, 3)
                        self.stats["max_minority_stop_s"] = max(
                            self.stats["max_minority_stop_s"], took
                        )
                if stable > bound:
                    self.stats["checks_minority"] += 1

    def _placement_problems(self) -> list[str]:
        world = self.world
        problems = []
        where = {rsc: [s.name for s in self.slots if rsc in s.running] for rsc in RESOURCES}
        for rsc, nodes in where.items():
            if len(nodes) != 1:
                problems.append(f"{rsc} active on {nodes or 'no node'}")
        homes = {tuple(where[m]) for m in GROUP_MEMBERS}
        if len(homes) > 1:
            problems.append(f"group {GROUP} split: {where}")
        dcs = [
            (n, s)
            for n, s in zip(world.nodes, self.slots, strict=True)
            if n.core is not None and n.core.is_dc(n.clock.local(world.now))
        ]
        for node, slot in dcs:
            ctl = slot.controller
            if ctl is not None and ctl.transition is not None:
                problems.append(f"transition {ctl.transition.tid} in flight on DC {node.name}")
        if not dcs:
            problems.append("no DC")
        return problems
