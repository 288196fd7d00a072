"""The peer connection's framing: greeting, volume-tagged chunks, and what it refuses."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.replica import peer_link


def test_greeting_then_chunks_in_any_split() -> None:
    stream = (
        peer_link.encode_greeting("r0", "alice")
        + peer_link.encode_chunk(0, b"hello")
        + peer_link.encode_chunk(3, b"")
        + peer_link.encode_chunk(1, b"x" * 70000)
    )
    for step in (1, 7, 4096, len(stream)):
        decoder = peer_link.Decoder()
        got: list[tuple[int, bytes]] = []
        for i in range(0, len(stream), step):
            got += decoder.feed(stream[i : i + step])
        assert decoder.greeting == peer_link.Greeting("r0", "alice")
        assert got == [(0, b"hello"), (3, b""), (1, b"x" * 70000)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "bad greeting"),
        (b"HSRP\x09", "framing version 9"),
        (b"HSRP\x01\x00\x02\xff\xfe\x00\x01a", "not UTF-8"),
    ],
)
def test_a_stranger_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(peer_link.PeerLinkError, match=message):
        peer_link.Decoder().feed(data)


def test_an_oversized_chunk_is_refused_before_it_is_buffered() -> None:
    decoder = peer_link.Decoder()
    decoder.feed(peer_link.encode_greeting("r0", "bob"))
    with pytest.raises(peer_link.PeerLinkError, match="exceeds"):
        decoder.feed(b"\x00\x00\xff\xff\xff\xff")


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_the_framing_error_only(data: bytes) -> None:
    decoder = peer_link.Decoder()
    with contextlib.suppress(peer_link.PeerLinkError):
        decoder.feed(peer_link.encode_greeting("r0", "a") + data)


@given(st.lists(st.tuples(st.integers(0, 65535), st.binary(max_size=300)), max_size=20))
def test_round_trip(chunks: list[tuple[int, bytes]]) -> None:
    stream = peer_link.encode_greeting("res", "n") + b"".join(
        peer_link.encode_chunk(v, d) for v, d in chunks
    )
    assert peer_link.Decoder().feed(stream) == chunks


@given(
    st.lists(st.tuples(st.integers(0, 65535), st.binary(max_size=3000)), max_size=8),
    st.lists(st.integers(1, 4000), min_size=1, max_size=30),
)
def test_chunks_cut_anywhere_across_reads_come_out_whole_and_in_order(
    chunks: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    stream = peer_link.encode_greeting("res", "n") + b"".join(
        peer_link.encode_chunk(v, d) for v, d in chunks
    )
    decoder = peer_link.Decoder()
    got: list[tuple[int, bytes]] = []
    pos, turn = 0, 0
    while pos < len(stream):
        step = cuts[turn % len(cuts)]
        got += [(v, bytes(d)) for v, d in decoder.feed(stream[pos : pos + step])]
        pos, turn = pos + step, turn + 1
    assert got == chunks


def test_an_oversized_chunk_is_refused_when_its_header_comes_in_two_reads() -> None:
    decoder = peer_link.Decoder()
    decoder.feed(peer_link.encode_greeting("r0", "bob") + b"\x00\x00\xff")
    with pytest.raises(peer_link.PeerLinkError, match="exceeds"):
        decoder.feed(b"\xff\xff\xff")
