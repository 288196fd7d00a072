"""ha.cf `realtime on` (heartbeat's default): the node daemon runs at a realtime priority with
its memory locked, so that a busy or swapping machine cannot delay its heartbeats past
deadtime (a false failover) — what heartbeat 3 and keepalived do.

* `SCHED_RR` at priority 1, the lowest realtime priority: above every ordinary process, below
  the kernel's own realtime threads. `SCHED_RESET_ON_FORK` makes every process the daemon
  starts (resource agents, hooks) an ordinary process again: an agent that spins must not
  take a core from the heartbeat. The kernel's realtime throttling
  (`/proc/sys/kernel/sched_rt_runtime_us`) still leaves ordinary processes their share if the
  daemon itself should ever spin.
* `mlockall(MCL_CURRENT | MCL_FUTURE)`: no page of the daemon is swapped out.

Both need root (CAP_SYS_NICE, CAP_IPC_LOCK); without it each is a warning, not an error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

PRIORITY = 1
MCL_CURRENT, MCL_FUTURE = 1, 2


def apply(priority: int = PRIORITY) -> list[str]:
    """Raise this process to realtime scheduling (SCHED_RR at `priority`) and lock its
    memory; the problems, if any."""
    problems: list[str] = []
    try:
        policy = os.SCHED_RR | getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
        os.sched_setscheduler(0, policy, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        problems.append(f"realtime scheduling not set (SCHED_RR {priority}): {exc}")
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
            problems.append(f"memory not locked (mlockall): {os.strerror(ctypes.get_errno())}")
    except (OSError, AttributeError) as exc:
        problems.append(f"memory not locked (mlockall): {exc}")
    return problems


def apply_to_thread(priority: int = PRIORITY) -> list[str]:
    """SCHED_RR at `priority` for the calling thread only (threads do not inherit it from a
    process that set SCHED_RESET_ON_FORK); the problem, if any."""
    try:
        policy = os.SCHED_RR | getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
        os.sched_setscheduler(0, policy, os.sched_param(priority))  # 0: this thread
    except (OSError, AttributeError) as exc:
        return [f"realtime scheduling not set (SCHED_RR {priority}): {exc}"]
    return []


def current() -> str:
    """The scheduling policy this process has now, by name (for status and tests)."""
    policy = os.sched_getscheduler(0) & ~getattr(os, "SCHED_RESET_ON_FORK", 0x40000000)
    names = {os.SCHED_OTHER: "other", os.SCHED_RR: "rr", os.SCHED_FIFO: "fifo"}
    return names.get(policy, str(policy))
