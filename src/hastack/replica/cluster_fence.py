"""hastack's crm-fence-peer and crm-unfence-peer: the decision, sans-IO.

DRBD's resource-level fencing through the cluster manager: when a Primary loses its peer (or a
Secondary is about to be promoted without it), the `fence-peer` handler forbids the Promoted
role of the resource's promotable clone on every node but this one -- a location constraint

    <rsc_location id="drbd-fence-by-handler-RES-CLONE" rsc="CLONE">
      <rule role="Promoted" score="-INFINITY" ...>
        <expression attribute="#uname" operation="ne" value="THIS NODE" .../>

-- so the cluster cannot promote the peer's (possibly older) data, and answers with the exit
code DRBD 8.4 reads (engine.FENCE_PEER_*): 4 when the peer is still a cluster member (it
stays Unpromoted: as good as outdated), 7 when it has left and the cluster's fence history
shows it was fenced since it was last seen (with resource-and-stonith the handler waits a
bounded time for that), 5 when it has left unfenced. After the peer was resynced, the
`after-resync-target` handler (`unfence-peer`) removes the constraint again.

Everything here is a pure function of the CIB (an lxml tree) and a `ClusterView` (membership
and fence history, gathered by the CLI wrapper in hastack.cli.replica_fence_cmd); it returns
the CIB operations to apply (hastack.crm.operations dicts) and the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hastack.replica.engine import (
    FENCE_PEER_OUTDATED,
    FENCE_PEER_STONITHED,
    FENCE_PEER_UNREACHABLE,
)

CONSTRAINT_PREFIX = "drbd-fence-by-handler"
EXIT_OK = 0
EXIT_ERROR = 1  # for fence-peer: not one of DRBD's answers, so "the helper is broken"
# The agents whose promotable clones are DRBD-like resources: (class, provider, type).
REPLICA_AGENTS = (("ocf", "hastack", "replica"), ("ocf", "linbit", "drbd"))
_PROMOTED_ROLES = ("Promoted", "Master")


@dataclass(frozen=True)
class FenceEvent:
    """One entry of the cluster's fence history (hastack fence history)."""

    target: str
    state: str  # pending, done, failed
    completed: float | None  # wall clock


@dataclass(frozen=True)
class ClusterView:
    """What the cluster says about its nodes, now."""

    members: frozenset[str]  # the nodes in this node's membership (online)
    nodes: frozenset[str]  # every node the cluster knows
    peer_last_seen: float | None = None  # wall clock when the peer was last heard; None: never
    fence_history: tuple[FenceEvent, ...] = ()


@dataclass(frozen=True)
class FenceDecision:
    exit_code: int | None  # None: not decided yet, look again (waiting for STONITH)
    message: str
    operations: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def constraint_id(resource: str, clone: str) -> str:
    return f"{CONSTRAINT_PREFIX}-{resource}-{clone}"


