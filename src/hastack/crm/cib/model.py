"""Frozen, typed model of a Pacemaker CIB (configuration and status).

Every element keeps the attributes the model does not name in ``extra`` and child elements it
does not understand as ``RawXml`` in ``unknown``, so writing a model back loses nothing that
matters. ``line`` (the source line) is kept for error messages but takes no part in equality.
Attribute values are kept as their text (``None`` when absent) so a round trip is exact; helpers
such as :func:`parse_score` and :func:`parse_interval_ms` turn them into numbers like Pacemaker.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

INFINITY = 1_000_000

NvSetKind = Literal["instance_attributes", "meta_attributes", "utilization", "cluster_property_set"]


# ---------------------------------------------------------------------------------------------
# Problems and errors


@dataclass(frozen=True, kw_only=True)
class Problem:
    """One thing wrong with a CIB: where (file, line, element, id) and what."""

    source: str
    line: int
    element: str
    id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        what = f"<{self.element}"
        if self.id:
            what += f' id="{self.id}"'
        what += ">"
        return f"{where}: {what}: {self.message}" if self.element else f"{where}: {self.message}"


class CibError(Exception):
    """A CIB could not be read; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid CIB")


# ---------------------------------------------------------------------------------------------
# Numbers as Pacemaker reads them


def parse_score(text: str | None) -> int:
    """Return a score as Pacemaker does: INFINITY is 1,000,000 and larger values are clamped.

    ``None`` and the empty string are 0. Raises ValueError for text that is not a score.
    """
    if text is None:
        return 0
    value = text.strip()
    if value in ("", "0"):
        return 0
    if value in ("INFINITY", "+INFINITY"):
        return INFINITY
    if value == "-INFINITY":
        return -INFINITY
    if value in ("red", "yellow", "green"):
        raise ValueError(f"score {text!r} names a node-score option, set it in crm_config")
    if not re.fullmatch(r"[+-]?\d+", value):
        raise ValueError(f"invalid score {text!r} (an integer, INFINITY, +INFINITY or -INFINITY)")
    return max(-INFINITY, min(INFINITY, int(value)))


_UNIT_MS = {
    "": 1000,
    "s": 1000,
    "sec": 1000,
    "ms": 1,
    "msec": 1,
    "us": 0.001,
    "usec": 0.001,
    "m": 60_000,
    "min": 60_000,
    "h": 3_600_000,
    "hr": 3_600_000,
}
_ISO_DURATION = re.compile(
    r"P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<mi>\d+)M)?(?:(?P<s>\d+)S)?)?"
)


def parse_interval_ms(text: str | None) -> int:
    """Return an interval or timeout in milliseconds, as Pacemaker parses interval specs.

    Accepts a number with an optional unit (``10``, ``10s``, ``500ms``, ``2min``, ``1h``) or an
    ISO 8601 duration (``PT10S``). ``None``/empty is 0. Raises ValueError otherwise.
    """
    if text is None:
        return 0
    value = text.strip()
    if value == "":
        return 0
    if value.startswith("P"):
        m = _ISO_DURATION.fullmatch(value)
        if m is None or value in ("P", "PT") or value.endswith("T"):
            raise ValueError(f"invalid ISO 8601 duration {text!r}")
        g = {k: int(v) if v else 0 for k, v in m.groupdict().items()}
        days = g["y"] * 365 + g["mo"] * 30 + g["w"] * 7 + g["d"]
        return ((days * 24 + g["h"]) * 60 + g["mi"]) * 60_000 + g["s"] * 1000
    m = re.fullmatch(r"(\d+)\s*([a-z]*)", value)
    if m is None or m.group(2) not in _UNIT_MS:
        raise ValueError(
            f"invalid interval {text!r} (a number with an optional unit ms, s, m/min, h, "
            "or an ISO 8601 duration such as PT10S)"
        )
    return int(int(m.group(1)) * _UNIT_MS[m.group(2)])


