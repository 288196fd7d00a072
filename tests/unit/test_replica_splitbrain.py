"""Automatic split-brain recovery: every after-sb policy in every slot, each outcome; the sync
handshake that applies them; and the summary shown before a manual resolve."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.replica.bitmap import Bitmap
from hastack.replica.generations import UUID_JUST_CREATED, Generations
from hastack.replica.handshake import (
    INITIAL_SPLIT_BRAIN,
    SPLIT_BRAIN,
    NodeState,
    sync_handshake,
)
from hastack.replica.model import Net
from hastack.replica.splitbrain import (
    PRI_LOST_AFTER_SB,
    Outcome,
    PolicyError,
    Side,
    conflict_holder,
    recover,
    resolve_summary,
)

L, P = Outcome.LOCAL_DISCARDS, Outcome.PEER_DISCARDS
DISC = Outcome.DISCONNECT


def side(
    name: str,
    role: str = "secondary",
    changed: int = 10,
    older: bool = False,
    resolves: bool = False,
    can_demote: bool = False,
) -> Side:
    return Side(name, role, changed, older, resolves, can_demote)  # type: ignore[arg-type]


def net(p0: str = "disconnect", p1: str = "disconnect", p2: str = "disconnect") -> Net:
    return Net(after_sb_0pri=p0, after_sb_1pri=p1, after_sb_2pri=p2)  # type: ignore[arg-type]


# --- after-sb-0pri ----------------------------------------------------------------------

ZERO_PRI = [
    # policy, local, peer, outcome, reason fragment
    ("disconnect", side("a"), side("b"), DISC, "disconnect"),
    ("discard-local", side("a"), side("b"), L, "local"),
    ("discard-remote", side("a"), side("b"), P, "remote"),
    ("discard-node-a", side("a"), side("b"), L, "a is the node"),
    ("discard-node-b", side("a"), side("b"), P, "b is the node"),
    ("discard-node-c", side("a"), side("b"), DISC, "neither"),
    ("discard-younger-primary", side("a", older=True), side("b"), P, "b is the younger"),
    ("discard-younger-primary", side("a"), side("b", older=True), L, "a is the younger"),
    ("discard-older-primary", side("a", older=True), side("b"), L, "a is the older"),
    ("discard-older-primary", side("a"), side("b", older=True), P, "b is the older"),
    # Younger/older undecidable: fall back to least changes.
    ("discard-younger-primary", side("a", changed=3), side("b", changed=9), L, "fewer"),
    ("discard-older-primary", side("a", changed=9), side("b", changed=3), P, "fewer"),
    ("discard-zero-changes", side("a", changed=0), side("b", changed=5), L, "a changed nothing"),
    ("discard-zero-changes", side("a", changed=5), side("b", changed=0), P, "b changed nothing"),
    ("discard-zero-changes", side("a", changed=5), side("b", changed=6), DISC, "both sides"),
    ("discard-zero-changes", side("a", changed=0), side("b", changed=0), P, "b yields"),
    (
        "discard-zero-changes",
        side("a", changed=0, resolves=True),
        side("b", changed=0),
        L,
        "a yields",
    ),
    ("discard-least-changes", side("a", changed=3), side("b", changed=9), L, "a changed fewer"),
    ("discard-least-changes", side("a", changed=9), side("b", changed=3), P, "b changed fewer"),
    ("discard-least-changes", side("a", changed=0), side("b", changed=3), L, "nothing"),
    ("discard-least-changes", side("a", changed=4), side("b", changed=4), P, "equal"),
    (
        "discard-least-changes",
        side("a", changed=4, resolves=True),
        side("b", changed=4),
        L,
        "a yields",
    ),
]


@pytest.mark.parametrize(("policy", "local", "peer", "outcome", "why"), ZERO_PRI)
def test_after_sb_0pri(policy: str, local: Side, peer: Side, outcome: Outcome, why: str) -> None:
    result = recover(net(p0=policy), local, peer)
    assert result.slot == "after-sb-0pri"
    assert result.outcome is outcome
    assert why in result.reason
    expected = {L: local.name, P: peer.name, DISC: None}[outcome]
    assert result.discarding == expected
    assert result.handler is None


# discard-local/-remote are relative to the deciding node by definition.
SYMMETRIC = [row for row in ZERO_PRI if row[0] not in ("discard-local", "discard-remote")]


@pytest.mark.parametrize(("policy", "local", "peer", "outcome", "why"), SYMMETRIC)
def test_both_sides_reach_the_same_0pri_decision(
    policy: str, local: Side, peer: Side, outcome: Outcome, why: str
) -> None:
    # The peer holds the opposite tie-break flag.
    mine = recover(
        net(p0=policy), local, replace(peer, resolves_conflicts=not local.resolves_conflicts)
    )
    theirs = recover(
        net(p0=policy), replace(peer, resolves_conflicts=not local.resolves_conflicts), local
    )
    assert mine.discarding == theirs.discarding


def test_0pri_refuses_a_policy_of_another_slot() -> None:
    with pytest.raises(PolicyError, match="after-sb-0pri cannot be 'consensus'"):
        recover(net(p0="consensus"), side("a"), side("b"))


# --- after-sb-1pri ----------------------------------------------------------------------


def test_1pri_disconnect() -> None:
    result = recover(net(p1="disconnect"), side("a", "primary"), side("b"))
    assert (result.slot, result.outcome, result.discarding) == ("after-sb-1pri", DISC, None)


@pytest.mark.parametrize("local_is_primary", [True, False])
def test_1pri_discard_secondary(local_is_primary: bool) -> None:
    a = side("a", "primary" if local_is_primary else "secondary", changed=1)
    b = side("b", "secondary" if local_is_primary else "primary", changed=1000)
    result = recover(net(p1="discard-secondary"), a, b)
    assert result.discarding == ("b" if local_is_primary else "a")
    assert result.outcome is (P if local_is_primary else L)


def test_1pri_consensus_accepts_0pri_when_it_discards_the_secondary() -> None:
    result = recover(
        net(p0="discard-zero-changes", p1="consensus"),
        side("a", "primary", changed=7),
        side("b", changed=0),
    )
    assert (result.outcome, result.discarding) == (P, "b")


def test_1pri_consensus_disconnects_when_0pri_would_discard_the_primary() -> None:
    result = recover(
        net(p0="discard-zero-changes", p1="consensus"),
        side("a", "primary", changed=0),
        side("b", changed=7),
    )
    assert result.outcome is DISC
    assert "no consensus" in result.reason


def test_1pri_consensus_disconnects_when_0pri_disconnects() -> None:
    result = recover(net(p0="disconnect", p1="consensus"), side("a", "primary"), side("b"))
    assert result.outcome is DISC


def test_1pri_violently_as0p_discards_even_the_primary() -> None:
    result = recover(
        net(p0="discard-least-changes", p1="violently-as0p"),
        side("a", "primary", changed=1),
        side("b", changed=50),
    )
    assert (result.outcome, result.discarding) == (L, "a")


def test_1pri_call_pri_lost_when_the_secondary_loses_just_resyncs() -> None:
    result = recover(
        net(p0="discard-least-changes", p1="call-pri-lost-after-sb"),
        side("a", "primary", changed=50),
        side("b", changed=1),
    )
    assert (result.outcome, result.discarding, result.handler) == (P, "b", None)


def test_1pri_call_pri_lost_runs_the_handler_on_a_losing_primary_in_use() -> None:
    result = recover(
        net(p0="discard-least-changes", p1="call-pri-lost-after-sb"),
        side("a", "primary", changed=1),
        side("b", changed=50),
    )
    assert result.outcome is DISC
    assert result.handler == PRI_LOST_AFTER_SB
    assert result.discarding is None


def test_1pri_call_pri_lost_demotes_a_losing_primary_that_can_be() -> None:
    result = recover(
        net(p0="discard-least-changes", p1="call-pri-lost-after-sb"),
        side("a", "primary", changed=1, can_demote=True),
        side("b", changed=50),
    )
    assert (result.outcome, result.demote, result.handler) == (L, "a", None)


def test_1pri_call_pri_lost_on_the_secondary_side_runs_no_handler_there() -> None:
    # Seen from the Secondary: the remote Primary loses and cannot demote; it runs the handler
    # on its own node, and the connection drops.
    result = recover(
        net(p0="discard-least-changes", p1="call-pri-lost-after-sb"),
        side("b", changed=50),
        side("a", "primary", changed=1),
    )
    assert (result.outcome, result.handler) == (DISC, None)


def test_1pri_refuses_a_0pri_only_policy() -> None:
    with pytest.raises(PolicyError, match="after-sb-1pri"):
        recover(net(p1="discard-local"), side("a", "primary"), side("b"))


# --- after-sb-2pri ----------------------------------------------------------------------


def test_2pri_disconnect() -> None:
    result = recover(net(p2="disconnect"), side("a", "primary"), side("b", "primary"))
    assert (result.slot, result.outcome) == ("after-sb-2pri", DISC)


def test_2pri_violently_as0p() -> None:
    result = recover(
        net(p0="discard-younger-primary", p2="violently-as0p"),
        side("a", "primary", older=True),
        side("b", "primary"),
    )
    assert (result.outcome, result.discarding) == (P, "b")


def test_2pri_call_pri_lost_runs_the_handler_on_the_local_loser() -> None:
    result = recover(
        net(p0="discard-older-primary", p2="call-pri-lost-after-sb"),
        side("a", "primary", older=True),
        side("b", "primary"),
    )
    assert (result.outcome, result.handler) == (DISC, PRI_LOST_AFTER_SB)


def test_2pri_call_pri_lost_on_the_winner_runs_nothing() -> None:
    result = recover(
        net(p0="discard-older-primary", p2="call-pri-lost-after-sb"),
        side("b", "primary"),
        side("a", "primary", older=True),
    )
    assert (result.outcome, result.handler) == (DISC, None)


def test_2pri_call_pri_lost_demotes_when_possible() -> None:
    result = recover(
        net(p0="discard-older-primary", p2="call-pri-lost-after-sb"),
        side("a", "primary", older=True, can_demote=True),
        side("b", "primary"),
    )
    assert (result.outcome, result.discarding, result.demote) == (L, "a", "a")


def test_2pri_call_pri_lost_when_0pri_disconnects() -> None:
    result = recover(
        net(p0="disconnect", p2="call-pri-lost-after-sb"),
        side("a", "primary"),
        side("b", "primary"),
    )
    assert (result.outcome, result.handler) == (DISC, None)


def test_2pri_refuses_consensus() -> None:
    with pytest.raises(PolicyError, match="after-sb-2pri"):
        recover(net(p2="consensus"), side("a", "primary"), side("b", "primary"))


# --- the default never discards -----------------------------------------------------------


@given(
    st.sampled_from(["primary", "secondary"]),
    st.sampled_from(["primary", "secondary"]),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.booleans(),
    st.booleans(),
)
def test_the_default_configuration_never_discards(
    role_a: str, role_b: str, ch_a: int, ch_b: int, older: bool, resolves: bool
) -> None:
    a = Side("a", role_a, ch_a, older, resolves)  # type: ignore[arg-type]
    b = Side("b", role_b, ch_b, not older, not resolves)  # type: ignore[arg-type]
    result = recover(Net(), a, b)
    assert result.outcome is DISC and result.discarding is None and result.handler is None


def test_conflict_holder_is_deterministic() -> None:
    assert conflict_holder("alice", "bob") == conflict_holder("bob", "alice") == "bob"


# --- the manual path ----------------------------------------------------------------------


def test_resolve_summary_from_bitmaps_counts_the_union() -> None:
    alice, bob = Bitmap(1000), Bitmap(1000)
    alice.set_range(0, 100)
    bob.set_range(50, 80)
    bob.set_range(500, 510)
    summary = resolve_summary("alice", {"alice": alice, "bob": bob})
    assert (summary.keep, summary.discard) == ("alice", "bob")
    assert summary.kept_changed_blocks == 100
    assert summary.discarded_changed_blocks == 40
    assert summary.discarded_kib == 160
    assert summary.resync_blocks == 110
    lines = summary.lines()
    assert "bob changed 40 blocks since the split (160 KiB, discarded)" in lines
    assert "110 blocks (440 KiB) will be copied from alice" in lines[2]


def test_resolve_summary_from_counts_is_an_upper_bound() -> None:
    summary = resolve_summary("b", {"a": 5, "b": 7})
    assert (summary.discard, summary.discarded_changed_blocks, summary.resync_blocks) == (
        "a",
        5,
        12,
    )


def test_resolve_summary_refuses_an_unknown_node() -> None:
    with pytest.raises(ValueError, match="--keep carol"):
        resolve_summary("carol", {"a": 1, "b": 2})


# --- the whole handshake ------------------------------------------------------------------

G0 = Generations(0xA00)
ALICE_AHEAD = Generations(0xB01, 0xA01)  # alice was Primary at the split and wrote since
BOB_AHEAD = Generations(0xC00, 0xA00)  # bob was promoted after the split


def node(name: str, gens: Generations, role: str = "secondary", **kw: object) -> NodeState:
    return NodeState(name, role, gens, **kw)  # type: ignore[arg-type]


def test_handshake_in_sync_connects() -> None:
    hs = sync_handshake(Net(), node("a", G0), node("b", G0), local_resolves_conflicts=False)
    assert (hs.action, hs.full, hs.handlers) == ("connected", False, ())


def test_handshake_bitmap_resync_after_an_outage() -> None:
    hs = sync_handshake(
        Net(), node("a", ALICE_AHEAD, "primary"), node("b", G0), local_resolves_conflicts=False
    )
    assert (hs.action, hs.full, hs.merge_bitmaps) == ("sync-source", False, False)


def test_handshake_unrelated_data_refuses() -> None:
    hs = sync_handshake(
        Net(),
        node("a", Generations(0xB00)),
        node("b", Generations(0xC00)),
        local_resolves_conflicts=False,
    )
    assert hs.action == "disconnect" and "unrelated data" in hs.reason


def test_handshake_default_split_brain_disconnects_and_calls_handlers() -> None:
    hs = sync_handshake(
        Net(), node("a", ALICE_AHEAD), node("b", BOB_AHEAD), local_resolves_conflicts=False
    )
    assert hs.action == "disconnect"
    assert hs.handlers == (INITIAL_SPLIT_BRAIN, SPLIT_BRAIN)
    assert "unresolved" in hs.reason


def test_handshake_auto_recovery_merges_both_bitmaps() -> None:
    hs = sync_handshake(
        Net(after_sb_0pri="discard-younger-primary"),
        node("a", ALICE_AHEAD, changed_blocks=5),
        node("b", BOB_AHEAD, changed_blocks=9),
        local_resolves_conflicts=False,
    )
    assert (hs.action, hs.merge_bitmaps) == ("sync-source", True)
    assert hs.handlers == (INITIAL_SPLIT_BRAIN,)


def test_handshake_manual_discard_my_data() -> None:
    hs = sync_handshake(
        Net(),
        node("a", ALICE_AHEAD, discard_my_data=True),
        node("b", BOB_AHEAD),
        local_resolves_conflicts=False,
    )
    assert (hs.action, hs.merge_bitmaps) == ("sync-target", True)
    assert "manually" in hs.reason


def test_handshake_inconsistent_side_is_always_target() -> None:
    hs = sync_handshake(
        Net(),
        node("a", ALICE_AHEAD, inconsistent=True),
        node("b", G0),
        local_resolves_conflicts=False,
    )
    assert hs.action == "sync-target"


def test_handshake_never_resyncs_over_a_primary_in_use() -> None:
    hs = sync_handshake(
        Net(), node("b", G0, "primary"), node("a", ALICE_AHEAD), local_resolves_conflicts=False
    )
    assert hs.action == "disconnect" and "Primary" in hs.reason


def test_handshake_refuses_an_inconsistent_source() -> None:
    hs = sync_handshake(
        Net(),
        node("a", ALICE_AHEAD, inconsistent=True),
        node("b", G0, inconsistent=True),
        local_resolves_conflicts=False,
    )
    assert hs.action == "disconnect" and "Inconsistent" in hs.reason


def test_handshake_initial_full_sync_after_forced_primary() -> None:
    forced = Generations(0xB01, UUID_JUST_CREATED)
    hs = sync_handshake(
        Net(),
        node("a", forced, "primary"),
        node("b", Generations(), inconsistent=True),
        local_resolves_conflicts=False,
    )
    assert (hs.action, hs.full) == ("sync-source", True)


def test_handshake_pri_lost_after_sb_runs_both_handlers() -> None:
    hs = sync_handshake(
        Net(after_sb_0pri="discard-least-changes", after_sb_1pri="call-pri-lost-after-sb"),
        node("a", ALICE_AHEAD, "primary", changed_blocks=1),
        node("b", BOB_AHEAD, changed_blocks=50),
        local_resolves_conflicts=False,
    )
    assert hs.action == "disconnect"
    assert hs.handlers == (INITIAL_SPLIT_BRAIN, PRI_LOST_AFTER_SB, SPLIT_BRAIN)
