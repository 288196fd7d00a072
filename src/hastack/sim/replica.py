"""A deterministic simulator of two replica nodes: real engines and backings, a simulated world.

Each node runs the real sans-IO ReplicaEngine and the real Backing (superblock, activity log,
bitmap) over a simulated disk with a volatile write cache (replica_disk.SimBlockFile). The
shell between them follows daemon.VolumeRunner's rules, made synchronous and event-driven:

* an application write keeps its activity-log extent until the engine completes it (not merely
  until the local write is done), so a crash never forgets an extent the peer may lack;
* local writes overlapping one still in flight wait for it (the disk sees them in engine order);
  an activity log with every extent busy makes a write retry a millisecond later;
* after every batch of effects the superblock is rewritten when (role, disk state, peer disk,
  cstate, generations, crashed-primary) changed, and the bitmap at most once a second after
  an fdatasync of the data;
* a flush makes stable exactly the writes that completed before it was issued.

The world is a priority queue of timed events: disk I/O completes after a drawn latency,
frames arrive after a drawn delay (in order per direction), ticks come every 0.1 s, the
lower-named node dials its peer every drawn interval. Faults -- network cuts, crashes of either
node at any point (the disk keeps its stable image and a random subset of its cache; the
engine, the shell and everything in flight are gone), clean stops of the Secondary (`down`:
disconnect, drain, bitmap, clean detach), restarts through Backing.open_files -- and the
protocol (A, B or C) are drawn from the seed. The operator's `detach` of either node (while
the pair is in sync) and its `attach` again later are drawn too: the Diskless node's I/O goes
through its peer, whose bitmap records what the detached disk misses; the attach resyncs it.
Every draw comes from the seed, so a failing seed replays exactly: the violation says how.

The cluster manager is modelled as crm-fence-peer does it: a node the Primary cannot vouch for
(the link is down, or the peer is not UpToDate) is *fenced* -- never promoted -- until a node
that is not fenced sees it Connected and UpToDate again; a node that crashes while its peer
survives unfenced is fenced too. When the Primary crashes, the survivor is promoted at once if
it is not fenced (the engine may refuse: that is allowed). So two Primaries never happen.

Invariants (checked during the run and at the end; see INVARIANTS): acknowledged writes are
not lost, the disks end identical after a quiet period, the quiet period converges, at most
one Primary, and no core raises. A block device promises nothing about an acknowledged write
that was neither flushed nor FUA once its node crashes, so when a node crashes and no unfenced
peer survives to vouch for its data, the model forgets the blocks whose newest write was not
stable on that node (stats: dropped_blocks); everything stable stays checked.

A Diskless node, or one whose disk is not UpToDate (a Primary resyncing after its attach), is
not checked, and vouches for nothing: when the only disk's node crashes under A or B, the model
starts anew (as for a Primary's crash); under C only what that disk had stable stays checked.
Under A and B, a Primary without UpToDate data of its own that loses its connection may lose
acknowledged writes (they were only on their way to the peer): the model starts anew then.
A write that failed (a Diskless Primary's, when its peer went before acknowledging it) may have
reached a disk all the same: its data becomes one more thing its blocks may hold.

Not modelled: bandwidth and back-pressure (max-buffers, socket buffers), so under A and B a
Secondary can fall far behind; I/O errors; clean stops of the Primary; verify, invalidate.
"""

from __future__ import annotations

import hashlib
import heapq
import random
import struct
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from hastack.replica.activitylog import ActivityLogBusy
from hastack.replica.backing import (
    Backing,
    BackingError,
    MetadataKeeper,
    Prepared,
    attach_disk_state,
)
from hastack.replica.bitmap import BLOCK_SIZE
from hastack.replica.engine import (
    CloseConnection,
    Complete,
    DetachLocal,
    Effect,
    EngineError,
    FlushLocal,
    Log,
    ReadLocal,
    Released,
    ReplicaEngine,
    RunHandler,
    Send,
    WriteLocal,
)
from hastack.replica.generations import Generations, with_role
from hastack.replica.metadata import (
    SECTOR,
    Layout,
    MdFlags,
    create_md,
    internal_layout,
    md_size_sectors,
)
from hastack.replica.model import Disk, Net
from hastack.replica.states import ConnState, DiskState, Role
from hastack.sim.replica_disk import DataFlushLiesFile, SimBlockFile
from hastack.sim.result import Violation

NODES = ("alice", "bob")  # "alice" sorts first: it dials, as the daemon's lower name does
# 16 activity-log extents of 4 MiB against a log of 7: the workload keeps evicting, and most
# extents are outside the log at any crash (so a write the log forgot is not resynced by luck).
VOLUME_MIB = 64
AL_EXTENTS = 7  # the smallest log hastack allows, so the workload evicts extents
TICK = 0.1
QUIET_BOUND = 40.0  # seconds the final quiet period may take to converge
TAG_SIZE = 16  # every written block starts with a tag naming the write: (id, block, seed)

INVARIANTS = {
    "acked-write-lost": "under protocol C, every acknowledged write (the newest for each "
    "block) is on every node whose disk is UpToDate and not fenced -- in particular on the "
    "survivor promoted after the Primary's crash; under A and B, on the Primary's own disk",
    "resync-not-identical": "after the final quiet period (both up, connected, UpToDate, "
    "idle) the data areas of both disks are identical",
    "stuck": "the final quiet period reaches Connected and UpToDate/UpToDate within the bound",
    "two-primaries": "never two Primaries at once",
    "core-error": "an engine, the backing or the shell raised (a refused promotion excepted)",
}


class _Stop(Exception):
    """The run ends: a violation was recorded."""


class ReplicaViolation(Violation):
    """A violation of one of this simulator's invariants (INVARIANTS below, not the
    cluster simulator's)."""

    def description(self) -> str:
        return INVARIANTS.get(self.invariant, self.invariant)


@dataclass
class ReplicaResult:
    seed: int
    protocol: str
    duration: float
    violations: list[ReplicaViolation]
    stats: dict[str, float]
    trace_hash: str
    replay: str

    @property
    def ok(self) -> bool:
        return not self.violations

    def render(self) -> str:
        head = f"seed={self.seed} protocol={self.protocol} ok={self.ok} stats={self.stats}"
        return "\n".join([head, *(v.render() for v in self.violations)])


# --- the shell: daemon.VolumeRunner's rules, synchronous ----------------------------------


