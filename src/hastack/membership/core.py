"""The membership core of one node: failure detection, membership, quorum and the DC lease.

Sans-IO: it is fed datagrams, timer ticks, ping replies and fence results with an explicit
`now` (this node's monotonic clock, seconds) and returns effects. The argument for why at most
one node holds the DC lease at any instant is in docs/design/membership.md; the rules it relies
on are marked "SAFETY" below.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hastack.membership.codec import Dropped, Grant, Message, decode, encode
from hastack.membership.effects import Effect, Fence, Log, Send, SendPing
from hastack.membership.params import CoreParams
from hastack.membership.replay import ReplayWindow
from hastack.membership.status import NodeState, NodeStatus, PeerStatus

INF = float("inf")
FOLLOWER_SLACK = 1.25  # see _on_heartbeat
OWN_SENT_KEPT = 4  # our last datagrams, recognised when they loop back (see _receive)


@dataclass
class Peer:
    """What this node knows of one other configured node."""

    name: str
    node_id: int
    votes: int
    generation: int | None = None
    last_heard: float | None = None
    link_heard: dict[str, float] = field(default_factory=dict)
    link_windows: dict[str, ReplayWindow] = field(default_factory=dict)
    window: ReplayWindow = field(default_factory=ReplayWindow)
    state: NodeState = "unknown"
    late_warned: bool = False
    link_up: dict[str, bool] = field(default_factory=dict)
    last_hb: Message | None = None  # newest heartbeat content, by sequence
    last_hb_at: float = -INF


@dataclass
class Candidacy:
    term: int
    round: int  # the seq of the vote request: grants acknowledge it as a lease round
    sent_at: float
    deadline: float
    granted: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)


@dataclass
class Leadership:
    """This node's DC state for one term."""

    term: int
    rounds: dict[int, float]  # round (our seq) -> local send time
    acks: dict[str, int]  # voter -> highest round acknowledged in this term
    lease_end: float
    members: tuple[str, ...] = ()
    members_counter: int = 0
    # When the member list must next be recomputed even if no one joins: the earliest time a
    # member's newest acknowledged round gets older than deadtime; -INF after acks were removed.
    members_check_at: float = -INF
    # The votes that acknowledged our newest round (`newest_round`, -1: not tracked): most
    # acks are for that round, and this count decides its quorum without _extend_lease's sort.
    newest_round: int = -1
    newest_votes: int = 0
    # Peers whose newest heartbeat says they can never follow us in this term (see
    # _cannot_follow): kept current as heartbeats arrive, so that each tick need not look.
    unwilling: set[str] = field(default_factory=set)
    # The send time of the newest round a quorum acknowledged: what this DC knows for sure
    # about its quorum (see quorum_acked_since)
    quorum_round_sent: float = -INF


