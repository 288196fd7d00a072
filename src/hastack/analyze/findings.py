"""The single points of failure of a cluster configuration, found without any I/O.

`find_spofs(Configuration)` runs every rule over what hastack's own parsers read from a
configuration directory (hastack.analyze.load builds the Configuration) and returns one
`Finding` per problem, each with why it matters, how to fix it and the file:line it comes from
where the parser kept it. A file that was not read makes the rules that need it stay silent:
the report lists the files read, so silence about an absent file is never taken for a clean
bill of health.

Heuristics, stated once:

* A ping node (`ping ADDR`, a `ping_group`, an ocf:pacemaker:ping `host_list`) is taken as
  used for connectivity decisions: ipfail and pingd exist only to act on them.
* Which interface a fence device is reached through: ha.cf holds no netmasks, so an
  interface's network is taken as the /24 (IPv4) or /64 (IPv6) around each address ha.cf puts
  on it (ucast peers, `bind`), and exactly the `cidr_netmask` of an IPaddr/IPaddr2 resource
  with a `nic`. A device address (its `ipaddr`, `ip`, `ipaddress`, `hostname` parameter, or an
  address among a `stonith_host` line's parameters) inside one of those networks is reached
  through that interface; one in none of them is taken as reached some other way. A host name
  cannot be placed and gets an `info` finding.
* A two-node cluster has a fence race delay when a fence device has `pcmk_delay_max` > 0,
  when `priority-fencing-delay` > 0, or when ha.cf says `two_node on` and the CIB leaves
  priority-fencing-delay unset (hastack's controller then applies 5 s by default).
* A DRBD resource "holds data that needs protocol C" when a Filesystem resource mounts one of
  its devices, or when a resource names it (ocf:linbit:drbd's drbd_resource, heartbeat's
  drbddisk) and the configuration runs a database agent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from hastack.config.model import HaCf, Source
from hastack.crm.cib.model import (
    INFINITY,
    Cib,
    Clone,
    Group,
    Primitive,
    RscLocation,
    flatten,
    parse_bool,
    parse_interval_ms,
    parse_score,
)
from hastack.replica.model import DrbdConf
from hastack.replica.model import Resource as DrbdResource
from hastack.watchdog.model import WatchdogConfig

if TYPE_CHECKING:  # the model is imported lazily where it is used (see the estimate below)
    from hastack.availability.model import Block, Figure

Severity = Literal["spof", "warning", "info"]
FileStatus = Literal["read", "absent", "not used"]

# Resource agents whose data must not lose an acknowledged write on failover.
DATABASE_AGENTS = frozenset(
    {"mysql", "mariadb", "pgsql", "postgresql", "oracle", "db2", "sybaseASE", "galera", "redis"}
)
PING_AGENTS = frozenset({"ping", "pingd"})
FENCE_ADDRESS_PARAMS = ("ipaddr", "ip", "ipaddress", "hostname")


@dataclass(frozen=True)
class Finding:
    """One problem: `id` names the rule (stable, for scripts), `where` is "file:line"."""

    id: str
    severity: Severity
    what: str
    why: str
    fix: str
    where: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class FileRead:
    """What became of one file of the directory: read, absent, or present but not used."""

    name: str
    path: str
    status: FileStatus
    note: str = ""


@dataclass(frozen=True)
class Configuration:
    """Everything read from one configuration directory; None where the file was absent.

    `hacf_lines` maps an ha.cf directive to the line of its first use (the parsed HaCf keeps
    lines only for links, nodes and ping groups). `resource_sources` maps a primitive id to
    where it is written: its cib.xml line, or its haresources line when `r1` (the CIB was
    converted from haresources, so its own line numbers mean nothing to the user).
    """

    directory: str
    files: tuple[FileRead, ...] = ()
    hacf: HaCf | None = None
    hacf_lines: Mapping[str, Source] = field(default_factory=dict)
    cib: Cib | None = None
    cib_file: str | None = None
    r1: bool = False
    resource_sources: Mapping[str, Source] = field(default_factory=dict)
    drbd: DrbdConf | None = None
    watchdog: WatchdogConfig | None = None

    @property
    def nodes(self) -> tuple[str, ...]:
        """The cluster's nodes: ha.cf's, else the CIB's cluster nodes, else DRBD's hosts."""
        if self.hacf is not None:
            return tuple(n.name for n in self.hacf.nodes)
        if self.cib is not None and self.cib.nodes:
            return tuple(n.uname or n.id for n in self.cib.nodes if n.type in (None, "member"))
        if self.drbd is not None and self.drbd.resources:
            return tuple(name for h in self.drbd.resources[0].hosts for name in h.names)
        return ()

    def primitives(self) -> tuple[Primitive, ...]:
        if self.cib is None:
            return ()
        return tuple(self.cib.expand_template(p) for p in self.cib.all_primitives())

    def where_primitive(self, p: Primitive) -> str | None:
        if p.id in self.resource_sources:
            return str(self.resource_sources[p.id])
        return self.where_cib(p.line)

    def where_cib(self, line: int) -> str | None:
        """A cib.xml line; None for a converted R1 CIB, whose lines the user never wrote."""
        if self.cib_file is None or self.r1:
            return None
        return f"{self.cib_file}:{line}" if line else self.cib_file

    def where_hacf(self, directive: str) -> str | None:
        source = self.hacf_lines.get(directive)
        return str(source) if source else None


# --------------------------------------------------------------------------------------------
# Small readings shared by the rules


def params(p: Primitive) -> dict[str, str]:
    return flatten(p.instance_attributes)


def _seconds(text: str | None) -> float:
    try:
        return parse_interval_ms(text) / 1000
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class FenceDevice:
    name: str
    addresses: tuple[str, ...]  # as written: literal addresses or host names
    delay: bool  # pcmk_delay_max > 0
    where: str | None


def fence_devices(config: Configuration) -> list[FenceDevice]:
    """Stonith primitives of the CIB and ha.cf's stonith/stonith_host devices."""
    devices: list[FenceDevice] = []
    for p in config.primitives():
        if p.cls != "stonith":
            continue
        values = params(p)
        addresses = tuple(values[k] for k in FENCE_ADDRESS_PARAMS if values.get(k))
        delay = _seconds(values.get("pcmk_delay_max")) > 0
        devices.append(FenceDevice(p.id, addresses, delay, config.where_primitive(p)))
    hacf = config.hacf
    if hacf is not None:
        if hacf.stonith is not None:
            # `stonith TYPE FILE`: the parameters are in FILE, which hastack's fencer reads
            devices.append(
                FenceDevice(f"stonith {hacf.stonith[0]}", (), False, config.where_hacf("stonith"))
            )
        for host in hacf.stonith_hosts:
            addresses = tuple(w for w in host.params if _is_address(w))
            devices.append(
                FenceDevice(
                    f"stonith_host {host.from_host} {host.device_type}",
                    addresses,
                    False,
                    str(host.source) if host.source else None,
                )
            )
    return devices


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def fencing_enabled(config: Configuration) -> tuple[bool, str | None]:
    """(stonith-enabled as the CRM reads it, where it is set). Without a CIB, heartbeat R1
    fences exactly when ha.cf names a device."""
    if config.cib is None:
        return bool(fence_devices(config)), None
    for nvset in config.cib.crm_config:
        for pair in nvset.pairs:
            if pair.name == "stonith-enabled" and pair.value is not None:
                try:
                    return parse_bool(pair.value, True), config.where_cib(pair.line)
                except ValueError:
                    return True, config.where_cib(pair.line)
    return True, None


