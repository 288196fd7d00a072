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
from itertools import pairwise

from hastack.crm.cib.model import Cib, Clone, Group, Primitive, flatten, parse_bool
from hastack.crm.constraints import locations, orderings
from hastack.crm.digest import changed_operations, node_checks_history
from hastack.crm.placement import Placement
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

    Clone instances are planned per instance: an anonymous clone's actions carry the
    primitive's id (its instances are interchangeable), a globally-unique clone's the
    instance's ``rsc:N``; promotable instances are promoted and demoted as their role in the
    placement says."""
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
    op_names: dict[tuple[str, str], str] = {}  # (node, operation id) -> the operation it ran
    recurring: set[tuple[str, str, int]] = set()  # (node, rsc, interval) monitors in force
    for node_state in cib.status:
        if not node_state.uname:
            continue
        histories[node_state.uname] = {r.id for r in node_state.lrm_resources}
        for lrm_rsc in node_state.lrm_resources:
            for op in lrm_rsc.ops:
                op_names[(node_state.uname, op.id)] = op.operation or ""
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

    clones = _clone_members(cib)
    if clones:
        # an anonymous clone's history is kept under rsc or rsc:N: both are the primitive
        for node, lrm_id, interval in list(recurring):
            base = lrm_id.partition(":")[0]
            if base in clones:
                recurring.add((node, base, interval))
        for names in histories.values():
            names.update(n.partition(":")[0] for n in list(names) if n.partition(":")[0] in clones)
    for rsc, primitive in primitives.items():
        if rsc in clones:
            actions += _clone_instances(
                primitive,
                state,
                placement,
                probe_nodes,
                histories,
                never,
                exclusive,
                fenced,
                recurring,
                op_names,
            )
            continue
        entries = state.of(rsc)
        actions += _probes(rsc, rsc, entries, probe_nodes, histories, never, exclusive)
        meta = placement.meta.get(rsc, {})
        if rsc in placement.unmanaged:
            actions += _unmanaged_monitors(primitive, meta, entries, state, fenced, recurring)
            continue
        actions += _moves(primitive, meta, entries, placement, fenced, state, recurring)
        actions += _stopped_monitors(primitive, placement, probe_nodes, fenced, recurring)

    actions = _unmigratable(cib, actions)
    actions += _agent_changes(cib, primitives, state, placement, fenced, actions)
    actions += _definition_changes(cib, primitives, state, placement, now, sanitized, actions)
    actions += _restarts(cib, primitives, state, placement, fenced, actions)
    actions += _clone_notifications(cib, clones, state, placement, fenced, actions)

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


def _unmigratable(cib: Cib, actions: list[Action]) -> list[Action]:
    """A migration keeps a resource running while it moves, so it is possible only while
    what it needs first stays put where it matters; otherwise the resource moves with a stop
    and a start ("due to unrunnable X stop" in crm_simulate), which can make the next one
    unmigratable in turn. As crm_simulate decides, on its corpus: a group member after an
    earlier member that stops or starts; a resource ordered (mandatory, start then start)
    after one that stops on the node it would migrate to, or after a clone whose instance
    starts there."""
    # then -> [(first, kind)], kind: "group" (an earlier member), "order" or "clone"
    needs: dict[str, list[tuple[str, str]]] = {}
    members: dict[str, list[str]] = {}  # a group or clone -> its primitives
    cloned: set[str] = set()
    for r in cib.resources:
        inner = r.child if isinstance(r, Clone) else r
        if isinstance(inner, Group):
            members[r.id] = members[inner.id] = [c.id for c in inner.children]
            if parse_bool(flatten(inner.meta).get("ordered"), True):
                for before, later in pairwise(inner.children):
                    needs.setdefault(later.id, []).append((before.id, "group"))
        elif inner is not r:
            members[r.id] = [inner.id]
        if inner is not r:
            cloned.update(members[r.id])
    for o in orderings(cib):
        if o.mandatory and o.first_action == "start" == o.then_action:
            for then in members.get(o.then, [o.then]):
                for first in members.get(o.first, [o.first]):
                    needs.setdefault(then, []).append(
                        (first, "clone" if first in cloned else "order")
                    )
    actions = list(actions)
    changed = True
    while changed:
        changed = False
        migrating = {a.rsc for a in actions if a.task == "migrate_to"}
        done: dict[tuple[str, str], set[str]] = {}  # (primitive, task) -> nodes
        for a in actions:
            if a.task in ("stop", "start") and a.rsc not in migrating:
                done.setdefault(((a.rsc or "").partition(":")[0], a.task), set()).add(a.node)
        for rsc in sorted(migrating):
            source = next(a.node for a in actions if a.rsc == rsc and a.task == "migrate_to")
            target = next(a.node for a in actions if a.rsc == rsc and a.task == "migrate_from")

            cause = next(
                (f for f, kind in needs.get(rsc, ()) if _blocks_migration(done, f, kind, target)),
                None,
            )
            if cause is None:
                continue
            why = f"{rsc} cannot migrate: {cause}, which it needs first, stops or starts"
            actions = [a for a in actions if not (a.rsc == rsc and a.task.startswith("migrate"))]
            actions = [a for a in actions if not (a.rsc == rsc and a.task == "stop")]
            actions += [Action(source, "stop", rsc, 0, why), Action(target, "start", rsc, 0, why)]
            changed = True
            break
    return actions


def _blocks_migration(
    done: Mapping[tuple[str, str], set[str]], first: str, kind: str, target: str
) -> bool:
    """Whether `first` (what a migrating resource needs first, see _unmigratable) moves in a
    way that rules the migration to `target` out."""
    stops, starts = done.get((first, "stop"), set()), done.get((first, "start"), set())
    if kind == "group":
        return bool(stops or starts)
    if kind == "clone":
        return target in starts
    return target in stops


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
    after it where it stays ("Restart ... due to required X start" in crm_simulate).

    Clones count per node: what is ordered after a clone (and the later members of a cloned
    group instance) restarts only on the node where the instance it follows changed, and not
    at all with ``require-all="false"``; what a plain resource orders first restarts every
    instance after it."""
    members: dict[str, list[str]] = {rsc: [rsc] for rsc in primitives}
    # (why, firsts, thens, per node)
    edges: list[tuple[str, list[str], list[str], bool]] = []
    for r in cib.resources:
        inner = r.child if isinstance(r, Clone) else r
        if isinstance(inner, Group):
            members[inner.id] = [c.id for c in inner.children]
            if parse_bool(flatten(inner.meta).get("ordered"), True):
                for before, after in pairwise(inner.children):
                    edges.append((f"group {inner.id}", [before.id], [after.id], inner is not r))
        if isinstance(r, Clone):
            members[r.id] = members[inner.id]
    clone_ids = {r.id for r in cib.resources if isinstance(r, Clone)}
    clone_min = {
        r.id for r in cib.resources if isinstance(r, Clone) and flatten(r.meta).get("clone-min")
    }
    for o in orderings(cib):
        if o.mandatory and o.symmetrical and o.first_action == "start" == o.then_action:
            if o.any_of is not None or o.first in clone_min:
                continue  # require-all="false" or clone-min: the instances that stay suffice
            # what follows a clone follows the instance on its own node
            per_node = o.first in clone_ids
            edges.append(
                (f"order {o.id}", members.get(o.first, []), members.get(o.then, []), per_node)
            )
    added: list[Action] = []
    # a migration keeps the resource available throughout: nothing after it restarts
    migrating = {a.rsc for a in actions if a.task == "migrate_to"}
    touched = {
        ((a.rsc or "").partition(":")[0], a.node)
        for a in actions
        if a.task in ("stop", "start") and a.rsc not in migrating
    }
    changed = True
    while changed:
        changed = False
        for why, firsts, thens, per_node in edges:
            causes = {(f, node) for f, node in touched if f in firsts}
            if not causes:
                continue
            cause = sorted(causes)[0][0]
            for then in thens:
                if then in migrating or then not in primitives:
                    continue
                running = [e for e in state.of(then) if e.role.active and e.node not in fenced]
                for entry in running:
                    if (then, entry.node) in touched:
                        continue
                    if per_node and not any(node == entry.node for _, node in causes):
                        continue
                    touched.add((then, entry.node))
                    changed = True
                    added += _restart_instance(primitives[then], entry, placement, cause, why)
    return added


