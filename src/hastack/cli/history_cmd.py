"""`hastack history`: what happened in the cluster, and why, from the node's event history.

Reads the node's history files (``run_dir/NODE/history.jsonl*``) directly, so it works when the
daemon is stopped too (after a crash above all). Times are ISO 8601 (``2024-05-01T12:00``,
``2024-05-01 12:00:00+02:00``, ``12:00`` for today) or relative to now (``-10m``, ``1h ago``,
``1h30m ago``, ``now``), or ``@EPOCH`` seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import sys
import time
from dataclasses import fields as dataclass_fields
from pathlib import Path

from hastack.cli.common import add_json_arg, add_node_arg, load_or_report
from hastack.cli.render import table
from hastack.config.model import HaCf
from hastack.crm.events import KINDS, ClusterEvent
from hastack.crm.history import HISTORY_FILE, read_history

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400),
}
_PART = r"(\d+(?:\.\d+)?)\s*([a-z]+)"
_RELATIVE_RE = re.compile(rf"(?:-\s*(?P<minus>(?:{_PART}\s*)+)|(?P<ago>(?:{_PART}\s*)+)ago)")
_PART_RE = re.compile(_PART)
TIME_FORMS = (
    "ISO 8601 (2024-05-01T12:00:00, 2024-05-01 12:00+02:00, 12:00 for today), "
    "a time relative to now (-10m, 1h ago, 1h30m ago, now) or @EPOCH seconds"
)


def _default_run_dir() -> str:
    """ha.cf's default run_dir (where the daemon keeps NODE/ when ha.cf names none)."""
    return str(next(f.default for f in dataclass_fields(HaCf) if f.name == "run_dir"))


def parse_time(text: str, now: float) -> float:
    """`text` as epoch seconds (`now` is the epoch seconds that relative times count from).

    Raises ValueError naming what is wrong and the forms allowed."""
    value = text.strip().lower()
    try:
        seconds = _parse_time(value, now)
    except (ValueError, OverflowError) as exc:
        detail = f" ({exc})" if str(exc) else ""
        raise ValueError(f"bad time {text!r}{detail}: use {TIME_FORMS}") from None
    if not math.isfinite(seconds):
        raise ValueError(f"bad time {text!r} (out of range): use {TIME_FORMS}")
    return seconds


def _parse_time(value: str, now: float) -> float:
    if not value:
        raise ValueError("empty")
    if value == "now":
        return now
    if value.startswith("@"):
        return float(value[1:])
    m = _RELATIVE_RE.fullmatch(value)
    if m is not None:
        total = 0.0
        for number, unit in _PART_RE.findall(m.group("minus") or m.group("ago")):
            if unit not in _UNITS:
                raise ValueError(f"unknown unit {unit!r}; use s, m, h, d or w")
            total += float(number) * _UNITS[unit]
        return now - total
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?", value):
        clock = dt.time.fromisoformat(value if value.index(":") == 2 else "0" + value)
        today = dt.datetime.fromtimestamp(now).date()
        return dt.datetime.combine(today, clock).timestamp()
    if not re.match(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("")
    return dt.datetime.fromisoformat(value.upper()).timestamp()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "history",
        help="show the cluster's event history (what happened, and why)",
        description="Show the events this node recorded: resources started, stopped, promoted "
        "and failed, nodes lost, joined and fenced, quorum lost and regained, attribute "
        "changes and the transitions that caused them, oldest first. Reads the node's "
        "history files directly, so it works while the daemon is stopped. "
        f"TIME is {TIME_FORMS}.",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="DIR",
        help="configuration directory (its ha.cf gives run_dir and the nodes)",
    )
    add_node_arg(parser)
    parser.add_argument(
        "--run-dir",
        metavar="DIR",
        help=f"the run directory holding NODE/{HISTORY_FILE} (default: ha.cf's run_dir, "
        f"else {_default_run_dir()})",
    )
    parser.add_argument("--since", metavar="TIME", help="only events at or after TIME")
    parser.add_argument("--until", metavar="TIME", help="only events at or before TIME")
    parser.add_argument("--resource", metavar="R", help="only events of resource R")
    parser.add_argument("--on", metavar="NODE", help="only events on (or about) node NODE")
    parser.add_argument(
        "--kind",
        action="append",
        choices=KINDS,
        help="only events of this kind (repeat for several)",
    )
    add_json_arg(parser)
    # "-10m" is a time, not an option: argparse takes words that look like negative numbers
    # as values, and this widens its test from "-10" to "-10m" (no option here starts with a
    # digit). `--since=-10m` works whatever argparse does.
    parser._negative_number_matcher = re.compile(r"^-\d")
    parser.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"hastack history: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace, now: float | None = None) -> int:
    now = time.time() if now is None else now
    window: dict[str, float | None] = {"since": None, "until": None}
    for name in window:
        text = getattr(args, name)
        if text is not None:
            try:
                window[name] = parse_time(text, now)
            except ValueError as exc:
                return _error(f"--{name}: {exc}")
    since, until = window["since"], window["until"]
    if since is not None and until is not None and until < since:
        return _error(f"--until ({args.until}) is before --since ({args.since})")

    from hastack.daemon.node import check_node, default_node_name, resolve_run_dir

    node = args.node or default_node_name()
    run_dir: Path | None = Path(args.run_dir) if args.run_dir else None
    if args.config:
        config = load_or_report(args.config)
        if config is None:
            return 1
        problem = check_node(config, node)
        if problem is not None:
            print(f"hastack: {problem}", file=sys.stderr)
            return 1
        run_dir = run_dir or resolve_run_dir(config)
    directory = (run_dir or Path(_default_run_dir())) / node
    if not directory.is_dir():
        print(
            f"hastack history: no history for node {node!r}: {directory} does not exist "
            "(has the node daemon run here? name the node with --node, the directory with "
            "-c or --run-dir)",
            file=sys.stderr,
        )
        return 1
    try:
        found = read_history(
            directory,
            since=since,
            until=until,
            node=args.on,
            resource=args.resource,
            kinds=args.kind,
        )
    except OSError as exc:
        print(f"hastack history: cannot read {directory}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.json:
        document = {
            "node": node,
            "directory": str(directory),
            "events": [event.to_dict() for event in found.events],
            "unreadable_lines": found.unreadable,
        }
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(format_history(found.events))
    if found.unreadable:
        print(
            f"hastack history: {found.unreadable} line(s) could not be read (a write torn by a "
            f"crash, or damage): {'; '.join(found.problems)}",
            file=sys.stderr,
        )
    return 0


def _when(seconds: float) -> str:
    stamp = dt.datetime.fromtimestamp(seconds)
    return stamp.strftime("%Y-%m-%d %H:%M:%S") + f".{stamp.microsecond // 1000:03d}"


def describe(event: ClusterEvent) -> str:
    """What happened, in a few words (the event's own description first)."""
    parts: list[str] = []
    if event.desc:
        parts.append(event.desc)
    elif event.task:
        parts.append(event.task + (f" rc={event.rc}" if event.rc is not None else ""))
    if event.previous:
        parts.append(f"(was {event.previous})")
    return " ".join(parts)


def format_history(events: tuple[ClusterEvent, ...] | list[ClusterEvent]) -> str:
    """The human form: one row per event, oldest first."""
    if not events:
        return "no events"
    rows = [
        [_when(e.time), e.seq, e.event, e.node or "-", e.resource or "-", describe(e)]
        for e in events
    ]
    return table(["TIME", "SEQ", "EVENT", "NODE", "RESOURCE", "WHAT"], rows)
