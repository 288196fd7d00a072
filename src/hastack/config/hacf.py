"""ha.cf, read as heartbeat 3 reads it, plus hastack's own directives (docs/compat.md).

Line handling follows heartbeat's parse_config(): leading blanks are skipped, everything from
`#` to the end of the line is a comment, a line ends at the first CR or LF, the directive name
runs up to the first blank and is case-sensitive. Heartbeat applies a "keyword value value ..."
directive once per value (values separated by blanks or commas), which is why `node a b` and
`bcast eth0 eth1` declare two of each; whole-line directives (ucast, mcast, ping_group,
stonith, stonith_host, apiauth, respawn, failfast) get the rest of the line.

hastack differs on purpose in a few places, each documented in docs/compat.md: a directive
that takes one value must get exactly one, names are never resolved (addresses must be
literal), and udpport/baud apply to every link whatever their position in the file.

Every problem of a file is collected and reported together as one ConfigError; the HaCf is
built only when there are none.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from hastack.config import timing as timing_model
from hastack.config.errors import ConfigError, ConfigProblem
from hastack.config.model import (
    ConfigWarning,
    HaCf,
    Link,
    NodeSpec,
    PingGroup,
    Source,
    StonithHost,
)

# --------------------------------------------------------------------------------------------
# What hastack knows about every heartbeat 3 directive

# Heartbeat directives hastack accepts, but does not act on: a warning says so.
NOT_ACTED_ON: dict[str, str] = {
    "apiauth": "hastack has no heartbeat client API; its control socket has its own access rules",
    "respawn": "hastack does not start helper programs from ha.cf",
    "failfast": "hastack does not start helper programs from ha.cf",
    "hopfudge": "hastack does not forward packets between nodes",
    "coredumps": "hastack leaves core dumps to systemd/the kernel settings",
    "coreroot": "hastack leaves core dumps to systemd/the kernel settings",
    "conn_logd_time": "hastack has no logging daemon",
    "msgfmt": "hastack has its own wire format",
    "hbgenmethod": "hastack always keeps its generation number in the run directory",
    "uuidfrom": "hastack identifies nodes by name and node_id",
    "max_rexmit_delay": "hastack does not retransmit heartbeats",
    "rtprio": "hastack's realtime priority is fixed (SCHED_RR 1, with `realtime on`)",
    "log_badpack": "hastack counts bad packets instead (hastack status)",
    "syslogmsgfmt": "hastack's log format is fixed",
    "use_apphbd": "hastack does not register with apphbd",
    "env": "hastack does not start helper programs from ha.cf",
    "compression_threshold": "hastack never compresses heartbeat messages",
    "record_config_changes": "a Pacemaker setting; hastack's resource manager is its own",
    "record_pengine_inputs": "a Pacemaker setting; hastack's resource manager is its own",
    "enable_config_writes": "a Pacemaker setting; hastack's resource manager is its own",
    "crm_daemon_dir": "hastack does not start Pacemaker daemons",
    "crmd_spawns_pengine": "hastack does not start Pacemaker daemons",
    "memreserve": "hastack does not preallocate memory",
    "nice_failback": "obsolete since heartbeat 1.2; use auto_failback",
}

# Directives hastack parses into HaCf but whose value has no effect (warned about).
RECORDED_NO_EFFECT: dict[str, str] = {
    "crm": "hastack always runs its resource manager; it reads DIR/cib.xml (R2) when present, "
    "else DIR/haresources (R1)",
    "compression": "hastack's heartbeat messages are small and never compressed",
    "traditional_compression": "hastack's heartbeat messages are small and never compressed",
}

# Directives hastack parses and checks, whose effect belongs to a part not built yet: the value
# is kept in HaCf for that part, and a warning says that nothing acts on it today.
NOT_ACTED_ON_YET: dict[str, str] = {
    "logfacility": "the node daemon logs to stderr and logfile/debugfile, not to syslog",
    "use_logd": "the node daemon logs to stderr and logfile/debugfile, not to a logging daemon",
    "autojoin": "nodes must be listed with `node`; hastack does not add nodes that announce "
    "themselves",
}

# Heartbeat directives hastack refuses (an error): silently dropping them would change
# which paths or nodes the cluster depends on.
NOT_SUPPORTED: dict[str, str] = {
    "ucast6": "IPv6 links are not supported yet; use ucast with IPv4 addresses",
    "mcast6": "IPv6 links are not supported yet; use mcast with an IPv4 group",
    "ping6": "IPv6 ping nodes are not supported yet; use ping with IPv4 addresses",
    "hbaping": "Fibre Channel HBA ping nodes are not supported",
}

HASTACK_DIRECTIVES = (
    "cluster_name",
    "node_id",
    "votes",
    "two_node",
    "wait_for_all",
    "expected_votes",
    "run_dir",
    "max_clock_drift",
    "bind",
    "quorum_server_tls",
)

_TRUE = ("true", "on", "yes", "y", "1")
_FALSE = ("false", "off", "no", "n", "0")
_BOOL_HELP = "on, off (also yes/no, true/false, y/n, 1/0)"
SYSLOG_FACILITIES = (
    "auth",
    "authpriv",
    "cron",
    "daemon",
    "ftp",
    "kern",
    "lpr",
    "mail",
    "news",
    "syslog",
    "user",
    "uucp",
    *(f"local{i}" for i in range(8)),
)
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800)
MAX_DURATION = 86400.0  # a day; anything longer is a typo, and keeps arithmetic finite
_BLANKS = re.compile(r"[ \t\f\v]+")
_BLANKS_OR_COMMAS = re.compile(r"[ \t\f\v,]+")
_DURATION = re.compile(
    r"(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<unit>ms|msec|us|usec|s|sec)?", re.IGNORECASE
)
_NODE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,252}")


class _Bad(ValueError):
    """A value that does not parse; the message says what is allowed. The parsers catch it;
    the public value parsers (parse_duration, ...) raise it as a ValueError."""


def _q(token: str) -> str:
    """A value quoted for a message, shortened so a garbage line cannot flood the output."""
    if len(token) > 60:
        token = token[:57] + "..."
    return repr(token)


# --------------------------------------------------------------------------------------------
# Value parsers: return the value or raise _Bad with what is allowed


def parse_duration(token: str) -> float:
    """heartbeat's time syntax: seconds (`2`, `1.5`), `500ms`, `2000us`; hastack adds `2s`."""
    m = _DURATION.fullmatch(token)
    if m is None:
        raise _Bad(
            f"{_q(token)} is not a duration: write seconds (2, 1.5, 2s) or milliseconds (500ms)"
        )
    try:
        value = Decimal(m["num"])
    except InvalidOperation:  # pragma: no cover - the regex only lets digits through
        raise _Bad(f"{_q(token)} is not a number") from None
    unit = (m["unit"] or "s").lower()
    if unit in ("ms", "msec"):
        value /= 1000
    elif unit in ("us", "usec"):
        value /= 1_000_000
    if value > Decimal(int(MAX_DURATION)):
        raise _Bad(f"{_q(token)} is longer than a day ({MAX_DURATION:g}s), surely a mistake")
    return float(value)


