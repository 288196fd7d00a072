"""The replicated volume's metadata: the Ms formula and layouts, the superblock, the bitmap and
the activity log (sans-IO: everything is bytes in memory)."""

from __future__ import annotations

import itertools
import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.replica import activitylog as al
from hastack.replica.activitylog import (
    ActivityLog,
    ActivityLogBusy,
    ActivityLogError,
    Transaction,
    replay,
    resync_runs,
    write_to_ring,
)
from hastack.replica.bitmap import Bitmap, BitmapError, bits_for_sectors
from hastack.replica.generations import Generations
from hastack.replica.metadata import (
    AL_OFFSET,
    BITMAP_OFFSET,
    MAX_INDEXED_DATA_SECTORS,
    ForeignMetadataError,
    MdFlags,
    Metadata,
    MetadataChecksumError,
    MetadataError,
    MetadataFieldError,
    MetadataVersionError,
    NoMetadataError,
    Superblock,
    create_md,
    flexible_layout,
    indexed_layout,
    internal_layout,
    layout_for,
    md_size_sectors,
)
from hastack.replica.model import MetaDisk

GIB_SECTORS = (1 << 30) // 512
TIB_SECTORS = (1 << 40) // 512

# --- the seed's formula and the layouts -------------------------------------------------


@pytest.mark.parametrize(
    ("data_sectors", "ms"),
    [
        (GIB_SECTORS, 8 * 8 + 72),  # 1 GiB: 8 x 128 MiB -> 136 sectors (68 KiB)
        (TIB_SECTORS, 8192 * 8 + 72),  # 1 TiB: 65608 sectors (about 32 MiB)
        (1, 8 + 72),  # any partial 128 MiB needs a whole bitmap page
        ((1 << 18), 80),
        ((1 << 18) + 1, 88),
        (0, 72),
    ],
)
def test_md_size_follows_the_seed_formula(data_sectors: int, ms: int) -> None:
    assert md_size_sectors(data_sectors) == ms


def test_md_size_in_mib_stays_under_the_seeds_approximation() -> None:
    # The seed: M_MB < C_MB / 32768 + 1.
    for c_mib in (1, 100, 1024, 1 << 20, 3 << 20):
        ms = md_size_sectors(c_mib * 2048)
        assert ms / 2048 < c_mib / 32768 + 1


def test_internal_layout_puts_metadata_at_the_end() -> None:
    layout = internal_layout(GIB_SECTORS)
    assert layout.md_sectors == 136
    assert layout.data_sectors == GIB_SECTORS - 136
    assert layout.md_offset == (GIB_SECTORS - 136) * 512
    assert layout.md_offset + layout.md_bytes == GIB_SECTORS * 512
    assert layout.al_offset == layout.md_offset + AL_OFFSET
    assert layout.bitmap_offset == layout.md_offset + BITMAP_OFFSET
    # The bitmap area (after 72 reserved sectors) holds the data's bits.
    assert (layout.md_sectors - 72) * 512 * 8 >= layout.bitmap_bits


def test_internal_layout_refuses_a_device_smaller_than_its_metadata() -> None:
    with pytest.raises(MetadataFieldError, match="too small"):
        internal_layout(80)


def test_flexible_and_indexed_layouts() -> None:
    flexible = flexible_layout(GIB_SECTORS)
    assert (flexible.md_offset, flexible.md_sectors, flexible.data_sectors) == (
        0,
        136,
        GIB_SECTORS,
    )
    indexed = indexed_layout(GIB_SECTORS, 3)
    assert indexed.md_offset == 3 * (128 << 20)
    assert indexed.md_bytes == 128 << 20
    with pytest.raises(MetadataFieldError, match="128 MiB"):
        indexed_layout(MAX_INDEXED_DATA_SECTORS + 1, 0)
    with pytest.raises(MetadataFieldError, match="negative"):
        indexed_layout(GIB_SECTORS, -1)


def test_layout_for_reads_drbd_conf_meta_disk() -> None:
    assert layout_for(MetaDisk(), GIB_SECTORS).kind == "internal"
    assert layout_for(MetaDisk("/dev/md0"), GIB_SECTORS).kind == "flexible"
    indexed = layout_for(MetaDisk("/dev/md0", 2), GIB_SECTORS)
    assert (indexed.kind, indexed.md_offset) == ("indexed", 2 * (128 << 20))