def watchdog_fencing(config: Configuration) -> bool:
    """have-watchdog=true: the nodes fence themselves through their watchdog (sbd)."""
    if config.cib is None:
        return False
    try:
        return parse_bool(config.cib.cluster_options().get("have-watchdog"), False)
    except ValueError:
        return False


def interface_networks(
    config: Configuration,
) -> dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    """Each interface's networks, as far as the configuration shows them (see the module doc)."""
    nets: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}

    def add(iface: str, address: str, prefix: int | None) -> None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return
        if ip.is_multicast:
            return
        bits = prefix if prefix is not None else (24 if ip.version == 4 else 64)
        net = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
        if net not in nets.setdefault(iface, []):
            nets[iface].append(net)

    if config.hacf is not None:
        for link in config.hacf.links:
            if link.interface is None:
                continue
            if link.kind == "ucast":
                for address in link.addresses:
                    add(link.interface, address, None)
            if link.bind:
                add(link.interface, link.bind, None)
    for p in config.primitives():
        values = params(p)
        if p.type in ("IPaddr", "IPaddr2") and values.get("nic") and values.get("ip"):
            mask = values.get("cidr_netmask", "")
            add(values["nic"], values["ip"], int(mask) if mask.isdigit() else None)
    return nets


def _location_preferences(cib: Cib) -> list[RscLocation]:
    out: list[RscLocation] = []
    for c in cib.constraints:
        if isinstance(c, RscLocation) and c.rsc and c.node:
            try:
                if parse_score(c.score) > 0:
                    out.append(c)
            except ValueError:
                continue
    return out


