"""The heartbeat wire format: one datagram is one message.

    HSTK1 <key index> <hex tag>\\n<JSON body>

The tag authenticates the body with the authkeys key named by the index (every key in authkeys
is accepted on receive, so keys can be rotated one node at a time). The body is compact JSON
with short field names; `decode` checks every field's type, so a core only ever sees
well-formed messages. Replay protection needs per-sender state and lives in the core.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from hastack.config.model import AuthKeys
from hastack.membership.auth import sign, verify

MAGIC = b"HSTK1"
MAX_DATAGRAM = 60000

MessageType = Literal["hb", "vreq", "vote", "wd", "bye"]
DropReason = Literal["malformed", "auth", "cluster"]


@dataclass(frozen=True)
class Grant:
    """A voter's standing vote: for `to`, in `term`, last renewed by the DC's round `round`."""

    to: str
    term: int
    round: int


@dataclass(frozen=True)
class Message:
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
    attributes: dict[str, int] = field(default_factory=dict)  # hb: e.g. pingd
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
    body: dict[str, Any] = {
        "c": msg.cluster,
        "n": msg.node,
        "g": msg.generation,
        "s": msg.seq,
        "t": msg.type,
        "tm": msg.term,
        "ht": msg.high_term,
    }
    if msg.type == "hb":
        body.update(
            se=list(msg.seen),
            dc=msg.dc,
            da=msg.dc_age,
            l=msg.lease,
            gr=[msg.grant.to, msg.grant.term, msg.grant.round] if msg.grant else None,
            m=list(msg.members),
            mv=list(msg.members_version),
            a=msg.attributes,
            q=msg.quorate,
            vt=msg.voted_term,
        )
    elif msg.type == "vote":
        body.update(to=msg.to, ok=msg.ok)
    raw = json.dumps(body, separators=(",", ":")).encode()
    key = keys.signing
    return b"%s %d %s\n%s" % (MAGIC, key.index, sign(key, raw), raw)


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    # json gives exact types, so an exact check is right, and it refuses a bool for an int
    if type(value) is not kind:
        raise ValueError(f"field {name!r} missing or not {kind.__name__}")
    return value


def _nonneg_int(body: dict[str, Any], name: str) -> int:
    value = _field(body, name, int)
    if value < 0 or value >= 2**63:
        raise ValueError(f"field {name!r} out of range")
    return int(value)


def _names(body: dict[str, Any], name: str) -> tuple[str, ...]:
    value = _field(body, name, list)
    if value and set(map(type, value)) != {str}:
        raise ValueError(f"field {name!r} must be a list of names")
    return tuple(value)


def decode(data: bytes, keys: AuthKeys, cluster: str) -> Message | Dropped:
    """Parse and authenticate one datagram; never raises."""
    if len(data) > MAX_DATAGRAM:
        return Dropped("malformed", "datagram too large")
    header, sep, raw = data.partition(b"\n")
    if not sep:
        return Dropped("malformed", "no header line")
    parts = header.split(b" ")
    if len(parts) != 3 or parts[0] != MAGIC or not parts[1].isdigit() or len(parts[1]) > 3:
        return Dropped("malformed", "bad header")
    key = keys.keys.get(int(parts[1]))
    if key is None:
        return Dropped("auth", f"unknown key index {int(parts[1])}")
    if not verify(key, raw, parts[2]):
        return Dropped("auth", "bad authentication tag")
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError("body is not an object")
        return _message(body, cluster)
    except _WrongCluster as exc:
        return Dropped("cluster", str(exc))
    except (ValueError, TypeError, RecursionError) as exc:
        return Dropped("malformed", str(exc))


class _WrongCluster(Exception):
    pass


def _message(body: dict[str, Any], cluster: str) -> Message:
    name = _field(body, "c", str)
    if name != cluster:
        raise _WrongCluster(f"message for cluster {name!r}")
    mtype = _field(body, "t", str)
    common: dict[str, Any] = {
        "cluster": name,
        "node": _field(body, "n", str),
        "generation": _nonneg_int(body, "g"),
        "seq": _nonneg_int(body, "s"),
        "term": _nonneg_int(body, "tm"),
        "high_term": _nonneg_int(body, "ht"),
    }
    if mtype == "hb":
        grant = None
        raw_grant = body.get("gr")
        if raw_grant is not None:
            if (
                not isinstance(raw_grant, list)
                or len(raw_grant) != 3
                or not isinstance(raw_grant[0], str)
            ):
                raise ValueError("field 'gr' must be [name, term, round]")
            values = {"t": raw_grant[1], "r": raw_grant[2]}
            grant = Grant(raw_grant[0], _nonneg_int(values, "t"), _nonneg_int(values, "r"))
        dc = body.get("dc")
        if dc is not None and not isinstance(dc, str):
            raise ValueError("field 'dc' must be a name or null")
        version = _field(body, "mv", list)
        if len(version) != 2:
            raise ValueError("field 'mv' must be [term, counter]")
        mv = {"a": version[0], "b": version[1]}
        attrs = _field(body, "a", dict)
        attributes: dict[str, int] = {}
        for key, value in attrs.items():
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError("attributes must be integers")
            attributes[str(key)] = value
        return Message(
            type="hb",
            seen=_names(body, "se"),
            dc=dc,
            dc_age=_nonneg_int(body, "da"),
            lease=_field(body, "l", bool),
            grant=grant,
            members=_names(body, "m"),
            members_version=(_nonneg_int(mv, "a"), _nonneg_int(mv, "b")),
            attributes=attributes,
            quorate=_field(body, "q", bool),
            voted_term=_nonneg_int(body, "vt"),
            **common,
        )
    if mtype == "vote":
        to, ok = _field(body, "to", str), _field(body, "ok", bool)
        return Message(type="vote", to=to, ok=ok, **common)
    if mtype in ("vreq", "wd", "bye"):
        return Message(type=mtype, **common)
    raise ValueError(f"unknown message type {mtype!r}")
