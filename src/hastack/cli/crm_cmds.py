"""`hastack resource|constraint|property|standby|takeover` (and, through node_cmd, `hastack
node standby|unstandby|maintenance|attribute|list`): the operator's commands on the CIB.

Every change is an operation of :mod:`hastack.crm.operations` (a JSON-able dict). It reaches
the CIB one of two ways:

- a CIB file, with ``-f/--cib-file FILE`` or ``$CIB_file`` (as Pacemaker's tools): the file
  is locked, edited all or nothing and replaced atomically, as ``hastack cib`` does;
- otherwise the local node daemon, through its control socket (found from ``-c/--config DIR``
  and ``--node``, as ``hastack status`` finds it), which forwards to the DC. The requests are
  ``{"cmd": "cib-query"}``, ``{"cmd": "cib-apply", "operation": {...}}`` and, for restart,
  cleanup and refresh, ``{"cmd": "resource-request", "operation": {...}}``.

``--dry-run`` applies the operation to a copy of the CIB and prints the unified diff and the
transition the scheduler would compute for the result; nothing changes. Reads take ``--json``.
Exit status: 0 done, 1 refused or failed (the reason on stderr, nothing changed), 2 bad
command line.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hastack.cli.common import add_json_arg
from hastack.cli.render import table

DEFAULT_CONFIG_DIR = "/etc/ha.d"
EXIT_USAGE = 2


class Refused(Exception):
    """The command cannot be carried out; the message says why (exit status 1)."""


class Usage(Exception):
    """A bad command line the parser could not catch (exit status 2)."""


# --------------------------------------------------------------------------------------------
# Where the CIB is


def add_target_args(parser: argparse.ArgumentParser) -> None:
    """-f/--cib-file, or -c/--config and --node for the local daemon's control socket."""
    parser.add_argument(
        "-f",
        "--cib-file",
        metavar="FILE",
        help="edit this CIB file (default: $CIB_file) instead of the running cluster's CIB",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="DIR",
        help=f"configuration directory of the local node (default: {DEFAULT_CONFIG_DIR})",
    )
    parser.add_argument(
        "--node",
        dest="local_node",
        metavar="NAME",
        help="the local node's name, to find its daemon (default: `uname -n`)",
    )


def add_write_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="show the CIB diff and the transition it would cause; change nothing",
    )


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Target:
    """A CIB file, or the local daemon's control socket."""

    path: Path | None = None
    socket: Path | None = None
    local_node: str | None = None

    @property
    def name(self) -> str:
        return str(self.path) if self.path is not None else f"the cluster (via {self.socket})"


def resolve_target(args: argparse.Namespace) -> Target:
    from hastack.cli.cib_edit_cmd import CIB_FILE_VARIABLE

    name = getattr(args, "cib_file", None) or os.environ.get(CIB_FILE_VARIABLE)
    if name:
        return Target(path=Path(name), local_node=getattr(args, "local_node", None))
    config_dir = getattr(args, "config", None) or DEFAULT_CONFIG_DIR
    no_cib = (
        "no CIB to work on: give a CIB file with -f FILE (or set CIB_file), or reach the "
        "running cluster through the local node daemon with -c CONFIG_DIR [--node NAME]"
    )
    if not Path(config_dir, "ha.cf").is_file():
        raise Refused(f"{no_cib} ({config_dir}/ha.cf does not exist)")
    from hastack.config.errors import ConfigError
    from hastack.daemon.node import check_node, default_node_name, load, resolve_run_dir
    from hastack.daemon.rundir import NodeRunDir

    try:
        config = load(config_dir)
    except ConfigError as exc:
        first = exc.problems[0] if exc.problems else "unreadable"
        raise Refused(f"{config_dir}: {first}") from None
    node = getattr(args, "local_node", None) or default_node_name()
    problem = check_node(config, node)
    if problem is not None:
        raise Refused(problem)
    return Target(socket=NodeRunDir(resolve_run_dir(config), node).control_path, local_node=node)