def _stickiness(cib: Cib, rsc: str) -> int:
    """The resource's own resource-stickiness, else rsc_defaults', else Pacemaker's 0."""
    for r in cib.resources:
        if isinstance(r, Primitive | Group | Clone) and r.id == rsc:
            own = flatten(r.meta).get("resource-stickiness")
            if own is not None:
                try:
                    return parse_score(own)
                except ValueError:
                    return 0
    try:
        return parse_score(flatten(cib.rsc_defaults).get("resource-stickiness", "0"))
    except ValueError:
        return 0


# --------------------------------------------------------------------------------------------
# The rules: each reads the Configuration and returns its findings


def _first_node_line(config: Configuration) -> str | None:
    """Where the node list starts (ha.cf's first `node` line), to point a finding there."""
    if config.hacf is not None and config.hacf.nodes[0].source is not None:
        return str(config.hacf.nodes[0].source)
    return None


def rule_one_node(config: Configuration) -> list[Finding]:
    nodes = config.nodes
    if len(nodes) != 1:
        return []
    where = _first_node_line(config)
    return [
        Finding(
            "one-node",
            "spof",
            f"the cluster has one node ({nodes[0]})",
            "with one node there is nowhere to move the service: any failure of the node is a "
            "failure of the service",
            "add a second node (a `node` line in ha.cf on every node, and its links)",
            where,
        )
    ]


def rule_single_link(config: Configuration) -> list[Finding]:
    if config.hacf is None or len(config.hacf.links) != 1:
        return []
    link = config.hacf.links[0]
    return [
        Finding(
            "single-heartbeat-link",
            "spof",
            f"one heartbeat link ({link.name})",
            "when that one medium fails (a cable, a NIC, a switch port), each node stops "
            "hearing the other and takes it for dead: without fencing both run the service "
            "(split brain), with fencing one shoots the other for a healthy link's fault",
            "add a second heartbeat medium on another interface and switch (bcast/ucast/mcast "
            "on a second NIC) or a serial line (serial /dev/ttyS0)",
            str(link.source) if link.source else None,
        )
    ]


def rule_links_one_interface(config: Configuration) -> list[Finding]:
    if config.hacf is None or len(config.hacf.links) < 2:
        return []
    links = config.hacf.links
    if any(link.kind == "serial" for link in links):
        return []
    interfaces = {link.interface for link in links}
    if len(interfaces) != 1:
        return []
    iface = next(iter(interfaces))
    return [
        Finding(
            "links-one-interface",
            "spof",
            f"all {len(links)} heartbeat links use interface {iface} "
            f"({', '.join(link.name for link in links)})",
            f"the links are redundant on paper only: {iface}, its cable or its switch port "
            "failing cuts every one of them at once",
            f"move one link to another interface on another switch, or add a serial link; "
            f"or bond {iface} with a second NIC (mode active-backup) so the interface itself "
            "is redundant",
            str(links[1].source) if links[1].source else None,
        )
    ]


def rule_single_ping_node(config: Configuration) -> list[Finding]:
    out: list[Finding] = []
    hacf = config.hacf
    if hacf is not None:
        count = len(hacf.ping) + len(hacf.ping_groups)
        if count == 1 and len(hacf.ping) == 1:
            out.append(_ping_finding(f"ping {hacf.ping[0]}", config.where_hacf("ping")))
        elif count == 1 and len(hacf.ping_groups[0].addresses) == 1:
            group = hacf.ping_groups[0]
            out.append(
                _ping_finding(
                    f"ping_group {group.name} {group.addresses[0]}",
                    str(group.source) if group.source else None,
                )
            )
    for p in config.primitives():
        if p.type not in PING_AGENTS:
            continue
        hosts = params(p).get("host_list", "").split()
        if len(hosts) == 1:
            out.append(_ping_finding(f"{p.id} host_list={hosts[0]}", config.where_primitive(p)))
    return out


