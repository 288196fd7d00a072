"""Diskless operation of the replication engine (DRBD 8.4's detach/attach and on-io-error):
two engines wired together in memory, the world playing the shell's part (it closes a detached
disk once the engine's local I/O has drained, and reopens it with the metadata it recorded)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from hastack.replica import wire
from hastack.replica.bitmap import BLOCK_SIZE, Bitmap
from hastack.replica.engine import (
    Complete,
    DetachLocal,
    Effect,
    EngineError,
    ReadLocal,
    WriteLocal,
)
from hastack.replica.generations import Generations, created, same
from hastack.replica.model import Disk, Net
from hastack.replica.states import ConnState, DiskState, Role
from tests.unit.test_replica_engine import A, B, block
from tests.unit.test_replica_engine_ops import OpsWorld, states


@dataclass
class Recorded:
    """What a detached disk's metadata says (what the shell writes before closing it)."""

    disk_state: DiskState
    generations: Generations
    bitmap: Bitmap


class DisklessWorld(OpsWorld):
    """OpsWorld whose shell lets go of a detached disk and can attach it again."""

    def __init__(self, net: Net | None = None, **kw: object) -> None:
        super().__init__(net, **kw)  # type: ignore[arg-type]
        self.detaching: set[str] = set()
        self.recorded: dict[str, Recorded] = {}
        self.detach_effects: dict[str, list[DetachLocal]] = {A: [], B: []}

    def apply(self, name: str, effects: list[Effect]) -> None:
        super().apply(name, effects)
        for effect in effects:
            if isinstance(effect, DetachLocal):
                self.detaching.add(name)
                self.detach_effects[name].append(effect)
        self._close_detached()

    def _close_detached(self) -> None:
        for name in list(self.detaching):
            engine = self.engines[name]
            if engine.local_io_busy:
                continue
            self.detaching.discard(name)
            self.recorded[name] = Recorded(
                engine.metadata_disk_state,
                engine.generations,
                engine.bitmap.copy(),
            )
            self.apply(name, engine.disk_closed(self.now))

    def attach(self, name: str) -> None:
        rec = self.recorded[name]
        self.run(
            name,
            "attach",
            disk_state=rec.disk_state,
            generations=rec.generations,
            bitmap=rec.bitmap,
        )

    def read(self, name: str, offset: int, length: int, **kw: object) -> int:
        self._handle += 1
        self.apply(
            name,
            self.engines[name].app_read(self.now, self._handle, offset, length, **kw),  # type: ignore[arg-type]
        )
        return self._handle

    def fail_next_io(self, name: str, kind: type) -> None:
        """Complete the oldest pending local I/O of `kind` on `name` with an error."""
        for op in list(self.io[name]):
            if isinstance(op, kind):
                self.io[name].remove(op)
                self.apply(name, self.engines[name].io_done(self.now, op.token, False))
                return
        raise AssertionError(f"no pending {kind.__name__} on {name}")


def pair(net: Net | None = None, *, on_io_error: str = "detach") -> DisklessWorld:
    disk = Disk(resync_rate=1000, on_io_error=on_io_error)  # type: ignore[arg-type]
    world = DisklessWorld(net, disk=disk)
    world.connect()
    world.promote(A)
    world.settle()
    assert states(world, A) == ("Connected", "UpToDate", "UpToDate")
    return world


def data_at(world: DisklessWorld, name: str, n: int) -> bytes:
    return bytes(world.disks[name][n * BLOCK_SIZE : (n + 1) * BLOCK_SIZE])


# --- detach of the Secondary ---------------------------------------------------------------


