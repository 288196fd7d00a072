"""`hastack kernel bond status|configure|watch`: a bond's health, its sysfs configuration, and a
watcher that reports degraded bonds to the cluster.

Exit status: 0 done (status: every bond healthy), 1 a bond degraded, down or unreadable, or a
refused configuration (the reason on stderr), 2 a bad command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hastack.bonding.procfs import (
    PROC_DIR,
    BondParseError,
    BondStatus,
    Health,
    Verdict,
    assess,
    list_bonds,
    read_bond_status,
)
from hastack.bonding.sysfs import (
    SYSFS_ROOT,
    BondConfig,
    BondConfigError,
    Write,
    apply,
    plan,
    read_current,
)

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bond` (status, configure, watch) to `hastack kernel`'s sub-commands."""
    parser = subparsers.add_parser(
        "bond",
        help="channel bonding: status, configuration, degraded-bond watcher",
        description="Read /proc/net/bonding, configure a bond through sysfs, and watch bonds "
        "for the cluster. A bond with one live slave is a single point of failure: reported "
        "as degraded (a warning), not a reason to fail over.",
    )
    actions = parser.add_subparsers(dest="bond_action", metavar="ACTION", required=True)

    status = actions.add_parser(
        "status",
        help="show bonds' mode, slaves and health",
        description="Parse /proc/net/bonding/BOND (all bonds without BOND) and judge each: "
        "healthy, degraded (a slave not up, or one live slave) or down. Exit 0 when every "
        "bond is healthy, 1 otherwise.",
    )
    status.add_argument("bond", metavar="BOND", nargs="?", help="one bond (default: all)")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--proc", metavar="DIR", type=Path, default=PROC_DIR, help=f"default: {PROC_DIR}"
    )
    status.set_defaults(func=run_status)

    configure = actions.add_parser(
        "configure",
        help="create or change a bond through sysfs",
        description="Create or change a bond through sysfs in the order the kernel needs "
        "(mode before slaves; slaves released and the bond down for a mode change). "
        "--dry-run prints the writes without doing them.",
    )
    configure.add_argument("bond", metavar="BOND")
    configure.add_argument(
        "--mode",
        help="balance-rr, active-backup, balance-xor, broadcast, "
        "802.3ad, balance-tlb, balance-alb (or 0-6); needed to create a bond",
    )
    configure.add_argument("--miimon", type=int, metavar="MS", help="MII link polling (ms)")
    configure.add_argument("--updelay", type=int, metavar="MS", help="a multiple of miimon")
    configure.add_argument("--downdelay", type=int, metavar="MS", help="a multiple of miimon")
    configure.add_argument("--arp-interval", type=int, metavar="MS", help="ARP link polling")
    configure.add_argument(
        "--arp-ip-target",
        action="append",
        metavar="ADDR[,ADDR]",
        help="an ARP monitoring target (repeat, or comma-separate); the set given replaces "
        "the bond's targets",
    )
    configure.add_argument("--primary", metavar="SLAVE", help="active-backup/tlb/alb only")
    configure.add_argument("--fail-over-mac", metavar="none|active|follow")
    configure.add_argument("--num-grat-arp", type=int, metavar="N", help="0-255")
    configure.add_argument(
        "--slave", action="append", default=[], metavar="IF", help="enslave this interface (repeat)"
    )
    configure.add_argument(
        "--remove-slave",
        action="append",
        default=[],
        metavar="IF",
        help="release this interface (repeat)",
    )
    configure.add_argument("--dry-run", action="store_true", help="print the writes only")
    configure.add_argument(
        "--sysfs", metavar="DIR", type=Path, default=SYSFS_ROOT, help=f"default: {SYSFS_ROOT}"
    )
    configure.set_defaults(func=run_configure)

    watch = actions.add_parser(
        "watch",
        help="report slave and health changes; set node attributes in the cluster",
        description="Read the bonds every --interval seconds and print each change (slave "
        "down/up, failover, degraded, healthy again). With --socket, set the transient node "
        "attributes bond-BOND-slaves-up and bond-BOND-degraded through the node daemon.",
    )
    watch.add_argument("bonds", metavar="BOND", nargs="*", help="default: every bond")
    watch.add_argument("--proc", metavar="DIR", type=Path, default=PROC_DIR)
    watch.add_argument("--interval", type=float, default=2.0, metavar="S", help="default: 2")
    watch.add_argument("--count", type=int, metavar="N", help="stop after N readings")
    watch.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help="the node daemon's control socket: RUN_DIR/NODE/control.sock, "
        "e.g. /run/hastack/node1/control.sock",
    )
    watch.add_argument("--node", metavar="NAME", help="this node's name (default: uname -n)")
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    watch.set_defaults(func=run_watch)


