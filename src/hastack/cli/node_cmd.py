"""`hastack node start`: run this machine's cluster node in the foreground."""

from __future__ import annotations

import argparse

from hastack.cli.common import add_config_arg, add_node_arg


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "node",
        help="run a cluster node",
        description="Run this machine's cluster node.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser(
        "start",
        help="run the node daemon in the foreground",
        description="Run the node daemon in the foreground until SIGTERM or SIGINT (which make "
        "it leave the cluster cleanly). SIGHUP re-reads the configuration. State and the "
        "control socket live in RUN_DIR/NODE/ (ha.cf's run_dir).",
    )
    add_config_arg(start)
    add_node_arg(start)
    start.set_defaults(func=run_start)


def run_start(args: argparse.Namespace) -> int:
    from hastack.daemon.node import start

    return start(args.config, args.node)
