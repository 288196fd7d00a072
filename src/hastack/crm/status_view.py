"""What ``hastack status`` shows: the cluster as crm_mon shows it, plus what an operator left in
force, built from a CIB and (optionally) the local node's membership view.

It is pure: :func:`build_view` takes a parsed CIB (or None when only membership is known), the
control socket's ``status`` document (or None when reading a CIB file) and ``now`` (epoch
seconds), and returns a frozen :class:`StatusView`. :func:`render_text` gives crm_mon's text
layout (Pacemaker 2.1.5), :func:`renderable` the same with colour for rich, and
:meth:`StatusView.to_json` a stable JSON document for scripts.

Node states and resource roles come from :func:`hastack.crm.state.resource_states`, the
scheduler's own first stage, so the status view and the scheduler never disagree about what runs
where. Time-dependent things (failure expiry, pin lifetimes) are judged at ``now``, as crm_mon
judges them at the current time.

JSON shape (``StatusView.to_json()``; schema 1; keys are always present, lists may be empty)::

    {
      "schema": 1,
      "summary": {"stack": "hastack", "dc": str|null, "quorate": bool|null,
                  "last_updated": float, "last_change": {"time": str|null, "user": str|null,
                  "client": str|null, "origin": str|null},
                  "nodes_configured": int, "resources_configured": int,
                  "resources_disabled": int, "resources_blocked": int,
                  "maintenance_mode": bool, "stonith_enabled": bool,
                  "epoch": "admin_epoch.epoch.num_updates"|null},
      "nodes": [{"name", "id", "state", "label", "online", "standby",
                 "standby_with_resources", "maintenance", "pending", "unclean", "shutdown",
                 "is_dc", "resources_running", "attributes": {name: value},
                 "membership": {...}|null}],     # membership: the control socket's entry
      "resources": [Resource],
         # Resource: {"kind": "primitive"|"group"|"clone"|"bundle", "id", "agent": str|null,
         #            "managed", "disabled", "promotable", "unique",
         #            "instances": [Instance],   # primitive: its instance(s);
         #                                       # clone of a primitive: one per instance
         #            "members": [Resource],     # group: its primitives;
         #                                       # clone of a group: one group per instance
         #            "stopped": [node, ...]}    # clone: nodes with no active instance
         # Instance: {"id", "primitive", "agent", "role", "nodes": [..], "failed", "managed",
         #            "disabled", "blocked", "orphaned", "failure_ignored", "pending": str|null}
      "orphans": [Instance],                   # active in the status, not configured
      "failed_actions": [{"resource", "node", "operation", "interval_ms", "op_key", "rc",
                          "rc_text", "status", "status_text", "exit_reason": str|null,
                          "last_rc_change": float|null, "exec_time_ms": int|null,
                          "queue_time_ms": int|null, "call_id": int|null,
                          "failure_ignored": bool}],
      "fail_counts": [{"node", "resource", "fail_count", "migration_threshold",
                       "last_failure": float|null, "failure_timeout_s": float|null,
                       "expires": float|null}],
      "in_force": [{"kind", "target", "node": str|null, "detail", "constraint": str|null,
                    "expires": float|null, "expired": bool}],
         # kind: prefer | ban | standby | maintenance-node | maintenance-mode
         #       | stop-all-resources | unmanaged | disabled
      "membership": {...}|null                 # the control socket's status document
    }
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from hastack.crm.cib.model import (
    INFINITY,
    Bundle,
    Cib,
    Clone,
    DateExpression,
    Expression,
    Group,
    LrmRscOp,
    NvSet,
    Primitive,
    RscLocation,
    Rule,
    flatten,
    parse_bool,
    parse_score,
)
from hastack.crm.rules import RuleContext, RuleError, evaluate_nvsets, parse_iso8601
from hastack.crm.state import (
    EXEC_CANCELLED,
    EXEC_DONE,
    EXEC_ERROR,
    EXEC_NOT_INSTALLED,
    EXEC_PENDING,
    RC_NOT_INSTALLED,
    RC_NOT_RUNNING,
    RC_OK,
    RC_RUNNING_PROMOTED,
    ClusterState,
    ResourceState,
    Role,
    resource_states,
)
from hastack.crm.state import _expected_rc as expected_rc
from hastack.crm.state import _expired as failure_expired
from hastack.crm.state import _failure_timeout_ms as failure_timeout_ms
from hastack.crm.state import _on_fail as op_on_fail
from hastack.crm.state import _op_name as op_name
from hastack.crm.state import _resource_index as resource_index

SCHEMA = 1

# Pacemaker's words for OCF exit codes and execution statuses (crm_mon's "returned '...'").
RC_TEXT = {
    0: "ok",
    1: "error",
    2: "invalid parameter",
    3: "unimplemented feature",
    4: "insufficient privileges",
    5: "not installed",
    6: "not configured",
    7: "not running",
    8: "promoted",
    9: "promoted (failed)",
    190: "OCF_DEGRADED",  # sic: crm_mon 2.1.5's words
    191: "promoted (degraded)",
}
STATUS_TEXT = {
    -1: "pending",
    0: "complete",
    1: "Cancelled",
    2: "Timed Out",
    3: "NOT SUPPORTED",
    4: "Error",
    5: "Hard error",
    6: "Fatal error",
    7: "Not installed",
    8: "Internal communication failure",
    9: "Cannot execute now",
    10: "No fence device",
    11: "CIB secrets unavailable",
}


# ---------------------------------------------------------------------------------------------
# The view


@dataclass(frozen=True)
class Summary:
    """crm_mon's "Cluster Summary"."""

    stack: str
    dc: str | None
    quorate: bool | None
    last_updated: float
    last_change: dict[str, str | None]
    nodes_configured: int
    resources_configured: int
    resources_disabled: int
    resources_blocked: int
    maintenance_mode: bool
    stonith_enabled: bool
    epoch: str | None


@dataclass(frozen=True)
class NodeView:
    """One node: its state as the scheduler sees it, merged with the membership's entry."""

    name: str
    id: str | None
    state: str  # online, standby, maintenance, offline, unclean, pending, shutdown
    label: str  # crm_mon's words: Online, OFFLINE, UNCLEAN (offline), standby...
    online: bool = False
    standby: bool = False
    standby_with_resources: bool = False
    maintenance: bool = False
    pending: bool = False
    unclean: bool = False
    shutdown: bool = False
    is_dc: bool = False
    resources_running: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    membership: dict[str, Any] | None = None


@dataclass(frozen=True)
class InstanceView:
    """One primitive, or one clone instance, with where and in which role it is active."""

    id: str
    primitive: str
    agent: str
    role: str
    nodes: tuple[str, ...] = ()
    failed: bool = False
    managed: bool = True
    disabled: bool = False
    blocked: bool = False
    orphaned: bool = False
    failure_ignored: bool = False
    pending: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.nodes)


