"""The replication peer protocol: framed messages between two replica daemons on one stream.

Every frame is a 20-byte header followed by `length` bytes of body:

    magic u32 | type u16 | reserved u16 (zero) | length u32 | sequence u64     (big-endian)

`sequence` counts frames per direction from 1; the decoder checks it, so a lost, duplicated or
reordered frame (which a stream must never produce) is caught as a WireError rather than
silently acted on. Bodies are fixed-layout structs with length-prefixed strings/bytes and a raw
tail for payloads. The format is hastack's own (not DRBD's on-wire protocol).

Decoding is strict: bad magic, a non-zero reserved field, an unknown type, a length over the
limit, a body that is short, too long or carries invalid values all raise WireError naming what
was wrong. Nothing else escapes the decoder, whatever bytes it is fed (the fuzz tests hold it
to that).
"""

from __future__ import annotations

import enum
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from typing import ClassVar

import crc32c

from hastack.replica.states import DiskState, Role

MAGIC = 0x48535250  # "HSRP"
HEADER = struct.Struct(">IHHIQ")
HEADER_SIZE = HEADER.size
PROTOCOL_VERSION = 1
MAX_BODY = 16 * 1024 * 1024  # a 1 MiB write plus headroom; bitmaps are sent as runs
_U64 = (1 << 64) - 1


class WireError(ValueError):
    """A frame that cannot be decoded; the message says what was wrong."""


# --- data integrity digests ----------------------------------------------------------------


def integrity_digest(alg: str, payload: bytes) -> bytes:
    """The data-integrity-alg digest of a write's payload (drbd.conf's digest names)."""
    if alg == "crc32":
        return zlib.crc32(payload).to_bytes(4, "big")
    if alg == "crc32c":
        # The crc32c package (SSE4.2 / ARMv8 instructions, else its own C tables): this runs
        # for every write (data-integrity-alg) and every resynced or verified block (csums-alg,
        # verify-alg); a pure-Python loop took half a second per MiB.
        return crc32c.crc32c(payload).to_bytes(4, "big")
    try:
        return hashlib.new(alg, payload).digest()
    except ValueError as exc:
        raise ValueError(f"unknown data-integrity-alg {alg!r}") from exc


# --- body reading/writing helpers ----------------------------------------------------------


class _Reader:
    """Reads a body in place (a view of the decoder's buffer); what it returns are copies, so
    nothing a message keeps refers to that buffer -- except `rest_view` (a Data payload) when
    the body is a view of immutable bytes: then it is a read-only view too, and a 1 MiB
    payload is not copied on its way from the socket to the disk."""

    __slots__ = ("_data", "_immutable", "_pos", "_what")

    def __init__(self, data: bytes | memoryview, what: str) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._what = what
        self._immutable = isinstance(self._data.obj, bytes)

    def _advance(self, n: int) -> int:
        start, end = self._pos, self._pos + n
        if end > len(self._data):
            raise WireError(
                f"{self._what}: body truncated (needs {end} bytes, has {len(self._data)})"
            )
        self._pos = end
        return start

    def take(self, n: int) -> bytes:
        start = self._advance(n)
        return bytes(self._data[start : start + n])

    def unpack(self, fmt: struct.Struct) -> tuple[int, ...]:
        return fmt.unpack_from(self._data, self._advance(fmt.size))

    def u8(self) -> int:
        return self._data[self._advance(1)]

    def blob8(self) -> bytes:
        return self.take(self.u8())

    def blob16(self) -> bytes:
        (n,) = self.unpack(_H)
        return self.take(n)

    def text16(self) -> str:
        raw = self.blob16()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"{self._what}: text is not UTF-8") from exc

    def rest(self) -> bytes:
        start, self._pos = self._pos, len(self._data)
        return bytes(self._data[start:])

    def rest_view(self) -> bytes | memoryview:
        """The rest as a read-only view when the body's bytes are immutable, else a copy."""
        if not self._immutable:
            return self.rest()
        start, self._pos = self._pos, len(self._data)
        return self._data[start:].toreadonly()

    def done(self) -> None:
        if self._pos != len(self._data):
            raise WireError(f"{self._what}: {len(self._data) - self._pos} trailing bytes in body")


