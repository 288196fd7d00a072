"""`hastack replica fence-peer` / `unfence-peer`: drbd.conf handlers that fence through the
hastack cluster, as DRBD's crm-fence-peer.9.sh / crm-unfence-peer.9.sh do through Pacemaker:

    handlers {
      fence-peer          "hastack replica fence-peer";
      after-resync-target "hastack replica unfence-peer";
    }

They read DRBD_RESOURCE, DRBD_PEER and DRBD_CONF from the environment the replica daemon (or
DRBD's drbdadm) gives its handlers, reach the cluster's CIB as `hastack constraint` does (the
local node daemon's control socket, or a CIB file with -f/CIB_file), and leave the decision
to hastack.replica.cluster_fence. This module is the I/O around it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a handler runs, not at every `hastack` start
    from hastack.replica.cluster_fence import ClusterView

EXIT_ERROR = 1  # fence-peer: not one of DRBD's answers ("the helper is broken")
DEFAULT_STONITH_WAIT = 50.0  # s: below the replica daemon's 60 s handler timeout
_FENCING_ORDER = ("dont-care", "resource-only", "resource-and-stonith")


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `fence-peer` and `unfence-peer` to `hastack replica`."""
    for verb, text in (
        (
            "fence-peer",
            "drbd.conf's fence-peer handler: forbid the peer the Promoted role in the "
            "cluster's CIB (crm-fence-peer); exit 4 (peer still a member), 7 (fenced) or 5 "
            "(left, not fenced)",
        ),
        (
            "unfence-peer",
            "drbd.conf's after-resync-target handler: remove the constraint fence-peer placed "
            "(crm-unfence-peer)",
        ),
    ):
        p = verbs.add_parser(verb, help=text.split(":")[0], description=text)
        p.add_argument(
            "resource",
            nargs="?",
            metavar="RESOURCE",
            help="the DRBD resource (default: $DRBD_RESOURCE)",
        )
        p.add_argument(
            "-f",
            "--cib-file",
            metavar="FILE",
            help="work on this CIB file (default: $CIB_file) instead of the running cluster",
        )
        p.add_argument(
            "--cluster-config",
            dest="config",
            metavar="DIR",
            help="the cluster node's configuration directory (default /etc/ha.d)",
        )
        p.add_argument(
            "--cluster-node",
            dest="local_node",
            metavar="NAME",
            help="this node's cluster name (default: uname -n)",
        )
        if verb == "fence-peer":
            p.add_argument("--peer", help="the peer's node name (default: $DRBD_PEER)")
            p.add_argument(
                "--fencing",
                choices=_FENCING_ORDER[1:],
                help="the fencing policy (default: the resource's in $DRBD_CONF)",
            )
            p.add_argument(
                "--stonith-wait",
                type=float,
                default=DEFAULT_STONITH_WAIT,
                metavar="SECONDS",
                help="with resource-and-stonith, how long to wait for the cluster to fence a "
                f"peer that left (default {DEFAULT_STONITH_WAIT:g})",
            )
            p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
            p.set_defaults(func=run_fence_peer)
        else:
            p.set_defaults(func=run_unfence_peer)


def _say(verb: str, text: str) -> None:
    # Handlers' output ends up in the replica daemon's log (its stderr).
    print(f"hastack replica {verb}: {text}", file=sys.stderr)


def _fencing_of(resource: str) -> str:
    """The resource's fencing policy from $DRBD_CONF (the strongest of its volumes')."""
    path = os.environ.get("DRBD_CONF")
    if not path:
        return "resource-only"
    from hastack.replica.config import ConfigError, load_drbd_conf

    try:
        res = load_drbd_conf(path).resource(resource)
    except (ConfigError, KeyError, OSError):
        return "resource-only"
    policies = [res.disk.fencing]
    for host in res.hosts:
        policies += [res.volume_disk(v).fencing for v in host.volumes]
    return max(policies, key=_FENCING_ORDER.index)


def _cib_root(target: Any) -> Any:
    from hastack.cli.crm_cmds import parse_tree, read_cib

    return parse_tree(read_cib(target), target.name)


