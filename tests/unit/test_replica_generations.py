"""Generation identifiers: every rule of the resync decision, and the identifiers' lifecycle
(promotion while disconnected, resync start and finish, create-md, skipping the initial sync)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.replica import generations as g
from hastack.replica.generations import (
    UUID_JUST_CREATED,
    UUID_NEW_BM_OFFSET,
    Generations,
    SyncDecision,
    compare,
)

A, B, C, D, E, F = (0xA000 << 8, 0xB000 << 8, 0xC000 << 8, 0xD000 << 8, 0xE000 << 8, 0xF000 << 8)
D_ = SyncDecision


def gen(current: int, bitmap: int = 0, h1: int = 0, h2: int = 0) -> Generations:
    return Generations(current, bitmap, (h1, h2))


# (rule, local, peer, flags, expected decision)
TABLE = [
    (10, gen(UUID_JUST_CREATED), gen(UUID_JUST_CREATED), {}, D_.NO_SYNC),
    (20, gen(UUID_JUST_CREATED), gen(A), {}, D_.TARGET_FULL),
    (20, gen(0), gen(A), {}, D_.TARGET_FULL),
    (30, gen(A), gen(UUID_JUST_CREATED), {}, D_.SOURCE_FULL),
    (30, gen(A), gen(0), {}, D_.SOURCE_FULL),
    (34, gen(A, B, C), gen(A, 0, B, C), {}, D_.SOURCE_BITMAP),
    (36, gen(A, B, C), gen(A, 0, D), {}, D_.SOURCE_BITMAP),
    (35, gen(A, 0, B, C), gen(A, B, C), {}, D_.TARGET_BITMAP),
    (37, gen(A, 0, D), gen(A, B, C), {}, D_.TARGET_BITMAP),
    (40, gen(A, 0, B), gen(A, 0, B), {}, D_.NO_SYNC),
    (40, gen(A), gen(A), {"local_crashed_primary": True}, D_.SOURCE_BITMAP),
    (40, gen(A), gen(A), {"peer_crashed_primary": True}, D_.TARGET_BITMAP),
    (
        40,
        gen(A),
        gen(A),
        {"local_crashed_primary": True, "peer_crashed_primary": True},
        D_.SOURCE_BITMAP,
    ),
    (
        40,
        gen(A),
        gen(A),
        {
            "local_crashed_primary": True,
            "peer_crashed_primary": True,
            "local_resolves_conflicts": True,
        },
        D_.TARGET_BITMAP,
    ),
    (50, gen(A), gen(B, A), {}, D_.TARGET_BITMAP),
    (51, gen(A), gen(B, A + UUID_NEW_BM_OFFSET, A, C), {}, D_.TARGET_BITMAP),
    (60, gen(A), gen(B, C, A), {}, D_.TARGET_FULL),
    (60, gen(A), gen(B, C, D, A), {}, D_.TARGET_FULL),
    (70, gen(B, A), gen(A), {}, D_.SOURCE_BITMAP),
    (71, gen(B, A + UUID_NEW_BM_OFFSET, A, C), gen(A), {}, D_.SOURCE_BITMAP),
    (80, gen(B, C, A), gen(A), {}, D_.SOURCE_FULL),
    (80, gen(B, C, D, A), gen(A), {}, D_.SOURCE_FULL),
    (90, gen(B, A), gen(C, A), {}, D_.SPLIT_BRAIN),
    (100, gen(B, D, A), gen(C, E, A), {}, D_.SPLIT_BRAIN_OLD),
    (100, gen(B, D, F, A), gen(C, E, A), {}, D_.SPLIT_BRAIN_OLD),
    (1000, gen(B, D, F), gen(C, E, A), {}, D_.UNRELATED),
    (1000, gen(A), gen(B), {}, D_.UNRELATED),
]


@pytest.mark.parametrize(
    ("rule", "local", "peer", "flags", "expected"),
    TABLE,
    ids=[f"rule{row[0]}-{i}" for i, row in enumerate(TABLE)],
)
def test_every_rule_of_the_decision_table(
    rule: int, local: Generations, peer: Generations, flags: dict[str, bool], expected: SyncDecision
) -> None:
    result = compare(local, peer, **flags)
    assert (result.decision, result.rule) == (expected, rule)
    assert f"by rule {rule}" in str(result)


@pytest.mark.parametrize(("rule", "local", "peer", "flags", "expected"), TABLE)
def test_the_peer_reaches_the_mirrored_decision(
    rule: int, local: Generations, peer: Generations, flags: dict[str, bool], expected: SyncDecision
) -> None:
    mirrored_flags = {
        "local_crashed_primary": flags.get("peer_crashed_primary", False),
        "peer_crashed_primary": flags.get("local_crashed_primary", False),
        "local_resolves_conflicts": not flags.get("local_resolves_conflicts", False),
    }
    assert compare(peer, local, **mirrored_flags).decision == expected.mirrored()


def test_the_primary_bit_does_not_change_identity() -> None:
    assert compare(gen(A | 1), gen(A)).decision is D_.NO_SYNC
    assert compare(gen(B, A | 1), gen(C | 1, A)).decision is D_.SPLIT_BRAIN


def test_rule_34_corrects_the_local_ids_and_rule_35_the_peers() -> None:
    fixed = compare(gen(A, B, C), gen(A, 0, B, C))
    assert fixed.local == gen(A, 0, B, C)
    fixed = compare(gen(A, 0, B, C), gen(A, B, C))
    assert fixed.peer == gen(A, 0, B, C)


def test_rules_51_and_71_undo_a_lost_sync_uuid() -> None:
    peer = gen(B, A + UUID_NEW_BM_OFFSET, A, C)
    assert compare(gen(A), peer).peer == gen(B, A, C, 0)
    assert compare(peer, gen(A)).local == gen(B, A, C, 0)


def test_vectors_from_public_drbd_logs() -> None:
    # "uuid_compare()=1 by rule 70", then "updated sync UUID 7622..:F411..:F410..:0001.."
    local = gen(0x7622BD9FADB3F245, 0xF41008BDA13DED73, 1 << 48, 1 << 48)
    peer = gen(0xF41008BDA13DED72, 0, 1 << 48, 1 << 48)
    result = compare(local, peer)
    assert (result.decision.value, result.rule) == (1, 70)
    started, sync_uuid = g.start_sync_source(local, random.Random(0))
    assert str(started) == "7622BD9FADB3F245:F41108BDA13DED73:F41008BDA13DED73:0001000000000000"
    assert sync_uuid == 0xF41108BDA13DED73
    # "uuid_compare()=100 by rule 90": both bitmaps are the just-created id (Primary bit aside).
    result = compare(gen(0x38BAC2CC396C0581, 4, 1 << 48), gen(0x0D1A2B0F954F14E3, 5, 1 << 48))
    assert (result.decision.value, result.rule) == (100, 90)


_EVENTS = st.lists(
    st.sampled_from(["fork-a", "fork-b", "renew-a", "renew-b", "sync", "done-a", "done-b"]),
    max_size=12,
)


@given(_EVENTS, st.booleans(), st.integers(0, 2**32))
def test_compare_is_symmetric_for_reachable_identifiers(
    events: list[str], fresh: bool, seed: int
) -> None:
    """Drive two nodes through random lifecycles (forks while apart, resyncs that follow the
    decision, a source that finishes alone); at every step both sides must agree."""
    rng = random.Random(seed)
    a = b = g.created() if fresh else gen(A)
    for event in events:
        if event == "fork-a":
            a = g.on_primary_without_peer(a, rng)
        elif event == "fork-b":
            b = g.on_primary_without_peer(b, rng)
        elif event == "renew-a":
            a = g.new_current(a, rng, primary=False)
        elif event == "renew-b":
            b = g.new_current(b, rng, primary=False)
        elif event == "done-a":  # a resync source records the end; the peer never hears
            a = g.finish_sync_source(a)
        elif event == "done-b":
            b = g.finish_sync_source(b)
        else:
            decision = compare(a, b).decision
            if decision.local_is_source:
                a, b = _resync(a, b, rng)
            elif decision.local_is_target:
                b, a = _resync(b, a, rng)
        here = compare(a, b)
        there = compare(b, a, local_resolves_conflicts=True)
        assert there.decision == here.decision.mirrored(), (str(a), str(b), here, there)


# --- lifecycle --------------------------------------------------------------------------


def _resync(
    source: Generations, target: Generations, rng: random.Random
) -> tuple[Generations, Generations]:
    """Run the identifier side of a resync from start to finish."""
    source_at_handshake = source  # what the target received at the handshake
    source, sync_uuid = g.start_sync_source(source, rng)
    target = g.receive_sync_uuid(target, sync_uuid)
    source = g.finish_sync_source(source)
    target = g.finish_sync_target(target, source_at_handshake)
    return source, target


def test_create_md_then_initial_full_sync_then_in_sync() -> None:
    rng = random.Random(1)
    alice, bob = g.created(), g.created()
    assert compare(alice, bob).decision is D_.NO_SYNC  # rule 10: nothing to sync yet
    # `primary --force` (overwrite-data-of-peer) on alice: her data is now the data.
    alice = g.on_primary_without_peer(alice, rng)
    assert alice.bitmap == UUID_JUST_CREATED and alice.current & 1
    result = compare(alice, bob)
    assert (result.decision, result.rule) == (D_.SOURCE_FULL, 30)
    alice, bob = _resync(alice, bob, rng)
    assert compare(alice, bob).decision is D_.NO_SYNC
    assert g.same(alice.current, bob.current)
    assert alice.bitmap == bob.bitmap == 0
    assert alice.history == bob.history


def test_primary_losing_its_peer_gets_a_new_current_and_resyncs_by_bitmap() -> None:
    rng = random.Random(2)
    alice = bob = gen(A)
    alice = g.on_primary_without_peer(alice, rng)
    assert g.same(alice.bitmap, A) and not g.same(alice.current, A)
    # A second promotion before reconnecting keeps tracking against the same point.
    assert g.on_primary_without_peer(alice, rng) == alice
    assert compare(alice, bob).decision is D_.SOURCE_BITMAP  # rule 70
    assert compare(bob, alice).decision is D_.TARGET_BITMAP  # rule 50
    alice, bob = _resync(alice, bob, rng)
    assert compare(alice, bob).decision is D_.NO_SYNC
    assert g.same(bob.current, alice.current)
    # The old bitmap identifier went into history on both sides.
    assert g.same(alice.history[0], bob.history[0])


def test_both_promoted_while_apart_is_split_brain() -> None:
    rng = random.Random(3)
    alice = gen(A | 1)  # alice was Primary when the link broke
    bob = gen(A)
    alice = g.on_primary_without_peer(alice, rng)
    bob = g.on_primary_without_peer(bob, rng)  # bob promoted afterwards: the younger Primary
    result = compare(alice, bob)
    assert (result.decision, result.rule) == (D_.SPLIT_BRAIN, 90)
    assert alice.primary_at_split and not bob.primary_at_split


def test_an_older_split_is_not_auto_recoverable() -> None:
    rng = random.Random(4)
    alice = bob = gen(A, 0, B)
    alice = g.on_primary_without_peer(alice, rng)
    bob = g.on_primary_without_peer(bob, rng)
    # Each side later resynced with someone else, pushing A into history.
    alice, _ = g.start_sync_source(alice, rng)
    alice = g.finish_sync_source(alice)
    bob, _ = g.start_sync_source(bob, rng)
    bob = g.finish_sync_source(bob)
    assert compare(alice, bob).decision is D_.SPLIT_BRAIN_OLD


def test_skip_initial_sync_with_clear_bitmap() -> None:
    rng = random.Random(5)
    alice, bob = g.created(), g.created()
    alice, uuid = g.skip_initial_sync(alice, rng)
    bob = g.receive_sync_uuid(bob, uuid)
    assert alice.bitmap == bob.bitmap == 0
    assert compare(alice, bob).decision is D_.NO_SYNC
    with pytest.raises(ValueError, match="just-created"):
        g.skip_initial_sync(alice, rng)


def test_lifecycle_is_deterministic_given_the_rng() -> None:
    first = g.on_primary_without_peer(gen(A), random.Random(9))
    second = g.on_primary_without_peer(gen(A), random.Random(9))
    assert first == second


def test_identifiers_must_be_64_bits() -> None:
    with pytest.raises(ValueError, match="64 bits"):
        gen(1 << 64)