def _ping_finding(what: str, where: str | None) -> Finding:
    return Finding(
        "single-ping-node",
        "spof",
        f"one ping node decides connectivity ({what})",
        "when that one address stops answering (a router reboot, a dropped ICMP), every node "
        "loses connectivity together: the service is moved needlessly or, with a rule that "
        "bans nodes without connectivity, stopped everywhere",
        "ping two or more independent addresses: list several (ping A B), or a ping_group "
        "with several addresses (a group is up while any member answers); for pingd, give "
        "host_list several addresses",
        where,
    )


def rule_no_fencing(config: Configuration) -> list[Finding]:
    if config.hacf is None and config.cib is None:
        return []
    enabled, where = fencing_enabled(config)
    if not enabled:
        return [
            Finding(
                "no-fencing",
                "spof",
                "fencing is disabled (stonith-enabled=false)"
                if config.cib is not None and not config.r1
                else "no fencing: ha.cf names no stonith device",
                "a node that only looks dead (hung, cut off) may still write to the shared "
                "or replicated data; its resources are started elsewhere without making sure, "
                "so both nodes run them (split brain, corrupted data)",
                "configure a fence device (a power switch or IPMI: a stonith primitive such as "
                "fence_ipmilan, or ha.cf stonith_host) and set stonith-enabled=true",
                where,
            )
        ]
    if fence_devices(config) or watchdog_fencing(config):
        return []
    return [
        Finding(
            "no-fencing",
            "spof",
            "stonith-enabled is true but no fence device is configured",
            "the cluster must fence a lost node before moving its resources and has nothing "
            "to fence with: a node failure stops its resources for good instead of moving them",
            "add a stonith primitive (fence_ipmilan, external/ipmi, a PDU agent) for each node, "
            "or ha.cf stonith_host lines",
            where,
        )
    ]


def rule_fencing_via_heartbeat(config: Configuration) -> list[Finding]:
    hacf = config.hacf
    if hacf is None:
        return []
    nets = interface_networks(config)
    heartbeat_ifaces = {link.interface for link in hacf.links if link.interface}
    has_serial = any(link.kind == "serial" for link in hacf.links)
    out: list[Finding] = []
    for device in fence_devices(config):
        for address in device.addresses:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                out.append(
                    Finding(
                        "fence-path-unknown",
                        "info",
                        f"fence device {device.name} is reached by name ({address})",
                        "a host name cannot be placed on an interface without resolving it, "
                        "so whether fencing shares the heartbeat's path is not known",
                        "give the device's address literally, or check by hand that its "
                        "network is not the heartbeat's",
                        device.where,
                    )
                )
                continue
            through = sorted(
                iface for iface, ns in nets.items() if any(ip in n for n in ns) and iface
            )
            shared = [i for i in through if i in heartbeat_ifaces]
            if not shared:
                continue
            only = not has_serial and heartbeat_ifaces <= set(shared)
            out.append(
                Finding(
                    "fencing-via-heartbeat-link",
                    "spof" if only else "warning",
                    f"fence device {device.name} ({address}) is reached through "
                    f"{', '.join(shared)}, which also carries "
                    + ("every heartbeat link" if only else "a heartbeat link"),
                    "when that interface fails the nodes lose each other and must fence, and "
                    "the fence request travels the same dead path: fencing fails, so the "
                    "failover stalls"
                    if only
                    else "the other links keep membership when it fails, but a node failure "
                    "during that outage cannot be fenced",
                    "put the fence devices (IPMI/PDU) on a management network of their own, "
                    "reached through another interface than the heartbeat's",
                    device.where,
                )
            )
    return out


