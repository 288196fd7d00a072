"""`hastack nines`: the seed's table of nines and the conversions around it.

    hastack nines                              the table (class, availability, downtime a year)
    hastack nines 99.95                        downtime per year/month/week/day ("4 nines" too)
    hastack nines --downtime 4h --per year     the availability ("--downtime 52m/year" too)
    hastack nines --mttf 2000h --mttr 4h       A = MTTF / (MTTF + MTTR)
    hastack nines --target 99.99 --mttf 10000h the longest MTTR that meets the target
    hastack nines --target 99.99 --mttr 4h     the shortest MTTF that meets it
    hastack nines --example                    the seed's web-site example

Each takes --json. Bad values exit 2 with a message saying what is allowed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from hastack.availability import nines as nn

EPILOG = (
    "Durations: " + nn.DURATION_HELP + "; " + nn.UNITS_HELP + ". "
    "Availabilities: " + nn.AVAILABILITY_HELP + "."
)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `hastack nines` to `subparsers`."""
    parser = subparsers.add_parser(
        "nines",
        help="the table of nines; availability <-> downtime; MTTF/MTTR",
        description=(__doc__ or "").split("\n\n")[0]
        + " Without options, print the table; a year is 365 days, a month 1/12 of it.",
        epilog=EPILOG,
    )
    parser.add_argument("availability", nargs="?", help="show the downtimes of this availability")
    parser.add_argument(
        "--downtime",
        metavar="DURATION",
        help="a downtime ('4h', with --per) or a rate ('52m/year', '5m per month')",
    )
    parser.add_argument(
        "--per",
        metavar="PERIOD",
        help="the period of --downtime: year (default), month, week, day or a duration ('240m')",
    )
    parser.add_argument("--mttf", metavar="DURATION", help="mean time to failure ('2000h')")
    parser.add_argument("--mttr", metavar="DURATION", help="mean time to repair ('4h')")
    parser.add_argument(
        "--target",
        metavar="AVAILABILITY",
        help="with --mttf: the MTTR needed; with --mttr: the MTTF",
    )
    parser.add_argument("--example", action="store_true", help="the seed's web-site example")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run_nines)


