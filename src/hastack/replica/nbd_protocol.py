"""The NBD protocol, server side, sans-IO (NetworkBlockDevice's doc/proto.md, fixed newstyle).

`ServerConnection` is one client connection's state machine. The shell feeds it the bytes that
arrived (`receive_data`, with b"" for end of file), sends what `data_to_send` returns, executes
each `Request` event against its backend and hands the outcome back with `complete`. The core
never touches a socket or a file: it decides what the client may do, answers what it can answer
by itself (option negotiation, invalid requests, requests during shutdown) and frames every reply.

Only simple replies are spoken (structured replies are optional in the protocol and are refused
with NBD_REP_ERR_UNSUP), which keeps READ replies one header plus the data.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag

__all__ = [
    "Closed",
    "Command",
    "CommandFlag",
    "Event",
    "ExportInfo",
    "HandshakeFlag",
    "InfoType",
    "NBDError",
    "Negotiated",
    "Option",
    "Reply",
    "Request",
    "ServerConnection",
    "TransmissionFlag",
    "error_from_errno",
]

NBDMAGIC = 0x4E42444D41474943  # "NBDMAGIC"
IHAVEOPT = 0x49484156454F5054  # "IHAVEOPT"
OPTION_REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

DEFAULT_BLOCK_MIN = 1
DEFAULT_BLOCK_PREFERRED = 4096
DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024
# An option carries at most a name (a string is at most 4096 bytes in proto.md) plus a few
# fields; anything much larger is skipped without buffering and answered NBD_REP_ERR_TOO_BIG.
DEFAULT_MAX_OPTION_LENGTH = 16 * 1024
MAX_STRING = 4096
DEFAULT_MAX_IN_FLIGHT = 16
# Bytes of READ/WRITE payload the connection may hold at once; a request larger than what is
# left waits for earlier ones to finish (one request is always admitted, so nothing deadlocks).
DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024


class HandshakeFlag(IntFlag):
    FIXED_NEWSTYLE = 1 << 0
    NO_ZEROES = 1 << 1


class ClientFlag(IntFlag):
    C_FIXED_NEWSTYLE = 1 << 0
    C_NO_ZEROES = 1 << 1


class Option(IntEnum):
    EXPORT_NAME = 1
    ABORT = 2
    LIST = 3
    PEEK_EXPORT = 4
    STARTTLS = 5
    INFO = 6
    GO = 7
    STRUCTURED_REPLY = 8
    LIST_META_CONTEXT = 9
    SET_META_CONTEXT = 10
    EXTENDED_HEADERS = 11


_ERR = 1 << 31


class Reply(IntEnum):
    ACK = 1
    SERVER = 2
    INFO = 3
    META_CONTEXT = 4
    ERR_UNSUP = _ERR | 1
    ERR_POLICY = _ERR | 2
    ERR_INVALID = _ERR | 3
    ERR_PLATFORM = _ERR | 4
    ERR_TLS_REQD = _ERR | 5
    ERR_UNKNOWN = _ERR | 6
    ERR_SHUTDOWN = _ERR | 7
    ERR_BLOCK_SIZE_REQD = _ERR | 8
    ERR_TOO_BIG = _ERR | 9


class InfoType(IntEnum):
    EXPORT = 0
    NAME = 1
    DESCRIPTION = 2
    BLOCK_SIZE = 3


class TransmissionFlag(IntFlag):
    HAS_FLAGS = 1 << 0
    READ_ONLY = 1 << 1
    SEND_FLUSH = 1 << 2
    SEND_FUA = 1 << 3
    ROTATIONAL = 1 << 4
    SEND_TRIM = 1 << 5
    SEND_WRITE_ZEROES = 1 << 6
    SEND_DF = 1 << 7
    CAN_MULTI_CONN = 1 << 8


class Command(IntEnum):
    READ = 0
    WRITE = 1
    DISC = 2
    FLUSH = 3
    TRIM = 4
    CACHE = 5
    WRITE_ZEROES = 6
    BLOCK_STATUS = 7


class CommandFlag(IntFlag):
    FUA = 1 << 0
    NO_HOLE = 1 << 1
    DF = 1 << 2
    REQ_ONE = 1 << 3
    FAST_ZERO = 1 << 4


class NBDError(IntEnum):
    """The error values of the wire (they are Linux errno values, but fixed by the protocol)."""

    OK = 0
    EPERM = 1
    EIO = 5
    ENOMEM = 12
    EINVAL = 22
    ENOSPC = 28
    EOVERFLOW = 75
    ENOTSUP = 95
    ESHUTDOWN = 108


_ERRNO_TO_NBD = {
    errno.EPERM: NBDError.EPERM,
    errno.EACCES: NBDError.EPERM,
    errno.EROFS: NBDError.EPERM,
    errno.EIO: NBDError.EIO,
    errno.ENOMEM: NBDError.ENOMEM,
    errno.EINVAL: NBDError.EINVAL,
    errno.ENOSPC: NBDError.ENOSPC,
    errno.EDQUOT: NBDError.ENOSPC,
    errno.EFBIG: NBDError.ENOSPC,
    errno.EOVERFLOW: NBDError.EOVERFLOW,
    errno.EOPNOTSUPP: NBDError.ENOTSUP,
    errno.ESHUTDOWN: NBDError.ESHUTDOWN,
}


def error_from_errno(value: int | None) -> NBDError:
    """The wire error for a local errno; anything the protocol has no name for is EIO."""
    return _ERRNO_TO_NBD.get(value or errno.EIO, NBDError.EIO)


# What a request needs to be checked: which commands write, and which flags each accepts.
_WRITING = frozenset({Command.WRITE, Command.TRIM, Command.WRITE_ZEROES})
_ALLOWED_FLAGS = {
    # FUA is valid on every command once SEND_FUA is advertised (proto.md: the server MUST
    # accept it, even by ignoring it); NO_HOLE only means something to WRITE_ZEROES.
    # Plain ints, as the request parser compares them with the wire's on every request.
    int(Command.READ): int(CommandFlag.FUA),
    int(Command.WRITE): int(CommandFlag.FUA),
    int(Command.FLUSH): int(CommandFlag.FUA),
    int(Command.TRIM): int(CommandFlag.FUA),
    int(Command.WRITE_ZEROES): int(CommandFlag.FUA | CommandFlag.NO_HOLE),
}
_FUA, _NO_HOLE = int(CommandFlag.FUA), int(CommandFlag.NO_HOLE)
# The enum members of the wire's values, found without calling the enum (slow, per request);
# the flag sets are those _check lets through.
_COMMANDS = {int(c): c for c in Command}
_FLAG_SETS = {v: CommandFlag(v) for v in range((_FUA | _NO_HOLE) + 1)}

_OPTION_HEADER = struct.Struct(">QII")
_OPTION_REPLY = struct.Struct(">QIII")
_REQUEST = struct.Struct(">IHHQQI")
_SIMPLE_REPLY = struct.Struct(">IIQ")


@dataclass(frozen=True)
class ExportInfo:
    """What the client is told about one export; the shell builds it from its backend."""

    name: str
    size: int
    read_only: bool = False
    # Not served at all (a Secondary whose policy is to refuse): absent from LIST, GO fails.
    refused: bool = False
    description: str = ""
    # Safe when every connection reaches the same backend and a FLUSH on one covers writes
    # completed on all (true for one file/device flushed with fdatasync).
    multi_conn: bool = True

    def transmission_flags(self) -> TransmissionFlag:
        flags = (
            TransmissionFlag.HAS_FLAGS
            | TransmissionFlag.SEND_FLUSH
            | TransmissionFlag.SEND_FUA
            | TransmissionFlag.SEND_TRIM
            | TransmissionFlag.SEND_WRITE_ZEROES
        )
        if self.read_only:
            flags |= TransmissionFlag.READ_ONLY
        if self.multi_conn:
            flags |= TransmissionFlag.CAN_MULTI_CONN
        return flags


@dataclass(frozen=True)
class Negotiated:
    """The handshake is over: transmission on `export` starts."""

    export: ExportInfo


@dataclass(frozen=True)
class Request:
    """A valid request the backend must execute; answer it with `ServerConnection.complete`."""

    cookie: int
    command: Command
    flags: CommandFlag
    offset: int
    length: int
    # A WRITE's payload: often a read-only view of the bytes the shell fed (not a copy).
    data: bytes | memoryview = b""

    # int's own `&`: IntFlag's, written in Python, costs a microsecond per request.
    @property
    def fua(self) -> bool:
        return bool(int.__and__(self.flags, _FUA))

    @property
    def no_hole(self) -> bool:
        return bool(int.__and__(self.flags, _NO_HOLE))


@dataclass(frozen=True)
class Closed:
    """The connection is over. `clean`: the client ended it (DISC, ABORT, EOF between
    messages); otherwise `reason` says which protocol violation ended it. Requests already
    handed out may still be completed: their replies are framed while the transport lives."""

    reason: str
    clean: bool


Event = Negotiated | Request | Closed


@dataclass
class _InFlight:
    command: Command
    length: int
    cost: int


class _Phase(IntEnum):
    CLIENT_FLAGS = 0
    OPTIONS = 1
    TRANSMISSION = 2
    CLOSED = 3


@dataclass
class _Skip:
    """Bytes to discard unbuffered (an over-size option or WRITE), then the answer to give."""

    remaining: int
    option: int | None = None  # the option to answer ERR_TOO_BIG
    cookie: int | None = None  # the WRITE to answer EOVERFLOW


class ServerConnection:
    """One NBD client connection, server side, from greeting to close."""

    def __init__(
        self,
        exports: Mapping[str, ExportInfo],
        *,
        default_export: str | None = None,
        block_min: int = DEFAULT_BLOCK_MIN,
        block_preferred: int = DEFAULT_BLOCK_PREFERRED,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_option_length: int = DEFAULT_MAX_OPTION_LENGTH,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_in_flight_bytes: int = DEFAULT_MAX_IN_FLIGHT_BYTES,
    ) -> None:
        if block_min not in (1, 512):
            raise ValueError("block_min must be 1 or 512")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        # The shell may replace `exports` between calls (a role change shows on the next option).
        self.exports: Mapping[str, ExportInfo] = exports
        self.default_export = default_export
        self.block_min = block_min
        self.block_preferred = block_preferred
        self.max_payload = max_payload
        self.max_option_length = max_option_length
        self.max_in_flight = max_in_flight
        self.max_in_flight_bytes = max_in_flight_bytes
        self.export: ExportInfo | None = None
        self._phase = _Phase.CLIENT_FLAGS
        # What is unparsed starts at _pos, in immutable bytes: the caller's own while nothing
        # was left over from before, so a WRITE's payload is a view, not a copy. Data that
        # cannot complete the message under way waits in _parts (as received, uncopied) until
        # _need bytes are there; then it is joined once. A 1 MiB WRITE arriving in pieces is
        # copied once, not once per piece.
        self._buf = b""
        self._pos = 0
        self._parts: list[bytes] = []
        self._parts_len = 0
        self._need = 0
        self._eof = False
        self._out = bytearray()
        self._no_zeroes = False
        self._shutting_down = False
        self._skip: _Skip | None = None
        self._in_flight: dict[int, list[_InFlight]] = {}
        self._in_flight_count = 0
        self._in_flight_bytes = 0
        self._paused = False
        self._held = False  # the limit left requests in the buffer: next_events has work
        self._out += struct.pack(
            ">QQH", NBDMAGIC, IHAVEOPT, HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES
        )

    # ---- the shell's interface -------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._phase is _Phase.CLOSED

    @property
    def in_transmission(self) -> bool:
        return self._phase is _Phase.TRANSMISSION

    @property
    def in_flight(self) -> int:
        return self._in_flight_count

    @property
    def held_back(self) -> bool:
        """The in-flight limit left requests in the buffer: call `next_events` once one of
        them completed (`want_read` alone does not say it: a completion clears it)."""
        return self._held and not self.closed

    @property
    def want_read(self) -> bool:
        """False while the in-flight limit holds requests back: the shell should stop reading
        (so a client cannot make the server buffer without bound) until `complete` frees one."""
        return not self._paused and not self.closed

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the client; b"" means end of file."""
        if self.closed:
            return []
        if not data:
            self._eof = True
            self._join()
        elif self._pos == len(self._buf) and not self._parts:
            self._buf, self._pos = bytes(data), 0
        else:
            self._parts.append(bytes(data))
            self._parts_len += len(data)
            if self._available() + self._parts_len < self._need:
                return []  # the message under way is not whole yet
            self._join()
        return self._process()

    def _join(self) -> None:
        """What is unparsed and what waits in _parts, as one buffer (one copy)."""
        if self._parts:
            self._buf = b"".join([memoryview(self._buf)[self._pos :], *self._parts])
            self._pos = 0
            self._parts.clear()
            self._parts_len = 0

    def next_events(self) -> list[Event]:
        """Events held back by the in-flight limit; call after `complete`."""
        if self.closed:
            return []
        self._join()  # what came while the limit held requests back
        return self._process()

    def complete(self, cookie: int, error: int = NBDError.OK, data: bytes = b"") -> None:
        """Answer a `Request`. `data`: a successful READ's bytes (exactly its length)."""
        pending = self._in_flight.get(cookie)
        if not pending:
            raise KeyError(f"no request in flight with cookie {cookie:#x}")
        item = pending.pop(0)
        if not pending:
            del self._in_flight[cookie]
        self._in_flight_count -= 1
        self._in_flight_bytes -= item.cost
        self._paused = False
        if item.command is Command.READ and error == NBDError.OK:
            if len(data) != item.length:
                raise ValueError(f"READ reply of {len(data)} bytes for {item.length} requested")
            self._reply(cookie, NBDError.OK, data)
        else:
            self._reply(cookie, error)

    def shutdown(self) -> None:
        """The server is stopping: answer new options ERR_SHUTDOWN and new requests ESHUTDOWN;
        requests already handed out still complete normally."""
        self._shutting_down = True

    # ---- parsing ---------------------------------------------------------------------------

    def _process(self) -> list[Event]:
        events: list[Event] = []
        self._need = 0
        self._held = False
        while not self.closed:
            if self._skip is not None:
                if not self._skipping():
                    break
                continue
            if self._phase is _Phase.CLIENT_FLAGS:
                progressed = self._client_flags(events)
            elif self._phase is _Phase.OPTIONS:
                progressed = self._option(events)
            else:
                progressed = self._request(events)
            if not progressed:
                break
        if self._eof and not self.closed and not self._paused:
            if self._available() or self._skip is not None:
                self._close(events, "connection closed in the middle of a message", clean=False)
            elif self._phase is _Phase.TRANSMISSION:
                # proto.md: a client that just closes is treated as if it had sent NBD_CMD_DISC.
                self._close(events, "client closed the connection", clean=True)
            else:
                self._close(events, "client closed the connection during the handshake", False)
        return events

    def _available(self) -> int:
        return len(self._buf) - self._pos

    def _take(self, n: int) -> bytes:
        data = self._buf[self._pos : self._pos + n]
        self._pos += n
        return data

    def _take_payload(self, n: int) -> memoryview:
        """A WRITE's payload: a view of the (immutable) buffer, not a copy."""
        data = memoryview(self._buf)[self._pos : self._pos + n]
        self._pos += n
        return data

    def _close(self, events: list[Event], reason: str, clean: bool) -> None:
        self._phase = _Phase.CLOSED
        self._buf = b""
        self._pos = 0
        self._parts.clear()
        self._parts_len = 0
        self._skip = None
        events.append(Closed(reason, clean))

    def _skipping(self) -> bool:
        skip = self._skip
        assert skip is not None
        n = min(skip.remaining, self._available())
        self._pos += n
        skip.remaining -= n
        if skip.remaining:
            return False
        self._skip = None
        if skip.option is not None:
            self._option_error(skip.option, Reply.ERR_TOO_BIG, "option data too long")
        elif skip.cookie is not None:
            self._reply(skip.cookie, NBDError.EOVERFLOW)
        return True

    def _client_flags(self, events: list[Event]) -> bool:
        if self._available() < 4:
            return False
        (flags,) = struct.unpack(">I", self._take(4))
        if flags & ~(ClientFlag.C_FIXED_NEWSTYLE | ClientFlag.C_NO_ZEROES):
            # proto.md: unknown client flags mean the server MUST close.
            self._close(events, f"unknown client flags {flags:#x}", clean=False)
            return True
        if not flags & ClientFlag.C_FIXED_NEWSTYLE:
            # Without fixed newstyle the client cannot read error replies to options; such
            # clients predate 2012 and the protocol lets a server refuse them.
            self._close(events, "client does not speak fixed newstyle", clean=False)
            return True
        self._no_zeroes = bool(flags & ClientFlag.C_NO_ZEROES)
        self._phase = _Phase.OPTIONS
        return True

    def _option(self, events: list[Event]) -> bool:
        if self._available() < _OPTION_HEADER.size:
            return False
        magic, option, length = _OPTION_HEADER.unpack_from(self._buf, self._pos)
        if magic != IHAVEOPT:
            self._close(events, f"bad option magic {magic:#x}", clean=False)
            return True
        if length > self.max_option_length:
            self._pos += _OPTION_HEADER.size
            if option == Option.EXPORT_NAME:
                # EXPORT_NAME has no error reply: the only answer is to close.
                self._close(events, "export name too long", clean=False)
            else:
                self._skip = _Skip(length, option=option)
            return True
        if self._available() < _OPTION_HEADER.size + length:
            return False
        self._pos += _OPTION_HEADER.size
        data = self._take(length)
        self._handle_option(events, option, data)
        return True

    def _handle_option(self, events: list[Event], option: int, data: bytes) -> None:
        if option == Option.ABORT:
            # proto.md: the server SHOULD reply ACK, then close.
            self._option_reply(option, Reply.ACK)
            self._close(events, "client aborted the handshake", clean=True)
            return
        if self._shutting_down:
            if option == Option.EXPORT_NAME:
                self._close(events, "server is shutting down", clean=False)
            else:
                self._option_error(option, Reply.ERR_SHUTDOWN, "server is shutting down")
            return
        if option == Option.EXPORT_NAME:
            self._export_name(events, data)
        elif option == Option.LIST:
            if data:
                self._option_error(option, Reply.ERR_INVALID, "NBD_OPT_LIST takes no data")
                return
            for info in self.exports.values():
                if info.refused:
                    continue
                name = info.name.encode()
                self._option_reply(option, Reply.SERVER, struct.pack(">I", len(name)) + name)
            self._option_reply(option, Reply.ACK)
        elif option in (Option.INFO, Option.GO):
            self._info_or_go(events, option, data)
        else:
            # STRUCTURED_REPLY, STARTTLS, meta contexts, extended headers and anything unknown:
            # simple replies without TLS are a complete protocol.
            self._option_error(option, Reply.ERR_UNSUP, "option not supported")

    def _lookup(self, name: str) -> ExportInfo | None:
        if name == "" and self.default_export is not None:
            name = self.default_export
        info = self.exports.get(name)
        if info is None or info.refused:
            return None
        return info

    def _export_name(self, events: list[Event], data: bytes) -> None:
        name = _decode_string(data)
        info = None if name is None else self._lookup(name)
        if info is None:
            # EXPORT_NAME cannot be answered with an error: proto.md says close.
            self._close(events, f"unknown export {data[:64]!r}", clean=False)
            return
        self._out += struct.pack(">QH", info.size, info.transmission_flags())
        if not self._no_zeroes:
            self._out += bytes(124)
        self._enter_transmission(events, info)

    def _info_or_go(self, events: list[Event], option: int, data: bytes) -> None:
        if len(data) < 6:
            self._option_error(option, Reply.ERR_INVALID, "option data too short")
            return
        (name_length,) = struct.unpack_from(">I", data)
        if name_length > len(data) - 6 or name_length > MAX_STRING:
            self._option_error(option, Reply.ERR_INVALID, "export name length out of range")
            return
        name = _decode_string(data[4 : 4 + name_length])
        (count,) = struct.unpack_from(">H", data, 4 + name_length)
        rest = data[6 + name_length :]
        if len(rest) != 2 * count:
            self._option_error(option, Reply.ERR_INVALID, "information request count mismatch")
            return
        if name is None:
            self._option_error(option, Reply.ERR_INVALID, "export name is not valid UTF-8")
            return
        requests = struct.unpack(f">{count}H", rest)
        info = self._lookup(name)
        if info is None:
            self._option_error(option, Reply.ERR_UNKNOWN, f"export {name!r} is not available")
            return
        self._info(
            option, InfoType.EXPORT, struct.pack(">QH", info.size, info.transmission_flags())
        )
        if InfoType.NAME in requests:
            self._info(option, InfoType.NAME, info.name.encode())
        if InfoType.DESCRIPTION in requests and info.description:
            self._info(option, InfoType.DESCRIPTION, info.description.encode())
        # Sent even when not asked for: with a minimum of 1 it constrains nothing, and with
        # 512 a client that ignores it gets EINVAL on misaligned requests, which it must handle.
        self._info(
            option,
            InfoType.BLOCK_SIZE,
            struct.pack(">III", self.block_min, self.block_preferred, self.max_payload),
        )
        self._option_reply(option, Reply.ACK)
        if option == Option.GO:
            self._enter_transmission(events, info)

    def _enter_transmission(self, events: list[Event], info: ExportInfo) -> None:
        self.export = info
        self._phase = _Phase.TRANSMISSION
        events.append(Negotiated(info))

    def _request(self, events: list[Event]) -> bool:
        if self._available() < _REQUEST.size:
            return False
        magic, flags, kind, cookie, offset, length = _REQUEST.unpack_from(self._buf, self._pos)
        if magic != REQUEST_MAGIC:
            self._close(events, f"bad request magic {magic:#x}", clean=False)
            return True
        if kind == Command.DISC:
            self._pos += _REQUEST.size
            self._close(events, "client sent NBD_CMD_DISC", clean=True)
            return True
        has_payload = kind == Command.WRITE
        if has_payload and length > self.max_payload:
            # Skip the payload without buffering it, then answer; the stream stays in sync.
            self._pos += _REQUEST.size
            self._skip = _Skip(length, cookie=cookie)
            return True
        error = self._check(kind, flags, offset, length)
        cost = length if kind in (Command.READ, Command.WRITE) else 0
        goes_to_backend = error == NBDError.OK and (length or kind == Command.FLUSH)
        if goes_to_backend and not self._admit(cost):
            # Leave the request in the buffer; `want_read` turns False until one completes.
            self._paused = self._held = True
            return False
        if has_payload and self._available() < _REQUEST.size + length:
            self._need = _REQUEST.size + length  # receive_data waits for it without copying
            return False
        self._pos += _REQUEST.size
        data = self._take_payload(length) if has_payload else b""
        if error != NBDError.OK:
            self._reply(cookie, error)
            return True
        command = _COMMANDS[kind]
        if length == 0 and command is not Command.FLUSH:
            # Nothing to do; answering here keeps zero-length requests away from backends.
            self._reply(cookie, NBDError.OK)
            return True
        self._in_flight.setdefault(cookie, []).append(_InFlight(command, length, cost))
        self._in_flight_count += 1
        self._in_flight_bytes += cost
        events.append(Request(cookie, command, _FLAG_SETS[flags], offset, length, data))
        return True

    def _admit(self, cost: int) -> bool:
        if self._in_flight_count >= self.max_in_flight:
            return False
        # One request is always admitted, however large, so a big one cannot wait forever.
        return not self._in_flight_count or self._in_flight_bytes + cost <= self.max_in_flight_bytes

    def _check(self, kind: int, flags: int, offset: int, length: int) -> NBDError:
        """The error for a request the backend must never see, or OK."""
        export = self.export
        assert export is not None
        if self._shutting_down:
            return NBDError.ESHUTDOWN
        allowed = _ALLOWED_FLAGS.get(kind)
        if allowed is None or flags & ~allowed:
            return NBDError.EINVAL
        if kind == Command.FLUSH:
            return NBDError.OK
        if kind in _WRITING and export.read_only:
            return NBDError.EPERM
        if kind == Command.READ and length > self.max_payload:
            return NBDError.EOVERFLOW
        if self.block_min > 1 and (offset % self.block_min or length % self.block_min):
            return NBDError.EINVAL
        if offset + length > export.size:
            # proto.md: writing past the end is ENOSPC, reading (or trimming) past it EINVAL.
            if kind in (Command.WRITE, Command.WRITE_ZEROES):
                return NBDError.ENOSPC
            return NBDError.EINVAL
        return NBDError.OK

    # ---- framing ---------------------------------------------------------------------------

    def _reply(self, cookie: int, error: int, data: bytes = b"") -> None:
        self._out += _SIMPLE_REPLY.pack(SIMPLE_REPLY_MAGIC, error, cookie)
        self._out += data

    def _option_reply(self, option: int, reply: Reply, data: bytes = b"") -> None:
        self._out += _OPTION_REPLY.pack(OPTION_REPLY_MAGIC, option, reply, len(data))
        self._out += data

    def _option_error(self, option: int, reply: Reply, message: str) -> None:
        self._option_reply(option, reply, message.encode())

    def _info(self, option: int, kind: InfoType, payload: bytes) -> None:
        self._option_reply(option, Reply.INFO, struct.pack(">H", kind) + payload)


def _decode_string(data: bytes) -> str | None:
    """A protocol string: UTF-8, no NUL, at most 4096 bytes; None if it is not one."""
    if len(data) > MAX_STRING or b"\0" in data:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None
