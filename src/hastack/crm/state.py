"""The scheduler's first stage: the cluster's current state, read from the CIB's status section.

:func:`resource_states` determines, as Pacemaker's scheduler does before it places anything,
each node's state (online, offline, unclean, pending, standby, maintenance, shutting down) from
its ``node_state`` and attributes, and for each primitive on each node (clone instances as
``rsc:N``) its role and whether it failed, by replaying the operation history in call-id order.
Every conclusion keeps the id of the operation (or the attribute) that decided it.

It is pure: the CIB and ``now`` in, a :class:`ClusterState` out. When ``now`` is None the
CIB's ``execution-date`` is used; without either, failures never expire.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from enum import StrEnum

from hastack.crm.cib.model import (
    Bundle,
    Cib,
    Clone,
    Group,
    LrmResource,
    LrmRscOp,
    Node,
    NodeState,
    NvSet,
    Primitive,
    flatten,
    parse_bool,
    parse_interval_ms,
)

# Pacemaker's OCF exit codes and execution statuses (op-status).
RC_OK = 0
RC_NOT_RUNNING = 7
RC_RUNNING_PROMOTED = 8
RC_FAILED_PROMOTED = 9
RC_NOT_INSTALLED = 5
RC_NOT_CONFIGURED = 6

EXEC_PENDING = -1
EXEC_DONE = 0
EXEC_CANCELLED = 1
EXEC_ERROR = 4
EXEC_NOT_INSTALLED = 7


class Role(StrEnum):
    """A resource's role on one node, as Pacemaker names them."""

    STOPPED = "Stopped"
    STARTED = "Started"
    UNPROMOTED = "Unpromoted"
    PROMOTED = "Promoted"

    @property
    def active(self) -> bool:
        return self is not Role.STOPPED

    @property
    def rank(self) -> int:
        """Pacemaker's order of roles (Stopped < Started < Unpromoted < Promoted)."""
        return list(Role).index(self)


@dataclass(frozen=True)
class NodeStatus:
    """One node's state; ``reason`` says what decided it (the attribute or node_state fields)."""

    name: str
    id: str
    online: bool = False
    unclean: bool = False
    pending: bool = False
    standby: bool = False
    maintenance: bool = False
    shutdown: bool = False
    reason: str = ""

    @property
    def label(self) -> str:
        """The word crm_simulate's node list uses: Online, OFFLINE, UNCLEAN (online|offline),
        pending, standby or maintenance."""
        if self.unclean:
            return "UNCLEAN (online)" if self.online else "UNCLEAN (offline)"
        if self.pending:
            return "pending"
        if not self.online:
            return "OFFLINE"
        if self.standby:
            return "standby"
        if self.maintenance:
            return "maintenance"
        return "Online"


@dataclass(frozen=True)
class ResourceState:
    """One primitive (or clone instance) on one node, as the history leaves it.

    ``id`` is the instance name (``rsc`` or ``rsc:N``), ``primitive`` the configured primitive's
    id (the status id without instance number for an orphan), ``clone`` the enclosing clone.
    ``reason`` is the id of the operation that decided the role, ``failed_op`` the id of the
    failed operation that left it failed (None when not failed). ``pending`` names a
    still-running operation (``start``, ``stop``, ``promote``...).
    """

    id: str
    primitive: str
    node: str
    role: Role
    failed: bool = False
    failed_op: str | None = None
    reason: str | None = None
    pending: str | None = None
    orphan: bool = False
    clone: str | None = None
    migrating_to: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterState:
    """The cluster as the status section shows it."""

    nodes: dict[str, NodeStatus] = field(default_factory=dict)
    resources: tuple[ResourceState, ...] = ()
    stonith_enabled: bool = True
    maintenance_mode: bool = False

    def active(self) -> tuple[ResourceState, ...]:
        """The entries whose role is not Stopped."""
        return tuple(r for r in self.resources if r.role.active)

    def on_node(self, node: str) -> tuple[ResourceState, ...]:
        return tuple(r for r in self.resources if r.node == node)

    def of(self, primitive: str) -> tuple[ResourceState, ...]:
        """Every entry of one primitive (all its clone instances too)."""
        return self._by_primitive.get(primitive, ())

    @functools.cached_property
    def _by_primitive(self) -> dict[str, tuple[ResourceState, ...]]:
        # built once: the later stages ask for every primitive's entries, and scanning all
        # of them each time made a large cluster's schedule quadratic
        index: dict[str, list[ResourceState]] = {}
        for r in self.resources:
            index.setdefault(r.primitive, []).append(r)
        return {k: tuple(v) for k, v in index.items()}


