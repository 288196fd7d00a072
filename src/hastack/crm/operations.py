"""Operator commands as pure CIB operations: one JSON-able dict in, the <cib> tree changed.

An operation is a dict such as ``{"op": "resource-move", "resource": "web", "node": "n2",
"lifetime": "PT10M"}``. The command line builds it and sends it through the local node's
control socket to the DC, which applies it to the current CIB with
``edit.apply_edit(data, source, operation_edit(operation, now))`` — all or nothing, with the
version counters bumped and the result validated. :data:`SCHEMA` lists every operation and its
fields; :func:`validate_operation` checks a dict against it.

Wherever Pacemaker has a tool for the operation, the CIB reads as that tool leaves it:

- moves and bans are crm_resource's: ``cli-prefer-RSC`` (score INFINITY) and
  ``cli-ban-RSC-on-NODE`` (-INFINITY) location constraints with ``role="Started"`` (or
  ``Promoted``), and with a lifetime the rule crm_resource 2.1.5 writes (``#uname eq NODE``
  and ``date_expression operation="lt" end="YYYY-MM-DD HH:MM:SSZ"``);
- node attributes (standby, maintenance) and cluster options are crm_attribute's nvpairs
  (``nodes-ID-NAME``, ``status-ID-NAME``, ``cib-bootstrap-options-NAME``), through
  :func:`hastack.crm.cib.edit.set_attribute`;
- new resources and constraints get the ids pcs gives them (``RSC-instance_attributes``,
  ``RSC-monitor-interval-10s``, ``RSC-clone``, ``location-RSC-NODE-SCORE``, ...).

``until_moved`` (a move or ban that ends when the resource has moved) is hastack's own. It is
recorded in the constraint itself, so that it survives every copy of the CIB and Pacemaker
reads the constraint unchanged: the constraint takes the rule form and its rule holds one more
expression, ``<expression id="...-until-moved" attribute="#hastack-until-moved"
operation="not_defined"/>`` — always true, since no node has that attribute, so the
constraint places resources exactly as without it. :func:`clear_moved_pins` (the controller
calls it after each transition) removes such a pin once the move happened: a preference when
the resource is active on its node, a ban when it is active and not on the banned node.

``resource-restart`` is a runtime request the daemon carries out; it is in the schema (so the
daemon can validate it) but :func:`apply_operation` refuses it. ``resource-cleanup`` and
``resource-refresh`` are the status-section edits the DC makes for crm_resource's
``--cleanup`` and ``--refresh``: refresh deletes the resource's whole history (on one node or
all) and its fail counts, so that it is probed again; cleanup does so only where the history
holds a failure, or with ``operation`` (and ``interval``) deletes just those failed entries
and their ``fail-count-RSC#OP_INTERVAL``/``last-failure-...`` attributes.

heartbeat R1's commands work on any CIB (a converted haresources file has one group, or lone
primitive, per line, preferred on its line's node with score 100). A resource's *home* is the
node its highest positive location score names (cli-* pins aside); groups and primitives at
the top level are considered, clones (which run everywhere) are left alone:

- ``standby`` (hb_standby ``[all|foreign|local]``): every selected resource active on the node
  (all; local: home is this node; foreign: home is another node or none) gets a
  ``cli-ban-RSC-on-NODE`` with until_moved, so it moves to another node and the ban is cleared
  once it has; refused when no other node is online and out of standby. After the ban is
  cleared, placement is the configuration's again: with auto_failback off (stickiness
  INFINITY) the resources stay where they went; with auto_failback on (stickiness 0) a
  resource whose home is this node comes back to it — use ``resource-ban`` with a lifetime to
  keep it away longer.
- ``takeover`` (hb_takeover ``[all|foreign|local]``): every selected resource not already
  active (only) on the node gets a ``cli-prefer-RSC`` on the node and a ``cli-ban`` from each
  node it runs on now (a preference alone does not beat auto_failback off's INFINITY
  stickiness), both until moved, after any ban of it from this node and its previous
  preference are removed; refused when the node is offline or in standby.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from hastack.crm.cib.edit import AttributeOwner, EditError, set_attribute

__all__ = [
    "CLUSTER_OPTIONS",
    "SCHEMA",
    "OperationError",
    "apply_operation",
    "clear_moved_pins",
    "expire_pins",
    "list_constraints",
    "list_pins",
    "operation_edit",
    "validate_operation",
]

INFINITY = "INFINITY"
UNTIL_MOVED_ATTRIBUTE = "#hastack-until-moved"
_RESOURCE_TAGS = ("primitive", "group", "clone", "master", "bundle")
_CONSTRAINT_TAGS = ("rsc_location", "rsc_colocation", "rsc_order", "rsc_ticket")
_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_SCORE_RE = re.compile(r"[+-]?(\d+|INFINITY)", re.IGNORECASE)
_TRUE = ("true", "yes", "on", "y", "1")

# Cluster options Pacemaker 2.1.5 knows (the schedulerd, controld and based metadata), plus
# the names its own tools still write or older CIBs carry.
CLUSTER_OPTIONS: tuple[str, ...] = (
    "batch-limit",
    "cluster-delay",
    "cluster-infrastructure",
    "cluster-ipc-limit",
    "cluster-name",
    "cluster-recheck-interval",
    "concurrent-fencing",
    "dc-deadtime",
    "dc-version",
    "election-timeout",
    "enable-acl",
    "enable-startup-probes",
    "fence-reaction",
    "have-watchdog",
    "join-finalization-timeout",
    "join-integration-timeout",
    "last-lrm-refresh",
    "load-threshold",
    "maintenance-mode",
    "migration-limit",
    "no-quorum-policy",
    "node-action-limit",
    "node-health-base",
    "node-health-green",
    "node-health-red",
    "node-health-strategy",
    "node-health-yellow",
    "pe-error-series-max",
    "pe-input-series-max",
    "pe-warn-series-max",
    "placement-strategy",
    "priority-fencing-delay",
    "remove-after-stop",
    "shutdown-escalation",
    "shutdown-lock",
    "shutdown-lock-limit",
    "start-failure-is-fatal",
    "startup-fencing",
    "stonith-action",
    "stonith-enabled",
    "stonith-max-attempts",
    "stonith-timeout",
    "stonith-watchdog-timeout",
    "stop-all-resources",
    "stop-orphan-actions",
    "stop-orphan-resources",
    "symmetric-cluster",
    "transition-delay",
    # hastack's own: how often the fencer checks every fence device (hastack.fencing)
    "fence-check-interval",
    # deprecated, still read by 2.1.5
    "crmd-transition-delay",
    "default-action-timeout",
    "default-resource-stickiness",
    "expected-quorum-votes",
    "is-managed-default",
)


class OperationError(EditError):
    """An operation that cannot be applied (or is malformed); nothing was changed."""


# --------------------------------------------------------------------------------------------
# The schema


@dataclass(frozen=True)
class Field:
    """One field of an operation: its kind (``str``, ``bool``, ``map`` of str to str,
    ``nmap`` of str to str or null, ``nstr`` str or null, ``ops`` a list of maps of str to
    str) and whether it must be given."""

    kind: str
    required: bool = False


def _f(kind: str, required: bool = False) -> Field:
    return Field(kind, required)


_NODE_LIFETIME = {"node": _f("str", True), "lifetime": _f("str")}
SCHEMA: dict[str, dict[str, Field]] = {
    "resource-create": {
        "id": _f("str", True),
        "agent": _f("str", True),
        "params": _f("map"),
        "meta": _f("map"),
        "ops": _f("ops"),
        "group": _f("str"),
        "before": _f("str"),
        "after": _f("str"),
        "clone": _f("bool"),
        "promotable": _f("bool"),
        "clone_id": _f("str"),
    },
    "resource-delete": {"resource": _f("str", True)},
    "resource-update": {
        "resource": _f("str", True),
        "params": _f("nmap"),
        "meta": _f("nmap"),
        "ops": _f("ops"),
        "remove_ops": _f("ops"),
    },
    "resource-enable": {"resource": _f("str", True)},
    "resource-disable": {"resource": _f("str", True)},
    "resource-manage": {"resource": _f("str", True)},
    "resource-unmanage": {"resource": _f("str", True)},
    "resource-move": {
        "resource": _f("str", True),
        "node": _f("str"),
        "lifetime": _f("str"),
        "promoted": _f("bool"),
        "until_moved": _f("bool"),
        "force": _f("bool"),
    },
    "resource-ban": {
        "resource": _f("str", True),
        "node": _f("str"),
        "lifetime": _f("str"),
        "promoted": _f("bool"),
        "until_moved": _f("bool"),
    },
    "resource-clear": {"resource": _f("str", True), "node": _f("str"), "expired": _f("bool")},
    "resource-cleanup": {
        "resource": _f("str"),
        "node": _f("str"),
        "operation": _f("str"),
        "interval": _f("str"),
    },
    "resource-refresh": {"resource": _f("str"), "node": _f("str")},
    "resource-restart": {"resource": _f("str", True), "node": _f("str")},
    "constraint-location": {
        "id": _f("str"),
        "resource": _f("str"),
        "resource_pattern": _f("str"),
        "node": _f("str", True),
        "score": _f("str"),
        "role": _f("str"),
    },
    "constraint-colocation": {
        "id": _f("str"),
        "resource": _f("str", True),
        "with": _f("str", True),
        "score": _f("str"),
        "role": _f("str"),
        "with_role": _f("str"),
    },
    "constraint-order": {
        "id": _f("str"),
        "first": _f("str", True),
        "then": _f("str", True),
        "first_action": _f("str"),
        "then_action": _f("str"),
        "kind": _f("str"),
        "symmetrical": _f("bool"),
    },
    "constraint-remove": {"id": _f("str", True)},
    "constraint-location-rule": {
        "id": _f("str", True),
        "resource": _f("str", True),
        "score": _f("str"),
        "role": _f("str"),
        "attribute": _f("str", True),
        "operation": _f("str", True),
        "value": _f("str"),
        "replace": _f("bool"),
    },
    "node-standby": dict(_NODE_LIFETIME),
    "node-unstandby": {"node": _f("str", True)},
    "node-maintenance": {**_NODE_LIFETIME, "on": _f("bool")},
    "node-attribute": {**_NODE_LIFETIME, "name": _f("str", True), "value": _f("nstr")},
    "property-set": {"name": _f("str", True), "value": _f("str", True), "force": _f("bool")},
    "property-delete": {"name": _f("str", True)},
    "rsc-defaults-set": {"name": _f("str", True), "value": _f("nstr")},
    "op-defaults-set": {"name": _f("str", True), "value": _f("nstr")},
    "standby": {"node": _f("str", True), "which": _f("str")},
    "takeover": {"node": _f("str", True), "which": _f("str")},
}
RUNTIME_OPERATIONS = ("resource-restart",)
_KIND_TEXT = {
    "str": "a string",
    "nstr": "a string or null",
    "bool": "true or false",
    "map": "an object of string values",
    "nmap": "an object of string (or null) values",
    "ops": "a list of objects of string values",
}


def _kind_ok(kind: str, value: Any) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "nstr":
        return value is None or isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("map", "nmap"):
        return isinstance(value, Mapping) and all(
            isinstance(k, str) and (isinstance(v, str) or (kind == "nmap" and v is None))
            for k, v in value.items()
        )
    if kind == "ops":
        return isinstance(value, list) and all(
            isinstance(item, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in item.items())
            for item in value
        )
    raise AssertionError(kind)


def validate_operation(operation: Any) -> dict[str, Any]:
    """The operation as a plain dict after checking it against :data:`SCHEMA`; raises
    OperationError naming the unknown op, the missing or extra field, or the bad type."""
    if not isinstance(operation, Mapping):
        raise OperationError(f"an operation is a JSON object, not {type(operation).__name__}")
    name = operation.get("op")
    if not isinstance(name, str):
        raise OperationError('an operation needs an "op" string naming it')
    fields = SCHEMA.get(name)
    if fields is None:
        raise OperationError(f"unknown operation {name!r}; the operations are: {', '.join(SCHEMA)}")
    extra = sorted(k for k in operation if k != "op" and k not in fields)
    if extra:
        raise OperationError(
            f"{name}: unknown field{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}; "
            f"the fields are: {', '.join(fields)}"
        )
    for key, spec in fields.items():
        if key not in operation:
            if spec.required:
                raise OperationError(f"{name}: the field {key!r} is required")
            continue
        if not _kind_ok(spec.kind, operation[key]):
            raise OperationError(
                f"{name}: {key!r} must be {_KIND_TEXT[spec.kind]}, not {operation[key]!r}"
            )
        if spec.kind == "str" and not operation[key]:
            raise OperationError(f"{name}: {key!r} is empty")
    return dict(operation)


# --------------------------------------------------------------------------------------------
# Finding things in the tree


def _config(root: etree._Element) -> etree._Element:
    if root.tag != "cib":
        raise OperationError(f"the document's root element is <{root.tag}>, not <cib>")
    config = root.find("configuration")
    if config is None:
        raise OperationError("the CIB has no <configuration> section")
    return config


def _section(root: etree._Element, name: str) -> etree._Element:
    config = _config(root)
    found = config.find(name)
    if found is None:
        found = etree.SubElement(config, name)
    return found


def _resource_elements(root: etree._Element) -> list[etree._Element]:
    resources = _config(root).find("resources")
    return [] if resources is None else list(resources.iter(*_RESOURCE_TAGS))


def _list(names: list[str], limit: int = 20) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _resource(root: etree._Element, rsc: str) -> etree._Element:
    found = [e for e in _resource_elements(root) if e.get("id") == rsc]
    if not found:
        known = sorted(e.get("id") or "" for e in _resource_elements(root))
        raise OperationError(f"no resource {rsc!r}; the resources are: {_list(known)}")
    return found[0]


def _node_names(root: etree._Element) -> list[str]:
    nodes = _config(root).find("nodes")
    if nodes is None:
        return []
    return [n.get("uname") or n.get("id") or "" for n in nodes.findall("node")]


def _check_node(root: etree._Element, node: str) -> None:
    names = _node_names(root)
    if node not in names:
        raise OperationError(f"no node {node!r}; the nodes are: {_list(sorted(names))}")


def _configuration_ids(root: etree._Element) -> set[str]:
    config = _config(root)
    return {
        e.get("id") or ""
        for e in config.iter(etree.Element)
        if e.get("id") is not None and e.get("id-ref") is None and e.tag != "node"
    }


def _check_new_id(root: etree._Element, ident: str, what: str) -> None:
    if not _ID_RE.fullmatch(ident):
        raise OperationError(
            f"{what} {ident!r} is not a valid id: it must start with a letter or '_' and hold "
            "only letters, digits, '_', '.' and '-'"
        )
    if ident in _configuration_ids(root):
        raise OperationError(f"{what} {ident!r}: the id is already used in the configuration")


def _unique_id(root: etree._Element, wanted: str) -> str:
    wanted = _safe_id(wanted)
    taken = _configuration_ids(root)
    if wanted not in taken:
        return wanted
    n = 1
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


def _safe_id(text: str) -> str:
    ident = _ID_UNSAFE.sub(".", text)
    return ident if ident[:1].isalpha() or ident[:1] == "_" else f"_{ident}"


def _top_level(element: etree._Element) -> etree._Element:
    while True:
        parent = element.getparent()
        if parent is None or parent.tag == "resources":
            return element
        element = parent


def _meta(element: etree._Element, name: str) -> str | None:
    value = None
    for pair in element.iterfind("meta_attributes/nvpair"):
        if pair.get("name") == name:
            value = pair.get("value")
    return value


def _is_promotable(element: etree._Element) -> bool:
    return element.tag == "master" or (
        element.tag == "clone" and (_meta(element, "promotable") or "").lower() in _TRUE
    )


def _role_names(root: etree._Element) -> tuple[str, str]:
    """The names of the promoted/unpromoted roles the CIB's schema accepts (Promoted and
    Unpromoted from pacemaker-3.7, Master and Slave before)."""
    match = re.fullmatch(r"pacemaker-(\d+)\.(\d+)", root.get("validate-with") or "")
    if match and (int(match[1]), int(match[2])) < (3, 7):
        return "Master", "Slave"
    return "Promoted", "Unpromoted"


def _role(root: etree._Element, role: str | None, what: str) -> str | None:
    if role is None:
        return None
    canonical = {
        "started": "Started",
        "stopped": "Stopped",
        "promoted": "Promoted",
        "master": "Promoted",
        "unpromoted": "Unpromoted",
        "slave": "Unpromoted",
    }.get(role.lower())
    if canonical is None:
        raise OperationError(
            f"{what} {role!r} is not a role; the roles are: Started, Stopped, Promoted, Unpromoted"
        )
    promoted, unpromoted = _role_names(root)
    return {"Promoted": promoted, "Unpromoted": unpromoted}.get(canonical, canonical)


def _score(text: str | None, default: str, what: str = "score") -> str:
    if text is None:
        return default
    value = text.strip()
    if not _SCORE_RE.fullmatch(value):
        raise OperationError(
            f"the {what} {text!r} is not a score: give an integer, INFINITY or -INFINITY"
        )
    upper = value.upper()
    if upper.endswith("INFINITY"):
        return "-INFINITY" if upper.startswith("-") else INFINITY
    number = int(value)
    if number >= 1_000_000:
        return INFINITY
    if number <= -1_000_000:
        return "-INFINITY"
    return str(number)


# --------------------------------------------------------------------------------------------
# The cluster state (where resources run), from the status section


def _state(root: etree._Element, now: datetime) -> Any:
    from hastack.crm.cib.model import CibError
    from hastack.crm.cib.xml import read_cib
    from hastack.crm.rules import RuleError
    from hastack.crm.state import resource_states

    try:
        cib = read_cib(etree.tostring(root), source="the CIB")
        return resource_states(cib, now=now.timestamp())
    except CibError as exc:
        first = exc.problems[0] if exc.problems else "unreadable"
        raise OperationError(f"cannot read where resources run: {first}") from None
    except (RuleError, ValueError) as exc:
        raise OperationError(f"cannot read where resources run: {exc}") from None


def _primitive_ids(element: etree._Element) -> list[str]:
    return [p.get("id") or "" for p in element.iter("primitive")]


def _active_nodes(
    root: etree._Element, element: etree._Element, state: Any, promoted: bool = False
) -> list[str]:
    """The nodes where any primitive of `element` is active (promoted, when asked)."""
    nodes: set[str] = set()
    for primitive in _primitive_ids(element):
        for entry in state.of(primitive):
            if not entry.role.active or entry.orphan:
                continue
            if promoted and entry.role.value != "Promoted":
                continue
            nodes.add(entry.node)
    return sorted(nodes)


# --------------------------------------------------------------------------------------------
# Resources


def _nvset(parent: etree._Element, tag: str, set_id: str, pairs: Mapping[str, str]) -> None:
    if not pairs:
        return
    nvset = etree.SubElement(parent, tag, id=set_id)
    for name, value in pairs.items():
        if not name:
            raise OperationError(f"an attribute of {set_id} has an empty name")
        etree.SubElement(nvset, "nvpair", id=_safe_id(f"{set_id}-{name}"), name=name, value=value)


def _check_interval(op: Mapping[str, str], what: str) -> str:
    from hastack.crm.cib.validate import parse_interval_ms

    name = op.get("name")
    if not name:
        raise OperationError(f"{what}: every operation needs a name (monitor, start, ...)")
    interval = op.get("interval", "0s")
    if parse_interval_ms(interval) is None:
        raise OperationError(
            f"{what}: the interval {interval!r} of {name} is not a duration (10s, 1min, PT30S)"
        )
    for key in ("timeout", "start-delay"):
        if key in op and parse_interval_ms(op[key]) is None:
            raise OperationError(f"{what}: the {key} {op[key]!r} of {name} is not a duration")
    return interval


def _op_element(rsc: str, op: Mapping[str, str], what: str) -> etree._Element:
    interval = _check_interval(op, what)
    name = op["name"]
    element = etree.Element("op", id=_safe_id(f"{rsc}-{name}-interval-{interval}"))
    element.set("name", name)
    element.set("interval", interval)
    for key, value in op.items():
        if key not in ("name", "interval", "id"):
            element.set(key, value)
    return element


def _agent(text: str) -> tuple[str, str | None, str]:
    from hastack.agents.names import FORMS, AgentError, parse_agent

    try:
        spec = parse_agent(text)  # stonith:TYPE too (fence_NAME, external/ssh, hastack/KIND)
    except AgentError as exc:
        raise OperationError(f"{exc} (forms: {FORMS})") from None
    return spec.standard, spec.provider, spec.type


def _create(root: etree._Element, op: Mapping[str, Any]) -> str:
    rid = op["id"]
    _check_new_id(root, rid, "resource")
    cls, provider, type_ = _agent(op["agent"])
    primitive = etree.Element("primitive", id=rid)
    primitive.set("class", cls)
    if provider is not None:
        primitive.set("provider", provider)
    primitive.set("type", type_)
    _nvset(primitive, "instance_attributes", f"{rid}-instance_attributes", op.get("params", {}))
    _nvset(primitive, "meta_attributes", f"{rid}-meta_attributes", op.get("meta", {}))
    ops = op.get("ops", [])
    if ops:
        holder = etree.SubElement(primitive, "operations")
        seen: set[str] = set()
        for item in ops:
            element = _op_element(rid, item, f"resource {rid}")
            if element.get("id") in seen:
                raise OperationError(
                    f"resource {rid}: the operation {item['name']} with interval "
                    f"{element.get('interval')} is given twice"
                )
            seen.add(element.get("id") or "")
            holder.append(element)
    new_ids = {e.get("id") for e in primitive.iter(etree.Element) if e.get("id")}
    clash = sorted(i for i in new_ids if i in _configuration_ids(root))
    if clash:
        raise OperationError(f"resource {rid}: the ids {', '.join(clash)} are already used")
    group_id = op.get("group")
    if (op.get("before") or op.get("after")) and not group_id:
        raise OperationError("before/after place a resource in a group: give the group too")
    if op.get("before") and op.get("after"):
        raise OperationError("give before or after, not both")
    cloned = op.get("clone", False) or op.get("promotable", False)
    if group_id and cloned:
        raise OperationError(
            "a group member cannot be cloned on its own: clone the whole group instead"
        )
    if op.get("clone_id") and not cloned:
        raise OperationError("clone_id names the clone: give clone or promotable too")
    resources = _section(root, "resources")
    where = ""
    if group_id:
        groups = [e for e in _resource_elements(root) if e.get("id") == group_id]
        if groups and groups[0].tag != "group":
            raise OperationError(f"{group_id!r} is a {groups[0].tag}, not a group")
        if groups:
            group = groups[0]
            members = [m.get("id") for m in group.findall("primitive")]
            anchor_id = op.get("before") or op.get("after")
            if anchor_id is not None:
                if anchor_id not in members:
                    raise OperationError(
                        f"{anchor_id!r} is not a member of group {group_id}; its members are: "
                        f"{_list([m or '' for m in members])}"
                    )
                anchor = group.findall("primitive")[members.index(anchor_id)]
                if op.get("before"):
                    anchor.addprevious(primitive)
                else:
                    anchor.addnext(primitive)
                where = f" in group {group_id} ({'before' if op.get('before') else 'after'} "
                where += f"{anchor_id})"
            else:
                group.append(primitive)
                where = f" at the end of group {group_id}"
        else:
            if op.get("before") or op.get("after"):
                raise OperationError(f"no group {group_id!r} to place the resource in")
            _check_new_id(root, group_id, "group")
            group = etree.SubElement(resources, "group", id=group_id)
            group.append(primitive)
            where = f" in the new group {group_id}"
    elif cloned:
        clone_id = op.get("clone_id") or f"{rid}-clone"
        _check_new_id(root, clone_id, "clone")
        clone = etree.SubElement(resources, "clone", id=clone_id)
        if op.get("promotable"):
            _nvset(clone, "meta_attributes", f"{clone_id}-meta_attributes", {"promotable": "true"})
        clone.append(primitive)
        kind = "promotable clone" if op.get("promotable") else "clone"
        where = f" in the {kind} {clone_id}"
    else:
        resources.append(primitive)
    agent = f"{cls}:{provider + ':' if provider else ''}{type_}"
    return f"created resource {rid} ({agent}){where}"


def _remove(element: etree._Element) -> None:
    parent = element.getparent()
    if parent is not None:
        parent.remove(element)


def _remove_references(root: etree._Element, ids: set[str]) -> list[str]:
    """Remove constraints naming any of `ids` (and their refs in resource sets and tags), as
    pcs resource delete does; returns what was removed."""
    config = _config(root)
    removed: list[str] = []
    constraints = config.find("constraints")
    if constraints is not None:
        for item in list(constraints):
            if not isinstance(item.tag, str):
                continue
            if any(item.get(a) in ids for a in ("rsc", "with-rsc", "first", "then")):
                _remove(item)
                removed.append(f"constraint {item.get('id')}")
                continue
            sets = item.findall("resource_set")
            changed = False
            for rset in sets:
                for ref in rset.findall("resource_ref"):
                    if ref.get("id") in ids:
                        rset.remove(ref)
                        changed = True
                if changed and not rset.findall("resource_ref"):
                    item.remove(rset)
            if changed and sets and not item.findall("resource_set"):
                _remove(item)
                removed.append(f"constraint {item.get('id')}")
            elif changed:
                removed.append(f"references in constraint {item.get('id')}")
    tags = config.find("tags")
    if tags is not None:
        for tag in list(tags):
            refs = [r for r in tag.findall("obj_ref") if r.get("id") in ids]
            for ref in refs:
                tag.remove(ref)
            if refs and not tag.findall("obj_ref"):
                _remove(tag)
                removed.append(f"tag {tag.get('id')}")
    return removed


def _delete(root: etree._Element, op: Mapping[str, Any]) -> str:
    element = _resource(root, op["resource"])
    parent = element.getparent()
    notes = []
    if parent is not None and parent.tag == "group" and len(parent.findall("primitive")) == 1:
        notes.append(f"group {parent.get('id')} (its last member)")
        element = parent
        parent = element.getparent()
    if parent is not None and parent.tag in ("clone", "master", "bundle"):
        notes.append(f"{parent.tag} {parent.get('id')}")
        element = parent
    ids = {e.get("id") or "" for e in element.iter(*_RESOURCE_TAGS)}
    removed = _remove_references(root, ids)
    _remove(element)
    summary = f"deleted {element.tag} {element.get('id')}"
    if notes:
        summary += " (with " + ", ".join(notes) + ")"
    if removed:
        summary += "; removed " + ", ".join(removed)
    return summary


def _ms(text: str) -> int:
    from hastack.crm.cib.validate import parse_interval_ms

    return parse_interval_ms(text) or 0


def _update(root: etree._Element, op: Mapping[str, Any]) -> str:
    rsc = op["resource"]
    element = _resource(root, rsc)
    done: list[str] = []
    for field_name, meta in (("params", False), ("meta", True)):
        for name, value in op.get(field_name, {}).items():
            if not name:
                raise OperationError(f"{field_name}: an attribute name is empty")
            done.append(
                set_attribute(root, AttributeOwner("resource", rsc, meta=meta), name, value)
            )
    for item in op.get("remove_ops", []):
        _check_interval(item, f"resource {rsc}")
        matches = [
            o
            for o in element.iterfind("operations/op")
            if o.get("name") == item["name"]
            and _ms(o.get("interval", "0")) == _ms(item.get("interval", "0"))
        ]
        if not matches:
            raise OperationError(
                f"resource {rsc} has no {item['name']} operation with interval "
                f"{item.get('interval', '0')}"
            )
        for match in matches:
            _remove(match)
        done.append(f"removed operation {item['name']} {item.get('interval', '0')}")
    ops = op.get("ops", [])
    if ops and element.tag != "primitive":
        raise OperationError(f"{rsc} is a {element.tag}: only primitives have operations")
    for item in ops:
        new = _op_element(rsc, item, f"resource {rsc}")
        holder = element.find("operations")
        if holder is None:
            holder = etree.SubElement(element, "operations")
        existing = [
            o
            for o in holder.findall("op")
            if o.get("name") == item["name"]
            and _ms(o.get("interval", "0")) == _ms(new.get("interval", "0"))
        ]
        if existing:
            for key, value in item.items():
                if key != "id":
                    existing[0].set(key, value)
            done.append(f"updated operation {item['name']} {new.get('interval')}")
        else:
            new.set("id", _unique_id(root, new.get("id") or ""))
            holder.append(new)
            done.append(f"added operation {item['name']} {new.get('interval')}")
    if not done:
        raise OperationError("resource-update: nothing to change (give params, meta or ops)")
    return f"resource {rsc}: " + "; ".join(done)


def _set_meta(root: etree._Element, rsc: str, name: str, value: str, verb: str) -> str:
    _resource(root, rsc)
    set_attribute(root, AttributeOwner("resource", rsc, meta=True), name, value)
    return f"{verb} {rsc} ({name}={value})"


# --------------------------------------------------------------------------------------------
# Moves and bans (crm_resource --move/--ban/--clear)


def _lifetime_end(lifetime: str | None, now: datetime) -> str | None:
    from hastack.crm.rules import add_duration, parse_iso_duration

    if lifetime is None:
        return None
    try:
        duration = parse_iso_duration(lifetime)
    except ValueError as exc:
        raise OperationError(
            f"bad lifetime: {exc}; give an ISO 8601 duration such as PT10M, PT1H or P1D"
        ) from None
    if duration.years < 0 or duration.months < 0 or duration.days < 0 or duration.seconds < 0:
        raise OperationError(f"the lifetime {lifetime!r} is negative")
    start = now.astimezone(UTC).replace(microsecond=0)
    end = add_duration(start, duration)
    if end <= start:
        raise OperationError(f"the lifetime {lifetime!r} is empty: give a positive duration")
    return end.strftime("%Y-%m-%d %H:%M:%SZ")


def _pin(
    root: etree._Element,
    *,
    ident: str,
    rsc: str,
    node: str,
    score: str,
    role: str,
    end: str | None,
    until_moved: bool,
    rule_ids: tuple[str, str, str, str],
) -> etree._Element:
    """A cli-prefer/cli-ban location constraint as crm_resource writes it."""
    location = etree.Element("rsc_location", id=ident, rsc=rsc, role=role)
    if end is None and not until_moved:
        location.set("node", node)
        location.set("score", score)
        return location
    rule_id, expr_id, date_id, moved_id = rule_ids
    rule = etree.SubElement(location, "rule", id=rule_id, score=score)
    rule.set("boolean-op", "and")
    expr = etree.SubElement(rule, "expression", id=expr_id, attribute="#uname", operation="eq")
    expr.set("value", node)
    expr.set("type", "string")
    if end is not None:
        etree.SubElement(rule, "date_expression", id=date_id, operation="lt", end=end)
    if until_moved:
        etree.SubElement(
            rule,
            "expression",
            id=moved_id,
            attribute=UNTIL_MOVED_ATTRIBUTE,
            operation="not_defined",
        )
    return location


def _prefer_id(rsc: str) -> str:
    return _safe_id(f"cli-prefer-{rsc}")


def _ban_id(rsc: str, node: str) -> str:
    return _safe_id(f"cli-ban-{rsc}-on-{node}")


def _put(root: etree._Element, location: etree._Element) -> None:
    constraints = _section(root, "constraints")
    for old in constraints.findall("rsc_location"):
        if old.get("id") == location.get("id"):
            old.addprevious(location)
            constraints.remove(old)
            return
    clash = location.get("id") in _configuration_ids(root)
    if clash:
        raise OperationError(f"the id {location.get('id')!r} is already used by another element")
    constraints.append(location)


def _ban_location(
    root: etree._Element, rsc: str, node: str, role: str, end: str | None, until_moved: bool
) -> etree._Element:
    ident = _ban_id(rsc, node)
    return _pin(
        root,
        ident=ident,
        rsc=rsc,
        node=node,
        score="-INFINITY",
        role=role,
        end=end,
        until_moved=until_moved,
        rule_ids=(f"{ident}-rule", f"{ident}-expr", f"{ident}-lifetime", f"{ident}-until-moved"),
    )


def _prefer_location(
    root: etree._Element, rsc: str, node: str, role: str, end: str | None, until_moved: bool
) -> etree._Element:
    ident = _prefer_id(rsc)
    return _pin(
        root,
        ident=ident,
        rsc=rsc,
        node=node,
        score=INFINITY,
        role=role,
        end=end,
        until_moved=until_moved,
        rule_ids=(
            _safe_id(f"cli-prefer-rule-{rsc}"),
            _safe_id(f"cli-prefer-expr-{rsc}"),
            _safe_id(f"cli-prefer-lifetime-end-{rsc}"),
            _safe_id(f"cli-prefer-until-moved-{rsc}"),
        ),
    )


def _move_role(root: etree._Element, element: etree._Element, promoted: bool) -> str:
    if not promoted:
        return "Started"
    if not _is_promotable(element):
        raise OperationError(
            f"{element.get('id')} is not promotable: the promoted role applies to promotable "
            "clones only"
        )
    return _role_names(root)[0]


def _current_single(
    root: etree._Element, element: etree._Element, state: Any, promoted: bool, verb: str
) -> str:
    rsc = element.get("id")
    nodes = _active_nodes(root, element, state, promoted)
    if not nodes:
        raise OperationError(
            f"{rsc} is not {'promoted' if promoted else 'active'} anywhere: say which node to "
            f"{verb} it from"
        )
    if len(nodes) > 1:
        raise OperationError(
            f"{rsc} is active on {len(nodes)} nodes ({', '.join(nodes)}): say which node to "
            f"{verb} it from"
        )
    return nodes[0]


def _ban(root: etree._Element, op: Mapping[str, Any], now: datetime, verb: str = "ban") -> str:
    rsc = op["resource"]
    element = _resource(root, rsc)
    promoted = op.get("promoted", False)
    role = _move_role(root, element, promoted)
    end = _lifetime_end(op.get("lifetime"), now)
    node = op.get("node")
    if node is None:
        node = _current_single(root, element, _state(root, now), promoted, verb)
    else:
        _check_node(root, node)
    until_moved = op.get("until_moved", False)
    _put(root, _ban_location(root, rsc, node, role, end, until_moved))
    return f"banned {rsc} from {node}" + _pin_suffix(end, until_moved, promoted)


def _pin_suffix(end: str | None, until_moved: bool, promoted: bool) -> str:
    parts = []
    if promoted:
        parts.append("promoted role")
    if end is not None:
        parts.append(f"until {end}")
    if until_moved:
        parts.append("until the move has happened")
    return f" ({', '.join(parts)})" if parts else ""


def _remove_pins(
    root: etree._Element, rsc: str, node: str | None, bans: bool, prefers: bool
) -> list[str]:
    """Remove crm_resource's pins of `rsc`: bans on `node` (all nodes when None), and the
    preference when it is for `node` (whatever its node when None)."""
    constraints = _config(root).find("constraints")
    if constraints is None:
        return []
    removed = []
    for location in list(constraints.findall("rsc_location")):
        ident = location.get("id") or ""
        if location.get("rsc") != rsc:
            continue
        if node is not None:
            is_ban = ident == _ban_id(rsc, node)
        else:
            is_ban = ident.startswith(f"cli-ban-{_safe_id(rsc)}-on-")
        is_prefer = ident == _prefer_id(rsc) and (node is None or _pin_node(location) == node)
        if (bans and is_ban) or (prefers and is_prefer):
            constraints.remove(location)
            removed.append(ident)
    return removed


def _pin_node(location: etree._Element) -> str | None:
    if location.get("node") is not None:
        return location.get("node")
    for expr in location.iter("expression"):
        if expr.get("attribute") == "#uname" and expr.get("operation") == "eq":
            return expr.get("value")
    return None


def _pin_end(location: etree._Element) -> str | None:
    for expr in location.iter("date_expression"):
        if expr.get("operation") == "lt" and expr.get("end"):
            return expr.get("end")
    return None


def _until_moved(location: etree._Element) -> bool:
    return any(e.get("attribute") == UNTIL_MOVED_ATTRIBUTE for e in location.iter("expression"))


def _move(root: etree._Element, op: Mapping[str, Any], now: datetime) -> str:
    node = op.get("node")
    if node is None:
        if op.get("force"):
            raise OperationError("force bans the current node of a move to a node: give the node")
        summary = _ban(root, op, now, verb="move")
        return summary.replace("banned", "moved", 1).replace(" from ", " away from ", 1)
    rsc = op["resource"]
    element = _resource(root, rsc)
    promoted = op.get("promoted", False)
    role = _move_role(root, element, promoted)
    end = _lifetime_end(op.get("lifetime"), now)
    _check_node(root, node)
    state = _state(root, now)
    current = _active_nodes(root, element, state, promoted)
    if current == [node]:
        raise OperationError(f"{rsc} is already {'promoted' if promoted else 'active'} on {node}")
    until_moved = op.get("until_moved", False)
    _remove_pins(root, rsc, None, bans=False, prefers=True)
    _remove_pins(root, rsc, node, bans=True, prefers=False)
    _put(root, _prefer_location(root, rsc, node, role, end, until_moved))
    summary = f"moved {rsc} to {node}" + _pin_suffix(end, until_moved, promoted)
    if op.get("force") and len(current) == 1:
        _put(root, _ban_location(root, rsc, current[0], role, end, until_moved))
        summary += f"; banned it from {current[0]}"
    return summary


def _clear(root: etree._Element, op: Mapping[str, Any], now: datetime) -> str:
    rsc = op["resource"]
    _resource(root, rsc)
    node = op.get("node")
    if node is not None:
        _check_node(root, node)
    if op.get("expired"):
        removed = expire_pins(root, now, resource=rsc)
    else:
        removed = _remove_pins(root, rsc, node, bans=True, prefers=True)
    if not removed:
        return f"{rsc} has no move or ban to clear" + (f" on {node}" if node else "")
    return f"cleared {', '.join(removed)}"


# --------------------------------------------------------------------------------------------
# Status-section edits: cleanup and refresh


def _expected_rc(op: etree._Element) -> int:
    key = (op.get("transition-key") or "").split(":")
    try:
        return int(key[2])
    except (IndexError, ValueError):
        return 0


def _status_ms(op: etree._Element) -> int:
    """An lrm_rsc_op's interval: milliseconds, as the status section records it."""
    try:
        return int(op.get("interval", "0"))
    except ValueError:
        return -1


