"""The replication engine, two instances driven against each other through an in-memory world.

`World` is the seed of the simulator: a byte array per disk, a frame queue per direction whose
delivery the test controls, local I/O that completes only when the test (or `settle`) says so,
and explicit time. Nothing here sleeps or touches a socket or file.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque

import pytest

from hastack.replica import wire
from hastack.replica.bitmap import BLOCK_SIZE
from hastack.replica.engine import (
    CloseConnection,
    Complete,
    Effect,
    FlushLocal,
    ReadLocal,
    ReplicaEngine,
    Send,
    WriteLocal,
)
from hastack.replica.generations import Generations, same
from hastack.replica.model import Disk, Net
from hastack.replica.states import ConnState, DiskState, Role

BLOCKS = 64
SIZE = BLOCKS * BLOCK_SIZE
A, B = "alice", "bob"
LocalIo = WriteLocal | ReadLocal | FlushLocal


def block(n: int, fill: int | None = None) -> tuple[int, bytes]:
    """(offset, data) writing one whole block `n` with a recognisable pattern."""
    value = n if fill is None else fill
    return n * BLOCK_SIZE, bytes([value & 0xFF]) * BLOCK_SIZE


class World:
    """Two nodes, two disks, one link. Frames and local I/O wait until delivered/completed."""

    def __init__(self, net: Net | None = None, *, nets: dict[str, Net] | None = None) -> None:
        self.now = 0.0
        base = net or Net()
        gens = Generations(current=0xA11CE0)  # both sides start in sync: same data, same ids
        self.engines = {
            name: ReplicaEngine(
                node=name,
                size=SIZE,
                net=(nets or {}).get(name, base),
                disk=Disk(resync_rate=1000),
                rng=random.Random(i),
                generations=gens,
            )
            for i, name in enumerate((A, B))
        }
        self.disks = {name: bytearray(SIZE) for name in self.engines}
        self.frames: dict[str, deque[bytes]] = {name: deque() for name in self.engines}
        self.io: dict[str, deque[LocalIo]] = {name: deque() for name in self.engines}
        self.io_log: dict[str, list[LocalIo | Send]] = {name: [] for name in self.engines}
        self.sent: list[tuple[str, wire.Message]] = []
        self.done: dict[int, Complete] = {}
        self.hold_io: set[str] = set()  # nodes whose local I/O `settle` leaves pending
        self.hold_frames: set[str] = set()  # nodes `settle` delivers nothing to
        self.closing: list[str] = []
        self.linked = False
        self._handle = 0

    # --- plumbing ------------------------------------------------------------------------

    @staticmethod
    def peer(name: str) -> str:
        return B if name == A else A

    def apply(self, name: str, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, WriteLocal | ReadLocal | FlushLocal):
                self.io[name].append(effect)
                self.io_log[name].append(effect)
            elif isinstance(effect, Send):
                self.frames[self.peer(name)].append(effect.frame)
                self.sent.append((name, effect.message))
                self.io_log[name].append(effect)
            elif isinstance(effect, Complete):
                assert effect.handle not in self.done, "a request completed twice"
                self.done[effect.handle] = effect
            elif isinstance(effect, CloseConnection):
                self.closing.append(name)

    def complete_io(self, name: str, count: int | None = None) -> int:
        """Finish the oldest `count` (default all) pending local I/Os of `name`, in order."""
        n = 0
        while self.io[name] and (count is None or n < count):
            op = self.io[name].popleft()
            data = b""
            if isinstance(op, WriteLocal):
                self.disks[name][op.offset : op.offset + len(op.data)] = op.data
            elif isinstance(op, ReadLocal):
                data = bytes(self.disks[name][op.offset : op.offset + op.length])
            self.apply(name, self.engines[name].io_done(self.now, op.token, True, data))
            n += 1
        return n

    def complete_one(self, name: str, index: int) -> None:
        """Finish one pending local I/O out of order (disks reorder concurrent requests)."""
        self.io[name].rotate(-index)
        op = self.io[name].popleft()
        self.io[name].rotate(index)
        self.io[name].appendleft(op)
        self.complete_io(name, 1)

    def deliver(self, name: str, count: int | None = None) -> int:
        n = 0
        while self.frames[name] and (count is None or n < count):
            frame = self.frames[name].popleft()
            self.apply(name, self.engines[name].receive_bytes(self.now, frame))
            n += 1
        return n

    def _close(self) -> None:
        # A closing side's last frames still reach the peer; then the peer sees the close.
        while self.closing:
            name = self.closing.pop(0)
            self.frames[name].clear()
            self.deliver(self.peer(name))
            self.frames[self.peer(name)].clear()
            self.linked = False
            self.apply(self.peer(name), self.engines[self.peer(name)].connection_lost(self.now))

    def settle(self, max_time: float = 60.0) -> None:
        """Deliver and complete everything not held; advance time while a resync runs."""
        deadline = self.now + max_time
        while True:
            progress = 0
            for name in self.engines:
                if name not in self.hold_frames:
                    progress += self.deliver(name)
                if name not in self.hold_io:
                    progress += self.complete_io(name)
            self._close()
            if progress:
                continue
            syncing = any(
                e.cstate in (ConnState.SYNC_TARGET, ConnState.SYNC_SOURCE, ConnState.WF_BITMAP)
                for e in self.engines.values()
            )
            if not syncing or self.now >= deadline:
                return
            self.tick(0.1)

    # --- actions -------------------------------------------------------------------------

    def tick(self, dt: float = 0.0) -> None:
        self.now += dt
        for name, engine in self.engines.items():
            self.apply(name, engine.tick(self.now))

    def connect(self, *, settle: bool = True) -> None:
        self.linked = True
        for name, engine in self.engines.items():
            self.apply(name, engine.connection_made(self.now))
        if settle:
            self.settle()

    def cut(self) -> None:
        """The link fails: frames in flight are lost, both sides see the connection drop."""
        self.linked = False
        for name, engine in self.engines.items():
            self.frames[name].clear()
            self.apply(name, engine.connection_lost(self.now))
        self.closing.clear()

    def write(self, name: str, offset: int, data: bytes, *, fua: bool = False) -> int:
        self._handle += 1
        self.apply(
            name, self.engines[name].app_write(self.now, self._handle, offset, data, fua=fua)
        )
        return self._handle

    def flush(self, name: str) -> int:
        self._handle += 1
        self.apply(name, self.engines[name].app_flush(self.now, self._handle))
        return self._handle

    def promote(self, name: str) -> None:
        self.apply(name, self.engines[name].promote(self.now))

    def messages(self, kind: type[wire.Message], sender: str | None = None) -> list:
        return [m for s, m in self.sent if isinstance(m, kind) and sender in (None, s)]

    def digest(self, name: str) -> str:
        return hashlib.sha256(self.disks[name]).hexdigest()


def connected_world(protocol: str = "C", **net: object) -> World:
    world = World(Net(protocol=protocol, **net))  # type: ignore[arg-type]
    world.connect()
    world.promote(A)
    world.settle()
    assert world.engines[A].cstate is ConnState.CONNECTED
    assert world.engines[B].peer_role is Role.PRIMARY
    return world


# --- completion rules --------------------------------------------------------------------


def test_protocol_c_completes_only_when_the_peer_wrote_it() -> None:
    world = connected_world("C")
    world.hold_io.add(B)
    offset, data = block(3)
    handle = world.write(A, offset, data)
    world.settle()
    assert handle not in world.done  # local write done, peer received it, peer disk not yet
    assert world.disks[A][offset : offset + BLOCK_SIZE] == data
    world.hold_io.clear()
    world.settle()
    assert world.done[handle].ok
    assert world.disks[B][offset : offset + BLOCK_SIZE] == data  # acknowledged => on both


def test_protocol_b_completes_on_receipt_while_the_peer_disk_lags() -> None:
    world = connected_world("B")
    world.hold_frames.add(B)
    world.hold_io.add(B)
    offset, data = block(5)
    handle = world.write(A, offset, data)
    world.settle()
    assert handle not in world.done  # local done, but the peer has not received it
    world.hold_frames.clear()
    world.settle()
    assert world.done[handle].ok  # peer received it ...
    assert world.disks[B][offset : offset + BLOCK_SIZE] != data  # ... but has not written it
    assert world.messages(wire.RecvAck, B) and not world.messages(wire.WriteAck, B)


def test_protocol_a_completes_once_local_and_sent() -> None:
    world = connected_world("A")
    world.hold_frames.add(B)  # nothing reaches the peer at all
    offset, data = block(7)
    handle = world.write(A, offset, data)
    world.settle()
    assert world.done[handle].ok
    assert world.frames[B], "the write was handed to the send path"
    assert world.disks[B][offset : offset + BLOCK_SIZE] != data


def test_a_local_write_still_pending_blocks_completion_under_every_protocol() -> None:
    for protocol in "ABC":
        world = connected_world(protocol)
        world.hold_io.add(A)
        handle = world.write(A, *block(1))
        world.settle()
        assert handle not in world.done, protocol


# --- epochs and barriers -----------------------------------------------------------------


def test_secondary_never_makes_the_next_epoch_stable_before_the_previous() -> None:
    world = connected_world("A")
    world.hold_io.add(B)
    first = world.write(A, *block(1))
    world.complete_io(A)  # the application sees the first write complete ...
    assert world.done[first].ok
    world.write(A, *block(2))  # ... so this one may depend on it: a new epoch
    world.settle()
    data_msgs = world.messages(wire.Data, A)
    assert [m.epoch for m in data_msgs] == [1, 2]
    assert [m.epoch for m in world.messages(wire.Barrier, A)] == [1]

    issued = lambda: [op for op in world.io_log[B] if not isinstance(op, Send)]  # noqa: E731
    # Only epoch 1's write is issued; epoch 2's waits for the barrier.
    assert [(type(op), getattr(op, "offset", None)) for op in issued()] == [
        (WriteLocal, 1 * BLOCK_SIZE)
    ]
    world.complete_io(B, 1)  # epoch 1's write done -> the barrier's flush is issued
    assert isinstance(issued()[-1], FlushLocal)
    assert len(issued()) == 2, "epoch 2 must wait for the flush"
    world.complete_io(B, 1)  # flush done -> barrier ack, then epoch 2's write
    ops = [op for op in world.io_log[B] if not isinstance(op, FlushLocal | ReadLocal)]
    ack_at = next(
        i
        for i, op in enumerate(ops)
        if isinstance(op, Send) and isinstance(op.message, wire.BarrierAck)
    )
    assert ops[ack_at].message.epoch == 1
    assert [w.offset for w in ops[:ack_at] if isinstance(w, WriteLocal)] == [1 * BLOCK_SIZE]
    later_writes = [op for op in ops[ack_at:] if isinstance(op, WriteLocal)]
    assert [w.offset for w in later_writes] == [2 * BLOCK_SIZE]


def test_writes_without_an_intervening_completion_share_an_epoch() -> None:
    world = connected_world("C")
    world.hold_io.add(A)
    world.write(A, *block(1))
    world.write(A, *block(2))  # issued before the first completed: no order between them
    world.settle()
    assert {m.epoch for m in world.messages(wire.Data, A)} == {1}


# --- link loss and resync ----------------------------------------------------------------


def test_link_drop_marks_exactly_the_unacked_and_later_writes_dirty() -> None:
    world = connected_world("C")
    for n in (1, 2):
        world.write(A, *block(n))
        world.settle()
    world.tick(0.1)  # closes the epoch: barrier, flush, barrier ack
    world.settle()
    assert world.engines[A].transfer_log == []
    world.hold_frames.add(B)
    world.write(A, *block(10))
    world.write(A, *block(11))  # sent, never received
    world.settle()
    assert sorted(o for o, _ in world.engines[A].transfer_log) == [10 * BLOCK_SIZE, 11 * BLOCK_SIZE]
    world.cut()
    world.hold_frames.clear()
    assert world.engines[A].cstate is ConnState.CONNECTING
    handle = world.write(A, *block(20))  # disconnected: local only, tracked
    world.settle()
    assert world.done[handle].ok
    assert list(world.engines[A].bitmap.dirty()) == [10, 11, 20]
    assert world.engines[B].bitmap.count() == 0


def _dirty_world() -> World:
    world = connected_world("C")
    world.write(A, *block(1))
    world.settle()
    world.tick(0.1)
    world.settle()
    world.hold_frames.add(B)
    world.write(A, *block(10))
    world.write(A, *block(11))
    world.settle()
    world.cut()
    world.hold_frames.clear()
    world.write(A, *block(20))
    world.write(A, *block(21, fill=0x77))
    world.settle()
    return world


def test_reconnect_resyncs_only_the_dirty_blocks_and_the_disks_end_identical() -> None:
    world = _dirty_world()
    assert world.digest(A) != world.digest(B)
    dirty = list(world.engines[A].bitmap.dirty())
    assert dirty == [10, 11, 20, 21]
    world.sent.clear()
    world.connect()
    resync = world.messages(wire.ResyncData, A)
    assert sorted(m.offset // BLOCK_SIZE for m in resync) == dirty  # only those, each once
    assert world.digest(A) == world.digest(B)
    for name, engine in world.engines.items():
        assert engine.cstate is ConnState.CONNECTED, name
        assert engine.disk_state is DiskState.UP_TO_DATE, name
        assert engine.bitmap.count() == 0, name
    # The same data generation on both sides (bit 0 only records who was Primary).
    gens_a, gens_b = world.engines[A].generations, world.engines[B].generations
    assert same(gens_a.current, gens_b.current) and gens_a.history == gens_b.history
    assert world.engines[A].status["peer_disk"] == "UpToDate"


def test_resync_respects_the_rate_limit() -> None:
    world = _dirty_world()
    for engine in world.engines.values():
        engine.disk = Disk(resync_rate=4, c_plan_ahead=0)  # fixed 4 KiB/s: 1 block/s
    world.connect(settle=False)
    world.settle(max_time=0)  # handshake, bitmaps, the first block: no time passes
    assert world.engines[B].cstate is ConnState.SYNC_TARGET
    start = world.now
    world.settle()
    assert world.engines[B].cstate is ConnState.CONNECTED
    # 4 blocks at 1 block/s, the first from the initial bucket: about 3 s, not instantly.
    assert 2.5 <= world.now - start <= 4.0


def test_writes_during_resync_reach_both_sides() -> None:
    world = _dirty_world()
    for engine in world.engines.values():
        engine.disk = Disk(resync_rate=4, c_plan_ahead=0)  # slow, fixed rate
    world.connect(settle=False)
    world.settle(max_time=0)  # handshake, bitmaps, the first block: no time passes
    assert world.engines[A].cstate is ConnState.SYNC_SOURCE
    handle = world.write(A, *block(30, fill=0x55))
    overlapping = world.write(A, *block(21, fill=0x99))  # a block still to be resynced
    world.settle()
    assert world.done[handle].ok and world.done[overlapping].ok
    assert world.digest(A) == world.digest(B)
    assert world.disks[B][21 * BLOCK_SIZE] == 0x99


def test_resync_source_rereads_a_block_written_while_its_read_was_in_flight() -> None:
    world = _dirty_world()
    world.hold_io.add(A)
    world.connect()
    reads = [op for op in world.io[A] if isinstance(op, ReadLocal)]
    assert reads, "the source is reading blocks for the target"
    offset = reads[0].offset
    world.write(A, offset, b"\xee" * BLOCK_SIZE)  # lands after the read was issued
    world.hold_io.clear()
    world.settle()
    assert world.digest(A) == world.digest(B)
    assert world.disks[B][offset] == 0xEE


# --- flush -------------------------------------------------------------------------------


def test_flush_waits_for_the_peer_under_protocol_c() -> None:
    world = connected_world("C")
    world.write(A, *block(4))
    world.settle()
    world.hold_io.add(B)
    handle = world.flush(A)
    world.settle()  # local flush done; the peer has not flushed
    assert handle not in world.done
    assert world.messages(wire.Barrier, A)
    world.hold_io.clear()
    world.settle()
    assert world.done[handle].ok
    acks = world.messages(wire.BarrierAck, B)
    assert acks and acks[-1].epoch == world.messages(wire.Barrier, A)[-1].epoch


def test_flush_under_protocol_a_needs_only_the_local_flush() -> None:
    world = connected_world("A")
    world.write(A, *block(4))
    world.hold_frames.add(B)
    handle = world.flush(A)
    world.settle()
    assert world.done[handle].ok


def test_flush_completes_locally_when_the_link_drops() -> None:
    world = connected_world("C")
    world.write(A, *block(4))
    world.settle()
    world.hold_frames.add(B)
    handle = world.flush(A)
    world.settle()
    assert handle not in world.done
    world.cut()
    world.settle()
    assert world.done[handle].ok
    assert list(world.engines[A].bitmap.dirty()) == [4]


# --- roles, auth, integrity --------------------------------------------------------------


def test_a_secondary_refuses_application_writes() -> None:
    world = connected_world("C")
    handle = world.write(B, *block(2))
    flush = world.flush(B)
    assert not world.done[handle].ok and "Secondary" in world.done[handle].error
    assert not world.done[flush].ok
    assert not world.io[B] and world.disks[B] == bytearray(SIZE)


def test_promote_is_refused_while_the_peer_is_primary() -> None:
    world = connected_world("C")
    with pytest.raises(Exception, match="peer is Primary"):
        world.promote(B)


def test_matching_secrets_authenticate_and_connect() -> None:
    world = World(Net(cram_hmac_alg="sha256", shared_secret="s3cret"))
    world.connect()
    assert all(e.cstate is ConnState.CONNECTED for e in world.engines.values())
    assert len(world.messages(wire.AuthResponse)) == 2  # both directions were challenged


def test_auth_mismatch_refuses_the_connection() -> None:
    nets = {
        A: Net(cram_hmac_alg="sha256", shared_secret="right"),
        B: Net(cram_hmac_alg="sha256", shared_secret="wrong"),
    }
    world = World(nets=nets)
    world.connect()
    assert all(e.cstate is ConnState.STANDALONE for e in world.engines.values())
    assert not world.messages(wire.Hello), "no state is revealed to an unauthenticated peer"
    assert world.messages(wire.Disconnect)
    assert not world.linked


def test_unauthenticated_peer_is_refused_when_auth_is_configured() -> None:
    world = World(nets={A: Net(cram_hmac_alg="sha1", shared_secret="x"), B: Net()})
    world.connect()
    assert world.engines[A].cstate is ConnState.STANDALONE
    assert world.engines[A].peer_role is None


def test_data_integrity_mismatch_drops_the_connection_and_marks_the_write_dirty() -> None:
    world = connected_world("C", data_integrity_alg="crc32c")
    world.hold_frames.add(B)
    world.write(A, *block(6))
    frame = bytearray(world.frames[B].pop())
    frame[-1] ^= 0xFF  # corrupt the payload in flight
    world.frames[B].append(bytes(frame))
    world.hold_frames.clear()
    world.settle()
    assert world.disks[B][6 * BLOCK_SIZE : 7 * BLOCK_SIZE] == bytes(BLOCK_SIZE)
    assert world.engines[B].cstate is ConnState.CONNECTING
    assert list(world.engines[A].bitmap.dirty()) == [6]


def test_garbage_from_the_peer_drops_the_connection() -> None:
    world = connected_world("C")
    world.apply(B, world.engines[B].receive_bytes(world.now, b"\x00" * 40))
    assert world.engines[B].cstate is ConnState.CONNECTING
    assert B in world.closing


# --- randomised runs: the simulator's seed -------------------------------------------------


@pytest.mark.parametrize("seed", range(200))
def test_random_runs_end_identical_and_keep_every_completed_write(seed: int) -> None:
    """Random writes, flushes, out-of-order local I/O, partial delivery, link cuts and
    reconnects; at the end both disks equal the model of what the application wrote."""
    rng = random.Random(seed)
    world = World(Net(protocol=rng.choice("ABC")))
    world.connect()
    world.promote(A)
    world.settle()
    model = bytearray(SIZE)
    busy: dict[int, int] = {}  # block -> handle of its write in flight
    for _ in range(300):
        for blk, handle in list(busy.items()):
            if handle in world.done:
                assert world.done[handle].ok
                del busy[blk]
        roll = rng.random()
        if roll < 0.25:
            blk = rng.randrange(BLOCKS)
            if blk not in busy:  # the application never overlaps writes in flight
                offset, data = block(blk, rng.randrange(256))
                model[offset : offset + BLOCK_SIZE] = data
                busy[blk] = world.write(A, offset, data, fua=rng.random() < 0.1)
        elif roll < 0.3:
            world.flush(A)
        elif roll < 0.55:
            name = rng.choice((A, B))
            if world.io[name]:
                world.complete_one(name, rng.randrange(len(world.io[name])))
        elif roll < 0.8:
            name = rng.choice((A, B))
            world.deliver(name, 1)
            world._close()
        elif roll < 0.9:
            world.tick(rng.choice((0.05, 0.5)))
            world._close()
        elif roll < 0.95 and world.linked:
            world.cut()
        elif not world.linked and all(
            e.cstate is ConnState.CONNECTING for e in world.engines.values()
        ):
            world.connect(settle=False)
    if not world.linked:
        world.connect(settle=False)
    world.settle()
    world.tick(0.1)  # close the last epoch
    world.settle()
    assert all(h in world.done for h in busy.values())
    assert world.disks[A] == model
    for name, engine in world.engines.items():
        assert engine.cstate is ConnState.CONNECTED, (name, engine.cstate)
        assert engine.disk_state is DiskState.UP_TO_DATE, name
    assert world.digest(A) == world.digest(B)
