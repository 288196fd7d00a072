"""Monte-Carlo simulation of a reliability-block model, to check the exact formulas.

Each component alternates up and down with exponentially distributed times (means MTTF and
MTTR), independently of the others; the system's state is the model's series/parallel
structure over the components' states (a component named in several places is one component,
as in the analytic model). The result is the fraction of the simulated horizon the system was
up. Randomness is handed in (a seeded `random.Random`), so a run replays exactly.

Components start in their stationary state (up with probability MTTF/(MTTF+MTTR), the time to
the next change drawn afresh, which is exact for exponential times): the estimate has no
start-up bias, only noise, which `stderr` measures by batch means.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from dataclasses import dataclass

from hastack.availability.model import Block, ModelError, unique_components


@dataclass(frozen=True)
class SimResult:
    availability: float  # fraction of the horizon the system was up
    horizon_hours: float
    transitions: int  # component up/down changes simulated
    stderr: float  # standard error of `availability`, from `batches` batch means
    batches: int


def simulate(
    model: Block, rng: random.Random, horizon_hours: float, batches: int = 32
) -> SimResult:
    """Simulate `model` for `horizon_hours` and return the fraction of time it was up.

    The horizon is cut into `batches` equal batches; the spread of their up fractions gives the
    standard error (valid when a batch is much longer than the slowest component's cycle).
    """
    if not (math.isfinite(horizon_hours) and horizon_hours > 0):
        raise ModelError(f"the horizon must be a number of hours > 0, not {horizon_hours!r}")
    if batches < 2:
        raise ModelError(f"at least 2 batches are needed for a standard error, not {batches}")
    components = list(unique_components(model).values())
    states = {c.name: rng.random() < c.availability() for c in components}
    events: list[tuple[float, int]] = []
    for index, comp in enumerate(components):
        mean = comp.mttf_hours if states[comp.name] else comp.mttr_hours
        events.append((rng.expovariate(1 / mean), index))
    heapq.heapify(events)

    batch_length = horizon_hours / batches
    up_time = [0.0] * batches
    system_up = model.is_up(states)
    now = 0.0
    transitions = 0

    def add_up(start: float, end: float) -> None:
        # Split [start, end) over the batches it covers.
        while start < end:
            batch = min(int(start / batch_length), batches - 1)
            stop = min(end, (batch + 1) * batch_length)
            up_time[batch] += stop - start
            start = stop
            if batch == batches - 1:
                break

    while events:
        time, index = heapq.heappop(events)
        if time >= horizon_hours:
            break
        if system_up:
            add_up(now, time)
        now = time
        comp = components[index]
        up = not states[comp.name]
        states[comp.name] = up
        transitions += 1
        heapq.heappush(
            events,
            (time + rng.expovariate(1 / (comp.mttf_hours if up else comp.mttr_hours)), index),
        )
        system_up = model.is_up(states)
    if system_up:
        add_up(now, horizon_hours)

    fractions = [t / batch_length for t in up_time]
    return SimResult(
        availability=sum(up_time) / horizon_hours,
        horizon_hours=horizon_hours,
        transitions=transitions,
        stderr=statistics.stdev(fractions) / math.sqrt(batches),
        batches=batches,
    )
