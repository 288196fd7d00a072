"""Running seeds: one (`run_seed`) or many in parallel processes (`run_seeds`)."""

from __future__ import annotations

import importlib
import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import replace
from functools import partial

from hastack.config.model import Timing
from hastack.membership.params import CoreParams
from hastack.sim.crm import ControllerFactory
from hastack.sim.params import sim_params
from hastack.sim.result import SimConfig, SimResult
from hastack.sim.scenario import FAULT_KINDS
from hastack.sim.world import CoreFactory, World


def load_factory(spec: str = "") -> CoreFactory:
    """The core class named "module:Class", or the real MembershipCore for ""."""
    if not spec:
        from hastack.membership.core import MembershipCore

        return MembershipCore
    module, sep, name = spec.partition(":")
    if not sep:
        raise ValueError(f"core {spec!r}: expected module:Class")
    factory = getattr(importlib.import_module(module), name)
    return factory  # type: ignore[no-any-return]


def load_controller(spec: str = "") -> ControllerFactory | None:
    """The controller class named "module:Class", or None (the real one, instrumented)."""
    if not spec:
        return None
    module, sep, name = spec.partition(":")
    if not sep:
        raise ValueError(f"controller {spec!r}: expected module:Class")
    factory = getattr(importlib.import_module(module), name)
    return factory  # type: ignore[no-any-return]


def params_for(config: SimConfig, timing: Timing | None = None) -> CoreParams:
    return sim_params(config.nodes, config.keepalive, config.deadtime, timing=timing)


def run_config(
    seed: int,
    config: SimConfig,
    core_factory: CoreFactory | None = None,
    timing: Timing | None = None,
    controller_factory: ControllerFactory | None = None,
) -> SimResult:
    """Run one seed. The same seed, config, factories and timing always give the same run."""
    world = World(
        seed,
        config,
        params_for(config, timing),
        core_factory or load_factory(config.core),
        controller_factory=controller_factory or load_controller(config.controller),
    )
    return world.run()


def run_seed(
    seed: int,
    nodes: int = 3,
    faults: tuple[str, ...] = FAULT_KINDS,
    duration: float | None = None,
    *,
    keepalive: float = 0.1,
    deadtime: float = 0.5,
    core_factory: CoreFactory | None = None,
    timing: Timing | None = None,
    log_lines: int = 200,
    core: str = "",
    crm: bool = False,
    controller_factory: ControllerFactory | None = None,
) -> SimResult:
    config = SimConfig(
        nodes=nodes,
        faults=tuple(faults),
        duration=duration,
        keepalive=keepalive,
        deadtime=deadtime,
        log_lines=log_lines,
        core=core,
        crm=crm,
    )
    return run_config(seed, config, core_factory, timing, controller_factory)


def run_seeds(
    seeds: Iterable[int],
    config: SimConfig,
    jobs: int = 1,
    core_factory: CoreFactory | None = None,
    timing: Timing | None = None,
    nodes_cycle: tuple[int, ...] = (),
) -> Iterator[SimResult]:
    """Results in seed order. `nodes_cycle` varies the node count by seed (seed % len)."""
    seeds = list(seeds)
    work = partial(_one, config=config, core_factory=core_factory, timing=timing, cycle=nodes_cycle)
    if jobs <= 1 or len(seeds) < 2:
        for seed in seeds:
            yield work(seed)
        return
    chunk = max(1, min(16, len(seeds) // (jobs * 8)))
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap(work, seeds, chunksize=chunk)


def _one(
    seed: int,
    config: SimConfig,
    core_factory: CoreFactory | None,
    timing: Timing | None,
    cycle: tuple[int, ...],
) -> SimResult:
    if cycle:
        config = replace(config, nodes=cycle[seed % len(cycle)])
    return run_config(seed, config, core_factory, timing)