@dataclass
class _Write:
    token: int
    start: int
    stop: int
    effect: WriteLocal
    prepared: Prepared | None = None  # None: the activity log was busy; prepared at issue
    blocked_by: int = 0  # earlier overlapping writes still in flight
    done: bool = False
    waiters: list[_Write] = field(default_factory=list)


@dataclass
class _Admission:
    """An application write waiting for its activity-log extent to be stable."""

    prepared: Prepared
    handle: int
    offset: int
    data: bytes
    fua: bool
    logged: bool = False  # its own transaction is written


class NodeShell:
    """One incarnation of a node: its backing, its engine, what is in flight between them.
    A crash throws the object away; events addressed to it are then ignored."""

    def __init__(self, sim: ReplicaSim, node: _Node, backing: Backing, engine: ReplicaEngine):
        self.sim = sim
        self.node = node
        self.name = node.name
        self.backing = backing
        self.engine = engine
        self.conn: _Conn | None = None
        # application writes admitted to the activity log (handle -> range), until Released
        self._admitted: dict[int, tuple[int, int]] = {}
        self._issued: set[int] = set()  # admitted writes the engine issued locally
        self._admitting: list[_Admission] = []  # application writes waiting for the log
        self._tx_waiting: list[_Write] = []  # writes waiting for another write's transaction
        self._inflight: dict[int, _Write] = {}
        self._io = 0  # local I/Os in flight (for the quiet check)
        self.metadata: MetadataKeeper | None = MetadataKeeper(backing, engine, sim.now)
        self.stopping = False  # a clean stop (`down`) is under way
        self.detaching = False  # the engine detached; the disk is closed once I/O is done

    @property
    def alive(self) -> bool:
        return self.node.shell is self

    @property
    def busy(self) -> bool:
        return bool(self._io or self._inflight)

    @property
    def diskless(self) -> bool:
        return self.engine.disk_state is DiskState.DISKLESS

    # --- feeding the engine --------------------------------------------------------------

    def feed(
        self,
        method: str,
        *args: Any,
        refusable: bool = False,
        **kw: Any,
    ) -> None:
        """Call an engine event and carry out its effects (like daemon's runner.run(...)).
        `refusable`: an operator command the engine may refuse (EngineError is re-raised)."""
        if not self.alive:
            return
        try:
            effects = getattr(self.engine, method)(self.sim.now, *args, **kw)
        except EngineError:
            if refusable:
                raise
            self.sim.core_error(f"{self.name}: engine.{method} refused", EngineError(method))
            raise _Stop from None
        except Exception as err:  # a core that raises is a finding, reported with its trace
            self.sim.core_error(f"{self.name}: engine.{method} raised {err!r}", err)
            raise _Stop from None
        self.sim.update_fences()
        self.run(effects)

    def prepare(self, offset: int, length: int) -> Prepared:
        """The activity-log update a local write needs before it is issued."""
        assert self.backing is not None
        return self.backing.begin_write(offset, length)

    def release(self, offset: int, length: int) -> None:
        """The write no longer needs its activity-log extent."""
        if self.backing is not None:  # (a closed disk's log went with it)
            self.backing.end_write(offset, length)

    def run(self, effects: list[Effect]) -> None:
        sim = self.sim
        for effect in effects:
            if not self.alive:
                return
            if isinstance(effect, WriteLocal):
                self._write(effect)
            elif isinstance(effect, ReadLocal):
                self._read(effect)
            elif isinstance(effect, FlushLocal):
                self._flush(effect)
            elif isinstance(effect, Send):
                sim.send(self, effect.frame)
            elif isinstance(effect, Released):
                self._release_app(effect.handle)
            elif isinstance(effect, Complete):
                if effect.handle not in self._issued:
                    self._release_app(effect.handle)  # refused before any write was issued
                sim.on_complete(self, effect)
            elif isinstance(effect, CloseConnection):
                sim.close_connection(self, effect.reason)
            elif isinstance(effect, DetachLocal):
                if not self.detaching:
                    self.detaching = True
                    sim.at(sim.now, sim.finish_detach, self, effect, sim.now + 5.0)
            elif isinstance(effect, RunHandler):
                sim.trace(f"{self.name}: handler {effect.name}")
                sim.stats["handlers"] += 1
            elif isinstance(effect, Log):
                sim.trace(f"{effect.level}: {effect.text}")
        if self.alive:
            self.persist()

    # --- local I/O -----------------------------------------------------------------------

    def _write(self, effect: WriteLocal) -> None:
        start, stop = effect.offset, effect.offset + len(effect.data)
        entry = _Write(effect.token, start, stop, effect)
        if effect.handle is not None and effect.handle in self._admitted:
            self._issued.add(effect.handle)  # admitted to the log before the engine saw it
            entry.prepared = Prepared(None, None)
        else:
            try:  # the daemon updates the activity log in the order the engine issues writes
                entry.prepared = self.prepare(effect.offset, len(effect.data))
            except ActivityLogBusy:
                entry.prepared = None
        for other in self._inflight.values():
            if not other.done and other.start < stop and start < other.stop:
                other.waiters.append(entry)
                entry.blocked_by += 1
        self._inflight[effect.token] = entry
        if not entry.blocked_by:
            self._issue(entry)

    def _release_app(self, handle: int) -> None:
        held = self._admitted.pop(handle, None)
        self._issued.discard(handle)
        if held is not None:
            self.release(*held)

    def _issue(self, entry: _Write) -> None:
        if not self.alive:
            return
        effect = entry.effect
        if entry.prepared is None:
            try:
                entry.prepared = self.prepare(effect.offset, len(effect.data))
            except ActivityLogBusy:
                # Every extent of the log has writes in flight: the daemon waits 1 ms.
                self.sim.at(self.sim.now + 0.001, self._issue, entry)
                return
        prepared = entry.prepared
        if not prepared.needs_metadata:
            self._issue_data(entry)
            return

        def metadata_done() -> None:
            if not self.alive:
                return
            self.backing.write_metadata(prepared)  # each part followed by fdatasync
            self.backing.transaction_stable(prepared)
            self._issue_data(entry)
            self._metadata_written()

        self.sim.at(self.sim.now + self.sim.disk_latency(True), metadata_done)

    def _issue_data(self, entry: _Write) -> None:
        if not self.alive:
            return
        effect, prepared = entry.effect, entry.prepared
        assert prepared is not None
        if not self.backing.stable(prepared.wait):
            self._tx_waiting.append(entry)  # another write's transaction is on its way
            return

        def done() -> None:
            if not self.alive:
                return
            # The data reaches the (volatile) disk when the I/O "happens"; a crash before
            # that point leaves none of it.
            self.backing.write_data(effect.offset, effect.data, effect.fua)
            if effect.handle is None or effect.handle not in self._admitted:
                self.release(effect.offset, len(effect.data))
            # an admitted application write keeps its extent until Released
            del self._inflight[entry.token]
            entry.done = True
            for waiter in entry.waiters:
                waiter.blocked_by -= 1
                if not waiter.blocked_by:
                    self._issue(waiter)
            self.feed("io_done", entry.token, True)

        self.sim.at(self.sim.now + self.sim.disk_latency(effect.fua), done)

    def _read(self, effect: ReadLocal) -> None:
        self._io += 1

        def done() -> None:
            if not self.alive:
                return
            self._io -= 1
            data = self.backing.read(effect.offset, effect.length)
            self.feed("io_done", effect.token, True, data)

        self.sim.at(self.sim.now + self.sim.disk_latency(False), done)

    def _flush(self, effect: FlushLocal) -> None:
        self._io += 1
        mark = self.node.file.mark()  # a flush covers what was written before it was issued

        def done() -> None:
            if not self.alive:
                return
            self._io -= 1
            file = self.node.file
            file.sync_limit = mark
            try:
                self.backing.flush()
            finally:
                file.sync_limit = None
            self.feed("io_done", effect.token, True)

        self.sim.at(self.sim.now + self.sim.disk_latency(True), done)

    # --- metadata ------------------------------------------------------------------------

    def persist(self, *, force_bitmap: bool = False) -> None:
        if self.metadata is not None:  # None: Diskless
            self.metadata.persist(self.sim.now, force_bitmap=force_bitmap)

    # --- the application ----------------------------------------------------------------

    def app_write(self, handle: int, offset: int, data: bytes, fua: bool) -> None:
        """The daemon's VolumeRunner.app_write: the extent is in the activity log on disk
        before the engine sees the write (so before its data goes anywhere)."""
        if not self.alive:
            return
        if self.backing is None or self.diskless:
            # Diskless: no activity log; the write goes to the peer only.
            self.feed("app_write", handle, offset, data, fua=fua)
            return
        try:
            prepared = self.prepare(offset, len(data))
        except ActivityLogBusy:
            self.sim.at(self.sim.now + 0.001, self.app_write, handle, offset, data, fua)
            return
        item = _Admission(prepared, handle, offset, data, fua)
        self._admitting.append(item)
        if not prepared.needs_metadata:
            self._admit_ready()
            return

        def metadata_done() -> None:
            if not self.alive:
                return
            self.backing.write_metadata(prepared)
            self.backing.transaction_stable(prepared)
            item.logged = True
            self._metadata_written()

        self.sim.at(self.sim.now + self.sim.disk_latency(True), metadata_done)

    def _metadata_written(self) -> None:
        """A transaction is stable: admit and issue what waited for it."""
        self._admit_ready()
        waiting, self._tx_waiting = self._tx_waiting, []
        for other in waiting:
            self._issue_data(other)

    def _admit_ready(self) -> None:
        for item in list(self._admitting):
            if not self.alive:
                return
            ready = item.logged or not item.prepared.needs_metadata
            if ready and self.backing is not None and self.backing.stable(item.prepared.wait):
                self._admitting.remove(item)
                self._admitted[item.handle] = (item.offset, len(item.data))
                self.feed("app_write", item.handle, item.offset, item.data, fua=item.fua)

    def app_flush(self, handle: int) -> None:
        self.feed("app_flush", handle)