# ---------------------------------------------------------------------------------------------
# Nodes


def _true(text: str | None, default: bool = False) -> bool:
    try:
        return parse_bool(text, default)
    except ValueError:
        return default


def _attrs(sets: tuple[NvSet, ...] | None) -> dict[str, str]:
    return flatten(sets or ())


def _nonzero(text: str | None) -> bool:
    """True for a true boolean or a nonzero number (``shutdown`` / ``terminate`` attributes)."""
    if text is None:
        return False
    if _true(text):
        return True
    try:
        return int(text) != 0
    except ValueError:
        return False


def _node_status(
    node: Node,
    state: NodeState | None,
    *,
    fencing: bool,
    startup_fencing: bool,
) -> NodeStatus:
    name = node.uname or node.id
    config = _attrs(node.attributes)
    transient = _attrs(state.transient if state else None)
    attrs = {**config, **transient}
    standby = _true(attrs.get("standby"))
    maintenance = _true(attrs.get("maintenance"))  # cluster maintenance-mode is separate
    if state is None:
        unclean = fencing and startup_fencing
        reason = "no node_state: never seen" + (" (startup-fencing)" if unclean else "")
        return NodeStatus(
            name, node.id, unclean=unclean, standby=standby, maintenance=maintenance, reason=reason
        )
    in_ccm = state.in_ccm
    crmd_online = (state.crmd or "").lower() == "online"
    join = (state.join or "").lower()
    expected = (state.expected or "down").lower()
    shutdown = _nonzero(attrs.get("shutdown"))
    terminate = _nonzero(attrs.get("terminate"))
    fields = f"in_ccm={in_ccm} crmd={state.crmd} join={state.join} expected={state.expected}"
    online = False
    unclean = False
    pending = False
    if not fencing:
        if not _true(in_ccm):
            why = "not in membership"
        elif crmd_online:
            if join == "member":
                online, why = True, "member"
            else:
                why = "not ready to run resources"
        elif expected != "member" or shutdown:
            why = "expected down"
        else:
            unclean, why = True, "peer is unexpectedly down"
    else:
        in_cluster = _true(in_ccm)
        online = in_cluster
        if shutdown:
            online, why = crmd_online, "shutting down"  # a dead peer cannot shut down
        elif in_ccm is None:
            unclean, why = True, "peer has not been seen by the cluster"
        elif join == "banned":
            unclean, why = True, "peer failed Pacemaker membership criteria"
        elif not terminate and expected == "down":
            if in_cluster or crmd_online:
                pending, why = True, "not ready to run resources"
            else:
                why = "down or still coming up"
        elif terminate and join == "down" and not in_cluster and not crmd_online:
            online, why = False, "was just shot"
        elif not in_cluster:
            unclean, why = True, "peer is no longer part of the cluster"
        elif not crmd_online:
            unclean, why = True, "peer process is no longer available"
        elif terminate:
            unclean, why = True, "termination was requested"
        elif join == "member":
            why = "member"
        elif join in ("pending", "down"):
            pending, why = True, "not ready to run resources"
        else:
            unclean, why = True, "peer was in an unknown state"
    return NodeStatus(
        name,
        node.id,
        online=online,
        unclean=unclean,
        pending=pending,
        standby=standby or pending,
        maintenance=maintenance,
        shutdown=shutdown,
        reason=f"{why} ({fields})",
    )


