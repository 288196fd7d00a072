"""The heartbeat wire format: one datagram is one message.

    "HS2" | key index (1 byte) | tag (4-32 bytes, by the key's method) | body

The tag authenticates the body with the authkeys key named by the index (every key in authkeys
is accepted on receive, so keys can be rotated one node at a time). The body is binary, because
every node decodes (keepalive / peers) messages a second and a text format costs most of a
heartbeat's CPU:

    fixed part, network byte order (82 bytes):
        type (1 byte: 1 hb, 2 vreq, 3 vote, 4 wd, 5 bye), flags (1 byte, FLAG_*),
        generation, seq, term, high_term, voted_term, dc_age, grant term, grant round,
        members_version term, members_version counter (unsigned 64-bit each, < 2**63)
    text part, UTF-8, exactly TEXT_FIELDS fields separated by newlines:
        cluster, node, dc, grant or vote target, seen, members, attributes
        (seen and members: node names separated by spaces; attributes: NAME=INTEGER pairs
        separated by spaces; an absent value is the empty string)

Node names are single words (ha.cf's `node` lines split on blanks), so spaces and newlines can
separate them. `decode` checks every field, so a core only ever sees well-formed messages.
Replay protection needs per-sender state and lives in the core.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, NamedTuple

from hastack.config.model import AuthKeys
from hastack.membership.auth import TAG_SIZE, sign, verify

MAGIC = b"HS2"
MAX_DATAGRAM = 60000
# Every integer is below 2**63, so that a node adding one to a term or a seq it received
# can always encode the result.
MAX_INT = 2**63 - 1

MessageType = Literal["hb", "vreq", "vote", "wd", "bye"]
DropReason = Literal["malformed", "auth", "cluster"]

TYPE_CODES: dict[str, int] = {"hb": 1, "vreq": 2, "vote": 3, "wd": 4, "bye": 5}
TYPES_BY_CODE: dict[int, MessageType] = {1: "hb", 2: "vreq", 3: "vote", 4: "wd", 5: "bye"}
FLAG_LEASE, FLAG_QUORATE, FLAG_OK, FLAG_GRANT, FLAG_DC = 1, 2, 4, 8, 16
ALL_FLAGS = FLAG_LEASE | FLAG_QUORATE | FLAG_OK | FLAG_GRANT | FLAG_DC
FIXED = struct.Struct("!BB10Q")
TEXT_FIELDS = 7
NO_ATTRIBUTES: Mapping[str, int] = MappingProxyType({})


class Grant(NamedTuple):
    """A voter's standing vote: for `to`, in `term`, last renewed by the DC's round `round`.
    (A named tuple: one is decoded with nearly every heartbeat.)"""

    to: str
    term: int
    round: int


# A named tuple, not a dataclass: every node decodes (keepalive / peers) of these a second, and
# building a tuple from positional fields costs a third of a dataclass's keyword __init__
# (the largest single cost of decoding a heartbeat). Immutable, as a message should be.
class Message(NamedTuple):
    cluster: str
    node: str
    generation: int
    seq: int
    type: MessageType
    # hb
    seen: tuple[str, ...] = ()  # peers the sender hears now
    dc: str | None = None  # the DC the sender knows of
    dc_age: int = 0  # ms since the sender last heard that DC itself (0 when it is the DC)
    term: int = 0  # hb: the DC's term (or 0); vreq/vote/wd: the election term
    lease: bool = False  # hb: the sender is the DC and this is a lease renewal round (= seq)
    grant: Grant | None = None  # hb: the sender's vote, acknowledging a DC round
    members: tuple[str, ...] = ()  # hb: the member list the sender holds
    members_version: tuple[int, int] = (0, 0)
    attributes: Mapping[str, int] = NO_ATTRIBUTES  # hb: e.g. pingd
    quorate: bool = False
    high_term: int = 0  # the highest term the sender has seen
    voted_term: int = 0  # hb: the term of the sender's last vote, binding or not
    # vote
    to: str | None = None
    ok: bool = False


@dataclass(frozen=True)
class Dropped:
    reason: DropReason
    detail: str


def encode(msg: Message, keys: AuthKeys) -> bytes:
    grant = msg.grant
    flags = (
        (FLAG_LEASE if msg.lease else 0)
        | (FLAG_QUORATE if msg.quorate else 0)
        | (FLAG_OK if msg.ok else 0)
        | (FLAG_GRANT if grant is not None else 0)
        | (FLAG_DC if msg.dc is not None else 0)
    )
    fixed = FIXED.pack(
        TYPE_CODES[msg.type],
        flags,
        msg.generation,
        msg.seq,
        msg.term,
        msg.high_term,
        msg.voted_term,
        msg.dc_age,
        grant.term if grant else 0,
        grant.round if grant else 0,
        *msg.members_version,
    )
    text = "\n".join(
        (
            msg.cluster,
            msg.node,
            msg.dc or "",
            grant.to if grant else (msg.to or ""),
            " ".join(msg.seen),
            " ".join(msg.members),
            " ".join(f"{name}={value}" for name, value in msg.attributes.items()),
        )
    )
    body = fixed + text.encode()
    key = keys.signing
    return MAGIC + bytes((key.index,)) + sign(key, body) + body


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
    body = data[end:]
    if not verify(key, body, data[4:end]):
        return Dropped("auth", "bad authentication tag")
    try:
        return _message(body, cluster)
    except _WrongCluster as exc:
        return Dropped("cluster", str(exc))
    except ValueError as exc:  # also UnicodeDecodeError and struct.error's subclass
        return Dropped("malformed", str(exc))


class _WrongCluster(Exception):
    pass


def _message(body: bytes, cluster: str) -> Message:
    if len(body) < FIXED.size:
        raise ValueError("body shorter than its fixed part")
    numbers = FIXED.unpack_from(body)
    code, flags = numbers[0], numbers[1]
    (generation, seq, term, high_term, voted_term, dc_age, g_term, g_round, mv_term, mv_count) = (
        numbers[2:]
    )
    if max(numbers) > MAX_INT:
        raise ValueError("integer field out of range")
    mtype = TYPES_BY_CODE.get(code)
    if mtype is None:
        raise ValueError(f"unknown message type {code}")
    if flags & ~ALL_FLAGS:
        raise ValueError(f"unknown flags {flags:#x}")
    node, dc, target, seen, members, attributes = _text_fields(body[FIXED.size :], cluster)
    if mtype == "hb":
        if flags & FLAG_GRANT and not target:
            raise ValueError("a grant without the name it is for")
        if flags & FLAG_DC and not dc:
            raise ValueError("the DC flag without the DC's name")
        # positional, in Message's field order (see the class comment)
        return Message._make(
            (
                cluster,
                node,
                generation,
                seq,
                mtype,
                seen,
                dc if flags & FLAG_DC else None,
                dc_age,
                term,
                bool(flags & FLAG_LEASE),
                Grant(target, g_term, g_round) if flags & FLAG_GRANT else None,
                members,
                (mv_term, mv_count),
                attributes,
                bool(flags & FLAG_QUORATE),
                high_term,
                voted_term,
                None,
                False,
            )
        )
    if mtype == "vote" and not target:
        raise ValueError("a vote without the candidate it answers")
    return Message(
        cluster=cluster,
        node=node,
        generation=generation,
        seq=seq,
        type=mtype,
        term=term,
        high_term=high_term,
        to=target if mtype == "vote" else None,
        ok=bool(flags & FLAG_OK) if mtype == "vote" else False,
    )


TextFields = tuple[str, str, str, tuple[str, ...], tuple[str, ...], Mapping[str, int]]

# A sender's text part (its name, the DC, the names it sees, the member list) changes far
# less often than its numbers, so parsed text parts are memoised: most heartbeats then cost a
# dictionary lookup here instead of splitting and allocating some forty strings. Only
# well-formed text parts are kept; the oldest entry goes when the memo is full.
_TEXT_MEMO: dict[tuple[bytes, str], TextFields] = {}
TEXT_MEMO_SIZE = 512


def _text_fields(raw: bytes, cluster: str) -> TextFields:
    """node, dc, grant or vote target, seen, members, attributes; raises ValueError, or
    _WrongCluster for another cluster's message."""
    key = (raw, cluster)
    parsed = _TEXT_MEMO.get(key)
    if parsed is not None:
        return parsed
    fields = raw.decode().split("\n")
    if len(fields) != TEXT_FIELDS:
        raise ValueError(f"{len(fields)} text fields, not {TEXT_FIELDS}")
    name, node, dc, target, seen, members, attributes = fields
    if name != cluster:
        raise _WrongCluster(f"message for cluster {name!r}")
    if not node:
        raise ValueError("no sender name")
    parsed = (
        node,
        dc,
        target,
        tuple(seen.split()),
        tuple(members.split()),
        _attributes(attributes),
    )
    if len(_TEXT_MEMO) >= TEXT_MEMO_SIZE:
        del _TEXT_MEMO[next(iter(_TEXT_MEMO))]
    _TEXT_MEMO[key] = parsed
    return parsed


def _attributes(text: str) -> Mapping[str, int]:
    """NAME=INTEGER pairs, read-only: one parsed text part is shared by many messages."""
    if not text:
        return NO_ATTRIBUTES
    attributes: dict[str, int] = {}
    for item in text.split():
        name, sep, value = item.partition("=")
        if not name or not sep:
            raise ValueError(f"attribute {item[:40]!r} is not NAME=INTEGER")
        attributes[name] = int(value)  # ValueError names the value
    return MappingProxyType(attributes)
