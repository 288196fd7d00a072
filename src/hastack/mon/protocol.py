"""mon 1.3's client protocol (TCP 2583), server side, sans-IO; and its client-side decoding.

A request is one line; the answer is zero or more data lines and one status line that starts
with a 2xx (done) or 5xx (refused, failed) code. `ClientSession.receive(line)` returns the
answer's lines (without line ends), mon's exact words included; `ClientSession.closed` says
when the connection is to be closed (after `quit` or `term`). The session reads and changes the
server only through `MonServerAPI`, which the mon daemon implements over its scheduler and
alert state; `serve_client` is the thin asyncio loop that feeds it a connection's lines.

Values that may hold anything (summaries, details, descriptions, comments) travel escaped as
mon's esc_str does it: every byte that is a control, a space, non-ASCII or a quote becomes
`\\xx` (two lower-case hex digits), and inside quoted values a backslash is doubled.
`unescape` is the exact inverse; `parse_opstatus_lines` decodes `list opstatus` output.

Where mon 1.3 has an outright bug (see docs/compat.md), hastack answers the sensible way: `ack`
on an unknown service stops after its 520; `list deps` applies the view to each service;
`list opstatus g,s ...` names the first missing service; `set` echoes the value escaped;
`set g s opstatus NAME` stores the numeric status; `disable host` accepts an already disabled
host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

log = logging.getLogger(__name__)

PROT_VERSION = 0x2611  # 9745: what Mon::Client sends as `protid 9745` on connect

# operational status codes (mon's _op_status values) and the classes `list failures`,
# `list successes` and `list warnings` select on
STAT_FAIL, STAT_OK, STAT_COLDSTART, STAT_WARMSTART, STAT_LINKDOWN = 0, 1, 2, 3, 4
STAT_UNKNOWN, STAT_TIMEOUT, STAT_UNTESTED, STAT_DEPEND, STAT_WARN = 5, 6, 7, 8, 9
FAILURE_STATES = frozenset({STAT_FAIL, STAT_LINKDOWN, STAT_TIMEOUT})
SUCCESS_STATES = frozenset({STAT_OK, STAT_COLDSTART, STAT_WARMSTART, STAT_UNKNOWN, STAT_UNTESTED})
WARNING_STATES = frozenset({STAT_COLDSTART, STAT_WARMSTART, STAT_UNKNOWN, STAT_WARN})
# the names `set GROUP SERVICE opstatus NAME` accepts
OPSTATUS_NAMES: Mapping[str, int] = {
    "fail": STAT_FAIL,
    "ok": STAT_OK,
    "coldstart": STAT_COLDSTART,
    "warmstart": STAT_WARMSTART,
    "linkdown": STAT_LINKDOWN,
    "unknown": STAT_UNKNOWN,
    "timeout": STAT_TIMEOUT,
    "untested": STAT_UNTESTED,
}

AlertKind = Literal["alert", "startupalert", "upalert", "ackalert", "disablealert"]
ALERT_KINDS: tuple[AlertKind, ...] = (
    "alert",
    "startupalert",
    "upalert",
    "ackalert",
    "disablealert",
)
Number = int | float


# --- what the server hands the session ------------------------------------------------------


@dataclass(frozen=True)
class OpStatus:
    """One service's state, every field `list opstatus` prints (mon's names), plus
    `description` and `disabled`, which other commands show. Times are epoch seconds; None
    prints as an empty value, as mon prints an undefined one."""

    group: str
    service: str
    opstatus: int = STAT_UNTESTED
    last_opstatus: int | None = STAT_UNTESTED
    exitval: int | str | None = "undef"  # mon's value before the first run
    timer: Number | None = None  # seconds until the next run
    last_success: Number | None = 0
    last_trap: Number | None = 0
    last_traphost: str | None = ""
    last_check: Number | None = None
    ack: Number | None = 0  # when acknowledged; 0: not acknowledged
    ackcomment: str = ""  # "user: text"; printed only while acknowledged
    alerts_sent: int = 0  # summed over the periods that count alerts
    depstatus: int | None = None
    depend: str = ""
    hostdepend: str = ""
    monitordepend: str = ""
    alertdepend: str = ""
    monitor: str = ""
    last_summary: str = ""
    last_detail: str = ""
    # printed only when set (mon appends them after last_detail, in this order)
    last_failure: Number | None = 0
    interval: Number | None = None  # None: a trap-only service (no monitor_* fields either)
    monitor_duration: Number = -1  # -1: no monitor has run yet
    monitor_running: bool = False
    exclude_period: str = ""
    exclude_hosts: tuple[str, ...] = ()
    randskew: Number = 0
    last_alert: Number = 0  # the latest alert over all periods
    first_failure: Number | None = 0  # with failure_duration = now - first_failure
    # not part of the opstatus line
    description: str = ""
    disabled: bool = False


@dataclass(frozen=True)
class Hostgroup:
    name: str
    hosts: tuple[str, ...]
    disabled: frozenset[str] = frozenset()  # disabled members (mon shows them as `*host`)

    def members(self) -> list[str]:
        return [f"*{h}" if h in self.disabled else h for h in self.hosts]


@dataclass(frozen=True)
class AlertHistEntry:
    """One alert sent: `list alerthist` prints `type group service time alert (args) summary`."""

    type: str  # "alert", "upalert", "startupalert", "ackalert", "disablealert", "trapalert"...
    group: str
    service: str
    time: Number
    alert: str
    args: str
    summary: str

    def line(self) -> str:
        return (
            f"{self.type} {self.group} {self.service} {num(self.time)} {self.alert} "
            f"({self.args}) {self.summary}"
        )


@dataclass(frozen=True)
class FailureHistEntry:
    """One failure: `list failurehist` prints `group service time summary`."""

    group: str
    service: str
    time: Number
    summary: str

    def line(self) -> str:
        return f"{self.group} {self.service} {num(self.time)} {self.summary}"


@dataclass(frozen=True)
class RunningMonitor:
    group: str
    service: str
    pid: int


class CommandError(Exception):
    """Raised by a MonServerAPI method to refuse an operation: the client gets `520 <str>`."""


class MonServerAPI(Protocol):
    """Everything the client commands need from the mon server. Queries must not change
    state; actions are called only for groups/services/periods the session has checked exist.
    Any method may raise CommandError to answer `520 <message>`."""

    # identity and clock
    def now(self) -> float: ...
    def pid(self) -> int: ...
    def hostname(self) -> str: ...

    # configuration and state queries
    def watches(self) -> Mapping[str, Sequence[str]]:
        """Watch group -> its service names, in configuration order."""
        ...

    def opstatus(self, group: str, service: str) -> OpStatus: ...
    def watch_disabled(self, group: str) -> bool: ...
    def hostgroups(self) -> Mapping[str, Hostgroup]: ...
    def views(self) -> Mapping[str, frozenset[str]]:
        """View name -> its members: watch group names and `group:service` names."""
        ...

    def aliases(self) -> Mapping[str, Sequence[str]]: ...
    def has_period(self, group: str, service: str, period: str) -> bool: ...
    def alert_history(self) -> Sequence[AlertHistEntry]: ...
    def failure_history(self) -> Sequence[FailureHistEntry]: ...
    def running_monitors(self) -> Sequence[RunningMonitor]: ...
    def stopped_since(self) -> Number | None:
        """When the scheduler was stopped, or None while it runs."""
        ...

    def dtlog(self) -> Sequence[str] | None:
        """The downtime log's lines, None when dtlogging is off; OSError if unreadable."""
        ...

    def maxkeep(self) -> int: ...
    def get_variable(self, group: str, service: str, var: str) -> str | None: ...

    # actions
    def reset(self, stopped: bool, keepstate: bool) -> bool:
        """Re-read the configuration; False when it has errors."""
        ...

    def reload_auth(self) -> None: ...
    def clear_timers(self, group: str, service: str) -> None: ...
    def test_monitor(self, group: str, service: str) -> None: ...
    def test_alert(
        self, kind: AlertKind, group: str, service: str, retval: str, period: str
    ) -> None: ...
    def test_config(self) -> str:
        """Check the configuration file: "" when it is fine, else the error text."""
        ...

    def load_state(self, what: str) -> None: ...
    def save_state(self, what: str) -> None: ...
    def term(self) -> None:
        """Schedule the server's exit: the `220 terminating server` line is written first."""
        ...

    def stop_scheduler(self) -> None: ...
    def start_scheduler(self) -> None: ...
    def set_maxkeep(self, value: int) -> None: ...
    def set_opstatus(self, group: str, service: str, status: int) -> None: ...
    def set_variable(self, group: str, service: str, var: str, value: str) -> None: ...
    def ack(self, group: str, service: str, comment: str) -> None:
        """Acknowledge a failure (comment: `user: text`) and send the ack alerts."""
        ...

    def disable_watch(self, group: str) -> None: ...
    def enable_watch(self, group: str) -> None: ...
    def disable_service(self, group: str, service: str, user: str | None) -> None:
        """Disable and send the disable alerts (their summary: the user)."""
        ...

    def enable_service(self, group: str, service: str) -> None: ...
    def disable_host(self, host: str) -> None: ...
    def enable_host(self, host: str) -> None: ...


