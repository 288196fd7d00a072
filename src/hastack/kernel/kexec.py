"""kexec: boot a new kernel without going through the firmware, to shorten a reboot's downtime.

The seed's "Using kexec": a kernel built with CONFIG_KEXEC, kexec-tools in user space, then

    kexec -l <kernel-image> --append=<command-line-options> --initrd=<initrd-image>
    kexec -e

The pure part builds every command as an argv list (`load_argv`, `exec_argv`, `reboot_plan`) and
checks readings handed to it (`parse_kernel_config`, `config_kexec_check`). The shell part reads
the running kernel's release, /proc/cmdline and the kernel config, and runs a plan through a
`run` callable: the real one starts processes, tests pass a recorder, so `kexec -e` is never
run by a test. A dry run prints the plan instead of running it.
"""

from __future__ import annotations

import gzip
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

__all__ = [
    "BOOT",
    "PROC",
    "SYSTEMD_RUN_DIR",
    "Check",
    "Image",
    "KexecError",
    "Plan",
    "Runner",
    "Step",
    "config_kexec_check",
    "decide",
    "default_image",
    "exec_argv",
    "find_kexec",
    "image_checks",
    "kexec_reboot_command",
    "kexec_tools_check",
    "load_argv",
    "parse_kernel_config",
    "read_kernel_config",
    "reboot_plan",
    "run_plan",
    "running_cmdline",
    "running_release",
    "subprocess_runner",
    "systemd_running",
]

BOOT = Path("/boot")
PROC = Path("/proc")
SYSTEMD_RUN_DIR = Path("/run/systemd/system")  # present iff systemd is PID 1 (sd_booted(3))
KEXEC_SEARCH_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"

Runner = Callable[[list[str]], int]


class KexecError(Exception):
    """A kexec step cannot be done; the message names the file or command and why."""


@dataclass(frozen=True)
class Image:
    """What to load: a kernel, its initrd (None: none), its command line."""

    kernel: Path
    initrd: Path | None
    append: str


@dataclass(frozen=True)
class Check:
    """One precondition the seed names, with what answered it."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Step:
    """One command of a plan. `fallback`: run only when the steps before it failed."""

    argv: list[str]
    why: str
    fallback: bool = False


@dataclass(frozen=True)
class Plan:
    steps: list[Step] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The plan as a dry run shows it: one shell-quoted command a line."""
        out = []
        for step in self.steps:
            prefix = "if that fails: " if step.fallback else ""
            out.append(f"{prefix}{shlex.join(step.argv)}    # {step.why}")
        return out


# --- pure: building commands --------------------------------------------------------------------


def _strip_boot_image(cmdline: str) -> str:
    # BOOT_IMAGE= is added by the boot loader and names the old image; kexec-tools'
    # --reuse-cmdline drops it too, so the new kernel is not told a wrong name.
    return " ".join(w for w in cmdline.split() if not w.startswith("BOOT_IMAGE="))


def default_image(release: str, cmdline: str, boot: Path = BOOT, *, initrd: bool = True) -> Image:
    """The running kernel, as Debian names it under `boot`, with its initrd and command line."""
    return Image(
        kernel=boot / f"vmlinuz-{release}",
        initrd=boot / f"initrd.img-{release}" if initrd else None,
        append=_strip_boot_image(cmdline),
    )


def load_argv(image: Image, kexec: str = "kexec") -> list[str]:
    """`kexec -l KERNEL [--initrd=INITRD] --append=CMDLINE`, the seed's form."""
    argv = [kexec, "-l", str(image.kernel)]
    if image.initrd is not None:
        argv.append(f"--initrd={image.initrd}")
    argv.append(f"--append={image.append}")
    return argv


def exec_argv(kexec: str = "kexec") -> list[str]:
    """`kexec -e`: jump to the loaded kernel now, without shutting anything down."""
    return [kexec, "-e"]


def _plain_reboot_argv(systemd: bool) -> list[str]:
    return ["systemctl", "reboot"] if systemd else ["/sbin/reboot"]


