"""`resize` (drbdadm resize, DRBD 8.4): the size both sides agree on, and moving the metadata.

The size rule (DRBD 8.4's drbd_new_dev_size, in 512-byte sectors):

* Each side offers what its backing device has room for next to its metadata (`max`).
  The usable size is the smaller of the two; not connected, the peer's room is unknown and
  `resize` is refused unless the operator says `--assume-peer-has-space` (the peer's room is
  then taken to be this side's).
* A limit -- the operator's `--size`, else the smaller non-zero drbd.conf `size` of the two
  sides -- caps it; a limit above what both sides have is refused ("too big").
* A smaller size than now is a shrink: allowed only when the operator asked for it (`--size`
  or drbd.conf's `size`): shrinking below the data in use is the operator's responsibility, as
  DRBD says. A size smaller than now only because a backing device shrank is refused: the
  data at its end is gone.

Moving the metadata (internal meta-data lives at the end of the backing device, so a grown
device has it at a new place; external meta-data stays where it is and only its bitmap
changes). `write_moved_metadata` writes, each step made stable before the next:

1. (moving only) the old superblock with FULL_SYNC set: from here the old bitmap and activity
   log may be overwritten (the new area may overlap them) and are no longer needed;
2. the superblock at the new place, with the new size and FULL_SYNC set -- the switch: a
   device of the new size finds its metadata here;
3. the activity log (copied) and the resized bitmap at the new place;
4. the superblock at the new place without FULL_SYNC.

A crash at any point leaves a readable superblock at one of the two places: before step 2
the old one (after step 1 marked for a full sync), from step 2 on the new one (until step 4
marked for a full sync; a superblock with FULL_SYNC is read without its bitmap, which may be
half-written, and its log's torn or foreign slots are skipped as after any crash). The worst
a crash costs is a full resync, never a block left out of one. One window is not covered
in-band: a device grown while hastack was stopped, or a crash after the device grew and
before step 2, has its superblock at the old place and nothing at the new end; attach then
finds no meta-data (and says why). Shrink the device back to its old size (truncate,
lvreduce) and attach, then grow it and `resize` while attached (docs/replica.md).
"""

from __future__ import annotations

from dataclasses import replace

from hastack.replica.activitylog import RING_SIZE
from hastack.replica.backing import BackingError, BlockFile, device_size, volume_layout
from hastack.replica.metadata import SECTOR, SUPERBLOCK_SIZE, Layout, MdFlags, Superblock
from hastack.replica.model import MetaDisk


class ResizeError(ValueError):
    """A resize that cannot be done; the message says why."""


def capacity(disk: str, meta_disk: MetaDisk) -> Layout:
    """The layout of the whole backing device as it is now: where the metadata goes and how
    many data sectors it leaves room for (DRBD's max size)."""
    try:
        layout = volume_layout(disk, meta_disk)
    except BackingError as err:
        raise ResizeError(str(err)) from None
    if meta_disk.device is not None:
        needed = layout.md_offset + layout.md_bytes
        have = device_size(meta_disk.device)
        if have < needed:
            raise ResizeError(
                f"{meta_disk.device}: too small for the meta-data of {layout.data_sectors} "
                f"sectors ({needed} bytes needed, {have} there)"
            )
    return layout


def _min_not_zero(*values: int) -> int:
    nonzero = [v for v in values if v]
    return min(nonzero) if nonzero else 0


