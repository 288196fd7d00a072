"""The node-local executor's core: what runs when, and what each result means.

Sans-IO (DESIGN.md, principle 1): it is fed requests, cancellations, agent results and timer
ticks with an explicit `now` and returns effects — `Launch` an agent, `Abort` a running one,
`OpCompleted` for the caller. It never runs a process or reads a clock; the asyncio shell is
`hastack.agents.local`, the simulator can drive it as well.

Rules, as Pacemaker's executor keeps them:
- at most one action of a resource runs at a time; the others wait in a FIFO queue;
- actions of different resources run in parallel;
- a recurring operation (interval > 0) runs once at once, then `interval` after each run
  ends; when it falls due while its resource is busy it joins that resource's queue;
- a stop cancels the resource's recurring operations (a running one is aborted);
- call ids increase; every completed run is recorded like an `lrm_rsc_op`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from hastack.agents.invocation import ResourceAgentCall
from hastack.agents.rc import ExecStatus, OcfRc, OpResult, expected_rc, severity

INF = math.inf
# Pacemaker's `enum pcmk_exec_status` values, as written in op-status.
PCMK_EXEC_STATUS: dict[ExecStatus, int] = {
    "done": 0,
    "cancelled": 1,
    "timeout": 2,
    "error": 4,
    "not-installed": 7,
}
_PROBE_ANSWERS = frozenset(
    {OcfRc.SUCCESS, OcfRc.NOT_RUNNING, OcfRc.RUNNING_PROMOTED, OcfRc.DEGRADED,
     OcfRc.DEGRADED_PROMOTED}
)  # fmt: skip


@dataclass(frozen=True)
class OpKey:
    """Which operation: Pacemaker's operation key is `f"{resource}_{action}_{interval_ms}"`."""

    resource: str
    action: str
    interval: float  # seconds; 0 for one-shot actions and probes

    @staticmethod
    def of(resource: str, action: str, interval: float) -> OpKey:
        # Normalised to whole milliseconds, as Pacemaker keys them, so that 0.2 and 0.2000001
        # name the same operation.
        return OpKey(resource, action, round(interval * 1000) / 1000)

    @property
    def interval_ms(self) -> int:
        return round(self.interval * 1000)

    def __str__(self) -> str:
        return f"{self.resource}_{self.action}_{self.interval_ms}"


@dataclass(frozen=True)
class OpRecord:
    """One `lrm_rsc_op`: what Pacemaker's status section records of an operation's last run.

    Times are the caller's clock (`now`), in seconds; `exec_time` and `queue_time` are seconds
    too (Pacemaker writes milliseconds).
    """

    key: OpKey
    call_id: int
    rc: int
    status: ExecStatus
    exit_reason: str
    last_run: float  # when this run was launched
    last_rc_change: float  # when this operation's result last changed
    exec_time: float  # how long the agent ran
    queue_time: float  # how long it waited for its resource before being launched
    expected_rc: int

    @property
    def operation_key(self) -> str:
        return str(self.key)

    def lrm_attributes(self, node: str) -> dict[str, str]:
        """The record as Pacemaker's `lrm_rsc_op` attributes (times in the units it writes:
        whole seconds of the caller's clock for last-run/last-rc-change, ms for durations)."""
        return {
            "operation_key": self.operation_key,
            "operation": self.key.action,
            "interval": str(self.key.interval_ms),
            "call-id": str(self.call_id),
            "rc-code": str(self.rc),
            "op-status": str(PCMK_EXEC_STATUS[self.status]),
            "exit-reason": self.exit_reason,
            "on_node": node,
            "last-run": str(int(self.last_run)),
            "last-rc-change": str(int(self.last_rc_change)),
            "exec-time": str(round(self.exec_time * 1000)),
            "queue-time": str(round(self.queue_time * 1000)),
            "expected-rc": str(self.expected_rc),  # Pacemaker keeps it in transition-key
        }


@dataclass(frozen=True)
class Launch:
    """Run `call` now; report its result with `Executor.finished(call_id, result, now)`."""

    call_id: int
    call: ResourceAgentCall


@dataclass(frozen=True)
class Abort:
    """Kill the running agent of `call_id` (a cancelled recurring op, or shutdown).

    Report it with `finished(call_id, ...)` once it is reaped, as for any launch.
    """

    call_id: int


@dataclass(frozen=True)
class OpCompleted:
    """An operation ended: ran to completion, or a recurring one was cancelled.

    `failed` says whether the result is a failure of the operation (not what it means for
    the resource: that is the scheduler's business). `tag` is what `request` was given, and
    `result` the agent's own result (None when the op was cancelled before it ran).
    """

    record: OpRecord
    failed: bool
    tag: Hashable | None = None
    result: OpResult | None = None


Effect = Launch | Abort | OpCompleted


