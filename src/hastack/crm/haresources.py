"""Convert heartbeat R1's haresources (plus ha.cf's auto_failback) into an equivalent CIB.

Each haresources line `NODE res1 res2::arg::arg ...` is one resource group that heartbeat
starts left to right on NODE (its preferred node) and stops right to left. The CIB gets:

- one `<group>` per line (ordered and colocated as Pacemaker groups are), or a lone
  `<primitive>` when the line has one resource; ids are made from the resources
  (`IPaddr2_10_0_0_1`, `Filesystem_srv_data`, `httpd`) and the group is `group_N` (N counts
  lines from 1);
- an `rsc_location` preferring NODE with score 100 — the score haresources2cib.py used (a rule
  `#uname eq NODE`; here the equivalent `node=` form) — so the group may run elsewhere when NODE
  is down;
- `resource-stickiness` in rsc_defaults from auto_failback: `on` -> 0 (the group moves back to
  NODE when NODE returns), `off` -> INFINITY (it stays where it runs), `legacy` -> 0: heartbeat's
  legacy mode fails back unless nice_failback was set, and nice_failback is obsolete and refused
  by hastack's ha.cf reader;
- `stonith-enabled=false` and `no-quorum-policy=ignore`: an R1 cluster neither required fencing
  nor stopped resources without quorum, and the converted CIB behaves the same (a cluster with
  fencing devices should turn stonith back on);
- a monitor op (30 s interval, 60 s timeout) on every primitive, and a 60 s default op timeout
  (R1 scripts ran without a timeout).

How a resource is named:

- a bare IPv4 address `10.0.0.1[/MASK[/NIC[/BROADCAST]]]`, `IPaddr::...` and `IPaddr2::...` ->
  `ocf:heartbeat:IPaddr2` with `ip`, `cidr_netmask` (bits; a dotted mask is converted), `nic`,
  `broadcast`;
- `Filesystem::DEVICE::DIRECTORY[::FSTYPE[::OPTIONS]]` -> `ocf:heartbeat:Filesystem` with
  `device`, `directory`, `fstype`, `options`;
- `NAME::ARG...` (any other name with arguments) -> `heartbeat:NAME`, the R1 script run with its
  positional arguments (only R1 scripts take them): the CIB stores them as instance attributes
  `1`, `2`, ... as Pacemaker passes them to heartbeat-class agents;
- a bare `NAME`: heartbeat looks it up first in `resource.d/` next to ha.cf, then in
  `/etc/init.d`. When `r1_scripts` (the names found in that resource.d) holds NAME it becomes
  `heartbeat:NAME`, otherwise `lsb:NAME` (the init script).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from hastack.config.errors import ConfigError, ConfigProblem
from hastack.config.model import Source

AutoFailback = Literal["on", "off", "legacy"]

LOCATION_SCORE = "100"
MONITOR_INTERVAL = "30s"
MONITOR_TIMEOUT = "60s"
DEFAULT_OP_TIMEOUT = "60s"
VALIDATE_WITH = "pacemaker-3.7"

_NODE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
_SCRIPT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*")
_IPV4_START_RE = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?:/.*)?")


@dataclass(frozen=True)
class R1Resource:
    """One haresources entry, as written and as converted."""

    text: str
    line: int
    cls: str  # ocf, heartbeat or lsb
    provider: str | None
    type: str
    params: tuple[tuple[str, str], ...]
    base_id: str  # the id before making it unique


@dataclass(frozen=True)
class HaresourcesLine:
    line: int
    node: str
    resources: tuple[R1Resource, ...]


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line, text) of each logical line: `\\` continues, `#` starts a comment."""
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not pending:
            start = number
        continued = line.endswith("\\")
        if continued:
            line = line[:-1]
        line = re.sub(r"(^|\s)#.*$", "", line)
        pending.append(line)
        if not continued:
            joined = " ".join(pending).strip()
            if joined:
                result.append((start, joined))
            pending = []
    if pending:
        joined = " ".join(pending).strip()
        if joined:
            result.append((start, joined))
    return result


class _Bad(ValueError):
    pass


def _netmask_bits(mask: str) -> str:
    if mask.isdigit():
        if not 0 <= int(mask) <= 32:
            raise _Bad(f"netmask /{mask} is not 0-32 bits")
        return str(int(mask))
    try:
        return str(ipaddress.IPv4Network(f"0.0.0.0/{mask}").prefixlen)
    except ValueError:
        raise _Bad(
            f"{mask!r} is not a netmask (bits like 24, or dotted like 255.255.255.0)"
        ) from None


