"""`hastack watchdog run`: the watchdog daemon, the thin asyncio shell around the sans-IO parts.

A thread and a loop:

* the **feeding thread** feeds the device every ``interval`` seconds on its own clock (so a
  busy event loop does not delay a keep-alive). It stops feeding when the event loop stops
  running for ``watchdog-timeout``, when the checks are stuck (a system check that has not
  returned within ``watchdog-timeout``, or a repair with ``repair-timeout = 0`` running, as
  5.16 does not feed then either): a machine whose daemon or checks hang is reset by the
  device. Once an action is taken it never feeds again;
* the **check loop** runs every configured check each ``interval`` (:mod:`.probes`, and the
  user's test binaries in the background, :mod:`.children`), passes each result to the
  sequencer (:mod:`.sequencer`: retry, repair, act), runs the repairs it asks for, and carries
  out the action (:mod:`.actions`) when a fault is not repaired. After each cycle it writes
  the status file (:mod:`.state`).

A clean stop (SIGTERM, SIGINT) closes the device with the magic character. SIGHUP is ignored
(said in the log): reading watchdog.conf again is a restart, as with 5.16.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from hastack.daemon import realtime
from hastack.watchdog import actions
from hastack.watchdog.actions import Fault
from hastack.watchdog.checks import CheckResult
from hastack.watchdog.children import BackgroundTest, run_child
from hastack.watchdog.codes import EDONTKNOW, describe
from hastack.watchdog.config import discover_test_directory
from hastack.watchdog.feeder import Feeder
from hastack.watchdog.model import TestBinary, WatchdogConfig
from hastack.watchdog.probes import ProbeError, Probes
from hastack.watchdog.sequencer import Act, Fine, Repair, Retrying, Sequencer
from hastack.watchdog.state import StateDir, StateError, boot_id

log = logging.getLogger("hastack.watchdog")
OOM_SCORE_ADJ = "/proc/self/oom_score_adj"


class DaemonError(Exception):
    """The daemon cannot start (said with what and why)."""


class WatchdogDaemon:
    def __init__(self, cfg: WatchdogConfig, *, no_action: bool = False, sync: bool = False) -> None:
        self.cfg = cfg
        self.no_action = no_action
        self.sync = sync
        self.state = StateDir(cfg.state_dir)
        self.feeder = Feeder(cfg)
        self.probes = Probes(cfg)
        self.sequencer = Sequencer(
            cfg.retry_timeout,
            cfg.repair_maximum,
            cfg.repair_binary,
            temp_power_off=cfg.temp_power_off,
        )
        self.tests: list[tuple[TestBinary, BackgroundTest]] = []
        self.results: dict[tuple[str, str], dict[str, Any]] = {}
        self.fault: Fault | None = None  # the action taken (the daemon only waits then)
        self.last_reset: dict[str, Any] | None = None
        self.started = time.time()
        self.cycles = 0
        self._probing_since: float | None = None
        self._unlimited_repair = False
        self._dry_run_acted: set[tuple[str, str]] = set()
        self._stop = asyncio.Event()
        self._checks: asyncio.Task[None] | None = None
        self._loop_alive = time.monotonic()
        self._feed_stop = threading.Event()
        self._feed_lock = threading.Lock()  # the action closes the device under the feeder
        self._problems: list[str] = []

    # --- life cycle ----------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; 0 after a clean stop."""
        try:
            await self._start()
        except DaemonError as exc:
            log.error("%s", exc)
            self._close(magic=True)
            self.state.unlock()
            return 1
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._sighup)
        self._checks = loop.create_task(self._check_loop(), name="watchdog checks")
        self._checks.add_done_callback(self._checks_ended)
        tasks = [loop.create_task(self._liveness_loop(), name="watchdog liveness"), self._checks]
        feeding = threading.Thread(target=self._feed_forever, args=(loop,), name="keep-alive")
        feeding.start()
        try:
            await self._stop.wait()
        finally:
            self._feed_stop.set()
            feeding.join()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for _test, runner in self.tests:
                runner.stop()
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            # A clean stop disarms the device; after an action it stays armed: the reset
            # that was promised must happen.
            self._close(magic=self.fault is None)
            self._write_status(stopped=True)
            self.state.unlock()
            log.info("stopped" + ("" if self.fault is None else " (the device stays armed)"))
        return 0

    def stop(self) -> None:
        self._stop.set()

    def _checks_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the check loop failed; keep-alives stop", exc_info=task.exception())

    async def _start(self) -> None:
        try:
            self.state.prepare()
            self.state.lock()
        except StateError as exc:
            raise DaemonError(str(exc)) from None
        for warning in self.cfg.warnings:
            log.warning("%s", warning)
        # The feeding thread waits for the GIL at most this long when another thread holds
        # it (5 ms by default): a keep-alive is then late by a millisecond, not five.
        sys.setswitchinterval(0.001)
        if self.cfg.realtime:
            for problem in realtime.apply(self.cfg.priority):
                log.warning("realtime = yes: %s", problem)
        try:
            with open(OOM_SCORE_ADJ, "w") as adj:
                adj.write("-1000")  # the out-of-memory killer must not pick the watchdog
        except OSError as exc:
            log.warning("cannot exempt the daemon from the OOM killer: %s", exc.strerror)
        reported = self.state.take_unreported_reset()
        if reported is not None:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(reported.get("time", 0)))
            log.warning(
                "the last reset (%s, an earlier boot) was the watchdog's: %s",
                when,
                Fault(**_fault_fields(reported)).sentence(),
            )
        with contextlib.suppress(StateError):
            self.last_reset = self.state.last_reset()
        tests = list(self.cfg.test_binaries) + discover_test_directory(self.cfg)
        for test in tests:
            argv = [test.path] if test.version == 0 else [test.path, "test"]
            self.tests.append((test, BackgroundTest(argv, self.cfg.test_timeout, self.cfg.log_dir)))
        try:
            await self.probes.open()
        except (ProbeError, OSError) as exc:
            raise DaemonError(f"{self.cfg.source}: the checks cannot start: {exc}") from None
        try:
            self.feeder.open()
        except OSError as exc:
            raise DaemonError(
                f"watchdog-device {self.cfg.watchdog_device}: cannot open it: {exc.strerror}"
            ) from None
        self._describe_start(tests)

    def _describe_start(self, tests: list[TestBinary]) -> None:
        device = self.feeder.device
        if device is None:
            where = "no watchdog-device: checks only, no keep-alive"
        else:
            driver = device.driver or "stand-in (not a driver)"
            where = f"{device.path} ({driver}), timeout {device.timeout} s"
        log.info(
            "started: %s; interval %d s; %d user test(s)%s",
            where,
            self.cfg.interval,
            len(tests),
            "; no-action (dry run)" if self.no_action else "",
        )

    def _sighup(self) -> None:
        log.warning("SIGHUP ignored: restart the daemon to read %s again", self.cfg.source)

    def _close(self, *, magic: bool) -> None:
        self.feeder.close(magic=magic)
        self.probes.close()

    # --- keep-alive ----------------------------------------------------------------------

    def feeding_allowed(self, now: float) -> tuple[bool, str]:
        if self.fault is not None and not self.no_action:
            return False, f"action taken: {self.fault.action}"
        if self._unlimited_repair:
            return False, "a repair with repair-timeout 0 is running"
        if self._checks is not None and self._checks.done() and not self._checks.cancelled():
            # a bug stopped the checks: a daemon that checks nothing must not keep the
            # machine up (5.16 would have died, and its device fired)
            return False, f"the checks failed: {self._checks.exception()!r}"
        since = self._probing_since
        if since is not None and now - since > self.cfg.watchdog_timeout:
            return False, f"the checks have not returned for {now - since:.0f} s"
        return True, ""

    async def _liveness_loop(self) -> None:
        """The event loop proves it runs: the feeding thread stops when this stops."""
        while True:
            self._loop_alive = time.monotonic()
            await asyncio.sleep(self.cfg.interval)

    def _judge_soon(self, result: CheckResult) -> None:
        asyncio.get_running_loop().create_task(self._judge(result))

    def _feed_forever(self, loop: asyncio.AbstractEventLoop) -> None:
        """The feeding thread: one keep-alive every interval on its own clock (realtime with
        the daemon), so that a busy event loop (a check cycle, the status file, a log line)
        does not delay it; but only while the loop itself keeps running and the checks allow
        it (feeding_allowed)."""
        if self.cfg.realtime:
            # SCHED_RESET_ON_FORK (realtime.apply) gives new threads the ordinary policy:
            # this one, the one that matters, asks for realtime itself.
            for problem in realtime.apply_to_thread(self.cfg.priority):
                log.warning("realtime = yes, keep-alive thread: %s", problem)
        stalled = ""
        # Half an interval after each check cycle starts: the cycle's own Python work (it
        # holds the GIL) is then over, and the keep-alive does not wait for it.
        next_at = time.monotonic() + self.cfg.interval / 2
        while not self._feed_stop.wait(max(0.0, next_at - time.monotonic())):
            now = time.monotonic()
            allowed, why = self.feeding_allowed(now)
            if allowed and now - self._loop_alive > self.cfg.watchdog_timeout:
                allowed, why = (
                    False,
                    f"the event loop has not run for {now - self._loop_alive:.0f} s",
                )
            code = 0
            with self._feed_lock:
                if allowed and self.feeder.armed:
                    code = self.feeder.keepalive()
            if code:
                result = CheckResult("keep-alive", self.cfg.watchdog_device or "", code, "")
                loop.call_soon_threadsafe(self._judge_soon, result)
            elif not allowed and why != stalled:
                log.error("keep-alives stop: %s", why)
            stalled = "" if allowed else why
            next_at = max(next_at + self.cfg.interval, now)

    # --- checks --------------------------------------------------------------------------

    async def _check_loop(self) -> None:
        next_cycle = time.monotonic()
        while self.fault is None or self.no_action:
            started = time.monotonic()
            self._probing_since = started
            try:
                results = await self.probes.run(started)
            finally:
                self._probing_since = None
            judged = [(result, 0) for result in results] + self._poll_tests(time.monotonic())
            for result, version in judged:
                await self._judge(result, version)
                if self.fault is not None and not self.no_action:
                    break
            if self.sync:
                await asyncio.to_thread(os.sync)
            self.cycles += 1
            if self.cfg.verbose and self.cycles % max(1, self.cfg.logtick) == 0:
                log.info("alive: cycle %d, %d check(s) ok", self.cycles, self._ok_count())
            self._write_status()
            next_cycle = max(next_cycle + self.cfg.interval, time.monotonic())
            await asyncio.sleep(next_cycle - time.monotonic())
        self._write_status()

    def _poll_tests(self, now: float) -> list[tuple[CheckResult, int]]:
        results = []
        for test, runner in self.tests:
            code = runner.check(now)  # the last run's code, and a new run unless one is going
            detail = "still running" if code == EDONTKNOW else f"exited {code}"
            results.append((CheckResult("test-binary", test.path, code, detail), test.version))
        return results

    async def _judge(self, result: CheckResult, version: int = 0) -> None:
        now = time.monotonic()
        key = (result.check, result.object)
        decision = self.sequencer.judge(
            now, result.check, result.object, result.code, version=version
        )
        self._record(result, decision)
        if isinstance(decision, Fine):
            self._dry_run_acted.discard(key)
            return
        if isinstance(decision, Retrying):
            return
        if isinstance(decision, Repair):
            log.warning(
                "repairing %s %s (%s): %s",
                result.check,
                result.object,
                describe(result.code),
                " ".join(decision.argv),
            )
            self._unlimited_repair = self.cfg.repair_timeout == 0
            try:
                code = await run_child(
                    decision.argv, self.cfg.repair_timeout, self.cfg.log_dir, "repair"
                )
            finally:
                self._unlimited_repair = False
            decision = self.sequencer.repaired(time.monotonic(), decision.key, code)
            self._record(result, decision)
        if isinstance(decision, Act):
            await self._act(decision)

    def _record(self, result: CheckResult, decision: object) -> None:
        key = (result.check, result.object)
        if result.warning:
            log.warning("%s", result.warning)  # e.g. a temperature near its maximum
        entry = self.results.setdefault(key, {"check": result.check, "object": result.object})
        if result.code and not entry.get("code"):
            entry["failing_since"] = time.time()
        elif not result.code:
            entry.pop("failing_since", None)
        if result.code and result.code != entry.get("code"):
            log.warning(
                "%s %s: %s (%s)", result.check, result.object, result.detail, describe(result.code)
            )
        elif not result.code and entry.get("code"):
            log.info("%s %s: ok again", result.check, result.object)
        entry.update(
            code=result.code,
            code_text=describe(result.code),
            detail=result.detail,
            at=time.time(),
            state=type(decision).__name__.lower(),
        )

    def _ok_count(self) -> int:
        return sum(1 for entry in self.results.values() if not entry.get("code"))

    # --- the action ----------------------------------------------------------------------

    async def _act(self, decision: Act) -> None:
        fault = Fault(
            decision.kind, decision.code, decision.check, decision.object or "", decision.reason
        )
        key = (decision.check, decision.object or "")
        if self.no_action and key in self._dry_run_acted:
            return  # said once until the fault clears
        self.fault = fault
        self.last_reset = self.state.record_reset({**fault.to_json(), "no_action": self.no_action})
        log.error("%s%s", "no-action (dry run), would " if self.no_action else "", fault.sentence())
        log.warning("%s", await actions.notify(self.cfg, fault, dry_run=self.no_action))
        if self.no_action:
            self._dry_run_acted.add(key)
            log.warning("no-action: the device is still fed; nothing is stopped or reset")
            self.fault = None
            self._write_status()
            return
        for _test, runner in self.tests:
            runner.stop()  # no more checks: a test still running (or just restarted) goes
        if self.cfg.cluster_socket:
            wait = min(actions.STANDBY_WAIT, max(1.0, self.cfg.watchdog_timeout / 2))
            log.warning("%s", await actions.stop_cluster_resources(self.cfg, wait))
        await asyncio.to_thread(os.sync)
        log.error("%s", await actions.carry_out(self.cfg, fault))
        with self._feed_lock:
            self.feeder.close(magic=False)
        log.error(
            "keep-alives stopped for good: the device resets the machine if it is "
            "still up after its timeout"
        )
        self._write_status()

    # --- status --------------------------------------------------------------------------

    def status(self, *, stopped: bool = False) -> dict[str, Any]:
        device = self.feeder.device
        allowed, why = self.feeding_allowed(time.monotonic())
        return {
            "pid": os.getpid(),
            "config": self.cfg.source,
            "started": self.started,
            "boot_id": boot_id(),
            "running": not stopped,
            "no_action": self.no_action,
            "interval": self.cfg.interval,
            "cycles": self.cycles,
            "device": {
                "path": self.cfg.watchdog_device,
                "driver": device.driver if device else "",
                "timeout": device.timeout if device else self.cfg.watchdog_timeout,
                "armed": device is not None,
                "magic_close": bool(device and device.magic_close),
                "feeding": device is not None and allowed,
                "not_feeding_because": "" if allowed else why,
                "last_keepalive": self.feeder.last_keepalive,
                "keepalives": self.feeder.keepalives,
            },
            "checks": sorted(self.results.values(), key=lambda e: (e["check"], e["object"])),
            "repairs": [state.as_dict() for state in self.sequencer.snapshot()],
            "action": self.fault.to_json() if self.fault else None,
            "last_reset": self.last_reset,
        }

    def _write_status(self, *, stopped: bool = False) -> None:
        try:
            self.state.write_status(self.status(stopped=stopped))
        except OSError as exc:
            if exc.strerror not in self._problems:
                self._problems.append(exc.strerror or str(exc))
                log.error("cannot write the status in %s: %s", self.state.path, exc.strerror)


def _fault_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": str(record.get("action", "?")),
        "code": int(record.get("code", 0)),
        "check": str(record.get("check", "?")),
        "object": str(record.get("object", "")),
        "reason": str(record.get("reason", "")),
    }