def parse_bool(token: str) -> bool:
    low = token.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise _Bad(f"{_q(token)} is not one of {_BOOL_HELP}")


def parse_int(token: str, low: int, high: int) -> int:
    if not re.fullmatch(r"[0-9]{1,10}", token) or not low <= int(token) <= high:
        raise _Bad(f"{_q(token)} is not a whole number from {low} to {high}")
    return int(token)


def parse_ipv4(token: str, what: str = "address") -> str:
    try:
        return str(ipaddress.IPv4Address(token))
    except ValueError:
        raise _Bad(
            f"{_q(token)} is not an IPv4 {what} (like 10.0.0.2; hastack never resolves names)"
        ) from None


def parse_interface(token: str) -> str:
    # Linux interface names: 1-15 bytes, no slash, no blank, not "." or ".."
    if not 1 <= len(token.encode("utf-8", "surrogatepass")) <= 15 or "/" in token:
        raise _Bad(f"{_q(token)} is not a network interface name (like eth0, at most 15 chars)")
    if token in (".", "..") or not token.isprintable() or any(c in token for c in ":#, "):
        raise _Bad(f"{_q(token)} is not a network interface name (like eth0, at most 15 chars)")
    return token


def parse_node_name(token: str) -> str:
    if not _NODE_NAME.fullmatch(token):
        raise _Bad(
            f"{_q(token)} is not a node name (as `uname -n` prints it: letters, digits, "
            "'-', '_', '.', at most 64 characters)"
        )
    return token


