"""The quorum-server wire protocol: length-prefixed frames carrying signed JSON messages.

A frame on the TCP stream (plain or TLS) is

    length (4 bytes, big-endian, 1..MAX_BODY) | body

and a body is

    tag length (1 byte) | tag | JSON object (UTF-8)

The tag is the authkeys HMAC (hastack.membership.auth.sign) of the JSON bytes under the key the
message names in its `k` field; the cluster is named in `c`. The first message of a
connection, the server's `challenge`, and a refusal for an unknown cluster carry no tag
(tag length 0): nothing is known yet to sign them with.

Replay protection: the challenge carries a fresh server nonce; the client's `hello` adds its own
nonce, and every signed message after it carries the session `s` (server nonce + client nonce, in
hex), its direction `d` ("c" client to server, "s" server to client) and a sequence `n` that
starts at 0 and grows by exactly one per message in that direction. A frame recorded on one
connection is refused on another (wrong session), a frame repeated or reordered on the same
connection is refused (wrong sequence), and a server's message sent back to it is refused
(wrong direction). TCP delivers in order, so no window is needed.

Everything that arrives is untrusted: `parse_body` checks the length, the JSON, the message type
and every field's type and range before a core looks at it, and raises ProtocolError (a short
reason fit for a log line) otherwise.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable
from typing import Any

from hastack.config.model import AuthKey, AuthKeys
from hastack.membership.auth import sign, verify

VERSION = 1
LENGTH = struct.Struct(">I")
MAX_BODY = 65536
NONCE_SIZE = 16
MAX_NAME = 64
MAX_MEMBERS = 256
MAX_REASON = 512
DEFAULT_PORT = 5403  # corosync-qnetd's port: an operator's firewall rules may already allow it

_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_HEX = re.compile(r"[0-9a-f]*")


class ProtocolError(ValueError):
    """A frame or message that breaks the protocol; str() is a short reason for the log."""


def encode_frame(body: bytes) -> bytes:
    if not 0 < len(body) <= MAX_BODY:
        raise ValueError(f"a frame body is 1..{MAX_BODY} bytes, not {len(body)}")
    return LENGTH.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into frame bodies; raises ProtocolError on an impossible length
    (after which the stream cannot be resynchronised: the connection must be closed)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        bodies: list[bytes] = []
        while len(self._buffer) >= LENGTH.size:
            (length,) = LENGTH.unpack_from(self._buffer)
            if not 0 < length <= MAX_BODY:
                raise ProtocolError(f"frame length {length} is not 1..{MAX_BODY}")
            if len(self._buffer) < LENGTH.size + length:
                break
            bodies.append(bytes(self._buffer[LENGTH.size : LENGTH.size + length]))
            del self._buffer[: LENGTH.size + length]
        return bodies

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a whole frame."""
        return len(self._buffer)


def _dumps(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), sort_keys=True).encode()


def seal(message: dict[str, Any], key: AuthKey | None) -> bytes:
    """The frame for `message`, signed with `key` (which sets its `k`) or unsigned (None)."""
    if key is not None:
        message = {**message, "k": key.index}
    payload = _dumps(message)
    tag = sign(key, payload) if key is not None else b""
    return encode_frame(bytes([len(tag)]) + tag + payload)


# ---------------------------------------------------------------------------------------------
# Field checks: each returns the value or raises ProtocolError naming the field.


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ProtocolError(f"{field}: not a name (letters, digits, '-', '_', '.', 1..{MAX_NAME})")
    return value


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_REASON:
        raise ProtocolError(f"{field}: not a text of at most {MAX_REASON} characters")
    return value


def _int(lo: int, hi: int) -> Callable[[Any, str], int]:
    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ProtocolError(f"{field}: not an integer in {lo}..{hi}")
        return value

    return check


def _float(lo: float, hi: float) -> Callable[[Any, str], float]:
    def check(value: Any, field: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError(f"{field}: not a number")
        if not math.isfinite(value) or not lo <= value <= hi:
            raise ProtocolError(f"{field}: not a number in {lo:g}..{hi:g}")
        return float(value)

    return check


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"{field}: not true or false")
    return value


def _hex(size: int) -> Callable[[Any, str], str]:
    def check(value: Any, field: str) -> str:
        if not isinstance(value, str) or len(value) != 2 * size or not _HEX.fullmatch(value):
            raise ProtocolError(f"{field}: not {size} bytes in lowercase hex")
        return value

    return check


