"""The panic profile: the seed's "Kernel Panic tuning", checked and applied through /proc/sys.

A node that oopses or hangs is worse for a cluster than a node that is gone: it may still hold
resources, answer heartbeats from a half-dead kernel, or never reboot. The seed's answer is to
turn those errors into panics and reboot after a short timeout, so the node leaves the cluster
cleanly and comes back:

    echo 5 > /proc/sys/kernel/panic
    echo 1 > /proc/sys/kernel/panic_on_oops
    echo 1 > /proc/sys/kernel/panic_on_unrecovered_nmi

The sans-IO part is `Profile` (the values wanted), `diff` (what differs from readings handed to
it) and `render_sysctl_conf` / `parse_sysctl_conf`. The shell part reads and writes through a
`proc_sys` root (the real /proc/sys by default; tests pass a temporary tree of files) and writes
the sysctl.d file that makes the profile survive a reboot.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hastack.fileio import write_atomically

__all__ = [
    "DEFAULT_TIMEOUT",
    "PROC_SYS",
    "SYSCTL_FILE",
    "Change",
    "Outcome",
    "PanicError",
    "Profile",
    "Setting",
    "apply_changes",
    "diff",
    "key_path",
    "parse_sysctl_conf",
    "read_current",
    "read_sysctl_file",
    "render_sysctl_conf",
    "same_value",
    "write_sysctl_file",
]

PROC_SYS = Path("/proc/sys")
SYSCTL_FILE = Path("/etc/sysctl.d/90-hastack-panic.conf")
DEFAULT_TIMEOUT = 5  # the seed's example: "echo 5 > /proc/sys/kernel/panic"

_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*(\.[A-Za-z0-9_][A-Za-z0-9_-]*)+$")


class PanicError(Exception):
    """A key could not be read or written; the message names the key, the path and the error."""


@dataclass(frozen=True)
class Setting:
    """One wanted sysctl value. `required`: a kernel without this key cannot give the profile
    (an error), rather than a feature this kernel lacks (reported, not an error)."""

    key: str
    value: str
    required: bool
    why: str


@dataclass(frozen=True)
class Profile:
    """The panic values wanted: the seed's three, and the related ones as options.

    `timeout`: kernel.panic, seconds from a panic to the reboot; negative reboots at once. 0 is
    refused: it means "never reboot", which leaves a dead node hanging in the cluster."""

    timeout: int = DEFAULT_TIMEOUT
    softlockup: bool = False
    hung_task: bool = False
    on_warn: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, int):
            raise ValueError(f"panic timeout: {self.timeout!r} is not a whole number of seconds")
        if self.timeout == 0:
            raise ValueError(
                "panic timeout: 0 means the kernel never reboots after a panic; allowed: a "
                "positive number of seconds, or negative to reboot at once"
            )

    def settings(self) -> tuple[Setting, ...]:
        wanted = [
            Setting("kernel.panic", str(self.timeout), True, "reboot this long after a panic"),
            Setting("kernel.panic_on_oops", "1", True, "treat an oops as a panic"),
            # Only some architectures (x86) have this key: elsewhere it is reported, not fatal.
            Setting("kernel.panic_on_unrecovered_nmi", "1", False, "panic on an unrecovered NMI"),
        ]
        # The options are required when asked for: the operator wants that protection, and a
        # kernel built without the detector (CONFIG_SOFTLOCKUP_DETECTOR, ...) cannot give it.
        if self.softlockup:
            wanted.append(Setting("kernel.softlockup_panic", "1", True, "panic on a soft lockup"))
        if self.hung_task:
            wanted.append(Setting("kernel.hung_task_panic", "1", True, "panic on a hung task"))
        if self.on_warn:
            wanted.append(Setting("kernel.panic_on_warn", "1", True, "panic on a WARN()"))
        return tuple(wanted)

    def wanted(self) -> dict[str, str]:
        return {s.key: s.value for s in self.settings()}


@dataclass(frozen=True)
class Change:
    """A key whose current value is not the wanted one. `current` None: this kernel has no
    such key."""

    key: str
    current: str | None
    wanted: str
    required: bool

    @property
    def supported(self) -> bool:
        return self.current is not None


@dataclass(frozen=True)
class Outcome:
    """What apply did with one change."""

    key: str
    before: str | None
    wanted: str
    status: Literal["written", "would-write", "unsupported"]
    after: str | None = None


def same_value(a: str, b: str) -> bool:
    """Equal as the kernel sees them: /proc/sys prints integers and separates vectors with tabs,
    so compare whitespace-separated fields, as integers where they are."""
    fa, fb = a.split(), b.split()
    if len(fa) != len(fb):
        return False
    for x, y in zip(fa, fb, strict=True):
        try:
            if int(x) != int(y):
                return False
        except ValueError:
            if x != y:
                return False
    return True


def diff(profile: Profile, current: Mapping[str, str | None]) -> list[Change]:
    """The changes that would bring `current` (key -> value; None or absent: no such key) to
    `profile`, in the profile's order."""
    changes = []
    for s in profile.settings():
        value = current.get(s.key)
        if value is None or not same_value(value, s.value):
            changes.append(Change(s.key, value, s.value, s.required))
    return changes