_H = struct.Struct(">H")


def _blob8(data: bytes) -> bytes:
    if len(data) > 255:
        raise ValueError("field longer than 255 bytes")
    return bytes([len(data)]) + data


def _blob16(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("field longer than 65535 bytes")
    return _H.pack(len(data)) + data


def _enum(kind: type[enum.IntEnum], value: int, what: str) -> enum.IntEnum:
    try:
        return kind(value)
    except ValueError as exc:
        raise WireError(f"{what}: {value} is not a valid {kind.__name__}") from exc


# --- messages ------------------------------------------------------------------------------


class MsgType(enum.IntEnum):
    HELLO = 1
    AUTH_CHALLENGE = 2
    AUTH_RESPONSE = 3
    DATA = 10
    RECV_ACK = 11  # protocol B: the peer received the write
    WRITE_ACK = 12  # protocol C: the peer's write is on its disk
    NEG_ACK = 13  # the peer's local write failed
    BARRIER = 14
    BARRIER_ACK = 15
    DATA_REQUEST = 16  # a Diskless Primary reads from the peer's disk (DRBD's P_DATA_REQUEST)
    DATA_REPLY = 17  # the answer: the data, or a failure (P_DATA_REPLY / P_NEG_DREPLY)
    BITMAP = 20
    SYNC_UUID = 21
    RESYNC_REQUEST = 22
    RESYNC_DATA = 23
    RESYNC_ACK = 24
    OUT_OF_SYNC = 25
    CSUM_REQUEST = 26  # csums-alg: a resync request carrying the target's digest of the block
    RESYNC_EQUAL = 27  # csums-alg: the source's block has that digest, no data follows
    PING = 30
    PING_ACK = 31
    STATE = 32
    DISCONNECT = 33
    START_REQUEST = 40  # operator: invalidate, invalidate-remote, verify
    START_REPLY = 41
    NEW_UUID = 42  # operator: new-current-uuid --clear-bitmap
    VERIFY_REQUEST = 43
    VERIFY_REPLY = 44
    VERIFY_RESULT = 45
    VERIFY_DONE = 46
    RESIZE_REQUEST = 50  # operator: resize; the sender's room and limits (DRBD's P_SIZES)
    RESIZE_REPLY = 51  # the size both sides now have, or why the peer refused


class Message:
    """Base of every message; subclasses define TYPE, pack() and unpack()."""

    TYPE: ClassVar[MsgType]

    def pack(self) -> bytes:
        raise NotImplementedError

    def pack_parts(self) -> list[bytes | memoryview]:
        """The body in pieces that `encode` joins once (a payload is not copied per layer)."""
        return [self.pack()]

    @classmethod
    def unpack(cls, r: _Reader) -> Message:
        raise NotImplementedError


_REGISTRY: dict[int, type[Message]] = {}


def _register(cls: type[Message]) -> type[Message]:
    _REGISTRY[cls.TYPE] = cls
    return cls


# Hello flags
HELLO_DISCARD_MY_DATA = 1
HELLO_CRASHED_PRIMARY = 2
HELLO_RENEGOTIATE = 4  # a second Hello on a live link: the sender attached its disk again
_HELLO = struct.Struct(">IIBBQQQQQQ")


@_register
@dataclass(frozen=True)
class Hello(Message):
    """What a side says about itself once authenticated: enough for handshake.sync_handshake."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO
    node: str
    role: Role
    disk: DiskState
    size: int  # bytes
    current: int
    bitmap: int
    history: tuple[int, int]
    dirty: int  # bits set in the sender's bitmap
    flags: int = 0
    version: int = PROTOCOL_VERSION

    def pack(self) -> bytes:
        fixed = _HELLO.pack(
            self.version,
            self.flags,
            self.role,
            self.disk,
            self.size,
            self.current,
            self.bitmap,
            self.history[0],
            self.history[1],
            self.dirty,
        )
        return fixed + _blob16(self.node.encode())

    @classmethod
    def unpack(cls, r: _Reader) -> Hello:
        version, flags, role, disk, size, cur, bm, h0, h1, dirty = r.unpack(_HELLO)
        return cls(
            node=r.text16(),
            role=Role(_enum(Role, role, "hello")),
            disk=DiskState(_enum(DiskState, disk, "hello")),
            size=size,
            current=cur,
            bitmap=bm,
            history=(h0, h1),
            dirty=dirty,
            flags=flags,
            version=version,
        )


@_register
@dataclass(frozen=True)
class AuthChallenge(Message):
    TYPE: ClassVar[MsgType] = MsgType.AUTH_CHALLENGE
    nonce: bytes

    def pack(self) -> bytes:
        return _blob8(self.nonce)

    @classmethod
    def unpack(cls, r: _Reader) -> AuthChallenge:
        return cls(r.blob8())


@_register
@dataclass(frozen=True)
class AuthResponse(Message):
    TYPE: ClassVar[MsgType] = MsgType.AUTH_RESPONSE
    digest: bytes

    def pack(self) -> bytes:
        return _blob8(self.digest)

    @classmethod
    def unpack(cls, r: _Reader) -> AuthResponse:
        return cls(r.blob8())


# Data flags
DATA_FUA = 1
DATA_FLUSH = 2
_DATA = struct.Struct(">QQII")


@_register
@dataclass(frozen=True)
class Data(Message):
    """An application write mirrored to the peer. `seq` names it in acks; `epoch` is the
    barrier epoch it belongs to."""

    TYPE: ClassVar[MsgType] = MsgType.DATA
    offset: int
    seq: int
    epoch: int
    flags: int
    # A received payload is a read-only view of the bytes read from the peer (see _Reader).
    payload: bytes | memoryview
    digest: bytes = b""  # data-integrity-alg digest of payload; empty when not configured

    def pack(self) -> bytes:
        return b"".join(self.pack_parts())

    def pack_parts(self) -> list[bytes | memoryview]:
        head = _DATA.pack(self.offset, self.seq, self.epoch, self.flags)
        return [head, _blob8(self.digest), self.payload]

    @classmethod
    def unpack(cls, r: _Reader) -> Data:
        offset, seq, epoch, flags = r.unpack(_DATA)
        digest = r.blob8()
        return cls(offset, seq, epoch, flags, r.rest_view(), digest)


_SEQ = struct.Struct(">Q")


@dataclass(frozen=True)
class _SeqMessage(Message):
    seq: int

    def pack(self) -> bytes:
        return _SEQ.pack(self.seq)

    @classmethod
    def unpack(cls, r: _Reader) -> _SeqMessage:
        return cls(*r.unpack(_SEQ))


@_register
@dataclass(frozen=True)
class RecvAck(_SeqMessage):
    TYPE: ClassVar[MsgType] = MsgType.RECV_ACK


@_register
@dataclass(frozen=True)
class WriteAck(_SeqMessage):
    TYPE: ClassVar[MsgType] = MsgType.WRITE_ACK


@_register
@dataclass(frozen=True)
class NegAck(_SeqMessage):
    TYPE: ClassVar[MsgType] = MsgType.NEG_ACK


_EPOCH = struct.Struct(">II")


@dataclass(frozen=True)
class _EpochMessage(Message):
    epoch: int
    writes: int  # how many writes the epoch held: a cross-check for the receiver

    def pack(self) -> bytes:
        return _EPOCH.pack(self.epoch, self.writes)

    @classmethod
    def unpack(cls, r: _Reader) -> _EpochMessage:
        return cls(*r.unpack(_EPOCH))


@_register
@dataclass(frozen=True)
class Barrier(_EpochMessage):
    TYPE: ClassVar[MsgType] = MsgType.BARRIER


@_register
@dataclass(frozen=True)
class BarrierAck(_EpochMessage):
    TYPE: ClassVar[MsgType] = MsgType.BARRIER_ACK


_BITMAP = struct.Struct(">QBI")
_RUN = struct.Struct(">QQ")
MAX_RUNS = (MAX_BODY - _BITMAP.size) // _RUN.size


@_register
@dataclass(frozen=True)
class BitmapRuns(Message):
    """A bitmap as its dirty runs (start, stop), compact for the usual sparse case. `last`
    marks the final chunk of a bitmap sent in several."""

    TYPE: ClassVar[MsgType] = MsgType.BITMAP
    nbits: int
    runs: tuple[tuple[int, int], ...]
    last: bool = True

    def pack(self) -> bytes:
        parts = [_BITMAP.pack(self.nbits, int(self.last), len(self.runs))]
        parts.extend(_RUN.pack(start, stop - start) for start, stop in self.runs)
        return b"".join(parts)

    @classmethod
    def unpack(cls, r: _Reader) -> BitmapRuns:
        nbits, last, count = r.unpack(_BITMAP)
        if last > 1:
            raise WireError(f"bitmap: last flag {last} is not 0 or 1")
        runs = []
        previous = 0
        for _ in range(count):
            start, length = r.unpack(_RUN)
            stop = start + length
            # Runs must be sorted, non-empty, disjoint and inside the bitmap: anything else
            # would be a peer describing blocks that do not exist.
            if length == 0 or start < previous or stop > nbits:
                raise WireError(f"bitmap: run [{start}, {stop}) is invalid for {nbits} bits")
            runs.append((start, stop))
            previous = stop
        return cls(nbits, tuple(runs), bool(last))


@_register
@dataclass(frozen=True)
class SyncUuid(Message):
    """The sync source's new bitmap identifier: the target adopts it as its current one."""

    TYPE: ClassVar[MsgType] = MsgType.SYNC_UUID
    uuid: int

    def pack(self) -> bytes:
        return _SEQ.pack(self.uuid)

    @classmethod
    def unpack(cls, r: _Reader) -> SyncUuid:
        return cls(*r.unpack(_SEQ))


_DATA_REQUEST = struct.Struct(">QQI")


@_register
@dataclass(frozen=True)
class DataRequest(Message):
    """A read of the peer's disk for an application read on a node without usable local data
    (Diskless, or the block out of sync on an Inconsistent disk). `id` names it in the reply."""

    TYPE: ClassVar[MsgType] = MsgType.DATA_REQUEST
    id: int
    offset: int
    length: int

    def pack(self) -> bytes:
        return _DATA_REQUEST.pack(self.id, self.offset, self.length)

    @classmethod
    def unpack(cls, r: _Reader) -> DataRequest:
        return cls(*r.unpack(_DATA_REQUEST))


_DATA_REPLY = struct.Struct(">QQB")


@_register
@dataclass(frozen=True)
class DataReply(Message):
    """The answer to a DataRequest: ok and the data, or not ok (the peer could not read it;
    DRBD's P_NEG_DREPLY) with no payload."""

    TYPE: ClassVar[MsgType] = MsgType.DATA_REPLY
    id: int
    offset: int
    ok: bool
    payload: bytes = b""

    def pack(self) -> bytes:
        return _DATA_REPLY.pack(self.id, self.offset, int(self.ok)) + self.payload

    @classmethod
    def unpack(cls, r: _Reader) -> DataReply:
        ident, offset, ok = r.unpack(_DATA_REPLY)
        if ok > 1:
            raise WireError(f"data reply: ok flag {ok} is not 0 or 1")
        payload = r.rest()
        if not ok and payload:
            raise WireError("data reply: a failed read carries no data")
        return cls(ident, offset, bool(ok), payload)


_RANGE = struct.Struct(">QI")


@dataclass(frozen=True)
class _RangeMessage(Message):
    offset: int
    length: int

    def pack(self) -> bytes:
        return _RANGE.pack(self.offset, self.length)

    @classmethod
    def unpack(cls, r: _Reader) -> _RangeMessage:
        return cls(*r.unpack(_RANGE))


@_register
@dataclass(frozen=True)
class ResyncRequest(_RangeMessage):
    TYPE: ClassVar[MsgType] = MsgType.RESYNC_REQUEST


@_register
@dataclass(frozen=True)
class OutOfSync(_RangeMessage):
    TYPE: ClassVar[MsgType] = MsgType.OUT_OF_SYNC


_RESYNC_ACK = struct.Struct(">QIB")


@_register
@dataclass(frozen=True)
class ResyncAck(Message):
    TYPE: ClassVar[MsgType] = MsgType.RESYNC_ACK
    offset: int
    length: int
    ok: bool = True

    def pack(self) -> bytes:
        return _RESYNC_ACK.pack(self.offset, self.length, int(self.ok))

    @classmethod
    def unpack(cls, r: _Reader) -> ResyncAck:
        offset, length, ok = r.unpack(_RESYNC_ACK)
        if ok > 1:
            raise WireError(f"resync ack: ok flag {ok} is not 0 or 1")
        return cls(offset, length, bool(ok))


_OFFSET = struct.Struct(">Q")


@_register
@dataclass(frozen=True)
class ResyncData(Message):
    TYPE: ClassVar[MsgType] = MsgType.RESYNC_DATA
    offset: int
    payload: bytes

    def pack(self) -> bytes:
        return _OFFSET.pack(self.offset) + self.payload

    @classmethod
    def unpack(cls, r: _Reader) -> ResyncData:
        (offset,) = r.unpack(_OFFSET)
        return cls(offset, r.rest())


@dataclass(frozen=True)
class _Empty(Message):
    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, r: _Reader) -> _Empty:
        return cls()