def reboot_plan(
    image: Image,
    *,
    systemd: bool,
    kexec: str = "kexec",
    fallback: bool = False,
    fallback_argv: Sequence[str] | None = None,
) -> Plan:
    """Load, then reboot into the loaded kernel. Under systemd, `systemctl kexec` stops the
    services in order first (the seed's "clean shutdown including all shutdown scripts");
    without it, `sync` then `kexec -e`, so at least the page cache reaches the disks.
    `fallback`: if that fails, an ordinary reboot (for a watchdog or fence repair, where not
    rebooting at all would be the worst outcome): `fallback_argv`, or by default `systemctl
    reboot` (`/sbin/reboot` without systemd)."""
    steps = [Step(load_argv(image, kexec), "load the new kernel")]
    if systemd:
        steps.append(Step(["systemctl", "kexec"], "stop services, then boot the loaded kernel"))
    else:
        steps.append(Step(["sync"], "flush the page cache: kexec -e shuts nothing down"))
        steps.append(Step(exec_argv(kexec), "boot the loaded kernel now"))
    if fallback:
        plain = list(fallback_argv) if fallback_argv else _plain_reboot_argv(systemd)
        steps.append(Step(plain, "an ordinary reboot instead", fallback=True))
    return Plan(steps)


def kexec_reboot_command(
    *,
    kernel: Path | None = None,
    initrd: Path | None = None,
    append: str | None = None,
    fallback: bool = True,
    program: str = "hastack",
) -> str:
    """The command line for the watchdog's `reboot-command` (or a fence's reboot action) to
    reboot through kexec. `fallback` (the default) makes a failed kexec an ordinary reboot:
    a repair that does not reboot at all leaves the broken node in the cluster."""
    argv = [*shlex.split(program), "kernel", "kexec", "reboot"]
    if kernel is not None:
        argv.append(f"--kernel={kernel}")
    if initrd is not None:
        argv.append(f"--initrd={initrd}")
    if append is not None:
        argv.append(f"--append={append}")
    if fallback:
        argv.append("--fallback")
    return shlex.join(argv)


# --- pure: checks over readings -----------------------------------------------------------------


def parse_kernel_config(text: str) -> dict[str, str]:
    """CONFIG_X -> value ('y', 'm', '"string"', a number, or 'n' for '# CONFIG_X is not set')."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# CONFIG_") and line.endswith(" is not set"):
            name = line[2 : -len(" is not set")].strip()
            if name and " " not in name:
                values[name] = "n"
            continue
        if line.startswith("CONFIG_"):
            name, sep, value = line.partition("=")
            if sep and name and " " not in name:
                values[name] = value
    return values


def config_kexec_check(text: str | None, source: str | None) -> Check:
    """CONFIG_KEXEC from a kernel config's text (None: no config file was found)."""
    if text is None or source is None:
        return Check(
            "CONFIG_KEXEC",
            False,
            "cannot tell: no /proc/config.gz (CONFIG_IKCONFIG_PROC) and no /boot/config-RELEASE",
        )
    config = parse_kernel_config(text)
    value = config.get("CONFIG_KEXEC")
    file_value = config.get("CONFIG_KEXEC_FILE")
    extra = " (CONFIG_KEXEC_FILE=y: `kexec -s` may work)" if file_value == "y" else ""
    if value == "y":
        return Check("CONFIG_KEXEC", True, f"CONFIG_KEXEC=y in {source}")
    if value is None:
        return Check("CONFIG_KEXEC", False, f"CONFIG_KEXEC is not in {source}{extra}")
    return Check("CONFIG_KEXEC", False, f"CONFIG_KEXEC is not set in {source}{extra}")


