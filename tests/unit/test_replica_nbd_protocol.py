"""The NBD server core, sans-IO: every option path, every command, malformed input, fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.replica.nbd_protocol import (
    IHAVEOPT,
    NBDMAGIC,
    OPTION_REPLY_MAGIC,
    REQUEST_MAGIC,
    SIMPLE_REPLY_MAGIC,
    Closed,
    Command,
    CommandFlag,
    ExportInfo,
    InfoType,
    NBDError,
    Negotiated,
    Option,
    Reply,
    Request,
    ServerConnection,
    TransmissionFlag,
    error_from_errno,
)

SIZE = 1 << 20
EXPORTS = {
    "disk": ExportInfo("disk", SIZE, description="the disk"),
    "ro": ExportInfo("ro", SIZE, read_only=True),
    "gone": ExportInfo("gone", SIZE, read_only=True, refused=True),
}


# ---- a minimal client side, written from proto.md, to drive the core ----------------------


def option(opt: int, data: bytes = b"") -> bytes:
    return struct.pack(">QII", IHAVEOPT, opt, len(data)) + data


def info_data(name: str, *infos: int) -> bytes:
    raw = name.encode()
    return struct.pack(">I", len(raw)) + raw + struct.pack(f">H{len(infos)}H", len(infos), *infos)


def request(cmd: int, cookie: int, offset: int = 0, length: int = 0, flags: int = 0) -> bytes:
    return struct.pack(">IHHQQI", REQUEST_MAGIC, flags, cmd, cookie, offset, length)


def parse_option_replies(data: bytes) -> list[tuple[int, int, bytes]]:
    out = []
    while data:
        magic, opt, kind, length = struct.unpack_from(">QIII", data)
        assert magic == OPTION_REPLY_MAGIC
        out.append((opt, kind, data[20 : 20 + length]))
        data = data[20 + length :]
    return out


def parse_simple_replies(data: bytes, read_lengths: dict[int, int] | None = None) -> list:
    out = []
    read_lengths = read_lengths or {}
    while data:
        magic, error, cookie = struct.unpack_from(">IIQ", data)
        assert magic == SIMPLE_REPLY_MAGIC
        n = read_lengths.get(cookie, 0) if error == 0 else 0
        out.append((cookie, error, data[16 : 16 + n]))
        data = data[16 + n :]
    return out


def new(**kwargs: object) -> ServerConnection:
    conn = ServerConnection(EXPORTS, **kwargs)  # type: ignore[arg-type]
    greeting = conn.data_to_send()
    assert greeting == struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 3)
    return conn


def handshaken(flags: int = 3, **kwargs: object) -> ServerConnection:
    conn = new(**kwargs)
    assert conn.receive_data(struct.pack(">I", flags)) == []
    return conn


def transmitting(name: str = "disk", **kwargs: object) -> ServerConnection:
    conn = handshaken(**kwargs)
    events = conn.receive_data(option(Option.GO, info_data(name)))
    assert isinstance(events[0], Negotiated)
    conn.data_to_send()
    return conn


# ---- handshake ------------------------------------------------------------------------------


def test_unknown_client_flags_close() -> None:
    conn = new()
    (event,) = conn.receive_data(struct.pack(">I", 0x80))
    assert isinstance(event, Closed) and not event.clean and conn.closed


def test_non_fixed_newstyle_client_is_refused() -> None:
    conn = new()
    (event,) = conn.receive_data(struct.pack(">I", 0))
    assert isinstance(event, Closed) and "fixed newstyle" in event.reason


def test_export_name_with_and_without_zeroes() -> None:
    for flags, tail in ((1, 124), (3, 0)):
        conn = handshaken(flags)
        (event,) = conn.receive_data(option(Option.EXPORT_NAME, b"disk"))
        assert event == Negotiated(EXPORTS["disk"])
        out = conn.data_to_send()
        size, tflags = struct.unpack_from(">QH", out)
        assert size == SIZE and len(out) == 10 + tail
        assert tflags & TransmissionFlag.HAS_FLAGS and not tflags & TransmissionFlag.READ_ONLY
        assert conn.in_transmission


def test_export_name_unknown_or_refused_closes() -> None:
    for name in (b"nope", b"gone", b"bad\0name"):
        conn = handshaken()
        (event,) = conn.receive_data(option(Option.EXPORT_NAME, name))
        assert isinstance(event, Closed) and not event.clean


def test_default_export_for_empty_name() -> None:
    conn = handshaken(default_export="disk")
    (event,) = conn.receive_data(option(Option.EXPORT_NAME, b""))
    assert event == Negotiated(EXPORTS["disk"])
    conn = handshaken()
    (event,) = conn.receive_data(option(Option.EXPORT_NAME, b""))
    assert isinstance(event, Closed)


def test_go_replies_export_block_size_name_description_then_ack() -> None:
    conn = handshaken()
    data = info_data("disk", InfoType.NAME, InfoType.DESCRIPTION, InfoType.BLOCK_SIZE, 999)
    (event,) = conn.receive_data(option(Option.GO, data))
    assert event == Negotiated(EXPORTS["disk"])
    replies = parse_option_replies(conn.data_to_send())
    assert [r[1] for r in replies] == [Reply.INFO] * 4 + [Reply.ACK]
    infos = {struct.unpack_from(">H", r[2])[0]: r[2][2:] for r in replies[:4]}
    size, flags = struct.unpack(">QH", infos[InfoType.EXPORT])
    assert size == SIZE
    want = (
        TransmissionFlag.HAS_FLAGS
        | TransmissionFlag.SEND_FLUSH
        | TransmissionFlag.SEND_FUA
        | TransmissionFlag.SEND_TRIM
        | TransmissionFlag.SEND_WRITE_ZEROES
        | TransmissionFlag.CAN_MULTI_CONN
    )
    assert flags == want
    assert infos[InfoType.NAME] == b"disk"
    assert infos[InfoType.DESCRIPTION] == b"the disk"
    assert struct.unpack(">III", infos[InfoType.BLOCK_SIZE]) == (1, 4096, 32 << 20)
    assert conn.in_transmission


def test_info_stays_in_handshake_and_read_only_flag() -> None:
    conn = handshaken(block_min=512)
    assert conn.receive_data(option(Option.INFO, info_data("ro"))) == []
    replies = parse_option_replies(conn.data_to_send())
    assert [r[1] for r in replies] == [Reply.INFO, Reply.INFO, Reply.ACK]
    _, flags = struct.unpack(">QH", replies[0][2][2:])
    assert flags & TransmissionFlag.READ_ONLY
    assert struct.unpack(">III", replies[1][2][2:])[0] == 512
    assert not conn.in_transmission and not conn.closed


@pytest.mark.parametrize("name", ["nope", "gone"])
def test_go_unknown_or_refused_export(name: str) -> None:
    conn = handshaken()
    assert conn.receive_data(option(Option.GO, info_data(name))) == []
    ((opt, kind, _),) = parse_option_replies(conn.data_to_send())
    assert (opt, kind) == (Option.GO, Reply.ERR_UNKNOWN)
    assert not conn.closed


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\0\0\0",
        struct.pack(">I", 100) + b"disk\0\0",  # name longer than the data
        info_data("disk") + b"\0",  # trailing byte
        struct.pack(">I", 4) + b"disk" + struct.pack(">H", 2) + b"\0\0",  # count mismatch
        struct.pack(">I", 2) + b"\xff\xfe" + b"\0\0",  # not UTF-8
    ],
)
def test_go_bad_lengths_are_err_invalid(data: bytes) -> None:
    conn = handshaken()
    assert conn.receive_data(option(Option.GO, data)) == []
    ((_, kind, _),) = parse_option_replies(conn.data_to_send())
    assert kind == Reply.ERR_INVALID


def test_list_skips_refused_exports() -> None:
    conn = handshaken()
    assert conn.receive_data(option(Option.LIST)) == []
    replies = parse_option_replies(conn.data_to_send())
    assert [r[1] for r in replies] == [Reply.SERVER, Reply.SERVER, Reply.ACK]
    names = [r[2][4 : 4 + struct.unpack_from(">I", r[2])[0]] for r in replies[:2]]
    assert names == [b"disk", b"ro"]
    conn.receive_data(option(Option.LIST, b"x"))
    ((_, kind, _),) = parse_option_replies(conn.data_to_send())
    assert kind == Reply.ERR_INVALID


def test_abort_acks_then_closes() -> None:
    conn = handshaken()
    (event,) = conn.receive_data(option(Option.ABORT))
    assert isinstance(event, Closed) and event.clean
    assert parse_option_replies(conn.data_to_send()) == [(Option.ABORT, Reply.ACK, b"")]
    assert conn.receive_data(b"anything") == []


@pytest.mark.parametrize(
    "opt",
    [
        Option.STRUCTURED_REPLY,
        Option.STARTTLS,
        Option.LIST_META_CONTEXT,
        Option.SET_META_CONTEXT,
        Option.EXTENDED_HEADERS,
        Option.PEEK_EXPORT,
        0xDEAD,
    ],
)
def test_unsupported_options_err_unsup(opt: int) -> None:
    conn = handshaken()
    assert conn.receive_data(option(opt, b"xyz")) == []
    ((got, kind, _),) = parse_option_replies(conn.data_to_send())
    assert (got, kind) == (opt, Reply.ERR_UNSUP)


def test_oversize_option_is_skipped_unbuffered_then_too_big() -> None:
    conn = handshaken(max_option_length=64)
    conn.receive_data(struct.pack(">QII", IHAVEOPT, Option.GO, 100_000))
    for _ in range(100):
        assert conn.receive_data(bytes(1000)) == []
        assert len(conn._buf) < 2000  # skipped, not buffered
    ((_, kind, _),) = parse_option_replies(conn.data_to_send())
    assert kind == Reply.ERR_TOO_BIG
    (event,) = conn.receive_data(option(Option.GO, info_data("disk")))
    assert isinstance(event, Negotiated)


def test_oversize_export_name_closes() -> None:
    conn = handshaken(max_option_length=64)
    (event,) = conn.receive_data(struct.pack(">QII", IHAVEOPT, Option.EXPORT_NAME, 10**6))
    assert isinstance(event, Closed) and not event.clean


def test_bad_option_magic_closes() -> None:
    conn = handshaken()
    (event,) = conn.receive_data(struct.pack(">QII", 0x1234, Option.LIST, 0))
    assert isinstance(event, Closed) and "magic" in event.reason


def test_options_split_byte_by_byte() -> None:
    conn = new()
    stream = struct.pack(">I", 3) + option(Option.LIST) + option(Option.GO, info_data("disk"))
    events = []
    for b in stream:
        events += conn.receive_data(bytes([b]))
    assert events == [Negotiated(EXPORTS["disk"])]


def test_eof_during_handshake_and_truncated_option() -> None:
    conn = handshaken()
    conn.receive_data(option(Option.GO, info_data("disk"))[:10])
    (event,) = conn.receive_data(b"")
    assert isinstance(event, Closed) and not event.clean
    conn = handshaken()
    (event,) = conn.receive_data(b"")
    assert isinstance(event, Closed) and not event.clean


def test_shutdown_during_handshake() -> None:
    conn = handshaken()
    conn.shutdown()
    assert conn.receive_data(option(Option.GO, info_data("disk"))) == []
    ((_, kind, _),) = parse_option_replies(conn.data_to_send())
    assert kind == Reply.ERR_SHUTDOWN
    (event,) = conn.receive_data(option(Option.EXPORT_NAME, b"disk"))
    assert isinstance(event, Closed)


# ---- transmission ---------------------------------------------------------------------------


def test_every_command_reaches_the_backend_and_replies_carry_cookies() -> None:
    conn = transmitting()
    stream = (
        request(Command.WRITE, 1, 0, 4, CommandFlag.FUA)
        + b"abcd"
        + request(Command.READ, 2, 0, 4)
        + request(Command.FLUSH, 3)
        + request(Command.TRIM, 4, 4096, 4096)
        + request(Command.WRITE_ZEROES, 5, 8192, 4096, CommandFlag.NO_HOLE | CommandFlag.FUA)
    )
    events = conn.receive_data(stream)
    assert events == [
        Request(1, Command.WRITE, CommandFlag.FUA, 0, 4, b"abcd"),
        Request(2, Command.READ, CommandFlag(0), 0, 4),
        Request(3, Command.FLUSH, CommandFlag(0), 0, 0),
        Request(4, Command.TRIM, CommandFlag(0), 4096, 4096),
        Request(5, Command.WRITE_ZEROES, CommandFlag.NO_HOLE | CommandFlag.FUA, 8192, 4096),
    ]
    assert events[0].fua and events[4].no_hole  # type: ignore[union-attr]
    assert conn.in_flight == 5
    # Out of order: the client matches replies by cookie.
    for cookie in (5, 3, 2, 4, 1):
        conn.complete(cookie, data=b"abcd" if cookie == 2 else b"")
    replies = parse_simple_replies(conn.data_to_send(), {2: 4})
    assert replies == [(5, 0, b""), (3, 0, b""), (2, 0, b"abcd"), (4, 0, b""), (1, 0, b"")]
    assert conn.in_flight == 0


def test_backend_errors_are_framed() -> None:
    conn = transmitting()
    conn.receive_data(request(Command.READ, 7, 0, 512))
    conn.complete(7, NBDError.EIO)
    assert parse_simple_replies(conn.data_to_send()) == [(7, NBDError.EIO, b"")]
    conn.receive_data(request(Command.READ, 8, 0, 512))
    with pytest.raises(ValueError):
        conn.complete(8, data=b"short")
    with pytest.raises(KeyError):
        conn.complete(99)


@pytest.mark.parametrize(
    ("export", "req", "error"),
    [
        ("ro", request(Command.WRITE, 1, 0, 4) + b"abcd", NBDError.EPERM),
        ("ro", request(Command.TRIM, 1, 0, 4096), NBDError.EPERM),
        ("ro", request(Command.WRITE_ZEROES, 1, 0, 4096), NBDError.EPERM),
        ("disk", request(Command.READ, 1, SIZE - 1, 2), NBDError.EINVAL),
        ("disk", request(Command.TRIM, 1, SIZE, 1), NBDError.EINVAL),
        ("disk", request(Command.WRITE, 1, SIZE - 2, 4) + b"abcd", NBDError.ENOSPC),
        ("disk", request(Command.WRITE_ZEROES, 1, 2**63, 1), NBDError.ENOSPC),
        ("disk", request(Command.READ, 1, 0, 64 << 20), NBDError.EOVERFLOW),
        ("disk", request(Command.READ, 1, 0, 4, CommandFlag.DF), NBDError.EINVAL),
        ("disk", request(Command.READ, 1, 0, 4, CommandFlag.NO_HOLE), NBDError.EINVAL),
        ("disk", request(Command.CACHE, 1, 0, 4), NBDError.EINVAL),
        ("disk", request(Command.BLOCK_STATUS, 1, 0, 4), NBDError.EINVAL),
        ("disk", request(0x77, 1, 0, 4), NBDError.EINVAL),
    ],
)
def test_invalid_requests_answered_by_the_core(export: str, req: bytes, error: int) -> None:
    conn = transmitting(export)
    assert conn.receive_data(req) == []
    assert parse_simple_replies(conn.data_to_send()) == [(1, error, b"")]
    assert conn.in_flight == 0 and not conn.closed


def test_misaligned_requests_with_512_minimum() -> None:
    conn = transmitting(block_min=512)
    assert conn.receive_data(request(Command.READ, 1, 1, 512)) == []
    assert conn.receive_data(request(Command.READ, 2, 0, 100)) == []
    assert [r[1] for r in parse_simple_replies(conn.data_to_send())] == [22, 22]
    assert len(conn.receive_data(request(Command.READ, 3, 512, 512))) == 1


def test_zero_length_requests_succeed_without_the_backend() -> None:
    conn = transmitting()
    assert conn.receive_data(request(Command.READ, 1) + request(Command.WRITE, 2)) == []
    assert parse_simple_replies(conn.data_to_send()) == [(1, 0, b""), (2, 0, b"")]


def test_oversize_write_payload_is_skipped_then_eoverflow() -> None:
    conn = transmitting(max_payload=4096)
    conn.receive_data(request(Command.WRITE, 1, 0, 100_000))
    for _ in range(100):
        conn.receive_data(bytes(1000))
    assert parse_simple_replies(conn.data_to_send()) == [(1, NBDError.EOVERFLOW, b"")]
    (event,) = conn.receive_data(request(Command.READ, 2, 0, 8))
    assert isinstance(event, Request)


def test_disc_and_eof() -> None:
    conn = transmitting()
    (event,) = conn.receive_data(request(Command.DISC, 1))
    assert event == Closed("client sent NBD_CMD_DISC", clean=True)
    conn = transmitting()
    conn.receive_data(request(Command.READ, 1, 0, 8))
    (event,) = conn.receive_data(b"")
    assert isinstance(event, Closed) and event.clean
    # Requests handed out before the close still get their replies framed.
    conn.complete(1, data=bytes(8))
    assert parse_simple_replies(conn.data_to_send(), {1: 8}) == [(1, 0, bytes(8))]


def test_bad_request_magic_and_truncated_request() -> None:
    conn = transmitting()
    (event,) = conn.receive_data(struct.pack(">IHHQQI", 0xBAD, 0, 0, 1, 0, 8))
    assert isinstance(event, Closed) and not event.clean and "magic" in event.reason
    conn = transmitting()
    assert conn.receive_data(request(Command.WRITE, 1, 0, 100) + bytes(50)) == []
    (event,) = conn.receive_data(b"")
    assert isinstance(event, Closed) and not event.clean


def test_in_flight_limit_pauses_and_resumes() -> None:
    conn = transmitting(max_in_flight=2)
    stream = b"".join(request(Command.READ, c, 0, 8) for c in range(1, 5))
    events = conn.receive_data(stream)
    assert [e.cookie for e in events] == [1, 2]  # type: ignore[union-attr]
    assert not conn.want_read
    assert conn.next_events() == []
    conn.complete(1, data=bytes(8))
    assert conn.want_read
    assert [e.cookie for e in conn.next_events()] == [3]  # type: ignore[union-attr]
    assert not conn.want_read


def test_held_back_says_requests_wait_even_after_a_completion_cleared_want_read() -> None:
    """A completion that comes before the shell looks (a write done inline, say) makes
    `want_read` true again; `held_back` still says the buffer holds requests to hand out,
    and stays true until next_events has handed them out."""
    conn = transmitting(max_in_flight=1)
    events = conn.receive_data(request(Command.READ, 1, 0, 8) + request(Command.READ, 2, 0, 8))
    assert [e.cookie for e in events] == [1] and conn.held_back  # type: ignore[union-attr]
    conn.complete(1, data=bytes(8))
    assert conn.want_read and conn.held_back
    assert [e.cookie for e in conn.next_events()] == [2]  # type: ignore[union-attr]
    assert not conn.held_back
    conn.complete(2, data=bytes(8))
    assert conn.want_read and not conn.held_back and conn.next_events() == []


def test_a_write_arriving_in_pieces_waits_whole_before_it_is_parsed() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    stream = request(Command.WRITE, 7, 0, len(payload)) + payload
    conn = transmitting()
    pieces = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    for piece in pieces[:-1]:
        assert conn.receive_data(piece) == []
    (event,) = conn.receive_data(pieces[-1])
    assert isinstance(event, Request) and event.cookie == 7 and bytes(event.data) == payload


def test_in_flight_byte_budget_admits_one_big_request() -> None:
    conn = transmitting(max_in_flight_bytes=100)
    events = conn.receive_data(request(Command.READ, 1, 0, 4096) + request(Command.READ, 2, 0, 8))
    assert len(events) == 1 and not conn.want_read
    conn.complete(1, data=bytes(4096))
    assert len(conn.next_events()) == 1


def test_shutdown_in_transmission_answers_eshutdown_but_completes_in_flight() -> None:
    conn = transmitting()
    (_read,) = conn.receive_data(request(Command.READ, 1, 0, 8))
    conn.shutdown()
    assert conn.receive_data(request(Command.WRITE, 2, 0, 4) + b"abcd") == []
    conn.complete(1, data=bytes(8))
    assert parse_simple_replies(conn.data_to_send(), {1: 8}) == [
        (2, NBDError.ESHUTDOWN, b""),
        (1, 0, bytes(8)),
    ]


def test_error_from_errno() -> None:
    import errno

    assert error_from_errno(errno.ENOSPC) == NBDError.ENOSPC
    assert error_from_errno(errno.EROFS) == NBDError.EPERM
    assert error_from_errno(errno.ENOENT) == NBDError.EIO
    assert error_from_errno(None) == NBDError.EIO


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        ServerConnection(EXPORTS, block_min=4096)
    with pytest.raises(ValueError):
        ServerConnection(EXPORTS, max_in_flight=0)


# ---- fuzzing --------------------------------------------------------------------------------


def _drive(conn: ServerConnection, chunks: list[bytes]) -> None:
    for chunk in chunks:
        for event in conn.receive_data(chunk):
            assert isinstance(event, (Negotiated, Request, Closed))
            if isinstance(event, Request):
                data = bytes(event.length) if event.command is Command.READ else b""
                conn.complete(event.cookie, data=data)
        conn.data_to_send()
        if conn.closed:
            return
    conn.receive_data(b"")
    assert conn.closed


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_fuzz_handshake_random_bytes(chunks: list[bytes]) -> None:
    _drive(new(max_option_length=256), chunks)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_fuzz_after_fixed_newstyle(chunks: list[bytes]) -> None:
    _drive(handshaken(max_option_length=256), chunks)


_frames = st.one_of(
    st.builds(
        request,
        st.integers(0, 9),
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**64 - 1),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**16 - 1),
    ),
    st.binary(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_frames, max_size=12))
def test_fuzz_transmission_frames(chunks: list[bytes]) -> None:
    _drive(transmitting(max_payload=1024), chunks)


@given(
    st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=6),
    st.lists(st.integers(1, 5000), min_size=1, max_size=10),
)
def test_write_payloads_arrive_whole_however_the_stream_is_cut(
    payloads: list[bytes], cuts: list[int]
) -> None:
    conn = transmitting()
    stream = b"".join(
        request(Command.WRITE, cookie, 0, len(data)) + data
        for cookie, data in enumerate(payloads, 1)
    )
    got: list[tuple[int, bytes]] = []
    pos, turn = 0, 0
    while pos < len(stream):
        step = cuts[turn % len(cuts)]
        for event in conn.receive_data(stream[pos : pos + step]):
            assert isinstance(event, Request)
            got.append((event.cookie, bytes(event.data)))
        pos, turn = pos + step, turn + 1
    assert got == list(enumerate(payloads, 1))


def test_a_payload_does_not_change_when_the_callers_buffer_does() -> None:
    conn = transmitting()
    fed = bytearray(request(Command.WRITE, 1, 0, 4) + b"abcd")
    (event,) = conn.receive_data(fed)
    fed[-4:] = b"XXXX"
    assert isinstance(event, Request) and bytes(event.data) == b"abcd"