# ---------------------------------------------------------------------------------------------
# Resources


@dataclass
class _Replay:
    """The mutable result of replaying one resource's history on one node."""

    role: Role = Role.STOPPED
    known: bool = False
    failed: bool = False
    failed_op: str | None = None
    reason: str | None = None
    pending: str | None = None
    migrating_to: str | None = None
    on_fail: str = "ignore"
    forced_failure: str | None = None  # an op that makes it failed whatever on-fail says
    also_active: list[tuple[str, bool, str]] = field(default_factory=list)  # node, failed, op
    notes: list[str] = field(default_factory=list)


def _expected_rc(op: LrmRscOp) -> int | None:
    key = op.transition_key or (op.transition_magic or "").partition(";")[2]
    parts = key.split(":")
    if len(parts) >= 4:
        try:
            return int(parts[2])
        except ValueError:
            return None
    return None


def _sorted_ops(ops: tuple[LrmRscOp, ...]) -> list[LrmRscOp]:
    """The history in Pacemaker's order: by call-id (pending ops last), equal call-ids (an op
    and its ``_last_failure_0`` copy) by last-rc-change, and otherwise the later entry first."""

    def key(item: tuple[int, LrmRscOp]) -> tuple[int, int, int, int]:
        index, op = item
        call = op.call_id_int
        try:
            changed = int(op.last_rc_change or op.last_run or 0)
        except ValueError:
            changed = 0
        return (1 if call < 0 else 0, call, changed, -index)

    return [op for _, op in sorted(enumerate(ops), key=key)]


def _op_name(op: LrmRscOp) -> str:
    if op.operation:
        return op.operation
    key = op.operation_key or op.id
    parts = key.rsplit("_", 2)
    return parts[1] if len(parts) == 3 else key


def _op_key(op: LrmRscOp) -> str:
    """``rsc_task_interval``: the operation an entry records (its id when it has no key)."""
    return op.operation_key or op.id


def _failure_timeout_ms(meta: dict[str, str]) -> int:
    try:
        return parse_interval_ms(meta.get("failure-timeout"))
    except ValueError:
        return 0


def _expired(op: LrmRscOp, timeout_ms: int, now: float | None) -> bool:
    if timeout_ms <= 0 or now is None:
        return False
    try:
        changed = int(op.last_rc_change or op.last_run or "")
    except ValueError:
        return False
    return changed + timeout_ms / 1000 <= now


def _on_fail(primitive: Primitive | None, name: str, interval_ms: int, fencing: bool) -> str:
    """The op's on-fail, or Pacemaker's default (stop: fence with fencing, else block)."""
    if primitive is not None:
        for op in primitive.ops:
            try:
                if op.name == name and op.interval_ms == interval_ms and op.on_fail:
                    return op.on_fail
            except ValueError:
                continue
    if name == "stop":
        return "fence" if fencing else "block"
    return "restart"


# on-fail values in Pacemaker's order of severity; a later failure never lowers it.
_SEVERITY = {
    "ignore": 0,
    "demote": 1,
    "restart": 2,
    "migrate": 3,
    "block": 4,
    "stop": 5,
    "standby": 6,
    "fence": 7,
}
# Failures a later successful start/stop/promote/migrate_from (or a "not running") forgets.
_CLEARABLE = {"ignore", "demote", "restart", "block"}
# Exit codes Pacemaker maps onto others (degraded results count as success).
_REMAP = {190: RC_OK, 191: RC_RUNNING_PROMOTED}


def _changed(op: LrmRscOp) -> int:
    try:
        return int(op.last_rc_change or "-1")
    except ValueError:
        return -1


def _is_newer(a: LrmRscOp, b: LrmRscOp, same_node: bool) -> bool:
    """Whether ``a`` happened after ``b``: by call-id on one node, else by last-rc-change."""
    if same_node and a.call_id_int >= 0 and b.call_id_int >= 0:
        return a.call_id_int > b.call_id_int
    return _changed(a) > _changed(b)