@dataclass(frozen=True)
class ResourceView:
    """A configured resource: a primitive (``instances``), a group (``members``), a clone of a
    primitive (``instances``) or of a group (``members``: one group per instance), a bundle."""

    kind: str
    id: str
    agent: str | None = None
    managed: bool = True
    disabled: bool = False
    promotable: bool = False
    unique: bool = False
    instances: tuple[InstanceView, ...] = ()
    members: tuple[ResourceView, ...] = ()
    stopped: tuple[str, ...] = ()


@dataclass(frozen=True)
class FailedAction:
    """A failed operation from the status section (an ``lrm_rsc_op``), as crm_mon lists it."""

    resource: str
    node: str
    operation: str
    interval_ms: int
    op_key: str
    rc: int
    rc_text: str
    status: int
    status_text: str
    exit_reason: str | None
    last_rc_change: float | None
    exec_time_ms: int | None
    queue_time_ms: int | None
    call_id: int | None
    failure_ignored: bool = False


@dataclass(frozen=True)
class FailCount:
    """A node's fail count for one resource (crm_mon -f's "Migration Summary")."""

    node: str
    resource: str
    fail_count: int
    migration_threshold: int
    last_failure: float | None
    failure_timeout_s: float | None
    expires: float | None


@dataclass(frozen=True)
class InForce:
    """Something an operator (or the configuration) left in force: a pin, a ban, a standby or
    maintenance flag, an unmanaged or disabled resource."""

    kind: str
    target: str
    node: str | None
    detail: str
    constraint: str | None = None
    expires: float | None = None
    expired: bool = False


@dataclass(frozen=True)
class StatusView:
    summary: Summary
    nodes: tuple[NodeView, ...]
    resources: tuple[ResourceView, ...]
    orphans: tuple[InstanceView, ...]
    failed_actions: tuple[FailedAction, ...]
    fail_counts: tuple[FailCount, ...]
    in_force: tuple[InForce, ...]
    membership: dict[str, Any] | None = None
    has_cib: bool = True

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape (see the module docstring)."""
        return {
            "schema": SCHEMA,
            "summary": asdict(self.summary),
            "nodes": [asdict(n) for n in self.nodes],
            "resources": [_resource_json(r) for r in self.resources],
            "orphans": [_instance_json(i) for i in self.orphans],
            "failed_actions": [asdict(f) for f in self.failed_actions],
            "fail_counts": [asdict(f) for f in self.fail_counts],
            "in_force": [asdict(i) for i in self.in_force],
            "membership": self.membership,
        }

    def node(self, name: str) -> NodeView | None:
        return next((n for n in self.nodes if n.name == name), None)

    def instances(self) -> list[InstanceView]:
        """Every instance, configured ones (walking groups and clones) then orphans."""
        out: list[InstanceView] = []

        def walk(r: ResourceView) -> None:
            out.extend(r.instances)
            for m in r.members:
                walk(m)

        for r in self.resources:
            walk(r)
        return out + list(self.orphans)

    def resource(self, rid: str) -> ResourceView | None:
        def walk(rs: Iterable[ResourceView]) -> ResourceView | None:
            for r in rs:
                if r.id == rid:
                    return r
                found = walk(r.members)
                if found is not None:
                    return found
            return None

        return walk(self.resources)


def _instance_json(i: InstanceView) -> dict[str, Any]:
    d = asdict(i)
    d["nodes"] = list(i.nodes)
    return d


def _resource_json(r: ResourceView) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "id": r.id,
        "agent": r.agent,
        "managed": r.managed,
        "disabled": r.disabled,
        "promotable": r.promotable,
        "unique": r.unique,
        "instances": [_instance_json(i) for i in r.instances],
        "members": [_resource_json(m) for m in r.members],
        "stopped": list(r.stopped),
    }


# ---------------------------------------------------------------------------------------------
# Building it


def _bool(text: str | None, default: bool = False) -> bool:
    try:
        return parse_bool(text, default)
    except ValueError:
        return default


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _meta(sets: tuple[NvSet, ...]) -> dict[str, str]:
    return flatten(sets)


def _stopped_role(meta: Mapping[str, str]) -> bool:
    return (meta.get("target-role") or "").lower() == "stopped"


def _node_state(
    online: bool, standby: bool, maintenance: bool, pending: bool, unclean: bool, shutdown: bool
) -> str:
    if unclean:
        return "unclean"
    if pending:
        return "pending"
    if not online:
        return "offline"
    if shutdown:
        return "shutdown"
    if standby:
        return "standby"
    if maintenance:
        return "maintenance"
    return "online"


def _hidden_attribute(name: str) -> bool:
    """Attributes crm_mon -A does not list: fail counts (the Migration Summary shows them),
    Pacemaker's own (#...), standby (the node list shows it) and shutdown/terminate requests."""
    return name.startswith(("fail-count-", "last-failure-", "#")) or name in (
        "shutdown",
        "terminate",
        "standby",
    )


def _node_attributes(cib: Cib) -> dict[str, dict[str, str]]:
    """Node name -> its permanent attributes overlaid by its transient ones."""
    by_id = {n.id: (n.uname or n.id) for n in cib.nodes}
    out: dict[str, dict[str, str]] = {n.uname or n.id: flatten(n.attributes) for n in cib.nodes}
    for state in cib.status:
        name = by_id.get(state.id) or state.uname
        if name is None:
            continue
        out.setdefault(name, {}).update(flatten(state.transient or ()))
    return out


@dataclass
class _Flags:
    managed: bool
    disabled: bool


def _meta_at(
    sets: tuple[NvSet, ...], now: float, rsc: tuple[str | None, str | None, str | None]
) -> dict[str, str]:
    """Meta-attributes whose set rules hold now for this resource's agent (rules on dates and
    ``rsc_expression``s, as Pacemaker evaluates rsc_defaults and a resource's own meta);
    the rule-less sets alone when a rule cannot be evaluated."""
    if not any(s.rules for s in sets):
        return flatten(sets)
    ctx = RuleContext(node_attrs=None, now=datetime.fromtimestamp(now, UTC), rsc=rsc)
    try:
        return evaluate_nvsets(sets, ctx)
    except RuleError:
        return flatten(sets)


