"""The framing of one resource's peer connection: a greeting, then volume-tagged chunks. Sans-IO.

A resource's volumes share one TCP connection (DRBD shares one per resource too). Each engine
produces its own stream of wire frames; the connection carries them as chunks tagged with the
volume number, so the receiver hands each engine exactly the bytes its peer engine sent:

    greeting: b"HSRP" u8 version, u16 length + resource name, u16 length + sender node name
    chunk:    u16 volume number, u32 length, that many bytes

The greeting lets the accepting side refuse a connection meant for another resource or sent
by a node that is not the configured peer before any engine sees a byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = b"HSRP"
VERSION = 1
MAX_CHUNK = 64 << 20  # far above any engine frame (a 1 MiB write plus headers)
_CHUNK = struct.Struct(">HI")
_NAME_MAX = 255


class PeerLinkError(ValueError):
    """The peer sent something that is not this framing: the connection must be dropped."""


@dataclass(frozen=True)
class Greeting:
    resource: str
    node: str


def encode_greeting(resource: str, node: str) -> bytes:
    out = bytearray(MAGIC) + bytes([VERSION])
    for text in (resource, node):
        raw = text.encode()
        if len(raw) > _NAME_MAX:
            raise PeerLinkError(f"name {text!r} is longer than {_NAME_MAX} bytes")
        out += struct.pack(">H", len(raw)) + raw
    return bytes(out)


def encode_chunk(volume: int, data: bytes) -> bytes:
    if len(data) > MAX_CHUNK:
        raise PeerLinkError(f"chunk of {len(data)} bytes exceeds {MAX_CHUNK}")
    return _CHUNK.pack(volume, len(data)) + data


class Decoder:
    """Feed bytes; get the greeting once, then (volume, bytes) chunks."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.greeting: Greeting | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        if self.greeting is None and not self._read_greeting():
            return []
        out: list[tuple[int, bytes]] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= _CHUNK.size:
            volume, length = _CHUNK.unpack_from(buf, pos)
            if length > MAX_CHUNK:
                raise PeerLinkError(f"chunk of {length} bytes exceeds {MAX_CHUNK}")
            end = pos + _CHUNK.size + length
            if end > len(buf):
                break
            with memoryview(buf) as view:  # one copy, not a slice's two
                out.append((volume, bytes(view[pos + _CHUNK.size : end])))
            pos = end
        del buf[:pos]
        return out

    def _read_greeting(self) -> bool:
        buf = self._buf
        if len(buf) < 5:
            if not MAGIC.startswith(bytes(buf[:4])):
                raise PeerLinkError("not a hastack replica peer (bad greeting)")
            return False
        if bytes(buf[:4]) != MAGIC:
            raise PeerLinkError("not a hastack replica peer (bad greeting)")
        if buf[4] != VERSION:
            raise PeerLinkError(f"peer speaks framing version {buf[4]}, this node {VERSION}")
        pos = 5
        names: list[str] = []
        for _ in range(2):
            if len(buf) < pos + 2:
                return False
            (length,) = struct.unpack_from(">H", buf, pos)
            if length > _NAME_MAX:
                raise PeerLinkError(f"greeting name of {length} bytes")
            if len(buf) < pos + 2 + length:
                return False
            try:
                names.append(bytes(buf[pos + 2 : pos + 2 + length]).decode())
            except UnicodeDecodeError:
                raise PeerLinkError("greeting name is not UTF-8") from None
            pos += 2 + length
        self.greeting = Greeting(names[0], names[1])
        del buf[:pos]
        return True
