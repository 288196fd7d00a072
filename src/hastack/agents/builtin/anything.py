"""anything: run any command as a supervised daemon.

start runs `binfile cmdline_options` in its own session (so neither the executor's kill of a
timed-out agent nor the agent's exit touches it), as `user`, output appended to `logfile` and
`errlogfile`, its PID in `pidfile`. monitor checks that this PID is alive and is the process
the pidfile was written for (not a recycled PID).
stop sends `stop_signal` to its process group, waits `stop_timeout`, then SIGKILLs it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

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
    write_file,
)

INFO = AgentInfo(
    name="anything",
    shortdesc="Runs a command as a supervised daemon (hastack)",
    longdesc="Starts binfile with cmdline_options in the background, records its PID in "
    "pidfile, monitors that the process lives, and stops it with stop_signal, then SIGKILL "
    "after stop_timeout.",
    params=(
        Param(
            "binfile",
            "Executable",
            "The program to run (absolute path or found on PATH).",
            required=True,
        ),
        Param("cmdline_options", "Command line options", "Arguments, split as a shell would."),
        Param("workdir", "Working directory", "Directory the command runs in.", default="/"),
        Param(
            "pidfile",
            "PID file",
            "Where the daemon's PID is kept.",
            default="{HA_VARRUN}/anything_{instance}.pid",
            unique=True,
        ),
        Param("logfile", "Output file", "stdout is appended here.", default="/dev/null"),
        Param("errlogfile", "Error output file", "stderr is appended here (default: logfile)."),
        Param("user", "User", "Run the command as this user (needs root)."),
        Param(
            "monitor_hook",
            "Monitor hook",
            "A command run by monitor after the process check; non-zero exit = failed.",
        ),
        Param("stop_signal", "Stop signal", "Signal name or number sent on stop.", default="TERM"),
        Param(
            "stop_timeout",
            "Stop timeout",
            "Seconds to wait after stop_signal before SIGKILL (default: 2/3 of the stop "
            "operation's timeout, or 10).",
            "time",
        ),
    ),
    actions=(
        Action("start", 20),
        Action("stop", 20),
        Action("monitor", 20, interval=10, depth=0),
        Action("meta-data", 5),
        Action("validate-all", 5),
    ),
)

_START_GRACE = 0.5  # seconds a started command must survive to count as started
_PID_AGE_SLACK = 5.0  # seconds a daemon may be older than its pidfile


def _binfile(ctx: Context) -> str:
    name = ctx.param("binfile")
    path = name if "/" in name else (_which(name) or name)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise OcfError(OcfRc.ERR_INSTALLED, f"binfile {name!r} is not an executable file")
    return os.path.abspath(path)


def _which(name: str) -> str | None:
    for folder in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _options(ctx: Context) -> list[str]:
    text = ctx.param("cmdline_options")
    try:
        return shlex.split(text)
    except ValueError as err:
        raise OcfError(OcfRc.ERR_CONFIGURED, f"cmdline_options={text!r}: {err}") from None


def _stop_signal(ctx: Context) -> signal.Signals:
    text = ctx.param("stop_signal").strip().upper()
    try:
        if text.isdigit():
            return signal.Signals(int(text))
        return signal.Signals[text if text.startswith("SIG") else "SIG" + text]
    except (KeyError, ValueError):
        raise OcfError(
            OcfRc.ERR_CONFIGURED, f"stop_signal={text!r} is not a signal name (TERM, INT, ...)"
        ) from None


def _user(ctx: Context) -> pwd.struct_passwd | None:
    name = ctx.param("user")
    if not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise OcfError(OcfRc.ERR_INSTALLED, f"user {name!r} does not exist") from None
    if entry.pw_uid != os.geteuid() and os.geteuid() != 0:
        raise OcfError(OcfRc.ERR_PERM, f"running as user {name!r} needs root")
    return entry


def _stop_timeout(ctx: Context) -> float:
    if ctx.param("stop_timeout"):
        return ctx.float_param("stop_timeout")
    if ctx.timeout_ms:
        return ctx.timeout_ms / 1500  # leave a third of the operation for the SIGKILL
    return 10.0


def validate(ctx: Context) -> int:
    _binfile(ctx)
    _options(ctx)
    _stop_signal(ctx)
    _user(ctx)
    _stop_timeout(ctx)
    if not os.path.isdir(ctx.param("workdir")):
        raise OcfError(OcfRc.ERR_CONFIGURED, f"workdir {ctx.param('workdir')!r} is not a directory")
    state_path(ctx, "pidfile")
    return OcfRc.SUCCESS


def _read_pid(pidfile: Path) -> int | None:
    try:
        text = pidfile.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise OcfError(OcfRc.ERR_GENERIC, f"cannot read {pidfile}: {err.strerror}") from None
    return int(text) if text.isdigit() else None


def _alive(pid: int) -> bool:
    """Alive and not a zombie: a daemon whose parent (the agent) is gone is reaped by init,
    but a container's PID 1 may never reap it, and a zombie is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def _started_with(pid: int, pidfile: Path) -> bool:
    """Guards against a recycled PID: the process must have started just before its pidfile
    was written (we write it right after the fork), not long before nor after. Unlike
    comparing command lines, this holds for daemons that exec another program."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        written = pidfile.stat().st_mtime
    except (OSError, StopIteration, ValueError, IndexError):
        return False
    started = btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    # btime has one-second resolution, hence the slack on both sides.
    return written - _PID_AGE_SLACK <= started <= written + 2.0


def _running_pid(ctx: Context) -> int | None:
    pidfile = state_path(ctx, "pidfile")
    pid = _read_pid(pidfile)
    if pid is None or not _alive(pid):
        return None
    return pid if _started_with(pid, pidfile) else None


def _open_log(path: str) -> BinaryIO:
    try:
        return open(path, "ab")  # handed to the child, closed right after
    except OSError as err:
        raise OcfError(OcfRc.ERR_PERM, f"cannot open {path}: {err.strerror}") from None


def start(ctx: Context) -> int:
    validate(ctx)
    if _running_pid(ctx) is not None:
        return OcfRc.SUCCESS
    argv = [_binfile(ctx), *_options(ctx)]
    user = _user(ctx)
    logfile = ctx.param("logfile")
    out = _open_log(logfile)
    err = _open_log(ctx.param("errlogfile") or logfile)
    kwargs: dict[str, object] = {}
    if user is not None and user.pw_uid != os.geteuid():
        kwargs = {
            "user": user.pw_uid,
            "group": user.pw_gid,
            "extra_groups": os.getgrouplist(user.pw_name, user.pw_gid),
        }
    env = dict(os.environ)
    if user is not None:
        env.update(HOME=user.pw_dir, USER=user.pw_name, LOGNAME=user.pw_name)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=ctx.param("workdir"),
            env=env,
            start_new_session=True,  # its own group: stop signals all of it, and only it
            close_fds=True,
            **kwargs,  # type: ignore[arg-type]
        )
    except OSError as error:
        raise OcfError(OcfRc.ERR_GENERIC, f"cannot run {argv[0]}: {error.strerror}") from None
    finally:
        out.close()
        err.close()
    write_file(state_path(ctx, "pidfile"), f"{proc.pid}\n")
    deadline = time.monotonic() + _START_GRACE
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            state_path(ctx, "pidfile").unlink(missing_ok=True)
            raise OcfError(
                OcfRc.ERR_GENERIC, f"{argv[0]} exited at once with code {code} (see {logfile})"
            )
        time.sleep(0.05)
    log(f"started {shlex.join(argv)} as pid {proc.pid}")
    return OcfRc.SUCCESS


def _signal_group(pid: int, sig: int) -> None:
    # The daemon leads its own session (we started it so); if it is not a group leader any
    # more (it re-daemonized), signal only the PID we know.
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def stop(ctx: Context) -> int:
    validate_for_stop(ctx)
    pidfile = state_path(ctx, "pidfile")
    pid = _running_pid(ctx)
    if pid is not None:
        _signal_group(pid, _stop_signal(ctx))
        if not _wait_gone(pid, _stop_timeout(ctx)):
            log(f"pid {pid} still running after {_stop_timeout(ctx):g}s: SIGKILL")
            _signal_group(pid, signal.SIGKILL)
            if not _wait_gone(pid, 5.0):
                raise OcfError(OcfRc.ERR_GENERIC, f"pid {pid} survived SIGKILL")
    pidfile.unlink(missing_ok=True)
    return OcfRc.SUCCESS


def validate_for_stop(ctx: Context) -> None:
    # A stop must work even when binfile has vanished since start: only what stop itself
    # needs is checked.
    _stop_signal(ctx)
    _stop_timeout(ctx)


def monitor(ctx: Context) -> int:
    try:
        validate(ctx)
    except OcfError as err:
        if ctx.is_probe and err.rc in (OcfRc.ERR_INSTALLED, OcfRc.ERR_CONFIGURED, OcfRc.ERR_PERM):
            # A probe asks "is it running here?"; a command not installed here is not running.
            return OcfRc.NOT_RUNNING
        raise
    pid = _running_pid(ctx)
    if pid is None:
        return OcfRc.NOT_RUNNING
    hook = ctx.param("monitor_hook")
    if hook:
        result = subprocess.run(hook, shell=True, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
            raise OcfError(
                OcfRc.ERR_GENERIC,
                f"monitor_hook exited with {result.returncode}: {detail[0][:200]}",
            )
    return OcfRc.SUCCESS


HANDLERS = {"start": start, "stop": stop, "monitor": monitor, "validate-all": validate}

if __name__ == "__main__":
    main(INFO, HANDLERS)
