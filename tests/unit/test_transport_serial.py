"""Serial links: the frame decoder, and real endpoints over pseudo-terminals."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import zlib
from collections.abc import Iterator

import pytest

from hastack.config.model import Link
from hastack.transport import endpoint_for
from hastack.transport.framing import MAX_PAYLOAD, FrameDecoder, encode_frame


def test_frame_round_trip() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"hello")) == [b"hello"]
    assert decoder.feed(encode_frame(b"")) == [b""]


def test_frames_split_byte_by_byte_are_reassembled() -> None:
    decoder = FrameDecoder()
    stream = encode_frame(b"one") + encode_frame(b"two")
    out: list[bytes] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == [b"one", b"two"]
    assert decoder.discarded == 0


def test_garbage_before_and_between_frames_is_skipped() -> None:
    decoder = FrameDecoder()
    stream = b"\x00\xffnoise HA" + encode_frame(b"one") + b"HAs" + b"junk" + encode_frame(b"two")
    assert decoder.feed(stream) == [b"one", b"two"]
    assert decoder.discarded == len(b"\x00\xffnoise HA") + len(b"HAsjunk")


def test_a_partial_magic_at_the_end_is_kept_for_the_next_read() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(b"payload")
    assert decoder.feed(b"garbage" + frame[:3]) == []
    assert decoder.feed(frame[3:]) == [b"payload"]


def test_a_corrupted_frame_is_dropped_and_the_next_one_delivered() -> None:
    decoder = FrameDecoder()
    bad = bytearray(encode_frame(b"corrupt me"))
    bad[10] ^= 0xFF  # a payload byte: the CRC no longer matches
    assert decoder.feed(bytes(bad) + encode_frame(b"fine")) == [b"fine"]
    assert decoder.bad_frames == 1


def test_a_garbage_length_does_not_stall_the_decoder() -> None:
    decoder = FrameDecoder()
    # Magic followed by a huge length whose complement does not check out: rejected at once,
    # not waited on until 60000 bytes arrive.
    fake = b"HAsf" + (60000).to_bytes(2, "big") + b"\x00\x00"
    assert decoder.feed(fake + encode_frame(b"next")) == [b"next"]
    assert decoder.bad_frames == 1


def test_a_frame_with_the_right_crc_but_wrong_length_check_is_rejected() -> None:
    payload = b"abc"
    forged = b"HAsf" + len(payload).to_bytes(2, "big") + b"\x12\x34" + payload
    forged += zlib.crc32(payload).to_bytes(4, "big")
    assert FrameDecoder().feed(forged) == []


def test_oversized_payloads_are_refused_by_the_encoder() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame(b"x" * (MAX_PAYLOAD + 1))


# --- real endpoints over ptys -------------------------------------------------------------


@pytest.fixture
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals made by socat (a null-modem cable in software)."""
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (apt-get install socat)")
    proc = subprocess.Popen(
        ["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        ptys: list[str] = []
        while len(ptys) < 2:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("socat exited before creating the ptys")
            match = re.search(r"PTY is (\S+)", line)
            if match:
                ptys.append(match.group(1))
        yield ptys[0], ptys[1]
    finally:
        proc.kill()
        proc.wait()


def serial_link(device: str) -> Link:
    return Link(kind="serial", name=device, device=device, baud=19200)


async def wait_until(predicate: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


def test_two_serial_endpoints_exchange_datagrams(pty_pair: tuple[str, str]) -> None:
    left, right = pty_pair

    async def body() -> None:
        got_left: list[tuple[bytes, str]] = []
        got_right: list[tuple[bytes, str]] = []
        a = endpoint_for(serial_link(left), lambda d, n: got_left.append((d, n)))
        b = endpoint_for(serial_link(right), lambda d, n: got_right.append((d, n)))
        await a.open()
        await b.open()
        try:
            for i in range(20):
                a.send(b"ping %d" % i)
            b.send(b"pong")
            await wait_until(lambda: len(got_right) == 20 and len(got_left) == 1)
            assert [d for d, _ in got_right] == [b"ping %d" % i for i in range(20)]
            assert {n for _, n in got_right} == {right}  # each side names its own link
            assert got_left == [(b"pong", left)]
        finally:
            a.close()
            b.close()

    asyncio.run(body())


def test_serial_endpoint_resynchronises_after_garbage() -> None:
    master, slave = os.openpty()
    device = os.ttyname(slave)

    async def body() -> None:
        got: list[bytes] = []
        endpoint = endpoint_for(serial_link(device), lambda d, n: got.append(d))
        await endpoint.open()
        try:
            bad = bytearray(encode_frame(b"damaged"))
            bad[-1] ^= 0x55
            os.write(master, b"\x00\x13line noise" + encode_frame(b"first"))
            os.write(master, bytes(bad) + b"HAsf\xff" + encode_frame(b"second"))
            await wait_until(lambda: len(got) == 2)
            assert got == [b"first", b"second"]
            assert endpoint.describe()["rx_errors"] >= 1
            # What the endpoint sends arrives on the other side as one intact frame.
            endpoint.send(b"reply")
            await asyncio.sleep(0.05)
            assert FrameDecoder().feed(os.read(master, 4096)) == [b"reply"]
        finally:
            endpoint.close()

    try:
        asyncio.run(body())
    finally:
        os.close(master)
        os.close(slave)


def test_opening_a_missing_serial_device_raises_a_clear_oserror() -> None:
    async def body() -> None:
        endpoint = endpoint_for(serial_link("/dev/hastack-no-such-tty"), lambda d, n: None)
        with pytest.raises(OSError, match="/dev/hastack-no-such-tty"):
            await endpoint.open()

    asyncio.run(body())
