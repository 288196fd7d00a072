"""`hastack analyze -c DIR`: the shell around hastack.analyze (read, find, estimate, print).

Exit status: 0 no single point of failure, 1 at least one, 2 the configuration (or the figures
file) could not be read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from hastack.analyze.findings import Configuration, Estimate, Finding, FixGain

EXIT_CLEAN, EXIT_SPOF, EXIT_UNREADABLE = 0, 1, 2


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="find the single points of failure of a configuration and estimate availability",
        description="Read a configuration directory (ha.cf, authkeys, cib.xml or haresources, "
        "drbd.conf, watchdog.conf: any may be absent) and report every single point of failure "
        "it shows, with why and how to fix it, then estimate the service's availability as a "
        "series/parallel model and what each fix would add in nines. Exit 0: no SPOF, 1: "
        "SPOFs found, 2: the configuration could not be read.",
    )
    parser.add_argument(
        "-c", "--config", metavar="DIR", required=True, help="the configuration directory"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--figures",
        metavar="FILE",
        help="a TOML file of MTTF/MTTR figures overriding the defaults, per component kind "
        '([disk] mttf = "300000h" mttr = "8h")',
    )
    parser.set_defaults(func=run_analyze)


def _fail(problems: list[str], as_json: bool) -> int:
    for problem in problems:
        print(f"hastack analyze: {problem}", file=sys.stderr)
    if as_json:
        print(json.dumps({"problems": problems}, indent=2))
    return EXIT_UNREADABLE


def run_analyze(args: argparse.Namespace) -> int:
    from hastack.analyze.findings import analyze_figures, estimate, find_spofs
    from hastack.analyze.load import LoadError, load_directory

    try:
        config = load_directory(args.config)
    except LoadError as exc:
        return _fail(exc.problems, args.json)
    findings = find_spofs(config)
    result: Estimate | None = None
    note = ""
    figures: dict[str, Any] = {}
    try:
        from hastack.availability.model import ModelError
    except ImportError as exc:  # the model is another part of hastack; findings stand alone
        note = f"no estimate: hastack.availability.model is not available ({exc})"
    else:
        try:
            figures = analyze_figures(args.figures)
            result = estimate(config, findings, figures)
        except ModelError as exc:
            return _fail([str(exc)], args.json)
    if args.json:
        print(json.dumps(report_json(config, findings, result, figures, note), indent=2))
    else:
        print_report(config, findings, result, note)
    return EXIT_SPOF if any(f.severity == "spof" for f in findings) else EXIT_CLEAN


# --------------------------------------------------------------------------------------------
# JSON


def _number(value: float) -> float | str:
    return value if math.isfinite(value) else "inf"  # JSON has no infinity


def _gain_json(gain: FixGain) -> dict[str, object]:
    return {
        "finding": gain.finding,
        "availability": gain.availability,
        "nines": _number(gain.nines),
        "added_nines": _number(gain.added_nines),
        "downtime_saved_per_year_seconds": gain.downtime_saved_per_year,
    }


def report_json(
    config: Configuration,
    findings: list[Finding],
    result: Estimate | None,
    figures: dict[str, Any],
    note: str = "",
) -> dict[str, object]:
    estimate_json: dict[str, object] | None = None
    if result is not None:
        estimate_json = {
            "availability": result.availability,
            "nines": _number(result.nines),
            "downtime_per_year_seconds": result.downtime_per_year,
            "fixes": [_gain_json(g) for g in result.fixes],
            "all_fixed": _gain_json(result.all_fixed) if result.all_fixed else None,
            "not_modelled": list(result.not_modelled),
            "model": result.model,
            "figures": {
                kind: {"mttf_hours": f.mttf_hours, "mttr_hours": f.mttr_hours, "note": f.note}
                for kind, f in sorted(figures.items())
            },
        }
    return {
        "directory": config.directory,
        "files": [
            {"name": f.name, "path": f.path, "status": f.status, "note": f.note}
            for f in config.files
        ],
        "spofs": sum(1 for f in findings if f.severity == "spof"),
        "findings": [f.as_dict() for f in findings],
        "estimate": estimate_json,
        "estimate_note": note,
    }


# --------------------------------------------------------------------------------------------
# Text


def _downtime(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} d"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def print_report(
    config: Configuration, findings: list[Finding], result: Estimate | None, note: str = ""
) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # emoji off: agent names such as ocf:heartbeat:Filesystem hold ":heartbeat:"
    console = Console(width=max(Console().width, 120), highlight=False, emoji=False)
    read = [f.name for f in config.files if f.status == "read"]
    absent = [f.name for f in config.files if f.status == "absent"]
    unused = [f"{f.name} ({f.note})" for f in config.files if f.status == "not used"]
    console.print(f"[bold]{escape(config.directory)}[/bold]: read {', '.join(read) or 'nothing'}")
    if absent:
        console.print(f"absent: {', '.join(absent)} (the checks that need them were not made)")
    if unused:
        console.print(f"not used: {', '.join(unused)}")

    if findings:
        table = Table(title="Findings", show_lines=True, expand=True)
        table.add_column("severity", no_wrap=True)
        table.add_column("finding", ratio=3)
        table.add_column("where", ratio=1, overflow="fold")
        colour = {"spof": "red", "warning": "yellow", "info": "cyan"}
        for f in findings:
            table.add_row(
                f"[{colour[f.severity]}]{f.severity}[/]",
                f"[bold]{escape(f.what)}[/bold] ({f.id})\n[dim]why:[/dim] {escape(f.why)}\n"
                f"[dim]fix:[/dim] {escape(f.fix)}",
                escape(f.where or ""),
            )
        console.print(table)
    spofs = sum(1 for f in findings if f.severity == "spof")
    console.print(
        f"{spofs} single point(s) of failure, {len(findings) - spofs} other finding(s)"
        if findings
        else "no single point of failure found in what was read"
    )

    if result is None:
        if note:
            console.print(note)
        return
    table = Table(title="Availability estimate (assumed MTTF/MTTR figures: see --json)")
    table.add_column("configuration")
    table.add_column("availability", justify="right")
    table.add_column("nines", justify="right")
    table.add_column("added nines", justify="right")
    table.add_column("downtime saved/year", justify="right")
    table.add_row(
        "as configured",
        f"{result.availability:.6%}",
        f"{result.nines:.2f}",
        "",
        f"({_downtime(result.downtime_per_year)} down/year)",
    )
    for gain in result.fixes:
        table.add_row(
            f"fix {gain.finding}",
            f"{gain.availability:.6%}",
            f"{gain.nines:.2f}",
            f"{gain.added_nines:+.2f}",
            _downtime(gain.downtime_saved_per_year),
        )
    if result.all_fixed is not None:
        g = result.all_fixed
        table.add_row(
            "[bold]every fix[/bold]",
            f"{g.availability:.6%}",
            f"{g.nines:.2f}",
            f"{g.added_nines:+.2f}",
            _downtime(g.downtime_saved_per_year),
        )
    console.print(table)
    if result.not_modelled:
        console.print(
            f"not in the model, so their gain is not estimated: {', '.join(result.not_modelled)}"
        )
