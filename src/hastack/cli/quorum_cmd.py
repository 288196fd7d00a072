"""`hastack quorum`: show this node's quorum, or force it on a site that lost the other one.

``hastack quorum force`` makes the votes of the nodes this node hears now the whole cluster's
expected votes (as ``corosync-quorumtool -e`` does), so that a site whose peer site and quorum
server are both down can run its services again; ``hastack quorum unforce`` undoes it. Run it
on every node of the site. It is safe ONLY when the other site is really down (powered off,
or fenced): if it is alive behind a cut link, both sites run the resources at once.
"""

from __future__ import annotations

import argparse
import json
import sys

from hastack.cli.common import add_daemon_args

WARNING = (
    "WARNING: quorum is now forced on this node: if the nodes it cannot hear are still "
    "running, both sides may run the same resources. Undo with `hastack quorum unforce` "
    "once the cluster is whole again."
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "quorum",
        help="show this node's quorum, or force/unforce it (dangerous: see --help)",
        description="Show the local node's quorum (votes, expected votes, the quorum "
        "server's vote), or force quorum on the nodes this node hears now (`force`: the "
        "expected votes become theirs, as corosync-quorumtool -e) and undo it (`unforce`). "
        "Force only when the nodes this node cannot hear are really down: otherwise both "
        "sides run the resources. Run it on every node of the site.",
    )
    parser.add_argument("action", choices=("show", "force", "unforce"), nargs="?", default="show")
    add_daemon_args(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hastack.cli.crm_cmds import Refused, resolve_target
    from hastack.daemon.control import ControlError, query

    args.cib_file = None
    try:
        target = resolve_target(args)
    except Refused as exc:
        print(f"hastack quorum: {exc}", file=sys.stderr)
        return 1
    assert target.socket is not None
    try:
        answer = query(target.socket, {"cmd": "quorum", "op": args.action})
    except (FileNotFoundError, ConnectionRefusedError):
        print(
            f"hastack quorum: the node daemon is not running (no control socket at "
            f"{target.socket})",
            file=sys.stderr,
        )
        return 1
    except (ControlError, OSError) as exc:
        print(f"hastack quorum: {exc}", file=sys.stderr)
        return 1
    if not isinstance(answer, dict) or "error" in answer:
        why = answer.get("error") if isinstance(answer, dict) else repr(answer)
        print(f"hastack quorum: {why}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    state = "quorate" if answer["quorate"] else "NOT QUORATE"
    lines = [
        f"node {answer['node']}: {state}, {answer['votes']} of {answer['expected_votes']} "
        f"votes (needs {answer['quorum']})"
    ]
    if answer.get("quorum_device_vote") is not None:
        held = "held by this node" if answer["quorum_device_vote"] else "not held"
        lines.append(f"quorum server vote: {held}")
    if answer.get("forced"):
        lines.append(WARNING)
    print("\n".join(lines))
    return 0
