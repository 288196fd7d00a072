"""Run a transition on paper, as crm_simulate does: the CIB's status section after every action
of a transition has completed (or failed where told to), so that the state after it can be read
with :func:`hastack.crm.state.resource_states` like any other.

:func:`fail_node` and :func:`apply` change only the status section: each action leaves the
history entry the controller would record (``lrm_rsc_op`` with a new call id, its rc and a
transition key that carries the rc it expected), fencing leaves the node down and its history
empty, a ``delete`` removes a resource's history, ``clear_failcount`` its fail counts, a
cancel its recurring operation. Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from hastack.crm.cib.model import (
    Cib,
    Lrm,
    LrmResource,
    LrmRscOp,
    NodeState,
    NvPair,
)
from hastack.crm.digest import Digester
from hastack.crm.transition import Action, Cancel, Transition

__all__ = ["OpFailure", "SimulationError", "apply", "fail_node", "parse_op_failure"]

OCF_NOT_RUNNING = 7
OCF_RUNNING_PROMOTED = 8
DOWN = {"in_ccm": "false", "crmd": "offline", "join": "down"}


class SimulationError(ValueError):
    """A request the CIB cannot satisfy (an unknown node); the message says what is allowed."""


@dataclass(frozen=True)
class OpFailure:
    """crm_simulate's ``--op-fail RSC_TASK_INTERVAL@NODE=RC``: that action returns RC."""

    rsc: str
    task: str
    interval_ms: int
    node: str
    rc: int

    @property
    def key(self) -> str:
        return f"{self.rsc}_{self.task}_{self.interval_ms}@{self.node}"


def parse_op_failure(text: str) -> OpFailure:
    """``rsc1_monitor_10000@node1=7`` (crm_simulate's format) into an :class:`OpFailure`."""
    spec, sep, rc_text = text.rpartition("=")
    key, at, node = spec.partition("@")
    parts = key.rsplit("_", 2)
    if not sep or not at or not node or len(parts) != 3 or not parts[0]:
        raise SimulationError(
            f"--op-fail {text!r}: expected RESOURCE_TASK_INTERVAL@NODE=RC, "
            "e.g. rsc1_monitor_10000@node1=7"
        )
    rsc, task, interval = parts
    try:
        return OpFailure(rsc, task, int(interval), node, int(rc_text))
    except ValueError:
        raise SimulationError(
            f"--op-fail {text!r}: the interval (milliseconds) and the rc must be integers"
        ) from None


def _node_names(cib: Cib) -> list[str]:
    return [n.uname or n.id for n in cib.nodes]


def fail_node(cib: Cib, node: str) -> Cib:
    """crm_simulate's ``--node-fail NODE``: the node left the membership without being
    expected to (it becomes unclean, and is fenced when fencing is enabled)."""
    if node not in _node_names(cib):
        raise SimulationError(
            f"--node-fail {node!r}: no such node (the CIB's nodes: "
            f"{', '.join(_node_names(cib)) or 'none'})"
        )
    status = list(cib.status)
    for i, state in enumerate(status):
        if state.uname == node:
            status[i] = replace(state, expected="member", **DOWN)
            break
    else:
        node_id = next(n.id for n in cib.nodes if (n.uname or n.id) == node)
        status.append(NodeState(id=node_id, uname=node, expected="member", **DOWN))
    return replace(cib, status=tuple(status))


