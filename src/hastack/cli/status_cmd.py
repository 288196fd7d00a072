"""`hastack status`: the cluster as crm_mon shows it, plus the local node's membership view.

Two sources: the local node daemon's control socket (``{"cmd": "status"}`` for membership,
``{"cmd": "cib-query"}`` for the CIB), or a CIB file alone (``-f FILE`` or ``CIB_file``, as
crm_mon honours it; no daemon needed). A daemon too old to answer ``cib-query`` still gives the
membership view. What is shown is built by :mod:`hastack.crm.status_view`.

``--json`` prints one document: the membership keys the control socket has always returned
(``node``, ``dc``, ``term``, ``quorate``, ``members``, ``nodes``, ...; derived from the CIB when
reading a file, with ``node`` and ``term`` null), and ``cluster``: the status view's JSON
(:meth:`StatusView.to_json`, documented in that module) without its ``membership`` key, which is
the top level itself; and ``note`` when the daemon sent no usable CIB (why the view shows
membership alone). ``--watch`` refreshes live with rich on a terminal and prints one snapshot
per interval, separated by a blank line, otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hastack.cli.common import add_json_arg, add_node_arg, load_or_report
from hastack.cli.render import table

if TYPE_CHECKING:
    from hastack.crm.status_view import StatusView


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"SECONDS must be a positive number of seconds (such as 1 or 0.5), got {text!r}"
        )
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show the cluster as crm_mon does, and the local node's membership view",
        description="Show the cluster as crm_mon shows it (summary, nodes, every resource and "
        "clone instance with its node and role, failed actions with their exit reasons, fail "
        "counts) and everything an operator left in force (pins, bans, standby, maintenance, "
        "unmanaged and disabled resources), with the membership seen by the node daemon on "
        "this machine (nodes per link, quorum, votes, the DC and its term). With -f FILE "
        "(or CIB_file in the environment) the CIB file alone is shown and no daemon is needed.",
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="DIR",
        help="configuration directory (holds ha.cf and authkeys): ask this node's daemon",
    )
    add_node_arg(parser)
    parser.add_argument(
        "-f",
        "--cib-file",
        metavar="FILE",
        help="show this CIB file (cib.xml, a pe-input; - for stdin) instead of asking a daemon; "
        "the CIB_file environment variable does the same when neither -c nor -f is given",
    )
    parser.add_argument(
        "-A", "--attributes", action="store_true", help="show node attributes (crm_mon -A)"
    )
    parser.add_argument(
        "--failcounts",
        action="store_true",
        help="show fail counts per node with migration-threshold and expiry (crm_mon -f)",
    )
    parser.add_argument(
        "--watch",
        nargs="?",
        const=1.0,
        type=_seconds,
        metavar="SECONDS",
        help="refresh every SECONDS (default 1) until Ctrl-C; without a terminal, print one "
        "snapshot per interval separated by a blank line",
    )
    add_json_arg(parser)
    parser.set_defaults(func=run, status_parser=parser)


@dataclass
class Snapshot:
    """One look at the cluster: the view and the membership document, or why there is none."""

    view: StatusView | None = None
    membership: dict[str, Any] | None = None
    error: str | None = None
    note: str | None = None


class Source:
    """Where snapshots come from: a CIB file, or the local daemon's control socket."""

    def __init__(
        self,
        *,
        cib_file: str | None = None,
        socket_path: str | None = None,
        node: str | None = None,
        start_hint: str = "",
    ) -> None:
        self.cib_file = cib_file
        self.socket_path = socket_path
        self.node = node
        self.start_hint = start_hint
        self._stdin: bytes | None = None

    def snapshot(self) -> Snapshot:
        from hastack.crm.cib.model import CibError
        from hastack.crm.cib.xml import read_cib
        from hastack.crm.status_view import build_view

        now = time.time()
        if self.cib_file is not None:
            name = "<stdin>" if self.cib_file == "-" else self.cib_file
            try:
                if self.cib_file == "-":
                    if self._stdin is None:
                        self._stdin = sys.stdin.buffer.read()
                    data = self._stdin
                else:
                    with open(self.cib_file, "rb") as fh:
                        data = fh.read()
                cib = read_cib(data, source=name)
            except OSError as exc:
                return Snapshot(error=f"{name}: cannot read: {exc.strerror or exc}")
            except CibError as exc:
                return Snapshot(error="\n".join(str(p) for p in exc.problems))
            return Snapshot(view=build_view(cib, None, now))
        return self._live(now)

    def _live(self, now: float) -> Snapshot:
        from hastack.crm.cib.model import CibError
        from hastack.crm.cib.xml import read_cib
        from hastack.crm.status_view import build_view
        from hastack.daemon.control import ControlError, query

        assert self.socket_path is not None
        node = self.node
        try:
            status = query(self.socket_path, {"cmd": "status"})
            if not isinstance(status, dict) or "error" in status:
                return Snapshot(error=f"node {node!r} answered with an error: {status}")
            answer = query(self.socket_path, {"cmd": "cib-query"})
        except (FileNotFoundError, ConnectionRefusedError):
            return Snapshot(
                error=f"the node daemon for {node!r} is not running "
                f"(no control socket at {self.socket_path}); start it with {self.start_hint}"
            )
        except (ControlError, OSError) as exc:
            return Snapshot(error=f"cannot read the status of node {node!r}: {exc}")
        note = None
        cib = None
        if isinstance(answer, dict) and isinstance(answer.get("cib"), str):
            try:
                cib = read_cib(answer["cib"], source=f"<CIB of node {node}>")
            except CibError as exc:
                note = f"the CIB node {node!r} sent cannot be read: {exc}"
        elif isinstance(answer, dict) and "unknown command" in str(answer.get("error", "")):
            note = f"node {node!r} runs a daemon without cib-query: membership only"
        elif isinstance(answer, dict) and "cib" in answer and answer["cib"] is None:
            note = f"node {node!r} manages no resources (no CIB): membership only"
        else:
            note = f"node {node!r} did not send its CIB: {answer}"
        return Snapshot(view=build_view(cib, status, now), membership=status, note=note)


