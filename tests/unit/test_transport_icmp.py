"""ICMP echo for ping nodes, against 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from hastack.transport import IcmpPinger
from hastack.transport.icmp import checksum, echo_request


def test_checksum_of_a_request_verifies_to_zero() -> None:
    packet = echo_request(0x1234, 7)
    assert checksum(packet) == 0


def test_echo_to_loopback_is_answered() -> None:
    async def body() -> None:
        replies: list[str] = []
        pinger = IcmpPinger(replies.append)
        try:
            await pinger.open()
        except OSError as exc:
            pytest.skip(f"ICMP echo is not allowed here: {exc}")
        try:
            for _ in range(3):
                pinger.ping("127.0.0.1")
            for _ in range(200):
                if len(replies) >= 3:
                    break
                await asyncio.sleep(0.01)
            assert replies[:3] == ["127.0.0.1"] * 3
            assert pinger.describe()["sent"] == 3
            assert pinger.describe()["mode"] in ("dgram", "raw")
        finally:
            pinger.close()

    asyncio.run(body())
