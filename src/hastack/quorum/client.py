"""The quorum server's client core (sans-IO): one per cluster node.

The node's membership layer tells it what the node sees (`membership(...)`); it reports that to
the quorum server on every change and every `interval` as a heartbeat, and keeps the vote the
server grants. The rule that makes the vote safe (see hastack.quorum.server for the whole
argument): a grant counts only until the time this node SENT the report it answers plus the
lease, on this node's clock, and only while the membership is still the one reported; any
change of members or ring drops it at once.

Connection management is the core's too: it asks for a connection (`Connect`), expects
`connected(now)` or `disconnected(now, reason)`, and after a failure waits with exponential
backoff (with jitter from the randomness it is handed) before asking again. Losing the
connection does not drop a grant already held: the server counts it until it expires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hastack.config.model import AuthKeys
from hastack.quorum import protocol
from hastack.quorum.effects import ClientEffect, Close, Connect, Log, Send, VoteChanged
from hastack.quorum.protocol import FrameReader, Message, ProtocolError, make, seal

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
HANDSHAKE_TIMEOUT = 5.0
SILENT_INTERVALS = 3


class QClientCore:
    """Feed it the node's membership, the connection's events and bytes, and ticks."""

    def __init__(
        self,
        cluster: str,
        node: str,
        node_id: int,
        keys: AuthKeys,
        rng: Callable[[int], bytes],
        *,
        votes: int = 1,
        interval: float = 1.0,
        backoff_min: float = BACKOFF_MIN,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        if not 0.01 <= interval <= 600:
            raise ValueError(f"interval {interval}: use 0.01..600 seconds")
        self.cluster, self.node, self.node_id, self.votes = cluster, node, node_id, votes
        self.keys = keys
        self.interval = interval
        self._rng = rng
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self._failures = 0
        # connection: down -> connecting -> challenged (hello sent) -> up
        self.state = "down"
        self._reconnect_at = float("-inf")
        self._since = 0.0  # when the current state began
        self._reader = FrameReader()
        self._session = ""
        self._send_seq = 0
        self._recv_seq = 0
        self._last_heard = 0.0
        self._last_sent = float("-inf")
        self.lease: float | None = None
        self._interval_eff = interval
        # what this node sees
        self.members: tuple[str, ...] | None = None
        self.ring: tuple[int, int] = (0, 0)
        self.resources = 0
        # votes
        self._req = 0
        self._pending: dict[int, tuple[float, tuple[str, ...], tuple[int, int]]] = {}
        self._until: float | None = None  # local clock: the grant's end
        self._held = False  # what the last VoteChanged said
        self.last_reason = "not connected yet"

    # -- queries -------------------------------------------------------------------------

    def has_vote(self, now: float) -> bool:
        """True while a grant for the current membership is valid on this node's clock."""
        return self._until is not None and now < self._until

    @property
    def vote_until(self) -> float | None:
        return self._until

    def next_deadline(self) -> float | None:
        """The earliest time tick() may have something to do."""
        times: list[float] = []
        if self._until is not None:
            times.append(self._until)
        if self.state == "down":
            if self.members is not None:
                times.append(self._reconnect_at)
        elif self.state == "connecting":
            times.append(self._since + HANDSHAKE_TIMEOUT)
        elif self.state == "challenged":
            times.append(max(self._since, self._last_heard) + HANDSHAKE_TIMEOUT)
        else:
            times.append(self._last_sent + self._interval_eff)
            times.append(self._last_heard + SILENT_INTERVALS * self._interval_eff)
        return min(times) if times else None

    def status(self, now: float) -> dict[str, Any]:
        return {
            "connection": self.state,
            "vote": self.has_vote(now),
            "vote_remaining": round(self._until - now, 3) if self.has_vote(now) else None,
            "lease": self.lease,
            "reason": self.last_reason,
        }

    # -- events from the node ------------------------------------------------------------

    def membership(
        self, members: tuple[str, ...], ring: tuple[int, int], resources: int, now: float
    ) -> list[ClientEffect]:
        """What this node sees now: report it (a new member set or ring drops the vote)."""
        if self.node not in members:
            raise ValueError(f"membership {members} does not include this node {self.node!r}")
        if len(ring) != 2 or not all(isinstance(r, int) and 0 <= r < 2**63 for r in ring):
            raise ValueError(f"ring {ring}: a pair of integers 0..2**63-1")
        view = tuple(sorted(members))
        effects: list[ClientEffect] = []
        changed = (view, ring) != (self.members, self.ring)
        if (view, ring, resources) == (self.members, self.ring, self.resources):
            return effects
        self.members, self.ring, self.resources = view, ring, resources
        if changed:
            self._pending.clear()  # replies to reports of the old view grant nothing now
            effects += self._drop(now, "the membership changed: a grant is for one membership")
        if self.state == "up":
            effects += self._report(now)
        return effects

    # -- events from the connection ------------------------------------------------------

    def connected(self, now: float) -> list[ClientEffect]:
        self.state, self._since, self._last_heard = "connecting", now, now
        self._reader = FrameReader()
        return []

    def disconnected(self, now: float, reason: str = "connection lost") -> list[ClientEffect]:
        """The connection failed or ended. A held grant stays valid until it expires."""
        was = self.state
        if was == "down":
            return []  # the core closed it itself (and already scheduled the reconnection)
        self.state = "down"
        self._pending.clear()
        delay = min(self.backoff_max, self.backoff_min * 2 ** min(self._failures, 16))
        jitter = self._rng(1)[0] / 255  # 0..1: spread reconnections of many nodes
        delay *= 0.5 + jitter / 2
        self._failures += 1
        self._reconnect_at = now + delay
        self.last_reason = f"quorum server: {reason}"
        level = "warning" if was == "up" else "info"
        return [
            Log(
                level,
                "qclient-disconnected",
                f"quorum server: {reason}; reconnecting in {delay:.1f} s"
                + (
                    f" (the vote stays valid for {self._until - now:.1f} s)"
                    if self.has_vote(now) and self._until is not None
                    else ""
                ),
                {"retry_in": round(delay, 3)},
            )
        ]

    def received(self, data: bytes, now: float) -> list[ClientEffect]:
        if self.state in ("down",):
            return []
        effects: list[ClientEffect] = []
        try:
            bodies = self._reader.feed(data)
        except ProtocolError as exc:
            return self._fail(now, f"bad frame from the server: {exc}")
        for body in bodies:
            try:
                message = protocol.parse_body(body, "s")
            except ProtocolError as exc:
                return effects + self._fail(now, f"bad frame from the server: {exc}")
            self._last_heard = now
            effects += self._message(message, now)
            if self.state == "down":
                break
        return effects

    def tick(self, now: float) -> list[ClientEffect]:
        effects: list[ClientEffect] = []
        if self._until is not None and now >= self._until:
            effects += self._drop(now, "the lease expired without a renewal from the server")
        if self.state == "down" and now >= self._reconnect_at and self.members is not None:
            # (without a membership there is nothing to report, and a silent client is dropped)
            self.state, self._since = "connecting", now
            effects.append(Connect())
        elif self.state in ("connecting", "challenged"):
            if now - max(self._since, self._last_heard) >= HANDSHAKE_TIMEOUT:
                effects += self._fail(now, f"no answer within {HANDSHAKE_TIMEOUT:g} s")
        elif self.state == "up":
            if now - self._last_heard >= SILENT_INTERVALS * self._interval_eff:
                effects += self._fail(
                    now, f"the server was silent for {now - self._last_heard:.1f} s"
                )
            elif now - self._last_sent >= self._interval_eff and self.members is not None:
                effects += self._report(now)
        return effects

    # -- protocol ------------------------------------------------------------------------

    def _message(self, message: Message, now: float) -> list[ClientEffect]:
        if message.type == "refused":
            return self._fail(now, f"the server refused us: {message['reason']}")
        if message.type == "challenge":
            if self.state != "connecting":
                return self._fail(now, "a second challenge")
            cnonce = self._rng(protocol.NONCE_SIZE).hex()
            self._session = message["nonce"] + cnonce
            self._send_seq, self._recv_seq = 0, 0
            self.state, self._since = "challenged", now
            hello = self._signed(
                "hello", node=self.node, id=self.node_id, votes=self.votes, interval=self.interval
            )
            return [Send(hello)]
        if self.state == "connecting":
            return self._fail(now, f"{message.type!r} before the challenge")
        if message["c"] != self.cluster or not message.verify(self.keys):
            return self._fail(now, "a reply with a bad signature (is authkeys the same?)")
        if message["s"] != self._session or message["n"] != self._recv_seq:
            return self._fail(now, "a replayed or out-of-order reply")
        self._recv_seq += 1
        if message.type == "welcome":
            if self.state != "challenged":
                return self._fail(now, "an unexpected welcome")
            self.state, self._failures = "up", 0
            self.lease = message["lease"]
            self._interval_eff = min(self.interval, message["lease"] / 3)
            effects: list[ClientEffect] = [
                Log(
                    "info",
                    "qclient-connected",
                    f"quorum server: connected (lease {self.lease:g} s, reports every "
                    f"{self._interval_eff:g} s): {message['reason']}",
                )
            ]
            if self.members is not None:
                effects += self._report(now)
            return effects
        if message.type == "vote" and self.state == "up":
            return self._vote(message, now)
        return self._fail(now, f"an unexpected {message.type!r}")

    def _vote(self, message: Message, now: float) -> list[ClientEffect]:
        req = message["req"]
        asked = self._pending.pop(req, None)
        for old in [r for r in self._pending if r < req]:
            del self._pending[old]
        self.last_reason = message["reason"]
        if asked is None:
            return []  # a reply to a report of a membership we no longer have
        sent, members, ring = asked
        if not message["grant"]:
            return self._drop(now, f"the server did not renew it: {message['reason']}")
        if (members, ring) != (self.members, self.ring):
            return []
        until = sent + message["lease"]
        if until <= now:
            return []  # the answer came too late to be worth anything
        self._until = max(until, self._until or until)
        if not self._held:
            self._held = True
            return [
                VoteChanged(True, self._until, message["reason"]),
                Log(
                    "info",
                    "qclient-vote-gained",
                    f"quorum server: this node has its vote ({message['reason']})",
                ),
            ]
        return []

    def _report(self, now: float) -> list[ClientEffect]:
        assert self.members is not None
        self._req += 1
        self._pending[self._req] = (now, self.members, self.ring)
        self._last_sent = now
        frame = self._signed(
            "report",
            req=self._req,
            members=list(self.members),
            ring=list(self.ring),
            resources=self.resources,
        )
        return [Send(frame)]

    def _signed(self, kind: str, **fields: Any) -> bytes:
        msg = make(kind, c=self.cluster, s=self._session, d="c", n=self._send_seq, **fields)
        self._send_seq += 1
        return seal(msg, self.keys.signing)

    def _drop(self, now: float, reason: str) -> list[ClientEffect]:
        self._until = None
        if not self._held:
            return []
        self._held = False
        return [
            VoteChanged(False, None, reason),
            Log(
                "warning", "qclient-vote-lost", f"quorum server: this node lost its vote: {reason}"
            ),
        ]

    def _fail(self, now: float, reason: str) -> list[ClientEffect]:
        effects: list[ClientEffect] = [Close(reason)]
        return effects + self.disconnected(now, reason)
