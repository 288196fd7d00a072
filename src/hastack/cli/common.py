"""Arguments and helpers shared by the subcommands."""

from __future__ import annotations

import argparse

from hastack.config.errors import ConfigError
from hastack.config.model import ClusterConfig


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="DIR",
        required=True,
        help="configuration directory (holds ha.cf and authkeys)",
    )


def add_node_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--node", metavar="NAME", help="this node's name (default: `uname -n`, as heartbeat)"
    )


def add_json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def load_or_report(config_dir: str) -> ClusterConfig | None:
    """The configuration, or None after printing every problem in it to stderr."""
    from hastack.daemon.node import load, print_problems

    try:
        return load(config_dir)
    except ConfigError as exc:
        print_problems(config_dir, exc.problems)
        return None


def add_daemon_args(parser: argparse.ArgumentParser) -> None:
    """-c/--config and --node: how a command finds the local node daemon's control socket
    (resolved by hastack.cli.crm_cmds.resolve_target)."""
    parser.add_argument(
        "-c", "--config", metavar="DIR", help="configuration directory (default: /etc/ha.d)"
    )
    parser.add_argument(
        "--node",
        dest="local_node",
        metavar="NAME",
        help="the local node's name, to find its daemon (default: `uname -n`)",
    )
