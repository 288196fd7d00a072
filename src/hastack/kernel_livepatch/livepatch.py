"""The kernel's live-patch state and the operations on it, as the kernel documents them.

Sources: the kernel's Documentation/livepatch/livepatch.rst, Documentation/ABI/testing/
sysfs-kernel-livepatch and kernel/livepatch/core.c (enabled_store, __klp_enable_patch,
__klp_disable_patch). The layout read here:

    /sys/kernel/livepatch/<patch>/enabled          rw  1 patched code applied, 0 not
    /sys/kernel/livepatch/<patch>/transition       ro  1 while tasks converge (4.12+)
    /sys/kernel/livepatch/<patch>/force            wo  (never written here: see FORCE_ADVICE)
    /sys/kernel/livepatch/<patch>/replace          ro  1 for a cumulative patch (newer kernels)
    /sys/kernel/livepatch/<patch>/stack_order      ro  position on the patch stack (6.x)
    /sys/kernel/livepatch/<patch>/<object>/patched ro  1 once the object is patched (newer)
    /sys/kernel/livepatch/<patch>/<object>/<function,sympos>/

The pure part (reading a tree into a `LivepatchState`, `check_enable`, `check_disable`,
`plan_load`) decides; the thin part (`write_enabled`, `wait_for_transition`, `load`,
`probe_tools`) touches files and runs programs through a `run` callable the tests replace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "DEFAULT_PROC",
    "DEFAULT_SYSFS",
    "FORCE_ADVICE",
    "NO_SUPPORT",
    "TOOLS",
    "BlockingTask",
    "Decision",
    "LivepatchError",
    "LivepatchState",
    "LoadPlan",
    "Patch",
    "PatchedFunction",
    "PatchedObject",
    "RunResult",
    "Runner",
    "ToolReport",
    "ToolSpec",
    "WaitResult",
    "blocking_tasks",
    "check_disable",
    "check_enable",
    "default_run",
    "load",
    "module_name_of",
    "parse_flag",
    "parse_function_dir",
    "plan_load",
    "probe_tools",
    "read_state",
    "wait_for_transition",
    "write_enabled",
]

DEFAULT_SYSFS = Path("/sys/kernel/livepatch")
DEFAULT_PROC = Path("/proc")
NO_SUPPORT = "no live patching support in this kernel (CONFIG_LIVEPATCH)"

# livepatch.rst: force is for a transition stuck on a blocking task, only with the patch
# distributor's clearance, and it makes the module unremovable; so hastack only points at it.
FORCE_ADVICE = (
    "livepatch sends blocking tasks a fake signal every 15 s; you can reverse the transition "
    "(write the opposite value to enabled: `hastack kernel livepatch enable|disable`); "
    "writing 1 to force is only for a clearance from the patch distributor, makes the "
    "module unremovable, and means a reboot should be planned"
)

_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")
# Module names as modprobe takes them; the first character is never '-', so a name can never
# be read as an option.
_MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,55}")


class LivepatchError(Exception):
    """A refusal or a failure, with a message that names the path and what is allowed."""


# ---------------------------------------------------------------------------------------------
# The state


@dataclass(frozen=True)
class PatchedFunction:
    name: str
    sympos: int | None  # the n-th symbol of that name in the object's kallsyms (1 = unique)


@dataclass(frozen=True)
class PatchedObject:
    name: str  # "vmlinux" or a module name
    patched: bool | None  # None: this kernel has no per-object `patched` attribute
    functions: tuple[PatchedFunction, ...]


@dataclass(frozen=True)
class Patch:
    name: str
    enabled: bool
    transition: bool
    replace: bool | None  # None: the kernel does not show it
    stack_order: int | None
    objects: tuple[PatchedObject, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "enabled": self.enabled,
            "transition": self.transition,
            "replace": self.replace,
            "stack_order": self.stack_order,
            "objects": [
                {
                    "name": o.name,
                    "patched": o.patched,
                    "functions": [{"name": f.name, "sympos": f.sympos} for f in o.functions],
                }
                for o in self.objects
            ],
        }


@dataclass(frozen=True)
class LivepatchState:
    root: Path
    supported: bool
    patches: tuple[Patch, ...] = ()

    def find(self, name: str) -> Patch | None:
        return next((p for p in self.patches if p.name == name), None)

    def in_transition(self) -> Patch | None:
        """The patch in transition; the kernel allows one at a time (klp_transition_patch)."""
        return next((p for p in self.patches if p.transition), None)

    def names(self) -> str:
        return ", ".join(p.name for p in self.patches) or "none"


def parse_flag(text: str, path: Path | str) -> bool:
    """A 0/1 sysfs attribute's content; anything else is an error naming the file."""
    value = text.strip()
    if value == "1":
        return True
    if value == "0":
        return False
    raise LivepatchError(f"{path}: {value[:40]!r} is not a flag: 0 or 1 is allowed")