@_register
@dataclass(frozen=True)
class Ping(_Empty):
    TYPE: ClassVar[MsgType] = MsgType.PING


@_register
@dataclass(frozen=True)
class PingAck(_Empty):
    TYPE: ClassVar[MsgType] = MsgType.PING_ACK


@_register
@dataclass(frozen=True)
class StateChange(Message):
    TYPE: ClassVar[MsgType] = MsgType.STATE
    role: Role
    disk: DiskState

    def pack(self) -> bytes:
        return bytes([self.role, self.disk])

    @classmethod
    def unpack(cls, r: _Reader) -> StateChange:
        role, disk = r.take(2)
        return cls(Role(_enum(Role, role, "state")), DiskState(_enum(DiskState, disk, "state")))


@_register
@dataclass(frozen=True)
class Disconnect(Message):
    TYPE: ClassVar[MsgType] = MsgType.DISCONNECT
    reason: str = ""

    def pack(self) -> bytes:
        return _blob16(self.reason.encode())

    @classmethod
    def unpack(cls, r: _Reader) -> Disconnect:
        return cls(r.text16())


@_register
@dataclass(frozen=True)
class ResyncEqual(_RangeMessage):
    """csums-alg: the source's block matches the target's digest; the target keeps its copy."""

    TYPE: ClassVar[MsgType] = MsgType.RESYNC_EQUAL