def _failed(op: etree._Element) -> bool:
    if (op.get("id") or "").endswith("_last_failure_0"):
        return True
    if op.get("op-status", "0") not in ("0", "-1"):
        return True
    try:
        rc = int(op.get("rc-code", "0"))
    except ValueError:
        return True
    if op.get("operation") == "monitor" and _status_ms(op) == 0 and rc == 7:
        return False  # a probe that found the resource stopped
    return rc != _expected_rc(op)


def _failcount_names(
    rsc: str, operation: str | None, interval_ms: int | None
) -> Callable[[str], bool]:
    def matches(name: str) -> bool:
        for prefix in ("fail-count-", "last-failure-"):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            base, _, key = rest.partition("#")
            if base != rsc and base.partition(":")[0] != rsc:
                continue
            if operation is None:
                return True
            task, _, interval = key.rpartition("_")
            return task == operation and (interval_ms is None or interval == str(interval_ms))
        return False

    return matches


def _cleanup(root: etree._Element, op: Mapping[str, Any], refresh: bool) -> str:
    rsc = op.get("resource")
    node = op.get("node")
    operation = op.get("operation")
    interval = op.get("interval")
    if interval is not None and operation is None:
        raise OperationError("an interval narrows an operation: give the operation too")
    interval_ms = None
    if interval is not None:
        from hastack.crm.cib.validate import parse_interval_ms

        interval_ms = parse_interval_ms(interval)
        if interval_ms is None:
            raise OperationError(f"the interval {interval!r} is not a duration (10s, PT1M)")
    if node is not None:
        _check_node(root, node)
    if rsc is not None:
        try:
            primitives = set(_primitive_ids(_resource(root, rsc)))
        except OperationError:
            primitives = {rsc}  # an orphan: only its history names it
            if not _history_names(root, rsc):
                raise
    else:
        primitives = None
    status = root.find("status")
    removed: list[str] = []
    for node_state in [] if status is None else status.findall("node_state"):
        uname = node_state.get("uname") or node_state.get("id") or ""
        if node is not None and uname != node and node_state.get("id") != _node_id(root, node):
            continue
        failed_here: set[str] = set()
        for entry in node_state.iterfind("lrm/lrm_resources/lrm_resource"):
            base = (entry.get("id") or "").partition(":")[0]
            if (
                primitives is not None
                and base not in primitives
                and entry.get("id") not in primitives
            ):
                continue
            ops = entry.findall("lrm_rsc_op")
            failures = [o for o in ops if _failed(o)]
            if operation is not None:
                failures = [
                    o
                    for o in failures
                    if o.get("operation") == operation
                    and (interval_ms is None or _status_ms(o) == interval_ms)
                ]
            if refresh:
                _remove(entry)
                removed.append(f"history of {entry.get('id')} on {uname}")
            elif failures and operation is None:
                _remove(entry)
                failed_here.add(base)
                removed.append(f"history of {entry.get('id')} on {uname}")
            elif failures:
                for failure in failures:
                    entry.remove(failure)
                removed.append(f"failed {operation} of {entry.get('id')} on {uname}")
        for pair in list(node_state.iterfind("transient_attributes/instance_attributes/nvpair")):
            name = pair.get("name") or ""
            targets = primitives if primitives is not None else {_attr_rsc(name)}
            if any(_failcount_names(t, operation, interval_ms)(name) for t in targets if t):
                pair.getparent().remove(pair)
                removed.append(f"{name} on {uname}")
    what = "refresh" if refresh else "clean up"
    target = rsc or "any resource"
    if not removed:
        return f"nothing to {what} for {target}" + (f" on {node}" if node else "")
    verb = "refreshed" if refresh else "cleaned up"
    return f"{verb} {target}: removed {', '.join(removed)}"


