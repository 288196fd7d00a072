"""`hastack kernel livepatch status|load|enable|disable`: the shell over livepatch.py.

Exit codes: 0 done (and `status` on a kernel without live patching: that is a report, not an
error), 1 refused or failed, 3 the transition did not finish within --wait.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hastack.kernel_livepatch.livepatch import (
    DEFAULT_PROC,
    DEFAULT_SYSFS,
    NO_SUPPORT,
    BlockingTask,
    Decision,
    LivepatchError,
    LivepatchState,
    Patch,
    Runner,
    ToolReport,
    blocking_tasks,
    check_disable,
    check_enable,
    default_run,
    load,
    probe_tools,
    read_state,
    wait_for_transition,
    write_enabled,
)

__all__ = ["EXIT_REFUSED", "EXIT_STUCK", "add_commands"]

EXIT_REFUSED = 1
EXIT_STUCK = 3
PROG = "hastack kernel livepatch"
DEFAULT_WAIT = 30.0
TASKS_NOTE = (
    "tasks still in the old state while a patch is in transition are listed from "
    "/proc/<pid>/patch_state (0 unpatched, 1 patched, -1 no transition); sysfs itself does not "
    "name them"
)


def add_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    run: Runner | None = None,
    search_path: str | None = None,
) -> None:
    """Add `livepatch` and its subcommands. `run` runs insmod/modprobe and the Ksplice-style
    tools (default: subprocess); `search_path` is where those tools are looked for ($PATH)."""
    runner: Runner = run or default_run
    parser = subparsers.add_parser(
        "livepatch",
        help="kernel live patches: state, load, enable, disable",
        description="The kernel's live patches (/sys/kernel/livepatch) and Ksplice-style tools.",
    )
    commands = parser.add_subparsers(dest="livepatch_command", required=True, metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--sysfs",
            type=Path,
            default=DEFAULT_SYSFS,
            metavar="DIR",
            help=f"the livepatch sysfs directory (default {DEFAULT_SYSFS})",
        )
        sub.add_argument(
            "--proc",
            type=Path,
            default=DEFAULT_PROC,
            metavar="DIR",
            help=f"where to read /proc/<pid>/patch_state (default {DEFAULT_PROC})",
        )

    def wait_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--wait",
            type=float,
            default=DEFAULT_WAIT,
            metavar="S",
            help=f"seconds to wait for the transition to finish (default {DEFAULT_WAIT:g}; "
            "0: do not wait)",
        )

    status = commands.add_parser("status", help="every patch, its objects and functions")
    common(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=lambda a: _status(a, runner, search_path))

    load_cmd = commands.add_parser("load", help="load a patch module (insmod FILE / modprobe NAME)")
    load_cmd.add_argument("target", metavar="FILE|NAME")
    load_cmd.add_argument("--dry-run", action="store_true", help="check and show the command")
    common(load_cmd)
    wait_option(load_cmd)
    load_cmd.set_defaults(func=lambda a: _load(a, runner))

    for name, check, help_text in (
        ("enable", check_enable, "write 1 to enabled (reverses a pending disable)"),
        ("disable", check_disable, "write 0 to enabled"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("name", metavar="NAME")
        sub.add_argument("--dry-run", action="store_true", help="check and show the write")
        common(sub)
        wait_option(sub)
        sub.set_defaults(func=lambda a, check=check: _switch(a, check))


def _refuse(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _console() -> Console:
    # Resolved at call time so output goes to whatever sys.stdout is then (tests capture it).
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# status


def _status(args: argparse.Namespace, run: Runner, search_path: str | None) -> int:
    try:
        state = read_state(args.sysfs)
    except LivepatchError as error:
        return _refuse(str(error))
    busy = state.in_transition()
    blocking = blocking_tasks(busy.enabled, args.proc) if busy is not None else ()
    tools = probe_tools(run, search_path if search_path is not None else os.environ.get("PATH"))
    if args.json:
        print(json.dumps(_status_json(state, busy, blocking, tools), indent=2))
        return 0
    console = _console()
    if not state.supported:
        console.print(f"{NO_SUPPORT}: {state.root} does not exist")
    elif not state.patches:
        console.print(f"no live patches loaded ({state.root})")
    else:
        console.print(_patch_table(state))
        if busy is not None:
            direction = "patched" if busy.enabled else "unpatched"
            console.print(f"{busy.name} is in transition: tasks are moving to {direction}")
            if blocking:
                console.print(
                    "tasks not yet switched: "
                    + ", ".join(f"{t.pid} ({t.comm})" for t in blocking[:20])
                )
            console.print(TASKS_NOTE)
    console.print(_tools_table(tools))
    return 0


def _status_json(
    state: LivepatchState,
    busy: Patch | None,
    blocking: tuple[BlockingTask, ...],
    tools: tuple[ToolReport, ...],
) -> dict[str, object]:
    return {
        "sysfs": str(state.root),
        "supported": state.supported,
        "message": None if state.supported else NO_SUPPORT,
        "patches": [p.to_json() for p in state.patches],
        "in_transition": busy.name if busy else None,
        "blocking_tasks": [asdict(t) for t in blocking],
        "blocking_tasks_note": TASKS_NOTE,
        "tools": [t.to_json() for t in tools],
    }


def _state_text(patch: Patch) -> str:
    if patch.transition:
        state = "enabling (in transition)" if patch.enabled else "disabling (in transition)"
    else:
        state = "enabled" if patch.enabled else "disabled"
    extras = []
    if patch.replace:
        extras.append("replace")
    if patch.stack_order is not None:
        extras.append(f"stack {patch.stack_order}")
    return "\n".join([state, ", ".join(extras)]) if extras else state


def _object_text(patched: bool | None, name: str) -> str:
    # Usually a module not loaded yet, which livepatch patches when it is loaded (livepatch.rst
    # 4.2); sysfs does not say which, so the table only says "not patched".
    if patched is None:
        return name
    return f"{name} ({'patched' if patched else 'not patched'})"


def _patch_table(state: LivepatchState) -> Table:
    table = Table(title=f"live patches ({state.root})")
    # Names are never wrapped (a folded name cannot be copied into `disable NAME`); one
    # function a line keeps the table narrow.
    table.add_column("patch", no_wrap=True)
    table.add_column("state")
    table.add_column("object")
    table.add_column("functions", no_wrap=True)
    for patch in state.patches:
        objects = patch.objects or ()
        if not objects:
            table.add_row(patch.name, _state_text(patch), "", "")
        for index, obj in enumerate(objects):
            funcs = "\n".join(
                f.name if f.sympos in (None, 1) else f"{f.name},{f.sympos}" for f in obj.functions
            )
            table.add_row(
                patch.name if index == 0 else "",
                _state_text(patch) if index == 0 else "",
                _object_text(obj.patched, obj.name),
                funcs,
            )
    return table


def _tools_table(tools: tuple[ToolReport, ...]) -> Table:
    table = Table(title="Ksplice-style tools")
    for header in ("tool", "program", "status"):
        table.add_column(header)
    for report in tools:
        if not report.installed:
            status = "not installed"
        else:
            status = f"$ {' '.join(report.argv)}  (exit {report.returncode})\n{report.output}"
        table.add_row(report.tool, report.program, status.rstrip())
    return table


# ---------------------------------------------------------------------------------------------
# load, enable, disable


def _wait(args: argparse.Namespace, name: str) -> int:
    if args.wait <= 0:
        print(f"{name}: not waiting; see `{PROG} status`")
        return 0
    result = wait_for_transition(name, args.wait, root=args.sysfs, proc=args.proc)
    message = result.message(args.sysfs)
    if result.finished:
        print(message)
        return 0
    print(f"{PROG}: {message}", file=sys.stderr)
    return EXIT_STUCK


def _load(args: argparse.Namespace, run: Runner) -> int:
    try:
        plan = load(args.target, root=args.sysfs, run=run, dry_run=args.dry_run)
    except LivepatchError as error:
        return _refuse(str(error))
    command = " ".join(plan.argv)
    if args.dry_run:
        print(f"would run: {command}  (patch {plan.patch} under {args.sysfs})")
        return 0
    print(f"ran: {command}")
    try:
        return _wait(args, plan.patch)
    except LivepatchError as error:
        return _refuse(str(error))


def _switch(args: argparse.Namespace, check: Callable[[LivepatchState, str], Decision]) -> int:
    try:
        decision = check(read_state(args.sysfs), args.name)
        if not decision.allowed:
            return _refuse(decision.reason)
        for warning in decision.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        path = args.sysfs / decision.patch / "enabled"
        if args.dry_run:
            print(f"would write {decision.value} to {path}: {decision.reason}")
            return 0
        write_enabled(decision, args.sysfs)
        print(f"wrote {decision.value} to {path}: {decision.reason}")
        return _wait(args, decision.patch)
    except LivepatchError as error:
        return _refuse(str(error))
