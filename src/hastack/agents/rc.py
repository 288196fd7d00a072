"""OCF return codes, what they mean, and how bad a failure is (as Pacemaker judges it)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal


class OcfRc(IntEnum):
    """The OCF resource agent exit codes (OCF 1.1, as resource-agents' ocf-returncodes)."""

    SUCCESS = 0
    ERR_GENERIC = 1
    ERR_ARGS = 2
    ERR_UNIMPLEMENTED = 3
    ERR_PERM = 4
    ERR_INSTALLED = 5
    ERR_CONFIGURED = 6
    NOT_RUNNING = 7
    RUNNING_PROMOTED = 8
    FAILED_PROMOTED = 9
    # OCF 1.1 adds these two; Pacemaker treats them as "running but degraded".
    DEGRADED = 190
    DEGRADED_PROMOTED = 191


_MEANINGS: dict[int, str] = {
    OcfRc.SUCCESS: "success",
    OcfRc.ERR_GENERIC: "generic error",
    OcfRc.ERR_ARGS: "invalid parameter",
    OcfRc.ERR_UNIMPLEMENTED: "unimplemented feature",
    OcfRc.ERR_PERM: "insufficient privileges",
    OcfRc.ERR_INSTALLED: "not installed",
    OcfRc.ERR_CONFIGURED: "not configured",
    OcfRc.NOT_RUNNING: "not running",
    OcfRc.RUNNING_PROMOTED: "running as promoted",
    OcfRc.FAILED_PROMOTED: "failed as promoted",
    OcfRc.DEGRADED: "running but degraded",
    OcfRc.DEGRADED_PROMOTED: "running as promoted but degraded",
}


def rc_meaning(rc: int) -> str:
    """The meaning of an OCF exit code, e.g. ``rc_meaning(7) == "not running"``."""
    return _MEANINGS.get(rc, f"unknown (rc {rc})")


ExecStatus = Literal["done", "timeout", "error", "not-installed", "cancelled"]
"""How an execution ended, as Pacemaker's execution status (``PCMK_EXEC_*``):
"done" = the agent ran and exited (rc is meaningful); "timeout" = killed at its timeout;
"error" = could not be run (exec failed, bad parameters); "not-installed" = agent not found;
"cancelled" = a recurring operation was cancelled."""

EXEC_STATUSES: tuple[ExecStatus, ...] = ("done", "timeout", "error", "not-installed", "cancelled")

Severity = Literal["ok", "soft", "hard", "fatal"]
"""Pacemaker's failure classes: soft = may be retried on this node; hard = not on this node;
fatal = on no node (the configuration itself is wrong)."""

# Pacemaker's scheduler (determine_op_status) makes these rcs hard errors: the agent cannot
# work on this node whatever we retry.
_HARD_RCS = frozenset(
    {OcfRc.ERR_ARGS, OcfRc.ERR_UNIMPLEMENTED, OcfRc.ERR_PERM, OcfRc.ERR_INSTALLED}
)


def severity(
    rc: int, status: ExecStatus, expected: int | None = None, action: str | None = None
) -> Severity:
    """How bad the outcome (rc, status) of an operation is.

    ``expected`` is the rc that counts as success for this operation (see `expected_rc`);
    when None, only 0 (and the degraded codes) count as "ok". A result equal to the expected
    rc is "ok"; other rcs are classed as Pacemaker does: ERR_CONFIGURED is fatal, ERR_ARGS,
    ERR_UNIMPLEMENTED, ERR_PERM, ERR_INSTALLED and codes outside OCF's range are hard,
    everything else (generic error, unexpected not-running/promoted, failed promoted) soft.
    With ``action="stop"``, NOT_RUNNING is "ok" too: a resource that is already stopped has
    been stopped (the issue: "not-running is not a failure of a stop").
    """
    if status == "cancelled":
        return "ok"
    if status == "timeout" or status == "error":
        # Pacemaker: PCMK_EXEC_TIMEOUT and PCMK_EXEC_ERROR are ordinary (soft) failures.
        return "soft"
    if status == "not-installed":
        return "hard"
    if expected is None:
        if rc in (OcfRc.SUCCESS, OcfRc.DEGRADED):
            return "ok"
    elif (
        rc == expected
        or (rc == OcfRc.DEGRADED and expected == OcfRc.SUCCESS)
        or (rc == OcfRc.DEGRADED_PROMOTED and expected == OcfRc.RUNNING_PROMOTED)
    ):
        return "ok"
    if action == "stop" and rc == OcfRc.NOT_RUNNING and expected in (None, OcfRc.SUCCESS):
        return "ok"
    if rc == OcfRc.ERR_CONFIGURED:
        return "fatal"
    if rc in _HARD_RCS:
        return "hard"
    if rc in _MEANINGS:
        return "soft"
    return "hard"  # Pacemaker: an rc it does not know is a hard error


# LSB status codes Pacemaker reserves (application range 150-199) for these two meanings.
LSB_STATUS_NOT_INSTALLED = 150
LSB_STATUS_INSUFFICIENT_PRIV = 151


def lsb_rc_to_ocf(action: str, code: int) -> int:
    """Map an LSB init script's exit code to the OCF rc.

    For ``status`` (and ``monitor``, which is called as status): 0 running -> 0;
    1 (dead, pid file), 2 (dead, lock file), 3 (stopped) -> NOT_RUNNING; 4 (unknown) ->
    generic error; Pacemaker's 150/151 -> not installed / insufficient privileges.
    Other actions: 0..7 mean the same in LSB and OCF; anything else is a generic error.
    """
    if action in ("status", "monitor"):
        if code == 0:
            return OcfRc.SUCCESS
        if code in (1, 2, 3):
            return OcfRc.NOT_RUNNING
        if code == LSB_STATUS_NOT_INSTALLED:
            return OcfRc.ERR_INSTALLED
        if code == LSB_STATUS_INSUFFICIENT_PRIV:
            return OcfRc.ERR_PERM
        return OcfRc.ERR_GENERIC
    if 0 <= code <= 7:
        return code
    return OcfRc.ERR_GENERIC


_PROMOTED_ROLES = frozenset({"promoted", "master"})


def expected_rc(action: str, interval: float, role: str | None) -> int:
    """The rc that counts as success for an operation, as Pacemaker's scheduler sets it.

    A monitor for role Promoted (or the old name Master) expects RUNNING_PROMOTED; a monitor
    (probe) of a resource believed stopped (role "Stopped") expects NOT_RUNNING; everything
    else (start, stop, promote, demote, notify, recurring monitors of Started/Unpromoted
    resources, ...) expects SUCCESS. ``interval`` is accepted for symmetry with Pacemaker's
    op key; the expectation depends on the role, not on whether the monitor recurs.
    """
    del interval  # documented above: the role decides
    if action == "monitor" and role is not None:
        lowered = role.lower()
        if lowered in _PROMOTED_ROLES:
            return OcfRc.RUNNING_PROMOTED
        if lowered == "stopped":
            return OcfRc.NOT_RUNNING
    return OcfRc.SUCCESS


@dataclass(frozen=True)
class OpResult:
    """The outcome of running one action of an agent."""

    rc: int  # OCF rc (LSB/R1/systemd already mapped), or 1 when status != "done"
    status: ExecStatus
    exit_reason: str = ""  # from the agent's "ocf-exit-reason:" stderr lines, or ours
    output: str = ""  # last lines of stdout+stderr (at most ~4 KiB)
    started: float = 0.0  # the caller's clock (monotonic seconds)
    duration: float = 0.0  # seconds

    @property
    def meaning(self) -> str:
        """The rc's meaning, or the execution status when the agent did not finish."""
        if self.status != "done":
            return self.status
        return rc_meaning(self.rc)