def parse_drift(token: str) -> float:
    """A fraction (`0.01`) or a percentage (`1%`)."""
    percent = token.endswith("%")
    number = token[:-1] if percent else token
    if not re.fullmatch(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", number):
        raise _Bad(f"{_q(token)} is not a fraction (0.01) or a percentage (1%)")
    value = float(Decimal(number) / 100 if percent else Decimal(number))
    if not 0 <= value < timing_model.MAX_DRIFT_LIMIT:
        raise _Bad(f"{_q(token)} must be at least 0 and less than 50% (0.5)")
    return value


def parse_host_port(token: str) -> str:
    """HOST[:PORT] with HOST an address or a name (stored, never resolved here); IPv6 as
    [ADDR]:PORT."""
    host, port = token, None
    if token.startswith("["):
        end = token.find("]")
        if end < 0 or (end + 1 < len(token) and token[end + 1] != ":"):
            raise _Bad(f"{_q(token)} is not HOST[:PORT] (IPv6: [ADDR]:PORT)")
        host, port = token[1:end], (token[end + 2 :] if end + 1 < len(token) else None)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _Bad(f"{_q(host)} is not an IPv6 address") from None
    elif token.count(":") == 1:
        host, port = token.split(":")
    elif token.count(":") > 1:
        try:
            ipaddress.IPv6Address(token)
        except ValueError:
            raise _Bad(f"{_q(token)} is not HOST[:PORT] (IPv6: [ADDR]:PORT)") from None
        return token
    if not token.startswith("[") and not _HOST.fullmatch(host):
        raise _Bad(f"{_q(token)} is not HOST[:PORT] (an address or a host name)")
    if port is not None:
        parse_int(port, 1, 65535)
    return token


# --------------------------------------------------------------------------------------------
# Lines


@dataclass(frozen=True)
class HaCfLine:
    """One non-blank line of ha.cf: the directive and the rest of the line."""

    source: Source
    directive: str
    rest: str

    def words(self) -> list[str]:
        """Values of a whole-line directive: the rest split at blanks."""
        return [w for w in _BLANKS.split(self.rest) if w]

    def values(self) -> list[str]:
        """Values of a "keyword value value ..." directive: split at blanks and commas."""
        return [w for w in _BLANKS_OR_COMMAS.split(self.rest) if w]


def split_lines(text: str, file: str) -> list[HaCfLine]:
    lines: list[HaCfLine] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.split("\r", 1)[0].split("#", 1)[0]
        line = line.lstrip(" \t\f\v")
        if not line.strip(" \t\f\v"):
            continue
        parts = _BLANKS.split(line, maxsplit=1)
        rest = parts[1].strip(" \t\f\v") if len(parts) > 1 else ""
        lines.append(HaCfLine(Source(file, number), parts[0], rest))
    return lines


# --------------------------------------------------------------------------------------------
# The builder: one handler per directive, then the relations


@dataclass
class _UcastIface:
    source: Source
    addresses: list[tuple[str, Source]] = field(default_factory=list)


@dataclass
class _Builder:
    file: str
    problems: list[ConfigProblem] = field(default_factory=list)
    warnings: list[ConfigWarning] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)  # directives with a bad line
    seen: set[str] = field(default_factory=set)  # directives present in the file
    scalars: dict[str, tuple[Any, Source]] = field(default_factory=dict)
    nodes: list[tuple[str, Source]] = field(default_factory=list)
    node_ids: dict[str, tuple[int, Source]] = field(default_factory=dict)
    votes: dict[str, tuple[int, Source]] = field(default_factory=dict)
    link_order: list[tuple[str, str]] = field(default_factory=list)  # (kind, key)
    ucast: dict[str, _UcastIface] = field(default_factory=dict)
    mcast: dict[str, tuple[str, int, int, bool, Source]] = field(default_factory=dict)
    bcast: dict[str, Source] = field(default_factory=dict)
    serial: dict[str, Source] = field(default_factory=dict)
    binds: dict[str, tuple[str, Source]] = field(default_factory=dict)
    ping: dict[str, Source] = field(default_factory=dict)
    ping_groups: dict[str, PingGroup] = field(default_factory=dict)
    stonith_hosts: list[StonithHost] = field(default_factory=list)

    # -- reporting

    def error(self, source: Source | None, directive: str, message: str) -> None:
        self.problems.append(ConfigProblem(source, f"{directive}: {message}"))
        self.failed.add(directive)

    def file_error(self, message: str) -> None:
        self.problems.append(ConfigProblem(None, f"{self.file}: {message}"))

    def warn(self, source: Source | None, directive: str, message: str) -> None:
        self.warnings.append(ConfigWarning(source, f"{directive}: {message}"))

    # -- dispatch

    def feed(self, line: HaCfLine) -> None:
        name = line.directive
        if name == "udp":  # heartbeat's own alias, with the same warning
            self.warn(line.source, "udp", "'udp' is an old name; write 'bcast'")
            name = "bcast"
        self.seen.add(name)
        handler = _HANDLERS.get(name)
        try:
            if handler is not None:
                handler(self, line)
                if name in NOT_ACTED_ON_YET:
                    self.warn(
                        line.source, name, f"accepted, not acted on: {NOT_ACTED_ON_YET[name]}"
                    )
            elif name in NOT_ACTED_ON:
                self.warn(
                    line.source,
                    name,
                    f"heartbeat directive accepted but not acted on by hastack "
                    f"({NOT_ACTED_ON[name]})",
                )
            elif name in NOT_SUPPORTED:
                self.error(
                    line.source,
                    name,
                    f"heartbeat directive not supported by hastack ({NOT_SUPPORTED[name]})",
                )
            else:
                self.unknown(line)
        except _Bad as bad:
            self.error(line.source, name, str(bad))

    def unknown(self, line: HaCfLine) -> None:
        known = sorted({*_HANDLERS, *NOT_ACTED_ON, *NOT_SUPPORTED})
        close = difflib.get_close_matches(line.directive, known, n=1)
        if not close:
            close = [k for k in known if k.lower() == line.directive.lower()]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.problems.append(
            ConfigProblem(
                line.source,
                f"unknown directive {_q(line.directive)}: not a heartbeat 3 or hastack ha.cf "
                f"directive (docs/compat.md lists them){hint}",
            )
        )

    # -- generic shapes

    def one_value(self, line: HaCfLine) -> str:
        values = line.values()
        if len(values) != 1:
            raise _Bad(f"takes exactly one value, got {len(values)}")
        return values[0]

    def set_scalar(self, line: HaCfLine, key: str, value: Any) -> None:
        if key in self.scalars:
            first = self.scalars[key][1]
            self.warn(
                line.source, line.directive, f"given again (first at {first}); the last one counts"
            )
        self.scalars[key] = (value, line.source)

    def scalar(self, key: str, default: Any = None) -> Any:
        return self.scalars[key][0] if key in self.scalars else default

    def scalar_source(self, key: str) -> Source | None:
        return self.scalars[key][1] if key in self.scalars else None