def test_a_detached_secondary_is_diskless_and_the_primary_records_what_it_misses() -> None:
    world = pair()
    before = world.engines[A].generations
    world.run(B, "detach")
    world.settle()
    assert states(world, B) == ("Connected", "Diskless", "UpToDate")
    assert states(world, A) == ("Connected", "UpToDate", "Diskless")
    assert world.recorded[B].disk_state is DiskState.OUTDATED  # the Primary writes on
    assert world.detach_effects[B][0].clean
    handle = world.write(A, *block(5, 0x55))
    world.settle()
    assert world.done[handle].ok
    assert not world.messages(wire.Data, A), "nothing mirrored to a Diskless peer"
    assert list(world.engines[A].bitmap.dirty()) == [5]
    assert data_at(world, B, 5) == bytes(BLOCK_SIZE)
    # The Primary started a new data generation when the peer's disk went (DRBD's rule).
    assert world.engines[A].generations.bitmap == before.current
    assert world.engines[B].status["disk"] == "Diskless"
    assert world.engines[B].status["peer_disk"] == "UpToDate"


def test_attach_of_the_secondary_resyncs_exactly_the_blocks_written_meanwhile() -> None:
    world = pair()
    world.run(B, "detach")
    world.settle()
    for n in (3, 9, 40):
        world.write(A, *block(n, 0x70 + n))
    world.settle()
    world.attach(B)
    world.settle()
    assert states(world, B) == ("Connected", "UpToDate", "UpToDate")
    assert states(world, A) == ("Connected", "UpToDate", "UpToDate")
    assert world.engines[B].stats["resync_blocks_received"] == 3
    assert world.disks[A] == world.disks[B]
    assert world.engines[A].bitmap.count() == world.engines[B].bitmap.count() == 0
    assert same(world.engines[A].generations.current, world.engines[B].generations.current)
    # Mirroring is back: a new write reaches both disks.
    world.write(A, *block(10, 0xAB))
    world.settle()
    assert data_at(world, B, 10) == bytes([0xAB]) * BLOCK_SIZE


def test_attach_while_disconnected_keeps_the_recorded_state_and_resyncs_on_connect() -> None:
    world = pair()
    world.run(B, "detach")
    world.settle()
    world.write(A, *block(7, 0x77))
    world.settle()
    world.cut()
    world.attach(B)
    assert world.engines[B].disk_state is DiskState.OUTDATED
    with pytest.raises(EngineError, match="Outdated"):
        world.engines[B].promote(world.now)
    world.connect()
    world.settle()
    assert world.disks[A] == world.disks[B]
    assert states(world, B) == ("Connected", "UpToDate", "UpToDate")


# --- a Diskless Primary --------------------------------------------------------------------


def test_a_diskless_primary_reads_and_writes_through_the_peer() -> None:
    world = pair()
    world.write(A, *block(2, 0x22))
    world.settle()
    world.run(A, "detach")
    world.settle()
    assert states(world, A) == ("Connected", "Diskless", "UpToDate")
    assert states(world, B) == ("Connected", "UpToDate", "Diskless")
    handle = world.write(A, *block(4, 0x44))
    assert not any(isinstance(op, WriteLocal) for op in world.io[A]), "no local write"
    world.settle()
    assert world.done[handle].ok
    assert data_at(world, B, 4) == bytes([0x44]) * BLOCK_SIZE
    assert data_at(world, A, 4) == bytes(BLOCK_SIZE), "the detached disk is not touched"
    assert list(world.engines[B].bitmap.dirty()) == [4], "the peer records the only copy"
    read = world.read(A, 2 * BLOCK_SIZE, 2 * BLOCK_SIZE + 10)
    assert not any(isinstance(op, ReadLocal) for op in world.io[A])
    world.settle()
    reply = world.done[read]
    assert reply.ok
    assert reply.data == bytes([0x22]) * BLOCK_SIZE + bytes(BLOCK_SIZE) + bytes([0x44]) * 10
    assert world.messages(wire.DataRequest, A) and world.messages(wire.DataReply, B)


