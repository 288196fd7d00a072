"""`hastack explain RESOURCE -x CIB`: why the scheduler puts one resource where it does.

For the resource (a primitive, or each member of a group): where it runs now and what decided
that (the operation in its history), every node's score with the parts it is made of (the
location constraint, stickiness, colocation, failure or attribute that added each), where it
runs after the transition and why it does not run where it would score best, and every action
the transition takes on it with its reason — what Pacemaker's users get only by replaying
pe-input files through crm_simulate by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hastack.cli.common import add_json_arg
from hastack.cli.simulate_cmd import Scheduled, schedule


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show why the scheduler places a resource where it does",
        description="For one resource of a CIB (a primitive, or every member of a group): its "
        "state now and the operation that decided it, each node's score with its parts, "
        "where it runs after the transition and why, and the transition's actions on it with "
        "their reasons. Exit status: 0 done, 1 the CIB cannot be read, 2 no such resource, "
        "3 the CIB uses something the scheduler does not handle yet.",
    )
    parser.add_argument("resource", metavar="RESOURCE", help="a primitive or group id")
    parser.add_argument(
        "-x", "--xml-file", metavar="CIB", required=True, help="the CIB file, or - for stdin"
    )
    parser.add_argument(
        "-t", "--date", metavar="WHEN", help="the time to schedule at (as hastack simulate)"
    )
    add_json_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hastack.crm.cib.model import Clone, Group

    scheduled = schedule(args, "explain")
    if isinstance(scheduled, int):
        return scheduled
    cib = scheduled.cib
    groups: dict[str, list[str]] = {}  # groups and clones -> their primitives
    for r in cib.resources:
        inner = r.child if isinstance(r, Clone) else r
        if isinstance(inner, Group):
            groups[inner.id] = [c.id for c in inner.children]
        if inner is not r:
            groups[r.id] = groups.get(inner.id, [inner.id])
    primitives = [p.id for p in cib.all_primitives()]
    if args.resource in groups:
        members = groups[args.resource]
    elif args.resource in primitives:
        members = [args.resource]
    else:
        known = ", ".join(sorted(primitives + list(groups))) or "none"
        print(
            f"hastack explain: no resource {args.resource!r} in {args.xml_file} "
            f"(its primitives, groups and clones: {known})",
            file=sys.stderr,
        )
        return 2
    explained = [_explain(scheduled, rsc) for rsc in members]
    if args.json:
        print(json.dumps(explained if len(explained) > 1 else explained[0], indent=2))
        return 0
    for item in explained:
        _print(item)
    return 0


def _explain(s: Scheduled, rsc: str) -> dict[str, Any]:
    placement = s.placement
    now = [
        {"node": e.node, "role": e.role.value, "failed": e.failed, "decided_by": e.reason}
        for e in sorted(s.before.of(rsc), key=lambda e: e.node)
        if e.role.active or e.failed
    ]
    scores = {
        node: {
            "total": placement.totals.get(rsc, {}).get(node),
            "parts": [[what, score] for what, score in parts],
        }
        for node, parts in placement.scores.get(rsc, {}).items()
    }
    final = list(placement.final.get(rsc, ()))
    if final:
        why = f"assigned to {placement.assigned.get(rsc) or final[0]}"
        if rsc in placement.reasons:
            why += f" ({placement.reasons[rsc]})"
    else:
        why = placement.reasons.get(rsc) or "no node may run it (every score is negative)"
    instances = sorted(
        (k for k in placement.assigned if k.startswith(f"{rsc}:")),
        key=lambda k: (len(k), k),
    )
    mine = {rsc, *instances}
    actions = [
        {"action": a.name, "reason": a.reason} for a in s.transition.actions if a.rsc in mine
    ]
    item: dict[str, Any] = {
        "resource": rsc,
        "now": now,
        "scores": scores,
        "after": final,
        "why": why,
        "unmanaged": rsc in placement.unmanaged,
        "actions": actions,
    }
    if instances:
        # a clone's instances are placed one by one, each with its own scores
        item["instances"] = [
            {
                "instance": k,
                "assigned": placement.assigned.get(k),
                "role": placement.roles.get(k if k in placement.roles else rsc, {}).get(
                    placement.assigned.get(k) or ""
                ),
                "scores": {
                    node: {
                        "total": placement.totals.get(k, {}).get(node),
                        "parts": [[what, score] for what, score in parts],
                    }
                    for node, parts in placement.scores.get(k, {}).items()
                },
            }
            for k in instances
        ]
        roles = placement.roles.get(rsc, {})
        item["after"] = [f"{n} ({roles[n]})" if n in roles else n for n in final]
        if final:
            item["why"] = "placed instance by instance"
        for key in instances:
            for node in placement.final.get(key, ()):  # a globally-unique clone's
                role = placement.roles.get(key, {}).get(node)
                item["after"].append(f"{node} ({key}{', ' + role if role else ''})")
    return item


def _print(item: dict[str, Any]) -> None:
    from hastack.cli.simulate_cmd import parts_text, score_text

    print(f"{item['resource']}:")
    if item["now"]:
        for entry in item["now"]:
            role = "FAILED" if entry["failed"] else entry["role"]
            print(f"  now: {role} on {entry['node']} (decided by {entry['decided_by']})")
    else:
        print("  now: stopped everywhere")
    if item["unmanaged"]:
        print("  unmanaged: the cluster leaves it as it is")

    def print_scores(scores: dict[str, Any], indent: str) -> None:
        ranked = sorted(scores.items(), key=lambda kv: (-(kv[1]["total"] or 0), kv[0]))
        for node, score in ranked:
            total = "-" if score["total"] is None else score_text(score["total"])
            parts = parts_text(score["parts"]) or "nothing"
            print(f"{indent}{node}: {total}  = {parts}")

    if "instances" in item:
        for inst in item["instances"]:
            where = inst["assigned"] or "nowhere"
            role = f" as {inst['role']}" if inst["role"] else ""
            print(f"  instance {inst['instance']}: placed on {where}{role}; scores:")
            print_scores(inst["scores"], "    ")
    else:
        print("  scores:")
        print_scores(item["scores"], "    ")
    after = ", ".join(item["after"]) or "nowhere"
    print(f"  after the transition: on {after} — {item['why']}")
    for action in item["actions"]:
        print(f"  action {action['action']}: {action['reason']}")
    if not item["actions"]:
        print("  no action")
