"""The node daemon's fencer: a thin asyncio shell around :class:`hastack.fencing.fencer.Fencer`.

It runs the device actions the core asks for (:func:`hastack.fencing.runners.run_device`, each
on a task of its own), keeps one timer at the core's next deadline, reconfigures the core when
the CIB changes, checks the devices on an interval, and shares every finished operation (and
operator confirmations) with the other nodes through the messaging layer, so that every node's
fence history is the cluster's and whoever is DC next knows which nodes are down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

from hastack.agents.invocation import ResourceAgentCall
from hastack.agents.rc import OcfRc, OpResult
from hastack.crm.cib.model import CibError, flatten, parse_bool
from hastack.crm.cib.xml import read_cib
from hastack.crm.digest import crm_get_msec
from hastack.daemon import clock
from hastack.fencing.devices import DEFAULT_TIMEOUT, FencingConfig, fencing_from_cib, merge
from hastack.fencing.fencer import (
    CancelDevice,
    CheckDone,
    DeviceCheck,
    FenceDone,
    Fencer,
    FenceRecord,
    RunDevice,
    WatchdogReport,
    device_call,
)
from hastack.fencing.runners import DeviceCall, DeviceResult, run_device
from hastack.membership.effects import Log
from hastack.transport.logevents import emit

logger = logging.getLogger("hastack.fencing")
MAGIC = b"F"  # a fencer message on the messaging layer (controller messages start with "{")
CHECK_INTERVAL = 60.0  # fence-check-interval's default
FIRST_CHECK = 2.0  # the first check, this long after start: status shows paths early
HISTORY_SHARED = 50  # records a (re)joining node is sent


class FenceShell:
    def __init__(
        self,
        node: str,
        nodes: Iterable[str],
        hacf_devices: Callable[[float], FencingConfig],
        cib: bytes,
        *,
        on_done: Callable[[FenceRecord, bool], None],
        broadcast: Callable[[bytes], None],
    ) -> None:
        """`hacf_devices(stonith_timeout)` gives ha.cf's devices; `on_done(record, local)` is
        told every finished operation (local: this node's fencer ran it); `broadcast(payload)`
        sends to every other node."""
        self.node = node
        self.nodes = list(nodes)
        self.hacf_devices = hacf_devices
        self.core = Fencer(node, FencingConfig(), random.Random())
        # what this node's watchdog promises (hastack.daemon.watchdog_shell), shared
        self.watchdog = WatchdogReport(False, problem="no watchdog (ha.cf `watchdog DEVICE`)")
        self.core.watchdog_report(node, self.watchdog)
        self.on_done = on_done
        self.broadcast = broadcast
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.checks: dict[int, asyncio.Future[dict[str, DeviceCheck]]] = {}
        self.check_interval = CHECK_INTERVAL
        self.stonith_enabled = True
        self._timer: asyncio.TimerHandle | None = None
        self._check_timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.errors = 0
        self.registered: set[str] = set()  # the stonith resources started on this node
        # The DC's fencing waits for proof that it still has a quorum after it decided
        # (quorum_check(decided_at): True, False: not yet, None: no longer the DC); see
        # MembershipCore.quorum_acked_since. Held requests: (decided_at, request arguments).
        self.quorum_check: Callable[[float], bool | None] | None = None
        self.held: list[tuple[float, tuple[str, str, str, str, float, bool]]] = []
        self._protection = ""  # what _say_protection last said
        self.configure(cib)

    # ---- configuration ----------------------------------------------------------------------

    def configure(self, cib: bytes) -> None:
        """The devices of the CIB (and ha.cf), and the fencing options of the cluster."""
        try:
            model = read_cib(cib, "<cluster configuration>")
        except CibError as exc:
            emit(logger, "error", "fence-config", f"cannot read the fencing configuration: {exc}")
            return
        options = model.cluster_options()
        self.stonith_enabled = _bool(options.get("stonith-enabled"), True)
        watchdog = _watchdog_seconds(options.get("stonith-watchdog-timeout"))
        self.check_interval = _seconds(options.get("fence-check-interval"), CHECK_INTERVAL)
        attributes = {
            n.uname or n.id: flatten(n.attributes) for n in model.nodes if n.uname or n.id
        }
        cib_devices = fencing_from_cib(model)
        timeout = _seconds(options.get("stonith-timeout"), DEFAULT_TIMEOUT)
        config = merge(cib_devices, self.hacf_devices(timeout))
        self._execute(
            self.core.reconfigure(config, watchdog_timeout=watchdog, node_attributes=attributes)
        )
        self._say_protection(config)

    def _say_protection(self, config: FencingConfig) -> None:
        """Say loudly, once per change, what protection is missing."""
        if not self.stonith_enabled:
            state = "disabled"
            message = (
                "fencing is disabled (stonith-enabled=false): a node that is lost but still "
                "running may run its resources on both sides"
            )
        elif not config.devices:
            state = "no-devices"
            message = (
                "stonith-enabled=true but no fence device is configured: the resources of a "
                "lost node will NOT be recovered (configure a class=stonith resource)"
            )
        else:
            state = "ok"
            message = ""
        if state != self._protection:
            self._protection = state
            if message:
                emit(logger, "warning", "fence-protection", message)

    def start(self) -> None:
        self._schedule_check(FIRST_CHECK)

    async def close(self) -> None:
        self.closed = True
        for handle in (self._timer, self._check_timer):
            if handle is not None:
                handle.cancel()
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for future in self.checks.values():
            if not future.done():
                future.cancel()

    # ---- requests -----------------------------------------------------------------------------

    def request(
        self,
        target: str,
        action: str,
        requester: str,
        reason: str,
        *,
        delay: float = 0.0,
        allow_self: bool = False,
    ) -> None:
        if requester == "controller" and self.quorum_check is not None:
            self.held.append((clock.now(), (target, action, requester, reason, delay, allow_self)))
            self.release_held()
            return
        self._request(target, action, requester, reason, delay, allow_self)

    def release_held(self) -> None:
        """Start the DC's held fencings once a quorum acknowledged a round sent after they
        were decided; drop them if this node is no longer the DC (the next DC decides)."""
        assert self.quorum_check is not None
        waiting = []
        for decided_at, args in self.held:
            verdict = self.quorum_check(decided_at)
            if verdict is None:
                emit(
                    logger,
                    "warning",
                    "fence-dropped",
                    f"not fencing {args[0]}: this node is no longer the DC (the DC decides)",
                    node=args[0],
                )
            elif verdict:
                self._request(*args)
            else:
                waiting.append((decided_at, args))
        self.held = waiting

    def _request(
        self,
        target: str,
        action: str,
        requester: str,
        reason: str,
        delay: float,
        allow_self: bool,
    ) -> None:
        self._execute(
            self.core.request(
                target,
                action,
                requester,
                reason,
                clock.now(),
                clock.wall(),
                delay=delay,
                allow_self=allow_self,
            )
        )

    def confirm(self, target: str, by: str) -> FenceRecord:
        """An operator says `target` is down; every node's fencer is told."""
        records: list[FenceRecord] = []
        self._execute(self.core.confirm(target, by, clock.now(), clock.wall()), records)
        return records[-1]

    async def test(self, targets: list[str], timeout: float | None = None) -> dict[str, Any]:
        """Check every device now (no power action) and tell, per node, whether a working
        fence path exists from this node."""
        check_id, effects = self.core.check(clock.now(), clock.wall(), targets, timeout)
        future: asyncio.Future[dict[str, DeviceCheck]] = asyncio.get_running_loop().create_future()
        self.checks[check_id] = future
        self._execute(effects)
        report = await future
        paths = self.core.paths(targets or self.nodes)
        return {
            "node": self.node,
            "devices": {k: _check_json(v) for k, v in report.items()},
            "paths": {k: _path_json(v) for k, v in paths.items()},
        }

    async def resource_action(self, call: ResourceAgentCall) -> OpResult:
        """An action of a stonith resource, as Pacemaker's executor runs them: start
        registers the device here after a successful monitor, stop unregisters it, a probe
        tells whether it is registered here, a recurring monitor runs the device's monitor."""
        started = clock.now()
        device_id = call.resource.partition(":")[0]
        device = self.core.config.device(device_id)
        if device is None:
            problems = [p for p in self.core.config.problems if device_id in p]
            why = problems[0] if problems else f"{device_id} is not a usable fence device"
            return OpResult(OcfRc.ERR_CONFIGURED, "done", why, "", started)
        action = call.action
        if action == "stop":
            self.registered.discard(device_id)
            return OpResult(OcfRc.SUCCESS, "done", "", "", started)
        if action == "monitor" and (call.interval == 0 or device_id not in self.registered):
            rc = OcfRc.SUCCESS if device_id in self.registered else OcfRc.NOT_RUNNING
            return OpResult(rc, "done", "", "", started)
        if action not in ("start", "monitor"):
            return OpResult(OcfRc.ERR_UNIMPLEMENTED, "done", f"no {action} for fence devices")
        if device.kind in ("manual", "watchdog"):
            # a watchdog device works where stonith-watchdog-timeout is set; whether each
            # target keeps its promise is its fence path's business (hastack status)
            ok = device.kind == "manual" or self.core.watchdog_timeout != 0
            why = "" if ok else "stonith-watchdog-timeout is not set"
            result = DeviceResult(ok, None, None, 0, why, "", 0.0)
        else:
            monitor = device.device_action("monitor")
            result = await run_device(device_call(device, monitor, None, call.effective_timeout))
        if not result.ok:
            return OpResult(
                OcfRc.ERR_GENERIC, "done", result.reason, result.output, started, result.seconds
            )
        if action == "start":
            self.registered.add(device_id)
        return OpResult(OcfRc.SUCCESS, "done", "", result.output, started, result.seconds)

    def describe(self) -> dict[str, Any]:
        """What `hastack status` shows: per node, the fence path from here."""
        paths = self.core.paths(n for n in self.nodes if n != self.node)
        return {
            "stonith_enabled": self.stonith_enabled,
            "devices": [d.id for d in self.core.config.devices],
            "problems": list(self.core.config.problems),
            "paths": {k: _path_json(v) for k, v in paths.items()},
            "pending": [r.to_json() for r in self.core.pending()],
            "checked": {k: _check_json(v) for k, v in self.core.last_check.items()},
        }

    def history(self, target: str | None = None) -> list[dict[str, object]]:
        return [r.to_json() for r in self.core.history if target is None or r.target == target]

    # ---- messages from the other nodes --------------------------------------------------------

    def history_for(self) -> bytes:
        """The newest history records, for a node that (re)joined: its fencer forgot what
        happened before it started. They go into its history only, never into what its
        controller believes (an old fencing says nothing about where a node is now)."""
        records = [r.to_json() for r in list(self.core.history)[-HISTORY_SHARED:]]
        return MAGIC + json.dumps({"t": "history", "records": records}).encode()

    def set_watchdog(self, report: WatchdogReport) -> None:
        """This node's watchdog changed what it promises: tell our fencer and the others."""
        self.watchdog = report
        self._execute(self.core.watchdog_report(self.node, report), share=False)
        if not self.closed:
            self.broadcast(self.watchdog_message())

    def watchdog_message(self) -> bytes:
        """This node's watchdog report, for a node that (re)joined or when it changes."""
        return MAGIC + json.dumps({"t": "watchdog", "report": self.watchdog.to_json()}).encode()

    def receive(self, sender: str, payload: bytes) -> None:
        try:
            message = json.loads(payload[len(MAGIC) :])
            kind = message["t"]
            if kind == "watchdog":
                report = WatchdogReport.from_json(message["report"])
                self._execute(self.core.watchdog_report(sender, report), share=False)
                return
            if kind == "history":
                old = [FenceRecord.from_json(r) for r in message["records"]]
                learned = sum(self.core.learn(r) for r in old)
                if learned:
                    ordered = sorted(self.core.history, key=lambda r: r.started)
                    self.core.history.clear()
                    self.core.history.extend(ordered)
                return
            record = FenceRecord.from_json(message["record"])
        except (ValueError, KeyError, TypeError) as exc:
            emit(
                logger,
                "warning",
                "fence-bad-message",
                f"dropped a bad message from {sender}: {exc}",
            )
            return
        if kind == "confirm" and record.target in self.core.operations:
            # an operator confirmed on another node: our operation for it ends too
            effects = self.core.confirm(
                record.target, record.confirmed_by or sender, clock.now(), clock.wall()
            )
            self._execute(effects, share=False)
            return
        if self.core.learn(record) and record.state == "done":
            self.on_done(record, False)

    # ---- effects --------------------------------------------------------------------------------

    def _execute(
        self, effects: list[Any], records: list[FenceRecord] | None = None, *, share: bool = True
    ) -> None:
        for effect in effects:
            if isinstance(effect, RunDevice):
                task = asyncio.get_running_loop().create_task(self._run(effect.key, effect.call))
                self.tasks[effect.key] = task
            elif isinstance(effect, CancelDevice):
                task = self.tasks.pop(effect.key, None)
                if task is not None:
                    task.cancel()
            elif isinstance(effect, FenceDone):
                if records is not None:
                    records.append(effect.record)
                if share:
                    kind = "confirm" if effect.record.confirmed_by else "record"
                    message = {"t": kind, "record": effect.record.to_json()}
                    self.broadcast(MAGIC + json.dumps(message).encode())
                try:
                    self.on_done(effect.record, True)
                except Exception:  # the others must still hear of it
                    self.errors += 1
                    logger.exception("acting on the fencing of %s failed", effect.record.target)
            elif isinstance(effect, CheckDone):
                future = self.checks.pop(effect.check_id, None)
                if future is not None and not future.done():
                    future.set_result(dict(effect.report))
            elif isinstance(effect, Log):
                emit(logger, effect.level, effect.event, effect.message, **effect.fields)
        self._arm()

    async def _run(self, key: int, call: DeviceCall) -> None:
        try:
            result = await run_device(call)
        except asyncio.CancelledError:
            raise
        except ValueError as exc:  # a device the runners refuse (its parameters): say why
            emit(logger, "error", "fence-device-invalid", f"{call.device}: {exc}")
            result = DeviceResult(False, None, None, None, str(exc), "", 0.0)
        except Exception as exc:  # a runner bug must not leave the operation waiting
            self.errors += 1
            logger.exception("running %s %s failed", call.device, call.action)
            result = DeviceResult(False, None, None, None, f"internal error: {exc}", "", 0.0)
        finally:
            self.tasks.pop(key, None)
        if not self.closed:
            self._execute(self.core.result(key, result, clock.now(), clock.wall()))

    # ---- timers ---------------------------------------------------------------------------------

    def _arm(self) -> None:
        if self.closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.core.next_deadline()
        if deadline != float("inf"):
            delay = max(0.0, deadline - clock.now())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._execute(self.core.tick(clock.now(), clock.wall()))

    def _schedule_check(self, delay: float) -> None:
        if self.closed:
            return
        self._check_timer = asyncio.get_running_loop().call_later(delay, self._periodic_check)

    def _periodic_check(self) -> None:
        if self.core.config.devices:
            others = [n for n in self.nodes if n != self.node]
            _, effects = self.core.check(clock.now(), clock.wall(), others)
            self._execute(effects)
        self._schedule_check(self.check_interval)


def _watchdog_seconds(text: str | None) -> float:
    """stonith-watchdog-timeout: 0 (off), seconds, or negative: twice each node's watchdog
    timeout, as Pacemaker reads it (-1 stands for any negative value)."""
    if text is None:
        return 0.0
    if text.strip().startswith("-"):
        return -1.0
    return _seconds(text, 0.0)


def _bool(text: str | None, default: bool) -> bool:
    try:
        return parse_bool(text, default)
    except ValueError:
        return default


def _seconds(text: str | None, default: float) -> float:
    if text is None:
        return default
    ms = crm_get_msec(text)
    return ms / 1000 if ms >= 0 else default


def _check_json(check: DeviceCheck) -> dict[str, object]:
    return {
        "ok": check.ok,
        "reason": check.reason,
        "targets": None if check.targets is None else list(check.targets),
        "checked_at": check.checked_at,
        "failed_targets": dict(check.failed_targets),
    }


def _path_json(path: Any) -> dict[str, object]:
    return {
        "ok": path.ok,
        "levels": [list(level) for level in path.levels],
        "working": list(path.working),
        "why": path.why,
    }
