"""Subcommands that live in other packages (`hastack sim`, `hastack demo`), loaded tolerantly.

Each such module offers `register(subparsers)`, which adds its parser and sets `func` (called
with the parsed arguments, returning the exit code). When a module cannot be imported, its
subcommand still exists and says that it is not available, so the rest of the CLI works.
"""

from __future__ import annotations

import argparse
import importlib
import sys

PLUGINS: tuple[tuple[str, str, str], ...] = (
    ("sim", "hastack.sim.cli", "run clusters of real cores in the deterministic simulator"),
    ("demo", "hastack.lab.demo", "run a 3-node cluster on this machine, kill the DC, watch"),
)


def register_plugins(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], only: str | None = None
) -> None:
    """Register every plugin's subcommand (or only the one named `only`)."""
    for command, module_name, help_text in PLUGINS:
        if only is not None and command != only:
            continue
        try:
            module = importlib.import_module(module_name)
            module.register(subparsers)
        except Exception as exc:  # missing or broken: the rest of the CLI must keep working
            _register_unavailable(subparsers, command, module_name, help_text, exc)


def _register_unavailable(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    command: str,
    module_name: str,
    help_text: str,
    error: Exception,
) -> None:
    if command in subparsers.choices:  # the module registered itself and then failed
        return
    reason = f"{type(error).__name__}: {error}"
    parser = subparsers.add_parser(
        command,
        help=f"{help_text} (not available)",
        description=f"{help_text}. Not available in this installation ({module_name}: {reason}).",
    )
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)

    def unavailable(_args: argparse.Namespace) -> int:
        print(
            f"hastack {command}: not available in this installation ({module_name}: {reason})",
            file=sys.stderr,
        )
        return 1

    parser.set_defaults(func=unavailable)
