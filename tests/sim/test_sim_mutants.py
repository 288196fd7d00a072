"""The checker can fail: deliberately broken cores make it report each invariant."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hastack.sim import SimConfig, run_config, run_seeds
from hastack.sim.params import sim_timing

SEEDS = range(20)


def _first(config: SimConfig, invariant: str, **kwargs: object) -> object:
    for result in run_seeds(SEEDS, config, **kwargs):  # type: ignore[arg-type]
        for violation in result.violations:
            if violation.invariant == invariant:
                return result, violation
    pytest.fail(f"no {invariant} violation in seeds {SEEDS} with {config}")


def test_core_ignoring_lease_expiry_gives_two_dcs() -> None:
    config = SimConfig(nodes=3, faults=("pause", "partition"), core="mutants:StickyLeaseCore")
    result, violation = _first(config, "two-dc")
    assert "both hold a valid DC lease" in violation.message
    assert violation.seed == result.seed and violation.log  # the report says how it got there
    assert "--core mutants:StickyLeaseCore" in violation.replay
    # and it replays exactly
    again = run_config(result.seed, result.config)
    assert again.trace_hash == result.trace_hash
    assert again.violations == result.violations


def test_dc_lease_longer_than_the_votes_gives_two_dcs() -> None:
    # a params tweak: the DC believes its lease lasts three times as long as voters hold it
    good = sim_timing(0.1, 0.5)
    bad = replace(good, dc_lease=3 * good.lease)
    config = SimConfig(nodes=3, faults=("pause",))
    _first(config, "two-dc", timing=bad)


def test_cluster_that_never_elects_breaks_liveness() -> None:
    _first(SimConfig(nodes=3, faults=("loss",), core="mutants:NeverDcCore"), "no-dc")


def test_quorum_on_both_sides_is_caught() -> None:
    config = SimConfig(nodes=4, faults=("partition",), core="mutants:AlwaysQuorateCore")
    _first(config, "split-quorum")


def test_members_that_never_agree_are_caught() -> None:
    _first(SimConfig(nodes=3, faults=("crash",), core="mutants:LonerMembersCore"), "no-convergence")