def fence_race_delay(config: Configuration) -> bool:
    if any(d.delay for d in fence_devices(config)):
        return True
    text = config.cib.cluster_options().get("priority-fencing-delay") if config.cib else None
    if text is not None:
        return _seconds(text) > 0
    return config.hacf is not None and config.hacf.two_node


def rule_two_node(config: Configuration) -> list[Finding]:
    if len(config.nodes) != 2:
        return []
    if config.hacf is not None and config.hacf.quorum_server is not None:
        return []
    if fence_race_delay(config):
        return []
    where = _first_node_line(config)
    return [
        Finding(
            "two-node-fence-race",
            "spof",
            "a two-node cluster without a quorum server and without a fence race delay",
            "when the link between two nodes fails, each has exactly half the votes and each "
            "tries to fence the other at the same moment: both may be shot (a fence race), "
            "taking the whole service down",
            "add a quorum server (ha.cf quorum_server HOST:PORT, `hastack qserver serve` on a "
            "third machine), or a delay: pcmk_delay_max on the fence devices, "
            "priority-fencing-delay in crm_config, or ha.cf two_node on",
            where,
        )
    ]


def _drbd_devices(resource: DrbdResource) -> set[str]:
    devices = {v.device for host in resource.hosts for v in host.volumes}
    devices.add(f"/dev/drbd/by-res/{resource.name}")
    devices.update(
        f"/dev/drbd/by-res/{resource.name}/{v.number}"
        for host in resource.hosts
        for v in host.volumes
    )
    return devices


def drbd_users(config: Configuration, resource: DrbdResource) -> tuple[bool, bool]:
    """(the cluster uses the resource, its data needs protocol C); see the module doc."""
    devices = _drbd_devices(resource)
    used = needs_c = False
    has_database = any(p.type in DATABASE_AGENTS for p in config.primitives())
    for p in config.primitives():
        values = params(p)
        if p.type == "Filesystem" and values.get("device") in devices:
            used = needs_c = True
        elif values.get("drbd_resource") == resource.name or (
            p.type == "drbddisk" and values.get("1") == resource.name
        ):
            used = True
            needs_c = needs_c or has_database
    return used, needs_c


def rule_async_replication(config: Configuration) -> list[Finding]:
    if config.drbd is None or config.cib is None:
        return []
    out: list[Finding] = []
    for resource in config.drbd.resources:
        protocol = resource.net.protocol
        if protocol == "C":
            continue
        used, needs_c = drbd_users(config, resource)
        if not (used and needs_c):
            continue
        loses = (
            "a write is acknowledged once it is in the local disk and the send buffer: a "
            "failover after the primary dies loses the writes still in flight"
            if protocol == "A"
            else "a write is acknowledged once the peer has received it, before it is on the "
            "peer's disk: losing both nodes at once (a power cut) loses those writes"
        )
        out.append(
            Finding(
                "async-replication",
                "spof" if protocol == "A" else "warning",
                f"DRBD resource {resource.name} replicates with protocol {protocol} under a "
                "file system or database",
                f"{loses}; a file system or database that was told its data was safe then "
                "comes up on the peer without it",
                f"set `protocol C;` in the net section of resource {resource.name} (writes are "
                "acknowledged only once on both disks)",
                str(resource.source) if resource.source else None,
            )
        )
    return out


def has_monitor(p: Primitive) -> bool:
    for op in p.ops:
        try:
            enabled = parse_bool(op.enabled, True)
            interval = op.interval_ms
        except ValueError:
            continue
        if op.name == "monitor" and interval > 0 and enabled:
            return True
    return False


def rule_no_monitor(config: Configuration) -> list[Finding]:
    out: list[Finding] = []
    for p in config.primitives():
        if has_monitor(p):
            continue
        fence = p.cls == "stonith"
        out.append(
            Finding(
                "no-monitor",
                "warning" if fence else "spof",
                f"resource {p.id} ({p.agent}) has no recurring monitor operation",
                "a fence device that broke silently is found broken only when a node must be fenced"
                if fence
                else "the cluster checks a resource only through its monitor: without one, a "
                "crashed service stays down and is never restarted or moved",
                f'add <op name="monitor" interval="30s" timeout="60s"/> to {p.id}\'s operations',
                config.where_primitive(p),
            )
        )
    return out


