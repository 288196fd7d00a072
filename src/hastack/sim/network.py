"""The simulated network: per link and per directed node pair, delay, jitter, loss,
duplication and blocking, from a clean baseline plus the faults active now.

The conditions are recomputed only when a fault starts or ends; sending looks up one
precomputed route list per sender (the hot path).
"""

from __future__ import annotations

import random
from typing import NamedTuple

from hastack.sim.scenario import NetFault

BASE_DELAY = (0.0003, 0.002)  # seconds, one way, drawn per link and direction
BASE_JITTER = 0.001  # at most; delay = base + uniform(0, jitter), so reordering can happen


class Route(NamedTuple):
    link: str
    dst: int
    blocked: bool
    loss: float
    dup: float
    delay: float
    jitter: float
    faulty: bool  # a fault acts on it: its deliveries extend the unstable period


class Network:
    def __init__(self, nodes: int, links: tuple[str, ...], rng: random.Random) -> None:
        self.n = nodes
        self.links = links
        # baseline[l][s][d] = (delay, jitter)
        self.baseline = [
            [
                [(rng.uniform(*BASE_DELAY), rng.uniform(0.0, BASE_JITTER)) for _ in range(nodes)]
                for _ in range(nodes)
            ]
            for _ in links
        ]
        self.max_delay = BASE_DELAY[1] + BASE_JITTER
        self.active: list[NetFault] = []
        self.routes: list[list[Route]] = []
        self._recompute()

    def add(self, fault: NetFault) -> None:
        self.active.append(fault)
        self._recompute()

    def remove(self, fault: NetFault) -> None:
        self.active.remove(fault)
        self._recompute()

    def _recompute(self) -> None:
        n = self.n
        # cond[l][s][d] = [blocked, keep (1 - loss), dup, extra delay, jitter, faulty]
        cond = [
            [[[False, 1.0, 0.0, 0.0, 0.0, False] for _ in range(n)] for _ in range(n)]
            for _ in self.links
        ]
        for fault in self.active:
            for li in fault.links:
                for s, d in fault.pairs:
                    c = cond[li][s][d]
                    c[5] = True
                    if fault.kind in ("partition", "asym"):
                        c[0] = True
                    elif fault.kind == "loss":
                        c[1] *= 1.0 - fault.value
                    elif fault.kind == "dup":
                        c[2] = max(c[2], fault.value)
                    elif fault.kind == "delay":
                        c[3] += fault.value
                    elif fault.kind == "reorder":
                        c[4] = max(c[4], fault.value)
        self.routes = []
        for s in range(n):
            out: list[Route] = []
            for li, link in enumerate(self.links):
                for d in range(n):
                    if d == s:
                        continue
                    blocked, keep, dup, extra, jitter, faulty = cond[li][s][d]
                    delay, base_jitter = self.baseline[li][s][d]
                    out.append(
                        Route(
                            link,
                            d,
                            blocked,
                            1.0 - keep,
                            dup,
                            delay + extra,
                            max(base_jitter, jitter),
                            faulty,
                        )
                    )
            self.routes.append(out)

    def partition_groups(self) -> list[list[int]] | None:
        """The sides of the network when only symmetric partitions are active, else None.

        Two nodes are connected when some link carries both directions between them. The
        sides are returned only when connectivity is transitive (every side a clique):
        heartbeat does not relay, so A-B, B-C without A-C is not a partition with sides.
        """
        if any(f.kind != "partition" for f in self.active):
            return None
        n = self.n
        blocked = [[[False] * n for _ in range(n)] for _ in self.links]
        for fault in self.active:
            for li in fault.links:
                for s, d in fault.pairs:
                    blocked[li][s][d] = True
        connected = [
            [a == b or any(not bl[a][b] and not bl[b][a] for bl in blocked) for b in range(n)]
            for a in range(n)
        ]
        groups: list[list[int]] = []
        seen = [False] * n
        for a in range(n):
            if seen[a]:
                continue
            group = [b for b in range(n) if connected[a][b]]
            for b in group:
                if seen[b] or any(not connected[b][c] for c in group):
                    return None
                seen[b] = True
            groups.append(group)
        return groups