def _duration_directive(b: _Builder, line: HaCfLine) -> None:
    value = parse_duration(b.one_value(line))
    if value <= 0:
        raise _Bad(f"must be greater than 0, got {timing_model.fmt_seconds(value)}")
    b.set_scalar(line, line.directive, value)


def _bool_directive(b: _Builder, line: HaCfLine) -> None:
    b.set_scalar(line, line.directive, parse_bool(b.one_value(line)))


def _choice(token: str, choices: tuple[str, ...], extra: str = "") -> str:
    low = token.lower()
    if low in choices:
        return low
    raise _Bad(f"{_q(token)} is not one of {', '.join(choices)}{extra}")


def _unique_values(
    b: _Builder,
    line: HaCfLine,
    directive: str,
    parse: Callable[[str], str],
    seen: dict[str, Source],
) -> list[str]:
    """Each value of a `directive V [V...]` line, parsed. A bad or repeated value is an error
    naming it while the others still count; each new one is recorded in `seen`."""
    new: list[str] = []
    for value in line.values():
        try:
            item = parse(value)
        except _Bad as bad:
            b.error(line.source, directive, str(bad))
            continue
        if item in seen:
            b.error(line.source, directive, f"{item} is listed twice, first at {seen[item]}")
            continue
        seen[item] = line.source
        new.append(item)
    return new


def _d_node(b: _Builder, line: HaCfLine) -> None:
    values = line.values()
    if not values:
        raise _Bad("names no node: write node NAME [NAME...]")
    for value in values:
        try:
            name = parse_node_name(value)
        except _Bad as bad:
            b.error(line.source, "node", str(bad))
            continue
        clash = next((n for n in b.nodes if n[0].lower() == name.lower()), None)
        if clash is not None:
            same = "" if clash[0] == name else f" (as {clash[0]!r}; heartbeat ignores case)"
            b.error(line.source, "node", f"{name!r} is listed twice{same}, first at {clash[1]}")
            continue
        b.nodes.append((name, line.source))


def _d_ucast(b: _Builder, line: HaCfLine) -> None:
    words = line.words()
    if len(words) != 2:
        raise _Bad(
            f"takes an interface and a peer address (ucast IF ADDR), got {len(words)} values"
        )
    iface = parse_interface(words[0])
    address = parse_ipv4(words[1], "peer address")
    link = b.ucast.get(iface)
    if link is None:
        link = b.ucast[iface] = _UcastIface(line.source)
        b.link_order.append(("ucast", iface))
    for known, where in link.addresses:
        if known == address:
            raise _Bad(f"{address} on {iface} is listed twice, first at {where}")
    link.addresses.append((address, line.source))


def _d_mcast(b: _Builder, line: HaCfLine) -> None:
    words = line.words()
    if len(words) != 5:
        raise _Bad(
            f"takes 5 values (mcast IF GROUP PORT TTL LOOP, like mcast eth0 239.0.0.1 694 1 0), "
            f"got {len(words)}"
        )
    iface = parse_interface(words[0])
    group = parse_ipv4(words[1], "multicast group")
    if not ipaddress.IPv4Address(group).is_multicast:
        raise _Bad(f"{group} is not a multicast group (224.0.0.0 - 239.255.255.255)")
    try:
        port = parse_int(words[2], 1, 65535)
    except _Bad as bad:
        raise _Bad(f"port {bad}") from None
    try:
        ttl = parse_int(words[3], 1, 255)
    except _Bad as bad:
        raise _Bad(f"ttl {bad}") from None
    if words[4] not in ("0", "1"):
        raise _Bad(f"loop {_q(words[4])} is not one of 0, 1")
    if iface in b.mcast:
        raise _Bad(f"a second mcast on {iface} (first at {b.mcast[iface][4]}): one per interface")
    b.mcast[iface] = (group, port, ttl, words[4] == "1", line.source)
    b.link_order.append(("mcast", iface))


def _d_bcast(b: _Builder, line: HaCfLine) -> None:
    if not line.values():
        raise _Bad("names no interface: write bcast IF [IF...]")
    for iface in _unique_values(b, line, "bcast", parse_interface, b.bcast):
        b.link_order.append(("bcast", iface))


def _serial_device(device: str) -> str:
    if not device.startswith("/") or device.endswith("/"):
        raise _Bad(f"{_q(device)} is not a device path (like /dev/ttyS0)")
    return device


def _d_serial(b: _Builder, line: HaCfLine) -> None:
    if not line.values():
        raise _Bad("names no device: write serial /dev/ttyS0 [DEVICE...]")
    for device in _unique_values(b, line, "serial", _serial_device, b.serial):
        b.link_order.append(("serial", device))


