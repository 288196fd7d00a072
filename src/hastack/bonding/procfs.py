"""Parse ``/proc/net/bonding/BOND`` into a :class:`BondStatus`, and judge its health.

The file is printed by the kernel's ``drivers/net/bonding/bond_procfs.c``: a version line, the
bond's section (mode, primary and active slave, MII and ARP monitoring, and for 802.3ad the LACP
section with the active aggregator), then one section per slave opened by ``Slave Interface:``
(MII status, speed, duplex, link failure count, permanent address, queue ID, and for 802.3ad the
aggregator, churn state and the actor/partner LACPDU details). Older kernels print fewer lines
(the seed's v3.3.0 example has no speed or duplex); newer ones add lines this parser may not
know. Unknown lines are kept in :attr:`BondStatus.unknown_lines` and reported, never fatal. A
line this parser knows with a value it cannot read, a key given twice for the same section, or
a file with no ``Bonding Mode:`` line raises :class:`BondParseError`, naming file and line.

:func:`assess` gives the verdict: healthy, degraded (a slave not up, or only one live slave: a
bond with one live slave is a single point of failure — a warning, not a failover) or down (no
live slave, or the bond's own carrier is down).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

PROC_DIR = Path("/proc/net/bonding")

# bond_mode_name() in bond_main.c -> the mode's name as sysfs and modprobe take it
MODE_DESCRIPTIONS: dict[str, str] = {
    "load balancing (round-robin)": "balance-rr",
    "fault-tolerance (active-backup)": "active-backup",
    "load balancing (xor)": "balance-xor",
    "fault-tolerance (broadcast)": "broadcast",
    "IEEE 802.3ad Dynamic link aggregation": "802.3ad",
    "transmit load balancing": "balance-tlb",
    "adaptive load balancing": "balance-alb",
}
# bond_slave_link_status(): BOND_LINK_UP, _FAIL, _DOWN, _BACK
LINK_STATES = ("up", "going down", "down", "going back", "unknown")


class BondParseError(ValueError):
    """A bonding status file this parser cannot read; the message names the file and line."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.problem = message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class UnknownLine:
    """A line the parser does not know, kept so that it can be reported."""

    line: int
    text: str
    section: str  # "bond", "802.3ad", "slave eth0", ...


@dataclass(frozen=True)
class LacpPdu:
    """One side of a slave's 802.3ad details (``details actor lacp pdu:`` / ``partner``)."""

    system_priority: int | None = None
    system_mac: str | None = None
    key: int | None = None  # "port key" (actor) or "oper key" (partner)
    port_priority: int | None = None
    port_number: int | None = None
    port_state: int | None = None


@dataclass(frozen=True)
class AggregatorInfo:
    """The bond's ``Active Aggregator Info:`` block (802.3ad)."""

    aggregator_id: int | None = None
    ports: int | None = None
    actor_key: int | None = None
    partner_key: int | None = None
    partner_mac: str | None = None


@dataclass(frozen=True)
class LacpInfo:
    """The bond's ``802.3ad info`` section."""

    lacp_active: bool | None = None
    lacp_rate: str | None = None
    min_links: int | None = None
    ad_select: str | None = None
    system_priority: int | None = None
    system_mac: str | None = None
    active_aggregator: AggregatorInfo | None = None  # None: "bond X has no active aggregator"


@dataclass(frozen=True)
class SlaveStatus:
    interface: str
    mii_status: str | None = None  # one of LINK_STATES; None when the line is missing
    speed_mbps: int | None = None  # None: "Unknown" or not printed
    duplex: str | None = None  # "full", "half"; None: "Unknown" or not printed
    link_failure_count: int | None = None
    permanent_hw_addr: str | None = None
    queue_id: int | None = None
    aggregator_id: int | None = None  # 802.3ad; None for "N/A" or not printed
    no_aggregator: bool = False  # 802.3ad "Aggregator ID: N/A": in no aggregator at all
    actor_churn_state: str | None = None
    partner_churn_state: str | None = None
    actor_churned_count: int | None = None
    partner_churned_count: int | None = None
    actor: LacpPdu | None = None
    partner: LacpPdu | None = None
    line: int = 0  # where its "Slave Interface:" line is

    @property
    def up(self) -> bool:
        return self.mii_status == "up"