def test_a_diskless_primarys_write_completes_on_the_peers_ack_alone_under_protocol_c() -> None:
    world = pair(Net(protocol="C"))
    world.run(A, "detach")
    world.settle()
    world.hold_io.add(B)
    handle = world.write(A, *block(6, 6))
    world.settle()
    assert handle not in world.done, "the peer's disk has not written it yet"
    world.hold_io.clear()
    world.settle()
    assert world.done[handle].ok


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_a_diskless_primarys_flush_waits_for_the_peers_barrier_ack(protocol: str) -> None:
    world = pair(Net(protocol=protocol))
    world.run(A, "detach")
    world.settle()
    world.write(A, *block(6, 6))
    world.hold_io.add(B)
    flush = world.flush(A)
    world.settle()
    assert flush not in world.done, "no local flush: only the peer's makes it stable"
    world.hold_io.clear()
    world.settle()
    assert world.done[flush].ok


def test_a_diskless_primary_without_its_peer_fails_io_with_eio() -> None:
    world = pair()
    world.run(A, "detach")
    world.settle()
    world.hold_frames.add(B)
    pending = world.read(A, 0, 4096)
    world.settle()
    world.cut()
    assert not world.done[pending].ok, "a read in flight fails when the peer goes"
    write = world.write(A, *block(1, 1))
    read = world.read(A, 0, 4096)
    flush = world.flush(A)
    for handle in (write, read, flush):
        assert not world.done[handle].ok
        assert "no UpToDate peer" in world.done[handle].error


def test_detach_of_a_primary_without_an_uptodate_peer_needs_force() -> None:
    world = pair()
    world.cut()
    with pytest.raises(EngineError, match="no UpToDate peer"):
        world.engines[A].detach(world.now)
    world.run(A, "detach", force=True)
    world.settle()
    assert world.engines[A].disk_state is DiskState.DISKLESS
    handle = world.write(A, *block(1, 1))
    assert not world.done[handle].ok


def test_promotion_of_a_diskless_node_needs_a_connected_uptodate_peer() -> None:
    world = DisklessWorld(disk=Disk(resync_rate=1000))
    world.connect()
    world.run(A, "detach")
    world.settle()
    world.promote(A)  # connected to UpToDate B: allowed
    assert world.engines[A].role is Role.PRIMARY
    world.run(A, "demote")
    world.cut()
    with pytest.raises(EngineError, match="Diskless and no UpToDate peer"):
        world.engines[A].promote(world.now)


def test_a_diskless_node_reconnects_without_a_resync() -> None:
    world = pair()
    world.run(A, "detach")
    world.settle()
    world.cut()
    world.connect()
    world.settle()
    assert states(world, A) == ("Connected", "Diskless", "UpToDate")
    handle = world.write(A, *block(8, 8))
    world.settle()
    assert world.done[handle].ok and data_at(world, B, 8) == bytes([8]) * BLOCK_SIZE


def test_a_diskless_primary_attaches_again_and_becomes_uptodate_while_writing() -> None:
    world = pair()
    for n in range(0, 64, 3):
        world.write(A, *block(n, n))
    world.settle()
    world.run(A, "detach")
    world.settle()
    for n in range(1, 64, 4):
        world.write(A, *block(n, 0x80 + n))
    world.settle()
    world.attach(A)
    world.deliver(B)  # the renegotiating Hello; B answers with its own
    world.deliver(A)
    assert world.engines[A].disk_state is DiskState.INCONSISTENT
    assert world.engines[A].cstate is ConnState.WF_BITMAP
    # Reads of blocks still out of sync come from the peer; the rest from the local disk.
    n = 5
    read = world.read(A, n * BLOCK_SIZE, BLOCK_SIZE)
    writes = [world.write(A, *block(k, 0xC0 + k)) for k in (5, 9, 13, 30)]
    world.settle()
    assert world.done[read].data == bytes([0x80 + n]) * BLOCK_SIZE
    assert all(world.done[h].ok for h in writes)
    assert states(world, A) == ("Connected", "UpToDate", "UpToDate")
    assert world.disks[A] == world.disks[B]