_DIGEST_RANGE = struct.Struct(">QI")


@dataclass(frozen=True)
class _DigestRangeMessage(Message):
    offset: int
    length: int
    digest: bytes

    def pack(self) -> bytes:
        return _DIGEST_RANGE.pack(self.offset, self.length) + _blob8(self.digest)

    @classmethod
    def unpack(cls, r: _Reader) -> _DigestRangeMessage:
        offset, length = r.unpack(_DIGEST_RANGE)
        return cls(offset, length, r.blob8())


@_register
@dataclass(frozen=True)
class CsumRequest(_DigestRangeMessage):
    """csums-alg: "send me this block unless yours has this digest" (target to source)."""

    TYPE: ClassVar[MsgType] = MsgType.CSUM_REQUEST


# StartRequest kinds
START_TARGET = 1  # invalidate: the sender becomes sync target of a full sync
START_SOURCE = 2  # invalidate-remote: the sender becomes sync source of a full sync
START_VERIFY = 3  # verify: the sender becomes VerifyS from `start_block`
_START_KINDS = (START_TARGET, START_SOURCE, START_VERIFY)
_START = struct.Struct(">BQQQQQ")


def _start_kind(kind: int, what: str) -> int:
    if kind not in _START_KINDS:
        raise WireError(f"{what}: unknown kind {kind}")
    return kind