def _restart_instance(
    primitive: Primitive, entry: ResourceState, placement: Placement, cause: str, why: str
) -> list[Action]:
    """Stop one running resource (or clone instance) and start it again where it stays."""
    rsc, node = primitive.id, entry.node
    name = rsc if rsc in placement.final else entry.id  # a unique clone's instance: rsc:N
    out: list[Action] = []
    stopping = f"{name} must stop before {cause} stops or starts ({why})"
    if entry.role == "Promoted":
        out.append(Action(node, "demote", name, 0, stopping))
    out.append(Action(node, "stop", name, 0, stopping))
    if node not in placement.final.get(name, ()):
        return out
    again = f"{name} starts again after {cause} ({why})"
    out.append(Action(node, "start", name, 0, again))
    role = placement.roles.get(name, {}).get(node, "Started")
    if role == "Promoted":
        out.append(Action(node, "promote", name, 0, again))
    out += [Action(node, "monitor", name, i, again) for i in _role_monitors(primitive, role)]
    return out


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
    # a start still in progress (a new DC learnt it pending) is ordered again, as Pacemaker
    # does: a start is idempotent, and what must follow it waits for it
    pending = {e.node for e in entries if e.pending == "start"}
    final = tuple(placement.final.get(rsc, ()))
    out: list[Action] = []
    stops = [n for n in current if (n not in final or n in failed) and n not in fenced]
    starts = [n for n in final if n not in current or n in failed or n in pending]
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


