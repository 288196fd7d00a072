"""`hastack status`: the local node's view of the cluster, read from its control socket."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hastack.cli.common import add_config_arg, add_json_arg, add_node_arg, load_or_report
from hastack.cli.render import table
from hastack.daemon.control import ControlError, query
from hastack.daemon.node import check_node, default_node_name, resolve_run_dir
from hastack.daemon.rundir import NodeRunDir


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show the cluster as the local node sees it",
        description="Show nodes (online/offline, per link), quorum, votes, the DC and its term, "
        "as seen by the node daemon running on this machine (read from its control socket).",
    )
    add_config_arg(parser)
    add_node_arg(parser)
    add_json_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_or_report(args.config)
    if config is None:
        return 1
    node = args.node or default_node_name()
    problem = check_node(config, node)
    if problem is not None:
        print(f"hastack: {problem}", file=sys.stderr)
        return 1
    socket_path = NodeRunDir(resolve_run_dir(config), node).control_path
    try:
        status = query(socket_path, {"cmd": "status"})
    except (FileNotFoundError, ConnectionRefusedError):
        print(
            f"hastack: the node daemon for {node!r} is not running "
            f"(no control socket at {socket_path}); start it with "
            f"`hastack node start -c {args.config}" + (f" --node {node}`" if args.node else "`"),
            file=sys.stderr,
        )
        return 1
    except (ControlError, OSError) as exc:
        print(f"hastack: cannot read the status of node {node!r}: {exc}", file=sys.stderr)
        return 1
    if not isinstance(status, dict) or "error" in status:
        print(f"hastack: node {node!r} answered with an error: {status}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(format_status(status))
    return 0


def format_status(status: dict[str, Any]) -> str:
    """The human form of a NodeStatus JSON document."""
    dc = status.get("dc")
    quorate = "quorate" if status.get("quorate") else "NOT QUORATE"
    version = ".".join(str(v) for v in status.get("members_version", []))
    lines = [
        f"node {status['node']} (generation {status.get('generation')})"
        + ("  [this node is DC]" if status.get("is_dc") else ""),
        f"DC: {dc or 'none'}   term: {status.get('term')}",
        f"quorum: {quorate}, {status.get('votes')} of {status.get('expected_votes')} votes "
        f"(needs {status.get('quorum')})",
        f"members: {' '.join(status.get('members') or []) or 'none'}"
        + (f"   (version {version})" if version else ""),
        "",
    ]
    nodes: dict[str, dict[str, Any]] = status.get("nodes") or {}
    link_names: list[str] = []
    for peer in nodes.values():
        for link in peer.get("links") or {}:
            if link not in link_names:
                link_names.append(link)
    rows = []
    for name, peer in sorted(nodes.items(), key=lambda item: item[1].get("node_id", 0)):
        marks = ("*" if name == status["node"] else "") + ("  (DC)" if name == dc else "")
        heard = peer.get("last_heard")
        links = peer.get("links") or {}
        attributes = " ".join(f"{k}={v}" for k, v in (peer.get("attributes") or {}).items())
        rows.append(
            [
                name + marks,
                peer.get("node_id"),
                peer.get("votes"),
                peer.get("state"),
                peer.get("generation") if peer.get("generation") is not None else "-",
                "-" if heard is None or name == status["node"] else f"{heard:.2f}s ago",
                *[
                    links.get(link, "-") if name != status["node"] else "local"
                    for link in link_names
                ],
                attributes,
            ]
        )
    headers = ["NODE", "ID", "VOTES", "STATE", "GEN", "HEARD", *link_names, "ATTRIBUTES"]
    lines.append(table(headers, rows))
    ping = status.get("ping") or {}
    if ping:
        lines.append("")
        lines.append("ping: " + ", ".join(f"{target} {state}" for target, state in ping.items()))
    lines.append("")
    lines.append("* this node")
    return "\n".join(lines)
