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


def chunk_header(volume: int, length: int) -> bytes:
    """The header of a chunk of `length` bytes; sent followed by the bytes themselves."""
    if length > MAX_CHUNK:
        raise PeerLinkError(f"chunk of {length} bytes exceeds {MAX_CHUNK}")
    return _CHUNK.pack(volume, length)


def encode_chunk(volume: int, data: bytes) -> bytes:
    return chunk_header(volume, len(data)) + data


Chunk = bytes | memoryview


class Decoder:
    """Feed bytes; get the greeting once, then (volume, bytes) chunks.

    Chunks are read-only views of the bytes fed, or of one buffer joined from the pieces of a
    chunk that came in several reads: a 1 MiB write is copied once on its way through at most.
    """

    def __init__(self) -> None:
        self._buf = bytearray()  # the greeting, until it is whole
        self._parts: list[memoryview] = []  # the pieces of an unfinished chunk
        self._have = 0  # bytes in _parts
        self.greeting: Greeting | None = None

    def feed(self, data: bytes) -> list[tuple[int, Chunk]]:
        if self.greeting is None:
            self._buf += data
            if not self._read_greeting():
                return []
            data, self._buf = bytes(self._buf), bytearray()
        view = memoryview(data).toreadonly()
        out: list[tuple[int, Chunk]] = []
        if self._parts:
            view = self._finish_chunk(view, out)
        pos = 0
        while len(view) - pos >= _CHUNK.size:
            volume, length = self._header(view, pos)
            end = pos + _CHUNK.size + length
            if end > len(view):
                break
            out.append((volume, view[pos + _CHUNK.size : end]))
            pos = end
        if pos < len(view):
            self._parts.append(view[pos:])
            self._have += len(view) - pos
        return out

    @staticmethod
    def _header(view: memoryview, pos: int) -> tuple[int, int]:
        volume, length = _CHUNK.unpack_from(view, pos)
        if length > MAX_CHUNK:
            raise PeerLinkError(f"chunk of {length} bytes exceeds {MAX_CHUNK}")
        return volume, length

    def _finish_chunk(self, view: memoryview, out: list[tuple[int, Chunk]]) -> memoryview:
        """Add the start of `view` to the unfinished chunk; returns what is left of `view`."""
        if self._have < _CHUNK.size:  # the header itself was cut: join just its pieces
            head = b"".join([*self._parts, view[: _CHUNK.size - self._have]])
            self._parts = [memoryview(head)]
            view = view[_CHUNK.size - self._have :]
            self._have = len(head)
            if self._have < _CHUNK.size:
                return view
        volume, length = self._header(self._parts[0], 0)
        missing = _CHUNK.size + length - self._have
        if len(view) < missing:
            self._parts.append(view)
            self._have += len(view)
            return view[len(view) :]
        whole = memoryview(b"".join([*self._parts, view[:missing]])).toreadonly()
        out.append((volume, whole[_CHUNK.size :]))
        self._parts, self._have = [], 0
        return view[missing:]

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
