"""What the watchdog does about a failing check: retry, repair, or act (sans-IO).

This follows the watchdog 5.16 daemon's rules exactly, so that a watchdog.conf tuned for it
(retry-timeout, repair-binary, repair-maximum) means the same here:

* Each failing *object* (a pidfile, a file, an interface, a ping target, a temperature sensor,
  a test binary, or one of the load and memory checks) has its own retry timer and repair count.
  A success (0) clears both; "still running" (245) changes nothing.
* A reboot or reset asked for, too hot, and out of memory are never repaired: the action follows
  at once.
* Otherwise the first failure starts the retry timer and, until more than retry-timeout seconds
  have passed, a failure counts as no error (5.16 answers ENOERR then; we say `Retrying` so that
  the daemon can log it). With retry-timeout 0 there is no grace.
* Then the repair binary runs (`REPAIR ERRNO OBJECT`, or `PATH repair ERRNO PATH` for a
  test-directory binary). Its exit status decides: 0 is no error for now, anything else is the
  action with that code. At most repair-maximum repairs are tried before the fault clears
  (0: no limit); one more failure past that is the action. Without a repair binary a repairable
  failure is the action at once.
* A check with no object (object None, or one of OBJECTLESS_CHECKS: the keep-alive and the
  file table) has no retry timer and no repair count: each failure goes straight to the repair
  binary, called with the code only.

Time is only ever what the caller passes as `now` (seconds, any monotonic origin).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from hastack.watchdog import codes

# The object names 5.16 passes to the repair binary for its whole-system checks.
LOAD_OBJECT = "<load-average>"
FREE_MEMORY_OBJECT = "<free-memory>"
ALLOC_MEMORY_OBJECT = "<alloc-memory>"
# The checks 5.16 runs without an object: no retry timer, no repair count, and the repair
# binary gets the code only. Their object here (the device, the file opened) is for messages.
OBJECTLESS_CHECKS = frozenset({"keep-alive", "file-table"})

Key = tuple[str, str | None]  # (check, object); object None: a check with no object
ActionKind = Literal["reboot", "reset", "poweroff", "halt"]


@dataclass(frozen=True)
class Fine:
    """Nothing to do: a success, "still running" (245), or a repair that worked."""


@dataclass(frozen=True)
class Retrying:
    """A failure inside its retry-timeout: not an error yet (log it)."""

    since: float  # when the retry timer started
    code: int
    key: Key


@dataclass(frozen=True)
class Repair:
    """Run `argv` (with repair-timeout), then report its exit status to `Sequencer.repaired`."""

    key: Key
    argv: list[str]
    code: int
    attempt: int  # 1 for the first repair since the object last succeeded


@dataclass(frozen=True)
class Act:
    """Take the machine down: `kind` is what to do, `code` is 5.16's reason code."""

    kind: ActionKind
    code: int
    check: str
    object: str | None
    reason: str


Decision = Fine | Retrying | Repair | Act


@dataclass
class ObjectState:
    """One object's state, as the status view shows it."""

    check: str
    object: str | None
    last_code: int | None = None  # the last result judged (245 is not recorded)
    failing_since: float | None = None  # first failure since the last success
    retry_since: float | None = None  # 5.16's retry timer (restarted after each repair)
    repairs: int = 0  # repairs started since the last success
    denied: bool = False  # repair-maximum reached: the last failure was the action

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "object": self.object,
            "last_code": self.last_code,
            "last_result": None if self.last_code is None else codes.describe(self.last_code),
            "failing_since": self.failing_since,
            "retry_since": self.retry_since,
            "repairs": self.repairs,
            "repair_maximum_reached": self.denied,
        }


def action_kind(code: int, temp_power_off: bool = True) -> ActionKind:
    """What 5.16's shutdown does for a code: a hard reset for 254, a power-off (or a halt with
    temp-power-off = no) for too hot, a reboot for everything else."""
    if code == codes.ERESET:
        return "reset"
    if code == codes.ETOOHOT:
        return "poweroff" if temp_power_off else "halt"
    return "reboot"


def _name(key: Key) -> str:
    check, obj = key
    return check if obj is None else f"{check} {obj}"