class SessionAuth(Protocol):
    """hastack.mon.auth.Authenticator is the real one."""

    def allowed(self, command: str, user: str | None) -> bool: ...
    def login(self, user: str, password: str, peer: str) -> bool: ...


# --- escaping ------------------------------------------------------------------------------


def _to_bytes(text: str) -> bytes:
    # surrogateescape keeps bytes that arrived undecodable; surrogatepass keeps anything else
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def esc_str(value: str | None, inquotes: bool = False) -> str:
    """mon's esc_str over the UTF-8 bytes of `value`; None gives ""."""
    if value is None:
        return ""
    out = []
    for byte in _to_bytes(value):
        if byte <= 32 or byte > 126 or byte in (0x22, 0x27):
            out.append(f"\\{byte:02x}")
        elif inquotes and byte == 0x5C:
            out.append("\\\\")
        else:
            out.append(chr(byte))
    return "".join(out)


_ESCAPE = re.compile(rb"\\(\\|[0-9a-f]{2})")
_HEX_ESCAPE = re.compile(rb"\\([0-9a-f]{2})")


def unescape(text: str) -> str:
    """The exact inverse of esc_str(value, inquotes=True): `\\xx` is a byte, `\\\\` one
    backslash. (Mon::Client decodes `\\xx` only and leaves doubled backslashes doubled.)"""

    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        return b"\\" if code == b"\\" else bytes([int(code, 16)])

    return _ESCAPE.sub(one, _to_bytes(text)).decode("utf-8", "surrogateescape")