# --- the superblock ---------------------------------------------------------------------


def _superblock() -> Superblock:
    return Superblock(
        data_sectors=GIB_SECTORS - 136,
        md_sectors=136,
        generations=Generations(0xDEADBEEF00000001, 0xCAFE000000000000, (0x1234, 0x5678)),
        flags=MdFlags.CONSISTENT | MdFlags.CRASHED_PRIMARY | MdFlags.WAS_UP_TO_DATE,
        al_extents=1237,
        device_uuid=0x0123456789ABCDEF,
        node_name="alice",
        peer_name="bob",
    )


def test_superblock_round_trip() -> None:
    sb = _superblock()
    block = sb.encode()
    assert len(block) == 4096
    assert Superblock.decode(block) == sb


def test_superblock_refuses_blank_area() -> None:
    with pytest.raises(NoMetadataError, match="create-md"):
        Superblock.decode(bytes(4096))


def test_superblock_refuses_foreign_data() -> None:
    block = bytearray(_superblock().encode())
    block[:8] = b"\x53\xef\x00\x00ext4"
    with pytest.raises(ForeignMetadataError, match="not hastack meta-data"):
        Superblock.decode(bytes(block))


def test_superblock_names_drbd_metadata_when_it_sees_it() -> None:
    block = bytearray(4096)
    block[:4] = (0x8374026C).to_bytes(4, "big")
    with pytest.raises(ForeignMetadataError, match=r"DRBD 8\.4"):
        Superblock.decode(bytes(block))


def test_superblock_refuses_a_flipped_bit() -> None:
    block = bytearray(_superblock().encode())
    block[40] ^= 0x10  # inside the bitmap identifier
    with pytest.raises(MetadataChecksumError, match="checksum mismatch"):
        Superblock.decode(bytes(block))


def _resealed(block: bytearray) -> bytes:
    block[12:16] = bytes(4)
    block[12:16] = struct.pack(">I", zlib.crc32(block))
    return bytes(block)


def test_superblock_refuses_unknown_version() -> None:
    block = bytearray(_superblock().encode())
    block[8:10] = (7).to_bytes(2, "big")
    with pytest.raises(MetadataVersionError, match="version 7"):
        Superblock.decode(_resealed(block))


def test_superblock_refuses_unknown_flags() -> None:
    block = bytearray(_superblock().encode())
    block[64:68] = (1 << 30).to_bytes(4, "big")
    with pytest.raises(MetadataFieldError, match="unknown flags"):
        Superblock.decode(_resealed(block))


def test_superblock_refuses_metadata_too_small_for_its_bitmap() -> None:
    block = bytearray(_superblock().encode())
    block[24:32] = (80).to_bytes(8, "big")  # 1 GiB needs 136
    with pytest.raises(MetadataFieldError, match="cannot hold the bitmap"):
        Superblock.decode(_resealed(block))


def test_superblock_refuses_truncation_and_bad_names() -> None:
    with pytest.raises(MetadataFieldError, match="truncated"):
        Superblock.decode(_superblock().encode()[:100])
    block = bytearray(_superblock().encode())
    block[80:82] = b"\xff\xfe"
    with pytest.raises(MetadataFieldError, match="UTF-8"):
        Superblock.decode(_resealed(block))
    with pytest.raises(MetadataFieldError, match="does not fit"):
        Superblock(data_sectors=8, md_sectors=80, node_name="x" * 64).encode()


@settings(max_examples=300)
@given(st.binary(min_size=0, max_size=4200))
def test_superblock_decode_of_random_bytes_fails_only_with_metadata_error(data: bytes) -> None:
    # Anything else escaping (struct.error, UnicodeDecodeError, IndexError...) fails the test.
    try:
        decoded = Superblock.decode(data)
    except MetadataError as err:
        assert str(err)  # every refusal says what was wrong
    else:
        assert decoded.encode() == data  # only a genuine superblock is accepted


@settings(max_examples=200)
@given(st.integers(0, 4095), st.integers(1, 255))
def test_superblock_any_single_byte_corruption_is_refused(offset: int, xor: int) -> None:
    block = bytearray(_superblock().encode())
    block[offset] ^= xor
    with pytest.raises(MetadataError):
        Superblock.decode(bytes(block))