def parse_function_dir(name: str) -> PatchedFunction:
    """`<function>,<sympos>` as core.c names the directory; a name without a valid sympos is
    kept whole with sympos None rather than refused (a newer kernel may change the format)."""
    func, sep, pos = name.rpartition(",")
    if sep and func and pos.isdigit() and pos.isascii():
        return PatchedFunction(func, int(pos))
    return PatchedFunction(name, None)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError as error:
        raise LivepatchError(f"{path}: cannot read: {error.strerror or error}") from error


def _read_flag(path: Path, *, required: bool) -> bool | None:
    if not path.exists():
        if required:
            raise LivepatchError(
                f"{path}: missing; every live patch directory has enabled (and, since 4.12, "
                "transition)"
            )
        return None
    return parse_flag(_read_text(path), path)


def _read_patch(directory: Path) -> Patch:
    enabled = _read_flag(directory / "enabled", required=True)
    # Kernels before 4.12 have no consistency model and no `transition`: the switch is
    # immediate there, so a missing file means "not in transition".
    transition = _read_flag(directory / "transition", required=False) or False
    replace = _read_flag(directory / "replace", required=False)
    stack_order: int | None = None
    stack_file = directory / "stack_order"
    if stack_file.exists():
        text = _read_text(stack_file).strip()
        if not text.isdigit():
            raise LivepatchError(f"{stack_file}: {text[:40]!r} is not a number")
        stack_order = int(text)
    objects = []
    for obj_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        functions = tuple(
            parse_function_dir(f.name) for f in sorted(obj_dir.iterdir()) if f.is_dir()
        )
        patched = _read_flag(obj_dir / "patched", required=False)
        objects.append(PatchedObject(obj_dir.name, patched, functions))
    return Patch(
        name=directory.name,
        enabled=bool(enabled),
        transition=transition,
        replace=replace,
        stack_order=stack_order,
        objects=tuple(objects),
    )


def read_state(root: Path = DEFAULT_SYSFS) -> LivepatchState:
    """Every patch under `root`; a missing root is a kernel without CONFIG_LIVEPATCH."""
    if not root.is_dir():
        return LivepatchState(root, supported=False)
    try:
        entries = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError as error:
        raise LivepatchError(f"{root}: cannot list: {error.strerror or error}") from error
    patches = [_read_patch(d) for d in entries]
    # The stack order decides which patch's version of a function runs; without stack_order
    # (before 6.x) sysfs does not show it, and the name order is only a stable display order.
    patches.sort(key=lambda p: (p.stack_order is None, p.stack_order or 0, p.name))
    return LivepatchState(root, supported=True, patches=tuple(patches))


# ---------------------------------------------------------------------------------------------
# The checks the kernel applies (core.c enabled_store), made before writing


@dataclass(frozen=True)
class Decision:
    patch: str
    value: str  # what would be written to enabled
    allowed: bool
    reason: str
    warnings: tuple[str, ...] = ()