def mon_unescape(text: str) -> str:
    """mon's un_esc_str (and Mon::Client's _un_esc_str): only `\\xx` is decoded."""
    return _HEX_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), _to_bytes(text)).decode(
        "utf-8", "surrogateescape"
    )


def num(value: Number | None) -> str:
    """A number as Perl prints it: integers without a point, others to 15 digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


def _field(value: Number | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return num(value)


def format_opstatus(status: OpStatus, now: float) -> str:
    """The `list opstatus` line for one service, fields in mon's order."""
    acked = bool(status.ack)
    parts = [
        f"group={status.group}",
        f"service={status.service}",
        f"opstatus={status.opstatus}",
        f"last_opstatus={_field(status.last_opstatus)}",
        f"exitval={_field(status.exitval)}",
        f"timer={_field(status.timer)}",
        f"last_success={_field(status.last_success)}",
        f"last_trap={_field(status.last_trap)}",
        f"last_traphost={_field(status.last_traphost)}",
        f"last_check={_field(status.last_check)}",
        f"ack={_field(status.ack)}",
        f"ackcomment={esc_str(status.ackcomment, True) if acked else ''}",
        f"alerts_sent={status.alerts_sent}",
        f"depstatus={_field(status.depstatus)}",
        f"depend={esc_str(status.depend, True)}",
        f"hostdepend={esc_str(status.hostdepend, True)}",
        f"monitordepend={esc_str(status.monitordepend, True)}",
        f"alertdepend={esc_str(status.alertdepend, True)}",
        f"monitor={esc_str(status.monitor, True)}",
        f"last_summary={esc_str(status.last_summary, True)}",
        f"last_detail={esc_str(status.last_detail, True)}",
    ]
    if status.last_failure:
        parts.append(f"last_failure={num(status.last_failure)}")
    if status.interval:
        parts.append(f"interval={num(status.interval)}")
        parts.append(f"monitor_duration={num(status.monitor_duration)}")
        parts.append(f"monitor_running={int(status.monitor_running)}")
    if status.exclude_period:
        parts.append(f"exclude_period={esc_str(status.exclude_period)}")
    if status.exclude_hosts:
        parts.append(f"exclude_hosts={esc_str(' '.join(status.exclude_hosts))}")
    if status.randskew:
        parts.append(f"randskew={num(status.randskew)}")
    if status.last_alert:
        parts.append(f"last_alert={num(status.last_alert)}")
    if status.first_failure:
        parts.append(f"first_failure={num(status.first_failure)}")
        parts.append(f"failure_duration={num(int(now) - status.first_failure)}")
    return " ".join(parts)


_OPSTATUS_VAR = re.compile(r"\s*([^=]+)=")


def parse_opstatus_line(line: str) -> dict[str, str]:
    """One `list opstatus` line -> {field: decoded value}, read as Mon::Client reads it
    (`key=value`, `key='value'` or `key=` for empty), decoding with `unescape`."""
    fields: dict[str, str] = {}
    rest = line
    while match := _OPSTATUS_VAR.match(rest):
        key = match.group(1)
        rest = rest[match.end() :]
        if quoted := re.match(r"'([^']*)'", rest):
            value = quoted.group(1)
        elif bare := re.match(r"\S+", rest):
            value = bare.group(0)
        else:
            value = ""
            quoted = re.match(r"\s*", rest)
        matched = quoted or bare
        if matched is not None:
            rest = rest[matched.end() :]
        fields[key] = unescape(value)
    return fields


