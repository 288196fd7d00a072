"""Read and write Pacemaker cib.xml as the model of :mod:`hastack.crm.cib.model`.

``read_cib`` collects every structural problem it finds (missing ids, misplaced elements,
unparsable numbers) and raises one :class:`CibError` naming file, line and element; malformed
XML gives a single problem with lxml's line and message, never a traceback.
``write_cib`` writes pretty XML such that ``read_cib(write_cib(c)) == c``.
Comments and processing instructions are not kept. A bzip2-compressed CIB (the scheduler's
saved inputs, ``pe-input-N.bz2``, Pacemaker's and hastack's) is read as the CIB it holds.
"""

from __future__ import annotations

import bz2
import copy
from pathlib import Path
from typing import Any

from lxml import etree

from hastack.crm.cib.model import (
    Bundle,
    Cib,
    CibError,
    Clone,
    Constraint,
    DateExpression,
    DateSpec,
    Expression,
    FencingLevel,
    Group,
    Lrm,
    LrmResource,
    LrmRscOp,
    Node,
    NodeState,
    NvPair,
    NvSet,
    Op,
    Operations,
    OpExpression,
    Primitive,
    Problem,
    RawXml,
    Resource,
    ResourceSet,
    RscColocation,
    RscExpression,
    RscLocation,
    RscOrder,
    RscTicket,
    Rule,
    SourceInfo,
    Tag,
    Template,
    TicketState,
    parse_score,
)

__all__ = ["read_cib", "write_cib"]

# Model field -> XML attribute, per class. Attributes not listed go to ``extra``.
_ATTRS: dict[type, tuple[tuple[str, str], ...]] = {
    NvPair: (("id", "id"), ("name", "name"), ("value", "value"), ("id_ref", "id-ref")),
    Expression: (
        ("id", "id"),
        ("attribute", "attribute"),
        ("operation", "operation"),
        ("value", "value"),
        ("type", "type"),
        ("value_source", "value-source"),
    ),
    DateExpression: (("id", "id"), ("operation", "operation"), ("start", "start"), ("end", "end")),
    OpExpression: (("id", "id"), ("name", "name"), ("interval", "interval")),
    RscExpression: (("id", "id"), ("cls", "class"), ("provider", "provider"), ("type", "type")),
    Rule: (
        ("id", "id"),
        ("id_ref", "id-ref"),
        ("boolean_op", "boolean-op"),
        ("score", "score"),
        ("score_attribute", "score-attribute"),
        ("role", "role"),
    ),
    NvSet: (("id", "id"), ("id_ref", "id-ref"), ("score", "score")),
    Node: (
        ("id", "id"),
        ("uname", "uname"),
        ("type", "type"),
        ("description", "description"),
        ("score", "score"),
    ),
    Op: (
        ("id", "id"),
        ("name", "name"),
        ("interval", "interval"),
        ("timeout", "timeout"),
        ("role", "role"),
        ("on_fail", "on-fail"),
        ("enabled", "enabled"),
        ("start_delay", "start-delay"),
        ("interval_origin", "interval-origin"),
        ("description", "description"),
    ),
    Operations: (("id", "id"), ("id_ref", "id-ref")),
    Primitive: (
        ("id", "id"),
        ("cls", "class"),
        ("provider", "provider"),
        ("type", "type"),
        ("template", "template"),
        ("description", "description"),
    ),
    Template: (
        ("id", "id"),
        ("cls", "class"),
        ("provider", "provider"),
        ("type", "type"),
        ("description", "description"),
    ),
    Group: (("id", "id"), ("description", "description")),
    Clone: (("id", "id"), ("description", "description")),
    Bundle: (("id", "id"), ("description", "description")),
    ResourceSet: (
        ("id", "id"),
        ("id_ref", "id-ref"),
        ("sequential", "sequential"),
        ("require_all", "require-all"),
        ("ordering", "ordering"),
        ("action", "action"),
        ("role", "role"),
        ("score", "score"),
        ("kind", "kind"),
    ),
    RscLocation: (
        ("id", "id"),
        ("rsc", "rsc"),
        ("rsc_pattern", "rsc-pattern"),
        ("node", "node"),
        ("score", "score"),
        ("role", "role"),
        ("resource_discovery", "resource-discovery"),
    ),
    RscColocation: (
        ("id", "id"),
        ("rsc", "rsc"),
        ("with_rsc", "with-rsc"),
        ("score", "score"),
        ("rsc_role", "rsc-role"),
        ("with_rsc_role", "with-rsc-role"),
        ("node_attribute", "node-attribute"),
        ("influence", "influence"),
    ),
    RscOrder: (
        ("id", "id"),
        ("first", "first"),
        ("then", "then"),
        ("first_action", "first-action"),
        ("then_action", "then-action"),
        ("kind", "kind"),
        ("symmetrical", "symmetrical"),
        ("score", "score"),
        ("require_all", "require-all"),
    ),
    RscTicket: (
        ("id", "id"),
        ("ticket", "ticket"),
        ("rsc", "rsc"),
        ("rsc_role", "rsc-role"),
        ("loss_policy", "loss-policy"),
    ),
    Tag: (("id", "id"),),
    FencingLevel: (
        ("id", "id"),
        ("index", "index"),
        ("devices", "devices"),
        ("target", "target"),
        ("target_pattern", "target-pattern"),
        ("target_attribute", "target-attribute"),
        ("target_value", "target-value"),
    ),
    LrmRscOp: (
        ("id", "id"),
        ("operation", "operation"),
        ("operation_key", "operation_key"),
        ("interval", "interval"),
        ("call_id", "call-id"),
        ("rc_code", "rc-code"),
        ("op_status", "op-status"),
        ("exec_time", "exec-time"),
        ("queue_time", "queue-time"),
        ("last_rc_change", "last-rc-change"),
        ("last_run", "last-run"),
        ("op_digest", "op-digest"),
        ("op_restart_digest", "op-restart-digest"),
        ("op_secure_digest", "op-secure-digest"),
        ("transition_key", "transition-key"),
        ("transition_magic", "transition-magic"),
        ("exit_reason", "exit-reason"),
        ("on_node", "on_node"),
    ),
    LrmResource: (
        ("id", "id"),
        ("cls", "class"),
        ("provider", "provider"),
        ("type", "type"),
        ("container", "container"),
    ),
    Lrm: (("id", "id"),),
    NodeState: (
        ("id", "id"),
        ("uname", "uname"),
        ("in_ccm", "in_ccm"),
        ("crmd", "crmd"),
        ("join", "join"),
        ("expected", "expected"),
    ),
    TicketState: (
        ("id", "id"),
        ("granted", "granted"),
        ("last_granted", "last-granted"),
        ("standby", "standby"),
    ),
    DateSpec: (("id", "id"),),
}
# the XML attribute names of each class, once: every element read looks them up
_KNOWN: dict[type, frozenset[str]] = {
    cls: frozenset(xml for _, xml in table) for cls, table in _ATTRS.items()
}