def _members(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_MEMBERS:
        raise ProtocolError(f"{field}: not a list of 1..{MAX_MEMBERS} node names")
    names = tuple(sorted(_str(v, field) for v in value))
    if len(set(names)) != len(names):
        raise ProtocolError(f"{field}: a node is listed twice")
    return names


def _ring(value: Any, field: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise ProtocolError(f"{field}: not a pair of integers")
    check = _int(0, 2**63 - 1)
    return (check(value[0], field), check(value[1], field))


def _status(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{field}: not an object")
    return value


_U32 = _int(0, 2**32 - 1)
_U63 = _int(0, 2**63 - 1)
_SIGNED = {"c": _str, "k": _int(0, 15), "s": _hex(2 * NONCE_SIZE), "d": None, "n": _U63}

# type -> (signed?, direction, {field: check})
SCHEMAS: dict[str, tuple[bool, str, dict[str, Callable[[Any, str], Any]]]] = {
    "challenge": (False, "s", {"nonce": _hex(NONCE_SIZE)}),
    "refused": (False, "s", {"reason": _text}),
    "hello": (
        True,
        "c",
        {
            "node": _str,
            "id": _int(1, 2**31 - 1),
            "votes": _int(0, 1000),
            "interval": _float(0.01, 600.0),
        },
    ),
    "report": (
        True,
        "c",
        {"req": _U63, "members": _members, "ring": _ring, "resources": _U32},
    ),
    "status": (True, "c", {}),
    "welcome": (True, "s", {"lease": _float(0.01, 3600.0), "reason": _text}),
    "vote": (
        True,
        "s",
        {
            "req": _U63,
            "grant": _bool,
            "lease": _float(0.01, 3600.0),
            "seq": _U63,
            "reason": _text,
        },
    ),
    "status-reply": (True, "s", {"status": _status}),
}


class Message:
    """A parsed, checked message: `fields` holds every field with its checked value; `tag` and
    `payload` are kept so the receiver can verify the signature once it knows the key."""

    __slots__ = ("fields", "payload", "tag", "type")

    def __init__(self, type_: str, fields: dict[str, Any], tag: bytes, payload: bytes) -> None:
        self.type = type_
        self.fields = fields
        self.tag = tag
        self.payload = payload

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    @property
    def signed(self) -> bool:
        return SCHEMAS[self.type][0]

    def verify(self, keys: AuthKeys) -> bool:
        """True when the tag checks out under the authkeys key the message names."""
        key = keys.keys.get(self.fields.get("k", -1))
        return key is not None and verify(key, self.payload, self.tag)


def parse_body(body: bytes, direction: str) -> Message:
    """One frame body -> a checked Message travelling in `direction` ("c": to the server,
    "s": to a client), or ProtocolError."""
    if not body:
        raise ProtocolError("empty frame")
    tag_len = body[0]
    if tag_len > 64 or len(body) < 1 + tag_len:
        raise ProtocolError(f"tag length {tag_len} does not fit the frame")
    tag, payload = body[1 : 1 + tag_len], body[1 + tag_len :]
    try:
        raw = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("the message is not JSON text") from None
    if not isinstance(raw, dict):
        raise ProtocolError("the message is not a JSON object")
    kind = raw.get("t")
    if not isinstance(kind, str) or kind not in SCHEMAS:
        raise ProtocolError(f"unknown message type {str(kind)[:32]!r}")
    signed, sent_by, checks = SCHEMAS[kind]
    if sent_by != direction:
        raise ProtocolError(f"{kind!r} does not travel in this direction")
    if raw.get("v") != VERSION:
        raise ProtocolError(
            f"protocol version {str(raw.get('v'))[:16]} (this side speaks {VERSION})"
        )
    if signed != bool(tag):
        raise ProtocolError(f"{kind!r} must {'' if signed else 'not '}be signed")
    wanted = {"t", "v", *checks, *(_SIGNED if signed else ())}
    if set(raw) != wanted:
        extra, missing = sorted(set(raw) - wanted), sorted(wanted - set(raw))
        raise ProtocolError(f"{kind!r}: fields {extra or ''} not allowed, {missing or ''} missing")
    fields: dict[str, Any] = {}
    for name, check in checks.items():
        fields[name] = check(raw[name], name)
    if signed:
        for name, check in _SIGNED.items():
            if check is not None:
                fields[name] = check(raw[name], name)
        if raw["d"] != direction:
            raise ProtocolError("d: wrong direction (a reflected message?)")
        fields["d"] = direction
    return Message(kind, fields, tag, payload)


def make(kind: str, **fields: Any) -> dict[str, Any]:
    """A message dict of type `kind` (the caller adds the session fields of signed ones)."""
    return {"t": kind, "v": VERSION, **fields}
