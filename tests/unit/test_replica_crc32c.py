"""CRC32C (Castagnoli) as the replica's digests compute it: the standard check value and the
test vectors of RFC 3720 (iSCSI, appendix B.4), through `integrity_digest` (big-endian bytes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.replica import wire

VECTORS = [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),  # the CRC catalogue's check value for CRC-32C
    (bytes(32), 0x8A9136AA),  # RFC 3720 B.4: 32 bytes of zeros
    (b"\xff" * 32, 0x62A8AB43),  # 32 bytes of ones
    (bytes(range(32)), 0x46DD794E),  # incrementing
    (bytes(range(31, -1, -1)), 0x113FDB5C),  # decrementing
]


@pytest.mark.parametrize(("data", "crc"), VECTORS)
def test_crc32c_vectors(data: bytes, crc: int) -> None:
    assert wire.integrity_digest("crc32c", data) == crc.to_bytes(4, "big")


def test_crc32c_of_a_block_differs_from_crc32_and_from_a_changed_block() -> None:
    block = bytes(range(256)) * 16
    digest = wire.integrity_digest("crc32c", block)
    assert digest != wire.integrity_digest("crc32", block)
    assert digest != wire.integrity_digest("crc32c", block[:-1] + b"\x00")
    assert wire.integrity_digest("crc32c", memoryview(block)) == digest


def _reference(data: bytes) -> int:
    """CRC-32C bit by bit from its definition (reflected polynomial 0x82F63B78)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


@given(st.binary(max_size=600))
def test_crc32c_agrees_with_the_definition(data: bytes) -> None:
    assert wire.integrity_digest("crc32c", data) == _reference(data).to_bytes(4, "big")
