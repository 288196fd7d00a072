"""`resize`: the size rule, the metadata move on real files (and where a crash at each step
leaves it), and the engines' size agreement and resync of the new area."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hastack.replica import wire
from hastack.replica.backing import (
    Backing,
    BackingError,
    OsFile,
    create_metadata,
    read_metadata,
)
from hastack.replica.bitmap import BLOCK_SIZE, Bitmap
from hastack.replica.engine import Effect, EngineError
from hastack.replica.engine_resize import ResizeAsked, Resized
from hastack.replica.metadata import SECTOR, MdFlags, internal_layout
from hastack.replica.model import MetaDisk
from hastack.replica.resize import (
    ResizeError,
    agree_size,
    capacity,
    new_layout,
    parse_size,
    write_moved_metadata,
)
from hastack.replica.states import ConnState, DiskState, Role
from tests.unit.test_replica_engine import SIZE, A, B, World

INTERNAL = MetaDisk()
MIB = 1 << 20


def _disk(tmp_path: Path, mib: int, name: str = "disk.img") -> str:
    path = tmp_path / name
    with open(path, "wb") as f:
        f.truncate(mib * MIB)
    return str(path)


def _grow(path: str, mib: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(mib * MIB)


# --- the size rule -------------------------------------------------------------------------


def test_the_new_size_is_the_smaller_room_of_the_two_sides() -> None:
    assert agree_size(current=1000, local_max=5000, peer_max=3000) == 3000
    assert agree_size(current=1000, local_max=2000, peer_max=9000) == 2000


def test_a_limit_caps_the_size_and_the_operators_size_wins_over_drbd_conf() -> None:
    assert agree_size(current=1000, local_max=5000, peer_max=5000, local_limit=4000) == 4000
    # the smaller non-zero drbd.conf size of the two sides
    assert (
        agree_size(current=1000, local_max=5000, peer_max=5000, local_limit=4000, peer_limit=3500)
        == 3500
    )
    assert (
        agree_size(current=1000, local_max=5000, peer_max=5000, local_limit=2000, requested=4500)
        == 4500
    )


def test_a_size_larger_than_both_sides_have_is_refused_with_the_numbers() -> None:
    with pytest.raises(ResizeError, match=r"--size of 6000 sectors is too big.*room for 5000"):
        agree_size(current=1000, local_max=5000, peer_max=8000, requested=6000)


def test_shrinking_needs_an_explicit_size() -> None:
    # a backing device that shrank is not a reason to cut the data
    with pytest.raises(ResizeError, match="backing device shrank"):
        agree_size(current=4000, local_max=3000, peer_max=5000)
    # the operator asked for it: allowed (the data beyond is the operator's business)
    assert agree_size(current=4000, local_max=5000, peer_max=5000, requested=2000) == 2000


def test_size_units_as_drbdadm_takes_them() -> None:
    assert parse_size("2048") == 2048
    assert parse_size("1M") == 2048
    assert parse_size("1G") == 2 * MIB
    assert parse_size("8s") == 8
    with pytest.raises(ResizeError):
        parse_size("1.5G")


def test_the_metadata_may_not_move_backwards_or_by_less_than_a_superblock() -> None:
    old = internal_layout(64 * MIB // SECTOR)
    with pytest.raises(ResizeError, match="smaller than when it was attached"):
        new_layout(old, internal_layout(60 * MIB // SECTOR), 1000)
    with pytest.raises(ResizeError, match="grew by less"):
        new_layout(old, internal_layout(64 * MIB // SECTOR + 2), 1000)
    grown = new_layout(old, internal_layout(96 * MIB // SECTOR), old.data_sectors)
    assert grown.md_offset > old.md_offset and grown.data_sectors == old.data_sectors


# --- the metadata move on real files -------------------------------------------------------


def _attached_with_dirty_blocks(tmp_path: Path) -> tuple[str, Backing, list[int]]:
    disk = _disk(tmp_path, 64)
    create_metadata(disk, INTERNAL, al_extents=7, rng=random.Random(1))
    backing = Backing.attach(disk, INTERNAL)
    dirty = [3, 700, backing.bitmap.nbits - 1]
    for bit in dirty:
        backing.bitmap.set(bit)
    backing.write_bitmap()
    return disk, backing, dirty


def test_a_grown_file_gets_its_metadata_at_the_new_end_with_the_bitmap_grown(
    tmp_path: Path,
) -> None:
    disk, backing, dirty = _attached_with_dirty_blocks(tmp_path)
    old = backing.layout
    pattern = bytes(range(256)) * 16
    backing.write_data(old.data_sectors * SECTOR - len(pattern), pattern, fua=True)
    _grow(disk, 96)
    room = capacity(disk, INTERNAL)
    layout = new_layout(old, room, room.data_sectors)
    old_bits = backing.bitmap.nbits
    backing.bitmap.resize(layout.bitmap_bits)
    backing.bitmap.set_range(old_bits, layout.bitmap_bits)  # the new area: out of sync
    backing.resize(layout)
    assert backing.size == room.data_sectors * SECTOR
    # the data before the old end is intact
    assert backing.read(old.data_sectors * SECTOR - len(pattern), len(pattern)) == pattern
    backing.close(clean=True)

    md = read_metadata(disk, INTERNAL)
    assert md.layout.md_offset == room.md_offset > old.md_offset
    assert md.superblock.data_sectors == room.data_sectors
    assert not md.superblock.flags & MdFlags.FULL_SYNC
    assert [b for b in dirty if md.bitmap.test(b)] == dirty
    assert md.bitmap.count() == len(dirty) + (layout.bitmap_bits - old_bits)
    again = Backing.attach(disk, INTERNAL)
    try:
        assert again.size == room.data_sectors * SECTOR
        assert again.bitmap.count() == md.bitmap.count()
    finally:
        again.close(clean=True)


def test_after_a_resize_to_less_than_the_room_the_agreed_size_is_kept_at_attach(
    tmp_path: Path,
) -> None:
    disk, backing, _ = _attached_with_dirty_blocks(tmp_path)
    _grow(disk, 96)
    room = capacity(disk, INTERNAL)
    agreed = backing.layout.data_sectors + 8192  # the peer had less room
    layout = new_layout(backing.layout, room, agreed)
    backing.bitmap.resize(layout.bitmap_bits)
    backing.resize(layout)
    backing.close(clean=True)
    again = Backing.attach(disk, INTERNAL)
    try:
        assert again.size == agreed * SECTOR  # DRBD's la-size-sect, not the whole device
    finally:
        again.close(clean=True)


def test_external_metadata_stays_in_place_and_its_bitmap_grows(tmp_path: Path) -> None:
    disk = _disk(tmp_path, 64)
    meta = _disk(tmp_path, 4, "meta.img")
    flexible = MetaDisk(device=meta)
    create_metadata(disk, flexible, al_extents=7, rng=random.Random(1))
    backing = Backing.attach(disk, flexible)
    old = backing.layout
    _grow(disk, 128)
    room = capacity(disk, flexible)
    layout = new_layout(old, room, room.data_sectors)
    assert layout.md_offset == old.md_offset == 0
    backing.bitmap.resize(layout.bitmap_bits)
    backing.resize(layout)
    backing.close(clean=True)
    md = read_metadata(disk, flexible)
    assert md.superblock.data_sectors == 128 * MIB // SECTOR
    assert md.bitmap.nbits == 128 * MIB // BLOCK_SIZE


class _CrashAfter:
    """A metadata file that loses every write after the first `writes` (a crash there)."""

    def __init__(self, path: str, writes: int) -> None:
        self.file = OsFile(path)
        self.left = writes

    def pread(self, length: int, offset: int) -> bytes:
        return self.file.pread(length, offset)

    def pwrite(self, data: bytes, offset: int) -> None:
        if self.left > 0:
            self.file.pwrite(data, offset)
        self.left -= 1

    def fdatasync(self) -> None:
        self.file.fdatasync()

    def close(self) -> None:
        self.file.close()


@pytest.mark.parametrize("writes", range(6))
def test_a_crash_at_any_step_of_the_move_leaves_a_readable_superblock_that_overstates(
    tmp_path: Path, writes: int
) -> None:
    disk, backing, dirty = _attached_with_dirty_blocks(tmp_path)
    old = backing.layout
    sb = backing.superblock
    bitmap = backing.bitmap.copy()
    backing.close(clean=False)  # the daemon dies with the volume attached
    _grow(disk, 96)
    room = capacity(disk, INTERNAL)
    layout = new_layout(old, room, room.data_sectors)
    bitmap.resize(layout.bitmap_bits)
    bitmap.set_range(old.bitmap_bits, layout.bitmap_bits)
    meta = _CrashAfter(disk, writes)
    try:
        write_moved_metadata(meta, old, layout, sb, bitmap.to_bytes())
    finally:
        meta.close()
    # The superblock at the new end, or (the device shrunk back) at the old place.
    try:
        md = read_metadata(disk, INTERNAL)
        at_new = True
    except Exception:
        with open(disk, "r+b") as f:
            f.truncate(64 * MIB)
        md = read_metadata(disk, INTERNAL)
        at_new = False
    assert at_new == (writes >= 2)  # the switch is the second write
    if writes >= 5:  # every write done: the move is complete, nothing overstated
        assert not md.superblock.flags & MdFlags.FULL_SYNC
        assert md.bitmap == bitmap
    # Never an understatement: each block dirty before is dirty now.
    for bit in dirty:
        assert md.bitmap.test(bit)
    if at_new:
        assert md.bitmap.count_range(old.bitmap_bits, layout.bitmap_bits) == (
            layout.bitmap_bits - old.bitmap_bits
        )
    # and the volume attaches from there (the log replayed, a full sync if marked)
    again = Backing.attach(disk, INTERNAL)
    try:
        assert again.size == md.layout.data_sectors * SECTOR
        assert all(again.bitmap.test(bit) for bit in dirty)
        if md.superblock.flags & MdFlags.FULL_SYNC:
            assert again.bitmap.count() == again.bitmap.nbits
    finally:
        again.close(clean=True)
    assert not read_metadata(disk, INTERNAL).superblock.flags & MdFlags.FULL_SYNC


# --- the engines agree -------------------------------------------------------------------


class ResizeWorld(World):
    """The engine test world, with each side's room and a shell that answers ResizeAsked
    and grows its disk on Resized."""

    def __init__(self, rooms: dict[str, int]) -> None:
        super().__init__()
        self.rooms = rooms  # data sectors each side's device has room for
        self.resized: dict[str, list[Resized]] = {A: [], B: []}

    def apply(self, name: str, effects: list[Effect]) -> None:
        super().apply(name, effects)
        for effect in effects:
            if isinstance(effect, ResizeAsked):
                engine = self.engines[name]
                self.apply(name, engine.answer_resize(self.now, max_sectors=self.rooms[name]))
            elif isinstance(effect, Resized):
                self.resized[name].append(effect)
                disk = self.disks[name]
                if effect.new_size > len(disk):
                    # whatever the device held there: not the peer's bytes
                    fill = 0xAA if name == A else 0x55
                    disk.extend(bytes([fill]) * (effect.new_size - len(disk)))
                else:
                    del disk[effect.new_size :]


def _resize_world(room_a: int, room_b: int) -> ResizeWorld:
    world = ResizeWorld({A: room_a, B: room_b})
    world.connect()
    world.promote(A)
    world.settle()
    return world


def test_connected_resize_takes_the_smaller_room_and_resyncs_the_new_area_from_the_primary() -> (
    None
):
    sectors = SIZE // SECTOR
    world = _resize_world(sectors * 4, sectors * 3)
    for n in range(3):
        world.write(A, *_block(n))
    world.settle()
    engine_a = world.engines[A]
    world.apply(B, world.engines[B].request_resize(world.now, max_sectors=sectors * 3))
    world.settle()
    for name in (A, B):
        engine = world.engines[name]
        assert engine.size == sectors * 3 * SECTOR
        assert [(r.old_size, r.new_size) for r in world.resized[name]] == [
            (SIZE, sectors * 3 * SECTOR)
        ]
        assert engine.cstate is ConnState.CONNECTED
        assert engine.bitmap.count() == 0
    assert world.engines[B].resize_result == (True, f"resized to {sectors * 3} sectors")
    assert world.engines[B].disk_state is DiskState.UP_TO_DATE
    # the new area was copied from the Primary: both disks identical
    assert world.digest(A) == world.digest(B)
    assert bytes(world.disks[B][SIZE : SIZE + 16]) == b"\xaa" * 16
    assert engine_a.stats["resync_blocks_sent"] == 2 * SIZE // BLOCK_SIZE


def _block(n: int) -> tuple[int, bytes]:
    return n * BLOCK_SIZE, bytes([n + 1]) * BLOCK_SIZE


def test_assume_clean_skips_the_resync_of_the_new_area() -> None:
    sectors = SIZE // SECTOR
    world = _resize_world(sectors * 2, sectors * 2)
    syncs = len(world.messages(wire.SyncUuid))
    world.apply(
        A,
        world.engines[A].request_resize(world.now, max_sectors=sectors * 2, assume_clean=True),
    )
    world.settle()
    for name in (A, B):
        assert world.engines[name].size == 2 * SIZE
        assert world.engines[name].bitmap.count() == 0
        assert world.engines[name].cstate is ConnState.CONNECTED
    assert len(world.messages(wire.SyncUuid)) == syncs  # no resync started
    assert world.digest(A) != world.digest(B)  # the operator's promise, not checked


def test_the_peer_refuses_a_size_it_has_no_room_for() -> None:
    sectors = SIZE // SECTOR
    world = _resize_world(sectors * 4, sectors * 2)
    world.apply(
        A,
        world.engines[A].request_resize(
            world.now, max_sectors=sectors * 4, requested_sectors=sectors * 3
        ),
    )
    world.settle()
    ok, why = world.engines[A].resize_result or (True, "")
    assert not ok and "too big" in why
    assert world.engines[A].size == world.engines[B].size == SIZE
    assert world.resized == {A: [], B: []}


def test_resize_needs_one_primary_and_a_quiet_connection() -> None:
    sectors = SIZE // SECTOR
    world = ResizeWorld({A: sectors * 2, B: sectors * 2})
    world.connect()
    with pytest.raises(EngineError, match="need one Primary"):
        world.engines[A].request_resize(world.now, max_sectors=sectors * 2)
    world.cut()
    with pytest.raises(EngineError, match="refused: connection is"):
        world.engines[A].request_resize(world.now, max_sectors=sectors * 2)


def test_disconnected_resize_alone_marks_the_new_area_for_the_next_resync() -> None:
    sectors = SIZE // SECTOR
    world = _resize_world(sectors * 2, sectors * 2)
    world.cut()
    engine = world.engines[A]
    world.apply(A, engine.resize_alone(world.now, sectors=sectors * 2))
    assert engine.size == 2 * SIZE
    assert engine.bitmap.count() == SIZE // BLOCK_SIZE
    assert engine.role is Role.PRIMARY


def test_the_bitmap_grows_and_shrinks_in_place() -> None:
    bitmap = Bitmap(10)
    bitmap.set_range(0, 10)
    holder = bitmap
    bitmap.resize(20)
    assert holder.nbits == 20 and bitmap.count() == 10
    bitmap.resize(3)
    assert bitmap.count() == 3 and len(bitmap.to_bytes()) == 1
    assert Bitmap.from_bytes(bitmap.to_bytes(), 3) == bitmap


def test_a_device_grown_while_detached_is_refused_with_the_way_back(tmp_path: Path) -> None:
    disk = _disk(tmp_path, 64)
    create_metadata(disk, INTERNAL, al_extents=7, rng=random.Random(1))
    _grow(disk, 96)
    with pytest.raises(BackingError, match=r"grew while it was not attached.*shrink it back"):
        Backing.attach(disk, INTERNAL)
    _grow(disk, 64)  # back to its old size: the meta-data is found again
    Backing.attach(disk, INTERNAL).close(clean=True)
