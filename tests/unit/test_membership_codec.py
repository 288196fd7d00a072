"""The heartbeat wire format: round trips, authentication, and fuzzing of the decoder."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from membership_net import params

from hastack.config.model import AuthKey, AuthKeys
from hastack.membership.codec import (
    FIXED,
    FLAG_DC,
    FLAG_GRANT,
    MAGIC,
    Dropped,
    Grant,
    Message,
    decode,
    encode,
)
from hastack.membership.core import MembershipCore
from hastack.membership.replay import WINDOW, ReplayWindow

KEYS = AuthKeys(1, {1: AuthKey(1, "sha256", b"secret")})


def hb(**kw: object) -> Message:
    fields: dict[str, object] = dict(cluster="c", node="a", generation=3, seq=7, type="hb")
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


def test_heartbeat_round_trips_every_field() -> None:
    msg = hb(
        seen=("b", "c"),
        dc="b",
        dc_age=12,
        term=4,
        lease=False,
        grant=Grant("b", 4, 99),
        members=("a", "b"),
        members_version=(4, 2),
        attributes={"pingd": 2},
        quorate=True,
        high_term=5,
    )
    assert decode(encode(msg, KEYS), KEYS, "c") == msg


@pytest.mark.parametrize("mtype", ["vreq", "wd", "bye"])
def test_control_messages_round_trip(mtype: str) -> None:
    msg = Message(cluster="c", node="a", generation=1, seq=2, type=mtype, term=9)  # type: ignore[arg-type]
    assert decode(encode(msg, KEYS), KEYS, "c") == msg


def test_vote_round_trips() -> None:
    msg = Message(cluster="c", node="a", generation=1, seq=2, type="vote", term=3, to="b", ok=True)
    assert decode(encode(msg, KEYS), KEYS, "c") == msg


@pytest.mark.parametrize("method", ["crc", "md5", "sha1", "sha256"])
def test_every_authkeys_method_signs_and_verifies(method: str) -> None:
    keys = AuthKeys(2, {2: AuthKey(2, method, b"" if method == "crc" else b"k")})  # type: ignore[arg-type]
    assert decode(encode(hb(), keys), keys, "c") == hb()


def test_tampered_body_fails_authentication() -> None:
    data = bytearray(encode(hb(), KEYS))
    data[-3] ^= 1  # one bit of the body's text part
    assert decode(bytes(data), KEYS, "c") == Dropped("auth", "bad authentication tag")


def test_tampered_tag_fails_authentication() -> None:
    data = bytearray(encode(hb(), KEYS))
    data[5] ^= 0x80  # one bit of the tag
    assert decode(bytes(data), KEYS, "c") == Dropped("auth", "bad authentication tag")


def test_wrong_key_fails_and_unknown_index_is_named() -> None:
    other = AuthKeys(1, {1: AuthKey(1, "sha256", b"other")})
    assert decode(encode(hb(), other), KEYS, "c").reason == "auth"  # type: ignore[union-attr]
    third = AuthKeys(3, {3: AuthKey(3, "sha256", b"secret")})
    dropped = decode(encode(hb(), third), KEYS, "c")
    assert dropped == Dropped("auth", "unknown key index 3")


def test_rotated_keys_are_all_accepted_on_receive() -> None:
    both = AuthKeys(2, {1: KEYS.keys[1], 2: AuthKey(2, "sha256", b"new")})
    assert decode(encode(hb(), KEYS), both, "c") == hb()


def test_other_cluster_is_dropped_as_such() -> None:
    assert decode(encode(hb(), KEYS), KEYS, "d").reason == "cluster"  # type: ignore[union-attr]


def signed(body: bytes) -> bytes:
    from hastack.membership.auth import sign

    return MAGIC + b"\x01" + sign(KEYS.keys[1], body) + body


def body(*numbers: int, code: int = 1, flags: int = 0, text: str = "c\na\n\n\n\n\n") -> bytes:
    """A body with the given integers (the rest 0) and text part."""
    values = list(numbers) + [0] * (10 - len(numbers))
    return FIXED.pack(code, flags, *values) + text.encode()


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "shorter"),
        (body()[:-20], "shorter"),
        (body(2**63), "out of range"),
        (body(code=9), "unknown message type 9"),
        (body(code=0), "unknown message type 0"),
        (body(flags=0x80), "unknown flags"),
        (body(text="c\na\n\n\n\n"), "6 text fields"),
        (body(text="c\na\n\n\n\n\n\n"), "8 text fields"),
        (body()[:-1] + b"\xff", "utf-8"),
        (body(text="c\n\n\n\n\n\n"), "no sender name"),
        (body(flags=FLAG_GRANT), "a grant without the name"),
        (body(flags=FLAG_DC), "the DC flag without"),
        (body(code=3), "a vote without the candidate"),
        (body(text="c\na\n\n\n\n\npingd"), "not NAME=INTEGER"),
        (body(text="c\na\n\n\n\n\n=3"), "not NAME=INTEGER"),
        (body(text="c\na\n\n\n\n\npingd=x"), "invalid literal"),
    ],
)
def test_authenticated_but_malformed_bodies_are_dropped_with_the_reason(
    raw: bytes, detail: str
) -> None:
    result = decode(signed(raw), KEYS, "c")
    assert isinstance(result, Dropped) and result.reason == "malformed", result
    assert detail in result.detail


def test_authenticated_body_of_another_cluster_is_dropped_as_such() -> None:
    result = decode(signed(body(text="other\na\n\n\n\n\n")), KEYS, "c")
    assert result == Dropped("cluster", "message for cluster 'other'")


def test_largest_integers_are_accepted() -> None:
    result = decode(signed(body(*([2**63 - 1] * 10))), KEYS, "c")
    assert isinstance(result, Message)
    assert result.generation == result.seq == result.members_version[1] == 2**63 - 1


def test_oversized_datagram_is_dropped() -> None:
    assert decode(b"x" * 70000, KEYS, "c").reason == "malformed"  # type: ignore[union-attr]


def test_replay_window_accepts_reordered_once_and_refuses_old() -> None:
    window = ReplayWindow()
    assert window.accept(5) and window.accept(3) and window.accept(4)
    assert not window.accept(3) and not window.accept(5)
    assert window.accept(5 + WINDOW)
    assert not window.accept(5), "older than the window"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    assert isinstance(decode(data, KEYS, "c"), Dropped)
    assert isinstance(decode(MAGIC + b"\x01" + data, KEYS, "c"), Dropped)


words = st.text(
    st.characters(blacklist_categories=("Cs",)), max_size=6
)  # any text, separators included


@settings(max_examples=1000, deadline=None)
@given(
    code=st.integers(0, 255),
    flags=st.integers(0, 255),
    numbers=st.lists(st.integers(0, 2**64 - 1), min_size=10, max_size=10),
    text=st.lists(words, min_size=5, max_size=9).map("\n".join),
    sender=st.sampled_from(["n2", "n3", "n9", ""]),
)
def test_fuzz_authenticated_bodies_give_message_or_drop(
    code: int, flags: int, numbers: list[int], text: str, sender: str
) -> None:
    raw = FIXED.pack(code, flags, *numbers) + f"unit\n{sender}\n{text}".encode()
    data = signed(raw)
    result = decode(data, KEYS, "unit")
    assert isinstance(result, Message | Dropped)
    if isinstance(result, Message):
        # what decode accepts, encode writes back to the same message
        assert decode(encode(result, KEYS), KEYS, "unit") == result
    # A core fed the same bytes (under its own key) counts them; it never raises.
    core = MembershipCore(params(3), "n1", 1, 0.0)
    core.receive(data, "ucast eth0", 1.0)
    assert sum(core.counters.values()) >= 1
