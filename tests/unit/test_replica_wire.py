"""The replication peer protocol codec: round trips, strict decoding, fuzzing."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.replica import wire
from hastack.replica.states import DiskState, Role

U64 = st.integers(0, 2**64 - 1)
U32 = st.integers(0, 2**32 - 1)

MESSAGES: list[wire.Message] = [
    wire.Hello("alice", Role.PRIMARY, DiskState.UP_TO_DATE, 1 << 30, 0xABC, 0xDEF, (1, 2), 7, 1),
    wire.AuthChallenge(b"n" * 32),
    wire.AuthResponse(b"d" * 32),
    wire.Data(4096, 9, 3, wire.DATA_FUA, b"x" * 4096, b"\x01\x02\x03\x04"),
    wire.Data(0, 1, 1, 0, b"", b""),
    wire.RecvAck(5),
    wire.WriteAck(6),
    wire.NegAck(7),
    wire.Barrier(4, 12),
    wire.BarrierAck(4, 12),
    wire.BitmapRuns(100, ((0, 3), (10, 11), (99, 100)), True),
    wire.BitmapRuns(8, (), False),
    wire.SyncUuid(0x1234),
    wire.ResyncRequest(8192, 4096),
    wire.ResyncData(8192, b"y" * 4096),
    wire.ResyncAck(8192, 4096, False),
    wire.OutOfSync(0, 512),
    wire.Ping(),
    wire.PingAck(),
    wire.StateChange(Role.SECONDARY, DiskState.OUTDATED),
    wire.Disconnect("split brain"),
    wire.DataRequest(3, 8192, 4096),
    wire.DataReply(3, 8192, True, b"z" * 4096),
    wire.DataReply(4, 0, False),
    wire.Hello("bob", Role.PRIMARY, DiskState.DISKLESS, 4096, 1, 0, (0, 0), 0, 4),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: wire.Message) -> None:
    frame = wire.encode(message, 42)
    assert wire.decode(frame) == (message, 42)


def test_stream_decoder_reassembles_frames_split_anywhere() -> None:
    encoder = wire.Encoder()
    stream = b"".join(encoder.encode(m) for m in MESSAGES)
    decoder = wire.Decoder()
    got: list[wire.Message] = []
    for i in range(0, len(stream), 7):  # 7-byte slices cut headers and bodies alike
        got.extend(decoder.feed(stream[i : i + 7]))
    assert got == MESSAGES
    assert decoder.pending == 0


def test_bad_magic_is_named() -> None:
    frame = bytearray(wire.encode(wire.Ping(), 1))
    frame[0] ^= 0xFF
    with pytest.raises(wire.WireError, match="bad magic"):
        wire.decode(bytes(frame))


def test_unknown_type_is_named() -> None:
    frame = wire.HEADER.pack(wire.MAGIC, 999, 0, 0, 1)
    with pytest.raises(wire.WireError, match="unknown message type 999"):
        wire.decode(frame)


def test_reserved_field_must_be_zero() -> None:
    frame = wire.HEADER.pack(wire.MAGIC, wire.MsgType.PING, 1, 0, 1)
    with pytest.raises(wire.WireError, match="reserved"):
        wire.decode(frame)


def test_length_over_limit_is_refused_before_buffering() -> None:
    header = wire.HEADER.pack(wire.MAGIC, wire.MsgType.DATA, 0, wire.MAX_BODY + 1, 1)
    with pytest.raises(wire.WireError, match="over the limit"):
        wire.Decoder().feed(header)  # no body needed: the header alone is refused


def test_truncated_frames_are_refused() -> None:
    frame = wire.encode(wire.Data(0, 1, 1, 0, b"abcd"), 1)
    with pytest.raises(wire.WireError, match="truncated"):
        wire.decode(frame[:10])
    with pytest.raises(wire.WireError, match="header says"):
        wire.decode(frame[:-1])


def test_body_shorter_than_its_layout_is_refused() -> None:
    frame = wire.HEADER.pack(wire.MAGIC, wire.MsgType.BARRIER, 0, 3, 1) + b"\0\0\0"
    with pytest.raises(wire.WireError, match="Barrier: body truncated"):
        wire.decode(frame)


def test_trailing_bytes_in_a_fixed_body_are_refused() -> None:
    body = struct.pack(">II", 1, 2) + b"!"
    frame = wire.HEADER.pack(wire.MAGIC, wire.MsgType.BARRIER, 0, len(body), 1) + body
    with pytest.raises(wire.WireError, match="trailing"):
        wire.decode(frame)


def test_invalid_enum_values_are_refused() -> None:
    frame = wire.HEADER.pack(wire.MAGIC, wire.MsgType.STATE, 0, 2, 1) + b"\x07\x00"
    with pytest.raises(wire.WireError, match="not a valid Role"):
        wire.decode(frame)


def test_bitmap_runs_outside_the_volume_are_refused() -> None:
    body = struct.pack(">QBI", 10, 1, 1) + struct.pack(">QQ", 8, 5)
    frame = wire.HEADER.pack(wire.MAGIC, wire.MsgType.BITMAP, 0, len(body), 1) + body
    with pytest.raises(wire.WireError, match="invalid for 10 bits"):
        wire.decode(frame)


def test_sequence_gaps_are_refused() -> None:
    decoder = wire.Decoder()
    decoder.feed(wire.encode(wire.Ping(), 1))
    with pytest.raises(wire.WireError, match="sequence 3, expected 2"):
        decoder.feed(wire.encode(wire.Ping(), 3))


@pytest.mark.parametrize("alg", ["crc32", "crc32c", "md5", "sha1", "sha256", "sha512"])
def test_integrity_digests_detect_a_flipped_bit(alg: str) -> None:
    data = bytes(range(256)) * 16
    flipped = bytes([data[0] ^ 1]) + data[1:]
    assert wire.integrity_digest(alg, data) != wire.integrity_digest(alg, flipped)


def test_crc32c_matches_the_standard_check_value() -> None:
    assert wire.integrity_digest("crc32c", b"123456789") == (0xE3069283).to_bytes(4, "big")


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_raise_nothing_but_wire_error(data: bytes) -> None:
    with contextlib.suppress(wire.WireError):
        wire.Decoder().feed(data)
    with contextlib.suppress(wire.WireError):
        wire.decode(data)


@settings(max_examples=300)
@given(st.sampled_from(MESSAGES), st.binary(max_size=64), st.integers(0, 200))
def test_corrupted_real_frames_raise_nothing_but_wire_error(
    message: wire.Message, noise: bytes, cut: int
) -> None:
    frame = bytearray(wire.encode(message, 1))
    # Overwrite part of a genuine frame: past the magic the decoder gets deep into bodies.
    pos = min(cut, len(frame))
    frame[pos : pos + len(noise)] = noise
    with contextlib.suppress(wire.WireError):
        wire.decode(bytes(frame))


@given(
    offset=U64,
    seq=U64,
    epoch=U32,
    flags=st.sampled_from([0, wire.DATA_FUA, wire.DATA_FLUSH, 3]),
    payload=st.binary(max_size=600),
    digest=st.binary(max_size=64),
)
def test_data_round_trips(
    offset: int, seq: int, epoch: int, flags: int, payload: bytes, digest: bytes
) -> None:
    message = wire.Data(offset, seq, epoch, flags, payload, digest)
    assert wire.decode(wire.encode(message, 1))[0] == message


@given(
    node=st.text(max_size=40),
    cur=U64,
    bm=U64,
    h0=U64,
    h1=U64,
    dirty=U64,
    size=U64,
    role=st.sampled_from(list(Role)),
    disk=st.sampled_from(list(DiskState)),
)
def test_hello_round_trips(
    node: str,
    cur: int,
    bm: int,
    h0: int,
    h1: int,
    dirty: int,
    size: int,
    role: Role,
    disk: DiskState,
) -> None:
    message = wire.Hello(node, role, disk, size, cur, bm, (h0, h1), dirty)
    assert wire.decode(wire.encode(message, 1))[0] == message


@given(ident=U64, offset=U64, length=U32)
def test_data_request_round_trips(ident: int, offset: int, length: int) -> None:
    message = wire.DataRequest(ident, offset, length)
    assert wire.decode(wire.encode(message, 1))[0] == message


@given(ident=U64, offset=U64, payload=st.binary(max_size=600))
def test_data_reply_round_trips(ident: int, offset: int, payload: bytes) -> None:
    message = wire.DataReply(ident, offset, True, payload)
    assert wire.decode(wire.encode(message, 1))[0] == message


def test_data_reply_with_a_bad_ok_flag_is_refused() -> None:
    body = struct.pack(">QQB", 1, 0, 2)
    frame = wire.HEADER.pack(wire.MAGIC, wire.MsgType.DATA_REPLY, 0, len(body), 1) + body
    with pytest.raises(wire.WireError, match="ok flag 2"):
        wire.decode(frame)


def test_failed_data_reply_carrying_data_is_refused() -> None:
    body = struct.pack(">QQB", 1, 0, 0) + b"data"
    frame = wire.HEADER.pack(wire.MAGIC, wire.MsgType.DATA_REPLY, 0, len(body), 1) + body
    with pytest.raises(wire.WireError, match="failed read carries no data"):
        wire.decode(frame)


def test_data_request_with_a_short_body_is_refused() -> None:
    body = struct.pack(">QQ", 1, 0)
    frame = wire.HEADER.pack(wire.MAGIC, wire.MsgType.DATA_REQUEST, 0, len(body), 1) + body
    with pytest.raises(wire.WireError, match="DataRequest: body truncated"):
        wire.decode(frame)


# --- resize (ResizeRequest / ResizeReply) ----------------------------------------------------


@given(U64, U64, U64, st.sampled_from([0, wire.RESIZE_ASSUME_CLEAN]), U64, U64, U64, U64)
def test_resize_request_round_trips(
    max_s: int, limit: int, requested: int, flags: int, cur: int, bm: int, h0: int, h1: int
) -> None:
    message = wire.ResizeRequest(max_s, limit, requested, flags, cur, bm, (h0, h1))
    assert wire.decode(wire.encode(message, 3)) == (message, 3)


@given(st.booleans(), U64, U64, st.text(max_size=100))
def test_resize_reply_round_trips(ok: bool, sectors: int, cur: int, reason: str) -> None:
    message = wire.ResizeReply(ok, sectors, cur, 0, (1, 2), reason)
    assert wire.decode(wire.encode(message, 9)) == (message, 9)


def test_resize_request_with_unknown_flags_is_refused() -> None:
    frame = wire.encode(wire.ResizeRequest(1, 0, 0, 0x80, 0, 0, (0, 0)), 1)
    with pytest.raises(wire.WireError, match="resize request: unknown flags 0x80"):
        wire.decode(frame)


def test_resize_reply_with_a_bad_ok_flag_is_refused() -> None:
    good = bytearray(wire.encode(wire.ResizeReply(True, 8, 0, 0, (0, 0)), 1))
    good[wire.HEADER_SIZE] = 2
    with pytest.raises(wire.WireError, match="ok flag 2"):
        wire.decode(bytes(good))


def test_resize_messages_survive_the_stream_decoder_split_anywhere() -> None:
    encoder = wire.Encoder()
    messages: list[wire.Message] = [
        wire.ResizeRequest(1 << 40, 2048, 0, wire.RESIZE_ASSUME_CLEAN, 5, 6, (7, 8)),
        wire.ResizeReply(False, 0, 5, 6, (7, 8), "no room"),
    ]
    stream = b"".join(encoder.encode(m) for m in messages)
    decoder = wire.Decoder()
    got: list[wire.Message] = []
    for i in range(0, len(stream), 5):
        got.extend(decoder.feed(stream[i : i + 5]))
    assert got == messages
