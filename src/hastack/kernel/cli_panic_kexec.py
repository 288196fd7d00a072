"""`hastack kernel panic ...` and `hastack kernel kexec ...`: argparse wiring and output.

The work is in hastack.kernel.panic and hastack.kernel.kexec; this module only turns arguments
into calls and results into text (rich tables) or JSON. Exit codes: 0 done / nothing differs,
1 something differs or a step failed, 2 bad input or a file that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hastack.kernel import kexec as kx
from hastack.kernel import panic as pn

__all__ = ["add_commands", "kexec_command", "panic_command"]


def _err(message: str) -> None:
    print(f"hastack kernel: {message}", file=sys.stderr)


def _console() -> Console:
    # Wide enough that a key or a path is never folded inside a cell when output is piped.
    return Console(width=max(Console().width, 120), highlight=False)


# --- panic ---------------------------------------------------------------------------------------


def _profile(args: argparse.Namespace) -> pn.Profile:
    return pn.Profile(
        timeout=args.timeout,
        softlockup=args.softlockup,
        hung_task=args.hung_task,
        on_warn=args.on_warn,
    )


def _status(setting: pn.Setting, current: str | None) -> str:
    if current is None:
        return "missing (required)" if setting.required else "unsupported"
    return "ok" if pn.same_value(current, setting.value) else "differs"


def _file_rows(
    profile: pn.Profile, path: Path, unsupported: set[str]
) -> tuple[list[dict[str, Any]], bool]:
    """The sysctl.d file compared with the profile: rows, and whether it differs."""
    found = pn.read_sysctl_file(path)
    rows = []
    differs = False
    for s in profile.settings():
        if s.key in unsupported:
            continue  # left out of the file on purpose
        value = None if found is None else found.get(s.key)
        ok = value is not None and pn.same_value(value, s.value)
        differs |= not ok
        rows.append({"key": s.key, "in_file": value, "wanted": s.value, "ok": ok})
    return rows, differs


def _panic_check(args: argparse.Namespace, profile: pn.Profile, proc_sys: Path) -> int:
    current = pn.read_current(profile, proc_sys)
    changes = pn.diff(profile, current)
    # An optional key this kernel lacks is reported, not a difference (e.g. the NMI key is
    # x86-only): check must be able to pass on every architecture.
    differs = any(c.supported or c.required for c in changes)
    rows = [
        {
            "key": s.key,
            "current": current.get(s.key),
            "wanted": s.value,
            "required": s.required,
            "status": _status(s, current.get(s.key)),
        }
        for s in profile.settings()
    ]
    file_rows: list[dict[str, Any]] | None = None
    if args.sysctl_file is not None:
        unsupported = {c.key for c in changes if not c.supported and not c.required}
        file_rows, file_differs = _file_rows(profile, Path(args.sysctl_file), unsupported)
        differs |= file_differs
    if args.json:
        doc: dict[str, Any] = {"proc_sys": str(proc_sys), "settings": rows, "differs": differs}
        if file_rows is not None:
            doc["sysctl_file"] = {"path": args.sysctl_file, "settings": file_rows}
        print(json.dumps(doc, indent=2))
        return 1 if differs else 0
    console = _console()
    table = Table(title=f"panic profile ({proc_sys})")
    for column in ("key", "current", "wanted", "status"):
        table.add_column(column)
    for row in rows:
        current_text = "-" if row["current"] is None else row["current"]
        table.add_row(row["key"], current_text, row["wanted"], row["status"])
    console.print(table)
    if file_rows is not None:
        ftable = Table(title=f"sysctl file {args.sysctl_file}")
        for column in ("key", "in file", "wanted", "status"):
            ftable.add_column(column)
        for row in file_rows:
            in_file = "-" if row["in_file"] is None else row["in_file"]
            ftable.add_row(row["key"], in_file, row["wanted"], "ok" if row["ok"] else "differs")
        console.print(ftable)
    console.print(
        "differs: run `hastack kernel panic apply`" if differs else "the panic profile is in place"
    )
    return 1 if differs else 0


def _panic_apply(args: argparse.Namespace, profile: pn.Profile, proc_sys: Path) -> int:
    current = pn.read_current(profile, proc_sys)
    changes = pn.diff(profile, current)
    outcomes = pn.apply_changes(changes, proc_sys, dry_run=args.dry_run)
    unsupported = [o.key for o in outcomes if o.status == "unsupported"]
    file_text: str | None = None
    if args.sysctl_file is not None:
        if args.dry_run:
            file_text = pn.render_sysctl_conf(profile, unsupported)
        else:
            file_text = pn.write_sysctl_file(profile, Path(args.sysctl_file), unsupported)
    if args.json:
        doc: dict[str, Any] = {
            "proc_sys": str(proc_sys),
            "dry_run": args.dry_run,
            "outcomes": [asdict(o) for o in outcomes],
        }
        if file_text is not None:
            doc["sysctl_file"] = {"path": args.sysctl_file, "content": file_text}
        print(json.dumps(doc, indent=2))
        return 0
    console = _console()
    if not outcomes:
        console.print(f"the panic profile is already in place ({proc_sys})")
    else:
        table = Table(title=f"panic profile ({proc_sys})" + (" — dry run" if args.dry_run else ""))
        for column in ("key", "before", "wanted", "result"):
            table.add_column(column)
        for o in outcomes:
            before = "-" if o.before is None else o.before
            result = {"written": f"written, reads {o.after}", "would-write": "would write"}.get(
                o.status, "not supported by this kernel; skipped"
            )
            table.add_row(o.key, before, o.wanted, result)
        console.print(table)
    if file_text is not None:
        verb = "would write" if args.dry_run else "wrote"
        console.print(f"{verb} {args.sysctl_file}:")
        console.print(file_text, markup=False, end="")
    return 0


def panic_command(args: argparse.Namespace) -> int:
    try:
        profile = _profile(args)
    except ValueError as exc:
        _err(str(exc))
        return 2
    proc_sys = Path(args.proc_sys)
    if not proc_sys.is_dir():
        _err(f"{proc_sys}: not a directory (--proc-sys: the sysctl tree, normally /proc/sys)")
        return 2
    try:
        if args.panic_command == "check":
            return _panic_check(args, profile, proc_sys)
        return _panic_apply(args, profile, proc_sys)
    except pn.PanicError as exc:
        _err(str(exc))
        return 1


def _add_panic(subparsers: Any) -> None:
    panic = subparsers.add_parser(
        "panic",
        help="check or apply the panic profile (kernel.panic, panic_on_oops, ...)",
        description="The seed's kernel panic tuning: reboot a few seconds after a panic, and "
        "treat an oops and an unrecovered NMI as panics, so a broken node leaves the cluster.",
    )
    commands = panic.add_subparsers(dest="panic_command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="report what differs; exit 1 if anything does")
    apply = commands.add_parser("apply", help="write the values, read them back, report")
    for sub in (check, apply):
        sub.add_argument(
            "--timeout",
            type=int,
            default=pn.DEFAULT_TIMEOUT,
            metavar="N",
            help=f"kernel.panic: seconds before the reboot (default {pn.DEFAULT_TIMEOUT}, the "
            "seed's; negative: at once; 0 refused: never reboot)",
        )
        sub.add_argument("--softlockup", action="store_true", help="kernel.softlockup_panic=1")
        sub.add_argument("--hung-task", action="store_true", help="kernel.hung_task_panic=1")
        sub.add_argument("--on-warn", action="store_true", help="kernel.panic_on_warn=1")
        sub.add_argument(
            "--proc-sys",
            default=str(pn.PROC_SYS),
            metavar="DIR",
            help=f"the sysctl tree (default {pn.PROC_SYS})",
        )
        sub.add_argument(
            "--sysctl-file",
            nargs="?",
            const=str(pn.SYSCTL_FILE),
            metavar="F",
            help=f"check: also compare this file; apply: also write it, atomically, so the "
            f"profile survives a reboot (without F: {pn.SYSCTL_FILE})",
        )
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
        sub.set_defaults(func=panic_command)
    apply.add_argument("--dry-run", action="store_true", help="report only; write nothing")


# --- kexec ---------------------------------------------------------------------------------------


def _image(args: argparse.Namespace, release: str) -> kx.Image:
    proc, boot = Path(args.proc), Path(args.boot)
    append = args.append if args.append is not None else kx.running_cmdline(proc)
    image = kx.default_image(release, append, boot, initrd=not args.no_initrd)
    return kx.Image(
        kernel=Path(args.kernel) if args.kernel else image.kernel,
        initrd=Path(args.initrd) if args.initrd else image.initrd,
        append=image.append,
    )


def _checks(args: argparse.Namespace, release: str, image: kx.Image | None) -> list[kx.Check]:
    text, source = kx.read_kernel_config(release, Path(args.proc), Path(args.boot))
    kexec_path = args.kexec or kx.find_kexec()
    if args.kexec and not os.access(args.kexec, os.X_OK):
        kexec_path = None  # named but not there: the check must say so, not trust the option
    checks = [kx.config_kexec_check(text, source), kx.kexec_tools_check(kexec_path)]
    if image is not None:
        checks.extend(kx.image_checks(image))
    return checks


def _print_checks(checks: list[kx.Check]) -> None:
    table = Table(title="kexec checks")
    for column in ("check", "ok", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.name, "yes" if c.ok else "NO", c.detail)
    _console().print(table)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _systemd(args: argparse.Namespace) -> bool:
    if args.init == "auto":
        return kx.systemd_running()
    return args.init == "systemd"


def kexec_command(args: argparse.Namespace, run: kx.Runner = kx.subprocess_runner) -> int:
    """The kexec subcommands. `run` starts each command: tests pass a recorder."""
    release = args.release or kx.running_release()
    kexec = args.kexec or kx.find_kexec() or "kexec"
    try:
        image = None if args.kexec_command == "exec" else _image(args, release)
    except kx.KexecError as exc:
        _err(str(exc))
        return 2
    checks = _checks(args, release, image)
    if args.kexec_command == "check":
        ok = all(c.ok for c in checks)
        if args.json:
            doc = {
                "ok": ok,
                "release": release,
                "image": None if image is None else {k: _text(v) for k, v in asdict(image).items()},
                "checks": [asdict(c) for c in checks],
            }
            print(json.dumps(doc, indent=2))
        else:
            _print_checks(checks)
            print("kexec is ready" if ok else "kexec is NOT ready: see the checks above")
        return 0 if ok else 1
    if args.kexec_command == "exec":
        plan = kx.Plan([kx.Step(kx.exec_argv(kexec), "boot the loaded kernel now")])
    elif args.kexec_command == "load":
        assert image is not None
        plan = kx.Plan([kx.Step(kx.load_argv(image, kexec), "load the new kernel")])
    else:
        assert image is not None
        plan = kx.reboot_plan(
            image,
            systemd=_systemd(args),
            kexec=kexec,
            fallback=args.fallback,
            fallback_argv=shlex.split(args.fallback_command) if args.fallback_command else None,
        )
    chosen, failed = kx.decide(plan, checks, force=args.force)
    for reason in failed:
        _err(f"check failed: {reason}" + (" (--force: going on)" if args.force else ""))
    if chosen is None:
        _err("refusing to run kexec (use --force to run it anyway)")
        return 1
    if chosen is not plan:
        _err("kexec cannot be used: an ordinary reboot instead (--fallback)")
    return kx.run_plan(chosen, run, dry_run=args.dry_run)


def _add_kexec(subparsers: Any) -> None:
    kexec = subparsers.add_parser(
        "kexec",
        help="load and boot a kernel with kexec (a reboot without the firmware)",
        description="kexec through kexec-tools: load a kernel (default: the running one, its "
        "initrd and its command line), boot it, or reboot into it. --dry-run prints the commands.",
    )
    commands = kexec.add_subparsers(dest="kexec_command", required=True, metavar="COMMAND")
    load = commands.add_parser("load", help="kexec -l KERNEL --initrd=... --append=...")
    exec_ = commands.add_parser(
        "exec", help="kexec -e: boot the loaded kernel NOW (no shutdown: prefer reboot)"
    )
    reboot = commands.add_parser(
        "reboot",
        help="load, then `systemctl kexec` (or sync and kexec -e without systemd)",
    )
    check = commands.add_parser(
        "check", help="CONFIG_KEXEC, kexec-tools, the kernel and initrd files; exit 1 if not ready"
    )
    for sub in (load, exec_, reboot, check):
        sub.add_argument("--kexec", metavar="PATH", help="the kexec binary (default: from PATH)")
        sub.add_argument(
            "--proc", default=str(kx.PROC), metavar="DIR", help="default /proc (for chroots, tests)"
        )
        sub.add_argument("--boot", default=str(kx.BOOT), metavar="DIR", help="default /boot")
        sub.add_argument("--release", metavar="R", help="kernel release (default: uname -r)")
        sub.set_defaults(func=kexec_command)
    for sub in (load, reboot, check):
        sub.add_argument("--kernel", metavar="FILE", help="default /boot/vmlinuz-RELEASE")
        initrd = sub.add_mutually_exclusive_group()
        initrd.add_argument("--initrd", metavar="FILE", help="default /boot/initrd.img-RELEASE")
        initrd.add_argument("--no-initrd", action="store_true", help="load without an initrd")
        sub.add_argument("--append", metavar="CMDLINE", help="default: /proc/cmdline")
    for sub in (load, exec_, reboot):
        sub.add_argument("--dry-run", action="store_true", help="print the commands; run nothing")
        sub.add_argument("--force", action="store_true", help="run even when a check fails")
    reboot.add_argument(
        "--fallback",
        action="store_true",
        help="if kexec cannot be used or fails, reboot the ordinary way (for watchdog/fencing)",
    )
    reboot.add_argument(
        "--fallback-command",
        metavar="CMD",
        help="with --fallback: the ordinary reboot to run (default `systemctl reboot`, "
        "or /sbin/reboot without systemd)",
    )
    reboot.add_argument(
        "--init",
        choices=("auto", "systemd", "other"),
        default="auto",
        help="how to shut down: auto (systemd if /run/systemd/system exists), systemd, other",
    )
    check.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_commands(subparsers: Any) -> None:
    """Add `panic` and `kexec` to the sub-parsers of `hastack kernel`."""
    _add_panic(subparsers)
    _add_kexec(subparsers)
