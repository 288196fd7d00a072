"""The on-disk metadata of a replicated volume: DRBD 8.4's model in hastack's own format.

Where it lives (drbd.conf's `meta-disk`, see model.MetaDisk):

* internal -- the last Ms sectors of the backing device; the data is everything before. Ms is the
  seed's formula, Ms = ceil(Cs / 2^18) * 8 + 72 sectors: 8 sectors of bitmap (4 KiB = 32768 bits
  of 4 KiB) per 2^18 sectors (128 MiB) of data, plus 72 sectors for the superblock and the
  activity log. hastack takes Cs as the whole backing device, so the bitmap covers a little more
  than the data left after the metadata (at most 8 sectors more): simpler, and never too small.
* flexible (`meta-disk DEV`) -- a separate device or file holding only this volume's metadata,
  from offset 0, Ms sectors long (Cs: the whole backing device, which is then all data).
* indexed (`meta-disk DEV [N]`) -- slot N of 128 MiB on a shared device, as DRBD: the slot is the
  metadata area whatever the data size, which caps the data at what its bitmap can cover.

Layout of the metadata area (hastack's own, NOT byte-compatible with DRBD: DRBD puts its
superblock in the last 4 KiB and the bitmap first; hastack puts the superblock first so that it
sits at a fixed offset from the area's start for every kind, and a reader needs no size to find
it):

    offset 0       superblock, 4 KiB (below)
    offset 4 KiB   activity log ring, 32 KiB (activitylog: 8 transactions of 4 KiB)
    offset 36 KiB  bitmap (bitmap: one bit per 4 KiB block), padded to a multiple of 4 KiB

Superblock (big-endian; the rest of the 4 KiB is zero):

    0   8s  magic b"HASTKMD\\0"      8  u16 version (1)      10 u16 header length
    12  u32 crc32 of the 4 KiB with this field zero
    16  u64 data size (sectors)      24 u64 metadata size (sectors)
    32  u64 current   40 u64 bitmap   48 u64 history[0]   56 u64 history[1]
    64  u32 flags (MdFlags)          68 u32 al-extents
    72  u64 device uuid (names this replicated volume; both sides share it)
    80  64s this node's name   144 64s the peer's name (UTF-8, NUL padded)

Reading refuses, with a MetadataError that says what was wrong: no metadata (all zeros),
foreign data (wrong magic), an unknown version, a checksum mismatch, impossible fields.
"""

from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Literal

from hastack.replica.activitylog import RING_SIZE, check_al_extents, empty_ring
from hastack.replica.bitmap import Bitmap, BitmapError, bits_for_sectors, byte_length
from hastack.replica.generations import Generations, Rng, created
from hastack.replica.model import MetaDisk

SECTOR = 512
SUPERBLOCK_SIZE = 4096
AL_OFFSET = SUPERBLOCK_SIZE
BITMAP_OFFSET = AL_OFFSET + RING_SIZE
RESERVED_SECTORS = BITMAP_OFFSET // SECTOR  # 72: the formula's constant
INDEXED_SLOT_SIZE = 128 << 20
MAGIC = b"HASTKMD\x00"
VERSION = 1
NAME_SIZE = 64
_HEADER = struct.Struct(">8sHHIQQQQQQIIQ64s64s")
_CRC_AT = 12

# Magic numbers of DRBD's own metadata (08 and 8.4), to say so when we meet them.
_DRBD_MAGICS = {0x8374026B: "DRBD 8.x", 0x8374026C: "DRBD 8.4"}


class MetadataError(ValueError):
    """Metadata that cannot be used; the message says why."""


class NoMetadataError(MetadataError):
    """The area is blank: metadata was never created there."""


class ForeignMetadataError(MetadataError):
    """Something else (another tool's metadata, a filesystem) occupies the area."""


class MetadataVersionError(MetadataError):
    pass


class MetadataChecksumError(MetadataError):
    pass


class MetadataFieldError(MetadataError):
    """The superblock is intact but says something impossible."""