def _fail(command: str, message: str, code: int = EXIT_PROBLEM) -> int:
    print(f"hastack kernel bond {command}: {message}", file=sys.stderr)
    return code


# --------------------------------------------------------------------------------------------
# status


def run_status(args: argparse.Namespace) -> int:
    proc: Path = args.proc
    if args.bond:
        names = [args.bond]
    else:
        try:
            names = list_bonds(proc)
        except OSError:
            return _fail(
                "status",
                f"{proc} does not exist: the bonding driver is not loaded (modprobe bonding), "
                "or give the directory with --proc",
            )
        if not names:
            return _fail("status", f"no bonds in {proc}")
    results: list[tuple[str, BondStatus | None, Verdict | None, str | None]] = []
    for name in names:
        path = proc / name
        try:
            status = read_bond_status(path)
        except OSError as exc:
            results.append((name, None, None, f"{path}: {exc.strerror or exc}"))
        except BondParseError as exc:
            results.append((name, None, None, str(exc)))
        else:
            results.append((name, status, assess(status), None))
    if args.json:
        document = [
            {
                "bond": name,
                "status": status.to_json() if status else None,
                "verdict": verdict.to_json() if verdict else None,
                "error": error,
            }
            for name, status, verdict, error in results
        ]
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        _print_statuses(results)
    healthy = all(v is not None and v.health is Health.HEALTHY for _, _, v, _ in results)
    return EXIT_OK if healthy else EXIT_PROBLEM


def _print_statuses(
    results: list[tuple[str, BondStatus | None, Verdict | None, str | None]],
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, soft_wrap=True)
    colours = {Health.HEALTHY: "green", Health.DEGRADED: "yellow", Health.DOWN: "red"}
    for name, status, verdict, error in results:
        if status is None or verdict is None:
            console.print(f"[bold]{name}[/]: [red]unreadable[/]: {error}", markup=True)
            continue
        facts = [status.mode, f"MII {status.mii_status or '?'}"]
        if status.active_slave or status.primary:
            facts.append(f"active {status.active_slave or 'none'}")  # the kernel prints None
        if status.primary:
            facts.append(f"primary {status.primary}")
        if status.miimon_ms:
            facts.append(f"miimon {status.miimon_ms} ms")
        if status.arp_interval_ms:
            targets = ",".join(status.arp_ip_targets) or "none"
            facts.append(f"ARP every {status.arp_interval_ms} ms to {targets}")
        if status.transmit_hash_policy:
            facts.append(f"hash {status.transmit_hash_policy}")
        colour = colours[verdict.health]
        console.print(f"[bold]{name}[/]: [{colour}]{verdict.health}[/] — {', '.join(facts)}")
        for reason in verdict.reasons:
            console.print(f"  reason: {reason}", markup=False)
        for warning in verdict.warnings:
            console.print(f"  warning: {warning}", markup=False)
        lacp = status.mode == "802.3ad"
        table = Table(box=None, pad_edge=False)
        columns = ["SLAVE", "MII", "SPEED", "DUPLEX", "FAILURES", "HW ADDR"]
        for column in [*columns, "AGGREGATOR"] if lacp else columns:
            table.add_column(column)
        for slave in status.slaves:
            row = [
                slave.interface,
                slave.mii_status or "?",
                f"{slave.speed_mbps} Mbps" if slave.speed_mbps is not None else "-",
                slave.duplex or "-",
                str(slave.link_failure_count) if slave.link_failure_count is not None else "-",
                slave.permanent_hw_addr or "-",
            ]
            if lacp:
                row.append(str(slave.aggregator_id) if slave.aggregator_id is not None else "N/A")
            table.add_row(*row)
        if status.slaves:
            console.print(table)


