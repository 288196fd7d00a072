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
  updates. The pace is resync_control's: the fixed `resync-rate`, or DRBD's dynamic controller
  when `c-plan-ahead` > 0. With `csums-alg` the target sends the digest of its own copy of each
  block and the source sends data only when its block differs.
* Application requests made while the handshake is undecided (connection made, no decision
  yet) are held and issued once it is decided: a write marked only in the bitmap would be lost
  if the decision were "no resync", and one mirrored before the decision could race the resync.
* Operator commands (drbdsetup's): invalidate, invalidate-remote, outdate, new-current-uuid
  [--clear-bitmap], disconnect, connect, verify. Those that need the peer send a StartRequest and
  act on its StartReply. A refused command raises EngineError saying why.
* Online verify (`verify-alg`): VerifyS asks VerifyT for digests of every block from a start
  block on, at the resync pace, compares them with its own, and both mark differing blocks
  out of sync; the "out-of-sync" handler runs if any differed.
* ko-count: a write the peer leaves unanswered for `timeout` x `ko-count` drops the connection
  (the write then completes locally and its blocks go to the bitmap).
* Diskless operation (`detach`, `attach`, on-io-error): a volume that let go of its disk sends
  application writes to the peer only (completed by the peer's ack alone) and reads to it
  (DataRequest/DataReply), and fails them when no UpToDate peer is connected; the peer records
  in its bitmap every block written meanwhile and starts a new data generation, so that the
  disk attached again (a renewed Hello on the same connection) is resynced exactly there.
  A local I/O error applies on-io-error as DRBD 8.4's drbd_chk_io_error: pass_on (the disk
  goes Inconsistent, the request is served by the peer), call-local-io-error (the handler, then
  a detach) or detach.
* `status`: DRBD's spellings, resync/verify progress and /proc/drbd's counters.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from hastack.replica import peerauth, wire
from hastack.replica.bitmap import BLOCK_SIZE, Bitmap
from hastack.replica.engine_resize import ResizeAsked, Resized, ResizeMixin
from hastack.replica.generations import (
    Generations,
    Rng,
    finish_sync_source,
    finish_sync_target,
    new_current,
    on_primary_without_peer,
    receive_sync_uuid,
    skip_initial_sync,
    start_sync_source,
    with_role,
)
from hastack.replica.handshake import NodeState, sync_handshake
from hastack.replica.model import Disk, Handlers, Net
from hastack.replica.progress import SyncProgress
from hastack.replica.ranges import RangeIndex
from hastack.replica.resync_control import Pacer, pacer_for
from hastack.replica.states import ConnState, DiskState, Role

# Resync (and verify) requests of one block in flight at once: drbd.conf's max-buffers (pages
# the receiver may hold), capped, so a high rate is not limited by one round trip per 64 blocks.
MAX_RESYNC_WINDOW = 1024
MAX_PEER_READ = 1 << 20  # one application read through the peer (the shell splits larger ones)
BITMAP_CHUNK_RUNS = 65536  # runs per bitmap frame (1 MiB of runs)
VERIFY_RETRIES = 8  # a block written to during its verify is asked again, this many times
# States in which a resync or verify runs (progress is shown, other such commands refused).
_BUSY = frozenset(
    (ConnState.SYNC_SOURCE, ConnState.SYNC_TARGET, ConnState.VERIFY_S, ConnState.VERIFY_T)
)


_START_NAMES = {
    wire.START_TARGET: "invalidate",
    wire.START_SOURCE: "invalidate-remote",
    wire.START_VERIFY: "verify",
}


class EngineError(Exception):
    """An operator command the engine refuses (promote while the peer is Primary, ...)."""


# --- effects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WriteLocal:
    token: int
    offset: int  # bytes
    data: bytes
    fua: bool = False
    # The application request this write belongs to (None: a peer's or a resync write): the
    # shell keeps its activity-log extent hot until that request completes.
    handle: int | None = None


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
    parts: tuple[bytes | memoryview, ...]  # the frame in pieces (a payload is not copied)

    @property
    def frame(self) -> bytes:
        """The frame whole; `message` is there for logs and tests."""
        return b"".join(self.parts)


@dataclass(frozen=True)
class Complete:
    handle: int  # the application's request handle
    ok: bool
    error: str = ""
    data: bytes = b""  # an application read's data (app_read)


@dataclass(frozen=True)
class CloseConnection:
    reason: str


@dataclass(frozen=True)
class RunHandler:
    """Run drbd.conf's handler `name` (split-brain, out-of-sync, fence-peer, ...). For those
    the engine waits on (fence-peer, before-resync-target, before-resync-source) the shell
    reports the exit status back with `handler_done`."""

    name: str


# fence-peer's exit codes (DRBD 8.4's conn_try_outdate_peer): what the handler found.
FENCE_PEER_INCONSISTENT = 3  # the peer's disk is Inconsistent (or worse)
FENCE_PEER_OUTDATED = 4  # the peer's disk is now (or was already) Outdated
FENCE_PEER_UNREACHABLE = 5  # the peer is down: taken as Outdated if this disk is UpToDate
FENCE_PEER_PRIMARY = 6  # the peer is Primary: a Secondary here outdates itself
FENCE_PEER_STONITHED = 7  # the peer node was fenced (STONITH)
# Handlers whose exit status the engine waits for.
AWAITED_HANDLERS = ("fence-peer", "before-resync-target", "before-resync-source")


@dataclass(frozen=True)
class Log:
    level: str  # "info", "warning", "error"
    text: str


@dataclass(frozen=True)
class Released:
    """An application write is settled on both sides -- completed, and either confirmed stable
    by the peer (its barrier acknowledged) or recorded in the bitmap: the shell may now let
    its activity-log extent go. Under protocols A and B this is later than its Complete."""

    handle: int


@dataclass(frozen=True)
class DetachLocal:
    """The volume lets go of its local disk (`detach`, or on-io-error): it is Diskless from
    now on and issues no new local I/O. Once `local_io_busy` is false the shell writes the
    metadata (`metadata_disk_state`, the bitmap), closes the backing (`clean`: the log marked
    clean; not after an I/O error) and calls `disk_closed`."""

    reason: str
    clean: bool = True


Effect = (
    WriteLocal
    | ReadLocal
    | FlushLocal
    | Send
    | Complete
    | Released
    | DetachLocal
    | CloseConnection
    | RunHandler
    | Log
    | ResizeAsked
    | Resized
)


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
    sent_at: float = 0.0  # when it went to the peer: ko-count measures from here
    local_done: bool = False
    local_ok: bool = True
    peer_done: bool = False
    peer_ok: bool = False  # the peer has it (per the protocol's ack): enough for success
    voided: bool = False  # the disk was detached before completion: its copy does not count
    completed: bool = False


@dataclass
class _Flush:
    handle: int
    need_epoch: int  # barrier ack needed (0: none)
    local_done: bool = False
    local: bool = True  # False: Diskless, only the peer's barrier ack makes it stable


@dataclass
class _RxWrite:
    """A write the peer asked for: an application write (seq set) or resync data."""

    offset: int
    data: bytes
    fua: bool = False
    seq: int | None = None
    resync: bool = False
    # The connection it came on (a write issued before that connection went is neither
    # acked nor counted; one still queued then is dropped and marked out of sync).
    link: object = None


@dataclass
class _RxBarrier:
    epoch: int
    writes: int
    link: object = None


@dataclass
class _RxVerify:
    """VerifyT's read of a range, queued behind the peer's earlier writes so that it sees them:
    the peer's copy already includes them when it compares."""

    offset: int
    length: int
    link: object = None


@dataclass
class _RxRead:
    """A read the peer asked for -- its application read (DataRequest, `ident` set) or a
    resync read -- queued behind the peer's earlier writes, so that it returns them."""

    offset: int
    length: int
    link: object = None
    ident: int | None = None
    digest: bytes | None = None


@dataclass
class _Held:
    """An application request that arrived while the connect handshake was undecided."""

    handle: int
    offset: int = 0
    data: bytes = b""
    fua: bool = False
    flush: bool = False
    read: int = 0  # an application read of this many bytes


@dataclass
class _Io:
    # "app", "flush", "rx", "rxflush", "rsread", "csread" (csums: the target reads its copy),
    # "vread" (VerifyT reads for a digest), "vlocal" (VerifyS reads to compare), "appread" (an
    # application read through the engine), "dread" (a read for the peer's DataRequest)
    kind: str
    request: _Request | None = None
    flush: _Flush | None = None
    rx: _RxWrite | None = None
    epoch: int = 0
    offset: int = 0
    length: int = 0
    link: object = None
    handle: int = 0  # "appread": the application's request
    ident: int = 0  # "dread": the peer's DataRequest id


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
    made_at: float = 0.0
    last_ping: float = 0.0
    ping_outstanding: float | None = None
    renegotiating: bool = False  # a second Hello is awaited (attach): no refusal before it


class ReplicaEngine(ResizeMixin):
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
        crashed_primary: bool = False,
        now: float = 0.0,
        handlers: Handlers | None = None,
        peer_disk: DiskState = DiskState.UNKNOWN,
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
        # The peer's disk: DUnknown while disconnected, unless it is known Outdated or
        # Inconsistent (fenced, or a resync target when the link went; remembered across a
        # restart by the PEER_OUTDATED flag): then no fence-peer is needed to promote.
        self.peer_disk = (
            peer_disk
            if peer_disk in (DiskState.OUTDATED, DiskState.INCONSISTENT)
            else DiskState.UNKNOWN
        )
        self.handlers = handlers if handlers is not None else Handlers()
        self.cstate = ConnState.STANDALONE
        self.generations = generations if generations is not None else Generations()
        nbits = -(-size // BLOCK_SIZE)
        self.bitmap = bitmap if bitmap is not None else Bitmap(nbits)
        if self.bitmap.nbits != nbits:
            raise ValueError(f"bitmap has {self.bitmap.nbits} bits, volume needs {nbits}")
        self.discard_my_data = False
        # This node went down uncleanly as Primary (its metadata says so): the handshake
        # makes it the source of its activity log's extents if the data is otherwise equal.
        self.crashed_primary = crashed_primary
        # The bits set in the peer's bitmap when it last said Hello (None: never connected):
        # after a refused split brain, how much the peer changed.
        self.peer_changed_blocks: int | None = None
        self._resync_window = max(32, min(net.max_buffers, MAX_RESYNC_WINDOW))
        self.stats = {
            "resync_blocks_sent": 0,
            "resync_blocks_received": 0,
            "resync_blocks_equal": 0,  # csums-alg: blocks found equal and not sent
            "verified_blocks": 0,
            "verify_out_of_sync": 0,
        }
        # /proc/drbd's byte counters (status shows them in KiB): network send/receive, disk
        # write/read.
        self._counters = {"ns": 0, "nr": 0, "dw": 0, "dr": 0}

        self._now = now  # the latest time an event brought: status has no `now` of its own
        self._out: list[Effect] = []
        self._link: _Link | None = None
        self._stay_standalone = False  # `disconnect`: refuse connections until `connect`
        self._held: deque[_Held] = deque()  # application requests held during the handshake
        self._next_token = 1
        self._io: dict[int, _Io] = {}
        # Primary side
        self._next_seq = 1
        self._requests: dict[int, _Request] = {}
        # Mirrored writes whose barrier is not acked yet, oldest first (by seq, so by epoch):
        # a barrier ack releases a prefix, taken from the front without scanning the rest.
        self._tl: OrderedDict[int, _Request] = OrderedDict()
        self._epoch = 1
        self._epoch_writes = 0
        self._epoch_completed = False  # a write of the open epoch has completed
        self._last_barrier = 0
        self._barrier_acked = 0
        self._flushes: list[_Flush] = []
        # Secondary side
        self._rx_queue: deque[_RxWrite | _RxBarrier | _RxVerify] = deque()
        self._rx_inflight: dict[int, _RxWrite] = {}
        self._rx_ranges = RangeIndex()  # the byte ranges of _rx_inflight, by token
        self._rx_barrier_busy = False
        # Resync
        self._sync_peer_gens: Generations | None = None
        self._sync_role = ""  # the handshake's "sync-source"/"sync-target" while syncing
        self._todo: deque[tuple[int, int]] = deque()
        self._requested: set[int] = set()
        self._pacer: Pacer | None = None
        self._sync_uuid_time = now
        self._progress: SyncProgress | None = None
        # Resync reads in flight on the source: token -> (offset, length, the link asking,
        # the target's csums digest or None).
        self._reads: dict[int, tuple[int, int, _Link | None, bytes | None]] = {}
        self._stale_reads: set[int] = set()
        self._deferred_reads: list[tuple[int, int, bytes | None]] = []
        # Operator commands waiting for the peer's StartReply: the StartRequest kind.
        self._pending_start = 0
        self._pending_verify_start = 0
        # Online verify, source side: next block to ask for, end, blocks asked for -> whether
        # a write touched them since (then the answer cannot be trusted and they are asked
        # again), blocks compared, blocks found different.
        self._verify_next = 0
        self._verify_stop = 0
        self._verify_out: dict[int, bool] = {}
        self._verify_total = 0
        self._verify_done = 0
        self._verify_oos = 0
        self._verify_retry: deque[int] = deque()  # blocks to ask again (a write raced them)
        self._verify_tries: dict[int, int] = {}
        self._verify_digests: dict[int, bytes] = {}  # the peer's digests awaiting our read
        # Diskless operation (detach, attach, on-io-error): whether the shell holds the disk
        # open (after a detach, until it closed it), the disk state the metadata records at
        # the detach, application reads sent to the peer (id -> handle, offset, length), and
        # blocks a Primary SyncTarget wrote while their resync data was on its way.
        self._local_open = disk_state is not DiskState.DISKLESS
        self._detach_state: DiskState | None = None
        self._next_read_id = 1
        self._peer_reads: dict[int, tuple[int, int, int]] = {}
        self._resync_stale: set[int] = set()
        # Fencing (disk { fencing }): a fence-peer handler is running (its result not in yet);
        # application I/O frozen until it succeeds (resource-and-stonith); a promotion
        # waiting for it, and why the last such promotion failed.
        self._fencing = False
        self._susp_fen = False
        self._promote_pending = False
        self.promote_error = ""
        # before-resync-target/-source: the handler awaited before a resync starts, the
        # connection it was run for, and whether the bitmap exchange is done meanwhile.
        self._resync_gate = ""
        self._gate_link: _Link | None = None
        self._gate_ready = False

    # === public events ===================================================================

    def connection_made(self, now: float) -> list[Effect]:
        """The shell has a stream to the peer. Authenticate (if configured), then Hello."""
        self._clock(now)
        if self._link is not None:
            raise EngineError("a connection is already up")
        if self._stay_standalone:
            # `disconnect` was given: the stream is not used until `connect`.
            self._out.append(CloseConnection("StandAlone after disconnect; use connect"))
            return self._flush_out()
        self._link = _Link(made_at=now, last_ping=now)
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
        self._clock(now)
        if self._link is not None:
            self._link_down(reason, standalone=False)
        return self._flush_out()

    def receive_bytes(self, now: float, *chunks: bytes | memoryview) -> list[Effect]:
        """The peer's bytes, in one or more pieces of its stream: one batch of effects."""
        self._clock(now)
        link = self._link
        if link is None:
            return []
        try:
            messages = [message for data in chunks for message in link.decoder.feed(data)]
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
        self._clock(now)
        if self.role is not Role.PRIMARY:
            # A Secondary's disk belongs to the replication stream; DRBD answers EROFS here.
            self._out.append(Complete(handle, False, "read-only: this node is Secondary"))
            return self._flush_out()
        if offset < 0 or not data or offset + len(data) > self.size:
            self._out.append(Complete(handle, False, "write outside the volume"))
            return self._flush_out()
        if self._holding or self._held:
            # Undecided whether the peer gets it by mirroring or by resync, or I/O frozen
            # until fence-peer succeeds: wait (in order).
            self._held.append(_Held(handle, offset, data, fua))
            return self._flush_out()
        self._do_write(now, handle, offset, data, fua)
        return self._flush_out()

    def app_flush(self, now: float, handle: int) -> list[Effect]:
        self._clock(now)
        if self.role is not Role.PRIMARY:
            self._out.append(Complete(handle, False, "read-only: this node is Secondary"))
            return self._flush_out()
        if self._holding or self._held:
            self._held.append(_Held(handle, flush=True))
            return self._flush_out()
        self._do_flush(handle)
        return self._flush_out()

    def note_app_read(self, now: float, length: int) -> list[Effect]:
        """The shell served an application read from the local disk (reads bypass the
        engine); counted in status' `dr`."""
        self._clock(now)
        self._counters["dr"] += max(length, 0)
        return self._flush_out()

    # --- Diskless operation: reads through the engine, detach, attach --------------------

    def app_read(
        self, now: float, handle: int, offset: int, length: int, *, local_failed: bool = False
    ) -> list[Effect]:
        """An application read the shell does not serve from an UpToDate local disk: this
        disk is Diskless or Inconsistent, or the shell's own read failed (`local_failed`: the
        on-io-error policy applies first, then the read is retried). Served by the local disk
        where its blocks are good, else by the connected UpToDate peer (DataRequest), else it
        fails with an I/O error. The Complete carries the data."""
        self._clock(now)
        if offset < 0 or length <= 0 or offset + length > self.size:
            self._out.append(Complete(handle, False, "read outside the volume"))
            return self._flush_out()
        if length > MAX_PEER_READ:
            self._out.append(Complete(handle, False, f"read over {MAX_PEER_READ} bytes"))
            return self._flush_out()
        if local_failed:
            self._mark_dirty(offset, length)
            self._local_io_error(f"read at {offset}")
        if self._holding or self._held:
            self._held.append(_Held(handle, offset, read=length))
            return self._flush_out()
        self._do_read(handle, offset, length)
        return self._flush_out()

    def detach(self, now: float, *, force: bool = False) -> list[Effect]:
        """`drbdsetup detach [--force]`: let go of the local disk and continue Diskless
        (application I/O then goes to the peer). A Primary needs a connected UpToDate peer
        (DRBD: "Need access to UpToDate data"); `force` detaches it anyway, and its I/O then
        fails. Detaching a Diskless volume does nothing."""
        self._clock(now)
        if self.disk_state is DiskState.DISKLESS:
            return self._flush_out()
        if self.role is Role.PRIMARY and not force and not self._peer_serves:
            raise EngineError(
                "detach refused: this node is Primary and no UpToDate peer is connected "
                "(its application I/O would fail; --force detaches anyway)"
            )
        if (
            not force
            and self._link is not None
            and self.peer_role is Role.PRIMARY
            and self.peer_disk is DiskState.DISKLESS
        ):
            raise EngineError(
                "detach refused: the peer is a Diskless Primary whose I/O goes to this disk "
                "(--force detaches anyway)"
            )
        self._begin_detach("detach" + (" --force" if force else ""), failed=False)
        return self._flush_out()

    @property
    def local_io_busy(self) -> bool:
        """Local I/O this engine asked for is in flight: a detached disk is closed only after."""
        return bool(self._io)

    def disk_closed(self, now: float) -> list[Effect]:
        """The shell closed the detached disk (data flushed, metadata and bitmap written)."""
        self._clock(now)
        self._local_open = False
        self._pump_rx()  # barriers that waited for the close (its flush) are acked now
        return self._flush_out()

    @property
    def metadata_disk_state(self) -> DiskState:
        """The disk state the local metadata records. While a detached disk is let go, the
        state it leaves with: Outdated if a Primary may write without it, Inconsistent after
        an I/O error, else what it was."""
        if self.disk_state is DiskState.DISKLESS and self._detach_state is not None:
            return self._detach_state
        return self.disk_state

    def attach(
        self,
        now: float,
        *,
        disk_state: DiskState,
        generations: Generations,
        bitmap: Bitmap,
        crashed_primary: bool = False,
    ) -> list[Effect]:
        """`drbdsetup attach` on a Diskless volume: adopt the disk the shell opened (its
        metadata's state, identifiers and bitmap). Connected, both sides say Hello again
        and the handshake decides afresh: the peer's bitmap names what this disk missed
        while it was detached, and a resync brings it UpToDate. A Primary attaches only with
        a connected UpToDate peer (only the peer knows what the disk missed); its disk is
        Inconsistent until that resync ends, and reads of blocks still out of sync go to
        the peer."""
        self._clock(now)
        if self.disk_state is not DiskState.DISKLESS or self._local_open:
            raise EngineError("attach refused: a disk is attached (or still being let go)")
        if bitmap.nbits != self.bitmap.nbits:
            raise EngineError(
                f"attach refused: bitmap has {bitmap.nbits} bits, not {self.bitmap.nbits}"
            )
        primary = self.role is Role.PRIMARY
        if primary and not (self._peer_serves and self.cstate is ConnState.CONNECTED):
            raise EngineError(
                "attach refused: this Diskless Primary has no connected UpToDate peer "
                "(only the peer knows which blocks the disk missed)"
            )
        if disk_state is DiskState.DISKLESS:
            raise EngineError("attach refused: the disk state to attach with is Diskless")
        self.generations = generations
        self.bitmap = bitmap
        self.crashed_primary = crashed_primary
        self.disk_state = DiskState.INCONSISTENT if primary else disk_state
        self._local_open = True
        self._detach_state = None
        self._log(f"attached: {self.disk_state.literal}, {self.bitmap.count()} blocks out of sync")
        link = self._link
        if link is not None:
            if self.cstate is ConnState.CONNECTED and link.peer_hello is not None:
                self._reset_handshake(link)
                self._send_hello(renegotiate=True)
            else:
                self._fail("disk attached during the connect handshake: connecting again")
        return self._flush_out()

    def io_done(self, now: float, token: int, ok: bool = True, data: bytes = b"") -> list[Effect]:
        """A local I/O this engine asked for finished; `data` for reads. A failure applies
        the on-io-error policy (`_local_io_error`) before the request's own handling."""
        self._clock(now)
        io = self._io.pop(token, None)
        if io is None:
            raise EngineError(f"no local I/O with token {token}")
        if not ok and io.kind != "rxflush":
            where = io.request.offset if io.request is not None else io.offset
            what = "flush" if io.kind == "flush" else f"{io.kind} at {where}"
            self._local_io_error(what)
        if io.kind == "app":
            assert io.request is not None
            if ok:
                self._counters["dw"] += io.request.length
            self._app_write_done(io.request, ok)
        elif io.kind == "flush":
            assert io.flush is not None
            io.flush.local_done = True
            if not ok and not io.flush.need_epoch:
                # (with a barrier to wait for, the peer's stable copy answers for it)
                self._flushes.remove(io.flush)
                self._out.append(Complete(io.flush.handle, False, "local flush failed"))
            self._check_flushes()
        elif io.kind == "rx":
            assert io.rx is not None
            if ok:
                self._counters["dw"] += len(io.rx.data)
            self._rx_write_done(now, token, io.rx, ok)
        elif io.kind == "rxflush":
            self._rx_barrier_busy = False
            if not ok:
                # The epoch's writes may not be stable here: no ack; the peer's bitmap takes
                # them when the connection goes.
                self._local_io_error("flush of the peer's writes")
                if io.link is self._link and self._link is not None:
                    self._fail("local flush of the peer's writes failed")
            elif io.link is self._link:
                self._send(wire.BarrierAck(io.epoch, io.length))
            self._pump_rx()
        elif io.kind == "appread":
            self._count_read(ok, data)
            if ok and len(data) == io.length:
                self._out.append(Complete(io.handle, True, data=data))
            elif not ok:
                self._mark_dirty(io.offset, io.length)
                self._do_read(io.handle, io.offset, io.length)  # from the peer, if it can
            else:
                self._out.append(Complete(io.handle, False, "short read from the local disk"))
        elif io.kind == "dread":
            self._count_read(ok, data)
            if io.link is self._link:
                good = ok and len(data) == io.length
                self._send(wire.DataReply(io.ident, io.offset, good, data if good else b""))
        elif io.kind == "rsread":
            self._count_read(ok, data)
            self._resync_read_done(token, io.offset, io.length, ok, data)
        elif io.kind == "csread":
            self._count_read(ok, data)
            self._csum_read_done(now, io, ok, data)
        elif io.kind == "vread":
            self._count_read(ok, data)
            self._verify_read_done(io, ok, data)
        elif io.kind == "vlocal":
            self._count_read(ok, data)
            self._verify_compare_done(now, io, ok, data)
        return self._flush_out()

    def tick(self, now: float) -> list[Effect]:
        self._clock(now)
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
            if self._handshaking and now - link.made_at > self.net.timeout / 10:
                # Application requests are held until the handshake decides: do not let a
                # peer that never answers hold them for long.
                self._fail(f"handshake not done within timeout ({self.net.timeout / 10:g} s)")
                return self._flush_out()
            if self._ko_expired(now):
                return self._flush_out()
        # An epoch left open forever would keep its writes in the transfer log.
        if self._linked_up and self._epoch_writes:
            self._close_epoch()
        if self.cstate is ConnState.SYNC_TARGET:
            self._request_resync(now)
        elif self.cstate is ConnState.VERIFY_S:
            self._request_verify(now)
        self._mark_progress()
        return self._flush_out()

    def force_up_to_date(self, now: float) -> list[Effect]:
        """`primary --force`: the operator vouches for this disk (the first promotion after
        create-md, or the last copy left). It becomes UpToDate, with a data generation of its
        own if it had none, so that the peer's handshake sees a source, not two new disks."""
        self._clock(now)
        if self.disk_state is DiskState.DISKLESS:
            raise EngineError("no disk to force UpToDate")
        self.disk_state = DiskState.UP_TO_DATE
        if self.generations.just_created:
            self.generations = new_current(
                self.generations, self.rng, primary=self.role is Role.PRIMARY
            )
        self._send_state()
        return self._flush_out()

    def promote(self, now: float, *, force: bool = False) -> list[Effect]:
        """Become Primary. With `fencing` set and the peer's disk DUnknown (disconnected, not
        known Outdated), the fence-peer handler runs first and the node becomes Primary only
        when it succeeds (DRBD 8.4's drbd_set_role and conn_try_outdate_peer): the effects
        then include RunHandler("fence-peer") and `promote_pending` is true until
        `handler_done` brings the result; `promote_error` says why a promotion that waited
        failed. `force` (primary --force) does not wait for the peer to be fenced."""
        self._clock(now)
        if self._promote_pending:
            return self._flush_out()  # already waiting for fence-peer
        self.promote_error = ""
        fence = not force and self.role is not Role.PRIMARY and self._needs_fence
        self._promote_checks(consistent_ok=fence)
        if force and self.role is not Role.PRIMARY and self._needs_fence:
            # DRBD 8.4 ends a forced promotion with the peer's disk Outdated ("forced into
            # split brain situation"): nothing freezes I/O or asks fence-peer afterwards.
            self.peer_disk = DiskState.OUTDATED
            self._log("forced Primary: the peer's disk is taken as Outdated", "warning")
        if fence:
            if not self.handlers.fence_peer:
                raise EngineError(
                    f"the peer's disk is DUnknown and fencing is {self.disk.fencing}, but no "
                    "fence-peer handler is configured to outdate it (primary --force skips this)"
                )
            self._promote_pending = True
            self._log("promotion waits for fence-peer: the peer's disk is DUnknown")
            self._start_fence("promotion while the peer's disk is DUnknown")
            return self._flush_out()
        self._become_primary()
        return self._flush_out()

    @property
    def promote_pending(self) -> bool:
        """A promotion waits for the fence-peer handler's result."""
        return self._promote_pending

    @property
    def _needs_fence(self) -> bool:
        """Promotion must outdate the peer first: fencing is on, and the peer (not connected)
        is not known to be Outdated or Inconsistent."""
        return (
            self.disk.fencing != "dont-care"
            and self._link is None
            and self.peer_disk is DiskState.UNKNOWN
        )

    def _promote_checks(self, *, consistent_ok: bool = False) -> None:
        if self.peer_role is Role.PRIMARY and not self.net.allow_two_primaries:
            raise EngineError("the peer is Primary and allow-two-primaries is off")
        usable = (DiskState.UP_TO_DATE, DiskState.CONSISTENT) if consistent_ok else ()
        if self.disk_state is DiskState.DISKLESS:
            # DRBD: a Diskless node may be Primary only with access to UpToDate data.
            if not self._peer_serves:
                raise EngineError("disk is Diskless and no UpToDate peer is connected")
        elif self.disk_state is not DiskState.UP_TO_DATE and self.disk_state not in usable:
            raise EngineError(f"disk is {self.disk_state.literal}, not UpToDate")
        if self._handshaking and self.role is not Role.PRIMARY:
            # The Hello already told the peer "Secondary": becoming Primary now could make
            # this side the target of a resync it announced it could take. DRBD's answer:
            raise EngineError("in transient state (connect handshake), retry when it is done")

    def _become_primary(self) -> None:
        self.role = Role.PRIMARY
        if self.disk_state is DiskState.DISKLESS:
            pass  # no data of its own: the peer's disk holds every write
        elif not self._mirroring:
            # Writes from now on diverge from the peer: a new data generation.
            self.generations = on_primary_without_peer(self.generations, self.rng)
        self._send_state()
        self._note_peer_diskless()

    def demote(self, now: float) -> list[Effect]:
        self._clock(now)
        if self._requests or self._flushes or self._held or self._peer_reads:
            raise EngineError("application requests are still in flight")
        self._promote_pending = False  # a promotion waiting for fence-peer is called off
        self.role = Role.SECONDARY
        self._send_state()
        return self._flush_out()

    # --- fencing and handlers ------------------------------------------------------------

    def handler_done(self, now: float, name: str, exit_code: int | None) -> list[Effect]:
        """A handler this engine asked for (RunHandler) finished with `exit_code`; None: it
        could not be started, or was killed at its timeout (a failure). The engine acts on
        fence-peer, before-resync-target and before-resync-source; other names, and results
        nobody waits for any more (the connection they were for is gone), are ignored."""
        self._clock(now)
        if name == "fence-peer":
            self._fence_done(exit_code)
        elif name in ("before-resync-target", "before-resync-source"):
            self._gate_done(name, exit_code)
        return self._flush_out()

    def resume_io(self, now: float) -> list[Effect]:
        """`drbdadm resume-io`: the operator resumes application I/O frozen by fencing
        resource-and-stonith (having made sure by hand that the peer cannot be promoted).
        Nothing to do when I/O is not suspended."""
        self._clock(now)
        if self._susp_fen:
            self._resume("resume-io by the operator")
        return self._flush_out()

    @property
    def suspended(self) -> list[str]:
        """Why application I/O is suspended (DRBD's reasons): ["fencing"] or []."""
        return ["fencing"] if self._susp_fen else []

    def _start_fence(self, why: str) -> None:
        if self._fencing:
            return  # one run at a time; its result serves every reason
        if not self.handlers.fence_peer:
            self._log(
                f"fencing {self.disk.fencing}: {why}, but no fence-peer handler is configured:"
                " the peer cannot be outdated",
                "error",
            )
            self._fence_outcome(False, "no fence-peer handler configured")
            return
        self._fencing = True
        self._log(f"running fence-peer: {why}")
        self._out.append(RunHandler("fence-peer"))

    def _fence_done(self, code: int | None) -> None:
        if not self._fencing:
            return  # not asked for by this engine (another volume's run), or stale
        self._fencing = False
        shown = (
            "did not finish (not started, or killed at its timeout)"
            if code is None
            else f"exited {code}"
        )
        if self._link is not None:
            # DRBD applies the result only while still disconnected.
            self._log(f"fence-peer {shown}; the peer connected again meanwhile: not applied")
            if self._promote_pending:
                self._try_pending_promote()
            return
        what = ""
        if code == FENCE_PEER_INCONSISTENT:
            what = "the peer's disk is Inconsistent or worse"
            self.peer_disk = DiskState.INCONSISTENT
        elif code == FENCE_PEER_OUTDATED:
            what = "the peer was fenced (Outdated)"
            self.peer_disk = DiskState.OUTDATED
        elif code == FENCE_PEER_UNREACHABLE:
            if self.disk_state is DiskState.UP_TO_DATE:
                what = "the peer is unreachable, assumed to be dead"
                self.peer_disk = DiskState.OUTDATED
            else:
                what = (
                    f"the peer is unreachable; nothing done, this disk is "
                    f"{self.disk_state.literal}, not UpToDate"
                )
        elif code == FENCE_PEER_PRIMARY:
            what = "the peer is Primary"
            if self.role is Role.SECONDARY and self.disk_state in (
                DiskState.UP_TO_DATE,
                DiskState.CONSISTENT,
            ):
                self.disk_state = DiskState.OUTDATED
                self._log("the peer is Primary: outdating this disk", "warning")
            else:
                self._log("the peer is Primary and so is this node: refusing", "error")
        elif code == FENCE_PEER_STONITHED:
            if self.disk.fencing != "resource-and-stonith":
                self._log(
                    "fence-peer returned 7 (STONITH) but fencing is not resource-and-stonith",
                    "error",
                )
            what = "the peer was STONITHed"
            self.peer_disk = DiskState.OUTDATED
        else:
            self._log(f"fence-peer handler broken: {shown}", "error")
            self._fence_outcome(False, f"the fence-peer handler {shown}")
            return
        self._log(f"fence-peer {shown}: {what}")
        ok = self.peer_disk in (DiskState.OUTDATED, DiskState.INCONSISTENT)
        self._fence_outcome(ok, f"fence-peer {shown} ({what})")

    def _fence_outcome(self, ok: bool, why: str) -> None:
        if ok:
            if self._susp_fen:
                self._resume("the peer is fenced")
            if self._promote_pending:
                if self.disk_state is DiskState.CONSISTENT:
                    self.disk_state = DiskState.UP_TO_DATE
                    self._log("the peer is outdated: this Consistent disk is UpToDate")
                self._try_pending_promote()
            return
        if self._susp_fen:
            self._log(
                "I/O stays suspended until fence-peer succeeds or `resume-io` (fencing "
                "resource-and-stonith)",
                "error",
            )
        if self._promote_pending:
            self._promote_pending = False
            self.promote_error = f"{why}: the peer is not known to be outdated"
            self._log(f"promotion refused: {self.promote_error}", "error")

    def _try_pending_promote(self) -> None:
        self._promote_pending = False
        try:
            self._promote_checks()
        except EngineError as err:
            self.promote_error = str(err)
            self._log(f"promotion refused: {err}", "error")
            return
        self._become_primary()
        self._log("Primary (the peer is fenced)")

    def _resume(self, why: str) -> None:
        """Thaw I/O frozen by fencing: the requests held since the connection went complete
        (their blocks are in the bitmap), and new ones are issued (by _flush_out)."""
        self._susp_fen = False
        self._log(f"I/O resumed: {why}")
        for req in list(self._requests.values()):
            self._maybe_complete(req)
        self._check_flushes()

    def _open_resync_gate(self, role: str) -> None:
        """A resync with this side as `role` was decided: run before-resync-target/-source
        (when configured) and start the resync only when it exits 0 (DRBD 8.4)."""
        name = "before-resync-target" if role == "sync-target" else "before-resync-source"
        if not getattr(self.handlers, name.replace("-", "_")):
            return
        self._resync_gate = name
        self._gate_link = self._link
        self._gate_ready = False
        self._out.append(RunHandler(name))

    def _gate_done(self, name: str, code: int | None) -> None:
        if self._resync_gate != name or self._link is None or self._gate_link is not self._link:
            return  # not waited for, or for a connection that is gone
        ready = self._gate_ready
        self._resync_gate, self._gate_link, self._gate_ready = "", None, False
        shown = "did not finish" if code is None else f"exited {code}"
        if name == "before-resync-source" and code == 3:
            # DRBD 8.4 ignores 3 from this handler (userland tools older than the handler).
            self._log(f"{name} handler exited 3: ignored")
        elif code != 0:
            self._log(f"{name} handler {shown}: dropping the connection", "error")
            self._link_down(f"{name} handler {shown}", standalone=True)
            return
        if ready:
            if name == "before-resync-target":
                self._start_target()
            else:
                self._start_source()
        self._pump_rx()

    # --- operator commands (drbdsetup's) -------------------------------------------------

    def invalidate(self, now: float) -> list[Effect]:
        """`drbdsetup invalidate`: this side's data is thrown away and copied from the peer.
        Connected: a full resync as SyncTarget (after the peer agrees). Not connected: the
        disk becomes Inconsistent with every block out of sync, so the next connection makes
        this side the target of a full sync."""
        self._clock(now)
        if self.role is Role.PRIMARY:
            # hastack serves reads from the local disk: a Primary must stay UpToDate.
            raise EngineError("invalidate refused: this node is Primary (demote it first)")
        if self.disk_state is DiskState.DISKLESS:
            raise EngineError("invalidate refused: Diskless (attach a disk first)")
        if self._link is None:
            self._invalidate_local()
            self._log("invalidated: Inconsistent, full sync when connected")
            return self._flush_out()
        self._require_connected("invalidate")
        if self.peer_disk is not DiskState.UP_TO_DATE:
            raise EngineError(
                f"invalidate refused: the peer's disk is {self.peer_disk.literal}, "
                "it cannot be the sync source"
            )
        self._start_request(wire.START_TARGET)
        return self._flush_out()

    def invalidate_remote(self, now: float) -> list[Effect]:
        """`drbdsetup invalidate-remote`: the peer's data is thrown away and copied from here
        (a full resync with this side as SyncSource). Needs a connected peer."""
        self._clock(now)
        if self._link is None:
            raise EngineError(f"invalidate-remote needs a connected peer (now {self.cstate.value})")
        self._require_connected("invalidate-remote")
        if self.disk_state is not DiskState.UP_TO_DATE:
            raise EngineError(
                f"invalidate-remote refused: this disk is {self.disk_state.literal}, "
                "it cannot be the sync source"
            )
        if self.peer_role is Role.PRIMARY:
            raise EngineError("invalidate-remote refused: the peer is Primary")
        self._start_request(wire.START_SOURCE)
        return self._flush_out()

    def outdate(self, now: float) -> list[Effect]:
        """`drbdsetup outdate`: mark this side's (consistent) data as older than the peer's,
        so that it cannot be promoted. Not on a Primary, nor while connected to one."""
        self._clock(now)
        if self.role is Role.PRIMARY:
            raise EngineError("outdate refused: this node is Primary (demote it first)")
        if self._link is not None and self.peer_role is Role.PRIMARY:
            raise EngineError("outdate refused: connected to a Primary peer")
        if self.cstate in _BUSY or self.cstate is ConnState.WF_BITMAP:
            raise EngineError(f"outdate refused: {self.cstate.value} is running")
        if self.disk_state is DiskState.OUTDATED:
            return self._flush_out()
        if self.disk_state not in (DiskState.UP_TO_DATE, DiskState.CONSISTENT):
            raise EngineError(
                f"outdate refused: disk is {self.disk_state.literal}, lower than Outdated"
            )
        self.disk_state = DiskState.OUTDATED
        self._log("disk outdated")
        self._send_state()
        return self._flush_out()

    def new_current_uuid(self, now: float, clear_bitmap: bool = False) -> list[Effect]:
        """`drbdsetup new-current-uuid [--clear-bitmap]`. Plain: start a new data generation
        (only without a connection: the peer must share every generation it mirrors).
        --clear-bitmap: on just-created metadata of two connected nodes, declare both disks
        identical and skip the initial full sync; both become UpToDate."""
        self._clock(now)
        if not clear_bitmap:
            if self._link is not None:
                raise EngineError(
                    "new-current-uuid refused while connected (disconnect first), "
                    "or use --clear-bitmap on just-created metadata"
                )
            primary = self.role is Role.PRIMARY
            if self.generations.bitmap:
                # The bitmap already tracks changes since the last common generation: keep
                # that identifier (it is what the peer knows); only the current one is new.
                fresh = new_current(self.generations, self.rng, primary=primary).current
                self.generations = replace(self.generations, current=fresh)
            else:
                self.generations = new_current(self.generations, self.rng, primary=primary)
            self._log(f"new current UUID: {self.generations}")
            return self._flush_out()
        link = self._link
        if link is None or self.cstate is not ConnState.CONNECTED:
            raise EngineError(
                f"new-current-uuid --clear-bitmap needs a connected peer (now {self.cstate.value})"
            )
        assert link.peer_hello is not None
        if self._pending_start:
            raise EngineError("new-current-uuid refused: another command is in progress")
        peer = Generations(link.peer_hello.current, link.peer_hello.bitmap)
        if not self.generations.just_created or not peer.just_created:
            raise EngineError(
                "new-current-uuid --clear-bitmap works only on just-created metadata on both "
                f"nodes (this: {self.generations}, peer: {peer})"
            )
        gens, uuid = skip_initial_sync(self.generations, self.rng)
        self.generations = replace(gens, current=with_role(uuid, self.role is Role.PRIMARY))
        self._send(wire.NewUuid(uuid))
        self._skip_sync_done()
        return self._flush_out()

    def disconnect(self, now: float) -> list[Effect]:
        """`drbdsetup disconnect`: drop the connection and stay StandAlone until `connect`.
        The peer sees the connection go and keeps trying (it is not told to stand alone)."""
        self._clock(now)
        self._stay_standalone = True
        if self._link is not None:
            self._link_down("disconnected by the operator", standalone=True)
        else:
            self.cstate = ConnState.STANDALONE
        return self._flush_out()

    def connect(self, now: float, *, discard_my_data: bool | None = None) -> list[Effect]:
        """`drbdsetup connect [--discard-my-data]`: leave StandAlone and accept connections."""
        self._clock(now)
        if self._link is not None or self.cstate is not ConnState.STANDALONE:
            raise EngineError(f"connect refused: already {self.cstate.value}")
        if discard_my_data is not None:
            self.discard_my_data = discard_my_data
        self._stay_standalone = False
        self.cstate = ConnState.CONNECTING
        return self._flush_out()

    @property
    def wants_connection(self) -> bool:
        """Whether the shell should be connecting to the peer."""
        return self._link is None and not self._stay_standalone

    def start_verify(self, now: float, start_block: int = 0) -> list[Effect]:
        """`drbdsetup verify [--start]`: compare every block from `start_block` on with the
        peer's by digest (verify-alg); differing blocks go out of sync on both sides."""
        self._clock(now)
        alg = self.net.verify_alg
        if not alg:
            raise EngineError("verify refused: verify-alg is not configured (net section)")
        if self._link is None:
            raise EngineError(f"verify needs a connected peer (now {self.cstate.value})")
        self._require_connected("verify")
        if (
            self.disk_state is not DiskState.UP_TO_DATE
            or self.peer_disk is not DiskState.UP_TO_DATE
        ):
            raise EngineError(
                f"verify refused: disks are {self.disk_state.literal}/{self.peer_disk.literal},"
                " both must be UpToDate"
            )
        if not 0 <= start_block < self.bitmap.nbits:
            raise EngineError(f"verify start block {start_block} is outside the volume")
        self._start_request(wire.START_VERIFY, start_block=start_block, alg=alg)
        return self._flush_out()

    @property
    def status(self) -> dict[str, object]:
        """DRBD's view: roles, disk states and connection state spelt as drbdadm shows them,
        `oos` in KiB, `sync` (progress while SyncSource/SyncTarget/VerifyS/VerifyT, else None)
        and `stats` (/proc/drbd's counters)."""
        return {
            "role": self.role.name.capitalize(),
            "peer_role": self.peer_role.name.capitalize()
            if self.peer_role is not None
            else "Unknown",
            "disk": self.disk_state.literal,
            "peer_disk": self.peer_disk.literal,
            "cstate": self.cstate.value,
            "oos": self.bitmap.out_of_sync_kib(),
            "sync": self._sync_status(),
            "suspended": self.suspended,
            "stats": {
                "ns": self._counters["ns"] // 1024,
                "nr": self._counters["nr"] // 1024,
                "dw": self._counters["dw"] // 1024,
                "dr": self._counters["dr"] // 1024,
                "al": 0,  # activity-log updates: the shell keeps the activity log
                "bm": 0,  # bitmap writes: likewise the shell's
                "lo": len(self._io),
                "pe": self._pending_on_peer(),
                "ua": self._unacked_for_peer(),
                "ap": len(self._requests)
                + len(self._flushes)
                + len(self._held)
                + len(self._peer_reads),
                "ep": len({r.epoch for r in self._tl.values()} | {self._epoch}),
            },
        }

    @property
    def transfer_log(self) -> list[tuple[int, int]]:
        """(offset, length) of every write not yet covered by a barrier ack."""
        return [(r.offset, r.length) for r in self._tl.values()]

    # --- status helpers ------------------------------------------------------------------

    def _progress_left(self) -> int:
        if self.cstate in (ConnState.SYNC_SOURCE, ConnState.SYNC_TARGET):
            return self.bitmap.count()
        if self.cstate is ConnState.VERIFY_S:
            return self._verify_total - self._verify_done
        if self.cstate is ConnState.VERIFY_T:
            return max(self._verify_total - self._verify_done, 0)
        return 0

    def _sync_status(self) -> dict[str, object] | None:
        if self._progress is None or self.cstate not in _BUSY:
            return None
        return self._progress.snapshot(self._now, self._progress_left())

    def _mark_progress(self) -> None:
        if self._progress is not None and self.cstate in _BUSY:
            self._progress.update(self._now, self._progress_left())

    def _pending_on_peer(self) -> int:
        """/proc/drbd's pe: requests sent to the peer and not answered yet."""
        writes = sum(1 for r in self._requests.values() if r.mirrored and not r.peer_done)
        return writes + len(self._requested) + len(self._verify_out) + len(self._peer_reads)

    def _unacked_for_peer(self) -> int:
        """/proc/drbd's ua: the peer's requests received here and not answered yet."""
        link = self._link
        queued = sum(1 for item in self._rx_queue if item.link is link)
        inflight = sum(1 for item in self._rx_inflight.values() if item.link is link)
        reads = sum(1 for r in self._reads.values() if r[2] is link)
        return queued + inflight + reads + len(self._deferred_reads)

    def _count_read(self, ok: bool, data: bytes) -> None:
        if ok:
            self._counters["dr"] += len(data)

    # === plumbing ========================================================================

    def _clock(self, now: float) -> None:
        self._now = max(self._now, now)

    @property
    def _handshaking(self) -> bool:
        """Connected but the handshake has not decided yet: application requests wait."""
        return self._link is not None and self.cstate is ConnState.CONNECTING

    @property
    def _holding(self) -> bool:
        """New application requests wait: the handshake is undecided, or I/O is suspended."""
        return self._handshaking or self._susp_fen

    def _release_held(self) -> None:
        while self._held and not self._holding:
            held = self._held.popleft()
            if held.flush:
                self._do_flush(held.handle)
            elif held.read:
                self._do_read(held.handle, held.offset, held.read)
            else:
                self._do_write(self._now, held.handle, held.offset, held.data, held.fua)

    def _do_write(self, now: float, handle: int, offset: int, data: bytes, fua: bool) -> None:
        mirrored = self._mirroring
        local = self.disk_state is not DiskState.DISKLESS
        if self.disk_state is not DiskState.UP_TO_DATE and not self._peer_serves:
            # No UpToDate data reachable (Diskless, or an Inconsistent disk alone: a write
            # kept there only would be overwritten by the resync that repairs the disk).
            self._out.append(Complete(handle, False, self._no_data_error()))
            return
        if mirrored and self._epoch_completed and self._epoch_writes:
            self._close_epoch()
        seq = self._next_seq
        self._next_seq += 1
        req = _Request(handle, seq, self._epoch, offset, len(data), mirrored, sent_at=now)
        self._requests[seq] = req
        self._mark_reads_stale(offset, len(data))
        self._verify_touch(offset, len(data))
        if self.cstate is ConnState.SYNC_TARGET and self._requested:
            # A Primary SyncTarget: resync data already asked for may predate this write.
            self._resync_stale.update(b for b in _blocks(offset, len(data)) if b in self._requested)
        if local:
            token = self._token(_Io("app", request=req))
            self._out.append(WriteLocal(token, offset, data, fua, handle=req.handle))
        else:
            # Diskless: the peer's copy is the only one; its ack alone completes the write.
            req.local_done, req.local_ok = True, False
        if mirrored:
            self._tl[seq] = req
            self._epoch_writes += 1
            digest = self._digest(data)
            flags = wire.DATA_FUA if fua else 0
            self._send(wire.Data(offset, seq, self._epoch, flags, data, digest))
            self._counters["ns"] += len(data)
            if self.net.protocol == "A":
                req.peer_done = req.peer_ok = True  # handed to the send path
        else:
            self._mark_dirty(offset, len(data))
        if not local:
            self._maybe_complete(req)  # protocol A: done once sent

    def _do_flush(self, handle: int) -> None:
        local = self.disk_state is not DiskState.DISKLESS
        if self.disk_state is not DiskState.UP_TO_DATE and not self._peer_serves:
            self._out.append(Complete(handle, False, self._no_data_error()))
            return
        need = 0
        if self._linked_up and (self.net.protocol == "C" or not local):
            # Diskless, the peer's flush (its barrier ack) is the only one, whatever protocol.
            self._close_epoch()
            need = self._last_barrier
        flush = _Flush(handle, need, local=local)
        self._flushes.append(flush)
        if local:
            self._out.append(FlushLocal(self._token(_Io("flush", flush=flush))))
        else:
            flush.local_done = True
            self._check_flushes()

    def _ko_expired(self, now: float) -> bool:
        """ko-count: the peer left a write unanswered for timeout x ko-count: drop it."""
        ko = self.net.ko_count
        if not ko or not self._tl:
            return False
        limit = self.net.timeout / 10 * ko
        oldest = min(self._tl.values(), key=lambda r: r.sent_at)
        if now - oldest.sent_at <= limit:
            return False
        why = (
            f"peer did not complete write {oldest.seq} within ko-count x timeout "
            f"({ko} x {self.net.timeout / 10:g} s)"
        )
        self._log(why, "error")
        self._fail(why)
        return True

    @property
    def _linked_up(self) -> bool:
        """The handshake is done and the peer takes application writes (or acks barriers)."""
        return self._link is not None and (
            self.cstate.replicating or self.cstate is ConnState.WF_BITMAP
        )

    @property
    def _mirroring(self) -> bool:
        """Application writes go to the peer: linked up, and the peer has a disk."""
        return self._linked_up and self.peer_disk is not DiskState.DISKLESS

    @property
    def _peer_serves(self) -> bool:
        """The connected peer's UpToDate disk can serve this node's application I/O."""
        return self._mirroring and self.peer_disk is DiskState.UP_TO_DATE

    def _no_data_error(self) -> str:
        return (
            f"I/O error: disk is {self.disk_state.literal} and no UpToDate peer is connected "
            f"({self.cstate.value}, peer disk {self.peer_disk.literal})"
        )

    def _do_read(self, handle: int, offset: int, length: int) -> None:
        if self._local_readable(offset, length):
            io = _Io("appread", offset=offset, length=length, handle=handle)
            self._out.append(ReadLocal(self._token(io), offset, length))
        elif self._peer_serves:
            ident = self._next_read_id
            self._next_read_id += 1
            self._peer_reads[ident] = (handle, offset, length)
            self._send(wire.DataRequest(ident, offset, length))
        else:
            self._out.append(Complete(handle, False, self._no_data_error()))

    def _local_readable(self, offset: int, length: int) -> bool:
        """The local disk holds good data for the range: UpToDate, or Inconsistent with none
        of its blocks out of sync (DRBD's drbd_may_do_local_read)."""
        if self.disk_state is DiskState.UP_TO_DATE:
            return True
        if self.disk_state is not DiskState.INCONSISTENT:
            return False
        return not any(self.bitmap.test(b) for b in _blocks(offset, length))

    def _local_io_error(self, what: str, *, meta: bool = False) -> None:
        """A local I/O failed: on-io-error, as DRBD 8.4's drbd_chk_io_error. pass_on: the disk
        goes Inconsistent (the failed blocks are in the bitmap) and the request is retried
        through the peer where it can be; call-local-io-error: the local-io-error handler
        runs and the disk is detached; detach: the disk is detached and the volume goes on
        Diskless. A meta-data error detaches under every policy."""
        if self.disk_state is DiskState.DISKLESS:
            return  # an I/O of a disk already let go of
        policy = self.disk.on_io_error
        self._log(f"local I/O error: {what} (on-io-error {policy})", "error")
        if policy == "pass_on" and not meta:
            if self.disk_state is not DiskState.INCONSISTENT:
                self.disk_state = DiskState.INCONSISTENT
                self._log("disk is Inconsistent after a local I/O error", "warning")
                self._send_state()
            return
        if policy == "call-local-io-error":
            self._out.append(RunHandler("local-io-error"))
        self._begin_detach(f"local I/O error: {what}", failed=True)

    def local_io_error(self, now: float, what: str, *, meta: bool = False) -> list[Effect]:
        """The shell's own local I/O (an activity-log or meta-data write) failed."""
        self._clock(now)
        self._local_io_error(what, meta=meta)
        return self._flush_out()

    def _begin_detach(self, reason: str, *, failed: bool) -> None:
        if self.disk_state is DiskState.DISKLESS:
            return
        if failed:
            record = DiskState.INCONSISTENT
        elif self.disk_state is DiskState.UP_TO_DATE and Role.PRIMARY in (
            self.role,
            self.peer_role,
        ):
            record = DiskState.OUTDATED  # a Primary goes on writing without this disk
        else:
            record = self.disk_state
        self._detach_state = record
        # Writes the peer has not confirmed stable: the disk's bitmap (written before it is
        # closed) names them, so that the attach takes them from the peer again.
        for req in self._tl.values():
            self._mark_dirty(req.offset, req.length)
        self.disk_state = DiskState.DISKLESS
        # Requests not completed yet: the detached disk's copy is out of service, only the
        # peer's can make them succeed (a write acknowledged now must be on a disk in use).
        for req in self._requests.values():
            req.voided = True
        if self._flushes:
            if self._linked_up:
                self._close_epoch()
            for flush in list(self._flushes):
                flush.local = False
                if self._linked_up:
                    flush.need_epoch = max(flush.need_epoch, self._last_barrier)
                else:
                    self._flushes.remove(flush)
                    self._out.append(Complete(flush.handle, False, self._no_data_error()))
        self._log(f"detaching ({reason}): Diskless, the disk records {record.literal}", "warning")
        self._out.append(DetachLocal(reason, clean=not failed))
        if self._link is not None and (
            self._handshaking or self.cstate in _BUSY or self.cstate is ConnState.WF_BITMAP
        ):
            self._fail(f"{reason} during {self.cstate.value}: connecting again Diskless")
        else:
            self._send_state()
        self._pump_rx()  # the peer's queued writes are refused now (NegAck)

    def _note_peer_diskless(self) -> None:
        """DRBD's "lost contact to the peer's copy of the data": the peer has no disk and a
        Primary may write, so this UpToDate disk starts a new data generation (the old one
        becomes the bitmap's). The peer's disk, attached again, is then the sync target of
        exactly the blocks written meanwhile, all of which go to this bitmap."""
        if (
            self._link is not None
            and self.peer_disk is DiskState.DISKLESS
            and self.disk_state is DiskState.UP_TO_DATE
            and Role.PRIMARY in (self.role, self.peer_role)
            and not self.generations.bitmap
        ):
            self.generations = new_current(
                self.generations, self.rng, primary=self.role is Role.PRIMARY
            )
            self._log(f"the peer is Diskless: new current UUID {self.generations}")

    def _reset_handshake(self, link: _Link) -> None:
        """Say Hello again on a live link (a disk was attached): the handshake decides anew;
        application requests wait meanwhile, as on a new connection."""
        link.hello_sent = None
        link.peer_hello = None
        link.peer_bitmap_runs = []
        link.peer_bitmap_done = False
        link.sync_uuid_received = False
        link.renegotiating = True
        link.made_at = self._now
        self.cstate = ConnState.CONNECTING

    def _receive_data_request(self, msg: wire.DataRequest) -> None:
        if msg.length <= 0 or msg.length > MAX_PEER_READ or msg.offset + msg.length > self.size:
            self._fail(f"bad data request [{msg.offset}, +{msg.length})")
            return
        self._rx_queue.append(_RxRead(msg.offset, msg.length, self._link, ident=msg.id))
        self._pump_rx()

    def _receive_data_reply(self, msg: wire.DataReply) -> None:
        entry = self._peer_reads.pop(msg.id, None)
        if entry is None:
            self._fail(f"data reply {msg.id} answers no request")
            return
        handle, offset, length = entry
        if msg.ok and msg.offset == offset and len(msg.payload) == length:
            self._counters["nr"] += length
            self._out.append(Complete(handle, True, data=msg.payload))
        else:
            self._out.append(Complete(handle, False, "I/O error: the peer could not read it"))

    def _rx_write_pending(self, offset: int, length: int) -> bool:
        """A write of the peer's to the range is queued or in flight here."""
        return any(
            isinstance(item, _RxWrite) and _overlap(offset, length, item.offset, len(item.data))
            for item in (*self._rx_queue, *self._rx_inflight.values())
        )

    def _issue_rx_read(self, item: _RxRead) -> None:
        if item.link is not self._link:
            return
        if item.ident is None:  # a resync read that waited for the peer's write
            if self.cstate is ConnState.SYNC_SOURCE:
                self._issue_read(item.offset, item.length, item.digest)
            return
        if self.disk_state is not DiskState.UP_TO_DATE:
            self._send(wire.DataReply(item.ident, item.offset, False))
            return
        io = _Io("dread", offset=item.offset, length=item.length, link=item.link, ident=item.ident)
        self._out.append(ReadLocal(self._token(io), item.offset, item.length))

    def _drop_rx_write(self, item: _RxWrite) -> None:
        """A peer's write not to be written here: Diskless (NegAck: the peer marks it), or
        resync data that predates an application write since (asked for again)."""
        if item.link is not self._link:
            return
        if item.resync:
            self._resync_discard(item.offset, len(item.data))
        elif item.seq is not None:
            self._send(wire.NegAck(item.seq))

    def _resync_discard(self, offset: int, length: int) -> None:
        block = offset // BLOCK_SIZE
        self._requested.discard(block)
        self._resync_stale.discard(block)
        if self.cstate is ConnState.SYNC_TARGET:
            self._todo.appendleft((block, block + 1))  # its bit is still set: asked again
        self._send(wire.ResyncAck(offset, length, False))

    def _flush_out(self) -> list[Effect]:
        # Every event ends here: requests held for the handshake go as soon as it decided
        # (whichever way: mirrored, or local-only and in the bitmap).
        if self._held and not self._holding:
            self._release_held()
        out, self._out = self._out, []
        return out

    def _token(self, io: _Io) -> int:
        token = self._next_token
        self._next_token += 1
        self._io[token] = io
        return token

    def _send(self, message: wire.Message) -> None:
        if self._link is not None:
            self._out.append(Send(message, tuple(self._link.encoder.encode_parts(message))))

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
        if standalone:
            # Refused (split brain, authentication, ...): no reconnecting until `connect`.
            self._stay_standalone = True
        if self.peer_disk not in (DiskState.OUTDATED, DiskState.INCONSISTENT):
            # DRBD keeps a peer disk known Outdated/Inconsistent: it cannot be promoted.
            self.peer_disk = DiskState.UNKNOWN
        self.peer_role = None
        self._resync_gate, self._gate_link, self._gate_ready = "", None, False
        fencing = self.disk.fencing
        if (
            self.role is Role.PRIMARY
            and fencing != "dont-care"
            and self.peer_disk is DiskState.UNKNOWN
        ):
            # The peer may be promoted with older data: outdate it (fence-peer). With
            # resource-and-stonith nothing completes until it is -- the requests in flight
            # below included.
            # (Not again for a connection that never got past its handshake: DRBD freezes on
            # entering "Primary without its peer", and resume-io is the operator's word.)
            if (
                fencing == "resource-and-stonith"
                and not self._susp_fen
                and was is not ConnState.CONNECTING
            ):
                self._susp_fen = True
                self._log(
                    "I/O suspended until fence-peer succeeds (resource-and-stonith)", "warning"
                )
            self._start_fence(f"the connection to the peer was lost ({reason})")
        # Every write the peer has not confirmed stable (its barrier was not acked) may be
        # missing there: the bitmap takes it over, and the next resync copies exactly these.
        unconfirmed = list(self._tl.values())
        for req in unconfirmed:
            self._mark_dirty(req.offset, req.length)
            req.peer_done = True
        self._tl.clear()
        for req in unconfirmed:
            if req.completed:
                self._out.append(Released(req.handle))  # the bitmap has it now
        for req in list(self._requests.values()):
            req.peer_done = True
            self._maybe_complete(req)
        # The peer's writes not yet issued here are dropped: once this node is promoted they
        # would overwrite newer data. They may differ from the peer's disk: mark them (the
        # peer marks its unconfirmed writes too, so the next resync covers them).
        for item in self._rx_queue:
            if isinstance(item, _RxWrite):
                self._mark_dirty(item.offset, len(item.data))
        self._rx_queue.clear()
        for flush in [f for f in self._flushes if not f.local]:
            self._flushes.remove(flush)  # Diskless: no copy left to be stable on
            self._out.append(Complete(flush.handle, False, "I/O error: the peer is gone"))
        reads, self._peer_reads = self._peer_reads, {}
        for handle, _, _ in reads.values():
            self._out.append(Complete(handle, False, "I/O error: the peer is gone"))
        self._resync_stale.clear()
        for flush in self._flushes:
            flush.need_epoch = 0
        self._check_flushes()
        self._epoch_writes = 0
        self._epoch_completed = False
        self._todo.clear()
        self._requested.clear()
        self._deferred_reads.clear()
        self._pacer = None
        self._progress = None
        if self._pending_start:
            self._log("operator command abandoned: the connection went down", "warning")
        self._pending_start = 0
        if self._resize_pending is not None:
            self.resize_result = (False, "the connection went down before the peer answered")
        self._resize_pending = self._resize_asked = None
        self._verify_out.clear()
        if was in (ConnState.VERIFY_S, ConnState.VERIFY_T):
            self._log(
                f"online verify aborted at {self._verify_done}/{self._verify_total} blocks, "
                f"{self._verify_oos} out of sync so far",
                "warning",
            )
        if (
            self.role is Role.PRIMARY
            and was is not ConnState.CONNECTING
            and self.disk_state is not DiskState.DISKLESS
        ):
            self.generations = on_primary_without_peer(self.generations, self.rng)

    def _send_hello(self, *, renegotiate: bool = False) -> None:
        assert self._link is not None
        flags = wire.HELLO_DISCARD_MY_DATA if self.discard_my_data else 0
        if renegotiate:
            flags |= wire.HELLO_RENEGOTIATE
        if self.crashed_primary:
            flags |= wire.HELLO_CRASHED_PRIMARY
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
        elif (
            link.peer_hello is None
            and not link.renegotiating
            and not isinstance(msg, wire.Disconnect)
        ):
            self._fail(f"peer sent {type(msg).__name__} before Hello")
        elif isinstance(msg, wire.DataRequest):
            self._receive_data_request(msg)
        elif isinstance(msg, wire.DataReply):
            self._receive_data_reply(msg)
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
        elif isinstance(msg, wire.CsumRequest):
            self._receive_csum_request(msg)
        elif isinstance(msg, wire.ResyncEqual):
            self._receive_resync_equal(now, msg)
        elif isinstance(msg, wire.StartRequest):
            self._receive_start_request(now, msg)
        elif isinstance(msg, wire.StartReply):
            self._receive_start_reply(now, msg)
        elif isinstance(msg, wire.NewUuid):
            self._receive_new_uuid(msg)
        elif isinstance(msg, wire.VerifyRequest):
            self._receive_verify_request(msg)
        elif isinstance(msg, wire.VerifyReply):
            self._receive_verify_reply(msg)
        elif isinstance(msg, wire.VerifyResult):
            self._receive_verify_result(msg)
        elif isinstance(msg, wire.VerifyDone):
            self._receive_verify_done(msg)
        elif isinstance(msg, wire.OutOfSync):
            self._mark_dirty(msg.offset, msg.length)
        elif isinstance(msg, wire.Ping):
            self._send(wire.PingAck())
        elif isinstance(msg, wire.PingAck):
            link.ping_outstanding = None
        elif isinstance(msg, wire.StateChange):
            self.peer_role, self.peer_disk = msg.role, msg.disk
            self._note_peer_diskless()
            if msg.disk is DiskState.UP_TO_DATE:
                self._check_source_done()
        elif isinstance(msg, wire.Disconnect):
            self._link_down(f"peer refused: {msg.reason}", standalone=True)
        elif isinstance(msg, wire.ResizeRequest):
            self._receive_resize_request(msg)
        elif isinstance(msg, wire.ResizeReply):
            self._receive_resize_reply(msg)

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
            if not (peer.flags & wire.HELLO_RENEGOTIATE and self.cstate is ConnState.CONNECTED):
                self._fail("peer sent a second Hello")
                return
            # The peer attached its disk: both sides say Hello again and decide afresh.
            self._log("the peer attached its disk: handshake again")
            self._reset_handshake(link)
            self._send_hello()
            assert link.hello_sent is not None
        if peer.version != wire.PROTOCOL_VERSION:
            self._refuse(f"peer speaks protocol {peer.version}, this side {wire.PROTOCOL_VERSION}")
            return
        if peer.size != self.size:
            self._refuse(f"volume sizes differ: peer {peer.size}, this side {self.size} bytes")
            return
        link.peer_hello = peer
        self.peer_role, self.peer_disk = peer.role, peer.disk
        self.peer_changed_blocks = peer.dirty
        link.renegotiating = False
        mine = link.hello_sent
        if DiskState.DISKLESS in (mine.disk, peer.disk):
            # One side has no data to compare: nothing to resync. This side's disk (if any)
            # records from now on what the Diskless peer misses.
            self.cstate = ConnState.CONNECTED
            self._log("handshake: connected: a side is Diskless, no resync")
            self._note_peer_diskless()
            if self._susp_fen:
                self._resume("the peer connected again")
            return
        peer_gens = Generations(peer.current, peer.bitmap, peer.history)
        local = NodeState(
            name=self.node,
            role="primary" if mine.role is Role.PRIMARY else "secondary",
            generations=Generations(mine.current, mine.bitmap, mine.history),
            inconsistent=mine.disk is DiskState.INCONSISTENT,
            changed_blocks=mine.dirty,
            discard_my_data=bool(mine.flags & wire.HELLO_DISCARD_MY_DATA),
            crashed_primary=bool(mine.flags & wire.HELLO_CRASHED_PRIMARY),
        )
        remote = NodeState(
            name=peer.node,
            role="primary" if peer.role is Role.PRIMARY else "secondary",
            generations=peer_gens,
            inconsistent=peer.disk is DiskState.INCONSISTENT,
            changed_blocks=peer.dirty,
            discard_my_data=bool(peer.flags & wire.HELLO_DISCARD_MY_DATA),
            crashed_primary=bool(peer.flags & wire.HELLO_CRASHED_PRIMARY),
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
        if self._susp_fen:
            # The peer is back and not promoted (it connected as it was): its missing writes
            # are in this side's bitmap and reach it by the resync (DRBD resends them).
            self._resume("the peer connected again")
        # The handshake accounted for a crash as Primary (its activity-log extents are in the
        # bitmap exchanged now, or under a new sync identifier): the mark has done its job.
        self.crashed_primary = False
        if decision.action == "connected":
            self.cstate = ConnState.CONNECTED
            if mine.dirty or peer.dirty:
                # DRBD says the same: the bits stay until a resync covers them.
                self._log(
                    f"no resync, but {mine.dirty}+{peer.dirty} bits in the bitmaps", "warning"
                )
            if self.disk_state in (DiskState.OUTDATED, DiskState.CONSISTENT):
                # Same generation as the peer and nothing to resync: the same data, which is
                # as new as any there is (DRBD: Consistent and Outdated vanish when connected).
                self.disk_state = DiskState.UP_TO_DATE
                self._send_state()
            return
        self._sync_peer_gens = decision.comparison.peer
        self.generations = decision.comparison.local  # a rule may have corrected our ids
        if decision.full:
            self.bitmap.set_all()
        self.cstate = ConnState.WF_BITMAP
        self._sync_role = decision.action
        self._open_resync_gate(decision.action)
        self._send_bitmap()

    def _send_bitmap(self) -> None:
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
            self._start_source()
        elif link.sync_uuid_received:
            self._start_target()

    def _start_source(self) -> None:
        if self._resync_gate == "before-resync-source":
            self._gate_ready = True  # started when the handler exits 0
            return
        self.generations, uuid = start_sync_source(self.generations, self.rng)
        self._send(wire.SyncUuid(uuid))
        self.cstate = ConnState.SYNC_SOURCE
        self.peer_disk = DiskState.INCONSISTENT
        if self.disk_state in (DiskState.CONSISTENT, DiskState.OUTDATED):
            # The handshake found this side's data the newest: a SyncSource is UpToDate.
            self._log(f"disk {self.disk_state.literal} -> UpToDate (SyncSource)")
            self.disk_state = DiskState.UP_TO_DATE
            self._send_state()
        self._progress = SyncProgress(self.cstate.value, self.bitmap.count(), self._now)
        self._log(f"resync started as source: {self.bitmap.count()} blocks")
        self._check_source_done()

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
        self._sync_uuid_time = now
        if link.peer_bitmap_done:
            self._start_target()

    def _start_target(self) -> None:
        if self._resync_gate == "before-resync-target":
            self._gate_ready = True  # started when the handler exits 0
            return
        self.cstate = ConnState.SYNC_TARGET
        self.disk_state = DiskState.INCONSISTENT
        self._todo = deque(self.bitmap.runs())
        start = max(self._sync_uuid_time, self._now)
        self._pacer = pacer_for(self.disk, start)
        self._progress = SyncProgress(self.cstate.value, self.bitmap.count(), start)
        self._log(f"resync started as target: {self.bitmap.count()} blocks")
        self._request_resync(start)
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
        if self._susp_fen:
            return  # frozen: completed when fence-peer succeeds or resume-io
        req.completed = True
        del self._requests[req.seq]
        if req.epoch == self._epoch:
            self._epoch_completed = True
        # DRBD's rule: a write succeeds if either copy was written (a failed local write is in
        # the bitmap; a Diskless node has only the peer's copy).
        ok = (req.local_ok and not req.voided) or (req.mirrored and req.peer_ok)
        self._out.append(Complete(req.handle, ok, "" if ok else "I/O error"))
        if req.seq not in self._tl:
            self._out.append(Released(req.handle))

    def _receive_ack(self, msg: wire.RecvAck | wire.WriteAck | wire.NegAck) -> None:
        if isinstance(msg, wire.NegAck):
            # The peer did not write it (its disk failed, or it has none): the bitmap takes
            # it -- also when the write already completed (protocols A and B), while the
            # transfer log still names it.
            sent = self._requests.get(msg.seq) or self._tl.get(msg.seq)
            if sent is not None:
                self._mark_dirty(sent.offset, sent.length)
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
                req.peer_done = req.peer_ok = True
        self._maybe_complete(req)

    def _receive_barrier_ack(self, epoch: int) -> None:
        self._barrier_acked = max(self._barrier_acked, epoch)
        tl = self._tl
        while tl:
            req = next(iter(tl.values()))
            if req.epoch > epoch:
                break
            tl.popitem(last=False)
            if req.completed:
                self._out.append(Released(req.handle))
        self._check_flushes()

    def _check_flushes(self) -> None:
        if self._susp_fen:
            return
        for flush in list(self._flushes):
            if flush.local_done and flush.need_epoch <= self._barrier_acked:
                self._flushes.remove(flush)
                self._out.append(Complete(flush.handle, True))

    # --- Secondary: applying the peer's writes in epoch order ----------------------------

    def _receive_data(self, msg: wire.Data) -> None:
        if (msg.digest or self.net.data_integrity_alg) and msg.digest != self._digest(msg.payload):
            self._fail(f"data integrity digest mismatch on write {msg.seq}")
            return
        self._counters["nr"] += len(msg.payload)
        if self.peer_disk is DiskState.DISKLESS:
            # The peer has no disk: this is the only copy (DRBD marks it out of sync).
            self._mark_dirty(msg.offset, len(msg.payload))
        self._verify_touch(msg.offset, len(msg.payload))
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
        if self._resync_gate == "before-resync-target":
            return  # this disk is left as it is until the handler (a snapshot, say) is done
        queue = self._rx_queue
        while queue and not self._rx_barrier_busy:
            item = queue[0]
            if isinstance(item, _RxBarrier):
                if self._rx_inflight:
                    return
                if self.disk_state is DiskState.DISKLESS:
                    if self._local_open:
                        return  # the shell's close of the disk flushes it: ack after that
                    queue.popleft()
                    if item.link is self._link:
                        self._send(wire.BarrierAck(item.epoch, item.writes))
                    continue
                queue.popleft()
                if not self.disk.disk_flushes:
                    # `disk-flushes no` (a battery-backed cache): draining the epoch's writes
                    # orders them (DRBD's write ordering "drain"); no flush before the ack.
                    if item.link is self._link:
                        self._send(wire.BarrierAck(item.epoch, item.writes))
                    continue
                self._rx_barrier_busy = True
                io = _Io("rxflush", epoch=item.epoch, length=item.writes, link=item.link)
                self._out.append(FlushLocal(self._token(io)))
                return
            if isinstance(item, _RxWrite) and (
                self.disk_state is DiskState.DISKLESS
                or (item.resync and item.offset // BLOCK_SIZE in self._resync_stale)
            ):
                queue.popleft()
                self._drop_rx_write(item)
                continue
            length = item.length if isinstance(item, _RxVerify | _RxRead) else len(item.data)
            if self._rx_ranges.overlapping(item.offset, item.offset + length):
                return
            queue.popleft()
            if isinstance(item, _RxVerify):
                io = _Io("vread", offset=item.offset, length=item.length, link=item.link)
                self._out.append(ReadLocal(self._token(io), item.offset, item.length))
                continue
            if isinstance(item, _RxRead):
                self._issue_rx_read(item)
                continue
            token = self._token(_Io("rx", rx=item))
            self._rx_inflight[token] = item
            self._rx_ranges.add(token, item.offset, item.offset + len(item.data))
            self._out.append(WriteLocal(token, item.offset, item.data, item.fua))

    def _rx_write_done(self, now: float, token: int, item: _RxWrite, ok: bool) -> None:
        del self._rx_inflight[token]
        self._rx_ranges.remove(token)
        if item.link is not self._link:
            pass  # its connection is gone: the peer's bitmap covers it, nothing to answer
        elif item.resync:
            self._resync_write_done(now, item, ok)
        elif item.seq is not None:
            if not ok:
                self._mark_dirty(item.offset, len(item.data))  # this copy lacks it
                self._send(wire.NegAck(item.seq))
            elif self.net.protocol == "C":
                self._send(wire.WriteAck(item.seq))
        self._pump_rx()

    # --- operator commands that need the peer --------------------------------------------

    def _require_connected(self, what: str) -> None:
        if self.cstate is not ConnState.CONNECTED:
            busy = " (a resync or verify is running)" if self.cstate in _BUSY else ""
            raise EngineError(f"{what} refused: connection is {self.cstate.value}{busy}")
        if self._pending_start:
            raise EngineError(f"{what} refused: another command is waiting for the peer")

    def _start_request(self, kind: int, *, start_block: int = 0, alg: str = "") -> None:
        gens = self.generations
        self._pending_start = kind
        self._pending_verify_start = start_block
        self._send(
            wire.StartRequest(kind, start_block, gens.current, gens.bitmap, gens.history, alg)
        )
        self._log(f"{_START_NAMES[kind]} requested, waiting for the peer")

    def _start_refusal(self, msg: wire.StartRequest) -> str:
        """Why this side cannot take part in the peer's command ("" if it can)."""
        if self.cstate is not ConnState.CONNECTED:
            return f"{self.node} is {self.cstate.value}"
        if self._pending_start:
            return f"{self.node} is waiting for the peer on a command of its own"
        if msg.kind == wire.START_TARGET and self.disk_state is not DiskState.UP_TO_DATE:
            return f"{self.node}'s disk is {self.disk_state.literal}, it cannot be sync source"
        if msg.kind == wire.START_SOURCE and self.role is Role.PRIMARY:
            return f"{self.node} is Primary and cannot become sync target"
        if msg.kind == wire.START_VERIFY:
            if not self.net.verify_alg:
                return f"verify-alg is not configured on {self.node}"
            if self.net.verify_alg != msg.alg:
                return f"verify-alg differs: {msg.alg} on the peer, {self.net.verify_alg} here"
            if msg.start_block >= self.bitmap.nbits:
                return f"verify start block {msg.start_block} is outside the volume"
        return ""

    def _receive_start_request(self, now: float, msg: wire.StartRequest) -> None:
        gens = self.generations
        refusal = self._start_refusal(msg)
        self._send(
            wire.StartReply(msg.kind, not refusal, gens.current, gens.bitmap, gens.history, refusal)
        )
        if refusal:
            self._log(f"peer's {_START_NAMES[msg.kind]} refused: {refusal}", "warning")
        elif msg.kind == wire.START_TARGET:
            self._begin_full_sync("sync-source", None)
        elif msg.kind == wire.START_SOURCE:
            self._begin_full_sync("sync-target", Generations(msg.current, msg.bitmap, msg.history))
        else:
            self._begin_verify(now, ConnState.VERIFY_T, msg.start_block)

    def _receive_start_reply(self, now: float, msg: wire.StartReply) -> None:
        if msg.kind != self._pending_start:
            self._fail(f"unexpected reply to {_START_NAMES[msg.kind]}")
            return
        self._pending_start = 0
        name = _START_NAMES[msg.kind]
        if not msg.ok:
            self._log(f"{name} refused by the peer: {msg.reason}", "error")
        elif msg.kind == wire.START_TARGET:
            self._begin_full_sync("sync-target", Generations(msg.current, msg.bitmap, msg.history))
        elif msg.kind == wire.START_SOURCE:
            self._begin_full_sync("sync-source", None)
        else:
            self._begin_verify(now, ConnState.VERIFY_S, self._pending_verify_start)

    def _invalidate_local(self) -> None:
        self.disk_state = DiskState.INCONSISTENT
        self.bitmap.set_all()

    def _begin_full_sync(self, role: str, peer_gens: Generations | None) -> None:
        """invalidate / invalidate-remote, agreed by both: a full sync through the same
        bitmap exchange as after a handshake."""
        link = self._link
        assert link is not None
        if role == "sync-target":
            self._sync_peer_gens = peer_gens
            self._invalidate_local()
        else:
            self.bitmap.set_all()
        link.peer_bitmap_runs = []
        link.peer_bitmap_done = False
        link.sync_uuid_received = False
        self._sync_role = role
        self.cstate = ConnState.WF_BITMAP
        self._log(f"full sync as {role.removeprefix('sync-')} (operator command)")
        self._open_resync_gate(role)
        self._send_bitmap()

    def _skip_sync_done(self) -> None:
        self.bitmap.clear_all()
        self.disk_state = DiskState.UP_TO_DATE
        self.peer_disk = DiskState.UP_TO_DATE
        self._log(f"initial sync skipped (new-current-uuid --clear-bitmap): {self.generations}")
        self._send_state()

    def _receive_new_uuid(self, msg: wire.NewUuid) -> None:
        if self.cstate is not ConnState.CONNECTED or not self.generations.just_created:
            self._fail(
                f"peer skipped the initial sync but this side is {self.cstate.value} "
                f"with {self.generations}"
            )
            return
        self.generations = receive_sync_uuid(
            self.generations, msg.uuid, primary=self.role is Role.PRIMARY
        )
        self._skip_sync_done()

    # --- online verify -------------------------------------------------------------------

    def _begin_verify(self, now: float, state: ConnState, start_block: int) -> None:
        self.cstate = state
        self._verify_next = start_block
        self._verify_stop = self.bitmap.nbits
        self._verify_total = self.bitmap.nbits - start_block
        self._verify_done = 0
        self._verify_oos = 0
        self._verify_out.clear()
        self._verify_retry.clear()
        self._verify_tries.clear()
        self._verify_digests.clear()
        self._progress = SyncProgress(state.value, self._verify_total, now)
        self._log(f"online verify started ({state.value}) at block {start_block}")
        if state is ConnState.VERIFY_S:
            self._pacer = pacer_for(self.disk, now)
            self._request_verify(now)

    def _request_verify(self, now: float) -> None:
        pacer = self._pacer
        assert pacer is not None
        allowance = pacer.allowance(now, len(self._verify_out) * BLOCK_SIZE)
        while len(self._verify_out) < self._resync_window and allowance >= BLOCK_SIZE:
            if self._verify_retry:
                block = self._verify_retry.popleft()
            elif self._verify_next < self._verify_stop:
                block = self._verify_next
                self._verify_next += 1
            else:
                break
            offset = block * BLOCK_SIZE
            self._verify_out[block] = False
            pacer.spend(BLOCK_SIZE)
            allowance -= BLOCK_SIZE
            self._send(wire.VerifyRequest(offset, min(BLOCK_SIZE, self.size - offset)))
        if (
            not self._verify_out
            and not self._verify_retry
            and self._verify_next >= self._verify_stop
        ):
            self._send(wire.VerifyDone(self._verify_done, self._verify_oos))
            self._end_verify()

    def _verify_touch(self, offset: int, length: int) -> None:
        """A write to blocks being verified: their digests may predate it on one side and
        not on the other, so they are compared again."""
        if not self._verify_out:
            return
        for block in _blocks(offset, length):
            if block in self._verify_out:
                self._verify_out[block] = True

    def _receive_verify_request(self, msg: wire.VerifyRequest) -> None:
        if self.cstate is not ConnState.VERIFY_T or msg.offset + msg.length > self.size:
            self._fail(f"unexpected verify request at {msg.offset} in {self.cstate.value}")
            return
        self._rx_queue.append(_RxVerify(msg.offset, msg.length, self._link))
        self._pump_rx()

    def _verify_read_done(self, io: _Io, ok: bool, data: bytes) -> None:
        if io.link is not self._link or self.cstate is not ConnState.VERIFY_T:
            return
        alg = self.net.verify_alg
        # An unreadable block answers with an empty digest: the source counts it as differing.
        digest = wire.integrity_digest(alg, data) if ok and alg and len(data) == io.length else b""
        self._send(wire.VerifyReply(io.offset, io.length, digest))

    def _receive_verify_reply(self, msg: wire.VerifyReply) -> None:
        block = msg.offset // BLOCK_SIZE
        if self.cstate is not ConnState.VERIFY_S or block not in self._verify_out:
            self._fail(f"unexpected verify reply at {msg.offset} in {self.cstate.value}")
            return
        if self._pacer is not None:
            self._pacer.received(msg.length)
        if self._verify_racing(block, msg.offset, msg.length):
            return
        self._verify_digests[block] = msg.digest
        io = _Io("vlocal", offset=msg.offset, length=msg.length, link=self._link)
        self._out.append(ReadLocal(self._token(io), msg.offset, msg.length))

    def _verify_racing(self, block: int, offset: int, length: int) -> bool:
        """A write touched the block, or one is still on its way to this disk: ask again."""
        busy = self._writes_pending(offset, length) or any(
            isinstance(item, _RxWrite) and _overlap(offset, length, item.offset, len(item.data))
            for item in (*self._rx_queue, *self._rx_inflight.values())
        )
        if not (self._verify_out[block] or busy):
            return False
        del self._verify_out[block]
        self._verify_digests.pop(block, None)
        tries = self._verify_tries.get(block, 0) + 1
        self._verify_tries[block] = tries
        if tries <= VERIFY_RETRIES:
            self._verify_retry.append(block)
        else:
            # Written to every time it was compared: report it rather than loop for ever.
            self._log(f"verify skipped block {block}: written to during every attempt", "warning")
            self._verify_done += 1
            self._send(wire.VerifyResult(offset, length, True))
        return True

    def _verify_compare_done(self, now: float, io: _Io, ok: bool, data: bytes) -> None:
        if io.link is not self._link or self.cstate is not ConnState.VERIFY_S:
            return
        block = io.offset // BLOCK_SIZE
        if self._verify_racing(block, io.offset, io.length):
            self._request_verify(now)
            return
        peer_digest = self._verify_digests.pop(block)
        del self._verify_out[block]
        alg = self.net.verify_alg
        in_sync = bool(
            ok
            and alg
            and peer_digest
            and len(data) == io.length
            and wire.integrity_digest(alg, data) == peer_digest
        )
        self._verify_result(io.offset, io.length, in_sync)
        self._send(wire.VerifyResult(io.offset, io.length, in_sync))
        self._request_verify(now)

    def _verify_result(self, offset: int, length: int, in_sync: bool) -> None:
        self._verify_done += 1
        if not in_sync:
            self._verify_oos += 1
            self._mark_dirty(offset, length)
            self._log(f"verify: block {offset // BLOCK_SIZE} out of sync", "warning")

    def _receive_verify_result(self, msg: wire.VerifyResult) -> None:
        if self.cstate is not ConnState.VERIFY_T:
            self._fail(f"unexpected verify result in {self.cstate.value}")
            return
        self._verify_result(msg.offset, msg.length, msg.in_sync)

    def _receive_verify_done(self, msg: wire.VerifyDone) -> None:
        if self.cstate is not ConnState.VERIFY_T:
            self._fail(f"unexpected end of verify in {self.cstate.value}")
            return
        self._end_verify()

    def _end_verify(self) -> None:
        self.stats["verified_blocks"] += self._verify_done
        self.stats["verify_out_of_sync"] += self._verify_oos
        self._log(
            f"online verify done: {self._verify_done} blocks compared, "
            f"{self._verify_oos} out of sync"
        )
        if self._verify_oos:
            self._out.append(RunHandler("out-of-sync"))
        self.cstate = ConnState.CONNECTED
        self._progress = None
        self._pacer = None

    # --- resync: target side -------------------------------------------------------------

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
        pacer = self._pacer
        assert pacer is not None
        allowance = pacer.allowance(now, len(self._requested) * BLOCK_SIZE)
        while len(self._requested) < self._resync_window and allowance >= BLOCK_SIZE:
            block = self._next_todo()
            if block is None:
                break
            offset = block * BLOCK_SIZE
            length = min(BLOCK_SIZE, self.size - offset)
            self._requested.add(block)
            pacer.spend(BLOCK_SIZE)
            allowance -= BLOCK_SIZE
            if self.net.csums_alg:
                # Read our own copy first: the source sends data only if its block differs.
                io = _Io("csread", offset=offset, length=length, link=self._link)
                self._out.append(ReadLocal(self._token(io), offset, length))
            else:
                self._send(wire.ResyncRequest(offset, length))

    def _csum_read_done(self, now: float, io: _Io, ok: bool, data: bytes) -> None:
        if io.link is not self._link or self.cstate is not ConnState.SYNC_TARGET:
            return  # that resync is over
        alg = self.net.csums_alg
        if ok and alg and len(data) == io.length:
            self._send(wire.CsumRequest(io.offset, io.length, wire.integrity_digest(alg, data)))
        else:
            self._send(wire.ResyncRequest(io.offset, io.length))  # unreadable: just copy it

    def _receive_resync_equal(self, now: float, msg: wire.ResyncEqual) -> None:
        block = msg.offset // BLOCK_SIZE
        if self.cstate is not ConnState.SYNC_TARGET or block not in self._requested:
            self._fail(f"unrequested resync answer at {msg.offset}")
            return
        if block in self._resync_stale:
            self._resync_discard(msg.offset, msg.length)
            self._request_resync(now)
            return
        self.stats["resync_blocks_equal"] += 1
        if self._pacer is not None:
            self._pacer.received(msg.length)
        self._requested.discard(block)
        self.bitmap.clear(block)
        self._send(wire.ResyncAck(msg.offset, msg.length, True))
        self._request_resync(now)
        self._check_target_done()

    def _receive_resync_data(self, msg: wire.ResyncData) -> None:
        block = msg.offset // BLOCK_SIZE
        if self.cstate is not ConnState.SYNC_TARGET or block not in self._requested:
            self._fail(f"unrequested resync data at {msg.offset}")
            return
        if block in self._resync_stale:
            self._resync_discard(msg.offset, len(msg.payload))
            return
        self.stats["resync_blocks_received"] += 1
        self._counters["nr"] += len(msg.payload)
        if self._pacer is not None:
            self._pacer.received(len(msg.payload))
        self._rx_queue.append(_RxWrite(msg.offset, msg.payload, resync=True, link=self._link))
        self._pump_rx()

    def _resync_write_done(self, now: float, item: _RxWrite, ok: bool) -> None:
        block = item.offset // BLOCK_SIZE
        self._requested.discard(block)
        self._resync_stale.discard(block)  # written before any later application write
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
        if self.handlers.after_resync_target:
            self._out.append(RunHandler("after-resync-target"))
        # The source finishes on this, not on its own bitmap running empty: only now is it
        # known that the target holds the sync UUID, so both sides' identifiers move together.
        self._send_state()

    # --- resync: source side -------------------------------------------------------------

    def _receive_resync_request(
        self, offset: int, length: int, digest: bytes | None = None
    ) -> None:
        if self.cstate is not ConnState.SYNC_SOURCE or length <= 0 or offset + length > self.size:
            self._fail(f"bad resync request [{offset}, +{length}) in {self.cstate.value}")
            return
        if self._rx_write_pending(offset, length):
            # The peer (a Primary SyncTarget) wrote the block before asking: read after it.
            self._rx_queue.append(_RxRead(offset, length, self._link, digest=digest))
            self._pump_rx()
            return
        self._issue_read(offset, length, digest)

    def _receive_csum_request(self, msg: wire.CsumRequest) -> None:
        # Without csums-alg here the digest cannot be checked: sending the data is always right.
        digest = msg.digest if self.net.csums_alg else None
        self._receive_resync_request(msg.offset, msg.length, digest)

    def _issue_read(self, offset: int, length: int, digest: bytes | None = None) -> None:
        token = self._token(_Io("rsread", offset=offset, length=length))
        self._reads[token] = (offset, length, self._link, digest)
        if self._writes_pending(offset, length):
            # Concurrent with a write to the same blocks: the disk may return either version.
            self._stale_reads.add(token)
        self._out.append(ReadLocal(token, offset, length))

    def _mark_reads_stale(self, offset: int, length: int) -> None:
        # A resync read racing an application write may return the old data, and the peer
        # would then overwrite the mirrored new data with it: such a read is done again.
        for token, (r_off, r_len, _, _) in self._reads.items():
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
        _, _, asked_by, digest = self._reads.pop(token)
        stale = token in self._stale_reads
        self._stale_reads.discard(token)
        if self.cstate is not ConnState.SYNC_SOURCE or asked_by is not self._link:
            return  # asked for on a connection that is gone; the new one asks again
        if stale or not ok or len(data) != length:
            self._deferred_reads.append((offset, length, digest))
            self._retry_deferred_reads()
            return
        alg = self.net.csums_alg
        if digest is not None and alg and wire.integrity_digest(alg, data) == digest:
            self.stats["resync_blocks_equal"] += 1
            self._send(wire.ResyncEqual(offset, length))
            return
        self.stats["resync_blocks_sent"] += 1
        self._counters["ns"] += len(data)
        self._send(wire.ResyncData(offset, data))

    def _retry_deferred_reads(self) -> None:
        waiting, self._deferred_reads = self._deferred_reads, []
        for offset, length, digest in waiting:
            if self._writes_pending(offset, length):
                self._deferred_reads.append((offset, length, digest))
            else:
                self._issue_read(offset, length, digest)

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
            if self.disk.fencing != "dont-care" and self.handlers.unfence_peer:
                # DRBD 8.4 (8.4.x later releases): the SyncSource unfences its peer once it
                # is back in sync (the shell checks every volume is UpToDate on both sides).
                self._out.append(RunHandler("unfence-peer"))

    # For tests and status: blocks the target still has to fetch.
    def pending_resync(self) -> Iterator[int]:
        return self.bitmap.dirty()