def image_checks(image: Image) -> list[Check]:
    """The kernel and initrd files exist (and are files)."""
    checks = [
        Check(
            "kernel image",
            image.kernel.is_file(),
            f"{image.kernel}" + ("" if image.kernel.is_file() else ": no such file"),
        )
    ]
    if image.initrd is None:
        checks.append(Check("initrd", True, "none (--no-initrd)"))
    else:
        ok = image.initrd.is_file()
        checks.append(Check("initrd", ok, f"{image.initrd}" + ("" if ok else ": no such file")))
    return checks


def kexec_tools_check(kexec: str | None) -> Check:
    """`kexec`: the binary found (or named by the operator and executable), None if none."""
    if kexec is None:
        return Check(
            "kexec-tools",
            False,
            f"no executable kexec (searched {KEXEC_SEARCH_PATH}, or the --kexec given); "
            "Debian: apt-get install kexec-tools",
        )
    return Check("kexec-tools", True, kexec)


def decide(plan: Plan, checks: Sequence[Check], *, force: bool) -> tuple[Plan | None, list[str]]:
    """What to run given the checks: the plan when they pass (or `force`); when they fail, only
    the plan's fallback steps if it has any, else nothing (None). Also the reasons, one a line."""
    failed = [f"{c.name}: {c.detail}" for c in checks if not c.ok]
    if not failed or force:
        return plan, failed
    fallback = [Step(s.argv, s.why) for s in plan.steps if s.fallback]
    if fallback:
        return Plan(fallback), failed
    return None, failed


# --- the shell: readings and running ------------------------------------------------------------


def read_kernel_config(
    release: str, proc: Path = PROC, boot: Path = BOOT
) -> tuple[str, str] | tuple[None, None]:
    """(the config's text, the file that answered): /proc/config.gz first (the running
    kernel's own), then /boot/config-RELEASE; (None, None) when neither can be read."""
    gz = proc / "config.gz"
    try:
        return gzip.decompress(gz.read_bytes()).decode(errors="replace"), str(gz)
    except (OSError, EOFError):
        pass  # not built with CONFIG_IKCONFIG_PROC, or unreadable: try /boot
    plain = boot / f"config-{release}"
    try:
        return plain.read_text(errors="replace"), str(plain)
    except OSError:
        return None, None


def running_cmdline(proc: Path = PROC) -> str:
    path = proc / "cmdline"
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise KexecError(
            f"{path}: cannot read the running kernel's command line ({exc.strerror or exc}); "
            "give --append"
        ) from exc


def find_kexec(path: str = KEXEC_SEARCH_PATH) -> str | None:
    return shutil.which("kexec", path=path)


def systemd_running(run_dir: Path = SYSTEMD_RUN_DIR) -> bool:
    return run_dir.is_dir()


def subprocess_runner(argv: list[str]) -> int:
    """The real runner: starts the command, waits, returns its exit code (127: not found)."""
    try:
        return subprocess.run(argv, check=False).returncode
    except FileNotFoundError:
        print(f"hastack kernel kexec: {argv[0]}: command not found", file=sys.stderr)
        return 127


def run_plan(plan: Plan, run: Runner, *, dry_run: bool, out: TextIO | None = None) -> int:
    """Run the steps in order, stopping at the first that fails; a fallback step runs only
    then. `dry_run`: print the plan, run nothing. Returns the exit code of the plan."""
    out = out if out is not None else sys.stdout
    if dry_run:
        print("dry run: would run", file=out)
        for line in plan.lines():
            print(f"  {line}", file=out)
        return 0
    failed: int = 0
    for step in plan.steps:
        if step.fallback:
            if failed == 0:
                break  # everything before it worked: nothing to fall back from
            print(f"falling back: {shlex.join(step.argv)}", file=sys.stderr)
            return run(list(step.argv))
        if failed:
            continue  # skip the rest of the main path, look for a fallback
        rc = run(list(step.argv))
        if rc != 0:
            print(f"hastack kernel kexec: {shlex.join(step.argv)} exited {rc}", file=sys.stderr)
            failed = rc
    return failed


def running_release() -> str:
    """The running kernel's release (`uname -r`)."""
    return os.uname().release