# --------------------------------------------------------------------------------------------
# configure


def _config(args: argparse.Namespace) -> BondConfig:
    targets = None
    if args.arp_ip_target is not None:
        targets = tuple(t.strip() for word in args.arp_ip_target for t in word.split(",") if t)
    return BondConfig(
        name=args.bond,
        mode=args.mode,
        miimon=args.miimon,
        updelay=args.updelay,
        downdelay=args.downdelay,
        arp_interval=args.arp_interval,
        arp_ip_targets=targets,
        primary=args.primary,
        fail_over_mac=args.fail_over_mac,
        num_grat_arp=args.num_grat_arp,
        slaves=tuple(args.slave),
        remove_slaves=tuple(args.remove_slave),
    )


def run_configure(args: argparse.Namespace) -> int:
    root: Path = args.sysfs
    try:
        config = _config(args)
        try:
            current = read_current(root, args.bond)
        except BondConfigError as exc:
            if not args.dry_run:
                raise
            # a dry run still shows the plan on a machine without the driver
            print(f"# note: {exc}; planned as for a new bond")
            current = None
        writes = plan(config, current)
        if args.dry_run:
            for write in writes:
                print(_shell(write, root))
            print(f"# dry run: {len(writes)} write(s), nothing changed")
            return EXIT_OK
        apply(writes, root, on_write=lambda w: print(_shell(w, root)))
    except BondConfigError as exc:
        return _fail("configure", str(exc))
    print(f"# {args.bond}: {len(writes)} write(s) done")
    return EXIT_OK


def _shell(write: Write, root: Path) -> str:
    return f"{write.shell(root)}    # {write.why}" if write.why else write.shell(root)


# --------------------------------------------------------------------------------------------
# watch


def run_watch(args: argparse.Namespace) -> int:
    from hastack.bonding.monitor import AttributePublisher, BondEvent, watch_bonds

    if args.interval <= 0:
        return _fail("watch", f"--interval must be more than 0 seconds, not {args.interval}", 2)
    if args.count is not None and args.count < 1:
        return _fail("watch", f"--count must be at least 1, not {args.count}", EXIT_USAGE)
    publisher = None
    if args.socket is not None:
        from hastack.daemon.node import default_node_name

        publisher = AttributePublisher(args.socket, args.node or default_node_name())

    def emit(document: dict[str, Any], text: str) -> None:
        if args.json:
            print(json.dumps(document, sort_keys=True), flush=True)
        else:
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}", flush=True)

    def on_event(event: BondEvent) -> None:
        emit({"event": event.to_json(), "time": time.time()}, f"{event.kind}: {event.message}")

    async def on_attributes(attributes: Mapping[str, str]) -> None:
        for name, value in attributes.items():
            emit({"attribute": name, "value": value, "time": time.time()}, f"{name}={value}")
        if publisher is not None:
            publisher.update(attributes)

    async def after_round() -> None:
        # blocking socket I/O off the loop; what fails stays pending for the next round
        if publisher is not None and publisher.pending:
            for problem in await asyncio.to_thread(publisher.flush):
                print(f"hastack kernel bond watch: {problem}", file=sys.stderr, flush=True)

    async def main() -> None:
        watching = asyncio.ensure_future(
            watch_bonds(
                args.proc,
                args.interval,
                on_event,
                on_attributes=on_attributes,
                after_round=after_round,
                bonds=args.bonds or None,
                rounds=args.count,
            )
        )
        # SIGTERM (a service manager, a lab test stopping it) is a normal stop: exit 0, not
        # killed by the signal with a half-written line
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, watching.cancel)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return EXIT_OK