class MdFlags(enum.IntFlag):
    """The superblock's flags (DRBD's MDF_* in meaning)."""

    CONSISTENT = 1 << 0  # the data is consistent (not mid-resync target)
    PRIMARY = 1 << 1  # the node was Primary when the metadata was last written
    CONNECTED = 1 << 2  # it was connected to its peer
    FULL_SYNC = 1 << 3  # a full sync is needed (set every bitmap bit on attach)
    WAS_UP_TO_DATE = 1 << 4  # the data was UpToDate
    PEER_OUTDATED = 1 << 5  # the peer was marked Outdated (fencing)
    CRASHED_PRIMARY = 1 << 6  # Primary at an unclean stop: replay the activity log
    AL_CLEAN = 1 << 7  # the activity log is empty (clean stop): nothing to replay
    AL_DISABLED = 1 << 8  # the activity log is not used (every write marks the bitmap)


NO_FLAGS = MdFlags(0)
# A plain int: ~ on an IntFlag only complements within the known bits.
_KNOWN_FLAGS = sum(int(flag) for flag in MdFlags)


def md_size_sectors(data_sectors: int) -> int:
    """The seed's formula: Ms = ceil(Cs / 2^18) * 8 + 72 sectors."""
    if data_sectors < 0:
        raise ValueError(f"a device cannot have {data_sectors} sectors")
    return -(-data_sectors // (1 << 18)) * 8 + RESERVED_SECTORS


def _bitmap_area(nbits: int) -> int:
    """Bytes reserved for a bitmap of `nbits` bits: whole 4 KiB pages."""
    return -(-byte_length(nbits) // 4096) * 4096


MAX_INDEXED_DATA_SECTORS = (INDEXED_SLOT_SIZE - BITMAP_OFFSET) * 8 * 8  # bits x 8 sectors


@dataclass(frozen=True)
class Layout:
    """Where one volume's data and metadata are."""

    kind: Literal["internal", "flexible", "indexed"]
    data_sectors: int  # usable data, from sector 0 of the backing device
    md_offset: int  # bytes: where the metadata area starts on the metadata device
    md_sectors: int  # size of the metadata area

    @property
    def bitmap_bits(self) -> int:
        return bits_for_sectors(self.data_sectors)

    @property
    def al_offset(self) -> int:
        return self.md_offset + AL_OFFSET

    @property
    def bitmap_offset(self) -> int:
        return self.md_offset + BITMAP_OFFSET

    @property
    def md_bytes(self) -> int:
        return self.md_sectors * SECTOR


def internal_layout(backing_sectors: int) -> Layout:
    md = md_size_sectors(backing_sectors)
    if backing_sectors <= md:
        raise MetadataFieldError(
            f"backing device of {backing_sectors} sectors is too small for {md} sectors of "
            "internal meta-data"
        )
    data = backing_sectors - md
    return Layout("internal", data, data * SECTOR, md)


def flexible_layout(data_sectors: int) -> Layout:
    return Layout("flexible", data_sectors, 0, md_size_sectors(data_sectors))


def indexed_layout(data_sectors: int, index: int) -> Layout:
    if index < 0:
        raise MetadataFieldError(f"meta-disk index {index} is negative")
    if data_sectors > MAX_INDEXED_DATA_SECTORS:
        raise MetadataFieldError(
            f"{data_sectors} sectors of data need more bitmap than a 128 MiB meta-disk slot "
            f"holds (at most {MAX_INDEXED_DATA_SECTORS} sectors); use flexible meta-data"
        )
    return Layout("indexed", data_sectors, index * INDEXED_SLOT_SIZE, INDEXED_SLOT_SIZE // SECTOR)


def layout_for(meta_disk: MetaDisk, backing_sectors: int) -> Layout:
    """The layout drbd.conf's `meta-disk` asks for, on a backing device of that size."""
    if meta_disk.internal:
        return internal_layout(backing_sectors)
    if meta_disk.index is None:
        return flexible_layout(backing_sectors)
    return indexed_layout(backing_sectors, meta_disk.index)


@dataclass(frozen=True)
class Superblock:
    data_sectors: int
    md_sectors: int
    generations: Generations = field(default_factory=created)
    flags: MdFlags = NO_FLAGS
    al_extents: int = 1237
    device_uuid: int = 0
    node_name: str = ""
    peer_name: str = ""

    def encode(self) -> bytes:
        for what, name in (("node", self.node_name), ("peer", self.peer_name)):
            if len(name.encode()) >= NAME_SIZE or "\0" in name:
                raise MetadataFieldError(f"{what} name {name!r} does not fit {NAME_SIZE - 1} bytes")
        check_al_extents(self.al_extents)
        gens = self.generations
        block = bytearray(SUPERBLOCK_SIZE)
        _HEADER.pack_into(
            block,
            0,
            MAGIC,
            VERSION,
            _HEADER.size,
            0,
            self.data_sectors,
            self.md_sectors,
            gens.current,
            gens.bitmap,
            gens.history[0],
            gens.history[1],
            int(self.flags),
            self.al_extents,
            self.device_uuid,
            self.node_name.encode(),
            self.peer_name.encode(),
        )
        struct.pack_into(">I", block, _CRC_AT, zlib.crc32(block))
        return bytes(block)

    @classmethod
    def decode(cls, block: bytes) -> Superblock:
        if len(block) != SUPERBLOCK_SIZE:
            raise MetadataFieldError(
                f"a superblock is {SUPERBLOCK_SIZE} bytes, got {len(block)} (truncated device?)"
            )
        if not any(block):
            raise NoMetadataError("no meta-data found (all zeros): run create-md first")
        magic = block[:8]
        if magic != MAGIC:
            word = int.from_bytes(block[:4], "big")
            other = next(
                (
                    name
                    for offset in (0, len(block) - 4)
                    for m, name in _DRBD_MAGICS.items()
                    if int.from_bytes(block[offset : offset + 4], "big") == m
                ),
                None,
            )
            what = f"{other} meta-data" if other else f"magic {word:#010x}"
            raise ForeignMetadataError(f"not hastack meta-data ({what}); refusing to touch it")
        (
            _,
            version,
            header_len,
            crc,
            data_sectors,
            md_sectors,
            current,
            bitmap,
            h1,
            h2,
            flags,
            al_extents,
            device_uuid,
            node,
            peer,
        ) = _HEADER.unpack_from(block)
        if version != VERSION:
            raise MetadataVersionError(
                f"meta-data version {version}; this hastack reads version {VERSION}"
            )
        zeroed = bytearray(block)
        zeroed[_CRC_AT : _CRC_AT + 4] = bytes(4)
        if zlib.crc32(zeroed) != crc:
            raise MetadataChecksumError(
                f"superblock checksum mismatch (stored {crc:#010x}, computed "
                f"{zlib.crc32(zeroed):#010x}): corrupt meta-data"
            )
        if header_len != _HEADER.size:
            raise MetadataFieldError(f"header length {header_len}, expected {_HEADER.size}")
        if any(block[_HEADER.size :]):
            raise MetadataFieldError("bytes after the superblock's header are not zero")
        if flags & ~_KNOWN_FLAGS:
            raise MetadataFieldError(f"unknown flags {flags & ~_KNOWN_FLAGS:#x}")
        if md_sectors < RESERVED_SECTORS:
            raise MetadataFieldError(f"meta-data size {md_sectors} sectors is below 72")
        needed = RESERVED_SECTORS + _bitmap_area(bits_for_sectors(data_sectors)) // SECTOR
        if md_sectors < needed:
            raise MetadataFieldError(
                f"{md_sectors} sectors of meta-data cannot hold the bitmap of {data_sectors} "
                f"data sectors ({needed} needed)"
            )
        try:
            check_al_extents(al_extents)
            names = (_name(node, "node"), _name(peer, "peer"))
        except ValueError as err:
            raise MetadataFieldError(str(err)) from None
        return cls(
            data_sectors,
            md_sectors,
            Generations(current, bitmap, (h1, h2)),
            MdFlags(flags),
            al_extents,
            device_uuid,
            *names,
        )


def _name(raw: bytes, what: str) -> str:
    text, _, rest = raw.partition(b"\0")
    if any(rest):
        raise MetadataFieldError(f"{what} name has bytes after its terminating NUL")
    try:
        return text.decode()
    except UnicodeDecodeError:
        raise MetadataFieldError(f"{what} name is not UTF-8") from None


@dataclass
class Metadata:
    """A volume's whole metadata in memory: superblock, activity-log ring, bitmap."""

    layout: Layout
    superblock: Superblock
    al_ring: bytes
    bitmap: Bitmap

    def encode(self) -> bytes:
        """The metadata area's bytes, `layout.md_bytes` long, to write at `layout.md_offset`."""
        area = bytearray(self.layout.md_bytes)
        area[:SUPERBLOCK_SIZE] = self.superblock.encode()
        area[AL_OFFSET:BITMAP_OFFSET] = self.al_ring
        bm = self.bitmap.to_bytes()
        area[BITMAP_OFFSET : BITMAP_OFFSET + len(bm)] = bm
        return bytes(area)

    @classmethod
    def decode(cls, area: bytes, layout: Layout) -> Metadata:
        if len(area) < BITMAP_OFFSET:
            raise MetadataFieldError(f"meta-data area of {len(area)} bytes is truncated")
        sb = Superblock.decode(area[:SUPERBLOCK_SIZE])
        if sb.data_sectors > layout.data_sectors:
            raise MetadataFieldError(
                f"meta-data is for {sb.data_sectors} data sectors, the device has room for "
                f"{layout.data_sectors} (shrunk, or a smaller `size`, without `resize`?)"
            )
        # The superblock's size is the size last agreed with the peer (DRBD's la-size-sect):
        # a device with more room (grown, or the peer's is smaller) keeps it until `resize`.
        layout = replace(layout, data_sectors=sb.data_sectors)
        nbits = bits_for_sectors(sb.data_sectors)
        if sb.flags & MdFlags.FULL_SYNC:
            # Every block will be resynchronised: the bitmap is not needed, and may be
            # half-written (a `resize` interrupted while it moved it; see resize.py). The log
            # is kept as it is: its torn or foreign slots are skipped when it is replayed.
            full = Bitmap(nbits)
            full.set_all()
            return cls(layout, sb, bytes(area[AL_OFFSET:BITMAP_OFFSET]), full)
        bm_bytes = area[BITMAP_OFFSET : BITMAP_OFFSET + byte_length(nbits)]
        try:
            bitmap = Bitmap.from_bytes(bytes(bm_bytes), nbits)
        except BitmapError as err:
            raise MetadataFieldError(f"bitmap: {err}") from None
        return cls(layout, sb, bytes(area[AL_OFFSET:BITMAP_OFFSET]), bitmap)


def create_md(
    layout: Layout, *, al_extents: int, rng: Rng, node_name: str = "", peer_name: str = ""
) -> Metadata:
    """`create-md`: a fresh superblock (identifiers "just created", not consistent, activity
    log clean), an empty activity log and an all-clean bitmap. The initial full sync follows
    from the identifiers (or is skipped with `new-current-uuid --clear-bitmap`)."""
    check_al_extents(al_extents)
    sb = Superblock(
        data_sectors=layout.data_sectors,
        md_sectors=layout.md_sectors,
        generations=created(),
        flags=MdFlags.AL_CLEAN,
        al_extents=al_extents,
        device_uuid=rng.getrandbits(64),
        node_name=node_name,
        peer_name=peer_name,
    )
    sb.encode()  # validate names now, not at the first write
    return Metadata(layout, sb, empty_ring(), Bitmap(layout.bitmap_bits))


def with_flags(
    sb: Superblock, *, set_: MdFlags = NO_FLAGS, clear: MdFlags = NO_FLAGS
) -> Superblock:
    return replace(sb, flags=(sb.flags | set_) & ~clear)
