"""`hastack agent list|info|run|install-ocf`: find, describe and run resource agents."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hastack.cli.common import add_json_arg
from hastack.cli.render import table


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="list, describe and run resource agents (OCF, LSB, heartbeat R1, systemd)",
        description="List, describe and run resource agents: OCF (ocf:PROVIDER:TYPE), LSB "
        "init scripts (lsb:NAME), heartbeat R1 scripts (heartbeat:NAME) and systemd units "
        "(systemd:NAME).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="list the agents installed on this machine",
        description="List the agents installed on this machine, optionally only one standard "
        "(ocf, lsb, heartbeat, systemd) or one OCF provider (ocf:heartbeat).",
    )
    listing.add_argument("filter", nargs="?", metavar="STANDARD[:PROVIDER]")
    add_ocf_root_arg(listing)
    add_json_arg(listing)
    listing.set_defaults(func=run_list)

    info = actions.add_parser(
        "info",
        help="an agent's parameters and actions (from its meta-data)",
        description="Show an agent's parameters and actions. OCF agents are asked for their "
        "meta-data; LSB, heartbeat and systemd agents have fixed actions.",
    )
    info.add_argument("agent", metavar="AGENT", help="e.g. ocf:heartbeat:IPaddr2, lsb:nginx")
    add_ocf_root_arg(info)
    add_json_arg(info)
    info.set_defaults(func=run_info)

    run = actions.add_parser(
        "run",
        help="run one action of an agent the way the cluster would",
        description="Run one action of an agent with the environment and timeout the "
        "cluster would use, and print its result. The exit status is the agent's OCF return "
        "code (LSB, heartbeat and systemd results mapped to it); an agent that timed out or "
        "could not be run exits 1 and says so.",
    )
    run.add_argument("agent", metavar="AGENT", help="e.g. ocf:heartbeat:Dummy, heartbeat:IPaddr2")
    run.add_argument(
        "op",
        metavar="ACTION",
        help="start, stop, monitor, status, promote, demote, notify, reload, migrate_to, "
        "migrate_from, meta-data, validate-all",
    )
    run.add_argument(
        "-p",
        "--param",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="an instance parameter (OCF_RESKEY_NAME); repeat for more",
    )
    run.add_argument(
        "-m",
        "--meta",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a meta attribute (OCF_RESKEY_CRM_meta_NAME), e.g. clone_max=2; repeat for more",
    )
    run.add_argument(
        "-a",
        "--arg",
        metavar="ARG",
        action="append",
        default=[],
        help="an argument of a heartbeat R1 script (as in haresources NAME::ARG::ARG)",
    )
    run.add_argument("--instance", metavar="ID", help="the resource id (default: the type)")
    run.add_argument(
        "--interval", type=float, default=0.0, metavar="SECONDS", help="the op interval (0)"
    )
    run.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="the op timeout (default: the agent's advised timeout, else 20)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="run even when the parameters do not match the agent's meta-data, or the "
        "meta-data cannot be read",
    )
    add_ocf_root_arg(run)
    add_json_arg(run)
    run.set_defaults(func=run_run)

    install = actions.add_parser(
        "install-ocf",
        help="install hastack's own agents as ocf:hastack:NAME",
        description="Install hastack's own agents (Dummy, Stateful, anything, IPaddr2, "
        "Filesystem, httpcheck, replica) as executables under ROOT/resource.d/hastack, so that "
        "Pacemaker, ocf-tester and other cluster managers can run them as ocf:hastack:NAME.",
    )
    install.add_argument(
        "--root", default="/usr/lib/ocf", metavar="DIR", help="the OCF root (/usr/lib/ocf)"
    )
    install.set_defaults(func=run_install)

    install_r1 = actions.add_parser(
        "install-r1",
        help="install hastack's heartbeat R1 scripts (drbddisk) into resource.d",
        description="Install hastack's heartbeat R1 scripts (drbddisk: a replicated disk over "
        "`hastack replica`) as executables under ROOT/resource.d, where haresources' "
        "`drbddisk::RES` finds them.",
    )
    install_r1.add_argument(
        "--root", default="/etc/ha.d", metavar="DIR", help="heartbeat's directory (/etc/ha.d)"
    )
    install_r1.set_defaults(func=run_install, r1=True)


def add_ocf_root_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ocf-root",
        metavar="DIR",
        default=os.environ.get("OCF_ROOT", "/usr/lib/ocf"),
        help="where OCF agents are looked up (default: $OCF_ROOT, else /usr/lib/ocf)",
    )


def _paths(args: argparse.Namespace) -> Any:
    from hastack.agents.names import AgentPaths

    return AgentPaths(ocf_root=Path(args.ocf_root))


def _fail(message: str) -> int:
    print(f"hastack agent: {message}", file=sys.stderr)
    return 2


def _pairs(values: list[str], option: str) -> dict[str, str] | str:
    """NAME=VALUE options as a dict, or the error message for the first bad one."""
    result: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            return f"{option} {value!r}: write NAME=VALUE"
        result[name] = text
    return result


def run_list(args: argparse.Namespace) -> int:
    from hastack.agents.names import list_agents

    standard, _, provider = (args.filter or "").partition(":")
    if standard and standard not in ("ocf", "lsb", "heartbeat", "systemd", "service"):
        return _fail(
            f"unknown standard {standard!r}: use ocf, ocf:PROVIDER, lsb, heartbeat or systemd"
        )
    agents = list_agents(_paths(args), standard=standard or None, provider=provider or None)
    if args.json:
        print(json.dumps([str(a) for a in agents], indent=2))
    else:
        for agent in agents:
            print(agent)
    return 0


def _metadata(spec: Any, paths: Any) -> Any:
    """The parsed meta-data of an OCF agent (raises AgentError or MetadataError)."""
    from hastack.agents.discovery import fetch_metadata

    return fetch_metadata(spec, paths)


FIXED_ACTIONS = {
    "lsb": ["start", "stop", "status (monitor)", "restart", "force-reload"],
    "heartbeat": ["start", "stop", "status (monitor)"],
    "systemd": ["start", "stop", "is-active (monitor)"],
    "service": ["start", "stop", "status (monitor)"],
}


def run_info(args: argparse.Namespace) -> int:
    from hastack.agents.metadata import MetadataError
    from hastack.agents.names import AgentError, locate, parse_agent

    try:
        spec = parse_agent(args.agent)
        if spec.standard == "stonith":
            return _stonith_info(spec.type, args.json)
        path = locate(spec, _paths(args))
        meta = _metadata(spec, _paths(args)) if spec.standard == "ocf" else None
    except (AgentError, MetadataError) as exc:
        return _fail(str(exc))
    if meta is None:
        document = {"agent": str(spec), "path": str(path), "actions": FIXED_ACTIONS[spec.standard]}
        if args.json:
            print(json.dumps(document, indent=2))
        else:
            print(f"{spec} ({path})\nactions: {', '.join(document['actions'])}")
        return 0
    if args.json:
        print(json.dumps({"agent": str(spec), "path": str(path), **asdict(meta)}, indent=2))
        return 0
    print(f"{spec} ({path}), version {meta.version}: {meta.shortdesc}")
    print("\nparameters:")
    print(
        table(
            ["name", "required", "unique", "default", "description"],
            [
                (
                    p.name,
                    "yes" if p.required else "",
                    "yes" if p.unique else "",
                    p.default,
                    p.shortdesc,
                )
                for p in meta.parameters
            ],
        )
    )
    print("\nactions:")
    print(
        table(
            ["name", "timeout", "interval", "depth", "role"],
            [
                (
                    a.name,
                    _seconds(a.timeout),
                    _seconds(a.interval),
                    "" if a.depth is None else a.depth,
                    a.role or "",
                )
                for a in meta.actions
            ],
        )
    )
    return 0


def _stonith_info(agent: str, as_json: bool) -> int:
    """A fence device agent's parameters and actions (fence-agents' metadata, a glue
    plugin's parameter names, hastack's own devices' descriptions)."""
    import asyncio

    from hastack.fencing.metadata import MetadataError as FenceMetadataError
    from hastack.fencing.runners import agent_metadata

    try:
        meta = asyncio.run(agent_metadata(agent))
    except (FenceMetadataError, ValueError, OSError) as exc:
        return _fail(f"stonith:{agent}: {exc}")
    if as_json:
        print(json.dumps({"agent": f"stonith:{agent}", **asdict(meta)}, indent=2, default=str))
        return 0
    print(f"stonith:{agent}: {meta.shortdesc}")
    print("\nparameters:")
    rows = [
        (p.name, "yes" if p.required else "", p.default or "", p.shortdesc) for p in meta.parameters
    ]
    print(table(["name", "required", "default", "description"], rows))
    print(f"\nactions: {', '.join(meta.actions)}")
    return 0


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:g}s"


