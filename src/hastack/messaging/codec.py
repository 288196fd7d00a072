"""The messaging wire format: reliable streams of fragments over the heartbeat links.

    "HM1" | key index (1 byte) | tag (4-32 bytes, by the key's method) | body

The magic differs from the heartbeat's "HS2", so a shell that shares one endpoint between the
two (serial lines) routes a datagram by its first three bytes. The tag authenticates the body
with the authkeys key named by the index, exactly as the heartbeat does (membership.auth): every
configured key is accepted on receive, the `auth N` key signs.

The body is binary, network byte order:

    kind (1: data, 2: ack, 3: gone), flags (1 byte), origin generation (u64)
    cluster name, origin node name (each: length byte + UTF-8)
    data: seq (u64), fragment index (u32), fragment count (u32), destination (length byte +
          UTF-8; empty for every node), then the fragment's bytes (the rest of the datagram)
    ack:  stream node (length byte + UTF-8), stream generation (u64), cumulative (u64),
          highest (u64), range count (1 byte), then that many (first, last) pairs (u64 each)
    gone: up to (u64)

The origin of a datagram is the node that sent it: the stream's sender for data and gone, the
acknowledging receiver for an ack. An ack says "of `stream`'s generation `stream_generation` I
hold every seq up to `cumulative`; between that and `highest` I lack exactly `missing`"; above
`highest` it says nothing. A gone says "my stream holds nothing up to `upto` any more".

A message of several fragments has consecutive seqs; its first seq is `seq - index`, so no
separate message id is needed. Flag FLAG_COMPRESSED on a data fragment: the reassembled message
is zlib-compressed. `decode` checks every field and never raises: the core only ever sees
well-formed messages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

from hastack.config.model import AuthKeys
from hastack.membership.auth import TAG_SIZE, sign, verify

MAGIC = b"HM1"
# The largest datagram accepted: UDP's limit. The core's datagrams are far smaller
# (MessagingParams.fragment_size, at most the serial framing's 16 KiB).
MAX_DATAGRAM = 65507
MAX_INT = 2**63 - 1  # as in the heartbeat codec: one more than any field is still encodable
MAX_NAME = 255  # bytes of UTF-8 in a cluster or node name (one length byte)
MAX_RANGES = 32  # missing ranges in one ack (the ack lowers `highest` to fit)
MAX_FRAGMENTS = 2**24  # fragments of one message: far above 16 MiB in 1 KiB fragments

KIND_DATA, KIND_ACK, KIND_GONE = 1, 2, 3
FLAG_COMPRESSED = 1

HEAD = struct.Struct("!BBQ")  # kind, flags, origin generation
DATA_FIXED = struct.Struct("!QII")  # seq, index, count
ACK_FIXED = struct.Struct("!QQQB")  # stream generation, cumulative, highest, range count
RANGE = struct.Struct("!QQ")
GONE_FIXED = struct.Struct("!Q")

DropReason = Literal["malformed", "auth", "cluster"]


@dataclass(frozen=True)
class Data:
    """One fragment of message `seq - index` in `sender`'s stream of `generation`."""

    cluster: str
    sender: str
    generation: int
    seq: int
    index: int
    count: int
    dest: str | None  # None: every node
    compressed: bool
    chunk: bytes


@dataclass(frozen=True)
class Ack:
    """`sender` (generation `generation`) acknowledging `stream`'s stream `stream_generation`."""

    cluster: str
    sender: str
    generation: int
    stream: str
    stream_generation: int
    cumulative: int
    highest: int
    missing: tuple[tuple[int, int], ...]  # inclusive (first, last), ascending, disjoint


@dataclass(frozen=True)
class Gone:
    """`sender`'s stream of `generation` no longer holds any seq up to `upto`."""

    cluster: str
    sender: str
    generation: int
    upto: int


Message = Data | Ack | Gone


@dataclass(frozen=True)
class Dropped:
    reason: DropReason
    detail: str


def _name(text: str, what: str, empty_ok: bool = False) -> bytes:
    raw = text.encode()
    if len(raw) > MAX_NAME or (not raw and not empty_ok):
        raise ValueError(f"{what} {text[:40]!r} must be 1 to {MAX_NAME} bytes of UTF-8")
    return bytes((len(raw),)) + raw


def _check_int(value: int, what: str, low: int = 0) -> None:
    if not low <= value <= MAX_INT:
        raise ValueError(f"{what} {value} out of range {low}..{MAX_INT}")


def data_overhead(keys: AuthKeys, cluster: str, sender: str, dest: str | None) -> int:
    """Bytes a data datagram adds to its fragment's bytes (the core sizes fragments with it)."""
    return (
        len(MAGIC)
        + 1
        + TAG_SIZE[keys.signing.method]
        + HEAD.size
        + 1
        + len(cluster.encode())
        + 1
        + len(sender.encode())
        + DATA_FIXED.size
        + 1
        + len((dest or "").encode())
    )


