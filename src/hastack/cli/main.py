"""The `hastack` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hastack import __version__
from hastack.cli import (
    agent_cmd,
    cib_cmd,
    config_cmd,
    convert_cmd,
    explain_cmd,
    node_cmd,
    simulate_cmd,
    status_cmd,
)
from hastack.cli.plugins import register_plugins


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hastack",
        description="hastack: a high-availability stack for Linux (heartbeat membership, "
        "quorum, one designated coordinator, resource agents, the CIB).",
    )
    parser.add_argument("--version", action="version", version=f"hastack {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    node_cmd.register(subparsers)
    status_cmd.register(subparsers)
    config_cmd.register(subparsers)
    agent_cmd.register(subparsers)
    cib_cmd.register(subparsers)
    convert_cmd.register(subparsers)
    simulate_cmd.register(subparsers)
    explain_cmd.register(subparsers)
    register_plugins(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
