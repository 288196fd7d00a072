"""`hastack sim`: run seeds of the simulator, print violations and a summary."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from hastack.sim import replica_cli, report
from hastack.sim.result import SimConfig, SimResult
from hastack.sim.runner import load_controller, load_factory, run_seeds
from hastack.sim.scenario import EXTRA_KINDS, FAULT_KINDS, FENCING_FAULT_KINDS, parse_faults


def _nodes(text: str) -> tuple[int, ...]:
    """ "3" -> (3,); "3-5" -> (3, 4, 5): seed s runs with the (s mod 3)th count."""
    try:
        low, _, high = text.partition("-")
        counts = tuple(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--nodes: expected N or N-M, got {text!r}") from None
    if not counts or counts[0] < 2 or counts[-1] > 32:
        raise argparse.ArgumentTypeError(f"--nodes: between 2 and 32 nodes, got {text!r}")
    return counts


def _faults(text: str) -> tuple[str, ...]:
    try:
        return parse_faults(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sim",
        help="run the deterministic cluster simulator over many seeds",
        description=(
            "Run real membership cores against a simulated clock, network and processes, one "
            "seed per run, and check the invariants after every step: never two DCs; no quorum "
            "on both sides of a stable partition; a stable quorate partition elects a DC within "
            "a bound derived from the timers; members converge after the network heals. "
            "Exit status 1 when any seed violates one; each violation prints the command that "
            "replays it exactly. --crm adds the resource manager, --fencing the fencer; "
            "--replica runs the replicated block device's simulator instead."
        ),
    )
    parser.add_argument(
        "--nodes",
        type=_nodes,
        default=None,
        metavar="N[-M]",
        help="nodes per cluster, or a range cycled over the seeds (default 3)",
    )
    parser.add_argument("--seeds", type=int, default=100, metavar="K", help="seeds to run (100)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S", help="first seed (0)")
    parser.add_argument(
        "--seed", type=int, default=None, metavar="S", help="run only seed S (replay one run)"
    )
    parser.add_argument(
        "--faults",
        type=_faults,
        default=None,
        metavar="KIND,...",
        help=f"fault kinds to draw from (default all: {','.join(FAULT_KINDS)}; with --fencing "
        f"also {','.join(EXTRA_KINDS)}: a partition cut and healed repeatedly, a pause of "
        "the DC of that moment longer than its lease, and a quorum server (real server and "
        "client cores, a host of the simulated network) whose process crashes for a while; "
        "among other kinds a share of the seeds get the server, alone every seed)",
    )
    parser.add_argument(
        "--duration",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help="simulated seconds per seed (default: warm-up plus two fault windows)",
    )
    parser.add_argument("--keepalive", type=_positive, default=0.1, metavar="SECONDS")
    parser.add_argument("--deadtime", type=_positive, default=0.5, metavar="SECONDS")
    parser.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="J",
        help="worker processes (default: one per CPU)",
    )
    parser.add_argument(
        "--core",
        default="",
        metavar="MODULE:CLASS",
        help="run another core class (a deliberately broken one, to see the checker fail)",
    )
    parser.add_argument(
        "--crm",
        action="store_true",
        help="run the resource manager too (controllers, messaging, a simulated executor) and "
        "check its invariants: no resource active twice beyond a bound, every resource placed "
        "once after a stable period, actions only on the current DC's orders",
    )
    parser.add_argument(
        "--controller",
        default="",
        metavar="MODULE:CLASS",
        help="with --crm: run another controller class (a subclass of "
        "hastack.sim.crm.SimController, deliberately broken, to see the checkers fail)",
    )
    parser.add_argument(
        "--fencing",
        action="store_true",
        help="with --crm: stonith-enabled=true, a simulated fence device and a real fencer per "
        "node (device delays and failures drawn from the seed), and the strict invariants: no "
        "resource active on two powered-on nodes at any instant (paused ones count), a "
        "resource moves only after its node was fenced or stopped it, a partitioned minority "
        "stops its resources within its bound",
    )
    replica_cli.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    problem = replica_cli.misused(args)
    if problem is not None:
        print(f"hastack sim: {problem}", file=sys.stderr)
        return 2
    if args.replica:
        return replica_cli.run(args)
    if args.keepalive * 2 >= args.deadtime:
        print(
            f"hastack sim: deadtime must exceed 2 x keepalive "
            f"({args.deadtime:g} <= 2 x {args.keepalive:g})",
            file=sys.stderr,
        )
        return 2
    counts: tuple[int, ...] = args.nodes or (3,)
    seeds = report.seed_list(args)
    if args.seed is not None:
        counts = (counts[args.seed % len(counts)],)
    if args.fencing and not args.crm:
        print("hastack sim: --fencing needs --crm", file=sys.stderr)
        return 2
    faults = args.faults
    if faults is None:
        faults = FENCING_FAULT_KINDS if args.fencing else FAULT_KINDS
    config = SimConfig(
        nodes=counts[0],
        faults=faults,
        duration=args.duration,
        keepalive=args.keepalive,
        deadtime=args.deadtime,
        core=args.core,
        crm=args.crm,
        controller=args.controller,
        fencing=args.fencing,
    )
    if args.controller and not args.crm:
        print("hastack sim: --controller needs --crm", file=sys.stderr)
        return 2
    try:
        load_factory(args.core)
    except (ImportError, AttributeError, ValueError) as exc:
        print(f"hastack sim: --core {args.core}: {exc}", file=sys.stderr)
        return 2
    try:
        load_controller(args.controller)
    except (ImportError, AttributeError, ValueError) as exc:
        print(f"hastack sim: --controller {args.controller}: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    results = list(
        run_seeds(seeds, config, jobs=args.jobs, nodes_cycle=counts if len(counts) > 1 else ())
    )
    elapsed = time.monotonic() - started
    summary = summarize(results, elapsed)
    return report.emit(args, results, summary, lambda r: r.to_json(), render)


def summarize(results: list[SimResult], elapsed: float) -> dict[str, Any]:
    stats = [r.stats for r in results]

    def most(key: str) -> float:
        return max((s.get(key, 0.0) for s in stats), default=0.0)

    def total(key: str) -> int:
        return int(sum(s.get(key, 0) for s in stats))

    return {
        "seeds": len(results),
        "nodes": sorted({r.config.nodes for r in results}),
        "faults": list(results[0].config.faults) if results else [],
        "simulated_seconds": round(sum(r.duration for r in results), 1),
        **report.outcome(results, elapsed),
        "checks": {k: total(f"checks_{k}") for k in "abcd"},
        "max_elect_s": most("max_elect_s"),
        "elect_bound_s": most("elect_bound_s"),
        "max_converge_s": most("max_converge_s"),
        "converge_bound_s": most("converge_bound_s"),
        "faults_injected": {
            k: total(k) for k in ("net_faults", "crashes", "pauses", "fences", "restarts")
        },
        "trace_hash": results[0].trace_hash if len(results) == 1 else None,
        "crm": {
            "actions": total("crm_actions"),
            "orders_checked": total("checks_crm_orders"),
            "converge_checks": total("checks_crm_converge"),
            "max_overlap_s": most("max_overlap_s"),
            "overlap_bound_s": most("overlap_bound_s"),
            "max_converge_s": most("max_crm_converge_s"),
            "converge_bound_s": most("crm_converge_bound_s"),
        }
        if any(r.config.crm for r in results)
        else None,
        "fencing": {
            "requests": total("fence_requests"),
            "device_actions": total("device_actions"),
            "device_failures": total("device_failures"),
            "powered_off": total("powered_off"),
            "move_checks": total("checks_fence_move"),
            "quorum_checks": total("checks_fence_quorum"),
            "minority_checks": total("checks_minority"),
            "max_minority_stop_s": most("max_minority_stop_s"),
            "minority_bound_s": most("minority_bound_s"),
        }
        if any(r.config.fencing for r in results)
        else None,
        "qserver": {
            "seeds": sum(1 for s in stats if "qserver_lease_s" in s),
            "downs": total("qserver_downs"),
            "connects": total("qserver_connects"),
            "votes_gained": total("qserver_votes_gained"),
            "votes_lost": total("qserver_votes_lost"),
        }
        if any("qserver_lease_s" in s for s in stats)
        else None,
    }


def render(results: list[SimResult], summary: dict[str, Any], single: bool) -> str:
    lines = report.violation_lines(results, single)
    s = summary
    lines.append(
        f"{s['seeds']} seed(s), nodes {','.join(map(str, s['nodes']))}, faults "
        f"{','.join(s['faults']) or 'none'}: {s['violations']} violation(s) in "
        f"{len(s['failing_seeds'])} seed(s)"
    )
    lines.append(report.speed_line(s))
    c = s["checks"]
    lines.append(
        f"  checks: one-DC {c['a']}, split-quorum {c['b']}, elected {c['c']}, converged {c['d']}"
    )
    lines.append(
        f"  slowest election {s['max_elect_s']} s (bound {s['elect_bound_s']} s), "
        f"slowest convergence {s['max_converge_s']} s (bound {s['converge_bound_s']} s)"
    )
    crm = s.get("crm")
    if crm:
        lines.append(
            f"  crm: {crm['actions']} actions ({crm['orders_checked']} orders checked), "
            f"{crm['converge_checks']} placement checks; longest double activity "
            f"{crm['max_overlap_s']} s (bound {crm['overlap_bound_s']} s), slowest placement "
            f"{crm['max_converge_s']} s (bound {crm['converge_bound_s']} s)"
        )
    fencing = s.get("fencing")
    if fencing:
        lines.append(
            f"  fencing: {fencing['requests']} requests, {fencing['device_actions']} device "
            f"actions ({fencing['device_failures']} failed), {fencing['powered_off']} nodes "
            f"powered off; {fencing['move_checks']} starts checked for fence-before-move, "
            f"{fencing['minority_checks']} minority checks (slowest minority stop "
            f"{fencing['max_minority_stop_s']} s, bound {fencing['minority_bound_s']} s), "
            f"{fencing['quorum_checks']} fencings checked for quorum"
        )
    qserver = s.get("qserver")
    if qserver:
        lines.append(
            f"  quorum server: in {qserver['seeds']} seed(s), {qserver['downs']} crashes, "
            f"{qserver['connects']} connections, votes gained {qserver['votes_gained']} and "
            f"lost {qserver['votes_lost']} times"
        )
    f = s["faults_injected"]
    lines.append(
        f"  injected: {f['net_faults']} network faults, {f['crashes']} crashes, "
        f"{f['pauses']} pauses, {f['fences']} fences, {f['restarts']} restarts"
    )
    lines += report.closing_lines(s, single)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hastack")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(["sim", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))