def _walk_flags(cib: Cib, now: float) -> dict[str, _Flags]:
    """Resource id (primitives, groups, clones, bundles) -> its effective managed/disabled:
    its own meta, then its parents', then rsc_defaults (evaluated for its agent), as
    Pacemaker fills a resource's meta-attributes."""
    mode = _bool(cib.cluster_options().get("maintenance-mode"))
    out: dict[str, _Flags] = {}
    no_agent: tuple[str | None, str | None, str | None] = ("", "", "")

    def visit(
        rid: str,
        sets: tuple[NvSet, ...],
        parents: dict[str, str],
        agent: tuple[str | None, str | None, str | None] = no_agent,
    ) -> dict[str, str]:
        chain = {**parents, **_meta_at(sets, now, agent)}
        merged = {**_meta_at(cib.rsc_defaults, now, agent), **chain}
        managed = _bool(merged.get("is-managed"), True) and not _bool(merged.get("maintenance"))
        out[rid] = _Flags(managed=managed and not mode, disabled=_stopped_role(merged))
        return chain

    def primitive(p: Primitive, parents: dict[str, str]) -> None:
        full = cib.expand_template(p)
        visit(p.id, full.meta, parents, (full.cls, full.provider, full.type))

    for r in cib.resources:
        if isinstance(r, Primitive):
            primitive(r, {})
        elif isinstance(r, Group):
            g = visit(r.id, r.meta, {})
            for c in r.children:
                primitive(c, g)
        elif isinstance(r, Clone):
            cm = visit(r.id, r.meta, {})
            if isinstance(r.child, Group):
                g = visit(r.child.id, r.child.meta, cm)
                for c in r.child.children:
                    primitive(c, g)
            else:
                primitive(r.child, cm)
        elif isinstance(r, Bundle):
            bm = visit(r.id, r.meta, {})
            if r.primitive is not None:
                primitive(r.primitive, bm)
    return out