@_register
@dataclass(frozen=True)
class StartRequest(Message):
    """An operator command that needs the peer: the sender's generation identifiers travel
    with it (a sync target finishes by adopting its source's), `alg` names the verify-alg."""

    TYPE: ClassVar[MsgType] = MsgType.START_REQUEST
    kind: int
    start_block: int
    current: int
    bitmap: int
    history: tuple[int, int]
    alg: str = ""

    def pack(self) -> bytes:
        head = _START.pack(self.kind, self.start_block, self.current, self.bitmap, *self.history)
        return head + _blob16(self.alg.encode())

    @classmethod
    def unpack(cls, r: _Reader) -> StartRequest:
        kind, start, cur, bm, h0, h1 = r.unpack(_START)
        return cls(_start_kind(kind, "start request"), start, cur, bm, (h0, h1), r.text16())


_REPLY = struct.Struct(">BBQQQQ")


@_register
@dataclass(frozen=True)
class StartReply(Message):
    TYPE: ClassVar[MsgType] = MsgType.START_REPLY
    kind: int
    ok: bool
    current: int
    bitmap: int
    history: tuple[int, int]
    reason: str = ""  # why the peer refused

    def pack(self) -> bytes:
        head = _REPLY.pack(self.kind, int(self.ok), self.current, self.bitmap, *self.history)
        return head + _blob16(self.reason.encode())

    @classmethod
    def unpack(cls, r: _Reader) -> StartReply:
        kind, ok, cur, bm, h0, h1 = r.unpack(_REPLY)
        if ok > 1:
            raise WireError(f"start reply: ok flag {ok} is not 0 or 1")
        return cls(_start_kind(kind, "start reply"), bool(ok), cur, bm, (h0, h1), r.text16())


