"""The messaging wire format: round trips, authentication, and fuzzing of the decoder."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.config.model import AuthKey, AuthKeys
from hastack.membership import codec as heartbeat_codec
from hastack.membership.auth import sign
from hastack.messaging.codec import (
    HEAD,
    KIND_ACK,
    MAGIC,
    MAX_INT,
    MAX_RANGES,
    Ack,
    Data,
    Dropped,
    Gone,
    Message,
    data_overhead,
    decode,
    encode,
)

KEYS = AuthKeys(1, {1: AuthKey(1, "sha256", b"messaging-secret")})
CLUSTER = "c1"

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20).filter(
    lambda s: len(s.encode()) <= 255
)
ints = st.integers(0, MAX_INT)
positive = st.integers(1, MAX_INT)


@st.composite
def data_messages(draw: st.DrawFn) -> Data:
    count = draw(st.integers(1, 1000))
    index = draw(st.integers(0, count - 1))
    return Data(
        CLUSTER,
        draw(names),
        draw(positive),
        draw(st.integers(index + 1, MAX_INT)),
        index,
        count,
        draw(st.none() | names),
        draw(st.booleans()),
        draw(st.binary(max_size=300)),
    )


@st.composite
def ack_messages(draw: st.DrawFn) -> Ack:
    """Well-formed acks: ascending disjoint missing ranges, each followed by a held seq."""
    cumulative = draw(st.integers(0, 10**6))
    missing: list[tuple[int, int]] = []
    floor = cumulative + 1
    for _ in range(draw(st.integers(0, MAX_RANGES))):
        first = floor + draw(st.integers(0, 1000))
        last = first + draw(st.integers(0, 1000))
        missing.append((first, last))
        floor = last + 2  # at least one held seq between ranges
    highest = (missing[-1][1] if missing else cumulative) + draw(st.integers(int(bool(missing)), 5))
    return Ack(
        CLUSTER,
        draw(names),
        draw(positive),
        draw(names),
        draw(positive),
        cumulative,
        highest,
        tuple(missing),
    )


gone_messages = st.builds(Gone, st.just(CLUSTER), names, positive, ints)
messages = data_messages() | ack_messages() | gone_messages


@given(messages)
@settings(max_examples=300)
def test_every_message_round_trips(msg: Message) -> None:
    assert decode(encode(msg, KEYS), KEYS, CLUSTER) == msg


def test_data_overhead_is_exact() -> None:
    msg = Data(CLUSTER, "node-a", 3, 9, 0, 1, "node-b", False, b"x" * 100)
    assert len(encode(msg, KEYS)) == 100 + data_overhead(KEYS, CLUSTER, "node-a", "node-b")


def test_magic_differs_from_the_heartbeat() -> None:
    """A shared serial endpoint routes by the first three bytes."""
    assert MAGIC != heartbeat_codec.MAGIC and len(MAGIC) == len(heartbeat_codec.MAGIC)


def test_every_configured_key_is_accepted_and_unknown_ones_are_not() -> None:
    both = {1: AuthKey(1, "sha256", b"new"), 2: AuthKey(2, "sha1", b"old")}
    old_signer = AuthKeys(2, both)
    datagram = encode(Gone(CLUSTER, "a", 1, 5), old_signer)
    assert datagram[3] == 2
    assert decode(datagram, AuthKeys(1, both), CLUSTER) == Gone(CLUSTER, "a", 1, 5)
    only_new = AuthKeys(1, {1: both[1]})
    assert decode(datagram, only_new, CLUSTER) == Dropped("auth", "unknown key index 2")


def test_a_tampered_datagram_fails_authentication() -> None:
    datagram = bytearray(encode(Data(CLUSTER, "a", 1, 1, 0, 1, None, False, b"hello"), KEYS))
    datagram[-1] ^= 1
    result = decode(bytes(datagram), KEYS, CLUSTER)
    assert isinstance(result, Dropped) and result.reason == "auth"


def test_another_clusters_datagram_is_dropped_as_such() -> None:
    datagram = encode(Gone("other", "a", 1, 5), KEYS)
    assert decode(datagram, KEYS, CLUSTER) == Dropped("cluster", "datagram for cluster 'other'")


def test_the_heartbeats_datagrams_are_not_messages() -> None:
    hb = heartbeat_codec.Message(cluster=CLUSTER, node="a", generation=1, seq=1, type="hb")
    result = decode(heartbeat_codec.encode(hb, KEYS), KEYS, CLUSTER)
    assert result == Dropped("malformed", "bad header")


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        (Data(CLUSTER, "", 1, 1, 0, 1, None, False, b""), "node name"),
        (Data(CLUSTER, "a", 0, 1, 0, 1, None, False, b""), "generation"),
        (Data(CLUSTER, "a", 1, 1, 1, 1, None, False, b""), "fragment 1 of 1"),
        (Data(CLUSTER, "a", 1, 1, 0, 1, "x" * 256, False, b""), "destination"),
        (Ack(CLUSTER, "a", 1, "b", 1, 5, 4, ()), "cumulative 5 and highest 4"),
        (Ack(CLUSTER, "a", 1, "b", 1, 5, 9, ((7, 6),)), "missing range 7..6"),
        (Gone(CLUSTER, "a", 1, -1), "upto -1"),
    ],
)
def test_encode_refuses_what_the_format_cannot_carry(msg: Message, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        encode(msg, KEYS)


def signed(body: bytes) -> bytes:
    """A datagram with a valid tag around an arbitrary body: reaches the body parser."""
    return MAGIC + b"\x01" + sign(KEYS.signing, body) + body


def check_clean(datagram: bytes) -> None:
    """decode never raises; what it accepts is well-formed (it re-encodes to the same bytes)."""
    result = decode(datagram, KEYS, CLUSTER)
    if isinstance(result, Dropped):
        assert result.reason in ("malformed", "auth", "cluster") and result.detail
    else:
        assert encode(result, KEYS) == datagram


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_random_bytes_are_dropped_cleanly(data: bytes) -> None:
    check_clean(data)
    check_clean(MAGIC + data)


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_random_authenticated_bodies_are_dropped_or_well_formed(body: bytes) -> None:
    check_clean(signed(body))


@given(messages, st.data())
@settings(max_examples=500)
def test_mutated_authenticated_datagrams_are_dropped_or_well_formed(
    msg: Message, data: st.DataObject
) -> None:
    body = bytearray(encode(msg, KEYS)[4 + 32 :])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    check_clean(signed(bytes(body)))


@given(messages, st.data())
@settings(max_examples=300)
def test_truncated_datagrams_are_dropped_cleanly(msg: Message, data: st.DataObject) -> None:
    datagram = encode(msg, KEYS)
    cut = data.draw(st.integers(0, len(datagram) - 1))
    check_clean(datagram[:cut])  # fails authentication
    body = datagram[4 + 32 :]
    short = body[: data.draw(st.integers(0, len(body) - 1))]
    result = decode(signed(short), KEYS, CLUSTER)
    # A data fragment cut inside its bytes is a shorter fragment; anything else is malformed.
    if isinstance(msg, Data) and len(short) >= len(body) - len(msg.chunk):
        assert isinstance(result, Data) and result.chunk == msg.chunk[: len(result.chunk)]
    else:
        assert isinstance(result, Dropped) and result.reason == "malformed"


def test_an_ack_with_too_many_ranges_is_dropped() -> None:
    ranges = [(i * 3 + 1, i * 3 + 1) for i in range(MAX_RANGES + 1)]
    body = (
        HEAD.pack(KIND_ACK, 0, 1)
        + b"\x02c1\x01a\x01b"
        + struct.pack("!QQQB", 1, 0, 200, len(ranges))
        + b"".join(struct.pack("!QQ", *r) for r in ranges)
    )
    result = decode(signed(body), KEYS, CLUSTER)
    assert isinstance(result, Dropped) and "missing ranges exceed" in result.detail


def test_an_oversized_datagram_is_dropped() -> None:
    assert decode(b"HM1" + bytes(70000), KEYS, CLUSTER) == Dropped(
        "malformed", "datagram too large"
    )
