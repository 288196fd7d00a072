"""The running cluster's status section: kept by the DC as the controller keeps Pacemaker's.

The configuration of a live CIB changes by operator edits (XML, :mod:`hastack.crm.cib.edit`);
its status section changes with every membership change and every operation result, many
times a second during a failover, so the DC keeps it as model objects (one
:class:`NodeState` per node) and renders it to XML only to share or show it. Each function
here is pure: the old node states in, the new ones out.

What is recorded, as Pacemaker's controller records it:

* a node's ``node_state``: ``in_ccm`` (in membership), ``crmd`` (its daemon answers:
  ``online``/``offline``), ``join`` (``member`` once it has told the DC what runs there,
  ``down`` otherwise) and ``expected`` (``member`` while it should be up);
* each resource's operation history (``lrm_rsc_op``): the last run of each operation, with
  the node's call id, rc, execution status, exit reason, times, and the transition key that
  carries the rc the DC expected (the scheduler reads failures from it);
* fail counts and last-failure times (``fail-count-RSC#OP_INTERVAL``, transient attributes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from hastack.crm.cib.model import (
    Lrm,
    LrmResource,
    LrmRscOp,
    NodeState,
    NvPair,
    NvSet,
)

# The attributes of an lrm_rsc_op a node reports, as hastack.agents.executor.OpRecord writes
# them (lrm_attributes), mapped to the model's field names.
_OP_FIELDS = {
    "operation_key": "operation_key",
    "operation": "operation",
    "interval": "interval",
    "call-id": "call_id",
    "rc-code": "rc_code",
    "op-status": "op_status",
    "exit-reason": "exit_reason",
    "on_node": "on_node",
    "last-run": "last_run",
    "last-rc-change": "last_rc_change",
    "exec-time": "exec_time",
    "queue-time": "queue_time",
    "op-digest": "op_digest",
}
# The transition keys hastack writes: "TRANSITION:ACTION:EXPECTED-RC:DC-UUID"; the scheduler
# reads the expected rc from the third field, as Pacemaker's does.
TRANSITION_KEY = "{tid}:0:{expected}:{dc}"

States = Mapping[str, NodeState]


def node_state(
    states: States,
    node: str,
    node_id: str,
    *,
    member: bool,
    joined: bool,
    expected: bool = True,
) -> dict[str, NodeState]:
    """Set a node's membership fields; its history and attributes stay (see forget_lrm)."""
    out = dict(states)
    old = out.get(node) or NodeState(id=node_id, uname=node)
    out[node] = replace(
        old,
        id=old.id or node_id,
        uname=node,
        in_ccm="true" if member else "false",
        crmd="online" if member else "offline",
        join="member" if member and joined else "down",
        expected="member" if expected else "down",
    )
    return out


def forget_lrm(states: States, node: str) -> dict[str, NodeState]:
    """Drop a node's operation history (it left cleanly, or it is about to report anew)."""
    out = dict(states)
    old = out.get(node)
    if old is not None:
        out[node] = replace(old, lrm=Lrm(id=old.id, resources=()))
    return out


def op_from_report(report: Mapping[str, Any]) -> LrmRscOp:
    """An lrm_rsc_op from a node's report of one operation (its lrm attributes, plus
    ``expected-rc``, ``op-digest`` and ``transition`` when the DC gave them); raises
    ValueError for a malformed report."""
    if not isinstance(report, Mapping):
        raise ValueError("an operation report must be an object")
    fields: dict[str, str] = {}
    for name, attr in _OP_FIELDS.items():
        value = report.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"operation report field {name!r} must be text")
        fields[attr] = value
    key = fields.get("operation_key")
    interval = fields.get("interval", "0")
    if not key or "operation" not in fields or not interval.isdigit():
        raise ValueError("an operation report needs operation_key, operation and interval")
    expected = report.get("expected-rc", "0")
    tid = report.get("transition", "-1")
    dc = report.get("dc", "hastack")
    if not isinstance(expected, str) or not isinstance(tid, str) or not isinstance(dc, str):
        raise ValueError("expected-rc, transition and dc must be text")
    # recurring ops keep one entry per key; one-shot ones share the resource's "last" entry
    # (Pacemaker names it RSC_last_0) and a failed one also its "last_failure" entry
    rsc = key.rsplit("_", 2)[0]
    op_id = key if interval != "0" else f"{rsc}_last_0"
    return LrmRscOp(
        id=op_id,
        transition_key=TRANSITION_KEY.format(tid=tid, expected=expected, dc=dc),
        **fields,
    )


def record_op(
    states: States,
    node: str,
    resource: str,
    agent: tuple[str | None, str | None, str | None],
    op: LrmRscOp,
    *,
    failed: bool,
) -> dict[str, NodeState]:
    """Add one operation's result to a node's history: it replaces the entry of the same id;
    a failure is also kept as ``RSC_last_failure_0`` (as Pacemaker keeps it), which later
    successes do not replace (cleanup removes it)."""
    out = dict(states)
    state = out.get(node) or NodeState(id=node, uname=node)
    lrm = state.lrm or Lrm(id=state.id)
    resources = list(lrm.resources)
    index = next((i for i, r in enumerate(resources) if r.id == resource), None)
    if index is None:
        cls, provider, kind = agent
        resources.append(LrmResource(id=resource, cls=cls, provider=provider, type=kind))
        index = len(resources) - 1
    entry = resources[index]
    ops = [o for o in entry.ops if o.id != op.id]
    ops.append(op)
    if failed:
        failure_id = f"{resource}_last_failure_0"
        ops = [o for o in ops if o.id != failure_id]
        ops.append(replace(op, id=failure_id))
    resources[index] = replace(entry, ops=tuple(ops))
    out[node] = replace(state, lrm=replace(lrm, resources=tuple(resources)))
    return out


