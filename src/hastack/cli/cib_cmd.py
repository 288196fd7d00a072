"""`hastack cib verify|show FILE`: check a cib.xml as crm_verify does, and summarize it (the
edits are in cib_edit_cmd)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from hastack.cli.common import add_json_arg


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cib",
        help="check, show and edit a Pacemaker CIB (cib.xml)",
        description="Check, show and edit a Pacemaker Cluster Information Base file "
        "(cib.xml), as crm_verify, cibadmin, crm_attribute and crm_resource do with CIB_file.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    verify = actions.add_parser(
        "verify",
        help="validate a CIB as crm_verify -x does",
        description="Validate a CIB file as `crm_verify -x` does: against the Pacemaker "
        "schema its validate-with names (Debian's pacemaker-schemas in /usr/share/pacemaker), "
        "then the checks the schema cannot make (duplicate ids and operations, constraints "
        "naming missing resources, bad intervals, on-fail and target-role values, fencing "
        "enabled without a fencing device). Exit status: 0 valid (warnings allowed), 1 not "
        "valid or not readable.",
    )
    verify.add_argument("file", metavar="FILE", help="the CIB file, or - for standard input")
    verify.add_argument(
        "--schema-dir",
        metavar="DIR",
        default="/usr/share/pacemaker",
        help="where the pacemaker-*.rng schemas are (/usr/share/pacemaker)",
    )
    add_json_arg(verify)
    verify.set_defaults(func=run_verify)

    show = actions.add_parser(
        "show",
        help="summarize a CIB: options, nodes, resources, constraints, status",
        description="Summarize a CIB file: cluster options, nodes and their attributes, the "
        "resource tree, constraints and the status section (each node's state and each "
        "resource's operation history).",
    )
    show.add_argument("file", metavar="FILE", help="the CIB file, or - for standard input")
    add_json_arg(show)
    show.set_defaults(func=run_show)

    from hastack.cli import cib_edit_cmd

    cib_edit_cmd.register(actions)


def _read(file: str) -> tuple[bytes | None, str]:
    """The file's bytes (None after printing why it cannot be read) and its name."""
    if file == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    try:
        return Path(file).read_bytes(), file
    except OSError as exc:
        print(f"hastack cib: {file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return None, file


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def run_verify(args: argparse.Namespace) -> int:
    from hastack.crm.cib.validate import is_valid, validate

    data, name = _read(args.file)
    if data is None:
        return 1
    problems = validate(data, name, Path(args.schema_dir))
    valid = is_valid(problems)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    if args.json:
        document = {
            "file": name,
            "valid": valid,
            "errors": errors,
            "warnings": warnings,
            "problems": [p.as_dict() for p in problems],
        }
        print(json.dumps(document, indent=2))
    else:
        for problem in problems:
            print(problem)
        if valid:
            print(f"{name}: valid" + (f" ({_count(warnings, 'warning')})" if warnings else ""))
        else:
            print(f"{name}: not valid: {_count(errors, 'error')}, {_count(warnings, 'warning')}")
    return 0 if valid else 1


# --- show ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A model object as JSON-ready data, without source lines and empty or None fields."""
    if is_dataclass(value) and not isinstance(value, type):
        result: dict[str, Any] = {}
        for f in fields(value):
            if f.name in ("line", "unknown", "source"):
                continue
            item = getattr(value, f.name)
            if item is None or item == () or item == {}:
                continue
            result[f.name] = _plain(item)
        return result
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _agent(p: Any) -> str:
    if getattr(p, "template", None):
        return f"@{p.template}"
    parts = [p.cls, p.provider, p.type] if p.provider else [p.cls, p.type]
    return ":".join(str(x) for x in parts)


def _pairs_text(sets: tuple[Any, ...]) -> str:
    from hastack.crm.cib.model import flatten

    pairs = flatten(sets)
    return " ".join(f"{k}={v}" for k, v in pairs.items())


def _resource_lines(resource: Any, indent: str = "  ") -> list[str]:
    from hastack.crm.cib.model import Bundle, Clone, Group, Primitive, Template

    meta = _pairs_text(resource.meta) if hasattr(resource, "meta") else ""
    suffix = f"  [{meta}]" if meta else ""
    if isinstance(resource, Primitive | Template):
        kind = "template" if isinstance(resource, Template) else "primitive"
        params = _pairs_text(resource.instance_attributes)
        ops = ", ".join(
            f"{op.name}"
            + (f"/{op.interval}" if op.interval not in (None, "0", "0s") else "")
            + (f" ({op.role})" if op.role else "")
            for op in resource.ops
        )
        lines = [f"{indent}{kind} {resource.id} ({_agent(resource)}){suffix}"]
        if params:
            lines.append(f"{indent}    params: {params}")
        if ops:
            lines.append(f"{indent}    ops: {ops}")
        return lines
    if isinstance(resource, Group):
        lines = [f"{indent}group {resource.id}{suffix}"]
        for child in resource.children:
            lines.extend(_resource_lines(child, indent + "  "))
        return lines
    if isinstance(resource, Clone):
        kind = "promotable clone" if resource.promotable else "clone"
        if resource.legacy_master:
            kind = "promotable clone (legacy <master>)"
        return [
            f"{indent}{kind} {resource.id}{suffix}",
            *_resource_lines(resource.child, indent + "  "),
        ]
    if isinstance(resource, Bundle):
        kind = resource.container_kind or "?"
        lines = [f"{indent}bundle {resource.id} ({kind}){suffix}"]
        if resource.primitive is not None:
            lines.extend(_resource_lines(resource.primitive, indent + "  "))
        return lines
    return [f"{indent}{type(resource).__name__} {getattr(resource, 'id', '?')}"]


def _sets_text(sets: tuple[Any, ...]) -> str:
    return " ".join(
        "("
        + " ".join(s.resources)
        + (f" {s.action}" if s.action else "")
        + (f" role={s.role}" if s.role else "")
        + ")"
        for s in sets
    )


def _constraint_line(c: Any) -> str:
    from hastack.crm.cib.model import RscColocation, RscLocation, RscOrder, RscTicket

    if isinstance(c, RscLocation):
        what = c.rsc or (f"pattern {c.rsc_pattern}" if c.rsc_pattern else _sets_text(c.sets))
        role = f" ({c.role})" if c.role else ""
        if c.node is not None:
            return f"location {c.id}: {what}{role} on {c.node}: {c.score}"
        rules = "; ".join(f"rule {r.id} score {r.score or r.score_attribute}" for r in c.rules)
        return f"location {c.id}: {what}{role}: {rules}"
    if isinstance(c, RscColocation):
        if c.sets:
            return f"colocation {c.id}: {_sets_text(c.sets)}: {c.score}"
        rsc = c.rsc + (f" ({c.rsc_role})" if c.rsc_role else "")
        with_rsc = f"{c.with_rsc}" + (f" ({c.with_rsc_role})" if c.with_rsc_role else "")
        return f"colocation {c.id}: {rsc} with {with_rsc}: {c.score}"
    if isinstance(c, RscOrder):
        kind = c.kind or ("Mandatory" if c.score is None else f"score {c.score}")
        if c.sets:
            return f"order {c.id}: {_sets_text(c.sets)} ({kind})"
        first = f"{c.first} {c.first_action or 'start'}"
        then = f"{c.then} {c.then_action or c.first_action or 'start'}"
        sym = "" if c.symmetrical is None else f", symmetrical={c.symmetrical}"
        return f"order {c.id}: {first} then {then} ({kind}{sym})"
    if isinstance(c, RscTicket):
        what = c.rsc or _sets_text(c.sets)
        policy = f", loss-policy {c.loss_policy}" if c.loss_policy else ""
        return f"ticket {c.id}: {what} needs ticket {c.ticket}{policy}"
    return f"{type(c).__name__} {getattr(c, 'id', '?')}"


def _history(resource: Any) -> str:
    ops = sorted(resource.ops, key=lambda o: o.call_id_int)
    parts = []
    for op in ops:
        name = op.operation or "?"
        if op.interval_ms:
            name += f"/{op.interval_ms}ms"
        parts.append(f"{name} rc={op.rc_code}")
    return ", ".join(parts)


def _text(cib: Any, name: str) -> str:
    lines = [
        f"{name}: validate-with {cib.validate_with}, epoch "
        f"{cib.admin_epoch}:{cib.epoch}:{cib.num_updates} (admin_epoch:epoch:num_updates)"
    ]
    options = cib.cluster_options()
    lines.append("cluster options: " + (" ".join(f"{k}={v}" for k, v in options.items()) or "-"))
    if cib.rsc_defaults:
        lines.append(f"resource defaults: {_pairs_text(cib.rsc_defaults)}")
    if cib.op_defaults:
        lines.append(f"operation defaults: {_pairs_text(cib.op_defaults)}")
    lines.append(f"\nnodes ({len(cib.nodes)}):")
    for node in cib.nodes:
        attrs = _pairs_text(node.attributes)
        kind = f", {node.type}" if node.type and node.type != "member" else ""
        lines.append(
            f"  {node.uname or node.id} (id {node.id}{kind})" + (f"  {attrs}" if attrs else "")
        )
    primitives = len(cib.all_primitives())
    lines.append(f"\nresources ({primitives} primitives):")
    for resource in cib.resources:
        lines.extend(_resource_lines(resource))
    lines.append(f"\nconstraints ({len(cib.constraints)}):")
    lines.extend(f"  {_constraint_line(c)}" for c in cib.constraints)
    if cib.tags:
        lines.append(f"\ntags ({len(cib.tags)}):")
        lines.extend(f"  {tag.id}: {' '.join(tag.refs)}" for tag in cib.tags)
    lines.append(f"\nstatus ({len(cib.status)} nodes):")
    for state in cib.status:
        lines.append(
            f"  {state.uname or state.id}: in_ccm={state.in_ccm} crmd={state.crmd} "
            f"join={state.join} expected={state.expected}"
        )
        if state.transient:
            lines.append(f"    attributes: {_pairs_text(state.transient)}")
        for resource in state.lrm_resources:
            lines.append(f"    {resource.id}: {_history(resource)}")
    return "\n".join(lines)


def _json(cib: Any, name: str) -> dict[str, Any]:
    from hastack.crm.cib.model import flatten

    def kind(obj: Any) -> str:
        return type(obj).__name__

    return {
        "file": name,
        "validate_with": cib.validate_with,
        "admin_epoch": cib.admin_epoch,
        "epoch": cib.epoch,
        "num_updates": cib.num_updates,
        "cluster_options": cib.cluster_options(),
        "rsc_defaults": flatten(cib.rsc_defaults),
        "op_defaults": flatten(cib.op_defaults),
        "nodes": [_plain(n) for n in cib.nodes],
        "resources": [{"kind": kind(r), **_plain(r)} for r in cib.resources],
        "constraints": [{"kind": kind(c), **_plain(c)} for c in cib.constraints],
        "tags": [_plain(t) for t in cib.tags],
        "status": [_plain(s) for s in cib.status],
    }


def run_show(args: argparse.Namespace) -> int:
    from hastack.crm.cib.model import CibError
    from hastack.crm.cib.xml import read_cib

    data, name = _read(args.file)
    if data is None:
        return 1
    try:
        cib = read_cib(data, source=name)
    except CibError as exc:
        for problem in exc.problems:
            print(f"hastack cib: {problem}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(_json(cib, name), indent=2))
    else:
        print(_text(cib, name))
    return 0