def _attr_rsc(name: str) -> str:
    for prefix in ("fail-count-", "last-failure-"):
        if name.startswith(prefix):
            return name[len(prefix) :].partition("#")[0].partition(":")[0]
    return ""


def _history_names(root: etree._Element, rsc: str) -> bool:
    return any(
        (e.get("id") or "").partition(":")[0] == rsc
        for e in root.iterfind("status/node_state/lrm/lrm_resources/lrm_resource")
    )


def _node_id(root: etree._Element, uname: str) -> str | None:
    nodes = _config(root).find("nodes")
    for n in [] if nodes is None else nodes.findall("node"):
        if n.get("uname") == uname:
            return n.get("id")
    return None


# --------------------------------------------------------------------------------------------
# Constraints


def _location(root: etree._Element, op: Mapping[str, Any]) -> str:
    rsc, pattern = op.get("resource"), op.get("resource_pattern")
    if (rsc is None) == (pattern is None):
        raise OperationError("constraint-location: give resource or resource_pattern (one)")
    if rsc is not None:
        _resource(root, rsc)
    else:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise OperationError(
                f"the resource pattern {pattern!r} is not a regex: {exc}"
            ) from None
    node = op["node"]
    _check_node(root, node)
    score = _score(op.get("score"), INFINITY)
    role = _role(root, op.get("role"), "role")
    ident = op.get("id")
    if ident is not None:
        _check_new_id(root, ident, "constraint")
    else:
        ident = _unique_id(root, f"location-{rsc or pattern}-{node}-{score}")
    element = etree.SubElement(_section(root, "constraints"), "rsc_location", id=ident)
    if rsc is not None:
        element.set("rsc", rsc)
    else:
        element.set("rsc-pattern", pattern)
    if role is not None:
        element.set("role", role)
    element.set("node", node)
    element.set("score", score)
    return f"added location constraint {ident}: {rsc or pattern} on {node} score {score}"