def _view(target: Any, root: Any, peer: str) -> ClusterView:
    """Membership and fence history: from the node daemon, or a CIB file's status section."""
    from hastack.replica.cluster_fence import ClusterView, FenceEvent

    if target.socket is None:
        nodes = frozenset(n.get("uname") or "" for n in root.iterfind("configuration/nodes/node"))
        members = frozenset(
            s.get("uname") or ""
            for s in root.iterfind("status/node_state")
            if s.get("in_ccm") == "true" and s.get("crmd") == "online"
        )
        return ClusterView(members=members, nodes=nodes)
    from hastack.cli.crm_cmds import _ask

    status = _ask(target, {"cmd": "status"})
    peers = status.get("nodes") or {}
    known = frozenset({*peers, str(status.get("node") or "")} - {""})
    members = frozenset(str(m) for m in status.get("members") or ())
    last_seen = None
    info = peers.get(peer)
    if isinstance(info, dict) and isinstance(info.get("last_heard"), int | float):
        last_seen = time.time() - float(info["last_heard"])
    history: tuple[FenceEvent, ...] = ()
    if peer in known:
        answer = _ask(target, {"cmd": "fence", "op": "history", "target": peer})
        history = tuple(
            FenceEvent(str(r.get("target")), str(r.get("state")), r.get("completed"))
            for r in answer.get("history") or ()
            if isinstance(r, dict)
        )
    return ClusterView(
        members=members, nodes=known, peer_last_seen=last_seen, fence_history=history
    )


def _target(args: argparse.Namespace, verb: str) -> Any:
    from hastack.cli.crm_cmds import Refused, resolve_target

    try:
        target = resolve_target(args)
    except Refused as exc:
        _say(verb, f"no cluster to fence through: {exc}")
        return None
    if target.local_node is None:
        from hastack.daemon.node import default_node_name

        target.local_node = default_node_name()
    return target


def run_fence_peer(args: argparse.Namespace) -> int:
    from hastack.cli.crm_cmds import Refused, apply
    from hastack.replica.cluster_fence import decide_fence_peer

    verb = "fence-peer"
    resource = args.resource or os.environ.get("DRBD_RESOURCE")
    peer = args.peer or os.environ.get("DRBD_PEER") or os.environ.get("DRBD_PEERS", "")
    if not resource or not peer:
        _say(verb, "no resource or peer: run as a drbd.conf handler (DRBD_RESOURCE, DRBD_PEER)")
        return EXIT_ERROR
    fencing = args.fencing or _fencing_of(resource)
    target = _target(args, verb)
    if target is None:
        return EXIT_ERROR
    started = time.monotonic()
    applied: set[str] = set()
    try:
        while True:
            root = _cib_root(target)
            decision = decide_fence_peer(
                root,
                _view(target, root, peer),
                resource=resource,
                this_node=target.local_node,
                peer=peer,
                fencing=fencing,
                waited=time.monotonic() - started,
                stonith_wait=args.stonith_wait,
            )
            for operation in decision.operations:
                if operation["id"] not in applied:
                    _say(verb, apply(target, operation, dry_run=False))
                    applied.add(operation["id"])
            if decision.exit_code is not None:
                _say(verb, f"{decision.message} (exit {decision.exit_code})")
                return decision.exit_code
            time.sleep(args.poll)
    except Refused as exc:
        _say(verb, f"{resource}: {exc}")
        return EXIT_ERROR
    except ValueError as exc:
        _say(verb, f"{resource}: {exc}")
        return EXIT_ERROR


def run_unfence_peer(args: argparse.Namespace) -> int:
    from hastack.cli.crm_cmds import Refused, apply
    from hastack.replica.cluster_fence import decide_unfence_peer

    verb = "unfence-peer"
    resource = args.resource or os.environ.get("DRBD_RESOURCE")
    if not resource:
        _say(verb, "no resource: run as a drbd.conf handler (DRBD_RESOURCE)")
        return EXIT_ERROR
    target = _target(args, verb)
    if target is None:
        return EXIT_ERROR
    try:
        decision = decide_unfence_peer(_cib_root(target), resource=resource)
        for operation in decision.operations:
            apply(target, operation, dry_run=False)
    except (Refused, ValueError) as exc:
        _say(verb, f"{resource}: {exc}")
        return EXIT_ERROR
    _say(verb, decision.message)
    return decision.exit_code or 0