class _Builder:
    """Builds the parts of a StatusView from one CIB, sharing the scheduler's first stage
    (resource_states) and the indexes every part needs."""

    def __init__(self, cib: Cib, now: float) -> None:
        self.cib = cib
        self.now = now
        self.options = cib.cluster_options()
        self.fencing = _bool(self.options.get("stonith-enabled"), True)
        self.state: ClusterState = resource_states(cib, now)
        self.index = resource_index(cib)
        self.flags = _walk_flags(cib, now)
        self.by_primitive: dict[str, list[ResourceState]] = {}
        for r in self.state.resources:
            self.by_primitive.setdefault(r.primitive, []).append(r)
        self.node_names = [n.name for n in self.state.nodes.values()]
        # what runs on a node in maintenance is left alone there: unmanaged, as crm_mon shows
        self.maintenance_nodes = {n.name for n in self.state.nodes.values() if n.maintenance}
        self.blocked_primitives: set[str] = set()
        # (node, resource, op id) -> the op: ids repeat across nodes and resources' histories
        by_id = {n.id: n.name for n in self.state.nodes.values()}
        self.ops: dict[tuple[str, str, str], LrmRscOp] = {}
        for st in cib.status:
            name = by_id.get(st.id) or st.uname or st.id
            for lrm in st.lrm_resources:
                for op in lrm.ops:
                    self.ops[(name, lrm.id.partition(":")[0], op.id)] = op

    # -- resources ------------------------------------------------------------------------

    def _agent(self, p: Primitive) -> str:
        return self.cib.expand_template(p).agent

    def _blocked(self, entries: list[ResourceState], primitive: Primitive | None) -> bool:
        for e in entries:
            if not e.failed or e.failed_op is None:
                continue
            op = self.ops.get((e.node, e.primitive, e.failed_op))
            if op is None:
                continue
            on_fail = op_on_fail(primitive, op_name(op), op.interval_ms, self.fencing)
            if on_fail == "block":
                return True
        return False

    def _instance(
        self, iid: str, p: Primitive, entries: list[ResourceState], flags: _Flags
    ) -> InstanceView:
        active = [e for e in entries if e.role.active]
        role = max((e.role for e in active), key=lambda r: r.rank, default=Role.STOPPED)
        pending = next((e.pending for e in entries if e.pending), None)
        blocked = self._blocked(entries, p)
        if blocked:
            self.blocked_primitives.add(iid)
        return InstanceView(
            id=iid,
            primitive=p.id,
            agent=self._agent(p),
            role=str(role),
            nodes=tuple(sorted({e.node for e in active}, key=self._node_order)),
            failed=any(e.failed for e in entries),
            managed=flags.managed and not any(e.node in self.maintenance_nodes for e in active),
            disabled=flags.disabled,
            blocked=blocked,
            orphaned=False,
            failure_ignored=any("failure ignored" in note for e in entries for note in e.notes),
            pending=pending,
        )

    @staticmethod
    def _node_order(name: str) -> list[int | str]:
        return natural_key(name)

    def _clone_max(self, clone: Clone) -> int:
        meta = flatten(clone.meta)
        n = _int(meta.get("clone-max"))
        return len(self.node_names) if n is None else max(0, n)

    def primitive(self, p: Primitive) -> ResourceView:
        flags = self.flags.get(p.id, _Flags(True, False))
        entries = [e for e in self.by_primitive.get(p.id, []) if not e.orphan]
        inst = self._instance(p.id, p, entries, flags)
        return ResourceView(
            kind="primitive",
            id=p.id,
            agent=inst.agent,
            managed=flags.managed,
            disabled=flags.disabled,
            instances=(inst,),
        )

    def group(self, g: Group) -> ResourceView:
        flags = self.flags.get(g.id, _Flags(True, False))
        return ResourceView(
            kind="group",
            id=g.id,
            managed=flags.managed,
            disabled=flags.disabled,
            members=tuple(self.primitive(c) for c in g.children),
        )

    def _clone_instances(
        self, p: Primitive, flags: _Flags, count: int
    ) -> tuple[list[InstanceView], set[str]]:
        """The instances of a clone's primitive: active ones by instance name, then stopped
        ones up to ``count`` (clone-max); and the nodes where it is active."""
        entries = [e for e in self.by_primitive.get(p.id, []) if not e.orphan]
        by_id: dict[str, list[ResourceState]] = {}
        for e in entries:
            if e.role.active or e.failed:
                by_id.setdefault(e.id, []).append(e)
        out = [self._instance(iid, p, es, flags) for iid, es in by_id.items()]
        out.sort(key=lambda i: natural_key(i.id))
        used = {i.id for i in out}
        n = 0
        while len(out) < count:
            iid = f"{p.id}:{n}"
            n += 1
            if iid not in used:
                out.append(self._instance(iid, p, [], flags))
        active_nodes = {node for i in out for node in i.nodes}
        return out, active_nodes

    def _stopped(self, active: set[str], count: int) -> tuple[str, ...]:
        """crm_mon's ``Stopped: [ ... ]``: while fewer instances run than clone-max, every node
        (whatever its state) where none runs."""
        if len(active) >= count:
            return ()
        return tuple(sorted((n for n in self.node_names if n not in active), key=natural_key))

    def clone(self, c: Clone) -> ResourceView:
        flags = self.flags.get(c.id, _Flags(True, False))
        meta = flatten(c.meta)
        unique = _bool(meta.get("globally-unique"))
        count = self._clone_max(c)
        if isinstance(c.child, Primitive):
            pflags = self.flags.get(c.child.id, flags)
            instances, active = self._clone_instances(c.child, pflags, count)
            return ResourceView(
                kind="clone",
                id=c.id,
                agent=self._agent(c.child),
                managed=flags.managed,
                disabled=flags.disabled,
                promotable=c.promotable,
                unique=unique,
                instances=tuple(instances),
                stopped=self._stopped(active, count),
            )
        group = c.child
        # One group instance per node where any member is active (members of a cloned group
        # run together), then stopped group instances up to clone-max.
        per_member = {
            m.id: self._clone_instances(m, self.flags.get(m.id, flags), 0)[0]
            for m in group.children
        }
        nodes_active: list[str] = []
        for insts in per_member.values():
            for i in insts:
                for node in i.nodes:
                    if node not in nodes_active:
                        nodes_active.append(node)
        nodes_active.sort(key=self._node_order)
        gflags = self.flags.get(group.id, flags)
        members: list[ResourceView] = []
        for number, node in enumerate(nodes_active):
            insts: list[InstanceView] = []
            for m in group.children:
                mine = [i for i in per_member[m.id] if node in i.nodes]
                if mine:
                    insts.append(mine[0])
                else:
                    mflags = self.flags.get(m.id, gflags)
                    insts.append(self._instance(f"{m.id}:{number}", m, [], mflags))
            members.append(
                ResourceView(
                    kind="group",
                    id=f"{group.id}:{number}",
                    managed=gflags.managed,
                    disabled=gflags.disabled,
                    members=tuple(
                        ResourceView(
                            kind="primitive",
                            id=i.primitive,
                            agent=i.agent,
                            managed=i.managed,
                            disabled=i.disabled,
                            instances=(i,),
                        )
                        for i in insts
                    ),
                )
            )
        for number in range(len(nodes_active), count):
            members.append(
                ResourceView(
                    kind="group",
                    id=f"{group.id}:{number}",
                    managed=gflags.managed,
                    disabled=gflags.disabled,
                    members=tuple(
                        ResourceView(
                            kind="primitive",
                            id=m.id,
                            agent=self._agent(m),
                            managed=self.flags.get(m.id, gflags).managed,
                            disabled=self.flags.get(m.id, gflags).disabled,
                            instances=(
                                self._instance(
                                    f"{m.id}:{number}", m, [], self.flags.get(m.id, gflags)
                                ),
                            ),
                        )
                        for m in group.children
                    ),
                )
            )
        return ResourceView(
            kind="clone",
            id=c.id,
            managed=flags.managed,
            disabled=flags.disabled,
            promotable=c.promotable,
            unique=unique,
            members=tuple(members),
            stopped=self._stopped(set(nodes_active), count),
        )

    def bundle(self, b: Bundle) -> ResourceView:
        flags = self.flags.get(b.id, _Flags(True, False))
        members = (self.primitive(b.primitive),) if b.primitive is not None else ()
        return ResourceView(
            kind="bundle",
            id=b.id,
            agent=b.container_kind,
            managed=flags.managed,
            disabled=flags.disabled,
            members=members,
        )

    def resources(self) -> tuple[ResourceView, ...]:
        out: list[ResourceView] = []
        for r in self.cib.resources:
            if isinstance(r, Primitive):
                out.append(self.primitive(r))
            elif isinstance(r, Group):
                out.append(self.group(r))
            elif isinstance(r, Clone):
                out.append(self.clone(r))
            elif isinstance(r, Bundle):
                out.append(self.bundle(r))
        return tuple(out)

    def orphans(self) -> tuple[InstanceView, ...]:
        """Resources the status shows active that the configuration no longer has."""
        agents: dict[str, str] = {}
        for st in self.cib.status:
            for lrm in st.lrm_resources:
                if lrm.cls:
                    agent = (
                        f"{lrm.cls}:{lrm.provider}:{lrm.type}"
                        if lrm.provider
                        else (f"{lrm.cls}:{lrm.type}")
                    )
                    agents.setdefault(lrm.id, agent)
        by_id: dict[str, list[ResourceState]] = {}
        for e in self.state.resources:
            if e.orphan and e.role.active:
                by_id.setdefault(e.id, []).append(e)
        out = []
        for iid, es in by_id.items():
            role = max((e.role for e in es), key=lambda r: r.rank)
            out.append(
                InstanceView(
                    id=iid,
                    primitive=es[0].primitive,
                    agent=agents.get(iid, "?"),
                    role=str(role),
                    nodes=tuple(sorted({e.node for e in es}, key=self._node_order)),
                    failed=any(e.failed for e in es),
                    managed=False,
                    orphaned=True,
                )
            )
        return tuple(out)

    # -- failures -------------------------------------------------------------------------

    def failed_actions(self) -> tuple[FailedAction, ...]:
        """Every failed operation still remembered (not expired by failure-timeout), once per
        (operation key, node) as Pacemaker records them. The history of an offline node that
        cannot be fenced is not read (as the scheduler does: nothing runs there), and a probe
        that found the agent not installed is not a failure to show (crm_mon masks it too)."""
        by_id = {n.id: n.name for n in self.state.nodes.values()}
        seen: set[tuple[str, str]] = set()
        out: list[FailedAction] = []
        for st in self.cib.status:
            node = by_id.get(st.id) or st.uname or st.id
            status = self.state.nodes.get(node)
            if status is None or not status.online:
                continue
            for lrm in st.lrm_resources:
                base = lrm.id.partition(":")[0]
                entry = self.index.get(base)
                primitive, meta = (entry[0], entry[2]) if entry else (None, {})
                managed = _bool(meta.get("is-managed"), True)
                timeout = failure_timeout_ms(meta)
                for op in sorted(lrm.ops, key=lambda o: o.call_id_int):
                    fa = self._failure(lrm.id, node, op, primitive, managed, timeout)
                    if fa is None:
                        continue
                    key = (fa.op_key, node)
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append(fa)
        return tuple(out)

    def _failure(
        self,
        rsc: str,
        node: str,
        op: LrmRscOp,
        primitive: Primitive | None,
        managed: bool,
        timeout_ms: int,
    ) -> FailedAction | None:
        status = op.op_status_int if op.op_status is not None else EXEC_DONE
        if status in (EXEC_CANCELLED, EXEC_PENDING) or op.call_id_int == -1:
            return None
        name = op_name(op)
        interval = op.interval_ms
        rc = op.rc_code_int
        probe = name == "monitor" and interval == 0
        expected = expected_rc(op)
        if expected is None:
            expected = RC_NOT_RUNNING if probe else RC_OK
        mapped = {190: RC_OK, 191: RC_RUNNING_PROMOTED}.get(rc, rc)
        ok = status in (EXEC_DONE, EXEC_ERROR) and (
            mapped == expected
            or (probe and mapped in (RC_OK, RC_NOT_RUNNING, RC_RUNNING_PROMOTED))
            or (name == "monitor" and mapped == RC_NOT_RUNNING and not managed)
        )
        degraded = rc in (190, 191)  # a success, yet crm_mon lists it among failures
        if (ok and not degraded) or name == "notify":
            return None
        if probe and (rc == RC_NOT_INSTALLED or status == EXEC_NOT_INSTALLED):
            return None
        on_fail = op_on_fail(primitive, name, interval, self.fencing)
        if name != "stop" and on_fail != "block" and failure_expired(op, timeout_ms, self.now):
            return None
        key = op.operation_key or op.id
        # crm_mon names the resource its operation key names (RSC_TASK_INTERVAL)
        tail = f"_{name}_{interval}"
        return FailedAction(
            resource=key[: -len(tail)] if key.endswith(tail) and len(key) > len(tail) else rsc,
            node=node,
            operation=name,
            interval_ms=interval,
            op_key=key,
            rc=rc,
            rc_text=RC_TEXT.get(rc, "unknown"),
            status=status,
            status_text=STATUS_TEXT.get(status, "unknown"),
            exit_reason=op.exit_reason or None,
            last_rc_change=_float(op.last_rc_change or op.last_run),
            exec_time_ms=_int(op.exec_time),
            queue_time_ms=_int(op.queue_time),
            call_id=_int(op.call_id),
            failure_ignored=on_fail == "ignore",
        )

    def fail_counts(self) -> tuple[FailCount, ...]:
        """``fail-count-RSC[#OP_INTERVAL]`` transient attributes, summed per node and
        resource (INFINITY caps the sum), with migration-threshold and when failure-timeout
        forgets them; online nodes only, as crm_mon's Migration Summary."""
        by_id = {n.id: n.name for n in self.state.nodes.values()}
        out: list[FailCount] = []
        for st in self.cib.status:
            node = by_id.get(st.id) or st.uname or st.id
            status = self.state.nodes.get(node)
            if status is None or not status.online:
                continue
            attrs = flatten(st.transient or ())
            counts: dict[str, int] = {}
            last: dict[str, float] = {}
            for name, value in attrs.items():
                if name.startswith("fail-count-"):
                    rsc = name[len("fail-count-") :].partition("#")[0]
                    try:
                        n = parse_score(value)
                    except ValueError:
                        continue
                    counts[rsc] = min(INFINITY, counts.get(rsc, 0) + n)
                elif name.startswith("last-failure-"):
                    rsc = name[len("last-failure-") :].partition("#")[0]
                    t = _float(value)
                    if t is not None:
                        last[rsc] = max(last.get(rsc, t), t)
            for rsc, count in counts.items():
                if count <= 0:
                    continue
                entry = self.index.get(rsc.partition(":")[0])
                meta = entry[2] if entry else {}
                try:
                    threshold = parse_score(meta.get("migration-threshold") or "INFINITY")
                except ValueError:
                    threshold = INFINITY
                timeout_ms = failure_timeout_ms(meta)
                lf = last.get(rsc)
                expires = lf + timeout_ms / 1000 if (timeout_ms > 0 and lf is not None) else None
                out.append(
                    FailCount(
                        node=node,
                        resource=rsc,
                        fail_count=count,
                        migration_threshold=threshold,
                        last_failure=lf,
                        failure_timeout_s=timeout_ms / 1000 if timeout_ms > 0 else None,
                        expires=expires,
                    )
                )
        return tuple(out)

    # -- what is in force -----------------------------------------------------------------

    def in_force(self, nodes: tuple[NodeView, ...]) -> tuple[InForce, ...]:
        out: list[InForce] = []
        for c in self.cib.constraints:
            if isinstance(c, RscLocation) and c.id.startswith(("cli-prefer-", "cli-ban-")):
                out.append(self._pin(c))
        attrs = _node_attributes(self.cib)
        permanent = {n.uname or n.id: flatten(n.attributes) for n in self.cib.nodes}
        for n in nodes:
            how = "permanent" if _bool(permanent.get(n.name, {}).get("standby")) else "transient"
            if _bool(attrs.get(n.name, {}).get("standby")):
                out.append(InForce("standby", n.name, n.name, f"node {n.name} in standby ({how})"))
            how = (
                "permanent" if _bool(permanent.get(n.name, {}).get("maintenance")) else "transient"
            )
            if _bool(attrs.get(n.name, {}).get("maintenance")):
                out.append(
                    InForce(
                        "maintenance-node", n.name, n.name, f"node {n.name} in maintenance ({how})"
                    )
                )
        if _bool(self.options.get("maintenance-mode")):
            out.append(
                InForce(
                    "maintenance-mode",
                    "cluster",
                    None,
                    "maintenance-mode=true: nothing is started, stopped or monitored",
                )
            )
        if _bool(self.options.get("stop-all-resources")):
            out.append(InForce("stop-all-resources", "cluster", None, "stop-all-resources=true"))
        defaults = flatten(self.cib.rsc_defaults)
        if not _bool(defaults.get("is-managed"), True):
            out.append(InForce("unmanaged", "rsc_defaults", None, "rsc_defaults is-managed=false"))
        if _stopped_role(defaults):
            out.append(
                InForce("disabled", "rsc_defaults", None, "rsc_defaults target-role=Stopped")
            )
        for rid, own in self._own_meta():
            if not _bool(own.get("is-managed"), True):
                out.append(InForce("unmanaged", rid, None, f"{rid} is-managed=false"))
            elif _bool(own.get("maintenance")):
                out.append(InForce("unmanaged", rid, None, f"{rid} maintenance=true"))
            if _stopped_role(own):
                out.append(InForce("disabled", rid, None, f"{rid} target-role=Stopped"))
        # What a cluster-wide setting leaves unmanaged, one entry per resource: the list then
        # answers "what will the cluster not touch" without knowing how the flags inherit.
        if _bool(self.options.get("maintenance-mode")):
            why: str | None = "maintenance-mode"
        elif not _bool(defaults.get("is-managed"), True):
            why = "rsc_defaults is-managed=false"
        else:
            why = None
        if why is not None:
            listed = {i.target for i in out if i.kind == "unmanaged"}
            for p in self.cib.all_primitives():
                flags = self.flags.get(p.id)
                if p.id not in listed and flags is not None and not flags.managed:
                    out.append(InForce("unmanaged", p.id, None, f"{p.id} unmanaged ({why})"))
        return tuple(out)

    def _own_meta(self) -> list[tuple[str, dict[str, str]]]:
        out: list[tuple[str, dict[str, str]]] = []

        def visit(r: object) -> None:
            if isinstance(r, Primitive | Group | Clone | Bundle):
                out.append((r.id, flatten(r.meta)))
            if isinstance(r, Group):
                for c in r.children:
                    visit(c)
            elif isinstance(r, Clone):
                visit(r.child)
            elif isinstance(r, Bundle) and r.primitive is not None:
                visit(r.primitive)

        for r in self.cib.resources:
            visit(r)
        return out

    def _pin(self, c: RscLocation) -> InForce:
        kind = "prefer" if c.id.startswith("cli-prefer-") else "ban"
        node = c.node
        score = c.score
        expires: float | None = None
        for rule in c.rules:
            score = rule.score or score
            node = node or _rule_node(rule)
            end = _rule_end(rule)
            if end is not None:
                expires = end
        expired = expires is not None and expires <= self.now
        role = f" role {c.role}" if c.role and c.role not in ("Started",) else ""
        what = "moved to" if kind == "prefer" else "banned from"
        detail = f"{c.rsc or c.rsc_pattern} {what} {node or '?'}{role} (score {score or '0'})"
        return InForce(
            kind,
            c.rsc or c.rsc_pattern or "?",
            node,
            detail,
            constraint=c.id,
            expires=expires,
            expired=expired,
        )