def agree_size(
    *,
    current: int,
    local_max: int,
    peer_max: int,
    local_limit: int = 0,
    peer_limit: int = 0,
    requested: int = 0,
) -> int:
    """The new size in sectors (the rule above). `current` is the size now; `*_limit` the
    drbd.conf `size` of each side and `requested` the operator's `--size` (0: none)."""
    for what, value in (("--size", requested), ("size", local_limit), ("size", peer_limit)):
        if value < 0:
            raise ResizeError(f"{what} {value} is negative")
    room = min(local_max, peer_max)
    size = room
    limit = requested or _min_not_zero(local_limit, peer_limit)
    if limit:
        if limit > room:
            who = "--size" if requested else "drbd.conf's size"
            raise ResizeError(
                f"{who} of {limit} sectors is too big: both sides have room for {room} "
                f"(this side {local_max}, the peer {peer_max})"
            )
        size = limit
    if size <= 0:
        raise ResizeError("the new size would be 0 sectors")
    if size < current and not limit:
        raise ResizeError(
            f"the backing devices have room for {room} sectors, less than the {current} in "
            "use: a backing device shrank? Shrinking needs --size (and the file system shrunk "
            "first)"
        )
    return size


def new_layout(old: Layout, room: Layout, data_sectors: int) -> Layout:
    """The layout after the resize: the metadata where `room` (the device now) puts it, with
    `data_sectors` of data. Refuses what cannot be done safely."""
    if data_sectors > room.data_sectors:
        raise ResizeError(
            f"{data_sectors} sectors do not fit: the backing device has room for "
            f"{room.data_sectors}"
        )
    if room.md_offset != old.md_offset:
        if room.md_offset < old.md_offset:
            raise ResizeError(
                "the backing device is smaller than when it was attached: the meta-data at "
                "its end cannot be moved back (shrink the data with --size, not the device)"
            )
        if room.md_offset < old.md_offset + SUPERBLOCK_SIZE:
            raise ResizeError(
                f"the backing device grew by less than the meta-data moves in one step "
                f"({(room.md_offset - old.md_offset) // SECTOR} sectors): grow it by at "
                "least 4 KiB more"
            )
    return replace(room, data_sectors=data_sectors)


def write_moved_metadata(
    meta: BlockFile, old: Layout, new: Layout, sb: Superblock, bitmap: bytes
) -> Superblock:
    """Write the metadata of a resized volume in the crash-safe order of the module's
    docstring; returns the new superblock. `bitmap` is the resized bitmap's bytes. The caller
    holds the backing's metadata lock (no other metadata write in between)."""
    moving = new.md_offset != old.md_offset
    final = replace(sb, data_sectors=new.data_sectors, md_sectors=new.md_sectors)
    ring = b""
    if moving:
        ring = meta.pread(RING_SIZE, old.al_offset)
        if len(ring) != RING_SIZE:
            raise ResizeError("short read of the activity log at its old place")
        meta.pwrite(replace(sb, flags=sb.flags | MdFlags.FULL_SYNC).encode(), old.md_offset)
        meta.fdatasync()
    meta.pwrite(replace(final, flags=final.flags | MdFlags.FULL_SYNC).encode(), new.md_offset)
    meta.fdatasync()
    if moving:
        meta.pwrite(ring, new.al_offset)
    meta.pwrite(bitmap, new.bitmap_offset)
    meta.fdatasync()
    meta.pwrite(final.encode(), new.md_offset)
    meta.fdatasync()
    return final


def parse_size(text: str) -> int:
    """`--size` as drbdadm takes it: a number with an optional unit (s: 512-byte sectors;
    K, M, G, T: powers of 1024 bytes; no unit: sectors as drbdsetup's default unit).
    Returns sectors."""
    value = text.strip()
    units = {"s": 1, "k": 2, "m": 2 << 10, "g": 2 << 20, "t": 2 << 30}
    factor = 1
    if value and value[-1].lower() in units:
        factor = units[value[-1].lower()]
        value = value[:-1]
    if not value.isdigit():
        raise ResizeError(f"size {text!r}: a number with an optional unit s, K, M, G or T")
    return int(value) * factor


def sectors_of(path: str) -> int:
    """Sectors of a file or block device (for messages and tests)."""
    return device_size(path) // SECTOR


__all__ = [
    "ResizeError",
    "agree_size",
    "capacity",
    "new_layout",
    "parse_size",
    "sectors_of",
    "write_moved_metadata",
]