def _d_baud(b: _Builder, line: HaCfLine) -> None:
    token = b.one_value(line)
    if not token.isdigit() or int(token) not in BAUD_RATES:
        raise _Bad(f"{_q(token)} is not one of {', '.join(map(str, BAUD_RATES))}")
    b.set_scalar(line, "baud", int(token))


def _d_udpport(b: _Builder, line: HaCfLine) -> None:
    b.set_scalar(line, "udpport", parse_int(b.one_value(line), 1, 65535))


def _d_auto_failback(b: _Builder, line: HaCfLine) -> None:
    token = b.one_value(line)
    if token.lower() == "legacy":
        value = "legacy"
    else:
        try:
            value = "on" if parse_bool(token) else "off"
        except _Bad:
            raise _Bad(
                f"{_q(token)} is not one of on, off, legacy (or yes/no, true/false)"
            ) from None
    b.set_scalar(line, "auto_failback", value)


def _d_crm(b: _Builder, line: HaCfLine) -> None:
    token = b.one_value(line)
    low = token.lower()
    if low == "respawn":
        value = "respawn"
    elif low in _TRUE or low in _FALSE:
        value = "on" if low in _TRUE else "off"
    elif low in ("manual", "minimal", "valgrind", "ccm-only"):
        raise _Bad(
            f"heartbeat's {low!r} mode is not supported by hastack; use one of on, off, respawn"
        )
    else:
        raise _Bad(f"{_q(token)} is not one of on, off, respawn (or yes/no, true/false)")
    b.warn(line.source, "crm", f"recorded, but {RECORDED_NO_EFFECT['crm']}")
    b.set_scalar(line, "crm", value)


def _d_autojoin(b: _Builder, line: HaCfLine) -> None:
    value = _choice(b.one_value(line), ("none", "other", "any"))
    if value != "none":
        b.warn(
            line.source,
            "autojoin",
            f"{value!r} recorded, but hastack does not let unlisted nodes join: "
            "every member must be listed with a node directive",
        )
    b.set_scalar(line, "autojoin", value)


def _d_watchdog(b: _Builder, line: HaCfLine) -> None:
    device = b.one_value(line)
    if not device.startswith("/"):
        raise _Bad(f"{_q(device)} is not a device path (like /dev/watchdog)")
    b.set_scalar(line, "watchdog", device)


def _d_ping(b: _Builder, line: HaCfLine) -> None:
    if not line.values():
        raise _Bad("names no address: write ping ADDR [ADDR...]")
    _unique_values(b, line, "ping", parse_ipv4, b.ping)


def _d_ping_group(b: _Builder, line: HaCfLine) -> None:
    words = line.words()
    if len(words) < 2:
        raise _Bad("takes a group name and at least one address (ping_group NAME ADDR...)")
    name = parse_node_name(words[0])
    if name in b.ping_groups:
        raise _Bad(f"group {name!r} is defined twice, first at {b.ping_groups[name].source}")
    addresses: list[str] = []
    for value in words[1:]:
        address = parse_ipv4(value)
        if address in addresses:
            raise _Bad(f"{address} is listed twice in group {name!r}")
        addresses.append(address)
    b.ping_groups[name] = PingGroup(name, tuple(addresses), line.source)


def _d_stonith(b: _Builder, line: HaCfLine) -> None:
    words = line.words()
    if len(words) != 2:
        raise _Bad(f"takes a device type and a config file (stonith TYPE FILE), got {len(words)}")
    b.set_scalar(line, "stonith", (words[0], words[1]))


def _d_stonith_host(b: _Builder, line: HaCfLine) -> None:
    words = line.words()
    if len(words) < 2:
        raise _Bad(
            "takes a host (or *), a device type and its parameters (stonith_host FROM TYPE ...)"
        )
    from_host = words[0]
    if from_host != "*":
        from_host = parse_node_name(from_host)
    b.stonith_hosts.append(StonithHost(from_host, words[1], tuple(words[2:]), line.source))


def _d_logfacility(b: _Builder, line: HaCfLine) -> None:
    value = _choice(b.one_value(line), ("none", *SYSLOG_FACILITIES))
    b.set_scalar(line, "logfacility", None if value == "none" else value)


def _d_path(b: _Builder, line: HaCfLine) -> None:
    b.set_scalar(line, line.directive, b.one_value(line))


def _d_compression(b: _Builder, line: HaCfLine) -> None:
    value = _choice(b.one_value(line), ("zlib", "bz2"))
    b.warn(line.source, "compression", f"recorded, but {RECORDED_NO_EFFECT['compression']}")
    b.set_scalar(line, "compression", value)


def _d_traditional_compression(b: _Builder, line: HaCfLine) -> None:
    _bool_directive(b, line)
    b.warn(
        line.source,
        "traditional_compression",
        f"recorded, but {RECORDED_NO_EFFECT['traditional_compression']}",
    )


def _d_debug(b: _Builder, line: HaCfLine) -> None:
    b.set_scalar(line, "debug", parse_int(b.one_value(line), 0, 255))


def _d_cluster_name(b: _Builder, line: HaCfLine) -> None:
    name = b.one_value(line)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}", name):
        raise _Bad(f"{_q(name)} is not a cluster name (letters, digits, '-', '_', '.', at most 64)")
    b.set_scalar(line, line.directive, name)