def rule_no_watchdog(config: Configuration) -> list[Finding]:
    hacf, wd = config.hacf, config.watchdog
    if hacf is None and wd is None:
        return []
    if (hacf is not None and hacf.watchdog) or (wd is not None and wd.watchdog_device):
        return []
    what = (
        f"{wd.source} names no watchdog-device (and ha.cf no watchdog)"
        if wd is not None
        else "no watchdog: ha.cf has no watchdog directive and there is no watchdog.conf"
    )
    return [
        Finding(
            "no-watchdog",
            "warning",
            what,
            "a node whose kernel or cluster daemon hangs is never reset: it may hold its "
            "resources and wake up later still believing it owns them",
            "set `watchdog /dev/watchdog` in ha.cf, or `watchdog-device = /dev/watchdog` in "
            "watchdog.conf (softdog when the machine has no hardware watchdog)",
            wd.source if wd is not None else None,
        )
    ]


def rule_auto_failback(config: Configuration) -> list[Finding]:
    fix = (
        "let the service stay where it runs: auto_failback off (R1), or resource-stickiness "
        "higher than the location score (rsc_defaults resource-stickiness=INFINITY, or 200 "
        "over a 100 preference); move it back by hand at a quiet time"
    )
    why = (
        "a node that comes back takes its resources back at once: every failure costs two "
        "outages (the failover and the failback), the second one right after repair, when the "
        "node is least proven"
    )
    if config.cib is None or config.r1:
        hacf = config.hacf
        if hacf is None:
            return []
        if hacf.auto_failback == "on" or (hacf.auto_failback == "legacy" and config.r1):
            setting = "on" if hacf.auto_failback == "on" else "legacy (heartbeat's default)"
            return [
                Finding(
                    "auto-failback",
                    "warning",
                    f"auto_failback {setting}: resources move back to their preferred node",
                    why,
                    fix,
                    config.where_hacf("auto_failback"),
                )
            ]
        return []
    out: list[Finding] = []
    for loc in _location_preferences(config.cib):
        assert loc.rsc is not None and loc.node is not None
        stickiness = _stickiness(config.cib, loc.rsc)
        score = parse_score(loc.score)
        if stickiness >= score or stickiness >= INFINITY:
            continue
        out.append(
            Finding(
                "auto-failback",
                "warning",
                f"{loc.rsc} prefers {loc.node} (score {loc.score}) with resource-stickiness "
                f"{stickiness}: it moves back to {loc.node} whenever {loc.node} returns",
                why,
                fix,
                config.where_cib(loc.line),
            )
        )
    return out


RULES: tuple[Callable[[Configuration], list[Finding]], ...] = (
    rule_one_node,
    rule_single_link,
    rule_links_one_interface,
    rule_single_ping_node,
    rule_no_fencing,
    rule_fencing_via_heartbeat,
    rule_two_node,
    rule_async_replication,
    rule_no_monitor,
    rule_no_watchdog,
    rule_auto_failback,
)

_ORDER = {"spof": 0, "warning": 1, "info": 2}


def find_spofs(config: Configuration) -> list[Finding]:
    """Every finding of every rule, SPOFs first (rule order within a severity)."""
    found = [f for rule in RULES for f in rule(config)]
    return sorted(found, key=lambda f: _ORDER[f.severity])


# --------------------------------------------------------------------------------------------
# The availability estimate: a series/parallel model of the service as configured
#
# hastack.availability.model is imported where it is used, so the findings above never depend
# on it. The service is up when all of these are: the nodes (in parallel: one is enough), the
# heartbeat media (in parallel; links on one interface share that interface's NIC and switch,
# which the model counts once, so they add nothing), the ping nodes when there are any, the
# replicated disks when DRBD is used (in parallel), the application, and one risk component per
# SPOF the rules found that a fault tree of parts cannot show (no fencing, a fence race, a fence
# path through the heartbeat, asynchronous replication, failback). Simplifications: one NIC
# component stands for that interface on every node, a hang without a watchdog is a longer
# repair of the node's OS, a missing monitor a longer repair of the application.

