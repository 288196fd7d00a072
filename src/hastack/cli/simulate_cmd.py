"""`hastack simulate -x CIB`: what the scheduler decides for a CIB, as crm_simulate -S shows it.

The current state (from the status section), optionally every allocation score with its parts,
the actions of the transition with the reason of each, and the state once they all ran. Faults
are injected the way crm_simulate takes them: ``--node-fail NODE`` before scheduling,
``--op-fail RSC_TASK_INTERVAL@NODE=RC`` while the transition runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hastack.cli.common import add_json_arg

EXIT_UNSUPPORTED = 3
EXIT_CYCLE = 4


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="show what the scheduler does with a CIB, as crm_simulate -S",
        description="Read a CIB (configuration and status), decide where every resource runs "
        "and which actions take the cluster there, as Pacemaker's scheduler does, and show "
        "the state before and after those actions. Exit status: 0 done, 1 the CIB cannot be "
        "read (or a file cannot be written), 2 a bad option, 3 the CIB uses something the "
        "scheduler does not handle yet (clones, promotable clones, bundles, remote or guest "
        "nodes, tickets), 4 the transition's orderings form a cycle (a scheduler bug: please "
        "report it with the CIB).",
    )
    parser.add_argument(
        "-x", "--xml-file", metavar="CIB", required=True, help="the CIB file, or - for stdin"
    )
    parser.add_argument(
        "-s",
        "--show-scores",
        action="store_true",
        help="show every resource's score on every node, with its parts",
    )
    parser.add_argument(
        "-F",
        "--node-fail",
        metavar="NODE",
        action="append",
        default=[],
        help="the node fails (leaves without being expected to) before scheduling; repeatable",
    )
    parser.add_argument(
        "-i",
        "--op-fail",
        metavar="RSC_TASK_INTERVAL@NODE=RC",
        action="append",
        default=[],
        help="that action of the transition returns RC, e.g. rsc1_start_0@node2=1; repeatable",
    )
    parser.add_argument(
        "-O",
        "--save-output",
        metavar="FILE",
        help="write the CIB as it is after the transition to FILE",
    )
    parser.add_argument(
        "-D",
        "--save-dotfile",
        metavar="FILE",
        help="write the transition graph (actions and their ordering edges) to FILE in "
        "crm_simulate's dot format",
    )
    parser.add_argument(
        "-t",
        "--date",
        metavar="WHEN",
        help="the time to schedule at: ISO 8601 (2026-11-25 12:00:00Z) or seconds since the "
        "epoch (default: the CIB's execution-date, else now, as crm_simulate)",
    )
    add_json_arg(parser)
    parser.set_defaults(func=run)


def _now(args: argparse.Namespace, extra: dict[str, str]) -> float | None:
    from hastack.crm.rules import parse_iso8601

    if getattr(args, "date", None) is not None:
        try:
            return float(args.date)
        except ValueError:
            return parse_iso8601(args.date).timestamp()
    if "execution-date" in extra:
        return None  # the scheduler's stages read it from the CIB
    return time.time()


@dataclass
class Scheduled:
    """A CIB read, its faults injected, and the scheduler's three stages run on it."""

    cib: Any
    now: float | None
    before: Any
    placement: Any
    transition: Any
    failures: dict[str, Any]