# --- create-md and the whole area -------------------------------------------------------


def test_create_md_writes_a_fresh_superblock_clean_bitmap_and_empty_log() -> None:
    layout = internal_layout(GIB_SECTORS)
    md = create_md(layout, al_extents=1237, rng=random.Random(1), node_name="alice")
    assert md.superblock.generations == Generations(4, 0, (0, 0))
    assert md.superblock.flags == MdFlags.AL_CLEAN
    assert md.superblock.device_uuid != 0
    assert md.bitmap.count() == 0 and md.bitmap.nbits == layout.bitmap_bits
    assert replay(md.al_ring, 1237).extents == frozenset()
    area = md.encode()
    assert len(area) == 136 * 512
    back = Metadata.decode(area, layout)
    assert back.superblock == md.superblock and back.bitmap == md.bitmap


def test_metadata_round_trip_keeps_bitmap_and_log() -> None:
    layout = flexible_layout(GIB_SECTORS)
    md = create_md(layout, al_extents=67, rng=random.Random(2))
    md.bitmap.set_range(1000, 5000)
    log = ActivityLog(67)
    ring = bytearray(md.al_ring)
    access = log.begin_write(0, 8)
    assert access.transaction is not None
    write_to_ring(ring, access.transaction)
    md.al_ring = bytes(ring)
    back = Metadata.decode(md.encode(), layout)
    assert back.bitmap.count() == 4000
    assert replay(back.al_ring, 67).extents == {0}


