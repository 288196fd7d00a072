"""The scheduler's second stage: where each primitive and group runs after one transition.

:func:`place` takes the CIB, the cluster's current state (:func:`hastack.crm.state.
resource_states`) and ``now``, and assigns every primitive to a node (or to none: stopped) by
Pacemaker's score model, as crm_simulate 2.1.5 does:

1. Every resource starts with a score per node: 0 on every node in a symmetric cluster
   (``symmetric-cluster=false``: only the nodes a location constraint names), plus the node's
   own weight (its ``score`` attribute). Its operation history bans nodes (hard errors, stop
   failures, ``on-fail=migrate``; a fatal error bans all). Then location constraints (plain,
   rules, patterns, sets, tags, templates) and the node-health strategy add theirs (a group's
   location counts for its first member: the others follow it by colocation), a
   ``shutdown-lock`` ties a resource to the node that shut down under it, and
   ``resource-stickiness`` counts where a managed resource is active on exactly one node (an
   unmanaged one is held there with INFINITY). Last, -INFINITY where it reached its
   ``migration-threshold`` of failures (``failure-timeout`` expires them).
2. Resources are assigned one at a time, top-level resources by ``priority`` then in document
   order (with a utilization placement strategy, then by their scores). Assigning a resource
   first assigns the resources it is colocated with and applies those colocations (INFINITY:
   only the primary's node; -INFINITY: never there; otherwise add the score there, unless no
   node would be left), then adds the preferences of the resources colocated with it, scaled
   by the colocation's score / INFINITY. ``target-role=Stopped`` then bans it everywhere.
3. The node with the highest score wins; nodes that cannot run resources (offline, unclean,
   standby, maintenance, shutting down) and negative scores never do. Between equal scores:
   with a positive score the node it is active on; otherwise (``balanced``: more free
   capacity), fewer resources assigned so far (not with ``minimal``), the node it is active
   on, the lowest name. With a utilization strategy, nodes without the capacity are banned
   first. Unmanaged resources (``is-managed=false``, maintenance, a blocked failure,
   ``multiple-active=block``) stay where they are; ``stop-all-resources`` and losing quorum
   (``no-quorum-policy`` stop or demote, for resources that require quorum) stop them.

A group is its members assigned in order, each colocated with the one before it (INFINITY), so
a member that cannot run stops the ones after it.

After assignment, :func:`place` works out what one transition leaves running: a resource whose
start depends (mandatory ordering, group order, mandatory colocation with a placed primitive)
on a start that cannot run is not started (and stopped, when it ran and the ordering is
symmetrical, or it needs recovery); only the first ordering between two actions counts;
resources on nodes that will be fenced are gone; a resource whose stop cannot happen (on an
unclean node that cannot be fenced, or after the stop of a blocked resource) stays where it is;
without quorum nothing that needs quorum runs (``stop``) or starts (``freeze``).

Every node's score keeps its parts (``Placement.scores[rsc][node]``: (what, score) in the order
they were added) for ``hastack explain``; ``Placement.totals`` holds the final score per node at
assignment, the number crm_simulate prints as "allocation score".

Clones (of a primitive or a group, anonymous or globally unique) are placed as Pacemaker
2.1.5's pcmk__clone_allocate does. A clone has ``clone-max`` instances (default: the number of
configured nodes), ``rsc:N`` (a cloned group's are groups ``grp:N`` of members ``rsc:N``); the
status section's active histories are matched to instances as find_anonymous_clone does (the
instance already active on that node, else the first inactive one, else a new orphan instance
that only stops). Instances inherit the clone's meta-attributes, where resource-stickiness
defaults to 1; an anonymous clone runs at most one instance per node, and a clone of an agent
class other than OCF or stonith is anonymous. Constraints that name the cloned primitive or
group mean the clone; its location constraints apply to it and to every instance, and failures
of an anonymous clone's instance (bans, migration-threshold) ban the whole clone from the node.
Assigning a clone first assigns what it is colocated with, gathers the preferences of what is
colocated with it (only positive ones), then (distribute_children) keeps active instances where
they run, up to an even share per node, and assigns the rest best node first; each instance
takes the clone's colocations (its positive preferences only when not every node gets one), is
banned from nodes the clone may not use and from nodes with ``clone-node-max`` instances, and
instances beyond clone-max are banned everywhere. A primitive colocated with a clone may run
where an instance runs (INFINITY) or gains the score there; an instance of a clone colocated
with an ``interleave`` clone pairs with that clone's instance on its best node. A start that
waits (mandatory order) for a clone needs ``clone-min`` (default 1) of its instances, or with
``interleave`` only the instance on its own node (none there: it does not start). A clone's
``ordered`` only orders its instances' starts one after the other: it changes no placement.

Promotable clones (``promotable``, or the legacy ``master``) are placed like clones, with their
positive promotion scores (the ``master-<rsc>`` node attributes, where they apply) added to
each instance's scores first; then (pcmk__set_instance_roles) each placed instance gets a
priority: its promotion score where it goes (-1 without one), plus the ``role="Promoted"``
location constraints there, plus role-specific colocations; the priorities are added to the
clone's scores together with the preferences of what a promoted instance is colocated with,
the instances are sorted by the clone's score on their node, and the first ``promoted-max``
whose score is not negative are promoted (at most ``promoted-node-max`` per node), the others
are unpromoted. What is colocated with the promoted role goes where a promoted instance is.
A promotion does not happen when what it is ordered after cannot start, when the promoted
role is colocated with a resource that cannot start, or while a promoted instance cannot be
demoted; a start ordered after a promotion needs a promoted instance.

A start also waits for the resource's probes: one on a node that is still joining the
cluster (pending) cannot run, so a resource never seen there does not start.

Bundles, remote and guest nodes and tickets are not handled here: :func:`place` raises
:class:`PlacementUnsupported` naming the feature and the element.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise

from hastack.crm.cib.model import (
    INFINITY,
    Bundle,
    Cib,
    Clone,
    Group,
    LrmResource,
    LrmRscOp,
    NvSet,
    Primitive,
    Template,
    flatten,
    parse_bool,
    parse_interval_ms,
)
from hastack.crm.constraints import Colocation, Location, colocations, locations, orderings
from hastack.crm.rules import (
    IdIndex,
    RuleContext,
    char2score,
    compare_versions,
    evaluate_nvsets,
    index_ids,
    parse_iso_duration,
    rule_matches,
    rule_score,
)
from hastack.crm.state import ClusterState, NodeStatus, ResourceState
from hastack.crm.tickets import TicketLoss, ticket_fencing, ticket_losses

__all__ = ["Placement", "PlacementUnsupported", "add_scores", "place"]

ScorePart = tuple[str, int]

# Pacemaker's INFINITY_HACK: a node that only positive preferences may change was made
# negative by one; it ends with score 1.
_UNUSABLE = INFINITY * -100


class PlacementUnsupported(Exception):
    """The CIB uses something :func:`place` does not handle (yet)."""

    def __init__(self, feature: str, element_id: str) -> None:
        self.feature = feature
        self.element_id = element_id
        super().__init__(f"placement of {feature} is not supported (element {element_id!r})")


@dataclass(frozen=True)
class Placement:
    """Where each primitive runs after one transition, and why.

    ``assigned``: primitive id (a clone's instance: ``rsc:N``) -> the node the scheduler chose
    (None: stopped).
    ``final``: primitive id -> the nodes it is active on once the transition is done (usually
    the assigned node; empty when it cannot start; the current nodes when it cannot be moved),
    sorted: an anonymous clone's instances gathered under the primitive's id, a globally-unique
    clone's instances each under its ``rsc:N``. ``roles``: the same keys -> node -> role.
    ``groups``: group id -> its first member's node. ``scores``: resource -> node -> the parts
    of its score; ``totals``: resource -> node -> the score at assignment (clones by their id,
    their instances by ``rsc:N``, as crm_simulate's scores name them). ``reasons``: why a
    resource is stopped or stays where it is. ``order``: the resources in assignment order.
    ``unmanaged``: the primitives nothing may be done to. ``meta``: each primitive's evaluated
    meta-attributes.
    """

    assigned: Mapping[str, str | None]
    final: Mapping[str, tuple[str, ...]]
    groups: Mapping[str, str | None]
    scores: Mapping[str, Mapping[str, tuple[ScorePart, ...]]]
    totals: Mapping[str, Mapping[str, int]]
    reasons: Mapping[str, str] = field(default_factory=dict)
    order: tuple[str, ...] = ()
    # primitives the cluster may not act on: is-managed=false, maintenance, or a failure that
    # blocks them (on-fail=block, a failed stop without fencing); they keep their state
    unmanaged: frozenset[str] = frozenset()
    # each primitive's meta-attributes as evaluated for placement (its own, its template's,
    # its group's, rsc_defaults; rules applied), for the stages after it
    meta: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # the role of each resource (the keys of ``final``) on each node it is active on after
    # the transition: "Started", or for a promotable clone "Promoted" / "Unpromoted"
    roles: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def node_of(self, rsc: str) -> str | None:
        """The node a primitive (or a group's first member) runs on after the transition."""
        if rsc in self.groups:
            return self.groups[rsc]
        nodes = self.final.get(rsc, ())
        return nodes[0] if nodes else None


def add_scores(a: int, b: int) -> int:
    """Pacemaker's score addition: -INFINITY wins over everything, then +INFINITY; finite sums
    are clamped to +/-INFINITY."""
    if a <= -INFINITY or b <= -INFINITY:
        return -INFINITY
    if a >= INFINITY or b >= INFINITY:
        return INFINITY
    return max(-INFINITY, min(INFINITY, a + b))


# ---------------------------------------------------------------------------------------------
# The working model (mutable, private to one call of place)


@dataclass(eq=False)
class _Node:
    """A cluster node as the scheduler sees it: its state, attributes (built-ins such as
    ``#uname`` included), base weight, free capacity and how many resources it got so far."""

    name: str
    id: str
    status: NodeStatus
    attrs: dict[str, str]
    weight: int
    capacity: dict[str, int]
    num_resources: int = 0
    _available: bool | None = None

    @property
    def available(self) -> bool:
        """pcmk__node_available without the score: able to run resources at all (computed
        once: it does not change while placing)."""
        if self._available is None:
            s = self.status
            self._available = (
                s.online
                and not (s.unclean or s.standby or s.maintenance or s.shutdown)
                # Standby and maintenance may also come from attribute sets guarded by (date)
                # rules, which the cluster state leaves out.
                and not (_true(self.attrs.get("standby")) or _true(self.attrs.get("maintenance")))
            )
        return self._available


@dataclass(eq=False)
class _Coloc:
    """One colocation between two working resources (``dependent`` with ``primary``)."""

    id: str
    dependent: _Res
    primary: _Res
    score: int
    dependent_role: str | None
    primary_role: str | None
    node_attribute: str | None
    influence: bool
    seq: int = 0  # creation order: among otherwise equal ones, the newest comes first


@dataclass(eq=False)
class _Res:
    """A primitive or group while it is being placed: its meta-attributes, its score per node
    (``allowed``) with the parts of each, where it runs now, its colocations both ways, and
    the flags of Pacemaker's assignment (provisional, allocating, merging)."""

    id: str
    kind: str  # "primitive", "group" or "clone"
    meta: dict[str, str]
    parent: _Res | None = None
    children: list[_Res] = field(default_factory=list)
    primitive: Primitive | None = None
    group: Group | None = None
    definition: Clone | None = None  # a clone's configuration
    priority: int = 0
    stickiness: int = 0
    managed: bool = True
    critical: bool = True
    needs_quorum: bool = True
    failure_ignored: bool = False
    stopped_by_config: bool = False  # target-role=Stopped
    stop_reason: str = ""
    allowed: dict[str, int] = field(default_factory=dict)
    parts: dict[str, list[ScorePart]] = field(default_factory=dict)
    running_on: list[str] = field(default_factory=list)
    failed: bool = False
    utilization: dict[str, int] = field(default_factory=dict)
    this_with: list[_Coloc] = field(default_factory=list)
    with_this: list[_Coloc] = field(default_factory=list)
    # A primitive clone instance's colocations taken from its clone (also in ``this_with``),
    # in the order Pacemaker applies them: append_parent_colocation puts the clone's (sorted)
    # list before the instance's own one by one, so reversed, at each assignment attempt.
    inherited: list[_Coloc] = field(default_factory=list)
    exclusive_discover: bool = False
    provisional: bool = True
    allocating: bool = False
    merging: bool = False
    allocated_to: str | None = None
    totals: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    # Clones and their instances: an instance's configured id (``base``, without ``:N``), the
    # status section's resource id per node its history was found on (``history``), whether it
    # is an orphan (an instance number beyond clone-max: it only stops), and for the clone
    # its limits and the number of instances given to each node so far (``count``).
    base: str = ""
    history: dict[str, str] = field(default_factory=dict)
    orphan: bool = False
    clone_max: int = 0
    clone_node_max: int = 1
    unique: bool = False
    count: dict[str, int] = field(default_factory=dict)
    # Promotable clones: the limits, and per instance its role now (from the status), the
    # nodes its history was found on, its promotion priority and sort index while roles
    # are given, and the role it gets ("Promoted", "Unpromoted"; "" when stopped).
    promotable: bool = False
    promoted_max: int = 1
    promoted_node_max: int = 1
    role_now: str = ""
    known: set[str] = field(default_factory=set)
    promo_priority: int = 0
    sort_index: int = 0
    role: str = ""

    @property
    def is_group(self) -> bool:
        return self.kind == "group"

    @property
    def is_clone(self) -> bool:
        return self.kind == "clone"

    @property
    def clone(self) -> _Res | None:
        """The clone this resource is an instance (or an instance's member) of."""
        r = self.parent
        while r is not None:
            if r.is_clone:
                return r
            r = r.parent
        return None

    @property
    def in_group(self) -> bool:
        """A member of a group (a plain group or a cloned group's instance)."""
        return self.parent is not None and self.parent.is_group

    def primitives(self) -> list[_Res]:
        if self.kind == "primitive":
            return [self]
        return [p for child in self.children for p in child.primitives()]

    def active_nodes(self) -> list[str]:
        """Where it is active now (a group instance: where any member is)."""
        if self.kind == "primitive":
            return list(self.running_on)
        out: list[str] = []
        for p in self.primitives():
            out.extend(n for n in p.running_on if n not in out)
        return out


def _true(text: str | None, default: bool = False) -> bool:
    try:
        return parse_bool(text, default)
    except ValueError:
        return default


def _ordered(group: _Res) -> bool:
    """Whether a group's members start one after the other (``ordered``, the default)."""
    return _true(group.meta.get("ordered"), True)


def _int(text: str | None, default: int = 0) -> int:
    if text is None:
        return default
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else default


def _by_primary(cols: list[_Coloc]) -> list[_Coloc]:
    """Colocations in the order Pacemaker applies a resource's own ("this with") ones: by the
    primary's priority (highest first), groups before primitives, the primary's id, then the
    newest first (Pacemaker inserts each into a sorted list before its equals)."""
    return sorted(
        cols, key=lambda c: (-c.primary.priority, not c.primary.is_group, c.primary.id, -c.seq)
    )


def _by_dependent(cols: list[_Coloc]) -> list[_Coloc]:
    """The ("with this") colocations of the resources that depend on one, in Pacemaker's order:
    by the dependent's priority, groups before primitives, the dependent's id, newest first."""
    return sorted(
        cols,
        key=lambda c: (-c.dependent.priority, not c.dependent.is_group, c.dependent.id, -c.seq),
    )


def _interval_ms(text: str | None) -> int | None:
    """An operation's interval in milliseconds, also for ISO 8601 durations Pacemaker accepts
    beyond the strict form (``P30S``); None when unreadable."""
    try:
        return parse_interval_ms(text)
    except ValueError:
        pass
    if text is None or not text.strip().startswith("P"):
        return None
    try:
        d = parse_iso_duration(text.strip())
    except ValueError:
        return None
    return ((d.years * 365 + d.months * 30 + d.days) * 86_400 + d.seconds) * 1000


def _round_half_away(value: float) -> int:
    return int(value - 0.5) if value < 0 else int(value + 0.5)


# ---------------------------------------------------------------------------------------------
# Scope


def _check_supported(cib: Cib) -> None:
    for r in cib.resources:
        if isinstance(r, Bundle):
            raise PlacementUnsupported("bundles", r.id)
    for name in cib.remote_node_names():
        raise PlacementUnsupported("remote and guest nodes", name)
    for s in cib.status:
        if s.extra.get("remote_node") == "true":
            raise PlacementUnsupported("remote and guest nodes", s.id or s.uname or "")


# ---------------------------------------------------------------------------------------------
# The scheduler


class _Scheduler:
    """One run of :func:`place`: the working model and the steps, in Pacemaker's order."""

    def __init__(self, cib: Cib, state: ClusterState, now: float | None) -> None:
        self.cib = cib
        self.state = state
        self.index: IdIndex = index_ids(cib)
        self.options = cib.cluster_options()
        self.symmetric = _true(self.options.get("symmetric-cluster"), True)
        self.stonith_enabled = state.stonith_enabled
        self.have_stonith_rsc = any(p.cls == "stonith" for p in cib.all_primitives())
        self.quorate = _true(cib.extra.get("have-quorum"))
        policy = (self.options.get("no-quorum-policy") or "stop").lower()
        if policy == "suicide" and not self.stonith_enabled:
            policy = "stop"
        self.no_quorum_policy = policy
        self.stop_all = _true(self.options.get("stop-all-resources"))
        # Without quorum, resources that need it stop (or, with freeze, do not start).
        self.no_quorum_stop = not self.quorate and policy in ("stop", "demote", "suicide")
        self.no_quorum_freeze = not self.quorate and policy == "freeze"
        self.strategy = (self.options.get("placement-strategy") or "default").lower()
        if now is None:
            try:
                now = float(cib.extra["execution-date"])
            except (KeyError, ValueError):
                now = None
        self.now_s = now
        self.now_dt = datetime.fromtimestamp(now, UTC) if now is not None else None
        self.nodes: dict[str, _Node] = {}
        self.node_order: list[str] = []
        self.resources: list[_Res] = []  # top level, in document order
        self.by_id: dict[str, _Res] = {}
        self.reasons: dict[str, str] = {}
        self._history: dict[tuple[str, str], LrmResource] | None = None
        self._lrm_ids: dict[str, list[str]] | None = None
        self._params: dict[tuple[str, str], dict[str, str]] = {}
        self.colocations: list[_Coloc] = []
        # orderings after a clone: how many of its instances must start (clone-min), and the
        # starts that wait for a clone without instances
        self.any_min: dict[str, int] = {}
        # promotable clone -> (order id, what must start before its promotion)
        self.promote_needs: dict[str, list[tuple[str, _Res]]] = {}
        # location constraints with role="Promoted", per promotable clone
        self.promoted_locations: dict[str, list[Location]] = {}
        self.no_instances: dict[str, list[tuple[str, str, bool]]] = {}

    # -- nodes -----------------------------------------------------------------------------

    def unpack_nodes(self) -> None:
        """The nodes with their attributes (configured, then transient) and capacities."""
        dc = self.cib.extra.get("dc-uuid")
        cluster_name = self.options.get("cluster-name")
        by_id = {s.id: s for s in self.cib.status if s.id}
        for node in self.cib.nodes:
            name = node.uname or node.id
            status = self.state.nodes.get(name)
            if status is None:
                continue  # remote nodes are refused earlier; nothing else is missing
            # Node attributes may depend on the date (rules without a node, as Pacemaker).
            attrs = evaluate_nvsets(
                node.attributes, RuleContext(node_attrs=None, now=self.now_dt), index=self.index
            )
            ns = by_id.get(node.id)
            if ns is not None and ns.transient:
                attrs.update(flatten(ns.transient))
            attrs["#uname"] = name
            attrs["#id"] = node.id
            attrs["#kind"] = "cluster"
            attrs["#is_dc"] = "true" if dc is not None and dc == node.id else "false"
            if cluster_name is not None:
                attrs["#cluster-name"] = cluster_name
            capacity = {k: _int(v) for k, v in flatten(node.utilization).items()}
            self.nodes[name] = _Node(name, node.id, status, attrs, char2score(node.score), capacity)
            self.node_order.append(name)

    def health_scores(self) -> dict[str, int]:
        """Each node's health score under node-health-strategy (0 without one)."""
        strategy = (self.options.get("node-health-strategy") or "none").lower()
        if strategy == "none":
            return {}
        colours = {
            "migrate-on-red": {"red": -INFINITY, "yellow": 0, "green": 0},
            "only-green": {"red": -INFINITY, "yellow": -INFINITY, "green": 0},
        }.get(strategy)
        if colours is None:  # progressive and custom: the configured scores
            colours = {
                c: char2score(self.options.get(f"node-health-{c}", "0"))
                for c in ("red", "yellow", "green")
            }
        base = char2score(self.options.get("node-health-base", "0"))
        out: dict[str, int] = {}
        for name in self.node_order:
            total = base if strategy == "progressive" else 0
            for attr, value in sorted(self.nodes[name].attrs.items()):
                if attr.startswith("#health"):
                    score = colours.get(value.lower())
                    total = add_scores(total, score if score is not None else char2score(value))
            out[name] = total
        return out

    # -- resources -------------------------------------------------------------------------

    def _meta(
        self, sets: tuple[NvSet, ...], rsc: tuple[str | None, str | None, str | None]
    ) -> dict[str, str]:
        """Meta-attributes as Pacemaker evaluates them: rules may test the date and the agent
        (there is no node)."""
        ctx = RuleContext(node_attrs=None, now=self.now_dt, rsc=rsc)
        return evaluate_nvsets(sets, ctx, index=self.index)

    def unpack_resources(self) -> None:
        """The top-level primitives and groups (templates only lend their definitions)."""
        for r in self.cib.resources:
            if isinstance(r, Template):
                continue
            if isinstance(r, Primitive):
                res = self._primitive(r, None)
            elif isinstance(r, Group):
                kind = (None, None, None)
                meta = self._meta(self.cib.rsc_defaults, kind)
                meta.update(self._meta(r.meta, kind))
                res = _Res(r.id, "group", meta, group=r)
                self._common(res)
                for child in r.children:
                    res.children.append(self._primitive(child, res))
            elif isinstance(r, Clone):
                res = self._clone(r)
            else:
                continue
            self.resources.append(res)
            self.by_id[res.id] = res

    def _clone(self, c: Clone) -> _Res:
        """A clone and its clone-max instances (``rsc:0``, ``rsc:1``...; a cloned group's
        instances are groups ``grp:N`` of members ``rsc:N``). Its meta-attributes (which its
        instances inherit) default resource-stickiness to 1; an anonymous clone runs at most
        one instance per node, whatever clone-node-max says (as Pacemaker 2.1.5)."""
        kind = (None, None, None)
        meta = self._meta(self.cib.rsc_defaults, kind)
        meta.update(self._meta(c.meta, kind))
        meta.setdefault("resource-stickiness", "1")
        res = _Res(c.id, "clone", meta, base=c.id, definition=c)
        self._common(res)
        # Only OCF agents and fencing devices can be globally unique: an LSB, systemd... one
        # makes the clone anonymous.
        inner = c.child.children if isinstance(c.child, Group) else (c.child,)
        res.unique = _true(meta.get("globally-unique")) and all(
            self.cib.expand_template(p).cls in ("ocf", "stonith") for p in inner
        )
        # clone-max defaults to the number of configured nodes
        res.clone_max = max(0, _int(meta.get("clone-max"), len(self.cib.nodes)))
        res.clone_node_max = max(0, _int(meta.get("clone-node-max"), 1))
        if not res.unique:
            res.clone_node_max = min(res.clone_node_max, 1)
        res.promotable = c.promotable
        res.promoted_max = max(0, _int(meta.get("promoted-max", meta.get("master-max")), 1))
        res.promoted_node_max = max(
            0, _int(meta.get("promoted-node-max", meta.get("master-node-max")), 1)
        )
        self.by_id[c.id] = res
        for n in range(res.clone_max):
            self._new_instance(res, n)
        # Constraints that name the cloned primitive or group mean the clone.
        self.by_id[c.child.id] = res
        if isinstance(c.child, Group):
            for member in c.child.children:
                self.by_id[member.id] = res
        return res

    def _new_instance(self, clone: _Res, n: int, *, orphan: bool = False) -> _Res:
        """Instance ``n`` of a clone (an orphan: beyond clone-max, found in the status)."""
        c = clone.definition
        assert c is not None
        if isinstance(c.child, Group):
            meta = dict(clone.meta)
            meta.update(self._meta(c.child.meta, (None, None, None)))
            inst = _Res(f"{c.child.id}:{n}", "group", meta, parent=clone, group=c.child)
            inst.base = c.child.id
            self._common(inst)
            for member in c.child.children:
                inst.children.append(self._primitive(member, inst, n))
        else:
            inst = self._primitive(c.child, clone, n)
        inst.orphan = orphan
        for p in [inst, *inst.children]:
            p.orphan = orphan
        clone.children.append(inst)
        self.by_id[inst.id] = inst
        return inst

    def _primitive(self, p: Primitive, parent: _Res | None, number: int | None = None) -> _Res:
        """A primitive's meta-attributes: its own, then its group's (or clone's), then
        rsc_defaults. ``number``: the instance number of a clone's instance (``id:N``)."""
        prim = self.cib.expand_template(p)
        kind = (prim.cls, prim.provider, prim.type)
        if parent is not None and number is not None:
            meta = dict(parent.meta)  # a clone's, or a cloned group's (which has the clone's)
        else:
            meta = self._meta(self.cib.rsc_defaults, kind)
            if parent is not None and parent.group is not None:
                meta.update(self._meta(parent.group.meta, kind))
        template = self.cib.template(p.template) if p.template else None
        if template is not None:
            meta.update(self._meta(template.meta, kind))
        meta.update(self._meta(p.meta, kind))  # its own values win over its template's
        rid = prim.id if number is None else f"{prim.id}:{number}"
        res = _Res(rid, "primitive", meta, parent=parent, primitive=prim, base=prim.id)
        self._common(res)
        res.utilization = {k: _int(v) for k, v in flatten(prim.utilization).items()}
        self.by_id[res.id] = res
        return res

    def _common(self, res: _Res) -> None:
        """The meta-attributes placement reads, with Pacemaker's defaults."""
        meta = res.meta
        res.priority = char2score(meta.get("priority", "0"))
        res.stickiness = char2score(meta.get("resource-stickiness", "0"))
        res.managed = (
            _true(meta.get("is-managed"), True)
            and not _true(meta.get("maintenance"))
            and not self.state.maintenance_mode
        )
        res.critical = _true(meta.get("critical"), True)
        target = (meta.get("target-role") or "started").lower()
        res.stopped_by_config = target == "stopped"
        # "requires": what starting it needs; Pacemaker's default is quorum for fencing
        # devices, fencing when fencing is enabled, nothing with no-quorum-policy=ignore.
        requires = (meta.get("requires") or "").lower()
        if not requires:
            if res.primitive is not None and res.primitive.cls == "stonith":
                requires = "quorum"
            elif self.stonith_enabled:
                requires = "fencing"
            elif self.no_quorum_policy == "ignore":
                requires = "nothing"
            else:
                requires = "quorum"
        res.needs_quorum = requires != "nothing"

    # -- scores ----------------------------------------------------------------------------

    def location(
        self, res: _Res, node: str | None, score: int, what: str, *, default: bool = False
    ) -> None:
        """resource_location: add ``score`` on ``node`` (every node when None), to a group's
        members too. The symmetric ``default`` skips resources whose discovery is exclusive."""
        names = self.node_order if node is None else [node]
        for name in names:
            if default and res.exclusive_discover:
                continue
            for child in res.children:
                self.location(child, name, score, what, default=default)
            self._add(res, name, score, what)

    def _add(self, res: _Res, node: str, score: int, what: str) -> None:
        """Add ``score`` to one node's score (the node enters with its own weight), and keep
        the part."""
        if node not in res.allowed:
            base = self.nodes[node].weight
            res.allowed[node] = base
            res.parts[node] = [("node weight", base)] if base else []
        res.allowed[node] = add_scores(res.allowed[node], score)
        res.parts[node].append((what, score))

    def apply_defaults(self) -> None:
        """A symmetric cluster allows every resource on every node (score 0)."""
        for res in self.resources:
            if self.symmetric:
                self.location(res, None, 0, "symmetric default", default=True)

    def apply_status(self) -> None:
        """Where each primitive is active, and the bans its history imposes."""
        lrm_ids: dict[tuple[str, str], list[str]] = {}  # (configured id, node) -> status ids
        for entry in self.state.resources:
            res = self.by_id.get(entry.primitive)
            if res is None or res.is_group or entry.orphan:
                continue
            node = self.nodes.get(entry.node)
            if node is None:
                continue
            lrm_id = None
            if res.is_clone:
                lrm_id = self._next_lrm_id(entry.primitive, entry.node, lrm_ids)
                if not entry.role.active:
                    # Its history still bans nodes, for the whole clone; it makes the
                    # resource known there (for promotion scores).
                    self._history_bans(res, entry, lrm_id)
                    known = self._inactive_instance(res, entry.primitive, entry.id)
                    if known is not None:
                        known.known.add(entry.node)
                        if lrm_id is not None:
                            known.history.setdefault(entry.node, lrm_id)
                    continue
                res = self._clone_instance(res, entry)
                res.known.add(entry.node)
                res.role_now = entry.role.value
                if lrm_id is not None:
                    res.history[entry.node] = lrm_id
            if entry.role.active:
                if entry.node not in res.running_on:
                    res.running_on.append(entry.node)
                # A group is active where its members are, in the order the status lists them.
                if res.parent is not None and entry.node not in res.parent.running_on:
                    res.parent.running_on.append(entry.node)
                clone = res.clone
                if clone is not None and entry.node not in clone.running_on:
                    clone.running_on.append(entry.node)
                if entry.failed:
                    res.failed = True
                if node.status.maintenance:
                    res.managed = False
            self._history_bans(res, entry, lrm_id)
        prims = self._all_primitives()
        # An unmanaged resource is held where it is active (not_managed_default); one blocked
        # for being active on several nodes is not (Pacemaker finds that out afterwards).
        for res in prims:
            if not res.managed:
                for node in res.running_on:
                    self._add(res, node, INFINITY, "unmanaged: held where it is active")
        for res in prims:
            if len(res.running_on) < 2:
                continue
            policy = (res.meta.get("multiple-active") or "stop_start").lower()
            if policy == "block":
                why = f"{res.id} is active on several nodes (multiple-active=block)"
                blocked = [res]
                # A group configured to block is blocked as a whole.
                parent = res.parent
                if (
                    parent is not None
                    and parent.is_group
                    and ((parent.meta.get("multiple-active") or "").lower() == "block")
                ):
                    blocked = parent.children
                for member in blocked:
                    member.managed = False
                    member.reason = why
            elif policy == "stop_only":
                res.stopped_by_config = True
                res.stop_reason = "active on several nodes (multiple-active=stop_only)"

    def _all_primitives(self) -> list[_Res]:
        """Every primitive, clone instances (orphans too) included, in document order."""
        return [p for r in self.resources for p in r.primitives()]

    def _next_lrm_id(
        self, base: str, node: str, taken: dict[tuple[str, str], list[str]]
    ) -> str | None:
        """The next status resource id (``rsc`` or ``rsc:N``) of a cloned primitive on a node:
        the status section's entries come in the order of the history records."""
        if not taken:
            # indexed once: every (primitive, node) -> its status ids, in document order
            taken[("", "")] = []
            for name, ids in self._status_ids().items():
                for rid in ids:
                    taken.setdefault((rid.partition(":")[0], name), []).append(rid)
        ids = taken.get((base, node))
        return ids.pop(0) if ids else None

    def _status_ids(self) -> dict[str, list[str]]:
        """Node name -> the ids of the resources its status section has a history of."""
        if self._lrm_ids is None:
            names = {n.id: n.name for n in self.nodes.values()}
            self._lrm_ids = {}
            for ns in self.cib.status:
                name = names.get(ns.id) or (ns.uname if not ns.id else None)
                if name is not None:
                    ids = self._lrm_ids.setdefault(name, [])
                    ids.extend(lrm.id for lrm in ns.lrm_resources)
        return self._lrm_ids

    def _clone_instance(self, clone: _Res, entry: ResourceState) -> _Res:
        """The instance (the member of it, for a cloned group) an active status entry belongs
        to. A globally-unique clone's entries name their instance; an anonymous clone's take
        the instance already active on that node, else the first inactive one, else a new
        orphan instance, as Pacemaker's find_anonymous_clone (a second history of the same
        primitive on one node makes an orphan)."""

        def member(inst: _Res) -> _Res:
            if not inst.is_group:
                return inst
            return next(m for m in inst.children if m.base == entry.primitive)

        if clone.unique:
            found = self.by_id.get(entry.id)
            if found is not None and found.kind == "primitive" and found.clone is clone:
                return found
            number = entry.id.rpartition(":")[2]
            n = int(number) if number.isdigit() else len(clone.children)
            while any(i.id.rpartition(":")[2] == str(n) for i in clone.children):
                n += 1
            return member(self._new_instance(clone, n, orphan=True))
        inactive: _Res | None = None
        skip_inactive = False
        for inst in clone.children:
            where = inst.active_nodes()
            if where:
                if entry.node in where:
                    m = member(inst)
                    if m.running_on:
                        skip_inactive = True
                        continue
                    return m
            elif inactive is None and not inst.orphan:
                inactive = inst
        if inactive is not None and not skip_inactive:
            return member(inactive)
        return member(self._new_instance(clone, len(clone.children), orphan=True))

    def _probed(self, p: _Res, node: str) -> bool:
        """Whether the status section has a history of the primitive on the node (any
        instance of a clone's)."""
        return any(rid.partition(":")[0] == p.base for rid in self._status_ids().get(node, []))

    def _inactive_instance(self, clone: _Res, base: str, rid: str = "") -> _Res | None:
        """The member ``base`` of the first instance not active anywhere (where an inactive
        history of an anonymous clone is recorded); a unique clone's: the one named ``rid``."""
        if clone.unique:
            found = self.by_id.get(rid)
            return found if found is not None and found.clone is clone else None
        for inst in clone.children:
            if not inst.orphan and not inst.active_nodes():
                if not inst.is_group:
                    return inst
                return next((m for m in inst.children if m.base == base), None)
        return None

    def _lrm(self, rsc: str, node: str) -> LrmResource | None:
        """The status section's record of ``rsc`` on ``node`` (indexed once: CIBs can be
        large)."""
        if self._history is None:
            self._history = {}
            names = {n.id: n.name for n in self.nodes.values()}
            for ns in self.cib.status:
                name = names.get(ns.id) or (ns.uname if not ns.id else None)
                if name is None:
                    continue
                for lrm in ns.lrm_resources:
                    self._history.setdefault((lrm.id, name), lrm)
        return self._history.get((rsc, node))

    def _ops_on(self, rsc: str, node: str) -> tuple[LrmRscOp, ...]:
        lrm = self._lrm(rsc, node)
        return lrm.ops if lrm is not None else ()

    def _agent_changed(self, res: _Res, node: str) -> bool:
        """Whether the history on ``node`` was made by another agent than the configured one
        (Pacemaker then clears the resource's fail count there)."""
        lrm = self._lrm(res.history.get(node, res.id), node)
        prim = res.primitive
        if lrm is None or prim is None:
            return False
        return (lrm.cls, lrm.provider, lrm.type) != (prim.cls, prim.provider, prim.type)

    def _on_fail(self, res: _Res, name: str, interval_ms: int) -> str:
        """The configured on-fail of the operation, or Pacemaker's default."""
        prim = res.primitive
        if prim is not None:
            for op in prim.ops:
                if op.name == name and _interval_ms(op.interval) == interval_ms and op.on_fail:
                    return op.on_fail.lower()
        if name == "stop":
            return "fence" if self.stonith_enabled else "block"
        return "restart"

    def _history_bans(self, res: _Res, entry: ResourceState, lrm_id: str | None = None) -> None:
        """Hard and fatal errors, stop failures, on-fail=migrate/stop/block, as unpacking the
        operation history imposes them (``lrm_id``: the status id of a clone instance's
        history). A clone instance's bans apply to the whole clone (Pacemaker bans the
        top-level resource)."""
        rid = lrm_id or res.id
        ban = res.clone or res
        if any("on-fail=ignore" in note for note in entry.notes):
            res.failure_ignored = True  # then migration-threshold does not apply either
        try:
            timeout_ms = parse_interval_ms(res.meta.get("failure-timeout"))
        except ValueError:
            timeout_ms = 0
        for op in self._ops_on(rid, entry.node):
            rc = op.rc_code_int
            status = op.op_status_int if op.op_status is not None else 0
            name = op.operation or ""
            if status in (-1, 1) or op.call_id_int == -1:
                continue
            # A failed stop bans the node (__stop_fail__), whatever came of it since; stop
            # failures never expire.
            stop_failed = status not in (0, 7) or rc not in (0, 7)
            if name == "stop" and stop_failed and self._on_fail(res, name, 0) != "ignore":
                self.location(ban, entry.node, -INFINITY, f"stop failed ({op.id})")
                continue
            # Pacemaker's hard errors (invalid parameter, insufficient privileges, not
            # installed; unimplemented feature for a one-off operation) ban the node; a fatal one
            # (not configured) bans every node; unless on-fail=ignore hides the failure.
            hard = rc in (2, 4, 5) or (rc == 3 and op.interval_ms == 0) or status == 7
            fatal = rc == 6
            if not (hard or fatal) or self._expired(op, timeout_ms):
                continue
            # (the executor not finding the agent at all is never ignored)
            if status != 7 and self._on_fail(res, name, op.interval_ms) == "ignore":
                continue
            if fatal:
                self.location(ban, None, -INFINITY, f"fatal error ({op.id})")
            else:
                self.location(ban, entry.node, -INFINITY, f"hard error ({op.id})")
        if entry.failed and entry.failed_op is not None:
            op = next((o for o in self._ops_on(rid, entry.node) if o.id == entry.failed_op), None)
            if op is None:
                return
            name = op.operation or ""
            on_fail = self._on_fail(res, name, op.interval_ms)
            if on_fail == "block" or (name == "stop" and not self.stonith_enabled):
                res.managed = False
                res.reason = f"blocked: {op.id} failed (on-fail=block)"
            elif on_fail == "stop":
                res.stopped_by_config = True
                res.stop_reason = f"{op.id} failed (on-fail=stop)"
            elif on_fail == "migrate":
                self.location(ban, entry.node, -INFINITY, f"{op.id} failed (on-fail=migrate)")

    def _expired(self, op: LrmRscOp, timeout_ms: int) -> bool:
        if timeout_ms <= 0 or self.now_s is None:
            return False
        try:
            changed = int(op.last_rc_change or op.last_run or "")
        except ValueError:
            return False
        return changed + timeout_ms / 1000 <= self.now_s

    def _node_ctx(self, node: _Node, res: _Res, groups: tuple[str | None, ...]) -> RuleContext:
        prim = res.primitive
        params: dict[str, str] = {}
        rsc: tuple[str | None, str | None, str | None] | None = None
        if prim is not None:
            # The resource's parameters as they are on this node (sets may have node rules).
            key = (res.id, node.name)
            if key not in self._params:
                self._params[key] = evaluate_nvsets(
                    prim.instance_attributes,
                    RuleContext(node_attrs=node.attrs, now=self.now_dt),
                    index=self.index,
                )
            params = self._params[key]
            rsc = (prim.cls, prim.provider, prim.type)
        return RuleContext(
            node_attrs=node.attrs,
            now=self.now_dt,
            rsc=rsc,
            params=params,
            meta=res.meta,
            re_groups=groups,
        )

    def apply_locations(self, locs: list[Location], health: dict[str, int]) -> None:
        for res in self.resources:
            for name in self.node_order:
                score = health.get(name, 0)
                if score == 0:
                    continue
                if score < 0 and _true(res.meta.get("allow-unhealthy-nodes")):
                    continue
                self._apply_location(res, name, score, "node health")
        for loc in locs:
            res = self.by_id.get(loc.rsc)
            if res is None:
                continue
            if loc.role is not None:
                # a role filter only concerns promotable clones' roles: Promoted counts when
                # the instances' roles are given
                if res.is_clone and res.promotable and loc.role.lower() == "promoted":
                    self.promoted_locations.setdefault(res.id, []).append(loc)
                continue
            if loc.rule is None:
                if loc.node not in self.nodes:
                    continue
                self._apply_location(res, loc.node, loc.score, f"location {loc.id}")
                continue
            for name in self.node_order:
                node = self.nodes[name]
                ctx = self._node_ctx(node, res, loc.re_groups)
                if rule_matches(loc.rule, ctx, self.index.rules):
                    score = rule_score(loc.rule, ctx, self.index.rules)
                    rule_id = loc.rule.id or loc.rule.id_ref or ""
                    self._apply_location(res, name, score, f"location {loc.id} rule {rule_id}")

    def _apply_location(self, res: _Res, node: str, score: int, what: str) -> None:
        """A location constraint: a colocated group's first member takes the score, the other
        members are only allowed there (score 0), as group_rsc_location does."""
        if res.is_clone:
            # clone_rsc_location: the clone, then each instance as its own kind
            self._add(res, node, score, what)
            for inst in res.children:
                self._apply_location(inst, node, score, what)
            return
        if not res.is_group:
            self._add(res, node, score, what)
            return
        self._add(res, node, score, what)
        colocated = _true(res.meta.get("collocated"), True)
        for i, child in enumerate(res.children):
            self._add(child, node, score if (i == 0 or not colocated) else 0, what)

    def apply_tickets(self, losses: list[TicketLoss]) -> None:
        """What a ticket that is not granted (or in standby) does (hastack.crm.tickets): the
        resource may not run anywhere (stop; fence, whose nodes are fenced as well), may not
        be promoted (demote), or stays exactly as it is (freeze: held where it is active,
        left alone, and started nowhere)."""
        for loss in losses:
            res = self.by_id.get(loss.rsc)
            if res is None:
                continue
            what = f"rsc_ticket {loss.constraint}: {loss.why}"
            promotable = res.clone if res.clone is not None else res
            promotion_only = (
                promotable.is_clone and promotable.promotable and loss.role == "Promoted"
            )
            no_promotion = loss.action == "demote" or (promotion_only and loss.action == "fence")
            if no_promotion and promotable.is_clone and promotable.promotable:
                # no instance may be promoted; unpromoted ones may run (a node where one is
                # promoted is fenced: see place())
                for name in self.node_order:
                    ban = Location(loss.constraint, promotable.id, -INFINITY, node=name)
                    self.promoted_locations.setdefault(promotable.id, []).append(ban)
                continue
            prims = res.primitives() if not res.is_clone else self._clone_primitives(res)
            if loss.action == "freeze":
                frozen = [p for p in prims if p.running_on]
                if promotion_only:
                    frozen = [p for p in prims if p.role_now == "Promoted"]
                if frozen or promotion_only:
                    # left exactly as they are: unmanaged, so nothing is done to them
                    for p in frozen:
                        p.managed = False
                        p.reason = p.reason or what
                    if promotion_only and not frozen:
                        for name in self.node_order:
                            ban = Location(loss.constraint, promotable.id, -INFINITY, node=name)
                            self.promoted_locations.setdefault(promotable.id, []).append(ban)
                    continue
            for name in self.node_order:
                self._apply_location(res, name, -INFINITY, what)

    def _clone_primitives(self, clone: _Res) -> list[_Res]:
        out: list[_Res] = []
        for inst in clone.children:
            out += inst.primitives()
        return out

    def apply_shutdown_locks(self) -> None:
        """shutdown-lock=true: a resource active on a node that is shutting down cleanly, or
        recorded as locked there (``shutdown-lock`` on its history), may run only on that node
        until the lock expires (shutdown-lock-limit) — so it stays stopped meanwhile. Fencing
        devices are never locked."""
        if not _true(self.options.get("shutdown-lock")):
            return
        try:
            limit_ms = parse_interval_ms(self.options.get("shutdown-lock-limit"))
        except ValueError:
            limit_ms = 0
        locks: dict[str, tuple[str, int]] = {}
        by_id = {s.id: s for s in self.cib.status if s.id}
        for name in self.node_order:
            ns = by_id.get(self.nodes[name].id)
            for lrm in ns.lrm_resources if ns is not None else ():
                stamp = lrm.extra.get("shutdown-lock")
                locked = self.by_id.get(lrm.id)
                if stamp is not None and locked is not None and locked.kind == "primitive":
                    locks[lrm.id] = (name, _int(stamp))
        for res in self.by_id.values():
            # (clone instances are not locked: the clone runs elsewhere meanwhile)
            if res.kind != "primitive" or res.clone is not None:
                continue
            if res.id in locks or len(res.running_on) != 1:
                continue
            node = self.nodes[res.running_on[0]]
            if node.status.shutdown and node.status.online:
                locks[res.id] = (node.name, _int(node.attrs.get("shutdown")))
        for rid in sorted(locks):
            res = self.by_id[rid]
            node, since = locks[rid]
            if res.primitive is not None and res.primitive.cls == "stonith":
                continue
            if limit_ms > 0 and self.now_s is not None and self.now_s >= since + limit_ms / 1000:
                continue  # the lock expired
            for other in self.node_order:
                if other != node:
                    self._add(res, other, -INFINITY, f"shutdown-lock to {node}")

    def apply_stickiness(self) -> None:
        """resource-stickiness on the one node where a managed primitive is active."""
        for res in self.resources:
            for p in res.primitives():
                if not p.managed or p.stickiness == 0 or len(p.running_on) != 1:
                    continue
                node = p.running_on[0]
                if not self.symmetric and node not in p.allowed:
                    continue  # asymmetric: no stickiness where it is not explicitly allowed
                self._add(p, node, p.stickiness, "resource-stickiness")

    def apply_failure_thresholds(self) -> None:
        """-INFINITY where a resource's effective fail count reached its migration-threshold
        (not when a failure of it was ignored with on-fail=ignore). An anonymous clone's
        instances share their primitive's fail count, and reaching the threshold bans the
        whole clone from the node."""
        for name in self.node_order:
            failures = self._failures(self.nodes[name].attrs)
            for res in self.resources:
                for p in res.primitives():
                    clone = p.clone
                    anonymous = clone is not None and not clone.unique
                    key = p.base if anonymous else p.id
                    if key not in failures or self._agent_changed(p, name):
                        continue
                    threshold = char2score(p.meta.get("migration-threshold", "INFINITY"))
                    if threshold <= 0 or p.failure_ignored:
                        continue
                    count = self._effective(p, *failures[key])
                    if count > 0 and count >= threshold:
                        why = f"migration-threshold {threshold} reached ({count} failures)"
                        if clone is not None and anonymous:
                            self.location(clone, name, -INFINITY, why)
                        else:
                            self._add(p, name, -INFINITY, why)

    def _failures(self, attrs: Mapping[str, str]) -> dict[str, tuple[int, int]]:
        """Resource id -> (fail count, last failure time) from a node's attributes. As
        Pacemaker 2.1.5, a CIB whose crm_feature_set is older than 3.0.13 (or unset) counts the
        legacy names (fail-count-RSC) only, a newer one the per-operation names only
        (fail-count-RSC#OP_INTERVAL, summed over the operations)."""
        version = self.cib.extra.get("crm_feature_set")
        legacy = version is None or compare_versions(version, "3.0.13") < 0
        pattern = re.compile(
            r"(fail-count|last-failure)-(.+)" + ("" if legacy else r"#.+_[0-9]+") + r"\Z"
        )
        out: dict[str, tuple[int, int]] = {}
        for key in sorted(attrs):
            m = pattern.match(key)
            if m is None:
                continue
            kind, rsc = m.groups()
            if not legacy and "#" in rsc:
                rsc = rsc.split("#", 1)[0]
            # (an anonymous clone's counts may carry an instance number: they count for
            # the primitive too)
            anon = re.fullmatch(r"(.+):\d+", rsc)
            if anon is not None and anon.group(1) in self.by_id:
                base = anon.group(1)
                if self.by_id[base].is_clone and not self.by_id[base].unique:
                    rsc = base
            count, last = out.get(rsc, (0, 0))
            if kind == "fail-count":
                count = add_scores(count, char2score(attrs[key]))
            else:
                last = max(last, _int(attrs[key]))
            out[rsc] = (count, last)
        return out

    def _effective(self, res: _Res, count: int, last: int) -> int:
        """The fail count, or 0 once the last failure is older than failure-timeout."""
        try:
            timeout_ms = parse_interval_ms(res.meta.get("failure-timeout"))
        except ValueError:
            timeout_ms = 0
        expired = self.now_s is not None and self.now_s >= last + timeout_ms / 1000
        if count > 0 and timeout_ms > 0 and last > 0 and expired:
            return 0
        return count

    # -- colocations -----------------------------------------------------------------------

    def unpack_colocations(self, cols: list[Colocation]) -> None:
        """Link the colocation pairs to their resources, and add each group's internal ones.
        ``influence`` defaults to the dependent's ``critical`` meta-attribute."""
        for c in cols:
            dep = self.by_id.get(c.dependent)
            prim = self.by_id.get(c.primary)
            if dep is None or prim is None:
                continue
            influence = c.influence if c.influence is not None else dep.critical
            col = _Coloc(
                c.id,
                dep,
                prim,
                c.score,
                c.dependent_role,
                c.primary_role,
                c.node_attribute,
                influence,
                seq=len(self.colocations),
            )
            self.colocations.append(col)
            dep.this_with.append(col)
            prim.with_this.append(col)
        # A group's members (a cloned group's instances' too): each with the one before it.
        groups = [g for r in self.resources for g in ([r] if r.is_group else r.children)]
        for res in groups:
            if not res.is_group or not _true(res.meta.get("collocated"), True):
                continue
            for before, member in pairwise(res.children):
                col = _Coloc(
                    f"group {res.id}",
                    member,
                    before,
                    INFINITY,
                    None,
                    None,
                    None,
                    member.critical,
                    seq=len(self.colocations),
                )
                self.colocations.append(col)
                member.this_with.append(col)
                before.with_this.append(col)

    def _available(self, name: str) -> bool:
        """Whether the node can run resources at all."""
        return self.nodes[name].available

    def _can_run_any(self, table: Mapping[str, int]) -> bool:
        """Whether some available node has a score of 0 or more (the rollback test)."""
        return any(w >= 0 and self._available(n) for n, w in table.items())

    def _attr(self, node: str, attr: str) -> str | None:
        return self.nodes[node].attrs.get(attr)

    def _has_influence(self, col: _Coloc) -> bool:
        """Whether the dependent's preferences count for the primary: when the colocation has
        influence, or when the primary is not active anywhere yet."""
        return col.influence or not col.primary.running_on

    def _next_role(self, res: _Res) -> str | None:
        """What Pacemaker knows of a primitive's next role while assigning: Stopped when
        configured or forced to stop, Started once assigned to a node or when target-role
        says so explicitly, otherwise unknown (None)."""
        if res.stopped_by_config:
            return "Stopped"
        if not res.provisional:
            return "Started" if res.allocated_to is not None else "Stopped"
        if (res.meta.get("target-role") or "").lower() == "started":
            return "Started"
        return None

    def _apply_coloc(self, dependent: _Res, primary: _Res, col: _Coloc) -> None:
        """The primary's placement applied to the dependent's scores (a group primary: its
        last member for INFINITY, its first member otherwise)."""
        if primary.is_clone:
            self._apply_clone_primary(dependent, primary, col)
            return
        if primary.is_group:
            if primary.provisional or not primary.children:
                return
            if _true(primary.meta.get("collocated"), True):
                member = primary.children[-1] if col.score >= INFINITY else primary.children[0]
                self._apply_coloc(dependent, member, col)
            elif col.score < INFINITY:
                for member in primary.children:
                    self._apply_coloc(dependent, member, col)
            return
        if primary.provisional or not dependent.provisional:
            return
        # A role filter: a positive colocation needs the roles to match, a negative one is
        # skipped when they do (pcmk__colocation_affects).
        for wanted, res in ((col.dependent_role, dependent), (col.primary_role, primary)):
            if wanted is None:
                continue
            same = (self._next_role(res) or "").lower() == wanted.lower()
            if (col.score > 0 and not same) or (col.score < 0 and same):
                return
        attr = col.node_attribute or "#uname"
        if primary.allocated_to is None and col.score < 0:
            return  # anti-colocation with something that is not running
        value = self._attr(primary.allocated_to, attr) if primary.allocated_to else None
        work = dict(dependent.allowed)
        changes: dict[str, int] = {}
        for node in sorted(work):
            same = (
                primary.allocated_to is not None
                and value is not None
                and (self._attr(node, attr) or "").lower() == value.lower()
                and self._attr(node, attr) is not None
            )
            if primary.allocated_to is None:
                # The primary will not run: the preference for it counts against every node.
                work[node] = add_scores(-col.score, work[node])
                changes[node] = -col.score
            elif same:
                if col.score < INFINITY:
                    work[node] = add_scores(col.score, work[node])
                    changes[node] = col.score
            elif col.score >= INFINITY:
                work[node] = -INFINITY
                changes[node] = -INFINITY
        if col.score <= -INFINITY or col.score >= INFINITY or self._can_run_any(work):
            dependent.allowed = work
            what = f"colocation {col.id} with {col.primary.id}"
            for node, delta in changes.items():
                dependent.parts.setdefault(node, []).append((what, delta))

    def _merge(
        self,
        res: _Res,
        primary_id: str,
        nodes: dict[str, int],
        attr: str | None,
        factor: float,
        rollback: bool,
        positive: bool = False,
    ) -> dict[str, int]:
        """pcmk__native_merge_weights: ``nodes`` plus ``factor`` times the best score ``res``
        has on a node with the same ``attr`` value, then the same recursively for whatever is
        colocated with ``res``; rolled back when no node would be left. ``positive`` (a
        clone gathering its dependents' preferences): a node the preferences would make
        negative keeps its score (one that was positive ends at 1)."""
        if res.is_group:
            if res.merging or not res.children:
                return nodes
            res.merging = True
            work = self._merge(res.children[0], primary_id, nodes, attr, factor, rollback, positive)
            for col in _by_dependent(res.with_this):
                if self._has_influence(col):
                    work = self._merge(
                        col.dependent,
                        primary_id,
                        work,
                        col.node_attribute,
                        col.score / INFINITY,
                        rollback,
                        positive,
                    )
            res.merging = False
            return work
        if res.merging:
            return nodes
        res.merging = True
        work = dict(nodes)
        self._add_matching(work, res, attr or "#uname", factor, positive)
        if self._can_run_any(work):
            multiplier = -1 if factor < 0 else 1
            for col in _by_dependent(res.with_this):
                if not self._has_influence(col):
                    continue
                work = self._merge(
                    col.dependent,
                    primary_id,
                    work,
                    col.node_attribute,
                    multiplier * col.score / INFINITY,
                    True,
                    positive,
                )
        elif rollback:
            res.merging = False
            return nodes
        res.merging = False
        if positive:
            for node, weight in work.items():
                if weight == _UNUSABLE:
                    work[node] = 1
        return work

    def _add_matching(
        self, work: dict[str, int], res: _Res, attr: str, factor: float, positive: bool = False
    ) -> None:
        """add_node_scores_matching_attr: to each node in ``work`` add ``factor`` times the best
        score ``res`` has on an available node with the same value of ``attr`` (-INFINITY when
        none), rounded half away from zero and never rounded to 0; a negative factor never
        turns a negative score into a preference."""
        best: dict[str, int] = {}  # attribute value (lower case) -> best score there
        for other, weight in res.allowed.items():
            value = self._attr(other, attr)
            if value is not None and self._available(other):
                key = value.lower()
                best[key] = max(best.get(key, -INFINITY), weight)
        for node in sorted(work):
            value = self._attr(node, attr)
            score = best.get(value.lower(), -INFINITY) if value is not None else -INFINITY
            if factor < 0 and score < 0:
                continue
            if work[node] == _UNUSABLE:
                continue
            weight = _round_half_away(factor * score)
            if weight == 0 and score != 0:
                weight = 1 if factor > 0 else -1 if factor < 0 else 0
            new = add_scores(weight, work[node])
            if positive and new < 0 and work[node] > 0:
                work[node] = _UNUSABLE  # made negative: marked, and 1 in the end
                continue
            if positive and new < 0 and work[node] == 0:
                continue
            work[node] = new

    def _add_dependents(self, res: _Res, col: _Coloc) -> None:
        """pcmk__add_dependent_scores: the preferences of a resource colocated with ``res``
        (and of those colocated with it, in turn) added to ``res``'s scores."""
        if not self._has_influence(col):
            return
        before = dict(res.allowed)
        res.allowed = self._merge(
            col.dependent, res.id, res.allowed, col.node_attribute, col.score / INFINITY, True
        )
        what = f"colocation {col.id}: {col.dependent.id}'s preferences"
        for node in sorted(res.allowed):
            old = before.get(node)
            new = res.allowed[node]
            if old != new:
                delta = new - old if old is not None else new
                if new <= -INFINITY or new >= INFINITY:
                    delta = new
                res.parts.setdefault(node, []).append((what, delta))

    # -- assignment ------------------------------------------------------------------------

    def assign(self, res: _Res, prefer: str | None = None) -> str | None:
        """pcmk__primitive_assign: choose a node for ``res`` (a group: for its members), once;
        None when it cannot run (or on a colocation loop)."""
        if res.is_clone:
            self._assign_clone(res)
            return None
        if res.is_group:
            return self._assign_group(res, prefer)
        if res.parent is not None and not res.parent.allocating:
            self.assign(res.parent, prefer)
        if not res.provisional:
            return res.allocated_to
        if res.allocating:
            return None  # a colocation loop
        res.allocating = True
        own = [c for c in res.this_with if not any(c is i for i in res.inherited)]
        for col in res.inherited + _by_primary(own):
            archive = None
            if (col.dependent_role or "").lower() == "promoted" or -INFINITY < col.score < 0:
                archive = dict(res.allowed)
            self.assign(col.primary)
            self._apply_coloc(res, col.primary, col)
            if archive is not None and not self._can_run_any(res.allowed):
                res.allowed = archive
        for col in _by_dependent(res.with_this):
            self._add_dependents(res, col)
        if res.stopped_by_config:
            why = res.stop_reason or "target-role=Stopped"
            for node in self.node_order:
                self._add(res, node, -INFINITY, why)
            res.reason = why
        elif self.no_quorum_freeze and res.needs_quorum and not res.running_on:
            res.reason = "no-quorum-policy=freeze: nothing new starts without quorum"
        res.totals = dict(res.allowed)
        if not res.managed:
            self._assign_to(res, res.running_on[0] if res.running_on else None, force=True)
            res.reason = res.reason or "unmanaged: stays where it is"
        elif self.stop_all:
            self._assign_to(res, None, force=True)
            res.reason = "stop-all-resources"
        else:
            self._choose(res, prefer)
        res.allocating = False
        return res.allocated_to

    # -- clones ----------------------------------------------------------------------------

    def _dependent_preferences(self, clone: _Res, col: _Coloc) -> dict[str, int]:
        """The clone's node scores with the positive preferences of a resource colocated
        with it added, scaled by the colocation's score."""
        return self._merge(
            col.dependent,
            clone.id,
            clone.allowed,
            col.node_attribute,
            col.score / INFINITY,
            True,
            positive=True,
        )

    def _assign_clone(self, clone: _Res) -> None:
        """pcmk__clone_allocate: assign what the clone is colocated with first, gather the
        preferences of what is colocated with it (only positive ones count), then give the
        instances out over the nodes best first (distribute_children)."""
        if not clone.provisional or clone.allocating:
            return
        clone.allocating = True
        for col in _by_primary(clone.this_with):
            self.assign(col.primary)
        for col in _by_dependent(clone.with_this):
            if not self._has_influence(col):
                continue
            before = dict(clone.allowed)
            clone.allowed = self._dependent_preferences(clone, col)
            what = f"colocation {col.id}: {col.dependent.id}'s preferences"
            for node in sorted(clone.allowed):
                if before.get(node) != clone.allowed[node]:
                    delta = clone.allowed[node] - before.get(node, 0)
                    clone.parts.setdefault(node, []).append((what, delta))
        clone.totals = dict(clone.allowed)
        if clone.promotable:
            self._add_promotion_scores(clone)
        nodes = self._sort_nodes(clone.allowed, None)
        clone.children = sorted(clone.children, key=functools.cmp_to_key(self._cmp_instance))
        self._distribute(clone, nodes)
        if clone.promotable:
            self._set_roles(clone)
        else:
            for inst in clone.children:
                inst.role = "Started" if self._node_of(inst) is not None else ""
        clone.provisional = False
        clone.allocating = False

    # -- promotable clones -----------------------------------------------------------------

    @staticmethod
    def _node_of(inst: _Res) -> str | None:
        """The node an instance (a group instance: its first member) was assigned to."""
        if inst.is_group:
            return inst.children[0].allocated_to if inst.children else None
        return inst.allocated_to

    def _add_promotion_scores(self, clone: _Res) -> None:
        """pcmk__add_promotion_scores: a positive promotion score (``master-<rsc>``) counts
        for placing an instance on a node that can run it, and raises its priority."""
        for inst in clone.children:
            for node in sorted(inst.allowed):
                if not self._available(node):
                    continue
                score = self._promotion_score(inst, node) or 0
                if score > 0:
                    inst.allowed[node] = add_scores(inst.allowed[node], score)
                    inst.parts.setdefault(node, []).append(("promotion score", score))
                inst.priority = max(inst.priority, score)

    def _promotion_score(self, inst: _Res, node: str) -> int | None:
        """The promotion score of an instance on a node (a group's: the sum of its members'),
        None when none is set or it does not apply there."""
        if inst.is_group:
            scores = [self._promotion_score(m, node) for m in inst.children]
            given = [s for s in scores if s is not None]
            return sum(given) if given else None
        if not self._promotion_applies(inst, node):
            return None
        attrs = self.nodes[node].attrs
        names = [*dict.fromkeys(inst.history.values()), inst.id]
        clone = inst.clone
        if clone is not None and not clone.unique:
            names.append(inst.base)
        for name in names:
            value = attrs.get(f"master-{name}")
            if value is not None:
                return char2score(value)
        return None

    def _promotion_applies(self, inst: _Res, node: str) -> bool:
        """promotion_score_applies: the score on a node counts where the instance is active;
        for an anonymous clone also where no instance is active but the resource was probed;
        when the instance is known nowhere, everywhere; otherwise where it is known. Never
        where the instance may not run."""
        clone = inst.clone
        ok = False
        if clone is not None and not clone.unique:
            members = [m for i in clone.children for m in i.primitives() if m.base == inst.base]
            active = next((m for m in members if node in m.running_on), None)
            if active is inst or (active is None and any(node in m.known for m in members)):
                ok = True
        nowhere = not inst.running_on and not inst.known
        ok = ok or nowhere or node in inst.known or node in inst.running_on
        return ok and inst.allowed.get(node, -1) >= 0

    def _set_roles(self, clone: _Res) -> None:
        """pcmk__set_instance_roles: each placed instance's promotion priority (its promotion
        score where it goes, -1 without one; role="Promoted" locations; role-specific
        colocations), then promotion_order, then the first promoted-max eligible instances
        (priority not negative, promoted-node-max per node) are promoted, the rest are
        unpromoted."""
        for inst in clone.children:
            chosen = self._node_of(inst)
            inst.role = ""
            if chosen is None:
                inst.promo_priority = inst.sort_index = 0
                continue
            target = (inst.meta.get("target-role") or "").lower()
            if target in ("unpromoted", "slave"):
                priority = -INFINITY
            else:
                score = self._promotion_score(inst, chosen)
                priority = score if score is not None else -1
            for loc in self.promoted_locations.get(clone.id, []):
                score = self._location_score(clone, loc, chosen)
                if score is not None:
                    priority = add_scores(priority, score)
            inst.promo_priority = priority
            first = inst.children[0] if inst.is_group and inst.children else inst
            for col in _by_primary(first.this_with):
                if col.dependent_role in ("Promoted", "Unpromoted"):
                    self._influence_priority(inst, chosen, col)
            inst.sort_index = inst.promo_priority
        self._promotion_order(clone)
        count: dict[str, int] = {}
        promoted = 0
        for inst in clone.children:
            chosen = self._node_of(inst)
            if chosen is None:
                continue
            can = promoted < clone.promoted_max and self._can_promote(clone, inst, chosen, count)
            if not can:
                inst.role = "Unpromoted"
                continue
            count[chosen] = count.get(chosen, 0) + 1
            inst.role = "Promoted"
            promoted += 1
        for inst in clone.children:
            for p in inst.primitives():
                p.role = inst.role

    def _location_score(self, res: _Res, loc: Location, node: str) -> int | None:
        """The score a location constraint gives ``res`` on ``node`` (None: not there)."""
        if loc.rule is None:
            return loc.score if loc.node == node else None
        ctx = self._node_ctx(self.nodes[node], res, loc.re_groups)
        if rule_matches(loc.rule, ctx, self.index.rules):
            return rule_score(loc.rule, ctx, self.index.rules)
        return None

    def _influence_priority(self, inst: _Res, chosen: str, col: _Coloc) -> None:
        """influence_priority: a role-specific colocation of the promotable clone with
        something placed adds its score to the instance's priority where they meet (takes
        it away for Unpromoted); a mandatory one that is not met forbids promotion."""
        primary = col.primary
        if primary.is_clone and primary.promotable:
            # pcmk__update_promotion_priority: with the other clone's instance in the role
            pair = next(
                (
                    i
                    for i in primary.children
                    if self._node_of(i) == chosen
                    and (col.primary_role is None or i.role == col.primary_role)
                ),
                None,
            )
            if pair is not None:
                inst.promo_priority = add_scores(inst.promo_priority, col.score)
            elif col.score >= INFINITY:
                inst.promo_priority = -INFINITY
            return
        targets = primary.children if primary.is_clone else [primary]
        for target in targets:
            node = self._node_of(target)
            if node is None:
                continue
            attr = col.node_attribute or "#id"
            if (self._attr(chosen, attr) or "").lower() != (self._attr(node, attr) or "").lower():
                if col.score >= INFINITY and col.dependent_role == "Promoted":
                    inst.promo_priority = -INFINITY
                continue
            role = target.role or ("Started" if node is not None else "")
            if col.primary_role is not None and col.primary_role != role:
                continue
            factor = -1 if col.dependent_role == "Unpromoted" else 1
            inst.promo_priority = add_scores(factor * col.score, inst.promo_priority)

    def _promotion_order(self, clone: _Res) -> None:
        """promotion_order: each instance's priority is added to the clone's score where it
        goes, with the preferences of what a promoted instance is colocated with and of what
        is colocated with a promoted instance; each instance's sort index becomes the
        clone's score on its node, and the instances are sorted by it, then by current
        role, then as for assignment."""
        clone.merging = True
        for inst in clone.children:
            chosen = self._node_of(inst)
            if chosen is None or inst.sort_index < 0 or chosen not in clone.allowed:
                continue
            clone.allowed[chosen] = add_scores(inst.sort_index, clone.allowed[chosen])
        for col in clone.this_with:
            if col.dependent_role == "Promoted":
                clone.allowed = self._merge(
                    col.primary,
                    clone.id,
                    clone.allowed,
                    col.node_attribute,
                    col.score / INFINITY,
                    col.score < INFINITY,
                )
        for col in clone.with_this:
            if self._has_influence(col) and col.primary_role == "Promoted":
                clone.allowed = self._dependent_preferences(clone, col)
        for inst in clone.children:
            chosen = self._node_of(inst)
            if not all(p.managed for p in inst.primitives()) and inst.role_now == "Promoted":
                inst.sort_index = INFINITY
            elif chosen is not None and inst.sort_index >= 0 and chosen in clone.allowed:
                inst.sort_index = clone.allowed[chosen]
        clone.merging = False
        rank = {"Promoted": 3, "Unpromoted": 2, "Started": 1}

        def cmp(a: _Res, b: _Res) -> int:
            if a.sort_index != b.sort_index:
                return -1 if a.sort_index > b.sort_index else 1
            ra, rb = rank.get(self._role_now(a), 0), rank.get(self._role_now(b), 0)
            if ra != rb:
                return -1 if ra > rb else 1
            return self._cmp_instance(a, b)

        clone.children = sorted(clone.children, key=functools.cmp_to_key(cmp))

    @staticmethod
    def _role_now(inst: _Res) -> str:
        """An instance's current role (a group instance's: its members' highest)."""
        rank = {"Promoted": 3, "Unpromoted": 2, "Started": 1}
        roles = [p.role_now for p in inst.primitives() if p.running_on]
        return max(roles, key=lambda r: rank.get(r, 0)) if roles else ""

    def _can_promote(self, clone: _Res, inst: _Res, node: str, count: dict[str, int]) -> bool:
        """can_be_promoted: placed (all of a group instance's members), managed (an unmanaged
        one only stays promoted), a sort index (its priority merged with the clone's score
        there) not negative, on a node that can run resources and has fewer than
        promoted-node-max promoted instances."""
        managed = all(p.managed for p in inst.primitives())
        if any(p.allocated_to is None for p in inst.primitives()):
            return False  # (a group instance: every member must run)
        if not managed:
            if self._role_now(inst) != "Promoted":
                return False
        elif inst.sort_index < 0 or not self._available(node):
            return False
        if node not in clone.allowed:
            return False
        return count.get(node, 0) < clone.promoted_node_max or not managed

    def _distribute(self, clone: _Res, nodes: list[str]) -> None:
        """distribute_children: first keep active instances where they are (up to an even
        share per node), then assign the rest; instances beyond clone-max are banned."""
        clone.count = {n: 0 for n in nodes}
        available = sum(1 for n in nodes if self._available(n))
        limit = clone.clone_max
        all_coloc = limit < available
        loop_max = max(1, limit // available) if available else 1
        allocated = 0
        for inst in clone.children:
            if allocated >= limit:
                break
            where = inst.active_nodes()
            # (a failed instance is not kept; a group instance is not marked failed for a
            # failed member in Pacemaker 2.1.5)
            if not where or not inst.provisional or (not inst.is_group and inst.failed):
                continue
            current = where[0]
            if not self._available(current) or self.nodes[current].weight < 0:
                continue
            if clone.count.get(current, 0) >= loop_max:
                continue
            if self._allocate_instance(clone, inst, current, all_coloc):
                allocated += 1
        for inst in clone.children:
            if not inst.provisional:
                continue
            if allocated >= limit:
                self.location(inst, None, -INFINITY, "clone-max reached")
                inst.reason = f"{clone.id} has clone-max={limit} instances already"
                for p in inst.primitives():
                    p.reason = p.reason or inst.reason
            elif self._allocate_instance(clone, inst, None, all_coloc):
                allocated += 1

    def _allocate_instance(
        self, clone: _Res, inst: _Res, prefer: str | None, all_coloc: bool
    ) -> bool:
        """allocate_instance: the clone's colocations go to the instance (its positive
        preferences for others only when not every node gets an instance), nodes full or
        banned for the clone are banned for it, and it is assigned; when it was to stay on
        ``prefer`` but another node is better, it is put back for the second round."""
        if not inst.provisional:
            return inst.allocated_to is not None
        if inst.allocating:
            return False
        taken = [
            col
            for col in _by_primary(clone.this_with)
            if all_coloc or col.score < 0 or col.score == INFINITY
        ]
        inst.this_with.extend(taken)
        if not inst.is_group:
            inst.inherited = taken[::-1] + inst.inherited
        for col in clone.with_this:
            if self._has_influence(col) and (all_coloc or col.score < 0):
                inst.with_this.append(col)
        if prefer is not None and inst.allowed.get(prefer, -1) < 0:
            return False
        for node in sorted(inst.allowed):
            self._can_run_instance(clone, inst, node)
        backup = dict(inst.allowed)
        chosen = self.assign(inst, prefer)
        if chosen is not None and prefer is not None and chosen != prefer:
            inst.allowed = backup
            if inst.is_group:
                # Pacemaker 2.1.5 cannot take a group's assignment back (the group itself
                # has no node): its members stay where they went, but the instance does not
                # count, neither for clone-max nor for the node's clone-node-max.
                return False
            self._unassign(inst)
            chosen = None
        if chosen is not None:
            clone.count[chosen] = clone.count.get(chosen, 0) + 1
        return chosen is not None

    def _can_run_instance(self, clone: _Res, inst: _Res, node: str) -> None:
        """can_run_instance: ban the instance from a node that cannot run resources, that the
        clone may not use, or that has clone-node-max instances already (an orphan from
        all)."""
        allowed = clone.allowed.get(node)
        if not self._available(node) or inst.orphan or allowed is None:
            self._update_score(inst, node, -INFINITY, "the clone may not run there")
        elif allowed < 0:
            self._update_score(inst, node, allowed, f"{clone.id}'s score")
        elif clone.count.get(node, 0) >= clone.clone_node_max:
            self._update_score(
                inst, node, -INFINITY, f"clone-node-max={clone.clone_node_max} reached"
            )

    def _update_score(self, res: _Res, node: str, score: int, what: str) -> None:
        """common_update_score: add to a node already in the table (of the members too)."""
        if node in res.allowed:
            res.allowed[node] = add_scores(res.allowed[node], score)
            res.parts.setdefault(node, []).append((what, score))
        for child in res.children:
            self._update_score(child, node, score, what)

    def _unassign(self, res: _Res) -> None:
        """pcmk__unassign_resource: take an assignment back (and the capacity it took)."""
        for child in res.children:
            self._unassign(child)
        node = res.allocated_to
        if node is not None and not res.is_group:
            n = self.nodes[node]
            n.num_resources -= 1
            for key, value in res.utilization.items():
                n.capacity[key] = n.capacity.get(key, 0) + value
        res.allocated_to = None
        res.provisional = True

    def _cmp_instance(self, a: _Res, b: _Res) -> int:
        """pcmk__cmp_instance (Pacemaker 2.1.5), in the order instances are assigned: of two
        active ones, the one active on fewer nodes; one not active where it may no longer run
        (such a one counts as inactive from here on); the higher priority; the active one;
        the one whose node can run resources; whose clone may run there; the one not failed;
        the one whose clone's colocations score its current node higher; else the lower
        instance number. Location scores do not order the instances: only colocations."""
        wa, wb = a.active_nodes(), b.active_nodes()
        if wa and wb and len(wa) != len(wb):
            return -1 if len(wa) < len(wb) else 1
        na = wa[0] if wa and a.allowed.get(wa[0], -1) >= 0 else None
        nb = wb[0] if wb and b.allowed.get(wb[0], -1) >= 0 else None
        ok_a, ok_b = not wa or na is not None, not wb or nb is not None
        if ok_a != ok_b:
            return -1 if ok_a else 1
        if a.priority != b.priority:
            return -1 if a.priority > b.priority else 1
        if na is None or nb is None:
            if na is None and nb is None:
                return 0  # (two inactive instances keep their order)
            return 1 if na is None else -1
        ca, cb = self._available(na), self._available(nb)
        if ca != cb:
            return -1 if ca else 1
        clone = a.clone
        pa = clone is not None and na in clone.allowed
        pb = clone is not None and nb in clone.allowed
        if not pa and not pb:
            return 0
        if pa != pb:
            return -1 if pa else 1
        fa = any(p.failed for p in a.primitives())
        fb = any(p.failed for p in b.primitives())
        if fa != fb:
            return 1 if fa else -1
        sa, sb = self._colocation_score(a, na), self._colocation_score(b, nb)
        if sa != sb:
            return -1 if sa > sb else 1
        return self._instance_number(a) - self._instance_number(b)

    @staticmethod
    def _instance_number(inst: _Res) -> int:
        tail = inst.id.rsplit(":", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    def _colocation_score(self, inst: _Res, node: str) -> int:
        """cmp_instance_by_colocation: the score of an instance's current node (starting from
        0) after its clone's colocations with others and (positive only) the preferences of
        what is colocated with its clone."""
        clone = inst.clone
        work = {node: 0}
        if clone is None:
            return 0
        for col in clone.this_with:
            work = self._merge(
                col.primary, inst.id, work, col.node_attribute, col.score / INFINITY, False
            )
        for col in clone.with_this:
            if self._has_influence(col):
                work = self._merge(
                    col.dependent,
                    inst.id,
                    work,
                    col.node_attribute,
                    col.score / INFINITY,
                    False,
                    positive=True,
                )
        return work[node]

    def _apply_clone_primary(self, dependent: _Res, clone: _Res, col: _Coloc) -> None:
        """clone_rsc_colocation_rh: a primitive (or a clone's instance) with a clone. With
        interleave (the dependent's clone asks for it), with the clone's instance on the best
        node for the dependent; INFINITY: only where instances were assigned; otherwise
        with each instance in turn."""
        if clone.provisional:
            return
        if clone.promotable and col.primary_role is not None:
            if dependent.provisional:
                self._with_promotable(dependent, clone, col)
            # (an instance of a promotable clone placed already: its priority, later)
            return
        dep_clone = col.dependent if col.dependent.is_clone else None
        interleave = (
            dep_clone is not None
            and _true(dep_clone.meta.get("interleave"))
            and dep_clone.clone_node_max == clone.clone_node_max
        )
        if interleave:
            pair = self._compatible_instance(dependent, clone)
            if pair is not None:
                self._apply_coloc(dependent, pair, col)
            elif col.score >= INFINITY:
                # it cannot run at all (Pacemaker assigns it nowhere)
                dependent.reason = f"no instance of {clone.id} to pair with (interleave)"
                for node in sorted(dependent.allowed):
                    dependent.allowed[node] = -INFINITY
                    dependent.parts.setdefault(node, []).append(
                        (f"colocation {col.id}: {dependent.reason}", -INFINITY)
                    )
            return
        if col.score >= INFINITY:
            nodes = {
                inst.allocated_to
                for inst in clone.children
                if inst.allocated_to is not None
                and all(p.managed or not p.failed for p in inst.primitives())
            }
            what = f"colocation {col.id} with {clone.id}"
            for node in sorted(dependent.allowed):
                if node not in nodes:
                    dependent.allowed[node] = -INFINITY
                    dependent.parts.setdefault(node, []).append((what, -INFINITY))
            return
        for inst in clone.children:
            self._apply_coloc(dependent, inst, col)

    def _with_promotable(self, dependent: _Res, clone: _Res, col: _Coloc) -> None:
        """pcmk__update_dependent_with_promotable: a colocation with a promotable clone in a
        role. Optional: the score where an instance in that role goes. Mandatory (unless
        promoted with promoted): only there, with the instance's score added."""
        attr = col.node_attribute or "#uname"
        what = f"colocation {col.id} with {clone.id} ({col.primary_role})"
        affected: dict[str, int] = {}
        for inst in clone.children:
            node = self._node_of(inst)
            if node is None or inst.role != col.primary_role:
                continue
            affected.setdefault(node, inst.totals.get(node, 0) if not inst.is_group else 0)
            if col.score >= INFINITY:
                continue
            value = (self._attr(node, attr) or "").lower()
            for other in sorted(dependent.allowed):
                if (self._attr(other, attr) or "").lower() == value:
                    dependent.allowed[other] = add_scores(dependent.allowed[other], col.score)
                    dependent.parts.setdefault(other, []).append((what, col.score))
        both_promoted = col.dependent_role == "Promoted" and col.primary_role == "Promoted"
        if col.score >= INFINITY and not both_promoted:
            for node in sorted(dependent.allowed):
                delta = affected.get(node)
                if delta is None:
                    dependent.allowed[node] = -INFINITY
                    dependent.parts.setdefault(node, []).append((what, -INFINITY))
                elif delta:
                    dependent.allowed[node] = add_scores(dependent.allowed[node], delta)
                    dependent.parts.setdefault(node, []).append((what, delta))

    def _compatible_instance(self, dependent: _Res, clone: _Res) -> _Res | None:
        """find_compatible_child: the clone's instance assigned to the dependent's node, or
        (not assigned yet) to the best node for the dependent that has one."""
        if dependent.allocated_to is not None:
            candidates = [dependent.allocated_to]
        else:
            candidates = self._sort_nodes(dependent.allowed, None)
        for node in candidates:
            for inst in clone.children:
                if inst.allocated_to == node:
                    return inst
        return None

    def _assign_group(self, res: _Res, prefer: str | None) -> str | None:
        """A group's members in order. The group's own colocations move to its members: those
        of the group with others to the first member, those of others with the group to the
        last, which the internal colocations tie to the rest."""
        if not res.provisional:
            return res.allocated_to
        if res.allocating:
            return None
        if not res.children:
            res.provisional = False
            return None
        res.allocating = True
        first, last = res.children[0], res.children[-1]
        first.this_with.extend(res.this_with)
        res.this_with = []
        last.with_this.extend(res.with_this)
        res.with_this = []
        group_node: str | None = None
        for i, child in enumerate(res.children):
            node = self.assign(child, prefer)
            if i == 0:
                group_node = node
        res.allocating = False
        res.provisional = False
        colocated = _true(res.meta.get("collocated"), True)
        res.allocated_to = group_node if colocated else None
        return res.allocated_to

    def _sort_nodes(self, table: Mapping[str, int], running: str | None) -> list[str]:
        """Nodes best first, as pcmk__sort_nodes: by score (nodes that cannot run resources
        last), then (balanced) free capacity, then fewer assigned resources and the node the
        resource is active on (neither with minimal), then the name."""

        def weight(name: str) -> int:
            return table[name] if self._available(name) else -INFINITY

        if self.strategy == "minimal":
            return sorted(table, key=lambda n: (-weight(n), n))
        if self.strategy != "balanced":
            return sorted(
                table,
                key=lambda n: (-weight(n), self.nodes[n].num_resources, n != running, n),
            )

        def compare(a: str, b: str) -> int:
            wa, wb = weight(a), weight(b)
            if wa != wb:
                return -1 if wa > wb else 1
            c = self._compare_capacity(a, b)
            if c != 0:
                return c
            na, nb = self.nodes[a].num_resources, self.nodes[b].num_resources
            if na != nb:
                return -1 if na < nb else 1
            if running is not None and running in (a, b) and a != b:
                return -1 if a == running else 1
            return -1 if a < b else (1 if a > b else 0)

        return sorted(table, key=functools.cmp_to_key(compare))

    def _compare_capacity(self, a: str, b: str) -> int:
        """pcmk__compare_node_capacities: negative when ``a`` has more free capacity on more
        utilization attributes than ``b``."""
        ca, cb = self.nodes[a].capacity, self.nodes[b].capacity
        result = 0
        for key in sorted(ca):
            va, vb = ca[key], cb.get(key, 0)
            if va > vb:
                result -= 1
            elif va < vb:
                result += 1
        for key in sorted(cb):
            if key in ca:
                continue
            va, vb = 0, cb[key]
            if va > vb:
                result -= 1
            elif va < vb:
                result += 1
        return result

    def _colocated_group(self, res: _Res) -> list[_Res]:
        """The primitives that must share a node with ``res`` (INFINITY colocations either way,
        through groups and their members), for the capacity check."""
        seen: list[_Res] = []
        todo = [res]
        while todo:
            r = todo.pop()
            if r in seen:
                continue
            seen.append(r)
            if r.in_group and r.parent is not None:
                todo.append(r.parent)
            if not r.is_clone:
                todo.extend(r.children)
            todo.extend(c.primary for c in r.this_with if c.score >= INFINITY)
            todo.extend(c.dependent for c in r.with_this if c.score >= INFINITY)
        return [r for r in seen if r.kind == "primitive"]

    def _enough(self, node: str, need: Mapping[str, int]) -> bool:
        have = self.nodes[node].capacity
        return all(value <= have.get(key, 0) for key, value in need.items())

    def _limit_utilization(self, res: _Res) -> str | None:
        """With a utilization strategy, ban the nodes that lack the capacity for ``res`` and
        the unassigned resources that must go with it (or, when no node can take them all, for
        ``res`` alone, and then prefer the node with the most free capacity)."""
        if self.strategy == "default":
            return None
        need: dict[str, int] = {}
        for r in self._colocated_group(res):
            if r.provisional or r is res:
                for key, value in r.utilization.items():
                    need[key] = need.get(key, 0) + value
        candidates = [n for n in sorted(res.allowed) if self._available(n) and res.allowed[n] >= 0]
        prefer = None
        if any(self._enough(n, need) for n in candidates):
            check = need
        else:
            check = res.utilization
            # (Pacemaker keeps the first of equally capable nodes in its hash table's order,
            # which is not reproduced: here the lowest name.)
            for n in candidates:
                if prefer is None or self._compare_capacity(n, prefer) < 0:
                    prefer = n
        for n in candidates:
            if not self._enough(n, check):
                self._add(res, n, -INFINITY, "not enough capacity (placement-strategy)")
        return prefer

    def _choose(self, res: _Res, prefer: str | None) -> None:
        """assign_best_node: the preferred node if it is as good as the best, else the best,
        else on a tie with the best (a positive score) the node it is active on."""
        prefer = self._limit_utilization(res) or prefer
        running = res.running_on[0] if res.running_on else None
        ordered = self._sort_nodes(res.allowed, running)
        if not ordered:
            self._assign_to(res, None, force=False)
            res.reason = res.reason or "no node is allowed"
            return
        best = ordered[0]
        if (
            prefer is not None
            and prefer in res.allowed
            and res.allowed[prefer] >= res.allowed[best]
            and self._available(prefer)
            and res.allowed[prefer] >= 0
        ):
            self._assign_to(res, prefer, force=False)
            return
        chosen = best
        if (
            res.clone is None
            and res.allowed[best] > 0
            and self._available(best)
            and running is not None
            and running in res.allowed
            and self._available(running)
            and res.allowed[running] >= 0
        ):
            for name in ordered[1:]:
                if res.allowed[name] != res.allowed[best] or not self._available(name):
                    break
                if name == running:
                    chosen = name
        self._assign_to(res, chosen, force=False)

    def _assign_to(self, res: _Res, node: str | None, *, force: bool) -> None:
        """Record the choice (unless ``force``, a node it cannot run on means none) and take
        the node's capacity."""
        if (
            not force
            and node is not None
            and (res.allowed.get(node, -INFINITY) < 0 or not self._available(node))
        ):
            res.reason = res.reason or "no node can run it"
            node = None
        res.provisional = False
        res.allocated_to = node
        if node is not None:
            n = self.nodes[node]
            n.num_resources += 1
            for key, value in res.utilization.items():
                n.capacity[key] = n.capacity.get(key, 0) - value

    # -- allocation order ------------------------------------------------------------------

    def allocation_order(self) -> list[_Res]:
        """Top-level resources by priority, document order among equals; under a utilization
        strategy then by the score on their current node, then by their scores on the nodes
        in node order (pcmk__sort_resources)."""
        ordered = sorted(self.resources, key=lambda r: -r.priority)  # stable: document order
        if self.strategy == "default":
            return ordered
        nodes = self._sort_nodes({n: self.nodes[n].weight for n in self.node_order}, None)
        merged: dict[str, dict[str, int]] = {}
        for r in ordered:
            merged[r.id] = self._forward_scores(r)

        def current(r: _Res) -> int:
            if not r.running_on:
                return -INFINITY
            return merged[r.id].get(r.running_on[0], -INFINITY)

        def compare(a: _Res, b: _Res) -> int:
            if a.priority != b.priority:
                return -1 if a.priority > b.priority else 1
            ca, cb = current(a), current(b)
            if ca != cb:
                return -1 if ca > cb else 1
            for n in nodes:
                wa = merged[a.id].get(n, -INFINITY)
                wb = merged[b.id].get(n, -INFINITY)
                if wa != wb:
                    return -1 if wa > wb else 1
            return 0

        return sorted(ordered, key=functools.cmp_to_key(compare))

    def _forward_scores(self, res: _Res) -> dict[str, int]:
        """A resource's scores merged with those of the resources it is colocated with, scaled
        by each colocation's score (what Pacemaker sorts resources by under a utilization
        placement strategy). A group counts from its last member, which its internal
        colocations tie to all the others."""
        start = res.children[-1] if res.is_group and res.children else res
        return self._merge_forward(start, dict(start.allowed), None, 1.0, first=True)

    def _merge_forward(
        self, res: _Res, nodes: dict[str, int], attr: str | None, factor: float, *, first: bool
    ) -> dict[str, int]:
        """pcmk__native_merge_weights with pe_weights_forward: follow the resources ``res`` is
        colocated with (its primaries); a step that would leave no node is rolled back."""
        if res.is_group:
            if not res.children:
                return nodes
            res = res.children[0]
        if res.merging:
            return nodes
        res.merging = True
        work = dict(nodes)
        if not first:
            self._add_matching(work, res, attr or "#uname", factor)
        if self._can_run_any(work):
            multiplier = -1 if factor < 0 else 1
            cols = list(res.this_with)
            if res.in_group and res.parent is not None and res is res.parent.children[0]:
                cols += res.parent.this_with  # a group's own colocations apply to its first member
            for col in _by_primary(cols):
                work = self._merge_forward(
                    col.primary,
                    work,
                    col.node_attribute,
                    multiplier * col.score / INFINITY,
                    first=False,
                )
        elif not first:
            res.merging = False
            return nodes
        res.merging = False
        return work

    # -- the transition's outcome ----------------------------------------------------------

    def fenceable(self, name: str) -> bool:
        """pe_can_fence for an unclean node: fencing enabled, a device, and quorum (or
        no-quorum-policy=ignore, or the node is still in the membership)."""
        node = self.nodes[name]
        if not node.status.unclean:
            return False
        if not self.stonith_enabled or not self.have_stonith_rsc:
            return False  # fencing disabled, or no device to do it
        return self.quorate or self.no_quorum_policy == "ignore" or node.status.online

    def _members(self, rid: str, *, first_only: bool = False) -> list[_Res]:
        """The primitives an ordering names (a group's members, or only its first: in an
        ordered group the others wait for it)."""
        res = self.by_id.get(rid)
        if res is None:
            return []
        if res.is_group:
            return res.children[:1] if first_only and _ordered(res) else list(res.children)
        return [res]

    def _order_graph(
        self,
    ) -> tuple[
        dict[str, list[tuple[str, str, bool, str | None]]], dict[str, list[tuple[str, bool]]]
    ]:
        """Which starts need which (then -> (first, why, symmetrical, any-of set)), and which
        stops must happen before which (rsc -> (the resource that stops before it, whether
        that is a group's order))."""
        needs: dict[str, list[tuple[str, str, bool, str | None]]] = {}
        stop_before: dict[str, list[tuple[str, bool]]] = {}
        seen: set[tuple[str, str, str, str]] = set()
        for o in orderings(self.cib):
            # Between the same two actions only the first ordering counts (Pacemaker does not
            # add a second one): an optional one listed first makes a later mandatory moot.
            key = (o.first, o.first_action, o.then, o.then_action)
            if key in seen:
                continue
            seen.add(key)
            if not o.mandatory:
                continue
            first_res, then_res = self.by_id.get(o.first), self.by_id.get(o.then)
            if first_res is None or then_res is None:
                continue
            if o.first_action == "start" and o.then_action == "start":
                if first_res.is_clone or then_res.is_clone:
                    self._clone_start_needs(
                        o.id, o.symmetrical, first_res, then_res, needs, o.any_of
                    )
                else:
                    for first in self._members(o.first):
                        for then in self._members(o.then, first_only=True):
                            needs.setdefault(then.id, []).append(
                                (first.id, o.id, o.symmetrical, o.any_of)
                            )
                if o.symmetrical:  # the inverse: then stops before first stops
                    for first in first_res.primitives():
                        for then in then_res.primitives():
                            stop_before.setdefault(first.id, []).append((then.id, False))
            elif (
                o.first_action == "promote"
                and o.then_action == "start"
                and first_res.is_clone
                and first_res.promotable
            ):
                # after the promotion: a promoted instance must be there to start after
                self._clone_start_needs(
                    o.id, o.symmetrical, first_res, then_res, needs, o.any_of, promoted_only=True
                )
                if o.symmetrical:
                    for first in first_res.primitives():
                        for then in then_res.primitives():
                            stop_before.setdefault(first.id, []).append((then.id, False))
            elif o.first_action == "start" and o.then_action == "promote" and then_res.is_clone:
                self.promote_needs.setdefault(then_res.id, []).append((o.id, first_res))
            elif o.first_action == "stop" and o.then_action == "stop":
                for first in first_res.primitives():
                    for then in then_res.primitives():
                        stop_before.setdefault(then.id, []).append((first.id, False))
        groups = [g for r in self.resources for g in ([r] if r.is_group else r.children)]
        for res in groups:
            if res.is_group and _ordered(res):
                for before, member in pairwise(res.children):
                    needs.setdefault(member.id, []).append(
                        (before.id, f"group {res.id}", True, None)
                    )
                    stop_before.setdefault(before.id, []).append((member.id, True))
        return needs, stop_before

    def _clone_start_needs(
        self,
        why: str,
        symmetrical: bool,
        first_res: _Res,
        then_res: _Res,
        needs: dict[str, list[tuple[str, str, bool, str | None]]],
        any_of: str | None = None,
        promoted_only: bool = False,
    ) -> None:
        """The starts a mandatory start-then-start ordering with a clone makes wait. A clone
        has started when enough of its instances (clone-min, default 1) have, each instance
        when its last member has. With ``interleave`` on the second clone, each of its
        instances waits only for the first clone's instance on its own node, and one that
        has none there is not started at all (as Pacemaker inhibits it) — unless the first
        clone has clone-min or the order require-all="false" (``any_of``): then it waits for
        that many instances anywhere. ``promoted_only``: the order is after the first clone's
        promotion, so only its instances to be promoted count."""
        units = [i for i in then_res.children if not i.orphan] if then_res.is_clone else [then_res]
        ends = first_res.primitives()
        if first_res.is_clone:
            firsts = [
                i
                for i in first_res.children
                if not i.orphan and (not promoted_only or i.role == "Promoted")
            ]
            ends = [i.primitives()[-1] for i in firsts if i.children]
            ends += [i for i in firsts if i.kind == "primitive"]
        one_or_more = first_res.is_clone and (
            any_of is not None or _int(first_res.meta.get("clone-min")) > 0
        )
        interleave = (
            first_res.is_clone
            and then_res.is_clone
            and not one_or_more
            and _true(then_res.meta.get("interleave"))
        )
        key = f"clone {why} {first_res.id}" if first_res.is_clone else any_of
        if first_res.is_clone:
            self.any_min[key or ""] = max(1, _int(first_res.meta.get("clone-min"), 1))
        for unit in units:
            prims = unit.primitives()
            if not prims:
                continue
            entry = prims[0]
            # (in an unordered group every member waits for what the group waits for)
            entries = prims[:1] if not unit.is_group or _ordered(unit) else prims
            if interleave:
                node = unit.allocated_to if unit.is_group else entry.allocated_to
                if node is None:
                    continue
                mates = [
                    i.primitives()[-1]
                    for i in first_res.children
                    if not i.orphan
                    and i.primitives()
                    and self._node_of(i) == node
                    and (not promoted_only or i.role == "Promoted")
                ]
                if not mates:
                    for p in prims:
                        p.allocated_to = None
                        p.reason = f"no instance of {first_res.id} on {node} (interleave)"
                    continue
                for e in entries:
                    for mate in mates:
                        needs.setdefault(e.id, []).append((mate.id, why, symmetrical, None))
                continue
            for e in entries:
                if not ends:
                    self.no_instances.setdefault(e.id, []).append((first_res.id, why, symmetrical))
                for end in ends:
                    needs.setdefault(e.id, []).append((end.id, why, symmetrical, key))

    def outcome(self) -> dict[str, tuple[str, ...]]:
        """What one transition leaves running, each primitive's nodes."""
        prims = [p for r in self.resources for p in r.primitives()]
        by_id = {p.id: p for p in prims}
        fenced = {n for n in self.node_order if self.fenceable(n)}
        needs, stop_before = self._order_graph()

        def running(p: _Res) -> list[str]:
            return [n for n in p.running_on if n not in fenced]

        def cannot_stop_here(p: _Res, in_group: bool = False) -> bool:
            """Active, and a stop it needs cannot happen: unmanaged, or on an unclean node that
            cannot be fenced. Across an ordering constraint a healthy unmanaged resource
            blocks nothing (crm_simulate stops what it is ordered after); inside a group,
            and after a blocked failure, it does."""
            here = running(p)
            unmanaged = not p.managed and (p.failed or in_group)
            return bool(here) and (unmanaged or any(self.nodes[n].status.unclean for n in here))

        def quorum_stops(p: _Res) -> bool:
            """Without quorum (no-quorum-policy stop or demote) what needs quorum stops; it
            was placed all the same, as Pacemaker does."""
            return self.no_quorum_stop and p.needs_quorum

        required_memo: dict[str, bool] = {}

        def start_required(p: _Res) -> bool:
            """Whether the transition plans a start of ``p`` (runnable or not): it starts or
            moves, is recovered, or something it is ordered after starts."""
            if p.id in required_memo:
                return required_memo[p.id]
            required_memo[p.id] = False
            required = False
            if p.managed and p.allocated_to is not None:
                required = running(p) != [p.allocated_to] or p.failed or restart_forced(p)
            required_memo[p.id] = required
            return required

        def restart_forced(p: _Res) -> bool:
            return any(
                start_required(by_id[first_id])
                for first_id, _, _, _ in needs.get(p.id, [])
                if first_id in by_id
            )

        # A mandatory colocation with a primitive that was placed but whose start cannot run
        # blocks the start of its dependent (all of a group's members) too. (One placed
        # nowhere has no start to block anything: the colocation already did.)
        blocked_by: dict[str, list[str]] = {}
        for col in self.colocations:
            primary = col.primary
            if (
                col.score >= INFINITY
                and not primary.is_group
                and not primary.is_clone
                and primary.parent is None
                and primary.allocated_to is not None
                # (with the promoted role only: it blocks the promotion, not the start)
                and col.dependent_role != "Promoted"
            ):
                for member in col.dependent.primitives():
                    blocked_by.setdefault(member.id, []).append(col.primary.id)
        # A primitive or group colocated (INFINITY) with a clone: blocked when the clone's
        # instance where it goes cannot start (in the role the colocation asks for).
        blocked_by_clone: dict[str, list[tuple[str, list[str]]]] = {}
        for col in self.colocations:
            primary, dependent = col.primary, col.dependent
            if col.score < INFINITY or not primary.is_clone or dependent.is_clone:
                continue
            if col.dependent_role == "Promoted" or dependent.clone is not None:
                continue
            members = dependent.primitives()
            node = members[0].allocated_to if members else None
            if node is None:
                continue
            ends = [
                i.primitives()[-1].id
                for i in primary.children
                if self._node_of(i) == node
                and i.primitives()
                # A role means something only for a promotable clone; a non-promotable one's
                # instances satisfy any role, as when the dependent was placed (unrunnable-2).
                and (
                    col.primary_role is None or not primary.promotable or i.role == col.primary_role
                )
            ]
            for member in members:
                blocked_by_clone.setdefault(member.id, []).append((primary.id, ends))

        # A clone colocated (INFINITY) with a clone none of whose instances was placed: every
        # start of the dependent clone is blocked (pcmk__block_colocation_dependents looks at
        # the primary clone as a whole), and its running instances stop, whatever order the
        # two were placed in. (Placed instances whose starts an ordering blocks do not block
        # a running dependent in crm_simulate 2.1.5: unrunnable-2.)
        blocked_by_whole: dict[str, list[_Res]] = {}
        for col in self.colocations:
            primary, dependent = col.primary, col.dependent
            if col.score < INFINITY or not primary.is_clone or not dependent.is_clone:
                continue
            if col.dependent_role == "Promoted" or primary is dependent:
                continue
            for member in dependent.primitives():
                blocked_by_whole.setdefault(member.id, []).append(primary)

        unprobed: dict[str, str] = {}

        def can_start(p: _Res) -> bool:
            """Whether p's own start could run, before looking at what it waits for."""
            frozen = self.no_quorum_freeze and p.needs_quorum and not running(p)
            if p.allocated_to is None or frozen or quorum_stops(p):
                return False
            # A start waits for the resource's probes: one on a node that is still joining
            # (pending) cannot run, so a resource never seen there cannot start.
            if start_required(p) and p.managed:
                for name in self.node_order:
                    status = self.nodes[name].status
                    if status.pending and status.online and not self._probed(p, name):
                        unprobed[p.id] = f"its probe on pending node {name} cannot run"
                        return False
            # An unmanaged resource starts nothing: its start "happens" only when it already
            # runs healthily and nothing before it forces a restart.
            return p.managed or not (p.failed or not running(p) or restart_forced(p))

        runnable: dict[str, bool] = {}

        def failing_needs(p: _Res) -> list[tuple[str, str, bool]]:
            """The starts ``p`` waits for that cannot run: (first, why, symmetrical)."""
            failing: list[tuple[str, str, bool]] = []
            any_sets: dict[str, list[tuple[str, str, bool]]] = {}
            for first_id, why, symmetrical, any_of in needs.get(p.id, []):
                first = by_id.get(first_id)
                if first is None:
                    continue
                entry = (first_id, why, symmetrical)
                if any_of is not None:
                    any_sets.setdefault(any_of, []).append(entry)
                elif not runnable[first_id]:
                    failing.append(entry)
            for key, entries in any_sets.items():
                enough = self.any_min.get(key, 1)
                if sum(1 for e in entries if runnable[e[0]]) < enough:
                    failing.extend(entries)
            failing.extend(self.no_instances.get(p.id, []))
            for primary_id in blocked_by.get(p.id, []):
                if not runnable[primary_id]:
                    failing.append((primary_id, "mandatory colocation", True))
            for clone_id, ends in blocked_by_clone.get(p.id, []):
                if not any(runnable.get(e, False) for e in ends):
                    failing.append((clone_id, "mandatory colocation", True))
            for clone in blocked_by_whole.get(p.id, []):
                if all(q.allocated_to is None for q in clone.primitives()):
                    failing.append((clone.id, "mandatory colocation", True))
            return failing

        # Which starts can run: a start that waits for one that cannot is unrunnable too. Start
        # from what each could do alone and take away until nothing changes (a loop of
        # orderings does not block itself).
        runnable.update({p.id: can_start(p) for p in prims})
        changed = True
        while changed:
            changed = False
            for p in prims:
                if runnable[p.id] and failing_needs(p):
                    runnable[p.id] = False
                    changed = True

        def start_ok(p: _Res) -> bool:
            return runnable[p.id]

        stop_memo: dict[str, bool] = {}

        def stop_blocked(p: _Res) -> bool:
            """Whether stopping ``p`` waits for a stop that cannot happen."""
            if p.id in stop_memo:
                return stop_memo[p.id]
            stop_memo[p.id] = False
            blocked = False
            for other_id, in_group in stop_before.get(p.id, []):
                other = by_id.get(other_id)
                if other is None or not running(other):
                    continue
                if cannot_stop_here(other, in_group) or stop_blocked(other):
                    blocked = True
                    self.reasons.setdefault(
                        p.id, f"its stop waits for {other_id}, which cannot stop"
                    )
                    break
            stop_memo[p.id] = blocked
            return blocked

        final: dict[str, tuple[str, ...]] = {}
        for p in prims:
            here = running(p)
            if not p.managed:
                final[p.id] = tuple(here)
                continue
            if cannot_stop_here(p) and here != ([p.allocated_to] if p.allocated_to else []):
                final[p.id] = tuple(p.running_on)
                unclean = next(n for n in here if self.nodes[n].status.unclean)
                self.reasons[p.id] = f"cannot be stopped on unclean node {unclean}"
                continue
            target: tuple[str, ...] = ()
            if quorum_stops(p):
                self.reasons[p.id] = f"no quorum (no-quorum-policy={self.no_quorum_policy})"
            elif p.allocated_to is not None:
                if start_ok(p):
                    target = (p.allocated_to,)
                else:
                    failing = failing_needs(p)
                    # Already running there, it needs no start, unless it is failed (a
                    # recovery is a restart) or the order also stops it (symmetrical).
                    stays = (
                        here == [p.allocated_to]
                        and not p.failed
                        and not any(sym for _, _, sym in failing)
                    )
                    if stays:
                        target = (p.allocated_to,)
                    elif failing:
                        first_id, why, _ = failing[0]
                        self.reasons[p.id] = f"{first_id} cannot start ({why})"
                    else:
                        self.reasons[p.id] = unprobed.get(
                            p.id, "no-quorum-policy=freeze: it cannot start"
                        )
            if here and list(target) != here and stop_blocked(p):
                target = tuple(here)
            final[p.id] = target
        # restarted in place because something it is ordered after starts
        restarted = {
            p.id
            for p in prims
            if p.managed and not p.failed and running(p) == [p.allocated_to] and restart_forced(p)
        }
        self._promotion_outcome(final, runnable, running, restarted)
        return final

    def _promotion_outcome(
        self,
        final: Mapping[str, tuple[str, ...]],
        runnable: Mapping[str, bool],
        running: Callable[[_Res], list[str]],
        restarted: set[str],
    ) -> None:
        """The roles one transition leaves a promotable clone's instances in. An instance
        kept where it is (its stop cannot happen) keeps its role, and then (it being
        promoted) no other instance is promoted; a promotion does not happen when what it
        waits for cannot start (an order before the promotion, a mandatory colocation of
        the promoted role with a placed resource whose start cannot run): that instance
        stays unpromoted. A promoted instance restarted in place (for an order) that is to stay
        promoted is demoted, stopped and started, but crm_simulate 2.1.5 plans no promotion
        after that start (its role does not change): it ends the transition unpromoted."""
        for clone in self.resources:
            if not clone.is_clone or not clone.promotable:
                continue
            prims = clone.primitives()
            stuck_promoted = False
            for p in prims:
                here = running(p)
                if here and list(final.get(p.id, ())) == here and p.allocated_to not in here:
                    p.role = p.role_now or p.role
                    stuck_promoted = stuck_promoted or p.role_now == "Promoted"
            blocked = self._promotion_blocked(clone, runnable)
            for inst in clone.children:
                members = inst.primitives()
                # A cloned group's promote pseudo-action implies its members' promotes: when
                # one member is really promoted (recovered, moved, started or newly promoted),
                # a member restarted in place for it is promoted again too.
                if any(self._promotes(p, running(p)) for p in members):
                    continue
                for p in members:
                    again = p.role == "Promoted" and p.role_now == "Promoted"
                    if p.id in restarted and again and list(final.get(p.id, ())):
                        p.role = "Unpromoted"
            for inst in clone.children:
                new = [p for p in inst.primitives() if p.role == "Promoted"]
                if not new or all(p.role_now == "Promoted" and p.running_on for p in new):
                    continue
                if stuck_promoted or blocked or self._colocation_blocks(inst, runnable):
                    for p in inst.primitives():
                        if p.role == "Promoted":
                            p.role = "Unpromoted"

    @staticmethod
    def _promotes(p: _Res, here: list[str]) -> bool:
        """Whether the transition plans a promote of ``p`` for a reason of its own: it is to
        be promoted and is not already promoted, healthy, where it goes."""
        if p.role != "Promoted" or p.allocated_to is None:
            return False
        return p.role_now != "Promoted" or p.failed or here != [p.allocated_to]

    def _promotion_blocked(self, clone: _Res, runnable: Mapping[str, bool]) -> bool:
        """Whether something ordered before the clone's promotion cannot start."""
        for _, first in self.promote_needs.get(clone.id, []):
            prims = first.primitives()
            if first.is_clone:
                if not any(runnable.get(p.id, False) for p in prims):
                    return True
            elif prims and not all(runnable.get(p.id, False) for p in prims):
                return True
        return False

    def _colocation_blocks(self, inst: _Res, runnable: Mapping[str, bool]) -> bool:
        """Whether the promoted role of ``inst`` is colocated (INFINITY) with a placed
        primitive or group whose start cannot run."""
        first = inst.children[0] if inst.is_group and inst.children else inst
        for col in first.this_with:
            if col.dependent_role != "Promoted" or col.score < INFINITY:
                continue
            primary = col.primary
            if primary.is_clone:
                continue
            prims = primary.primitives()
            placed = bool(prims) and prims[0].allocated_to is not None
            if placed and not all(runnable.get(p.id, False) for p in prims):
                return True
        return False


# ---------------------------------------------------------------------------------------------


def place(cib: Cib, state: ClusterState, now: float | None = None) -> Placement:
    """Where every primitive and group runs after one transition (see the module docstring).

    ``now`` (seconds since the epoch) evaluates date rules and failure timeouts; None uses the
    CIB's ``execution-date`` (date rules are then false when it has none). Raises
    :class:`PlacementUnsupported` for bundles and remote/guest nodes, and
    :class:`hastack.crm.rules.RuleError` (naming the element) for a rule it cannot read.
    """
    _check_supported(cib)
    losses = ticket_losses(cib)
    doomed = ticket_fencing(cib, state, losses)
    if doomed:
        # the nodes fenced for a lost ticket go down in this transition: nothing stays there
        nodes = dict(state.nodes)
        for name, why in doomed.items():
            nodes[name] = replace(nodes[name], unclean=True, reason=why)
        state = replace(state, nodes=nodes)
    s = _Scheduler(cib, state, now)
    s.unpack_nodes()
    s.unpack_resources()
    locs = locations(cib)
    for loc in locs:
        res = s.by_id.get(loc.rsc)
        if res is not None and (loc.discovery or "").lower() == "exclusive":
            res.exclusive_discover = True
            for child in res.children:
                child.exclusive_discover = True
    # (the status first: it may add orphan clone instances, which get the defaults too)
    s.apply_status()
    s.apply_defaults()
    s.unpack_colocations(colocations(cib))
    s.apply_locations(locs, s.health_scores())
    s.apply_tickets(losses)
    s.apply_shutdown_locks()
    s.apply_stickiness()
    s.apply_failure_thresholds()
    order = s.allocation_order()
    for res in order:
        s.assign(res)
    final = s.outcome()
    assigned: dict[str, str | None] = {}
    scores: dict[str, dict[str, tuple[ScorePart, ...]]] = {}
    totals: dict[str, dict[str, int]] = {}
    reasons = dict(s.reasons)
    groups: dict[str, str | None] = {}
    unmanaged: set[str] = set()
    meta: dict[str, Mapping[str, str]] = {}
    merged: dict[str, tuple[str, ...]] = {}
    roles: dict[str, dict[str, str]] = {}
    for res in s.resources:
        if res.is_group:
            nodes = final.get(res.children[0].id, ()) if res.children else ()
            groups[res.id] = nodes[0] if nodes else None
        if res.is_clone:
            scores[res.id] = {n: tuple(res.parts.get(n, ())) for n in sorted(res.parts)}
            totals[res.id] = {n: res.totals[n] for n in sorted(res.totals)}
            if not res.unique and res.definition is not None:
                # (listed even without instances: clone-max=0)
                inner = res.definition.child
                for prim in inner.children if isinstance(inner, Group) else (inner,):
                    merged[prim.id] = ()
        for p in res.primitives():
            assigned[p.id] = p.allocated_to
            scores[p.id] = {n: tuple(p.parts.get(n, ())) for n in sorted(p.parts)}
            totals[p.id] = {n: p.totals[n] for n in sorted(p.totals)}
            if p.reason and p.id not in reasons:
                reasons[p.id] = p.reason
            if not p.managed:
                unmanaged.add(p.id)
            meta[p.id] = p.meta
            clone = p.clone
            role = "Started"
            if clone is not None and clone.promotable:
                # (kept where it is without a new role: the role it has)
                role = p.role or p.role_now or "Unpromoted"
            if clone is None or clone.unique:
                merged[p.id] = final[p.id]
                roles[p.id] = {n: role for n in final[p.id]}
            else:
                # An anonymous clone's instances are gathered under their primitive's id.
                nodes = set(merged.get(p.base, ())) | set(final[p.id])
                merged[p.base] = tuple(sorted(nodes))
                # Two instances on one node (Pacemaker 2.1.5 can put a cloned group's
                # instances together) share the node's one history entry, whose last
                # action is the promotion: a promoted instance there makes it promoted.
                gathered = roles.setdefault(p.base, {})
                for n in final[p.id]:
                    if gathered.get(n) != "Promoted":
                        gathered[n] = role
                meta.setdefault(p.base, p.meta)
                if not p.managed:
                    unmanaged.add(p.base)
    roles = {rsc: {n: roles[rsc][n] for n in nodes} for rsc, nodes in merged.items()}
    return Placement(
        assigned=assigned,
        final=merged,
        roles=roles,
        groups=groups,
        scores=scores,
        totals=totals,
        reasons=reasons,
        order=tuple(r.id for r in order),
        unmanaged=frozenset(unmanaged),
        meta=meta,
    )
