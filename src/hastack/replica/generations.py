"""Generation identifiers (DRBD's data-generation UUIDs) and the resync decision.

Each side of a replicated volume keeps four 64-bit identifiers: `current` names the data as it is
now; `bitmap` is non-zero while the bitmap tracks changes made since the data was last identical
to the peer's (it is the `current` of that moment); `history` keeps the two bitmap identifiers
before that. Bit 0 of an identifier is not part of its identity: it records whether the node was
Primary when the identifier was set, which is how "who became Primary first" is known after a
split brain (DRBD's discard-younger/older-primary). Comparisons mask it out.

`compare` follows the rules of DRBD 8.4's uuid compare as publicly documented (the kernel's
"uuid_compare()=N by rule R" messages, the users' guide and talks), numbered as DRBD numbers them
so that logs read the same. It is written from those rules, not from DRBD's code. It assumes the
newest handshake behaviour (DRBD's agreed protocol 96 and later): a lost "resync finished" or
"sync UUID" message is detected and the identifiers corrected (rules 34, 35, 51, 71).

Everything here is pure: randomness comes from an injected `random.Random`-like object.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Protocol

UUID_JUST_CREATED = 4  # the current identifier of metadata that was just created (create-md)
UUID_PRIMARY = 1  # bit 0: set while the node that set the identifier was Primary
UUID_NEW_BM_OFFSET = 1 << 48  # a resync source's new bitmap identifier: old one plus this
_MASK64 = (1 << 64) - 1


class Rng(Protocol):
    def getrandbits(self, k: int, /) -> int: ...


def same(a: int, b: int) -> bool:
    """Identity of two identifiers: the Primary bit does not count."""
    return (a & ~UUID_PRIMARY) == (b & ~UUID_PRIMARY)


def with_role(uuid: int, primary: bool) -> int:
    return (uuid | UUID_PRIMARY) if primary else (uuid & ~UUID_PRIMARY)


@dataclass(frozen=True)
class Generations:
    current: int = UUID_JUST_CREATED
    bitmap: int = 0
    history: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        for name, value in (
            ("current", self.current),
            ("bitmap", self.bitmap),
            ("history[0]", self.history[0]),
            ("history[1]", self.history[1]),
        ):
            if not 0 <= value <= _MASK64:
                raise ValueError(f"generation identifier {name} {value:#x} is not 64 bits")
        if len(self.history) != 2:
            raise ValueError("generation identifiers keep exactly two history entries")

    def __str__(self) -> str:
        # DRBD's log format: current:bitmap:history1:history2 in hex.
        ids = (self.current, self.bitmap, *self.history)
        return ":".join(f"{value:016X}" for value in ids)

    @property
    def primary_at_split(self) -> bool:
        """Whether this node was Primary when the bitmap started tracking changes."""
        return bool(self.bitmap & UUID_PRIMARY)

    @property
    def just_created(self) -> bool:
        return same(self.current, UUID_JUST_CREATED)


# --- lifecycle ---------------------------------------------------------------------------


def created() -> Generations:
    """The identifiers `create-md` writes."""
    return Generations(current=UUID_JUST_CREATED)


def _random_uuid(rng: Rng) -> int:
    # 0 and UUID_JUST_CREATED are special; draw again in the (astronomically rare) case.
    while True:
        value = rng.getrandbits(64) & ~UUID_PRIMARY
        if value not in (0, UUID_JUST_CREATED):
            return value


def _push_history(gens: Generations, uuid: int) -> Generations:
    return replace(gens, history=(uuid, gens.history[0]))


def set_bitmap(gens: Generations, uuid: int) -> Generations:
    """Start tracking against `uuid`; a bitmap identifier already set moves into history."""
    if gens.bitmap:
        gens = _push_history(gens, gens.bitmap)
    return replace(gens, bitmap=uuid)


def clear_bitmap(gens: Generations) -> Generations:
    """The bitmap identifier is done with (a resync finished): it moves into history."""
    if not gens.bitmap:
        return gens
    return replace(_push_history(gens, gens.bitmap), bitmap=0)


def new_current(gens: Generations, rng: Rng, *, primary: bool) -> Generations:
    """Fork the data's identity: the old current becomes the bitmap identifier (the point the
    peer was last in sync with) and a fresh random identifier becomes current."""
    return Generations(
        current=with_role(_random_uuid(rng), primary),
        bitmap=gens.current,
        history=gens.history,
    )


def on_primary_without_peer(gens: Generations, rng: Rng) -> Generations:
    """A Primary that has no connected peer is about to write: promotion while disconnected, or
    the connection lost while Primary. Its data will diverge from the peer's, so it gets a new
    current identifier -- unless the bitmap already tracks changes since an earlier split, in
    which case the existing identifiers already say everything (DRBD does the same)."""
    if gens.bitmap:
        return gens
    return new_current(gens, rng, primary=True)


def start_sync_source(gens: Generations, rng: Rng) -> tuple[Generations, int]:
    """A resync source starts: it takes a new bitmap identifier and sends it to the target.
    Derived from the old one (plus UUID_NEW_BM_OFFSET) so that a lost message can be recognised
    by rules 51 and 71; random if there was none. Returns (new identifiers, the sync UUID)."""
    if gens.bitmap and not same(gens.bitmap, UUID_JUST_CREATED):
        sync_uuid = (gens.bitmap + UUID_NEW_BM_OFFSET) & _MASK64
    else:
        sync_uuid = _random_uuid(rng)
    return set_bitmap(gens, sync_uuid), sync_uuid


def receive_sync_uuid(gens: Generations, sync_uuid: int, *, primary: bool = False) -> Generations:
    """A resync target (or the peer of `new-current-uuid --clear-bitmap`) adopts the source's
    sync UUID as its current identifier; it tracks nothing itself."""
    return replace(gens, current=with_role(sync_uuid, primary), bitmap=0)


def finish_sync_source(gens: Generations) -> Generations:
    return clear_bitmap(gens)


def finish_sync_target(
    gens: Generations, peer: Generations, *, primary: bool = False
) -> Generations:
    """A resync target that received every block takes the source's identifiers: its data is
    now the source's data. `peer` is what the source sent at the handshake; the result equals
    the source's own identifiers after finish_sync_source."""
    gens = Generations(current=gens.current, bitmap=peer.bitmap, history=peer.history)
    gens = set_bitmap(gens, gens.current)
    gens = replace(gens, current=with_role(peer.current, primary))
    return clear_bitmap(gens)


