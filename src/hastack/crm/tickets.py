"""Tickets: resources that may run only while the cluster holds a ticket (``rsc_ticket``).

A ticket is granted to a cluster (by an operator with ``crm_ticket``, or by a ticket manager
such as booth in multi-site setups) and recorded in the status section's ``<tickets>`` as a
``ticket_state`` with ``granted`` and ``standby``. An ``rsc_ticket`` constraint makes a
resource (or every resource of its sets; tags and templates stand for their resources)
depend on one. What the scheduler does, as Pacemaker 2.1.5 does it (checked on the
``ticket-*`` cases of its regression corpus):

* granted and not in standby: nothing; the constraint does not influence placement;
* granted but in **standby**: the resources are given up gracefully: they stop, or with
  ``rsc-role="Promoted"`` they are demoted (unless ``loss-policy=stop``, which stops them),
  and nothing is fenced or frozen;
* **not granted** (revoked, or never granted — no ``ticket_state`` at all): the
  ``loss-policy`` decides — ``stop`` (the default) stops them; ``demote`` keeps a promotable
  resource from being promoted and stops any other; ``fence`` fences every node where one is
  active ("deadman ticket was lost"), which stops everything there; ``freeze`` leaves the
  active ones where they are, untouched, and starts none. With ``rsc-role="Promoted"``,
  ``fence`` and ``freeze`` concern the promoted role only: the instances may still run
  unpromoted, none is promoted, and only a node where one is promoted is fenced (or only a
  promoted instance is frozen).

:func:`ticket_losses` lists, per resource, the ticket constraints that hold it back now;
:func:`ticket_fencing` the nodes to fence for them. The placement stage turns losses into
-INFINITY scores (or, for ``freeze``, keeps an active resource where it is), the transition
stage adds the fencing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from hastack.crm.cib.model import Cib, RscTicket, parse_bool
from hastack.crm.constraints import _expand, _known, _set_members
from hastack.crm.state import ClusterState, Role

__all__ = ["FENCE_REASON", "TicketLoss", "ticket_fencing", "ticket_losses"]

LossAction = Literal["stop", "demote", "fence", "freeze"]
LOSS_POLICIES: tuple[LossAction, ...] = ("stop", "demote", "fence", "freeze")
# The reason Pacemaker gives a fencing for a lost ticket; kept word for word because operators
# search logs for it.
FENCE_REASON = "deadman ticket was lost"


@dataclass(frozen=True)
class TicketLoss:
    """Resource ``rsc`` (as the constraint names it: a primitive, group or clone) must not run
    in ``role`` (None: at all; "Promoted": not promoted) because of ``ticket``."""

    rsc: str
    ticket: str
    constraint: str
    action: LossAction
    role: str | None = None
    standby: bool = False

    @property
    def why(self) -> str:
        state = "is in standby" if self.standby else "is not granted"
        return f"ticket {self.ticket} {state} ({self.constraint}, loss-policy {self.action})"


def _granted(cib: Cib) -> dict[str, tuple[bool, bool]]:
    """Ticket -> (granted, standby) from the status section; an unreadable value is false,
    as Pacemaker reads it."""
    out: dict[str, tuple[bool, bool]] = {}
    for state in cib.tickets or ():
        try:
            granted = parse_bool(state.granted, False)
        except ValueError:
            granted = False
        try:
            standby = parse_bool(state.standby, False)
        except ValueError:
            standby = False
        out[state.id] = (granted, standby)
    return out


def _role(text: str | None) -> str | None:
    if text is None:
        return None
    value = {"master": "Promoted", "slave": "Unpromoted"}.get(text.lower(), text)
    return None if value.lower() == "started" else value


def _resources(cib: Cib, constraint: RscTicket) -> Iterable[tuple[str, str | None]]:
    """(resource, role) pairs the constraint covers: its rsc, or every member of its sets
    (each set may carry its own role). Tags and templates stand for their resources, and
    references to missing resources are skipped, as for the other constraints."""
    known, _, tags = _known(cib)
    if constraint.rsc is not None:
        for rsc in _expand(constraint.rsc, known, tags):
            yield rsc, _role(constraint.rsc_role)
        return
    for resource_set in constraint.sets:
        for rsc in _set_members(resource_set, known, tags):
            yield rsc, _role(resource_set.role)


def ticket_losses(cib: Cib) -> list[TicketLoss]:
    """The ticket constraints that hold a resource back now, in document order."""
    tickets = _granted(cib)
    out: list[TicketLoss] = []
    for constraint in cib.constraints:
        if not isinstance(constraint, RscTicket):
            continue
        granted, standby = tickets.get(constraint.ticket, (False, False))
        if granted and not standby:
            continue
        policy = (constraint.loss_policy or "stop").lower()
        if policy not in LOSS_POLICIES:
            policy = "stop"  # crm_verify reports it; the scheduler falls back to stopping
        for rsc, role in _resources(cib, constraint):
            action: LossAction
            if granted:  # in standby: given up gracefully
                action = "demote" if role == "Promoted" and policy != "stop" else "stop"
            elif policy == "demote" and role != "Promoted":
                action = "stop"  # only a promoted role can be given up by demoting
            else:
                action = policy  # type: ignore[assignment]
            out.append(TicketLoss(rsc, constraint.ticket, constraint.id, action, role, standby))
    return out


def ticket_fencing(
    cib: Cib, state: ClusterState, losses: list[TicketLoss] | None = None
) -> dict[str, str]:
    """Node -> reason, for every node where a resource whose ticket was lost under
    ``loss-policy="fence"`` is active (in the role the constraint names). Without fencing
    enabled nothing is fenced: the resources are stopped instead."""
    if not state.stonith_enabled:
        return {}
    primitives = _primitives_of(cib)
    out: dict[str, str] = {}
    for loss in ticket_losses(cib) if losses is None else losses:
        if loss.action != "fence":
            continue
        members = primitives.get(loss.rsc, {loss.rsc})
        for entry in state.resources:
            if entry.primitive not in members or not entry.role.active:
                continue
            if loss.role == "Promoted" and entry.role is not Role.PROMOTED:
                continue
            node = state.nodes.get(entry.node)
            if node is not None and node.online and not node.unclean:
                out.setdefault(entry.node, FENCE_REASON)
    return dict(sorted(out.items()))


def _primitives_of(cib: Cib) -> dict[str, set[str]]:
    """Resource id -> the primitives inside it (a primitive: itself)."""
    out: dict[str, set[str]] = {}
    for resource in cib.resources:
        inner = getattr(resource, "child", None) or resource
        members = {p.id for p in getattr(inner, "children", ())} or {inner.id}
        out[resource.id] = members
        out[inner.id] = members
        for member in members:
            out[member] = {member}
    return out