def _d_quorum_server(b: _Builder, line: HaCfLine) -> None:
    b.set_scalar(line, "quorum_server", parse_host_port(b.one_value(line)))


def _d_quorum_server_tls(b: _Builder, line: HaCfLine) -> None:
    words = line.words()
    if len(words) != 3:
        raise _Bad(
            "takes the node's certificate, its key and the CA that signed the quorum server's "
            f"certificate (quorum_server_tls CERT KEY CA), got {len(words)} values"
        )
    for word in words:
        if not word.startswith("/"):
            raise _Bad(f"{_q(word)} is not an absolute path")
    b.set_scalar(line, "quorum_server_tls", tuple(words))


def _d_node_id(b: _Builder, line: HaCfLine) -> None:
    words = line.words()
    if len(words) != 2:
        raise _Bad(f"takes a node name and a number (node_id NAME N), got {len(words)} values")
    name = parse_node_name(words[0])
    if name in b.node_ids:
        raise _Bad(f"{name!r} already has an id, at {b.node_ids[name][1]}")
    b.node_ids[name] = (parse_int(words[1], 1, 2**31 - 1), line.source)


def _d_votes(b: _Builder, line: HaCfLine) -> None:
    words = line.words()
    if len(words) != 2:
        raise _Bad(f"takes a node name and a number (votes NAME N), got {len(words)} values")
    name = parse_node_name(words[0])
    if name in b.votes:
        raise _Bad(f"{name!r} already has votes, at {b.votes[name][1]}")
    b.votes[name] = (parse_int(words[1], 0, 1_000_000), line.source)


def _d_expected_votes(b: _Builder, line: HaCfLine) -> None:
    b.set_scalar(line, "expected_votes", parse_int(b.one_value(line), 1, 1_000_000_000))


def _d_run_dir(b: _Builder, line: HaCfLine) -> None:
    path = b.one_value(line)
    if not path.startswith("/"):
        raise _Bad(f"{_q(path)} is not an absolute path (like /run/hastack)")
    b.set_scalar(line, "run_dir", path)


def _d_max_clock_drift(b: _Builder, line: HaCfLine) -> None:
    b.set_scalar(line, "max_clock_drift", parse_drift(b.one_value(line)))


def _d_bind(b: _Builder, line: HaCfLine) -> None:
    words = line.words()
    if len(words) != 2:
        raise _Bad(f"takes an interface and a local address (bind IF ADDR), got {len(words)}")
    iface = parse_interface(words[0])
    address = parse_ipv4(words[1], "local address")
    if iface in b.binds:
        raise _Bad(f"{iface} is bound twice, first at {b.binds[iface][1]}")
    b.binds[iface] = (address, line.source)


_HANDLERS: dict[str, Callable[[_Builder, HaCfLine], None]] = {
    "node": _d_node,
    "ucast": _d_ucast,
    "mcast": _d_mcast,
    "bcast": _d_bcast,
    "serial": _d_serial,
    "baud": _d_baud,
    "udpport": _d_udpport,
    "keepalive": _duration_directive,
    "warntime": _duration_directive,
    "deadtime": _duration_directive,
    "initdead": _duration_directive,
    "deadping": _duration_directive,
    "auto_failback": _d_auto_failback,
    "watchdog": _d_watchdog,
    "ping": _d_ping,
    "ping_group": _d_ping_group,
    "stonith": _d_stonith,
    "stonith_host": _d_stonith_host,
    "crm": _d_crm,
    "pacemaker": _d_crm,  # heartbeat 3's newer name for crm
    "autojoin": _d_autojoin,
    "logfacility": _d_logfacility,
    "logfile": _d_path,
    "debugfile": _d_path,
    "use_logd": _bool_directive,
    "compression": _d_compression,
    "traditional_compression": _d_traditional_compression,
    "realtime": _bool_directive,
    "debug": _d_debug,
    "cluster": _d_cluster_name,  # heartbeat's cluster name directive
    "quorum_server": _d_quorum_server,  # heartbeat's, extended with :PORT
    # hastack's own
    "cluster_name": _d_cluster_name,
    "node_id": _d_node_id,
    "votes": _d_votes,
    "two_node": _bool_directive,
    "wait_for_all": _bool_directive,
    "expected_votes": _d_expected_votes,
    "run_dir": _d_run_dir,
    "max_clock_drift": _d_max_clock_drift,
    "bind": _d_bind,
    "quorum_server_tls": _d_quorum_server_tls,
}

# Every directive name hastack knows, by how it treats it (for docs and tests).
SUPPORTED_DIRECTIVES = tuple(sorted(set(_HANDLERS) - set(HASTACK_DIRECTIVES)))


# --------------------------------------------------------------------------------------------
# Relations, checked once the whole file is read