def _ip_params(spec: str) -> tuple[tuple[str, str], ...]:
    parts = spec.split("/")
    if len(parts) > 4:
        raise _Bad(f"{spec!r}: write ADDRESS[/MASK[/NIC[/BROADCAST]]]")
    address = parts[0]
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        raise _Bad(f"{address!r} is not an IPv4 address") from None
    params = [("ip", address)]
    if len(parts) > 1 and parts[1]:
        params.append(("cidr_netmask", _netmask_bits(parts[1])))
    if len(parts) > 2 and parts[2]:
        nic = parts[2]
        if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,15}(?::[A-Za-z0-9_]+)?", nic):
            raise _Bad(f"{nic!r} is not a network interface name (like eth0)")
        params.append(("nic", nic))
    if len(parts) > 3 and parts[3]:
        try:
            ipaddress.IPv4Address(parts[3])
        except ValueError:
            raise _Bad(f"broadcast {parts[3]!r} is not an IPv4 address") from None
        params.append(("broadcast", parts[3]))
    return tuple(params)


def _id_part(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
    return cleaned or "x"


def _resource(text: str, line: int, r1_scripts: Collection[str]) -> R1Resource:
    if _IPV4_START_RE.fullmatch(text):
        name, args = "IPaddr", [text]
    else:
        name, _, rest = text.partition("::")
        args = rest.split("::") if rest else []
        if not _SCRIPT_RE.fullmatch(name):
            raise _Bad(
                f"{text!r}: the resource name {name!r} may hold only letters, digits and "
                "_ . @ + - (write NAME or NAME::ARG::ARG)"
            )
    if name in ("IPaddr", "IPaddr2"):
        if len(args) != 1:
            raise _Bad(f"{text!r}: write {name}::ADDRESS[/MASK[/NIC[/BROADCAST]]]")
        params = _ip_params(args[0])
        return R1Resource(
            text, line, "ocf", "heartbeat", "IPaddr2", params, f"IPaddr2_{_id_part(params[0][1])}"
        )
    if name == "Filesystem":
        if not 2 <= len(args) <= 4 or not args[0] or not args[1]:
            raise _Bad(f"{text!r}: write Filesystem::DEVICE::DIRECTORY[::FSTYPE[::OPTIONS]]")
        if not args[1].startswith("/"):
            raise _Bad(f"{text!r}: the mount point {args[1]!r} is not an absolute path")
        keys = ("device", "directory", "fstype", "options")
        params = tuple((k, v) for k, v in zip(keys, args, strict=False) if v)
        return R1Resource(
            text, line, "ocf", "heartbeat", "Filesystem", params, f"Filesystem_{_id_part(args[1])}"
        )
    args = [a for a in args if a]  # heartbeat passes them unquoted: empty ones vanish
    if args:
        params = tuple((str(i), a) for i, a in enumerate(args, start=1))
        base = _id_part("_".join([name, *args]))[:60]
        return R1Resource(text, line, "heartbeat", None, name, params, base)
    cls = "heartbeat" if name in r1_scripts else "lsb"
    return R1Resource(text, line, cls, None, name, (), _id_part(name))


def parse_haresources(
    text: str, source: str, nodes: Collection[str] = (), r1_scripts: Collection[str] = ()
) -> list[HaresourcesLine]:
    """The lines of a haresources file; raises ConfigError naming file:line for every problem.

    `nodes`, when given (ha.cf's `node` list), is checked: every line's node must be one.
    """
    problems: list[ConfigProblem] = []
    result: list[HaresourcesLine] = []
    first_use: dict[str, int] = {}
    for number, logical in _logical_lines(text):
        where = Source(source, number)
        words = logical.split()
        node = words[0]
        if not _NODE_RE.fullmatch(node):
            problems.append(
                ConfigProblem(
                    where,
                    f"{node!r} is not a node name (letters, digits, '-', '_', '.'); a line is "
                    "NODE RESOURCE [RESOURCE...]",
                )
            )
            continue
        if nodes and node not in nodes:
            problems.append(
                ConfigProblem(
                    where, f"node {node!r} is not one of ha.cf's nodes ({', '.join(nodes)})"
                )
            )
        if len(words) == 1:
            problems.append(ConfigProblem(where, f"node {node!r} is given no resources"))
            continue
        resources: list[R1Resource] = []
        for word in words[1:]:
            try:
                resource = _resource(word, number, r1_scripts)
            except _Bad as exc:
                problems.append(ConfigProblem(where, str(exc)))
                continue
            if word in first_use:
                problems.append(
                    ConfigProblem(
                        where,
                        f"{word!r} is already managed by line {first_use[word]}; a resource "
                        "belongs to one group",
                    )
                )
                continue
            first_use[word] = number
            resources.append(resource)
        result.append(HaresourcesLine(number, node, tuple(resources)))
    if problems:
        raise ConfigError(problems)
    if not result:
        raise ConfigError(ConfigProblem(Source(source, 1), "no resources: the file is empty"))
    return result


def stickiness(auto_failback: AutoFailback) -> str:
    """resource-stickiness for an auto_failback setting (see the module docstring)."""
    if auto_failback == "off":
        return "INFINITY"
    if auto_failback in ("on", "legacy"):
        return "0"
    raise ValueError(f"auto_failback {auto_failback!r} is not on, off or legacy")


class _Ids:
    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, base: str) -> str:
        if not re.match(r"[A-Za-z_]", base):
            base = f"r_{base}"
        candidate, n = base, 1
        while candidate in self.used:
            n += 1
            candidate = f"{base}_{n}"
        self.used.add(candidate)
        return candidate


