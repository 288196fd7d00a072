"""Message authentication with the authkeys keys.

md5, sha1 and sha256 are HMACs keyed with the authkeys secret; crc is a plain CRC-32 that
only catches corruption (heartbeat's `crc`), accepted for compatibility with a warning at load.
"""

from __future__ import annotations

import hashlib
import hmac
import zlib

from hastack.config.model import AuthKey

_DIGESTS = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}


def sign(key: AuthKey, body: bytes) -> bytes:
    """The hex tag for `body` under `key`."""
    if key.method == "crc":
        return b"%08x" % zlib.crc32(body)
    return hmac.new(key.key, body, _DIGESTS[key.method]).hexdigest().encode()


def verify(key: AuthKey, body: bytes, tag: bytes) -> bool:
    return hmac.compare_digest(sign(key, body), tag)
