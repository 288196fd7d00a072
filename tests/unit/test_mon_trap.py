"""mon's trap datagrams: encode/decode round trip, what mon refuses, and the real Perl
Mon::Client (send_trap over UDP to a socket of the test) as the reference encoder."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.mon.trap import (
    STAT_FAIL,
    STAT_OK,
    Trap,
    TrapError,
    decode_trap,
    encode_trap,
)

# ------------------------------------------------------------------ round trip and format

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
trap_strategy = st.builds(
    Trap,
    grp=text,
    svc=text,
    sta=st.integers(0, 255),
    sum=text,
    dtl=text,
    spc=st.integers(0, 9),
    hst=st.none() | text,
    usr=text,
    pas=text,
    typ=text,
    seq=st.integers(0, 2**31),
    tsp=st.none() | st.integers(0, 2**40),
    extra=st.lists(
        st.tuples(st.sampled_from(["aut", "ent", "agt", "vbl", "x_1"]), text),
        unique_by=lambda pair: pair[0],
        max_size=3,
    ).map(tuple),
)


@given(trap_strategy)
def test_round_trip(trap: Trap) -> None:
    assert decode_trap(encode_trap(trap)) == trap


@given(trap_strategy)
def test_encoding_is_printable_ascii_lines(trap: Trap) -> None:
    data = encode_trap(trap)
    for line in data.split(b"\n")[:-1]:
        tag, _, value = line.partition(b"=")
        assert tag.isalnum() or b"_" in tag
        assert value.startswith(b"'") and value.endswith(b"'")
        assert all(33 <= byte <= 126 for byte in value)
        assert b"'" not in value[1:-1]


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_decode_raises_only_trap_error(data: bytes) -> None:
    with contextlib.suppress(TrapError):
        decode_trap(data)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pro", "sta", "spc", "grp", "sum", "tsp", "seq", "zz"]),
            st.binary(max_size=12),
        ),
        max_size=8,
    )
)
def test_decode_of_tag_lines_raises_only_trap_error(pairs: list[tuple[str, bytes]]) -> None:
    data = b"pro='0.3807'\n" + b"".join(t.encode() + b"=" + v + b"\n" for t, v in pairs)
    with contextlib.suppress(TrapError):
        decode_trap(data)


def test_spc_defaults_from_sta() -> None:
    assert Trap("g", "s", 0).spc == STAT_OK
    assert Trap("g", "s", 3).spc == STAT_FAIL


def test_escapes_and_quotes() -> None:
    data = encode_trap(Trap("g", "s", 1, sum="a b'c\"d\\e\n", dtl="é"))
    assert b"sum='a\\20b\\27c\\22d\\5ce\\0a'\n" in data
    assert b"dtl='\\c3\\a9'\n" in data


def test_decode_as_mon_reads_it() -> None:
    trap = decode_trap(
        b"pro=0.3807\nsta='2'\ngrp='w'\nsvc=s\nsum='x\\41y'\nspc='0'\nspc='1'\n"
        b"dtl='a\\\\b'\naut='k'\n"
    )
    assert (trap.grp, trap.svc, trap.sta, trap.spc) == ("w", "s", 2, 1)  # last spc counts
    assert trap.sum == "xAy"
    assert trap.dtl == "a\\b"  # Mon::Client's escaped backslash
    assert trap.extra == (("aut", "k"),)
    assert trap.tsp is None and trap.usr == "" and trap.hst is None
    assert trap.monitor_output() == "xAy\n\na\\b"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty trap"),
        (b"sta='1'\n", "no pro="),
        (b"pro='0.38'\nsta='1'\n", "older than 0.3807"),
        (b"pro='new'\nsta='1'\n", "older than 0.3807"),
        (b"pro='0.3807'\ngrp='g'\n", "no sta="),
        (b"pro='0.3807'\nsta='-1'\n", "sta='-1'"),
        (b"pro='0.3807'\nsta='1'\ntsp='soon'\n", "tsp='soon'"),
        (b"pro='0.3807'\nsta='1'\nnot a tag\n", "line 3 'not a tag' is not tag=value"),
    ],
)
def test_decode_refuses(data: bytes, message: str) -> None:
    with pytest.raises(TrapError, match=message.replace("(", r"\(")):
        decode_trap(data)


# ------------------------------------------------------------------ the real Mon::Client


def _have_mon_client() -> str | None:
    if shutil.which("perl") is None:
        return "perl is not installed"
    probe = subprocess.run(["perl", "-MMon::Client", "-e", "1"], capture_output=True)
    if probe.returncode != 0:
        return "Perl Mon::Client is not installed (Debian package mon-client)"
    return None


@pytest.fixture
def udp_socket() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


PERL_SEND = r"""
my ($port, $user, $pass, @rest) = @ARGV;
my $c = Mon::Client->new(host => "127.0.0.1", port => $port);
$c->username($user) if $user ne "";
$c->password($pass) if $pass ne "";
$c->send_trap(group => $rest[0], service => $rest[1], retval => $rest[2],
              opstatus => $rest[3], summary => $rest[4], detail => $rest[5])
    or die "send_trap: " . $c->error . "\n";
"""


def _perl_send(port: int, user: str, password: str, *fields: str) -> None:
    reason = _have_mon_client()
    if reason is not None:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    subprocess.run(
        ["perl", "-MMon::Client", "-e", PERL_SEND, str(port), user, password, *fields],
        check=True,
        timeout=10,
    )


def test_decodes_what_mon_client_sends(udp_socket: socket.socket) -> None:
    port = udp_socket.getsockname()[1]
    detail = "web1: connection refused\nweb2: timeout, 'quoted' \"too\" back\\slash é"
    _perl_send(port, "bob", "pa ss'word", "web farm", "http", "1", "fail", "web1 web2", detail)
    data, _ = udp_socket.recvfrom(65536)
    trap = decode_trap(data)
    assert trap.pro == "0.3807"
    assert trap.usr == "bob" and trap.pas == "pa ss'word"
    assert trap.typ == "trap" and trap.seq == 0
    assert (trap.grp, trap.svc) == ("web farm", "http")
    assert trap.sta == 1 and trap.spc == STAT_FAIL
    assert trap.sum == "web1 web2"
    assert trap.dtl == detail
    assert trap.tsp is not None and trap.tsp > 1_600_000_000
    assert trap.hst is None and trap.extra == ()


@pytest.mark.parametrize(
    ("user", "password", "retval", "opstatus"),
    [("", "", "0", "ok"), ("alice", "x y", "7", "timeout")],
)
def test_encoding_is_byte_identical_to_mon_client(
    udp_socket: socket.socket, user: str, password: str, retval: str, opstatus: str
) -> None:
    port = udp_socket.getsockname()[1]
    # every field but backslashes, which hastack escapes as \5c (see the module's docstring)
    summary, detail = "db1 db2 down", "db1: 'no answer'\n\"db2\": ~tab\there é\n"
    _perl_send(port, user, password, "grp-1", "mysql", retval, opstatus, summary, detail)
    theirs, _ = udp_socket.recvfrom(65536)
    from hastack.mon.trap import OPSTATUS

    ours = encode_trap(
        Trap(
            grp="grp-1",
            svc="mysql",
            sta=int(retval),
            spc=OPSTATUS[opstatus],
            sum=summary,
            dtl=detail,
            usr=user,
            pas=password,
            tsp=decode_trap(theirs).tsp,
        )
    )
    assert ours == theirs