def parse_opstatus_lines(lines: Sequence[str]) -> dict[tuple[str, str], dict[str, str]]:
    """`list opstatus`/`failures`/`successes` data lines -> {(group, service): fields};
    lines without a group and a service are skipped, as Mon::Client skips them."""
    result: dict[tuple[str, str], dict[str, str]] = {}
    for line in lines:
        fields = parse_opstatus_line(line)
        group, service = fields.get("group", ""), fields.get("service", "")
        if group and service:
            result.setdefault((group, service), {}).update(fields)
    return result


# --- Perl's ways of cutting a line -------------------------------------------------------


def perl_split(text: str | None, limit: int = 0) -> list[str]:
    """Perl's split(/\\s+/, text, limit): a leading empty field is kept, trailing empty fields
    are dropped unless a limit is given; an empty string gives no fields."""
    if not text:
        return []
    fields = re.split(r"\s+", text, maxsplit=max(limit - 1, 0))
    if limit <= 0:
        while fields and fields[-1] == "":
            fields.pop()
    return fields


def _get(fields: Sequence[str], index: int) -> str:
    return fields[index] if index < len(fields) else ""


_PARSE_PIECE = re.compile(
    r"""(?:"((?>[^\\"]*(?:\\.[^\\"]*)*))"|'((?>[^\\']*(?:\\.[^\\']*)*))'"""
    r"""|((?:\\.|[^\\"'])*?)(\Z|\s+|(?!^)(?=["'])))""",
    re.S,
)


def first_word(text: str) -> str:
    """The first word Text::ParseWords::parse_line('\\s+', 0, text) yields (mon reads `set`
    values and `ack` comments with it): quotes are removed, backslashes escape in unquoted
    and double-quoted parts; an unbalanced quote anywhere in the text gives ""."""
    words: list[str] = []
    word = ""
    rest = text
    while rest:
        match = _PARSE_PIECE.match(rest)
        if match is None:
            return ""  # parse_line gives up on the whole line, earlier words included
        double, single, unquoted, delim = match.groups()
        if double is None and single is None and not unquoted and not delim:
            return ""
        rest = rest[match.end() :]
        if double is not None:
            word += re.sub(r"\\(.)", r"\1", double, flags=re.S)
        elif single is not None:
            word += single
        else:
            word += re.sub(r"\\(.)", r"\1", unquoted, flags=re.S)
        if delim:
            words.append(word)
            word = ""
    if not words or word:
        words.append(word)
    return words[0]


def perl_number(text: str | None) -> float:
    """Perl's numeric value of a string: its leading number, 0 when there is none."""
    match = re.match(r"\s*([+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))", text or "")
    return float(match.group(1)) if match else 0.0


# --- the session -----------------------------------------------------------------------------

_COMMAND = re.compile(
    r"(dump|login|disable|enable|quit|list|set|get|setview|getview|stop|start|loadstate|"
    r"savestate|reset|clear|checkauth|reload|term|test|servertime|ack|version|protid)"
    r"(\s+(.*))?",
    re.I,
)
_DEPEND_COMPONENT = re.compile(r"[a-zA-Z0-9_.-]+:[a-zA-Z0-9_.-]+")
_UNKNOWN = "520 command could not be executed, unknown command"
# commands mon runs without consulting auth.cf
_NO_AUTH_CHECK = frozenset(
    {"quit", "protid", "login", "version", "setview", "getview", "checkauth"}
)