def encode(msg: Message, keys: AuthKeys) -> bytes:
    """The signed datagram for `msg`; raises ValueError for a field the format cannot carry."""
    _check_int(msg.generation, "generation", 1)
    prefix = _name(msg.cluster, "cluster name", empty_ok=True) + _name(msg.sender, "node name")
    if isinstance(msg, Data):
        _check_int(msg.seq, "seq", 1)
        if not (0 <= msg.index < msg.count <= MAX_FRAGMENTS and msg.seq > msg.index):
            raise ValueError(f"fragment {msg.index} of {msg.count} at seq {msg.seq} is invalid")
        body = (
            HEAD.pack(KIND_DATA, FLAG_COMPRESSED if msg.compressed else 0, msg.generation)
            + prefix
            + DATA_FIXED.pack(msg.seq, msg.index, msg.count)
            + _name(msg.dest or "", "destination", empty_ok=True)
            + msg.chunk
        )
    elif isinstance(msg, Ack):
        _check_int(msg.stream_generation, "stream generation", 1)
        _check_int(msg.highest, "highest")
        _check_missing(msg.cumulative, msg.highest, msg.missing)
        body = (
            HEAD.pack(KIND_ACK, 0, msg.generation)
            + prefix
            + _name(msg.stream, "stream name")
            + ACK_FIXED.pack(msg.stream_generation, msg.cumulative, msg.highest, len(msg.missing))
            + b"".join(RANGE.pack(first, last) for first, last in msg.missing)
        )
    else:
        _check_int(msg.upto, "upto")
        body = HEAD.pack(KIND_GONE, 0, msg.generation) + prefix + GONE_FIXED.pack(msg.upto)
    if len(body) > MAX_DATAGRAM - 64:
        raise ValueError(f"datagram body of {len(body)} bytes exceeds {MAX_DATAGRAM - 64}")
    key = keys.signing
    return MAGIC + bytes((key.index,)) + sign(key, body) + body


def _check_missing(cumulative: int, highest: int, missing: tuple[tuple[int, int], ...]) -> None:
    """Raises ValueError unless `missing` is ascending, disjoint, within (cumulative, highest]."""
    if not 0 <= cumulative <= highest <= MAX_INT:
        raise ValueError(f"cumulative {cumulative} and highest {highest} out of order or range")
    if len(missing) > MAX_RANGES:
        raise ValueError(f"{len(missing)} missing ranges exceed {MAX_RANGES}")
    floor = cumulative
    for first, last in missing:
        if not floor < first <= last < highest:
            raise ValueError(f"missing range {first}..{last} out of order or range")
        floor = last + 1


def decode(data: bytes, keys: AuthKeys, cluster: str) -> Message | Dropped:
    """Parse and authenticate one datagram; never raises."""
    if len(data) > MAX_DATAGRAM:
        return Dropped("malformed", "datagram too large")
    if len(data) < 4 or data[:3] != MAGIC:
        return Dropped("malformed", "bad header")
    key = keys.keys.get(data[3])
    if key is None:
        return Dropped("auth", f"unknown key index {data[3]}")
    end = 4 + TAG_SIZE[key.method]
    body = bytes(data[end:])
    if len(data) < end or not verify(key, body, bytes(data[4:end])):
        return Dropped("auth", "bad authentication tag")
    try:
        return _message(body, cluster)
    except _WrongCluster as exc:
        return Dropped("cluster", str(exc))
    except (ValueError, struct.error) as exc:  # UnicodeDecodeError is a ValueError
        return Dropped("malformed", str(exc))


class _WrongCluster(Exception):
    pass


class _Reader:
    """A cursor over a body; every read checks that the bytes are there."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0

    def take(self, layout: struct.Struct) -> tuple[int, ...]:
        if self.at + layout.size > len(self.body):
            raise ValueError("body truncated")
        values = layout.unpack_from(self.body, self.at)
        self.at += layout.size
        return values

    def name(self, what: str, empty_ok: bool = False) -> str:
        if self.at >= len(self.body):
            raise ValueError(f"body truncated before the {what}")
        size = self.body[self.at]
        start = self.at + 1
        if start + size > len(self.body):
            raise ValueError(f"{what} truncated")
        self.at = start + size
        text = self.body[start : self.at].decode()
        if not text and not empty_ok:
            raise ValueError(f"empty {what}")
        return text

    def finish(self) -> None:
        if self.at != len(self.body):
            raise ValueError(f"{len(self.body) - self.at} bytes after the message")


def _message(body: bytes, cluster: str) -> Message:
    reader = _Reader(body)
    kind, flags, generation = reader.take(HEAD)
    if not 1 <= generation <= MAX_INT:
        raise ValueError(f"generation {generation} out of range")
    name = reader.name("cluster name", empty_ok=True)
    if name != cluster:
        raise _WrongCluster(f"datagram for cluster {name[:40]!r}")
    sender = reader.name("sender name")
    if kind == KIND_DATA:
        if flags & ~FLAG_COMPRESSED:
            raise ValueError(f"unknown flags {flags:#x}")
        seq, index, count = reader.take(DATA_FIXED)
        if not 1 <= seq <= MAX_INT:
            raise ValueError(f"seq {seq} out of range")
        if not (index < count <= MAX_FRAGMENTS and seq > index):
            raise ValueError(f"fragment {index} of {count} at seq {seq} is invalid")
        dest = reader.name("destination", empty_ok=True)
        chunk = body[reader.at :]
        return Data(
            cluster, sender, generation, seq, index, count, dest or None, bool(flags), chunk
        )
    if flags:
        raise ValueError(f"unknown flags {flags:#x}")
    if kind == KIND_ACK:
        stream = reader.name("stream name")
        stream_generation, cumulative, highest, count = reader.take(ACK_FIXED)
        if not 1 <= stream_generation <= MAX_INT:
            raise ValueError(f"stream generation {stream_generation} out of range")
        missing = tuple((first, last) for first, last in (reader.take(RANGE) for _ in range(count)))
        reader.finish()
        _check_missing(cumulative, highest, missing)
        return Ack(
            cluster, sender, generation, stream, stream_generation, cumulative, highest, missing
        )
    if kind == KIND_GONE:
        (upto,) = reader.take(GONE_FIXED)
        reader.finish()
        if upto > MAX_INT:
            raise ValueError(f"upto {upto} out of range")
        return Gone(cluster, sender, generation, upto)
    raise ValueError(f"unknown datagram kind {kind}")