# --- the world -----------------------------------------------------------------------------


@dataclass
class _Conn:
    ident: int
    last: dict[str, float]  # per direction (by sender): frames arrive in order
    cut: bool = False
    frames: int = 0  # frames in flight


@dataclass
class _Node:
    name: str
    file: SimBlockFile
    shell: NodeShell | None = None
    fenced: bool = False
    fence_epoch: int = 0  # bumped at every fencing: a flush spanning one proves nothing
    restart_at: float | None = None


@dataclass
class _Op:
    handle: int
    node: str
    kind: str  # "write" or "flush"
    blocks: tuple[int, ...] = ()
    tags: tuple[bytes, ...] = ()
    fua: bool = False
    ack_mark: int = 0  # flush: acks up to this sequence were made before it was issued
    peer_epoch: int = -1  # flush: the peer's fence epoch when issued (-1: fenced then)


@dataclass
class _Block:
    """The model of one block: the tags it may hold (the newest acknowledged write, or the
    candidates left by a crash with a write in flight) and where that write is stable."""

    tags: set[bytes]
    origin: str
    ack: int
    durable: set[str] = field(default_factory=set)


def _tag(write_id: int, block: int, seed: int) -> bytes:
    return struct.pack(">QII", write_id, block, seed & 0xFFFFFFFF)


def _describe(tag: bytes) -> str:
    if not any(tag):
        return "zeros (never written)"
    write_id, block, _ = struct.unpack(">QII", tag)
    return f"write #{write_id} (block {block})"


