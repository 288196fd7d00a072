"""Message authentication with the authkeys keys.

md5, sha1 and sha256 are HMACs keyed with the authkeys secret; crc is a plain CRC-32 that
only catches corruption (heartbeat's `crc`), accepted for compatibility with a warning at load.
Tags are raw bytes of a fixed size per method (TAG_SIZE), so the wire format needs no
delimiter around them.
"""

from __future__ import annotations

import hmac
import zlib

from hastack.config.model import AuthKey

TAG_SIZE = {"crc": 4, "md5": 16, "sha1": 20, "sha256": 32}


def sign(key: AuthKey, body: bytes) -> bytes:
    """The tag for `body` under `key`: TAG_SIZE[key.method] bytes."""
    if key.method == "crc":
        return zlib.crc32(body).to_bytes(4, "big")
    return hmac.digest(key.key, body, key.method)


def verify(key: AuthKey, body: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(sign(key, body), tag)
