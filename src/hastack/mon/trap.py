"""mon's trap format: the UDP datagram a remote monitor (or mon server) sends to report a
service's state, as Mon::Client's send_trap writes it and mon 1.3's handle_trap reads it.

A trap is lines of ``tag='value'``: a tag of word characters, ``=``, the value between single
quotes (mon also takes it without quotes). Values are hex-escaped: every byte <= 32 or > 126
and both quote characters become ``\\xx`` (two lowercase hex digits). The tags mon knows::

    pro  protocol version (mon 1.3 refuses traps older than 0.3807)
    usr  user name, pas  password (checked against the trap section of auth.cf)
    typ  type ("trap" from Mon::Client)
    spc  the operational status, as a number (STAT_FAIL=0, STAT_OK=1, ...; mon ignores it)
    seq  sequence (always 0)
    grp  watch (hostgroup), svc  service, hst  host
    sta  the "exit value": 0 is success, anything else a failure
    tsp  timestamp, time(2) seconds
    sum  summary line, dtl  detail

Other word tags (aut, the SNMP ones, ...) are kept, in order, in ``Trap.extra``.

Pure functions, no I/O: :func:`encode_trap` and :func:`decode_trap`. Checking usr/pas against
auth.cf's trap section is :meth:`hastack.mon.auth.AuthTable.trap_allowed`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PROTOCOL_VERSION = "0.3807"  # what Mon::Client sends and the oldest mon 1.3 accepts
MIN_PROTOCOL_VERSION = 0.3807
MAX_TRAP = 65536  # mon reads at most this many bytes of a datagram

# Operational statuses (the numbers of Mon::Client's %OPSTAT and mon's _op_status).
OPSTATUS: dict[str, int] = {
    "fail": 0,
    "ok": 1,
    "coldstart": 2,
    "warmstart": 3,
    "linkdown": 4,
    "unknown": 5,
    "timeout": 6,
    "untested": 7,
    "dependency": 8,
    "warn": 9,
}
STAT_FAIL = OPSTATUS["fail"]
STAT_OK = OPSTATUS["ok"]

_LINE = re.compile(rb"^(\w+)=(.*)$", re.ASCII | re.DOTALL)
_NUMBER_PREFIX = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)")
_INTEGER = re.compile(r"[0-9]+")
_KNOWN_ALL = frozenset(
    {"pro", "usr", "pas", "typ", "spc", "seq", "grp", "svc", "hst", "sta", "tsp", "sum", "dtl"}
)


class TrapError(ValueError):
    """A datagram that is not a trap mon would accept; the message says what is wrong."""


@dataclass(frozen=True)
class Trap:
    grp: str  # the watch (hostgroup); "" when the trap named none
    svc: str  # the service; "" when the trap named none
    sta: int  # the exit value: 0 success, else failure
    sum: str = ""
    dtl: str = ""
    spc: int | None = None  # operational status; None: STAT_OK when sta is 0, else STAT_FAIL
    hst: str | None = None
    usr: str = ""
    pas: str = field(default="", repr=False)  # kept out of logs
    typ: str = "trap"
    seq: int = 0
    tsp: int | None = None  # None: not sent (Mon::Client always sends it)
    pro: str = PROTOCOL_VERSION
    extra: tuple[tuple[str, str], ...] = field(default=())  # other tags, in order

    def __post_init__(self) -> None:
        if self.spc is None:
            object.__setattr__(self, "spc", STAT_OK if self.sta == 0 else STAT_FAIL)

    def monitor_output(self) -> str:
        """The output mon's handle_trap hands on as if a monitor had printed it: the summary
        (with a newline added when it has none), a newline, then the detail."""
        summary = self.sum if self.sum.endswith("\n") else self.sum + "\n"
        return f"{summary}\n{self.dtl}"


def _escape(value: str) -> bytes:
    out = bytearray()
    for byte in value.encode("utf-8", "surrogateescape"):
        # A backslash is hex-escaped too (Mon::Client writes "\\", which mon's own decoder
        # leaves doubled): "\5c" means one backslash to every reader.
        if byte <= 32 or byte > 126 or byte in b"\"'\\":
            out += b"\\%02x" % byte
        else:
            out.append(byte)
    return bytes(out)


def _unescape(raw: bytes) -> str:
    out = bytearray()
    i = 0
    hexdigits = b"0123456789abcdef"  # lowercase only, as mon's decoder
    while i < len(raw):
        byte = raw[i]
        if byte == 0x5C:
            pair = raw[i + 1 : i + 3]
            if len(pair) == 2 and pair[0] in hexdigits and pair[1] in hexdigits:
                out.append(int(pair, 16))
                i += 3
                continue
            if pair[:1] == b"\\":  # Mon::Client's escaped backslash
                out.append(0x5C)
                i += 2
                continue
        out.append(byte)
        i += 1
    return out.decode("utf-8", "surrogateescape")


def encode_trap(trap: Trap) -> bytes:
    """The datagram for `trap`, laid out as Mon::Client's send_trap lays it out (spc twice
    included), so that captures of both compare byte for byte."""

    def line(tag: str, value: str) -> bytes:
        return tag.encode() + b"='" + _escape(value) + b"'\n"

    for tag, _value in trap.extra:
        if not re.fullmatch(r"\w+", tag, re.ASCII) or tag in _KNOWN_ALL:
            raise TrapError(f"extra tag {tag!r}: must be word characters and not a mon tag")
    if trap.sta < 0:
        raise TrapError(f"sta {trap.sta}: the exit value must be a nonnegative integer")
    spc = str(trap.spc)
    parts = [line("pro", trap.pro), line("usr", trap.usr)]
    if trap.usr or trap.pas:
        parts.append(line("pas", trap.pas))
    parts += [
        line("spc", spc),
        line("seq", str(trap.seq)),
        line("typ", trap.typ),
        line("grp", trap.grp),
        line("svc", trap.svc),
    ]
    if trap.hst is not None:
        parts.append(line("hst", trap.hst))
    parts += [line("sta", str(trap.sta)), line("spc", spc)]
    if trap.tsp is not None:
        parts.append(line("tsp", str(trap.tsp)))
    parts += [line("sum", trap.sum), line("dtl", trap.dtl)]
    parts += [line(tag, value) for tag, value in trap.extra]
    return b"".join(parts)


def _integer(tags: dict[str, str], tag: str, what: str) -> int | None:
    text = tags.get(tag)
    if text is None:
        return None
    if not _INTEGER.fullmatch(text):
        raise TrapError(f"{tag}={text!r}: {what} must be a nonnegative integer")
    return int(text)


def decode_trap(data: bytes) -> Trap:
    """Read a trap datagram as mon 1.3 does; raise TrapError naming the problem when mon would
    refuse it (no protocol version or one older than 0.3807, no sta) or when a line is not
    ``tag=value`` (mon logs and skips such a line; a datagram with one is refused here)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TrapError(f"a trap is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_TRAP:
        raise TrapError(f"trap of {len(data)} bytes: mon reads at most {MAX_TRAP}")
    if not data.strip(b"\n"):
        raise TrapError("empty trap")
    tags: dict[str, str] = {}
    extra: dict[str, str] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw:
            continue  # the last newline, or a blank line
        match = _LINE.match(raw)
        if match is None:
            shown = raw[:60].decode("ascii", "backslashreplace")
            raise TrapError(f"line {number} {shown!r} is not tag=value")
        tag = match.group(1).decode("ascii")
        value = match.group(2)
        if len(value) >= 2 and value.startswith(b"'") and value.endswith(b"'"):
            value = value[1:-1]
        text = _unescape(value)
        if tag in _KNOWN_ALL:
            tags[tag] = text  # a repeated tag: the last one counts, as in mon
        else:
            extra[tag] = text
    pro = tags.get("pro")
    if pro is None:
        raise TrapError("no pro= (protocol version) tag")
    version = _NUMBER_PREFIX.match(pro)  # Perl's numeric reading: a leading number
    if version is None or float(version.group(0)) < MIN_PROTOCOL_VERSION:
        raise TrapError(f"pro={pro!r}: mon refuses traps older than {PROTOCOL_VERSION}")
    sta = _integer(tags, "sta", "the exit value sta")
    if sta is None:
        raise TrapError("no sta= (exit value) tag")
    seq = _integer(tags, "seq", "the sequence seq")
    return Trap(
        grp=tags.get("grp", ""),
        svc=tags.get("svc", ""),
        sta=sta,
        sum=tags.get("sum", ""),
        dtl=tags.get("dtl", ""),
        spc=_integer(tags, "spc", "the operational status spc"),
        hst=tags.get("hst"),
        usr=tags.get("usr", ""),
        pas=tags.get("pas", ""),
        typ=tags.get("typ", "trap"),
        seq=0 if seq is None else seq,
        tsp=_integer(tags, "tsp", "the timestamp tsp"),
        pro=pro,
        extra=tuple(extra.items()),
    )