class ReplicaSim:
    """One run: two nodes, the network, the workload, the faults and the checks."""

    def __init__(
        self,
        seed: int,
        *,
        duration: float = 20.0,
        protocol: str | None = None,
        faults: bool = True,
        engine_cls: type[ReplicaEngine] = ReplicaEngine,
        shell_cls: type[NodeShell] = NodeShell,
        file_cls: type[SimBlockFile] = SimBlockFile,
        volume_mib: int = VOLUME_MIB,
        replay: str = "",
    ) -> None:
        self.seed = seed
        self.duration = duration
        self.faults = faults
        self.engine_cls = engine_cls
        self.shell_cls = shell_cls
        self.replay = replay
        master = random.Random(seed)
        # Separate streams, so that (say) one more network draw does not change the faults.
        self.rng = random.Random(master.getrandbits(64))  # engines' and setup draws
        self.net_rng = random.Random(master.getrandbits(64))
        self.disk_rng = random.Random(master.getrandbits(64))
        self.fault_rng = random.Random(master.getrandbits(64))
        self.work_rng = random.Random(master.getrandbits(64))
        drawn = self.rng.choice("ABCCC")  # drawn even when given: the other draws stay put
        self.protocol = protocol or drawn
        self.net = Net(protocol=self.protocol)  # type: ignore[arg-type]
        rate = self.rng.choice((20000, 50000, 100000))
        # The dynamic controller keeps c-fill-target in flight: DRBD's default (100 sectors)
        # over a simulated round trip of ~20 ms crawls, so give it 2 MiB.
        self.disk = Disk(
            al_extents=AL_EXTENTS,
            resync_rate=rate,
            c_plan_ahead=self.rng.choice((0, 0, 20)),
            c_fill_target=4096,
        )
        self.queue_depth = self.rng.choice((1, 2, 4, 8))
        self.fua_share = self.rng.choice((0.0, 0.1, 0.3))
        self.flush_share = self.rng.choice((0.02, 0.1))
        self.net_delay = self.rng.choice((0.0005, 0.002, 0.01))
        self.disk_delay = self.rng.choice((0.0002, 0.001, 0.004))

        self.now = 0.0
        self._events: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self._trace = hashlib.sha256()
        self._recent: deque[str] = deque(maxlen=60)
        self.violations: list[ReplicaViolation] = []
        self.stats: dict[str, float] = dict.fromkeys(
            (
                "writes_acked",
                "flushes_acked",
                "writes_failed",
                "crashes",
                "clean_stops",
                "detaches",
                "attaches",
                "cuts",
                "connects",
                "promotions",
                "promote_refused",
                "resync_blocks",
                "handlers",
                "lost_pages",
                "dropped_blocks",
                "events",
            ),
            0,
        )

        self.data_bytes = volume_mib << 20
        data_sectors = self.data_bytes // SECTOR
        backing_sectors = data_sectors + md_size_sectors(data_sectors)
        while backing_sectors - md_size_sectors(backing_sectors) < data_sectors:
            backing_sectors += 8
        self.layout: Layout = internal_layout(backing_sectors)
        if self.layout.data_sectors * SECTOR != self.data_bytes:  # keep blocks whole
            self.layout = replace(self.layout, data_sectors=data_sectors)
        device = backing_sectors * SECTOR
        self.nodes: dict[str, _Node] = {}
        gens = Generations(current=with_role(self.rng.getrandbits(64) | 0x100, False))
        device_uuid = self.rng.getrandbits(64)
        for name in NODES:
            file = file_cls(device, name)
            if isinstance(file, DataFlushLiesFile):
                file.data_size = self.data_bytes
            peer = NODES[1] if name == NODES[0] else NODES[0]
            md = create_md(self.layout, al_extents=AL_EXTENTS, rng=self.rng, node_name=name)
            # Both disks start as after a skipped initial sync: zeros, same identifiers.
            md.superblock = replace(
                md.superblock,
                generations=gens,
                flags=MdFlags.CONSISTENT | MdFlags.WAS_UP_TO_DATE | MdFlags.AL_CLEAN,
                device_uuid=device_uuid,
                peer_name=peer,
            )
            file.pwrite(md.encode(), self.layout.md_offset)
            file.fdatasync()
            self.nodes[name] = _Node(name, file)

        # The application's view.
        self.quiet = False
        self.ops: dict[int, _Op] = {}
        self._handle = 0
        self._write_id = 0
        self._ack_seq = 0
        self.model: dict[int, _Block] = {}
        self.inflight_blocks: set[int] = set()
        self._undurable: dict[int, int] = {}  # block -> ack seq, not yet stable on its origin
        self._issue_scheduled = False
        self.net_up = True
        self._conn_ids = 0
        self.converged_at: float | None = None

    # --- plumbing ------------------------------------------------------------------------

    def at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, fn, args))

    def trace(self, line: str) -> None:
        text = f"{self.now:.6f} {line}"
        self._recent.append(text)
        self._trace.update(text.encode())

    def violation(self, invariant: str, message: str) -> None:
        self.violations.append(
            ReplicaViolation(
                seed=self.seed,
                time=self.now,
                invariant=invariant,
                message=f"{message} [seed {self.seed}, protocol {self.protocol}; "
                f"replay: {self.replay}]",
                log=tuple(self._recent),
                replay=self.replay,
            )
        )
        raise _Stop

    def core_error(self, message: str, err: BaseException) -> None:
        tb = "".join(traceback.format_exception(type(err), err, err.__traceback__)[-3:])
        self.violations.append(
            ReplicaViolation(
                seed=self.seed,
                time=self.now,
                invariant="core-error",
                message=f"{message} [seed {self.seed}; replay: {self.replay}]\n{tb}",
                log=tuple(self._recent),
                replay=self.replay,
            )
        )

    def disk_latency(self, slow: bool) -> float:
        base = self.disk_delay * (4 if slow else 1)
        return base * 0.25 + self.disk_rng.expovariate(1 / base)

    def peer_of(self, name: str) -> _Node:
        return self.nodes[NODES[1] if name == NODES[0] else NODES[0]]

    def shells(self) -> list[NodeShell]:
        return [n.shell for n in self.nodes.values() if n.shell is not None]

    # --- the run -------------------------------------------------------------------------

    def run(self) -> ReplicaResult:
        try:
            for node in self.nodes.values():
                self.start(node)
            self.at(0.05, self.manage)
            self.at(1.0, self.periodic_check)
            if self.faults:
                self.at(self.fault_rng.uniform(0.5, 2.0), self.fault)
            self.at(self.duration, self.begin_quiet)
            while self._events:
                when, _, fn, args = heapq.heappop(self._events)
                self.now = when
                self.stats["events"] += 1
                fn(*args)
                if self.converged_at is not None:
                    break
        except _Stop:
            pass
        except Exception as err:  # the simulator's own bug, or a backing that raised
            self.core_error(f"unexpected {err!r}", err)
        for shell in self.shells():
            self.stats["resync_blocks"] += shell.engine.stats.get("resync_blocks_received", 0)
        self.stats["lost_pages"] = sum(n.file.stats["lost_pages"] for n in self.nodes.values())
        self.stats["end_time"] = round(self.now, 6)
        self._trace.update(repr(sorted(self.stats.items())).encode())
        return ReplicaResult(
            self.seed,
            self.protocol,
            self.duration,
            self.violations,
            self.stats,
            self._trace.hexdigest(),
            self.replay,
        )

    # --- nodes ---------------------------------------------------------------------------

    def start(self, node: _Node) -> None:
        """Attach (replaying the activity log of an unclean stop), engine as the daemon makes
        it, then `connect`."""
        node.restart_at = None
        try:
            backing = Backing.open_files(node.file, node.file, self.layout, name=node.name)
        except BackingError as err:
            self.core_error(f"{node.name}: attach after restart failed: {err}", err)
            raise _Stop from None
        sb = backing.superblock
        engine = self.engine_cls(
            node=node.name,
            size=backing.size,
            net=self.net,
            disk=self.disk,
            rng=random.Random(self.rng.getrandbits(64)),
            role=Role.SECONDARY,
            disk_state=attach_disk_state(sb.flags, self.disk.fencing),
            generations=sb.generations,
            bitmap=backing.bitmap,
            now=self.now,
        )
        if hasattr(engine, "crashed_primary"):  # the daemon passes it to the constructor
            engine.crashed_primary = backing.crashed_primary
        shell = self.shell_cls(self, node, backing, engine)
        node.shell = shell
        self.trace(
            f"{node.name}: attached {engine.disk_state.literal} crashed={backing.crashed} "
            f"crashed_primary={backing.crashed_primary} dirty={backing.bitmap.count()}"
        )
        shell.persist(force_bitmap=True)
        if engine.cstate is ConnState.STANDALONE:
            shell.feed("connect")
        self.at(self.now + TICK * self.rng.uniform(0.5, 1.0), self.tick, shell)
        if node.name == NODES[0]:
            self.at(self.now + self.net_rng.uniform(0.05, 0.5), self.dial, shell)

    def tick(self, shell: NodeShell) -> None:
        if not shell.alive:
            return
        shell.feed("tick")
        self.at(self.now + TICK, self.tick, shell)

    def crash(self, node: _Node) -> None:
        shell = node.shell
        if shell is None:
            return
        was_primary = shell.engine.role is Role.PRIMARY
        self.stats["resync_blocks"] += shell.engine.stats.get("resync_blocks_received", 0)
        node.shell = None
        node.file.crash(self.disk_rng, keep=self.disk_rng.choice((0.2, 0.5, 0.9)))
        self.stats["crashes"] += 1
        self.trace(f"{node.name}: CRASH ({'Primary' if was_primary else 'Secondary'})")
        peer = self.peer_of(node.name)
        if shell.conn is not None and peer.shell is not None and peer.shell.conn is shell.conn:
            shell.conn.cut = True
            peer.shell.conn = None
            peer.shell.feed("connection_lost", "peer crashed")
        # Its application requests die with it: a write in flight may or may not be on disk.
        for op in [op for op in self.ops.values() if op.node == node.name]:
            del self.ops[op.handle]
            for b, tag in zip(op.blocks, op.tags, strict=True):
                self.inflight_blocks.discard(b)
                block = self.model.get(b)
                if block is not None:
                    block.tags.add(tag)
                    block.durable.clear()
        survivor = peer.shell is not None and not peer.fenced
        # A Diskless peer (or one resyncing) holds none of this node's data: it vouches for
        # nothing, and under A and B the acknowledged writes may have been on this disk only.
        holder = survivor and peer.shell is not None and self._has_data(peer.shell)
        if self.protocol != "C" and (was_primary or not holder):
            # Under A and B the peer may lack acknowledged writes: only the living Primary's
            # own disk is checked, so a new Primary starts a new model.
            self.model.clear()
            self._undurable.clear()
        promoted = False
        if survivor and was_primary:
            promoted = self.try_promote(peer)
        if self.protocol == "C":
            if survivor and holder and (promoted or not was_primary):
                self.fence(node, "crashed while its peer survived")
            else:
                # Nobody else vouches for this node's writes: what was not stable on its own
                # disk may be gone (a block device promises nothing more after a crash).
                self.drop_volatile(node.name)
        else:
            if survivor and holder:
                self.fence(node, "crashed while its peer survived")
        if not self.quiet:
            node.restart_at = self.now + self.fault_rng.uniform(0.2, 3.0)
            self.at(node.restart_at, self.restart, node)
        self.check_all()

    def clean_stop(self, shell: NodeShell) -> None:
        """`down` of a Secondary, as ResourceRunner.down does it: disconnect, let the local I/O
        in flight finish (the engine may still issue queued peer writes), then write the
        bitmap and detach cleanly (the log marked clean: nothing to replay)."""
        shell.stopping = True
        self.trace(f"{shell.name}: clean stop")
        shell.feed("disconnect")
        self.close_connection(shell, "disconnect requested")
        self._finish_stop(shell, self.now + 5.0)

    def _finish_stop(self, shell: NodeShell, deadline: float) -> None:
        if not shell.alive:
            return  # crashed meanwhile
        if shell.busy and self.now < deadline:
            self.at(self.now + 0.01, self._finish_stop, shell, deadline)
            return
        if shell.busy:
            self.violation("stuck", f"{shell.name}: local I/O still in flight 5 s into `down`")
        shell.persist(force_bitmap=True)
        if shell.backing is not None:  # (a Diskless node's disk is already closed)
            shell.backing.close(clean=True)
        node = shell.node
        node.shell = None
        self.stats["clean_stops"] += 1
        self.trace(f"{node.name}: down (clean)")
        survivor = self.peer_of(node.name)
        if survivor.shell is not None and not survivor.fenced:
            self.fence(node, "stopped while its peer runs")
        # `up` again later (at once if the quiet period began while it was going down).
        node.restart_at = self.now if self.quiet else self.now + self.fault_rng.uniform(0.2, 3.0)
        self.at(node.restart_at, self.restart, node)

    # --- detach and attach (the operator) ------------------------------------------------

    @staticmethod
    def _in_sync(shell: NodeShell) -> bool:
        e = shell.engine
        return (
            e.cstate is ConnState.CONNECTED
            and e.disk_state is DiskState.UP_TO_DATE
            and e.peer_disk is DiskState.UP_TO_DATE
            and shell.backing is not None
        )

    def detach(self, shell: NodeShell) -> None:
        """`detach`: the engine goes Diskless at once; the disk is closed once the local I/O
        in flight is done (finish_detach, as VolumeRunner._let_go)."""
        try:
            shell.feed("detach", refusable=True)
        except EngineError as err:
            self.trace(f"{shell.name}: detach refused: {err}")
            return
        self.stats["detaches"] += 1
        self.trace(f"{shell.name}: detach ({shell.engine.role.name})")

    def finish_detach(self, shell: NodeShell, effect: DetachLocal, deadline: float) -> None:
        if not shell.alive or shell.backing is None:
            return
        if (shell.busy or shell.engine.local_io_busy or shell._admitting) and self.now < deadline:
            self.at(self.now + 0.01, self.finish_detach, shell, effect, deadline)
            return
        if shell.busy or shell.engine.local_io_busy:
            self.violation("stuck", f"{shell.name}: local I/O still in flight 5 s into detach")
        shell.persist(force_bitmap=True)
        shell.backing.close(clean=effect.clean)
        shell.backing = None
        shell.metadata = None
        shell._admitted.clear()
        shell._issued.clear()
        shell.detaching = False
        self.trace(f"{shell.name}: disk closed, Diskless")
        shell.feed("disk_closed")
        when = self.now if self.quiet else self.now + self.fault_rng.uniform(0.2, 3.0)
        self.at(when, self.attach, shell)

    def attach(self, shell: NodeShell) -> None:
        """`attach` again: open the disk, hand the engine its metadata. A Diskless Primary
        without its UpToDate peer is refused: tried again a little later."""
        if not shell.alive or shell.backing is not None or shell.detaching:
            return
        node = shell.node
        node.file.closed = False
        try:
            backing = Backing.open_files(node.file, node.file, self.layout, name=node.name)
        except BackingError as err:
            self.core_error(f"{node.name}: attach failed: {err}", err)
            raise _Stop from None
        sb = backing.superblock
        try:
            shell.feed(
                "attach",
                disk_state=attach_disk_state(sb.flags, self.disk.fencing),
                generations=sb.generations,
                bitmap=backing.bitmap,
                crashed_primary=backing.crashed_primary,
                refusable=True,
            )
        except EngineError as err:
            backing.close(clean=True)
            self.trace(f"{node.name}: attach refused: {err}")
            self.at(self.now + 0.2, self.attach, shell)
            return
        shell.backing = backing
        shell.metadata = MetadataKeeper(backing, shell.engine, self.now)
        shell.persist(force_bitmap=True)
        self.stats["attaches"] += 1
        self.trace(f"{node.name}: attached again, {shell.engine.disk_state.literal}")

    def restart(self, node: _Node) -> None:
        if node.shell is None and node.restart_at is not None and node.restart_at <= self.now:
            self.start(node)
            self.update_fences()

    @staticmethod
    def _has_data(shell: NodeShell) -> bool:
        return shell.engine.disk_state is DiskState.UP_TO_DATE and shell.backing is not None

    def drop_volatile(self, name: str) -> None:
        for b in [b for b, blk in self.model.items() if name not in blk.durable]:
            del self.model[b]
            self._undurable.pop(b, None)
            self.stats["dropped_blocks"] += 1

    # --- fencing and promotion (the cluster manager) --------------------------------------

    def fence(self, node: _Node, why: str) -> None:
        if not node.fenced:
            node.fenced = True
            node.fence_epoch += 1
            self.trace(f"{node.name}: fenced ({why})")

    def update_fences(self) -> None:
        """crm-fence-peer: a Primary that does not see its peer Connected and UpToDate fences
        it before anything else completes; a node is unfenced when an unfenced node sees it
        Connected and UpToDate."""
        primary = self.primary()
        if (
            self.protocol != "C"
            and primary is not None
            and primary.conn is None
            and not self._has_data(primary)
            and self.model
        ):
            # Under A and B a Primary without UpToDate data of its own (Diskless, or resyncing
            # after its attach) had its acknowledged writes only on their way to the peer,
            # which drops what it has not written when the connection goes: start anew.
            self.trace(f"{primary.name}: connection lost without data of its own: model reset")
            self.model.clear()
            self._undurable.clear()
        for node in self.nodes.values():
            shell = node.shell
            if shell is None or node.fenced:
                continue
            engine = shell.engine
            peer = self.peer_of(node.name)
            in_sync = (
                engine.cstate is ConnState.CONNECTED
                and engine.peer_disk is DiskState.UP_TO_DATE
                and engine.disk_state in (DiskState.UP_TO_DATE, DiskState.DISKLESS)
            )
            if engine.role is Role.PRIMARY and not in_sync:
                self.fence(peer, "the Primary lost it")
            elif (
                in_sync
                and peer.fenced
                and peer.shell is not None
                and peer.shell.engine.disk_state is DiskState.UP_TO_DATE
            ):
                peer.fenced = False
                self.trace(f"{peer.name}: unfenced (in sync with {node.name})")
                self.check_node(peer.shell, "unfenced")

    def try_promote(self, node: _Node) -> bool:
        shell = node.shell
        if shell is None or node.fenced:
            return False
        try:
            shell.feed("promote", refusable=True)
        except EngineError as err:
            self.stats["promote_refused"] += 1
            self.trace(f"{node.name}: promotion refused: {err}")
            return False
        if shell.engine.role is not Role.PRIMARY:
            return False
        self.stats["promotions"] += 1
        self.trace(f"{node.name}: promoted")
        primaries = [s.name for s in self.shells() if s.engine.role is Role.PRIMARY]
        if len(primaries) > 1:
            self.violation("two-primaries", f"both {primaries} are Primary")
        self.check_node(shell, "promoted")
        self.pump()
        return True

    def manage(self) -> None:
        shells = self.shells()
        if not any(s.engine.role is Role.PRIMARY for s in shells):
            for shell in sorted(shells, key=lambda s: s.name):
                if not shell.node.fenced and self.try_promote(shell.node):
                    break
        self.at(self.now + 0.25, self.manage)

    # --- the network ---------------------------------------------------------------------

    def dial(self, shell: NodeShell) -> None:
        if not shell.alive:
            return
        peer = self.peer_of(shell.name).shell
        if (
            self.net_up
            and shell.conn is None
            and peer is not None
            and peer.conn is None
            and shell.engine.wants_connection
            and peer.engine.wants_connection
        ):
            self._conn_ids += 1
            conn = _Conn(self._conn_ids, {s.name: self.now for s in (shell, peer)})
            shell.conn = peer.conn = conn
            self.stats["connects"] += 1
            self.trace(f"connection {conn.ident} up")
            shell.feed("connection_made")
            if peer.alive and peer.conn is conn:
                peer.feed("connection_made")
        self.at(self.now + self.net_rng.uniform(0.2, 1.0), self.dial, shell)

    def send(self, shell: NodeShell, frame: bytes) -> None:
        conn = shell.conn
        if conn is None or conn.cut:
            return
        delay = self.net_delay * 0.2 + self.net_rng.expovariate(1 / self.net_delay)
        when = max(self.now + delay, conn.last[shell.name])
        conn.last[shell.name] = when
        conn.frames += 1
        self.at(when, self._deliver, conn, self.peer_of(shell.name), frame)

    def _deliver(self, conn: _Conn, node: _Node, frame: bytes) -> None:
        conn.frames -= 1
        shell = node.shell
        if shell is not None and shell.conn is conn and not conn.cut:
            shell.feed("receive_bytes", frame)

    def close_connection(self, shell: NodeShell, reason: str) -> None:
        """An engine dropped the link: its last frames still reach the peer, then the close."""
        conn = shell.conn
        if conn is None:
            return
        shell.conn = None
        self.trace(f"{shell.name}: closes connection {conn.ident}: {reason}")
        shell.feed("connection_lost", reason)
        when = max(self.now + self.net_delay, conn.last[shell.name])
        self.at(when, self._fin, conn, self.peer_of(shell.name))

    def _fin(self, conn: _Conn, node: _Node) -> None:
        shell = node.shell
        if shell is not None and shell.conn is conn:
            shell.conn = None
            shell.feed("connection_lost", "connection closed by peer")

    def cut(self, length: float) -> None:
        self.stats["cuts"] += 1
        self.net_up = False
        self.trace(f"network CUT for {length:.3f} s")
        for shell in self.shells():
            conn = shell.conn
            if conn is not None:
                conn.cut = True
                shell.conn = None
                shell.feed("connection_lost", "network cut")
        self.at(self.now + length, self.heal)

    def heal(self) -> None:
        if not self.net_up:
            self.net_up = True
            self.trace("network healed")

    # --- faults --------------------------------------------------------------------------

    def fault(self) -> None:
        if self.quiet:
            return
        rng = self.fault_rng
        kinds = (
            "cut",
            "crash-primary",
            "crash-secondary",
            "crash-any",
            "stop-secondary",
            "detach",
        )
        kind = rng.choices(kinds, (4, 3, 2, 1, 1, 3))[0]
        shells = self.shells()
        if kind == "detach":
            in_sync = [s for s in shells if self._in_sync(s)]
            if len(in_sync) == 2 and not any(s.stopping or s.detaching for s in shells):
                self.detach(rng.choice(in_sync))
        elif kind == "cut":
            if self.net_up:
                self.cut(rng.uniform(0.1, 3.0))
        elif kind == "stop-secondary":
            secondaries = [
                s for s in shells if s.engine.role is not Role.PRIMARY and not s.detaching
            ]
            if secondaries and not any(s.stopping for s in shells):
                self.clean_stop(rng.choice(secondaries))
        else:
            if kind == "crash-primary":
                shells = [s for s in shells if s.engine.role is Role.PRIMARY]
            elif kind == "crash-secondary":
                shells = [s for s in shells if s.engine.role is not Role.PRIMARY]
            if shells:
                self.crash(rng.choice(shells).node)
        self.at(self.now + rng.expovariate(1 / 2.0), self.fault)

    # --- the application -----------------------------------------------------------------

    def primary(self) -> NodeShell | None:
        for shell in self.shells():
            if shell.engine.role is Role.PRIMARY:
                return shell
        return None

    def pump(self) -> None:
        if self.quiet or self._issue_scheduled:
            return
        shell = self.primary()
        if shell is None:
            return
        if sum(1 for op in self.ops.values() if op.node == shell.name) >= self.queue_depth:
            return
        self._issue_scheduled = True
        self.at(self.now + self.work_rng.expovariate(1 / 0.004), self._issue)

    def _issue(self) -> None:
        self._issue_scheduled = False
        shell = self.primary()
        if self.quiet or shell is None:
            return
        if sum(1 for op in self.ops.values() if op.node == shell.name) < self.queue_depth:
            rng = self.work_rng
            self._handle += 1
            handle = self._handle
            if rng.random() < self.flush_share:
                peer = self.peer_of(shell.name)
                epoch = -1 if peer.fenced else peer.fence_epoch
                self.ops[handle] = _Op(
                    handle, shell.name, "flush", ack_mark=self._ack_seq, peer_epoch=epoch
                )
                shell.app_flush(handle)
            else:
                blocks = self._pick_blocks(rng)
                if blocks is not None:
                    tags = []
                    for b in blocks:
                        self._write_id += 1
                        tags.append(_tag(self._write_id, b, self.seed))
                    data = b"".join(tag * (BLOCK_SIZE // TAG_SIZE) for tag in tags)
                    fua = rng.random() < self.fua_share
                    op = _Op(handle, shell.name, "write", tuple(blocks), tuple(tags), fua)
                    self.ops[handle] = op
                    self.inflight_blocks.update(blocks)
                    shell.app_write(handle, blocks[0] * BLOCK_SIZE, data, fua)
        self.pump()

    def _pick_blocks(self, rng: random.Random) -> list[int] | None:
        for _ in range(5):
            count = rng.choice((1, 1, 1, 2, 4, 8))
            # An extent at a time, uniformly: the working set exceeds the activity log.
            extent = rng.randrange(self.data_bytes // (4 << 20))
            start = extent * 1024 + rng.randrange(1024 - count + 1)
            blocks = list(range(start, start + count))
            if not self.inflight_blocks.intersection(blocks):
                return blocks
        return None

    def on_complete(self, shell: NodeShell, effect: Complete) -> None:
        op = self.ops.pop(effect.handle, None)
        if op is None:
            self.violation(
                "core-error", f"{shell.name}: Complete for unknown handle {effect.handle}"
            )
            return
        peer = self.peer_of(shell.name)
        peer_vouched = (
            self.protocol == "C" and not peer.fenced and peer.shell is not None and peer.shell.alive
        )
        if op.kind == "write":
            self.inflight_blocks.difference_update(op.blocks)
            if not effect.ok:
                self.stats["writes_failed"] += 1
                self.trace(f"{shell.name}: write {op.handle} failed: {effect.error}")
                # After EIO a block holds the old or the new data: a Diskless Primary's write
                # fails when its peer goes before acknowledging it, and the peer may have it.
                for b, tag in zip(op.blocks, op.tags, strict=True):
                    block = self.model.get(b)
                    if block is not None:
                        block.tags.add(tag)
                        block.durable.clear()
                self.pump()
                return
            self.stats["writes_acked"] += 1
            self._ack_seq += 1
            own = self._has_data(shell)  # a Diskless Primary's writes are the peer's only
            for b, tag in zip(op.blocks, op.tags, strict=True):
                durable = set()
                if op.fua:
                    if own:
                        durable.add(shell.name)
                    if peer_vouched:
                        durable.add(peer.name)
                else:
                    self._undurable[b] = self._ack_seq
                self.model[b] = _Block({tag}, shell.name, self._ack_seq, durable)
            self.check_node(shell, f"ack of write {op.handle}", op.blocks)
            if peer_vouched and peer.shell is not None:
                self.check_node(peer.shell, f"ack of write {op.handle}", op.blocks)
        else:
            if effect.ok:
                self.stats["flushes_acked"] += 1
                both = peer_vouched and op.peer_epoch == peer.fence_epoch
                for b, seq in list(self._undurable.items()):
                    block = self.model.get(b)
                    if seq <= op.ack_mark and block is not None and block.origin == shell.name:
                        if self._has_data(shell):
                            block.durable.add(shell.name)
                        if both:
                            block.durable.add(peer.name)
                        del self._undurable[b]
        self.pump()

    # --- checks --------------------------------------------------------------------------

    def checked(self, shell: NodeShell) -> bool:
        engine = shell.engine
        if not self._has_data(shell):
            return False  # Diskless, or an attached disk still resyncing
        if engine.role is Role.PRIMARY:
            return True
        return (
            self.protocol == "C"
            and engine.disk_state is DiskState.UP_TO_DATE
            and not shell.node.fenced
        )

    def check_node(self, shell: NodeShell, why: str, blocks: Any = None) -> None:
        if not shell.alive or not self.checked(shell):
            return
        view = shell.node.file.view
        model = self.model
        for b in model if blocks is None else blocks:
            block = model.get(b)
            if block is None or b in self.inflight_blocks:
                continue
            off = b * BLOCK_SIZE
            found = bytes(view[off : off + TAG_SIZE])
            if found not in block.tags:
                engine = shell.engine
                expected = " or ".join(sorted(_describe(t) for t in block.tags))
                self.violation(
                    "acked-write-lost",
                    f"{shell.name} ({engine.role.name} {engine.disk_state.literal} "
                    f"{engine.cstate.value}) block {b} holds {_describe(found)}, the "
                    f"acknowledged data is {expected} (checked at {why})",
                )

    def check_all(self) -> None:
        for shell in self.shells():
            self.check_node(shell, "a fault")

    def periodic_check(self) -> None:
        self.update_fences()
        for shell in self.shells():
            self.check_node(shell, "the periodic check")
        self.at(self.now + 1.0, self.periodic_check)

    # --- the final quiet period ------------------------------------------------------------

    def begin_quiet(self) -> None:
        self.quiet = True
        self.trace("quiet period: no more faults or application requests")
        self.heal()
        for node in self.nodes.values():
            if node.shell is None:
                node.restart_at = self.now
                self.restart(node)
            elif node.shell.backing is None and not node.shell.detaching:
                self.attach(node.shell)
        self.at(self.now + TICK, self.check_quiet)

    def check_quiet(self) -> None:
        shells = self.shells()
        conn_idle = all(s.conn is not None and s.conn.frames == 0 for s in shells)
        done = (
            len(shells) == 2
            and conn_idle
            and not self.ops
            and all(
                s.engine.cstate is ConnState.CONNECTED
                and s.engine.disk_state is DiskState.UP_TO_DATE
                and s.engine.peer_disk is DiskState.UP_TO_DATE
                and not s.engine.transfer_log
                and not s.busy
                for s in shells
            )
        )
        if not done:
            if self.now - self.duration > QUIET_BOUND:
                states = "; ".join(
                    f"{s.name}: {s.engine.role.name} {s.engine.cstate.value} "
                    f"{s.engine.disk_state.literal}/{s.engine.peer_disk.literal} "
                    f"oos={s.engine.bitmap.count()} fenced={s.node.fenced}"
                    for s in shells
                )
                self.violation(
                    "stuck", f"not converged {QUIET_BOUND:g} s after the faults stopped: {states}"
                )
            self.at(self.now + TICK, self.check_quiet)
            return
        for shell in shells:
            self.check_node(shell, "the end")
        a, b = (self.nodes[name].file.view[: self.data_bytes] for name in NODES)
        if a != b:
            first = next(
                i
                for i in range(0, self.data_bytes, BLOCK_SIZE)
                if a[i : i + BLOCK_SIZE] != b[i : i + BLOCK_SIZE]
            )
            differ = sum(
                1
                for i in range(0, self.data_bytes, BLOCK_SIZE)
                if a[i : i + BLOCK_SIZE] != b[i : i + BLOCK_SIZE]
            )
            blk = first // BLOCK_SIZE
            self.violation(
                "resync-not-identical",
                f"{differ} blocks differ after the quiet period, first block {blk}: "
                f"{NODES[0]} has {_describe(bytes(a[first : first + TAG_SIZE]))}, "
                f"{NODES[1]} has {_describe(bytes(b[first : first + TAG_SIZE]))}",
            )
        self.converged_at = self.now
        self.stats["converged_after"] = round(self.now - self.duration, 6)
        self.trace("converged")


def replay_call(seed: int, duration: float, **options: str) -> str:
    extra = "".join(f", {key}={value}" for key, value in options.items())
    return (
        "python -c 'from hastack.sim.replica import run_replica_seed; "
        f"print(run_replica_seed({seed}, duration={duration!r}{extra}).render())'"
    )


def run_replica_seed(
    seed: int,
    *,
    duration: float = 20.0,
    protocol: str | None = None,
    faults: bool = True,
    engine_cls: type[ReplicaEngine] = ReplicaEngine,
    shell_cls: type[NodeShell] = NodeShell,
    file_cls: type[SimBlockFile] = SimBlockFile,
    volume_mib: int = VOLUME_MIB,
) -> ReplicaResult:
    """Run two replica nodes for `duration` simulated seconds of workload and faults, then a
    quiet period; the same arguments always give the same result."""
    options: dict[str, str] = {}
    if protocol is not None:
        options["protocol"] = f'"{protocol}"'
    if not faults:
        options["faults"] = "False"
    if volume_mib != VOLUME_MIB:
        options["volume_mib"] = str(volume_mib)
    for key, cls, default in (
        ("engine_cls", engine_cls, ReplicaEngine),
        ("shell_cls", shell_cls, NodeShell),
        ("file_cls", file_cls, SimBlockFile),
    ):
        if cls is not default:
            options[key] = f"{cls.__module__}.{cls.__qualname__}"
    sim = ReplicaSim(
        seed,
        duration=duration,
        protocol=protocol,
        faults=faults,
        engine_cls=engine_cls,
        shell_cls=shell_cls,
        file_cls=file_cls,
        volume_mib=volume_mib,
        replay=replay_call(seed, duration, **options),
    )
    return sim.run()


__all__ = [
    "INVARIANTS",
    "NodeShell",
    "ReplicaResult",
    "ReplicaSim",
    "ReplicaViolation",
    "run_replica_seed",
]