@dataclass(eq=False)
class _Op:
    """One requested operation: a one-shot action, or a recurring one with its schedule."""

    call: ResourceAgentCall
    key: OpKey
    tag: Hashable | None
    recurring: bool
    expected: int
    entered_queue: float = 0.0  # queue_time is measured from here
    due: float = INF  # recurring, waiting: when its next run is due
    queued: bool = False
    cancelled: bool = False
    last_record: OpRecord | None = None


@dataclass(eq=False)
class _Running:
    op: _Op
    call_id: int
    launched: float


@dataclass(eq=False)
class _Resource:
    name: str
    queue: deque[_Op] = field(default_factory=deque)
    running: _Running | None = None
    recurring: dict[OpKey, _Op] = field(default_factory=dict)
    ops: dict[str, OpRecord] = field(default_factory=dict)  # lrm_rsc_op id -> record


def is_failure(call: ResourceAgentCall, rc: int, status: ExecStatus, expected: int) -> bool:
    """Whether a result is a failure of the operation that produced it."""
    if status != "done":
        return status != "cancelled"
    if severity(rc, status, expected) == "ok":
        return False
    if call.action == "monitor" and call.interval == 0:
        # A probe finds out the state; any definite answer is a good answer.
        return rc not in _PROBE_ANSWERS
    # A stop of something that is not running has reached its goal.
    return not (call.action == "stop" and rc == OcfRc.NOT_RUNNING)


def expected_rc_of(call: ResourceAgentCall) -> int:
    """The rc that counts as success: Pacemaker's `op_target_rc` meta when given."""
    target = call.meta.get("op_target_rc")
    if target is not None and target.strip().lstrip("-").isdigit():
        return int(target)
    return expected_rc(call.action, call.interval, call.meta.get("role"))