def _nvpairs(element: Any, tag: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for block in element.findall(tag):
        for pair in block.findall("nvpair"):
            name, value = pair.get("name"), pair.get("value")
            if name is not None and value is not None:
                values[name] = value
    return values


def _configuration(root: Any) -> Any:
    config = root.find("configuration")
    if config is None:
        raise ValueError("the CIB has no <configuration>")
    return config


def promotable_clones(root: Any, resource: str) -> list[str]:
    """The ids of the promotable clones whose primitive is ocf:hastack:replica or
    ocf:linbit:drbd with drbd_resource=`resource`."""
    resources = _configuration(root).find("resources")
    found: list[str] = []
    for clone in [] if resources is None else resources.iter("clone", "master"):
        if clone.tag == "clone":
            promotable = _nvpairs(clone, "meta_attributes").get("promotable", "false")
            if promotable.lower() not in ("true", "yes", "on", "1"):
                continue
        for primitive in clone.iter("primitive"):
            agent = (primitive.get("class"), primitive.get("provider"), primitive.get("type"))
            if agent not in REPLICA_AGENTS:
                continue
            if _nvpairs(primitive, "instance_attributes").get("drbd_resource") == resource:
                found.append(clone.get("id") or "")
                break
    return found


def _constraints(root: Any) -> list[Any]:
    constraints = _configuration(root).find("constraints")
    return [] if constraints is None else list(constraints.findall("rsc_location"))


def fenced_for(root: Any, ident: str) -> str | None:
    """The node the constraint `ident` leaves the Promoted role to ("" if it is not of the
    form this module writes), None when there is no such constraint."""
    for location in _constraints(root):
        if location.get("id") != ident:
            continue
        rules = location.findall("rule")
        if len(rules) != 1:
            return ""
        rule = rules[0]
        role = rule.get("role") or location.get("role")
        expressions = rule.findall("expression")
        if (
            role not in _PROMOTED_ROLES
            or rule.get("score") not in ("-INFINITY", "-infinity")
            or len(expressions) != 1
            or expressions[0].get("attribute") != "#uname"
            or expressions[0].get("operation") != "ne"
        ):
            return ""
        return expressions[0].get("value") or ""
    return None


def _fenced_since_seen(view: ClusterView, peer: str) -> FenceEvent | None:
    """A completed fencing of the peer since it was last heard from (any, if never)."""
    since = view.peer_last_seen if view.peer_last_seen is not None else float("-inf")
    for event in view.fence_history:
        if (
            event.target == peer
            and event.state == "done"
            and event.completed is not None
            and event.completed >= since
        ):
            return event
    return None


def decide_fence_peer(
    root: Any,
    view: ClusterView,
    *,
    resource: str,
    this_node: str,
    peer: str,
    fencing: str,
    waited: float,
    stonith_wait: float,
) -> FenceDecision:
    """fence-peer: the constraint to add (if it is not there yet) and the exit code; None as
    the exit code while waiting (`waited` of `stonith_wait` seconds so far) for the cluster
    to fence a peer that left."""
    clones = promotable_clones(root, resource)
    if not clones:
        return FenceDecision(
            EXIT_ERROR,
            f"no promotable clone of ocf:hastack:replica or ocf:linbit:drbd with "
            f"drbd_resource={resource} in the CIB: nothing to fence with",
        )
    if peer == this_node:
        return FenceDecision(EXIT_ERROR, f"the peer is this node ({peer}): check DRBD_PEER")
    if peer not in view.nodes:
        return FenceDecision(
            EXIT_ERROR,
            f"the DRBD peer {peer!r} is not a node of the cluster (its nodes: "
            f"{', '.join(sorted(view.nodes)) or 'none'}): the cluster's node names must be "
            "drbd.conf's host names",
        )
    operations: list[dict[str, Any]] = []
    placed: list[str] = []
    for clone in clones:
        ident = constraint_id(resource, clone)
        holder = fenced_for(root, ident)
        if holder == this_node:
            placed.append(f"{ident} (already there)")
            continue
        if holder:
            return FenceDecision(
                EXIT_ERROR,
                f"{ident} leaves the Promoted role of {clone} to {holder} only: {holder} "
                f"fenced this node ({this_node}), whose data may be older; refusing to turn it "
                "around (after a resync, unfence-peer removes it; or remove it by hand)",
            )
        operations.append(
            {
                "op": "constraint-location-rule",
                "id": ident,
                "resource": clone,
                "score": "-INFINITY",
                "role": "Promoted",
                "attribute": "#uname",
                "operation": "ne",
                "value": this_node,
                "replace": holder is not None,  # one of another form: ours now
            }
        )
        placed.append(ident)
    where = f"Promoted only on {this_node} ({', '.join(placed)})"
    if peer in view.members:
        return FenceDecision(
            FENCE_PEER_OUTDATED,
            f"{peer} is a cluster member: {where} keeps it from being promoted",
            tuple(operations),
        )
    fenced = _fenced_since_seen(view, peer)
    if fencing == "resource-and-stonith":
        if fenced is not None:
            return FenceDecision(
                FENCE_PEER_STONITHED,
                f"{peer} was fenced by the cluster; {where}",
                tuple(operations),
            )
        if waited < stonith_wait:
            return FenceDecision(
                None,
                f"{peer} left the cluster; waiting for it to be fenced ({waited:.0f} of "
                f"{stonith_wait:.0f} s)",
                tuple(operations),
            )
        return FenceDecision(
            FENCE_PEER_UNREACHABLE,
            f"{peer} left the cluster and was not fenced within {stonith_wait:.0f} s; {where}",
            tuple(operations),
        )
    state = "was fenced" if fenced is not None else "is unreachable"
    return FenceDecision(
        FENCE_PEER_UNREACHABLE, f"{peer} left the cluster ({state}); {where}", tuple(operations)
    )


def decide_unfence_peer(root: Any, *, resource: str) -> FenceDecision:
    """unfence-peer: remove every constraint fence-peer placed for `resource`."""
    prefix = f"{CONSTRAINT_PREFIX}-{resource}-"
    idents = [
        loc.get("id") for loc in _constraints(root) if (loc.get("id") or "").startswith(prefix)
    ]
    if not idents:
        return FenceDecision(EXIT_OK, f"no {prefix}* constraint: nothing to remove")
    return FenceDecision(
        EXIT_OK,
        f"removed {', '.join(idents)}",
        tuple({"op": "constraint-remove", "id": ident} for ident in idents),
    )