def _colocation(root: etree._Element, op: Mapping[str, Any]) -> str:
    rsc, with_rsc = op["resource"], op["with"]
    _resource(root, rsc)
    _resource(root, with_rsc)
    if rsc == with_rsc:
        raise OperationError(f"a resource cannot be colocated with itself ({rsc})")
    score = _score(op.get("score"), INFINITY)
    role = _role(root, op.get("role"), "role")
    with_role = _role(root, op.get("with_role"), "with_role")
    ident = op.get("id")
    if ident is not None:
        _check_new_id(root, ident, "constraint")
    else:
        ident = _unique_id(root, f"colocation-{rsc}-{with_rsc}-{score}")
    element = etree.SubElement(_section(root, "constraints"), "rsc_colocation", id=ident)
    element.set("rsc", rsc)
    element.set("with-rsc", with_rsc)
    element.set("score", score)
    if role is not None:
        element.set("rsc-role", role)
    if with_role is not None:
        element.set("with-rsc-role", with_role)
    return f"added colocation constraint {ident}: {rsc} with {with_rsc} score {score}"


_ACTIONS = ("start", "stop", "promote", "demote")
_KINDS = ("Mandatory", "Optional", "Serialize")


def _order(root: etree._Element, op: Mapping[str, Any]) -> str:
    first, then = op["first"], op["then"]
    _resource(root, first)
    _resource(root, then)
    if first == then:
        raise OperationError(f"a resource cannot be ordered after itself ({first})")
    actions = {}
    for key in ("first_action", "then_action"):
        value = op.get(key, "start")
        if value not in _ACTIONS:
            raise OperationError(f"{key} {value!r} is not one of {', '.join(_ACTIONS)}")
        actions[key] = value
    kind_text = op.get("kind", "Mandatory")
    kind = next((k for k in _KINDS if k.lower() == kind_text.lower()), None)
    if kind is None:
        raise OperationError(f"the order kind {kind_text!r} is not one of {', '.join(_KINDS)}")
    ident = op.get("id")
    if ident is not None:
        _check_new_id(root, ident, "constraint")
    else:
        ident = _unique_id(root, f"order-{first}-{then}-{kind.lower()}")
    element = etree.SubElement(_section(root, "constraints"), "rsc_order", id=ident)
    element.set("first", first)
    element.set("then", then)
    if actions["first_action"] != "start" or actions["then_action"] != "start":
        element.set("first-action", actions["first_action"])
        element.set("then-action", actions["then_action"])
    element.set("kind", kind)
    if "symmetrical" in op:
        element.set("symmetrical", "true" if op["symmetrical"] else "false")
    return (
        f"added order constraint {ident}: {actions['first_action']} {first} then "
        f"{actions['then_action']} {then} ({kind})"
    )