def replace_lrm(
    states: States, node: str, resources: Iterable[LrmResource]
) -> dict[str, NodeState]:
    """A node's whole history, as it reported it when it joined."""
    out = dict(states)
    state = out.get(node) or NodeState(id=node, uname=node)
    lrm = state.lrm or Lrm(id=state.id)
    out[node] = replace(state, lrm=replace(lrm, resources=tuple(resources)))
    return out


def transient(state: NodeState | None) -> dict[str, str]:
    """A node's transient attributes as a dict."""
    if state is None or not state.transient:
        return {}
    values: dict[str, str] = {}
    for nvset in state.transient:
        values.update(nvset.as_dict())
    return values


def set_transient(
    states: States, node: str, updates: Mapping[str, str | None]
) -> dict[str, NodeState]:
    """Set (a value) or delete (None) transient attributes of a node, with the ids Pacemaker's
    attribute manager gives them (``status-NODEID-NAME``)."""
    out = dict(states)
    state = out.get(node) or NodeState(id=node, uname=node)
    values = transient(state)
    for name, value in updates.items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
    pairs = tuple(
        NvPair(id=f"status-{state.id or node}-{name}".replace("#", "."), name=name, value=v)
        for name, v in sorted(values.items())
    )
    nvset = NvSet(kind="instance_attributes", id=f"status-{state.id or node}", pairs=pairs)
    out[node] = replace(
        state, transient_id=state.transient_id or state.id or node, transient=(nvset,)
    )
    return out


def failure_names(resource: str, task: str, interval_ms: int) -> tuple[str, str]:
    """The fail count and last-failure attribute names of one operation (Pacemaker 2.1)."""
    suffix = f"{resource}#{task}_{interval_ms}"
    return f"fail-count-{suffix}", f"last-failure-{suffix}"


def count_failure(
    states: States, node: str, resource: str, task: str, interval_ms: int, when: float
) -> dict[str, NodeState]:
    """One more failure of an operation: its fail count goes up by one (INFINITY stays), its
    last-failure time is `when` (seconds since the epoch). A failed start counts as
    INFINITY, as ``start-failure-is-fatal`` (Pacemaker's default) has it; the caller passes
    the option."""
    count_name, last_name = failure_names(resource, task, interval_ms)
    current = transient(states.get(node)).get(count_name, "0")
    if current.upper() == "INFINITY":
        value = "INFINITY"
    else:
        try:
            value = str(int(current) + 1)
        except ValueError:
            value = "1"
    return set_transient(states, node, {count_name: value, last_name: str(int(when))})


def fatal_failure(
    states: States, node: str, resource: str, task: str, interval_ms: int, when: float
) -> dict[str, NodeState]:
    """A failure that bans the resource from the node at once (a failed start with
    ``start-failure-is-fatal``): the fail count becomes INFINITY."""
    count_name, last_name = failure_names(resource, task, interval_ms)
    return set_transient(states, node, {count_name: "INFINITY", last_name: str(int(when))})


def clear_failcounts(states: States, resource: str, node: str) -> dict[str, NodeState]:
    """The scheduler's ``clear_failcount`` of an expired failure: a resource's fail counts
    and last-failure times on one node go; its operation history stays."""
    out = dict(states)
    base = resource.partition(":")[0]
    names = [
        k
        for k in transient(out.get(node))
        if k.startswith(("fail-count-", "last-failure-"))
        and k.split("-", 2)[2].split("#", 1)[0].partition(":")[0] == base
    ]
    if names:
        out = set_transient(out, node, dict.fromkeys(names))
    return out


def clear_failures(
    states: States, resource: str, node: str | None = None
) -> tuple[dict[str, NodeState], list[str]]:
    """Cleanup: forget a resource's failures (fail counts, last failures and failed history
    entries) on one node or all; returns the new states and the nodes where something went."""
    out = dict(states)
    touched: list[str] = []
    base = resource.partition(":")[0]

    def ours(name: str) -> bool:
        for prefix in ("fail-count-", "last-failure-"):
            if name.startswith(prefix):
                rsc = name[len(prefix) :].split("#", 1)[0]
                return rsc.partition(":")[0] == base
        return False

    for name, state in list(out.items()):
        if node is not None and name != node:
            continue
        values = transient(state)
        gone = [k for k in values if ours(k)]
        changed = False
        if gone:
            out = set_transient(out, name, dict.fromkeys(gone))
            changed = True
        state = out[name]
        if state.lrm is not None:
            resources = []
            for entry in state.lrm.resources:
                if entry.id.partition(":")[0] == base:
                    # the resource is probed again: its whole history there goes, as
                    # crm_resource --cleanup has it
                    changed = True
                    continue
                resources.append(entry)
            out[name] = replace(state, lrm=replace(state.lrm, resources=tuple(resources)))
        if changed:
            touched.append(name)
    return out, touched