def _rule_node(rule: Rule) -> str | None:
    for e in rule.expressions:
        if isinstance(e, Expression) and e.attribute == "#uname" and e.operation == "eq":
            return e.value
        if isinstance(e, Rule):
            found = _rule_node(e)
            if found:
                return found
    return None


def _rule_end(rule: Rule) -> float | None:
    """The end of a lifetime rule (``date_expression operation="lt" end=...``)."""
    for e in rule.expressions:
        if isinstance(e, DateExpression) and (e.operation or "") == "lt" and e.end:
            try:
                return parse_iso8601(e.end).timestamp()
            except ValueError:
                return None
        if isinstance(e, Rule):
            found = _rule_end(e)
            if found is not None:
                return found
    return None


def natural_key(name: str) -> list[int | str]:
    """Pacemaker's node order: names compared with their digit runs as numbers (node2 before
    node10). The split alternates text and digits, so the pieces always compare alike."""
    return [int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", name))]


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _count_instances(resources: tuple[ResourceView, ...]) -> list[InstanceView]:
    out: list[InstanceView] = []

    def walk(r: ResourceView) -> None:
        out.extend(r.instances)
        for m in r.members:
            walk(m)

    for r in resources:
        walk(r)
    return out


def _membership_nodes(membership: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The membership's per-node entries (what is not a name -> object entry is ignored: the
    view shows what it can of a document from another version of the daemon)."""
    nodes = (membership or {}).get("nodes") or {}
    if not isinstance(nodes, dict):
        return {}
    return {str(k): v for k, v in nodes.items() if isinstance(v, dict)}


def _membership_dc(membership: Mapping[str, Any] | None) -> str | None:
    dc = (membership or {}).get("dc")
    return dc if isinstance(dc, str) else None


def build_view(cib: Cib | None, membership: Mapping[str, Any] | None, now: float) -> StatusView:
    """The status view of ``cib`` (None: membership alone) merged with ``membership`` (the
    control socket's ``status`` document; None: the CIB's node_state entries alone)."""
    member_nodes = _membership_nodes(membership)
    member_dict = dict(membership) if membership is not None else None
    if cib is None:
        return _membership_only(member_dict, member_nodes, now)
    b = _Builder(cib, now)
    resources = b.resources()
    orphans = b.orphans()
    instances = _count_instances(resources)
    running: dict[str, int] = {}
    for i in [*instances, *orphans]:
        for n in i.nodes:
            running[n] = running.get(n, 0) + 1
    dc_uuid = cib.extra.get("dc-uuid")
    dc: str | None = None
    for n in b.state.nodes.values():
        if dc_uuid is not None and n.id == dc_uuid:
            dc = n.name
    if membership is not None and "dc" in membership:
        dc = _membership_dc(membership)
    quorate: bool | None = _bool(cib.extra.get("have-quorum"))
    if membership is not None and "quorate" in membership:
        quorate = bool(membership.get("quorate"))
    attrs = _node_attributes(cib)
    nodes: list[NodeView] = []
    for ns in b.state.nodes.values():
        state = _node_state(
            ns.online, ns.standby, ns.maintenance, ns.pending, ns.unclean, ns.shutdown
        )
        nodes.append(
            NodeView(
                name=ns.name,
                id=ns.id,
                state=state,
                label=ns.label,
                online=ns.online,
                standby=ns.standby,
                standby_with_resources=ns.standby and running.get(ns.name, 0) > 0,
                maintenance=ns.maintenance,
                pending=ns.pending,
                unclean=ns.unclean,
                shutdown=ns.shutdown,
                is_dc=ns.name == dc,
                resources_running=running.get(ns.name, 0),
                attributes={
                    k: v for k, v in attrs.get(ns.name, {}).items() if not _hidden_attribute(k)
                },
                membership=member_nodes.get(ns.name),
            )
        )
    for name, entry in member_nodes.items():  # known to membership, not (yet) to the CIB
        if name not in b.state.nodes:
            nodes.append(_membership_node(name, entry, dc))
    nodes.sort(key=lambda n: natural_key(n.name))
    extra = cib.extra
    summary = Summary(
        stack="hastack",
        dc=dc,
        quorate=quorate,
        last_updated=now,
        last_change={
            "time": extra.get("cib-last-written"),
            "user": extra.get("update-user"),
            "client": extra.get("update-client"),
            "origin": extra.get("update-origin"),
        },
        nodes_configured=len(b.state.nodes),
        resources_configured=len(instances) + len(orphans),
        resources_disabled=sum(1 for i in instances if i.disabled),
        resources_blocked=len(b.blocked_primitives),
        maintenance_mode=b.state.maintenance_mode,
        stonith_enabled=b.state.stonith_enabled,
        epoch=f"{cib.admin_epoch}.{cib.epoch}.{cib.num_updates}",
    )
    nodes_t = tuple(nodes)
    return StatusView(
        summary=summary,
        nodes=nodes_t,
        resources=resources,
        orphans=orphans,
        failed_actions=b.failed_actions(),
        fail_counts=b.fail_counts(),
        in_force=b.in_force(nodes_t),
        membership=member_dict,
        has_cib=True,
    )


def _membership_node(name: str, entry: Mapping[str, Any], dc: str | None) -> NodeView:
    online = entry.get("state") == "online"
    attributes = entry.get("attributes")
    if not isinstance(attributes, dict):
        attributes = {}
    return NodeView(
        name=name,
        id=str(entry.get("node_id")) if entry.get("node_id") is not None else None,
        state="online" if online else "offline",
        label="Online" if online else "OFFLINE",
        online=online,
        is_dc=name == dc,
        attributes={str(k): str(v) for k, v in attributes.items()},
        membership=dict(entry),
    )


def _membership_only(
    membership: dict[str, Any] | None, member_nodes: dict[str, dict[str, Any]], now: float
) -> StatusView:
    dc = _membership_dc(membership)
    nodes = tuple(
        _membership_node(name, entry, dc)
        for name, entry in sorted(member_nodes.items(), key=lambda kv: natural_key(kv[0]))
    )
    quorate = (membership or {}).get("quorate")
    summary = Summary(
        stack="hastack",
        dc=dc,
        quorate=None if quorate is None else bool(quorate),
        last_updated=now,
        last_change={"time": None, "user": None, "client": None, "origin": None},
        nodes_configured=len(nodes),
        resources_configured=0,
        resources_disabled=0,
        resources_blocked=0,
        maintenance_mode=False,
        stonith_enabled=False,
        epoch=None,
    )
    return StatusView(summary, nodes, (), (), (), (), (), membership, has_cib=False)


# ---------------------------------------------------------------------------------------------
# Text


def format_time(t: float | None) -> str:
    """crm_mon's time format (``Mon Mar 29 04:43:36 2010``), in local time."""
    if t is None:
        return "?"
    return time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(t))