@dataclass
class _Migrations:
    """What live-migration analysis needs from the whole status section: every resource's
    history on every node, and which nodes are online."""

    history: dict[tuple[str, str], tuple[LrmRscOp, ...]]
    online: dict[str, bool]

    def find(
        self, rsc: str, task: str, node: str | None, peer: str | None, rc: int | None = None
    ) -> LrmRscOp | None:
        """The first ``task`` op of ``rsc`` on ``node`` (a migrate_to toward ``peer``, a
        migrate_from from ``peer``), with exit code ``rc`` and completed when ``rc`` is given."""
        for op in self.history.get((rsc, node or ""), ()):
            if _op_name(op) != task:
                continue
            if task == "migrate_to" and op.extra.get("migrate_target") != peer:
                continue
            if task == "migrate_from" and op.extra.get("migrate_source") != peer:
                continue
            if rc is not None and (op.rc_code_int != rc or op.op_status_int != EXEC_DONE):
                return None
            return op
        return None

    def unknown_on(self, rsc: str, node: str | None) -> bool:
        return not self.history.get((rsc, node or ""))

    def non_monitor_after(self, rsc: str, node: str | None, op: LrmRscOp, same: bool) -> bool:
        return any(
            other is not op
            and _op_name(other) in ("start", "stop", "migrate_to", "migrate_from")
            and _is_newer(other, op, same)
            for other in self.history.get((rsc, node or ""), ())
        )

    def stopped_after(self, rsc: str, node: str | None, op: LrmRscOp, same: bool) -> bool:
        monitor = self.find(rsc, "monitor", node, None, RC_NOT_RUNNING)
        return monitor is not None and _is_newer(monitor, op, same)

    def newer_state(
        self, rsc: str, node: str | None, to_op: LrmRscOp | None, from_op: LrmRscOp | None
    ) -> bool:
        """Whether ``node`` has newer state than the migration events."""
        ref = from_op or to_op
        if ref is None:
            return False
        same = False
        if node == ref.extra.get("migrate_target"):
            ref, same = (from_op, True) if from_op is not None else (to_op or ref, False)
        elif node == ref.extra.get("migrate_source"):
            ref, same = (to_op, True) if to_op is not None else (from_op or ref, False)
        return self.non_monitor_after(rsc, node, ref, same) or self.stopped_after(
            rsc, node, ref, same
        )

    def migrate_to_succeeded(self, rsc: str, op: LrmRscOp, r: _Replay) -> bool:
        """Apply a successful migrate_to on its source; False when it no longer matters."""
        source, target = op.extra.get("migrate_source"), op.extra.get("migrate_target")
        source_newer = self.non_monitor_after(rsc, source, op, True)
        from_op = self.find(rsc, "migrate_from", target, source)
        if source_newer and from_op is not None:
            return False
        target_newer = self.newer_state(rsc, target, op, from_op)
        if source_newer and target_newer:
            return False
        r.role = Role.STARTED
        target_up = self.online.get(target or "", False)
        if (
            from_op is not None
            and from_op.rc_code_int == RC_OK
            and (from_op.op_status_int == EXEC_DONE)
        ):
            r.role = Role.STOPPED  # a dangling migration: only the source's stop is missing
            r.notes.append(f"{op.id}: migrated to {target}; the source still needs a stop")
        elif from_op is not None and from_op.op_status_int != EXEC_PENDING:
            if not target_newer and target_up and target:
                r.also_active.append((target, True, from_op.id))
            else:
                r.forced_failure = op.id
        elif not target_newer and target_up and target:
            r.also_active.append((target, False, op.id))
            r.notes.append(f"{op.id}: partial migration to {target}")
        elif not source_newer:
            r.forced_failure = op.id
        return True

    def migrate_to_failed(self, rsc: str, op: LrmRscOp, r: _Replay) -> None:
        source, target = op.extra.get("migrate_source"), op.extra.get("migrate_target")
        from_op = self.find(rsc, "migrate_from", target, source, RC_OK)
        if (
            target
            and not self.unknown_on(rsc, target)
            and not self.newer_state(rsc, target, op, from_op)
            and self.online.get(target, False)
        ):
            r.also_active.append((target, False, op.id))

    def migrate_from_failed(self, rsc: str, op: LrmRscOp, r: _Replay) -> None:
        source, target = op.extra.get("migrate_source"), op.extra.get("migrate_target")
        to_op = self.find(rsc, "migrate_to", source, target, RC_OK)
        if (
            source
            and not self.unknown_on(rsc, source)
            and not self.newer_state(rsc, source, to_op, op)
            and self.online.get(source, False)
        ):
            r.also_active.append((source, True, op.id))