# hastack analyze's own kinds, on top of the model's defaults: ASSUMPTIONS, like those.
ANALYZE_FIGURES: dict[str, dict[str, object]] = {
    "os_watchdog": {
        "mttf": 8_760,
        "mttr": 0.1,
        "note": "OS hang/panic ~once a year; the watchdog resets the node in minutes",
    },
    "application_monitored": {
        "mttf": 2_190,
        "mttr": 0.05,
        "note": "app crash ~every 3 months; the monitor restarts it in ~3 min",
    },
    "split_brain": {
        "mttf": 8_760,
        "mttr": 8,
        "note": "no fencing: ~once a year a partition or hang runs the service twice; a "
        "working day to reconcile the data",
    },
    "fence_race": {
        "mttf": 17_520,
        "mttr": 0.25,
        "note": "two nodes without a tie-breaker shoot each other ~every two years; both reboot",
    },
    "fence_path": {
        "mttf": 200_000,
        "mttr": 8,
        "note": "the heartbeat NIC/port fails and the fence request cannot leave: failover "
        "stalls until it is repaired",
    },
    "async_loss": {
        "mttf": 50_000,
        "mttr": 8,
        "note": "each unplanned failover of the primary (a server failure) loses the writes "
        "in flight; a day to find and redo them",
    },
    "failback": {
        "mttf": 50_000,
        "mttr": 0.05,
        "note": "each repaired server takes its resources back: one more short outage",
    },
}

# What each finding changes in the model when it is fixed (see _service_model).
FIXABLE = (
    "one-node",
    "single-heartbeat-link",
    "links-one-interface",
    "single-ping-node",
    "no-fencing",
    "fencing-via-heartbeat-link",
    "two-node-fence-race",
    "async-replication",
    "no-monitor",
    "no-watchdog",
    "auto-failback",
)


def analyze_figures(overrides_file: str | None = None) -> dict[str, Figure]:
    """The model's default figures plus ANALYZE_FIGURES, overridden by a TOML file."""
    from hastack.availability.model import DEFAULT_FIGURES, figures_from_dict, load_figures

    figures = figures_from_dict(ANALYZE_FIGURES, DEFAULT_FIGURES, source="hastack analyze")
    if overrides_file is not None:
        figures = load_figures(overrides_file, base=figures)
    return dict(figures)


def _service_model(
    config: Configuration, found: set[str], spof_found: set[str], figures: Mapping[str, Figure]
) -> Block:
    """The model with the findings in `found` present (`spof_found`: those with severity spof)."""
    from hastack.availability.model import Parallel, Series, component

    def part(kind: str, name: str) -> Block:
        return component(kind, figures, name)

    blocks: list[Block] = []
    count = max(len(config.nodes), 1)
    if "one-node" not in found:
        count = max(count, 2)
    os_kind = "os" if "no-watchdog" in found else "os_watchdog"
    names = list(config.nodes) or [f"node{i}" for i in range(1, count + 1)]
    names += [f"node{i}" for i in range(len(names) + 1, count + 1)]
    nodes: list[Block] = [
        Series([part("server", f"server {n}"), part(os_kind, f"os {n}")], name=n)
        for n in names[:count]
    ]
    blocks.append(Parallel(nodes, name="nodes") if len(nodes) > 1 else nodes[0])

    if config.hacf is not None:
        media: list[Block] = []
        for link in config.hacf.links:
            if link.kind == "serial":
                media.append(part("network_link", f"serial {link.device}"))
                continue
            iface = link.interface
            media.append(
                Series(
                    [part("nic", f"nic {iface}"), part("network_switch", f"switch {iface}")],
                    name=link.name,
                )
            )
        if _link_fixed(config, found):
            # the fix: a second medium on an interface and a switch of its own
            media.append(
                Series(
                    [part("nic", "nic (added)"), part("network_switch", "switch (added)")],
                    name="link (added)",
                )
            )
        blocks.append(Parallel(media, name="heartbeat") if len(media) > 1 else media[0])

    pings = _ping_nodes(config)
    if pings:
        if "single-ping-node" not in found and len(pings) == 1:
            pings.append("ping (added)")
        routers: list[Block] = [part("network_switch", f"ping {p}") for p in pings]
        blocks.append(Parallel(routers, name="ping nodes") if len(routers) > 1 else routers[0])

    if config.drbd is not None and any(drbd_users(config, r)[0] for r in config.drbd.resources):
        disks: list[Block] = [part("disk", f"disk {n}") for n in names[: max(count, 2)]]
        blocks.append(Parallel(disks, name="replicated disk"))

    if config.cib is not None and config.primitives():
        app_kind = "application" if "no-monitor" in spof_found else "application_monitored"
        blocks.append(part(app_kind, "application"))

    risks = {
        "no-fencing": "split_brain",
        "two-node-fence-race": "fence_race",
        "fencing-via-heartbeat-link": "fence_path",
        "async-replication": "async_loss",
        "auto-failback": "failback",
    }
    for finding_id, kind in risks.items():
        if finding_id in spof_found or (finding_id == "auto-failback" and finding_id in found):
            blocks.append(part(kind, kind.replace("_", " ")))
    return Series(blocks, name="service")


