"""Split-brain recovery: DRBD 8.4's after-sb-0pri / 1pri / 2pri policies, and the data for the
manual path (`hastack replica resolve RES --keep NODE --dry-run`).

When the identifiers say SPLIT_BRAIN (generations.compare, rule 90), both sides wrote since they
last agreed. The policy slot is chosen by how many sides are Primary *now* (0, 1 or 2) and decides
which side discards its changes -- becomes sync target and receives the other side's data for
every block either side changed -- or that the connection is dropped (StandAlone) for a human to
decide. Every slot defaults to `disconnect`, which never discards data.

The decision is made from one side's point of view (`local`), as each DRBD node does it for
itself; `discard-local`/`discard-remote` are relative to that side. With the same configuration
and data on both nodes, both reach the same decision (tested).

Ties (equal change counts, or both younger/older) are broken by `resolves_conflicts`: the side
that holds it discards, as in DRBD, where the node holding the connection's RESOLVE_CONFLICTS
flag yields. `conflict_holder` is hastack's deterministic way of choosing that side.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Literal

from hastack.replica.bitmap import BLOCK_SIZE, Bitmap
from hastack.replica.model import Net

Role = Literal["primary", "secondary"]
PRI_LOST_AFTER_SB = "pri-lost-after-sb"


@dataclass(frozen=True)
class Side:
    """What one side knows about itself at the handshake."""

    name: str
    role: Role
    changed_blocks: int  # bits set in its bitmap: 4 KiB blocks it changed since the split
    primary_at_split: bool  # it was Primary when the split happened (bit 0 of its bitmap id)
    resolves_conflicts: bool = False  # it loses ties
    can_demote: bool = False  # a losing Primary could become Secondary (nothing holds it open)


class Outcome(enum.Enum):
    LOCAL_DISCARDS = "local-discards"  # the local side becomes sync target
    PEER_DISCARDS = "peer-discards"  # the local side becomes sync source
    DISCONNECT = "disconnect"  # StandAlone: nothing is discarded automatically


@dataclass(frozen=True)
class Recovery:
    outcome: Outcome
    slot: Literal["after-sb-0pri", "after-sb-1pri", "after-sb-2pri"]
    policy: str
    reason: str
    discarding: str | None = None  # the node that becomes sync target, if any
    demote: str | None = None  # a Primary that must give up its role first
    handler: str | None = None  # a handler the local node must run (pri-lost-after-sb)


class PolicyError(ValueError):
    """A policy that does not belong in the slot it is configured for."""


def conflict_holder(a: str, b: str) -> str:
    """hastack's tie-break: the node whose name sorts last holds RESOLVE_CONFLICTS and yields."""
    return max(a, b)


# --- after-sb-0pri -----------------------------------------------------------------------

_0PRI = (
    "disconnect",
    "discard-younger-primary",
    "discard-older-primary",
    "discard-zero-changes",
    "discard-least-changes",
    "discard-local",
    "discard-remote",
)


def _zero_pri(policy: str, local: Side, peer: Side) -> tuple[Outcome, str]:
    """The 0pri decision: which side discards, judged only from the data (not the roles)."""
    if policy.startswith("discard-node-"):
        node = policy[len("discard-node-") :]
        if node == local.name:
            return Outcome.LOCAL_DISCARDS, f"{node} is the node the policy discards"
        if node == peer.name:
            return Outcome.PEER_DISCARDS, f"{node} is the node the policy discards"
        return Outcome.DISCONNECT, f"{node} is neither {local.name} nor {peer.name}"
    if policy not in _0PRI:
        raise PolicyError(f"after-sb-0pri cannot be {policy!r}; allowed: {', '.join(_0PRI)}")
    if policy == "disconnect":
        return Outcome.DISCONNECT, "the policy is disconnect"
    if policy == "discard-local":
        return Outcome.LOCAL_DISCARDS, "the policy discards the local side"
    if policy == "discard-remote":
        return Outcome.PEER_DISCARDS, "the policy discards the remote side"

    if policy in ("discard-younger-primary", "discard-older-primary"):
        # "Older" Primary: the one that was Primary when the split happened; the younger one
        # was promoted afterwards (its bitmap id does not carry the Primary bit).
        if local.primary_at_split != peer.primary_at_split:
            local_younger = not local.primary_at_split
            local_loses = local_younger == (policy == "discard-younger-primary")
            who = local if local_loses else peer
            age = "younger" if who.primary_at_split is False else "older"
            return (
                Outcome.LOCAL_DISCARDS if local_loses else Outcome.PEER_DISCARDS,
                f"{who.name} is the {age} Primary",
            )
        # Both or neither were Primary at the split: no answer; DRBD falls back to the
        # changes-based rules, and so do we.
        fallback, why = _by_changes(local, peer, zero_only=False)
        return fallback, f"no {policy[8:]} (both sides alike), by changes: {why}"

    zero_only = policy == "discard-zero-changes"
    return _by_changes(local, peer, zero_only=zero_only)