class _Recorder:
    """The status section being rewritten, one node_state at a time."""

    def __init__(self, cib: Cib, now: float | None) -> None:
        self.cib = cib
        # the digests of the definition each operation runs with, recorded as the controller
        # does, so that the CIB after the transition holds nothing to restart for
        self.digester = Digester(cib, now)
        self.states: dict[str, NodeState] = {s.uname or s.id: s for s in cib.status}
        self.order = [s.uname or s.id for s in cib.status]
        calls = [op.call_id_int for s in cib.status for r in s.lrm_resources for op in r.ops]
        self.call = max(calls, default=0)
        self.primitives = {p.id: cib.expand_template(p) for p in cib.all_primitives()}

    def state(self, node: str) -> NodeState:
        if node not in self.states:
            node_id = next((n.id for n in self.cib.nodes if (n.uname or n.id) == node), node)
            self.states[node] = NodeState(id=node_id, uname=node)
            self.order.append(node)
        return self.states[node]

    def _resources(self, node: str) -> list[LrmResource]:
        return list(self.state(node).lrm_resources)

    def _store(self, node: str, resources: list[LrmResource]) -> None:
        state = self.state(node)
        lrm = state.lrm or Lrm(id=state.id)
        self.states[node] = replace(state, lrm=replace(lrm, resources=tuple(resources)))

    def record(self, node: str, rsc: str, task: str, interval: int, rc: int, expected: int) -> None:
        """Add the history entry of one completed operation."""
        self.call += 1
        resources = self._resources(node)
        index = next((i for i, r in enumerate(resources) if r.id == rsc), None)
        if index is None:
            base = self.primitives.get(rsc.partition(":")[0])
            entry = LrmResource(
                id=rsc,
                cls=base.cls if base else None,
                provider=base.provider if base else None,
                type=base.type if base else None,
            )
            resources.append(entry)
            index = len(resources) - 1
        key = f"{rsc}_{task}_{interval}"
        op = LrmRscOp(
            id=key if interval else f"{rsc}_last_{self.call}",
            operation=task,
            operation_key=key,
            interval=str(interval),
            call_id=str(self.call),
            rc_code=str(rc),
            op_status="0" if rc in (0, expected) else "4",
            transition_key=f"0:0:{expected}:00000000-0000-0000-0000-000000000000",
            last_rc_change="0",
            on_node=node,
        )
        if rsc.partition(":")[0] in self.primitives:
            digests = self.digester.calculate(node, op, rsc)
            op = replace(op, op_digest=digests.op_digest)
        kept = tuple(o for o in resources[index].ops if o.id != op.id)
        resources[index] = replace(resources[index], ops=(*kept, op))
        self._store(node, resources)

    def monitor_role(self, rsc: str, interval_ms: int) -> str | None:
        """The role of the resource's recurring monitor at this interval (None: any)."""
        primitive = self.primitives.get(rsc.partition(":")[0])
        if primitive is None:
            return None
        for op in primitive.ops:
            try:
                if op.name == "monitor" and op.interval_ms == interval_ms:
                    return {"Master": "Promoted", "Slave": "Unpromoted"}.get(op.role, op.role)
            except ValueError:
                continue
        return None

    def history_id(self, node: str, rsc: str) -> str:
        """The id an operation of `rsc` is recorded under on `node`: an anonymous clone's
        instance keeps the name its history there already has (``rsc:N`` in older CIBs)."""
        resources = self.state(node).lrm_resources
        if ":" in rsc or any(r.id == rsc for r in resources):
            return rsc
        instances = [r for r in resources if r.id.partition(":")[0] == rsc]
        # the instance active there, when one is; else the one any history names
        active = [r.id for r in instances if _active_entry(r)]
        return (active or [r.id for r in instances] or [rsc])[0]

    def forget(self, node: str, rsc: str, op_key: str | None = None) -> None:
        """Remove a resource's whole history on a node, or one recurring operation of it."""
        resources = self._resources(node)
        if op_key is None:
            resources = [r for r in resources if r.id != rsc]
        else:
            resources = [
                replace(r, ops=tuple(o for o in r.ops if o.operation_key != op_key))
                if r.id == rsc
                else r
                for r in resources
            ]
        self._store(node, resources)

    def fence(self, node: str) -> None:
        state = self.state(node)
        lrm = replace(state.lrm, resources=()) if state.lrm else None
        # fenced: down and not expected back, with nothing running
        self.states[node] = replace(state, expected="down", lrm=lrm, **DOWN)

    def shut_down(self, node: str) -> None:
        self.states[node] = replace(self.state(node), expected="down", **DOWN)

    def clear_failcount(self, node: str, rsc: str) -> None:
        state = self.state(node)
        if not state.transient:
            return
        prefixes = (f"fail-count-{rsc}", f"last-failure-{rsc}")
        sets = tuple(
            replace(s, pairs=tuple(p for p in s.pairs if not _named(p, prefixes)))
            for s in state.transient
        )
        self.states[node] = replace(state, transient=sets)

    def cib_after(self) -> Cib:
        return replace(self.cib, status=tuple(self.states[n] for n in self.order))