def _replay(
    lrm: LrmResource,
    primitive: Primitive | None,
    meta: dict[str, str],
    now: float | None,
    fencing: bool,
    migrations: _Migrations | None = None,
) -> _Replay:
    r = _Replay()
    timeout_ms = _failure_timeout_ms(meta)
    managed = _true(meta.get("is-managed"), True)
    on_fail = "ignore"
    last_failure_key: str | None = None

    def clear() -> None:
        nonlocal on_fail
        if on_fail in _CLEARABLE:
            on_fail = "ignore"
            r.failed_op = None

    for op in _sorted_ops(lrm.ops):
        name = _op_name(op)
        interval = op.interval_ms
        status = op.op_status_int if op.op_status is not None else EXEC_DONE
        rc = _REMAP.get(op.rc_code_int, op.rc_code_int)
        probe = name == "monitor" and interval == 0
        if status == EXEC_CANCELLED:
            continue
        if status == EXEC_PENDING or op.call_id_int == -1:
            r.pending = name
            r.reason = op.id
            if name in ("start", "migrate_from", "migrate_to"):
                r.role = Role.STARTED
            elif name == "promote":
                r.role = Role.PROMOTED
            elif name in ("stop", "demote") and r.role is Role.STOPPED:
                r.role = Role.STARTED
            r.known = True
            continue
        expected = _expected_rc(op)
        if expected is None:
            expected = RC_NOT_RUNNING if probe else RC_OK
        # Pacemaker judges DONE and (old-style) ERROR results by their exit code alone.
        ok = status in (EXEC_DONE, EXEC_ERROR) and (
            rc == expected
            or (probe and rc in (RC_OK, RC_NOT_RUNNING, RC_RUNNING_PROMOTED))
            or (name == "monitor" and rc == RC_NOT_RUNNING and not managed)
        )
        if (status == EXEC_NOT_INSTALLED or rc == RC_NOT_INSTALLED) and probe:
            r.role, r.reason, r.known = Role.STOPPED, op.id, True
            clear()
            r.notes.append(f"{op.id}: not installed")
            continue
        op_on_fail = _on_fail(primitive, name, interval, fencing)
        # An expired failure is forgotten, except a blocked one (only a cleanup unblocks it).
        expirable = name != "stop" and op_on_fail != "block"
        if not ok and expirable and _expired(op, timeout_ms, now):
            r.notes.append(f"{op.id}: failure expired (failure-timeout)")
            continue
        if status == EXEC_NOT_INSTALLED and op_on_fail == "ignore":
            op_on_fail = "restart"  # the executor found no agent: never ignored
        if not ok and op_on_fail == "ignore" and status != EXEC_NOT_INSTALLED:
            r.notes.append(f"{op.id}: failure ignored (on-fail=ignore)")
            ok = True
            rc = expected
        r.known = True
        if ok:
            r.pending = None
            if rc == RC_NOT_RUNNING:  # any op that found it stopped, as expected
                r.role, r.reason = Role.STOPPED, op.id
                r.migrating_to = None
                on_fail, r.failed_op = "ignore", None  # whatever failed before is over
                continue
            if last_failure_key is not None and _op_key(op) == last_failure_key:
                clear()  # the operation that failed has succeeded since
            if name == "monitor":
                before = r.role
                if rc == RC_NOT_RUNNING:
                    r.role = Role.STOPPED
                    clear()
                elif rc == RC_RUNNING_PROMOTED:
                    r.role = Role.PROMOTED
                elif r.role is Role.STOPPED:
                    r.role = Role.STARTED
                elif probe and r.role is Role.PROMOTED:
                    r.role = Role.UNPROMOTED
                if r.role is before and r.reason is not None:
                    continue  # a monitor confirming the role: the op that set it stays the reason
            elif name in ("start", "migrate_from"):
                r.role = Role.STARTED
                clear()
            elif name == "stop":
                r.role = Role.STOPPED
                r.migrating_to = None
                clear()
            elif name == "promote":
                r.role = Role.PROMOTED
                clear()
            elif name == "demote":
                r.role = Role.UNPROMOTED
                if on_fail == "demote":
                    clear()
            elif name == "migrate_to":
                if migrations is None:
                    r.role = Role.STARTED
                elif not migrations.migrate_to_succeeded(lrm.id, op, r):
                    continue  # newer operations on both nodes: this migration no longer matters
                r.migrating_to = op.extra.get("migrate_target")
            else:
                continue  # notify, meta-data, reload...: no effect on the role
            r.reason = op.id
            continue
        # A failure.
        if name == "notify":
            continue
        if _SEVERITY.get(op_on_fail, 2) >= _SEVERITY.get(on_fail, 2):
            on_fail = op_on_fail
        r.failed_op, r.reason = op.id, op.id
        last_failure_key = _op_key(op)
        if name == "monitor":
            if rc in (RC_RUNNING_PROMOTED, RC_FAILED_PROMOTED):
                r.role = Role.PROMOTED
            elif r.role is Role.STOPPED:
                r.role = Role.STARTED
        elif name == "promote":
            r.role = Role.PROMOTED
        elif name == "demote":
            r.role = Role.PROMOTED  # still promoted as far as anyone knows
        elif name == "migrate_to":
            r.role = Role.STARTED
            if migrations is not None:
                migrations.migrate_to_failed(lrm.id, op, r)
        elif name == "migrate_from":
            r.role = Role.STARTED
            if migrations is not None:
                migrations.migrate_from_failed(lrm.id, op, r)
        elif r.role is Role.STOPPED:  # start, stop...: it may be running
            r.role = Role.STARTED
    r.on_fail = on_fail
    r.failed = on_fail != "ignore" or r.forced_failure is not None
    if not r.failed:
        r.failed_op = None
    return r


