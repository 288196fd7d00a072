"""`hastack qserver serve|status`: the quorum server (one extra vote for one partition of each
cluster it serves) and the operator's view of it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import ssl
import sys
from typing import Any

DEFAULT_LISTEN = "0.0.0.0:5403"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "qserver",
        help="run the quorum server, or ask it for its status",
        description="The quorum server: a lightweight daemon, not a cluster member, that gives "
        "one extra vote to exactly one partition of each cluster it serves (the larger one; "
        "ties go to the partition holding the vote, then to the tie-breaker).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = actions.add_parser(
        "serve",
        help="run the quorum server in the foreground",
        description="Serve the clusters whose configuration directories are given (ha.cf names "
        "the cluster and its nodes, authkeys signs the traffic) until SIGTERM or SIGINT.",
    )
    serve.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        default=DEFAULT_LISTEN,
        help=f"address and port to listen on (default {DEFAULT_LISTEN})",
    )
    serve.add_argument(
        "-c",
        "--config",
        metavar="DIR",
        action="append",
        required=True,
        help="a cluster's configuration directory (ha.cf + authkeys); repeat for each cluster",
    )
    _tls_args(serve)
    serve.add_argument(
        "--tie-breaker",
        default="lowest",
        metavar="lowest|highest|resources|NODEID",
        help="who wins a tie between partitions of equal votes when none holds the vote: the "
        "partition with the lowest node id (default), the highest, the one reporting the most "
        "resources, or the one holding node NODEID",
    )
    serve.add_argument(
        "--lease",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="how long one grant of the vote lasts (default 3); nodes renew it every third of it",
    )
    serve.add_argument(
        "--startup-hold",
        type=float,
        metavar="SECONDS",
        help="grant nothing for this long after starting (default: the lease), so that grants "
        "of an earlier run have expired; give the old lease here when shortening --lease",
    )
    serve.set_defaults(func=run_serve)

    status = actions.add_parser(
        "status",
        help="ask a quorum server about one cluster",
        description="Ask the quorum server (ha.cf's quorum_server, or --server) which nodes of "
        "the cluster are connected, which partitions they report, and who holds the vote.",
    )
    status.add_argument(
        "-c", "--config", metavar="DIR", required=True, help="the cluster's configuration directory"
    )
    status.add_argument(
        "--server", metavar="ADDR:PORT", help="the quorum server (default: ha.cf quorum_server)"
    )
    _tls_args(status)
    status.add_argument("--json", action="store_true", help="print JSON instead of text")
    status.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the server's answer, connection included (default 5)",
    )
    status.set_defaults(func=run_status)


def _tls_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tls-cert", metavar="FILE", help="this side's certificate (PEM)")
    parser.add_argument("--tls-key", metavar="FILE", help="its private key (PEM)")
    parser.add_argument("--tls-ca", metavar="FILE", help="the CA that signs the other side's")


def _tls(args: argparse.Namespace, server: bool) -> tuple[ssl.SSLContext | None, str | None]:
    """The TLS context, or (None, an error) when the options or files are wrong."""
    given = [args.tls_cert, args.tls_key, args.tls_ca]
    if not any(given):
        return None, None
    if not all(given):
        return None, "give --tls-cert, --tls-key and --tls-ca together (or none of them)"
    from hastack.quorum.daemon import server_tls
    from hastack.quorum.link import client_tls

    try:
        if server:
            return server_tls(args.tls_cert, args.tls_key, args.tls_ca), None
        return client_tls(args.tls_cert, args.tls_key, args.tls_ca), None
    except (OSError, ssl.SSLError) as exc:
        return None, f"TLS files {args.tls_cert}, {args.tls_key}, {args.tls_ca}: {exc}"


def _fail(message: str) -> int:
    print(f"hastack qserver: {message}", file=sys.stderr)
    return 1


def run_serve(args: argparse.Namespace) -> int:
    from hastack.cli.common import load_or_report
    from hastack.quorum.daemon import serve
    from hastack.quorum.link import split_address
    from hastack.quorum.server import ClusterSpec, parse_tie_breaker

    try:
        host, port = split_address(args.listen)
        tie_breaker = parse_tie_breaker(args.tie_breaker)
    except ValueError as exc:
        return _fail(str(exc))
    if not 0.01 <= args.lease <= 3600:
        return _fail(f"--lease {args.lease:g}: use 0.01..3600 seconds")
    if args.startup_hold is not None and not 0 <= args.startup_hold <= 3600:
        return _fail(f"--startup-hold {args.startup_hold:g}: use 0..3600 seconds")
    specs: dict[str, ClusterSpec] = {}
    for directory in args.config:
        config = load_or_report(directory)
        if config is None:
            return 1
        for warning in config.authkeys.warnings:  # ha.cf's timing advice is not ours to give
            print(f"hastack qserver: {warning}", file=sys.stderr)
        spec = ClusterSpec.from_config(config)
        if spec.name in specs:
            return _fail(
                f"{directory} and {specs[spec.name].source} both configure cluster "
                f"{spec.name!r}; each cluster needs its own name (ha.cf cluster_name)"
            )
        if isinstance(tie_breaker, int) and tie_breaker not in {i for i, _ in spec.nodes.values()}:
            print(
                f"hastack qserver: warning: cluster {spec.name} has no node id {tie_breaker}; "
                "its ties go to the lowest node id",
                file=sys.stderr,
            )
        specs[spec.name] = spec
    tls, problem = _tls(args, server=True)
    if problem:
        return _fail(problem)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s hastack-qserver %(levelname)s: %(message)s"
    )
    try:
        return asyncio.run(
            serve(
                list(specs.values()),
                host,
                port,
                tls=tls,
                lease=args.lease,
                tie_breaker=tie_breaker,
                startup_hold=args.startup_hold,
            )
        )
    except OSError as exc:
        return _fail(f"cannot listen on {args.listen}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        return 0


def run_status(args: argparse.Namespace) -> int:
    from hastack.cli.common import load_or_report
    from hastack.quorum.link import query_status, split_address
    from hastack.quorum.protocol import ProtocolError

    config = load_or_report(args.config)
    if config is None:
        return 1
    address = args.server or config.hacf.quorum_server
    if address is None:
        return _fail(f"{config.hacf.file} has no quorum_server line: name the server with --server")
    try:
        host, port = split_address(address)
    except ValueError as exc:
        return _fail(str(exc))
    tls, problem = _tls(args, server=False)
    if problem:
        return _fail(problem)
    cluster = config.hacf.cluster_name
    try:
        status = asyncio.run(
            query_status(host, port, cluster, config.authkeys, tls=tls, timeout=args.timeout)
        )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        reason = str(exc) or f"no answer within {args.timeout:g} s"  # TimeoutError says nothing
        return _fail(f"cannot reach the quorum server at {address}: {reason}")
    except ProtocolError as exc:
        return _fail(f"quorum server at {address}: {exc}")
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
        return 0
    print(_render(cluster, status))
    return 0


def _render(cluster: str, status: dict[str, Any]) -> str:
    view = status.get("clusters", {}).get(cluster, {})
    lines = [f"cluster {cluster} (lease {status.get('lease')} s)"]
    holder = view.get("vote_holder")
    if holder:
        lines.append(f"  vote: held by {{{','.join(holder)}}} for {view.get('vote_remaining')} s")
    else:
        lines.append(f"  vote: held by nobody ({view.get('why', '')})")
    if status.get("starting_for"):
        lines.append(f"  server starting: no grant for {status['starting_for']} s")
    for name, node in view.get("nodes", {}).items():
        state = "connected" if node.get("connected") else "not connected"
        sees = "{" + ",".join(node.get("members") or []) + "}" if node.get("members") else "-"
        lines.append(f"  node {name} (id {node.get('id')}): {state}, sees {sees}")
    for part in view.get("partitions", []):
        settled = "settled" if part.get("settled") else part.get("why_not_settled", "")
        lines.append(
            f"  partition {{{','.join(part.get('members', []))}}}: {part.get('votes')} votes, "
            f"{settled}"
        )
    return "\n".join(lines)