class ClientSession:
    """One client connection's protocol state: who is logged in and which view is selected."""

    def __init__(self, server: MonServerAPI, auth: SessionAuth, peer: str) -> None:
        self.server = server
        self.auth = auth
        self.peer = peer
        self.user: str | None = None
        self.view: str | None = None
        self.closed = False  # the connection must be closed once the answer is written

    def receive(self, line: str) -> list[str]:
        """Answer one request line (without its line end). Never raises: a server failure is
        logged and answered with a 520 line."""
        if self.closed:
            return []
        try:
            return self._dispatch(line)
        except CommandError as err:
            return [f"520 {_one_line(str(err))}"]
        except Exception:
            log.exception("mon client %s: command %r failed", self.peer, _redact(line))
            return ["520 command failed, internal server error"]

    def _dispatch(self, line: str) -> list[str]:
        match = _COMMAND.fullmatch(line)
        if match is None:
            return ["520 invalid command"]
        command, args = match.group(1).lower(), match.group(3)
        if command not in _NO_AUTH_CHECK and not self.auth.allowed(command, self.user):
            return [_UNKNOWN]
        handler: Callable[[str | None], list[str]] | None = getattr(self, f"_cmd_{command}", None)
        if handler is None:  # dump: only mon -d has it
            return [_UNKNOWN]
        return handler(args)

    # -- commands that need no permission --

    def _cmd_quit(self, args: str | None) -> list[str]:
        self.closed = True
        return ["220 quitting"]

    def _cmd_protid(self, args: str | None) -> list[str]:
        if perl_number(args) != PROT_VERSION:
            return ["520 protocol mismatch"]
        return ["220 protocol match"]

    def _cmd_login(self, args: str | None) -> list[str]:
        fields = perl_split(args, 2)
        user, password = _get(fields, 0), _get(fields, 1)
        if not user or not self.auth.login(user, password, self.peer):
            return ["530 login unsuccessful"]
        self.user = user
        return ["220 login accepted"]

    def _cmd_version(self, args: str | None) -> list[str]:
        return [f"version {PROT_VERSION}", "220 version completed"]

    def _cmd_setview(self, args: str | None) -> list[str]:
        fields = perl_split(args)
        if len(fields) > 1:
            return ["500 Unknown setview command"]
        if fields:
            if fields[0] not in self.server.views():
                return [f"504 unknown view {fields[0]}"]
            self.view = fields[0]
            return [f"selecting view {fields[0]}", "220 setview completed"]
        self.view = None
        return ["no view selected -- all groups will be displayed", "220 setview completed"]

    def _cmd_getview(self, args: str | None) -> list[str]:
        if self.view:
            first = f"view {self.view} selected"
        else:
            first = "no view selected -- all groups will be displayed"
        return [first, "220 getview completed"]

    def _cmd_checkauth(self, args: str | None) -> list[str]:
        words = (args or "").split()
        if words and self.auth.allowed(words[0], self.user):
            return ["220 command authorized"]
        return ["520 command could not be executed"]

    # -- server control --

    def _cmd_reset(self, args: str | None) -> list[str]:
        stopped = bool(re.search("stopped", args or "", re.I))
        keepstate = "keepstate" in (args or "")
        where = f"PID {self.server.pid()}@{self.server.hostname()}"
        if self.server.reset(stopped, keepstate):
            return [f"220 reset {where}"]
        return [f"520 reset {where} failed, error in config file"]

    def _cmd_reload(self, args: str | None) -> list[str]:
        for what in perl_split(args):
            if what != "auth":
                return ["520 unknown reload command"]
            self.server.reload_auth()
        return ["220 reload completed"]

    def _cmd_clear(self, args: str | None) -> list[str]:
        match = re.match(r"timers\s+([a-zA-Z0-9_.-]+)\s+([a-zA-Z0-9_.-]+)", args or "", re.I)
        if match is None:
            return ["520 unknown clear command"]
        group, service = match.groups()
        if not self._has_service(group, service):
            return ["520 unknown group"]
        self.server.clear_timers(group, service)
        return ["220 clear timers completed"]

    def _cmd_test(self, args: str | None) -> list[str]:
        fields = perl_split(args, 2)
        what, rest = _get(fields, 0), _get(fields, 1)
        if what == "monitor":
            words = perl_split(rest)
            group, service = _get(words, 0), _get(words, 1)
            lines = []
            if self._has_service(group, service):
                self.server.test_monitor(group, service)
            else:
                lines.append(f"{group} {service} not defined")
            return [*lines, "220 test monitor completed"]
        # mon's pattern is unanchored in the middle: "startupalertx" passes, tests nothing
        if what and re.search(r"^alert|startupalert|upalert|ackalert|disablealert$", what):
            words = perl_split(rest, 4)
            group, service, retval, period = (_get(words, i) for i in range(4))
            if not self._has_service(group, service):
                return [f"520 {group} {service} not defined"]
            if not self.server.has_period(group, service, period):
                return ["520 period not defined"]
            if what in ALERT_KINDS:
                self.server.test_alert(what, group, service, retval, period)  # type: ignore[arg-type]
            return ["220 test alert completed"]
        if what == "config":
            errors = self.server.test_config()
            if errors:
                # mon writes the error text, a line end, then the status line
                failed = "520 test config completed, errors found in config file"
                return [*errors.split("\n"), failed]
            return ["220 test config completed OK, no errors found"]
        return ["520 test error"]

    def _cmd_loadstate(self, args: str | None) -> list[str]:
        for what in perl_split(args):
            self.server.load_state(what)
        return ["220 loadstate completed"]

    def _cmd_savestate(self, args: str | None) -> list[str]:
        if not re.search(r"\S", args or ""):
            return ["520 savestate error, arguments required"]
        for what in perl_split(args):
            self.server.save_state(what)
        return ["220 savestate completed"]

    def _cmd_term(self, args: str | None) -> list[str]:
        self.closed = True
        self.server.term()
        return ["220 terminating server"]

    def _cmd_stop(self, args: str | None) -> list[str]:
        self.server.stop_scheduler()
        return ["220 stop completed"]

    def _cmd_start(self, args: str | None) -> list[str]:
        self.server.start_scheduler()
        return ["220 start completed"]

    def _cmd_servertime(self, args: str | None) -> list[str]:
        now = self.server.now()
        return [f"{int(now)} {time.asctime(time.localtime(now))}", "220 servertime completed"]

    # -- variables --

    def _cmd_set(self, args: str | None) -> list[str]:
        if match := re.match(r"maxkeep\s+(\d+)", args or ""):
            self.server.set_maxkeep(int(match.group(1)))
            return ["220 set completed"]
        group, service, var, value = (_get(perl_split(args, 4), i) for i in range(4))
        if not self._has_service(group, service):
            return [f"520 {group},{service} not defined"]
        if var == "opstatus":
            if value not in OPSTATUS_NAMES:
                return ["520 undefined opstatus"]
            self.server.set_opstatus(group, service, OPSTATUS_NAMES[value])
            return ["220 set completed"]
        decoded = mon_unescape(first_word(value))
        self.server.set_variable(group, service, var, decoded)
        return [f"{group} {service} {var}='{esc_str(decoded, True)}'", "220 set completed"]

    def _cmd_get(self, args: str | None) -> list[str]:
        if re.fullmatch(r"maxkeep\s*", args or ""):
            return [f"maxkeep = {self.server.maxkeep()}", "220 set completed"]
        group, service, var = (_get(perl_split(args, 3), i) for i in range(3))
        if not self._has_service(group, service):
            return [f"520 {group},{service} not defined"]
        value = self.server.get_variable(group, service, var)
        return [f"{group} {service} {var}='{esc_str(value, True)}'", "220 get completed"]

    # -- list --

    def _cmd_list(self, args: str | None) -> list[str]:
        all_words = perl_split(args)
        fields = perl_split(args, 2)
        what, rest = _get(fields, 0), (fields[1] if len(fields) > 1 else None)
        handler = self._LIST.get(what)
        if handler is None:
            return ["520 unknown list command"]
        return handler(self, rest, all_words)

    def _list_descriptions(self, rest: str | None, words: list[str]) -> list[str]:
        lines = [
            f"{g} {s} {esc_str(self.server.opstatus(g, s).description, True)}"
            for g, s in self._services_in_view()
        ]
        return [*lines, "220 list descriptions completed"]

    def _list_group(self, rest: str | None, words: list[str]) -> list[str]:
        group = self.server.hostgroups().get(rest or "")
        if group is None:
            return ["520 list group error, undefined group"]
        return [f"hostgroup {rest} {' '.join(group.members())}", "220 list group completed"]

    def _list_opstatus(self, rest: str | None, words: list[str]) -> list[str]:
        now = self.server.now()
        if not rest:
            pairs = self._services_in_view()
        else:
            watches = self.server.watches()
            pairs = []
            for spec in perl_split(rest):
                parts = spec.split(",")
                group, service = parts[0], (parts[1] if len(parts) > 1 else "")
                if service == "":
                    pairs.extend((group, s) for s in watches.get(group, ()))
                elif service in watches.get(group, ()):
                    pairs.append((group, service))
                else:
                    return [f"520 {group},{service} does not exist"]
        lines = [format_opstatus(self.server.opstatus(g, s), now) for g, s in pairs]
        return [*lines, "220 list opstatus completed"]

    def _list_by_class(self, states: frozenset[int], done: str) -> list[str]:
        now = self.server.now()
        lines = []
        for group, service in self._services_in_view():
            status = self.server.opstatus(group, service)
            if status.opstatus in states:
                lines.append(format_opstatus(status, now))
        return [*lines, done]

    def _list_failures(self, rest: str | None, words: list[str]) -> list[str]:
        return self._list_by_class(FAILURE_STATES, "220 list failures completed")

    def _list_successes(self, rest: str | None, words: list[str]) -> list[str]:
        return self._list_by_class(SUCCESS_STATES, "220 list successes completed")

    def _list_warnings(self, rest: str | None, words: list[str]) -> list[str]:
        # mon ends `list warnings` with the successes line
        return self._list_by_class(WARNING_STATES, "220 list successes completed")

    def _list_disabled(self, rest: str | None, words: list[str]) -> list[str]:
        lines = []
        for name, group in self.server.hostgroups().items():
            if self._in_view(name, None):
                hosts = [h for h in group.hosts if h in group.disabled]
                if hosts:
                    lines.append(f"group {name}: {' '.join(hosts)}")
        for group, services in self.server.watches().items():
            if self._in_view(group, None) and self.server.watch_disabled(group):
                lines.append(f"watch {group}")
            for service in services:
                if self._in_view(group, service) and self.server.opstatus(group, service).disabled:
                    lines.append(f"watch {group} service {service}")
        return [*lines, "220 list disabled completed"]

    def _list_alerthist(self, rest: str | None, words: list[str]) -> list[str]:
        lines = [esc_str(entry.line()) for entry in self.server.alert_history()]
        return [*lines, "220 list alerthist completed"]

    def _list_failurehist(self, rest: str | None, words: list[str]) -> list[str]:
        lines = [esc_str(entry.line()) for entry in self.server.failure_history()]
        return [*lines, "220 list failurehist completed"]

    def _list_pids(self, rest: str | None, words: list[str]) -> list[str]:
        lines = [f"server {self.server.pid()}"]
        lines += [f"{m.group} {m.service} {m.pid}" for m in self.server.running_monitors()]
        return [*lines, "220 list pids completed"]

    def _list_watch(self, rest: str | None, words: list[str]) -> list[str]:
        lines = [f"{g} {s}" for g, s in self._services_in_view()]
        return [*lines, "220 list watch completed"]

    def _list_state(self, rest: str | None, words: list[str]) -> list[str]:
        since = self.server.stopped_since()
        line = "scheduler running" if since is None else f"scheduler stopped since {num(since)}"
        return [line, "220 list state completed"]

    def _list_aliases(self, rest: str | None, words: list[str]) -> list[str]:
        aliases = self.server.aliases()
        names = words[1:] or list(aliases)
        lines = []
        for name in names:
            lines.append(f"alias {name}")
            lines.extend(aliases.get(name, ()))
            lines.append("")
        return [*lines, "220 list aliases completed"]

    def _list_aliasgroups(self, rest: str | None, words: list[str]) -> list[str]:
        names = list(self.server.aliases())
        return [*([" ".join(names)] if names else []), "220 list aliasgroups completed"]

    def _list_deps(self, rest: str | None, words: list[str]) -> list[str]:
        lines = []
        for group, service in self._services_in_view():
            depend = self.server.opstatus(group, service).depend
            expression = esc_str(depend, True) if depend else "NONE"
            lines.append(f"exp {group} {service} '{expression}'")
            components = _DEPEND_COMPONENT.findall(depend)
            lines.append(f"cmp {group} {service} {' '.join(components) or 'NONE'}")
        return [*lines, "220 list deps completed"]

    def _list_dtlog(self, rest: str | None, words: list[str]) -> list[str]:
        try:
            entries = self.server.dtlog()
        except OSError:
            return ["520 list dtlog error, cannot open dtlog"]
        if entries is None:
            return ["520 list dtlog error, dtlogging is not turned on"]
        lines = [entry.rstrip("\r\n") for entry in entries]
        lines = [entry for entry in lines if entry.strip() and not entry.startswith("#")]
        return [*lines, "220 list dtlog completed"]

    def _list_views(self, rest: str | None, words: list[str]) -> list[str]:
        # mon ends `list views` with the group line
        return [f"views {' '.join(sorted(self.server.views()))}", "220 list group completed"]

    _LIST: Mapping[str, Callable[[ClientSession, str | None, list[str]], list[str]]] = {
        "descriptions": _list_descriptions,
        "group": _list_group,
        "opstatus": _list_opstatus,
        "disabled": _list_disabled,
        "alerthist": _list_alerthist,
        "failures": _list_failures,
        "failurehist": _list_failurehist,
        "successes": _list_successes,
        "warnings": _list_warnings,
        "pids": _list_pids,
        "watch": _list_watch,
        "state": _list_state,
        "aliases": _list_aliases,
        "aliasgroups": _list_aliasgroups,
        "deps": _list_deps,
        "dtlog": _list_dtlog,
        "views": _list_views,
    }

    # -- acknowledging, disabling, enabling --

    def _cmd_ack(self, args: str | None) -> list[str]:
        group, service, comment = (_get(perl_split(args, 3), i) for i in range(3))
        watches = self.server.watches()
        if group not in watches:
            return ["520 unknown group"]
        if service not in watches[group]:
            return ["520 unknown service"]
        if self.server.opstatus(group, service).opstatus in (STAT_OK, STAT_UNTESTED):
            return ["520 service is in a non-failure state"]
        text = f"{self.user or ''}: {mon_unescape(first_word(comment))}"
        self.server.ack(group, service, text)
        return ["220 ack completed"]

    def _cmd_disable(self, args: str | None) -> list[str]:
        fields = perl_split(args, 2)
        what, rest = _get(fields, 0), _get(fields, 1)
        watches = self.server.watches()
        if what == "watch":
            if rest not in watches:
                return [f'520 disable error, unknown watch "{rest}"']
            self.server.disable_watch(rest)
            self.server.save_state("disabled")
            return ["220 disable watch completed"]
        if what == "service":
            group, service = _get(perl_split(rest, 2), 0), _get(perl_split(rest, 2), 1)
            if not self._has_service(group, service):
                return ["520 disable error, unknown service"]
            self.server.disable_service(group, service, self.user)
            self.server.save_state("disabled")
            return ["220 disable service completed"]
        if what == "host":
            hosts = perl_split(rest)
            groups = self.server.hostgroups()
            known = {h for g in groups.values() for h in g.hosts}
            missing = [h for h in hosts if h not in known]
            if missing:
                return [f"520 disable host failed, host(s) {' '.join(missing)} do not exist"]
            for host in hosts:
                self._host_watches(host, groups, enable=False)
                self.server.disable_host(host)
            if hosts:
                self.server.save_state("disabled")
            return ["220 disable host completed"]
        return ["520 command could not be executed"]

    def _cmd_enable(self, args: str | None) -> list[str]:
        fields = perl_split(args, 2)
        what, rest = _get(fields, 0), _get(fields, 1)
        if what == "watch":
            if rest not in self.server.watches():
                return ["520 enable error, unknown watch"]
            self.server.enable_watch(rest)
            self.server.save_state("disabled")
            return ["220 enable watch completed"]
        if what == "service":
            group, service = _get(perl_split(rest, 2), 0), _get(perl_split(rest, 2), 1)
            if not self._has_service(group, service):
                return ["520 enable error, unknown group"]
            self.server.enable_service(group, service)
            self.server.save_state("disabled")
            return ["220 enable completed"]
        if what == "host":
            hosts = perl_split(rest)
            groups = self.server.hostgroups()
            for host in hosts:
                self._host_watches(host, groups, enable=True)
                self.server.enable_host(host)
            if hosts:
                self.server.save_state("disabled")
            return ["220 enable completed"]
        return ["520 command could not be executed"]

    def _host_watches(self, host: str, groups: Mapping[str, Hostgroup], enable: bool) -> None:
        # a watch whose hostgroup holds only this host goes with it, so that mon does not run
        # monitors on an empty group (mon's host_singleton_group)
        watches = self.server.watches()
        for name, group in groups.items():
            if group.hosts == (host,) and name in watches:
                if enable:
                    self.server.enable_watch(name)
                else:
                    self.server.disable_watch(name)

    # -- helpers --

    def _has_service(self, group: str, service: str) -> bool:
        return service in self.server.watches().get(group, ())

    def _in_view(self, group: str, service: str | None) -> bool:
        """mon's view_match: no view shows everything; a view lists groups and group:service."""
        if self.view is None:
            return True
        members = self.server.views().get(self.view, frozenset())
        return group in members or (service is not None and f"{group}:{service}" in members)

    def _services_in_view(self) -> list[tuple[str, str]]:
        return [
            (group, service)
            for group, services in self.server.watches().items()
            for service in services
            if self._in_view(group, service)
        ]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _redact(line: str) -> str:
    # a login line carries a password: never log it
    return "login ..." if line.lstrip().lower().startswith("login") else line


