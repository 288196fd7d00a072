"""The sync handshake: from both sides' state at connect time to what the connection does next.

It strings together, in DRBD 8.4's order: the identifier comparison (generations.compare); the
disk states (a side whose disk is Inconsistent is always the target of a Consistent one); the
after-sb policies for a split brain (splitbrain.recover); the manual `--discard-my-data`; and the
refusals -- a sync source must not be Inconsistent, and a resync never changes the data under a
Primary that is using it (drbd.conf's rr-conflict: hastack always disconnects, as
docs/compat.md and options.py say; `always-asbp` is likewise not acted on).

A resync that follows a split brain must cover the blocks *either* side changed: the sides
exchange bitmaps and OR them (Bitmap.merge) before the source starts; `Handshake.merge_bitmaps`
says so. A split brain older than the bitmaps (rule 100), once resolved by `--discard-my-data`,
gets a full sync: the bitmaps do not describe what changed since the sides diverged. (DRBD 8.4
syncs only the bitmaps there; hastack chooses the safe side.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hastack.replica.generations import Comparison, Generations, SyncDecision, compare
from hastack.replica.model import Net
from hastack.replica.splitbrain import Outcome, Recovery, Role, Side, recover

Action = Literal["connected", "sync-source", "sync-target", "disconnect"]
INITIAL_SPLIT_BRAIN = "initial-split-brain"
SPLIT_BRAIN = "split-brain"


@dataclass(frozen=True)
class NodeState:
    """One side as it reports itself when connecting."""

    name: str
    role: Role
    generations: Generations
    inconsistent: bool = False  # its disk is Inconsistent (mid-resync target, never synced)
    crashed_primary: bool = False
    changed_blocks: int = 0  # bits set in its bitmap
    discard_my_data: bool = False  # `connect --discard-my-data`: the manual split-brain fix
    can_demote: bool = False


@dataclass(frozen=True)
class Handshake:
    action: Action
    full: bool  # every block (else only the bitmap's)
    comparison: Comparison
    reason: str
    recovery: Recovery | None = None
    handlers: tuple[str, ...] = ()  # handlers the local node runs, in order
    merge_bitmaps: bool = False  # a split brain: resync the union of both sides' changes


def _as_side(node: NodeState, resolves: bool) -> Side:
    return Side(
        node.name,
        node.role,
        node.changed_blocks,
        node.generations.primary_at_split,
        resolves,
        node.can_demote,
    )


def sync_handshake(
    net: Net, local: NodeState, peer: NodeState, *, local_resolves_conflicts: bool
) -> Handshake:
    cmp = compare(
        local.generations,
        peer.generations,
        local_crashed_primary=local.crashed_primary,
        peer_crashed_primary=peer.crashed_primary,
        local_resolves_conflicts=local_resolves_conflicts,
    )
    decision = cmp.decision
    if decision is SyncDecision.UNRELATED:
        return Handshake("disconnect", False, cmp, f"unrelated data, refusing to connect ({cmp})")

    full = decision.full
    reasons = [str(cmp)]
    if local.inconsistent != peer.inconsistent:
        # Whatever the identifiers say, Consistent data is never overwritten by Inconsistent.
        full = full or decision is SyncDecision.SPLIT_BRAIN_OLD
        decision = SyncDecision.TARGET_BITMAP if local.inconsistent else SyncDecision.SOURCE_BITMAP
        reasons.append("the Inconsistent side becomes sync target")

    handlers: list[str] = []
    recovery: Recovery | None = None
    split = decision in (SyncDecision.SPLIT_BRAIN, SyncDecision.SPLIT_BRAIN_OLD)
    local_role = local.role
    if split:
        handlers.append(INITIAL_SPLIT_BRAIN)
    if decision is SyncDecision.SPLIT_BRAIN:
        recovery = recover(
            net,
            _as_side(local, local_resolves_conflicts),
            _as_side(peer, not local_resolves_conflicts),
        )
        reasons.append(f"{recovery.slot} {recovery.policy}: {recovery.reason}")
        if recovery.handler:
            handlers.append(recovery.handler)
        if recovery.demote == local.name:
            local_role = "secondary"
        if recovery.outcome is Outcome.LOCAL_DISCARDS:
            decision = SyncDecision.TARGET_BITMAP
        elif recovery.outcome is Outcome.PEER_DISCARDS:
            decision = SyncDecision.SOURCE_BITMAP
    if decision in (SyncDecision.SPLIT_BRAIN, SyncDecision.SPLIT_BRAIN_OLD):
        if local.discard_my_data and not peer.discard_my_data:
            decision = SyncDecision.TARGET_BITMAP
            reasons.append("split brain resolved manually: this side discards its data")
        elif peer.discard_my_data and not local.discard_my_data:
            decision = SyncDecision.SOURCE_BITMAP
            reasons.append("split brain resolved manually: the peer discards its data")
        else:
            handlers.append(SPLIT_BRAIN)
            reasons.append("split brain detected but unresolved, dropping the connection")
            return Handshake(
                "disconnect", False, cmp, "; ".join(reasons), recovery, tuple(handlers)
            )
        full = full or cmp.decision is SyncDecision.SPLIT_BRAIN_OLD

    def done(action: Action, why: str | None = None) -> Handshake:
        if why:
            reasons.append(why)
        return Handshake(
            action,
            full and action != "connected",
            cmp,
            "; ".join(reasons),
            recovery,
            tuple(handlers),
            merge_bitmaps=split and action in ("sync-source", "sync-target") and not full,
        )

    if decision.local_is_source and local.inconsistent:
        return done("disconnect", "this side would be sync source but it is Inconsistent")
    if decision.local_is_target and local_role == "primary" and not local.inconsistent:
        return done("disconnect", "this side would be sync target but it is Primary")
    if decision.local_is_source:
        return done("sync-source")
    if decision.local_is_target:
        return done("sync-target")
    return done("connected")