def _ask(target: Target, request: dict[str, Any]) -> dict[str, Any]:
    from hastack.daemon.control import ControlError, query

    assert target.socket is not None
    try:
        answer = query(target.socket, request)
    except (FileNotFoundError, ConnectionRefusedError):
        raise Refused(
            f"the node daemon is not running (no control socket at {target.socket}): start it "
            "with `hastack node start`, or edit a CIB file with -f FILE (or CIB_file)"
        ) from None
    except (ControlError, OSError) as exc:
        raise Refused(f"cannot reach the node daemon at {target.socket}: {exc}") from None
    if not isinstance(answer, dict):
        raise Refused(f"the node daemon answered nonsense: {answer!r}")
    if "error" in answer:
        raise Refused(str(answer["error"]))
    return answer


def read_cib(target: Target) -> bytes:
    """The CIB's bytes, from the file or the daemon."""
    if target.path is not None:
        from hastack.crm.cib.xml import decompress

        try:
            return decompress(target.path.read_bytes())
        except OSError as exc:
            raise Refused(f"{target.path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise Refused(f"{target.path}: {exc}") from None
    answer = _ask(target, {"cmd": "cib-query"})
    cib = answer.get("cib")
    if not isinstance(cib, str):
        raise Refused("the node daemon's cib-query answer has no CIB")
    return cib.encode()


def parse_tree(data: bytes, source: str) -> Any:
    from lxml import etree

    try:
        root = etree.fromstring(
            data, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        )
    except etree.XMLSyntaxError as exc:
        raise Refused(f"{source}: not well-formed XML: {exc.msg}") from None
    if root.tag != "cib":
        raise Refused(f"{source}: the root element is <{root.tag}>, not <cib>")
    return root


RUNTIME = ("resource-restart", "resource-cleanup", "resource-refresh")


def apply(target: Target, operation: dict[str, Any], dry_run: bool) -> str:
    """Carry out one operation (or preview it); return the line to print."""
    from hastack.crm.cib.edit import EditError, apply_edit
    from hastack.crm.operations import operation_edit, validate_operation

    try:
        validate_operation(operation)
    except EditError as exc:
        raise Refused(str(exc)) from None
    now = _now()
    if operation["op"] == "resource-restart":
        if target.path is not None:
            raise Refused("restart is done by the running cluster: it cannot act on a CIB file")
        if dry_run:
            raise Refused("restart changes no configuration: there is nothing to preview")
        return str(_ask(target, {"cmd": "resource-request", "operation": operation})["summary"])
    if dry_run:
        data = read_cib(target)
        try:
            result = apply_edit(data, target.name, operation_edit(operation, now))
        except EditError as exc:
            raise Refused(str(exc)) from None
        _print_preview(target.name, data, result.data, now)
        return f"{result.summary} (dry run: nothing changed)"
    if target.path is None:
        cmd = "resource-request" if operation["op"] in RUNTIME else "cib-apply"
        answer = _ask(target, {"cmd": cmd, "operation": operation})
        summary = str(answer.get("summary", "done"))
        epoch = answer.get("epoch")
        if isinstance(epoch, list) and len(epoch) == 3:
            summary += f" (version {'.'.join(str(v) for v in epoch)})"
        return summary
    return _apply_file(target.path, operation, now)


def _apply_file(path: Path, operation: dict[str, Any], now: datetime) -> str:
    from hastack.cli.cib_edit_cmd import _locked
    from hastack.crm.cib.edit import EditError, apply_edit
    from hastack.crm.cib.xml import BZIP2_MAGIC
    from hastack.crm.operations import operation_edit
    from hastack.fileio import write_atomically

    try:
        with _locked(path) as handle:
            data = handle.read()
            if data.startswith(BZIP2_MAGIC):
                raise Refused(f"{path} is compressed (a saved scheduler input): edit a copy")
            try:
                result = apply_edit(data, str(path), operation_edit(operation, now))
            except EditError as exc:
                raise Refused(str(exc)) from None
            if result.changed:
                write_atomically(path, result.data)
    except OSError as exc:
        raise Refused(f"{path}: {exc.strerror or exc}") from None
    for problem in result.new_problems:
        print(f"warning: {problem}", file=sys.stderr)
    admin_epoch, epoch, updates = result.epoch
    return f"{path}: {result.summary} (version {admin_epoch}.{epoch}.{updates})"


def _print_preview(source: str, before: bytes, after: bytes, now: datetime) -> None:
    sys.stdout.writelines(
        difflib.unified_diff(
            before.decode(errors="replace").splitlines(keepends=True),
            after.decode(errors="replace").splitlines(keepends=True),
            f"{source} (now)",
            f"{source} (after)",
        )
    )
    print("Transition:")
    try:
        actions = transition_actions(after, now)
    except Refused as exc:
        print(f"  (cannot compute: {exc})")
        return
    if not actions:
        print("  nothing to do")
    for line in actions:
        print(f"  * {line}")


def transition_actions(data: bytes, now: datetime) -> list[str]:
    """The actions the scheduler computes for a CIB (``name: reason``), as hastack simulate
    runs the stages: state, placement, transition."""
    from hastack.crm.cib.model import CibError
    from hastack.crm.cib.xml import read_cib as read_model
    from hastack.crm.placement import PlacementUnsupported, place
    from hastack.crm.rules import RuleError
    from hastack.crm.state import resource_states
    from hastack.crm.transition import plan

    try:
        cib = read_model(data, source="the CIB")
        when = now.timestamp()
        before = resource_states(cib, now=when)
        placement = place(cib, before, now=when)
        transition = plan(cib, before, placement, when, sanitized=True)
    except CibError as exc:
        raise Refused(str(exc.problems[0]) if exc.problems else "unreadable CIB") from None
    except (PlacementUnsupported, RuleError, ValueError) as exc:
        raise Refused(str(exc)) from None
    return [f"{a.name}: {a.reason}" for a in transition.actions]


def run_guarded(command: str, body: Callable[[], int]) -> int:
    """Run a command's body, turning Refused into exit 1 and Usage into exit 2."""
    try:
        return body()
    except Refused as exc:
        print(f"hastack {command}: {exc}", file=sys.stderr)
        return 1
    except Usage as exc:
        print(f"hastack {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def change(args: argparse.Namespace, operation: dict[str, Any]) -> int:
    """Apply (or preview) one operation and print its summary."""

    def body() -> int:
        target = resolve_target(args)
        print(apply(target, operation, getattr(args, "dry_run", False)))
        return 0

    return run_guarded(args.command_name, body)


def read_root(args: argparse.Namespace) -> tuple[Any, Target]:
    target = resolve_target(args)
    return parse_tree(read_cib(target), target.name), target


def pairs(words: Sequence[str], what: str, allow_empty: bool = False) -> dict[str, Any]:
    """NAME=VALUE words as a dict (NAME= is None when `allow_empty`: delete it)."""
    result: dict[str, Any] = {}
    for word in words:
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise Usage(f"{what} {word!r}: write NAME=VALUE")
        result[name] = None if (allow_empty and value == "") else value
    return result


def op_specs(texts: Sequence[str]) -> list[dict[str, str]]:
    """``--op "monitor interval=10s timeout=20s"`` values as operation dicts."""
    specs = []
    for text in texts:
        words = text.split()
        if not words or "=" in words[0]:
            raise Usage(f"--op {text!r}: write NAME [ATTR=VALUE ...], e.g. 'monitor interval=10s'")
        spec = {"name": words[0], **pairs(words[1:], "--op attribute")}
        specs.append(spec)
    return specs


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, sort_keys=True))