def skip_initial_sync(gens: Generations, rng: Rng) -> tuple[Generations, int]:
    """`new-current-uuid --clear-bitmap` on freshly created metadata: both sides declare their
    (e.g. zeroed) disks identical and skip the initial full sync. Returns the new identifiers
    and the UUID the peer adopts with receive_sync_uuid."""
    if not gens.just_created:
        raise ValueError(
            f"--clear-bitmap needs just-created metadata (current {UUID_JUST_CREATED:#x}), "
            f"not {gens}"
        )
    uuid = _random_uuid(rng)
    return Generations(current=uuid, bitmap=0, history=gens.history), uuid


# --- the decision ------------------------------------------------------------------------


class SyncDecision(enum.Enum):
    """The outcome of comparing both sides' identifiers, seen from the local side. The values
    are DRBD's uuid_compare results, as its logs print them."""

    NO_SYNC = 0
    SOURCE_BITMAP = 1  # the local side is sync source; only the bitmap's blocks
    TARGET_BITMAP = -1
    SOURCE_FULL = 2  # the local side is sync source; every block
    TARGET_FULL = -2
    SPLIT_BRAIN = 100  # diverged from a common bitmap identifier: after-sb policies may resolve
    SPLIT_BRAIN_OLD = -100  # diverged longer ago (common history only): disconnect, manual
    UNRELATED = -1000  # no common ancestor: refuse to connect

    @property
    def sync(self) -> bool:
        return self in _SYNCS

    @property
    def full(self) -> bool:
        return self in (SyncDecision.SOURCE_FULL, SyncDecision.TARGET_FULL)

    @property
    def local_is_source(self) -> bool:
        return self in (SyncDecision.SOURCE_BITMAP, SyncDecision.SOURCE_FULL)

    @property
    def local_is_target(self) -> bool:
        return self in (SyncDecision.TARGET_BITMAP, SyncDecision.TARGET_FULL)

    def mirrored(self) -> SyncDecision:
        """The same decision seen from the peer."""
        if self in (SyncDecision.UNRELATED, SyncDecision.SPLIT_BRAIN, SyncDecision.SPLIT_BRAIN_OLD):
            return self
        return SyncDecision(-self.value)


_SYNCS = frozenset(
    {
        SyncDecision.SOURCE_BITMAP,
        SyncDecision.TARGET_BITMAP,
        SyncDecision.SOURCE_FULL,
        SyncDecision.TARGET_FULL,
    }
)


@dataclass(frozen=True)
class Comparison:
    decision: SyncDecision
    rule: int  # DRBD's rule number
    reason: str
    local: Generations  # the local identifiers, corrected where a rule says so
    peer: Generations  # the peer's identifiers as the local side now believes them

    def __str__(self) -> str:
        return f"uuid_compare()={self.decision.value} by rule {self.rule}: {self.reason}"