def parse_bool(text: str | None, default: bool = False) -> bool:
    """Return a Pacemaker boolean (true/yes/on/y/1, false/no/off/n/0)."""
    if text is None:
        return default
    value = text.strip().lower()
    if value in ("true", "yes", "on", "y", "1"):
        return True
    if value in ("false", "no", "off", "n", "0"):
        return False
    raise ValueError(f"invalid boolean {text!r}")


# ---------------------------------------------------------------------------------------------
# Common pieces


@dataclass(frozen=True)
class RawXml:
    """An element the model keeps verbatim (whitespace-only text removed)."""

    xml: str

    @property
    def tag(self) -> str:
        m = re.match(r"<([^\s/>]+)", self.xml)
        return m.group(1) if m else ""


@dataclass(frozen=True, kw_only=True)
class Element:
    """Base of every model element."""

    extra: Mapping[str, str] = field(default_factory=dict)
    unknown: tuple[RawXml, ...] = ()
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, kw_only=True)
class NvPair(Element):
    id: str = ""
    name: str | None = None
    value: str | None = None
    id_ref: str | None = None


@dataclass(frozen=True, kw_only=True)
class Expression(Element):
    """<expression>: compare a node attribute (or #uname, #id, #kind...) with a value."""

    id: str
    attribute: str
    operation: str
    value: str | None = None
    type: str | None = None
    value_source: str | None = None


@dataclass(frozen=True, kw_only=True)
class DateSpec(Element):
    """<date_spec> or <duration>: named fields (hours="9-16", weekdays="1-5"...)."""

    tag: Literal["date_spec", "duration"]
    id: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DateExpression(Element):
    id: str
    operation: str | None = None
    start: str | None = None
    end: str | None = None
    date_spec: DateSpec | None = None
    duration: DateSpec | None = None


@dataclass(frozen=True, kw_only=True)
class OpExpression(Element):
    id: str
    name: str
    interval: str | None = None


@dataclass(frozen=True, kw_only=True)
class RscExpression(Element):
    id: str
    cls: str | None = None
    provider: str | None = None
    type: str | None = None


@dataclass(frozen=True, kw_only=True)
class Rule(Element):
    id: str = ""
    id_ref: str | None = None
    boolean_op: str | None = None
    score: str | None = None
    score_attribute: str | None = None
    role: str | None = None
    expressions: tuple[Expression | DateExpression | OpExpression | RscExpression | Rule, ...] = ()


@dataclass(frozen=True, kw_only=True)
class NvSet(Element):
    """A set of name/value pairs, optionally guarded by rules, ordered by score."""

    kind: NvSetKind
    id: str = ""
    id_ref: str | None = None
    score: str | None = None
    rules: tuple[Rule, ...] = ()
    pairs: tuple[NvPair, ...] = ()

    @property
    def rule(self) -> Rule | None:
        return self.rules[0] if self.rules else None

    def as_dict(self) -> dict[str, str]:
        """The pairs with a name and value, as a dict (the first pair of a name wins, as in
        Pacemaker)."""
        result: dict[str, str] = {}
        for p in self.pairs:
            if p.name is not None and p.value is not None:
                result.setdefault(p.name, p.value)
        return result


def _set_score(s: NvSet) -> int:
    try:
        return parse_score(s.score)
    except ValueError:
        return 0


def flatten(sets: tuple[NvSet, ...], first_id: str | None = None) -> dict[str, str]:
    """Merge rule-less sets as Pacemaker does: the set ``first_id`` first, then the others by
    descending score (document order among equal scores); the first value of a name wins, and
    ``#default`` sets nothing (it stands for "no value here").
    Sets with rules are left out: evaluating them needs a node and a time (the scheduler's job;
    hastack.crm.rules.evaluate_nvsets evaluates them).
    """
    result: dict[str, str] = {}
    ordered = sorted(
        (s for s in sets if not s.rules),
        key=lambda s: (s.id != first_id if first_id else False, -_set_score(s)),
    )
    for s in ordered:
        for name, value in s.as_dict().items():
            if value.lower() != "#default":
                result.setdefault(name, value)
    return result


# ---------------------------------------------------------------------------------------------
# Nodes


