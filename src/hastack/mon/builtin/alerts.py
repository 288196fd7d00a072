"""hastack's built-in mon alerts: file, mail, trap and cluster.

mon runs an alert as ``ALERT -s SERVICE -g GROUP -h "HOST..." -t TIME [-u|-a|-D|-T|-O] ARGS...``
with the monitor's output on stdin (first line the summary, then the detail) and MON_*
variables in the environment (MON_ALERTTYPE, MON_OPSTATUS, MON_RETVAL, MON_DESCRIPTION, ...).
Run one as ``python -m hastack.mon.builtin.alerts NAME [mon's arguments]``:

- ``file [-d DIR] [-S SUMMARY] [FILE]``: append to FILE (default "file") what Debian's
  file.alert appends.
- ``mail [--command CMD] [-f FROM] [-S SUMMARY] ADDRESS...``: a message as Debian's
  mail.alert writes it, piped to CMD (default ``/usr/sbin/sendmail -oi -t``; no mail server
  is assumed: any command reading a message on stdin will do).
- ``trap [--server HOST] [--port N] [-U USER] [-P PASS] [HOST...]``: a mon trap for the same
  watch and service (retval MON_RETVAL, opstatus MON_OPSTATUS) to each server, as trap.alert.
- ``cluster (--standby | --move RESOURCE [--to NODE] | --takeover [WHICH])``: act on the local
  hastack cluster through the node daemon's control socket (``--socket PATH``, or ``-c
  CONFIG_DIR [--node NAME]`` as ``hastack`` finds it):

  * ``--standby`` puts this node in standby (``hastack node standby NODE``: it runs no
    resources until taken out);
  * ``--move RESOURCE [--to NODE] [--lifetime ISO8601]`` moves a resource (``hastack resource
    move``), by a pin that stays (until its lifetime ends, or it is cleared);
  * ``--takeover [all|local|foreign]`` takes resources to this node (``hastack takeover``).

  A failure, trap or trap-timeout alert acts. An upalert (``-u``) does nothing unless
  ``--on-recovery clear`` is given: it then takes this node out of standby (``hastack node
  unstandby``) or clears the move's pin (``hastack resource clear``); a takeover has nothing
  to clear (its pins end once the resources have moved). Ack and disable alerts do nothing.

Exit status: 0 done (or nothing to do), 1 failed (the reason on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TextIO

from hastack.mon.trap import OPSTATUS, Trap, encode_trap

# mon's flag for each kind of alert (none: a failure alert)
KIND_FLAGS = {
    "up": "-u",
    "ack": "-a",
    "disable": "-D",
    "trap": "-T",
    "traptimeout": "-O",
}
DEFAULT_MAIL_COMMAND = "/usr/sbin/sendmail -oi -t"
DEFAULT_TRAP_PORT = 2583


class AlertError(Exception):
    """The alert could not be delivered; the message says why."""


@dataclass
class AlertCall:
    """What mon handed the alert: its arguments, stdin and environment."""

    service: str = ""
    group: str = ""
    hosts: list[str] = field(default_factory=list)
    time: int | None = None
    kind: str = "failure"  # failure, up, ack, disable, trap, traptimeout
    summary: str = ""
    detail: str = ""  # the rest of stdin, as read
    env: dict[str, str] = field(default_factory=dict)

    @property
    def is_up(self) -> bool:
        return self.kind == "up"


def _mon_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments mon gives every alert (-h is the hosts: help is --help only)."""
    parser.add_argument("--help", action="help", help="show this help and exit")
    parser.add_argument("-s", dest="service", default="", help="service (from mon)")
    parser.add_argument("-g", dest="group", default="", help="watch (hostgroup) (from mon)")
    parser.add_argument("-h", dest="hosts", default="", help="the group's hosts (from mon)")
    parser.add_argument("-t", dest="time", type=int, help="time of the alert (from mon)")
    parser.add_argument("-l", dest="next_alert", help="seconds until the next alert (ignored)")
    flags = parser.add_mutually_exclusive_group()
    for kind, flag in KIND_FLAGS.items():
        flags.add_argument(
            flag, dest="kind", action="store_const", const=kind, help=f"{kind} alert"
        )
    parser.set_defaults(kind="failure")