def schedule(args: argparse.Namespace, command: str) -> Scheduled | int:
    """Read ``args.xml_file``, apply ``--node-fail``/``--op-fail``/``--date`` where the
    command has them, and schedule; or print why not and return the exit status."""
    from hastack.crm.cib.model import CibError
    from hastack.crm.cib.xml import read_cib
    from hastack.crm.placement import PlacementUnsupported, place
    from hastack.crm.rules import RuleError
    from hastack.crm.simulate import SimulationError, fail_node, parse_op_failure
    from hastack.crm.state import resource_states
    from hastack.crm.transition import plan

    name = "<stdin>" if args.xml_file == "-" else args.xml_file
    try:
        data = sys.stdin.buffer.read() if args.xml_file == "-" else Path(name).read_bytes()
        cib = read_cib(data, source=name)
    except OSError as exc:
        print(f"hastack {command}: {name}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except CibError as exc:
        for problem in exc.problems:
            print(f"hastack {command}: {problem}", file=sys.stderr)
        return 1
    try:
        failures = {f.key: f for f in map(parse_op_failure, getattr(args, "op_fail", []))}
        for node in getattr(args, "node_fail", []):
            cib = fail_node(cib, node)
        now = _now(args, dict(cib.extra))
    except (SimulationError, ValueError) as exc:
        print(f"hastack {command}: {exc}", file=sys.stderr)
        return 2
    try:
        before = resource_states(cib, now=now)
        placement = place(cib, before, now=now)
        # as crm_simulate: a change only in private parameters is not a change
        transition = plan(cib, before, placement, now, sanitized=True)
    except PlacementUnsupported as exc:
        print(f"hastack {command}: {name}: {exc}", file=sys.stderr)
        return EXIT_UNSUPPORTED
    except RuleError as exc:
        print(f"hastack {command}: {name}: {exc}", file=sys.stderr)
        return 1
    return Scheduled(cib, now, before, placement, transition, failures)


def run(args: argparse.Namespace) -> int:
    from hastack.crm.cib.xml import write_cib
    from hastack.crm.simulate import apply
    from hastack.crm.state import resource_states

    scheduled = schedule(args, "simulate")
    if isinstance(scheduled, int):
        return scheduled
    cib, now, before = scheduled.cib, scheduled.now, scheduled.before
    placement, transition, failures = (
        scheduled.placement,
        scheduled.transition,
        scheduled.failures,
    )
    graph = None
    if args.json or args.save_dotfile:
        graph = _graph(scheduled)
        if isinstance(graph, int):
            return graph
    if args.save_dotfile and graph is not None:
        try:
            Path(args.save_dotfile).write_text(graph.to_dot())
        except OSError as exc:
            print(
                f"hastack simulate: cannot write {args.save_dotfile}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1
    after_cib = apply(cib, transition, failures, now)
    after = resource_states(after_cib, now=now)
    if args.save_output:
        try:
            Path(args.save_output).write_bytes(write_cib(after_cib))
        except OSError as exc:
            print(
                f"hastack simulate: cannot write {args.save_output}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return 1
    if args.json:
        document = _as_json(cib, after, transition, graph, scheduled.placement.final)
        print(json.dumps(document, indent=2))
        return 0
    print("Current cluster status:")
    _print_state(cib, before)
    if args.show_scores:
        print("\nAllocation scores:")
        for rsc in placement.order:
            for node, total in sorted(placement.totals.get(rsc, {}).items()):
                detail = parts_text(placement.scores.get(rsc, {}).get(node, ()))
                suffix = f"  ({detail})" if detail else ""
                print(f"  {rsc} on {node}: {score_text(total)}{suffix}")
    print("\nTransition:")
    if not transition.actions:
        print("  nothing to do")
    for action in transition.actions:
        print(f"  * {action.name}: {action.reason}")
    print("\nRevised cluster status:")
    _print_state(after_cib, after)
    return 0


def _graph(scheduled: Scheduled) -> Any:
    """The transition's ordering graph, or the exit status after saying why there is none."""
    from hastack.crm.graph import GraphCycle, order

    try:
        return order(scheduled.cib, scheduled.before, scheduled.placement, scheduled.transition)
    except GraphCycle as exc:
        print(
            f"hastack simulate: {scheduled.cib.source.source}: the transition's {exc} "
            "(a scheduler bug; please report it with this CIB)",
            file=sys.stderr,
        )
        return EXIT_CYCLE


def parts_text(parts: Any) -> str:
    """A score's parts as ``location l1 +100, resource-stickiness +50``."""
    return ", ".join(f"{what} {score:+d}" for what, score in parts)


def score_text(value: int) -> str:
    from hastack.crm.cib.model import INFINITY

    if value >= INFINITY:
        return "INFINITY"
    if value <= -INFINITY:
        return "-INFINITY"
    return str(value)


def _print_state(cib: Any, state: Any) -> None:
    for node in sorted(state.nodes.values(), key=lambda n: n.name):
        print(f"  Node {node.name}: {node.label}")
    for primitive in cib.all_primitives():
        entries = [e for e in state.of(primitive.id) if e.role.active or e.failed]
        agent = cib.expand_template(primitive).agent
        if not entries:
            print(f"  {primitive.id} ({agent}): Stopped")
        for e in sorted(entries, key=lambda e: e.node):
            role = "FAILED" if e.failed else e.role.value
            print(f"  {e.id} ({agent}): {role} {e.node}")


def _as_json(
    cib: Any,
    after: Any,
    transition: Any,
    graph: Any = None,
    scheduled_final: Any = None,
) -> dict[str, Any]:
    """The issue's format: final placement keyed by primitive id, each list sorted by node (a
    stopped resource: an empty list), the actions as crm_simulate's dot output names them, and
    the ordering edges between them (``[before, after]`` pairs, sorted)."""
    placement: dict[str, list[dict[str, str]]] = {}
    for primitive in cib.all_primitives():
        entries = after.of(primitive.id)
        # a globally-unique clone's instances each under their own name (rsc:N), as the
        # scheduler placed them; an anonymous clone's together under the primitive's id
        unique = sorted(
            (k for k in (scheduled_final or {}) if k.startswith(f"{primitive.id}:")),
            key=lambda k: (len(k), k),  # rsc:2 before rsc:10
        )
        keys = unique or [primitive.id]
        for key in keys:
            active = [
                e
                for e in entries
                if e.role.active and not e.orphan and (key == primitive.id or e.id == key)
            ]
            placement[key] = [
                {"node": e.node, "role": e.role.value} for e in sorted(active, key=lambda e: e.node)
            ]
    document: dict[str, Any] = {
        "placement": placement,
        "actions": sorted(a.name for a in transition.actions),
    }
    if graph is not None:
        document["edges"] = [[before, after] for before, after in graph.edges]
    return document
