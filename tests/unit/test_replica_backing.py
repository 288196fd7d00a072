"""The local disk of a replicated volume: metadata on a real file, crash recovery from the
activity log, and the ordering rules that keep the bitmap an overstatement."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hastack.replica.activitylog import BLOCKS_PER_EXTENT, EXTENT_SIZE
from hastack.replica.backing import (
    Backing,
    BackingError,
    attach_disk_state,
    create_metadata,
    flags_for,
    has_metadata,
    read_metadata,
)
from hastack.replica.generations import Generations
from hastack.replica.metadata import MdFlags
from hastack.replica.model import MetaDisk
from hastack.replica.states import DiskState

INTERNAL = MetaDisk()


def _disk(tmp_path: Path, mib: int = 64, name: str = "disk.img") -> str:
    path = tmp_path / name
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    return str(path)


def _created(tmp_path: Path, al_extents: int = 7) -> str:
    disk = _disk(tmp_path)
    create_metadata(disk, INTERNAL, al_extents=al_extents, rng=random.Random(1))
    return disk


def test_create_md_then_attach_reads_a_clean_fresh_volume(tmp_path: Path) -> None:
    disk = _disk(tmp_path)
    assert not has_metadata(disk, INTERNAL)
    layout = create_metadata(disk, INTERNAL, al_extents=7, rng=random.Random(1), node_name="a")
    assert has_metadata(disk, INTERNAL)
    backing = Backing.attach(disk, INTERNAL)
    try:
        assert backing.size == layout.data_sectors * 512
        assert not backing.crashed and not backing.crashed_primary
        assert backing.bitmap.count() == 0
        # running: the log is not clean until a clean detach
        assert not read_metadata(disk, INTERNAL).superblock.flags & MdFlags.AL_CLEAN
    finally:
        backing.close(clean=True)
    assert read_metadata(disk, INTERNAL).superblock.flags & MdFlags.AL_CLEAN


def test_attach_without_metadata_names_the_file_and_the_fix(tmp_path: Path) -> None:
    disk = _disk(tmp_path)
    with pytest.raises(BackingError, match=r"disk\.img.*create-md"):
        Backing.attach(disk, INTERNAL)


def test_a_missing_backing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BackingError, match=r"nothere\.img"):
        Backing.attach(str(tmp_path / "nothere.img"), INTERNAL)


def test_data_written_is_read_back_and_stays_out_of_the_metadata(tmp_path: Path) -> None:
    disk = _created(tmp_path)
    backing = Backing.attach(disk, INTERNAL)
    try:
        data = bytes(range(256)) * 16
        last = backing.size - len(data)  # the last 4 KiB of data, just before the metadata
        for offset in (0, last):
            prepared = backing.begin_write(offset, len(data))
            backing.write(prepared, offset, data, fua=True)
            backing.end_write(offset, len(data))
        assert backing.read(0, len(data)) == data
        assert backing.read(last, len(data)) == data
    finally:
        backing.close(clean=True)
    read_metadata(disk, INTERNAL)  # the metadata after the data is intact


def test_a_cold_extent_costs_one_log_transaction_a_hot_one_none(tmp_path: Path) -> None:
    disk = _created(tmp_path)
    backing = Backing.attach(disk, INTERNAL)
    try:
        first = backing.begin_write(0, 4096)
        assert first.transaction is not None and first.bitmap is None
        backing.write(first, 0, bytes(4096), fua=False)
        backing.end_write(0, 4096)
        again = backing.begin_write(8192, 4096)  # same 4 MiB extent
        assert again.transaction is None
        backing.end_write(8192, 4096)
        assert backing.stats["al"] == 1
    finally:
        backing.close(clean=True)


def test_after_a_crash_the_extents_in_the_log_are_out_of_sync(tmp_path: Path) -> None:
    disk = _created(tmp_path)
    backing = Backing.attach(disk, INTERNAL)
    for extent in (0, 3, 5):
        offset = extent * EXTENT_SIZE + 4096
        prepared = backing.begin_write(offset, 4096)
        backing.write(prepared, offset, b"x" * 4096, fua=False)
        backing.end_write(offset, 4096)
    backing.close(clean=False)  # a crash: no clean-log mark

    again = Backing.attach(disk, INTERNAL)
    try:
        assert again.crashed
        dirty = set(again.bitmap.dirty())
        expected = {
            bit
            for extent in (0, 3, 5)
            for bit in range(extent * BLOCKS_PER_EXTENT, (extent + 1) * BLOCKS_PER_EXTENT)
        }
        assert dirty == expected
    finally:
        again.close(clean=True)
    # the replayed bits were written at attach: a second crash does not lose them
    assert read_metadata(disk, INTERNAL).bitmap.count() == len(expected)


def test_an_evicted_extent_has_its_bitmap_written_before_the_transaction(tmp_path: Path) -> None:
    """Seven slots; the eighth cold extent evicts the oldest, whose unsynchronised bits must be
    on disk first: from then on only the bitmap remembers them."""
    disk = _created(tmp_path, al_extents=7)
    backing = Backing.attach(disk, INTERNAL)
    try:
        for extent in range(7):
            offset = extent * EXTENT_SIZE
            prepared = backing.begin_write(offset, 4096)
            backing.write(prepared, offset, bytes(4096), fua=False)
            backing.end_write(offset, 4096)
        backing.bitmap.set(0)  # extent 0 changed while disconnected
        prepared = backing.begin_write(7 * EXTENT_SIZE, 4096)
        assert prepared.bitmap is not None and prepared.transaction is not None
        backing.write(prepared, 7 * EXTENT_SIZE, bytes(4096), fua=False)
        backing.end_write(7 * EXTENT_SIZE, 4096)
        assert read_metadata(disk, INTERNAL).bitmap.test(0)
    finally:
        backing.close(clean=False)
    crashed = Backing.attach(disk, INTERNAL)
    try:
        assert crashed.bitmap.test(0)  # evicted from the log, kept by the bitmap
        assert crashed.bitmap.test(7 * BLOCKS_PER_EXTENT)  # in the log
    finally:
        crashed.close(clean=True)


def test_superblock_follows_generations_and_flags_and_a_crashed_primary_is_known(
    tmp_path: Path,
) -> None:
    disk = _created(tmp_path)
    backing = Backing.attach(disk, INTERNAL)
    gens = Generations(0x1234, 0, (0, 0))
    flags = flags_for(
        backing.superblock.flags,
        primary=True,
        disk=DiskState.UP_TO_DATE,
        connected=False,
        peer_outdated=False,
    )
    assert backing.update(generations=gens, flags=flags)
    assert not backing.update(generations=gens, flags=flags)  # nothing changed: no write
    backing.close(clean=False)
    again = Backing.attach(disk, INTERNAL)
    try:
        assert again.superblock.generations.current == 0x1234
        assert again.crashed_primary
        assert attach_disk_state(again.superblock.flags, "dont-care") is DiskState.UP_TO_DATE
    finally:
        again.close(clean=True)
    # a clean stop clears the crashed-primary mark
    assert not read_metadata(disk, INTERNAL).superblock.flags & MdFlags.CRASHED_PRIMARY


@pytest.mark.parametrize(
    ("flags", "fencing", "state"),
    [
        (MdFlags(0), "dont-care", DiskState.INCONSISTENT),
        (MdFlags.CONSISTENT, "dont-care", DiskState.OUTDATED),
        (MdFlags.CONSISTENT | MdFlags.WAS_UP_TO_DATE, "dont-care", DiskState.UP_TO_DATE),
        # fencing: Consistent until the peer is known outdated (DRBD 8.4's attach) ...
        (MdFlags.CONSISTENT | MdFlags.WAS_UP_TO_DATE, "resource-only", DiskState.CONSISTENT),
        # ... which PEER_OUTDATED remembers from before the stop.
        (
            MdFlags.CONSISTENT | MdFlags.WAS_UP_TO_DATE | MdFlags.PEER_OUTDATED,
            "resource-and-stonith",
            DiskState.UP_TO_DATE,
        ),
        (MdFlags.CONSISTENT | MdFlags.PEER_OUTDATED, "resource-only", DiskState.OUTDATED),
    ],
)
def test_attach_disk_state(flags: MdFlags, fencing: str, state: DiskState) -> None:
    assert attach_disk_state(flags, fencing) is state


def test_size_larger_than_the_device_is_refused_with_both_numbers(tmp_path: Path) -> None:
    disk = _disk(tmp_path, mib=8)
    with pytest.raises(BackingError, match=r"size.*available"):
        create_metadata(disk, INTERNAL, al_extents=7, rng=random.Random(1), size_sectors=1 << 30)


def test_external_metadata_lives_on_its_own_file(tmp_path: Path) -> None:
    disk = _disk(tmp_path, mib=16)
    meta = _disk(tmp_path, mib=1, name="meta.img")
    external = MetaDisk(device=meta)
    layout = create_metadata(disk, external, al_extents=7, rng=random.Random(1))
    assert layout.data_sectors * 512 == 16 << 20  # all of the backing device is data
    backing = Backing.attach(disk, external)
    try:
        data = b"d" * 4096
        prepared = backing.begin_write(backing.size - 4096, 4096)
        backing.write(prepared, backing.size - 4096, data, fua=True)
        backing.end_write(backing.size - 4096, 4096)
        assert backing.read(backing.size - 4096, 4096) == data
    finally:
        backing.close(clean=True)
    assert read_metadata(disk, external).superblock.flags & MdFlags.AL_CLEAN


def test_an_older_bitmap_snapshot_written_late_does_not_replace_a_newer_one(
    tmp_path: Path,
) -> None:
    """Two evictions' bitmap snapshots written by two threads in the wrong order: the older
    one must not overwrite the newer, which holds a bit set in between (found by the
    simulator: the block's extent was evicted by the newer transaction, so only the newer
    snapshot remembered it)."""
    disk = _created(tmp_path, al_extents=7)
    backing = Backing.attach(disk, INTERNAL)
    try:
        for extent in range(7):
            offset = extent * EXTENT_SIZE
            backing.write(backing.begin_write(offset, 4096), offset, bytes(4096), fua=False)
            backing.end_write(offset, 4096)
        older = backing.begin_write(7 * EXTENT_SIZE, 4096)  # evicts extent 0
        backing.bitmap.set(BLOCKS_PER_EXTENT)  # extent 1 changes while disconnected
        newer = backing.begin_write(8 * EXTENT_SIZE, 4096)  # evicts extent 1
        assert older.bitmap is not None and newer.bitmap is not None
        backing.write_metadata(newer)
        backing.write_metadata(older)  # late
        assert read_metadata(disk, INTERNAL).bitmap.test(BLOCKS_PER_EXTENT)
    finally:
        backing.close(clean=False)