def format_interval(ms: int) -> str:
    """An operation's interval as crm_mon 2.1.5 writes it in failed actions: whole seconds
    above one second (``10s``, ``60s``), milliseconds otherwise (``1000ms``, ``500ms``)."""
    if ms > 1000 and ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def format_duration(ms: int) -> str:
    """A run time as crm_mon prints it: ``90ms``, ``15.001s``, ``1m35.134s``."""
    if ms < 1000:
        return f"{ms}ms"
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    text = (f"{h}h" if h else "") + (f"{m}m" if m else "")
    if s or milli:
        text += f"{s}.{milli:03d}s" if milli else f"{s}s"
    return text


def _flags(i: InstanceView) -> str:
    words = []
    if i.disabled:
        words.append("disabled")
    if i.blocked:
        words.append("blocked")
    if (not i.managed or i.orphaned) and not i.blocked:  # crm_mon says blocked, not both
        words.append("unmanaged")
    if i.failure_ignored:
        words.append("failure ignored")
    return f" ({', '.join(words)})" if words else ""


# crm_mon names an instance with an action in flight by that action
_PENDING_WORDS = {
    "start": "Starting",
    "stop": "Stopping",
    "promote": "Promoting",
    "demote": "Demoting",
    "migrate_to": "Migrating",
    "migrate_from": "Migrating",
}