def _common_refusal(state: LivepatchState, name: str, value: str) -> Decision | Patch:
    if not state.supported:
        return Decision(name, value, False, f"{NO_SUPPORT}: {state.root} does not exist")
    patch = state.find(name)
    if patch is None:
        return Decision(
            name,
            value,
            False,
            f"no live patch named {name!r} under {state.root} (loaded: {state.names()}); "
            "a patch is enabled by loading its module (`hastack kernel livepatch load`)",
        )
    return patch


def check_enable(state: LivepatchState, name: str) -> Decision:
    """Writing 1 to enabled: allowed only to reverse a pending disable (Linux 5.1+)."""
    found = _common_refusal(state, name, "1")
    if isinstance(found, Decision):
        return found
    patch = found
    if patch.transition and not patch.enabled:
        return Decision(name, "1", True, f"reverses the pending disable of {name}")
    if patch.enabled:
        what = "is already being enabled (transition in progress)" if patch.transition else ""
        return Decision(name, "1", False, f"{name} {what or 'is already enabled'}")
    return Decision(
        name,
        "1",
        False,
        f"{name} is disabled and the kernel does not re-enable a disabled live patch (since "
        "Linux 5.1); remove its module (rmmod) and load it again",
    )


def check_disable(state: LivepatchState, name: str) -> Decision:
    """Writing 0 to enabled: a pending enable can be reversed; otherwise only an enabled patch,
    and only while no other patch is in transition (EBUSY)."""
    found = _common_refusal(state, name, "0")
    if isinstance(found, Decision):
        return found
    patch = found
    if patch.transition and patch.enabled:
        return Decision(name, "0", True, f"reverses the pending enable of {name}")
    if not patch.enabled:
        what = "is already being disabled (transition in progress)" if patch.transition else ""
        return Decision(name, "0", False, f"{name} {what or 'is already disabled'}")
    busy = state.in_transition()
    if busy is not None and busy.name != name:
        return Decision(
            name,
            "0",
            False,
            f"{busy.name} is in transition and the kernel allows one transition at a time "
            f"(EBUSY): wait for it (`hastack kernel livepatch status`) or reverse it",
        )
    warnings: list[str] = [
        f"{name} cannot be enabled again once disabled: its module must be removed and loaded again"
    ]
    if patch.replace:
        warnings.append(
            f"{name} is a cumulative (replace) patch: the patches it replaced are gone, so the "
            "functions it covers go back to the original kernel code"
        )
    return Decision(name, "0", True, f"disables {name}", tuple(warnings))


# ---------------------------------------------------------------------------------------------
# Loading a patch module


@dataclass(frozen=True)
class LoadPlan:
    argv: tuple[str, ...]
    patch: str  # the directory the patch gets under /sys/kernel/livepatch (its module name)


def module_name_of(target: str) -> str:
    """The kernel's name for a module: the file name less its suffix, '-' read as '_'."""
    base = os.path.basename(target)
    for suffix in _MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def _is_file_target(target: str) -> bool:
    return "/" in target or target.endswith(_MODULE_SUFFIXES)


def plan_load(target: str, state: LivepatchState, *, file_exists: bool) -> LoadPlan:
    """`insmod FILE` for a path or a *.ko name, `modprobe NAME` otherwise, after the checks
    __klp_enable_patch makes (one transition at a time) and module loading makes (a module
    already loaded is refused)."""
    if not state.supported:
        raise LivepatchError(f"{NO_SUPPORT}: {state.root} does not exist")
    if _is_file_target(target):
        if not file_exists:
            raise LivepatchError(f"{target}: no such module file (a .ko, .ko.xz/.gz/.zst)")
        argv: tuple[str, ...] = ("insmod", os.path.abspath(target))
        name = module_name_of(target)
        if not _MODULE_NAME.fullmatch(name):
            raise LivepatchError(
                f"{target}: {name!r} is not a module name (letters, digits, '_' and '-')"
            )
    else:
        if not _MODULE_NAME.fullmatch(target):
            raise LivepatchError(
                f"{target!r} is neither a module file (a path or *.ko) nor a module name "
                "(letters, digits, '_' and '-', at most 56, not starting with '-')"
            )
        argv = ("modprobe", target)
        name = module_name_of(target)
    if state.find(name) is not None:
        raise LivepatchError(f"{name} is already loaded ({state.root / name})")
    busy = state.in_transition()
    if busy is not None:
        raise LivepatchError(
            f"{busy.name} is in transition; the kernel refuses a new patch until it finishes "
            "(EBUSY): wait for it or reverse it first"
        )
    return LoadPlan(argv, name)