def service_model(
    config: Configuration, findings: list[Finding], figures: Mapping[str, Figure] | None = None
) -> Block:
    """The series/parallel model of the service as configured, with these findings: the one
    `estimate` evaluates (public so that it can be checked, e.g. by a Monte-Carlo run)."""
    figures = figures if figures is not None else analyze_figures()
    found = {f.id for f in findings if f.id in FIXABLE}
    spofs = {f.id for f in findings if f.id in FIXABLE and f.severity == "spof"}
    return _service_model(config, found, spofs, figures)


def _link_fixed(config: Configuration, found: set[str]) -> bool:
    """A second medium is added when a link finding the configuration has is fixed."""
    has = {f.id for f in rule_single_link(config) + rule_links_one_interface(config)}
    return bool(has) and not (has & found)


def _ping_nodes(config: Configuration) -> list[str]:
    pings: list[str] = []
    if config.hacf is not None:
        pings += list(config.hacf.ping)
        pings += [f"group {g.name}" for g in config.hacf.ping_groups]
    for p in config.primitives():
        if p.type in PING_AGENTS:
            pings += params(p).get("host_list", "").split()
    return pings


@dataclass(frozen=True)
class FixGain:
    finding: str  # a finding id
    availability: float
    nines: float
    added_nines: float
    downtime_saved_per_year: float  # seconds


@dataclass(frozen=True)
class Estimate:
    availability: float
    nines: float
    downtime_per_year: float  # seconds
    fixes: tuple[FixGain, ...]  # one per fixable finding id the model shows, in report order
    all_fixed: FixGain | None  # every fix at once; None when the model shows no fix
    model: dict[str, object]  # the model's structure and figures (for --json)
    # Finding ids whose fix leaves the model unchanged (a warning the model has no part for,
    # such as a fence device without a monitor): their gain is unknown, not zero.
    not_modelled: tuple[str, ...] = ()


def estimate(
    config: Configuration, findings: list[Finding], figures: Mapping[str, Figure] | None = None
) -> Estimate:
    """The service's availability as configured, and with each fix applied (one at a time,
    then all together): the model is rebuilt without the finding, not patched."""
    from hastack.availability.model import compare

    figures = figures if figures is not None else analyze_figures()
    found = {f.id for f in findings if f.id in FIXABLE}
    spofs = {f.id for f in findings if f.id in FIXABLE and f.severity == "spof"}
    base = service_model(config, findings, figures)
    base_shape = base.to_dict()
    gains: list[FixGain] = []
    not_modelled: list[str] = []

    def gain(label: str, without: set[str]) -> FixGain | None:
        after = _service_model(config, found - without, spofs - without, figures)
        if after.to_dict() == base_shape:
            # the model has no part for this finding: "+0 nines" would be a claim it cannot make
            return None
        g = compare(base, after)
        return FixGain(label, g.after, g.after_nines, g.added_nines, g.downtime_saved_per_year)

    for finding_id in [i for i in FIXABLE if i in found]:
        one = gain(finding_id, {finding_id})
        if one is None:
            not_modelled.append(finding_id)
        else:
            gains.append(one)
    all_fixed = gain("all", set(found)) if gains else None
    return Estimate(
        availability=base.availability(),
        nines=base.nines(),
        downtime_per_year=base.downtime_per_year(),
        fixes=tuple(gains),
        all_fixed=all_fixed,
        model=base_shape,
        not_modelled=tuple(not_modelled),
    )