# --- the asyncio shell -----------------------------------------------------------------------


def _encode_line(line: str) -> bytes:
    return _to_bytes(line) + b"\n"


async def serve_client(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    session_factory: Callable[[str], ClientSession | None],
    cltimeout: float,
) -> None:
    """Run one client connection: read request lines (each within `cltimeout` seconds), write
    each answer, close on quit/term, timeout, end of input or a line over the reader's limit.
    `session_factory(peer_address)` returns None to refuse the client (clientallow): the
    connection is closed without a word, as mon closes it. Never raises."""
    peername = writer.get_extra_info("peername")
    peer = str(peername[0]) if isinstance(peername, tuple) and peername else "?"
    try:
        session = session_factory(peer)
        while session is not None and not session.closed:
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\n"), cltimeout)
            except TimeoutError:
                log.info("mon client %s: timeout after %ss", peer, num(cltimeout))
                break
            except asyncio.IncompleteReadError:
                break  # the client went away; an unfinished line is not a request
            except asyncio.LimitOverrunError:
                # a line longer than the reader's limit (64 KiB by default); mon has none
                writer.write(_encode_line("520 line too long"))
                await writer.drain()
                break
            line = raw[:-1].removesuffix(b"\r").decode("utf-8", "surrogateescape")
            answer = session.receive(line)
            writer.write(b"".join(_encode_line(one) for one in answer))
            await writer.drain()
    except (ConnectionError, OSError) as err:
        log.info("mon client %s: connection lost: %s", peer, err)
    except Exception:  # one bad client must never stop the server
        log.exception("mon client %s: dropped after an unexpected error", peer)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# exported for the daemon and the CLI
__all__ = [
    "ALERT_KINDS",
    "OPSTATUS_NAMES",
    "PROT_VERSION",
    "AlertHistEntry",
    "ClientSession",
    "CommandError",
    "FailureHistEntry",
    "Hostgroup",
    "MonServerAPI",
    "OpStatus",
    "RunningMonitor",
    "SessionAuth",
    "esc_str",
    "format_opstatus",
    "mon_unescape",
    "parse_opstatus_line",
    "parse_opstatus_lines",
    "serve_client",
    "unescape",
]