NEW_UUID_CLEAR_BITMAP = 1
_NEW_UUID = struct.Struct(">QB")


@_register
@dataclass(frozen=True)
class NewUuid(Message):
    """new-current-uuid --clear-bitmap: the peer adopts `uuid` and both skip the initial sync."""

    TYPE: ClassVar[MsgType] = MsgType.NEW_UUID
    uuid: int
    flags: int = NEW_UUID_CLEAR_BITMAP

    def pack(self) -> bytes:
        return _NEW_UUID.pack(self.uuid, self.flags)

    @classmethod
    def unpack(cls, r: _Reader) -> NewUuid:
        uuid, flags = r.unpack(_NEW_UUID)
        if flags & ~NEW_UUID_CLEAR_BITMAP:
            raise WireError(f"new uuid: unknown flags {flags:#x}")
        return cls(uuid, flags)


@_register
@dataclass(frozen=True)
class VerifyRequest(_RangeMessage):
    """VerifyS to VerifyT: send the digest of this range."""

    TYPE: ClassVar[MsgType] = MsgType.VERIFY_REQUEST


@_register
@dataclass(frozen=True)
class VerifyReply(_DigestRangeMessage):
    TYPE: ClassVar[MsgType] = MsgType.VERIFY_REPLY


_VERIFY_RESULT = struct.Struct(">QIB")