def run_nines(args: argparse.Namespace) -> int:
    try:
        title, data, rows = _compute(args)
    except nn.NinesError as exc:
        print(f"hastack nines: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_table(title, rows)
    return 0


Rows = list[tuple[str, ...]]


def _compute(args: argparse.Namespace) -> tuple[str, dict[str, Any], Rows]:
    modes = [
        name
        for name, given in (
            ("AVAILABILITY", args.availability is not None),
            ("--downtime", args.downtime is not None),
            ("--target", args.target is not None),
            ("--example", args.example),
        )
        if given
    ]
    if len(modes) > 1:
        raise nn.NinesError(f"give one of {', '.join(modes)}, not several")
    if args.per is not None and args.downtime is None:
        raise nn.NinesError("--per goes with --downtime (e.g. --downtime 4h --per year)")
    if (
        modes
        and modes[0] in ("AVAILABILITY", "--downtime", "--example")
        and (args.mttf is not None or args.mttr is not None)
    ):
        raise nn.NinesError(f"--mttf/--mttr go alone or with --target, not with {modes[0]}")
    if args.example:
        return _example()
    if args.availability is not None:
        return _availability(nn.parse_availability(args.availability), {})
    if args.downtime is not None:
        return _downtime(args.downtime, args.per)
    if args.target is not None:
        return _target(args.target, args.mttf, args.mttr)
    if args.mttf is not None or args.mttr is not None:
        if args.mttf is None or args.mttr is None:
            raise nn.NinesError("give both --mttf and --mttr (e.g. --mttf 2000h --mttr 4h)")
        mttf, mttr = _duration("--mttf", args.mttf), _duration("--mttr", args.mttr)
        return _availability(
            nn.availability_from_mttf(mttf, mttr),
            {"mttf_hours": mttf / nn.HOUR, "mttr_hours": mttr / nn.HOUR},
            f"MTTF {args.mttf}, MTTR {args.mttr}",
        )
    return _table()


def _duration(option: str, text: str) -> float:
    try:
        return nn.parse_duration(text)
    except nn.NinesError as exc:
        raise nn.NinesError(f"{option}: {exc}") from None


def _table() -> tuple[str, dict[str, Any], Rows]:
    table = nn.nines_table()
    data = {
        "year_days": 365,
        "rows": [
            {
                "class": row.availability_class,
                "availability": row.availability,
                "percent": nn.percent(row.availability),
                "downtime_per_year_seconds": row.downtime_per_year,
                "downtime_per_year": nn.format_duration(row.downtime_per_year),
                "type": row.type,
            }
            for row in table
        ],
    }
    rows: Rows = [("Class", "Availability", "Downtime per year", "(decimal)", "Type")]
    rows += [
        (
            str(row.availability_class),
            nn.percent(row.availability),
            nn.format_duration(row.downtime_per_year),
            nn.format_duration_decimal(row.downtime_per_year),
            row.type,
        )
        for row in table
    ]
    return "Availability in terms of numbers of nine (365-day year)", data, rows


def _availability(
    availability: float, extra: dict[str, Any], source: str = ""
) -> tuple[str, dict[str, Any], Rows]:
    downs = nn.downtimes(availability)
    data: dict[str, Any] = {
        **extra,
        "availability": availability,
        "percent": nn.percent(availability),
        "nines": nn.nines(availability),
        "downtime_seconds": downs,
        "downtime": {name: nn.format_duration(value) for name, value in downs.items()},
    }
    title = f"{nn.percent(availability)} available ({nn.nines(availability):.2f} nines)"
    if source:
        title = f"{source}: {title}"
    rows: Rows = [("Per", "Downtime", "(decimal)")]
    rows += [
        (name, nn.format_duration(value), nn.format_duration_decimal(value))
        for name, value in downs.items()
    ]
    return title, data, rows


def _downtime(text: str, per: str | None) -> tuple[str, dict[str, Any], Rows]:
    if per is None and nn.looks_like_rate(text):
        down, period = nn.parse_rate(text)
    else:
        down, period = nn.parse_duration(text), nn.parse_period(per or "year")
    availability = nn.availability_from_downtime(down, period)
    return _availability(
        availability,
        {"downtime_given_seconds": down, "period_seconds": period},
        f"{nn.format_duration(down)} down per {_period_name(period)}",
    )


def _target(
    text: str, mttf_text: str | None, mttr_text: str | None
) -> tuple[str, dict[str, Any], Rows]:
    target = nn.parse_availability(text)
    if (mttf_text is None) == (mttr_text is None):
        raise nn.NinesError(
            "--target needs exactly one of --mttf (to get the MTTR needed) or --mttr (to get "
            "the MTTF needed)"
        )
    shown = nn.percent(target)
    if mttf_text is not None:
        mttf = _duration("--mttf", mttf_text)
        mttr = nn.mttr_for(target, mttf)
        data = {"target": target, "mttf_hours": mttf / nn.HOUR, "mttr_needed_hours": mttr / nn.HOUR}
        row = ("MTTR needed (at most)", nn.format_duration(mttr), _hours(mttr))
        title = f"For {shown} with MTTF {mttf_text}"
    else:
        assert mttr_text is not None
        mttr = _duration("--mttr", mttr_text)
        mttf = nn.mttf_for(target, mttr)
        data = {"target": target, "mttr_hours": mttr / nn.HOUR, "mttf_needed_hours": mttf / nn.HOUR}
        row = ("MTTF needed (at least)", nn.format_duration(mttf), _hours(mttf))
        title = f"For {shown} with MTTR {mttr_text}"
    data["downtime_per_year_seconds"] = nn.downtime(target)
    rows: Rows = [("", "", ""), row]
    rows.append(("Downtime per year", nn.format_duration(nn.downtime(target)), ""))
    return title, data, rows


def _hours(seconds: float) -> str:
    hours = seconds / nn.HOUR
    return f"{hours:,.0f} h" if hours >= 100 else f"{hours:.3g} h"


def _period_name(seconds: float) -> str:
    for name, size in nn.PERIODS.items():
        if abs(seconds - size) < 1e-9 * size:
            return name
    return nn.format_duration(seconds)


def _example() -> tuple[str, dict[str, Any], Rows]:
    example = nn.WEB_SITE_EXAMPLE
    availability = example.availability()
    data = {
        "down_seconds": example.down,
        "every_seconds": example.every,
        "availability": availability,
        "percent": nn.percent(availability, 3),
        "downtime_per_year_seconds": nn.downtime(availability),
    }
    rows: Rows = [
        ("", ""),
        ("Down", f"{nn.format_duration(example.down)} every {nn.format_duration(example.every)}"),
        ("A = (240 - 1) / 240", nn.percent(availability, 3)),
        ("Same as MTTF / (MTTF + MTTR)", f"MTTF {nn.format_duration(example.mttf())}, MTTR 1m"),
        ("Downtime per year", nn.format_duration(nn.downtime(availability))),
        ("But", "reliability is low: each outage may hit a transaction"),
    ]
    return "The seed's web-site example", data, rows


def _print_table(title: str, rows: Rows) -> None:
    # The title is a line of its own: as a rich table title it wraps to the table's width.
    console = Console(highlight=False)
    console.print(title)
    table = Table(show_header=any(rows[0]))
    for header in rows[0]:
        table.add_column(header)
    for row in rows[1:]:
        table.add_row(*row)
    console.print(table)