def compare(
    local: Generations,
    peer: Generations,
    *,
    local_crashed_primary: bool = False,
    peer_crashed_primary: bool = False,
    local_resolves_conflicts: bool = False,
) -> Comparison:
    """Decide, from both sides' identifiers, which side has the newer data and how much must be
    resynchronised. `*_crashed_primary`: the side was Primary when it went down uncleanly (its
    metadata's crashed-primary flag). `local_resolves_conflicts`: the local side loses ties
    between two crashed Primaries (exactly one side of a connection has this set)."""

    def result(decision: SyncDecision, rule: int, reason: str) -> Comparison:
        return Comparison(decision, rule, reason, local, peer)

    me, them = local.current, peer.current
    # 0 (never set) counts as "no data" like just-created; DRBD treats two such sides
    # asymmetrically (each would be target), hastack lets neither sync: there is nothing to copy.
    me_blank = same(me, UUID_JUST_CREATED) or same(me, 0)
    them_blank = same(them, UUID_JUST_CREATED) or same(them, 0)
    if me_blank and them_blank:
        return result(SyncDecision.NO_SYNC, 10, "neither side has data yet (just created)")
    if me_blank:
        return result(SyncDecision.TARGET_FULL, 20, "only the peer has data: full sync from it")
    if them_blank:
        return result(SyncDecision.SOURCE_FULL, 30, "only this side has data: full sync to peer")

    if same(me, them):
        if peer.bitmap == 0 and local.bitmap != 0:
            # Same data, but we still track changes: we were the source of a resync whose end
            # we did not record (or the peer did not record its sync UUID).
            if same(local.bitmap, peer.history[0]) and same(local.history[0], peer.history[1]):
                local = clear_bitmap(local)
                return result(
                    SyncDecision.SOURCE_BITMAP,
                    34,
                    "was sync source, missed the resync-finished event; corrected own ids",
                )
            return result(
                SyncDecision.SOURCE_BITMAP, 36, "was sync source; the peer lost the sync UUID"
            )
        if local.bitmap == 0 and peer.bitmap != 0:
            if same(local.history[0], peer.bitmap) and same(local.history[1], peer.history[0]):
                peer = clear_bitmap(peer)
                return result(
                    SyncDecision.TARGET_BITMAP,
                    35,
                    "was sync target, the peer missed the resync-finished event; corrected",
                )
            return result(
                SyncDecision.TARGET_BITMAP, 37, "was sync target; the sync UUID was lost here"
            )
        # Same data identity: only a crash of a Primary can have left blocks (those in its
        # activity log) that the peer never got.
        if local_crashed_primary and peer_crashed_primary:
            decision = (
                SyncDecision.TARGET_BITMAP
                if local_resolves_conflicts
                else SyncDecision.SOURCE_BITMAP
            )
            return result(decision, 40, "both crashed as Primary; the tie-break decides")
        if local_crashed_primary:
            return result(SyncDecision.SOURCE_BITMAP, 40, "this side crashed as Primary")
        if peer_crashed_primary:
            return result(SyncDecision.TARGET_BITMAP, 40, "the peer crashed as Primary")
        return result(SyncDecision.NO_SYNC, 40, "same data generation")

    if same(me, peer.bitmap):
        return result(
            SyncDecision.TARGET_BITMAP, 50, "the peer changed the data since our current generation"
        )
    if same(me, peer.history[0]) and same(peer.history[0] + UUID_NEW_BM_OFFSET, peer.bitmap):
        # The peer started a resync towards us (its bitmap id is the derived sync UUID) but
        # the sync UUID never arrived: undo that start on our picture of the peer.
        peer = replace(peer, bitmap=peer.history[0], history=(peer.history[1], 0))
        return result(
            SyncDecision.TARGET_BITMAP, 51, "lost the peer's sync UUID; corrected the peer's ids"
        )
    if any(same(me, h) for h in peer.history):
        return result(
            SyncDecision.TARGET_FULL, 60, "our generation is in the peer's history: full sync"
        )

    if same(local.bitmap, them):
        return result(
            SyncDecision.SOURCE_BITMAP, 70, "we changed the data since the peer's generation"
        )
    if same(local.history[0], them) and same(local.history[0] + UUID_NEW_BM_OFFSET, local.bitmap):
        local = replace(local, bitmap=local.history[0], history=(local.history[1], 0))
        return result(
            SyncDecision.SOURCE_BITMAP,
            71,
            "our sync UUID did not reach the peer; corrected own ids",
        )
    if any(same(h, them) for h in local.history):
        return result(
            SyncDecision.SOURCE_FULL, 80, "the peer's generation is in our history: full sync"
        )

    if same(local.bitmap, peer.bitmap) and not same(local.bitmap, 0):
        return result(
            SyncDecision.SPLIT_BRAIN, 90, "both sides changed the data since the same generation"
        )
    for mine in local.history:
        for theirs in peer.history:
            if same(mine, theirs) and not same(mine, 0):
                return result(
                    SyncDecision.SPLIT_BRAIN_OLD,
                    100,
                    "the sides share only an old generation: split brain, not auto-recoverable",
                )
    return result(SyncDecision.UNRELATED, 1000, "no common generation: unrelated data")