# ---------------------------------------------------------------------------------------------
# Running programs


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""


Runner = Callable[[Sequence[str]], RunResult]
RUN_TIMEOUT = 60.0


def default_run(argv: Sequence[str]) -> RunResult:
    """Run `argv` with a timeout; a missing program or a timeout is a result, not a crash."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return RunResult(124, "", f"{argv[0]}: no answer after {RUN_TIMEOUT:g} s")
    except OSError as error:
        return RunResult(127, "", f"{argv[0]}: {error.strerror or error}")
    return RunResult(done.returncode, done.stdout, done.stderr)


def load(
    target: str, *, root: Path = DEFAULT_SYSFS, run: Runner = default_run, dry_run: bool = False
) -> LoadPlan:
    """Check, then run insmod/modprobe (unless `dry_run`). The patch enables itself from its
    module_init (klp_enable_patch), so a successful load starts a transition."""
    plan = plan_load(target, read_state(root), file_exists=Path(target).is_file())
    if dry_run:
        return plan
    result = run(plan.argv)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or f"exit code {result.returncode}"
        raise LivepatchError(f"{' '.join(plan.argv)} failed: {detail}")
    return plan


# ---------------------------------------------------------------------------------------------
# Writing enabled and waiting for the transition


def write_enabled(decision: Decision, root: Path = DEFAULT_SYSFS) -> Path:
    """Write the decided value to <root>/<patch>/enabled (a sysfs file: written in place)."""
    if not decision.allowed:
        raise LivepatchError(decision.reason)
    path = root / decision.patch / "enabled"
    try:
        with open(path, "w", encoding="ascii") as out:
            out.write(decision.value + "\n")
    except OSError as error:
        # EINVAL: already in that state or a re-enable; EBUSY: another transition.
        raise LivepatchError(f"{path}: the kernel refused {decision.value}: {error}") from error
    return path


@dataclass(frozen=True)
class BlockingTask:
    pid: int
    comm: str
    patch_state: int


def blocking_tasks(target_patched: bool, proc: Path = DEFAULT_PROC) -> tuple[BlockingTask, ...]:
    """Tasks still in the old state: /proc/<pid>/patch_state is 0 (unpatched) or 1 (patched)
    while a transition runs, -1 otherwise (livepatch.rst, "Consistency model")."""
    target = 1 if target_patched else 0
    found: list[BlockingTask] = []
    try:
        entries = [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return ()
    for entry in sorted(entries, key=lambda p: int(p.name)):
        try:
            state = int((entry / "patch_state").read_text().strip())
        except (OSError, ValueError):
            continue  # a task that exited, or a kernel without patch_state
        if state in (0, 1) and state != target:
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                comm = "?"
            found.append(BlockingTask(int(entry.name), comm, state))
    return tuple(found)


@dataclass(frozen=True)
class WaitResult:
    patch: str
    finished: bool
    waited: float
    enabled: bool | None  # None: the patch directory is gone (a disabled patch is removed)
    blocking: tuple[BlockingTask, ...] = field(default=())

    def message(self, root: Path) -> str:
        if self.finished:
            if self.enabled is None:
                return f"{self.patch}: transition finished; the patch is disabled and removed"
            state = "enabled" if self.enabled else "disabled"
            return f"{self.patch}: transition finished after {self.waited:.1f} s ({state})"
        lines = [
            f"{self.patch}: transition stuck: {root / self.patch / 'transition'} is still 1 "
            f"after {self.waited:.1f} s"
        ]
        if self.blocking:
            shown = ", ".join(f"{t.pid} ({t.comm})" for t in self.blocking[:20])
            more = f" and {len(self.blocking) - 20} more" if len(self.blocking) > 20 else ""
            lines.append(f"tasks not yet switched (/proc/<pid>/patch_state): {shown}{more}")
        else:
            lines.append(
                "no task shows the old state in /proc/<pid>/patch_state (it needs root and a "
                "kernel with that file): the blocking tasks cannot be named from here"
            )
        lines.append(FORCE_ADVICE)
        return "\n".join(lines)


def wait_for_transition(
    name: str,
    timeout: float,
    *,
    root: Path = DEFAULT_SYSFS,
    proc: Path = DEFAULT_PROC,
    interval: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Poll <root>/<name>/transition until it reads 0 or the patch directory goes away (the
    end of a disable), at most `timeout` seconds."""
    start = clock()
    directory = root / name
    while True:
        waited = clock() - start
        try:
            enabled = bool(_read_flag(directory / "enabled", required=True))
            transition = bool(_read_flag(directory / "transition", required=False))
        except LivepatchError:
            # The kernel removes a disabled patch's directory when its transition ends; the
            # files can vanish between two reads.
            if not directory.is_dir():
                return WaitResult(name, True, waited, None)
            raise
        if not transition:
            return WaitResult(name, True, waited, enabled)
        if waited >= timeout:
            return WaitResult(name, False, waited, enabled, blocking_tasks(enabled, proc))
        sleep(min(interval, max(timeout - waited, 0.0)))