def _probes(
    name: str,
    rsc: str,
    entries: tuple[ResourceState, ...],
    probe_nodes: list[str],
    histories: Mapping[str, set[str]],
    never: set[tuple[str, str]],
    exclusive: Mapping[str, set[str]],
) -> list[Action]:
    """A probe of `name` (a primitive, or a globally-unique clone's instance of primitive
    `rsc`) on every node where its state is unknown: no history there, unless discovery is
    off for that node."""
    out: list[Action] = []
    for node in probe_nodes:
        here = [e for e in entries if e.node == node]
        # a probe still in flight has not told anything yet
        if any(e.pending != "monitor" or e.role.active for e in here):
            continue
        if not here and name in histories.get(node, set()):
            continue
        if (rsc, node) in never or (rsc in exclusive and node not in exclusive[rsc]):
            continue
        out.append(Action(node, "monitor", name, 0, f"state of {name} on {node} unknown"))
    return out


def _clone_members(cib: Cib) -> dict[str, Clone]:
    """Primitive id -> the clone it is an instance of (directly or in a cloned group)."""
    out: dict[str, Clone] = {}
    for resource in cib.resources:
        if isinstance(resource, Clone):
            inner = resource.child.children if isinstance(resource.child, Group) else ()
            for primitive in inner or (resource.child,):
                out[primitive.id] = resource
    return out


def _instance_keys(rsc: str, placement: Placement, state: ClusterState) -> list[str]:
    """The instances of a globally-unique clone's primitive (``rsc:N``, by number), as the
    placement and the history name them; empty for an anonymous clone, whose instances the
    placement gathers under ``rsc``."""
    if rsc in placement.final:
        return []
    prefix = f"{rsc}:"
    keys = {k for k in placement.assigned if k.startswith(prefix)}
    keys |= {e.id for e in state.of(rsc) if e.id.startswith(prefix)}
    return sorted(keys, key=lambda k: (len(k), k))