def render_sysctl_conf(profile: Profile, unsupported: Iterable[str] = ()) -> str:
    """The sysctl.d file for `profile`. Keys in `unsupported` (this kernel has none) are left out
    as comments: systemd-sysctl and `sysctl -p` would otherwise log an error at every boot."""
    left_out = set(unsupported)
    lines = [
        "# Written by `hastack kernel panic apply`: the panic profile, applied at boot.",
        "# A panic (and, with panic_on_oops, an oops) reboots the node after kernel.panic",
        "# seconds, so a broken node leaves the cluster instead of hanging in it.",
        "# A file that sorts later in /etc/sysctl.d, /run/sysctl.d or /usr/lib/sysctl.d, or",
        "# /etc/sysctl.conf, can override these values. Edit through hastack, not by hand.",
        "",
    ]
    for s in profile.settings():
        if s.key in left_out:
            lines.append(f"# {s.key} = {s.value}  (not supported by this kernel; left out)")
        else:
            lines.append(f"# {s.why}")
            lines.append(f"{s.key} = {s.value}")
    return "\n".join(lines) + "\n"


def parse_sysctl_conf(text: str, source: str = "<sysctl.conf>") -> dict[str, str]:
    """key -> value from sysctl.conf text, as sysctl.d(5) reads it: '#' and ';' start comments,
    '/' in a key is the same as '.', a leading '-' (ignore failure) is dropped; a later line wins.
    A non-comment line without '=' is an error naming `source` and the line."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{source}:{number}: {raw!r}: expected 'key = value'")
        key = key.strip().lstrip("-").strip().replace("/", ".")
        if not key:
            raise ValueError(f"{source}:{number}: {raw!r}: no key before '='")
        values[key] = value.strip()
    return values


# --- the shell: /proc/sys and the sysctl.d file -------------------------------------------------


def key_path(proc_sys: Path, key: str) -> Path:
    """kernel.panic -> PROC_SYS/kernel/panic. Refuses anything that could leave `proc_sys`."""
    if not _KEY_RE.match(key):
        raise PanicError(f"{key!r}: not a sysctl key (allowed: dotted names like kernel.panic)")
    return proc_sys.joinpath(*key.split("."))


def _read_value(path: Path, key: str) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PanicError(f"{key}: cannot read {path}: {exc.strerror or exc}") from exc


def read_current(profile: Profile, proc_sys: Path = PROC_SYS) -> dict[str, str | None]:
    """The current value of each of the profile's keys (None: no such key). Only reads."""
    return {s.key: _read_value(key_path(proc_sys, s.key), s.key) for s in profile.settings()}


def _write_value(path: Path, value: str) -> None:
    # No O_CREAT: a key the kernel does not have must not appear as a new file in a fixture tree
    # (the real /proc/sys could not create it anyway). One write(), as proc_sys handlers expect.
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, (value + "\n").encode())
    finally:
        os.close(fd)


def _rollback(done: list[Change], proc_sys: Path) -> str:
    """Put back the keys written so far, newest first; a sentence saying how that went."""
    if not done:
        return "nothing had been written"
    restored, failed = [], []
    for change in reversed(done):
        assert change.current is not None  # only supported keys are written
        try:
            _write_value(key_path(proc_sys, change.key), change.current)
            restored.append(f"{change.key}={change.current}")
        except OSError as exc:
            failed.append(f"{change.key} ({exc.strerror or exc})")
    sentence = "restored " + ", ".join(restored) if restored else ""
    if failed:
        sentence += ("; " if sentence else "") + "could NOT restore " + ", ".join(failed)
    return sentence


def apply_changes(
    changes: Iterable[Change], proc_sys: Path = PROC_SYS, *, dry_run: bool = False
) -> list[Outcome]:
    """Write each change, read it back, and say what happened.

    A required key that this kernel lacks stops everything before the first write. A write
    that fails, or a value that reads back different (the kernel clamped or refused it), raises
    PanicError naming the key, its path and the OS error, after putting back what was already
    written: never a half-applied profile. Unsupported optional keys are reported and skipped.
    `dry_run`: only report."""
    changes = list(changes)
    missing = [c.key for c in changes if not c.supported and c.required]
    if missing:
        raise PanicError(
            f"this kernel has no {', '.join(missing)} under {proc_sys}: the profile cannot be "
            "applied (nothing was written); drop the option that asks for it, or use a kernel "
            "built with it"
        )
    outcomes: list[Outcome] = []
    done: list[Change] = []
    for change in changes:
        if not change.supported:
            outcomes.append(Outcome(change.key, None, change.wanted, "unsupported"))
            continue
        if dry_run:
            outcomes.append(Outcome(change.key, change.current, change.wanted, "would-write"))
            continue
        path = key_path(proc_sys, change.key)
        try:
            _write_value(path, change.wanted)
            after = _read_value(path, change.key)
        except (OSError, PanicError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PanicError(
                f"{change.key}: cannot write {change.wanted!r} to {path}: {why}; "
                f"{_rollback(done, proc_sys)}"
            ) from exc
        if after is None or not same_value(after, change.wanted):
            done.append(change)  # it was written: put it back too
            raise PanicError(
                f"{change.key}: wrote {change.wanted!r} to {path} but it reads back {after!r}; "
                f"{_rollback(done, proc_sys)}"
            )
        done.append(change)
        outcomes.append(Outcome(change.key, change.current, change.wanted, "written", after))
    return outcomes


def write_sysctl_file(
    profile: Profile, path: Path = SYSCTL_FILE, unsupported: Iterable[str] = ()
) -> str:
    """Write the sysctl.d file atomically (readers see the old file or the new, mode 0644);
    returns the text written."""
    text = render_sysctl_conf(profile, unsupported)
    if not path.parent.is_dir():
        raise PanicError(f"{path}: the directory {path.parent} does not exist")
    try:
        write_atomically(path, text.encode(), mode=0o644)
    except OSError as exc:
        raise PanicError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    return text


def read_sysctl_file(path: Path) -> dict[str, str] | None:
    """The values in an existing sysctl.d file; None when there is no such file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PanicError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return parse_sysctl_conf(text, str(path))
    except ValueError as exc:
        raise PanicError(str(exc)) from exc