# ---------------------------------------------------------------------------------------------
# Ksplice-style tools


@dataclass(frozen=True)
class ToolSpec:
    tool: str
    program: str
    status_args: tuple[str, ...]


# The status command of each: Ksplice Uptrack lists installed updates with uptrack-show; the
# original ksplice (the seed) with ksplice-view; KernelCare with kcarectl --info; Canonical's
# service with canonical-livepatch status; kpatch with kpatch list.
TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("Ksplice Uptrack", "uptrack-show", ()),
    ToolSpec("Ksplice", "ksplice-view", ()),
    ToolSpec("KernelCare", "kcarectl", ("--info",)),
    ToolSpec("Canonical Livepatch", "canonical-livepatch", ("status",)),
    ToolSpec("kpatch", "kpatch", ("list",)),
)


@dataclass(frozen=True)
class ToolReport:
    tool: str
    program: str
    path: str | None  # None: not installed
    argv: tuple[str, ...] = ()
    returncode: int | None = None
    output: str = ""

    @property
    def installed(self) -> bool:
        return self.path is not None

    def to_json(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "program": self.program,
            "installed": self.installed,
            "path": self.path,
            "argv": list(self.argv),
            "returncode": self.returncode,
            "output": self.output if self.installed else "not installed",
        }


def probe_tools(
    run: Runner = default_run, search_path: str | None = None, tools: Sequence[ToolSpec] = TOOLS
) -> tuple[ToolReport, ...]:
    """Each tool found on `search_path` (default $PATH) run with its status command."""
    reports = []
    for spec in tools:
        found = shutil.which(spec.program, path=search_path)
        if found is None:
            reports.append(ToolReport(spec.tool, spec.program, None))
            continue
        argv = (found, *spec.status_args)
        result = run(argv)
        output = "\n".join(s for s in (result.stdout.rstrip(), result.stderr.rstrip()) if s)
        reports.append(ToolReport(spec.tool, spec.program, found, argv, result.returncode, output))
    return tuple(reports)
