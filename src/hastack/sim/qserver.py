"""The quorum server in the simulated world: the real server core
(:class:`hastack.quorum.server.QServerCore`) on a host of its own, the real client core
(:class:`hastack.quorum.client.QClientCore`) on every node, and a TCP connection between
each node and the server over the simulated network.

The wiring follows :mod:`hastack.quorum.daemon` (the server's shell),
:class:`hastack.quorum.link.QuorumLink` (the client's shell) and ``Node._sync_quorum_device``
/ ``Node._on_quorum_vote`` in :mod:`hastack.daemon.node`:

- after every wake-up of the node's timer (a read of the links or a tick of the membership
  core: the sim's READ and TICK events) and whenever the client's vote changes, the client is
  told the membership core's ``members`` (and how many resources run here), and the
  membership core is told ``quorum_device(until, now)`` when the vote's end changed (None:
  no vote);
- the client's ``Connect`` opens a connection: the SYN is sent again after 1, 2, 4 s while
  the path is cut or loses it, up to the link's CONNECT_TIMEOUT; a server process that is
  down answers with a reset (connection refused). ``Close`` ends the client's side (a FIN
  to the server); the server's ``Close`` ends its side, and its shell then calls
  ``closed``;
- a connection carries bytes in order, each once, on the server's link between the node and
  the server: what a cut holds or the path loses is sent again on TCP's retransmission timer
  (200 ms, doubling), so a cut delays the bytes (head of line) rather than losing them, and
  a healed cut delivers them late. Bytes for a socket that no longer exists get a reset;
  a powered-off machine answers nothing;
- the client's and the server's timers: a tick at their cores' next deadline, on their own
  clocks (the server's host has a clock of its own, which drifts with the `drift` fault);
- a crashed node's process closes its connection (the kernel sends the FIN); a powered-off
  (fenced) one just goes silent, and the server drops it after three silent intervals. A
  paused node's client does nothing; what arrives for it waits in the socket;
- the `qserver` fault crashes the server's process: its state is gone, its connections are
  reset, connection attempts are refused; at the end of the window a new process starts,
  which grants nothing for its startup hold (the lease, plus the margin).

What is not simulated: TLS (it changes nothing the cores see), the operator's status query,
the server's host going down (a cut of every path to it stands for it), and a pause of the
server's process.
"""

from __future__ import annotations

import random
import struct
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hastack.membership.effects import Log
from hastack.quorum.client import QClientCore
from hastack.quorum.effects import Close, Connect, Send, VoteChanged
from hastack.quorum.effects import Log as QLog
from hastack.quorum.link import CONNECT_TIMEOUT
from hastack.quorum.server import ClusterSpec, QServerCore, margin
from hastack.sim.clock import SimClock
from hastack.sim.scenario import QServerHost

if TYPE_CHECKING:
    from hastack.sim.network import Route
    from hastack.sim.world import SimNode, World

# event kinds (the world dispatches them here)
(
    Q_SYN,
    Q_CONNECTED,
    Q_CONNECT_FAILED,
    Q_ACCEPT,
    Q_ARRIVE,
    Q_RETRANSMIT,
    Q_CLIENT_TICK,
    Q_SERVER_TICK,
    Q_DOWN,
    Q_UP,
) = range(300, 310)

RTO_MIN = 0.2  # Linux's TCP_RTO_MIN: a lost segment is sent again this long after
RTO_MAX = 120.0  # TCP_RTO_MAX: the retransmission timer doubles up to this
SYN_RTO = 1.0  # Linux's initial SYN retransmission timeout (it doubles too)
TIMER_FLOOR = 0.005  # QuorumLink._run / the server's _tick_loop wait at least this long
HOST = 255  # the server's index in the trace

DATA, FIN, RST = "data", "fin", "rst"
Segment = tuple[str, bytes]


@dataclass
class Stream:
    """One direction of a connection: bytes in order, each once."""

    up: bool  # node -> server
    queue: list[Segment] = field(default_factory=list)  # not through the path yet
    rto: float = RTO_MIN
    timer: int = 0  # the pending retransmission's token (0: none)
    last: float = 0.0  # the latest arrival scheduled: a later one never overtakes it


@dataclass
class Conn:
    id: int
    node: int  # the node's index
    incarnation: int  # the node's process that opened it
    gen: int  # the client link's generation that opened it
    server: int  # the server process that is to accept it
    up: Stream = field(default_factory=lambda: Stream(True))
    down: Stream = field(default_factory=lambda: Stream(False))
    client_open: bool = True  # the client's side still has it
    server_open: bool = False  # the server's process accepted it and has not closed it