_RULE_OPERATIONS = ("lt", "gt", "lte", "gte", "eq", "ne", "defined", "not_defined")


def _location_rule(root: etree._Element, op: Mapping[str, Any]) -> str:
    """A location constraint with a one-expression rule, as DRBD's crm-fence-peer writes
    (``<rsc_location><rule role= score=><expression attribute= operation= value=/>``); with
    ``replace`` an existing constraint of that id is replaced, else its id must be new."""
    rsc = op["resource"]
    _resource(root, rsc)
    ident = op["id"]
    score = _score(op.get("score"), "-INFINITY")
    role = _role(root, op.get("role"), "role")
    operation = op["operation"]
    if operation not in _RULE_OPERATIONS:
        raise OperationError(
            f"rule operation {operation!r} is not one of: {', '.join(_RULE_OPERATIONS)}"
        )
    if operation not in ("defined", "not_defined") and op.get("value") is None:
        raise OperationError(f"rule operation {operation!r} needs a value")
    replaced = ""
    if op.get("replace"):
        constraints = _config(root).find("constraints")
        for item in [] if constraints is None else list(constraints):
            if item.get("id") == ident:
                _remove(item)
                replaced = " (replaced)"
    _check_new_id(root, ident, "constraint")
    location = etree.SubElement(_section(root, "constraints"), "rsc_location", id=ident, rsc=rsc)
    rule = etree.SubElement(location, "rule", id=_unique_id(root, f"{ident}-rule"), score=score)
    if role is not None:
        rule.set("role", role)
    expr = etree.SubElement(
        rule,
        "expression",
        id=_unique_id(root, f"{ident}-expr"),
        attribute=op["attribute"],
        operation=operation,
    )
    if op.get("value") is not None:
        expr.set("value", op["value"])
    what = f"{op['attribute']} {operation} {op.get('value', '')}".rstrip()
    return f"added location constraint {ident}{replaced}: {rsc} score {score} where {what}"