def _clone_instances(
    primitive: Primitive,
    state: ClusterState,
    placement: Placement,
    probe_nodes: list[str],
    histories: Mapping[str, set[str]],
    never: set[tuple[str, str]],
    exclusive: Mapping[str, set[str]],
    fenced: set[str],
    recurring: set[tuple[str, str, int]],
    op_names: Mapping[tuple[str, str], str],
) -> list[Action]:
    """Probes, stops, starts, promotions, demotions and monitors of one cloned primitive."""
    rsc = primitive.id
    unique = _instance_keys(rsc, placement, state)
    names = unique or [rsc]
    out: list[Action] = []
    for name in names:
        entries = tuple(e for e in state.of(rsc) if not unique or e.id == name)
        out += _probes(name, rsc, entries, probe_nodes, histories, never, exclusive)
        if rsc in placement.unmanaged or name in placement.unmanaged:
            continue
        final_roles = dict(placement.roles.get(name, {}))
        for node in placement.final.get(name, ()):
            final_roles.setdefault(node, "Started")
        out += _instance_moves(primitive, name, entries, final_roles, fenced, recurring, op_names)
    return out


# the events clone notifications announce, in the order a transition runs them
_NOTIFIED = ("demote", "stop", "start", "promote")


def _clone_notifications(
    cib: Cib,
    clones: Mapping[str, Clone],
    state: ClusterState,
    placement: Placement,
    fenced: set[str],
    actions: list[Action],
) -> list[Action]:
    """The notifications of every clone with ``notify=true`` (see _notifications)."""
    by_clone: dict[str, list[tuple[list[Action], set[tuple[str, str]]]]] = {}
    for rsc, clone in clones.items():
        meta = placement.meta.get(rsc, {})
        if not parse_bool(meta.get("notify", flatten(clone.meta).get("notify"))):
            continue
        unique = bool(_instance_keys(rsc, placement, state))
        running = {(e.id if unique else rsc, e.node) for e in state.of(rsc) if e.role.active}
        # an instance on a node being fenced stops with it: an event, but nobody to tell there
        implied = [
            Action(node, "stop", name, 0, "fenced") for name, node in running if node in fenced
        ]
        mine = [a for a in actions if (a.rsc or "").partition(":")[0] == rsc]
        active = {(name, node) for name, node in running if node not in fenced}
        by_clone.setdefault(clone.id, []).append((mine + implied, active))
    out: list[Action] = []
    for members in by_clone.values():
        out += _notifications(members)
    return out


def _notifications(members: list[tuple[list[Action], set[tuple[str, str]]]]) -> list[Action]:
    """A clone with ``notify=true`` tells its instances before and after each kind of event
    in the transition (the events run in the order demote, stop, start, promote; an event of
    any member of a cloned group is the clone's): ``pre_notify_EVENT`` goes to every member
    instance active before the event (on a node that is not being fenced),
    ``post_notify_EVENT`` to every one active after it. `members`: each member primitive's
    actions and its (instance, node) pairs active now."""
    events = [t for t in _NOTIFIED if any(a.task == t for acts, _ in members for a in acts)]
    out: list[Action] = []
    for actions, active in members:
        done = {t: {(a.rsc or "", a.node) for a in actions if a.task == t} for t in _NOTIFIED}
        active = set(active)
        for task in events:
            before = set(active)
            if task == "stop":
                active -= done["stop"]
            elif task == "start":
                active |= done["start"]
            for phase, targets in (("pre", before), ("post", active)):
                for name, node in sorted(targets):
                    why = f"{name} on {node} is told of the {task} of its clone's instances"
                    out.append(Action(node, f"{phase}_notify_{task}", name, 0, why))
    return out