def test_metadata_decode_refuses_a_shrunk_device_and_keeps_the_agreed_size_of_a_larger_one() -> (
    None
):
    md = create_md(flexible_layout(GIB_SECTORS), al_extents=1237, rng=random.Random(3))
    with pytest.raises(MetadataFieldError, match="without `resize`"):
        Metadata.decode(md.encode(), flexible_layout(GIB_SECTORS // 2))
    # More room than the superblock's size (the peer has less, or not resized yet): the
    # size last agreed stays, as DRBD's la-size-sect.
    larger = flexible_layout(GIB_SECTORS * 2)
    area = md.encode() + bytes(larger.md_bytes - md.layout.md_bytes)
    back = Metadata.decode(area, larger)
    assert back.layout.data_sectors == GIB_SECTORS
    assert back.bitmap.nbits == md.bitmap.nbits


def test_create_md_refuses_al_extents_the_log_cannot_hold() -> None:
    with pytest.raises(ActivityLogError, match="al-extents 7000"):
        create_md(flexible_layout(GIB_SECTORS), al_extents=7000, rng=random.Random(0))


# --- the bitmap -------------------------------------------------------------------------


def test_bits_for_sectors_rounds_up_to_whole_blocks() -> None:
    assert bits_for_sectors(GIB_SECTORS) == 262144
    assert bits_for_sectors(9) == 2
    assert bits_for_sectors(0) == 0


@pytest.mark.parametrize(
    ("start", "stop"),
    [(0, 1), (0, 8), (7, 9), (8, 16), (0, 100), (99, 100), (3, 5), (0, 0), (50, 50)],
)
def test_bitmap_ranges_at_byte_and_device_edges(start: int, stop: int) -> None:
    bm = Bitmap(100)
    bm.set_range(start, stop)
    assert list(bm.dirty()) == list(range(start, stop))
    assert bm.count() == stop - start
    bm.clear_range(start, stop)
    assert bm.count() == 0


def test_bitmap_refuses_ranges_past_the_end() -> None:
    bm = Bitmap(100)
    with pytest.raises(IndexError):
        bm.set_range(90, 101)
    with pytest.raises(IndexError):
        bm.test(100)


def test_bitmap_counts_kib_and_ranges() -> None:
    bm = Bitmap(262144)
    bm.set_range(10, 20)
    bm.set(262143)
    assert bm.count() == 11
    assert bm.out_of_sync_kib() == 44
    assert bm.count_range(15, 262144) == 6
    assert list(bm.runs()) == [(10, 20), (262143, 262144)]


def test_bitmap_set_sectors_marks_partly_written_blocks() -> None:
    bm = Bitmap(10)
    bm.set_sectors(7, 2)  # sectors 7 and 8: the end of block 0 and start of block 1
    assert list(bm.dirty()) == [0, 1]


def test_bitmap_serialisation_round_trip_and_errors() -> None:
    bm = Bitmap(20)
    bm.set_range(3, 19)
    data = bm.to_bytes()
    assert len(data) == 3
    assert Bitmap.from_bytes(data, 20) == bm
    with pytest.raises(BitmapError, match="must be 3 bytes"):
        Bitmap.from_bytes(data + b"\0", 20)
    with pytest.raises(BitmapError, match="past its last block"):
        Bitmap.from_bytes(b"\0\0\x10", 20)  # bit 20 does not exist


def test_bitmap_merge_is_or() -> None:
    a, b = Bitmap(64), Bitmap(64)
    a.set_range(0, 10)
    b.set_range(5, 20)
    a.merge(b)
    assert list(a.runs()) == [(0, 20)]
    with pytest.raises(BitmapError):
        a.merge(Bitmap(65))


def test_bitmap_full_one_gib_is_one_run_and_fast_to_count() -> None:
    bm = Bitmap(262144)
    bm.set_all()
    assert bm.count() == 262144
    assert list(bm.runs()) == [(0, 262144)]


def test_bitmap_many_runs_on_one_gib() -> None:
    rng = random.Random(7)
    bm = Bitmap(262144)
    picked = sorted(set(rng.randrange(0, 262144, 2) for _ in range(2600)))
    for bit in picked:
        bm.set(bit)
    assert list(bm.runs()) == [(b, b + 1) for b in picked]


_RANGES = st.lists(st.tuples(st.booleans(), st.integers(0, 300), st.integers(0, 300)), max_size=20)


@settings(max_examples=300)
@given(st.integers(1, 300), _RANGES)
def test_bitmap_matches_a_set_model(nbits: int, ops: list[tuple[bool, int, int]]) -> None:
    bm = Bitmap(nbits)
    model: set[int] = set()
    for setting, a, b in ops:
        start, stop = sorted((a % (nbits + 1), b % (nbits + 1)))
        if setting:
            bm.set_range(start, stop)
            model |= set(range(start, stop))
        else:
            bm.clear_range(start, stop)
            model -= set(range(start, stop))
    assert bm.count() == len(model)
    assert list(bm.dirty()) == sorted(model)
    assert all(bm.test(i) == (i in model) for i in range(nbits))
    # Runs are maximal: separated by at least one clean block.
    runs = list(bm.runs())
    assert all(prev[1] < nxt[0] for prev, nxt in itertools.pairwise(runs))
    assert Bitmap.from_bytes(bm.to_bytes(), nbits) == bm


@given(st.integers(1, 200), st.sets(st.integers(0, 199)), st.sets(st.integers(0, 199)))
def test_bitmap_merge_matches_set_union(nbits: int, xs: set[int], ys: set[int]) -> None:
    a, b = Bitmap(nbits), Bitmap(nbits)
    for x in xs:
        if x < nbits:
            a.set(x)
    for y in ys:
        if y < nbits:
            b.set(y)
    a.merge(b)
    assert set(a.dirty()) == {v for v in xs | ys if v < nbits}


# --- the activity log -------------------------------------------------------------------

EXT = al.SECTORS_PER_EXTENT


def test_write_to_a_cold_extent_needs_a_transaction_first() -> None:
    log = ActivityLog(67)
    first = log.begin_write(0, 8)
    assert first.transaction is not None
    assert first.transaction.updates == ((0, 0),)
    assert log.is_hot(0)


def test_write_to_a_hot_extent_needs_no_transaction() -> None:
    log = ActivityLog(67)
    log.begin_write(0, 8)
    assert log.begin_write(100, 8).transaction is None  # same 4 MiB extent


def test_a_write_across_an_extent_boundary_touches_both() -> None:
    log = ActivityLog(67)
    access = log.begin_write(EXT - 4, 8)
    assert access.transaction is not None
    assert sorted(extent for _, extent in access.transaction.updates) == [0, 1]


def test_full_log_evicts_the_least_recently_used_idle_extent() -> None:
    log = ActivityLog(7)
    for extent in range(7):
        log.touch([extent])
    log.touch([0])  # 0 becomes most recent; 1 is now the oldest
    access = log.touch([100])
    assert access.evicted == (1,)
    assert log.active == {0, 2, 3, 4, 5, 6, 100}
    assert access.transaction is not None
    assert access.transaction.updates == ((1, 100),)  # reuses the evicted extent's slot


def test_extents_with_writes_in_flight_are_not_evicted() -> None:
    log = ActivityLog(7)
    for extent in range(7):
        log.begin_write(extent * EXT, 8)
    log.end_write(3 * EXT, 8)
    access = log.begin_write(50 * EXT, 8)
    assert access.evicted == (3,)


def test_log_full_of_busy_extents_refuses_and_stays_unchanged() -> None:
    log = ActivityLog(7)
    for extent in range(7):
        log.begin_write(extent * EXT, 8)
    with pytest.raises(ActivityLogBusy):
        log.begin_write(50 * EXT, 8)
    assert log.active == set(range(7))


def test_transaction_round_trip_and_corruption() -> None:
    tr = Transaction(5, 67, ((1, 42),), 0, tuple([42, al.EMPTY] * 3))
    block = tr.encode()
    assert Transaction.decode(block) == tr
    assert tr.ring_slot == 5 % al.RING_SLOTS
    torn = bytearray(block)
    torn[2000] ^= 1
    with pytest.raises(ActivityLogError, match="checksum"):
        Transaction.decode(bytes(torn))


def _ring_after(log: ActivityLog, extents: list[int]) -> bytearray:
    ring = bytearray(al.empty_ring())
    for extent in extents:
        access = log.touch([extent])
        if access.transaction is not None:
            write_to_ring(ring, access.transaction)
    return ring


def test_crash_replay_recovers_the_hot_extents() -> None:
    log = ActivityLog(7)
    ring = _ring_after(log, list(range(20)))  # many evictions, the ring wrapped twice
    result = replay(bytes(ring), 7)
    assert result.extents == log.active == set(range(13, 20))
    assert result.last_sequence == 20
    assert result.rejected == ()


def test_crash_replay_ignores_a_torn_newest_transaction() -> None:
    log = ActivityLog(7)
    ring = _ring_after(log, list(range(20)))
    newest = 20 % al.RING_SLOTS * al.TRANSACTION_SIZE
    ring[newest + 100] ^= 0xFF  # torn: the write of extent 19 was never issued
    result = replay(bytes(ring), 7)
    assert len(result.rejected) == 1 and "checksum" in result.rejected[0][1]
    assert result.extents == set(range(12, 19))  # the state before the torn transaction


def test_crash_replay_with_a_large_log_covers_every_slot() -> None:
    # More slots than one transaction's context: the ring's windows together restate them.
    log = ActivityLog(3000)
    ring = _ring_after(log, list(range(3100)))
    assert replay(bytes(ring), 3000).extents == log.active


def test_restore_continues_the_sequence() -> None:
    log = ActivityLog(7)
    ring = _ring_after(log, [1, 2, 3])
    restored = ActivityLog.restore(replay(bytes(ring), 7))
    assert restored.active == {1, 2, 3}
    access = restored.touch([9])
    assert access.transaction is not None and access.transaction.sequence == 4


def test_replay_skips_foreign_garbage_slots() -> None:
    ring = bytearray(al.empty_ring())
    ring[0:4] = b"junk"
    result = replay(bytes(ring), 67)
    assert result.extents == frozenset()
    assert result.rejected[0][0] == 0


def test_resync_after_crash_marks_only_the_log_extents() -> None:
    nbits = bits_for_sectors(GIB_SECTORS)  # 256 extents
    assert resync_runs({3, 4, 255, 400}, nbits) == [(3072, 5120), (261120, 262144)]
    bm = Bitmap(nbits)
    assert al.mark_dirty(bm, {3, 4}) == 2048
    assert bm.count() == 2048 and bm.out_of_sync_kib() == 8192


def test_al_extents_bounds() -> None:
    with pytest.raises(ActivityLogError):
        ActivityLog(al.MAX_AL_EXTENTS + 1)
    assert ActivityLog(al.MAX_AL_EXTENTS).al_extents == al.MAX_AL_EXTENTS


def test_superblock_refuses_non_zero_padding() -> None:
    block = bytearray(_superblock().encode())
    block[4000] = 1
    with pytest.raises(MetadataFieldError, match="not zero"):
        Superblock.decode(_resealed(block))