def _resource_index(cib: Cib) -> dict[str, tuple[Primitive, Clone | None, dict[str, str]]]:
    """Primitive id -> (primitive with template applied, enclosing clone, merged meta)."""
    defaults = flatten(cib.rsc_defaults)
    index: dict[str, tuple[Primitive, Clone | None, dict[str, str]]] = {}

    def add(p: Primitive, clone: Clone | None, *parents: tuple[NvSet, ...]) -> None:
        prim = cib.expand_template(p)
        meta = dict(defaults)
        for sets in parents:
            meta.update(flatten(sets))
        meta.update(flatten(prim.meta))
        index[p.id] = (prim, clone, meta)

    for r in cib.resources:
        if isinstance(r, Primitive):
            add(r, None)
        elif isinstance(r, Group):
            for c in r.children:
                add(c, None, r.meta)
        elif isinstance(r, Clone):
            if isinstance(r.child, Group):
                for c in r.child.children:
                    add(c, r, r.meta, r.child.meta)
            else:
                add(r.child, r, r.meta)
        elif isinstance(r, Bundle) and r.primitive is not None:
            add(r.primitive, None, r.meta)
    return index


def _unique(clone: Clone | None) -> bool:
    """Whether a clone is globally unique (its instances are distinct resources)."""
    if clone is None:
        return False
    return _true(flatten(clone.meta).get("globally-unique"), False)


