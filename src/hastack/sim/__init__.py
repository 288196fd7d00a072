"""The deterministic simulator: real membership cores against a simulated world, one seed."""

from hastack.sim.result import INVARIANTS, SimConfig, SimResult, Violation
from hastack.sim.runner import run_config, run_seed, run_seeds
from hastack.sim.scenario import FAULT_KINDS, parse_faults

__all__ = [
    "FAULT_KINDS",
    "INVARIANTS",
    "SimConfig",
    "SimResult",
    "Violation",
    "parse_faults",
    "run_config",
    "run_seed",
    "run_seeds",
]
