"""The quorum server's core (sans-IO): one extra vote per cluster, for exactly one partition.

The quorum server (the seed's "Quorum server", corosync-qnetd's role) is not a cluster member.
Every node of every cluster it serves keeps a connection to it and reports the membership it
sees; the server answers each report with a vote: granted or not, for a lease. The node adds
the vote to its own count while its grant is valid (see hastack.quorum.client).

Decision (the ffsplit algorithm), per cluster, made again for every report it answers:

1. Connected nodes are grouped into partitions by the member set they report.
2. A partition is *settled* when every connected node that it lists reports exactly that
   member set and all its reporters report the same ring. A partition in transition (some
   member still reports something else) gets no grant until it settles.
3. Among settled partitions the one with the most votes (ha.cf `votes`, 1 per node by default)
   wins. On a tie the partition that holds the vote keeps it (keep-active); otherwise the
   tie-breaker decides: `lowest` (default) the partition holding the lowest node id, `highest`
   the highest, `NODEID` the partition holding that node (else lowest), `resources` the one
   reporting the most active resources (then lowest).

Safety: the vote is never valid in two partitions at once. The argument, with real time `T`,
clock rates within `1 ± d` of real time (`d` = max_drift), and lease `L`:

* The client counts a grant valid only until `s + L` on its own clock, where `s` is the time it
  SENT the report that the grant answers; in real time that is at most `T(s) + L(1 + d)`.
  A client drops its grant at once when its membership changes (the grant was for the member
  set it reported), so a valid grant always belongs to the partition the client is in.
* The server records, for each node it grants, `r + L + M` on its own clock, where `r` is when
  it received the report (so `T(r) >= T(s)`) and `M` = the margin; in real time that is at least
  `T(s) + (L + M)(1 - d)`, which is later than the client's end as long as
  `M >= L * 2d / (1 - d)`; `margin()` adds a fixed 50 ms on top.
* The server grants a partition only while no node outside it has an unexpired record (a node
  that reports a different member set has dropped its old grant, as the first point says, so its
  record is cleared). A newly granted client cannot use the grant before it arrives, which is
  after the server sent it, which is after every other partition's grants ended.
* A restarted server knows no earlier grants, so it grants nothing for `H + M` after it
  starts, with `H` the startup hold: the lease by default, and at least the lease of the
  run before it (an operator who shortens `--lease` across a restart must give
  `--startup-hold` the old lease; the server does not remember it).

TCP delivers in order, and a reply names the report it answers (`req`), so a late reply to a
report of an old membership is recognised and ignored by the client.

Liveness: a lost quorum server costs a cluster whose sites all see each other nothing but the
extra vote (the nodes still count their own); the client reconnects with backoff, and the server
drops a client silent for 3 of its heartbeat intervals.

Bad input (a garbled frame, an unknown cluster, a bad signature, a replayed or reordered frame)
closes that connection with a logged reason and a count; the server carries on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hastack.config.model import AuthKeys, ClusterConfig
from hastack.quorum import protocol
from hastack.quorum.effects import Close, Log, LogLevel, Send, ServerEffect
from hastack.quorum.protocol import FrameReader, Message, ProtocolError, make, seal

DEFAULT_LEASE = 3.0
DEFAULT_MAX_DRIFT = 0.01
FIXED_MARGIN = 0.05
HELLO_TIMEOUT = 10.0
SILENT_INTERVALS = 3
TIE_BREAKERS = ("lowest", "highest", "resources")

TieBreaker = str | int  # "lowest" | "highest" | "resources" | a node id
Members = frozenset[str]


def margin(lease: float, max_drift: float = DEFAULT_MAX_DRIFT) -> float:
    """How much longer than the lease the server holds a grant on its own clock (see the
    module docstring: it covers two clocks running at opposite ends of the drift bound)."""
    return lease * 2 * max_drift / (1 - max_drift) + FIXED_MARGIN


def parse_tie_breaker(text: str) -> TieBreaker:
    """`lowest`, `highest`, `resources` or a node id (a positive integer); ValueError says
    what is allowed."""
    if text in TIE_BREAKERS:
        return text
    if text.isdigit() and 0 < int(text) < 2**31:
        return int(text)
    raise ValueError(
        f"tie-breaker {text[:32]!r}: use lowest, highest, resources or a node id (a number)"
    )


@dataclass(frozen=True)
class ClusterSpec:
    """What the server knows of one cluster: its name, its keys and its nodes."""

    name: str
    keys: AuthKeys
    nodes: Mapping[str, tuple[int, int]]  # node name -> (node id, votes)
    source: str = ""  # the configuration directory, for messages

    @classmethod
    def from_config(cls, config: ClusterConfig) -> ClusterSpec:
        hacf = config.hacf
        nodes = {spec.name: (spec.node_id, spec.votes) for spec in hacf.nodes}
        return cls(hacf.cluster_name, config.authkeys, nodes, config.directory)


@dataclass
class _Conn:
    id: int
    nonce: str
    opened: float
    reader: FrameReader = field(default_factory=FrameReader)
    session: str | None = None
    cluster: str | None = None
    node: str | None = None
    recv_seq: int = 0
    send_seq: int = 0
    interval: float = 1.0
    last_heard: float = 0.0
    closing: bool = False


@dataclass
class _Report:
    members: Members
    ring: tuple[int, int]
    resources: int


@dataclass
class _Node:
    name: str
    conn: int | None = None
    report: _Report | None = None
    grant_key: tuple[Members, tuple[int, int]] | None = None
    grant_until: float = float("-inf")  # server clock: received + lease + margin


@dataclass
class _Cluster:
    spec: ClusterSpec
    nodes: dict[str, _Node] = field(default_factory=dict)
    holder: Members | None = None  # the partition granted most recently (keep-active)
    vote_seq: int = 0
    refused: int = 0

    def node(self, name: str) -> _Node:
        if name not in self.nodes:
            self.nodes[name] = _Node(name)
        return self.nodes[name]


@dataclass(frozen=True)
class Partition:
    """One reported member set, as the decision sees it."""

    members: Members
    reporters: tuple[str, ...]
    votes: int
    settled: bool
    resources: int
    why_not_settled: str = ""


def _fmt(members: Members) -> str:
    return "{" + ",".join(sorted(members)) + "}"


class QServerCore:
    """Feed it connections, bytes and ticks; it returns Send/Close/Log effects.

    `clusters`: the clusters served, by name. `nonce`: the randomness it is handed (os.urandom
    in the daemon). `now` is a monotonic clock in seconds; `start` is when the server started
    (no grant is given before `start + startup_hold + margin`, see the module docstring)."""

    def __init__(
        self,
        clusters: Mapping[str, ClusterSpec] | list[ClusterSpec],
        nonce: Callable[[int], bytes],
        start: float,
        *,
        lease: float = DEFAULT_LEASE,
        max_drift: float = DEFAULT_MAX_DRIFT,
        tie_breaker: TieBreaker = "lowest",
        startup_hold: float | None = None,
    ) -> None:
        specs = list(clusters.values()) if isinstance(clusters, Mapping) else list(clusters)
        if not 0 <= max_drift < 0.5:
            raise ValueError(f"max_drift {max_drift}: use a fraction in 0..0.5")
        if not 0.01 <= lease <= 3600:
            raise ValueError(f"lease {lease}: use 0.01..3600 seconds")
        self.clusters: dict[str, _Cluster] = {s.name: _Cluster(s) for s in specs}
        self.lease = lease
        self.margin = margin(lease, max_drift)
        hold = lease if startup_hold is None else startup_hold
        if not 0 <= hold <= 3600:
            raise ValueError(f"startup_hold {hold}: use 0..3600 seconds")
        self.quiet_until = start + hold + margin(hold, max_drift)
        self.tie_breaker = tie_breaker
        self._nonce = nonce
        self._conns: dict[int, _Conn] = {}
        self.bad_frames = 0
        self.refused = 0

    # -- events --------------------------------------------------------------------------

    def connected(self, conn_id: int, now: float) -> list[ServerEffect]:
        """A client connected: challenge it with a fresh nonce."""
        nonce = self._nonce(protocol.NONCE_SIZE).hex()
        self._conns[conn_id] = _Conn(conn_id, nonce, now, last_heard=now)
        return [Send(seal(make("challenge", nonce=nonce), None), conn_id)]

    def received(self, conn_id: int, data: bytes, now: float) -> list[ServerEffect]:
        """Bytes arrived on a connection (any split of the stream)."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.closing:
            return []
        effects: list[ServerEffect] = []
        try:
            bodies = conn.reader.feed(data)
        except ProtocolError as exc:
            return self._bad_frame(conn, str(exc))
        for body in bodies:
            try:
                message = protocol.parse_body(body, "c")
            except ProtocolError as exc:
                return effects + self._bad_frame(conn, str(exc))
            conn.last_heard = now
            effects += self._message(conn, message, now)
            if conn.closing:
                break
        return effects

    def closed(self, conn_id: int, now: float) -> list[ServerEffect]:
        """A connection ended (either side closed it). The node's grant record stays until it
        expires: the client may still count it."""
        conn = self._conns.pop(conn_id, None)
        if conn is None or conn.cluster is None or conn.node is None:
            return []
        cluster = self.clusters[conn.cluster]
        node = cluster.nodes.get(conn.node)
        if node is None or node.conn != conn_id:
            return []
        node.conn = None
        node.report = None
        return [
            Log(
                "info",
                "qserver-node-left",
                f"cluster {cluster.spec.name}: node {node.name} disconnected",
                {"cluster": cluster.spec.name, "node": node.name},
            )
        ]

    def tick(self, now: float) -> list[ServerEffect]:
        """Drop connections that never said hello or went silent."""
        effects: list[ServerEffect] = []
        for conn in list(self._conns.values()):
            if conn.closing:
                continue
            if conn.session is None and now - conn.opened > HELLO_TIMEOUT:
                effects += self._close(conn, f"no hello within {HELLO_TIMEOUT:g} s", "debug")
            elif conn.node is not None and now - conn.last_heard > SILENT_INTERVALS * conn.interval:
                effects += self._close(
                    conn,
                    f"node {conn.node} of cluster {conn.cluster} silent for "
                    f"{now - conn.last_heard:.1f} s ({SILENT_INTERVALS} intervals of "
                    f"{conn.interval:g} s)",
                    "warning",
                )
        return effects

    def next_deadline(self) -> float | None:
        """The earliest time tick() has something to do."""
        times = [
            c.opened + HELLO_TIMEOUT
            if c.session is None
            else c.last_heard + SILENT_INTERVALS * c.interval
            for c in self._conns.values()
            if not c.closing and (c.session is None or c.node is not None)
        ]
        return min(times) + 0.001 if times else None

    # -- messages ------------------------------------------------------------------------

    def _message(self, conn: _Conn, message: Message, now: float) -> list[ServerEffect]:
        if conn.session is None:
            if message.type not in ("hello", "status"):
                return self._bad_frame(conn, f"{message.type!r} before hello")
            return self._hello(conn, message, now)
        if message.type != "report":
            return self._bad_frame(conn, f"{message.type!r} after hello")
        problem = self._check_session(conn, message)
        if problem:
            return self._refuse(conn, problem)
        return self._report(conn, message, now)

    def _check_session(self, conn: _Conn, message: Message) -> str | None:
        assert conn.cluster is not None
        if message["c"] != conn.cluster:
            return f"cluster changed from {conn.cluster} to {message['c']}"
        if not message.verify(self.clusters[conn.cluster].spec.keys):
            return f"bad signature for cluster {conn.cluster}"
        if message["s"] != conn.session or message["n"] != conn.recv_seq:
            return (
                f"replayed or out-of-order frame (sequence {message['n']}, expected "
                f"{conn.recv_seq}, {'same' if message['s'] == conn.session else 'other'} session)"
            )
        conn.recv_seq += 1
        return None

    def _hello(self, conn: _Conn, message: Message, now: float) -> list[ServerEffect]:
        name = message["c"]
        cluster = self.clusters.get(name)
        if cluster is None:
            served = ", ".join(sorted(self.clusters)) or "none"
            return self._refuse(conn, f"unknown cluster {name!r} (this server serves: {served})")
        if not message.verify(cluster.spec.keys):
            cluster.refused += 1
            return self._refuse(
                conn, f"bad signature for cluster {name} (is its authkeys the same on both sides?)"
            )
        session = message["s"]
        if session[: 2 * protocol.NONCE_SIZE] != conn.nonce or message["n"] != 0:
            cluster.refused += 1
            return self._refuse(
                conn,
                f"cluster {name}: hello does not answer this connection's "
                "challenge (a replayed hello?)",
            )
        conn.session, conn.cluster, conn.recv_seq = session, name, 1
        if message.type == "status":
            reply = self._signed(conn, "status-reply", status=self.status(now, only=name))
            conn.closing = True
            return [Send(reply, conn.id), Close("status sent", conn.id)]
        node_name, node_id = message["node"], message["id"]
        known = cluster.spec.nodes.get(node_name)
        if known is None or known[0] != node_id:
            cluster.refused += 1
            what = "is not a node" if known is None else f"has node id {known[0]}, not {node_id}"
            return self._refuse(
                conn, f"cluster {name}: {node_name} {what} in {cluster.spec.source}"
            )
        node = cluster.node(node_name)
        effects: list[ServerEffect] = []
        if node.conn is not None and node.conn in self._conns:
            effects += self._close(self._conns[node.conn], f"{node_name} connected again", "info")
        node.conn, node.report = conn.id, None
        conn.node = node_name
        conn.interval = min(message["interval"], self.lease / 3)
        effects.append(
            Log(
                "info",
                "qserver-node-joined",
                f"cluster {name}: node {node_name} (id {node_id}) connected",
                {"cluster": name, "node": node_name},
            )
        )
        reason = "welcome"
        if now < self.quiet_until:
            reason = f"server started recently: no grant for {self.quiet_until - now:.2f} s"
        effects.append(
            Send(self._signed(conn, "welcome", lease=self.lease, reason=reason), conn.id)
        )
        return effects

    def _report(self, conn: _Conn, message: Message, now: float) -> list[ServerEffect]:
        assert conn.cluster is not None and conn.node is not None
        cluster = self.clusters[conn.cluster]
        node = cluster.node(conn.node)
        members = frozenset(message["members"])
        if conn.node not in members:
            return self._bad_frame(conn, f"node {conn.node} reports a membership without itself")
        report = _Report(members, message["ring"], message["resources"])
        node.report = report
        if node.grant_key is not None and node.grant_key != (members, report.ring):
            # The client dropped that grant when its membership changed (client rule).
            node.grant_key, node.grant_until = None, float("-inf")
        effects: list[ServerEffect] = []
        grant, reason = self._may_grant(cluster, node, now)
        if grant:
            if cluster.holder != members:
                effects.append(
                    Log(
                        "warning" if cluster.holder is not None else "info",
                        "qserver-vote-moved",
                        f"cluster {cluster.spec.name}: the vote goes to partition "
                        f"{_fmt(members)} ({reason})",
                        {"cluster": cluster.spec.name, "partition": sorted(members)},
                    )
                )
            cluster.holder = members
            node.grant_key = (members, report.ring)
            node.grant_until = now + self.lease + self.margin
        cluster.vote_seq += 1
        vote = self._signed(
            conn,
            "vote",
            req=message["req"],
            grant=grant,
            lease=self.lease,
            seq=cluster.vote_seq,
            reason=reason[: protocol.MAX_REASON],
        )
        effects.append(Send(vote, conn.id))
        return effects

    # -- the decision --------------------------------------------------------------------

    def partitions(self, cluster: _Cluster) -> list[Partition]:
        """The partitions the connected nodes of `cluster` report."""
        reports: dict[str, _Report] = {}
        for node in cluster.nodes.values():
            if node.report is not None:
                reports[node.name] = node.report
        by_members: dict[Members, list[str]] = {}
        for name, report in reports.items():
            by_members.setdefault(report.members, []).append(name)
        result = []
        for members, reporters in sorted(by_members.items(), key=lambda kv: sorted(kv[0])):
            rings = {reports[r].ring for r in reporters}
            others = sorted(n for n, r in reports.items() if n in members and r.members != members)
            unknown = sorted(m for m in members if m not in cluster.spec.nodes)
            why = ""
            if unknown:
                why = f"lists nodes not in the cluster: {', '.join(unknown)}"
            elif others:
                why = f"in transition: {', '.join(others)} report another membership"
            elif len(rings) > 1:
                why = "in transition: its nodes report different rings"
            votes = sum(cluster.spec.nodes.get(m, (0, 0))[1] for m in members)
            resources = max(reports[r].resources for r in reporters)
            result.append(
                Partition(members, tuple(sorted(reporters)), votes, not why, resources, why)
            )
        return result

    def decide(self, cluster: _Cluster) -> tuple[Members | None, str]:
        """The partition that should hold the vote now (ffsplit), and why."""
        candidates = [p for p in self.partitions(cluster) if p.settled]
        if not candidates:
            return None, "no settled partition"
        best = max(p.votes for p in candidates)
        tied = [p for p in candidates if p.votes == best]
        if len(tied) == 1:
            return tied[0].members, f"the largest partition ({best} votes)"
        if cluster.holder is not None and any(p.members == cluster.holder for p in tied):
            return cluster.holder, f"a tie at {best} votes: the partition holding the vote keeps it"
        ids = cluster.spec.nodes

        def lowest(p: Partition) -> int:
            return min(ids[m][0] for m in p.members)

        rule = self.tie_breaker
        if rule == "highest":
            win = max(tied, key=lambda p: max(ids[m][0] for m in p.members))
            return win.members, f"a tie at {best} votes: the highest node id"
        if rule == "resources":
            win = min(tied, key=lambda p: (-p.resources, lowest(p)))
            return win.members, f"a tie at {best} votes: the most resources ({win.resources})"
        if isinstance(rule, int):
            for p in tied:
                if any(ids[m][0] == rule for m in p.members):
                    return p.members, f"a tie at {best} votes: the partition with node id {rule}"
        win = min(tied, key=lowest)
        return win.members, f"a tie at {best} votes: the lowest node id ({lowest(win)})"

    def _may_grant(self, cluster: _Cluster, node: _Node, now: float) -> tuple[bool, str]:
        assert node.report is not None
        members = node.report.members
        if now < self.quiet_until:
            return False, (
                f"the server started recently: it grants nothing for {self.quiet_until - now:.2f}"
                " s more, until any grant an earlier run gave has expired"
            )
        mine = next(p for p in self.partitions(cluster) if p.members == members)
        if not mine.settled:
            return False, f"partition {_fmt(members)} {mine.why_not_settled}"
        winner, why = self.decide(cluster)
        if winner != members:
            return False, f"partition {_fmt(winner or frozenset())} should hold the vote: {why}"
        others = [
            n
            for n in cluster.nodes.values()
            if n.grant_until > now and n.grant_key is not None and n.grant_key[0] != members
        ]
        if others:
            until = max(n.grant_until for n in others)
            held_by = sorted({_fmt(n.grant_key[0]) for n in others if n.grant_key})
            return False, (
                f"waiting {until - now:.2f} s for the grants of {', '.join(held_by)} to expire "
                f"(then {why})"
            )
        return True, why

    # -- helpers -------------------------------------------------------------------------

    def _signed(self, conn: _Conn, kind: str, **fields: Any) -> bytes:
        assert conn.cluster is not None and conn.session is not None
        key = self.clusters[conn.cluster].spec.keys.signing
        msg = make(kind, c=conn.cluster, s=conn.session, d="s", n=conn.send_seq, **fields)
        conn.send_seq += 1
        return seal(msg, key)

    def _close(self, conn: _Conn, reason: str, level: LogLevel) -> list[ServerEffect]:
        conn.closing = True
        log = Log(level, "qserver-close", f"connection {conn.id}: {reason}", {"conn": conn.id})
        return [log, Close(reason, conn.id)]

    def _refuse(self, conn: _Conn, reason: str) -> list[ServerEffect]:
        self.refused += 1
        conn.closing = True
        return [
            Log(
                "warning",
                "qserver-refused",
                f"connection {conn.id} refused: {reason}",
                {"conn": conn.id},
            ),
            Send(seal(make("refused", reason=reason[: protocol.MAX_REASON]), None), conn.id),
            Close(reason, conn.id),
        ]

    def _bad_frame(self, conn: _Conn, reason: str) -> list[ServerEffect]:
        self.bad_frames += 1
        if conn.cluster is not None:
            self.clusters[conn.cluster].refused += 1
        return self._close(conn, f"bad frame: {reason}", "warning")

    # -- status --------------------------------------------------------------------------

    def status(self, now: float, only: str | None = None) -> dict[str, Any]:
        """Per cluster: nodes, partitions and who holds the vote for how long (JSON-able;
        times are seconds from `now`, since the server's clock means nothing elsewhere)."""
        clusters: dict[str, Any] = {}
        for name, cluster in sorted(self.clusters.items()):
            if only is not None and name != only:
                continue
            winner, why = self.decide(cluster)
            holders = [
                n for n in cluster.nodes.values() if n.grant_until > now and n.grant_key is not None
            ]
            nodes = {}
            for node_name, (node_id, votes) in sorted(cluster.spec.nodes.items()):
                node = cluster.nodes.get(node_name)
                report = node.report if node else None
                nodes[node_name] = {
                    "id": node_id,
                    "votes": votes,
                    "connected": bool(node and node.conn is not None),
                    "members": sorted(report.members) if report else None,
                    "ring": list(report.ring) if report else None,
                    "resources": report.resources if report else None,
                    "grant_remaining": (
                        round(node.grant_until - now, 3)
                        if node and node.grant_until > now
                        else None
                    ),
                }
            clusters[name] = {
                "nodes": nodes,
                "partitions": [
                    {
                        "members": sorted(p.members),
                        "reporters": list(p.reporters),
                        "votes": p.votes,
                        "settled": p.settled,
                        "why_not_settled": p.why_not_settled,
                        "resources": p.resources,
                    }
                    for p in self.partitions(cluster)
                ],
                # one partition at most (the safety argument); a list keeps the JSON plain
                "vote_holder": sorted(holders[0].grant_key[0]) if holders else None,
                "vote_remaining": (
                    round(max(n.grant_until for n in holders) - now, 3) if holders else None
                ),
                "should_hold": sorted(winner) if winner else None,
                "why": why,
                "refused": cluster.refused,
            }
        return {
            "clusters": clusters,
            "lease": self.lease,
            "margin": round(self.margin, 3),
            "tie_breaker": self.tie_breaker,
            "starting_for": round(self.quiet_until - now, 3) if now < self.quiet_until else 0,
            "connections": len(self._conns),
            "bad_frames": self.bad_frames,
            "refused": self.refused,
        }