# Attributes whose absence is a problem, per class (XML names).
_REQUIRED: dict[type, tuple[str, ...]] = {
    Expression: ("id", "attribute", "operation"),
    DateExpression: ("id",),
    OpExpression: ("id", "name"),
    RscExpression: ("id",),
    Node: ("id",),
    Op: ("id", "name", "interval"),
    Primitive: ("id",),
    Template: ("id", "class", "type"),
    Group: ("id",),
    Clone: ("id",),
    Bundle: ("id",),
    RscLocation: ("id",),
    RscColocation: ("id",),
    RscOrder: ("id",),
    RscTicket: ("id", "ticket"),
    Tag: ("id",),
    FencingLevel: ("id", "index", "devices"),
    LrmRscOp: ("id",),
    LrmResource: ("id",),
    TicketState: ("id",),
}

_NVSET_KINDS = ("instance_attributes", "meta_attributes", "utilization", "cluster_property_set")
_EXPRESSIONS = ("expression", "date_expression", "op_expression", "rsc_expression", "rule")


def _elements(el: etree._Element) -> list[etree._Element]:
    return [c for c in el if isinstance(c.tag, str)]


def _raw(el: etree._Element) -> RawXml:
    dup = copy.deepcopy(el)
    dup.tail = None
    for node in dup.iter():
        if node.text is not None and not node.text.strip():
            node.text = None
        if node is not dup and node.tail is not None and not node.tail.strip():
            node.tail = None
    return RawXml(etree.tostring(dup, encoding=str, with_tail=False))


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    # -- helpers --------------------------------------------------------------------------------

    def problem(self, el: etree._Element | None, message: str) -> None:
        if el is None:
            self.problems.append(
                Problem(source=self.source, line=0, element="", id=None, message=message)
            )
            return
        self.problems.append(
            Problem(
                source=self.source,
                line=el.sourceline or 0,
                element=str(el.tag),
                id=el.get("id"),
                message=message,
            )
        )

    def unexpected(self, child: etree._Element, parent: etree._Element, allowed: str) -> None:
        self.problem(child, f"<{child.tag}> is not allowed in <{parent.tag}> (allowed: {allowed})")

    def attrs(self, el: etree._Element, cls: type, **more: Any) -> dict[str, Any]:
        table = _ATTRS[cls]
        known = _KNOWN[cls]
        kwargs: dict[str, Any] = {}
        for name, xml_name in table:
            value = el.get(xml_name)
            if value is not None:
                kwargs[name] = value
        for xml_name in _REQUIRED.get(cls, ()):
            if el.get(xml_name) is None:
                self.problem(el, f"missing required attribute {xml_name!r}")
                field_name = next(n for n, x in table if x == xml_name)
                kwargs[field_name] = ""
        if el.get("id") == "":
            self.problem(el, "attribute 'id' is empty")
        kwargs["extra"] = {k: v for k, v in el.attrib.items() if k not in known}
        kwargs["line"] = el.sourceline or 0
        kwargs.update(more)
        return kwargs

    def check_score(self, el: etree._Element, attr: str = "score") -> None:
        text = el.get(attr)
        if text is None:
            return
        try:
            parse_score(text)
        except ValueError as exc:
            self.problem(el, f"attribute {attr!r}: {exc}")

    # -- nvsets and rules -----------------------------------------------------------------------

    def nvset(self, el: etree._Element) -> NvSet:
        if el.get("id") is None and el.get("id-ref") is None:
            self.problem(el, "missing required attribute 'id' (or 'id-ref')")
        self.check_score(el)
        rules: list[Rule] = []
        pairs: list[NvPair] = []
        for child in _elements(el):
            if child.tag == "rule":
                rules.append(self.rule(child))
            elif child.tag == "nvpair":
                if child.get("id-ref") is None:
                    for required in ("id", "name"):
                        if child.get(required) is None:
                            self.problem(child, f"missing required attribute {required!r}")
                pairs.append(NvPair(**self.attrs(child, NvPair)))
            else:
                self.unexpected(child, el, "rule, nvpair")
        return NvSet(
            **self.attrs(el, NvSet, kind=str(el.tag), rules=tuple(rules), pairs=tuple(pairs))
        )

    def nvsets(self, el: etree._Element, kinds: tuple[str, ...]) -> dict[str, list[NvSet]]:
        out: dict[str, list[NvSet]] = {k: [] for k in kinds}
        for child in _elements(el):
            if child.tag in kinds:
                out[str(child.tag)].append(self.nvset(child))
        return out

    def rule(self, el: etree._Element) -> Rule:
        if el.get("id") is None and el.get("id-ref") is None:
            self.problem(el, "missing required attribute 'id' (or 'id-ref')")
        self.check_score(el)
        items: list[Any] = []
        for child in _elements(el):
            tag = child.tag
            if tag == "expression":
                items.append(Expression(**self.attrs(child, Expression)))
            elif tag == "date_expression":
                items.append(self.date_expression(child))
            elif tag == "op_expression":
                items.append(OpExpression(**self.attrs(child, OpExpression)))
            elif tag == "rsc_expression":
                items.append(RscExpression(**self.attrs(child, RscExpression)))
            elif tag == "rule":
                items.append(self.rule(child))
            else:
                self.unexpected(child, el, ", ".join(_EXPRESSIONS))
        return Rule(**self.attrs(el, Rule, expressions=tuple(items)))

    def date_expression(self, el: etree._Element) -> DateExpression:
        specs: dict[str, DateSpec] = {}
        for child in _elements(el):
            if child.tag in ("date_spec", "duration") and child.tag not in specs:
                if not child.get("id"):
                    self.problem(child, "missing required attribute 'id'")
                fields = {k: v for k, v in child.attrib.items() if k != "id"}
                specs[str(child.tag)] = DateSpec(
                    tag=child.tag,  # type: ignore[arg-type]
                    id=child.get("id", ""),
                    fields=fields,
                    line=child.sourceline or 0,
                )
            else:
                self.unexpected(child, el, "one date_spec, one duration")
        return DateExpression(
            **self.attrs(
                el, DateExpression, date_spec=specs.get("date_spec"), duration=specs.get("duration")
            )
        )

    # -- nodes ----------------------------------------------------------------------------------

    def node(self, el: etree._Element) -> Node:
        for child in _elements(el):
            if child.tag not in ("instance_attributes", "utilization"):
                self.unexpected(child, el, "instance_attributes, utilization")
        sets = self.nvsets(el, ("instance_attributes", "utilization"))
        return Node(
            **self.attrs(
                el,
                Node,
                attributes=tuple(sets["instance_attributes"]),
                utilization=tuple(sets["utilization"]),
            )
        )

    # -- resources ------------------------------------------------------------------------------

    def op(self, el: etree._Element) -> Op:
        for child in _elements(el):
            if child.tag not in ("meta_attributes", "instance_attributes"):
                self.unexpected(child, el, "meta_attributes, instance_attributes")
        sets = self.nvsets(el, ("meta_attributes", "instance_attributes"))
        return Op(
            **self.attrs(
                el,
                Op,
                meta=tuple(sets["meta_attributes"]),
                instance_attributes=tuple(sets["instance_attributes"]),
            )
        )

    def primitive_like(self, el: etree._Element, cls: type) -> Any:
        sets = self.nvsets(el, ("meta_attributes", "instance_attributes", "utilization"))
        operations: Operations | None = None
        ops: list[Op] = []
        for child in _elements(el):
            if child.tag == "operations":
                if operations is not None:
                    self.problem(child, "a resource has at most one <operations>")
                if child.attrib:
                    operations = Operations(**self.attrs(child, Operations))
                for op_el in _elements(child):
                    if op_el.tag == "op":
                        ops.append(self.op(op_el))
                    else:
                        self.unexpected(op_el, child, "op")
            elif child.tag not in ("meta_attributes", "instance_attributes", "utilization"):
                self.unexpected(
                    child, el, "meta_attributes, instance_attributes, utilization, operations"
                )
        if cls is Primitive and el.get("template") is None:
            for required in ("class", "type"):
                if el.get(required) is None:
                    self.problem(el, f"missing required attribute {required!r} (or 'template')")
        cls_attr = el.get("class")
        if cls_attr == "ocf" and el.get("provider") is None:
            self.problem(el, "class 'ocf' needs a 'provider' attribute")
        return cls(
            **self.attrs(
                el,
                cls,
                meta=tuple(sets["meta_attributes"]),
                instance_attributes=tuple(sets["instance_attributes"]),
                utilization=tuple(sets["utilization"]),
                operations=operations,
                ops=tuple(ops),
            )
        )

    def group(self, el: etree._Element) -> Group:
        children: list[Primitive] = []
        for child in _elements(el):
            if child.tag == "primitive":
                children.append(self.primitive_like(child, Primitive))
            elif child.tag not in ("meta_attributes", "instance_attributes"):
                self.unexpected(child, el, "primitive, meta_attributes, instance_attributes")
        if not children:
            self.problem(el, "a group needs at least one <primitive>")
        sets = self.nvsets(el, ("meta_attributes", "instance_attributes"))
        return Group(
            **self.attrs(
                el,
                Group,
                meta=tuple(sets["meta_attributes"]),
                instance_attributes=tuple(sets["instance_attributes"]),
                children=tuple(children),
            )
        )

    def clone(self, el: etree._Element) -> Clone | None:
        inner: list[Primitive | Group] = []
        for child in _elements(el):
            if child.tag == "primitive":
                inner.append(self.primitive_like(child, Primitive))
            elif child.tag == "group":
                inner.append(self.group(child))
            elif child.tag in ("clone", "master", "bundle"):
                self.problem(child, f"a <{el.tag}> cannot contain a <{child.tag}>")
            elif child.tag not in ("meta_attributes", "instance_attributes"):
                self.unexpected(child, el, "primitive or group, meta_attributes")
        sets = self.nvsets(el, ("meta_attributes", "instance_attributes"))
        if len(inner) != 1:
            self.problem(
                el, f"a <{el.tag}> must contain exactly one primitive or group, found {len(inner)}"
            )
            return None
        return Clone(
            **self.attrs(
                el,
                Clone,
                child=inner[0],
                meta=tuple(sets["meta_attributes"]),
                instance_attributes=tuple(sets["instance_attributes"]),
                legacy_master=el.tag == "master",
            )
        )

    def bundle(self, el: etree._Element) -> Bundle:
        meta: list[NvSet] = []
        body: list[RawXml] = []
        primitive: Primitive | None = None
        for child in _elements(el):
            if child.tag == "meta_attributes":
                meta.append(self.nvset(child))
            elif child.tag == "primitive":
                if primitive is not None:
                    self.problem(child, "a bundle holds at most one primitive")
                primitive = self.primitive_like(child, Primitive)
            else:
                body.append(_raw(child))
        return Bundle(
            **self.attrs(el, Bundle, meta=tuple(meta), body=tuple(body), primitive=primitive)
        )

    def resources(self, el: etree._Element) -> tuple[Resource, ...]:
        out: list[Resource] = []
        for child in _elements(el):
            tag = child.tag
            if tag == "primitive":
                out.append(self.primitive_like(child, Primitive))
            elif tag == "template":
                out.append(self.primitive_like(child, Template))
            elif tag == "group":
                out.append(self.group(child))
            elif tag in ("clone", "master"):
                clone = self.clone(child)
                if clone is not None:
                    out.append(clone)
            elif tag == "bundle":
                out.append(self.bundle(child))
            else:
                self.unexpected(child, el, "primitive, group, clone, master, bundle, template")
        return tuple(out)

    # -- constraints ----------------------------------------------------------------------------

    def resource_set(self, el: etree._Element) -> ResourceSet:
        if el.get("id") is None and el.get("id-ref") is None:
            self.problem(el, "missing required attribute 'id' (or 'id-ref')")
        self.check_score(el)
        refs: list[str] = []
        for child in _elements(el):
            if child.tag == "resource_ref":
                if child.get("id") is None:
                    self.problem(child, "missing required attribute 'id'")
                refs.append(child.get("id", ""))
            else:
                self.unexpected(child, el, "resource_ref")
        return ResourceSet(**self.attrs(el, ResourceSet, resources=tuple(refs)))

    def constraint(self, el: etree._Element) -> Constraint | None:
        tag = el.tag
        cls: type
        if tag == "rsc_location":
            cls = RscLocation
        elif tag == "rsc_colocation":
            cls = RscColocation
        elif tag == "rsc_order":
            cls = RscOrder
        elif tag == "rsc_ticket":
            cls = RscTicket
        else:
            self.unexpected(
                el, el.getparent(), "rsc_location, rsc_colocation, rsc_order, rsc_ticket"
            )
            return None
        self.check_score(el)
        sets: list[ResourceSet] = []
        rules: list[Rule] = []
        for child in _elements(el):
            if child.tag == "resource_set":
                sets.append(self.resource_set(child))
            elif child.tag == "rule" and cls is RscLocation:
                rules.append(self.rule(child))
            else:
                allowed = "resource_set, rule" if cls is RscLocation else "resource_set"
                self.unexpected(child, el, allowed)
        if cls is RscLocation:
            if not sets and el.get("rsc") is None and el.get("rsc-pattern") is None:
                self.problem(el, "needs 'rsc', 'rsc-pattern' or a <resource_set>")
            if not rules and el.get("node") is None:
                self.problem(el, "needs 'node' and 'score', or a <rule>")
            return RscLocation(**self.attrs(el, RscLocation, rules=tuple(rules), sets=tuple(sets)))
        pairs = {
            RscColocation: ("rsc", "with-rsc"),
            RscOrder: ("first", "then"),
            RscTicket: ("rsc",),
        }[cls]
        if not sets:
            for attr in pairs:
                if el.get(attr) is None:
                    self.problem(el, f"needs {attr!r} (or <resource_set> elements)")
        return cls(**self.attrs(el, cls, sets=tuple(sets)))  # type: ignore[no-any-return]

    # -- status ---------------------------------------------------------------------------------

    def lrm(self, el: etree._Element) -> Lrm:
        resources: list[LrmResource] = []
        resources_extra: dict[str, str] = {}
        for child in _elements(el):
            if child.tag != "lrm_resources":
                self.unexpected(child, el, "lrm_resources")
                continue
            resources_extra.update(child.attrib)
            for res in _elements(child):
                if res.tag != "lrm_resource":
                    self.unexpected(res, child, "lrm_resource")
                    continue
                ops: list[LrmRscOp] = []
                for op in _elements(res):
                    if op.tag == "lrm_rsc_op":
                        ops.append(LrmRscOp(**self.attrs(op, LrmRscOp)))
                    else:
                        self.unexpected(op, res, "lrm_rsc_op")
                resources.append(LrmResource(**self.attrs(res, LrmResource, ops=tuple(ops))))
        return Lrm(
            **self.attrs(el, Lrm, resources_extra=resources_extra, resources=tuple(resources))
        )

    def node_state(self, el: etree._Element) -> NodeState:
        transient: list[NvSet] | None = None
        transient_id: str | None = None
        lrm: Lrm | None = None
        unknown: list[RawXml] = []
        for child in _elements(el):
            if child.tag == "transient_attributes" and transient is None:
                transient = []
                transient_id = child.get("id")
                for s in _elements(child):
                    if s.tag in _NVSET_KINDS:
                        transient.append(self.nvset(s))
                    else:
                        self.unexpected(s, child, "instance_attributes, utilization")
            elif child.tag == "lrm" and lrm is None:
                lrm = self.lrm(child)
            else:
                unknown.append(_raw(child))
        return NodeState(
            **self.attrs(
                el,
                NodeState,
                transient_id=transient_id,
                transient=None if transient is None else tuple(transient),
                lrm=lrm,
                unknown=tuple(unknown),
            )
        )

    # -- the whole CIB --------------------------------------------------------------------------

    def epoch(self, el: etree._Element, attr: str) -> int:
        text = el.get(attr)
        if text is None:
            return 0
        try:
            value = int(text)
        except ValueError:
            self.problem(el, f"attribute {attr!r} must be a non-negative integer, not {text!r}")
            return 0
        if value < 0:
            self.problem(el, f"attribute {attr!r} must be a non-negative integer, not {text!r}")
        return value

    def cib(self, root: etree._Element) -> Cib:
        if root.tag != "cib":
            self.problem(root, f"the root element must be <cib>, not <{root.tag}>")
            raise CibError(self.problems)
        kw: dict[str, Any] = {
            "admin_epoch": self.epoch(root, "admin_epoch"),
            "epoch": self.epoch(root, "epoch"),
            "num_updates": self.epoch(root, "num_updates"),
            "validate_with": root.get("validate-with"),
            "extra": {
                k: v
                for k, v in root.attrib.items()
                if k not in ("admin_epoch", "epoch", "num_updates", "validate-with")
            },
            "line": root.sourceline or 0,
            "source": SourceInfo(self.source),
        }
        configuration = None
        unknown: list[RawXml] = []
        for child in _elements(root):
            if child.tag == "configuration" and configuration is None:
                configuration = child
                self.configuration(child, kw)
            elif child.tag == "status" and "status" not in kw:
                self.status(child, kw)
            else:
                unknown.append(_raw(child))
        kw["unknown"] = tuple(unknown)
        if configuration is None:
            self.problem(root, "missing <configuration>")
        return Cib(**kw)

    def configuration(self, el: etree._Element, kw: dict[str, Any]) -> None:
        unknown: list[RawXml] = []
        seen: set[str] = set()
        for child in _elements(el):
            tag = str(child.tag)
            if tag in seen and tag != "":
                self.problem(child, f"<{tag}> appears more than once in <configuration>")
                continue
            seen.add(tag)
            if tag == "crm_config":
                sets = []
                for s in _elements(child):
                    if s.tag == "cluster_property_set":
                        sets.append(self.nvset(s))
                    else:
                        self.unexpected(s, child, "cluster_property_set")
                kw["crm_config"] = tuple(sets)
            elif tag in ("rsc_defaults", "op_defaults"):
                sets = []
                for s in _elements(child):
                    if s.tag in ("meta_attributes", "instance_attributes"):
                        sets.append(self.nvset(s))
                    else:
                        self.unexpected(s, child, "meta_attributes")
                kw[tag] = tuple(sets)
            elif tag == "nodes":
                nodes = []
                for n in _elements(child):
                    if n.tag == "node":
                        nodes.append(self.node(n))
                    else:
                        self.unexpected(n, child, "node")
                kw["nodes"] = tuple(nodes)
            elif tag == "resources":
                kw["resources"] = self.resources(child)
            elif tag == "constraints":
                constraints = (self.constraint(c) for c in _elements(child))
                kw["constraints"] = tuple(c for c in constraints if c is not None)
            elif tag == "tags":
                tags = []
                for t in _elements(child):
                    if t.tag != "tag":
                        self.unexpected(t, child, "tag")
                        continue
                    refs = []
                    for r in _elements(t):
                        if r.tag == "obj_ref" and r.get("id") is not None:
                            refs.append(r.get("id", ""))
                        else:
                            self.problem(r, "a <tag> holds only <obj_ref id=...> elements")
                    tags.append(Tag(**self.attrs(t, Tag, refs=tuple(refs))))
                kw["tags"] = tuple(tags)
            elif tag == "fencing-topology":
                levels = []
                for lv in _elements(child):
                    if lv.tag == "fencing-level":
                        levels.append(FencingLevel(**self.attrs(lv, FencingLevel)))
                    else:
                        self.unexpected(lv, child, "fencing-level")
                kw["fencing_topology"] = tuple(levels)
            elif tag in ("acls", "alerts"):
                kw[tag] = _raw(child)
            else:
                unknown.append(_raw(child))
        for required in ("crm_config", "nodes", "resources", "constraints"):
            if required not in seen:
                self.problem(el, f"missing <{required}>")
        kw["configuration_unknown"] = tuple(unknown)

    def status(self, el: etree._Element, kw: dict[str, Any]) -> None:
        states: list[NodeState] = []
        unknown: list[RawXml] = []
        tickets: list[TicketState] | None = None
        for child in _elements(el):
            if child.tag == "node_state":
                states.append(self.node_state(child))
            elif child.tag == "tickets" and tickets is None:
                tickets = []
                for t in _elements(child):
                    if t.tag == "ticket_state":
                        tickets.append(TicketState(**self.attrs(t, TicketState)))
                    else:
                        self.unexpected(t, child, "ticket_state")
            else:
                unknown.append(_raw(child))
        kw["status"] = tuple(states)
        kw["tickets"] = None if tickets is None else tuple(tickets)
        kw["status_unknown"] = tuple(unknown)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        remove_comments=True,
        remove_pis=True,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )


BZIP2_MAGIC = b"BZh"


def decompress(raw: bytes) -> bytes:
    """The XML of a CIB that may be bzip2-compressed (as pe-input-N.bz2 files are); raises
    ValueError for a compressed file that is damaged."""
    if not raw.startswith(BZIP2_MAGIC):
        return raw
    try:
        return bz2.decompress(raw)
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"a damaged bzip2 file: {exc}") from None


def read_cib(data: bytes | str | Path, source: str | None = None) -> Cib:
    """Read a CIB from a path, XML bytes or XML text; raise CibError listing every problem.

    ``source`` names the input in problems (defaults to the path, or ``<bytes>``).
    """
    if isinstance(data, str) and data.lstrip().startswith("<"):
        data = data.encode()
    if isinstance(data, str | Path):
        path = Path(data)
        name = source or str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CibError(
                [
                    Problem(
                        source=name,
                        line=0,
                        element="",
                        id=None,
                        message=f"cannot read: {exc.strerror or exc}",
                    )
                ]
            ) from None
    else:
        raw = data
        name = source or "<bytes>"
    try:
        raw = decompress(raw)
    except ValueError as exc:
        raise CibError(
            [Problem(source=name, line=0, element="", id=None, message=str(exc))]
        ) from None
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or (exc.position[0] if exc.position else 0)
        message = exc.msg or str(exc)
        raise CibError(
            [
                Problem(
                    source=name,
                    line=line or 0,
                    element="",
                    id=None,
                    message=f"malformed XML: {message}",
                )
            ]
        ) from None
    except ValueError as exc:  # e.g. an encoding declaration with str input
        raise CibError(
            [Problem(source=name, line=0, element="", id=None, message=f"malformed XML: {exc}")]
        ) from None
    if root is None:
        raise CibError([Problem(source=name, line=0, element="", id=None, message="empty input")])
    reader = _Reader(name)
    cib = reader.cib(root)
    if reader.problems:
        raise CibError(sorted(reader.problems, key=lambda p: p.line))
    return cib