def read_call(args: argparse.Namespace, text: str, env: dict[str, str]) -> AlertCall:
    summary, _, detail = text.partition("\n")
    return AlertCall(
        service=args.service,
        group=args.group,
        hosts=args.hosts.split(),
        time=args.time,
        kind=args.kind,
        summary=summary,
        detail=detail,
        env=env,
    )


def _perl_time(seconds: int | None) -> tuple[str, str, str, str]:
    """Weekday, month, day and time of Perl's localtime string ("Thu Sep  9 12:00:00 2021")."""
    stamp = time.localtime(seconds or 0)
    return (
        time.strftime("%a", stamp),
        time.strftime("%b", stamp),
        str(stamp.tm_mday),
        time.strftime("%H:%M:%S", stamp),
    )


# --------------------------------------------------------------------------------------------
# file


def file_record(call: AlertCall, summary: str | None = None) -> str:
    """The lines Debian's file.alert appends for one alert."""
    kind = call.env.get("MON_ALERTTYPE") or "UNKNOWN ALERT"
    opstatus = call.env.get("MON_OPSTATUS", "UNKNOWN OPSTATUS")
    wday, month, day, clock = _perl_time(call.time)
    stamp = "" if call.time is None else str(call.time)
    detail = call.detail
    if detail and not detail.endswith("\n"):
        detail += "\n"  # keeps the closing "." on a line of its own
    return (
        f"{kind} {call.group} {call.service} {stamp} ({wday} {month} {day} {clock}) "
        f"{call.summary if summary is None else summary}\n"
        f"DESCR={call.env.get('MON_DESCRIPTION', '')}\n"
        f"OPSTATUS={opstatus}\n"
        f"{detail}.\n"
    )