def _nvset(parent: etree._Element, tag: str, set_id: str, pairs: Sequence[tuple[str, str]]) -> None:
    nvset = etree.SubElement(parent, tag, id=set_id)
    for name, value in pairs:
        etree.SubElement(nvset, "nvpair", id=f"{set_id}-{_id_part(name)}", name=name, value=value)


def _primitive(parent: etree._Element, resource: R1Resource, rsc_id: str) -> None:
    attrs = {"id": rsc_id, "class": resource.cls}
    if resource.provider:
        attrs["provider"] = resource.provider
    attrs["type"] = resource.type
    primitive = etree.SubElement(parent, "primitive", attrs)
    primitive.append(etree.Comment(f" haresources line {resource.line}: {resource.text} "))
    if resource.params:
        _nvset(primitive, "instance_attributes", f"{rsc_id}-instance_attributes", resource.params)
    ops = etree.SubElement(primitive, "operations")
    etree.SubElement(
        ops,
        "op",
        id=f"{rsc_id}-monitor-{MONITOR_INTERVAL}",
        name="monitor",
        interval=MONITOR_INTERVAL,
        timeout=MONITOR_TIMEOUT,
    )


def build_cib(
    lines: Sequence[HaresourcesLine],
    auto_failback: AutoFailback = "legacy",
    nodes: Sequence[str] = (),
    source: str = "haresources",
    fencing: bool = False,
) -> bytes:
    """The CIB for parsed haresources lines (pretty XML, no status section). `fencing`:
    ha.cf configures stonith devices, so a lost node is fenced before its resources move, as
    heartbeat R1 does (the devices themselves stay in ha.cf: the fencer reads them there)."""
    cib = etree.Element(
        "cib",
        {
            "validate-with": VALIDATE_WITH,
            "admin_epoch": "0",
            "epoch": "1",
            "num_updates": "0",
        },
    )
    cib.append(etree.Comment(f" converted by hastack convert haresources from {source} "))
    config = etree.SubElement(cib, "configuration")
    crm_config = etree.SubElement(config, "crm_config")
    _nvset(
        crm_config,
        "cluster_property_set",
        "cib-bootstrap-options",
        [("stonith-enabled", "true" if fencing else "false"), ("no-quorum-policy", "ignore")],
    )
    nodes_el = etree.SubElement(config, "nodes")
    all_nodes = list(dict.fromkeys([*nodes, *(line.node for line in lines)]))
    for name in all_nodes:
        etree.SubElement(nodes_el, "node", id=name, uname=name)
    resources = etree.SubElement(config, "resources")
    constraints = etree.SubElement(config, "constraints")
    ids = _Ids()
    ids.used.update(["cib-bootstrap-options", "rsc-options", "op-options", *all_nodes])
    for index, line in enumerate(lines, start=1):
        if len(line.resources) == 1:
            top_id = ids.make(line.resources[0].base_id)
            _primitive(resources, line.resources[0], top_id)
        else:
            top_id = ids.make(f"group_{index}")
            group = etree.SubElement(resources, "group", id=top_id)
            group.append(etree.Comment(f" haresources line {line.line} "))
            for resource in line.resources:
                _primitive(group, resource, ids.make(resource.base_id))
        etree.SubElement(
            constraints,
            "rsc_location",
            id=ids.make(f"location_{top_id}_{_id_part(line.node)}"),
            rsc=top_id,
            node=line.node,
            score=LOCATION_SCORE,
        )
    rsc_defaults = etree.SubElement(config, "rsc_defaults")
    _nvset(
        rsc_defaults,
        "meta_attributes",
        "rsc-options",
        [("resource-stickiness", stickiness(auto_failback))],
    )
    op_defaults = etree.SubElement(config, "op_defaults")
    _nvset(op_defaults, "meta_attributes", "op-options", [("timeout", DEFAULT_OP_TIMEOUT)])
    etree.SubElement(cib, "status")
    return etree.tostring(cib, pretty_print=True, encoding="UTF-8", xml_declaration=False)


def convert_haresources(
    text: str,
    source: str,
    auto_failback: AutoFailback = "legacy",
    nodes: Sequence[str] = (),
    r1_scripts: Collection[str] = (),
    fencing: bool = False,
) -> bytes:
    """haresources text -> CIB XML bytes; raises ConfigError (file:line) on bad input."""
    stickiness(auto_failback)  # refuse a bad value before reading anything
    lines = parse_haresources(text, source, nodes, r1_scripts)
    return build_cib(lines, auto_failback, nodes, source, fencing)
