"""The real core keeps every invariant under every fault kind, on 3 to 5 nodes."""

from __future__ import annotations

import pytest

from hastack.sim import FAULT_KINDS, SimConfig, run_seeds

SEEDS_PER_KIND = 8


def _describe(results: list) -> str:
    return "\n\n".join(v.render() for r in results for v in r.violations)


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_invariants_hold_under_each_fault_kind(kind: str) -> None:
    config = SimConfig(faults=(kind,))
    results = list(run_seeds(range(SEEDS_PER_KIND), config, jobs=1, nodes_cycle=(3, 4, 5)))
    assert all(r.ok for r in results), _describe(results)
    # the runs really injected the faults and really checked the liveness invariants
    assert sum(r.stats["checks_c"] for r in results) > 0
    assert sum(r.stats["checks_d"] for r in results) > 0
    injected = {
        "crash": "crashes",
        "pause": "pauses",
    }.get(kind, "net_faults")
    if kind != "drift":
        assert sum(r.stats[injected] for r in results) >= SEEDS_PER_KIND


def test_invariants_hold_under_mixed_faults() -> None:
    results = list(run_seeds(range(100, 124), SimConfig(), jobs=1, nodes_cycle=(3, 4, 5)))
    assert all(r.ok for r in results), _describe(results)
    assert sum(r.stats["checks_a"] for r in results) > 0
    assert sum(r.stats["checks_b"] for r in results) > 0


def test_two_node_clusters_with_fencing_keep_the_invariants() -> None:
    # two nodes run votequorum-style two_node + wait_for_all: a partition is settled by fencing
    results = list(run_seeds(range(16), SimConfig(nodes=2, faults=("partition", "crash", "pause"))))
    assert all(r.ok for r in results), _describe(results)
    assert sum(r.stats["fences"] for r in results) > 0