def test_attach_of_a_diskless_primary_without_its_peer_is_refused() -> None:
    world = pair()
    world.run(A, "detach")
    world.settle()
    world.cut()
    with pytest.raises(EngineError, match="no connected UpToDate peer"):
        world.attach(A)


def reorderable(world: DisklessWorld, name: str) -> list[int]:
    """Pending local I/Os that may complete now: the disk reorders concurrent requests, but
    the shell issues a write only after every earlier overlapping one (VolumeRunner)."""
    ops = list(world.io[name])
    free = []
    for i, op in enumerate(ops):
        if isinstance(op, WriteLocal) and any(
            isinstance(e, WriteLocal)
            and e.offset < op.offset + len(op.data)
            and op.offset < e.offset + len(e.data)
            for e in ops[:i]
        ):
            continue
        free.append(i)
    return free


@pytest.mark.parametrize("seed", range(16))
def test_writes_racing_a_primary_targets_resync_end_identical(seed: int) -> None:
    rng = random.Random(seed)
    world = pair(Net(protocol=rng.choice("ABC")))
    world.run(A, "detach")
    world.settle()
    for _ in range(20):
        world.write(A, *block(rng.randrange(64), rng.randrange(256)))
    world.settle()
    world.attach(A)
    world.deliver(B)
    world.deliver(A)
    for _ in range(300):
        choice = rng.random()
        if choice < 0.3:
            n, fill = rng.randrange(64), rng.randrange(256)
            world.write(A, *block(n, fill))
        elif choice < 0.6:
            name = rng.choice((A, B))
            world.deliver(name, rng.randrange(1, 4))
        elif choice < 0.9:
            name = rng.choice((A, B))
            free = reorderable(world, name)
            if free:
                world.complete_one(name, rng.choice(free))
        else:
            world.tick(0.05)
    world.settle()
    assert states(world, A) == ("Connected", "UpToDate", "UpToDate")
    assert world.disks[A] == world.disks[B]


# --- on-io-error ---------------------------------------------------------------------------


def test_on_io_error_detach_detaches_and_the_write_completes_from_the_peer() -> None:
    world = pair(on_io_error="detach")
    world.hold_io.add(A)
    handle = world.write(A, *block(3, 3))
    world.settle()
    world.fail_next_io(A, WriteLocal)
    world.hold_io.clear()
    world.settle()
    assert world.done[handle].ok, "the peer's copy makes the write good"
    assert world.engines[A].disk_state is DiskState.DISKLESS
    assert not world.detach_effects[A][0].clean
    assert world.recorded[A].disk_state is DiskState.INCONSISTENT
    assert world.engines[B].peer_disk is DiskState.DISKLESS
    read = world.read(A, 3 * BLOCK_SIZE, BLOCK_SIZE)
    world.settle()
    assert world.done[read].data == bytes([3]) * BLOCK_SIZE


def test_a_failed_local_read_is_retried_through_the_peer() -> None:
    world = pair(on_io_error="detach")
    world.write(A, *block(9, 9))
    world.settle()
    read = world.read(A, 9 * BLOCK_SIZE, BLOCK_SIZE, local_failed=True)
    world.settle()
    assert world.done[read].ok and world.done[read].data == bytes([9]) * BLOCK_SIZE
    assert world.engines[A].disk_state is DiskState.DISKLESS