def run_file(args: argparse.Namespace, call: AlertCall) -> int:
    path = Path(args.directory, args.file) if args.directory else Path(args.file)
    try:
        with open(path, "a", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(file_record(call, args.summary))
    except OSError as exc:
        raise AlertError(f"could not append to {path}: {exc.strerror or exc}") from None
    return 0


# --------------------------------------------------------------------------------------------
# mail


def mail_message(
    call: AlertCall,
    addresses: Sequence[str],
    sender: str | None = None,
    summary: str | None = None,
) -> EmailMessage:
    """The message Debian's mail.alert sends."""
    wday, month, day, clock = _perl_time(call.time)
    label = "UPALERT" if call.is_up else "ALERT"
    message = EmailMessage()
    message["To"] = ", ".join(addresses)
    if sender:
        message["From"] = sender
    text = call.summary if summary is None else summary
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    message["Subject"] = (
        f"{label} {call.group}/{call.service}: {text} ({wday} {month} {day} {clock})"
    )
    message["X-Mailer"] = "hastack mail alert"
    noticed = time.strftime("%a %b %e %H:%M:%S %Y", time.localtime(call.time or 0))
    body = (
        f"\nGroup                 : {call.group}\n"
        f"Service               : {call.service}\n"
        f"Time noticed          : {noticed}\n"
        f"Members               : {' '.join(call.hosts)}\n"
        "\nDetailed text (if any) follows:\n"
        "-------------------------------\n"
        f"{call.detail}"
    )
    # a message cannot carry undecodable bytes: those become U+FFFD
    message.set_content(body.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    return message


def run_mail(args: argparse.Namespace, call: AlertCall) -> int:
    if not args.addresses:
        raise AlertError("no address to mail to: give one or more ADDRESS arguments")
    command = shlex.split(args.command)
    if not command:
        raise AlertError("--command is empty")
    data = mail_message(call, args.addresses, args.sender, args.summary).as_bytes()
    try:
        done = subprocess.run(command, input=data, capture_output=True, timeout=args.timeout)
    except FileNotFoundError:
        raise AlertError(f"--command {args.command!r}: {command[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise AlertError(
            f"--command {args.command!r} still running after {args.timeout:g} s"
        ) from None
    except OSError as exc:
        raise AlertError(f"--command {args.command!r}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        raise AlertError(f"--command {args.command!r} exited {done.returncode}: {said}")
    return 0


# --------------------------------------------------------------------------------------------
# trap


def alert_trap(
    call: AlertCall, user: str = "", password: str = "", now: float | None = None
) -> Trap:
    """The trap trap.alert sends for this alert: same watch and service, MON_RETVAL (0 for an
    upalert when mon gave none) and MON_OPSTATUS; the summary and the detail without their
    last newline."""
    retval = call.env.get("MON_RETVAL", "")
    sta = int(retval) if retval.isdigit() else (0 if call.is_up else 1)
    opstatus = call.env.get("MON_OPSTATUS", "")
    spc = int(opstatus) if opstatus.isdigit() else None
    if spc is not None and spc not in OPSTATUS.values():
        spc = None
    return Trap(
        grp=call.group or call.env.get("MON_GROUP", ""),
        svc=call.service or call.env.get("MON_SERVICE", ""),
        sta=sta,
        spc=spc,
        sum=call.summary,
        dtl=call.detail.removesuffix("\n"),
        usr=user,
        pas=password,
        tsp=int(time.time() if now is None else now),
    )


def run_trap(args: argparse.Namespace, call: AlertCall) -> int:
    servers = ([args.server] if args.server else []) + list(args.servers)
    if not servers:
        raise AlertError("no mon server to send the trap to: give --server HOST (or HOST...)")
    user = call.env.get("MON_TRAP_USER") or args.user or ""
    password = call.env.get("MON_TRAP_PASS") or args.password or ""
    data = encode_trap(alert_trap(call, user, password))
    problems = []
    for server in servers:
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                server, args.port, type=socket.SOCK_DGRAM
            )[0]
            with socket.socket(family, kind, proto) as sock:
                sock.sendto(data, address)
        except OSError as exc:
            problems.append(
                f"could not send the trap to {server}:{args.port}: {exc.strerror or exc}"
            )
    if problems:
        raise AlertError("; ".join(problems))
    return 0


# --------------------------------------------------------------------------------------------
# cluster


def cluster_operation(args: argparse.Namespace, node: str, recovery: bool) -> dict[str, Any] | None:
    """The hastack operation for this alert (the shapes `hastack node standby|unstandby`,
    `hastack resource move|clear` and `hastack takeover` send), None when there is none."""
    if args.standby:
        if recovery:
            return {"op": "node-unstandby", "node": node}
        return {"op": "node-standby", "node": node, "lifetime": "forever"}
    if args.move:
        if recovery:
            return {"op": "resource-clear", "resource": args.move}
        op: dict[str, Any] = {"op": "resource-move", "resource": args.move}
        if args.to:
            op["node"] = args.to
        if args.lifetime:
            op["lifetime"] = args.lifetime
        return op
    if recovery:
        return None  # a takeover's pins end by themselves once the resources have moved
    return {"op": "takeover", "node": node, "which": args.takeover}


def run_cluster(args: argparse.Namespace, call: AlertCall) -> int:
    from hastack.cli.crm_cmds import Refused, Target, apply, resolve_target

    if call.kind in ("ack", "disable"):
        return 0
    recovery = call.is_up
    if recovery and args.on_recovery != "clear":
        return 0
    try:
        if args.socket:
            target = Target(socket=Path(args.socket), local_node=args.node)
        else:
            target = resolve_target(argparse.Namespace(config=args.config, local_node=args.node))
        node = target.local_node or _default_node()
        operation = cluster_operation(args, node, recovery)
        if operation is None:
            return 0
        summary = apply(target, operation, dry_run=False)
    except Refused as exc:
        raise AlertError(str(exc)) from None
    print(summary)
    return 0


def _default_node() -> str:
    from hastack.daemon.node import default_node_name

    return default_node_name()


# --------------------------------------------------------------------------------------------
# the command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hastack.mon.builtin.alerts",
        description="hastack's built-in mon alerts (run by mon with -s -g -h -t [-u] ...).",
    )
    sub = parser.add_subparsers(dest="alert", required=True, metavar="ALERT")

    def add(name: str, text: str, run: Callable[[argparse.Namespace, AlertCall], int]) -> Any:
        p = sub.add_parser(name, help=text, description=text, add_help=False)
        _mon_arguments(p)
        p.set_defaults(run=run)
        return p

    p = add("file", "append the alert to a file (file.alert)", run_file)
    p.add_argument("-d", dest="directory", help="directory of FILE")
    p.add_argument("-S", dest="summary", help="summary to write instead of stdin's")
    p.add_argument("file", nargs="?", default="file", metavar="FILE")

    p = add("mail", "mail the alert through a command (mail.alert)", run_mail)
    p.add_argument(
        "--command",
        default=DEFAULT_MAIL_COMMAND,
        help=f"command reading the message on stdin ({DEFAULT_MAIL_COMMAND})",
    )
    p.add_argument("-f", dest="sender", help="From: address")
    p.add_argument("-S", dest="summary", help="summary to send instead of stdin's")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for the command (60)")
    p.add_argument("addresses", nargs="*", metavar="ADDRESS")

    p = add("trap", "send a trap to another mon server (trap.alert)", run_trap)
    p.add_argument("--server", help="mon server to send the trap to")
    p.add_argument("--port", "-p", type=int, default=DEFAULT_TRAP_PORT, help="UDP port (2583)")
    p.add_argument("-U", dest="user", help="user (or MON_TRAP_USER)")
    p.add_argument("-P", dest="password", help="password (or MON_TRAP_PASS)")
    p.add_argument("servers", nargs="*", metavar="HOST", help="more servers (trap.alert's)")

    p = add("cluster", "act on the local hastack cluster", run_cluster)
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--standby", action="store_true", help="put this node in standby")
    action.add_argument("--move", metavar="RESOURCE", help="move RESOURCE")
    action.add_argument(
        "--takeover",
        nargs="?",
        const="all",
        choices=("all", "local", "foreign"),
        help="take resources to this node (all)",
    )
    p.add_argument("--to", metavar="NODE", help="with --move: the node to move to")
    p.add_argument("--lifetime", help="with --move: how long the pin lasts (ISO 8601, PT1H)")
    p.add_argument(
        "--on-recovery",
        choices=("nothing", "clear"),
        default="nothing",
        help="on an upalert: nothing (default) or clear the standby or the move",
    )
    p.add_argument("--socket", help="the node daemon's control socket")
    p.add_argument("-c", "--config", default="/etc/ha.d", help="ha.cf's directory (/etc/ha.d)")
    p.add_argument("--node", help="this node's name (default: the host name)")
    return parser


def main(
    argv: Sequence[str] | None = None,
    stdin: TextIO | None = None,
    env: dict[str, str] | None = None,
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.alert == "cluster" and (args.to or args.lifetime) and not args.move:
        parser.error("--to and --lifetime go with --move")
    if stdin is None:
        # mon hands on whatever the monitor printed: keep bytes that are not UTF-8 as they are
        text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    else:
        text = stdin.read()
    call = read_call(args, text, dict(os.environ if env is None else env))
    try:
        return int(args.run(args, call))
    except AlertError as exc:
        print(f"hastack {args.alert} alert: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
