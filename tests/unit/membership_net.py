"""A tiny in-memory network for driving a few membership cores in unit tests.

The full simulator (hastack.sim) covers faults at scale; this keeps single-behaviour tests
short and readable: deliver every Send to every other live node after a fixed delay.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from hastack.config.model import AuthKey, AuthKeys, NodeSpec, PingGroup, Timing
from hastack.config.timing import derive_timing
from hastack.membership.core import MembershipCore
from hastack.membership.effects import Effect, Fence, Log, Send, SendPing
from hastack.membership.params import CoreParams

KEYS = AuthKeys(1, {1: AuthKey(1, "sha256", b"unit-test-key")})


def timing(keepalive: float = 0.1, deadtime: float = 0.5) -> Timing:
    return derive_timing(keepalive=keepalive, deadtime=deadtime, max_drift=0.01)


def params(
    n: int = 3,
    links: tuple[str, ...] = ("ucast eth0",),
    two_node: bool = False,
    wait_for_all: bool = False,
    ping: tuple[str, ...] = (),
    ping_groups: tuple[PingGroup, ...] = (),
) -> CoreParams:
    return CoreParams(
        cluster_name="unit",
        nodes=tuple(NodeSpec(f"n{i}", i) for i in range(1, n + 1)),
        links=links,
        timing=timing(),
        authkeys=KEYS,
        two_node=two_node,
        wait_for_all=wait_for_all,
        ping=ping,
        ping_groups=ping_groups,
    )


@dataclass
class Net:
    params: CoreParams
    delay: float = 0.001
    now: float = 0.0
    cores: dict[str, MembershipCore] = field(default_factory=dict)
    logs: list[tuple[float, str, Log]] = field(default_factory=list)
    fences: list[tuple[str, str]] = field(default_factory=list)
    pings: list[tuple[str, str]] = field(default_factory=list)
    # (sender, receiver, link) -> False drops; default: everything delivered
    allow: Callable[[str, str, str], bool] = lambda src, dst, link: True
    _queue: list[tuple[float, int, str, str, object]] = field(default_factory=list)
    _count: itertools.count = field(default_factory=itertools.count)

    def start(self, *names: str, generation: int = 1) -> None:
        for name in names or tuple(n.name for n in self.params.nodes):
            core = MembershipCore(self.params, name, generation, self.now)
            self.cores[name] = core
            self._effects(name, core.start(self.now))

    def crash(self, name: str) -> None:
        del self.cores[name]

    def _push(self, at: float, kind: str, name: str, payload: object) -> None:
        heapq.heappush(self._queue, (at, next(self._count), kind, name, payload))

    def _effects(self, name: str, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                for other in self.cores:
                    if other == name:
                        continue
                    for link in self.params.links:
                        if self.allow(name, other, link):
                            self._push(self.now + self.delay, "rx", other, (effect.data, link))
            elif isinstance(effect, Log):
                self.logs.append((self.now, name, effect))
            elif isinstance(effect, Fence):
                self.fences.append((name, effect.target))
            elif isinstance(effect, SendPing):
                self.pings.append((name, effect.target))
        if name in self.cores:
            self._push(self.cores[name].next_deadline(), "tick", name, None)

    def run_until(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            at, _, kind, name, payload = heapq.heappop(self._queue)
            self.now = max(self.now, at)
            core = self.cores.get(name)
            if core is None:
                continue
            if kind == "tick":
                if at < core.next_deadline():
                    continue  # superseded by a later arming
                self._effects(name, core.tick(self.now))
            else:
                data, link = payload  # type: ignore[misc]
                self._effects(name, core.receive(data, link, self.now))
            dcs = [n for n, c in self.cores.items() if c.is_dc(self.now)]
            assert len(dcs) <= 1, f"two DCs at {self.now}: {dcs}"
        self.now = until

    def deliver(self, name: str, effects: list[Effect]) -> None:
        """Feed effects a test produced by calling a core directly."""
        self._effects(name, effects)

    def dc(self) -> list[str]:
        return [n for n, c in self.cores.items() if c.is_dc(self.now)]

    def events(self, name: str, event: str) -> list[Log]:
        return [log for _, who, log in self.logs if who == name and log.event == event]
