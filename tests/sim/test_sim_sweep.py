"""The CI sweep: thousands of mixed-fault seeds on 2 (two_node, fencing) to 5 nodes.

Equivalent command: hastack sim --nodes 2-5 --seeds 2000 --duration 20
"""

from __future__ import annotations

import os
import time

import pytest

from hastack.sim import SimConfig, run_seeds

SEEDS = max(2000, int(os.environ.get("HASTACK_SIM_SEEDS", "2000")))
FIRST_SEED = int(os.environ.get("HASTACK_SIM_FIRST_SEED", "0"))
# 20 simulated seconds hold the warm-up, one fault window and the quiet period that (c) and
# (d) need at keepalive 100 ms / deadtime 500 ms; shorter runs would check no liveness.
DURATION = 20.0
SHOWN = 3


@pytest.mark.slow
def test_mixed_fault_sweep() -> None:
    config = SimConfig(duration=DURATION)
    jobs = os.cpu_count() or 1
    started = time.monotonic()
    seeds = range(FIRST_SEED, FIRST_SEED + SEEDS)
    results = list(run_seeds(seeds, config, jobs=jobs, nodes_cycle=(2, 3, 4, 5)))
    elapsed = time.monotonic() - started
    print(f"\nsim sweep: {len(results)} seeds in {elapsed:.1f}s ({len(results) / elapsed:.1f}/s)")
    failing = [r for r in results if r.violations]
    report = "\n\n".join(v.render() for r in failing[:SHOWN] for v in r.violations)
    report += "\n\nall failing seeds:\n" + "\n".join(r.replay for r in failing)
    assert not failing, f"{len(failing)} of {len(results)} seeds violate invariants\n{report}"
    assert len(results) == SEEDS
    # the liveness invariants were really evaluated, not skipped for want of quiet time
    checked = sum(1 for r in results if r.stats["checks_c"] > 0 and r.stats["checks_d"] > 0)
    assert checked >= 0.95 * SEEDS
    assert sum(r.stats["net_faults"] for r in results) > SEEDS
    assert sum(r.stats["crashes"] for r in results) > SEEDS / 20
    assert sum(r.stats["pauses"] for r in results) > SEEDS / 20
    assert sum(r.stats["fences"] for r in results) > 0, "two-node seeds exercise fencing"
