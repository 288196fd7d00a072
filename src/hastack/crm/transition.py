"""The scheduler's third stage: the actions of one transition, from the current state to the
placement.

:func:`plan` compares where each primitive is active now (:func:`hastack.crm.state.
resource_states`) with where it runs after the transition (:func:`hastack.crm.placement.place`)
and lists what the cluster must do, as crm_simulate's transition does:

* **fencing** (``stonith 'reboot' NODE``) of every unclean node while ``stonith-enabled``, and
  of the nodes running a resource whose ticket was lost under ``loss-policy=fence``; what ran
  there is then stopped by the fencing itself, not by a stop action;
* **probes** (``RSC_monitor_0 NODE``) on every online node where the resource's state is
  unknown (no history there), unless a location constraint says ``resource-discovery=never``
  for that node, or ``exclusive`` for other nodes only;
* **stops** where a resource is active and will not be, or failed and must recover, and of
  orphans (in the status section, no longer configured) while ``stop-orphan-resources``;
* **starts** where it will run and does not run now (or is recovering);
* **migrations** instead of a stop and a start when a resource with ``allow-migrate`` moves
  between two healthy nodes (``migrate_to`` on the source, ``migrate_from`` on the target, then
  the stop on the source; the start is implied);
* **recurring monitors** on the node a resource runs on, when it starts there or when the
  history there lacks that monitor.

Each action carries its reason. Ordering edges, clones and promotable clones come later (the
placement stage refuses those CIBs already).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hastack.crm.cib.model import Cib, Clone, Group, Primitive, flatten, parse_bool
from hastack.crm.constraints import locations, orderings
from hastack.crm.digest import changed_operations, node_checks_history
from hastack.crm.placement import Placement, PlacementUnsupported
from hastack.crm.state import ClusterState, ResourceState
from hastack.crm.tickets import ticket_fencing

__all__ = ["Action", "Transition", "plan"]


@dataclass(frozen=True, order=True)
class Action:
    """One action on one node. ``rsc`` is None for fencing."""

    node: str
    task: str  # start, stop, monitor, migrate_to, migrate_from, stonith
    rsc: str | None = None
    interval_ms: int = 0
    reason: str = ""

    @property
    def name(self) -> str:
        """The name crm_simulate's dot output gives it: ``rsc_start_0 node1``,
        ``stonith 'reboot' node3``."""
        if self.task == "stonith":
            return f"stonith 'reboot' {self.node}"
        if self.task == "do_shutdown":
            return f"do_shutdown {self.node}"
        return f"{self.rsc}_{self.task}_{self.interval_ms} {self.node}"


@dataclass(frozen=True, order=True)
class Cancel(Action):
    """Stop a recurring operation the configuration no longer has: ``Cancel rsc_monitor_N``."""

    @property
    def name(self) -> str:
        return f"Cancel {self.rsc}_{self.task}_{self.interval_ms} {self.node}"


@dataclass(frozen=True)
class Transition:
    actions: tuple[Action, ...]

    def names(self) -> set[str]:
        return {a.name for a in self.actions}


def _discovery(cib: Cib) -> tuple[set[tuple[str, str]], dict[str, set[str]]]:
    """(rsc, node) pairs never to probe, and per resource the nodes exclusive discovery allows
    (location constraints naming a node; patterns, sets and tags expanded)."""
    never: set[tuple[str, str]] = set()
    exclusive: dict[str, set[str]] = {}
    for loc in locations(cib):
        if loc.node is None:
            continue
        if loc.discovery == "never":
            never.add((loc.rsc, loc.node))
        elif loc.discovery == "exclusive":
            exclusive.setdefault(loc.rsc, set()).add(loc.node)
    return never, exclusive


def plan(
    cib: Cib,
    state: ClusterState,
    placement: Placement,
    now: float | None = None,
    *,
    sanitized: bool = False,
) -> Transition:
    """The actions that take the cluster from ``state`` to ``placement`` (``now`` as given to
    them: rules in instance attributes are evaluated at that time for the digests).
    ``sanitized``: compare digests as crm_simulate does on a CIB whose private parameters
    were replaced (a change only there is not a change); a live cluster leaves it off.

    Raises :class:`PlacementUnsupported` for a CIB with clones: their actions (instances,
    promotion) are not planned yet, even where the placement stage already places them."""
    for resource in cib.resources:
        if isinstance(resource, Clone):
            feature = "promotable clones" if resource.promotable else "clones"
            raise PlacementUnsupported(f"the actions of {feature}", resource.id)
    options = cib.cluster_options()
    actions: list[Action] = []
    fenced: set[str] = set()
    # Without quorum a partition fences nobody (the other side may be the healthy one),
    # unless told to ignore quorum.
    quorate = parse_bool(cib.extra.get("have-quorum"), True)
    may_fence = quorate or options.get("no-quorum-policy") == "ignore"
    suicide = not quorate and options.get("no-quorum-policy") == "suicide"
    if state.stonith_enabled and (may_fence or suicide):
        for name, node in sorted(state.nodes.items()):
            if node.unclean:
                why = f"node {name} is unclean"
            elif suicide and node.online:
                why = f"node {name} lost quorum and no-quorum-policy is suicide"
            else:
                continue
            fenced.add(name)
            actions.append(Action(name, "stonith", reason=why))
    if may_fence:
        # a ticket lost under loss-policy=fence: the nodes running what needed it go down
        for name, why in ticket_fencing(cib, state).items():
            if name not in fenced:
                fenced.add(name)
                actions.append(Action(name, "stonith", reason=why))
    histories: dict[str, set[str]] = {}
    recurring: set[tuple[str, str, int]] = set()  # (node, rsc, interval) monitors in force
    for node_state in cib.status:
        if not node_state.uname:
            continue
        histories[node_state.uname] = {r.id for r in node_state.lrm_resources}
        for lrm_rsc in node_state.lrm_resources:
            for op in lrm_rsc.ops:
                # a recurring monitor recorded as done (not cancelled) is still running there
                if op.operation == "monitor" and op.interval_ms > 0 and op.op_status_int == 0:
                    recurring.add((node_state.uname, lrm_rsc.id, op.interval_ms))
    probe_nodes = sorted(
        name
        for name, node in state.nodes.items()
        if node.online and not node.unclean and not node.pending and not node.maintenance
    )
    never, exclusive = _discovery(cib)
    # with their templates applied, once for every stage below
    primitives = {p.id: cib.expand_template(p) for p in cib.all_primitives()}

    for rsc, primitive in primitives.items():
        entries = state.of(rsc)
        for node in probe_nodes:
            here = [e for e in entries if e.node == node]
            # a probe still in flight has not told anything yet
            if any(e.pending != "monitor" or e.role.active for e in here):
                continue
            if not here and rsc in histories.get(node, set()):
                continue
            if (rsc, node) in never or (rsc in exclusive and node not in exclusive[rsc]):
                continue
            actions.append(Action(node, "monitor", rsc, 0, f"state of {rsc} on {node} unknown"))
        if rsc in placement.unmanaged:
            continue
        meta = placement.meta.get(rsc, {})
        actions += _moves(primitive, meta, entries, placement, fenced, state, recurring)
        actions += _stopped_monitors(primitive, placement, probe_nodes, fenced, recurring)

    actions += _agent_changes(cib, primitives, state, placement, fenced, actions)
    actions += _definition_changes(cib, primitives, state, placement, now, sanitized, actions)
    actions += _restarts(cib, primitives, state, placement, fenced, actions)

    still_running = {n for nodes in placement.final.values() for n in nodes}
    for name, node in sorted(state.nodes.items()):
        # a node shuts down once nothing runs there; a resource that cannot stop holds it
        if node.shutdown and node.online and name not in fenced and name not in still_running:
            actions.append(Action(name, "do_shutdown", reason=f"node {name} is shutting down"))

    failcounts = _failcount_nodes(cib)
    if parse_bool(options.get("stop-orphan-resources"), True):
        actions += _orphans(cib, primitives, state, fenced, failcounts)
    # a failure past its failure-timeout is forgotten: its fail count is cleared where it is
    for entry in state.resources:
        expired = any("failure expired" in note for note in entry.notes)
        if expired and entry.node in failcounts.get(entry.primitive, ()):
            why = f"the failure of {entry.id} on {entry.node} expired (failure-timeout)"
            actions.append(Action(entry.node, "clear_failcount", entry.id, 0, why))
    unique: dict[str, Action] = {}
    for action in actions:
        unique.setdefault(action.name, action)  # the first reason found is the direct one
    return Transition(tuple(sorted(unique.values(), key=lambda a: a.name)))


def _agent_changes(
    cib: Cib,
    primitives: Mapping[str, Primitive],
    state: ClusterState,
    placement: Placement,
    fenced: set[str],
    actions: list[Action],
) -> list[Action]:
    """A resource whose agent (class, provider, type) changed since a node ran it: that
    node's history is of another agent, so it is deleted; where the resource runs and stays,
    it is stopped with the old agent and started with the new one."""
    busy = {(a.rsc, a.node) for a in actions if a.task in ("stop", "start")}
    out: list[Action] = []
    for node_state in cib.status:
        node = node_state.uname
        status = state.nodes.get(node or "")
        # checked where Pacemaker checks definitions: nodes that can run resources
        if node is None or status is None or not node_checks_history(status) or node in fenced:
            continue
        for lrm in node_state.lrm_resources:
            primitive = primitives.get(lrm.id)
            if primitive is None:
                continue
            configured = (primitive.cls, primitive.provider, primitive.type)
            if (lrm.cls, lrm.provider, lrm.type) == configured:
                continue
            old = ":".join(x for x in (lrm.cls, lrm.provider, lrm.type) if x)
            why = f"{lrm.id}'s agent changed from {old} to {primitive.agent}"
            out.append(Action(node, "delete", lrm.id, 0, why))
            active = any(e.node == node and e.role.active for e in state.of(lrm.id))
            if active and node in placement.final.get(lrm.id, ()) and (lrm.id, node) not in busy:
                out += [Action(node, "stop", lrm.id, 0, why), Action(node, "start", lrm.id, 0, why)]
    return out


def _definition_changes(
    cib: Cib,
    primitives: Mapping[str, Primitive],
    state: ClusterState,
    placement: Placement,
    now: float | None,
    sanitized: bool,
    actions: list[Action],
) -> list[Action]:
    """What a changed definition needs where a resource keeps running (hastack.crm.digest
    compares each history entry's recorded digests with the configuration): a restart, a
    reload (``reload-agent``), a recurring operation started again with its new parameters,
    or one cancelled (no longer configured, or in maintenance)."""
    busy = {(a.rsc, a.node) for a in actions if a.task in ("stop", "start", "migrate_to")}
    out: list[Action] = []
    for change in changed_operations(cib, state, now, sanitized=sanitized):
        rsc, node = change.rsc.partition(":")[0], change.node
        if (rsc, node) in busy:
            continue
        name, interval = change.task, change.interval_ms
        why = f"definition changed: {change.reason}"
        if change.action == "cancel":
            out.append(Cancel(node, name, rsc, interval, why))
        elif change.action == "reschedule":
            out.append(Action(node, name, rsc, interval, why))
        elif change.action == "reload":
            out.append(Action(node, "reload-agent", rsc, 0, why))
        elif change.action == "restart" and node in placement.final.get(rsc, ()):
            busy.add((rsc, node))
            out += [Action(node, "stop", rsc, 0, why), Action(node, "start", rsc, 0, why)]
            primitive = primitives.get(rsc)
            if primitive is not None:
                out += [Action(node, "monitor", rsc, i, why) for i in _monitor_intervals(primitive)]
    return out


def _restarts(
    cib: Cib,
    primitives: Mapping[str, Primitive],
    state: ClusterState,
    placement: Placement,
    fenced: set[str],
    actions: list[Action],
) -> list[Action]:
    """Stops and starts that mandatory orderings add: when a resource stops (to move, to
    recover, or for good) or starts, whatever must start after it (a mandatory, symmetrical
    ordering; a later member of an ordered group) and runs now stops first, and starts again
    after it where it stays ("Restart ... due to required X start" in crm_simulate)."""
    members: dict[str, list[str]] = {rsc: [rsc] for rsc in primitives}
    edges: list[tuple[str, list[str], list[str]]] = []
    for g in cib.resources:
        if isinstance(g, Group):
            members[g.id] = [c.id for c in g.children]
            if parse_bool(flatten(g.meta).get("ordered"), True):
                for before, after in zip(g.children, g.children[1:], strict=False):
                    edges.append((f"group {g.id}", [before.id], [after.id]))
    for o in orderings(cib):
        if o.mandatory and o.symmetrical and o.first_action == "start" == o.then_action:
            edges.append((f"order {o.id}", members.get(o.first, []), members.get(o.then, [])))
    added: list[Action] = []
    # a migration keeps the resource available throughout: nothing after it restarts
    migrating = {a.rsc for a in actions if a.task == "migrate_to"}
    stopping = {a.rsc for a in actions if a.task in ("stop", "start")} - migrating
    changed = True
    while changed:
        changed = False
        for why, firsts, thens in edges:
            cause = next((f for f in firsts if f in stopping), None)
            if cause is None:
                continue
            for then in thens:
                if then in stopping or then not in primitives:
                    continue
                current = sorted({e.node for e in state.of(then) if e.role.active} - fenced)
                if not current:
                    continue
                stopping.add(then)
                changed = True
                reason = f"{then} must stop before {cause} stops or starts ({why})"
                added += [Action(node, "stop", then, 0, reason) for node in current]
                for node in placement.final.get(then, ()):
                    again = f"{then} starts again after {cause} ({why})"
                    added.append(Action(node, "start", then, 0, again))
                    added += [
                        Action(node, "monitor", then, interval, again)
                        for interval in _monitor_intervals(primitives[then])
                    ]
    return added


def _moves(
    primitive: Primitive,
    meta: Mapping[str, str],
    entries: tuple[ResourceState, ...],
    placement: Placement,
    fenced: set[str],
    state: ClusterState,
    recurring: set[tuple[str, str, int]],
) -> list[Action]:
    rsc = primitive.id
    current = sorted({e.node for e in entries if e.role.active})
    failed = {e.node for e in entries if e.failed}
    final = tuple(placement.final.get(rsc, ()))
    out: list[Action] = []
    stops = [n for n in current if (n not in final or n in failed) and n not in fenced]
    starts = [n for n in final if n not in current or n in failed]
    multiple = meta.get("multiple-active", "stop_start")
    if len(current) > 1 and multiple in ("stop_start", "stop_only"):
        # Active where it should be once: stopped everywhere, then started where it belongs
        # (stop_unexpected stops it only where it should not be: the default path above).
        stops = [n for n in current if n not in fenced]
        starts = list(final) if multiple == "stop_start" else []
    if (
        parse_bool(meta.get("allow-migrate"))
        and len(current) == 1
        and len(final) == 1
        and current[0] != final[0]
        and current[0] not in failed
        and current[0] not in fenced
        and state.nodes.get(current[0]) is not None
        and state.nodes[current[0]].online
    ):
        source, target = current[0], final[0]
        out.append(Action(source, "migrate_to", rsc, 0, f"{rsc} migrates to {target}"))
        out.append(Action(target, "migrate_from", rsc, 0, f"{rsc} migrates from {source}"))
        out.append(Action(source, "stop", rsc, 0, f"{rsc} migrated away to {target}"))
        started = {target}  # migrate_from started it there
    else:
        for node in stops:
            why = f"{rsc} failed on {node}" if node in failed else f"{rsc} moves away"
            out.append(Action(node, "stop", rsc, 0, why))
        for node in starts:
            why = f"{rsc} recovers on {node}" if node in failed else f"{rsc} placed on {node}"
            out.append(Action(node, "start", rsc, 0, why))
        started = set(starts)
    configured = _monitor_intervals(primitive)
    for node in final:
        for interval in configured:
            if node in started or node not in current or (node, rsc, interval) not in recurring:
                out.append(
                    Action(node, "monitor", rsc, interval, f"{rsc} runs on {node}: monitor it")
                )
    return out


def _stopped_monitors(
    primitive: Primitive,
    placement: Placement,
    nodes: list[str],
    fenced: set[str],
    recurring: set[tuple[str, str, int]],
) -> list[Action]:
    """Monitors with role="Stopped" watch that the resource is *not* running on every node it
    will not run on; where it starts, the one recorded there is cancelled."""
    rsc = primitive.id
    final = set(placement.final.get(rsc, ()))
    out: list[Action] = []
    for interval in _monitor_intervals(primitive, role="Stopped"):
        for node in nodes:
            if node in fenced:
                continue
            recorded = (node, rsc, interval) in recurring
            if node in final and recorded:
                why = f"{rsc} runs on {node}: its Stopped-role monitor ends"
                out.append(Cancel(node, "monitor", rsc, interval, why))
            elif node not in final and not recorded:
                why = f"{rsc} does not run on {node}: watch that it stays stopped"
                out.append(Action(node, "monitor", rsc, interval, why))
    return out


def _monitor_intervals(primitive: Primitive, role: str = "Started") -> list[int]:
    """The enabled recurring monitors of a role (Started: also those without a role), in
    milliseconds."""
    out: list[int] = []
    for op in primitive.ops:
        if op.name != "monitor":
            continue
        if op.role != role and not (role == "Started" and op.role is None):
            continue
        if not parse_bool(op.enabled, True):
            continue
        try:
            interval = op.interval_ms
        except ValueError:
            continue
        if interval > 0 and interval not in out:
            out.append(interval)
    return out


def _orphans(
    cib: Cib,
    primitives: Mapping[str, Primitive],
    state: ClusterState,
    fenced: set[str],
    failcounts: Mapping[str, list[str]],
) -> list[Action]:
    """A resource in the status section but no longer configured is stopped where it is
    active, and its history deleted on every node that can run actions (with the fail counts
    it left behind)."""
    active = {(e.id, e.node) for e in state.resources if e.orphan and e.role.active}
    out: list[Action] = []
    for node_state in cib.status:
        node = node_state.uname
        status = state.nodes.get(node or "")
        if node is None or status is None or not status.online or node in fenced:
            continue
        for lrm in node_state.lrm_resources:
            if lrm.id.partition(":")[0] in primitives:
                continue
            why = f"{lrm.id} is no longer configured"
            if (lrm.id, node) in active:
                out.append(Action(node, "stop", lrm.id, 0, why))
            out.append(Action(node, "delete", lrm.id, 0, why))
            if (lrm.id, node) in active:
                out += [
                    Action(n, "clear_failcount", lrm.id, 0, why) for n in failcounts.get(lrm.id, ())
                ]
    return out


def _failcount_nodes(cib: Cib) -> dict[str, list[str]]:
    """Resource -> the nodes whose transient attributes hold a fail count for it."""
    out: dict[str, list[str]] = {}
    for node_state in cib.status:
        if not node_state.uname or not node_state.transient:
            continue
        for name in flatten(node_state.transient):
            if name.startswith("fail-count-"):
                rsc = name[len("fail-count-") :].split("#", 1)[0]
                nodes = out.setdefault(rsc, [])
                if node_state.uname not in nodes:
                    nodes.append(node_state.uname)
    return out