def _source(args: argparse.Namespace) -> Source | int:
    """The snapshot source the arguments ask for, or the exit status after saying why not."""
    from hastack.daemon.node import check_node, default_node_name, resolve_run_dir
    from hastack.daemon.rundir import NodeRunDir

    cib_file = args.cib_file
    if cib_file is None and args.config is None:
        cib_file = os.environ.get("CIB_file") or None  # noqa: SIM112 (Pacemaker's name)
    if cib_file is not None:
        return Source(cib_file=cib_file)
    if args.config is None:
        args.status_parser.error(
            "one of -c/--config DIR (ask the local node daemon) or -f/--cib-file FILE "
            "(or the CIB_file environment variable) is required"
        )
    config = load_or_report(args.config)
    if config is None:
        return 1
    node = args.node or default_node_name()
    problem = check_node(config, node)
    if problem is not None:
        print(f"hastack: {problem}", file=sys.stderr)
        return 1
    socket_path = NodeRunDir(resolve_run_dir(config), node).control_path
    hint = f"`hastack node start -c {args.config}" + (f" --node {node}`" if args.node else "`")
    return Source(socket_path=str(socket_path), node=node, start_hint=hint)


def json_document(snap: Snapshot) -> dict[str, Any]:
    """The --json document: the membership keys at the top, the status view in ``cluster``."""
    view = snap.view
    assert view is not None, "a snapshot without an error has a view"
    if snap.membership is not None:
        doc: dict[str, Any] = dict(snap.membership)
    else:
        doc = {
            "node": None,
            "dc": view.summary.dc,
            "term": None,
            "quorate": view.summary.quorate,
            "members": [n.name for n in view.nodes if n.online],
            "nodes": {
                n.name: {"name": n.name, "node_id": n.id, "state": n.state} for n in view.nodes
            },
        }
    cluster = view.to_json()
    cluster.pop("membership", None)
    doc["cluster"] = cluster
    if snap.membership is not None:
        daemon = _local_watchdog_daemon()
        if daemon is not None:
            doc["watchdog_daemon"] = daemon
    if snap.note:
        doc["note"] = snap.note
    return doc


def text_document(snap: Snapshot, args: argparse.Namespace) -> str:
    from hastack.crm.status_view import render_text

    assert snap.view is not None, "a snapshot without an error has a view"
    text = render_text(snap.view, attributes=args.attributes, failcounts=args.failcounts)
    return text + _membership_block(snap)


def _membership_block(snap: Snapshot) -> str:
    block = ""
    if snap.membership is not None:
        node = snap.membership.get("node")
        membership = dict(snap.membership)
        daemon = _local_watchdog_daemon()
        if daemon is not None:
            membership["watchdog_daemon"] = daemon
        block += f"\n\nMembership (as node {node} sees it):\n" + format_status(membership)
    if snap.note:
        block += f"\n\nnote: {snap.note}"
    return block