def _constraint_remove(root: etree._Element, op: Mapping[str, Any]) -> str:
    constraints = _config(root).find("constraints")
    items = [] if constraints is None else [c for c in constraints if isinstance(c.tag, str)]
    for item in items:
        if item.get("id") == op["id"]:
            _remove(item)
            return f"removed {item.tag} {op['id']}"
    known = sorted(i.get("id") or "" for i in items)
    raise OperationError(f"no constraint {op['id']!r}; the constraints are: {_list(known)}")


def list_constraints(root: etree._Element) -> list[dict[str, Any]]:
    """Every constraint as a dict: ``id``, ``type`` (location, colocation, order, ticket),
    its attributes as written (``rsc``, ``node``, ``score``, ``with-rsc``, ``first``, ...),
    ``sets`` (each a list of resource ids) and ``rules`` (each with id, score, boolean-op and
    its expressions as dicts), and for crm_resource's pins ``expires`` (the lifetime's end)."""
    constraints = _config(root).find("constraints")
    result: list[dict[str, Any]] = []
    for item in [] if constraints is None else constraints:
        if not isinstance(item.tag, str) or item.tag not in _CONSTRAINT_TAGS:
            continue
        entry: dict[str, Any] = {"id": item.get("id"), "type": item.tag.removeprefix("rsc_")}
        entry.update({k: v for k, v in item.attrib.items() if k != "id"})
        sets = item.findall("resource_set")
        if sets:
            entry["sets"] = [[r.get("id") for r in s.findall("resource_ref")] for s in sets]
        rules = item.findall("rule")
        if rules:
            entry["rules"] = [
                {
                    **dict(rule.attrib),
                    "expressions": [
                        {"kind": e.tag, **dict(e.attrib)} for e in rule if isinstance(e.tag, str)
                    ],
                }
                for rule in rules
            ]
        if item.tag == "rsc_location":
            end = _pin_end(item)
            if end is not None:
                entry["expires"] = end
            if _until_moved(item):
                entry["until_moved"] = True
        result.append(entry)
    return result