def _named(pair: NvPair, prefixes: tuple[str, ...]) -> bool:
    name = pair.name or ""
    return any(name == p or name.startswith(p + "#") for p in prefixes)


def _active_entry(resource: LrmResource) -> bool:
    """Whether a history entry's newest recorded result leaves the resource running."""
    if not resource.ops:
        return False
    newest = max(resource.ops, key=lambda o: o.call_id_int)
    return newest.operation in ("start", "promote", "demote", "migrate_from") or (
        newest.operation == "monitor" and newest.rc_code_int in (0, 8)
    )


def _is_active(cib: Cib, node: str, rsc: str) -> bool:
    """Whether a probe finds the resource running: its newest recorded result says so."""
    for state in cib.status:
        if state.uname != node:
            continue
        for r in state.lrm_resources:
            if r.id == rsc:
                return _active_entry(r)
    return False


def apply(
    cib: Cib,
    transition: Transition,
    failures: Mapping[str, OpFailure] | None = None,
    now: float | None = None,
) -> Cib:
    """The CIB after every action of the transition ran, each succeeding unless ``failures``
    (by :attr:`OpFailure.key`) says otherwise. Fencing first, then the actions in the
    transition's order of kinds: probes, cancels, migrations, demotions, stops, starts,
    promotions, monitors. Clone notifications leave no trace in the status section."""
    failures = failures or {}
    rec = _Recorder(cib, now)
    rank = {
        "stonith": 0,
        "probe": 1,
        "cancel": 2,
        "delete": 3,
        "clear_failcount": 3,
        # a migration records its two halves before the source's stop, as the cluster runs it
        "migrate_to": 4,
        "migrate_from": 5,
        "demote": 6,
        "stop": 7,
        "start": 8,
        "promote": 9,
        "reload-agent": 10,
        "monitor": 11,
        "do_shutdown": 12,
    }

    def kind(a: Action) -> str:
        if isinstance(a, Cancel):
            return "cancel"
        if a.task == "monitor" and a.interval_ms == 0:
            return "probe"
        return a.task

    for action in sorted(transition.actions, key=lambda a: (rank.get(kind(a), 13), a.name)):
        k, node, rsc = kind(action), action.node, action.rsc
        if k == "stonith":
            rec.fence(node)
            continue
        if k == "do_shutdown":
            rec.shut_down(node)
            continue
        if "_notify_" in k:
            continue  # a clone notification changes no state and is not kept in the history
        assert rsc is not None
        rsc = rec.history_id(node, rsc)
        if k == "cancel":
            rec.forget(node, rsc, f"{rsc}_{action.task}_{action.interval_ms}")
        elif k == "delete":
            rec.forget(node, rsc)
        elif k == "clear_failcount":
            rec.clear_failcount(node, rsc)
        else:
            failure = failures.get(f"{rsc}_{action.task}_{action.interval_ms}@{node}")
            if k == "probe":
                expected = OCF_NOT_RUNNING
                rc = 0 if _is_active(cib, node, rsc) else OCF_NOT_RUNNING
            elif k == "monitor" and rec.monitor_role(rsc, action.interval_ms) == "Stopped":
                expected = rc = OCF_NOT_RUNNING  # a role="Stopped" monitor: not running here
            elif k == "monitor" and rec.monitor_role(rsc, action.interval_ms) == "Promoted":
                expected = rc = OCF_RUNNING_PROMOTED  # what a promoted instance answers
            else:
                expected, rc = 0, 0
            if failure is not None:
                rc = failure.rc
            rec.record(node, rsc, action.task, action.interval_ms, rc, expected)
    return rec.cib_after()
