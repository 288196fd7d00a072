"""Filesystem: mount a block device or a filesystem image on a directory.

An image (a regular file) is attached to a loop device with `losetup` first and detached after
the unmount. A stop that finds the filesystem busy kills the processes using it when
force_unmount is true (SIGTERM, then SIGKILL), found by device number in /proc: open files,
working and root directories, executables and mapped files. monitor = mounted, from the right
device; OCF_CHECK_LEVEL 10 also reads the device, 20 writes and reads back a status file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hastack.agents.builtin.ocf import (
    Action,
    AgentInfo,
    Context,
    OcfError,
    OcfRc,
    Param,
    log,
    main,
)

INFO = AgentInfo(
    name="Filesystem",
    shortdesc="Manages a mounted filesystem (hastack)",
    longdesc="Mounts device on directory (with fstype and options), unmounts it on stop. "
    "device may be a block device, UUID=..., LABEL=..., or a filesystem image file, which "
    "is attached through a loop device. With force_unmount, stop kills the processes that "
    "keep the filesystem busy. OCF_CHECK_LEVEL 10 reads the device, 20 writes and reads a "
    "status file inside the mount.",
    params=(
        Param(
            "device", "Device", "Block device, UUID=..., LABEL=... or an image file.", required=True
        ),
        Param(
            "directory",
            "Mount point",
            "Absolute path; created if missing.",
            required=True,
            unique=True,
        ),
        Param("fstype", "Filesystem type", "e.g. ext4, xfs (empty: detected by mount)."),
        Param("options", "Mount options", "Comma-separated, as for mount -o."),
        Param(
            "force_unmount",
            "Kill users on stop",
            "Kill processes that keep the filesystem busy when it is stopped.",
            "boolean",
            default="true",
        ),
        Param(
            "statusfile_prefix",
            "Status file prefix",
            "Path inside the mount of the OCF_CHECK_LEVEL 20 status file (then the node "
            "and resource name).",
            default=".Filesystem_status/",
        ),
    ),
    actions=(
        Action("start", 60),
        Action("stop", 60),
        Action("monitor", 40, interval=20, depth=0),
        Action("monitor", 40, interval=60, depth=20),
        Action("meta-data", 5),
        Action("validate-all", 5),
    ),
)

_COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    dev: int  # st_dev of the mounted filesystem
    mountpoint: str
    source: str
    fstype: str
    options: tuple[str, ...]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> list[Mount]:
    result = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        major, minor = (int(x) for x in fields[2].split(":"))
        result.append(
            Mount(
                dev=os.makedev(major, minor),
                mountpoint=_unescape(fields[4]),
                source=_unescape(tail[1]),
                fstype=tail[0],
                options=tuple(fields[5].split(",")),
            )
        )
    return result


def mount_at(directory: str) -> Mount | None:
    """The topmost mount on directory, or None."""
    found = [m for m in mounts() if m.mountpoint == directory]
    return found[-1] if found else None


def loop_backing_file(device: str) -> str | None:
    name = os.path.basename(device)
    try:
        text = Path(f"/sys/block/{name}/loop/backing_file").read_text().strip()
    except OSError:
        return None
    return text.removesuffix(" (deleted)")


def loops_of(image: str) -> list[str]:
    """Loop devices currently attached to image."""
    found = []
    for entry in sorted(Path("/sys/block").glob("loop*")):
        if loop_backing_file(entry.name) == image:
            found.append(f"/dev/{entry.name}")
    return found


@dataclass(frozen=True)
class Target:
    device: str  # as configured
    path: str | None  # resolved path (block device or image), None for non-path sources
    is_image: bool
    directory: str


def target(ctx: Context) -> Target:
    """The parameters, checked for form (ERR_CONFIGURED) but not for presence on this node."""
    directory = ctx.param("directory").rstrip("/") or "/"
    if not os.path.isabs(directory):
        raise OcfError(OcfRc.ERR_CONFIGURED, f"directory={directory!r} must be an absolute path")
    if directory == "/":
        raise OcfError(OcfRc.ERR_CONFIGURED, "directory=/ cannot be managed")
    device = ctx.param("device").strip()
    for kind in ("UUID", "LABEL"):
        if device.startswith(f"{kind}="):
            link = f"/dev/disk/by-{kind.lower()}/{device.split('=', 1)[1]}"
            return Target(device, link, False, os.path.realpath(directory))
    if device.startswith("/"):
        path = os.path.realpath(device)
        return Target(device, path, os.path.isfile(path), os.path.realpath(directory))
    return Target(device, None, False, os.path.realpath(directory))  # host:/export, tmpfs, ...


def _check_present(t: Target) -> None:
    if t.path is not None and not os.path.exists(t.path):
        raise OcfError(OcfRc.ERR_INSTALLED, f"device {t.device} does not exist on this node")
    for tool in ("mount", "umount", *(("losetup",) if t.is_image else ())):
        if shutil.which(tool) is None:
            raise OcfError(OcfRc.ERR_INSTALLED, f"{tool} is not installed (util-linux)")


def _same_source(m: Mount, t: Target) -> bool:
    if t.path is None:
        return m.source == t.device
    if t.is_image:
        return loop_backing_file(m.source) == t.path
    with contextlib.suppress(OSError):
        if os.path.realpath(m.source) == os.path.realpath(t.path):
            return True
        return os.stat(t.path).st_rdev == m.dev
    return False


def _run(argv: list[str], what: str) -> str:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise OcfError(
            OcfRc.ERR_GENERIC, f"{what}: {argv[0]} hung for {_COMMAND_TIMEOUT:g}s"
        ) from None
    except OSError as err:
        raise OcfError(OcfRc.ERR_INSTALLED, f"{what}: cannot run {argv[0]}: {err}") from None
    if proc.returncode != 0:
        detail = proc.stderr.strip() or proc.stdout.strip()
        raise OcfError(OcfRc.ERR_GENERIC, f"{what}: {detail} (exit {proc.returncode})")
    return proc.stdout


def _options(ctx: Context) -> list[str]:
    return [o.strip() for o in ctx.param("options").split(",") if o.strip()]


def _attach(t: Target, read_only: bool) -> str:
    """A loop device for the image: an idle existing one, else a new one."""
    assert t.path is not None
    for loop in loops_of(t.path):
        holder = next((m for m in mounts() if m.source == loop), None)
        if holder is not None:
            # Two mounts of one filesystem through two loop devices would corrupt it.
            raise OcfError(
                OcfRc.ERR_GENERIC, f"image {t.path} is already mounted at {holder.mountpoint}"
            )
        return loop
    argv = ["losetup", "--find", "--show", *(["--read-only"] if read_only else []), t.path]
    loop = _run(argv, f"attaching {t.path}").strip()
    log(f"attached {t.path} to {loop}")
    return loop


def _detach_idle_loops(t: Target) -> None:
    if not t.is_image or t.path is None:
        return
    mounted = {m.source for m in mounts()}
    for loop in loops_of(t.path):
        if loop not in mounted:
            _run(["losetup", "--detach", loop], f"detaching {loop}")
            log(f"detached {loop}")


def validate(ctx: Context) -> int:
    t = target(ctx)
    ctx.bool_param("force_unmount")
    _check_present(t)
    return OcfRc.SUCCESS


def start(ctx: Context) -> int:
    t = target(ctx)
    ctx.bool_param("force_unmount")
    _check_present(t)
    current = mount_at(t.directory)
    if current is not None:
        if _same_source(current, t):
            return OcfRc.SUCCESS
        raise OcfError(
            OcfRc.ERR_GENERIC, f"{t.directory} already has {current.source} mounted on it"
        )
    try:
        os.makedirs(t.directory, exist_ok=True)
    except OSError as err:
        raise OcfError(OcfRc.ERR_GENERIC, f"cannot create {t.directory}: {err.strerror}") from None
    options = _options(ctx)
    source = _attach(t, "ro" in options) if t.is_image else t.device
    argv = ["mount"]
    if ctx.param("fstype"):
        argv += ["-t", ctx.param("fstype")]
    if options:
        argv += ["-o", ",".join(options)]
    try:
        _run([*argv, source, t.directory], f"mounting {source} on {t.directory}")
    except OcfError:
        _detach_idle_loops(t)
        raise
    log(f"mounted {source} on {t.directory}")
    return OcfRc.SUCCESS


def _users(dev: int) -> list[int]:
    """PIDs holding anything on the filesystem with device number dev."""
    me = os.getpid()
    maps_dev = f"{os.major(dev):02x}:{os.minor(dev):02x}"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        if _uses(entry, dev, maps_dev):
            found.append(int(entry.name))
    return found


def _uses(proc: Path, dev: int, maps_dev: str) -> bool:
    links = [proc / "cwd", proc / "root", proc / "exe"]
    with contextlib.suppress(OSError):
        links += list((proc / "fd").iterdir())
    for link in links:
        with contextlib.suppress(OSError):
            if os.stat(link).st_dev == dev:
                return True
    with contextlib.suppress(OSError):
        for line in (proc / "maps").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[3] == maps_dev and fields[4] != "0":
                return True
    return False


def _kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _stop_budget(ctx: Context) -> float:
    # Leave a third of the operation's timeout for the detach and the reply.
    return ctx.timeout_ms / 1500 if ctx.timeout_ms else 20.0


def _unmount(ctx: Context, t: Target, m: Mount) -> None:
    force = ctx.bool_param("force_unmount")
    deadline = time.monotonic() + _stop_budget(ctx)
    signals = [signal.SIGTERM, signal.SIGTERM, signal.SIGKILL]
    attempt = 0
    while True:
        try:
            _run(["umount", t.directory], f"unmounting {t.directory}")
            log(f"unmounted {t.directory}")
            return
        except OcfError as err:
            users = _users(m.dev)
            if not users:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # busy for a moment (a sync, a just-exited process)
                continue
            if not force:
                raise OcfError(
                    OcfRc.ERR_GENERIC,
                    f"{t.directory} is busy (pids {' '.join(map(str, users))}) and "
                    "force_unmount is false",
                ) from None
            if time.monotonic() > deadline:
                raise OcfError(
                    OcfRc.ERR_GENERIC,
                    f"{t.directory} still busy (pids {' '.join(map(str, users))}): {err.reason}",
                ) from None
            sig = signals[min(attempt, len(signals) - 1)]
            log(f"{t.directory} busy: sending {sig.name} to {' '.join(map(str, users))}")
            _kill(users, sig)
            attempt += 1
            time.sleep(1.0 if sig == signal.SIGTERM else 0.2)


def stop(ctx: Context) -> int:
    t = target(ctx)
    ctx.bool_param("force_unmount")
    m = mount_at(t.directory)
    if m is not None:
        if not _same_source(m, t):
            # Not ours: unmounting someone else's filesystem is never right.
            log(f"{t.directory} carries {m.source}, not {t.device}: left alone")
        else:
            with contextlib.suppress(OSError):
                _status_file(ctx, t).unlink()
            _unmount(ctx, t, m)
    _detach_idle_loops(t)
    return OcfRc.SUCCESS


def _status_file(ctx: Context, t: Target) -> Path:
    node = socket.gethostname()
    return Path(t.directory, f"{ctx.param('statusfile_prefix')}{node}_{ctx.instance}")


def _read_check(t: Target, m: Mount) -> None:
    try:
        fd = os.open(m.source if t.is_image or t.path is None else t.path, os.O_RDONLY)
        try:
            os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError as err:
        raise OcfError(OcfRc.ERR_GENERIC, f"cannot read {m.source}: {err.strerror}") from None


def _write_check(ctx: Context, t: Target) -> None:
    path = _status_file(ctx, t)
    token = f"{ctx.instance} {time.time():.6f}\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, token.encode())
            os.fsync(fd)  # the check is "does the device take writes", not "the page cache"
        finally:
            os.close(fd)
        back = path.read_text()
    except OSError as err:
        raise OcfError(OcfRc.ERR_GENERIC, f"status file {path}: {err.strerror or err}") from None
    if back != token:
        raise OcfError(OcfRc.ERR_GENERIC, f"status file {path} read back different content")


def monitor(ctx: Context) -> int:
    t = target(ctx)
    level = ctx.check_level
    try:
        _check_present(t)
    except OcfError:
        if ctx.is_probe:
            return OcfRc.NOT_RUNNING  # not installable here means not running here
        raise
    m = mount_at(t.directory)
    if m is None:
        return OcfRc.NOT_RUNNING
    if not _same_source(m, t):
        raise OcfError(OcfRc.ERR_GENERIC, f"{t.directory} carries {m.source}, not {t.device}")
    if level >= 10 and t.path is not None:
        _read_check(t, m)
    if level >= 20:
        if "ro" in m.options:
            log(f"{t.directory} is mounted read-only: depth 20 checks reading only")
            _read_check(t, m)
        else:
            _write_check(ctx, t)
    return OcfRc.SUCCESS


HANDLERS = {"start": start, "stop": stop, "monitor": monitor, "validate-all": validate}

if __name__ == "__main__":
    main(INFO, HANDLERS)