# ---------------------------------------------------------------------------------------------
# Writing


def _set_attrs(el: etree._Element, obj: Any) -> None:
    for name, xml_name in _ATTRS[type(obj)]:
        value = getattr(obj, name)
        if value is None or (name == "id" and value == ""):
            continue
        el.set(xml_name, value)
    for key, value in obj.extra.items():
        el.set(key, value)


def _sub(parent: etree._Element, tag: str, obj: Any) -> etree._Element:
    el = etree.SubElement(parent, tag)
    _set_attrs(el, obj)
    return el


def _add_unknown(el: etree._Element, raws: tuple[RawXml, ...]) -> None:
    for raw in raws:
        el.append(etree.fromstring(raw.xml.encode(), _parser()))


def _w_rule(parent: etree._Element, rule: Rule) -> None:
    el = _sub(parent, "rule", rule)
    for item in rule.expressions:
        if isinstance(item, Rule):
            _w_rule(el, item)
        elif isinstance(item, Expression):
            _sub(el, "expression", item)
        elif isinstance(item, OpExpression):
            _sub(el, "op_expression", item)
        elif isinstance(item, RscExpression):
            _sub(el, "rsc_expression", item)
        else:
            d = _sub(el, "date_expression", item)
            for spec in (item.date_spec, item.duration):
                if spec is not None:
                    s = etree.SubElement(d, spec.tag)
                    if spec.id:
                        s.set("id", spec.id)
                    for k, v in spec.fields.items():
                        s.set(k, v)
            _add_unknown(d, item.unknown)
    _add_unknown(el, rule.unknown)