@dataclass(frozen=True)
class BondStatus:
    name: str
    mode: str  # balance-rr, active-backup, balance-xor, broadcast, 802.3ad, balance-tlb/-alb
    mode_description: str  # as the kernel prints it: "fault-tolerance (active-backup)"
    driver_version: str | None = None
    fail_over_mac: str | None = None
    transmit_hash_policy: str | None = None
    primary: str | None = None  # None: "None" or not printed (modes without a primary)
    primary_reselect: str | None = None
    active_slave: str | None = None
    mii_status: str | None = None
    miimon_ms: int | None = None
    updelay_ms: int | None = None
    downdelay_ms: int | None = None
    peer_notif_delay_ms: int | None = None
    arp_interval_ms: int | None = None
    arp_missed_max: int | None = None
    arp_ip_targets: tuple[str, ...] = ()
    ns_ip6_targets: tuple[str, ...] = ()
    lacp: LacpInfo | None = None
    slaves: tuple[SlaveStatus, ...] = ()
    unknown_lines: tuple[UnknownLine, ...] = ()

    @property
    def slaves_up(self) -> tuple[SlaveStatus, ...]:
        return tuple(s for s in self.slaves if s.up)

    def slave(self, interface: str) -> SlaveStatus | None:
        return next((s for s in self.slaves if s.interface == interface), None)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        document = asdict(self)
        document["unknown_lines"] = [
            {"line": u.line, "text": u.text, "section": u.section} for u in self.unknown_lines
        ]
        return document