def test_on_io_error_pass_on_makes_the_disk_inconsistent_and_keeps_it() -> None:
    world = pair(on_io_error="pass_on")
    world.hold_io.add(A)
    handle = world.write(A, *block(3, 3))
    world.settle()
    world.fail_next_io(A, WriteLocal)
    world.hold_io.clear()
    world.settle()
    assert world.done[handle].ok
    assert states(world, A) == ("Connected", "Inconsistent", "UpToDate")
    assert world.engines[B].peer_disk is DiskState.INCONSISTENT
    assert not world.detach_effects[A]
    assert list(world.engines[A].bitmap.dirty()) == [3]
    # The failed block is read from the peer, a good one from the local disk.
    reads = [world.read(A, 3 * BLOCK_SIZE, 8), world.read(A, 4 * BLOCK_SIZE, 8)]
    assert [type(op) for op in world.io[A]] == [ReadLocal]
    world.settle()
    assert world.done[reads[0]].data == bytes([3]) * 8
    assert world.done[reads[1]].ok


def test_on_io_error_pass_on_without_a_peer_reports_the_error() -> None:
    world = pair(on_io_error="pass_on")
    world.cut()
    world.hold_io.add(A)
    handle = world.write(A, *block(3, 3))
    world.fail_next_io(A, WriteLocal)
    assert not world.done[handle].ok
    assert world.engines[A].disk_state is DiskState.INCONSISTENT
    # An Inconsistent disk alone takes no more writes: the resync that repairs it would
    # overwrite them with the peer's older data.
    later = world.write(A, *block(9, 9))
    assert not world.done[later].ok and "Inconsistent" in world.done[later].error


def test_on_io_error_call_local_io_error_runs_the_handler_and_detaches() -> None:
    world = pair(on_io_error="call-local-io-error")
    world.hold_io.add(A)
    world.write(A, *block(3, 3))
    world.settle()
    world.fail_next_io(A, WriteLocal)
    assert (A, "local-io-error") in world.handlers
    assert world.engines[A].disk_state is DiskState.DISKLESS


def test_a_secondarys_write_error_under_detach_negacks_and_the_primary_marks_it() -> None:
    world = pair(on_io_error="detach")
    world.hold_io.add(B)
    handle = world.write(A, *block(12, 12))
    world.settle()
    world.fail_next_io(B, WriteLocal)
    world.hold_io.clear()
    world.settle()
    assert world.done[handle].ok  # the Primary's own copy
    assert states(world, B) == ("Connected", "Diskless", "UpToDate")
    assert 12 in set(world.engines[A].bitmap.dirty())
    assert world.recorded[B].disk_state is DiskState.INCONSISTENT


def test_a_meta_data_error_detaches_even_under_pass_on() -> None:
    world = pair(on_io_error="pass_on")
    world.run(A, "local_io_error", "activity log write", meta=True)
    world.settle()
    assert world.engines[A].disk_state is DiskState.DISKLESS


def test_a_disk_detached_mid_barrier_acks_only_after_it_is_closed() -> None:
    world = pair()
    world.hold_io.add(B)
    world.write(A, *block(1, 1))
    world.settle()  # B's write is in flight on its disk
    world.run(B, "detach")
    world.tick(0.1)  # closes the epoch: A sends its barrier
    world.settle()
    assert B in world.detaching, "B's write is still in flight: the disk stays open"
    assert not world.messages(wire.BarrierAck, B)
    world.hold_io.clear()
    world.settle()
    assert B not in world.detaching
    assert world.messages(wire.BarrierAck, B)
    assert world.engines[A].transfer_log == []


def test_a_complete_carries_a_read_error_when_the_peer_cannot_read() -> None:
    world = pair(on_io_error="detach")
    world.run(A, "detach")
    world.settle()
    world.hold_io.add(B)
    read = world.read(A, 0, 4096)
    world.settle()
    world.fail_next_io(B, ReadLocal)  # B's disk fails the read: B detaches (policy)
    world.hold_io.clear()
    world.settle()
    done: Complete = world.done[read]
    assert not done.ok and "could not read" in done.error


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_a_write_the_detached_peer_refuses_after_its_completion_goes_to_the_bitmap(
    protocol: str,
) -> None:
    # Found by the simulator (seed 6, protocol A): the write completed (on send, or on the
    # peer's receipt), the peer's NegAck found no request any more, and the attach did not
    # resync the block.
    world = pair(Net(protocol=protocol))
    world.hold_io.add(B)
    first = world.write(A, *block(21, 1))
    second = world.write(A, *block(21, 2))  # queued on B behind the first (they overlap)
    world.settle()
    assert world.done[first].ok and world.done[second].ok
    world.run(B, "detach")  # the queued write is refused (NegAck)
    world.hold_io.clear()
    world.settle()
    assert 21 in set(world.engines[A].bitmap.dirty())
    world.attach(B)
    world.settle()
    assert data_at(world, B, 21) == bytes([2]) * BLOCK_SIZE
    assert world.disks[A] == world.disks[B]