def _w_nvset(parent: etree._Element, nvset: NvSet) -> None:
    el = _sub(parent, nvset.kind, nvset)
    for rule in nvset.rules:
        _w_rule(el, rule)
    for pair in nvset.pairs:
        _sub(el, "nvpair", pair)


def _w_sets(parent: etree._Element, *groups: tuple[NvSet, ...]) -> None:
    for group in groups:
        for nvset in group:
            _w_nvset(parent, nvset)


def _w_primitive(parent: etree._Element, p: Primitive | Template, tag: str) -> None:
    el = _sub(parent, tag, p)
    _w_sets(el, p.instance_attributes, p.meta, p.utilization)
    if p.operations is not None or p.ops:
        ops_el = etree.SubElement(el, "operations")
        if p.operations is not None:
            _set_attrs(ops_el, p.operations)
        for op in p.ops:
            op_el = _sub(ops_el, "op", op)
            _w_sets(op_el, op.meta, op.instance_attributes)


def _w_resource(parent: etree._Element, r: Resource) -> None:
    if isinstance(r, Primitive):
        _w_primitive(parent, r, "primitive")
    elif isinstance(r, Template):
        _w_primitive(parent, r, "template")
    elif isinstance(r, Group):
        el = _sub(parent, "group", r)
        _w_sets(el, r.meta, r.instance_attributes)
        for child in r.children:
            _w_primitive(el, child, "primitive")
    elif isinstance(r, Clone):
        el = _sub(parent, "master" if r.legacy_master else "clone", r)
        _w_sets(el, r.meta, r.instance_attributes)
        _w_resource(el, r.child)
    else:
        el = _sub(parent, "bundle", r)
        _w_sets(el, r.meta)
        _add_unknown(el, r.body)
        if r.primitive is not None:
            _w_primitive(el, r.primitive, "primitive")