def _by_changes(local: Side, peer: Side, *, zero_only: bool) -> tuple[Outcome, str]:
    if local.changed_blocks == 0 and peer.changed_blocks == 0:
        loser = local if local.resolves_conflicts else peer
        return _loses(loser is local), f"neither side changed anything; {loser.name} yields"
    if peer.changed_blocks == 0:
        return Outcome.PEER_DISCARDS, f"{peer.name} changed nothing since the split"
    if local.changed_blocks == 0:
        return Outcome.LOCAL_DISCARDS, f"{local.name} changed nothing since the split"
    if zero_only:
        return (
            Outcome.DISCONNECT,
            f"both sides changed data ({local.name}: {local.changed_blocks} blocks, "
            f"{peer.name}: {peer.changed_blocks}); discard-zero-changes does not choose",
        )
    counts = f"{local.name}: {local.changed_blocks} blocks, {peer.name}: {peer.changed_blocks}"
    if local.changed_blocks < peer.changed_blocks:
        return Outcome.LOCAL_DISCARDS, f"{local.name} changed fewer blocks ({counts})"
    if local.changed_blocks > peer.changed_blocks:
        return Outcome.PEER_DISCARDS, f"{peer.name} changed fewer blocks ({counts})"
    loser = local if local.resolves_conflicts else peer
    return _loses(loser is local), f"equal changes ({counts}); {loser.name} yields"


def _loses(local_loses: bool) -> Outcome:
    return Outcome.LOCAL_DISCARDS if local_loses else Outcome.PEER_DISCARDS


# --- the slots ---------------------------------------------------------------------------

_1PRI = ("disconnect", "consensus", "discard-secondary", "call-pri-lost-after-sb", "violently-as0p")
_2PRI = ("disconnect", "call-pri-lost-after-sb", "violently-as0p")


def recover(net: Net, local: Side, peer: Side) -> Recovery:
    """Apply the configured after-sb policy to a detected split brain."""
    primaries = (local.role == "primary") + (peer.role == "primary")
    if primaries == 0:
        return _as_recovery("after-sb-0pri", net.after_sb_0pri, local, peer, net.after_sb_0pri)
    if primaries == 1:
        return _one_pri(net, local, peer)
    return _two_pri(net, local, peer)


def _as_recovery(
    slot: Literal["after-sb-0pri", "after-sb-1pri", "after-sb-2pri"],
    policy: str,
    local: Side,
    peer: Side,
    zero_policy: str,
    prefix: str = "",
) -> Recovery:
    outcome, why = _zero_pri(zero_policy, local, peer)
    return Recovery(outcome, slot, policy, prefix + why, _discarding(outcome, local, peer))


def _discarding(outcome: Outcome, local: Side, peer: Side) -> str | None:
    if outcome is Outcome.LOCAL_DISCARDS:
        return local.name
    if outcome is Outcome.PEER_DISCARDS:
        return peer.name
    return None


def _one_pri(net: Net, local: Side, peer: Side) -> Recovery:
    policy = net.after_sb_1pri
    slot: Literal["after-sb-1pri"] = "after-sb-1pri"
    if policy not in _1PRI:
        raise PolicyError(f"after-sb-1pri cannot be {policy!r}; allowed: {', '.join(_1PRI)}")
    primary, secondary = (local, peer) if local.role == "primary" else (peer, local)
    if policy == "disconnect":
        return Recovery(Outcome.DISCONNECT, slot, policy, "the policy is disconnect")
    if policy == "discard-secondary":
        outcome = _loses(secondary is local)
        return Recovery(outcome, slot, policy, f"{secondary.name} is the Secondary", secondary.name)
    zero = _as_recovery(slot, policy, local, peer, net.after_sb_0pri, "after-sb-0pri: ")
    if policy == "violently-as0p":
        return zero
    if policy == "consensus":
        # Only accept the 0pri answer when it keeps the Primary's data (the one in use).
        if zero.discarding == secondary.name:
            return zero
        return Recovery(
            Outcome.DISCONNECT,
            slot,
            policy,
            f"no consensus: after-sb-0pri would not discard the Secondary ({zero.reason})",
        )
    return _pri_lost(zero, slot, policy, local, (primary,))


