"""What `hastack sim` and `hastack sim --replica` report alike: the seeds asked for, the
violations and their summary, printed as text or as one JSON document."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

FULL_REPORTS = 3  # violations printed in full; the rest get one line each


def seed_list(args: argparse.Namespace) -> list[int]:
    """--seed alone, else --seeds seeds from --first-seed."""
    if args.seed is not None:
        return [args.seed]
    return list(range(args.first_seed, args.first_seed + max(args.seeds, 0)))


def outcome(results: Sequence[Any], elapsed: float) -> dict[str, Any]:
    """The summary's timing and violations, in the order both summaries list them."""
    failing = [r for r in results if r.violations]
    by_invariant: dict[str, int] = {}
    for r in failing:
        for v in r.violations:
            by_invariant[v.invariant] = by_invariant.get(v.invariant, 0) + 1
    return {
        "wall_seconds": round(elapsed, 2),
        "seeds_per_second": round(len(results) / elapsed, 2) if elapsed > 0 else None,
        "violations": sum(len(r.violations) for r in results),
        "failing_seeds": [r.seed for r in failing],
        "by_invariant": by_invariant,
        "replay": [r.replay for r in failing],
    }


def violation_lines(results: Sequence[Any], single: bool) -> list[str]:
    """The first FULL_REPORTS violations (all with a single seed) in full, one line each after."""
    lines: list[str] = []
    shown = 0
    for r in results:
        for v in r.violations:
            if shown < FULL_REPORTS or single:
                lines += [v.render(), ""]
            else:
                lines.append(f"VIOLATION seed={v.seed} t={v.time:.6f} {v.invariant}: {v.message}")
                lines.append(f"  replay: {v.replay}")
            shown += 1
    if not shown:
        lines.append("violations: none")
    return lines


def speed_line(s: dict[str, Any]) -> str:
    return (
        f"  {s['simulated_seconds']} simulated s in {s['wall_seconds']} wall s "
        f"({s['seeds_per_second']} seeds/s)"
    )


def closing_lines(s: dict[str, Any], single: bool) -> list[str]:
    """The trace of a single seed, or the failing seeds of many."""
    lines: list[str] = []
    if single and s["trace_hash"]:
        lines.append(f"  trace {s['trace_hash']}")
    if s["failing_seeds"] and not single:
        lines.append("  failing seeds: " + " ".join(map(str, s["failing_seeds"][:50])))
    return lines


def emit(
    args: argparse.Namespace,
    results: Sequence[Any],
    summary: dict[str, Any],
    result_json: Callable[[Any], dict[str, Any]],
    render: Callable[[Any, dict[str, Any], bool], str],
) -> int:
    """Print the report (--json: one document); the exit status, 1 when any seed failed."""
    if args.json:
        json.dump(
            {
                "summary": summary,
                "violations": [v.to_json() for r in results for v in r.violations],
                "results": [result_json(r) for r in results] if len(results) == 1 else None,
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print(render(results, summary, args.seed is not None))
    return 1 if summary["violations"] else 0