def test_a_secondary_under_a_diskless_primary_detaches_only_with_force() -> None:
    world = pair()
    world.run(A, "detach")
    world.settle()
    with pytest.raises(EngineError, match="Diskless Primary"):
        world.engines[B].detach(world.now)
    world.run(B, "detach", force=True)
    world.settle()
    handle = world.write(A, *block(1, 1))
    assert not world.done[handle].ok


def test_a_detach_marks_the_writes_the_peer_has_not_confirmed() -> None:
    world = pair(Net(protocol="A"))
    world.hold_frames.add(B)
    world.write(A, *block(30, 30))
    world.complete_io(A)
    world.run(A, "detach")  # the write is in the transfer log: the peer may lack it
    world.settle()
    assert 30 in set(world.recorded[A].bitmap.dirty())


@pytest.mark.parametrize("protocol", ["A", "B", "C"])
def test_a_diskless_primarys_write_completes_under_every_protocol(protocol: str) -> None:
    # Found by the simulator (seed 25, protocol A): with no local write to finish, nothing
    # completed a write that protocol A completes on sending.
    world = pair(Net(protocol=protocol))
    world.run(A, "detach")
    world.settle()
    world.hold_frames.add(B)
    handle = world.write(A, *block(2, 2))
    assert (handle in world.done) is (protocol == "A")
    world.hold_frames.clear()
    world.settle()
    assert world.done[handle].ok
    assert data_at(world, B, 2) == bytes([2]) * BLOCK_SIZE


@pytest.mark.parametrize("name", [A, B])
def test_a_disk_with_fresh_metadata_attached_again_gets_a_full_sync(name: str) -> None:
    # A replaced disk (or one whose metadata could not be written after an I/O error) is
    # given `create-md` before `attach`: every block is copied from the peer.
    world = pair()
    world.run(name, "detach")
    world.settle()
    world.write(A, *block(3, 3))
    world.settle()
    world.disks[name][:] = bytes(len(world.disks[name]))  # a new, empty disk
    before = world.engines[name].stats["resync_blocks_received"]
    world.run(
        name,
        "attach",
        disk_state=DiskState.INCONSISTENT,
        generations=created(),
        bitmap=Bitmap(world.engines[name].bitmap.nbits),
    )
    world.settle()
    assert world.engines[name].stats["resync_blocks_received"] - before == 64
    assert states(world, name) == ("Connected", "UpToDate", "UpToDate")
    assert world.disks[A] == world.disks[B]


def test_a_write_done_on_a_disk_detached_before_its_completion_needs_the_peer() -> None:
    # Found by the simulator (seed 180, protocol C): the local write was done, the disk was
    # detached, the link went before the peer's ack, and the write was acknowledged -- from a
    # disk out of service; the attach then resynced the peer's older block over it.
    world = pair(Net(protocol="C"))
    world.hold_frames.add(B)
    handle = world.write(A, *block(42, 42))
    flush = world.flush(A)
    world.complete_io(A)  # the local write and flush are done; the peer's ack is not
    assert handle not in world.done
    world.run(A, "detach")
    world.cut()
    assert not world.done[handle].ok
    assert not world.done[flush].ok
