"""The deterministic simulator: real membership cores against a simulated world, one seed.

With ``SimConfig(crm=True)`` (``hastack sim --crm``) every node also runs the resource
manager's real cores — the controller and the reliable messaging, over the same simulated
network — with a simulated executor, and three more invariants are checked: no resource
active twice beyond a bound derived from the timers, every resource placed exactly once
after a stable period, and actions only on the orders of the current term's DC
(:mod:`hastack.sim.crm`, docs/design/crm.md).

With ``fencing=True`` as well (``--crm --fencing``) every node runs the real fencer against a
simulated fence device (:mod:`hastack.sim.fencing`), and the strict invariants apply; among
its faults, ``qserver`` gives a share of the seeds a quorum server, the real server and
client cores over the simulated network, and crashes it (:mod:`hastack.sim.qserver`).
"""

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