@dataclass(frozen=True, kw_only=True)
class Node(Element):
    id: str
    uname: str | None = None
    type: str | None = None
    description: str | None = None
    score: str | None = None
    attributes: tuple[NvSet, ...] = ()
    utilization: tuple[NvSet, ...] = ()


# ---------------------------------------------------------------------------------------------
# Resources


@dataclass(frozen=True, kw_only=True)
class Op(Element):
    id: str
    name: str
    interval: str | None = None
    timeout: str | None = None
    role: str | None = None
    on_fail: str | None = None
    enabled: str | None = None
    start_delay: str | None = None
    interval_origin: str | None = None
    description: str | None = None
    meta: tuple[NvSet, ...] = ()
    instance_attributes: tuple[NvSet, ...] = ()

    @property
    def interval_ms(self) -> int:
        return parse_interval_ms(self.interval)

    @property
    def interval_seconds(self) -> float:
        return self.interval_ms / 1000


@dataclass(frozen=True, kw_only=True)
class Operations(Element):
    """The <operations> element itself (its id or id-ref); the ops are on the resource."""

    id: str | None = None
    id_ref: str | None = None


@dataclass(frozen=True, kw_only=True)
class Primitive(Element):
    id: str
    cls: str | None = None
    provider: str | None = None
    type: str | None = None
    template: str | None = None
    description: str | None = None
    meta: tuple[NvSet, ...] = ()
    instance_attributes: tuple[NvSet, ...] = ()
    utilization: tuple[NvSet, ...] = ()
    operations: Operations | None = None
    ops: tuple[Op, ...] = ()

    @property
    def agent(self) -> str:
        """``class[:provider]:type`` (or ``@template`` when built from a template)."""
        if self.cls is None:
            return f"@{self.template}" if self.template else f"?:{self.type}"
        if self.provider:
            return f"{self.cls}:{self.provider}:{self.type}"
        return f"{self.cls}:{self.type}"


