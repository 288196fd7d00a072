"""The fencer: which devices fence a node, in which order, with which delays and retries.

A sans-IO core, one per node. It is fed fence requests (from the DC's controller, from the
membership layer of a two-node cluster, from an operator), the results of the device actions
it asked the shell to run, operator confirmations, and the passing of time; it returns
effects: run this action of this device, a fence operation finished, log this.

**Choosing devices.** A node with fencing-topology levels is fenced level by level, in index
order; a level succeeds when every one of its devices does, and the first level that succeeds
ends the operation. Without levels, every device that can fence the node is a level of its
own, tried by descending ``priority`` (then by id). Whether a device can fence a node follows
``pcmk_host_check``: the static list (``pcmk_host_list``/``pcmk_host_map``), the device's own
list (asked with ``list`` by the periodic check, or at the first need), its ``status`` answer
for that node, or ``none`` (every node). A device never runs on the node it fences: that node
is the one in trouble (the exception is a node fencing itself on purpose: no-quorum-policy
``suicide``).

**Actions.** A reboot is the device's ``pcmk_reboot_action`` (``reboot`` unless configured);
a level of several devices turns a reboot into ``off`` on all of them, then ``on`` on all, so
that a node with redundant power supplies really loses power (Pacemaker does the same). A
failed action is retried ``pcmk_<action>_retries`` times (2) while its timeout allows.

**Delays.** Before the first action: the requester's delay (``priority-fencing-delay``, which
the controller computes) plus the first device's ``pcmk_delay_base`` and a random share of
``pcmk_delay_max``. The random number generator is handed in, so a seed replays.

**Devices without a process.** ``hastack/manual`` succeeds when an operator confirms the node
is down (``hastack fence confirm NODE``); ``hastack/watchdog`` succeeds once
``stonith-watchdog-timeout`` has passed since the request: the target's watchdog resets it
that long after it lost quorum at the latest (see :mod:`hastack.watchdog.guard`), and it lost
quorum before we saw it leave. Only a target that reported an armed guard keeping that promise
(:class:`WatchdogReport`, sent by every node's daemon) is fenced this way: counting on a reset
that never comes is split brain.

**History.** Every finished operation is kept (the newest ``HISTORY_LIMIT``), with who asked,
which devices did it, when and how it ended; the shell shares it with the other nodes.

**Checks.** :meth:`Fencer.check` runs every device's ``monitor`` (and ``list`` for devices
that say whom they fence, ``status`` for those checked by status) without any power action;
:meth:`Fencer.paths` then tells, per node, whether a working fence path exists.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from hastack.fencing.devices import FenceDevice, FencingConfig, Level
from hastack.fencing.runners import DeviceCall, DeviceResult
from hastack.membership.effects import Log

HISTORY_LIMIT = 500
MIN_RETRY_TIME = 1.0  # a retry needs at least this much of the device's timeout left
State = Literal["pending", "done", "failed"]


@dataclass(frozen=True)
class FenceRecord:
    """One fence operation, as the history keeps it."""

    id: str
    target: str
    action: str  # reboot, off, on
    origin: str  # the node whose fencer ran it
    requesters: tuple[str, ...]  # who asked: controller, membership, operator:NAME, ...
    reason: str
    state: State
    started: float  # wall clock
    completed: float | None = None
    devices: tuple[str, ...] = ()  # the devices of the level that did it
    error: str = ""
    confirmed_by: str = ""  # an operator's confirmation ended it (hastack fence confirm)

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "target": self.target,
            "action": self.action,
            "origin": self.origin,
            "requesters": list(self.requesters),
            "reason": self.reason,
            "state": self.state,
            "started": self.started,
            "completed": self.completed,
            "devices": list(self.devices),
            "error": self.error,
            "confirmed_by": self.confirmed_by,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> FenceRecord:
        """A record shared by another node; raises ValueError/KeyError/TypeError when bad."""
        state = data["state"]
        if state not in ("pending", "done", "failed"):
            raise ValueError(f"bad fence record state {state!r}")
        completed = data.get("completed")
        return cls(
            id=str(data["id"]),
            target=str(data["target"]),
            action=str(data["action"]),
            origin=str(data["origin"]),
            requesters=tuple(str(r) for r in data["requesters"]),  # type: ignore[attr-defined]
            reason=str(data.get("reason", "")),
            state=state,  # type: ignore[arg-type]
            started=float(data["started"]),  # type: ignore[arg-type]
            completed=None if completed is None else float(completed),  # type: ignore[arg-type]
            devices=tuple(str(d) for d in data.get("devices", ())),  # type: ignore[attr-defined]
            error=str(data.get("error", "")),
            confirmed_by=str(data.get("confirmed_by", "")),
        )


# ---- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDevice:
    """Run one device action; report with :meth:`Fencer.result` under ``key``."""

    key: int
    call: DeviceCall


@dataclass(frozen=True)
class CancelDevice:
    """A device action is no longer needed (the node was confirmed down meanwhile)."""

    key: int


@dataclass(frozen=True)
class FenceDone:
    """A fence operation finished (``record.state`` is done or failed)."""

    record: FenceRecord


@dataclass(frozen=True)
class CheckDone:
    """A device check finished: per device, whether it works and whom it fences."""

    check_id: int
    report: Mapping[str, DeviceCheck]


Effect = RunDevice | CancelDevice | FenceDone | CheckDone | Log


@dataclass(frozen=True)
class DeviceCheck:
    device: str
    ok: bool
    reason: str
    targets: tuple[str, ...] | None  # whom it fences (None: any node)
    checked_at: float
    # nodes whose status the device could not tell (a BMC that does not answer): node -> why
    failed_targets: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WatchdogReport:
    """What a node says of its watchdog: whether its guard resets it once it loses quorum
    (`armed`), the device's timeout, the stonith-watchdog-timeout its guard keeps (`window`),
    and why it cannot (`problem`)."""

    armed: bool
    timeout: float = 0.0
    window: float = 0.0
    problem: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "armed": self.armed,
            "timeout": self.timeout,
            "window": self.window,
            "problem": self.problem,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> WatchdogReport:
        timeout, window = data.get("timeout", 0.0), data.get("window", 0.0)
        if not isinstance(timeout, int | float) or not isinstance(window, int | float):
            raise ValueError("a watchdog report's timeout and window are numbers")
        return cls(bool(data["armed"]), float(timeout), float(window), str(data.get("problem", "")))


@dataclass(frozen=True)
class FencePath:
    """Whether this node can fence `target`, and how."""

    target: str
    ok: bool
    levels: tuple[tuple[str, ...], ...]  # candidate levels (device ids)
    working: tuple[str, ...]  # the first level whose devices all passed the last check
    why: str


# ---- the operation in progress ------------------------------------------------------------------


@dataclass
class _Step:
    device: FenceDevice
    action: str  # the requested action this step performs: reboot, off or on
    optional: bool = False  # the "on" after an "off" of a multi-device reboot


@dataclass
class _Operation:
    record: FenceRecord
    levels: list[Level]
    allow_self: bool
    level_index: int = -1
    steps: list[_Step] = field(default_factory=list)
    step_index: int = 0
    attempts: int = 0
    step_started: float = 0.0
    running: int | None = None  # the key of the device action in flight
    waiting_until: float | None = None  # a delay, a watchdog wait or a manual device's timeout
    waiting_for: str = ""  # delay, watchdog, manual
    level_errors: list[str] = field(default_factory=list)
    done_devices: list[str] = field(default_factory=list)
    querying: str = ""  # list or status: asking the device whether it fences the target
    queried: set[str] = field(default_factory=set)  # devices asked in this operation


@dataclass
class _Check:
    check_id: int
    pending: dict[int, tuple[str, str, str | None]]  # key -> (device id, action, target)
    results: dict[str, DeviceCheck]
    started: float


class Fencer:
    """One node's fencer (see the module docstring)."""

    def __init__(
        self,
        node: str,
        config: FencingConfig,
        rng: random.Random,
        *,
        watchdog_timeout: float = 0.0,
        node_attributes: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.node = node
        self.config = config
        self.rng = rng
        self.watchdog_timeout = watchdog_timeout  # stonith-watchdog-timeout
        # what each node reported of its watchdog (its own daemon's WatchdogReport)
        self.watchdogs: dict[str, WatchdogReport] = {}
        self.node_attributes: Mapping[str, Mapping[str, str]] = node_attributes or {}
        self.operations: dict[str, _Operation] = {}  # target -> operation
        self.history: deque[FenceRecord] = deque(maxlen=HISTORY_LIMIT)
        self.checks: dict[int, _Check] = {}
        self.last_check: dict[str, DeviceCheck] = {}
        self.listed: dict[str, tuple[str, ...]] = {}  # device -> its last list answer
        # devices whose agent cannot list (fence_dummy): asked by status instead, as Pacemaker
        # falls back from dynamic-list to status for agents without a list action
        self.no_list: set[str] = set()
        self._keys: dict[int, tuple[str, str]] = {}  # key -> ("op", target) or ("check", id)
        self._next_key = 0
        self._next_op = 0
        self._next_check = 0

    # ---- configuration ---------------------------------------------------------------------

    def reconfigure(
        self,
        config: FencingConfig,
        *,
        watchdog_timeout: float | None = None,
        node_attributes: Mapping[str, Mapping[str, str]] | None = None,
    ) -> list[Effect]:
        """New devices (the CIB changed). Operations in progress keep the devices they
        started with; what a device listed is forgotten when the device is gone."""
        effects: list[Effect] = []
        if config != self.config:
            for problem in config.problems:
                if problem not in self.config.problems:
                    effects.append(Log("error", "fence-config", problem))
            for warning in config.warnings:
                if warning not in self.config.warnings:
                    effects.append(Log("warning", "fence-config", warning))
        self.config = config
        if watchdog_timeout is not None:
            self.watchdog_timeout = watchdog_timeout
        if node_attributes is not None:
            self.node_attributes = node_attributes
        ids = {d.id for d in config.devices}
        self.listed = {k: v for k, v in self.listed.items() if k in ids}
        self.last_check = {k: v for k, v in self.last_check.items() if k in ids}
        return effects

    def watchdog_report(self, node: str, report: WatchdogReport) -> list[Effect]:
        """`node` said what its watchdog does (at start, and whenever it changes)."""
        old = self.watchdogs.get(node)
        self.watchdogs[node] = report
        if old is None or old.armed == report.armed:
            return []
        said = "armed" if report.armed else f"no longer armed ({report.problem or 'stopped'})"
        return [Log("info", "fence-watchdog-report", f"{node}'s watchdog is {said}")]

    def watchdog_wait(self, target: str) -> tuple[float, str]:
        """How long watchdog fencing of `target` waits, or why it cannot fence it (then 0)."""
        if self.watchdog_timeout == 0:
            return 0.0, "stonith-watchdog-timeout is not set"
        report = self.watchdogs.get(target)
        if report is None or not report.armed:
            why = report.problem if report is not None and report.problem else "no report"
            return 0.0, (
                f"{target} has no armed watchdog ({why}): it would not reset itself "
                "(ha.cf `watchdog DEVICE` on that node)"
            )
        wait = self.watchdog_timeout if self.watchdog_timeout > 0 else 2 * report.timeout
        if not 0 < report.window <= wait:
            return 0.0, (
                f"{target}'s watchdog guards a stonith-watchdog-timeout of {report.window:g} s, "
                f"not the {wait:g} s waited here (its configuration differs)"
            )
        return wait, ""

    # ---- which devices -----------------------------------------------------------------------

    def can_fence(self, device: FenceDevice, target: str) -> bool | None:
        """Whether `device` fences `target` (None: not known until the device is asked)."""
        if device.host_check == "none":
            return True
        static = device.static_targets()
        if static is not None:
            return target in static
        if device.host_check == "dynamic-list" and device.id not in self.no_list:
            listed = self.listed.get(device.id)
            if listed is None:
                return None
            return device.port_for(target) in listed or target in listed
        return None  # status: asked before the power action

    def _query(self, device: FenceDevice) -> str:
        """How to ask `device` whether it fences a node: list, or status."""
        if device.host_check == "dynamic-list" and device.id not in self.no_list:
            return "list"
        return "status"

    def levels_for(self, target: str, allow_self: bool = False) -> list[Level]:
        """The levels to try for `target`, in order, leaving out devices this node may not
        run (a topology level that needs one is left out whole)."""

        def usable(device: FenceDevice) -> bool:
            if allow_self and target == self.node:
                return device.runs_on is None or self.node in device.runs_on
            return device.may_run_on(self.node, target)

        topology = self.config.topology.levels_for(target, self.node_attributes.get(target))
        if topology:
            out: list[Level] = []
            for level in topology:
                devices = [self.config.device(d) for d in level.devices]
                if all(d is not None and usable(d) for d in devices):
                    out.append(level)
            return out
        candidates = [
            d for d in self.config.devices if usable(d) and self.can_fence(d, target) is not False
        ]
        candidates.sort(key=lambda d: (-d.priority, d.id))
        return [Level(0, (d.id,), d.id) for d in candidates]

    # ---- requests ----------------------------------------------------------------------------

    def request(
        self,
        target: str,
        action: str,
        requester: str,
        reason: str,
        now: float,
        wall: float,
        *,
        delay: float = 0.0,
        allow_self: bool = False,
    ) -> list[Effect]:
        """Fence `target` (action reboot or off). A request for a node already being fenced
        joins that operation: one power cycle answers every requester."""
        if action not in ("reboot", "off", "on"):
            raise ValueError(f"fence action {action!r}; allowed: reboot, off, on")
        existing = self.operations.get(target)
        if existing is not None:
            if requester not in existing.record.requesters:
                existing.record = replace(
                    existing.record, requesters=(*existing.record.requesters, requester)
                )
            return [
                Log(
                    "info",
                    "fence-merged",
                    f"{requester} asks to fence {target}, which is being fenced already",
                    {"node": target},
                )
            ]
        self._next_op += 1
        record = FenceRecord(
            id=f"{self.node}-{self._next_op}-{int(wall)}",
            target=target,
            action=action,
            origin=self.node,
            requesters=(requester,),
            reason=reason,
            state="pending",
            started=wall,
        )
        levels = self.levels_for(target, allow_self)
        operation = _Operation(record, levels, allow_self)
        self.operations[target] = operation
        effects: list[Effect] = [
            Log(
                "warning",
                "fence-start",
                f"fencing {target} ({action}) for {requester}: {reason}",
                {"node": target, "action": action},
            )
        ]
        if not levels:
            return effects + self._finish(operation, False, self._no_device_reason(target), wall)
        first = self.config.device(levels[0].devices[0])
        assert first is not None
        total = max(0.0, delay) + first.base_delay(target)
        if first.delay_max > first.base_delay(target):
            total += self.rng.uniform(0.0, first.delay_max - first.base_delay(target))
        if total > 0:
            operation.waiting_until = now + total
            operation.waiting_for = "delay"
            effects.append(
                Log(
                    "info",
                    "fence-delay",
                    f"fencing of {target} waits {total:.2f} s first (priority-fencing-delay "
                    "and pcmk_delay_base/max)",
                    {"node": target, "seconds": round(total, 3)},
                )
            )
            return effects
        return effects + self._next_level(operation, now, wall)

    def _no_device_reason(self, target: str) -> str:
        if not self.config.devices:
            return "no fence device is configured"
        return (
            f"no configured device can fence {target} from {self.node} (check pcmk_host_list, "
            "pcmk_host_map, the fencing topology and where the devices may run)"
        )

    def _next_level(self, op: _Operation, now: float, wall: float) -> list[Effect]:
        op.level_index += 1
        if op.level_index >= len(op.levels):
            why = "; ".join(op.level_errors) or "every level failed"
            return self._finish(op, False, why, wall)
        level = op.levels[op.level_index]
        devices = [self.config.device(d) for d in level.devices]
        if any(d is None for d in devices):
            op.level_errors.append(f"level {level.id or level.index}: a device is gone")
            return self._next_level(op, now, wall)
        steps: list[_Step] = []
        action = op.record.action
        if action == "reboot" and len(devices) > 1:
            steps = [_Step(d, "off") for d in devices if d is not None]
            steps += [_Step(d, "on", optional=True) for d in devices if d is not None]
        else:
            steps = [_Step(d, action) for d in devices if d is not None]
        op.steps, op.step_index, op.attempts = steps, 0, 0
        op.done_devices = []
        return self._run_step(op, now, wall)

    def _run_step(self, op: _Operation, now: float, wall: float) -> list[Effect]:
        if op.step_index >= len(op.steps):
            return self._finish(op, True, "", wall)
        step = op.steps[op.step_index]
        device, target = step.device, op.record.target
        if op.attempts == 0:
            op.step_started = now
        op.attempts += 1
        kind = device.kind
        device_action = device.device_action(step.action)
        timeout = device.timeout(step.action, 60.0)
        if kind == "manual":
            op.waiting_until, op.waiting_for = now + timeout, "manual"
            return [
                Log(
                    "error",
                    "fence-manual",
                    f"{target} must be powered off by hand (device {device.id}): once it is "
                    f"down, run `hastack fence confirm {target}` (within {timeout:g} s, else "
                    "the cluster asks again)",
                    {"node": target, "device": device.id},
                )
            ]
        if kind == "watchdog":
            wait, why = self.watchdog_wait(target)
            if why:
                return self._step_failed(op, f"watchdog fencing is off: {why}", now, wall)
            op.waiting_until, op.waiting_for = now + wait, "watchdog"
            return [
                Log(
                    "warning",
                    "fence-watchdog",
                    f"{target} counts as fenced in {wait:g} s "
                    "(stonith-watchdog-timeout): its watchdog resets it by then",
                    {"node": target, "device": device.id},
                )
            ]
        if self.can_fence(device, target) is None and device.id not in op.queried:
            # dynamic-list without a list yet, or status: ask the device first
            op.queried.add(device.id)
            op.querying = self._query(device)
            device_action = device.device_action(op.querying)
            timeout = device.timeout(op.querying, 60.0)
        call = device_call(
            device,
            device_action,
            None if op.querying == "list" else target,
            max(1.0, timeout - (now - op.step_started)),
        )
        key = self._key(("op", target))
        op.running = key
        return [RunDevice(key, call)]

    def _query_status(self, op: _Operation, device: FenceDevice, now: float) -> list[Effect]:
        target = op.record.target
        call = device_call(
            device, device.device_action("status"), target, device.timeout("status", 60.0)
        )
        op.running = self._key(("op", target))
        return [RunDevice(op.running, call)]

    def _key(self, owner: tuple[str, str]) -> int:
        self._next_key += 1
        self._keys[self._next_key] = owner
        return self._next_key

    def _step_failed(self, op: _Operation, why: str, now: float, wall: float) -> list[Effect]:
        step = op.steps[op.step_index]
        if step.optional:  # powering back on after a multi-device reboot: not needed
            op.step_index += 1
            op.attempts = 0
            log = Log("warning", "fence-on-failed", f"{step.device.id}: on failed: {why}")
            return [log, *self._run_step(op, now, wall)]
        retries = step.device.retries_for(step.action)
        left = step.device.timeout(step.action, 60.0) - (now - op.step_started)
        effects: list[Effect] = [
            Log(
                "error",
                "fence-device-failed",
                f"device {step.device.id} could not {step.action} {op.record.target}: {why}",
                {"node": op.record.target, "device": step.device.id},
            )
        ]
        if (
            op.attempts <= retries
            and left >= MIN_RETRY_TIME
            and step.device.kind
            not in (
                "manual",
                "watchdog",
            )
        ):
            return effects + self._run_step(op, now, wall)
        level = op.levels[op.level_index]
        op.level_errors.append(f"{step.device.id}: {why}")
        if op.level_index + 1 < len(op.levels):
            effects.append(
                Log(
                    "warning",
                    "fence-next-level",
                    f"level {level.index or level.id} failed for {op.record.target}; trying "
                    "the next",
                    {"node": op.record.target},
                )
            )
        return effects + self._next_level(op, now, wall)

    def _step_done(self, op: _Operation, now: float, wall: float) -> list[Effect]:
        step = op.steps[op.step_index]
        if step.device.id not in op.done_devices:
            op.done_devices.append(step.device.id)
        op.step_index += 1
        op.attempts = 0
        return self._run_step(op, now, wall)

    def _finish(self, op: _Operation, ok: bool, why: str, wall: float) -> list[Effect]:
        if op.running is not None:
            self._keys.pop(op.running, None)
        record = replace(
            op.record,
            state="done" if ok else "failed",
            completed=wall,
            devices=tuple(op.done_devices) if ok else (),
            error=why,
        )
        self.operations.pop(record.target, None)
        self.history.append(record)
        if ok:
            log = Log(
                "warning",
                "fence-done",
                f"{record.target} was fenced ({record.action}) by {', '.join(record.devices)}",
                {"node": record.target, "devices": list(record.devices)},
            )
        else:
            log = Log(
                "error",
                "fence-failed",
                f"fencing {record.target} failed: {why}",
                {"node": record.target},
            )
        return [log, FenceDone(record)]

    # ---- inputs ------------------------------------------------------------------------------

    def result(self, key: int, result: DeviceResult, now: float, wall: float) -> list[Effect]:
        """The outcome of a RunDevice."""
        owner = self._keys.pop(key, None)
        if owner is None:
            return []  # cancelled meanwhile
        kind, ident = owner
        if kind == "check":
            return self._check_result(int(ident), key, result, now, wall)
        op = self.operations.get(ident)
        if op is None or op.running != key:
            return []
        op.running = None
        step = op.steps[op.step_index]
        if op.querying:
            query, op.querying = op.querying, ""
            if query == "list" and result.ok and result.targets is not None:
                self.listed[step.device.id] = result.targets
            if query == "list" and not result.ok:
                # an agent that cannot list: ask its status for the node instead
                self.no_list.add(step.device.id)
                op.querying = "status"
                return self._query_status(op, step.device, now)
            if not result.ok or self.can_fence(step.device, op.record.target) is False:
                why = result.reason if not result.ok else f"{query} does not name it"
                op.attempts = step.device.retries_for(step.action) + 1  # no retry: not its node
                return self._step_failed(op, f"cannot tell it fences the node ({why})", now, wall)
            op.attempts = 0
            return self._run_step(op, now, wall)
        if result.ok:
            return self._step_done(op, now, wall)
        return self._step_failed(op, result.reason or "failed", now, wall)

    def confirm(self, target: str, by: str, now: float, wall: float) -> list[Effect]:
        """An operator says `target` is down (powered off by hand, or known dead). Ends an
        operation in progress with success; without one it is recorded as a fence of its
        own, so that the cluster stops waiting for it."""
        op = self.operations.get(target)
        effects: list[Effect] = [
            Log(
                "warning",
                "fence-confirmed",
                f"{by} confirms that {target} is down",
                {"node": target, "by": by},
            )
        ]
        if op is None:
            self._next_op += 1
            op = _Operation(
                FenceRecord(
                    id=f"{self.node}-{self._next_op}-{int(wall)}",
                    target=target,
                    action="off",
                    origin=self.node,
                    requesters=(by,),
                    reason="confirmed down by an operator",
                    state="pending",
                    started=wall,
                ),
                [],
                False,
            )
        if op.running is not None:
            effects.append(CancelDevice(op.running))
        op.record = replace(op.record, confirmed_by=by)
        op.done_devices = [f"manual confirmation by {by}"]
        return effects + self._finish(op, True, "", wall)

    def learn(self, record: FenceRecord) -> bool:
        """A finished operation another node ran: kept in the history (once)."""
        if record.state == "pending" or any(r.id == record.id for r in self.history):
            return False
        self.history.append(record)
        return True

    def tick(self, now: float, wall: float) -> list[Effect]:
        effects: list[Effect] = []
        for op in list(self.operations.values()):
            if op.waiting_until is None or now < op.waiting_until:
                continue
            waited, op.waiting_until, op.waiting_for = op.waiting_for, None, ""
            if waited == "delay":
                effects += self._next_level(op, now, wall)
            elif waited == "watchdog":
                effects += self._step_done(op, now, wall)
            elif waited == "manual":
                effects += self._step_failed(op, "no operator confirmed it in time", now, wall)
        return effects

    def next_deadline(self) -> float:
        times = [op.waiting_until for op in self.operations.values() if op.waiting_until]
        return min(times, default=float("inf"))

    # ---- checks ------------------------------------------------------------------------------

    def check(
        self, now: float, wall: float, targets: Sequence[str] = (), timeout: float | None = None
    ) -> tuple[int, list[Effect]]:
        """Check every device without a power action: ``monitor``; ``list`` where the device
        says whom it fences; ``status`` of each of `targets` it covers (or may cover: devices
        checked by status). Answered by a CheckDone effect."""
        self._next_check += 1
        check = _Check(self._next_check, {}, {}, wall)
        self.checks[check.check_id] = check
        effects: list[Effect] = []
        for device in self.config.devices:
            kind = device.kind
            if kind == "manual":
                check.results[device.id] = DeviceCheck(
                    device.id, True, "an operator confirms by hand", device.static_targets(), wall
                )
                continue
            if kind == "watchdog":
                ok = self.watchdog_timeout != 0
                failed = {t: w for t in targets if (w := self.watchdog_wait(t)[1])}
                why = (
                    f"stonith-watchdog-timeout={self.watchdog_timeout:g} s"
                    if ok
                    else "stonith-watchdog-timeout is not set"
                )
                check.results[device.id] = DeviceCheck(device.id, ok, why, None, wall, failed)
                continue
            actions = ["monitor"]
            if self._query(device) == "list":
                actions.append("list")
            for action in actions:
                effects.append(self._check_call(check, device, action, None, timeout))
            for target in targets:
                covered = self.can_fence(device, target)
                if covered or (covered is None and self._query(device) == "status"):
                    effects.append(self._check_call(check, device, "status", target, timeout))
        if not check.pending:
            return check.check_id, self._check_finished(check)
        return check.check_id, effects

    def _check_call(
        self,
        check: _Check,
        device: FenceDevice,
        action: str,
        target: str | None,
        timeout: float | None,
    ) -> RunDevice:
        key = self._key(("check", str(check.check_id)))
        check.pending[key] = (device.id, action, target)
        call = device_call(
            device, device.device_action(action), target, timeout or device.timeout(action, 60.0)
        )
        return RunDevice(key, call)

    def _check_result(
        self, check_id: int, key: int, result: DeviceResult, now: float, wall: float
    ) -> list[Effect]:
        check = self.checks.get(check_id)
        if check is None:
            return []
        device_id, what, target = check.pending.pop(key)
        device = self.config.device(device_id)
        previous = check.results.get(device_id)
        failed_targets = dict(previous.failed_targets) if previous is not None else {}
        ok = previous is None or previous.ok
        reason = previous.reason if previous is not None and not previous.ok else ""
        if target is not None:
            # one node's status: a failure concerns that node's path only
            if not result.ok:
                failed_targets[target] = f"status {target}: {result.reason or 'failed'}"
        elif what == "list" and not result.ok:
            # an agent that cannot list: from now on it is asked by status (not a failure)
            self.no_list.add(device_id)
        elif not result.ok:
            ok = False
            reason = f"{what}: {result.reason or 'failed'}"
        targets = previous.targets if previous is not None else None
        if device is not None:
            targets = device.static_targets() if targets is None else targets
        if what == "list" and result.ok and result.targets is not None:
            self.listed[device_id] = result.targets
            targets = result.targets
        check.results[device_id] = DeviceCheck(
            device_id, ok, reason or "ok", targets, wall, failed_targets
        )
        if check.pending:
            return []
        return self._check_finished(check)

    def _check_finished(self, check: _Check) -> list[Effect]:
        del self.checks[check.check_id]
        self.last_check.update(check.results)
        effects: list[Effect] = [CheckDone(check.check_id, dict(check.results))]
        for result in check.results.values():
            for why in result.failed_targets.values():
                effects.append(
                    Log(
                        "error",
                        "fence-check-failed",
                        f"fence device {result.device} cannot reach a node: {why}",
                        {"device": result.device},
                    )
                )
            if not result.ok:
                effects.append(
                    Log(
                        "error",
                        "fence-check-failed",
                        f"fence device {result.device} does not work: {result.reason}",
                        {"device": result.device},
                    )
                )
        return effects

    def paths(self, nodes: Iterable[str]) -> dict[str, FencePath]:
        """Per node, whether this node has a working fence path to it (by the last check)."""
        out: dict[str, FencePath] = {}
        for target in nodes:
            levels = self.levels_for(target)
            names = tuple(level.devices for level in levels)
            if not levels:
                out[target] = FencePath(target, False, (), (), self._no_device_reason(target))
                continue
            working: tuple[str, ...] = ()
            failures: list[str] = []
            for level in levels:
                checks = [self._path_check(d, target) for d in level.devices]
                if all(c is not None and c.ok and target not in c.failed_targets for c in checks):
                    working = level.devices
                    break
                for device_id, c in zip(level.devices, checks, strict=True):
                    if c is None:
                        failures.append(f"{device_id} not checked yet")
                    elif not c.ok:
                        failures.append(f"{device_id}: {c.reason}")
                    elif target in c.failed_targets:
                        failures.append(f"{device_id}: {c.failed_targets[target]}")
            if working:
                out[target] = FencePath(target, True, names, working, "ok")
            else:
                out[target] = FencePath(target, False, names, (), "; ".join(failures))
        return out

    def _path_check(self, device_id: str, target: str) -> DeviceCheck | None:
        """The last check of a device; a watchdog device's is what its target reports now
        (no process to ask, and the reports change between checks)."""
        device = self.config.device(device_id)
        if device is None or device.kind != "watchdog":
            return self.last_check.get(device_id)
        _, why = self.watchdog_wait(target)
        failed = {target: why} if why else {}
        return DeviceCheck(device_id, self.watchdog_timeout != 0, why, None, 0.0, failed)

    def pending(self) -> list[FenceRecord]:
        return [op.record for op in self.operations.values()]


def device_call(device: FenceDevice, action: str, target: str | None, timeout: float) -> DeviceCall:
    """One action of `device` (already mapped by pcmk_<action>_action), for `target`."""
    return DeviceCall(
        device=device.id,
        agent=device.agent,
        action=action,
        target=target,
        port=device.port_for(target) if target is not None else None,
        params=device.params,
        timeout=timeout,
        host_argument=_host_argument(device),
    )


def _host_argument(device: FenceDevice) -> str | None:
    """pcmk_host_argument for the runner: the default (port) lets the agent's metadata
    choose between plug and port; "none" (None here) sends no port."""
    if device.host_argument is None:
        return None
    return "" if device.host_argument == "port" else device.host_argument