def _local_watchdog_daemon() -> dict[str, Any] | None:
    """`hastack watchdog run` on this machine (the one whose node daemon answered), if any
    ever ran: its state directory is $HASTACK_WATCHDOG_STATE_DIR or the default."""
    from hastack.watchdog.state import summary

    return summary()


def run(args: argparse.Namespace) -> int:
    source = _source(args)
    if isinstance(source, int):
        return source
    if args.watch is not None:
        return watch(source, args, args.watch)
    snap = source.snapshot()
    if snap.error is not None:
        print(f"hastack: {snap.error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(json_document(snap), indent=2, sort_keys=True))
    else:
        print(text_document(snap, args))
    return 0


def _render_plain(snap: Snapshot, args: argparse.Namespace) -> str:
    if snap.error is not None:
        if args.json:
            return json.dumps({"error": snap.error}, sort_keys=True)
        return f"hastack: {snap.error}"
    if args.json:
        return json.dumps(json_document(snap), indent=2, sort_keys=True)
    return text_document(snap, args)


def watch(source: Source, args: argparse.Namespace, interval: float) -> int:
    """Refresh every ``interval`` seconds until Ctrl-C (exit 0): live with rich on a terminal,
    else one snapshot per interval separated by a blank line (so a pipe or a test can read it).
    A snapshot that fails (the daemon went away) is shown as its error and watching goes on."""
    try:
        if sys.stdout.isatty() and not args.json:
            _watch_live(source, args, interval)
        else:
            while True:
                sys.stdout.write(_render_plain(source.snapshot(), args) + "\n\n")
                sys.stdout.flush()
                time.sleep(interval)
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # the reader went away (`| head`): nothing more to say, and say nothing at exit either
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
        return 0
    return 0


def _watch_live(source: Source, args: argparse.Namespace, interval: float) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from hastack.crm.status_view import renderable

    def make() -> Any:
        snap = source.snapshot()
        if snap.error is not None or snap.view is None:
            return Text(f"hastack: {snap.error}", style="bold red")
        return renderable(
            snap.view,
            attributes=args.attributes,
            failcounts=args.failcounts,
            extra=_membership_block(snap),
        )

    console = Console()
    with Live(make(), console=console, auto_refresh=False, screen=False) as live:
        while True:
            time.sleep(interval)
            live.update(make(), refresh=True)


def format_status(status: dict[str, Any]) -> str:
    """The human form of a NodeStatus JSON document."""
    dc = status.get("dc")
    quorate = "quorate" if status.get("quorate") else "NOT QUORATE"
    version = ".".join(str(v) for v in status.get("members_version", []))
    lines = [
        f"node {status['node']} (generation {status.get('generation')})"
        + ("  [this node is DC]" if status.get("is_dc") else ""),
        f"DC: {dc or 'none'}   term: {status.get('term')}",
        f"quorum: {quorate}, {status.get('votes')} of {status.get('expected_votes')} votes "
        f"(needs {status.get('quorum')})",
        f"members: {' '.join(status.get('members') or []) or 'none'}"
        + (f"   (version {version})" if version else ""),
        "",
    ]
    nodes: dict[str, dict[str, Any]] = status.get("nodes") or {}
    link_names: list[str] = []
    for peer in nodes.values():
        for link in peer.get("links") or {}:
            if link not in link_names:
                link_names.append(link)
    rows = []
    for name, peer in sorted(nodes.items(), key=lambda item: item[1].get("node_id", 0)):
        marks = ("*" if name == status["node"] else "") + ("  (DC)" if name == dc else "")
        heard = peer.get("last_heard")
        links = peer.get("links") or {}
        attributes = " ".join(f"{k}={v}" for k, v in (peer.get("attributes") or {}).items())
        rows.append(
            [
                name + marks,
                peer.get("node_id"),
                peer.get("votes"),
                peer.get("state"),
                peer.get("generation") if peer.get("generation") is not None else "-",
                "-" if heard is None or name == status["node"] else f"{heard:.2f}s ago",
                *[
                    links.get(link, "-") if name != status["node"] else "local"
                    for link in link_names
                ],
                attributes,
            ]
        )
    headers = ["NODE", "ID", "VOTES", "STATE", "GEN", "HEARD", *link_names, "ATTRIBUTES"]
    lines.append(table(headers, rows))
    ping = status.get("ping") or {}
    if ping:
        lines.append("")
        lines.append("ping: " + ", ".join(f"{target} {state}" for target, state in ping.items()))
    lines.append("")
    lines.append("* this node")
    fencing = status.get("fencing")
    if isinstance(fencing, dict):
        lines.append("")
        lines += format_fencing(fencing, str(status["node"]))
    watchdog = status.get("watchdog")
    if isinstance(watchdog, dict):
        lines.append("")
        lines.append(format_watchdog(watchdog))
    daemon = status.get("watchdog_daemon")
    if isinstance(daemon, dict):
        lines.append("")
        lines.append(format_watchdog_daemon(daemon))
    return "\n".join(lines)


def format_watchdog_daemon(daemon: dict[str, Any]) -> str:
    """One line for `hastack watchdog run` on this machine: running, its device, the checks
    failing, the action it took, and the last reset it recorded."""
    if daemon.get("problem"):
        return f"WARNING watchdog daemon: {daemon['problem']}"
    if not daemon.get("running"):
        line = "WARNING watchdog daemon: not running"
    else:
        device = daemon.get("device") or "no device"
        fed = "fed" if daemon.get("feeding") else "NOT fed"
        stamp = daemon.get("last_keepalive")
        ago = f" {max(0.0, time.time() - stamp):.1f} s ago" if stamp else ""
        failing = daemon.get("failing") or []
        checks = f"{daemon.get('checks', 0)} checks" + (
            f", failing: {', '.join(failing)}" if failing else ", all ok"
        )
        line = f"Watchdog daemon (pid {daemon.get('pid')}): {device} {fed}{ago}; {checks}"
    action = daemon.get("action")
    if isinstance(action, dict):
        line += f"; ACTION TAKEN: {action.get('action')} ({action.get('reason')})"
    reset = daemon.get("last_reset")
    if isinstance(reset, dict) and not reset.get("no_action"):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(reset.get("time", 0))))
        line += f"; last reset {when}: {reset.get('check')} {reset.get('object')}"
    return line