def _two_pri(net: Net, local: Side, peer: Side) -> Recovery:
    policy = net.after_sb_2pri
    slot: Literal["after-sb-2pri"] = "after-sb-2pri"
    if policy not in _2PRI:
        raise PolicyError(f"after-sb-2pri cannot be {policy!r}; allowed: {', '.join(_2PRI)}")
    if policy == "disconnect":
        return Recovery(Outcome.DISCONNECT, slot, policy, "the policy is disconnect")
    zero = _as_recovery(slot, policy, local, peer, net.after_sb_0pri, "after-sb-0pri: ")
    if policy == "violently-as0p":
        return zero
    return _pri_lost(zero, slot, policy, local, (local, peer))


def _pri_lost(
    zero: Recovery,
    slot: Literal["after-sb-1pri", "after-sb-2pri"],
    policy: str,
    local: Side,
    primaries: tuple[Side, ...],
) -> Recovery:
    """call-pri-lost-after-sb: the 0pri decision stands; a Primary that loses must stop being
    Primary. If it can be demoted it is, and it resyncs; if not (it is in use), it runs the
    pri-lost-after-sb handler (which usually reboots it) and the connection is dropped."""
    loser = next((side for side in primaries if side.name == zero.discarding), None)
    if loser is None:
        return Recovery(zero.outcome, slot, policy, zero.reason, zero.discarding)
    if loser.can_demote:
        return Recovery(
            zero.outcome,
            slot,
            policy,
            f"{zero.reason}; Primary {loser.name} gives up its role",
            zero.discarding,
            demote=loser.name,
        )
    return Recovery(
        Outcome.DISCONNECT,
        slot,
        policy,
        f"{zero.reason}; Primary {loser.name} lost but cannot be demoted: it runs "
        f"{PRI_LOST_AFTER_SB}",
        None,
        handler=PRI_LOST_AFTER_SB if loser is local else None,
    )


# --- the manual path ---------------------------------------------------------------------


@dataclass(frozen=True)
class ResolveSummary:
    """What `hastack replica resolve RES --keep NODE --dry-run` shows before acting."""

    keep: str
    discard: str
    kept_changed_blocks: int
    discarded_changed_blocks: int  # the changes lost for good
    resync_blocks: int  # blocks the discarding side will receive (either side changed them)

    @property
    def discarded_kib(self) -> int:
        return self.discarded_changed_blocks * BLOCK_SIZE // 1024

    @property
    def resync_kib(self) -> int:
        return self.resync_blocks * BLOCK_SIZE // 1024

    def lines(self) -> list[str]:
        return [
            f"{self.keep} changed {self.kept_changed_blocks} blocks since the split (kept)",
            f"{self.discard} changed {self.discarded_changed_blocks} blocks since the split "
            f"({self.discarded_kib} KiB, discarded)",
            f"{self.discard} becomes sync target: {self.resync_blocks} blocks "
            f"({self.resync_kib} KiB) will be copied from {self.keep}",
        ]


def resolve_summary(
    keep: str, sides: dict[str, Bitmap | int], *, union: int | None = None
) -> ResolveSummary:
    """Summarise discarding the other side's changes in favour of `keep`.

    `sides` maps both node names to their bitmaps since the split (or just their bit counts).
    With both bitmaps the resync size is exact (the OR of both); with counts only it is the sum,
    an upper bound, unless `union` is given."""
    if len(sides) != 2 or keep not in sides:
        raise ValueError(f"--keep {keep} must name one of the two nodes: {', '.join(sides)}")
    (discard,) = (name for name in sides if name != keep)
    kept, lost = sides[keep], sides[discard]
    kept_n = kept.count() if isinstance(kept, Bitmap) else kept
    lost_n = lost.count() if isinstance(lost, Bitmap) else lost
    if union is None:
        if isinstance(kept, Bitmap) and isinstance(lost, Bitmap):
            both = kept.copy()
            both.merge(lost)
            union = both.count()
        else:
            union = kept_n + lost_n
    return ResolveSummary(keep, discard, kept_n, lost_n, union)
