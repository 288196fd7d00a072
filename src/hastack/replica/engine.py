"""The replication core of one volume on one node, facing one peer. Sans-IO.

The engine is fed events -- application writes and flushes (from the NBD export), completions of
the local disk I/O it asked for, bytes from the peer, the connection coming up or going down,
ticks -- each with an explicit `now` in seconds, and returns the effects the shell carries out:
write/read/flush the local disk (each with a token that names its completion), send a frame to
the peer, complete an application request, close the connection, run a handler, log.

What it implements (drbd.conf's model, written from DRBD's documented behaviour):

* Completion of application writes by protocol: A when the local write is done and the write
  was handed to the send path; B when the peer also acknowledged receiving it; C when the peer
  acknowledged that it is on its disk.
* Epochs: writes are grouped into epochs closed by barriers. An epoch is closed when a write
  arrives after some write of the epoch completed (the application may have issued the new
  write *because* it saw that completion, so the two must not be reordered), on a FLUSH and on
  a tick. The Secondary applies the writes of one epoch, waits for them, flushes, acks the
  barrier, and only then starts the next epoch: its disk is always a crash-consistent image.
* The transfer log: the Primary keeps every mirrored write until the barrier of its epoch is
  acked. When the connection drops, those blocks -- and every write while disconnected -- are
  set in the bitmap, so the next resync covers exactly what the peer may lack.
* FLUSH: under protocol C, completes when the local flush is done and the peer acked the barrier
  that closes every earlier write (its flush). Under A and B the peer's stability is not
  promised, so the local flush suffices.
* Connect: optional challenge-response authentication (peerauth), Hello exchange, the decision
  of handshake.sync_handshake, bitmap exchange (both sides OR both bitmaps, so they agree on the
  set to copy), then the SyncTarget requests the dirty blocks at `resync-rate` (a token bucket)
  and the SyncSource reads and sends them. Both end UpToDate with generations.py's identifier
  updates.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from hastack.replica import peerauth, wire
from hastack.replica.bitmap import BLOCK_SIZE, Bitmap
from hastack.replica.generations import (
    Generations,
    Rng,
    finish_sync_source,
    finish_sync_target,
    on_primary_without_peer,
    receive_sync_uuid,
    start_sync_source,
)
from hastack.replica.handshake import NodeState, sync_handshake
from hastack.replica.model import Disk, Net
from hastack.replica.states import ConnState, DiskState, Role

RESYNC_WINDOW = 64  # resync requests in flight at once
BITMAP_CHUNK_RUNS = 65536  # runs per bitmap frame (1 MiB of runs)


class EngineError(Exception):
    """An operator command the engine refuses (promote while the peer is Primary, ...)."""


# --- effects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteLocal:
    token: int
    offset: int  # bytes
    data: bytes
    fua: bool = False


@dataclass(frozen=True)
class ReadLocal:
    token: int
    offset: int
    length: int


@dataclass(frozen=True)
class FlushLocal:
    token: int


@dataclass(frozen=True)
class Send:
    message: wire.Message
    frame: bytes  # what goes on the stream; `message` is there for logs and tests


@dataclass(frozen=True)
class Complete:
    handle: int  # the application's request handle
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class CloseConnection:
    reason: str


@dataclass(frozen=True)
class RunHandler:
    name: str  # a drbd.conf handler: split-brain, pri-lost-after-sb, ...


@dataclass(frozen=True)
class Log:
    level: str  # "info", "warning", "error"
    text: str


Effect = WriteLocal | ReadLocal | FlushLocal | Send | Complete | CloseConnection | RunHandler | Log


# --- internal records ----------------------------------------------------------------------


@dataclass
class _Request:
    """One application write on the Primary."""

    handle: int
    seq: int
    epoch: int
    offset: int
    length: int
    mirrored: bool
    local_done: bool = False
    local_ok: bool = True
    peer_done: bool = False
    completed: bool = False


@dataclass
class _Flush:
    handle: int
    need_epoch: int  # barrier ack needed (0: none)
    local_done: bool = False


@dataclass
class _RxWrite:
    """A write the peer asked for: an application write (seq set) or resync data."""

    offset: int
    data: bytes
    fua: bool = False
    seq: int | None = None
    resync: bool = False
    # The connection it came on: a write still queued when that connection is gone is
    # applied (it precedes anything newer in the queue) but neither acked nor counted.
    link: object = None


@dataclass
class _RxBarrier:
    epoch: int
    writes: int
    link: object = None


@dataclass
class _Io:
    kind: str  # "app", "flush", "rx", "rxflush", "rsread"
    request: _Request | None = None
    flush: _Flush | None = None
    rx: _RxWrite | None = None
    epoch: int = 0
    offset: int = 0
    length: int = 0
    link: object = None


def _blocks(offset: int, length: int) -> range:
    """The bitmap blocks a byte range touches (a partly written block counts)."""
    if length <= 0:
        return range(0)
    return range(offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE + 1)


def _overlap(a_off: int, a_len: int, b_off: int, b_len: int) -> bool:
    return a_off < b_off + b_len and b_off < a_off + a_len


@dataclass
class _Link:
    """Per-connection state, thrown away when the connection goes."""

    encoder: wire.Encoder = field(default_factory=wire.Encoder)
    decoder: wire.Decoder = field(default_factory=wire.Decoder)
    nonce: bytes = b""
    peer_authenticated: bool = False
    hello_sent: wire.Hello | None = None
    peer_hello: wire.Hello | None = None
    peer_bitmap_runs: list[tuple[int, int]] = field(default_factory=list)
    peer_bitmap_done: bool = False
    sync_uuid_received: bool = False
    last_ping: float = 0.0
    ping_outstanding: float | None = None


class ReplicaEngine:
    """One volume, one peer. Methods take `now` and return the list of effects to carry out."""

    def __init__(
        self,
        *,
        node: str,
        size: int,
        net: Net,
        rng: Rng,
        disk: Disk | None = None,
        role: Role = Role.SECONDARY,
        disk_state: DiskState = DiskState.UP_TO_DATE,
        generations: Generations | None = None,
        bitmap: Bitmap | None = None,
        now: float = 0.0,
    ) -> None:
        if size <= 0:
            raise ValueError(f"volume size must be positive, not {size}")
        self.node = node
        self.size = size
        self.net = net
        self.disk = disk if disk is not None else Disk()
        self.rng = rng
        self.role = role
        self.disk_state = disk_state
        self.peer_role: Role | None = None
        self.peer_disk = DiskState.UNKNOWN
        self.cstate = ConnState.STANDALONE
        self.generations = generations if generations is not None else Generations()
        nbits = -(-size // BLOCK_SIZE)
        self.bitmap = bitmap if bitmap is not None else Bitmap(nbits)
        if self.bitmap.nbits != nbits:
            raise ValueError(f"bitmap has {self.bitmap.nbits} bits, volume needs {nbits}")
        self.discard_my_data = False
        self.stats = {"resync_blocks_sent": 0, "resync_blocks_received": 0}

        self._out: list[Effect] = []
        self._link: _Link | None = None
        self._next_token = 1
        self._io: dict[int, _Io] = {}
        # Primary side
        self._next_seq = 1
        self._requests: dict[int, _Request] = {}
        self._tl: dict[int, _Request] = {}  # mirrored writes whose barrier is not acked yet
        self._epoch = 1
        self._epoch_writes = 0
        self._epoch_completed = False  # a write of the open epoch has completed
        self._last_barrier = 0
        self._barrier_acked = 0
        self._flushes: list[_Flush] = []
        # Secondary side
        self._rx_queue: deque[_RxWrite | _RxBarrier] = deque()
        self._rx_inflight: dict[int, _RxWrite] = {}
        self._rx_barrier_busy = False
        # Resync
        self._sync_peer_gens: Generations | None = None
        self._sync_role = ""  # the handshake's "sync-source"/"sync-target" while syncing
        self._todo: deque[tuple[int, int]] = deque()
        self._requested: set[int] = set()
        self._bucket = 0.0
        self._bucket_time = now
        # Resync reads in flight on the source: token -> (offset, length, the link asking).
        self._reads: dict[int, tuple[int, int, _Link | None]] = {}
        self._stale_reads: set[int] = set()
        self._deferred_reads: list[tuple[int, int]] = []

    # === public events ===================================================================

    def connection_made(self, now: float) -> list[Effect]:
        """The shell has a stream to the peer. Authenticate (if configured), then Hello."""
        if self._link is not None:
            raise EngineError("a connection is already up")
        self._link = _Link(last_ping=now)
        self.cstate = ConnState.CONNECTING
        if self.net.cram_hmac_alg:
            self._link.nonce = self.rng.getrandbits(8 * peerauth.NONCE_SIZE).to_bytes(
                peerauth.NONCE_SIZE, "big"
            )
            self._send(wire.AuthChallenge(self._link.nonce))
        else:
            self._send_hello()
        return self._flush_out()

    def connection_lost(self, now: float, reason: str = "connection lost") -> list[Effect]:
        if self._link is not None:
            self._link_down(reason, standalone=False)
        return self._flush_out()

    def receive_bytes(self, now: float, data: bytes) -> list[Effect]:
        link = self._link
        if link is None:
            return []
        try:
            messages = link.decoder.feed(data)
        except wire.WireError as exc:
            self._fail(f"protocol error from peer: {exc}")
            return self._flush_out()
        for message in messages:
            if self._link is not link:
                break  # an earlier message dropped the connection
            self._receive(now, message)
        return self._flush_out()

    def app_write(
        self, now: float, handle: int, offset: int, data: bytes, *, fua: bool = False
    ) -> list[Effect]:
        if self.role is not Role.PRIMARY:
            # A Secondary's disk belongs to the replication stream; DRBD answers EROFS here.
            self._out.append(Complete(handle, False, "read-only: this node is Secondary"))
            return self._flush_out()
        if offset < 0 or not data or offset + len(data) > self.size:
            self._out.append(Complete(handle, False, "write outside the volume"))
            return self._flush_out()
        mirrored = self._mirroring
        if mirrored and self._epoch_completed and self._epoch_writes:
            self._close_epoch()
        seq = self._next_seq
        self._next_seq += 1
        req = _Request(handle, seq, self._epoch, offset, len(data), mirrored)
        self._requests[seq] = req
        self._mark_reads_stale(offset, len(data))
        self._out.append(WriteLocal(self._token(_Io("app", request=req)), offset, data, fua))
        if mirrored:
            self._tl[seq] = req
            self._epoch_writes += 1
            digest = self._digest(data)
            flags = wire.DATA_FUA if fua else 0
            self._send(wire.Data(offset, seq, self._epoch, flags, data, digest))
            if self.net.protocol == "A":
                req.peer_done = True  # handed to the send path
        else:
            self._mark_dirty(offset, len(data))
        return self._flush_out()

    def app_flush(self, now: float, handle: int) -> list[Effect]:
        if self.role is not Role.PRIMARY:
            self._out.append(Complete(handle, False, "read-only: this node is Secondary"))
            return self._flush_out()
        need = 0
        if self._mirroring and self.net.protocol == "C":
            self._close_epoch()
            need = self._last_barrier
        flush = _Flush(handle, need)
        self._flushes.append(flush)
        self._out.append(FlushLocal(self._token(_Io("flush", flush=flush))))
        return self._flush_out()

    def io_done(self, now: float, token: int, ok: bool = True, data: bytes = b"") -> list[Effect]:
        """A local I/O this engine asked for finished; `data` for reads."""
        io = self._io.pop(token, None)
        if io is None:
            raise EngineError(f"no local I/O with token {token}")
        if io.kind == "app":
            assert io.request is not None
            self._app_write_done(io.request, ok)
        elif io.kind == "flush":
            assert io.flush is not None
            io.flush.local_done = True
            if not ok:
                self._flushes.remove(io.flush)
                self._out.append(Complete(io.flush.handle, False, "local flush failed"))
            self._check_flushes()
        elif io.kind == "rx":
            assert io.rx is not None
            self._rx_write_done(now, token, io.rx, ok)
        elif io.kind == "rxflush":
            self._rx_barrier_busy = False
            if io.link is self._link:
                self._send(wire.BarrierAck(io.epoch, io.length))
            self._pump_rx()
        elif io.kind == "rsread":
            self._resync_read_done(token, io.offset, io.length, ok, data)
        return self._flush_out()

    def tick(self, now: float) -> list[Effect]:
        link = self._link
        if link is not None:
            ping_int = self.net.ping_int
            if link.ping_outstanding is not None:
                if now - link.ping_outstanding > self.net.ping_timeout / 10:
                    self._fail("peer did not answer a ping in time")
                    return self._flush_out()
            elif now - link.last_ping >= ping_int:
                link.last_ping = now
                link.ping_outstanding = now
                self._send(wire.Ping())
        # An epoch left open forever would keep its writes in the transfer log.
        if self._mirroring and self._epoch_writes:
            self._close_epoch()
        if self.cstate is ConnState.SYNC_TARGET:
            self._request_resync(now)
        return self._flush_out()

    def promote(self, now: float) -> list[Effect]:
        if self.peer_role is Role.PRIMARY and not self.net.allow_two_primaries:
            raise EngineError("the peer is Primary and allow-two-primaries is off")
        if self.disk_state is not DiskState.UP_TO_DATE:
            raise EngineError(f"disk is {self.disk_state.name}, not UpToDate")
        self.role = Role.PRIMARY
        if not self._mirroring:
            # Writes from now on diverge from the peer: a new data generation.
            self.generations = on_primary_without_peer(self.generations, self.rng)
        self._send_state()
        return self._flush_out()

    def demote(self, now: float) -> list[Effect]:
        if self._requests or self._flushes:
            raise EngineError("application requests are still in flight")
        self.role = Role.SECONDARY
        self._send_state()
        return self._flush_out()

    @property
    def status(self) -> dict[str, object]:
        return {
            "role": self.role.name.capitalize(),
            "peer_role": self.peer_role.name.capitalize() if self.peer_role else "Unknown",
            "disk": self.disk_state.name,
            "peer_disk": self.peer_disk.name,
            "cstate": self.cstate.value,
            "oos": self.bitmap.out_of_sync_kib(),
        }

    @property
    def transfer_log(self) -> list[tuple[int, int]]:
        """(offset, length) of every write not yet covered by a barrier ack."""
        return [(r.offset, r.length) for r in self._tl.values()]

    # === plumbing ========================================================================

    @property
    def _mirroring(self) -> bool:
        return self._link is not None and (
            self.cstate.replicating or self.cstate is ConnState.WF_BITMAP
        )

    def _flush_out(self) -> list[Effect]:
        out, self._out = self._out, []
        return out

    def _token(self, io: _Io) -> int:
        token = self._next_token
        self._next_token += 1
        self._io[token] = io
        return token

    def _send(self, message: wire.Message) -> None:
        if self._link is not None:
            self._out.append(Send(message, self._link.encoder.encode(message)))

    def _log(self, text: str, level: str = "info") -> None:
        self._out.append(Log(level, f"{self.node}: {text}"))

    def _digest(self, data: bytes) -> bytes:
        alg = self.net.data_integrity_alg
        return wire.integrity_digest(alg, data) if alg else b""

    def _mark_dirty(self, offset: int, length: int) -> None:
        blocks = _blocks(offset, length)
        if blocks:
            self.bitmap.set_range(blocks.start, min(blocks.stop, self.bitmap.nbits))

    def _send_state(self) -> None:
        if self._link is not None and self._link.peer_hello is not None:
            self._send(wire.StateChange(self.role, self.disk_state))

    # --- connection lifecycle ------------------------------------------------------------

    def _refuse(self, reason: str) -> None:
        """Refuse the peer for good (auth failure, split brain, ...): StandAlone until told."""
        self._send(wire.Disconnect(reason))
        self._link_down(reason, standalone=True)

    def _fail(self, reason: str) -> None:
        """The connection broke (protocol error, ping timeout): drop it, try again later."""
        self._link_down(reason, standalone=False)

    def _link_down(self, reason: str, *, standalone: bool) -> None:
        was = self.cstate
        self._link = None
        self._out.append(CloseConnection(reason))
        self._log(f"connection down ({was.value}): {reason}", "warning")
        self.cstate = ConnState.STANDALONE if standalone else ConnState.CONNECTING
        self.peer_disk = DiskState.UNKNOWN
        self.peer_role = None
        # Every write the peer has not confirmed stable (its barrier was not acked) may be
        # missing there: the bitmap takes it over, and the next resync copies exactly these.
        for req in self._tl.values():
            self._mark_dirty(req.offset, req.length)
            req.peer_done = True
        self._tl.clear()
        for req in list(self._requests.values()):
            req.peer_done = True
            self._maybe_complete(req)
        for flush in self._flushes:
            flush.need_epoch = 0
        self._check_flushes()
        self._epoch_writes = 0
        self._epoch_completed = False
        self._todo.clear()
        self._requested.clear()
        self._deferred_reads.clear()
        if self.role is Role.PRIMARY and was is not ConnState.CONNECTING:
            self.generations = on_primary_without_peer(self.generations, self.rng)

    def _send_hello(self) -> None:
        assert self._link is not None
        flags = wire.HELLO_DISCARD_MY_DATA if self.discard_my_data else 0
        gens = self.generations
        hello = wire.Hello(
            node=self.node,
            role=self.role,
            disk=self.disk_state,
            size=self.size,
            current=gens.current,
            bitmap=gens.bitmap,
            history=gens.history,
            dirty=self.bitmap.count(),
            flags=flags,
        )
        self._link.hello_sent = hello
        self._send(hello)

    # --- message dispatch ----------------------------------------------------------------

    def _receive(self, now: float, msg: wire.Message) -> None:
        link = self._link
        assert link is not None
        if isinstance(msg, wire.AuthChallenge | wire.AuthResponse):
            self._receive_auth(msg)
            return
        if self.net.cram_hmac_alg and not link.peer_authenticated:
            self._refuse(f"peer sent {type(msg).__name__} before authenticating")
            return
        if isinstance(msg, wire.Hello):
            self._receive_hello(msg)
        elif link.peer_hello is None and not isinstance(msg, wire.Disconnect):
            self._fail(f"peer sent {type(msg).__name__} before Hello")
        elif isinstance(msg, wire.Data):
            self._receive_data(msg)
        elif isinstance(msg, wire.RecvAck | wire.WriteAck | wire.NegAck):
            self._receive_ack(msg)
        elif isinstance(msg, wire.Barrier):
            self._rx_queue.append(_RxBarrier(msg.epoch, msg.writes, link))
            self._pump_rx()
        elif isinstance(msg, wire.BarrierAck):
            self._receive_barrier_ack(msg.epoch)
        elif isinstance(msg, wire.BitmapRuns):
            self._receive_bitmap(msg)
        elif isinstance(msg, wire.SyncUuid):
            self._receive_sync_uuid(now, msg.uuid)
        elif isinstance(msg, wire.ResyncRequest):
            self._receive_resync_request(msg.offset, msg.length)
        elif isinstance(msg, wire.ResyncData):
            self._receive_resync_data(msg)
        elif isinstance(msg, wire.ResyncAck):
            self._receive_resync_ack(msg)
        elif isinstance(msg, wire.OutOfSync):
            self._mark_dirty(msg.offset, msg.length)
        elif isinstance(msg, wire.Ping):
            self._send(wire.PingAck())
        elif isinstance(msg, wire.PingAck):
            link.ping_outstanding = None
        elif isinstance(msg, wire.StateChange):
            self.peer_role, self.peer_disk = msg.role, msg.disk
            if msg.disk is DiskState.UP_TO_DATE:
                self._check_source_done()
        elif isinstance(msg, wire.Disconnect):
            self._link_down(f"peer refused: {msg.reason}", standalone=True)

    def _receive_auth(self, msg: wire.AuthChallenge | wire.AuthResponse) -> None:
        link = self._link
        assert link is not None
        alg, secret = self.net.cram_hmac_alg, self.net.shared_secret or ""
        if not alg:
            self._refuse("peer wants authentication, this side has no cram-hmac-alg")
            return
        if isinstance(msg, wire.AuthChallenge):
            if not peerauth.acceptable_challenge(link.nonce, msg.nonce):
                self._refuse("peer's authentication challenge is unacceptable")
                return
            self._send(wire.AuthResponse(peerauth.respond(alg, secret, msg.nonce)))
            return
        if link.peer_authenticated or not peerauth.verify(alg, secret, link.nonce, msg.digest):
            self._refuse("authentication of peer failed (cram-hmac-alg/shared-secret mismatch)")
            return
        link.peer_authenticated = True
        self._log("peer authenticated")
        self._send_hello()

    # --- handshake -----------------------------------------------------------------------

    def _receive_hello(self, peer: wire.Hello) -> None:
        link = self._link
        assert link is not None and link.hello_sent is not None
        if link.peer_hello is not None:
            self._fail("peer sent a second Hello")
            return
        if peer.version != wire.PROTOCOL_VERSION:
            self._refuse(f"peer speaks protocol {peer.version}, this side {wire.PROTOCOL_VERSION}")
            return
        if peer.size != self.size:
            self._refuse(f"volume sizes differ: peer {peer.size}, this side {self.size} bytes")
            return
        link.peer_hello = peer
        self.peer_role, self.peer_disk = peer.role, peer.disk
        mine = link.hello_sent
        peer_gens = Generations(peer.current, peer.bitmap, peer.history)
        local = NodeState(
            name=self.node,
            role="primary" if mine.role is Role.PRIMARY else "secondary",
            generations=Generations(mine.current, mine.bitmap, mine.history),
            inconsistent=mine.disk is DiskState.INCONSISTENT,
            changed_blocks=mine.dirty,
            discard_my_data=bool(mine.flags & wire.HELLO_DISCARD_MY_DATA),
        )
        remote = NodeState(
            name=peer.node,
            role="primary" if peer.role is Role.PRIMARY else "secondary",
            generations=peer_gens,
            inconsistent=peer.disk is DiskState.INCONSISTENT,
            changed_blocks=peer.dirty,
            discard_my_data=bool(peer.flags & wire.HELLO_DISCARD_MY_DATA),
        )
        # Exactly one side resolves conflicts; the node names order them the same on both.
        decision = sync_handshake(
            self.net, local, remote, local_resolves_conflicts=self.node > peer.node
        )
        self._log(f"handshake: {decision.action}: {decision.reason}")
        for handler in decision.handlers:
            self._out.append(RunHandler(handler))
        if decision.action == "disconnect":
            self._refuse(decision.reason)
            return
        if decision.action == "connected":
            self.cstate = ConnState.CONNECTED
            return
        self._sync_peer_gens = decision.comparison.peer
        self.generations = decision.comparison.local  # a rule may have corrected our ids
        if decision.full:
            self.bitmap.set_all()
        self.cstate = ConnState.WF_BITMAP
        self._sync_role = decision.action
        runs = list(self.bitmap.runs())
        for start in range(0, max(len(runs), 1), BITMAP_CHUNK_RUNS):
            chunk = tuple(runs[start : start + BITMAP_CHUNK_RUNS])
            last = start + BITMAP_CHUNK_RUNS >= len(runs)
            self._send(wire.BitmapRuns(self.bitmap.nbits, chunk, last))

    def _receive_bitmap(self, msg: wire.BitmapRuns) -> None:
        link = self._link
        assert link is not None
        if self.cstate is not ConnState.WF_BITMAP or msg.nbits != self.bitmap.nbits:
            self._fail(f"unexpected bitmap ({msg.nbits} bits) in {self.cstate.value}")
            return
        link.peer_bitmap_runs.extend(msg.runs)
        if not msg.last:
            return
        # Both sides OR both bitmaps: the resync covers what either side changed, and both
        # agree on exactly which blocks that is.
        self.bitmap.merge(Bitmap.from_runs(self.bitmap.nbits, link.peer_bitmap_runs))
        link.peer_bitmap_runs = []
        link.peer_bitmap_done = True
        if self._sync_role == "sync-source":
            self.generations, uuid = start_sync_source(self.generations, self.rng)
            self._send(wire.SyncUuid(uuid))
            self.cstate = ConnState.SYNC_SOURCE
            self.peer_disk = DiskState.INCONSISTENT
            self._log(f"resync started as source: {self.bitmap.count()} blocks")
            self._check_source_done()
        elif link.sync_uuid_received:
            self._start_target()

    def _receive_sync_uuid(self, now: float, uuid: int) -> None:
        link = self._link
        assert link is not None
        if self.cstate is not ConnState.WF_BITMAP or self._sync_role != "sync-target":
            self._fail(f"unexpected sync UUID in {self.cstate.value}")
            return
        self.generations = receive_sync_uuid(
            self.generations, uuid, primary=self.role is Role.PRIMARY
        )
        link.sync_uuid_received = True
        self._bucket_time = now
        if link.peer_bitmap_done:
            self._start_target()

    def _start_target(self) -> None:
        self.cstate = ConnState.SYNC_TARGET
        self.disk_state = DiskState.INCONSISTENT
        self._todo = deque(self.bitmap.runs())
        self._bucket = self._bucket_size
        self._log(f"resync started as target: {self.bitmap.count()} blocks")
        self._request_resync(self._bucket_time)
        self._check_target_done()

    # --- Primary: writes, acks, barriers -------------------------------------------------

    def _close_epoch(self) -> None:
        if not self._epoch_writes:
            return
        self._send(wire.Barrier(self._epoch, self._epoch_writes))
        self._last_barrier = self._epoch
        self._epoch += 1
        self._epoch_writes = 0
        self._epoch_completed = False

    def _app_write_done(self, req: _Request, ok: bool) -> None:
        req.local_done = True
        req.local_ok = ok
        if not ok:
            self._mark_dirty(req.offset, req.length)  # local and peer copies now differ
        self._maybe_complete(req)
        self._retry_deferred_reads()

    def _maybe_complete(self, req: _Request) -> None:
        if req.completed or not req.local_done:
            return
        if req.mirrored and not req.peer_done:
            return
        req.completed = True
        del self._requests[req.seq]
        if req.epoch == self._epoch:
            self._epoch_completed = True
        self._out.append(Complete(req.handle, req.local_ok, "" if req.local_ok else "I/O error"))

    def _receive_ack(self, msg: wire.RecvAck | wire.WriteAck | wire.NegAck) -> None:
        req = self._requests.get(msg.seq)
        if req is None:
            return  # already complete (e.g. a B ack after protocol A completion)
        if isinstance(msg, wire.NegAck):
            self._mark_dirty(req.offset, req.length)
            req.peer_done = True
        else:
            # Only the ack this protocol waits for completes a write; any other is ignored.
            wanted = wire.RecvAck if self.net.protocol == "B" else wire.WriteAck
            if isinstance(msg, wanted) and self.net.protocol != "A":
                req.peer_done = True
        self._maybe_complete(req)

    def _receive_barrier_ack(self, epoch: int) -> None:
        self._barrier_acked = max(self._barrier_acked, epoch)
        for seq in [s for s, r in self._tl.items() if r.epoch <= epoch]:
            del self._tl[seq]
        self._check_flushes()

    def _check_flushes(self) -> None:
        for flush in list(self._flushes):
            if flush.local_done and flush.need_epoch <= self._barrier_acked:
                self._flushes.remove(flush)
                self._out.append(Complete(flush.handle, True))

    # --- Secondary: applying the peer's writes in epoch order ----------------------------

    def _receive_data(self, msg: wire.Data) -> None:
        if (msg.digest or self.net.data_integrity_alg) and msg.digest != self._digest(msg.payload):
            self._fail(f"data integrity digest mismatch on write {msg.seq}")
            return
        if self.net.protocol == "B":
            self._send(wire.RecvAck(msg.seq))
        self._rx_queue.append(
            _RxWrite(
                msg.offset,
                msg.payload,
                bool(msg.flags & wire.DATA_FUA),
                seq=msg.seq,
                link=self._link,
            )
        )
        self._pump_rx()

    def _pump_rx(self) -> None:
        """Issue queued peer writes in stream order. A barrier waits for every earlier write,
        then flushes; nothing after it is issued until that flush is done, so no write of epoch
        N+1 can be stable before all of epoch N. A write overlapping one in flight waits too,
        as the disk may reorder concurrent writes."""
        queue = self._rx_queue
        while queue and not self._rx_barrier_busy:
            item = queue[0]
            if isinstance(item, _RxBarrier):
                if self._rx_inflight:
                    return
                queue.popleft()
                self._rx_barrier_busy = True
                io = _Io("rxflush", epoch=item.epoch, length=item.writes, link=item.link)
                self._out.append(FlushLocal(self._token(io)))
                return
            if any(
                _overlap(item.offset, len(item.data), w.offset, len(w.data))
                for w in self._rx_inflight.values()
            ):
                return
            queue.popleft()
            token = self._token(_Io("rx", rx=item))
            self._rx_inflight[token] = item
            self._out.append(WriteLocal(token, item.offset, item.data, item.fua))

    def _rx_write_done(self, now: float, token: int, item: _RxWrite, ok: bool) -> None:
        del self._rx_inflight[token]
        if item.link is not self._link:
            pass  # its connection is gone: the peer's bitmap covers it, nothing to answer
        elif item.resync:
            self._resync_write_done(now, item, ok)
        elif item.seq is not None:
            if not ok:
                self._send(wire.NegAck(item.seq))
            elif self.net.protocol == "C":
                self._send(wire.WriteAck(item.seq))
        self._pump_rx()

    # --- resync: target side -------------------------------------------------------------

    @property
    def _bucket_size(self) -> float:
        # A tenth of a second of rate, at least one block: small bursts, steady average.
        return max(self.disk.resync_rate * 1024 / 10, float(BLOCK_SIZE))

    def _next_todo(self) -> int | None:
        while self._todo:
            start, stop = self._todo[0]
            if start + 1 < stop:
                self._todo[0] = (start + 1, stop)
            else:
                self._todo.popleft()
            if self.bitmap.test(start):
                return start
        return None

    def _request_resync(self, now: float) -> None:
        rate = self.disk.resync_rate * 1024
        self._bucket = min(self._bucket_size, self._bucket + (now - self._bucket_time) * rate)
        self._bucket_time = max(self._bucket_time, now)
        while len(self._requested) < RESYNC_WINDOW and self._bucket >= BLOCK_SIZE:
            block = self._next_todo()
            if block is None:
                break
            offset = block * BLOCK_SIZE
            length = min(BLOCK_SIZE, self.size - offset)
            self._requested.add(block)
            self._bucket -= BLOCK_SIZE
            self._send(wire.ResyncRequest(offset, length))

    def _receive_resync_data(self, msg: wire.ResyncData) -> None:
        block = msg.offset // BLOCK_SIZE
        if self.cstate is not ConnState.SYNC_TARGET or block not in self._requested:
            self._fail(f"unrequested resync data at {msg.offset}")
            return
        self.stats["resync_blocks_received"] += 1
        self._rx_queue.append(_RxWrite(msg.offset, msg.payload, resync=True, link=self._link))
        self._pump_rx()

    def _resync_write_done(self, now: float, item: _RxWrite, ok: bool) -> None:
        block = item.offset // BLOCK_SIZE
        self._requested.discard(block)
        if ok:
            self.bitmap.clear(block)
        self._send(wire.ResyncAck(item.offset, len(item.data), ok))
        if self.cstate is ConnState.SYNC_TARGET:
            self._request_resync(now)
            self._check_target_done()

    def _check_target_done(self) -> None:
        if self._todo or self._requested or self.cstate is not ConnState.SYNC_TARGET:
            return
        if self.bitmap.count():
            self._log(f"resync ended with {self.bitmap.count()} blocks failed", "error")
            return
        assert self._sync_peer_gens is not None
        self.generations = finish_sync_target(
            self.generations, self._sync_peer_gens, primary=self.role is Role.PRIMARY
        )
        self.disk_state = DiskState.UP_TO_DATE
        self.peer_disk = DiskState.UP_TO_DATE
        self.cstate = ConnState.CONNECTED
        self._log("resync finished: UpToDate")
        # The source finishes on this, not on its own bitmap running empty: only now is it
        # known that the target holds the sync UUID, so both sides' identifiers move together.
        self._send_state()

    # --- resync: source side -------------------------------------------------------------

    def _receive_resync_request(self, offset: int, length: int) -> None:
        if self.cstate is not ConnState.SYNC_SOURCE or length <= 0 or offset + length > self.size:
            self._fail(f"bad resync request [{offset}, +{length}) in {self.cstate.value}")
            return
        self._issue_read(offset, length)

    def _issue_read(self, offset: int, length: int) -> None:
        token = self._token(_Io("rsread", offset=offset, length=length))
        self._reads[token] = (offset, length, self._link)
        if self._writes_pending(offset, length):
            # Concurrent with a write to the same blocks: the disk may return either version.
            self._stale_reads.add(token)
        self._out.append(ReadLocal(token, offset, length))

    def _mark_reads_stale(self, offset: int, length: int) -> None:
        # A resync read racing an application write may return the old data, and the peer
        # would then overwrite the mirrored new data with it: such a read is done again.
        for token, (r_off, r_len, _) in self._reads.items():
            if _overlap(offset, length, r_off, r_len):
                self._stale_reads.add(token)

    def _writes_pending(self, offset: int, length: int) -> bool:
        return any(
            not r.local_done and _overlap(offset, length, r.offset, r.length)
            for r in self._requests.values()
        )

    def _resync_read_done(
        self, token: int, offset: int, length: int, ok: bool, data: bytes
    ) -> None:
        asked_by = self._reads.pop(token)[2]
        stale = token in self._stale_reads
        self._stale_reads.discard(token)
        if self.cstate is not ConnState.SYNC_SOURCE or asked_by is not self._link:
            return  # asked for on a connection that is gone; the new one asks again
        if stale or not ok or len(data) != length:
            self._deferred_reads.append((offset, length))
            self._retry_deferred_reads()
            return
        self.stats["resync_blocks_sent"] += 1
        self._send(wire.ResyncData(offset, data))

    def _retry_deferred_reads(self) -> None:
        waiting, self._deferred_reads = self._deferred_reads, []
        for offset, length in waiting:
            if self._writes_pending(offset, length):
                self._deferred_reads.append((offset, length))
            else:
                self._issue_read(offset, length)

    def _receive_resync_ack(self, msg: wire.ResyncAck) -> None:
        if self.cstate is not ConnState.SYNC_SOURCE:
            return
        if msg.ok:
            blocks = _blocks(msg.offset, msg.length)
            self.bitmap.clear_range(blocks.start, min(blocks.stop, self.bitmap.nbits))
        self._check_source_done()

    def _check_source_done(self) -> None:
        if self.cstate is not ConnState.SYNC_SOURCE or self.peer_disk is not DiskState.UP_TO_DATE:
            return
        if self.bitmap.count():
            self._log(f"target finished but {self.bitmap.count()} blocks are unacked", "error")
        else:
            self.generations = finish_sync_source(self.generations)
            self.cstate = ConnState.CONNECTED
            self.peer_disk = DiskState.UP_TO_DATE
            self._log("resync finished as source")

    # For tests and status: blocks the target still has to fetch.
    def pending_resync(self) -> Iterator[int]:
        return self.bitmap.dirty()
