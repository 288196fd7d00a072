"""`hastack fence`: fence a node, confirm one is down, test the fence devices, show the history.

Every form talks to the local node daemon's fencer through its control socket
(``{"cmd": "fence", "op": ...}``), as ``stonith_admin`` talks to Pacemaker's fencer:

* ``hastack fence NODE`` (or ``reboot NODE``, ``off NODE``, ``on NODE``) runs the devices that
  can fence NODE from this node and waits for the result;
* ``hastack fence confirm NODE`` tells the cluster that NODE is down (an operator powered it
  off by hand: the ``hastack/manual`` device waits for this); said wrongly, the cluster may run
  NODE's resources twice;
* ``hastack fence test [NODE]`` runs every device's monitor/list/status (no power action) and
  tells, per node, whether a working fence path exists from this node;
* ``hastack fence history [NODE]`` lists the fence operations the cluster ran.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from hastack.cli.common import add_daemon_args
from hastack.cli.render import table

ACTIONS = ("reboot", "off", "on")
FORMS = ("history", "test", "confirm", *ACTIONS)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "fence",
        help="fence a node, confirm one is down, test the devices, show the fence history",
        description="Fence a node through the local node daemon's fencer (`hastack fence NODE`, "
        "or `reboot|off|on NODE`), confirm that a node is down (`confirm NODE`: only when it "
        "really is, or its resources may run twice), check every fence device without a power "
        "action (`test [NODE]`), or list past fence operations (`history [NODE]`).",
    )
    parser.add_argument("words", nargs="+", metavar="NODE | FORM [NODE]", help=", ".join(FORMS))
    add_daemon_args(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for a fence operation (default 600)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def parse_words(words: list[str]) -> tuple[str, str | None]:
    """(form, node) from the positional words; raises ValueError with what is allowed."""
    if len(words) == 1 and words[0] not in FORMS:
        return "reboot", words[0]
    form = words[0]
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; use NODE, or one of: {', '.join(FORMS)}")
    if len(words) > 2:
        raise ValueError(f"fence {form} takes at most one node, got {' '.join(words[1:])}")
    node = words[1] if len(words) == 2 else None
    if node is None and form in ("confirm", *ACTIONS):
        raise ValueError(f"fence {form} needs the node: hastack fence {form} NODE")
    return form, node


def run(args: argparse.Namespace) -> int:
    from hastack.cli.crm_cmds import Refused, resolve_target
    from hastack.daemon.control import ControlError, query

    try:
        form, node = parse_words(args.words)
    except ValueError as exc:
        print(f"hastack fence: {exc}", file=sys.stderr)
        return 2
    if not args.timeout > 0:
        print("hastack fence: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    args.cib_file = None
    try:
        target = resolve_target(args)
    except Refused as exc:
        print(f"hastack fence: {exc}", file=sys.stderr)
        return 1
    if target.socket is None:
        print("hastack fence: fencing needs the running cluster (not a CIB file)", file=sys.stderr)
        return 1
    request: dict[str, Any] = {"cmd": "fence", "op": form, "timeout": args.timeout}
    if node is not None:
        request["target"] = node
    try:
        answer = query(target.socket, request, timeout=args.timeout + 5)
    except (FileNotFoundError, ConnectionRefusedError):
        print(
            f"hastack fence: the node daemon is not running (no control socket at {target.socket})",
            file=sys.stderr,
        )
        return 1
    except (ControlError, OSError) as exc:
        print(f"hastack fence: {exc}", file=sys.stderr)
        return 1
    if not isinstance(answer, dict):
        print(f"hastack fence: the node daemon answered nonsense: {answer!r}", file=sys.stderr)
        return 1
    if "error" in answer:
        print(f"hastack fence: {answer['error']}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return _status(form, answer)
    print(render(form, node, answer))
    return _status(form, answer)


def _status(form: str, answer: dict[str, Any]) -> int:
    if form in ACTIONS:
        return 0 if answer.get("ok") else 1
    if form == "test":
        return 0 if all(p["ok"] for p in answer.get("paths", {}).values()) else 1
    return 0


def _when(stamp: object) -> str:
    if not isinstance(stamp, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def render(form: str, node: str | None, answer: dict[str, Any]) -> str:
    if form in ACTIONS:
        record = answer.get("record") or {}
        if answer.get("ok"):
            return f"{node} was fenced ({form}) by {', '.join(record.get('devices', []))}"
        return f"fencing {node} failed: {record.get('error') or 'unknown error'}"
    if form == "confirm":
        return f"{node} is confirmed down: the cluster may now recover its resources"
    if form == "history":
        rows = [
            [
                r["target"],
                r["action"],
                r["state"],
                ", ".join(r["devices"]) or "-",
                r["origin"],
                ", ".join(r["requesters"]),
                _when(r["started"]),
                _when(r["completed"]),
                r["error"] or r["reason"],
            ]
            for r in answer.get("history", [])
        ]
        if not rows:
            return "no fence operations"
        header = ["node", "action", "state", "by", "from", "asked by", "started", "done", "why"]
        return table(header, rows)
    lines = [f"fence devices, checked from {answer.get('node')}:"]
    for device, check in sorted(answer.get("devices", {}).items()):
        state = "ok" if check["ok"] else "FAILED"
        lines.append(f"  {device}: {state} ({check['reason']})")
    if not answer.get("devices"):
        lines.append("  (no fence device is configured)")
    lines.append("fence paths:")
    for target, path in sorted(answer.get("paths", {}).items()):
        if path["ok"]:
            lines.append(f"  {target}: ok through {', '.join(path['working'])}")
        else:
            lines.append(f"  {target}: NO WORKING FENCE PATH ({path['why']})")
    return "\n".join(lines)