def _finish(b: _Builder) -> HaCf | None:
    hacf_kwargs: dict[str, Any] = {}
    timing = _finish_timing(b)
    nodes = _finish_nodes(b)
    links = _finish_links(b, len(nodes))
    _finish_quorum(b, nodes)
    _finish_misc(b, nodes, links)
    if b.problems or timing is None:
        return None
    for key in (
        "auto_failback",
        "watchdog",
        "crm",
        "autojoin",
        "logfile",
        "debugfile",
        "use_logd",
        "compression",
        "traditional_compression",
        "realtime",
        "debug",
        "expected_votes",
        "quorum_server",
        "quorum_server_tls",
        "run_dir",
        "two_node",
        "stonith",
    ):
        if key in b.scalars:
            hacf_kwargs[key] = b.scalar(key)
    if "logfacility" in b.scalars:
        hacf_kwargs["logfacility"] = b.scalar("logfacility")
    name = b.scalar("cluster_name", b.scalar("cluster"))
    if name is not None:
        hacf_kwargs["cluster_name"] = name
    return HaCf(
        file=b.file,
        nodes=tuple(nodes),
        links=tuple(links),
        udpport=b.scalar("udpport", 694),
        timing=timing,
        ping=tuple(b.ping),
        ping_groups=tuple(b.ping_groups.values()),
        stonith_hosts=tuple(b.stonith_hosts),
        wait_for_all=b.scalar("wait_for_all", b.scalar("two_node", False)),
        warnings=tuple(b.warnings),
        **hacf_kwargs,
    )


def _finish_timing(b: _Builder) -> timing_model.Timing | None:
    names = (*timing_model.TIMING_DIRECTIVES, "max_clock_drift")
    given = {name: b.scalar(name) for name in names if name in b.scalars}
    drift = given.pop("max_clock_drift", timing_model.DEFAULT_MAX_DRIFT)
    timing = timing_model.derive_timing(**given, max_drift=drift)
    if b.failed.intersection(names):
        return None  # relations on a half-read set of timers would only mislead
    sources = {name: b.scalars[name][1] for name in names if name in b.scalars}
    problems = timing_model.check_timing(timing, sources)
    b.problems.extend(problems)
    if "keepalive" in given and "deadtime" not in given and not problems:
        b.warn(
            sources["keepalive"],
            "deadtime",
            f"not set: hastack derives {timing_model.DEADTIME_PER_KEEPALIVE:g} x keepalive = "
            f"{timing_model.fmt_seconds(timing.deadtime)} (heartbeat would use 30s); "
            "set deadtime to choose",
        )
    return timing if not problems else None


def _finish_nodes(b: _Builder) -> list[NodeSpec]:
    listed = {name for name, _ in b.nodes}
    if not b.nodes and "node" not in b.failed:
        b.file_error(
            "no node directive: list every cluster node, as `uname -n` prints its name "
            "(node NAME [NAME...])"
        )
    for kind, table in (("node_id", b.node_ids), ("votes", b.votes)):
        for name, (_, source) in table.items():
            if name not in listed and "node" not in b.failed:
                b.error(source, kind, f"{name!r} is not a listed node (listed: {_names(b)})")
    specs: list[NodeSpec] = []
    used: dict[int, str] = {}
    for position, (name, source) in enumerate(b.nodes, start=1):
        node_id, id_source = b.node_ids.get(name, (position, source))
        if node_id in used:
            b.error(
                id_source,
                "node_id",
                f"{name!r} would get id {node_id}, already used by {used[node_id]!r} "
                "(ids default to the order of the node lines: 1, 2, ...)",
            )
            continue
        used[node_id] = name
        specs.append(NodeSpec(name, node_id, b.votes.get(name, (1, None))[0], source))
    return specs


def _names(b: _Builder) -> str:
    return ", ".join(name for name, _ in b.nodes) or "none"


def _finish_links(b: _Builder, node_count: int) -> list[Link]:
    port = b.scalar("udpport", 694)
    baud = b.scalar("baud", 19200)
    links: list[Link] = []
    for kind, key in b.link_order:
        bind = b.binds.get(key, (None, None))[0] if kind != "serial" else None
        if kind == "ucast":
            u = b.ucast[key]
            addresses = tuple(a for a, _ in u.addresses)
            links.append(
                Link("ucast", f"ucast {key}", key, addresses, port, bind=bind, source=u.source)
            )
        elif kind == "mcast":
            group, mport, ttl, loop, source = b.mcast[key]
            links.append(
                Link(
                    "mcast",
                    f"mcast {key}",
                    key,
                    (group,),
                    mport,
                    ttl,
                    loop,
                    bind=bind,
                    source=source,
                )
            )
        elif kind == "bcast":
            links.append(
                Link("bcast", f"bcast {key}", key, (), port, bind=bind, source=b.bcast[key])
            )
        else:
            links.append(Link("serial", key, device=key, baud=baud, source=b.serial[key]))
    media = {"ucast", "mcast", "bcast", "serial"}
    if not links and not b.failed.intersection(media):
        b.file_error(
            "no heartbeat link: add at least one of ucast IF ADDR, mcast IF GROUP PORT TTL LOOP, "
            "bcast IF, serial DEVICE"
        )
    if "baud" in b.scalars and not b.serial:
        b.warn(b.scalar_source("baud"), "baud", "no serial link to apply it to")
    udp_ifaces = {link.interface for link in links if link.kind != "serial"}
    for iface, (_, source) in b.binds.items():
        if iface not in udp_ifaces and not b.failed.intersection(media):
            b.error(
                source,
                "bind",
                f"no ucast, mcast or bcast link uses interface {iface} "
                f"(links on: {', '.join(sorted(i for i in udp_ifaces if i)) or 'none'})",
            )
    # With unicast alone each node must be able to reach every other one: every node sends to
    # every address listed (its own is ignored), so the addresses must cover nodes - 1 peers.
    if links and all(link.kind == "ucast" for link in links) and "node" not in b.failed:
        count = sum(len(link.addresses) for link in links)
        if node_count > 1 and count < node_count - 1:
            b.problems.append(
                ConfigProblem(
                    links[0].source,
                    f"ucast: {count} peer address(es) for {node_count} nodes: with only ucast "
                    "links every node needs a link to every other, so list at least "
                    f"nodes - 1 = {node_count - 1} addresses (usually one per node; each node "
                    "ignores its own)",
                )
            )
    return links


