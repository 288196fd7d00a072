"""nbdfuse: an NBD export as a file on this node (nbdfuse), for a Filesystem to mount.

The replicated device of `hastack replica` is served over NBD on its Primary. With the kernel's
nbd module, `nbd-client` gives a block device; without it (containers, kernels built without
nbd), libnbd's `nbdfuse` gives a file, DIRECTORY/FILE, whose contents are the export's, and
ocf:hastack:Filesystem mounts such a file through a loop device. This agent runs that nbdfuse,
so a group can be: nbdfuse, Filesystem (device=DIRECTORY/FILE), the address, the service.

start runs `nbdfuse -P PIDFILE DIRECTORY/FILE URI` in its own session and waits until nbdfuse
says it is ready (it writes its PID file once the export is connected and the file served);
a refused connection (the replica is not Primary here) fails the start with nbdfuse's reason.
monitor: the nbdfuse process alive and its FUSE mount on DIRECTORY (OCF_CHECK_LEVEL 10 also
reads the first block through it). stop unmounts DIRECTORY (nbdfuse then exits) and stops the
process; a file still in use (a loop device, a mount on it) fails the stop with that reason,
as the group stops what uses the file first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from hastack.agents.builtin.filesystem import mount_at
from hastack.agents.builtin.ocf import (
    Action,
    AgentInfo,
    Context,
    OcfError,
    OcfRc,
    Param,
    log,
    main,
    state_path,
)

INFO = AgentInfo(
    name="nbdfuse",
    shortdesc="Serves an NBD export as a local file through nbdfuse (hastack)",
    longdesc="Runs nbdfuse so that the NBD export at uri appears as the file directory/file "
    "on this node, for ocf:hastack:Filesystem to mount through a loop device (where the "
    "kernel has no nbd module). Start waits until nbdfuse is connected and serving; stop "
    "unmounts the directory and stops nbdfuse. Typically the first member of a group "
    "colocated with the Promoted instance of an ocf:hastack:replica clone, with "
    "uri=nbd://ADDRESS:PORT/RESOURCE (the resource's nbd-address).",
    params=(
        Param(
            "uri",
            "NBD URI",
            "The export, as an NBD URI: nbd://HOST[:PORT][/EXPORT] (or nbd+unix:///EXPORT?"
            "socket=PATH).",
            required=True,
        ),
        Param(
            "directory",
            "FUSE mount point",
            "Absolute path of the directory nbdfuse mounts (created if missing); the export "
            "is the file named by `file` inside it.",
            required=True,
            unique=True,
        ),
        Param("file", "File name", "The name of the file inside directory.", default="nbd"),
        Param(
            "readonly",
            "Read-only",
            "Serve the file read-only (nbdfuse -r).",
            "boolean",
            default="false",
        ),
        Param(
            "pidfile",
            "PID file",
            "Where nbdfuse writes its PID once it is ready.",
            default="{HA_VARRUN}/nbdfuse_{instance}.pid",
            unique=True,
        ),
        Param(
            "logfile",
            "Output file",
            "nbdfuse's output is appended here.",
            default="{HA_RSCTMP}/nbdfuse_{instance}.log",
        ),
    ),
    actions=(
        Action("start", 30),
        Action("stop", 30),
        Action("monitor", 20, interval=10, depth=0),
        Action("meta-data", 5),
        Action("validate-all", 5),
    ),
)

_TOOLS = ("nbdfuse", "fusermount3")
_COMMAND_TIMEOUT = 20.0


def _directory(ctx: Context) -> str:
    directory = ctx.param("directory").rstrip("/")
    if not directory or not os.path.isabs(directory):
        raise OcfError(
            OcfRc.ERR_CONFIGURED, f"directory={ctx.param('directory')!r} must be an absolute path"
        )
    return os.path.realpath(directory)


def _file_name(ctx: Context) -> str:
    name = ctx.param("file")
    if not name or "/" in name or name in (".", ".."):
        raise OcfError(OcfRc.ERR_CONFIGURED, f"file={name!r} must be a plain file name")
    return name


def _uri(ctx: Context) -> str:
    uri = ctx.param("uri").strip()
    if not uri.startswith(("nbd://", "nbds://", "nbd+unix://", "nbds+unix://")):
        raise OcfError(
            OcfRc.ERR_CONFIGURED, f"uri={uri!r} is not an NBD URI (nbd://HOST:PORT/EXPORT)"
        )
    return uri


def _check_installed() -> None:
    for tool in _TOOLS:
        if shutil.which(tool) is None:
            raise OcfError(OcfRc.ERR_INSTALLED, f"{tool} is not installed (Debian: nbdfuse, fuse3)")
    if not os.path.exists("/dev/fuse"):
        raise OcfError(OcfRc.ERR_INSTALLED, "/dev/fuse does not exist (modprobe fuse)")


def validate(ctx: Context) -> int:
    _uri(ctx)
    _directory(ctx)
    _file_name(ctx)
    ctx.bool_param("readonly")
    state_path(ctx, "pidfile")
    _check_installed()
    return OcfRc.SUCCESS


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def _is_ours(pid: int, directory: str) -> bool:
    """Alive, not a zombie, and an nbdfuse serving `directory` (not a recycled PID)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    if state in ("Z", "X") or not argv or os.path.basename(argv[0]) != b"nbdfuse":
        return False
    return any(a.decode(errors="replace").startswith(directory + "/") for a in argv[1:])


def _fuse_mounted(directory: str) -> bool:
    m = mount_at(directory)
    return m is not None and m.fstype.startswith("fuse")