_CONSTRAINT_TAGS: dict[type, str] = {
    RscLocation: "rsc_location",
    RscColocation: "rsc_colocation",
    RscOrder: "rsc_order",
    RscTicket: "rsc_ticket",
}


def _w_constraint(parent: etree._Element, c: Constraint) -> None:
    el = _sub(parent, _CONSTRAINT_TAGS[type(c)], c)
    if isinstance(c, RscLocation):
        for rule in c.rules:
            _w_rule(el, rule)
    for rs in c.sets:
        rs_el = _sub(el, "resource_set", rs)
        for ref in rs.resources:
            etree.SubElement(rs_el, "resource_ref", id=ref)


def _w_status(parent: etree._Element, cib: Cib) -> None:
    status = etree.SubElement(parent, "status")
    for ns in cib.status:
        el = _sub(status, "node_state", ns)
        if ns.transient is not None:
            t = etree.SubElement(el, "transient_attributes")
            if ns.transient_id is not None:
                t.set("id", ns.transient_id)
            _w_sets(t, ns.transient)
        if ns.lrm is not None:
            lrm = _sub(el, "lrm", ns.lrm)
            resources = etree.SubElement(lrm, "lrm_resources")
            for k, v in ns.lrm.resources_extra.items():
                resources.set(k, v)
            for res in ns.lrm.resources:
                res_el = _sub(resources, "lrm_resource", res)
                for op in res.ops:
                    _sub(res_el, "lrm_rsc_op", op)
        _add_unknown(el, ns.unknown)
    if cib.tickets is not None:
        tickets = etree.SubElement(status, "tickets")
        for ts in cib.tickets:
            _sub(tickets, "ticket_state", ts)
    _add_unknown(status, cib.status_unknown)


