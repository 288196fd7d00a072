"""The heartbeat wire format: round trips, authentication, and fuzzing of the decoder."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from membership_net import params

from hastack.config.model import AuthKey, AuthKeys
from hastack.membership.codec import Dropped, Grant, Message, decode, encode
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
    data = encode(hb(), KEYS).replace(b'"g":3', b'"g":4')
    assert decode(data, KEYS, "c") == Dropped("auth", "bad authentication tag")


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

    return b"HSTK1 1 " + sign(KEYS.keys[1], body) + b"\n" + body


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"c":"c","n":"a","g":true,"s":1,"t":"hb","tm":0,"ht":0}',
        b'{"c":"c","n":"a","g":-1,"s":1,"t":"bye","tm":0,"ht":0}',
        b'{"c":"c","n":"a","g":1,"s":1,"t":"nope","tm":0,"ht":0}',
        b'{"c":"c","n":"a","g":1,"s":1,"t":"hb","tm":0,"ht":0}',
        b"[" * 100000,
    ],
)
def test_authenticated_but_malformed_bodies_are_dropped(body: bytes) -> None:
    result = decode(signed(body), KEYS, "c")
    assert isinstance(result, Dropped) and result.reason == "malformed"


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
    decode(b"HSTK1 1 " + data, KEYS, "c")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "c",
                "n",
                "g",
                "s",
                "t",
                "tm",
                "ht",
                "se",
                "dc",
                "da",
                "l",
                "gr",
                "m",
                "mv",
                "a",
                "q",
                "to",
                "ok",
            ]
        ),
        json_values,
    )
)
def test_fuzz_authenticated_bodies_give_message_or_drop(fields: dict[str, object]) -> None:
    body = {"c": "unit", "n": "n2", "g": 1, "s": 1, "t": "hb", "tm": 0, "ht": 0}
    body.update(fields)
    data = signed(json.dumps(body).encode())
    core = MembershipCore(params(3), "n1", 1, 0.0)
    assert isinstance(decode(data, KEYS, "unit"), Message | Dropped)
    # A core fed the same bytes (under its own key) counts them; it never raises.
    core.receive(data, "ucast eth0", 1.0)
    assert sum(core.counters.values()) >= 1