class Health(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class Verdict:
    health: Health
    live_slaves: tuple[str, ...]  # slaves that carry traffic now
    reasons: tuple[str, ...] = ()  # why not healthy
    warnings: tuple[str, ...] = ()  # worth knowing, not a change of health

    def to_json(self) -> dict[str, Any]:
        return {
            "health": str(self.health),
            "live_slaves": list(self.live_slaves),
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------------------------
# Values


class _Bad(Exception):
    """A value that does not read; the parser adds the file and line."""


def _int(text: str) -> int:
    if not re.fullmatch(r"-?[0-9]{1,12}", text):
        raise _Bad(f"{text!r} is not a whole number")
    return int(text)


def _link(text: str) -> str:
    if text not in LINK_STATES:
        raise _Bad(f"{text!r} is not a link state; the states are: {', '.join(LINK_STATES)}")
    return text


def _speed(text: str) -> int | None:
    if text == "Unknown":
        return None
    match = re.fullmatch(r"([0-9]{1,9}) Mbps", text)
    if match is None:
        raise _Bad(f"{text!r} is not a speed ('N Mbps' or 'Unknown')")
    return int(match[1])


def _duplex(text: str) -> str | None:
    if text == "Unknown":
        return None
    if text not in ("full", "half"):
        raise _Bad(f"{text!r} is not a duplex (full, half or Unknown)")
    return text


def _onoff(text: str) -> bool:
    if text not in ("on", "off"):
        raise _Bad(f"{text!r} is neither on nor off")
    return text == "on"


def _word(text: str) -> str:
    if not text or len(text.split()) != 1:
        raise _Bad(f"{text!r} is not one word")
    return text


def _name_or_none(text: str) -> str | None:
    return None if text == "None" else _word(text)


def _ipv4_list(text: str) -> tuple[str, ...]:
    # bond_procfs.c prints " a.b.c.d" after the colon, "," between: "a, b"; old kernels had
    # an extra space, so split on commas and strip.
    items = [t.strip() for t in text.split(",")] if text.strip() else []
    try:
        return tuple(str(ipaddress.IPv4Address(t)) for t in items)
    except ValueError:
        raise _Bad(f"{text!r} is not a comma-separated list of IPv4 addresses") from None


def _ipv6_list(text: str) -> tuple[str, ...]:
    items = [t.strip() for t in text.split(",")] if text.strip() else []
    try:
        return tuple(str(ipaddress.IPv6Address(t)) for t in items)
    except ValueError:
        raise _Bad(f"{text!r} is not a comma-separated list of IPv6 addresses") from None


# --------------------------------------------------------------------------------------------
# The parser: each section is a dict of fields being filled, with the line each came from.

_Setter = tuple[str, Callable[[str], Any]]
# a slave's "Aggregator ID: N/A", told apart from a line not printed until result()
_NOT_AGGREGATED = object()

# keys of the bond's own section: printed once, so accepted wherever they appear (a shuffled
# file still finds them); "MII Status" is shared with the slaves and goes by position.
_BOND_KEYS: dict[str, _Setter] = {
    "Transmit Hash Policy": ("transmit_hash_policy", lambda t: _word(t.split(" (")[0])),
    "Currently Active Slave": ("active_slave", _name_or_none),
    "MII Polling Interval (ms)": ("miimon_ms", _int),
    "Up Delay (ms)": ("updelay_ms", _int),
    "Down Delay (ms)": ("downdelay_ms", _int),
    "Peer Notification Delay (ms)": ("peer_notif_delay_ms", _int),
    "ARP Polling Interval (ms)": ("arp_interval_ms", _int),
    "ARP Missed Max": ("arp_missed_max", _int),
    "ARP IP target/s (n.n.n.n form)": ("arp_ip_targets", _ipv4_list),
    "NS IPv6 target/s (xx::xx form)": ("ns_ip6_targets", _ipv6_list),
}
_LACP_KEYS: dict[str, _Setter] = {
    "LACP active": ("lacp_active", _onoff),
    "LACP rate": ("lacp_rate", _word),
    "Min links": ("min_links", _int),
    "Aggregator selection policy (ad_select)": ("ad_select", _word),
    "System priority": ("system_priority", _int),
    "System MAC address": ("system_mac", _word),
}
_AGGREGATOR_KEYS: dict[str, _Setter] = {
    "Aggregator ID": ("aggregator_id", _int),
    "Number of ports": ("ports", _int),
    "Actor Key": ("actor_key", _int),
    "Partner Key": ("partner_key", _int),
    "Partner Mac Address": ("partner_mac", _word),
}
_SLAVE_KEYS: dict[str, _Setter] = {
    "MII Status": ("mii_status", _link),
    "Speed": ("speed_mbps", _speed),
    "Duplex": ("duplex", _duplex),
    "Link Failure Count": ("link_failure_count", _int),
    "Permanent HW addr": ("permanent_hw_addr", _word),
    "Slave queue ID": ("queue_id", _int),
    "Aggregator ID": ("aggregator_id", lambda t: _NOT_AGGREGATED if t == "N/A" else _int(t)),
    "Actor Churn State": ("actor_churn_state", _word),
    "Partner Churn State": ("partner_churn_state", _word),
    "Actor Churned Count": ("actor_churned_count", _int),
    "Partner Churned Count": ("partner_churned_count", _int),
}
_PDU_KEYS: dict[str, _Setter] = {
    "system priority": ("system_priority", _int),
    "system mac address": ("system_mac", _word),
    "port key": ("key", _int),
    "oper key": ("key", _int),
    "port priority": ("port_priority", _int),
    "port number": ("port_number", _int),
    "port state": ("port_state", _int),
}


# keys that hold a colon themselves: split after the whole key, not at the first colon
_COLON_KEYS = ("NS IPv6 target/s (xx::xx form)",)


def _split(text: str) -> tuple[str, str, str]:
    for key in _COLON_KEYS:
        if text.startswith(key + ":"):
            return key, ":", text[len(key) + 1 :].strip()
    key, colon, value = text.partition(":")
    return key.strip(), colon, value.strip()


@dataclass
class _Section:
    label: str
    keys: dict[str, _Setter]
    values: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    start: int = 0


class _Parser:
    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.bond = _Section("bond", {"MII Status": ("mii_status", _link)})
        self.globals = _Section("bond", _BOND_KEYS)  # merged into the bond at the end
        self.lacp: _Section | None = None
        self.aggregator: _Section | None = None
        self.no_aggregator = False
        self.slaves: list[_Section] = []
        self.pdus: dict[tuple[int, str], _Section] = {}
        self.sub: _Section | None = None  # the block indented lines belong to now
        self.unknown: list[UnknownLine] = []

    def fail(self, line: int | None, message: str) -> BondParseError:
        return BondParseError(self.source, line, message)

    def set(self, section: _Section, key: str, text: str, number: int) -> None:
        attribute, convert = section.keys[key]
        if attribute in section.lines:
            raise self.fail(
                number,
                f"a second {key!r} line in the {section.label} section "
                f"(the first is line {section.lines[attribute]})",
            )
        try:
            section.values[attribute] = convert(text)
        except _Bad as exc:
            raise self.fail(number, f"{key}: {exc}") from None
        section.lines[attribute] = number

    def feed(self, number: int, raw: str) -> None:
        text = raw.strip()
        if not text:
            return  # bond_procfs.c separates sections with blank lines; the seed has more
        indented = raw[:1] in (" ", "\t")
        key, colon, value = _split(text)
        if text.startswith("Ethernet Channel Bonding Driver:"):
            self.header(number, value)
            return
        if colon and key == "Bonding Mode":
            self.mode(number, value)
            return
        if colon and key == "Primary Slave":
            self.primary(number, value)
            return
        if colon and key == "Slave Interface":
            self.new_slave(number, value)
            return
        if text == "802.3ad info":
            self.open_lacp(number)
            return
        if text == "Active Aggregator Info:":
            self.open_lacp(number, reopen=True)
            if self.aggregator is not None:
                raise self.fail(number, "a second 'Active Aggregator Info:' block")
            self.aggregator = _Section("active aggregator", _AGGREGATOR_KEYS, start=number)
            self.sub = self.aggregator
            return
        if re.fullmatch(r"bond \S+ has no active aggregator", text):
            self.open_lacp(number, reopen=True)
            self.no_aggregator = True
            return
        pdu = re.fullmatch(r"details (actor|partner) lacp pdu:", text)
        if pdu and self.slaves:
            slot = (len(self.slaves) - 1, pdu[1])
            if slot in self.pdus:
                raise self.fail(number, f"a second {text!r} block for the same slave")
            label = f"{pdu[1]} LACPDU of {self.slaves[-1].label}"
            self.pdus[slot] = self.sub = _Section(label, _PDU_KEYS, start=number)
            return
        if colon:
            # an indented line belongs to the open block (aggregator or LACPDU details); a
            # line at the margin closes it
            if self.sub is not None and (indented or key in self.sub.keys):
                if key in self.sub.keys:
                    self.set(self.sub, key, value, number)
                    return
            else:
                self.sub = None
            current = self.slaves[-1] if self.slaves else self.bond
            if key in current.keys:
                self.set(current, key, value, number)
                return
            if key in _BOND_KEYS:
                self.set(self.globals, key, value, number)
                return
            if key in _LACP_KEYS:
                self.set(self.open_lacp(number, reopen=True), key, value, number)
                return
        where = self.sub or (self.slaves[-1] if self.slaves else self.bond)
        self.unknown.append(UnknownLine(number, text, where.label))

    def header(self, number: int, value: str) -> None:
        if "driver_version" in self.bond.values:
            raise self.fail(number, "a second 'Ethernet Channel Bonding Driver:' line")
        self.bond.values["driver_version"] = value
        self.bond.lines["driver_version"] = number

    def mode(self, number: int, value: str) -> None:
        match = re.fullmatch(r"(.*?)(?: \(fail_over_mac (\S+)\))?", value)
        assert match is not None  # the pattern matches any text
        description, fail_over_mac = match[1], match[2]
        mode = MODE_DESCRIPTIONS.get(description)
        if mode is None:
            known = "; ".join(f"{d!r} ({m})" for d, m in MODE_DESCRIPTIONS.items())
            raise self.fail(number, f"unknown bonding mode {description!r}; known: {known}")
        if "mode" in self.bond.values:
            first = self.bond.lines["mode"]
            raise self.fail(number, f"a second 'Bonding Mode' line (the first is line {first})")
        self.bond.values.update(
            mode=mode, mode_description=description, fail_over_mac=fail_over_mac
        )
        self.bond.lines["mode"] = number

    def primary(self, number: int, value: str) -> None:
        match = re.fullmatch(r"(\S+)(?: \(primary_reselect (\S+)\))?", value)
        if match is None:
            raise self.fail(number, f"Primary Slave: {value!r} is not an interface name or None")
        if "primary" in self.globals.lines:
            first = self.globals.lines["primary"]
            raise self.fail(number, f"a second 'Primary Slave' line (the first is line {first})")
        self.globals.values["primary"] = None if match[1] == "None" else match[1]
        self.globals.values["primary_reselect"] = match[2]
        self.globals.lines["primary"] = number

    def new_slave(self, number: int, value: str) -> None:
        try:
            interface = _word(value)
        except _Bad as exc:
            raise self.fail(number, f"Slave Interface: {exc}") from None
        for other in self.slaves:
            if other.values["interface"] == interface:
                raise self.fail(
                    number, f"slave {interface} is listed twice (first on line {other.start})"
                )
        section = _Section(f"slave {interface}", _SLAVE_KEYS, start=number)
        section.values["interface"] = interface
        self.slaves.append(section)
        self.sub = None

    def open_lacp(self, number: int, reopen: bool = False) -> _Section:
        if self.lacp is None:
            self.lacp = _Section("802.3ad", _LACP_KEYS, start=number)
        elif not reopen:
            raise self.fail(number, f"a second '802.3ad info' line (first on {self.lacp.start})")
        self.sub = None
        return self.lacp

    def result(self) -> BondStatus:
        if "mode" not in self.bond.values:
            raise self.fail(
                None,
                "not a bonding status file: no 'Bonding Mode:' line "
                "(the kernel prints it second, after the driver's version)",
            )
        lacp = None
        if self.lacp is not None:
            aggregator = None
            if self.aggregator is not None and not self.no_aggregator:
                aggregator = AggregatorInfo(**self.aggregator.values)
            lacp = LacpInfo(**self.lacp.values, active_aggregator=aggregator)
        slaves = []
        for index, section in enumerate(self.slaves):
            if section.values.get("aggregator_id") is _NOT_AGGREGATED:
                section.values.update(aggregator_id=None, no_aggregator=True)
            actor = self.pdus.get((index, "actor"))
            partner = self.pdus.get((index, "partner"))
            slaves.append(
                SlaveStatus(
                    **section.values,
                    actor=LacpPdu(**actor.values) if actor else None,
                    partner=LacpPdu(**partner.values) if partner else None,
                    line=section.start,
                )
            )
        return BondStatus(
            name=self.name,
            **self.bond.values,
            **self.globals.values,
            lacp=lacp,
            slaves=tuple(slaves),
            unknown_lines=tuple(self.unknown),
        )


def parse_bond_status(text: str, name: str, source: str | None = None) -> BondStatus:
    """The status of bond `name` from the text of its /proc/net/bonding file; `source` names
    the file in errors. Raises BondParseError and nothing else."""
    parser = _Parser(name, source or str(PROC_DIR / name))
    for number, line in enumerate(text.splitlines(), start=1):
        parser.feed(number, line)
    return parser.result()


def read_bond_status(path: Path) -> BondStatus:
    """Read and parse one bond's file; OSError is left to the caller (a bond may vanish)."""
    data = path.read_bytes()
    # the kernel prints ASCII; a stray byte should be reported as an unknown line, not crash
    return parse_bond_status(data.decode("utf-8", errors="replace"), path.name, str(path))


def list_bonds(proc_dir: Path = PROC_DIR) -> list[str]:
    """The bonds that have a status file in `proc_dir`, sorted."""
    return sorted(p.name for p in proc_dir.iterdir() if p.is_file())


# --------------------------------------------------------------------------------------------
# The verdict


def live_slaves(status: BondStatus) -> tuple[SlaveStatus, ...]:
    """Slaves that carry traffic: MII up and, in 802.3ad, in the active aggregator (a slave
    in another aggregator — e.g. cabled to a switch not in the LAG — carries nothing)."""
    up = status.slaves_up
    if status.mode != "802.3ad" or status.lacp is None:
        return up
    active = status.lacp.active_aggregator
    if active is None or active.aggregator_id is None:
        return ()
    # "N/A" (in no aggregator) carries nothing; no Aggregator ID line at all gets the benefit
    # of the doubt
    return tuple(
        s
        for s in up
        if s.aggregator_id == active.aggregator_id
        or (s.aggregator_id is None and not s.no_aggregator)
    )


def assess(status: BondStatus) -> Verdict:
    """Healthy, degraded or down, with the reasons; see the module's docstring."""
    live = live_slaves(status)
    live_names = tuple(s.interface for s in live)
    reasons: list[str] = []
    warnings: list[str] = []
    for slave in status.slaves:
        if slave.mii_status is None:
            reasons.append(f"{slave.interface}: no MII Status line, its state is unknown")
        elif not slave.up:
            reasons.append(f"{slave.interface} is {slave.mii_status}")
        elif slave.interface not in live_names:
            aggregator = status.lacp.active_aggregator if status.lacp else None
            active_id = aggregator.aggregator_id if aggregator else None
            reasons.append(
                f"{slave.interface} is up but not in the active aggregator "
                f"({'N/A' if slave.no_aggregator else slave.aggregator_id} vs {active_id}): "
                "it carries no traffic"
            )
    if status.miimon_ms in (0, None) and status.arp_interval_ms in (0, None):
        warnings.append(
            "no link monitoring (MII polling 0 and no ARP interval): a failed slave would "
            "not be noticed; set miimon (e.g. 100) or arp_interval with arp_ip_target"
        )
    for unknown in status.unknown_lines:
        warnings.append(f"line {unknown.line} not understood ({unknown.section}): {unknown.text}")
    if status.mode == "active-backup" and live and status.active_slave not in live_names:
        reasons.append(
            f"active slave is {status.active_slave or 'None'}, not one of the live slaves"
        )

    def verdict(health: Health, *why: str) -> Verdict:
        return Verdict(health, live_names, (*why, *reasons), tuple(warnings))

    if not status.slaves:
        return verdict(Health.DOWN, "the bond has no slaves")
    if not live:
        return verdict(Health.DOWN, "no slave is up")
    if status.mii_status == "down":
        return verdict(Health.DOWN, "the bond's MII status is down (no carrier)")
    if len(live) == 1:
        return verdict(
            Health.DEGRADED,
            f"only one live slave ({live_names[0]}): a single point of failure — "
            "a warning, not a failover",
        )
    if reasons:
        return verdict(Health.DEGRADED)
    return verdict(Health.HEALTHY)


def with_slave(status: BondStatus, interface: str, **changes: Any) -> BondStatus:
    """A copy of `status` with one slave's fields changed (for building readings in tests
    and simulations)."""
    slaves = tuple(replace(s, **changes) if s.interface == interface else s for s in status.slaves)
    return replace(status, slaves=slaves)