def _instance_moves(
    primitive: Primitive,
    name: str,
    entries: tuple[ResourceState, ...],
    final: Mapping[str, str],
    fenced: set[str],
    recurring: set[tuple[str, str, int]],
    op_names: Mapping[tuple[str, str], str],
) -> list[Action]:
    """From the roles the instances have now (``entries``) to the roles the placement gives
    them (``final``: node -> Started, Promoted or Unpromoted)."""
    current = {e.node: str(e.role) for e in entries if e.role.active}
    failed = {e.node for e in entries if e.failed}
    pending = {e.node for e in entries if e.pending == "start"}  # see _moves
    for e in entries:
        # a demote that failed is not tried again: the instance is stopped as it is
        if e.failed and op_names.get((e.node, e.failed_op or "")) == "demote":
            current[e.node] = "Unpromoted"
    out: list[Action] = []
    for node, role in sorted(current.items()):
        if node in fenced:
            continue  # the fencing stops it
        stays = node in final and node not in failed
        if role == "Promoted" and (not stays or final[node] != "Promoted"):
            why = f"{name} is no longer promoted on {node}"
            out.append(Action(node, "demote", name, 0, why))
        if not stays:
            why = f"{name} failed on {node}" if node in failed else f"{name} stops on {node}"
            out.append(Action(node, "stop", name, 0, why))
    for node, role in sorted(final.items()):
        starts = node not in current or node in failed or node in pending
        if starts:
            why = f"{name} recovers on {node}" if node in failed else f"{name} placed on {node}"
            out.append(Action(node, "start", name, 0, why))
        if role == "Promoted" and (starts or current.get(node) != "Promoted"):
            out.append(Action(node, "promote", name, 0, f"{name} is promoted on {node}"))
        changed = starts or current.get(node) != role
        for interval in _role_monitors(primitive, role):
            if changed or (node, name, interval) not in recurring:
                why = f"{name} runs on {node} as {role}: monitor it"
                out.append(Action(node, "monitor", name, interval, why))
        if changed and not starts:
            # the monitors of the role it leaves stop
            old = current.get(node, "Started")
            kept = set(_role_monitors(primitive, role))
            for interval in _role_monitors(primitive, old):
                if interval not in kept and (node, name, interval) in recurring:
                    why = f"{name} leaves role {old} on {node}"
                    out.append(Cancel(node, "monitor", name, interval, why))
    return out


def _role_monitors(primitive: Primitive, role: str) -> list[int]:
    """The recurring monitors an instance in `role` runs. A plain instance (Started) runs
    those for role Started and those without a role; a promotable one runs those for its
    role (Promoted, or Unpromoted with the ones without a role), never the Started ones."""
    if role == "Started":
        return _monitor_intervals(primitive)
    aliases = {"Promoted": ("Promoted", "Master"), "Unpromoted": ("Unpromoted", "Slave")}
    out: list[int] = []
    for alias in aliases.get(role, (role,)):
        out += [i for i in _monitor_intervals(primitive, alias) if i not in out]
    if role == "Unpromoted":
        out += [i for i in _monitor_intervals(primitive, None) if i not in out]
    return out


def _unmanaged_monitors(
    primitive: Primitive,
    meta: Mapping[str, str],
    entries: tuple[ResourceState, ...],
    state: ClusterState,
    fenced: set[str],
    recurring: set[tuple[str, str, int]],
) -> list[Action]:
    """An unmanaged resource is neither started nor stopped, but still watched: its
    recurring monitors run where it is active, as Pacemaker schedules them, unless it is in
    maintenance (the resource's, its node's or the cluster's), which suspends monitoring."""
    if parse_bool(meta.get("maintenance")) or state.maintenance_mode:
        return []
    rsc = primitive.id
    out: list[Action] = []
    for e in entries:
        node = state.nodes.get(e.node)
        if not e.role.active or e.failed or e.node in fenced or node is None:
            continue
        if node.maintenance or not node.online:
            continue
        for interval in _monitor_intervals(primitive):
            if (e.node, rsc, interval) not in recurring:
                why = f"{rsc} is unmanaged but still watched on {e.node}"
                out.append(Action(e.node, "monitor", rsc, interval, why))
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


def _monitor_intervals(primitive: Primitive, role: str | None = "Started") -> list[int]:
    """The enabled recurring monitors of a role (Started: also those without a role; None:
    only those without a role), in milliseconds. Two monitors with the same interval
    (whatever their roles) are a configuration error that Pacemaker resolves by scheduling
    neither, and so does this."""
    seen: list[int] = []
    for op in primitive.ops:
        if op.name == "monitor":
            try:
                seen.append(op.interval_ms)
            except ValueError:
                continue
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
        if interval > 0 and interval not in out and seen.count(interval) == 1:
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
