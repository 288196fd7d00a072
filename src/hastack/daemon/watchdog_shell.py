"""The node daemon's watchdog: feeds the device (ha.cf ``watchdog DEVICE``) while the node is
healthy by the cluster's measure, as :class:`hastack.watchdog.guard.QuorumGuard` decides.

Feeding runs on the daemon's event loop, so a daemon that hangs stops feeding and is reset
by the device. Its timeout T is half of ``stonith-watchdog-timeout`` when that is positive
(sbd's relation), else ``DEFAULT_TIMEOUT`` (sbd's default; a negative
``stonith-watchdog-timeout`` then means 2 T). What the guard promises is reported to every
fencer (:class:`hastack.fencing.fencer.WatchdogReport`): only nodes that keep that promise are
fenced by waiting for their watchdog.

A clean stop (the daemon leaving after it stopped its resources) closes the device with the
magic character, which disarms it; any other end leaves it to fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from hastack.daemon import clock
from hastack.fencing.fencer import WatchdogReport
from hastack.transport.logevents import emit
from hastack.watchdog.device import WatchdogDevice
from hastack.watchdog.guard import GuardDecision, QuorumGuard, guard_problem

logger = logging.getLogger("hastack.watchdog")
DEFAULT_TIMEOUT = 5  # seconds, the device's timeout without stonith-watchdog-timeout > 0
MAX_INTERVAL = 1.0  # feed at least this often (watchdog's default interval)


def device_timeout(fencing_timeout: float) -> int:
    """T for a stonith-watchdog-timeout: half of it (whole seconds, at least 1), or the
    default."""
    if fencing_timeout > 0:
        return max(1, int(fencing_timeout // 2))
    return DEFAULT_TIMEOUT


class WatchdogShell:
    def __init__(
        self,
        path: str,
        keepalive: float,
        observe: Callable[[], tuple[bool, tuple[str, ...]]],
        report: Callable[[WatchdogReport], None],
        *,
        two_node: bool = False,
    ) -> None:
        """`observe()` gives (quorate, resources running here); `report(r)` is told what the
        guard promises, at open and whenever that changes. `two_node`: quorum without a
        majority (two_node without a quorum server), where a cut-off node keeps quorum and
        its watchdog would never reset it: no promise is made then."""
        self.path = path
        self.keepalive = keepalive
        self.observe = observe
        self.report = report
        self.device: WatchdogDevice | None = None
        self.fencing_timeout = 0.0
        self.guard: QuorumGuard | None = None
        self.last_feed: float | None = None
        self.decision = GuardDecision(False, "starving", "not open")
        self.problem = ""
        self._task: asyncio.Task[None] | None = None
        self._reported: WatchdogReport | None = None
        self.two_node = two_node

    @property
    def interval(self) -> float:
        timeout = self.device.timeout if self.device and self.device.timeout else DEFAULT_TIMEOUT
        return min(MAX_INTERVAL, timeout / 4)

    def open(self, fencing_timeout: float) -> None:
        """Arm the device and start feeding it. A device that cannot be opened is an error
        said loudly, and reported: this node cannot be fenced by its watchdog then."""
        self.fencing_timeout = fencing_timeout
        timeout = device_timeout(fencing_timeout)
        try:
            self.device = WatchdogDevice(self.path, timeout)
        except OSError as exc:
            self.problem = f"cannot open the watchdog {self.path}: {exc.strerror or exc}"
            emit(logger, "error", "watchdog-open-failed", self.problem, device=self.path)
            self._publish()
            return
        self.guard = QuorumGuard(fencing_timeout, self._timeout(), self._margin())
        driver = f"driver {self.device.driver}" if self.device.driver else "a stand-in, no driver"
        emit(
            logger,
            "info",
            "watchdog-armed",
            f"watchdog {self.path} armed: timeout {self._timeout():g} s ({driver})",
            device=self.path,
            timeout=self._timeout(),
        )
        self._feed_now()
        self._task = asyncio.get_running_loop().create_task(self._feed_loop())

    def configure(self, fencing_timeout: float) -> None:
        """stonith-watchdog-timeout changed (the CIB)."""
        if self.device is None or self.guard is None or fencing_timeout == self.fencing_timeout:
            return
        self.fencing_timeout = fencing_timeout
        try:
            self.device.set_timeout(device_timeout(fencing_timeout))
        except OSError as exc:
            emit(logger, "error", "watchdog-timeout-failed", f"{self.path}: {exc}")
        self.guard.device_timeout = self._timeout()
        self.guard.configure(fencing_timeout)
        self._publish()

    def _timeout(self) -> float:
        assert self.device is not None
        return float(self.device.timeout or DEFAULT_TIMEOUT)

    def _margin(self) -> float:
        return self.interval + self.keepalive

    async def _feed_loop(self) -> None:
        while self.device is not None:
            await asyncio.sleep(self.interval)
            self._feed_now()

    def _feed_now(self) -> None:
        if self.device is None or self.guard is None:
            return
        quorate, holding = self.observe()
        before = self.decision.state
        self.decision = self.guard.decide(clock.now(), quorate, holding)
        if self.decision.state != before:
            level = {"feeding": "info", "grace": "warning", "starving": "critical"}
            emit(
                logger,
                level[self.decision.state],
                f"watchdog-{self.decision.state}",
                self.decision.reason or "the node is healthy: feeding the watchdog",
                device=self.path,
            )
        if not self.decision.feed:
            return
        try:
            self.device.keepalive()
        except OSError as exc:
            emit(logger, "error", "watchdog-write-failed", f"{self.path}: {exc.strerror or exc}")
            return
        self.last_feed = clock.now()
        self._publish()

    def _publish(self) -> None:
        if self.guard is None or self.device is None:
            report = WatchdogReport(False, problem=self.problem or "no watchdog device")
        else:
            problem = guard_problem(self.fencing_timeout, self._timeout(), self._margin())
            if self.two_node and self.guard.armed:
                problem = (
                    "two_node without a quorum server: a node cut off keeps quorum, so its "
                    "watchdog would never reset it; watchdog fencing needs a third node or a "
                    "quorum server (quorum_server in ha.cf)"
                )
            report = WatchdogReport(
                self.guard.armed and not problem,
                self._timeout(),
                self.guard.window if not problem else 0.0,
                problem or ("" if self.guard.armed else "stonith-watchdog-timeout is not set"),
            )
        if report != self._reported:
            self._reported = report
            if report.problem and self.guard is not None and self.fencing_timeout:
                emit(logger, "error", "watchdog-guard", report.problem, device=self.path)
            self.report(report)

    def current_report(self) -> WatchdogReport | None:
        return self._reported

    async def close(self, clean: bool) -> None:
        """Stop feeding; `clean`: disarm with the magic close (nothing runs here any more)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        device, self.device = self.device, None
        if device is None:
            return
        try:
            device.close(magic=clean)
        except OSError as exc:
            emit(logger, "error", "watchdog-close-failed", f"{self.path}: {exc.strerror or exc}")
            return
        if clean:
            emit(logger, "info", "watchdog-disarmed", f"watchdog {self.path} disarmed")
        else:
            emit(
                logger,
                "critical",
                "watchdog-left-armed",
                f"watchdog {self.path} closed without disarming: it resets this node",
            )

    def describe(self) -> dict[str, object]:
        """For `hastack status`."""
        report = self._reported
        return {
            "device": self.path,
            "driver": self.device.driver if self.device else "",
            "timeout": self._timeout() if self.device else None,
            "open": self.device is not None,
            "armed": bool(report and report.armed),
            "state": self.decision.state,
            "reason": self.decision.reason or (report.problem if report else ""),
            "grace_left": (
                None
                if self.decision.deadline is None
                else round(max(0.0, self.decision.deadline - clock.now()), 3)
            ),
            "last_keepalive_ago": (
                None if self.last_feed is None else round(clock.now() - self.last_feed, 3)
            ),
            "stonith_watchdog_timeout": self.guard.window if self.guard else 0.0,
        }