class Executor:
    """What runs when on one node. See the module docstring for the rules."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._resources: dict[str, _Resource] = {}
        self._running: dict[int, _Running] = {}
        self._last_call_id = 0

    # -- inputs -------------------------------------------------------------------------------

    def request(
        self, call: ResourceAgentCall, now: float, tag: Hashable | None = None
    ) -> list[Effect]:
        """Queue a one-shot action, or (interval > 0) start a recurring operation.

        A recurring operation with the key of an existing one replaces it.
        """
        if not (call.interval >= 0 and math.isfinite(call.interval)):
            raise ValueError(f"interval must be a finite number >= 0, not {call.interval!r}")
        res = self._resource(call.resource)
        key = OpKey.of(call.resource, call.action, call.interval)
        effects: list[Effect] = []
        if call.action == "stop":
            for old in list(res.recurring.values()):
                effects += self._cancel(res, old, now)
        op = _Op(call, key, tag, recurring=key.interval > 0, expected=expected_rc_of(call))
        if op.recurring:
            old = res.recurring.get(key)
            if old is not None:
                effects += self._cancel(res, old, now)
            res.recurring[key] = op
        self._enqueue(op, res, now)
        return effects + self._start_next(res, now)

    def cancel(self, resource: str, action: str, interval: float, now: float) -> list[Effect]:
        """Cancel a recurring operation; nothing happens when there is none with that key."""
        res = self._resources.get(resource)
        op = res.recurring.get(OpKey.of(resource, action, interval)) if res else None
        if res is None or op is None:
            return []
        return self._cancel(res, op, now)

    def finished(self, call_id: int, result: OpResult, now: float) -> list[Effect]:
        """The agent of `call_id` ended (or was killed) with `result`."""
        run = self._running.pop(call_id, None)
        if run is None:
            raise ValueError(f"call id {call_id} is not running")
        op = run.op
        res = self._resources[op.call.resource]
        res.running = None
        effects: list[Effect]
        if op.cancelled:
            record = self._record(
                op, run, now, OcfRc.ERR_GENERIC, "cancelled", exec_time=result.duration
            )
            effects = [OpCompleted(record, False, op.tag, result)]
        else:
            record = self._record(
                op, run, now, result.rc, result.status, result.exit_reason, result.duration
            )
            failed = is_failure(op.call, record.rc, record.status, op.expected)
            name = op.call.resource
            if op.recurring:
                op.last_record = record
                op.due = now + op.key.interval
                res.ops[str(op.key)] = record
            else:
                res.ops[f"{name}_last_0"] = record
            if failed:
                res.ops[f"{name}_last_failure_0"] = record
            effects = [OpCompleted(record, failed, op.tag, result)]
        return effects + self._start_next(res, now)

    def tick(self, now: float) -> list[Effect]:
        """Queue (and start, where the resource is idle) every recurring op that is due."""
        effects: list[Effect] = []
        for res in self._resources.values():
            for op in res.recurring.values():
                if op.due <= now:
                    self._enqueue(op, res, now)
            effects += self._start_next(res, now)
        return effects

    def shutdown(self, now: float) -> list[Effect]:
        """Cancel every recurring op, drop queued actions, abort every running agent.

        Dropped one-shot actions complete as "cancelled"; aborted agents complete when the
        shell reports them with `finished`.
        """
        effects: list[Effect] = []
        for res in self._resources.values():
            for op in list(res.recurring.values()):
                effects += self._cancel(res, op, now)
            while res.queue:
                op = res.queue.popleft()
                op.queued = False
                op.cancelled = True
                record = OpRecord(
                    op.key, 0, OcfRc.ERR_GENERIC, "cancelled", "executor shut down",
                    now, now, 0.0, now - op.entered_queue, op.expected,
                )  # fmt: skip
                effects.append(OpCompleted(record, False, op.tag))
            if res.running is not None and not res.running.op.cancelled:
                res.running.op.cancelled = True
                effects.append(Abort(res.running.call_id))
        return effects

    # -- queries ------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When `tick` has something to do next (INF: never, until another input)."""
        return min(
            (op.due for res in self._resources.values() for op in res.recurring.values()),
            default=INF,
        )

    def lrm_rsc_ops(self, resource: str) -> dict[str, OpRecord]:
        """The resource's `lrm_rsc_op` entries by id, as Pacemaker keeps them: `RSC_last_0`
        (the last one-shot action or probe), `RSC_last_failure_0` (the last failure), and one
        per active recurring op, named by its operation key."""
        res = self._resources.get(resource)
        return dict(res.ops) if res else {}

    def history(self, resource: str | None = None) -> list[OpRecord]:
        """The recorded operations (of one resource, or all), oldest call first."""
        names = [resource] if resource is not None else list(self._resources)
        # A failure can be both "last" and "last failure": list it once.
        records = {r.call_id: r for name in names for r in self.lrm_rsc_ops(name).values()}
        return [records[call_id] for call_id in sorted(records)]

    def running(self) -> dict[int, ResourceAgentCall]:
        """The launched calls not yet reported finished, by call id."""
        return {call_id: run.op.call for call_id, run in self._running.items()}

    def recurring(self, resource: str | None = None) -> list[OpKey]:
        """The active recurring operations."""
        names = [resource] if resource is not None else list(self._resources)
        return [key for n in names if n in self._resources for key in self._resources[n].recurring]

    def queued(self, resource: str) -> list[ResourceAgentCall]:
        res = self._resources.get(resource)
        return [op.call for op in res.queue] if res else []

    # -- internals ----------------------------------------------------------------------------

    def _resource(self, name: str) -> _Resource:
        res = self._resources.get(name)
        if res is None:
            res = self._resources[name] = _Resource(name)
        return res

    def _enqueue(self, op: _Op, res: _Resource, now: float) -> None:
        op.queued = True
        op.due = INF
        op.entered_queue = now
        res.queue.append(op)

    def _start_next(self, res: _Resource, now: float) -> list[Effect]:
        if res.running is not None or not res.queue:
            return []
        op = res.queue.popleft()
        op.queued = False
        self._last_call_id += 1
        run = _Running(op, self._last_call_id, now)
        res.running = run
        self._running[run.call_id] = run
        return [Launch(run.call_id, op.call)]

    def _cancel(self, res: _Resource, op: _Op, now: float) -> list[Effect]:
        """Cancel a recurring op: its lrm_rsc_op entry goes, as Pacemaker deletes it."""
        op.cancelled = True
        del res.recurring[op.key]
        res.ops.pop(str(op.key), None)
        op.due = INF
        if op.queued:
            res.queue.remove(op)
            op.queued = False
        if res.running is not None and res.running.op is op:
            return [Abort(res.running.call_id)]  # OpCompleted comes with its `finished`
        last = op.last_record
        record = OpRecord(
            op.key, last.call_id if last else 0, OcfRc.ERR_GENERIC, "cancelled", "",
            last.last_run if last else now, now, 0.0, 0.0, op.expected,
        )  # fmt: skip
        return [OpCompleted(record, False, op.tag)]

    def _record(
        self,
        op: _Op,
        run: _Running,
        now: float,
        rc: int,
        status: ExecStatus,
        exit_reason: str = "",
        exec_time: float = 0.0,
    ) -> OpRecord:
        if op.recurring:
            previous = op.last_record
        else:
            previous = self._resources[op.call.resource].ops.get(f"{op.call.resource}_last_0")
        changed = previous is None or (previous.rc, previous.status) != (rc, status)
        return OpRecord(
            key=op.key,
            call_id=run.call_id,
            rc=rc,
            status=status,
            exit_reason=exit_reason,
            last_run=run.launched,
            last_rc_change=now if changed or previous is None else previous.last_rc_change,
            exec_time=exec_time,
            queue_time=run.launched - op.entered_queue,
            expected_rc=op.expected,
        )
