"""A deterministic harness for the controller cores: several nodes' controllers, a message
bus between them, and a scripted stand-in for each node's executor (the agents' results are
the cores' inputs: start makes a resource run there, stop makes it stop, a monitor answers
what runs), all on an explicit clock. Membership views are given by the test, as the
membership core would give them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from hastack.crm.cib.edit import AttributeOwner, set_attribute
from hastack.crm.controller import (
    CancelAgent,
    Controller,
    Effect,
    Event,
    FenceRequest,
    MembershipView,
    Reply,
    RunAgent,
    SaveCib,
    SendMessage,
)
from hastack.membership.effects import Log

WALL0 = 1_800_000_000.0


@dataclass
class FakeNode:
    """What really runs on one node, and its executor's bookkeeping."""

    name: str
    running: dict[str, str] = field(default_factory=dict)  # rsc -> "Started"/"Promoted"
    call_id: int = 0
    recurring: dict[tuple[str, str, int], Hashable] = field(default_factory=dict)
    fail_starts: set[str] = field(default_factory=set)
    ran: list[tuple[str, str, int]] = field(default_factory=list)


class Cluster:
    def __init__(
        self,
        cib: bytes,
        nodes: list[str],
        operation_edit: Callable[..., Any] | None = None,
    ) -> None:
        self.names = list(nodes)
        ids = {n: str(i + 1) for i, n in enumerate(nodes)}
        self.ctl = {n: Controller(n, ids, cib, operation_edit=operation_edit) for n in nodes}
        self.fake = {n: FakeNode(n) for n in nodes}
        self.now = 100.0
        self.queue: deque[tuple[str, str | None, bytes]] = deque()  # sender, dest, payload
        self.agent_queue: deque[tuple[str, RunAgent]] = deque()
        self.up = set(nodes)
        self.events: list[tuple[str, Event]] = []
        self.logs: list[tuple[str, Log]] = []
        self.replies: dict[Hashable, dict[str, Any]] = {}
        self.saved: dict[str, bytes] = {}
        self.view: dict[str, MembershipView] = {}
        self.fence_requests: list[tuple[str, FenceRequest]] = []

    @property
    def wall(self) -> float:
        return WALL0 + self.now

    # ---- driving ----------------------------------------------------------------------

    def set_membership(
        self, dc: str | None, term: int, members: list[str], quorate: bool = True
    ) -> None:
        for n in self.names:
            if n not in self.up:
                continue
            if n in members:
                view = MembershipView(dc, term, n == dc, tuple(members), quorate)
            else:
                view = MembershipView(None, term, False, (n,), False)
            self.view[n] = view
            self.handle(n, self.ctl[n].membership_changed(view, self.now, self.wall))

    def handle(self, node: str, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, SendMessage):
                self.queue.append((node, e.dest, e.payload))
            elif isinstance(e, RunAgent):
                self.agent_queue.append((node, e))
            elif isinstance(e, CancelAgent):
                self.fake[node].recurring.pop((e.resource, e.action, e.interval_ms), None)
            elif isinstance(e, Event):
                self.events.append((node, e))
            elif isinstance(e, Log):
                self.logs.append((node, e))
            elif isinstance(e, Reply):
                self.replies[e.token] = e.response
            elif isinstance(e, SaveCib):
                self.saved[node] = e.data
            elif isinstance(e, FenceRequest):
                self.fence_requests.append((node, e))

    def run(self, steps: int = 10000) -> None:
        """Deliver messages and run agents until nothing is left to do."""
        for _ in range(steps):
            if self.queue:
                self._deliver_one()
            elif self.agent_queue:
                node, run = self.agent_queue.popleft()
                if node in self.up:
                    self._execute(node, run)
            else:
                return
            self.now += 0.001
        raise AssertionError("the cluster did not settle")

    def deliver(self) -> None:
        """Deliver messages until none is left, leaving the agents' runs queued (a test
        holds an action in flight by taking it from agent_queue)."""
        while self.queue:
            self._deliver_one()
            self.now += 0.001

    def _deliver_one(self) -> None:
        sender, dest, payload = self.queue.popleft()
        targets = [dest] if dest is not None else [n for n in self.names if n != sender]
        for target in targets:
            if target in self.up and sender in self.up:
                self.handle(target, self.ctl[target].receive(sender, payload, self.now, self.wall))

    def finish(self, node: str, run: RunAgent) -> None:
        """Run an action a test held back (see deliver) and report its result."""
        self._execute(node, run)

    def tick(self, seconds: float) -> None:
        self.now += seconds
        for n in self.names:
            if n in self.up:
                self.handle(n, self.ctl[n].tick(self.now, self.wall))
        self.run()

    def crash(self, node: str) -> None:
        """The node dies with what it ran (its resources stop with it: the process and
        addresses of a dead machine are gone)."""
        self.up.discard(node)
        self.fake[node].running.clear()
        self.fake[node].recurring.clear()

    def request(self, node: str, operation: Mapping[str, Any], token: str) -> dict[str, Any]:
        self.handle(node, self.ctl[node].request(operation, token, self.now, self.wall))
        self.run()
        return self.replies[token]

    # ---- the scripted executor ----------------------------------------------------------

    def _execute(self, node: str, run: RunAgent) -> None:
        fake = self.fake[node]
        spec = run.spec
        rsc = spec.resource
        fake.ran.append((rsc, spec.action, spec.interval_ms))
        rc = 0
        if spec.action == "start":
            if rsc in fake.fail_starts:
                rc = 1
            else:
                fake.running[rsc] = "Started"
        elif spec.action == "stop":
            fake.running.pop(rsc, None)
        elif spec.action == "promote":
            fake.running[rsc] = "Promoted"
        elif spec.action == "demote":
            fake.running[rsc] = "Started"
        elif spec.action == "monitor":
            role = fake.running.get(rsc)
            rc = 7 if role is None else 8 if role == "Promoted" else 0
            if spec.interval_ms:
                fake.recurring[(rsc, "monitor", spec.interval_ms)] = run.tag
        self._report(node, rsc, spec.agent, spec.action, spec.interval_ms, rc, run.tag)

    def _report(
        self, node: str, rsc: str, agent: str, action: str, interval_ms: int, rc: int, tag: Hashable
    ) -> None:
        fake = self.fake[node]
        fake.call_id += 1
        report = {
            "operation_key": f"{rsc}_{action}_{interval_ms}",
            "operation": action,
            "interval": str(interval_ms),
            "call-id": str(fake.call_id),
            "rc-code": str(rc),
            "op-status": "0",
            "exit-reason": "" if rc in (0, 7, 8) else "scripted failure",
            "on_node": node,
            "last-run": str(int(self.wall)),
            "last-rc-change": str(int(self.wall)),
            "exec-time": "1",
            "queue-time": "0",
        }
        self.handle(node, self.ctl[node].op_completed(report, agent, tag, self.now, self.wall))

    def monitor_now(self, node: str) -> None:
        """Every recurring monitor of the node runs once (as its interval would make it)."""
        fake = self.fake[node]
        for (rsc, action, interval), tag in list(fake.recurring.items()):
            role = fake.running.get(rsc)
            rc = 7 if role is None else 8 if role == "Promoted" else 0
            self._report(node, rsc, self._agent_of(node, rsc), action, interval, rc, tag)
        self.run()

    def _agent_of(self, node: str, rsc: str) -> str:
        parts = self.ctl[node].agents.get(rsc, (None, None, None))
        return ":".join(p for p in parts if p)

    # ---- reading -------------------------------------------------------------------------

    def where(self, rsc: str) -> list[str]:
        return sorted(n for n in self.names if n in self.up and rsc in self.fake[n].running)

    def event_names(self) -> list[str]:
        return [e.name for _, e in self.events]


def set_meta(rsc: str, name: str, value: str) -> Callable[[etree._Element], str]:
    """A configuration edit for tests: one meta attribute of a resource."""

    def edit(root: etree._Element) -> str:
        return set_attribute(root, AttributeOwner("resource", rsc, meta=True), name, value)

    return edit