def _unpack_lrm(
    lrm: LrmResource,
    node_name: str,
    index: dict[str, tuple[Primitive, Clone | None, dict[str, str]]],
    nodes: dict[str, NodeStatus],
    now: float | None,
    fencing: bool,
    maintenance_mode: bool,
    migrations: _Migrations,
    extras: list[ResourceState],
) -> ResourceState | None:
    """Replay one resource's history on one node and apply its consequences to the node
    (fencing a node a failure or an unexpected activity needs fenced; on-fail=standby)."""
    base, _, number = lrm.id.partition(":")
    entry = index.get(base)
    primitive, clone, meta = entry if entry else (None, None, {})
    orphan = entry is None or (bool(number) and clone is None)
    replay = _replay(lrm, primitive, meta, now, fencing, migrations)
    for other, other_failed, op_id in replay.also_active:
        extras.append(
            ResourceState(
                id=lrm.id,
                primitive=base if orphan or primitive is None else primitive.id,
                node=other,
                role=Role.STARTED,
                failed=other_failed,
                failed_op=op_id if other_failed else None,
                reason=op_id,
                orphan=orphan,
                notes=(f"{op_id}: active here after an unfinished migration",),
            )
        )
    if not replay.known and not replay.pending:
        return None
    if clone is not None and clone.promotable and replay.role is Role.STARTED:
        replay.role = Role.UNPROMOTED
    node = nodes[node_name]
    managed = _true(meta.get("is-managed"), True) and not maintenance_mode and not node.maintenance
    notes = list(replay.notes)
    active = replay.role.active
    offline_active = active and not node.online and not node.maintenance and managed
    if offline_active and fencing and not node.unclean:
        node = replace(node, unclean=True, reason=f"{lrm.id} is thought to be active there")
        nodes[node_name] = node
    on_fail = replay.on_fail
    if node.unclean and on_fail != "ignore":
        notes.append(f"{replay.failed_op}: failure on an unclean node (it will be fenced)")
        on_fail = "ignore"
    if on_fail == "fence" and not node.unclean:
        nodes[node_name] = replace(node, unclean=True, reason=f"{lrm.id} failed there")
    elif on_fail == "standby":
        nodes[node_name] = replace(node, standby=True, reason=f"{lrm.id} failed (on-fail=standby)")
    failed = active and (on_fail != "ignore" or replay.forced_failure is not None)
    return ResourceState(
        id=lrm.id,
        primitive=base if orphan or primitive is None else primitive.id,
        node=node_name,
        role=replay.role,
        failed=failed,
        failed_op=(replay.failed_op or replay.forced_failure) if failed else None,
        reason=replay.reason,
        pending=replay.pending,
        orphan=orphan,
        clone=clone.id if clone is not None else None,
        migrating_to=replay.migrating_to,
        notes=tuple(notes),
    )


def _instance(
    clone: str,
    base: str,
    number: str,
    node: str,
    used: dict[str, set[int]],
    per_node: dict[tuple[str, str], int],
) -> str:
    """The ``rsc:N`` name of an anonymous clone's instance found active on ``node``: the number
    the status names when free, the one already used on that node, else the lowest free one."""
    key = f"{clone}/{base}"
    taken = used.setdefault(key, set())
    if number.isdigit() and int(number) not in taken:
        n = int(number)
    elif (key, node) in per_node:
        n = per_node[(key, node)]
    else:
        n = 0
        while n in taken:
            n += 1
    taken.add(n)
    per_node[(key, node)] = n
    return f"{base}:{n}"


