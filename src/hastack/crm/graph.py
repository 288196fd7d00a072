"""The scheduler's fourth stage: the transition graph, the actions with their ordering edges.

:func:`hastack.crm.transition.plan` says *what* the cluster must do; :func:`order` says *in
which order*, as Pacemaker 2.1.5's scheduler orders it, so that an executor may run in
parallel everything the edges allow. An edge ``A -> B`` means B may begin only once A has
completed. The orderings follow "Pacemaker Explained" (ordering constraints, groups,
migration, fencing) and the behaviour of crm_simulate 2.1.5 on its regression corpus:

* a resource's **stops come before its starts**, and its **probes before its starts** (and
  before its migration and agent reload): it must be known stopped everywhere before it starts;
* **recurring monitors** follow the resource's start (or its reload); a ``role="Stopped"``
  monitor follows its probe and the stop on that node; an agent change's history **delete**
  follows the stop there and precedes the start there;
* **migration**: ``migrate_to`` on the source, then ``migrate_from`` on the target, then the
  stop on the source (the start on the target is implied by ``migrate_from``);
* **groups**: members start in order and stop in reverse order; all of a group's stops come
  before any of its starts;
* **rsc_order** constraints: ``first``'s action before ``then``'s (mandatory or optional,
  resource sets expanded by :func:`hastack.crm.constraints.orderings`); a symmetrical one also
  orders ``then``'s inverse action (stop for start, demote for promote) before ``first``'s;
  a ``require-all="false"`` set is satisfied by any one of its members; a group as ``first``
  is waited for as a whole (all its members started, or stopped);
* **fencing**: fencing a node comes before every start (and promote) of a resource that
  requires fencing, and before the stops it implies on that node (those "stops" are done by
  the fencing itself); a fencing device is started after fencing only where its state on the
  fenced node is unknown; without ``concurrent-fencing`` the fencings run one at a time, and
  the DC's own fencing (or shutdown) comes last;
* **node shutdown** follows every stop on that node;
* **utilization** (``placement-strategy`` other than default): the stops on a node before the
  starts (and incoming migrations) there, so capacity is freed before it is used;
* **probes and restarts** (Pacemaker's probe orderings): a probe precedes the stops that an
  ordering places after its resource's stop, and, when its resource starts, the stops of what
  must restart after that start (through mandatory orderings and group members);
* **anti-colocation** (-INFINITY): where one resource leaves a node and the other arrives,
  the leaving comes first; ``kind="Serialize"`` orders the starts of a set one after another;
* **clones**: all of a clone's demotes, then stops, then starts, then promotes, each kind
  between the clone's pseudo-actions, an instance's monitors after its own start or promote;
  ``interleave`` adds the instance-to-instance orderings on each node; ``notify=true`` puts
  the pre- and post-notifications of each kind before and after it (and monitors after the
  post-notifications); a cloned group's members in order within each instance.

Pacemaker routes many of these through pseudo-actions (``grp_start_0``, ``grp_running_0``, the
stops implied by fencing, ``load_stopped_NODE``...). They are built here too, but the
:class:`Graph` handed out holds only the real actions, each edge through pseudo-actions
replaced by direct edges between the real actions on either side: that keeps every
precedence and leaves an executor nothing to run that does nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import pairwise

from hastack.crm.cib.model import (
    INFINITY,
    Cib,
    Clone,
    Group,
    RscOrder,
    flatten,
    parse_bool,
)
from hastack.crm.constraints import Ordering, colocations, locations, orderings
from hastack.crm.placement import Placement
from hastack.crm.state import ClusterState
from hastack.crm.transition import Action, Cancel, Transition

__all__ = ["Graph", "GraphCycle", "order"]

# The inverse of each action, for a symmetrical ordering's reverse direction.
_INVERSE = {"start": "stop", "stop": "start", "promote": "demote", "demote": "promote"}
# What a group (a collective resource) as an ordering's ``first`` is waited for with: its
# completion pseudo-action, as Pacemaker converts it.
_DONE = {"start": "running", "stop": "stopped", "promote": "promoted", "demote": "demoted"}


class GraphCycle(Exception):
    """The orderings form a cycle: no order can satisfy them (a scheduler bug to report)."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("ordering cycle: " + " -> ".join(cycle))


@dataclass(frozen=True)
class Graph:
    """The transition's real actions and the edges between them, keyed by ``Action.name``:
    ``(a, b)`` in ``edges`` means ``b`` starts only once ``a`` is done. Acyclic."""

    actions: tuple[Action, ...]
    edges: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        names = {a.name for a in self.actions}
        if len(names) != len(self.actions):
            raise ValueError("two actions of a graph have the same name")
        for before, after in self.edges:
            for name in (before, after):
                if name not in names:
                    raise ValueError(f"edge {before!r} -> {after!r}: no action {name!r}")
        _topological(sorted(names), self.edges)

    @cached_property
    def predecessors(self) -> Mapping[str, frozenset[str]]:
        """Action name -> the names of the actions it directly waits for."""
        out: dict[str, set[str]] = {a.name: set() for a in self.actions}
        for before, after in self.edges:
            out[after].add(before)
        return {name: frozenset(preds) for name, preds in out.items()}

    def ready(self, done: Set[str]) -> list[Action]:
        """The actions not done yet whose predecessors are all done (in ``actions`` order):
        what an executor may start now, all at once."""
        preds = self.predecessors
        return [a for a in self.actions if a.name not in done and preds[a.name] <= done]

    def precedes(self) -> set[tuple[str, str]]:
        """Every pair ``(a, b)`` where ``a`` must complete before ``b`` (the transitive
        closure of the edges)."""
        return _closure([a.name for a in self.actions], self.edges)

    def to_dot(self) -> str:
        """The graph in crm_simulate's dot style (``-D``): every action a bold green node,
        every edge bold, sorted as crm_simulate sorts its lines."""
        lines: list[str] = []
        succs: dict[str, list[str]] = {a.name: [] for a in self.actions}
        for before, after in self.edges:
            succs[before].append(after)
        for name in sorted(succs):
            for after in sorted(succs[name]):
                lines.append(f'"{name}" -> "{after}" [ style = bold]')
            lines.append(f'"{name}" [ style=bold color="green" fontcolor="black"]')
        return ' digraph "g" {\n' + "".join(line + "\n" for line in lines) + "}\n"


