"""The quorum-server wire protocol: frames, signed messages, and fuzzing of every decoder."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hastack.config.model import AuthKey, AuthKeys
from hastack.quorum import protocol
from hastack.quorum.client import QClientCore
from hastack.quorum.effects import Close, Log, Send
from hastack.quorum.protocol import FrameReader, ProtocolError, encode_frame, make, parse_body, seal
from hastack.quorum.server import ClusterSpec, QServerCore

KEYS = AuthKeys(1, {1: AuthKey(1, "sha256", b"s" * 32)})
SESSION = "ab" * 32


def _report(**over: object) -> dict[str, object]:
    fields: dict[str, object] = dict(
        c="c1", s=SESSION, d="c", n=3, req=7, members=["b", "a"], ring=[1, 2], resources=4
    )
    fields.update(over)
    return make("report", **fields)


def _body(frame: bytes) -> bytes:
    bodies = FrameReader().feed(frame)
    assert len(bodies) == 1
    return bodies[0]


def test_a_signed_report_round_trips_and_verifies() -> None:
    message = parse_body(_body(seal(_report(), KEYS.signing)), "c")
    assert message.type == "report"
    assert message["members"] == ("a", "b")  # sorted, as a tuple
    assert message["ring"] == (1, 2)
    assert message["k"] == 1
    assert message.verify(KEYS)


def test_a_tampered_payload_fails_verification() -> None:
    body = _body(seal(_report(), KEYS.signing)).replace(b'"resources":4', b'"resources":5')
    message = parse_body(body, "c")
    assert message["resources"] == 5
    assert not message.verify(KEYS)


def test_another_key_fails_verification() -> None:
    other = AuthKeys(1, {1: AuthKey(1, "sha256", b"t" * 32)})
    assert not parse_body(_body(seal(_report(), KEYS.signing)), "c").verify(other)


def test_frames_split_anywhere_are_reassembled() -> None:
    stream = seal(_report(req=1), KEYS.signing) + seal(_report(req=2), KEYS.signing)
    reader = FrameReader()
    bodies: list[bytes] = []
    for i in range(len(stream)):
        bodies += reader.feed(stream[i : i + 1])
    assert [parse_body(b, "c")["req"] for b in bodies] == [1, 2]
    assert reader.pending == 0


@pytest.mark.parametrize("length", [0, protocol.MAX_BODY + 1, 2**32 - 1])
def test_an_impossible_length_is_refused(length: int) -> None:
    with pytest.raises(ProtocolError, match="frame length"):
        FrameReader().feed(protocol.LENGTH.pack(length) + b"x")


@pytest.mark.parametrize(
    ("message", "direction", "reason"),
    [
        (_report(members=["a", "a"]), "c", "listed twice"),
        (_report(members=[]), "c", "members"),
        (_report(ring=[1]), "c", "ring"),
        (_report(resources=-1), "c", "resources"),
        (_report(req=True), "c", "req"),
        (_report(d="s"), "c", "direction"),
        (_report(s="zz"), "c", "hex"),
        (_report(), "s", "direction"),
        ({**_report(), "extra": 1}, "c", "not allowed"),
        ({**_report(), "v": 2}, "c", "version"),
        (
            make("hello", c="c1", s=SESSION, d="c", n=0, node="a", id=1, votes=1, interval=0),
            "c",
            "interval",
        ),
        (make("nonsense"), "c", "unknown message type"),
    ],
)
def test_bad_fields_are_named(message: dict[str, object], direction: str, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_body(_body(seal(message, KEYS.signing)), direction)


def test_unsigned_where_signed_is_required_is_refused() -> None:
    with pytest.raises(ProtocolError, match="must be signed"):
        parse_body(_body(seal(_report(k=1), None)), "c")


def test_not_json_is_refused() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        parse_body(b"\x00{not json", "c")
    with pytest.raises(ProtocolError, match="not a JSON object"):
        parse_body(b"\x00" + json.dumps([1]).encode(), "c")


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["c", "s"]))
def test_fuzz_parse_body_raises_only_protocol_error(data: bytes, direction: str) -> None:
    try:
        message = parse_body(data, direction)
    except ProtocolError as exc:
        assert str(exc)
    else:
        assert message.type in protocol.SCHEMAS


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400)
@given(
    st.fixed_dictionaries(
        {"t": st.sampled_from(sorted(protocol.SCHEMAS)), "v": st.just(1)},
        optional={
            k: _json
            for k in (
                "c",
                "k",
                "s",
                "d",
                "n",
                "node",
                "id",
                "votes",
                "interval",
                "req",
                "members",
                "ring",
                "resources",
                "grant",
                "lease",
                "seq",
                "reason",
                "nonce",
            )
        },
    ),
    st.booleans(),
)
def test_fuzz_structured_messages(message: dict[str, object], signed: bool) -> None:
    """JSON objects of the right shape but random field values: checked, never crash."""
    body = _body(seal(message, KEYS.signing if signed else None))
    for direction in ("c", "s"):
        try:
            parsed = parse_body(body, direction)
        except ProtocolError as exc:
            assert str(exc)
        else:
            assert parsed.type == message["t"]


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_fuzz_the_server_with_garbage_closes_and_counts(chunks: list[bytes]) -> None:
    """Random bytes after a connection opens: the server never raises; when it objects it
    closes that connection, counts a bad frame and keeps serving a good client."""
    spec = ClusterSpec("c1", KEYS, {"a": (1, 1)})
    core = QServerCore([spec], lambda n: b"\x01" * n, 0.0)
    core.connected(1, 0.0)
    closed = logged = False
    for chunk in chunks:
        for effect in core.received(1, chunk, 0.1):
            closed = closed or isinstance(effect, Close)
            logged = logged or (isinstance(effect, Log) and effect.level == "warning")
    assert core.bad_frames + core.refused == (1 if closed else 0)
    assert logged == closed
    assert core.bad_frames + core.refused <= 1
    # a good client on another connection still gets its welcome
    challenge = core.connected(2, 0.2)
    nonce = parse_body(_body(challenge[0].data), "s")["nonce"]  # type: ignore[union-attr]
    hello = make(
        "hello", c="c1", s=nonce + "00" * 16, d="c", n=0, node="a", id=1, votes=1, interval=1.0
    )
    replies = core.received(2, seal(hello, KEYS.signing), 0.3)
    sent = [parse_body(_body(e.data), "s").type for e in replies if isinstance(e, Send)]
    assert sent == ["welcome"]


def test_encode_frame_refuses_an_empty_or_huge_body() -> None:
    with pytest.raises(ValueError, match="frame body"):
        encode_frame(b"")
    with pytest.raises(ValueError, match="frame body"):
        encode_frame(b"x" * (protocol.MAX_BODY + 1))


@settings(max_examples=300)
@given(st.booleans(), st.lists(st.binary(max_size=80), max_size=6))
def test_fuzz_the_client_with_garbage(after_challenge: bool, chunks: list[bytes]) -> None:
    """Random bytes from a 'server': the client never raises, and when it objects it closes
    the connection and goes back to waiting for a reconnection."""
    client = QClientCore("c1", "a", 1, KEYS, lambda n: b"\x02" * n)
    client.membership(("a",), (1, 0), 0, 0.0)
    client.tick(0.0)
    client.connected(0.0)
    if after_challenge:
        client.received(seal(make("challenge", nonce="03" * 16), None), 0.0)
    for chunk in chunks:
        effects = client.received(chunk, 0.1)
        if any(isinstance(e, Close) for e in effects):
            assert client.state == "down"
            assert any(isinstance(e, Log) for e in effects)
            break
    assert not client.has_vote(0.1)