@_register
@dataclass(frozen=True)
class VerifyResult(Message):
    """VerifyS to VerifyT: whether the range matched (a mismatch goes into both bitmaps)."""

    TYPE: ClassVar[MsgType] = MsgType.VERIFY_RESULT
    offset: int
    length: int
    in_sync: bool

    def pack(self) -> bytes:
        return _VERIFY_RESULT.pack(self.offset, self.length, int(self.in_sync))

    @classmethod
    def unpack(cls, r: _Reader) -> VerifyResult:
        offset, length, in_sync = r.unpack(_VERIFY_RESULT)
        if in_sync > 1:
            raise WireError(f"verify result: in-sync flag {in_sync} is not 0 or 1")
        return cls(offset, length, bool(in_sync))


_VERIFY_DONE = struct.Struct(">QQ")


@_register
@dataclass(frozen=True)
class VerifyDone(Message):
    TYPE: ClassVar[MsgType] = MsgType.VERIFY_DONE
    verified: int  # blocks compared
    out_of_sync: int  # blocks that differed

    def pack(self) -> bytes:
        return _VERIFY_DONE.pack(self.verified, self.out_of_sync)

    @classmethod
    def unpack(cls, r: _Reader) -> VerifyDone:
        return cls(*r.unpack(_VERIFY_DONE))


# --- framing -------------------------------------------------------------------------------


# ResizeRequest flags
RESIZE_ASSUME_CLEAN = 1  # --assume-clean: the new area is not resynchronised
_RESIZE_REQUEST = struct.Struct(">QQQBQQQQ")


@_register
@dataclass(frozen=True)
class ResizeRequest(Message):
    """`resize` on the sender: the data sectors its backing device has room for, its drbd.conf
    `size` limit (0: none) and the operator's `--size` (0: none), in 512-byte sectors; its
    generation identifiers travel with it for the resync of the new area."""

    TYPE: ClassVar[MsgType] = MsgType.RESIZE_REQUEST
    max_sectors: int
    limit_sectors: int
    requested_sectors: int
    flags: int
    current: int
    bitmap: int
    history: tuple[int, int]

    def pack(self) -> bytes:
        return _RESIZE_REQUEST.pack(
            self.max_sectors,
            self.limit_sectors,
            self.requested_sectors,
            self.flags,
            self.current,
            self.bitmap,
            *self.history,
        )

    @classmethod
    def unpack(cls, r: _Reader) -> ResizeRequest:
        max_s, limit, requested, flags, cur, bm, h0, h1 = r.unpack(_RESIZE_REQUEST)
        if flags & ~RESIZE_ASSUME_CLEAN:
            raise WireError(f"resize request: unknown flags {flags:#x}")
        return cls(max_s, limit, requested, flags, cur, bm, (h0, h1))


_RESIZE_REPLY = struct.Struct(">BQQQQQ")


@_register
@dataclass(frozen=True)
class ResizeReply(Message):
    """The peer's answer to a ResizeRequest: the agreed size in sectors (which it has already
    taken) and its identifiers, or not ok and why."""

    TYPE: ClassVar[MsgType] = MsgType.RESIZE_REPLY
    ok: bool
    sectors: int
    current: int
    bitmap: int
    history: tuple[int, int]
    reason: str = ""

    def pack(self) -> bytes:
        head = _RESIZE_REPLY.pack(
            int(self.ok), self.sectors, self.current, self.bitmap, *self.history
        )
        return head + _blob16(self.reason.encode())

    @classmethod
    def unpack(cls, r: _Reader) -> ResizeReply:
        ok, sectors, cur, bm, h0, h1 = r.unpack(_RESIZE_REPLY)
        if ok > 1:
            raise WireError(f"resize reply: ok flag {ok} is not 0 or 1")
        return cls(bool(ok), sectors, cur, bm, (h0, h1), r.text16())


def encode(message: Message, sequence: int) -> bytes:
    return b"".join(encode_parts(message, sequence))


