"""When a cluster node stops feeding its watchdog (sans-IO).

Watchdog self-fencing (the ``hastack/watchdog`` fence device, Pacemaker's
``stonith-watchdog-timeout``) lets the surviving partition count a lost node as fenced once
``stonith-watchdog-timeout`` (S) has passed, without any power switch. That is only safe if the
lost node is by then either reset or holds nothing. This guard makes it so on the node itself:

* the node feeds the device while it is healthy by the cluster's measure: quorate, or holding
  no resources (a node with nothing running harms nobody, with or without quorum);
* once it has lost quorum it has a grace to stop what it runs (its no-quorum-policy does
  that): ``S - T - margin``, T being the device's timeout and the margin the feeding interval
  plus one keepalive (the two sides notice the split within about a keepalive of each other).
  If it still holds resources when the grace ends, it stops feeding for good: the device resets
  it at the latest ``S - margin`` after it lost quorum, before the survivors' S has passed;
* a node whose daemon hangs stops feeding by itself, and is reset T later.

Stopping for good (no feeding again even if quorum comes back) is deliberate: the survivors may
already be counting; a reset that was promised must happen.

With S = 0 (no watchdog fencing) the guard feeds while the daemon runs, as heartbeat's
``watchdog`` directive did: the device only catches a hung node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GuardState = Literal["feeding", "grace", "starving"]


@dataclass(frozen=True)
class GuardDecision:
    feed: bool
    state: GuardState
    reason: str
    deadline: float | None = None  # the end of the grace (state "grace")


def guard_window(fencing_timeout: float, device_timeout: float) -> float:
    """The S this node guards for: stonith-watchdog-timeout, or twice the device's timeout
    when it is negative (Pacemaker's rule); 0 without watchdog fencing."""
    if fencing_timeout < 0:
        return 2 * device_timeout
    return fencing_timeout


def guard_problem(fencing_timeout: float, device_timeout: float, margin: float) -> str:
    """Why the guard cannot keep its promise with these timeouts ("" when it can)."""
    window = guard_window(fencing_timeout, device_timeout)
    if window <= 0:
        return ""
    if window < device_timeout + margin:
        return (
            f"stonith-watchdog-timeout ({window:g} s) leaves no time to stop resources before "
            f"the watchdog's own timeout of {device_timeout:g} s runs out: make it at least "
            f"twice the watchdog timeout ({2 * device_timeout:g} s)"
        )
    return ""


class QuorumGuard:
    """Feed it what the node sees at every keep-alive; it says whether to feed."""

    def __init__(self, fencing_timeout: float, device_timeout: float, margin: float) -> None:
        self.device_timeout = device_timeout
        self.margin = margin
        self.window = 0.0
        self.grace = 0.0
        self.lost_at: float | None = None  # when this node was last seen without quorum first
        self.starving_since: float | None = None
        self.reason = ""
        self.configure(fencing_timeout)

    def configure(self, fencing_timeout: float) -> None:
        """stonith-watchdog-timeout changed (the CIB)."""
        self.window = guard_window(fencing_timeout, self.device_timeout)
        problem = guard_problem(fencing_timeout, self.device_timeout, self.margin)
        # a window too short for any grace: stop feeding as soon as quorum is lost with
        # resources held (the reset still comes within T, before S)
        self.grace = 0.0 if problem else self.window - self.device_timeout - self.margin

    @property
    def armed(self) -> bool:
        """Whether the guard resets a node that loses quorum (watchdog fencing is on)."""
        return self.window > 0

    def decide(self, now: float, quorate: bool, holding: tuple[str, ...]) -> GuardDecision:
        if self.starving_since is not None:
            return GuardDecision(False, "starving", self.reason)
        if quorate or not self.armed:
            self.lost_at = None
            return GuardDecision(True, "feeding", "")
        if self.lost_at is None:
            self.lost_at = now
        if not holding:
            return GuardDecision(True, "feeding", "no quorum, but nothing runs here")
        deadline = self.lost_at + self.grace
        if now < deadline:
            return GuardDecision(
                True,
                "grace",
                f"no quorum: {', '.join(holding)} must stop by then, or the watchdog resets "
                "this node",
                deadline,
            )
        self.starving_since = now
        self.reason = (
            f"no quorum for {now - self.lost_at:.1f} s and {', '.join(holding)} still "
            f"running: the watchdog resets this node (stonith-watchdog-timeout {self.window:g} s)"
        )
        return GuardDecision(False, "starving", self.reason)
