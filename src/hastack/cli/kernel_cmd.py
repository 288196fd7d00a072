"""`hastack kernel`: the kernel settings an HA node depends on.

panic and kexec (how a node that hits a kernel error gets back fast), livepatch (fixes without
a reboot) and bond (the links under the heartbeat). Each lives in its own package; this module
only gathers them under one command.
"""

from __future__ import annotations

import argparse

from hastack.bonding.cli import add_commands as add_bond
from hastack.kernel.cli_panic_kexec import add_commands as add_panic_kexec
from hastack.kernel_livepatch.cli import add_commands as add_livepatch


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "kernel",
        help="kernel HA settings: panic profile, kexec, live patches, bonding",
        description="Check and apply the kernel settings an HA node depends on: reboot on a "
        "kernel error (panic), reboot fast (kexec), patch without rebooting (livepatch), and "
        "links that survive a NIC (bond).",
    )
    parts = parser.add_subparsers(dest="kernel_part", metavar="PART", required=True)
    add_panic_kexec(parts)
    add_livepatch(parts)
    add_bond(parts)