def resource_states(cib: Cib, now: float | None = None) -> ClusterState:
    """Each node's state and each primitive's role on each node, from the status section."""
    options = cib.cluster_options()
    fencing = _true(options.get("stonith-enabled"), True)
    startup_fencing = _true(options.get("startup-fencing"), True)
    maintenance_mode = _true(options.get("maintenance-mode"))
    if now is None:
        try:
            now = float(cib.extra["execution-date"])
        except (KeyError, ValueError):
            now = None

    states_by_id = {s.id: s for s in cib.status if s.id}
    states_by_uname = {s.uname: s for s in cib.status if s.uname}
    nodes: dict[str, NodeStatus] = {}
    for node in cib.nodes:
        if node.type == "remote":
            continue
        state = states_by_id.get(node.id) or states_by_uname.get(node.uname or "")
        status = _node_status(
            node,
            state,
            fencing=fencing,
            startup_fencing=startup_fencing,
        )
        nodes[status.name] = status

    quorate = _true(cib.extra.get("have-quorum"))
    # Quorum once held then lost (no-quorum-panic) with no-quorum-policy=suicide: fence all.
    panic = _true(cib.extra.get("no-quorum-panic"))
    if fencing and not quorate and panic and options.get("no-quorum-policy") == "suicide":
        for name, n in nodes.items():
            if n.online and not n.unclean:
                nodes[name] = replace(n, unclean=True, reason="the cluster does not have quorum")

    index = _resource_index(cib)
    used: dict[str, set[int]] = {}  # anonymous clone id -> instance numbers in use
    per_node: dict[tuple[str, str], int] = {}  # (clone, node) -> instance number there
    by_id = {n.id: n.name for n in nodes.values()}

    def node_of(state: NodeState) -> str | None:
        return by_id.get(state.id) or (state.uname if state.uname in nodes else None)

    migrations = _Migrations(
        history={
            (lrm.id, name): lrm.ops
            for state in cib.status
            if (name := node_of(state)) is not None
            for lrm in state.lrm_resources
        },
        online={name: n.online for name, n in nodes.items()},
    )
    out: list[ResourceState] = []
    extras: list[ResourceState] = []
    for state in cib.status:
        node_name = node_of(state)
        if node_name is None:
            continue  # a node_state for a node the configuration does not know
        if not nodes[node_name].online and not fencing:
            continue  # nothing runs on an offline node when it cannot be fenced
        for lrm in state.lrm_resources:
            entry = _unpack_lrm(
                lrm, node_name, index, nodes, now, fencing, maintenance_mode, migrations, extras
            )
            if entry is None:
                continue
            clone = index[entry.primitive][1] if entry.primitive in index else None
            if (
                clone is not None
                and not entry.orphan
                and not _unique(clone)
                and (entry.role.active or entry.failed)
            ):
                number = lrm.id.partition(":")[2]
                instance = _instance(clone.id, entry.primitive, number, node_name, used, per_node)
                entry = replace(entry, id=instance)
            out.append(entry)
    for extra in extras:  # active where an unfinished migration left it
        same = [i for i, e in enumerate(out) if e.id == extra.id and e.node == extra.node]
        if not same:
            out.append(extra)
            continue
        i = same[0]
        if out[i].role.active:
            if extra.failed and not out[i].failed:
                out[i] = replace(out[i], failed=True, failed_op=extra.failed_op)
        else:
            out[i] = replace(extra, notes=out[i].notes + extra.notes)
    return ClusterState(
        nodes=nodes,
        resources=tuple(out),
        stonith_enabled=fencing,
        maintenance_mode=maintenance_mode,
    )


def failure_expiries(cib: Cib) -> list[float]:
    """When each recorded failure of a resource with a ``failure-timeout`` expires (seconds
    since the epoch, from the failed operation's last-rc-change): the times the cluster must
    look again, since nothing else happens then (Pacemaker's controller rechecks at them)."""
    index = _resource_index(cib)
    out: list[float] = []
    for state in cib.status:
        for resource in state.lrm_resources:
            entry = index.get(resource.id.partition(":")[0])
            if entry is None:
                continue
            timeout_ms = _failure_timeout_ms(entry[2])
            if timeout_ms <= 0:
                continue
            for op in resource.ops:
                if "_last_failure_" not in op.id:
                    continue
                try:
                    changed = int(op.last_rc_change or op.last_run or "")
                except ValueError:
                    continue
                out.append(changed + timeout_ms / 1000)
    return out