def instance_line(
    i: InstanceView, unclean: frozenset[str] = frozenset(), name: str | None = None
) -> str:
    """``name\t(agent):\t Started node1`` as crm_mon prints a primitive; ``unclean`` nodes
    get crm_mon's ``(UNCLEAN)`` mark, ``name`` replaces the instance's id (crm_mon names the
    members of an anonymous clone's group instances without their number)."""
    if i.nodes:
        role = _PENDING_WORDS.get(i.pending or "", i.role)
        if i.failed:
            role = "FAILED" if i.role == "Started" else f"FAILED {i.role}"
        monitoring = " (Monitoring)" if i.pending == "monitor" else ""
        if len(i.nodes) == 1:
            state = f"{role} {i.nodes[0]}{monitoring}"
            if i.nodes[0] in unclean:
                state += " (UNCLEAN)"
        else:  # active on several nodes: crm_mon puts the flags before the node list
            state = f"{role}{monitoring}{_flags(i)} [ {' '.join(i.nodes)} ]"
            orphan = "ORPHANED " if i.orphaned else ""
            return f"{name or i.id}\t({i.agent}):\t {orphan}{state}"
    else:
        state = "Stopped"
    orphan = "ORPHANED " if i.orphaned else ""
    return f"{name or i.id}\t({i.agent}):\t {orphan}{state}{_flags(i)}"


def _simple(i: InstanceView) -> bool:
    """An anonymous clone's instance crm_mon folds into ``Started: [ ... ]``."""
    return (
        len(i.nodes) == 1
        and not i.failed
        and i.managed
        and not i.blocked
        and not i.pending
        and not i.orphaned
    )


def _resource_lines(
    r: ResourceView, indent: str, unclean: frozenset[str], anonymous: bool = False
) -> list[str]:
    """crm_mon's lines for one resource; ``anonymous``: inside an anonymous clone, whose
    members crm_mon names without their instance number."""
    out: list[str] = []
    rflags = [w for w, on in (("unmanaged", not r.managed), ("disabled", r.disabled)) if on]
    suffix = f" ({', '.join(rflags)})" if rflags else ""
    if r.kind == "primitive":
        return [
            indent + "* " + instance_line(i, unclean, i.primitive if anonymous else None)
            for i in r.instances
        ]
    if r.kind in ("group", "bundle"):
        if r.kind == "group":
            out.append(f"{indent}* Resource Group: {r.id}{suffix}:")
        else:
            out.append(f"{indent}* Container bundle: {r.id} [{r.agent or '?'}]{suffix}:")
        for m in r.members:
            out += _resource_lines(m, indent + "  ", unclean, anonymous)
        return out
    if r.instances:
        child = r.instances[0].primitive
    else:
        child = r.members[0].id.partition(":")[0] if r.members else "?"
    kinds = [w for w, on in (("promotable", r.promotable), ("unique", r.unique)) if on]
    words = kinds + rflags
    out.append(
        f"{indent}* Clone Set: {r.id} [{child}]" + (f" ({', '.join(words)})" if words else "") + ":"
    )
    inner = indent + "  "
    folded: dict[str, list[str]] = {}
    if r.instances:
        for i in r.instances:
            if not r.unique and _simple(i) and i.nodes[0] not in unclean:
                folded.setdefault(i.role, []).extend(i.nodes)
            elif i.active or r.unique:
                named = None if r.unique else i.primitive
                out.append(inner + "* " + instance_line(i, unclean, named))
    else:
        for g in r.members:
            insts = [i for m in g.members for i in m.instances]
            if not any(i.active for i in insts):
                continue
            nodes = {n for i in insts for n in i.nodes}
            roles = {i.role for i in insts}
            simple = all(_simple(i) for i in insts) and not (nodes & unclean)
            if not r.unique and simple and len(nodes) == 1 and len(roles) == 1:
                folded.setdefault(roles.pop(), []).append(nodes.pop())
            else:
                out += _resource_lines(g, inner, unclean, anonymous=not r.unique)
    for role in ("Promoted", "Unpromoted", "Started"):
        if folded.get(role):
            listed = " ".join(sorted(folded[role], key=natural_key))
            out.append(f"{inner}* {role}: [ {listed} ]")
    if r.stopped and not r.unique:
        label = "Stopped (disabled)" if r.disabled else "Stopped"
        out.append(f"{inner}* {label}: [ {' '.join(r.stopped)} ]")
    return out


def _node_lines(view: StatusView) -> list[str]:
    out: list[str] = []
    online: list[str] = []
    offline: list[str] = []
    for n in view.nodes:
        if n.unclean:
            how = "online" if n.online else "offline"
            out.append(f"  * Node {n.name}: UNCLEAN ({how})")
        elif n.pending:
            out.append(f"  * Node {n.name}: pending")
        elif not n.online:
            if n.maintenance or n.standby:
                why = "maintenance" if n.maintenance else "standby"
                out.append(f"  * Node {n.name}: OFFLINE ({why})")
            else:
                offline.append(n.name)
        elif n.standby:
            extra = " (with active resources)" if n.standby_with_resources else ""
            out.append(f"  * Node {n.name}: standby{extra}")
        elif n.maintenance:
            out.append(f"  * Node {n.name}: maintenance")
        else:
            online.append(n.name)  # a node shutting down is still online, as crm_mon shows
    if online:
        out.append(f"  * Online: [ {' '.join(online)} ]")
    if offline:
        out.append(f"  * OFFLINE: [ {' '.join(offline)} ]")
    return out