# --------------------------------------------------------------------------------------------
# hastack resource


def register_resource(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "resource",
        help="create, change, move and inspect resources (crm_resource, pcs resource)",
        description="Create, delete, update, list, show, move, ban, clear, clean up, refresh, "
        "enable, disable, manage, unmanage and restart resources, in a CIB file (-f) or in "
        "the running cluster (through the local node daemon).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def sub(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Any:
        p = actions.add_parser(name, help=help_text, description=help_text)
        add_target_args(p)
        p.set_defaults(func=func, command_name=f"resource {name}")
        return p

    p = sub("create", "create a primitive (optionally in a group or a clone)", run_create)
    p.add_argument("id", metavar="ID", help="the new resource's id")
    p.add_argument(
        "agent", metavar="AGENT", help="class[:provider]:type, e.g. ocf:heartbeat:IPaddr2"
    )
    p.add_argument("params", metavar="NAME=VALUE", nargs="*", help="instance attributes")
    p.add_argument("--meta", metavar="NAME=VALUE", action="append", default=[], help="meta")
    p.add_argument(
        "--op",
        metavar="'NAME ATTR=VALUE...'",
        action="append",
        default=[],
        help="an operation, e.g. 'monitor interval=10s timeout=20s'; repeatable",
    )
    p.add_argument("--group", metavar="GROUP", help="add it to this group (made if missing)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--before", metavar="MEMBER", help="place it before this group member")
    where.add_argument("--after", metavar="MEMBER", help="place it after this group member")
    clone = p.add_mutually_exclusive_group()
    clone.add_argument("--clone", action="store_true", help="wrap it in a clone")
    clone.add_argument("--promotable", action="store_true", help="wrap it in a promotable clone")
    p.add_argument("--clone-id", metavar="ID", help="the clone's id (default: ID-clone)")
    add_write_args(p)

    p = sub("delete", "delete a resource and the constraints naming it", run_simple)
    p.add_argument("resource", metavar="RESOURCE")
    p.set_defaults(op="resource-delete")
    add_write_args(p)

    p = sub("update", "change parameters, meta-attributes and operations", run_update)
    p.add_argument("resource", metavar="RESOURCE")
    p.add_argument("params", metavar="NAME=VALUE", nargs="*", help="NAME= deletes it")
    p.add_argument("--meta", metavar="NAME=VALUE", action="append", default=[], help="meta")
    p.add_argument("--op", metavar="'NAME ATTR=VALUE...'", action="append", default=[])
    p.add_argument("--remove-op", metavar="'NAME interval=I'", action="append", default=[])
    add_write_args(p)

    p = sub("list", "list the resources and where they run", run_list)
    add_json_arg(p)
    p = sub("show", "show one resource's definition and state", run_show)
    p.add_argument("resource", metavar="RESOURCE")
    add_json_arg(p)

    for name, verb in (
        ("move", "move a resource to NODE (or away from where it runs)"),
        ("ban", "keep a resource off NODE (default: where it runs)"),
    ):
        p = sub(name, verb, run_move)
        p.add_argument("resource", metavar="RESOURCE")
        p.add_argument("target_node", metavar="NODE", nargs="?")
        # An operator's pin is transient by default: it goes once the move has happened
        # (or when its lifetime ends); --permanent is crm_resource's plain constraint.
        how = p.add_mutually_exclusive_group()
        how.add_argument(
            "-u",
            "--lifetime",
            metavar="DURATION",
            help="ISO 8601 duration, e.g. PT10M: the constraint ends then",
        )
        how.add_argument(
            "--until-moved",
            action="store_true",
            help="remove the constraint once the move has happened (the default)",
        )
        how.add_argument(
            "--permanent",
            action="store_true",
            help="keep the constraint until `hastack resource clear` (crm_resource's default)",
        )
        p.add_argument("--promoted", action="store_true", help="the promoted role only")
        if name == "move":
            p.add_argument("--force", action="store_true", help="also ban the node it runs on now")
        p.set_defaults(op=f"resource-{name}")
        add_write_args(p)

    p = sub("clear", "remove the moves and bans of a resource", run_clear)
    p.add_argument("resource", metavar="RESOURCE")
    p.add_argument("target_node", metavar="NODE", nargs="?", help="only those on this node")
    p.add_argument("--expired", action="store_true", help="only those whose lifetime ended")
    add_write_args(p)

    for name, help_text in (
        ("cleanup", "forget a resource's failures (fail counts and failed operations)"),
        ("refresh", "forget a resource's history so that it is probed again"),
    ):
        p = sub(name, help_text, run_cleanup)
        p.add_argument("resource", metavar="RESOURCE", nargs="?", help="default: all")
        p.add_argument("-N", "--on", metavar="NODE", help="only on this node")
        if name == "cleanup":
            p.add_argument("--operation", metavar="OP", help="only this operation's failures")
            p.add_argument("--interval", metavar="I", help="only the operation with this interval")
        p.set_defaults(op=f"resource-{name}")
        add_write_args(p)

    for name, op in (
        ("enable", "resource-enable"),
        ("disable", "resource-disable"),
        ("manage", "resource-manage"),
        ("unmanage", "resource-unmanage"),
    ):
        p = sub(name, f"{name} a resource", run_simple)
        p.add_argument("resource", metavar="RESOURCE")
        p.set_defaults(op=op)
        add_write_args(p)

    p = sub("restart", "stop and start a resource where it runs (running cluster)", run_restart)
    p.add_argument("resource", metavar="RESOURCE")
    p.add_argument("-N", "--on", metavar="NODE", help="only on this node")


def run_simple(args: argparse.Namespace) -> int:
    return change(args, {"op": args.op, "resource": args.resource})


def run_create(args: argparse.Namespace) -> int:
    def body() -> int:
        op: dict[str, Any] = {"op": "resource-create", "id": args.id, "agent": args.agent}
        if args.params:
            op["params"] = pairs(args.params, "parameter")
        if args.meta:
            op["meta"] = pairs(args.meta, "--meta")
        if args.op:
            op["ops"] = op_specs(args.op)
        for key in ("group", "before", "after", "clone_id"):
            if getattr(args, key):
                op[key] = getattr(args, key)
        if args.clone:
            op["clone"] = True
        if args.promotable:
            op["promotable"] = True
        return change(args, op)

    return run_guarded(args.command_name, body)


def run_update(args: argparse.Namespace) -> int:
    def body() -> int:
        op: dict[str, Any] = {"op": "resource-update", "resource": args.resource}
        if args.params:
            op["params"] = pairs(args.params, "parameter", allow_empty=True)
        if args.meta:
            op["meta"] = pairs(args.meta, "--meta", allow_empty=True)
        if args.op:
            op["ops"] = op_specs(args.op)
        if args.remove_op:
            op["remove_ops"] = op_specs(args.remove_op)
        if len(op) == 2:
            raise Usage("nothing to change: give NAME=VALUE, --meta, --op or --remove-op")
        return change(args, op)

    return run_guarded(args.command_name, body)


def run_move(args: argparse.Namespace) -> int:
    op: dict[str, Any] = {"op": args.op, "resource": args.resource}
    if args.target_node:
        op["node"] = args.target_node
    if args.lifetime:
        op["lifetime"] = args.lifetime
    elif not args.permanent:
        op["until_moved"] = True  # transient by default
    for key in ("promoted", "force"):
        if getattr(args, key, False):
            op[key] = True
    return change(args, op)


def run_clear(args: argparse.Namespace) -> int:
    op: dict[str, Any] = {"op": "resource-clear", "resource": args.resource}
    if args.target_node:
        op["node"] = args.target_node
    if args.expired:
        op["expired"] = True
    return change(args, op)


def run_cleanup(args: argparse.Namespace) -> int:
    op: dict[str, Any] = {"op": args.op}
    if args.resource:
        op["resource"] = args.resource
    if args.on:
        op["node"] = args.on
    for key in ("operation", "interval"):
        if getattr(args, key, None):
            op[key] = getattr(args, key)
    return change(args, op)


def run_restart(args: argparse.Namespace) -> int:
    op: dict[str, Any] = {"op": "resource-restart", "resource": args.resource}
    if args.on:
        op["node"] = args.on
    return change(args, op)


def _agent_of(element: Any) -> str:
    cls, provider, type_ = element.get("class"), element.get("provider"), element.get("type")
    if cls is None:
        return f"template {element.get('template')}" if element.get("template") else ""
    return f"{cls}:{provider + ':' if provider else ''}{type_}"


def _nv(element: Any, tag: str) -> dict[str, str]:
    return {
        p.get("name"): p.get("value")
        for s in element.findall(tag)
        for p in s.findall("nvpair")
        if p.get("name") is not None
    }


def _where(root: Any) -> dict[str, list[dict[str, str]]]:
    """Primitive id -> [{node, role, failed}] from the status section (empty when unreadable)."""
    from lxml import etree

    from hastack.crm.cib.model import CibError
    from hastack.crm.cib.xml import read_cib as read_model
    from hastack.crm.state import resource_states

    try:
        state = resource_states(read_model(etree.tostring(root)), now=_now().timestamp())
    except (CibError, ValueError):
        return {}
    where: dict[str, list[dict[str, str]]] = {}
    for entry in state.resources:
        if entry.role.active or entry.failed:
            where.setdefault(entry.primitive, []).append(
                {"node": entry.node, "role": "FAILED" if entry.failed else entry.role.value}
            )
    return where


_TAGS = ("primitive", "group", "clone", "master", "bundle")


def describe_resources(root: Any) -> list[dict[str, Any]]:
    """Every resource (primitives, groups, clones) with its parent, agent, target-role,
    is-managed and, for primitives, where it is active."""
    where = _where(root)
    result = []
    resources = root.find("configuration/resources")
    for element in [] if resources is None else resources.iter(*_TAGS):
        parent = element.getparent()
        meta = _nv(element, "meta_attributes")
        entry: dict[str, Any] = {
            "id": element.get("id"),
            "type": element.tag,
            "parent": parent.get("id") if parent is not None and parent.tag in _TAGS else None,
            "agent": _agent_of(element) if element.tag == "primitive" else None,
            "target_role": meta.get("target-role"),
            "managed": meta.get("is-managed", "true").lower() not in ("false", "no", "off", "0"),
        }
        if element.tag == "primitive":
            entry["active"] = sorted(where.get(element.get("id"), []), key=lambda e: e["node"])
        result.append(entry)
    return result


def run_list(args: argparse.Namespace) -> int:
    def body() -> int:
        root, _ = read_root(args)
        resources = describe_resources(root)
        if args.json:
            _print_json(resources)
            return 0
        rows = []
        for r in resources:
            active = ", ".join(f"{a['role']} {a['node']}" for a in r.get("active", [])) or (
                "Stopped" if r["type"] == "primitive" else ""
            )
            flags = []
            if r["target_role"]:
                flags.append(f"target-role={r['target_role']}")
            if not r["managed"]:
                flags.append("unmanaged")
            rows.append(
                [r["id"], r["type"], r["agent"] or "", r["parent"] or "", active, " ".join(flags)]
            )
        print(table(["RESOURCE", "TYPE", "AGENT", "IN", "STATE", "FLAGS"], rows))
        return 0

    return run_guarded(args.command_name, body)


def run_show(args: argparse.Namespace) -> int:
    def body() -> int:
        import copy

        from lxml import etree

        root, _ = read_root(args)
        found = [e for e in root.iter(*_TAGS) if e.get("id") == args.resource]
        if not found:
            known = sorted(e.get("id") or "" for e in root.iter(*_TAGS))
            raise Refused(
                f"no resource {args.resource!r}; the resources are: {', '.join(known) or 'none'}"
            )
        element = found[0]
        entry = next(r for r in describe_resources(root) if r["id"] == args.resource)
        entry["params"] = _nv(element, "instance_attributes")
        entry["meta"] = _nv(element, "meta_attributes")
        entry["ops"] = [dict(o.attrib) for o in element.iterfind("operations/op")]
        entry["children"] = [c.get("id") for c in element if c.tag in _TAGS]
        entry["constraints"] = [
            c["id"]
            for c in _constraints(root)
            if args.resource in (c.get("rsc"), c.get("with-rsc"), c.get("first"), c.get("then"))
        ]
        if args.json:
            _print_json(entry)
            return 0
        clone = copy.deepcopy(element)
        clone.tail = None
        etree.indent(clone, space="  ")
        print(etree.tostring(clone, encoding="unicode").rstrip())
        active = ", ".join(f"{a['role']} on {a['node']}" for a in entry.get("active", []))
        if element.tag == "primitive":
            print(f"state: {active or 'Stopped'}")
        if entry["constraints"]:
            print(f"constraints: {', '.join(entry['constraints'])}")
        return 0

    return run_guarded(args.command_name, body)


def _constraints(root: Any) -> list[dict[str, Any]]:
    from hastack.crm.cib.edit import EditError
    from hastack.crm.operations import list_constraints

    try:
        return list_constraints(root)
    except EditError as exc:
        raise Refused(str(exc)) from None


# --------------------------------------------------------------------------------------------
# hastack constraint


def register_constraint(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "constraint",
        help="add, list and remove location, colocation and order constraints",
        description="Location, colocation and order constraints, with the ids pcs gives them.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def sub(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Any:
        p = actions.add_parser(name, help=help_text, description=help_text)
        add_target_args(p)
        p.set_defaults(func=func, command_name=f"constraint {name}")
        return p

    p = sub("location", "prefer (or avoid) a node for a resource", run_location)
    p.add_argument("resource", metavar="RESOURCE")
    p.add_argument("target_node", metavar="NODE")
    p.add_argument("score", metavar="SCORE", nargs="?", help="integer or ±INFINITY (INFINITY)")
    p.add_argument("--pattern", action="store_true", help="RESOURCE is a regular expression")
    p.add_argument("--role", metavar="ROLE")
    p.add_argument("--id", dest="constraint_id", metavar="ID")
    add_write_args(p)

    p = sub("colocation", "keep RESOURCE with (or away from) WITH", run_colocation)
    p.add_argument("resource", metavar="RESOURCE")
    p.add_argument("with_rsc", metavar="WITH")
    p.add_argument("score", metavar="SCORE", nargs="?", help="integer or ±INFINITY (INFINITY)")
    p.add_argument("--role", metavar="ROLE")
    p.add_argument("--with-role", metavar="ROLE")
    p.add_argument("--id", dest="constraint_id", metavar="ID")
    add_write_args(p)

    p = sub("order", "start FIRST before THEN", run_order)
    p.add_argument("first", metavar="FIRST")
    p.add_argument("then", metavar="THEN")
    p.add_argument("--first-action", metavar="ACTION", help="start, stop, promote, demote")
    p.add_argument("--then-action", metavar="ACTION", help="start, stop, promote, demote")
    p.add_argument("--kind", metavar="KIND", help="Mandatory (default), Optional, Serialize")
    p.add_argument("--symmetrical", choices=("true", "false"))
    p.add_argument("--id", dest="constraint_id", metavar="ID")
    add_write_args(p)

    p = sub("list", "list the constraints", run_constraint_list)
    add_json_arg(p)

    p = sub("remove", "remove a constraint by id", run_constraint_remove)
    p.add_argument("constraint_id", metavar="ID")
    add_write_args(p)


def run_location(args: argparse.Namespace) -> int:
    op: dict[str, Any] = {"op": "constraint-location", "node": args.target_node}
    op["resource_pattern" if args.pattern else "resource"] = args.resource
    for key, value in (("score", args.score), ("role", args.role), ("id", args.constraint_id)):
        if value is not None:
            op[key] = value
    return change(args, op)


def run_colocation(args: argparse.Namespace) -> int:
    op: dict[str, Any] = {"op": "constraint-colocation", "resource": args.resource}
    op["with"] = args.with_rsc
    for key, value in (
        ("score", args.score),
        ("role", args.role),
        ("with_role", args.with_role),
        ("id", args.constraint_id),
    ):
        if value is not None:
            op[key] = value
    return change(args, op)


def run_order(args: argparse.Namespace) -> int:
    op: dict[str, Any] = {"op": "constraint-order", "first": args.first, "then": args.then}
    for key, value in (
        ("first_action", args.first_action),
        ("then_action", args.then_action),
        ("kind", args.kind),
        ("id", args.constraint_id),
    ):
        if value is not None:
            op[key] = value
    if args.symmetrical is not None:
        op["symmetrical"] = args.symmetrical == "true"
    return change(args, op)


def run_constraint_remove(args: argparse.Namespace) -> int:
    return change(args, {"op": "constraint-remove", "id": args.constraint_id})


def run_constraint_list(args: argparse.Namespace) -> int:
    def body() -> int:
        root, _ = read_root(args)
        constraints = _constraints(root)
        if args.json:
            _print_json(constraints)
            return 0
        rows = []
        for c in constraints:
            what = {
                "location": f"{c.get('rsc') or c.get('rsc-pattern')} on "
                f"{c.get('node') or _rule_text(c)}",
                "colocation": f"{c.get('rsc')} with {c.get('with-rsc')}",
                "order": f"{c.get('first-action', 'start')} {c.get('first')} then "
                f"{c.get('then-action', 'start')} {c.get('then')}",
                "ticket": f"{c.get('rsc')} needs ticket {c.get('ticket')}",
            }.get(c["type"], "")
            if c.get("sets"):
                what = " ; ".join(" ".join(s) for s in c["sets"])
            extra = []
            if c.get("role") or c.get("rsc-role"):
                extra.append(f"role={c.get('role') or c.get('rsc-role')}")
            if c.get("kind"):
                extra.append(f"kind={c['kind']}")
            if c.get("expires"):
                extra.append(f"expires {c['expires']}")
            if c.get("until_moved"):
                extra.append("until moved")
            score = c.get("score") or next(
                (r.get("score") for r in c.get("rules", []) if r.get("score")), ""
            )
            rows.append([c["id"], c["type"], what, score, " ".join(extra)])
        print(table(["ID", "TYPE", "WHAT", "SCORE", "NOTES"], rows))
        return 0

    return run_guarded(args.command_name, body)


def _rule_text(constraint: dict[str, Any]) -> str:
    names = [
        e.get("value")
        for r in constraint.get("rules", [])
        for e in r["expressions"]
        if e.get("attribute") == "#uname"
    ]
    return ", ".join(n for n in names if n) or "(rule)"


# --------------------------------------------------------------------------------------------
# hastack property


def register_property(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "property",
        help="set, get, list and delete cluster options (crm_attribute -t crm_config)",
        description="The cluster options of crm_config, as crm_attribute sets them. Unknown "
        "option names are refused (with the list of known ones) unless --force.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def sub(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> Any:
        p = actions.add_parser(name, help=help_text, description=help_text)
        add_target_args(p)
        p.set_defaults(func=func, command_name=f"property {name}")
        return p

    p = sub("set", "set a cluster option", run_property_set)
    p.add_argument("name", metavar="NAME")
    p.add_argument("value", metavar="VALUE")
    p.add_argument("--force", action="store_true", help="set an option hastack does not know")
    add_write_args(p)
    p = sub("delete", "delete a cluster option (back to its default)", run_property_delete)
    p.add_argument("name", metavar="NAME")
    add_write_args(p)
    p = sub("get", "print a cluster option's value", run_property_get)
    p.add_argument("name", metavar="NAME")
    add_json_arg(p)
    p = sub("list", "list the cluster options set in the CIB", run_property_list)
    add_json_arg(p)


def run_property_set(args: argparse.Namespace) -> int:
    op: dict[str, Any] = {"op": "property-set", "name": args.name, "value": args.value}
    if args.force:
        op["force"] = True
    return change(args, op)


def run_property_delete(args: argparse.Namespace) -> int:
    return change(args, {"op": "property-delete", "name": args.name})


def _properties(root: Any) -> list[dict[str, str]]:
    return [
        {"set": s.get("id") or "", "name": p.get("name") or "", "value": p.get("value") or ""}
        for s in root.iterfind("configuration/crm_config/cluster_property_set")
        for p in s.findall("nvpair")
    ]


def run_property_list(args: argparse.Namespace) -> int:
    def body() -> int:
        root, _ = read_root(args)
        props = _properties(root)
        if args.json:
            _print_json(props)
        else:
            print(
                table(["NAME", "VALUE", "SET"], [[p["name"], p["value"], p["set"]] for p in props])
            )
        return 0

    return run_guarded(args.command_name, body)


def run_property_get(args: argparse.Namespace) -> int:
    def body() -> int:
        root, _ = read_root(args)
        values = [p for p in _properties(root) if p["name"] == args.name]
        if args.json:
            _print_json({"name": args.name, "values": values})
            return 0 if values else 1
        if not values:
            raise Refused(f"{args.name} is not set")
        for p in values:
            print(p["value"] if len(values) == 1 else f"{p['value']}\t(set {p['set']})")
        return 0

    return run_guarded(args.command_name, body)


# --------------------------------------------------------------------------------------------
# hastack standby / takeover (heartbeat R1's hb_standby and hb_takeover)


_R1_HELP = {
    "standby": "give this node's resources to the other nodes (R1's hb_standby): all "
    "(default), local (those whose home is this node) or foreign (the others); each is "
    "banned from this node until it has moved",
    "takeover": "take resources to this node (R1's hb_takeover): all (default), local (those "
    "whose home is this node) or foreign (the others); each is preferred here until it has "
    "moved",
}


def _register_r1(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str
) -> None:
    text = _R1_HELP[name]
    p = subparsers.add_parser(name, help=text.split(":")[0], description=text)
    p.add_argument("which", nargs="?", default="all", choices=("all", "foreign", "local"))
    add_target_args(p)
    add_write_args(p)
    p.set_defaults(func=run_r1, command_name=name, r1=name)


def register_standby(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_r1(subparsers, "standby")


def register_takeover(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_r1(subparsers, "takeover")


def run_r1(args: argparse.Namespace) -> int:
    from hastack.daemon.node import default_node_name

    node = args.local_node or default_node_name()
    return change(args, {"op": args.r1, "node": node, "which": args.which})


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """All of this module's commands (main.py registers them one by one)."""
    register_resource(subparsers)
    register_constraint(subparsers)
    register_property(subparsers)
    register_standby(subparsers)
    register_takeover(subparsers)
