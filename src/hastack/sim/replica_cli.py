"""`hastack sim --replica`: seeds of the replica simulator (hastack.sim.replica) from the CLI.

Each seed runs two replica nodes -- the real ReplicaEngine and Backing over simulated disks
that lose unflushed writes in a crash -- with a workload, network cuts, crashes, clean stops
and promotions drawn from the seed, then a quiet period; the simulator's invariants are
checked throughout (INVARIANTS). The report lists each violation with the command that
replays its seed, and a summary; the exit status is 1 when any seed violated an invariant.
`--engine`, `--shell` and `--disk` run deliberately broken variants (MODULE:CLASS), as
`--core` does for the cluster simulator, to see the checkers fail.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from hastack.sim import report
from hastack.sim.replica import INVARIANTS, QUIET_BOUND, ReplicaResult

DEFAULT_DURATION = 3.0  # simulated seconds of workload and faults per seed, as the CI sweep
TOTALS = (
    "writes_acked",
    "flushes_acked",
    "crashes",
    "clean_stops",
    "cuts",
    "connects",
    "promotions",
    "promote_refused",
    "resync_blocks",
    "lost_pages",
    "dropped_blocks",
)
# What the cluster simulator's options mean nothing to: refused with --replica.
CLUSTER_ONLY = (
    ("nodes", "--nodes"),
    ("faults", "--faults"),
    ("core", "--core"),
    ("crm", "--crm"),
    ("controller", "--controller"),
    ("fencing", "--fencing"),
)
REPLICA_ONLY = (
    ("protocol", "--protocol"),
    ("no_faults", "--no-faults"),
    ("engine", "--engine"),
    ("shell", "--shell"),
    ("disk", "--disk"),
)


@dataclass(frozen=True)
class ReplicaOptions:
    """One sweep's settings (picklable: the worker processes load the classes themselves)."""

    duration: float = DEFAULT_DURATION
    protocol: str | None = None
    faults: bool = True
    engine: str = ""
    shell: str = ""
    disk: str = ""

    def replay(self, seed: int) -> str:
        """The command line that runs exactly this seed again."""
        words = [
            "hastack",
            "sim",
            "--replica",
            "--seed",
            str(seed),
            "--duration",
            f"{self.duration:g}",
        ]
        if self.protocol:
            words += ["--protocol", self.protocol]
        if not self.faults:
            words.append("--no-faults")
        for flag, spec in (
            ("--engine", self.engine),
            ("--shell", self.shell),
            ("--disk", self.disk),
        ):
            if spec:
                words += [flag, spec]
        return shlex.join(words)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `hastack sim` that select and shape the replica simulator."""
    parser.add_argument(
        "--replica",
        action="store_true",
        help="run the replica simulator instead: two nodes, each the real replication engine "
        "and backing (superblock, activity log, bitmap) over a simulated disk that loses "
        "unflushed writes in a crash, a workload, network cuts, crashes, clean stops and "
        "promotions drawn from the seed, then a quiet period; invariants: "
        + "; ".join(f"{name} ({text})" for name, text in INVARIANTS.items())
        + f". --duration defaults to {DEFAULT_DURATION:g} simulated seconds of workload",
    )
    parser.add_argument(
        "--protocol",
        choices=("A", "B", "C"),
        default=None,
        help="with --replica: the replication protocol of every seed (default: drawn per seed, "
        "C in three seeds of five)",
    )
    parser.add_argument(
        "--no-faults",
        action="store_true",
        help="with --replica: no cuts, crashes or stops, only the workload",
    )
    for flag, what in (
        ("--engine", "a subclass of hastack.replica.engine.ReplicaEngine"),
        ("--shell", "a subclass of hastack.sim.replica.NodeShell"),
        ("--disk", "a subclass of hastack.sim.replica_disk.SimBlockFile"),
    ):
        parser.add_argument(
            flag,
            default="",
            metavar="MODULE:CLASS",
            help=f"with --replica: run {what} instead of the real one (a deliberately broken "
            "one, to see the checkers fail)",
        )


def misused(args: argparse.Namespace) -> str | None:
    """Why the options do not go together, or None."""
    if args.replica:
        for name, flag in CLUSTER_ONLY:
            if getattr(args, name, None):
                return f"{flag} is the cluster simulator's: it does not apply to --replica"
        return None
    for name, flag in REPLICA_ONLY:
        if getattr(args, name, None):
            return f"{flag} needs --replica"
    return None


def load_class(spec: str, base: type) -> type:
    """The class named MODULE:CLASS, which must subclass `base`; ValueError otherwise."""
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"{spec!r}: expected MODULE:CLASS")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{spec!r}: {exc}") from None
    if not isinstance(cls, type) or not issubclass(cls, base):
        raise ValueError(f"{spec!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    return cls


def _classes(options: ReplicaOptions) -> dict[str, type]:
    from hastack.replica.engine import ReplicaEngine
    from hastack.sim.replica import NodeShell
    from hastack.sim.replica_disk import SimBlockFile

    chosen: dict[str, type] = {}
    for key, spec, base in (
        ("engine_cls", options.engine, ReplicaEngine),
        ("shell_cls", options.shell, NodeShell),
        ("file_cls", options.disk, SimBlockFile),
    ):
        if spec:
            chosen[key] = load_class(spec, base)
    return chosen


def run_one(seed: int, options: ReplicaOptions) -> ReplicaResult:
    """One seed, its violations' replay command the CLI's."""
    from hastack.sim.replica import run_replica_seed

    result = run_replica_seed(
        seed,
        duration=options.duration,
        protocol=options.protocol,
        faults=options.faults,
        **_classes(options),  # type: ignore[arg-type]
    )
    command = options.replay(seed)
    result.violations = [replace(v, replay=command) for v in result.violations]
    result.replay = command
    return result


def run_replica_seeds(
    seeds: Sequence[int], options: ReplicaOptions, jobs: int = 1
) -> Iterator[ReplicaResult]:
    """Results in seed order, over `jobs` worker processes."""
    work = partial(run_one, options=options)
    if jobs <= 1 or len(seeds) < 2:
        for seed in seeds:
            yield work(seed)
        return
    with multiprocessing.get_context("fork").Pool(min(jobs, len(seeds))) as pool:
        yield from pool.imap(work, seeds, chunksize=1)


def run(args: argparse.Namespace) -> int:
    """`hastack sim --replica ...`; `args` as hastack.sim.cli parsed them."""
    options = ReplicaOptions(
        duration=args.duration if args.duration is not None else DEFAULT_DURATION,
        protocol=args.protocol,
        faults=not args.no_faults,
        engine=args.engine,
        shell=args.shell,
        disk=args.disk,
    )
    try:
        _classes(options)
    except ValueError as exc:
        print(f"hastack sim: {exc}", file=sys.stderr)
        return 2
    seeds = report.seed_list(args)
    started = time.monotonic()
    results = list(run_replica_seeds(seeds, options, jobs=args.jobs))
    summary = summarize(results, options, time.monotonic() - started)
    return report.emit(args, results, summary, _result_json, render)


def _result_json(result: ReplicaResult) -> dict[str, Any]:
    return {
        "seed": result.seed,
        "protocol": result.protocol,
        "ok": result.ok,
        "stats": result.stats,
        "trace_hash": result.trace_hash,
        "replay": result.replay,
    }


def summarize(
    results: list[ReplicaResult], options: ReplicaOptions, elapsed: float
) -> dict[str, Any]:
    protocols = {p: sum(1 for r in results if r.protocol == p) for p in "ABC"}
    return {
        "kind": "replica",
        "seeds": len(results),
        "protocols": protocols,
        "duration": options.duration,
        "faults": options.faults,
        "simulated_seconds": round(sum(r.stats.get("end_time", 0.0) for r in results), 1),
        **report.outcome(results, elapsed),
        "totals": {k: int(sum(r.stats.get(k, 0) for r in results)) for k in TOTALS},
        "max_converged_after_s": max(
            (r.stats.get("converged_after", 0.0) for r in results), default=0.0
        ),
        "quiet_bound_s": QUIET_BOUND,
        "invariants": list(INVARIANTS),
        "trace_hash": results[0].trace_hash if len(results) == 1 else None,
    }


def render(results: list[ReplicaResult], summary: dict[str, Any], single: bool) -> str:
    lines = report.violation_lines(results, single)
    s = summary
    used = ", ".join(f"{p} {n}" for p, n in s["protocols"].items() if n)
    lines.append(
        f"{s['seeds']} seed(s) of the replica simulator (protocols {used or 'none'}; faults "
        f"{'on' if s['faults'] else 'off'}; {s['duration']:g} s of workload each): "
        f"{s['violations']} violation(s) in {len(s['failing_seeds'])} seed(s)"
    )
    lines.append(report.speed_line(s))
    t = s["totals"]
    lines.append(
        f"  workload: {t['writes_acked']} writes and {t['flushes_acked']} flushes "
        f"acknowledged; {t['resync_blocks']} blocks resynchronised"
    )
    lines.append(
        f"  injected: {t['cuts']} link cuts, {t['crashes']} crashes ({t['lost_pages']} cached "
        f"pages lost), {t['clean_stops']} clean stops; {t['connects']} connections, "
        f"{t['promotions']} promotions ({t['promote_refused']} refused)"
    )
    lines.append(
        f"  checked: {', '.join(s['invariants'])}; slowest final convergence "
        f"{s['max_converged_after_s']} s (bound {s['quiet_bound_s']:g} s); "
        f"{t['dropped_blocks']} unflushed block(s) forgotten with a crashed node"
    )
    lines += report.closing_lines(s, single)
    return "\n".join(lines)