def write_cib(cib: Cib) -> bytes:
    """Write a CIB as pretty-printed XML (UTF-8, no declaration)."""
    root = etree.Element("cib")
    root.set("admin_epoch", str(cib.admin_epoch))
    root.set("epoch", str(cib.epoch))
    root.set("num_updates", str(cib.num_updates))
    if cib.validate_with is not None:
        root.set("validate-with", cib.validate_with)
    for k, v in cib.extra.items():
        root.set(k, v)
    conf = etree.SubElement(root, "configuration")
    crm_config = etree.SubElement(conf, "crm_config")
    _w_sets(crm_config, cib.crm_config)
    if cib.rsc_defaults:
        _w_sets(etree.SubElement(conf, "rsc_defaults"), cib.rsc_defaults)
    if cib.op_defaults:
        _w_sets(etree.SubElement(conf, "op_defaults"), cib.op_defaults)
    nodes = etree.SubElement(conf, "nodes")
    for node in cib.nodes:
        n = _sub(nodes, "node", node)
        _w_sets(n, node.attributes, node.utilization)
    resources = etree.SubElement(conf, "resources")
    for r in cib.resources:
        _w_resource(resources, r)
    constraints = etree.SubElement(conf, "constraints")
    for c in cib.constraints:
        _w_constraint(constraints, c)
    if cib.fencing_topology is not None:
        ft = etree.SubElement(conf, "fencing-topology")
        for level in cib.fencing_topology:
            _sub(ft, "fencing-level", level)
    if cib.tags:
        tags = etree.SubElement(conf, "tags")
        for tag in cib.tags:
            t = _sub(tags, "tag", tag)
            for ref in tag.refs:
                etree.SubElement(t, "obj_ref", id=ref)
    if cib.acls is not None:
        _add_unknown(conf, (cib.acls,))
    if cib.alerts is not None:
        _add_unknown(conf, (cib.alerts,))
    _add_unknown(conf, cib.configuration_unknown)
    _w_status(root, cib)
    _add_unknown(root, cib.unknown)
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="UTF-8", pretty_print=True)