@dataclass(frozen=True, kw_only=True)
class Template(Element):
    id: str
    cls: str | None = None
    provider: str | None = None
    type: str | None = None
    description: str | None = None
    meta: tuple[NvSet, ...] = ()
    instance_attributes: tuple[NvSet, ...] = ()
    utilization: tuple[NvSet, ...] = ()
    operations: Operations | None = None
    ops: tuple[Op, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Group(Element):
    id: str
    description: str | None = None
    meta: tuple[NvSet, ...] = ()
    instance_attributes: tuple[NvSet, ...] = ()
    children: tuple[Primitive, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Clone(Element):
    """A clone; ``legacy_master`` when it was written as <master> (always promotable)."""

    id: str
    child: Primitive | Group
    description: str | None = None
    meta: tuple[NvSet, ...] = ()
    instance_attributes: tuple[NvSet, ...] = ()
    legacy_master: bool = False

    @property
    def promotable(self) -> bool:
        if self.legacy_master:
            return True
        try:
            return parse_bool(flatten(self.meta).get("promotable"))
        except ValueError:
            return False


@dataclass(frozen=True, kw_only=True)
class Bundle(Element):
    """A bundle: named, its primitive parsed, its container/network/storage kept verbatim."""

    id: str
    description: str | None = None
    meta: tuple[NvSet, ...] = ()
    body: tuple[RawXml, ...] = ()
    primitive: Primitive | None = None

    @property
    def container_kind(self) -> str | None:
        for raw in self.body:
            if raw.tag in ("docker", "podman", "rkt"):
                return raw.tag
        return None


Resource = Primitive | Group | Clone | Bundle | Template


# ---------------------------------------------------------------------------------------------
# Constraints


@dataclass(frozen=True, kw_only=True)
class ResourceSet(Element):
    id: str = ""
    id_ref: str | None = None
    resources: tuple[str, ...] = ()
    sequential: str | None = None
    require_all: str | None = None
    ordering: str | None = None
    action: str | None = None
    role: str | None = None
    score: str | None = None
    kind: str | None = None


@dataclass(frozen=True, kw_only=True)
class RscLocation(Element):
    id: str
    rsc: str | None = None
    rsc_pattern: str | None = None
    node: str | None = None
    score: str | None = None
    role: str | None = None
    resource_discovery: str | None = None
    rules: tuple[Rule, ...] = ()
    sets: tuple[ResourceSet, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RscColocation(Element):
    id: str
    rsc: str | None = None
    with_rsc: str | None = None
    score: str | None = None
    rsc_role: str | None = None
    with_rsc_role: str | None = None
    node_attribute: str | None = None
    influence: str | None = None
    sets: tuple[ResourceSet, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RscOrder(Element):
    id: str
    first: str | None = None
    then: str | None = None
    first_action: str | None = None
    then_action: str | None = None
    kind: str | None = None
    symmetrical: str | None = None
    score: str | None = None
    require_all: str | None = None
    sets: tuple[ResourceSet, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RscTicket(Element):
    id: str
    ticket: str
    rsc: str | None = None
    rsc_role: str | None = None
    loss_policy: str | None = None
    sets: tuple[ResourceSet, ...] = ()


Constraint = RscLocation | RscColocation | RscOrder | RscTicket


# ---------------------------------------------------------------------------------------------
# Other configuration


@dataclass(frozen=True, kw_only=True)
class Tag(Element):
    id: str
    refs: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class FencingLevel(Element):
    id: str
    index: str
    devices: str
    target: str | None = None
    target_pattern: str | None = None
    target_attribute: str | None = None
    target_value: str | None = None


# ---------------------------------------------------------------------------------------------
# Status


@dataclass(frozen=True, kw_only=True)
class LrmRscOp(Element):
    """One entry of a resource's operation history (<lrm_rsc_op>); times are in the text."""

    id: str
    operation: str | None = None
    operation_key: str | None = None
    interval: str | None = None
    call_id: str | None = None
    rc_code: str | None = None
    op_status: str | None = None
    exec_time: str | None = None
    queue_time: str | None = None
    last_rc_change: str | None = None
    last_run: str | None = None
    op_digest: str | None = None
    op_restart_digest: str | None = None
    op_secure_digest: str | None = None
    transition_key: str | None = None
    transition_magic: str | None = None
    exit_reason: str | None = None
    on_node: str | None = None

    @staticmethod
    def _int(text: str | None, default: int = 0) -> int:
        try:
            return int(text) if text is not None else default
        except ValueError:
            return default

    @property
    def interval_ms(self) -> int:
        return self._int(self.interval)

    @functools.cached_property
    def call_id_int(self) -> int:
        # cached: the history is sorted by it again and again
        return self._int(self.call_id, -1)

    @property
    def rc_code_int(self) -> int:
        return self._int(self.rc_code)

    @property
    def op_status_int(self) -> int:
        return self._int(self.op_status)


@dataclass(frozen=True, kw_only=True)
class LrmResource(Element):
    id: str
    cls: str | None = None
    provider: str | None = None
    type: str | None = None
    container: str | None = None
    ops: tuple[LrmRscOp, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Lrm(Element):
    """<lrm> and its <lrm_resources> (``resources_extra`` holds the latter's attributes)."""

    id: str | None = None
    resources_extra: Mapping[str, str] = field(default_factory=dict)
    resources: tuple[LrmResource, ...] = ()


@dataclass(frozen=True, kw_only=True)
class NodeState(Element):
    """A node's <node_state> (Pacemaker tolerates one without an id: then ``id`` is "")."""

    id: str = ""
    uname: str | None = None
    in_ccm: str | None = None
    crmd: str | None = None
    join: str | None = None
    expected: str | None = None
    transient_id: str | None = None
    transient: tuple[NvSet, ...] | None = None
    lrm: Lrm | None = None

    @property
    def lrm_resources(self) -> tuple[LrmResource, ...]:
        return self.lrm.resources if self.lrm else ()


@dataclass(frozen=True, kw_only=True)
class TicketState(Element):
    id: str
    granted: str | None = None
    last_granted: str | None = None
    standby: str | None = None


# ---------------------------------------------------------------------------------------------
# The CIB


@dataclass(frozen=True)
class SourceInfo:
    """Where a CIB came from (a file name or a description such as ``<live cib>``)."""

    source: str


@dataclass(frozen=True, kw_only=True)
class Cib(Element):
    admin_epoch: int = 0
    epoch: int = 0
    num_updates: int = 0
    validate_with: str | None = None
    crm_config: tuple[NvSet, ...] = ()
    rsc_defaults: tuple[NvSet, ...] = ()
    op_defaults: tuple[NvSet, ...] = ()
    nodes: tuple[Node, ...] = ()
    resources: tuple[Resource, ...] = ()
    constraints: tuple[Constraint, ...] = ()
    tags: tuple[Tag, ...] = ()
    fencing_topology: tuple[FencingLevel, ...] | None = None
    acls: RawXml | None = None
    alerts: RawXml | None = None
    configuration_unknown: tuple[RawXml, ...] = ()
    status: tuple[NodeState, ...] = ()
    tickets: tuple[TicketState, ...] | None = None
    status_unknown: tuple[RawXml, ...] = ()
    source: SourceInfo = field(default=SourceInfo("<memory>"), compare=False)

    @property
    def attributes(self) -> Mapping[str, str]:
        """Attributes of <cib> other than the epochs and validate-with."""
        return self.extra

    @property
    def templates(self) -> tuple[Template, ...]:
        return tuple(r for r in self.resources if isinstance(r, Template))

    def cluster_options(self) -> dict[str, str]:
        """The rule-less crm_config options (``cib-bootstrap-options`` first, as Pacemaker)."""
        return flatten(self.crm_config, first_id="cib-bootstrap-options")

    def template(self, template_id: str) -> Template | None:
        return next((t for t in self.templates if t.id == template_id), None)

    def expand_template(self, primitive: Primitive) -> Primitive:
        """The primitive with its template applied: the template's class/provider/type, its
        attribute sets after the primitive's own (so the primitive's values win), and its ops
        except those the primitive redefines (same name and role). A primitive
        without a template, or whose template is missing, is returned unchanged."""
        if primitive.template is None:
            return primitive
        t = self.template(primitive.template)
        if t is None:
            return primitive

        def op_key(op: Op) -> tuple[str, str]:
            # Pacemaker's template_op_key: name and role (Started when unset), not the
            # interval, so a primitive's monitor replaces the template's whatever its interval
            return (op.name, op.role or "Started")

        own = {op_key(op) for op in primitive.ops}
        return replace(
            primitive,
            cls=primitive.cls or t.cls,
            provider=primitive.provider or t.provider,
            type=primitive.type or t.type,
            meta=primitive.meta + t.meta,
            instance_attributes=primitive.instance_attributes + t.instance_attributes,
            utilization=primitive.utilization + t.utilization,
            ops=primitive.ops + tuple(op for op in t.ops if op_key(op) not in own),
        )

    def all_primitives(self) -> tuple[Primitive, ...]:
        """Every primitive, inside groups, clones and bundles too, in document order."""
        out: list[Primitive] = []

        def walk(r: Resource) -> None:
            if isinstance(r, Primitive):
                out.append(r)
            elif isinstance(r, Group):
                out.extend(r.children)
            elif isinstance(r, Clone):
                walk(r.child)
            elif isinstance(r, Bundle) and r.primitive is not None:
                out.append(r.primitive)

        for r in self.resources:
            walk(r)
        return tuple(out)

    def has_bundles(self) -> bool:
        return any(isinstance(r, Bundle) for r in self.resources)

    def remote_node_names(self) -> tuple[str, ...]:
        """Remote nodes (ocf:pacemaker:remote primitives, nodes of type remote) and guests
        (primitives with a remote-node meta attribute)."""
        names: list[str] = []
        for p in self.all_primitives():
            if p.cls == "ocf" and p.provider == "pacemaker" and p.type == "remote":
                names.append(p.id)
            guest = flatten(p.meta).get("remote-node")
            if guest:
                names.append(guest)
        for n in self.nodes:
            if n.type == "remote" and (n.uname or n.id) not in names:
                names.append(n.uname or n.id)
        return tuple(names)