def _finish_quorum(b: _Builder, nodes: list[NodeSpec]) -> None:
    two_node = b.scalar("two_node", False)
    if two_node and len(nodes) != 2 and "node" not in b.failed:
        b.error(
            b.scalar_source("two_node"),
            "two_node",
            f"on needs exactly 2 nodes, {len(nodes)} listed ({_names(b)})",
        )
    total = sum(node.votes for node in nodes)
    if nodes and total == 0 and not b.failed.intersection({"node", "votes"}):
        b.error(
            next(iter(b.votes.values()))[1] if b.votes else None,
            "votes",
            "every node has 0 votes: no partition could ever have quorum",
        )
    if b.scalar("wait_for_all", False) and total == 0 and nodes:
        b.error(
            b.scalar_source("wait_for_all"),
            "wait_for_all",
            "on is only meaningful when nodes have votes (all have 0)",
        )
    expected = b.scalar("expected_votes")
    if expected is not None and nodes and not b.failed.intersection({"node", "votes"}):
        if expected < total:
            b.error(
                b.scalar_source("expected_votes"),
                "expected_votes",
                f"{expected} is less than the nodes' votes ({total}): two partitions could "
                f"both have more than half of {expected}; use at least {total}",
            )
        if two_node and expected != 2:
            b.error(
                b.scalar_source("expected_votes"),
                "expected_votes",
                f"{expected} contradicts two_node on, which means 2",
            )


def _finish_misc(b: _Builder, nodes: list[NodeSpec], links: list[Link]) -> None:
    names = {node.name for node in nodes}
    if "node" not in b.failed:
        for host in b.stonith_hosts:
            if host.from_host != "*" and host.from_host not in names:
                b.error(
                    host.source,
                    "stonith_host",
                    f"{host.from_host!r} is neither * nor a listed node (listed: {_names(b)})",
                )
    for group in b.ping_groups.values():
        if group.name in names:
            b.error(group.source, "ping_group", f"{group.name!r} is also a node name")
    peers = {a for link in links if link.kind == "ucast" for a in link.addresses}
    for address, source in b.ping.items():
        if address in peers:
            b.warn(
                source,
                "ping",
                f"{address} is a ucast peer: do not use a cluster node as a ping node",
            )
    c1, c2 = b.scalars.get("cluster"), b.scalars.get("cluster_name")
    if c1 and c2 and c1[0] != c2[0]:
        b.error(c2[1], "cluster_name", f"{c2[0]!r} contradicts cluster {c1[0]!r} at {c1[1]}")


# --------------------------------------------------------------------------------------------
# Entry points


def _sort(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return sorted(
        problems,
        key=lambda p: (p.source is None, p.source.line if p.source else 0),
    )


def read_hacf(text: str, file: str) -> tuple[HaCf | None, list[ConfigProblem], list[ConfigWarning]]:
    """Parse without raising: (the HaCf or None, every problem, every warning)."""
    builder = _Builder(file)
    for line in split_lines(text, file):
        builder.feed(line)
    hacf = _finish(builder)
    return hacf, _sort(builder.problems), list(builder.warnings)


def parse_hacf(text: str, file: str) -> HaCf:
    """ha.cf text -> HaCf; raises one ConfigError listing every problem."""
    hacf, problems, _ = read_hacf(text, file)
    if problems or hacf is None:
        raise ConfigError(problems or [ConfigProblem(None, f"{file}: not usable")])
    return hacf


def read_text_file(path: str) -> tuple[str | None, ConfigProblem | None]:
    """A configuration file's text, or a problem saying why it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return None, ConfigProblem(None, f"{path}: cannot read: {exc.strerror or exc}")
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, ConfigProblem(Source(path, line), "not UTF-8 text")


def read_hacf_file(path: str) -> tuple[HaCf | None, list[ConfigProblem], list[ConfigWarning]]:
    text, problem = read_text_file(path)
    if text is None:
        assert problem is not None
        return None, [problem], []
    return read_hacf(text, path)


def load_hacf(path: str) -> HaCf:
    hacf, problems, _ = read_hacf_file(path)
    if problems or hacf is None:
        raise ConfigError(problems or [ConfigProblem(None, f"{path}: not usable")])
    return hacf
