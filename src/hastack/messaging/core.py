"""Reliable, ordered cluster messaging over the heartbeat links, sans-IO.

Each node has one outgoing stream per incarnation, named by (node, generation): the generation
is the daemon's, so a restarted node starts a new stream at seq 1. Every payload is compressed
when that helps, cut into fragments of at most `fragment_size` bytes a datagram, and each
fragment takes the next seq of the stream. Every receiver takes each sender's fragments in seq
order and delivers each message exactly once, in order, complete (a message addressed to one
node is taken in order by all, so the stream stays contiguous, and delivered by that node only).

Reliability is the heartbeat's: sequence numbers and retransmission requests. A receiver
acknowledges cumulatively, with the ranges it lacks above that (so the sender retransmits a lost
fragment as soon as a later one has arrived, not after a timeout). The sender keeps each
fragment until every node of its peer set (`set_peers`, the online members) has acknowledged it,
and retransmits what is still missing when its retransmission timer (adaptive from measured
round trips, between `rto_initial` and `rto_max`, doubled on each expiry) runs out. What a
sender no longer holds (a peer left the set and came back, or a receiver first heard the stream
late) is answered with a "gone up to N": the receiver emits StreamReset and continues from N+1.

The core never reads a clock or touches a socket. The shell calls:
    send(payload, now, dest)      to send
    receive(data, link, now)      for every messaging datagram that arrived
    flush(now)                    at the end of every batch of arrivals: the acknowledgements
                                  (at most one per stream per flush, so a burst read in one
                                  wake-up costs one ack, not one per fragment)
    tick(now)                     when now >= next_deadline() (retransmissions; acks the shell
                                  did not flush)
    set_peers(peers, now)         whenever membership changes
and carries out the effects: Transmit (send on every link), Deliver, StreamReset, Log.

Authenticity: only authenticated datagrams of this cluster change state. Replay of a captured
datagram delivers nothing twice, because per stream each seq is taken once and datagrams of an
older generation than the newest one known are dropped. (A receiver that restarts knows no
streams; a datagram replayed to it from a stream it never heard could be taken once. Telling
that apart needs state kept across restarts, which the heartbeat does not keep either.)
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hastack.config.model import AuthKeys
from hastack.membership.effects import Log
from hastack.messaging import codec
from hastack.messaging.codec import Ack, Data, Dropped, Gone

INF = float("inf")
MAX_PAYLOAD = 16 * 1024 * 1024
MIN_FRAGMENT = 1024
# The serial framing's MAX_PAYLOAD: messaging datagrams share the serial endpoint.
MAX_FRAGMENT = 16384


@dataclass(frozen=True)
class Transmit:
    """Send `data` on every link, to every peer (like membership's Send)."""

    data: bytes


@dataclass(frozen=True)
class Deliver:
    """A complete message of `sender`'s stream `generation`, in stream order, once."""

    sender: str
    generation: int
    payload: bytes


@dataclass(frozen=True)
class StreamReset:
    """This node may have missed messages of `sender`, or `sender` restarted: resync with it.

    reason: "restarted" (a generation of `sender` not heard before, including the first one
    this node hears), "gone" (the sender no longer holds messages this node lacked), "corrupt"
    (an authenticated message could not be reassembled or decompressed: a bug, counted)."""

    sender: str
    generation: int
    reason: str


Effect = Transmit | Deliver | StreamReset | Log


@dataclass(frozen=True)
class MessagingParams:
    """Sizes and timers of the messaging layer (the same on every node of a cluster).

    fragment_size: bytes a datagram at most (headers and tag included); the serial framing
        carries up to 16384, and UDP datagrams above one MTU are IP-fragmented, so smaller is
        more robust and larger is cheaper per byte.
    rto_initial / rto_max: the retransmission timer's floor and cap; it adapts to the round
        trips measured between them and doubles on each expiry.
    window / window_bytes: fragments (and their bytes) kept for retransmission; beyond, sent
        payloads wait in the backlog. Receivers buffer at most 2 x window fragments out of order.
    burst: fragments retransmitted at most per expiry of the timer or per acknowledgement.
    ack_delay: how long an acknowledgement may wait for `flush` before `tick` sends it.
    max_payload: the largest payload `send` accepts.
    compress_min: payloads shorter than this are not worth compressing.
    """

    fragment_size: int = 8000
    rto_initial: float = 0.05
    rto_max: float = 1.0
    window: int = 1024
    window_bytes: int = 8 * 1024 * 1024
    burst: int = 64
    ack_delay: float = 0.0
    max_payload: int = MAX_PAYLOAD
    compress_min: int = 256

    def __post_init__(self) -> None:
        if not MIN_FRAGMENT <= self.fragment_size <= MAX_FRAGMENT:
            raise ValueError(
                f"fragment_size {self.fragment_size} must be {MIN_FRAGMENT} to {MAX_FRAGMENT}"
            )
        if not 0 < self.rto_initial <= self.rto_max:
            raise ValueError(
                f"rto_initial {self.rto_initial} must be > 0 and <= rto_max {self.rto_max}"
            )
        for name in ("window", "window_bytes", "burst", "max_payload"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} {getattr(self, name)} must be at least 1")
        if self.ack_delay < 0 or self.compress_min < 0:
            raise ValueError("ack_delay and compress_min must not be negative")

    @classmethod
    def from_timing(cls, keepalive: float, **overrides: Any) -> MessagingParams:
        """Timers from the heartbeat interval: a loss is repaired within a fraction of a
        keepalive (floor 2 ms), and a silent peer is retried about once a keepalive."""
        if not keepalive > 0:
            raise ValueError(f"keepalive {keepalive} must be > 0")
        rto_initial = max(0.002, keepalive / 4)
        values: dict[str, Any] = {
            "rto_initial": rto_initial,
            "rto_max": max(rto_initial, keepalive),
        }
        values.update(overrides)
        return cls(**values)


@dataclass
class _Out:
    """A fragment the sender holds until every peer has it."""

    seq: int
    datagram: bytes
    sent_at: float
    order: int  # the sender's transmission counter at its last (re)transmission
    retransmitted: bool = False


@dataclass
class _Queued:
    """A fragment waiting for room in the window (no seq yet)."""

    chunk: bytes
    index: int
    count: int
    dest: str | None
    compressed: bool


@dataclass
class _PeerAck:
    """What one receiver told us about our stream (its generation: a restart resets it)."""

    generation: int
    cumulative: int
    highest: int
    missing: tuple[tuple[int, int], ...] = ()

    def lacks(self, seq: int) -> bool:
        if seq <= self.cumulative:
            return False
        if seq > self.highest:
            return True
        return any(first <= seq <= last for first, last in self.missing)


@dataclass
class _Stream:
    """One sender's stream of one generation, as this node receives it."""

    generation: int
    cumulative: int = 0
    above: dict[int, Data] = field(default_factory=dict)  # out of order, seq > cumulative
    parts: list[bytes] | None = None  # the message being reassembled, in order
    head: Data | None = None  # its first fragment
    ack_due: bool = False


class MessagingCore:
    """One node's messaging: its outgoing stream and every peer's incoming one."""

    def __init__(
        self,
        cluster: str,
        node: str,
        generation: int,
        authkeys: AuthKeys,
        params: MessagingParams | None = None,
    ) -> None:
        if not node or not 1 <= generation <= codec.MAX_INT:
            raise ValueError(f"node {node!r} must be named and generation {generation} >= 1")
        self.cluster = cluster
        self.node = node
        self.generation = generation
        self.keys = authkeys
        self.params = params or MessagingParams()
        codec.encode(Gone(cluster, node, generation, 0), authkeys)  # names the format carries
        self.counters: dict[str, int] = {}
        # sending
        self._next_seq = 1
        self._low = 0  # every seq up to here is released
        self._held: deque[_Out] = deque()  # seqs low+1 .. next_seq-1
        self._held_bytes = 0
        self._backlog: deque[_Queued] = deque()
        self._backlog_bytes = 0
        self._peers: frozenset[str] = frozenset()
        self._acks: dict[str, _PeerAck] = {}
        self._order = 0
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._rto = self.params.rto_initial
        self._backoff = self._rto
        self._timer_at = INF
        # receiving
        self._streams: dict[str, _Stream] = {}
        self._ack_due_at = INF

    # ---- the shell's calls -------------------------------------------------------------

    def send(self, payload: bytes, now: float, dest: str | None = None) -> list[Effect]:
        """Queue `payload` for every other node (dest None) or for `dest` only; returns the
        transmissions there is room for now. Never delivers to this node itself."""
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__}")
        data = bytes(payload)
        if len(data) > self.params.max_payload:
            raise ValueError(
                f"payload of {len(data)} bytes exceeds the limit of {self.params.max_payload}"
            )
        if dest is not None:
            if dest == self.node:
                raise ValueError(f"dest {dest!r} is this node: handle its own messages locally")
            if not dest or len(dest.encode()) > codec.MAX_NAME:
                raise ValueError(f"dest {dest[:40]!r} must be a node name of 1 to 255 bytes")
        compressed = False
        if len(data) >= self.params.compress_min:
            packed = zlib.compress(data, 1)
            if len(packed) < len(data):
                data, compressed = packed, True
        room = self.params.fragment_size - codec.data_overhead(
            self.keys, self.cluster, self.node, dest
        )
        if room < 64:
            raise ValueError(f"fragment_size {self.params.fragment_size} leaves no room for data")
        count = max(1, -(-len(data) // room))
        for index in range(count):
            chunk = data[index * room : (index + 1) * room]
            self._backlog.append(_Queued(chunk, index, count, dest, compressed))
            self._backlog_bytes += len(chunk)
        self._count("sent-messages")
        self._count("sent-bytes", len(payload))
        effects: list[Effect] = []
        self._pump(now, effects)
        return effects

    def receive(self, data: bytes, link: str, now: float) -> list[Effect]:
        """One datagram from `link`; never raises. Acknowledgements wait for flush/tick."""
        msg = codec.decode(data, self.keys, self.cluster)
        if isinstance(msg, Dropped):
            self._count(f"dropped-{msg.reason}")
            return []
        if msg.sender == self.node:
            self._count("own-datagrams")  # multicast loop, broadcast echo
            return []
        effects: list[Effect] = []
        if isinstance(msg, Data):
            self._on_data(msg, now, effects)
        elif isinstance(msg, Ack):
            self._on_ack(msg, now, effects)
        else:
            self._on_gone(msg, now, effects)
        return effects

    def flush(self, now: float) -> list[Effect]:
        """The acknowledgements due: one per stream that received anything since the last."""
        effects: list[Effect] = []
        if self._ack_due_at == INF:
            return effects
        self._ack_due_at = INF
        for sender, stream in self._streams.items():
            if stream.ack_due:
                stream.ack_due = False
                effects.append(Transmit(self._ack(sender, stream)))
                self._count("acks-sent")
        return effects

    def tick(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if now >= self._timer_at:
            self._on_timeout(now, effects)
        if now >= self._ack_due_at:
            effects += self.flush(now)
        return effects

    def next_deadline(self) -> float:
        return min(self._timer_at, self._ack_due_at)

    def set_peers(self, peers: Iterable[str], now: float) -> list[Effect]:
        """The nodes whose acknowledgements hold fragments back (the online members; this
        node is ignored if listed). A node that leaves the set holds nothing back any more."""
        new = frozenset(peers) - {self.node}
        effects: list[Effect] = []
        if new == self._peers:
            return effects
        for peer in new - self._peers:
            if peer not in self._acks:
                # Nothing at or below `low` is held; above it, everything waits for the newcomer.
                self._acks[peer] = _PeerAck(0, self._low, self._low)
        effects.append(
            Log(
                "debug",
                "messaging-peers",
                f"messaging peers: {', '.join(sorted(new)) or 'none'}",
                {"peers": sorted(new)},
            )
        )
        self._peers = new
        self._release(now)
        self._pump(now, effects)
        return effects

    def pending(self) -> int:
        """Fragments sent and not yet acknowledged by every peer."""
        return len(self._held)

    def backlog(self) -> int:
        """Fragments waiting for room in the window."""
        return len(self._backlog)

    def describe(self) -> dict[str, Any]:
        """State and counters for the `counters` command."""
        return {
            "generation": self.generation,
            "next_seq": self._next_seq,
            "released": self._low,
            "held": len(self._held),
            "held_bytes": self._held_bytes,
            "backlog": len(self._backlog),
            "backlog_bytes": self._backlog_bytes,
            "rto": round(self._backoff, 6),
            "srtt": None if self._srtt is None else round(self._srtt, 6),
            "peers": {
                peer: (self._acks[peer].cumulative if peer in self._acks else None)
                for peer in sorted(self._peers)
            },
            "streams": {
                sender: {
                    "generation": s.generation,
                    "cumulative": s.cumulative,
                    "buffered": len(s.above),
                }
                for sender, s in sorted(self._streams.items())
            },
            "counters": dict(self.counters),
        }

    # ---- sending -----------------------------------------------------------------------

    def _count(self, name: str, amount: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def _pump(self, now: float, effects: list[Effect]) -> None:
        """Move queued fragments into the window while there is room, transmitting each."""
        window, window_bytes = self.params.window, self.params.window_bytes
        while self._backlog:
            queued = self._backlog[0]
            if self._held and (
                len(self._held) >= window or self._held_bytes + len(queued.chunk) > window_bytes
            ):
                break
            self._backlog.popleft()
            self._backlog_bytes -= len(queued.chunk)
            seq = self._next_seq
            self._next_seq += 1
            datagram = codec.encode(
                Data(
                    self.cluster,
                    self.node,
                    self.generation,
                    seq,
                    queued.index,
                    queued.count,
                    queued.dest,
                    queued.compressed,
                    queued.chunk,
                ),
                self.keys,
            )
            self._order += 1
            self._held.append(_Out(seq, datagram, now, self._order))
            self._held_bytes += len(datagram)
            effects.append(Transmit(datagram))
            self._count("sent-fragments")
            if self._timer_at == INF:
                self._timer_at = now + self._backoff
            if not self._peers:
                self._release(now)

    def _release(self, now: float) -> None:
        """Drop every held fragment all peers have; stop the timer when nothing is held."""
        floor = self._next_seq - 1
        for peer in self._peers:
            ack = self._acks.get(peer)
            cumulative = ack.cumulative if ack is not None else self._low
            floor = min(floor, cumulative)
        held = self._held
        while held and held[0].seq <= floor:
            out = held.popleft()
            self._held_bytes -= len(out.datagram)
        self._low = max(self._low, min(floor, self._next_seq - 1))
        if not held:
            self._timer_at = INF

    def _held_at(self, seq: int) -> _Out | None:
        held = self._held
        if not held:
            return None
        offset = seq - held[0].seq
        return held[offset] if 0 <= offset < len(held) else None

    def _retransmit(self, out: _Out, now: float, effects: list[Effect]) -> None:
        self._order += 1
        out.order = self._order
        out.sent_at = now
        out.retransmitted = True
        effects.append(Transmit(out.datagram))

    def _on_ack(self, msg: Ack, now: float, effects: list[Effect]) -> None:
        if msg.stream != self.node:
            return  # another sender's acknowledgement (acks go to every node)
        self._count("acks-received")
        if msg.stream_generation != self.generation:
            self._count("stale-acks")  # for an earlier incarnation of this node
            return
        peer = self._acks.get(msg.sender)
        if peer is None or msg.generation > peer.generation:
            if peer is not None and peer.generation:
                self._count("peer-restarts")
            # A restarted receiver starts from scratch; what the old one had is no guide.
            peer = _PeerAck(msg.generation, 0, 0)
            self._acks[msg.sender] = peer
        elif msg.generation < peer.generation:
            self._count("stale-acks")
            return
        top = self._next_seq - 1
        cumulative = min(msg.cumulative, top)
        if cumulative < peer.cumulative:
            self._count("old-acks")  # overtaken by a later one (reordered, or replayed)
            return
        advanced = cumulative > peer.cumulative
        if advanced:
            out = self._held_at(cumulative)
            if out is not None and not out.retransmitted:
                self._sample_rtt(now - out.sent_at)
        peer.cumulative = cumulative
        peer.highest = min(max(msg.highest, cumulative), top)
        peer.missing = msg.missing
        if msg.cumulative < self._low:
            # It lacks what we no longer hold: tell it where the stream goes on.
            effects.append(
                Transmit(
                    codec.encode(
                        Gone(self.cluster, self.node, self.generation, self._low), self.keys
                    )
                )
            )
            self._count("gone-sent")
        self._fast_retransmit(peer, now, effects)
        if advanced and msg.sender in self._peers:
            self._release(now)
            self._backoff = self._rto
            if self._held:
                self._timer_at = now + self._backoff
            self._pump(now, effects)

    def _fast_retransmit(self, peer: _PeerAck, now: float, effects: list[Effect]) -> None:
        """Retransmit what the peer lacks below the highest seq it has, when that seq was
        (re)transmitted after our last transmission of the missing one: then the missing one
        was lost, not merely late. Repeated acks with the same hint retransmit nothing more."""
        marker = self._held_at(peer.highest)
        if marker is None or not peer.missing:
            return
        budget = self.params.burst
        top = self._next_seq - 1  # an ack's ranges may reach past it: never trusted
        for first, last in peer.missing:
            for seq in range(max(first, self._low + 1), min(last, top) + 1):
                out = self._held_at(seq)
                if out is None or out.order >= marker.order:
                    continue
                self._retransmit(out, now, effects)
                self._count("retransmits-fast")
                budget -= 1
                if budget == 0:
                    return

    def _on_timeout(self, now: float, effects: list[Effect]) -> None:
        """Retransmit, oldest first, what some peer is not known to have and was last sent
        at least one timeout ago; then back off."""
        peers = [self._acks[p] for p in self._peers if p in self._acks]
        budget = self.params.burst
        due = now - self._backoff + 1e-9  # the timer was armed at sent_at + backoff
        for out in self._held:
            if budget == 0:
                break
            if out.sent_at > due or not any(p.lacks(out.seq) for p in peers):
                continue
            self._retransmit(out, now, effects)
            self._count("retransmits-timeout")
            budget -= 1
        self._backoff = min(self._backoff * 2, self.params.rto_max)
        self._timer_at = now + self._backoff if self._held else INF

    def _sample_rtt(self, rtt: float) -> None:
        """RFC 6298's estimator, held between rto_initial and rto_max."""
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        rto = self._srtt + 4 * self._rttvar
        self._rto = min(max(rto, self.params.rto_initial), self.params.rto_max)

    # ---- receiving ---------------------------------------------------------------------

    def _stream(self, sender: str, generation: int, effects: list[Effect]) -> _Stream | None:
        """The stream of `sender`'s `generation`: None for an older one (dropped); a newer
        one replaces the old, with a StreamReset."""
        stream = self._streams.get(sender)
        if stream is not None:
            if generation == stream.generation:
                return stream
            if generation < stream.generation:
                self._count("stale-generation")
                return None
        old = stream.generation if stream is not None else None
        stream = _Stream(generation)
        self._streams[sender] = stream
        self._count("resets")
        effects.append(StreamReset(sender, generation, "restarted"))
        effects.append(
            Log(
                "info",
                "messaging-stream-new",
                f"messages from {sender}: generation {generation}"
                + (f" (was {old})" if old is not None else ""),
                {"sender": sender, "generation": generation, "previous": old},
            )
        )
        return stream

    def _ack_due(self, stream: _Stream, now: float) -> None:
        stream.ack_due = True
        if self._ack_due_at == INF:
            self._ack_due_at = now + self.params.ack_delay

    def _on_data(self, msg: Data, now: float, effects: list[Effect]) -> None:
        stream = self._stream(msg.sender, msg.generation, effects)
        if stream is None:
            return
        self._ack_due(stream, now)  # a duplicate too: the sender may lack our ack
        seq = msg.seq
        if seq <= stream.cumulative or seq in stream.above:
            self._count("duplicates")
            return
        if seq > stream.cumulative + 2 * self.params.window:
            self._count("beyond-window")
            return
        if msg.dest is not None and msg.dest != self.node and msg.chunk:
            msg = Data(
                msg.cluster,
                msg.sender,
                msg.generation,
                seq,
                msg.index,
                msg.count,
                msg.dest,
                msg.compressed,
                b"",
            )  # not ours: only its place in the stream matters
        stream.above[seq] = msg
        self._advance(msg.sender, stream, effects)

    def _advance(self, sender: str, stream: _Stream, effects: list[Effect]) -> None:
        above = stream.above
        while stream.cumulative + 1 in above:
            stream.cumulative += 1
            self._take(sender, stream, above.pop(stream.cumulative), effects)

    def _take(self, sender: str, stream: _Stream, frag: Data, effects: list[Effect]) -> None:
        """The stream's next fragment, in order."""
        head = stream.head
        if head is not None and (
            frag.index != len(stream.parts or ())
            or frag.count != head.count
            or frag.dest != head.dest
            or frag.compressed != head.compressed
        ):
            self._corrupt(sender, stream, "fragment out of place", effects)
            head = None
        if head is None:
            if frag.index != 0:
                self._count("skipped-fragments")  # the tail of a message lost to a reset
                return
            stream.head, stream.parts = frag, []
            head = frag
        parts = stream.parts
        assert parts is not None
        parts.append(frag.chunk)
        if len(parts) < head.count:
            return
        stream.head, stream.parts = None, None
        if head.dest is not None and head.dest != self.node:
            self._count("not-for-us")
            return
        payload = b"".join(parts)
        if head.compressed:
            inflated = _inflate(payload, self.params.max_payload)
            if inflated is None:
                self._corrupt(sender, stream, "undecompressible message", effects)
                return
            payload = inflated
        self._count("delivered")
        self._count("delivered-bytes", len(payload))
        effects.append(Deliver(sender, stream.generation, payload))

    def _corrupt(self, sender: str, stream: _Stream, what: str, effects: list[Effect]) -> None:
        stream.head, stream.parts = None, None
        self._count("corrupt")
        effects.append(StreamReset(sender, stream.generation, "corrupt"))
        effects.append(
            Log(
                "error",
                "messaging-corrupt",
                f"message from {sender} dropped: {what}",
                {"sender": sender, "generation": stream.generation, "seq": stream.cumulative},
            )
        )

    def _on_gone(self, msg: Gone, now: float, effects: list[Effect]) -> None:
        stream = self._stream(msg.sender, msg.generation, effects)
        if stream is None:
            return
        self._count("gone-received")
        if msg.upto <= stream.cumulative:
            return  # we have all that (a late or replayed gone)
        lost = msg.upto - stream.cumulative - sum(1 for s in stream.above if s <= msg.upto)
        stream.above = {s: f for s, f in stream.above.items() if s > msg.upto}
        stream.cumulative = msg.upto
        stream.head, stream.parts = None, None
        self._count("resets")
        effects.append(StreamReset(msg.sender, msg.generation, "gone"))
        effects.append(
            Log(
                "warning",
                "messaging-gone",
                f"{lost} fragments from {msg.sender} are no longer held: continuing after "
                f"seq {msg.upto}",
                {"sender": msg.sender, "generation": msg.generation, "upto": msg.upto},
            )
        )
        self._ack_due(stream, now)
        self._advance(msg.sender, stream, effects)

    def _ack(self, sender: str, stream: _Stream) -> bytes:
        cumulative = stream.cumulative
        highest = cumulative
        missing: list[tuple[int, int]] = []
        if stream.above:
            seqs = sorted(stream.above)
            highest = seqs[-1]
            expect = cumulative + 1
            for seq in seqs:
                if seq > expect:
                    if len(missing) == codec.MAX_RANGES:
                        highest = expect - 1  # the rest of the picture waits for the next ack
                        break
                    missing.append((expect, seq - 1))
                expect = seq + 1
        return codec.encode(
            Ack(
                self.cluster,
                self.node,
                self.generation,
                sender,
                stream.generation,
                cumulative,
                highest,
                tuple(missing),
            ),
            self.keys,
        )


def _inflate(data: bytes, limit: int) -> bytes | None:
    """zlib-decompress at most `limit` bytes; None when the data is not a complete zlib
    stream or inflates beyond the limit."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        return None
    if len(out) > limit or not inflater.eof or inflater.unused_data:
        return None
    return out
