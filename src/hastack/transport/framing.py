"""Datagram framing for byte-stream links (serial lines), sans-IO.

A frame is:

    magic "HAsf" (4) | length (2, big-endian) | ~length (2) | payload | crc32(payload) (4)

A serial line delivers bytes, not datagrams, and may deliver noise (a line plugged in mid-frame,
a modem's banner, a baud-rate mismatch). The decoder therefore hunts for the magic, checks the
length against its complement before trusting it (so a garbage length cannot make it wait for
kilobytes of data that will never form a frame), and checks the CRC before delivering. On any
mismatch it skips one byte and hunts again, so it resynchronises at the next real frame.
"""

from __future__ import annotations

import struct
import zlib

MAGIC = b"HAsf"
HEADER = struct.Struct(">4sHH")
TRAILER = struct.Struct(">I")
MAX_PAYLOAD = 16384  # far above any heartbeat message; keeps a resync wait short
OVERHEAD = HEADER.size + TRAILER.size


def encode_frame(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    length = len(payload)
    return (
        HEADER.pack(MAGIC, length, length ^ 0xFFFF)
        + payload
        + TRAILER.pack(zlib.crc32(payload) & 0xFFFFFFFF)
    )


class FrameDecoder:
    """Feed it bytes as they arrive; it returns the complete, intact payloads found."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.discarded = 0  # bytes thrown away while resynchronising
        self.bad_frames = 0  # headers or CRCs that did not check out

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        buffer = self._buffer
        while True:
            start = buffer.find(MAGIC)
            if start < 0:
                # Keep a possible partial magic at the end; drop everything before it.
                keep = len(MAGIC) - 1
                drop = max(0, len(buffer) - keep)
                while drop < len(buffer) and not MAGIC.startswith(bytes(buffer[drop:])):
                    drop += 1
                self._drop(drop)
                return frames
            if start:
                self._drop(start)
            if len(buffer) < HEADER.size:
                return frames
            _, length, check = HEADER.unpack_from(buffer)
            if check != length ^ 0xFFFF or length > MAX_PAYLOAD:
                self.bad_frames += 1
                self._drop(1)
                continue
            end = HEADER.size + length + TRAILER.size
            if len(buffer) < end:
                return frames
            payload = bytes(buffer[HEADER.size : HEADER.size + length])
            (crc,) = TRAILER.unpack_from(buffer, HEADER.size + length)
            if crc != zlib.crc32(payload) & 0xFFFFFFFF:
                self.bad_frames += 1
                self._drop(1)
                continue
            del buffer[:end]
            frames.append(payload)

    def _drop(self, count: int) -> None:
        if count:
            del self._buffer[:count]
            self.discarded += count