def format_watchdog(watchdog: dict[str, Any]) -> str:
    """One line: the device, its timeout, whether it resets this node on quorum loss, the last
    keep-alive, and what the guard decided."""
    if not watchdog.get("open"):
        return f"WARNING watchdog {watchdog.get('device')}: not open ({watchdog.get('reason')})"
    driver = watchdog.get("driver") or "stand-in"
    ago = watchdog.get("last_keepalive_ago")
    fed = "never fed" if ago is None else f"fed {ago:.1f} s ago"
    if watchdog.get("armed"):
        role = (
            f"self-fencing, stonith-watchdog-timeout {watchdog.get('stonith_watchdog_timeout'):g} s"
        )
    else:
        role = f"resets a hung node only ({watchdog.get('reason') or 'no self-fencing'})"
    device = f"{watchdog.get('device')} ({driver}, {watchdog.get('timeout'):g} s)"
    line = f"Watchdog {device}: {role}; {fed}"
    state = watchdog.get("state")
    if state == "grace":
        line += (
            f"\n  WARNING no quorum: {watchdog.get('grace_left'):.1f} s left to stop resources "
            f"({watchdog.get('reason')})"
        )
    elif state == "starving":
        line += f"\n  CRITICAL the watchdog is resetting this node: {watchdog.get('reason')}"
    return line


def format_fencing(fencing: dict[str, Any], node: str) -> list[str]:
    """Per node, whether this node has a working fence path to it: a node without one is a
    loud warning, since with stonith-enabled its resources cannot be recovered."""
    if not fencing.get("stonith_enabled", True):
        return [
            "WARNING: fencing is disabled (stonith-enabled=false): a node that is lost but "
            "still running may run its resources twice"
        ]
    lines = [f"Fencing (paths from {node}):"]
    for problem in fencing.get("problems") or []:
        lines.append(f"  configuration problem: {problem}")
    paths: dict[str, dict[str, Any]] = fencing.get("paths") or {}
    for target, path in sorted(paths.items()):
        if path.get("ok"):
            lines.append(f"  {target}: ok through {', '.join(path.get('working') or [])}")
        else:
            lines.append(
                f"  WARNING {target}: no working fence path ({path.get('why')}): its resources "
                "will not be recovered if it is lost"
            )
    for record in fencing.get("pending") or []:
        lines.append(f"  fencing {record.get('target')} in progress ({record.get('reason')})")
    return lines