def _failed_line(f: FailedAction) -> str:
    what = "probe" if f.operation == "monitor" and f.interval_ms == 0 else f.operation
    if f.interval_ms:
        what = f"{format_interval(f.interval_ms)}-interval {what}"
    if f.status == EXEC_DONE:
        result = f"returned '{f.rc_text}'"
        if f.exit_reason:
            result += f" ({f.exit_reason})"
    else:
        reason = f": {f.exit_reason}" if f.exit_reason else ""
        result = f"could not be executed ({f.status_text}{reason})"
    line = f"  * {f.resource} {what} on {f.node} {result}"
    if f.last_rc_change is not None:
        line += f" at {format_time(f.last_rc_change)}"
    if f.exec_time_ms:
        line += f" after {format_duration(f.exec_time_ms)}"
    if f.queue_time_ms:  # hastack's addition: time spent queued before it ran
        line += f" (queued {format_duration(f.queue_time_ms)})"
    return line


def _in_force_line(i: InForce) -> str:
    line = f"  * {i.kind}: {i.detail}"
    if i.constraint:
        line += f" [{i.constraint}]"
    if i.expires is not None:
        when = format_time(i.expires)
        line += f" (expired {when}, awaiting clear)" if i.expired else f" (until {when})"
    elif i.kind in ("prefer", "ban"):
        line += " (no expiry)"
    return line


def render_text(view: StatusView, *, attributes: bool = False, failcounts: bool = False) -> str:
    """crm_mon's text layout; ``attributes`` and ``failcounts`` as crm_mon's -A and -f."""
    s = view.summary
    lines = ["Cluster Summary:", f"  * Stack: {s.stack}"]
    if s.dc is None:
        lines.append("  * Current DC: NONE")
    else:
        q = {True: "partition with quorum", False: "partition WITHOUT quorum"}.get(
            s.quorate, "quorum unknown"
        )
        lines.append(f"  * Current DC: {s.dc} - {q}")
    lines.append(f"  * Last updated: {format_time(s.last_updated)}")
    lc = s.last_change
    if view.has_cib:
        change = lc.get("time") or "unknown"
        by = [
            f"by {lc['user']}" if lc.get("user") else "",
            f"via {lc['client']}" if lc.get("client") else "",
            f"on {lc['origin']}" if lc.get("origin") else "",
        ]
        lines.append(" ".join(["  * Last change: ", change, *[w for w in by if w]]))
    lines.append(f"  * {s.nodes_configured} nodes configured")
    if view.has_cib:
        counts = f"  * {s.resources_configured} resource instances configured"
        extra = [
            f"{n} {w}"
            for n, w in ((s.resources_disabled, "DISABLED"), (s.resources_blocked, "BLOCKED"))
            if n
        ]
        lines.append(counts + (f" ({', '.join(extra)})" if extra else ""))
    if s.maintenance_mode:
        lines += [
            "",
            "              *** Resource management is DISABLED ***",
            "  The cluster will not attempt to start, stop or recover services",
        ]
    lines += ["", "Node List:", *_node_lines(view)]
    if view.has_cib:
        lines += ["", "Full List of Resources:"]
        # crm_mon marks what runs on a node that is gone and not yet fenced
        unclean = frozenset(n.name for n in view.nodes if n.unclean and not n.online)
        body = [ln for r in view.resources for ln in _resource_lines(r, "  ", unclean)]
        body += ["  * " + instance_line(i, unclean) for i in view.orphans]
        lines += body or ["  * No resources"]
    if attributes:
        lines += ["", "Node Attributes:"]
        for n in view.nodes:
            if not n.attributes or not n.online:  # crm_mon lists the online nodes'
                continue
            lines.append(f"  * Node: {n.name}:")
            for k, v in sorted(n.attributes.items()):
                lines.append(f"    * {k:<32}\t: {v}")  # crm_mon's column
    if failcounts and view.fail_counts:
        lines += ["", "Migration Summary:"]
        for node in [n.name for n in view.nodes]:
            mine = [f for f in view.fail_counts if f.node == node]
            if not mine:
                continue
            lines.append(f"  * Node: {node}:")
            for f in mine:
                line = (
                    f"    * {f.resource}: migration-threshold={f.migration_threshold} "
                    f"fail-count={f.fail_count}"
                )
                if f.last_failure is not None:
                    line += f" last-failure='{format_time(f.last_failure)}'"
                if f.expires is not None:  # hastack's addition: when failure-timeout forgets it
                    line += f" expires='{format_time(f.expires)}'"
                lines.append(line)
    if view.failed_actions:
        lines += ["", "Failed Resource Actions:", *map(_failed_line, view.failed_actions)]
    if view.in_force:
        lines += [
            "",
            "In Force (operator pins, bans and flags):",
            *map(_in_force_line, view.in_force),
        ]
    return "\n".join(lines)


_STYLES = (
    ("FAILED", "bold red"),
    ("UNCLEAN", "bold red"),
    ("OFFLINE", "red"),
    ("WITHOUT quorum", "bold red"),
    ("Promoted", "bold green"),
    ("Started", "green"),
    ("Online", "green"),
    ("Stopped", "yellow"),
    ("standby", "yellow"),
    ("maintenance", "magenta"),
    ("unmanaged", "magenta"),
    ("disabled", "yellow"),
    ("blocked", "bold red"),
)


def renderable(
    view: StatusView, *, attributes: bool = False, failcounts: bool = False, extra: str = ""
) -> Any:
    """The text as a rich ``Text`` with the states coloured (for ``--watch`` on a terminal);
    ``extra`` is appended as is (the membership block)."""
    from rich.text import Text

    text = Text(render_text(view, attributes=attributes, failcounts=failcounts) + extra)
    for word, style in _STYLES:
        text.highlight_words([word], style=style)
    for heading in (
        "Cluster Summary:",
        "Node List:",
        "Full List of Resources:",
        "Failed Resource Actions:",
        "Migration Summary:",
        "Node Attributes:",
        "In Force (operator pins, bans and flags):",
        "Membership",
    ):
        text.highlight_words([heading], style="bold")
    return text


__all__ = [
    "FailCount",
    "FailedAction",
    "InForce",
    "InstanceView",
    "NodeView",
    "ResourceView",
    "StatusView",
    "Summary",
    "build_view",
    "format_duration",
    "format_interval",
    "format_time",
    "instance_line",
    "render_text",
    "renderable",
]
