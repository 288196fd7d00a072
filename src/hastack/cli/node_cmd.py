"""`hastack node start|standby|unstandby|maintenance|attribute|list`: run this machine's cluster
node, and the operator's node commands (crm_standby, crm_attribute -N, crm_node -l) on a CIB
file (-f) or the running cluster (through the local node daemon; see crm_cmds)."""

from __future__ import annotations

import argparse
from typing import Any

from hastack.cli.common import add_config_arg, add_json_arg, add_node_arg

LIFETIMES = ("forever", "reboot")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from hastack.cli.crm_cmds import add_target_args, add_write_args

    parser = subparsers.add_parser(
        "node",
        help="run a cluster node; standby, maintenance and attributes of nodes",
        description="Run this machine's cluster node, or put nodes in standby or maintenance, "
        "set their attributes and list them.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    start = actions.add_parser(
        "start",
        help="run the node daemon in the foreground",
        description="Run the node daemon in the foreground until SIGTERM or SIGINT (which make "
        "it leave the cluster cleanly). SIGHUP re-reads the configuration. State and the "
        "control socket live in RUN_DIR/NODE/ (ha.cf's run_dir).",
    )
    add_config_arg(start)
    add_node_arg(start)
    start.set_defaults(func=run_start)

    def sub(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help_text, description=help_text)
        add_target_args(p)
        p.set_defaults(func=func, command_name=f"node {name}")
        return p

    def lifetime(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-l",
            "--lifetime",
            choices=LIFETIMES,
            default="forever",
            help="forever (in <nodes>, the default) or reboot (transient, in the status section)",
        )

    p = sub("standby", "put a node in standby: it runs no resources (crm_standby -v on)", run_op)
    p.add_argument("target_node", metavar="NODE")
    lifetime(p)
    add_write_args(p)
    p.set_defaults(op="node-standby")

    p = sub("unstandby", "take a node out of standby (both lifetimes)", run_op)
    p.add_argument("target_node", metavar="NODE")
    add_write_args(p)
    p.set_defaults(op="node-unstandby")

    p = sub(
        "maintenance",
        "put a node in maintenance (its resources are left alone), or --off take it out",
        run_op,
    )
    p.add_argument("target_node", metavar="NODE")
    p.add_argument("--off", action="store_true", help="end maintenance (both lifetimes)")
    lifetime(p)
    add_write_args(p)
    p.set_defaults(op="node-maintenance")

    p = sub(
        "attribute",
        "show, set or delete a node attribute (crm_attribute -N NODE -n NAME [-v VALUE | -D])",
        run_attribute,
    )
    p.add_argument("target_node", metavar="NODE")
    p.add_argument("name", metavar="NAME")
    p.add_argument("value", metavar="VALUE", nargs="?", help="set it to this value")
    p.add_argument("-D", "--delete", action="store_true", help="delete the attribute")
    lifetime(p)
    add_write_args(p)
    add_json_arg(p)

    p = sub("list", "list the nodes: state, standby, maintenance and attributes", run_list)
    add_json_arg(p)


def run_start(args: argparse.Namespace) -> int:
    from hastack.daemon.node import start

    return start(args.config, args.node)


def run_op(args: argparse.Namespace) -> int:
    from hastack.cli.crm_cmds import change

    op: dict[str, Any] = {"op": args.op, "node": args.target_node}
    if args.op == "node-maintenance":
        op["on"] = not args.off
        if not args.off:
            op["lifetime"] = args.lifetime
    elif args.op == "node-standby":
        op["lifetime"] = args.lifetime
    return change(args, op)


def run_attribute(args: argparse.Namespace) -> int:
    from hastack.cli.crm_cmds import Refused, Usage, change, read_root, run_guarded

    if args.delete or args.value is not None:
        if args.delete and args.value is not None:
            return run_guarded(args.command_name, _raise(Usage("give VALUE or --delete, not both")))
        op = {
            "op": "node-attribute",
            "node": args.target_node,
            "name": args.name,
            "value": None if args.delete else args.value,
            "lifetime": args.lifetime,
        }
        return change(args, op)

    def body() -> int:
        import json

        from hastack.crm.cib.edit import AttributeOwner, EditError, get_attribute

        root, _ = read_root(args)
        owner = AttributeOwner("node", args.target_node, lifetime=args.lifetime)
        try:
            values = get_attribute(root, owner, args.name)
        except EditError as exc:
            raise Refused(str(exc)) from None
        if args.json:
            document = {"node": args.target_node, "name": args.name, "lifetime": args.lifetime}
            document["values"] = [{"set": s, "value": v} for s, v in values]
            print(json.dumps(document, indent=2, sort_keys=True))
            return 0 if values else 1
        if not values:
            raise Refused(f"node {args.target_node} has no {args.lifetime} attribute {args.name}")
        for set_id, value in values:
            print(value if len(values) == 1 else f"{value}\t(set {set_id})")
        return 0

    return run_guarded(args.command_name, body)


def _raise(exc: Exception) -> Any:
    def body() -> int:
        raise exc

    return body


def describe_nodes(root: Any) -> list[dict[str, Any]]:
    """Each node of <nodes>: id, name, state label (Online, OFFLINE, standby, ...), standby,
    maintenance, and its permanent and transient attributes."""
    from lxml import etree

    from hastack.crm.cib.model import CibError
    from hastack.crm.cib.xml import read_cib
    from hastack.crm.state import resource_states

    try:
        state = resource_states(read_cib(etree.tostring(root)))
        statuses = state.nodes
    except (CibError, ValueError):
        statuses = {}
    transient: dict[str, dict[str, str]] = {}
    for node_state in root.iterfind("status/node_state"):
        transient[node_state.get("id") or ""] = {
            p.get("name"): p.get("value")
            for p in node_state.iterfind("transient_attributes/instance_attributes/nvpair")
        }
    result = []
    for node in root.iterfind("configuration/nodes/node"):
        name = node.get("uname") or node.get("id") or ""
        status = statuses.get(name)
        result.append(
            {
                "id": node.get("id"),
                "name": name,
                "state": status.label if status is not None else "unknown",
                "online": bool(status and status.online),
                "standby": bool(status and status.standby),
                "maintenance": bool(status and status.maintenance),
                "attributes": {
                    p.get("name"): p.get("value")
                    for p in node.iterfind("instance_attributes/nvpair")
                },
                "transient_attributes": transient.get(node.get("id") or "", {}),
            }
        )
    return result


def run_list(args: argparse.Namespace) -> int:
    from hastack.cli.crm_cmds import read_root, run_guarded
    from hastack.cli.render import table

    def body() -> int:
        import json

        root, _ = read_root(args)
        nodes = describe_nodes(root)
        if args.json:
            print(json.dumps(nodes, indent=2, sort_keys=True))
            return 0
        rows = [
            [
                n["name"],
                n["id"],
                n["state"],
                " ".join(f"{k}={v}" for k, v in n["attributes"].items()),
                " ".join(f"{k}={v}" for k, v in n["transient_attributes"].items()),
            ]
            for n in nodes
        ]
        print(table(["NODE", "ID", "STATE", "ATTRIBUTES", "TRANSIENT"], rows))
        return 0

    return run_guarded(args.command_name, body)
