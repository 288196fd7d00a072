"""`hastack config check|init|timing`: validate, create and explain a configuration directory."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hastack.cli.common import add_config_arg, add_json_arg, load_or_report
from hastack.cli.render import table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "config",
        help="check, create or explain a configuration directory",
        description="Check, create or explain a configuration directory (ha.cf + authkeys).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    check = actions.add_parser(
        "check",
        help="validate every file of a configuration directory",
        description="Validate every file of a configuration directory. Exit 0 when it is "
        "valid (warnings are listed but allowed), 1 with every error listed otherwise.",
    )
    add_config_arg(check)
    add_json_arg(check)
    check.set_defaults(func=run_check)

    init = actions.add_parser(
        "init",
        help="write a commented starter configuration with a fresh random key",
        description="Write a commented starter ha.cf and an authkeys file (mode 0600, a fresh "
        "random HMAC-SHA256 key) into DIR.",
    )
    add_config_arg(init)
    init.add_argument(
        "--node",
        metavar="NAME",
        action="append",
        required=True,
        dest="nodes",
        help="a cluster node (repeat for every node, in order)",
    )
    init.add_argument(
        "--ucast",
        nargs="+",
        metavar="IF ADDR",
        action="append",
        default=[],
        help="a unicast heartbeat link: the interface, then every node's address on it "
        "(each node ignores its own); repeat for more interfaces",
    )
    init.add_argument(
        "--bcast",
        metavar="IF",
        action="append",
        default=[],
        help="a broadcast heartbeat link on IF (the default, on eth0, when no link is given)",
    )
    init.add_argument(
        "--bind",
        nargs=2,
        metavar=("IF", "ADDR"),
        action="append",
        default=[],
        help="receive on local address ADDR on IF (hastack's `bind`, for nodes sharing a host)",
    )
    init.add_argument("--cluster-name", default="hastack", help="the cluster's name")
    init.add_argument(
        "--keepalive", type=_duration, default=1.0, metavar="TIME", help="1s, 500ms, ... (1s)"
    )
    init.add_argument(
        "--deadtime", type=_duration, default=10.0, metavar="TIME", help="10s, 2s, ... (10s)"
    )
    init.add_argument("--udpport", type=int, metavar="PORT", help="UDP port (694)")
    init.add_argument("--run-dir", metavar="PATH", help="state directory (/run/hastack)")
    init.add_argument(
        "--force", action="store_true", help="overwrite existing ha.cf and authkeys files"
    )
    init.set_defaults(func=run_init)

    timing = actions.add_parser(
        "timing",
        help="print the timing model (every timer, its value and where it comes from)",
        description="Print the one timing model of the stack: every timer, its value in this "
        "configuration and how it is derived from the knobs ha.cf sets.",
    )
    add_config_arg(timing)
    add_json_arg(timing)
    timing.set_defaults(func=run_timing)


def run_check(args: argparse.Namespace) -> int:
    from hastack.config.directory import check_config

    problems, warnings = check_config(args.config)
    if args.json:
        document = {
            "directory": args.config,
            "valid": not problems,
            "errors": [_problem_json(p) for p in problems],
            "warnings": [_problem_json(w) for w in warnings],
        }
        print(json.dumps(document, indent=2))
    else:
        for problem in problems:
            print(f"error: {problem}")
        for warning in warnings:
            text = str(warning)
            print(text if "warning:" in text else f"warning: {text}")
        if problems:
            print(f"{args.config}: {len(problems)} error(s), {len(warnings)} warning(s)")
        else:
            print(f"{args.config}: valid ({len(warnings)} warning(s))")
    return 1 if problems else 0


def _problem_json(problem: Any) -> dict[str, Any]:
    source = getattr(problem, "source", None)
    return {
        "file": getattr(source, "file", None),
        "line": getattr(source, "line", None),
        "message": getattr(problem, "message", str(problem)),
        "text": str(problem),
    }


def _duration(text: str) -> float:
    from hastack.config import hacf

    try:
        return hacf.parse_duration(text)
    except Exception as exc:  # the parser's own error type is private to it
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_init(args: argparse.Namespace) -> int:
    from hastack.config.errors import ConfigError
    from hastack.config.starter import write_starter

    ucast: list[tuple[str, str]] = []
    for values in args.ucast:
        if len(values) < 2:
            print(
                "hastack config init: --ucast takes an interface and at least one address",
                file=sys.stderr,
            )
            return 2
        ucast += [(values[0], address) for address in values[1:]]
    try:
        written = write_starter(
            args.config,
            args.nodes,
            ucast=ucast,
            bcast=args.bcast,
            bind=[tuple(pair) for pair in args.bind],
            cluster_name=args.cluster_name,
            keepalive=args.keepalive,
            deadtime=args.deadtime,
            run_dir=args.run_dir,
            udpport=args.udpport,
            force=args.force,
        )
    except ConfigError as exc:
        print(f"hastack: nothing written to {args.config}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"hastack: cannot write the configuration: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"check it with: hastack config check -c {args.config}")
    return 0


def run_timing(args: argparse.Namespace) -> int:
    from hastack.config.timing import describe_timing

    config = load_or_report(args.config)
    if config is None:
        return 1
    timing = config.hacf.timing
    if timing is None:
        print("hastack: the configuration has no timing model", file=sys.stderr)
        return 1
    rows = describe_timing(timing)
    if args.json:
        print(json.dumps([{"name": n, "seconds": s, "meaning": m} for n, s, m in rows], indent=2))
    else:
        print(table(["TIMER", "VALUE", "MEANING"], [[n, _seconds(s), m] for n, s, m in rows]))
    return 0


def _seconds(value: float) -> str:
    if value < 10:
        return f"{value * 1000:g} ms"
    return f"{value:g} s"