def _running_pid(ctx: Context, directory: str) -> int | None:
    pid = _read_pid(state_path(ctx, "pidfile"))
    return pid if pid is not None and _is_ours(pid, directory) else None


def _unmount(directory: str, lazy: bool = False) -> str | None:
    """fusermount3 -u (-z): None when done, else its complaint."""
    argv = ["fusermount3", "-u", *(["-z"] if lazy else []), directory]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return f"fusermount3 hung for {_COMMAND_TIMEOUT:g} s"
    if proc.returncode == 0:
        return None
    return (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}")[:300]


def _log_tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
        if lines:
            return lines[-1][:300]
    return f"see {path}"


def start(ctx: Context) -> int:
    validate(ctx)
    directory = _directory(ctx)
    if _running_pid(ctx, directory) is not None and _fuse_mounted(directory):
        return OcfRc.SUCCESS
    if _fuse_mounted(directory):
        # Left by an nbdfuse that died (its node crashed, it was killed): not serving anything.
        problem = _unmount(directory, lazy=True)
        if problem is not None:
            raise OcfError(OcfRc.ERR_GENERIC, f"stale FUSE mount on {directory}: {problem}")
        log(f"removed a stale FUSE mount on {directory}")
    elif mount_at(directory) is not None:
        raise OcfError(OcfRc.ERR_GENERIC, f"{directory} already has something else mounted on it")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise OcfError(OcfRc.ERR_GENERIC, f"cannot create {directory}: {err.strerror}") from None
    pidfile = state_path(ctx, "pidfile")
    pidfile.unlink(missing_ok=True)
    logfile = state_path(ctx, "logfile")
    argv = [
        shutil.which("nbdfuse") or "nbdfuse",
        "-P",
        str(pidfile),
        *(["-r"] if ctx.bool_param("readonly") else []),
        f"{directory}/{_file_name(ctx)}",
        _uri(ctx),
    ]
    try:
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                cwd="/",
                start_new_session=True,  # outlives this agent and its process group
                close_fds=True,
            )
    except OSError as err:
        raise OcfError(OcfRc.ERR_GENERIC, f"cannot run nbdfuse: {err.strerror}") from None
    budget = ctx.timeout_ms / 1000.0 - 3.0 if ctx.timeout_ms else 20.0
    deadline = time.monotonic() + max(budget, 2.0)
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            pidfile.unlink(missing_ok=True)
            raise OcfError(
                OcfRc.ERR_GENERIC, f"nbdfuse exited with code {code}: {_log_tail(logfile)}"
            )
        if _read_pid(pidfile) == proc.pid and _fuse_mounted(directory):
            log(f"nbdfuse (pid {proc.pid}) serves {argv[-1]} as {argv[-2]}")
            return OcfRc.SUCCESS
        time.sleep(0.05)
    _stop_process(proc.pid)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    _unmount(directory, lazy=True)
    pidfile.unlink(missing_ok=True)
    raise OcfError(OcfRc.ERR_GENERIC, f"nbdfuse was not ready in time: {_log_tail(logfile)}")


def _stop_process(pid: int, grace: float = 5.0) -> bool:
    """SIGTERM, then SIGKILL after `grace`; True once it is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or _zombie(pid):
                return True
            time.sleep(0.05)
    return False


def _zombie(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    return True


def stop(ctx: Context) -> int:
    directory = _directory(ctx)
    pidfile = state_path(ctx, "pidfile")
    pid = _running_pid(ctx, directory)
    if _fuse_mounted(directory):
        problem = _unmount(directory, lazy=pid is None)
        if problem is not None:
            # Busy: a loop device or a mount still uses the file; unmounting lazily would hide
            # the export while that user keeps writing to a device that is going away.
            raise OcfError(
                OcfRc.ERR_GENERIC,
                f"cannot unmount {directory}: {problem} (is {directory}/{_file_name(ctx)} "
                "still attached to a loop device or mounted?)",
            )
    if pid is not None:
        deadline = time.monotonic() + 5.0  # nbdfuse exits by itself once unmounted
        while time.monotonic() < deadline and _is_ours(pid, directory):
            time.sleep(0.05)
        if _is_ours(pid, directory) and not _stop_process(pid):
            raise OcfError(OcfRc.ERR_GENERIC, f"nbdfuse (pid {pid}) survived SIGKILL")
    pidfile.unlink(missing_ok=True)
    return OcfRc.SUCCESS


def monitor(ctx: Context) -> int:
    try:
        validate(ctx)
    except OcfError as err:
        if ctx.is_probe and err.rc in (OcfRc.ERR_INSTALLED, OcfRc.ERR_PERM):
            return OcfRc.NOT_RUNNING  # not installable here: not running here
        raise
    directory = _directory(ctx)
    pid = _running_pid(ctx, directory)
    mounted = _fuse_mounted(directory)
    if pid is None and not mounted:
        return OcfRc.NOT_RUNNING
    if pid is None:
        raise OcfError(OcfRc.ERR_GENERIC, f"nbdfuse is gone; {directory} is a stale FUSE mount")
    if not mounted:
        raise OcfError(OcfRc.ERR_GENERIC, f"nbdfuse (pid {pid}) runs but {directory} is unmounted")
    if ctx.check_level >= 10:
        path = f"{directory}/{_file_name(ctx)}"
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.read(fd, 4096)
            finally:
                os.close(fd)
        except OSError as err:
            raise OcfError(OcfRc.ERR_GENERIC, f"cannot read {path}: {err.strerror}") from None
    return OcfRc.SUCCESS


HANDLERS = {"start": start, "stop": stop, "monitor": monitor, "validate-all": validate}

if __name__ == "__main__":
    main(INFO, HANDLERS)
