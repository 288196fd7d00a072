"""What the watchdog daemon leaves on disk for `hastack watchdog status` and for the next boot.

* ``status.json``: rewritten (atomically) after every cycle: the device, its timeout, whether
  it is armed, the last keep-alive, each check's last result, the repair state.
* ``last-reset.json``: why the daemon let the machine go down. It is written and synced
  *before* the daemon runs the reboot or stops feeding the device, so that the reason survives
  the reset; the daemon started after the reboot reports it (it knows the boot is a new one by
  the kernel's boot id) and status keeps showing it.
* ``watchdog.pid``: the running daemon, locked, so that a second one refuses to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

STATUS = "status.json"
LAST_RESET = "last-reset.json"
PIDFILE = "watchdog.pid"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


class StateError(Exception):
    """The state directory cannot be used (said with the path and the reason)."""


def boot_id() -> str:
    try:
        return Path(BOOT_ID).read_text().strip()
    except OSError:
        return ""


def write_json(path: Path, document: dict[str, Any], *, sync: bool = False) -> None:
    """Replace `path` with `document` so that a reader never sees half a file; with `sync`,
    the new content is on disk when this returns (the reset reason)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    data = json.dumps(document, indent=1, sort_keys=True).encode() + b"\n"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync:
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def read_json(path: Path) -> dict[str, Any] | None:
    """The document at `path`; None when there is none; StateError when it is unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: {exc.strerror}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise StateError(f"{path}: not a status file ({exc})") from None
    if not isinstance(document, dict):
        raise StateError(f"{path}: not a status file (a JSON object is expected)")
    return document


class StateDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None

    def prepare(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o755)
        except OSError as exc:
            raise StateError(f"cannot create the state directory {self.path}: {exc}") from None

    def lock(self) -> None:
        """Take the pidfile, or refuse: another daemon already runs with this state."""
        path = self.path / PIDFILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateError(
                f"another watchdog daemon (pid {other}) runs with the state directory "
                f"{self.path}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            (self.path / PIDFILE).unlink()
        os.close(self._lock_fd)
        self._lock_fd = None

    def running_pid(self) -> int | None:
        """The pid of a live daemon holding this state directory, else None."""
        path = self.path / PIDFILE
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else None
            return None  # nobody holds it: a stale file
        finally:
            os.close(fd)

    def write_status(self, document: dict[str, Any]) -> None:
        write_json(self.path / STATUS, document)

    def read_status(self) -> dict[str, Any] | None:
        return read_json(self.path / STATUS)

    def record_reset(self, reason: dict[str, Any]) -> dict[str, Any]:
        """Record (and sync) why the machine is about to go down; the record as written."""
        record = {
            **reason,
            "time": time.time(),
            "boot_id": boot_id(),
            "pid": os.getpid(),
            "reported": False,
        }
        write_json(self.path / LAST_RESET, record, sync=True)
        return record

    def last_reset(self) -> dict[str, Any] | None:
        return read_json(self.path / LAST_RESET)

    def take_unreported_reset(self) -> dict[str, Any] | None:
        """At start: the reset recorded in an earlier boot and not reported yet (then marked
        reported, so that a restart of the daemon does not report it twice)."""
        try:
            record = self.last_reset()
        except StateError:
            return None
        if record is None or record.get("reported") or record.get("boot_id") == boot_id():
            return None
        write_json(self.path / LAST_RESET, {**record, "reported": True}, sync=True)
        return record


STATE_DIR_VARIABLE = "HASTACK_WATCHDOG_STATE_DIR"


def summary(state_dir: str | None = None) -> dict[str, Any] | None:
    """For the cluster's status: the watchdog daemon of this machine in a few fields, or None
    when none ever ran here. `state_dir` defaults to $HASTACK_WATCHDOG_STATE_DIR, else the
    daemon's default."""
    from hastack.watchdog.model import DEFAULT_STATE_DIR

    state = StateDir(state_dir or os.environ.get(STATE_DIR_VARIABLE) or DEFAULT_STATE_DIR)
    try:
        status = state.read_status()
        last_reset = state.last_reset()
    except StateError as exc:
        return {"running": False, "problem": str(exc)}
    if status is None and last_reset is None:
        return None
    status = status or {}
    device = status.get("device") or {}
    checks = status.get("checks") or []
    return {
        "running": state.running_pid() is not None and bool(status.get("running")),
        "pid": status.get("pid"),
        "device": device.get("path"),
        "armed": bool(device.get("armed")),
        "feeding": bool(device.get("feeding")),
        "last_keepalive": device.get("last_keepalive"),
        "checks": len(checks),
        "failing": [f"{c.get('check')} {c.get('object')}" for c in checks if c.get("code")],
        "action": status.get("action"),
        "last_reset": last_reset,
    }