def run_run(args: argparse.Namespace) -> int:
    from hastack.agents.invocation import DEFAULT_TIMEOUT, ResourceAgentCall, build_invocation
    from hastack.agents.metadata import MetadataError, check_parameters
    from hastack.agents.names import AgentError, locate, parse_agent, parse_r1_resource
    from hastack.agents.rc import rc_meaning
    from hastack.agents.runner import run_invocation

    params = _pairs(args.param, "--param")
    meta_attrs = _pairs(args.meta, "--meta")
    if isinstance(params, str):
        return _fail(params)
    if isinstance(meta_attrs, str):
        return _fail(meta_attrs)
    r1_args = tuple(args.arg)
    text = args.agent
    try:
        if "::" in text:  # haresources' form: IPaddr2::10.0.0.1/24/eth0 (heartbeat: optional)
            head, _, rest = text.partition("::")
            standard, _, name = head.rpartition(":")
            name, r1_extra = parse_r1_resource(f"{name}::{rest}")
            text = f"{standard or 'heartbeat'}:{name}"
            r1_args = r1_extra + r1_args
        spec = parse_agent(text)
        locate(spec, _paths(args))
    except AgentError as exc:
        return _fail(str(exc))
    meta = None
    if spec.standard == "ocf" and args.op != "meta-data":
        try:
            meta = _metadata(spec, _paths(args))
        except MetadataError as exc:
            if not args.force:
                return _fail(f"{exc} (use --force to run the action anyway)")
            print(f"hastack agent: {exc}; running anyway (--force)", file=sys.stderr)
    if meta is not None:
        problems = check_parameters(meta, params)
        errors = [p for p in problems if not p.startswith("unknown parameter")]
        for problem in problems:
            print(f"hastack agent: {spec}: {problem}", file=sys.stderr)
        if errors and not args.force:
            return _fail("not run (use --force to run anyway)")
    timeout = args.timeout
    if timeout is None:
        advised = meta.advised_timeout(args.op, args.interval) if meta is not None else None
        timeout = advised if advised is not None else DEFAULT_TIMEOUT
    call = ResourceAgentCall(
        resource=args.instance or spec.type,
        agent=spec,
        action=args.op,
        params=params,
        meta=meta_attrs,
        interval=args.interval,
        timeout=timeout,
        r1_args=r1_args,
    )
    try:
        invocation = build_invocation(call, _paths(args))
    except AgentError as exc:
        return _fail(str(exc))
    result = asyncio.run(run_invocation(invocation, timeout))
    meaning = rc_meaning(result.rc) if result.status == "done" else result.status
    if args.json:
        print(json.dumps({"agent": str(spec), "action": args.op, **asdict(result)}, indent=2))
    else:
        print(
            f"{spec} {args.op}: rc {result.rc} ({meaning}) in {result.duration:.3f} s"
            + (f" (timeout {timeout:g} s)" if result.status == "timeout" else "")
        )
        if result.exit_reason:
            print(f"exit reason: {result.exit_reason}")
        if result.output.strip():
            print(result.output.rstrip())
    return result.rc if result.status == "done" else 1


def run_install(args: argparse.Namespace) -> int:
    from hastack.agents.builtin.install import install_ocf, install_r1

    try:
        paths = (install_r1 if getattr(args, "r1", False) else install_ocf)(Path(args.root))
    except OSError as exc:
        return _fail(f"cannot install into {args.root}: {exc}")
    for path in paths:
        print(path)
    return 0