# --------------------------------------------------------------------------------------------
# Nodes and cluster options


def _lifetime(op: Mapping[str, Any]) -> str:
    value = op.get("lifetime", "forever")
    if value not in ("forever", "reboot"):
        raise OperationError(f"the lifetime {value!r} is not forever or reboot")
    return value


def _has_state(root: etree._Element, node: str) -> bool:
    node_id = _node_id(root, node)
    return any(
        s.get("id") == node_id or s.get("uname") == node for s in root.iterfind("status/node_state")
    )


def _node_attr(root: etree._Element, node: str, name: str, value: str | None, lifetime: str) -> str:
    _check_node(root, node)
    if lifetime == "reboot" and value is not None:
        # crm_attribute appends a node's first transient attributes after its history
        node_id = _node_id(root, node) or node
        for state in root.iterfind("status/node_state"):
            same = state.get("id") == node_id
            if same and state.find("transient_attributes") is None:
                etree.SubElement(state, "transient_attributes", id=node_id)
    return set_attribute(root, AttributeOwner("node", node, lifetime=lifetime), name, value)


def _delete_node_attr_everywhere(root: etree._Element, node: str, name: str) -> list[str]:
    done = [_node_attr(root, node, name, None, "forever")]
    if _has_state(root, node):
        done.append(_node_attr(root, node, name, None, "reboot"))
    return done


def _property_set(root: etree._Element, op: Mapping[str, Any]) -> str:
    name = op["name"]
    if name not in CLUSTER_OPTIONS and not op.get("force", False):
        raise OperationError(
            f"unknown cluster option {name!r} (set it anyway with force); the options are: "
            f"{', '.join(sorted(CLUSTER_OPTIONS))}"
        )
    return set_attribute(root, AttributeOwner("property"), name, op["value"])


# --------------------------------------------------------------------------------------------
# R1's hb_standby and hb_takeover


_WHICH = ("all", "foreign", "local")


def _home(root: etree._Element, top_id: str) -> str | None:
    """The node a top-level resource prefers most (its haresources node, for a converted
    R1 configuration): the highest positive location score, crm_resource's pins aside."""
    constraints = _config(root).find("constraints")
    best: tuple[int, str] | None = None
    for location in [] if constraints is None else constraints.findall("rsc_location"):
        if location.get("rsc") != top_id or (location.get("id") or "").startswith("cli-"):
            continue
        node, score = location.get("node"), location.get("score")
        if node is None or score is None:
            continue
        value = _score_value(score)
        if value > 0 and (best is None or value > best[0]):
            best = (value, node)
    return best[1] if best else None


def _score_value(score: str) -> int:
    try:
        text = _score(score, "0")
    except OperationError:
        return 0
    if text == INFINITY:
        return 1_000_000
    if text == "-INFINITY":
        return -1_000_000
    return int(text)


def _r1_candidates(root: etree._Element, node: str, which: str) -> list[etree._Element]:
    """The top-level resources (groups and primitives; clones run everywhere and are left
    alone) that `which` selects for `node`: all, local (their home is `node`) or foreign
    (their home is another node, or they have none)."""
    if which not in _WHICH:
        raise OperationError(f"{which!r} is not one of {', '.join(_WHICH)}")
    resources = _config(root).find("resources")
    chosen = []
    for top in [] if resources is None else resources:
        if not isinstance(top.tag, str) or top.tag not in ("primitive", "group"):
            continue
        home = _home(root, top.get("id") or "")
        if which == "local" and home != node:
            continue
        if which == "foreign" and home == node:
            continue
        chosen.append(top)
    return chosen


def _r1_standby(root: etree._Element, op: Mapping[str, Any], now: datetime) -> str:
    node, which = op["node"], op.get("which", "all")
    _check_node(root, node)
    state = _state(root, now)
    others = [
        n.name
        for n in state.nodes.values()
        if n.name != node and n.online and not n.standby and not n.unclean
    ]
    if not others:
        raise OperationError(
            f"no other node is online to take over the resources of {node}: standby refused"
        )
    moved = []
    for top in _r1_candidates(root, node, which):
        if node not in _active_nodes(root, top, state):
            continue
        rsc = top.get("id") or ""
        _put(root, _ban_location(root, rsc, node, "Started", None, True))
        moved.append(rsc)
    if not moved:
        return f"{node} runs no {'' if which == 'all' else which + ' '}resources to give up"
    return f"{node} gives up {', '.join(moved)} (banned until moved)"


def _r1_takeover(root: etree._Element, op: Mapping[str, Any], now: datetime) -> str:
    node, which = op["node"], op.get("which", "all")
    _check_node(root, node)
    state = _state(root, now)
    status = state.nodes.get(node)
    if status is not None and (status.standby or not status.online):
        why = "in standby" if status.standby else "not online"
        raise OperationError(f"{node} is {why}: it cannot take resources over")
    moved = []
    for top in _r1_candidates(root, node, which):
        rsc = top.get("id") or ""
        if _active_nodes(root, top, state) == [node]:
            continue
        _remove_pins(root, rsc, node, bans=True, prefers=False)
        _remove_pins(root, rsc, None, bans=False, prefers=True)
        _put(root, _prefer_location(root, rsc, node, "Started", None, True))
        # and away from where it runs now, as crm_resource --move --force does: a preference
        # alone does not beat a stickiness of INFINITY (R1's auto_failback off)
        for current in _active_nodes(root, top, state):
            if current != node:
                _put(root, _ban_location(root, rsc, current, "Started", None, True))
        moved.append(rsc)
    if not moved:
        return f"{node} already runs every {'' if which == 'all' else which + ' '}resource"
    return f"{node} takes over {', '.join(moved)} (preferred until moved)"


# --------------------------------------------------------------------------------------------
# The entry points


def apply_operation(root: etree._Element, operation: Mapping[str, Any], now: datetime) -> str:
    """Apply one operation to the <cib> tree in place and return a one-line summary; raise
    OperationError having changed nothing (the tree is restored on any failure)."""
    op = validate_operation(operation)
    name = op["op"]
    if name in RUNTIME_OPERATIONS:
        raise OperationError(
            f"{name} is a request to the running cluster, not a change of the CIB: the node "
            "daemon carries it out"
        )
    if now.tzinfo is None:
        raise OperationError("now must be a timezone-aware datetime")
    _config(root)
    backup = etree.tostring(root)
    try:
        return _dispatch(root, op, now)
    except EditError as exc:
        _restore(root, backup)
        if isinstance(exc, OperationError):
            raise
        raise OperationError(str(exc)) from None
    except BaseException:
        _restore(root, backup)
        raise