class Sequencer:
    """Feed it every check result with `judge`, and every repair's exit status with
    `repaired`; it answers what to do. One per daemon; it holds no I/O."""

    def __init__(
        self,
        retry_timeout: float,
        repair_maximum: int,
        repair_binary: str | None,
        *,
        temp_power_off: bool = True,
    ) -> None:
        if retry_timeout < 0:
            raise ValueError(f"retry-timeout must be 0 or more seconds, not {retry_timeout}")
        if repair_maximum < 0:
            raise ValueError(f"repair-maximum must be 0 (no limit) or more, not {repair_maximum}")
        self.retry_timeout = retry_timeout
        self.repair_maximum = repair_maximum
        self.repair_binary = repair_binary
        self.temp_power_off = temp_power_off
        self._objects: dict[Key, ObjectState] = {}

    def _state(self, key: Key) -> ObjectState:
        state = self._objects.get(key)
        if state is None:
            state = self._objects[key] = ObjectState(check=key[0], object=key[1])
        return state

    def _act(self, key: Key, code: int, why: str) -> Act:
        reason = f"{_name(key)}: {codes.describe(code)} (code {code}); {why}"
        return Act(action_kind(code, self.temp_power_off), code, key[0], key[1], reason)

    def judge(
        self, now: float, check: str, object: str | None, code: int, version: int = 0
    ) -> Decision:
        """One check's result. `object` is what failed (a path, an interface, an address,
        LOAD_OBJECT...) or None for a check without one; `version` 1 marks a test-directory
        binary, which repairs itself."""
        key: Key = (check, object)
        state = self._state(key)
        objectless = object is None or check in OBJECTLESS_CHECKS
        if code == codes.EDONTKNOW:
            return Fine()
        state.last_code = code
        if code == codes.ENOERR:
            state.failing_since = None
            state.retry_since = None
            state.repairs = 0
            state.denied = False
            return Fine()
        if state.failing_since is None:
            state.failing_since = now
        if code in codes.NOT_REPAIRABLE:
            return self._act(key, code, "not repairable")

        # A check without an object has neither a retry timer nor a repair count (5.16).
        if not objectless and self.retry_timeout > 0:
            if state.retry_since is None:
                state.retry_since = now
                return Retrying(now, code, key)
            if now - state.retry_since <= self.retry_timeout:
                return Retrying(state.retry_since, code, key)

        if not objectless and self.repair_maximum > 0:
            if state.repairs >= self.repair_maximum:
                state.denied = True
                return self._act(
                    key, code, f"repair-maximum {self.repair_maximum} reached without a success"
                )
            # 5.16 gives every repair a fresh retry period, but only when the repairs are
            # counted: with repair-maximum 0 the timer keeps running and each further failure
            # is repaired at once.
            state.retry_since = None

        argv = self._repair_argv(None if objectless else object, code, version)
        if argv is None:
            return self._act(key, code, "no repair-binary")
        state.repairs += 1
        return Repair(key, argv, code, state.repairs)

    def _repair_argv(self, object: str | None, code: int, version: int) -> list[str] | None:
        if version == 1 and object is not None:
            return [object, "repair", str(code), object]
        if self.repair_binary is None:
            return None
        if object is None:
            return [self.repair_binary, str(code)]
        return [self.repair_binary, str(code), object]

    def repaired(self, now: float, key: Key, exit_code: int) -> Decision:
        """A repair binary's result (as `children.run_child` returns it): 0 is no error for
        now (the object keeps its repair count until it succeeds), anything else is the
        action with that code."""
        if exit_code == codes.ENOERR:
            return Fine()
        state = self._state(key)
        state.last_code = exit_code
        return self._act(
            key, exit_code, f"the repair binary returned {exit_code} ({codes.describe(exit_code)})"
        )

    def snapshot(self) -> list[ObjectState]:
        """Every object judged so far, in the order first seen (copies)."""
        return [
            ObjectState(
                s.check,
                s.object,
                s.last_code,
                s.failing_since,
                s.retry_since,
                s.repairs,
                s.denied,
            )
            for s in self._objects.values()
        ]