class MembershipCore:
    def __init__(self, params: CoreParams, name: str, generation: int, now: float) -> None:
        spec = params.spec(name)
        if spec is None:
            raise ValueError(f"node {name!r} is not in the configuration's node list")
        self.params = params
        self.timing = params.timing
        self.name = name
        self.node_id = spec.node_id
        self.votes = spec.votes
        self.generation = generation
        self.started_at = now
        self.peers: dict[str, Peer] = {
            n.name: Peer(n.name, n.node_id, n.votes) for n in params.nodes if n.name != name
        }
        self.counters: dict[str, int] = {
            key: 0
            for key in (
                "rx",
                "tx",
                "duplicate",
                "own",
                "drop_malformed",
                "drop_auth",
                "drop_cluster",
                "drop_replay",
                "drop_unknown_node",
                "loop_stalls",
            )
        }
        self.seq = 0
        self.high_term = 0
        # The vote this node has given (to itself or another); SAFETY: while `grant_until` is in
        # the future it votes for nobody else.
        self.voted_term = 0
        self.voted_for: str | None = None
        self.grant_until = -INF
        self.grant_round = 0
        self.candidacy: Candidacy | None = None
        self.leader: Leadership | None = None
        self.next_candidacy = now  # backoff after a lost election
        self.run_at: float | None = None  # when this node may stand, once eligible (by rank)
        self.next_hb = now
        self.expected_tick = now
        self.grace_until = -INF  # after a stall, no node is declared dead until this time
        self.all_seen = not params.wait_for_all
        # the quorum server's vote for our partition, valid until then (see quorum_device),
        # and the members of the partition it was granted for
        self.q_until = -INF
        self.q_members: frozenset[str] = frozenset()
        # an operator's override of the expected votes (hastack quorum force); None: none
        self.expected_override: int | None = None
        self.fenced: set[str] = set()
        self.fence_pending: set[str] = set()
        self.ping_targets = tuple(
            dict.fromkeys(list(params.ping) + [a for g in params.ping_groups for a in g.addresses])
        )
        self.ping_last: dict[str, float] = {}
        self.ping_up: dict[str, bool] = {}
        self.next_ping = now
        # what this node holds as the cluster's member list when it is not the DC
        self.known_members: tuple[str, ...] = ()
        self.known_version: tuple[int, int] = (0, 0)
        self.known_dc: str | None = None
        self.known_dc_at = -INF
        self.known_dc_direct_at = -INF  # when we last heard the known DC itself
        self.left = False
        self.last_tick = -INF
        # The earliest time a peer, a link or a ping node may have to be declared late or
        # dead: tick() checks them only from then on (see _detection_deadline).
        self.detect_at = self.started_at + self.timing.initdead
        # How far ahead of a deadline (detect_at, members_check_at) a wake-up that happens
        # anyway may re-check it. Such a check decides only what is due at its `now`, so
        # doing it early is harmless; it pushes the deadline out (the peers were heard
        # meanwhile), and saves the timer wake-up the stale deadline would cost — most
        # deadlines are stale: they were computed from heartbeats that have been renewed since.
        # Less than half of warntime - keepalive, so that the deadline a check computes (at
        # least that far ahead) is never already inside the window.
        t = self.timing
        self.early_check = max(0.0, min(t.keepalive, (t.warntime - t.keepalive) / 2))
        self._seen: tuple[str, ...] | None = None  # online peers' names, sorted; None: stale
        # recently accepted datagrams -> (sender, generation, seq), see _remember
        self._recent: dict[bytes, tuple[str, int, int]] = {}
        self._recent_max = 4 * len(self.peers) * max(1, len(params.links))
        # Byte-identical copies arrive over the other links; with one link there are none
        # worth recognising (a duplicate on the same link is a replay).
        self._copies_expected = len(params.links) > 1
        # Our own last datagrams: broadcast (and looped multicast) hands them back to us, and
        # recognising them byte for byte spares authenticating and decoding them.
        self._sent: deque[bytes] = deque(maxlen=OWN_SENT_KEPT)
        self._note_all_seen()

    # ---- the API the shell calls ----------------------------------------------------------

    def start(self, now: float) -> list[Effect]:
        out: list[Effect] = [
            Log(
                "info",
                "node-start",
                f"node {self.name} starting, generation {self.generation}",
                {"generation": self.generation},
            )
        ]
        out += self._send_heartbeat(now)
        return out

    def next_deadline(self) -> float:
        if self.left:
            return INF
        t = self.timing
        times = [
            self.next_hb,
            self.started_at + t.initdead,
            self.started_at + t.quiet,
            self.detect_at,
            self.grant_until,
            self.next_candidacy,
            self.known_dc_at + t.deadtime,
            self.grace_until,
        ]
        if self.candidacy:
            times.append(self.candidacy.deadline)
        if self.leader:
            times.append(self.leader.lease_end)
            times.append(self.leader.lease_end + t.lease)
            times.append(self.leader.members_check_at)
        if self.ping_targets:
            times.append(self.next_ping)
        if self.run_at is not None:
            times.append(self.run_at)
        # Times at or before the last tick were handled by it; the heartbeat timer (always in
        # the future) re-evaluates the conditions that are states rather than events.
        last = self.last_tick
        deadline = min([x for x in times if x > last])  # a list: cheaper than a generator
        self.expected_tick = deadline
        return deadline

    def _detection_deadline(self, now: float) -> float:
        """The earliest warntime, deadtime, link deadtime, deadping or initdead still ahead.

        tick() checks peers, links and ping nodes only once this time has come, and then
        computes it again. A datagram or a ping reply only moves these deadlines later, except
        where something comes up or is heard again after a warning: _heard, _came_up and
        ping_reply move detect_at earlier for those, so it is never too late.
        """
        t = self.timing
        times: list[float] = []
        for peer in self.peers.values():
            if peer.last_heard is None:
                continue
            if peer.state == "online":
                times.append(peer.last_heard + t.deadtime)
                if not peer.late_warned:
                    times.append(peer.last_heard + t.warntime)
            times += [
                at + t.deadtime for link, at in peer.link_heard.items() if peer.link_up.get(link)
            ]
        times += [at + t.deadping for at in self.ping_last.values()]
        if any(p.state == "unknown" for p in self.peers.values()):
            times.append(self.started_at + t.initdead)
        ahead = [at for at in times if at > now]
        if len(ahead) < len(times) and self.grace_until > now:
            ahead.append(self.grace_until)  # checks held back by a stall's grace run after it
        return min(ahead, default=INF)

    def tick(self, now: float) -> list[Effect]:
        if self.left:
            return []
        out: list[Effect] = []
        late = now - self.expected_tick
        if late > self.timing.stall_threshold:
            # A paused process or a stalled loop: datagrams that arrived meanwhile are still
            # queued, so give them a keepalive to be read before declaring anyone dead. The
            # DC lease is not extended: it is checked against the clock whatever happened.
            self.counters["loop_stalls"] += 1
            self.grace_until = now + self.timing.keepalive
            out.append(
                Log(
                    "warning",
                    "loop-stall",
                    f"event loop stalled for {late * 1000:.0f} ms (paused process, "
                    f"overload or clock jump); checking leases against the clock",
                    {"stall_ms": round(late * 1000)},
                )
            )
        detecting = now >= self.detect_at - self.early_check
        if detecting:
            out += self._check_peers(now)
            out += self._check_ping_loss(now)
        out += self._send_pings(now)
        out += self._check_leadership(now)
        out += self._check_candidacy(now)
        out += self._maybe_fence(now)
        out += self._maybe_elect(now)
        if now >= self.next_hb:
            out += self._send_heartbeat(now)
        self.last_tick = now
        if detecting:
            self.detect_at = self._detection_deadline(now)
        self.expected_tick = self.next_deadline()
        return out

    def receive(
        self, data: bytes, link: str, now: float, arrived: float | None = None
    ) -> list[Effect]:
        """A datagram from `link`, read at `now`. `arrived` (<= now, default now) is when it
        reached the node: the shell reads its links in batches (Timing.read_interval), and
        the arrival time is what says how long ago the sender was alive. Everything else uses
        `now`: a vote is granted when it is given, so it binds at least as long as the DC's
        lease, which counts from the round's send time, before any arrival."""
        at = now if arrived is None else min(arrived, now)
        out = self._receive(data, link, now, at)
        if at >= self.detect_at - self.early_check and not self.left:
            # A deadline is near: check it in this wake-up rather than in a timer's own. As of
            # the arrival: datagrams that arrived later, read in the same batch, come next.
            out += self._check_peers(at)
            out += self._check_ping_loss(at)
            self.detect_at = self._detection_deadline(at)
        return out

    def _receive(self, data: bytes, link: str, now: float, arrived: float) -> list[Effect]:
        if self.left:
            return []
        if data in self._sent:
            self.counters["own"] += 1  # our own broadcast or multicast, looped back
            return []
        if self._copies_expected:
            copy_of = self._recent.get(data)
            if copy_of is not None:
                return self._receive_copy(*copy_of, link, arrived)
        msg = decode(data, self.params.authkeys, self.params.cluster_name)
        if isinstance(msg, Dropped):
            self.counters[f"drop_{msg.reason}"] += 1
            return []
        if msg.node == self.name:
            self.counters["own"] += 1  # our own multicast/broadcast looped back
            return []
        peer = self.peers.get(msg.node)
        if peer is None:
            self.counters["drop_unknown_node"] += 1
            return []
        if peer.generation is not None and msg.generation < peer.generation:
            self.counters["drop_replay"] += 1  # an older incarnation: a replay or a stale copy
            return []
        out: list[Effect] = []
        if peer.generation is None or msg.generation > peer.generation:
            if peer.generation is not None:
                out.append(
                    Log(
                        "info",
                        "node-restarted",
                        f"node {peer.name} restarted (generation {msg.generation})",
                        {"node": peer.name, "generation": msg.generation},
                    )
                )
            peer.generation = msg.generation
            peer.window = ReplayWindow()
            peer.link_windows = {}
            peer.last_hb = None
            if self.leader is not None:
                self.leader.unwilling.discard(peer.name)
        window = peer.link_windows.get(link)
        if window is None:
            window = peer.link_windows[link] = ReplayWindow()
        if not window.accept(msg.seq):
            self.counters["drop_replay"] += 1
            return out
        self.counters["rx"] += 1
        if self._heard(peer, link, arrived):
            out += self._came_up(peer, link)
        if not peer.window.accept(msg.seq):
            self.counters["duplicate"] += 1  # the same message over another link
            return out
        if self._copies_expected:
            self._remember(data, peer, msg.seq)
        self.high_term = max(self.high_term, msg.high_term, msg.term)
        if msg.type == "hb":
            out += self._on_heartbeat(peer, msg, now)
        elif msg.type == "vreq":
            out += self._on_vote_request(peer, msg, now)
        elif msg.type == "vote":
            out += self._on_vote(peer, msg, now)
        elif msg.type == "wd":
            if self.voted_for == peer.name and self.voted_term == msg.term:
                self.grant_until = now  # the candidate promised never to act on this term
        elif msg.type == "bye":
            out += self._on_bye(peer, now)
        return out

    def _remember(self, data: bytes, peer: Peer, seq: int) -> None:
        """Keep a newly accepted datagram, so that its copies over the other links are
        recognised byte for byte, without authenticating and decoding them again."""
        self._recent[data] = (peer.name, peer.generation or 0, seq)
        if len(self._recent) > self._recent_max:
            del self._recent[next(iter(self._recent))]  # the oldest

    def _receive_copy(
        self, name: str, generation: int, seq: int, link: str, arrived: float
    ) -> list[Effect]:
        """The same bytes as a datagram accepted before: the same checks as receive() makes
        after decoding, which are all that can differ for a copy."""
        peer = self.peers[name]
        window = peer.link_windows.setdefault(link, ReplayWindow())
        if peer.generation != generation or not window.accept(seq):
            self.counters["drop_replay"] += 1
            return []
        self.counters["rx"] += 1
        self.counters["duplicate"] += 1
        return self._came_up(peer, link) if self._heard(peer, link, arrived) else []

    def ping_reply(self, target: str, now: float) -> list[Effect]:
        if target not in self.ping_targets:
            return []
        self.ping_last[target] = now
        if not self.ping_up.get(target):
            self.ping_up[target] = True
            self.detect_at = min(self.detect_at, now + self.timing.deadping)
            return [Log("info", "ping-up", f"ping node {target} is reachable", {"target": target})]
        return []

    def fence_done(self, target: str, ok: bool, now: float) -> list[Effect]:
        self.fence_pending.discard(target)
        if ok:
            self.fenced.add(target)
            out: list[Effect] = [
                Log("warning", "fenced", f"node {target} was fenced", {"node": target})
            ]
            # The fenced vote counts for us from now: act on it now, not at the next timer.
            if self.leader is not None and self.leader.rounds:
                self._extend_lease(now)  # it completes a quorum for our newest round
            else:
                out += self._maybe_elect(now)
            return out
        return [
            Log("error", "fence-failed", f"fencing {target} failed; will retry", {"node": target})
        ]

    def quorum_device(self, until: float | None, now: float) -> list[Effect]:
        """The quorum server's vote (ha.cf quorum_server) for the partition this node
        reported, valid until `until` on this node's clock (None: not held). The client
        counts a grant from the time it sent the report the server answered, and the server
        gives the vote to another partition only after that: two partitions never both
        count it. A DC whose lease needs it keeps the lease no longer than the vote.

        SAFETY: every member of the partition the server granted holds the grant. Cut in
        two, each side would count it with its own votes until its membership changes (a
        relayed DC's list stays fresh for a deadtime; a DC's lease, once extended, stays):
        the vote counts only for a set of votes that includes every member of that
        partition (the members this node reports now, as the daemon hands them to the
        client before it asks), which two disjoint sides never both have."""
        self.q_until = -INF if until is None else until
        self.q_members = frozenset(self.members(now)[0]) if until is not None else frozenset()
        if self.leader is not None:
            self._extend_lease(now)
        return self.tick(now) if until is not None else []

    def force_quorum(self, force: bool, now: float) -> list[Effect]:
        """An operator's override (``hastack quorum force``), as ``corosync-quorumtool -e``:
        the expected votes become those of the nodes this node hears now, so that they have
        quorum among themselves; ``force=False`` restores the configuration's. Forcing
        quorum on a site cut off from the other is safe only when the other site is really
        down (or fenced): otherwise both sides run the resources."""
        expected = self._votes_of(self._local_view(now)) if force else None
        self.expected_override = expected
        what = "restored" if expected is None else f"forced to {expected}"
        log = Log("warning", "quorum-forced", f"expected votes {what} by an operator")
        return [log, *self.tick(now)]

    def _total_votes(self) -> int:
        if self.expected_override is not None:
            return self.expected_override
        return self.params.total_votes

    def _qvote(self, now: float, voters: set[str] | tuple[str, ...] | None = None) -> int:
        """The quorum server's vote (0 or 1) for `voters`, if they include every member of the
        partition it was granted for (None: whether it is held at all)."""
        if now >= self.q_until or self.expected_override is not None:
            return 0
        if voters is not None and not self.q_members.issubset(voters):
            return 0
        return 1

    def leave(self, now: float) -> list[Effect]:
        """Clean shutdown: give up the DC lease and tell the peers we are going."""
        if self.left:
            return []
        out: list[Effect] = [Log("info", "node-leave", f"node {self.name} leaving the cluster")]
        self.leader = None
        self.candidacy = None
        out += self._send(now, type="bye", term=self.voted_term)
        self.left = True
        return out

    def quorum_acked_since(self, since: float, now: float) -> bool | None:
        """As DC: whether a quorum acknowledged a round this node sent at or after `since`
        (None: this node is not the DC). A DC cut off from the others keeps its lease for a
        while and sees its peers die one by one: right after losing one it still counts the
        others, which may be gone too. Before it fences anyone it waits for this proof that
        it still has a quorum now; a cut-off DC never gets it, and loses its lease instead.
        Two-node clusters race by priority-fencing-delay instead (no majority to prove)."""
        if not self._holds_lease(now):
            return None
        if self.params.two_node and self.expected_override is None:
            return True
        assert self.leader is not None
        return self.leader.quorum_round_sent >= since

    def is_dc(self, now: float) -> bool:
        """Whether this node may act as DC at `now`."""
        return self._holds_lease(now)

    def _holds_lease(self, now: float) -> bool:
        # SAFETY: acting as DC is allowed only while the lease, measured from the send time
        # of a round that a quorum acknowledged, has not run out on this node's own clock.
        return self.leader is not None and not self.left and now < self.leader.lease_end

    # ---- failure detection ---------------------------------------------------------------

    def _heard(self, peer: Peer, link: str, now: float) -> bool:
        """Stamp the peer and the link as heard now. True when either was not up before:
        the caller then lets _came_up log it and update the state (the rare case, kept out
        of the path every heartbeat takes)."""
        peer.last_heard = now
        peer.link_heard[link] = now
        if peer.name in self.fenced:
            self.fenced.discard(peer.name)  # it is back: only its own vote counts from now on
        if peer.late_warned:
            peer.late_warned = False
            self.detect_at = min(self.detect_at, now + self.timing.warntime)
        return peer.state != "online" or not peer.link_up.get(link)

    def _came_up(self, peer: Peer, link: str) -> list[Effect]:
        out: list[Effect] = []
        now = peer.link_heard[link]
        # a peer or link that just came up has a detection deadline the last tick did not see
        self.detect_at = min(self.detect_at, now + min(self.timing.warntime, self.timing.deadtime))
        if not peer.link_up.get(link):
            peer.link_up[link] = True
            if peer.state == "online":
                out.append(
                    Log(
                        "info",
                        "link-up",
                        f"link {link} to {peer.name} is up",
                        {"node": peer.name, "link": link},
                    )
                )
        if peer.state != "online":
            was = peer.state
            peer.state = "online"
            self._seen = None
            out.append(
                Log(
                    "info",
                    "node-up",
                    f"node {peer.name} is online (was {was})",
                    {"node": peer.name, "links": sorted(peer.link_heard)},
                )
            )
            self._note_all_seen()
        return out

    def _note_all_seen(self) -> None:
        if not self.all_seen and all(p.state == "online" for p in self.peers.values()):
            self.all_seen = True

    def _check_peers(self, now: float) -> list[Effect]:
        t = self.timing
        out: list[Effect] = []
        for peer in self.peers.values():
            for link, at in peer.link_heard.items():
                if peer.link_up.get(link) and now >= at + t.deadtime and now >= self.grace_until:
                    peer.link_up[link] = False
                    if peer.state == "online" and any(peer.link_up.values()):
                        out.append(
                            Log(
                                "warning",
                                "link-down",
                                f"link {link} to {peer.name} is down; node still online "
                                f"over {', '.join(k for k, v in peer.link_up.items() if v)}",
                                {"node": peer.name, "link": link},
                            )
                        )
            if peer.state == "online":
                assert peer.last_heard is not None
                # compared as _detection_deadline computes the deadlines, to the last bit
                silent = now - peer.last_heard
                if now >= peer.last_heard + t.deadtime and now >= self.grace_until:
                    peer.state = "offline"
                    self._seen = None
                    if self.leader is not None:
                        self.leader.members_check_at = -INF
                    peer.last_hb = None
                    if self.leader is not None:
                        self.leader.unwilling.discard(peer.name)
                    out.append(
                        Log(
                            "warning",
                            "node-dead",
                            f"node {peer.name} is dead: no heartbeat for "
                            f"{silent * 1000:.0f} ms (deadtime {t.deadtime * 1000:.0f} ms)",
                            {"node": peer.name, "silent_ms": round(silent * 1000)},
                        )
                    )
                elif now >= peer.last_heard + t.warntime and not peer.late_warned:
                    peer.late_warned = True
                    out.append(
                        Log(
                            "warning",
                            "heartbeat-late",
                            f"late heartbeat from {peer.name}: {silent * 1000:.0f} ms "
                            f"(warntime {t.warntime * 1000:.0f} ms)",
                            {"node": peer.name, "silent_ms": round(silent * 1000)},
                        )
                    )
            elif peer.state == "unknown" and now >= self.started_at + t.initdead:
                peer.state = "offline"
                self._seen = None
                out.append(
                    Log(
                        "warning",
                        "node-dead",
                        f"node {peer.name} not heard within initdead ({t.initdead * 1000:.0f} ms)",
                        {"node": peer.name},
                    )
                )
        return out

    def _check_ping_loss(self, now: float) -> list[Effect]:
        out: list[Effect] = []
        for target in self.ping_targets:
            at = self.ping_last.get(target)
            if self.ping_up.get(target) and at is not None and now >= at + self.timing.deadping:
                self.ping_up[target] = False
                out.append(
                    Log(
                        "warning",
                        "ping-down",
                        f"ping node {target} unreachable for {(now - at) * 1000:.0f} ms",
                        {"target": target},
                    )
                )
        return out

    def _send_pings(self, now: float) -> list[Effect]:
        if not self.ping_targets or now < self.next_ping:
            return []
        self.next_ping = now + self.timing.keepalive
        return [SendPing(target) for target in self.ping_targets]

    def pingd(self) -> int:
        """Connectivity as pingd counts it: ping nodes up plus ping groups with a member up."""
        count = sum(1 for a in self.params.ping if self.ping_up.get(a))
        count += sum(
            1 for g in self.params.ping_groups if any(self.ping_up.get(a) for a in g.addresses)
        )
        return count

    # ---- views ------------------------------------------------------------------------------

    def _seen_names(self) -> tuple[str, ...]:
        if self._seen is None:
            self._seen = tuple(sorted(p.name for p in self._online()))
        return self._seen

    def _online(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.state == "online"]

    def _connected(self, now: float) -> list[Peer]:
        """Peers heard within deadtime whose newest heartbeat says they hear us too."""
        return [
            p
            for p in self._online()
            if p.last_hb is not None
            and now - p.last_hb_at < self.timing.deadtime
            and self.name in p.last_hb.seen
        ]

    def _local_view(self, now: float) -> tuple[str, ...]:
        return tuple(sorted([self.name] + [p.name for p in self._connected(now)]))

    def _votes_of(self, names: tuple[str, ...] | list[str]) -> int:
        total = 0
        for name in names:
            if name == self.name:
                total += self.votes
            elif name in self.peers:
                total += self.peers[name].votes
        return total

    def quorum(self) -> int:
        """Votes needed: more than half of the expected votes (two_node: one, as votequorum)."""
        if self.params.two_node and self.expected_override is None:
            return 1
        return self._total_votes() // 2 + 1

    def _fresh_dc(self, now: float) -> tuple[str | None, tuple[str, ...], tuple[int, int]]:
        if self._holds_lease(now):
            assert self.leader is not None
            return self.name, self.leader.members, (self.leader.term, self.leader.members_counter)
        if self.known_dc is not None and now - self.known_dc_at < self.timing.deadtime:
            return self.known_dc, self.known_members, self.known_version
        return None, (), (0, 0)

    def members(self, now: float) -> tuple[tuple[str, ...], tuple[int, int]]:
        dc, members, version = self._fresh_dc(now)
        if dc is not None:
            return members, version
        return self._local_view(now), (0, 0)

    def quorate(self, now: float) -> bool:
        if not self.all_seen:
            return False  # wait_for_all: not until every node was seen at once
        dc, members, _ = self._fresh_dc(now)
        if dc is not None:
            qvote = self._qvote(now, members) if self.name in members else 0
            has_quorum = self._votes_of(members) + qvote >= self.quorum()
            if dc == self.name or has_quorum:
                return self.name in members and has_quorum
            # A DC whose member list lacks quorum (its lease outlived the quorum that gave
            # it: a short partition of the DC, healing before we declared it dead) can
            # start nothing anywhere, and no other DC can hold a lease meanwhile: it does
            # not decide our quorum, what we hear does, as when there is no DC. Otherwise
            # the majority would stop its resources for the heartbeat it takes the DC to
            # readmit it.
        view = self._local_view(now)
        return self._votes_of(view) + self._qvote(now, view) >= self.quorum()

    # ---- heartbeats ---------------------------------------------------------------------------

    def _send(self, now: float, **fields: object) -> list[Effect]:
        self.seq += 1
        msg = Message(
            cluster=self.params.cluster_name,
            node=self.name,
            generation=self.generation,
            seq=self.seq,
            high_term=self.high_term,
            **fields,  # type: ignore[arg-type]
        )
        self.counters["tx"] += 1
        data = encode(msg, self.params.authkeys)
        self._sent.append(data)
        return [Send(data)]

    def _send_heartbeat(self, now: float) -> list[Effect]:
        self.next_hb = now + self.timing.keepalive
        dc, members, version = self._fresh_dc(now)
        lease = False
        out: list[Effect] = []
        if self.leader is not None and (
            self.voted_for != self.name or self.voted_term != self.leader.term
        ):
            # Our own vote went to another candidate (our self-vote lapsed during a stall):
            # it can no longer count for our lease.
            out += self._step_down(now, "our own vote went to another candidate")
        leader = self.leader
        if leader is not None:
            lease = True
            # SAFETY: the round's send time is taken before the datagram leaves, so every
            # voter's extension starts later than the time the DC counts its lease from.
            rounds = leader.rounds
            rounds[self.seq + 1] = now
            # an acknowledgement of a round older than a lease can extend nothing
            while now - rounds[next(iter(rounds))] > 2 * self.timing.lease:
                del rounds[next(iter(rounds))]
            leader.acks[self.name] = self.seq + 1
            leader.newest_round = self.seq + 1
            leader.newest_votes = self.votes
            self.grant_until = now + self.timing.lease
            self.grant_round = self.seq + 1
            # Our own vote may complete a quorum for the new round (one node holding the
            # majority, or fenced peers whose votes count for us). Otherwise nothing changed:
            # _on_ack kept lease_end at the best every acknowledgement so far allows.
            if self.fenced or self.q_until > now or self.expected_override is not None:
                self._extend_lease(now)
            elif self.votes > self._total_votes() / 2:
                leader.lease_end = max(leader.lease_end, now + self.timing.dc_lease)
                leader.quorum_round_sent = now
            dc = self.name
            members = leader.members
            version = (leader.term, leader.members_counter)
        relayed_stale = now - self.known_dc_direct_at >= self.timing.deadtime
        if self.leader is None and dc is not None and relayed_stale:
            dc, members, version = None, (), (0, 0)  # relay only what we hear ourselves
        dc_age = 0 if dc in (None, self.name) else round((now - self.known_dc_direct_at) * 1000)
        grant = None
        if self.voted_for is not None and self.grant_until > now:
            grant = Grant(self.voted_for, self.voted_term, self.grant_round)
        term = self.leader.term if self.leader else (self.voted_term if dc else 0)
        return out + self._send(
            now,
            type="hb",
            seen=self._seen_names(),
            dc=dc,
            dc_age=dc_age,
            term=term,
            lease=lease,
            grant=grant,
            members=members,
            members_version=version,
            attributes={"pingd": self.pingd()} if self.ping_targets else {},
            quorate=self.quorate(now),
            voted_term=self.voted_term,
        )

    def _on_heartbeat(self, peer: Peer, msg: Message, now: float) -> list[Effect]:
        out: list[Effect] = []
        peer.last_hb = msg
        if self.leader is not None:
            self._note_willingness(peer)
        peer.last_hb_at = now
        if (
            msg.dc is not None
            and msg.members_version >= self.known_version
            and (msg.dc == peer.name or msg.dc != self.name)
        ):
            # Adopt the newest member list, from the DC itself or relayed by a peer. A peer
            # relays a DC only while it hears that DC directly (see _send_heartbeat), and says
            # how long ago, so a relay never makes a dead DC look fresher than it is.
            heard_at = now - msg.dc_age / 1000
            if msg.dc == peer.name:
                self.known_dc_direct_at = now
                heard_at = now
            if msg.members_version > self.known_version or heard_at > self.known_dc_at:
                self.known_dc_at = heard_at
            self.known_dc = msg.dc
            self.known_members = msg.members
            self.known_version = msg.members_version
        if self.leader is not None:
            if msg.lease and msg.term > self.leader.term:
                out += self._step_down(now, f"{peer.name} is DC in newer term {msg.term}")
            elif msg.grant and msg.grant.to == self.name and msg.grant.term == self.leader.term:
                out += self._on_ack(peer, msg.grant.round, now)
        if msg.lease and self._may_vote(peer.name, msg.term, now):
            # A lease renewal from the DC we vote for (or a DC we may now vote for): extend
            # our vote and answer at once, so the DC's lease follows its rounds closely.
            renewed = self.voted_for == peer.name and self.voted_term == msg.term
            self._grant(peer.name, msg.term, msg.seq, now)
            if not renewed:
                out.append(
                    Log(
                        "info",
                        "vote",
                        f"following DC {peer.name} (term {msg.term})",
                        {"dc": peer.name, "term": msg.term},
                    )
                )
            out += self._send_heartbeat(now)
            # The DC's heartbeats now pace ours. Our own timer stays as the fallback, a quarter
            # keepalive later, so that it does not fire just before the DC's next heartbeat and
            # make us send twice in one round.
            self.next_hb = now + FOLLOWER_SLACK * self.timing.keepalive
        return out

    def _on_ack(self, peer: Peer, round_: int, now: float) -> list[Effect]:
        """A voter acknowledged our round `round_`. Runs for every follower's heartbeat, so
        it skips the work that cannot change anything: an ack moves the lease end only if
        its round was sent after the round the lease is counted from, and it can only add
        the acking peer to the member list (members lapse with time, at members_check_at)."""
        leader = self.leader
        assert leader is not None
        if round_ > leader.acks.get(peer.name, 0):
            leader.acks[peer.name] = round_
            sent = leader.rounds.get(round_)
            if round_ == leader.newest_round and sent is not None:
                # exactly what _extend_lease would compute for this round: no round is newer
                leader.newest_votes += peer.votes
                votes = leader.newest_votes + (self._votes_of(self.fenced) if self.fenced else 0)
                if votes > self._total_votes() / 2:
                    leader.lease_end = max(leader.lease_end, sent + self.timing.dc_lease)
                    leader.quorum_round_sent = max(leader.quorum_round_sent, sent)
                elif votes + self._qvote(now) > self._total_votes() / 2:
                    self._extend_lease(now)
            elif sent is not None and sent + self.timing.dc_lease > leader.lease_end:
                self._extend_lease(now)
        if peer.name in leader.members and now < leader.members_check_at:
            return []
        if self._update_members(now):
            return self._send_heartbeat(now)  # tell the members at once
        return []

    def _on_bye(self, peer: Peer, now: float) -> list[Effect]:
        peer.state = "left"
        self._seen = None
        peer.last_hb = None
        if self.leader is not None:
            self.leader.unwilling.discard(peer.name)
        peer.link_up = dict.fromkeys(peer.link_up, False)
        if self.voted_for == peer.name:
            self.grant_until = now  # a leaving DC gives up its lease before it says bye
        if self.known_dc == peer.name:
            self.known_dc = None
        if self.leader is not None:
            self.leader.acks.pop(peer.name, None)
            self.leader.members_check_at = -INF
            self.leader.newest_round = -1
        return [Log("info", "node-left", f"node {peer.name} left the cluster", {"node": peer.name})]

    # ---- votes and the DC lease ----------------------------------------------------------------

    def _may_vote(self, candidate: str, term: int, now: float) -> bool:
        # SAFETY: a restarted node has forgotten its votes; it votes for nobody until any vote
        # it gave before could have expired.
        if now < self.started_at + self.timing.quiet:
            return False
        # SAFETY: never two candidates in one term, never a newer candidate while a vote for
        # another still binds us.
        if term < self.voted_term:
            return False
        if term == self.voted_term and self.voted_for not in (None, candidate):
            return False
        return not (self.voted_for != candidate and self.grant_until > now)

    def _grant(self, candidate: str, term: int, round_: int, now: float) -> None:
        self.voted_term = term
        self.voted_for = candidate
        self.grant_until = now + self.timing.lease
        self.grant_round = round_
        self.high_term = max(self.high_term, term)

    def _on_vote_request(self, peer: Peer, msg: Message, now: float) -> list[Effect]:
        ok = self._may_vote(peer.name, msg.term, now)
        if ok:
            self._grant(peer.name, msg.term, msg.seq, now)
        return self._send(now, type="vote", term=msg.term, to=peer.name, ok=ok)

    def _on_vote(self, peer: Peer, msg: Message, now: float) -> list[Effect]:
        cand = self.candidacy
        if cand is None or msg.to != self.name or msg.term != cand.term:
            return []
        (cand.granted if msg.ok else cand.refused).add(peer.name)
        voters = cand.granted | {self.name}
        votes = self._lease_votes(voters) + self._qvote(now, voters | self.fenced)
        if votes > self._total_votes() / 2:
            return self._become_dc(now)
        return []

    def _lease_votes(self, voters: set[str]) -> int:
        # A fenced node is powered off: it holds no vote for anyone until it restarts, and
        # after a restart it waits `quiet` before voting, so its vote may be counted for us.
        return self._votes_of(sorted(voters | self.fenced))

    def _become_dc(self, now: float) -> list[Effect]:
        cand = self.candidacy
        assert cand is not None
        self.candidacy = None
        acks = dict.fromkeys(cand.granted, cand.round)
        acks[self.name] = cand.round
        self.leader = Leadership(
            term=cand.term,
            rounds={cand.round: cand.sent_at},
            acks=acks,
            lease_end=-INF,
        )
        for peer in self.peers.values():
            self._note_willingness(peer)
        self._extend_lease(now)
        self._update_members(now)
        out: list[Effect] = [
            Log(
                "info",
                "dc-elected",
                f"{self.name} is DC for term {cand.term}",
                {"dc": self.name, "term": cand.term, "votes": sorted(cand.granted | {self.name})},
            )
        ]
        out += self._send_heartbeat(now)
        return out

    def _extend_lease(self, now: float) -> None:
        """Lease end = send time of the newest round a quorum of votes acknowledged + dc_lease."""
        leader = self.leader
        assert leader is not None
        acked = sorted(((r, v) for v, r in leader.acks.items() if r in leader.rounds), reverse=True)
        fenced_votes = self._votes_of(sorted(self.fenced))
        total, need = fenced_votes, self._total_votes() / 2
        # The quorum server's vote may complete a majority, for no longer than it is held,
        # and only with the acknowledgements of every member of the partition it was granted.
        held, q_until = self._qvote(now), self.q_until
        voters = set(self.fenced)
        for round_, voter in acked:
            total += self._votes_of([voter])
            voters.add(voter)
            qvote = self._qvote(now, voters) if held else 0
            if total + qvote > need:
                sent = leader.rounds[round_]
                end = sent + self.timing.dc_lease
                if total <= need:
                    end = min(end, q_until)
                if end > leader.lease_end:
                    leader.lease_end = end
                leader.quorum_round_sent = max(leader.quorum_round_sent, sent)
                if total > need:
                    break

    def _update_members(self, now: float) -> bool:
        """Members: the DC and every online node whose vote for it, in this term, acknowledged
        a round sent within the last deadtime. True when the list changed."""
        leader = self.leader
        assert leader is not None
        members = [self.name]
        check_at = INF
        for peer in self._online():
            sent = leader.rounds.get(leader.acks.get(peer.name, -1))
            if sent is not None and now - sent < self.timing.deadtime:
                members.append(peer.name)
                check_at = min(check_at, sent + self.timing.deadtime)
        leader.members_check_at = check_at
        new = tuple(sorted(members))
        if new == leader.members:
            return False
        leader.members = new
        leader.members_counter += 1
        return True

    def _check_leadership(self, now: float) -> list[Effect]:
        leader = self.leader
        if leader is None:
            return []
        if now >= leader.members_check_at - self.early_check:
            self._update_members(now)
        if now >= leader.lease_end + self.timing.lease:
            return self._step_down(now, "no quorum acknowledged the lease")
        unwilling = leader.unwilling
        if unwilling and any(peer.name in unwilling for peer in self._connected(now)):
            return self._advance_term(now)
        return []

    def _note_willingness(self, peer: Peer) -> None:
        leader = self.leader
        assert leader is not None
        if self._cannot_follow(peer, leader.term):
            leader.unwilling.add(peer.name)
        else:
            leader.unwilling.discard(peer.name)

    def _cannot_follow(self, peer: Peer, term: int) -> bool:
        """The peer's last vote was in our term or later, for someone else: rule V.2 keeps it
        from ever voting for us in this term."""
        hb = peer.last_hb
        if hb is None or hb.voted_term < term:
            return False
        return hb.grant is None or hb.grant.to != self.name or hb.grant.term != term

    def _advance_term(self, now: float) -> list[Effect]:
        """Move our leadership to a term above every term seen.

        A node that stood in a higher term and lost holds its own vote at that term, and rule
        V.2 forbids it to vote for us in our older term: it could never follow us. Our renewals
        in the new term are vote requests under the same rule V; voters already bound to us
        grant them at once. The lease we hold stays valid until it runs out, and from now on
        only acknowledgements in the new term extend it.
        """
        leader = self.leader
        assert leader is not None
        old, term = leader.term, max(self.high_term, self.voted_term) + 1
        self.high_term = term
        self.voted_term = term  # our own vote follows us into the new term
        leader.term = term
        leader.unwilling = set()
        for peer in self.peers.values():
            self._note_willingness(peer)
        leader.acks = {}
        leader.members_counter = 0
        leader.members_check_at = -INF
        leader.newest_round = -1
        return [
            Log(
                "info",
                "dc-term",
                f"{self.name} moves from term {old} to term {term}, above a "
                f"term another node stood in",
                {"old_term": old, "term": term},
            )
        ]

    def _step_down(self, now: float, why: str) -> list[Effect]:
        term = self.leader.term if self.leader else 0
        self.leader = None
        return [
            Log(
                "warning",
                "dc-lost",
                f"{self.name} is no longer DC (term {term}): {why}",
                {"term": term, "reason": why},
            )
        ]

    # ---- elections -----------------------------------------------------------------------------

    def _check_candidacy(self, now: float) -> list[Effect]:
        cand = self.candidacy
        if cand is None or now < cand.deadline:
            return []
        self.candidacy = None
        # We will never act on this term: release our own vote and let the voters go too.
        if self.voted_for == self.name and self.voted_term == cand.term:
            self.grant_until = now
        rank = self._rank(now)
        self.next_candidacy = now + self.timing.election_timeout * (1 + rank)
        out: list[Effect] = [
            Log(
                "info",
                "election-lost",
                f"no quorum for term {cand.term} (granted by: {sorted(cand.granted) or 'none'}, "
                f"refused by: {sorted(cand.refused) or 'none'})",
                {
                    "term": cand.term,
                    "granted": sorted(cand.granted),
                    "refused": sorted(cand.refused),
                },
            )
        ]
        out += self._send(now, type="wd", term=cand.term)
        return out

    def _rank(self, now: float) -> int:
        """0 for the preferred candidate (lowest node id we are connected to), 1 the next..."""
        ids = sorted([self.node_id] + [p.node_id for p in self._connected(now)])
        return ids.index(self.node_id)

    def _maybe_elect(self, now: float) -> list[Effect]:
        t = self.timing
        if self.leader is not None or self.candidacy is not None:
            return []
        dc, _, _ = self._fresh_dc(now)
        if (
            dc is not None
            or (self.voted_for not in (None, self.name) and self.grant_until > now)
            or now < self.next_candidacy
            or not self._may_vote(self.name, self.high_term + 1, now)
            or (
                # initdead: give slow starters time, unless everyone is already here
                now < self.started_at + t.initdead
                and any(p.state != "online" for p in self.peers.values())
            )
            or not self.quorate(now)
            or (self.params.two_node and not self._two_node_may_lead())
        ):
            self.run_at = None
            return []
        # The preferred candidate runs at once; the others wait in rank order, so that one
        # candidate normally runs alone and no vote is split.
        if self.run_at is None:
            self.run_at = now + self._rank(now) * 2 * t.election_timeout
        if now < self.run_at:
            return []
        self.run_at = None
        term = self.high_term + 1
        self.high_term = term
        self._grant(self.name, term, self.seq + 1, now)
        self.candidacy = Candidacy(term, self.seq + 1, now, now + t.election_timeout)
        out: list[Effect] = [
            Log("info", "election", f"{self.name} stands for DC in term {term}", {"term": term})
        ]
        out += self._send(now, type="vreq", term=term)
        alone = {self.name} | self.fenced
        if self._lease_votes({self.name}) + self._qvote(now, alone) > self._total_votes() / 2:
            out += self._become_dc(now)
        return out

    def _two_node_may_lead(self) -> bool:
        """In a two_node cluster a lone node leads only once its peer is fenced."""
        return all(p.state == "online" or p.name in self.fenced for p in self.peers.values())

    def _maybe_fence(self, now: float) -> list[Effect]:
        # A DC fences its lost peer too: without the peer's acknowledgements, only the peer's
        # vote counted as fenced keeps its lease (see fence_done), so it goes on leading
        # instead of stepping down and standing again a lease later.
        if not self.params.two_node or not self.quorate(now):
            return []
        out: list[Effect] = []
        for peer in self.peers.values():
            if peer.state == "online":
                continue
            if peer.name not in self.fenced and peer.name not in self.fence_pending:
                if now < self.started_at + self.timing.initdead and peer.state == "unknown":
                    continue
                self.fence_pending.add(peer.name)
                out.append(
                    Log(
                        "warning",
                        "fence-request",
                        f"two_node: peer {peer.name} lost; fencing it before taking over",
                        {"node": peer.name},
                    )
                )
                out.append(Fence(peer.name))
        return out

    # ---- status --------------------------------------------------------------------------------

    def crm_view(self, now: float) -> tuple[str | None, int, bool, tuple[str, ...], bool]:
        """What the resource manager acts on: the DC (None: none), its term, whether this
        node holds the DC lease now, the members and whether they are quorate. Cheaper than
        status(), which reports the same five values: the daemon asks after every wake-up,
        and the simulator's invariants read it at every sample."""
        dc, members, version = self._fresh_dc(now)
        if dc is None:
            members = self._local_view(now)
        term = self.leader.term if self.leader else (version[0] if dc else self.high_term)
        return dc, term, self.is_dc(now), members, self.quorate(now)

    def status(self, now: float) -> NodeStatus:
        # dc, term, is_dc, members and quorate as crm_view() has them, so that the two
        # never disagree; the member list's version is (0, 0) without a DC
        dc, term, is_dc, members, quorate = self.crm_view(now)
        version = self._fresh_dc(now)[2]
        links = self.params.links
        up = self.ping_up
        nodes: dict[str, PeerStatus] = {
            self.name: PeerStatus(
                name=self.name,
                node_id=self.node_id,
                votes=self.votes,
                state="left" if self.left else "online",
                links=dict.fromkeys(links, "up"),
                generation=self.generation,
                last_heard=0.0,
                attributes={"pingd": self.pingd()} if self.ping_targets else {},
            )
        }
        for peer in self.peers.values():
            link_up = peer.link_up
            last_heard = peer.last_heard
            nodes[peer.name] = PeerStatus(
                name=peer.name,
                node_id=peer.node_id,
                votes=peer.votes,
                state=peer.state,
                links={link: "up" if link_up.get(link) else "down" for link in links},
                generation=peer.generation,
                last_heard=None if last_heard is None else round(now - last_heard, 3),
                attributes=dict(peer.last_hb.attributes) if peer.last_hb else {},
            )
        ping = {a: "up" if up.get(a) else "down" for a in self.params.ping}
        for group in self.params.ping_groups:
            ping[group.name] = "up" if any(up.get(a) for a in group.addresses) else "down"
        return NodeStatus(
            node=self.name,
            generation=self.generation,
            dc=dc,
            term=term,
            is_dc=is_dc,
            quorate=quorate,
            votes=self._votes_of(members)
            + (self._qvote(now, members) if self.name in members else 0),
            expected_votes=self._total_votes(),
            quorum=self.quorum(),
            members=list(members),
            members_version=list(version),
            nodes=nodes,
            ping=ping,
            counters=dict(self.counters),
            quorum_device_vote=bool(self._qvote(now)) if self.params.quorum_device else None,
            forced_expected_votes=self.expected_override,
        )