def _restore(root: etree._Element, backup: bytes) -> None:
    original = etree.fromstring(backup)
    for child in list(root):
        root.remove(child)
    root.attrib.clear()
    root.attrib.update(dict(original.attrib))
    root.text = original.text
    for child in list(original):
        root.append(child)


def _dispatch(root: etree._Element, op: Mapping[str, Any], now: datetime) -> str:
    name = op["op"]
    if name == "resource-create":
        return _create(root, op)
    if name == "resource-delete":
        return _delete(root, op)
    if name == "resource-update":
        return _update(root, op)
    if name == "resource-enable":
        return _set_meta(root, op["resource"], "target-role", "Started", "enabled")
    if name == "resource-disable":
        return _set_meta(root, op["resource"], "target-role", "Stopped", "disabled")
    if name == "resource-manage":
        return _set_meta(root, op["resource"], "is-managed", "true", "managed")
    if name == "resource-unmanage":
        return _set_meta(root, op["resource"], "is-managed", "false", "unmanaged")
    if name == "resource-move":
        return _move(root, op, now)
    if name == "resource-ban":
        return _ban(root, op, now)
    if name == "resource-clear":
        return _clear(root, op, now)
    if name in ("resource-cleanup", "resource-refresh"):
        return _cleanup(root, op, refresh=name == "resource-refresh")
    if name == "constraint-location":
        return _location(root, op)
    if name == "constraint-colocation":
        return _colocation(root, op)
    if name == "constraint-order":
        return _order(root, op)
    if name == "constraint-remove":
        return _constraint_remove(root, op)
    if name == "constraint-location-rule":
        return _location_rule(root, op)
    if name == "node-standby":
        return _node_attr(root, op["node"], "standby", "on", _lifetime(op))
    if name == "node-unstandby":
        return "; ".join(_delete_node_attr_everywhere(root, op["node"], "standby"))
    if name == "node-maintenance":
        if op.get("on", True):
            return _node_attr(root, op["node"], "maintenance", "true", _lifetime(op))
        return "; ".join(_delete_node_attr_everywhere(root, op["node"], "maintenance"))
    if name == "node-attribute":
        return _node_attr(root, op["node"], op["name"], op.get("value"), _lifetime(op))
    if name == "property-set":
        return _property_set(root, op)
    if name == "property-delete":
        return set_attribute(root, AttributeOwner("property"), op["name"], None)
    if name == "rsc-defaults-set":
        return set_attribute(root, AttributeOwner("rsc_defaults"), op["name"], op.get("value"))
    if name == "op-defaults-set":
        return set_attribute(root, AttributeOwner("op_defaults"), op["name"], op.get("value"))
    if name == "standby":
        return _r1_standby(root, op, now)
    if name == "takeover":
        return _r1_takeover(root, op, now)
    raise AssertionError(name)  # validate_operation knows every name


def operation_edit(operation: Mapping[str, Any], now: datetime) -> Callable[[etree._Element], str]:
    """The operation as an edit for :func:`hastack.crm.cib.edit.apply_edit` (validated now,
    so a malformed operation is refused before any CIB is read)."""
    op = validate_operation(operation)
    if op["op"] in RUNTIME_OPERATIONS:
        raise OperationError(f"{op['op']} is a request to the running cluster, not a CIB edit")
    return lambda root: apply_operation(root, op, now)


# --------------------------------------------------------------------------------------------
# Pins: what operators left in force


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def _parse_end(end: str) -> datetime | None:
    from hastack.crm.rules import parse_iso8601

    try:
        return parse_iso8601(end)
    except ValueError:
        return None


def list_pins(root: etree._Element, now: datetime) -> list[dict[str, Any]]:
    """Every operator pin in force, for the status view: crm_resource's preferences and bans
    (``kind`` prefer/ban, with ``resource``, ``node``, ``role``, ``expires``, ``expired``,
    ``until_moved``), standby and maintenance nodes (``lifetime`` forever or reboot), the
    cluster's maintenance-mode, and unmanaged, maintenance and disabled resources."""
    pins: list[dict[str, Any]] = []
    constraints = _config(root).find("constraints")
    for location in [] if constraints is None else constraints.findall("rsc_location"):
        ident = location.get("id") or ""
        if not ident.startswith(("cli-prefer-", "cli-ban-")):
            continue
        end = _pin_end(location)
        end_time = _parse_end(end) if end else None
        pins.append(
            {
                "kind": "prefer" if ident.startswith("cli-prefer-") else "ban",
                "id": ident,
                "resource": location.get("rsc"),
                "node": _pin_node(location),
                "role": location.get("role"),
                "expires": end,
                "expired": end_time is not None and now >= end_time,
                "until_moved": _until_moved(location),
            }
        )
    nodes = _config(root).find("nodes")
    ids = {}
    for node in [] if nodes is None else nodes.findall("node"):
        name = node.get("uname") or node.get("id") or ""
        ids[node.get("id")] = name
        attrs = {p.get("name"): p.get("value") for p in node.iterfind("instance_attributes/nvpair")}
        for attr in ("standby", "maintenance"):
            if _truthy(attrs.get(attr)):
                pins.append({"kind": attr, "node": name, "lifetime": "forever"})
    for state in root.iterfind("status/node_state"):
        name = ids.get(state.get("id")) or state.get("uname") or state.get("id") or ""
        attrs = {
            p.get("name"): p.get("value")
            for p in state.iterfind("transient_attributes/instance_attributes/nvpair")
        }
        for attr in ("standby", "maintenance"):
            if _truthy(attrs.get(attr)):
                pins.append({"kind": attr, "node": name, "lifetime": "reboot"})
    crm_config = _config(root).find("crm_config")
    if crm_config is not None:
        for pair in crm_config.iterfind("cluster_property_set/nvpair"):
            if pair.get("name") == "maintenance-mode" and _truthy(pair.get("value")):
                pins.append({"kind": "maintenance-mode"})
    for element in _resource_elements(root):
        rsc = element.get("id")
        managed = _meta(element, "is-managed")
        if managed is not None and not _truthy(managed):
            pins.append({"kind": "unmanaged", "resource": rsc})
        if _truthy(_meta(element, "maintenance")):
            pins.append({"kind": "maintenance", "resource": rsc})
        if (_meta(element, "target-role") or "").lower() == "stopped":
            pins.append({"kind": "disabled", "resource": rsc})
    return pins


def expire_pins(root: etree._Element, now: datetime, resource: str | None = None) -> list[str]:
    """Remove crm_resource's pins whose lifetime has ended (as crm_resource --clear
    --expired), of one resource or all; return their ids. The controller calls this on its
    recheck timer."""
    constraints = _config(root).find("constraints")
    removed = []
    for location in [] if constraints is None else list(constraints.findall("rsc_location")):
        ident = location.get("id") or ""
        if not ident.startswith(("cli-prefer-", "cli-ban-")):
            continue
        if resource is not None and location.get("rsc") != resource:
            continue
        end = _pin_end(location)
        end_time = _parse_end(end) if end else None
        if end_time is not None and now >= end_time:
            constraints.remove(location)
            removed.append(ident)
    return removed


def clear_moved_pins(root: etree._Element, now: datetime) -> list[str]:
    """Remove the ``until_moved`` pins whose move has happened, as the status section shows:
    a preference once its resource is active on its node, a ban once its resource is active
    and not on the banned node. Returns their ids. The controller calls this after each
    transition (or whenever the status changes)."""
    constraints = _config(root).find("constraints")
    candidates = [
        loc
        for loc in ([] if constraints is None else constraints.findall("rsc_location"))
        if (loc.get("id") or "").startswith(("cli-prefer-", "cli-ban-")) and _until_moved(loc)
    ]
    if not candidates:
        return []
    state = _state(root, now)
    removed = []
    for location in candidates:
        rsc, node = location.get("rsc") or "", _pin_node(location)
        found = [e for e in _resource_elements(root) if e.get("id") == rsc]
        if not found or node is None:
            continue
        promoted = location.get("role") in ("Promoted", "Master")
        active = _active_nodes(root, found[0], state, promoted)
        ident = location.get("id") or ""
        done = (
            node in active
            if ident.startswith("cli-prefer-")
            else bool(active) and node not in active
        )
        if done and constraints is not None:
            constraints.remove(location)
            removed.append(ident)
    return removed
