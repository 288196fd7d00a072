"""The `hastack` command."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hastack import __version__
from hastack.cli.plugins import PLUGINS, register_plugins

# Each subcommand's module, in the order `hastack --help` lists them. Only the module of the
# command being run is imported (some pull in the network stack or the simulator): a
# one-shot command such as `hastack simulate` should not pay for the others' imports.
# "MODULE:FUNCTION" names the register function when a module holds several commands.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("node", "hastack.cli.node_cmd"),
    ("status", "hastack.cli.status_cmd"),
    ("config", "hastack.cli.config_cmd"),
    ("agent", "hastack.cli.agent_cmd"),
    ("resource", "hastack.cli.crm_cmds:register_resource"),
    ("constraint", "hastack.cli.crm_cmds:register_constraint"),
    ("property", "hastack.cli.crm_cmds:register_property"),
    ("standby", "hastack.cli.crm_cmds:register_standby"),
    ("takeover", "hastack.cli.crm_cmds:register_takeover"),
    ("cib", "hastack.cli.cib_cmd"),
    ("convert", "hastack.cli.convert_cmd"),
    ("simulate", "hastack.cli.simulate_cmd"),
    ("explain", "hastack.cli.explain_cmd"),
    ("history", "hastack.cli.history_cmd"),
    ("fence", "hastack.cli.fence_cmd"),
    ("qserver", "hastack.cli.qserver_cmd"),
    ("quorum", "hastack.cli.quorum_cmd"),
    ("replica", "hastack.cli.replica_cmd"),
    ("watchdog", "hastack.cli.watchdog_cmd"),
    ("mon", "hastack.cli.mon_cmd"),
    ("kernel", "hastack.cli.kernel_cmd"),
    ("nines", "hastack.availability.cli_nines:add_commands"),
    ("analyze", "hastack.analyze.cli:add_commands"),
)


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def _register(spec: str, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    module, _, function = spec.partition(":")
    getattr(importlib.import_module(module), function or "register")(subparsers)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or (given the command line) only the one it runs."""
    parser = argparse.ArgumentParser(
        prog="hastack",
        description="hastack: a high-availability stack for Linux (heartbeat membership, "
        "quorum, one designated coordinator, resource agents, the CIB).",
    )
    parser.add_argument("--version", action="version", version=f"hastack {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen(argv) if argv is not None else None
    modules = dict(COMMANDS)
    if chosen in modules:
        _register(modules[chosen], subparsers)
        return parser
    if chosen is not None and chosen in {name for name, _, _ in PLUGINS}:
        register_plugins(subparsers, only=chosen)
        return parser
    for _, module in COMMANDS:  # --help, --version, or a word that is no command
        _register(module, subparsers)
    register_plugins(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    args = parser.parse_args(words)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