def _topological(names: list[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """The names in an order where every edge goes forward (Kahn's algorithm), or
    :class:`GraphCycle` naming one cycle (a walk inside what Kahn's algorithm left)."""
    succs: dict[str, list[str]] = {n: [] for n in names}
    indegree = dict.fromkeys(names, 0)
    for before, after in edges:
        succs[before].append(after)
        indegree[after] += 1
    ready = [n for n in names if indegree[n] == 0]
    out: list[str] = []
    while ready:
        n = ready.pop()
        out.append(n)
        for s in succs[n]:
            indegree[s] -= 1
            if indegree[s] == 0:
                ready.append(s)
    if len(out) == len(names):
        return out
    left = {n for n in names if indegree[n] > 0}
    walk = [min(left)]
    while True:
        # every node left has a predecessor left, so walking backwards never ends: it
        # closes a cycle
        nxt = min(b for b, a in edges if a == walk[-1] and b in left)
        if nxt in walk:
            cycle = [*walk[walk.index(nxt) :], nxt]
            raise GraphCycle(cycle[::-1])
        walk.append(nxt)


def _closure(names: list[str], edges: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """All ``(a, b)`` with a path from a to b, by reachability bit sets in reverse
    topological order."""
    index = {n: i for i, n in enumerate(names)}
    succs: dict[int, list[int]] = {i: [] for i in range(len(names))}
    indegree = [0] * len(names)
    for before, after in edges:
        succs[index[before]].append(index[after])
        indegree[index[after]] += 1
    topo: list[int] = []
    ready = [i for i in range(len(names)) if indegree[i] == 0]
    while ready:
        i = ready.pop()
        topo.append(i)
        for s in succs[i]:
            indegree[s] -= 1
            if indegree[s] == 0:
                ready.append(s)
    reach = [0] * len(names)
    for i in reversed(topo):
        bits = 0
        for s in succs[i]:
            bits |= reach[s] | (1 << s)
        reach[i] = bits
    out: set[tuple[str, str]] = set()
    for i, bits in enumerate(reach):
        j = 0
        while bits:
            if bits & 1:
                out.add((names[i], names[j]))
            bits >>= 1
            j += 1
    return out


def _natural(name: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key comparing the digit runs of a name as numbers, the rest case-insensitively."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.lower())
        for part in re.split(r"(\d+)", name)
        if part
    )


@dataclass
class _Node:
    """One action of the graph under construction: real (from the transition) or a
    pseudo-action (``node`` None for a resource-wide one)."""

    name: str
    rsc: str | None
    task: str  # start, stop, probe, monitor, cancel, running, stopped, stonith, ...
    node: str | None
    action: Action | None = None

    @property
    def pseudo(self) -> bool:
        return self.action is None


@dataclass(frozen=True)
class _Order:
    """A resource-level ordering (Pacemaker's ordering constraint, explicit or implied):
    every ``first`` action of ``first_rsc`` before every ``then`` action of ``then_rsc``.
    ``implies_then``: the first happening forces the then (mandatory), which carries the
    probe-before-restart orderings. ``first_non_migratable``: ignored when ``first_rsc``
    migrates. ``same_node``: only between actions on the same node (an anti-colocation's).
    ``user``: from a constraint (Pacemaker applies those before its internal orderings).
    ``creates_first``: Pacemaker creates the first action (optional) where it is missing; not
    for the orderings it makes between actions that exist (a monitor after its start)."""

    first_rsc: str
    first: str
    then_rsc: str
    then: str
    implies_then: bool = False
    first_non_migratable: bool = False
    same_node: bool = False
    user: bool = False
    creates_first: bool = True


class _Builder:
    """The graph under construction: the transition's actions and Pacemaker's pseudo-actions
    (``nodes``), the resource-level orderings (``orders``) and the action edges they make."""

    def __init__(
        self, cib: Cib, state: ClusterState, placement: Placement, transition: Transition
    ) -> None:
        self.cib = cib
        self.state = state
        self.placement = placement
        self.nodes: dict[str, _Node] = {}
        self.by_key: dict[tuple[str, str], list[str]] = {}
        self.edges: set[tuple[str, str]] = set()
        self.orders: list[_Order] = []
        self.primitives = {p.id: cib.expand_template(p) for p in cib.all_primitives()}
        self.groups = {g.id: g for g in cib.resources if isinstance(g, Group)}
        self.parent = {c.id: g.id for g in self.groups.values() for c in g.children}
        self.clones = {c.id: c for c in cib.resources if isinstance(c, Clone)}
        # a clone's child (primitive or group), and a cloned group's members -> the clone
        self.clone_of: dict[str, str] = {}
        for c in self.clones.values():
            self.clone_of[c.child.id] = c.id
            if isinstance(c.child, Group):
                # (a cloned group's members are ordered per node by clone_orders, not as a
                # group: Pacemaker's pseudo-actions for it are per instance)
                for member in c.child.children:
                    self.clone_of[member.id] = c.id
        self.by_task: dict[str, list[str]] = {}
        # primitive -> the nodes it is active on now (an index: state.of() scans everything)
        self.active: dict[str, set[str]] = {}
        for entry in state.resources:
            if entry.role.active:
                self.active.setdefault(entry.primitive, set()).add(entry.node)
        for action in transition.actions:
            self._add_real(action)

    # -- nodes ---------------------------------------------------------------------------

    def _add(self, node: _Node) -> None:
        if node.name in self.nodes:
            return
        self.nodes[node.name] = node
        self.by_task.setdefault(node.task, []).append(node.name)
        if node.rsc is not None:
            self.by_key.setdefault((node.rsc, node.task), []).append(node.name)

    def _add_real(self, action: Action) -> None:
        task = action.task
        if isinstance(action, Cancel):
            task = "cancel"
        elif task == "monitor" and action.interval_ms == 0:
            task = "probe"
        elif task == "monitor" and self._stopped_role(action.rsc, action.interval_ms):
            task = "stopped_monitor"
        self._add(_Node(action.name, action.rsc, task, action.node, action))

    def pseudo(self, rsc: str, task: str, node: str | None = None) -> str:
        name = f"{rsc}_{task}_0" + (f" {node}" if node else "")
        self._add(_Node(name, rsc, task, node))
        return name

    def of(self, rsc: str, task: str) -> list[str]:
        return self.by_key.get((rsc, task), [])

    def _stopped_role(self, rsc: str | None, interval_ms: int) -> bool:
        """Whether a recurring monitor is one of the ``role="Stopped"`` ones."""
        primitive = self.primitives.get((rsc or "").partition(":")[0])
        if primitive is None:
            return False
        for op in primitive.ops:
            try:
                if op.name == "monitor" and op.role == "Stopped" and op.interval_ms == interval_ms:
                    return True
            except ValueError:
                continue
        return False

    def edge(self, before: str, after: str, same_node: bool = False) -> None:
        """Order ``before`` first (``same_node``: only when both are on one node, or either
        on none)."""
        if before == after:
            return
        if same_node:
            a, b = self.nodes[before].node, self.nodes[after].node
            if a is not None and b is not None and a != b:
                return
        self.edges.add((before, after))

    def order(self, o: _Order, record: bool = True) -> None:
        """Add an ordering's action edges, and record it as a resource-level ordering unless
        Pacemaker has no such ordering (only instance-to-instance edges it derives)."""
        if record:
            self.orders.append(o)
        if o.first_non_migratable and self.of(o.first_rsc, "migrate_to"):
            return
        for before in self.of(o.first_rsc, o.first):
            for after in self.of(o.then_rsc, o.then):
                self.edge(before, after, o.same_node)

    # -- pseudo-actions --------------------------------------------------------------------

    def add_pseudo_actions(self, fenced: list[str]) -> None:
        """The pseudo-actions Pacemaker orders through: the stops a fencing implies, the start
        a migration implies, and each group's start/running/stop/stopped."""
        for node in fenced:
            for entry in self.state.resources:
                if entry.node != node or not entry.role.active:
                    continue
                if entry.primitive in self.placement.unmanaged:
                    continue
                self.pseudo(self._instance(entry.id), "stop", node)
        for name in list(self.of_task("migrate_from")):
            n = self.nodes[name]
            assert n.rsc is not None and n.node is not None
            self.pseudo(n.rsc, "start", n.node)
        for rsc in self.primitives:
            if self.meta(rsc).get("multiple-active") != "stop_unexpected":
                continue
            # active on several nodes, it stays on one and stops elsewhere: it is taken as
            # started where it stays (its monitor there follows that start)
            active = self.active.get(rsc, set())
            if len(active) > 1 and self.of(rsc, "stop"):
                for node in self.placement.final.get(rsc, ()):
                    if node in active and not self.of(rsc, "start"):
                        self.pseudo(rsc, "start", node)
        for g in self.groups.values():
            members = [c.id for c in g.children]
            if any(self.of(m, "start") for m in members):
                self.pseudo(g.id, "start")
                # "running" can only happen once every member runs: with a member that
                # cannot start, Pacemaker leaves it out of the graph, and what waits for the
                # whole group (an optional ordering's then) does not wait
                if all(self.placement.final.get(m) for m in members):
                    self.pseudo(g.id, "running")
            if any(self.of(m, "stop") for m in members):
                self.pseudo(g.id, "stop")
                self.pseudo(g.id, "stopped")

    def _instance(self, rsc: str) -> str:
        """A clone instance as the transition names it: an anonymous clone's by its
        primitive's id (its instances are interchangeable), a globally-unique one's ``rsc:N``."""
        base = rsc.partition(":")[0]
        clone = self.clones.get(self.clone_of.get(base, ""))
        if clone is None or self._unique(clone.id):
            return rsc
        return base

    def _unique(self, clone: str) -> bool:
        try:
            return parse_bool(flatten(self.clones[clone].meta).get("globally-unique"))
        except ValueError:
            return False

    def _clone_flag(self, clone: str, name: str) -> bool:
        try:
            return parse_bool(flatten(self.clones[clone].meta).get(name))
        except ValueError:
            return False

    def _members(self, clone: str) -> list[str]:
        """The resource keys of a clone's instances' actions (each primitive, or each
        ``rsc:N`` of a globally-unique clone), in document order."""
        child = self.clones[clone].child
        bases = [m.id for m in child.children] if isinstance(child, Group) else [child.id]
        out: list[str] = []
        for base in bases:
            out.append(base)
            out += sorted(
                {n.rsc for n in self.nodes.values() if n.rsc and n.rsc.startswith(base + ":")}
            )
        return out

    def clone_pseudo_actions(self) -> None:
        """Each clone's pseudo-actions, for the kinds of instance actions it has: start and
        running, stop and stopped, promote and promoted, demote and demoted; and with
        ``notify=true`` the notification pseudo-actions around each kind."""
        for clone in self.clones:
            members = self._members(clone)
            for task, done in _DONE.items():
                if not any(self.of(m, task) for m in members):
                    continue
                self.pseudo(clone, task)
                self.pseudo(clone, done)
                if any(
                    self.of(m, f"pre_notify_{task}") or self.of(m, f"post_notify_{task}")
                    for m in members
                ) or self._clone_flag(clone, "notify"):
                    for name in (
                        f"pre_notify_{task}",
                        f"confirmed-pre_notify_{task}",
                        f"post_notify_{done}",
                        f"confirmed-post_notify_{done}",
                    ):
                        self.pseudo(clone, name)

    def clone_orders(self) -> None:
        """A clone's instances start (stop, promote, demote) between its pseudo-actions; all
        its demotes come before its stops, its stops before its starts, its starts before its
        promotes; notifications before and after each kind; a cloned group's members in
        order on each node."""
        for clone in self.clones:
            members = self._members(clone)
            promotable = self.clones[clone].promotable
            for task, done in _DONE.items():
                for m in members:
                    self.order(_Order(clone, task, m, task))
                    self.order(_Order(m, task, clone, done))
                self.orders.append(_Order(clone, task, clone, done, implies_then=True))
            self.order(_Order(clone, "stopped", clone, "start"))
            if promotable:
                for first, then in (
                    ("demoted", "stop"),
                    ("demoted", "start"),
                    ("demoted", "promote"),
                    ("stopped", "promote"),
                    ("running", "promote"),
                ):
                    self.order(_Order(clone, first, clone, then))
            for m in members:
                # an instance's monitor follows what it did on its own node
                for task in ("start", "promote", "demote"):
                    self.order(_Order(m, task, m, "monitor", same_node=True, creates_first=False))
                for task in _DONE:
                    self.order(
                        _Order(m, f"pre_notify_{task}", clone, f"confirmed-pre_notify_{task}")
                    )
                    self.order(
                        _Order(
                            m, f"post_notify_{task}", clone, f"confirmed-post_notify_{_DONE[task]}"
                        )
                    )
            for task, done in _DONE.items():
                pre, post = f"pre_notify_{task}", f"post_notify_{done}"
                self.order(_Order(clone, pre, clone, f"confirmed-{pre}"))
                for m in members:
                    self.order(_Order(clone, pre, m, pre))
                    self.order(_Order(clone, post, m, f"post_notify_{task}"))
                self.order(_Order(clone, f"confirmed-{pre}", clone, task))
                self.order(_Order(clone, f"confirmed-{pre}", clone, post))
                # what waits for the clone's completion waits for these notifications too
                self.order(_Order(clone, done, clone, post, implies_then=True))
                self.order(_Order(clone, post, clone, f"confirmed-{post}", implies_then=True))
            # one kind's notifications are over before the next kind's begin
            for first, then in (
                ("demoted", "stop"),
                ("demoted", "start"),
                ("demoted", "promote"),
                ("stopped", "start"),
                ("stopped", "promote"),
                ("running", "promote"),
            ):
                self.order(
                    _Order(clone, f"confirmed-post_notify_{first}", clone, f"pre_notify_{then}")
                )
            child = self.clones[clone].child
            if isinstance(child, Group) and self._ordered(child):
                # each instance of the group: its members in order (a globally-unique
                # clone's instance N is the members' ``rsc:N``)
                suffixes = {""} | {m[m.index(":") :] for m in members if ":" in m}
                for suffix in sorted(suffixes):
                    chain = [c.id + suffix for c in child.children]
                    for previous, m in pairwise(chain):
                        self.order(_Order(previous, "start", m, "start", same_node=True))
                        self.order(_Order(m, "stop", previous, "stop", same_node=True))
                        if promotable:
                            self.order(_Order(previous, "promote", m, "promote", same_node=True))
                            self.order(_Order(m, "demote", previous, "demote", same_node=True))

    def of_task(self, task: str) -> list[str]:
        """Every action of one task, by name."""
        return sorted(self.by_task.get(task, []))

    # -- orderings ---------------------------------------------------------------------------

    def meta(self, rsc: str) -> Mapping[str, str]:
        return self.placement.meta.get(rsc, {})

    def migratable(self, rsc: str) -> bool:
        try:
            return parse_bool(self.meta(rsc).get("allow-migrate"))
        except ValueError:
            return False

    def primitive_orders(self) -> None:
        """Each primitive's own orderings: stops before starts, probes before starts,
        migration steps, monitors after the start, history deletes between stop and start."""
        acted_on = {n.rsc for n in self.nodes.values() if n.rsc is not None}
        for rsc in sorted(set(self.primitives) | (acted_on - set(self.groups) - set(self.clones))):
            self.order(_Order(rsc, "stop", rsc, "start", implies_then=True))
            cloned = rsc.partition(":")[0] in self.clone_of
            if cloned:
                # an instance's probe comes before its clone's start (so every instance's)
                clone = self.clone_of[rsc.partition(":")[0]]
                self.order(_Order(rsc, "probe", clone, "start", creates_first=False))
            for first, then, implies in (
                ("probe", "start", False),
                ("probe", "migrate_to", False),
                ("probe", "reload-agent", False),
                ("start", "monitor", True),
                ("reload-agent", "monitor", True),
                ("migrate_to", "migrate_from", True),
                ("migrate_from", "stop", True),
                ("migrate_from", "start", True),
                ("clear_failcount", "stop", False),
            ):
                if cloned and then == "monitor":
                    continue  # per node, in clone_orders
                self.order(_Order(rsc, first, rsc, then, implies, creates_first=False))
        by_node: dict[tuple[str | None, str, str | None], list[str]] = {}
        for n in self.nodes.values():
            if n.rsc is not None:
                by_node.setdefault((n.rsc, n.task, n.node), []).append(n.name)
        for n in sorted(self.nodes.values(), key=lambda n: n.name):
            here = (n.rsc, n.node)
            if n.task == "stopped_monitor":
                for task in ("probe", "stop"):
                    for before in by_node.get((here[0], task, here[1]), []):
                        self.edge(before, n.name)
            elif n.task in ("delete", "cancel"):
                for before in by_node.get((here[0], "stop", here[1]), []):
                    self.edge(before, n.name)
                for after in by_node.get((here[0], "start", here[1]), []):
                    self.edge(n.name, after)
                if n.task == "cancel":
                    # a monitor of the old role ends before the role changes
                    for task in ("promote", "demote"):
                        for after in by_node.get((here[0], task, here[1]), []):
                            self.edge(n.name, after)
            elif n.task.startswith("post_notify_") and n.rsc is not None:
                # an instance's monitors begin once the notifications it was sent are done
                clone = self.clone_of.get(n.rsc.partition(":")[0])
                done = _DONE.get(n.task.removeprefix("post_notify_"))
                if clone is not None and done is not None:
                    for confirmed in self.of(clone, f"confirmed-post_notify_{done}"):
                        for after in by_node.get((here[0], "monitor", here[1]), []):
                            self.edge(confirmed, after)

    def group_orders(self) -> None:
        """A group's members start in order (when ``ordered``, the default) and stop in
        reverse order; the group's pseudo-actions gather them."""
        for g in self.groups.values():
            self.order(_Order(g.id, "stopped", g.id, "start"))
            # Pacemaker also orders the group's start before its running (forcing it), and
            # its stop before its stopped. Their edges are implied here through the members
            # (those pseudo-actions exist only when a member starts or stops), so only the
            # first is recorded, for the probe orderings that follow it.
            self.orders.append(_Order(g.id, "start", g.id, "running", implies_then=True))
            ordered = self._ordered(g)
            previous: str | None = None
            last_active: str | None = None
            for child in g.children:
                m = child.id
                if self._active(m):
                    # a partially active group still stops in sequence, over the gaps
                    gap = previous is not None and not self._active(previous)
                    if ordered and gap and last_active is not None:
                        self.order(_Order(m, "stop", last_active, "stop"))
                    last_active = m
                self.order(_Order(g.id, "start", m, "start"))
                self.order(_Order(m, "start", g.id, "running"))
                self.order(_Order(g.id, "stop", m, "stop"))
                self.order(_Order(m, "stop", g.id, "stopped"))
                if ordered and previous is not None:
                    self.order(_Order(previous, "start", m, "start", implies_then=True))
                    self.order(_Order(m, "stop", previous, "stop"))
                previous = m

    @staticmethod
    def _ordered(group: Group) -> bool:
        """Whether a group's members start one after the other (``ordered``, default true)."""
        try:
            return parse_bool(flatten(group.meta).get("ordered"), True)
        except ValueError:
            return True

    def _active(self, rsc: str) -> bool:
        return bool(self.active.get(rsc))

    def _side(self, rsc: str, action: str, first: bool) -> str:
        """The task an ordering's side names: a group or a clone as ``first`` is waited for
        as a whole (a clone with notifications: until they are confirmed)."""
        if first and rsc in self.clones and action in _DONE:
            done = _DONE[action]
            if self.of(rsc, f"confirmed-post_notify_{done}"):
                return f"confirmed-post_notify_{done}"
            return done
        if first and rsc in self.groups:
            return _DONE.get(action, action)
        return action

    def constraint_orders(self, constraints: list[Ordering]) -> None:
        """The rsc_order constraints, with their symmetrical inverses."""
        for o in constraints:
            first = self._side(o.first, o.first_action, True)
            then = self._side(o.then, o.then_action, False)
            if o.any_of is not None and o.first in self.clones:
                # a clone with require-all="false": one instance is enough; Pacemaker
                # gathers the instances' actions in a pseudo-action
                name = f"clone-one-or-more:{o.any_of}"
                self._add(_Node(name, None, "one-or-more", None))
                for member in self._members(o.first):
                    for before in self.of(member, o.first_action):
                        self.edge(before, name)
                for after in self.of(o.then, then):
                    self.edge(name, after)
            elif o.any_of is not None:
                # require-all="false": any one of the set's members is enough; Pacemaker
                # gathers them in a pseudo-action
                name = f"one-or-more:{o.any_of}"
                self._add(_Node(name, None, "one-or-more", None))
                for before in self.of(o.first, first):
                    self.edge(before, name)
                for after in self.of(o.then, then):
                    self.edge(name, after)
            else:
                # a mandatory symmetrical ordering forces the then to follow the first (so
                # it restarts with it); the legacy restart-type=restart of the then does too
                restart = self.meta(o.then).get("restart-type") == "restart"
                implies = (o.mandatory and o.symmetrical) or restart
                self.order(_Order(o.first, first, o.then, then, implies_then=implies, user=True))
            if self._interleaved(o):
                # interleaved clones: each instance also waits for the other clone's instance
                # on its own node (crm_simulate 2.1.5 keeps the clone-wide ordering as well)
                for a in self._members(o.first):
                    for b in self._members(o.then):
                        self.order(
                            _Order(a, o.first_action, b, o.then_action, same_node=True),
                            record=False,
                        )
                        if (
                            o.symmetrical
                            and o.first_action in _INVERSE
                            and o.then_action in _INVERSE
                        ):
                            self.order(
                                _Order(
                                    b,
                                    _INVERSE[o.then_action],
                                    a,
                                    _INVERSE[o.first_action],
                                    same_node=True,
                                ),
                                record=False,
                            )
            inverse_first = _INVERSE.get(o.then_action)
            inverse_then = _INVERSE.get(o.first_action)
            # (a set's require-all="false" has no inverse; a clone's has)
            set_any = o.any_of is not None and o.first not in self.clones
            if o.symmetrical and inverse_first and inverse_then and not set_any:
                # an optional ordering's inverse does not hold up what a migrating then
                # depends on: its stop on the old node comes after it (crm_simulate leaves
                # that ordering out of the graph)
                migrating_then = self._migratable_primitive(o.then)
                skip = (
                    not o.mandatory and migrating_then and not self._migratable_primitive(o.first)
                )
                self.order(
                    _Order(
                        o.then,
                        self._side(o.then, inverse_first, True),
                        o.first,
                        self._side(o.first, inverse_then, False),
                        first_non_migratable=skip,
                        user=True,
                    )
                )

    def _primitive(self, rsc: str) -> bool:
        """Whether a resource key is a primitive (or a globally-unique clone's ``rsc:N``)."""
        return rsc.partition(":")[0] in self.primitives

    def _migratable_primitive(self, rsc: str) -> bool:
        return rsc in self.primitives and self.migratable(rsc)

    def _interleaved(self, o: Ordering) -> bool:
        return (
            o.first in self.clones
            and o.then in self.clones
            and self._clone_flag(o.then, "interleave")
            and o.any_of is None
        )

    def serialize_orders(self) -> None:
        """``kind="Serialize"`` orderings: never both at once, which crm_simulate's graph
        expresses as the first's start before the then's (never symmetrical)."""
        serial = tuple(
            replace(c, kind="Optional", symmetrical="false")
            for c in self.cib.constraints
            if isinstance(c, RscOrder) and (c.kind or "").lower() == "serialize"
        )
        if not serial:
            return
        pairs = orderings(replace(self.cib, constraints=serial))
        # inside one set, every member is serialized with every later one (not only with
        # the next): rebuild each set's sequence from its consecutive pairs
        set_ids = {s.id for c in serial for s in c.sets if s.id}
        chains: dict[str, list[Ordering]] = {}
        for o in pairs:
            if o.id in set_ids:
                chains.setdefault(o.id, []).append(o)
        for chain in chains.values():
            members = [chain[0].first, *(o.then for o in chain)]
            for i, first in enumerate(members):
                for then in members[i + 1 :]:
                    pairs.append(replace(chain[0], first=first, then=then))
        for o in pairs:
            first = self._side(o.first, o.first_action, True)
            then = self._side(o.then, o.then_action, False)
            self.order(_Order(o.first, first, o.then, then, user=True))

    def anti_colocation_orders(self) -> None:
        """Two resources that must never share a node (a -INFINITY colocation): where one
        leaves a node and the other arrives, the one leaves first."""
        for c in colocations(self.cib):
            if c.score > -INFINITY:
                continue
            self._anti(c.dependent, c.dependent_role, c.primary, c.primary_role)
            self._anti(c.primary, c.primary_role, c.dependent, c.dependent_role)

    def _anti(self, first: str, first_role: str | None, then: str, then_role: str | None) -> None:
        losing = ["demote"] if first_role == "Promoted" else ["stop"]
        if first_role == "Unpromoted":
            losing.append("promote")
        gaining = ["promote"] if then_role == "Promoted" else ["start"]
        if then_role == "Unpromoted":
            gaining.append("demote")
        for a in losing:
            for b in gaining:
                self.order(
                    _Order(first, self._side(first, a, True), then, b, same_node=True, user=True)
                )

    def utilization_orders(self) -> None:
        """With a placement strategy, what stops on a node frees its capacity before anything
        starts there (or migrates there)."""
        strategy = self.cib.cluster_options().get("placement-strategy", "default")
        if strategy.lower() == "default":
            return
        # only resources that use capacity (have utilization attributes) are ordered so
        using = {rsc for rsc, p in self.primitives.items() if flatten(p.utilization)}
        for node in sorted(self.state.nodes):
            load = f"load_stopped_{node} {node}"
            self._add(_Node(load, None, "load_stopped", node))
            for task, before in (("stop", True), ("start", False), ("migrate_from", False)):
                for name in self.of_task(task):
                    n = self.nodes[name]
                    if n.node != node or n.rsc not in using:
                        continue
                    if before:
                        self.edge(name, load)
                    elif task == "start":
                        self.edge(load, name)
                    else:  # migrating to this node: the migration's first step waits
                        for to in self.of(n.rsc, "migrate_to"):
                            self.edge(load, to)

    def migration_orders(self) -> None:
        """Orderings between a migrating resource and another one apply to its migration
        actions too (Pacemaker's migration equivalents)."""
        for o in list(self.orders):
            a, b = o.first_rsc, o.then_rsc
            waits_for_all = o.first in ("running", "confirmed-post_notify_running")
            if o.user and waits_for_all and b in self.primitives and self.migratable(b):
                # a group or clone first: the migration waits for all of it
                if o.then == "start" and a != self.clone_of.get(b) and a != self.parent.get(b):
                    self.order(_Order(a, o.first, b, "migrate_to"))
                continue
            if a == b or a not in self.primitives or b not in self.primitives:
                continue
            first_m, then_m = self.migratable(a), self.migratable(b)
            if not first_m and not then_m:
                continue
            if o.first == "start" and o.then == "start":
                if first_m and then_m:
                    self.order(_Order(a, "migrate_from", b, "migrate_to"))
                if then_m:
                    self.order(_Order(a, "start", b, "migrate_to", first_non_migratable=first_m))
            elif then_m and o.first == "stop" and o.then == "stop":
                self.order(_Order(a, "stop", b, "migrate_to", first_non_migratable=first_m))

    def requires(self, rsc: str) -> str:
        """What a resource's start needs (the ``requires`` meta-attribute or its default)."""
        value = self.meta(rsc).get("requires")
        if value:
            return value.lower()
        primitive = self.primitives.get(rsc)
        if primitive is not None and primitive.cls == "stonith":
            return "quorum"
        return "fencing" if self.state.stonith_enabled else "quorum"

    def fencing_orders(self, fenced: list[str]) -> None:
        """Fencing before what it makes safe: the starts and promotes of resources that require
        fencing (anywhere), and the stops it implies on the fenced node; fencings one at a time
        unless ``concurrent-fencing``, the DC's last."""
        known: dict[str, set[str]] = {}
        banned: set[tuple[str | None, str | None]] = set()
        if fenced:
            for node_state in self.cib.status:
                if node_state.uname:
                    known[node_state.uname] = {r.id for r in node_state.lrm_resources}
            banned = {(loc.rsc, loc.node) for loc in locations(self.cib) if loc.score <= -INFINITY}
        for node in fenced:
            fence = f"stonith 'reboot' {node}"
            for rsc in self.primitives:
                needs = self.requires(rsc)
                if needs in ("fencing", "unfencing"):
                    for task in ("start", "promote"):
                        for after in self.of(rsc, task):
                            self.edge(fence, after)
                elif needs == "quorum" and rsc not in known.get(node, set()):
                    # its state on the node being fenced is unknown: it may be active there
                    # (unless it may never run there)
                    for after in self.of(rsc, "start") if (rsc, node) not in banned else []:
                        self.edge(fence, after)
            for name in self.of_task("stop"):
                n = self.nodes[name]
                if not n.pseudo or n.node != node or n.rsc is None:
                    continue
                if self.requires(n.rsc.partition(":")[0]) not in ("fencing", "unfencing"):
                    continue
                self.edge(fence, name)
                base = n.rsc.partition(":")[0]
                top = self.clone_of.get(base) or self.parent.get(n.rsc, n.rsc)
                for parent_stop in self.of(top, "stop")[:1]:
                    self.edge(fence, parent_stop)
        options = self.cib.cluster_options()
        try:
            concurrent = parse_bool(options.get("concurrent-fencing"), False)
        except ValueError:
            concurrent = False
        dc = self._dc()
        others = [n for n in self._node_order() if n in fenced and n != dc]
        if not concurrent:
            for before, after in pairwise(others):
                self.edge(f"stonith 'reboot' {before}", f"stonith 'reboot' {after}")
        dc_down = None
        if dc in fenced:
            dc_down = f"stonith 'reboot' {dc}"
        elif dc is not None and f"do_shutdown {dc}" in self.nodes:
            dc_down = f"do_shutdown {dc}"
            for name in self.of_task("do_shutdown"):
                self.edge(name, dc_down)
        if dc_down is not None and others:
            for before in others if concurrent else others[-1:]:
                self.edge(f"stonith 'reboot' {before}", dc_down)

    def _dc(self) -> str | None:
        uuid = self.cib.extra.get("dc-uuid")
        for node in self.cib.nodes:
            if node.id == uuid:
                return node.uname or node.id
        return None

    def _node_order(self) -> list[str]:
        """The nodes as Pacemaker lists them: by name, numbers compared as numbers
        (``pcmk-5`` before ``pcmk-10``), whatever the CIB's order."""
        return sorted((n.uname or n.id for n in self.cib.nodes), key=_natural)

    def shutdown_orders(self) -> None:
        """A node shuts down once everything on it has stopped."""
        for shutdown in self.of_task("do_shutdown"):
            node = self.nodes[shutdown].node
            for name in self.of_task("stop"):
                stop = self.nodes[name]
                if stop.node == node and not stop.pseudo:
                    self.edge(name, shutdown)

    def probe_orders(self) -> None:
        """Pacemaker's probe orderings. A probe may find its resource active where it should
        not be, which needs a stop first: so the probe of a resource that an ordering stops
        before something comes before that something; and when the resource starts, its probes
        come before the stops of whatever must restart after that start."""
        for o in self.orders:
            if o.first != "stop" or not self._primitive(o.first_rsc):
                continue
            if o.first_non_migratable and self.of(o.first_rsc, "migrate_to"):
                continue
            for probe in self.of(o.first_rsc, "probe"):
                for after in self.of(o.then_rsc, o.then):
                    self.edge(probe, after, o.same_node)
        following: dict[tuple[str, str], list[_Order]] = {}
        linked, created = self._linked()
        for o in linked:
            following.setdefault((o.first_rsc, o.first), []).append(o)
        probed = sorted({self.nodes[p].rsc or "" for p in self.of_task("probe")})
        for rsc in probed:
            probes = self.of(rsc, "probe")
            if probes:
                restarting = self._restarting_after(rsc, following, created)
                for probe in probes:
                    for name in restarting:
                        self.edge(probe, name)

    def _linked(self) -> tuple[list[_Order], set[tuple[str, str]]]:
        """The orderings that link two actions in Pacemaker's model, which has actions that
        never run (an optional start where a resource stays; a start created because an
        ordering starts from it), and the (resource, task) pairs it created so.

        Pacemaker applies the constraints' orderings first, then its internal ones, each
        with the actions existing at that moment: an ordering's first action is created when
        missing (unless it would stop what is stopped), its then action is not."""
        created: set[tuple[str, str]] = set()

        def exists(rsc: str, task: str) -> bool:
            return self._has_action(rsc, task, created)

        linked: list[_Order] = []
        # Pacemaker keeps one link between two actions when both orderings are of a kind (all
        # constraints' are "optional" at least): the first constraint found wins, and a
        # Mandatory after an Optional one between the same actions forces nothing
        between: set[tuple[str, str, str, str]] = set()
        for o in sorted(self.orders, key=lambda o: not o.user):
            pair = (o.first_rsc, o.first, o.then_rsc, o.then)
            if o.user and pair in between:
                continue
            if not exists(o.first_rsc, o.first):
                if not o.creates_first or o.first not in ("start", "promote", "demote"):
                    continue
                created.add((o.first_rsc, o.first))
            if exists(o.then_rsc, o.then):
                linked.append(o)
                if o.user:
                    between.add(pair)
        return linked, created

    def _has_action(self, rsc: str, task: str, created: set[tuple[str, str]]) -> bool:
        """Whether Pacemaker has that action (run or not): one of the transition's, one
        created for an ordering, a group's or clone's pseudo-action (always there), a clone
        instance's start (every instance has one, placed or not), a start where the resource
        is placed (optional where it stays), a stop where it is active."""
        if (rsc, task) in created or self.of(rsc, task):
            return True
        if rsc in self.groups or rsc in self.clones:
            return True
        if task == "start":
            if rsc.partition(":")[0] in self.clone_of:
                return True
            return bool(self.placement.assigned.get(rsc) or self.placement.final.get(rsc))
        return task == "stop" and self._active(rsc)

    def _restarting_after(
        self,
        rsc: str,
        following: Mapping[tuple[str, str], list[_Order]],
        created: set[tuple[str, str]],
    ) -> list[str]:
        """The real stops (and demotes) of what must restart when ``rsc`` starts: reached
        from its start through orderings that force the then (and from a group's action
        into its members', unless ``rsc`` is in that group)."""
        out: list[str] = []
        seen: set[tuple[str, str]] = set()
        stack = [(rsc, task) for task in ("start", "reload-agent")]
        clone = self.clone_of.get(rsc.partition(":")[0])
        if clone is not None:
            stack.append((clone, "start"))  # a clone instance's probe precedes its clone's start
        while stack:
            key = stack.pop()
            if key in seen:
                continue
            seen.add(key)
            other, task = key
            if other != rsc and self._primitive(other) and task in ("start", "promote"):
                if not self._has_action(other, task, created):
                    continue  # nothing is ordered after an action Pacemaker does not have
                undo = "stop" if task == "start" else "demote"
                out += [name for name in self.of(other, undo) if not self.nodes[name].pseudo]
            for o in following.get(key, []):
                into_child = (
                    other in self.groups
                    and self.parent.get(o.then_rsc) == other
                    and self.parent.get(rsc) != other
                ) or (
                    other in self.clones
                    and self.clone_of.get(o.then_rsc.partition(":")[0]) == other
                    and self.clone_of.get(rsc.partition(":")[0]) != other
                )
                if o.implies_then or into_child:
                    stack.append((o.then_rsc, o.then))
        return out

    # -- the result ----------------------------------------------------------------------------

    def graph(self) -> Graph:
        """The real actions, with each path through pseudo-actions made a direct edge."""
        succs: dict[str, set[str]] = {name: set() for name in self.nodes}
        for before, after in self.edges:
            succs[before].add(after)
        # each pseudo-action's real successors, reached through pseudo-actions only; computed
        # successors first (the pseudo-actions in reverse topological order)
        reals: dict[str, set[str]] = {}
        for name in reversed(_topological(sorted(self.nodes), self.edges)):
            if self.nodes[name].pseudo:
                out: set[str] = set()
                for after in succs[name]:
                    if self.nodes[after].pseudo:
                        out |= reals[after]
                    else:
                        out.add(after)
                reals[name] = out
        edges: set[tuple[str, str]] = set()
        for name, node in self.nodes.items():
            if node.pseudo:
                continue
            for after in succs[name]:
                if self.nodes[after].pseudo:
                    edges.update((name, r) for r in reals[after])
                else:
                    edges.add((name, after))
        actions = sorted(
            (n.action for n in self.nodes.values() if n.action is not None), key=lambda a: a.name
        )
        return Graph(tuple(actions), tuple(sorted(edges)))


def order(cib: Cib, state: ClusterState, placement: Placement, transition: Transition) -> Graph:
    """The transition's actions with the ordering edges Pacemaker 2.1.5 puts between them.

    Raises :class:`GraphCycle` if the orderings contradict each other (a bug: Pacemaker's
    orderings of one transition never do)."""
    b = _Builder(cib, state, placement, transition)
    fenced = [a.node for a in transition.actions if a.task == "stonith"]
    b.add_pseudo_actions(fenced)
    b.clone_pseudo_actions()
    b.primitive_orders()
    b.group_orders()
    b.clone_orders()
    b.constraint_orders(orderings(cib))
    b.serialize_orders()
    b.anti_colocation_orders()
    b.migration_orders()
    b.utilization_orders()
    b.fencing_orders(fenced)
    b.shutdown_orders()
    b.probe_orders()
    return b.graph()
