"""The simulated network: per link and per directed node pair, delay, jitter, loss,
duplication and blocking, from a clean baseline plus the faults active now.

The conditions are recomputed only when a fault starts or ends; sending looks up one
precomputed route list per sender (the hot path).

A quorum server (`add_quorum_server`) is one more host, index `n` in the faults' pairs: it is
no destination of the heartbeats and the messaging, only of each node's TCP connection to
it, which runs over one link (`q_link`, the first: the server is reached over that network)
and sees that link's conditions between the node and the server (`q_up`, `q_down`).
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
        # the active faults that act between nodes, not only on the quorum server's paths:
        # with none, the nodes' network is clean
        self.nodes_active: list[NetFault] = []
        self.q: int | None = None  # the quorum server's host index (n), when there is one
        self.q_link = 0
        self.q_baseline: list[tuple[tuple[float, float], tuple[float, float]]] = []
        self.q_up: list[Route] = []  # per node: node -> quorum server
        self.q_down: list[Route] = []  # per node: quorum server -> node
        # partition_groups() of the current faults, asked at every sample while the faults
        # change far less often; _groups_known is False until computed after a change
        self._groups: list[list[int]] | None = None
        self._groups_known = False
        self._recompute()

    def add_quorum_server(self, rng: random.Random) -> None:
        """The quorum server's host: a baseline delay to and from every node on `q_link`
        (drawn after the nodes' baselines, so theirs are those of a cluster without one)."""
        self.q = self.n
        self.q_baseline = [
            (
                (rng.uniform(*BASE_DELAY), rng.uniform(0.0, BASE_JITTER)),
                (rng.uniform(*BASE_DELAY), rng.uniform(0.0, BASE_JITTER)),
            )
            for _ in range(self.n)
        ]
        self._recompute()

    def add(self, fault: NetFault) -> None:
        self.active.append(fault)
        self._recompute()

    def remove(self, fault: NetFault) -> None:
        self.active.remove(fault)
        self._recompute()

    def _recompute(self) -> None:
        self._groups_known = False
        n = self.n
        hosts = n if self.q is None else n + 1
        self.nodes_active = [f for f in self.active if any(s < n and d < n for s, d in f.pairs)]
        # cond[l][s][d] = [blocked, keep (1 - loss), dup, extra delay, jitter, faulty]
        cond = [
            [[[False, 1.0, 0.0, 0.0, 0.0, False] for _ in range(hosts)] for _ in range(hosts)]
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
        if self.q is not None:
            link, q = self.links[self.q_link], self.q
            self.q_up, self.q_down = [], []
            for s, (up, down) in enumerate(self.q_baseline):
                for dst, (delay, base_jitter), c, out_list in (
                    (q, up, cond[self.q_link][s][q], self.q_up),
                    (s, down, cond[self.q_link][q][s], self.q_down),
                ):
                    blocked, keep, dup, extra, jitter, faulty = c
                    route = Route(
                        link,
                        dst,
                        blocked,
                        1.0 - keep,
                        dup,
                        delay + extra,
                        max(base_jitter, jitter),
                        faulty,
                    )
                    out_list.append(route)

    def qserver_reach(self) -> list[bool]:
        """Per node: whether it and the quorum server reach each other (no cut either way)."""
        return [
            not up.blocked and not down.blocked
            for up, down in zip(self.q_up, self.q_down, strict=True)
        ]

    def partition_groups(self) -> list[list[int]] | None:
        """The sides of the network when only symmetric partitions are active, else None.

        Two nodes are connected when some link carries both directions between them. The
        sides are returned only when connectivity is transitive (every side a clique):
        heartbeat does not relay, so A-B, B-C without A-C is not a partition with sides.
        The result depends only on the active faults: it is computed once per change of
        them, and callers must not modify it.
        """
        if not self._groups_known:
            self._groups = self._partition_groups()
            self._groups_known = True
        return self._groups

    def _partition_groups(self) -> list[list[int]] | None:
        # (a fault only on the quorum server's paths leaves the nodes' sides as they are)
        if any(f.kind != "partition" for f in self.nodes_active):
            return None
        n = self.n
        hosts = n if self.q is None else n + 1  # the sides are the nodes' (not the server's)
        blocked = [[[False] * hosts for _ in range(hosts)] for _ in self.links]
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
