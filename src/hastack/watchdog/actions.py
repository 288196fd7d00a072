"""What the watchdog daemon does when a fault is not repaired: the shutdown sequence.

In order, as the watchdog 5.16 daemon's do_shutdown, adapted to a cluster node:

1. the reason is recorded on disk and synced (:mod:`.state`), before anything that may not
   come back;
2. the administrator is told: ``notify-command`` (hastack's) with the reason on stdin, else a
   mail to ``admin`` through sendmail when there is one (no mail server is assumed: without
   either, the log says nobody was told);
3. a cluster member (``cluster-socket``) is put in standby, and the daemon waits, at most
   ``STANDBY_WAIT`` (or half the device's timeout), until it runs no resource: its services
   then move to a healthy node by a clean stop instead of by fencing;
4. the file systems are synced;
5. the action: ``reboot-command`` (most faults, and 255), ``reset-command`` (254: no orderly
   stop; ``sysrq:b`` writes b to /proc/sysrq-trigger), ``poweroff-command`` (too hot, with
   ``temp-power-off``; otherwise a halt). Whatever that command does, the daemon then stops
   feeding the device and closes it without the magic character: if the command hangs, the
   device resets the machine ``watchdog-timeout`` later.

With ``--no-action`` steps 3 to 5 are logged, not done: the daemon goes on feeding the device.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import socket
import time
from dataclasses import dataclass
from typing import Any

from hastack.watchdog.codes import describe
from hastack.watchdog.model import WatchdogConfig

log = logging.getLogger("hastack.watchdog")
NOTIFY_TIMEOUT = 10.0  # seconds for the notify command or sendmail
COMMAND_TIMEOUT = 30.0  # seconds for the reboot/poweroff command to return
STANDBY_WAIT = 30.0  # seconds, at most, for the cluster to stop this node's resources
SYSRQ = "/proc/sysrq-trigger"
SENDMAIL = ("/usr/sbin/sendmail", "/usr/lib/sendmail")


@dataclass(frozen=True)
class Fault:
    """The fault that was not repaired, and what it calls for."""

    action: str  # reboot | reset | poweroff | halt
    code: int
    check: str
    object: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "code": self.code,
            "code_text": describe(self.code),
            "check": self.check,
            "object": self.object,
            "reason": self.reason,
        }

    def sentence(self) -> str:
        return (
            f"{self.action}: {self.check} {self.object}: {self.reason} "
            f"(code {self.code}, {describe(self.code)})"
        )


def command_for(cfg: WatchdogConfig, action: str) -> str:
    if action == "reset":
        return cfg.reset_command
    if action == "poweroff":
        return cfg.poweroff_command
    if action == "halt":
        return "/sbin/halt"
    return cfg.reboot_command


async def notify(cfg: WatchdogConfig, fault: Fault, *, dry_run: bool) -> str:
    """Tell the administrator; a line saying how (or why not) for the log."""
    host = socket.gethostname()
    subject = f"watchdog on {host}: {fault.action}" + (" (dry run: no action)" if dry_run else "")
    body = f"{subject}\n{fault.sentence()}\n"
    env = {
        **os.environ,
        "WATCHDOG_ACTION": fault.action,
        "WATCHDOG_CODE": str(fault.code),
        "WATCHDOG_CHECK": fault.check,
        "WATCHDOG_OBJECT": fault.object,
        "WATCHDOG_REASON": fault.reason,
        "WATCHDOG_DRY_RUN": "1" if dry_run else "0",
    }
    if cfg.notify_command:
        argv = ["/bin/sh", "-c", cfg.notify_command]
        what = f"notify-command {cfg.notify_command!r}"
    elif cfg.admin:
        sendmail = next((path for path in SENDMAIL if os.access(path, os.X_OK)), None)
        if sendmail is None:
            return f"admin {cfg.admin} not told: no sendmail here and no notify-command"
        argv = [sendmail, "-t"]
        body = f"To: {cfg.admin}\nSubject: {subject}\n\n{body}"
        what = f"mail to {cfg.admin}"
    else:
        return "nobody told (admin is empty and there is no notify-command)"
    code = await _run(argv, body.encode(), env, NOTIFY_TIMEOUT)
    return f"{what}: " + ("sent" if code == 0 else f"failed ({code})")


async def _run(argv: list[str], stdin: bytes, env: dict[str, str], timeout: float) -> int | str:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        return f"cannot run {argv[0]}: {exc.strerror}"
    try:
        await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"timed out after {timeout:g} s"
    return proc.returncode if proc.returncode is not None else "unknown"


async def stop_cluster_resources(cfg: WatchdogConfig, wait: float) -> str:
    """Put this node in standby through its node daemon and wait until it runs nothing."""
    from hastack.daemon.control import ControlError, query

    socket_path = cfg.cluster_socket or ""

    def ask(request: dict[str, Any]) -> dict[str, Any]:
        answer = query(socket_path, request)
        if not isinstance(answer, dict) or "error" in answer:
            raise ControlError(str(answer.get("error") if isinstance(answer, dict) else answer))
        return answer

    try:
        # the node daemon names its node: the cluster's name for it, not the host name
        node = str((await asyncio.to_thread(ask, {"cmd": "health"}))["node"])
        standby = {"op": "standby", "node": node, "which": "all"}
        await asyncio.to_thread(ask, {"cmd": "cib-apply", "operation": standby})
    except (ControlError, OSError, KeyError) as exc:
        return f"cluster ({socket_path}): could not put this node in standby: {exc}"
    deadline = time.monotonic() + wait
    while True:
        try:
            health = await asyncio.to_thread(ask, {"cmd": "health"})
        except (ControlError, OSError) as exc:
            return f"cluster: {node} in standby; its node daemon stopped answering: {exc}"
        running = health.get("running") or []
        if not running:
            return f"cluster: {node} in standby, no resource runs here"
        if time.monotonic() >= deadline:
            still = ", ".join(running)
            return f"cluster: {node} in standby, still running {still} after {wait:g} s"
        await asyncio.sleep(0.2)


async def carry_out(cfg: WatchdogConfig, fault: Fault) -> str:
    """Run the action's command (the device is the caller's: it stops feeding after this)."""
    command = command_for(cfg, fault.action)
    if command.startswith("sysrq:"):
        letter = command.removeprefix("sysrq:")[:1] or "b"
        try:
            with open(SYSRQ, "w") as trigger:
                trigger.write(letter)
        except OSError as exc:
            return f"{SYSRQ}: cannot write {letter!r}: {exc.strerror}; the device will reset"
        return f"{SYSRQ}: {letter!r} written"
    argv = shlex.split(command)
    if not argv or shutil.which(argv[0]) is None:
        return f"{fault.action} command {command!r} not found; the device will reset"
    code = await _run(argv, b"", dict(os.environ), COMMAND_TIMEOUT)
    return f"{fault.action} command {command!r}: " + (
        "done" if code == 0 else f"failed ({code}); the device will reset"
    )