def encode_parts(message: Message, sequence: int) -> list[bytes | memoryview]:
    """The frame in pieces, for a vectored write: a payload is not copied into it."""
    parts = message.pack_parts()
    length = sum(len(part) for part in parts)
    if length > MAX_BODY:
        raise ValueError(f"{type(message).__name__} body of {length} bytes is over {MAX_BODY}")
    return [HEADER.pack(MAGIC, message.TYPE, 0, length, sequence), *parts]


def _decode_header(
    source: bytes | bytearray | memoryview, pos: int, max_body: int
) -> tuple[type[Message], int, int]:
    magic, mtype, reserved, length, sequence = HEADER.unpack_from(source, pos)
    if magic != MAGIC:
        raise WireError(f"bad magic {magic:#010x} (expected {MAGIC:#010x})")
    if reserved:
        raise WireError(f"reserved header field is {reserved:#x}, not zero")
    cls = _REGISTRY.get(mtype)
    if cls is None:
        raise WireError(f"unknown message type {mtype}")
    if length > max_body:
        raise WireError(f"{cls.__name__} body of {length} bytes is over the limit of {max_body}")
    return cls, length, sequence


def _decode_body(cls: type[Message], body: bytes | memoryview) -> Message:
    reader = _Reader(body, cls.__name__)
    message = cls.unpack(reader)
    reader.done()
    return message


def decode(frame: bytes, *, max_body: int = MAX_BODY) -> tuple[Message, int]:
    """Decode exactly one whole frame; returns (message, sequence)."""
    if len(frame) < HEADER_SIZE:
        raise WireError(f"frame truncated: {len(frame)} bytes, header needs {HEADER_SIZE}")
    cls, length, sequence = _decode_header(frame, 0, max_body)
    if len(frame) != HEADER_SIZE + length:
        raise WireError(
            f"{cls.__name__} frame is {len(frame)} bytes, header says {HEADER_SIZE + length}"
        )
    return _decode_body(cls, frame[HEADER_SIZE:]), sequence


@dataclass
class Decoder:
    """Incremental decoder for one direction of a stream: feed bytes, get whole messages.
    After a WireError the stream is unusable (the connection must be dropped)."""

    max_body: int = MAX_BODY
    expected_sequence: int = 1
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes | memoryview) -> list[Message]:
        # With nothing buffered (the peer link hands over whole frames) the frames are decoded
        # in place; only the bytes of an unfinished frame are kept, as a copy. Frames are taken
        # by position and a buffer shortened once: deleting each frame from the front would
        # move the rest of a large read once per frame.
        buffered = bool(self._buffer)
        if buffered:
            self._buffer += data
        source = self._buffer if buffered else data
        out: list[Message] = []
        pos = 0
        with memoryview(source) as view:
            try:
                while len(view) - pos >= HEADER_SIZE:
                    cls, length, sequence = _decode_header(view, pos, self.max_body)
                    if sequence != self.expected_sequence:
                        raise WireError(
                            f"frame sequence {sequence}, expected {self.expected_sequence}"
                        )
                    end = pos + HEADER_SIZE + length
                    if len(view) < end:
                        break
                    body = view[pos + HEADER_SIZE : end]
                    pos = end
                    self.expected_sequence += 1
                    try:
                        out.append(_decode_body(cls, body))
                    finally:
                        body.release()
            finally:
                if not buffered:
                    self._buffer += view[pos:]
        if buffered:
            del self._buffer[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered but not yet a whole frame."""
        return len(self._buffer)


@dataclass
class Encoder:
    """Numbers the frames of one direction."""

    next_sequence: int = 1

    def encode(self, message: Message) -> bytes:
        return b"".join(self.encode_parts(message))

    def encode_parts(self, message: Message) -> list[bytes | memoryview]:
        parts = encode_parts(message, self.next_sequence)
        self.next_sequence = (self.next_sequence + 1) & _U64
        return parts