@dataclass
class ClientSlot:
    """One node's QuorumLink (gone with the process)."""

    core: QClientCore | None = None
    gen: int = 0  # QuorumLink._generation: bumped by every Connect and Close
    conn: Conn | None = None  # QuorumLink._writer
    tick_token: int = 0
    scheduled: float | None = None
    q_until: float | None = None  # Node._q_until: what the membership core was last told
    buffer: list[tuple[int, Any]] = field(default_factory=list)  # while paused
    host_off: bool = False  # the machine is powered off: nothing answers for it


class QServerWorld:
    """The quorum-server part of a World (see the module docstring)."""

    def __init__(self, world: World, host: QServerHost) -> None:
        self.world = world
        self.host = host
        # its own generator: the server's and the clients' nonces, the connections' delays
        self.rng = random.Random(world.rng.getrandbits(64))
        self.clock = SimClock(host.offset, host.rate)
        params = world.params
        self.spec = ClusterSpec(
            params.cluster_name,
            params.authkeys,
            {n.name: (n.node_id, n.votes) for n in params.nodes},
            "<sim cluster>",
        )
        self.slots = [ClientSlot() for _ in world.nodes]
        self.server: QServerCore | None = None
        self.server_inc = 0  # which server process: connections of an older one are gone
        self.down = 1  # open down windows (the first start is an "up" at time 0)
        self.server_token = 0
        self.server_scheduled: float | None = None
        self.conns: dict[int, Conn] = {}
        self.next_conn = 0
        self.timers = 0  # retransmission timers' tokens
        self.stats = world.stats
        for key in (
            "qserver_downs",
            "qserver_connects",
            "qserver_votes_gained",
            "qserver_votes_lost",
            "qserver_device_calls",
        ):
            self.stats[key] = 0
        self.stats["qserver_lease_s"] = round(host.lease, 3)
        world.push(0.0, Q_UP, -1, None)

    def handlers(self) -> dict[int, Callable[[int, Any], None]]:
        return {
            Q_SYN: self._syn_event,
            Q_CONNECTED: self._client_event,
            Q_CONNECT_FAILED: self._client_event,
            Q_ACCEPT: self._accept_event,
            Q_ARRIVE: self._arrive_event,
            Q_RETRANSMIT: self._retransmit_event,
            Q_CLIENT_TICK: self._client_tick_event,
            Q_SERVER_TICK: self._server_tick_event,
            Q_DOWN: self._down_event,
            Q_UP: self._up_event,
        }

    # ---- the nodes' processes (called by the world) ---------------------------------------

    def boot(self, node: SimNode) -> None:
        """A new daemon: a new QuorumLink (QuorumLink.from_config: heartbeats every
        keepalive), with nothing to report until the membership core has started."""
        slot = self.slots[node.idx]
        slot.gen += 1
        slot.tick_token += 1
        slot.scheduled = None
        slot.conn = None
        slot.q_until = None
        slot.buffer = []
        slot.host_off = False
        spec = self.world.params.spec(node.name)
        assert spec is not None
        slot.core = self._guard(
            node.name,
            "construction",
            lambda: QClientCore(
                self.spec.name,
                node.name,
                spec.node_id,
                self.spec.keys,
                self.rng.randbytes,
                votes=spec.votes,
                interval=self.world.timing.keepalive,
            ),
        )

    def kill(self, node: SimNode, powered_off: bool) -> None:
        """The process is gone. Its kernel closes the connection (a FIN after what was
        sent), unless the machine was powered off: then nothing more leaves it."""
        slot = self.slots[node.idx]
        slot.core = None
        slot.gen += 1
        slot.tick_token += 1
        slot.scheduled = None
        slot.buffer = []
        slot.host_off = powered_off
        conn, slot.conn = slot.conn, None
        if powered_off:
            for other in self.conns.values():
                if other.node == node.idx:
                    other.client_open = False
                    other.up.queue.clear()
                    other.up.timer = 0
        elif conn is not None and conn.client_open:
            conn.client_open = False
            self._send(conn, conn.up, (FIN, b""))

    def pause(self, node: SimNode) -> None:
        slot = self.slots[node.idx]
        slot.tick_token += 1
        slot.scheduled = None

    def resume(self, node: SimNode) -> None:
        """What waited in the socket and the link's events, then its overdue timer, or the
        timer first (the seed picks, as for the membership core's)."""
        slot = self.slots[node.idx]
        queued, slot.buffer = slot.buffer, []
        timer_first = self.rng.random() < 0.5
        if timer_first:
            self._client_tick(node, slot, late=True)
        for kind, payload in queued:
            if slot.core is None or node.paused:
                return
            if kind == Q_ARRIVE:
                self._client_receive(node, slot, *payload)
            else:
                self._client_connection(node, slot, kind, payload)
        if not timer_first:
            self._client_tick(node, slot, late=True)
        self._arm_client(node, slot)

    def clock_changed(self, node: SimNode) -> None:
        """The node's clock rate changed: its timer's real time moves."""
        slot = self.slots[node.idx]
        slot.scheduled = None
        self._arm_client(node, slot)

    def set_server_rate(self, rate: float) -> None:
        self.clock.set_rate(self.world.now, rate)
        self.server_scheduled = None
        self._arm_server()

    # ---- the daemon's wiring: Node._sync_quorum_device ------------------------------------

    def sync(self, node: SimNode) -> None:
        """After a wake-up of the node's timer: report the membership to the client, and give
        the membership core the vote as the client holds it now."""
        slot = self.slots[node.idx]
        client = slot.core
        core: Any = node.core
        if client is None or core is None or node.paused:
            return
        world = self.world
        local = node.clock.local(world.now)
        members, ring = core.members(local)
        if node.name in members:
            crm = world.crm
            controller = crm.slots[node.idx].controller if crm is not None else None
            resources = len(controller.local_running()) if controller is not None else 0
            try:
                effects = client.membership(tuple(members), tuple(ring), resources, local)
            except ValueError as exc:  # a view the client cannot report: no vote meanwhile
                world.log.append((world.now, node.name, f"quorum server: {exc}"))
            except Exception:
                self._error(node.name, f"membership raised:\n{traceback.format_exc()}")
            else:
                self._client_apply(node, slot, effects)
                if slot.core is not client or node.core is not core:
                    return
        until = client.vote_until if client.has_vote(local) else None
        if until != slot.q_until:
            slot.q_until = until
            self.stats["qserver_device_calls"] += 1
            world.call(node, "quorum_device", core.quorum_device, until)

    def _on_vote(self, node: SimNode, slot: ClientSlot, effect: VoteChanged) -> None:
        """Node._on_quorum_vote: the vote was gained or lost; act on it at once."""
        self.stats["qserver_votes_gained" if effect.vote else "qserver_votes_lost"] += 1
        world = self.world
        level = "info" if effect.vote else "warning"
        text = f"the quorum server's vote is {'ours' if effect.vote else 'not ours'}"
        world.log.append(
            (world.now, node.name, Log(level, "quorum-server-vote", f"{text}: {effect.reason}"))
        )
        self.sync(node)

    # ---- the client's shell: QuorumLink ---------------------------------------------------

    def _client_apply(self, node: SimNode, slot: ClientSlot, effects: list[Any]) -> None:
        world = self.world
        for effect in effects:
            if slot.core is None:
                return
            if isinstance(effect, Send):
                conn = slot.conn
                if conn is not None and conn.client_open:
                    self._send(conn, conn.up, (DATA, effect.data))
            elif isinstance(effect, Close):
                slot.gen += 1  # the reader of that connection must not report on it
                conn, slot.conn = slot.conn, None
                if conn is not None and conn.client_open:
                    conn.client_open = False
                    self._send(conn, conn.up, (FIN, b""))
            elif isinstance(effect, Connect):
                slot.gen += 1
                self.stats["qserver_connects"] += 1
                deadline = node.clock.real_at(node.clock.local(world.now) + CONNECT_TIMEOUT)
                self._syn(node.idx, node.incarnation, slot.gen, deadline, SYN_RTO)
            elif isinstance(effect, VoteChanged):
                self._on_vote(node, slot, effect)
            elif isinstance(effect, QLog):
                world.log.append(
                    (world.now, node.name, Log(effect.level, effect.event, effect.message))
                )
            else:
                self._error(node.name, f"unknown client effect {effect!r}")
        self._arm_client(node, slot)

    def _client_call(
        self, node: SimNode, slot: ClientSlot, what: str, fn: Callable[[float], list[Any]]
    ) -> None:
        world = self.world
        world.trace.update(struct.pack("<dB2s", world.now, node.idx, b"q" + what[:1].encode()))
        local = node.clock.local(world.now)
        effects = self._guard(node.name, what, lambda: fn(local))
        self._client_apply(node, slot, effects)

    def _arm_client(self, node: SimNode, slot: ClientSlot) -> None:
        core = slot.core
        if core is None or node.paused or node.core is None:
            return
        deadline = core.next_deadline()
        if deadline == slot.scheduled:
            return
        slot.tick_token += 1
        slot.scheduled = deadline
        if deadline is None:
            return
        world = self.world
        local = node.clock.local(world.now)
        # the link's loop waits at least TIMER_FLOOR: a deadline that stays in the past
        # costs it a wake-up every 5 ms, never a busy loop
        at = node.clock.real_at(max(deadline, local + TIMER_FLOOR))
        world.push(max(world.now, at), Q_CLIENT_TICK, node.idx, slot.tick_token)

    def _client_tick_event(self, idx: int, token: int) -> None:
        node = self.world.nodes[idx]
        slot = self.slots[idx]
        if token != slot.tick_token or slot.core is None or node.core is None or node.paused:
            return
        slot.scheduled = None
        self._client_tick(node, slot)

    def _client_tick(self, node: SimNode, slot: ClientSlot, late: bool = False) -> None:
        core = slot.core
        if core is None or node.core is None or node.paused:
            return
        if late:
            deadline = core.next_deadline()
            if deadline is None or deadline > node.clock.local(self.world.now):
                return
            slot.scheduled = None
        self._client_call(node, slot, "tick", core.tick)

    def _client_event(self, idx: int, payload: Any) -> None:
        """A connection attempt's outcome reaches the node's link."""
        node = self.world.nodes[idx]
        slot = self.slots[idx]
        incarnation = payload[0]
        if node.core is None or node.incarnation != incarnation or slot.core is None:
            if isinstance(payload[2], Conn) and not slot.host_off:
                self._orphan(payload[2])  # its kernel closes what nobody will read
            return
        kind = Q_CONNECTED if isinstance(payload[2], Conn) else Q_CONNECT_FAILED
        if node.paused:
            slot.buffer.append((kind, payload))
            return
        self._client_connection(node, slot, kind, payload)

    def _client_connection(self, node: SimNode, slot: ClientSlot, kind: int, payload: Any) -> None:
        _, gen, outcome = payload
        core = slot.core
        assert core is not None
        if kind == Q_CONNECTED:
            conn: Conn = outcome
            if gen != slot.gen:
                # QuorumLink._connect: a connection the link no longer wants is closed
                self._orphan(conn)
                return
            slot.conn = conn
            self._client_call(node, slot, "connected", core.connected)
        elif gen == slot.gen:
            reason: str = outcome
            self._client_call(
                node, slot, "disconnected", lambda now: core.disconnected(now, reason)
            )

    def _orphan(self, conn: Conn) -> None:
        if conn.client_open:
            conn.client_open = False
            self._send(conn, conn.up, (FIN, b""))

    def _client_receive(self, node: SimNode, slot: ClientSlot, conn_id: int, items: Any) -> None:
        conn = self.conns.get(conn_id)
        core = slot.core
        if conn is None or core is None:
            return
        for what, data in items:
            if slot.core is not core or node.paused:
                return
            if not conn.client_open or conn is not slot.conn or conn.gen != slot.gen:
                if what == DATA:
                    self._reset(conn, conn.down)  # the socket is closed: a reset
                return
            if what == DATA:
                self._client_call(node, slot, "received", lambda now, d=data: core.received(d, now))
            else:
                # QuorumLink._connect: the reader saw the end of the stream
                conn.client_open = False
                slot.conn = None
                reason = (
                    "the server closed the connection"
                    if what == FIN
                    else "connection error: [Errno 104] Connection reset by peer"
                )
                self._client_call(
                    node, slot, "disconnected", lambda now, r=reason: core.disconnected(now, r)
                )
                return

    # ---- connecting -------------------------------------------------------------------------

    def _syn(self, idx: int, incarnation: int, gen: int, deadline: float, rto: float) -> None:
        """One SYN: through both ways, the server's host answers at once (its process
        accepts, or it is down and the kernel resets); else it is sent again after `rto`,
        until the link's connect timeout."""
        world = self.world
        net = world.network
        up, down = net.q_up[idx], net.q_down[idx]
        rng = self.rng
        lost = (
            up.blocked
            or down.blocked
            or (up.loss + down.loss > 0 and rng.random() < _both(up, down))
        )
        if lost:
            at = world.now + rto
            if at >= deadline:
                reason = f"cannot connect to the quorum server: timeout ({CONNECT_TIMEOUT:g} s)"
                world.push(deadline, Q_CONNECT_FAILED, idx, (incarnation, gen, reason))
            else:
                world.push(at, Q_SYN, idx, (incarnation, gen, deadline, 2 * rto))
            return
        rtt = up.delay + rng.random() * up.jitter + down.delay + rng.random() * down.jitter
        if self.server is None:
            reason = "cannot connect to the quorum server: [Errno 111] Connection refused"
            world.push(world.now + rtt, Q_CONNECT_FAILED, idx, (incarnation, gen, reason))
            return
        self.next_conn += 1
        conn = Conn(self.next_conn, idx, incarnation, gen, self.server_inc)
        self.conns[conn.id] = conn
        # the client's connect returns with the SYN-ACK; the server accepts when the ACK
        # arrives, so the server's first bytes always reach a client that is connected
        conn.down.last = world.now + rtt
        world.push(world.now + rtt, Q_CONNECTED, idx, (incarnation, gen, conn))
        world.push(world.now + rtt + up.delay, Q_ACCEPT, -1, conn.id)

    def _syn_event(self, idx: int, payload: tuple[int, int, float, float]) -> None:
        incarnation, gen, deadline, rto = payload
        node = self.world.nodes[idx]
        if node.core is None or node.incarnation != incarnation:
            return
        self._syn(idx, incarnation, gen, deadline, rto)

    def _accept_event(self, _: int, conn_id: int) -> None:
        conn = self.conns.get(conn_id)
        if conn is None:
            return
        server = self.server
        if server is None or conn.server != self.server_inc:
            self._reset(conn, conn.down)  # the process that was to accept it is gone
            return
        conn.server_open = True
        self._server_call("connected", lambda now: server.connected(conn.id, now))

    # ---- the connections' bytes -------------------------------------------------------------

    def _send(self, conn: Conn, stream: Stream, segment: Segment) -> None:
        stream.queue.append(segment)
        if not stream.timer:
            self._transmit(conn, stream)

    def _reset(self, conn: Conn, stream: Stream) -> None:
        """A reset for the other end (bytes reached a socket that is closed)."""
        if stream.queue and stream.queue[-1][0] == RST:
            return
        self._send(conn, stream, (RST, b""))

    def _transmit(self, conn: Conn, stream: Stream) -> None:
        world = self.world
        route: Route = (world.network.q_up if stream.up else world.network.q_down)[conn.node]
        rng = self.rng
        if route.blocked or (route.loss and rng.random() < route.loss):
            self.timers += 1
            stream.timer = self.timers
            world.push(world.now + stream.rto, Q_RETRANSMIT, -1, (conn.id, stream.up, stream.timer))
            stream.rto = min(2 * stream.rto, RTO_MAX)
            return
        at = max(world.now + route.delay + rng.random() * route.jitter, stream.last)
        stream.last = at
        items, stream.queue = stream.queue, []
        stream.rto = RTO_MIN
        stream.timer = 0
        world.push(at, Q_ARRIVE, -1, (conn.id, stream.up, items))

    def _retransmit_event(self, _: int, payload: tuple[int, bool, int]) -> None:
        conn_id, up, token = payload
        conn = self.conns.get(conn_id)
        if conn is None:
            return
        stream = conn.up if up else conn.down
        if stream.timer != token or not stream.queue:
            return
        stream.timer = 0
        self._transmit(conn, stream)

    def _arrive_event(self, _: int, payload: tuple[int, bool, list[Segment]]) -> None:
        conn_id, up, items = payload
        conn = self.conns.get(conn_id)
        if conn is None:
            return
        if up:
            self._server_receive(conn, items)
            return
        world = self.world
        node = world.nodes[conn.node]
        slot = self.slots[conn.node]
        if slot.host_off:
            return  # a powered-off machine answers nothing
        if node.core is None or node.incarnation != conn.incarnation or slot.core is None:
            if any(what == DATA for what, _ in items):
                self._reset(conn, conn.up)  # the process is gone: its kernel resets
            return
        if node.paused:
            slot.buffer.append((Q_ARRIVE, (conn_id, items)))
            return
        self._client_receive(node, slot, conn_id, items)

    def _server_receive(self, conn: Conn, items: list[Segment]) -> None:
        server = self.server
        for what, data in items:
            if server is None or not conn.server_open or conn.server != self.server_inc:
                if what == DATA:
                    self._reset(conn, conn.down)
                return
            if what == DATA:
                self._server_call("received", lambda now, d=data: server.received(conn.id, d, now))
            else:
                # the server's reader saw the end of the stream: its shell closes and tells
                conn.server_open = False
                self._server_call("closed", lambda now: server.closed(conn.id, now))
                return

    # ---- the server's process and shell -----------------------------------------------------

    def _up_event(self, _: int, __: Any) -> None:
        self.down -= 1
        if self.down > 0 or self.server is not None:
            return
        world = self.world
        self.server_inc += 1
        start = self.clock.local(world.now)
        world.log.append((world.now, "qs", f"quorum server starts (process {self.server_inc})"))
        self.server = self._guard(
            "qs",
            "construction",
            lambda: QServerCore(
                [self.spec],
                self.rng.randbytes,
                start,
                lease=self.host.lease,
                max_drift=world.timing.max_drift,
                tie_breaker=self.host.tie_breaker,
            ),
        )
        self.server_scheduled = None
        self._arm_server()

    def _down_event(self, _: int, __: Any) -> None:
        self.down += 1
        self.stats["qserver_downs"] += 1
        if self.server is None:
            return
        world = self.world
        world.log.append((world.now, "qs", "quorum server crashes"))
        self.server = None
        self.server_token += 1
        self.server_scheduled = None
        for conn in list(self.conns.values()):
            if conn.server_open:
                conn.server_open = False
                self._reset(conn, conn.down)  # the kernel resets what the process held

    def _server_call(self, what: str, fn: Callable[[float], list[Any]]) -> None:
        world = self.world
        world.trace.update(struct.pack("<dB2s", world.now, HOST, b"s" + what[:1].encode()))
        now = self.clock.local(world.now)
        effects = self._guard("qs", what, lambda: fn(now))
        closed: list[Conn] = []
        for effect in effects:
            if isinstance(effect, Send):
                conn = self.conns.get(effect.conn)
                if conn is not None and conn.server_open:
                    self._send(conn, conn.down, (DATA, effect.data))
            elif isinstance(effect, Close):
                conn = self.conns.get(effect.conn)
                if conn is not None and conn.server_open:
                    conn.server_open = False
                    self._send(conn, conn.down, (FIN, b""))
                    closed.append(conn)
            elif isinstance(effect, QLog):
                if effect.level != "debug":
                    world.log.append(
                        (world.now, "qs", Log(effect.level, effect.event, effect.message))
                    )
            else:
                self._error("qs", f"unknown server effect {effect!r}")
        server = self.server
        for conn in closed:
            # the connection's handler ends once its writer is closed, and tells the core
            if server is not None:
                self._server_call("closed", lambda now, c=conn.id: server.closed(c, now))
        self._arm_server()

    def _arm_server(self) -> None:
        server = self.server
        if server is None:
            return
        deadline = server.next_deadline()
        if deadline == self.server_scheduled:
            return
        self.server_token += 1
        self.server_scheduled = deadline
        if deadline is None:
            return
        world = self.world
        local = self.clock.local(world.now)
        at = self.clock.real_at(max(deadline, local + TIMER_FLOOR))
        world.push(max(world.now, at), Q_SERVER_TICK, -1, self.server_token)

    def _server_tick_event(self, _: int, token: int) -> None:
        server = self.server
        if server is None or token != self.server_token:
            return
        self.server_scheduled = None
        self._server_call("tick", server.tick)

    # ---- helpers ----------------------------------------------------------------------------

    def grant_bound(self) -> float:
        """How long, in real seconds, a node may count a vote after the server last granted
        it: the lease on the node's clock (counted from before the grant), slow clock."""
        return (self.host.lease + margin(self.host.lease, self.world.timing.max_drift)) / (
            1.0 - self.world.timing.max_drift
        )

    def _guard(self, who: str, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:
            self._error(who, f"{what} raised:\n{traceback.format_exc()}")

    def _error(self, who: str, message: str) -> Any:
        from hastack.sim.world import CoreFailed

        self.world.violate("qserver-error", f"{who}: quorum {message}")
        raise CoreFailed


def _both(up: Route, down: Route) -> float:
    """The chance that a SYN or its answer is lost."""
    return 1.0 - (1.0 - up.loss) * (1.0 - down.loss)
