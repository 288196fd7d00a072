"""`hastack mon serve|status|client|install-monitors`: the mon server (mon.cf as mon 1.3 reads
it), its status, a moncmd-like client, and hastack's built-in monitors and alerts as scripts."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "/etc/mon/mon.cf"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "mon",
        help="service monitoring and alerting: mon 1.3's mon.cf, scripts and protocols",
        description="A mon server that reads mon 1.3's mon.cf, runs its monitor and alert "
        "scripts, answers moncmd and Mon::Client on TCP and takes their traps on UDP, and can "
        "move cluster resources through the `cluster` alert.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    serve = actions.add_parser(
        "serve",
        help="run the server in the foreground (SIGTERM: clean stop; SIGHUP: read mon.cf again)",
        description="Run the mon server in the foreground until SIGTERM or SIGINT (or a "
        "client's `term`). Ports come from mon.cf's serverport and trapport (default 2583).",
    )
    serve.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=DEFAULT_CONFIG,
        help=f"mon.cf (default {DEFAULT_CONFIG})",
    )
    serve.add_argument(
        "--check", action="store_true", help="read mon.cf, say every problem, exit (1 on errors)"
    )
    serve.add_argument(
        "--monitor-timeout",
        type=float,
        metavar="SECONDS",
        help="kill a monitor still running after this long (hastack's; mon waits forever)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log more")
    serve.set_defaults(func=run_serve)

    status = actions.add_parser(
        "status",
        help="every service's state, from a running server (hastack's or mon's)",
        description="Ask a mon server (`list opstatus`, `list disabled`) and show each "
        "service: its status, when it last ran, its summary, acks and disables.",
    )
    _server_args(status)
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=run_status)

    client = actions.add_parser(
        "client",
        help="send commands to a mon server, as moncmd does",
        description="Send each COMMAND (for instance 'list opstatus', 'disable service web "
        "http', 'ack web http looking at it', 'test monitor web http') and print the answer "
        "lines. Exit 0 when every command succeeded, 1 otherwise.",
    )
    _server_args(client)
    client.add_argument("commands", nargs="+", metavar="COMMAND")
    client.set_defaults(func=run_client)

    install = actions.add_parser(
        "install-monitors",
        help="install hastack's built-in monitors and alerts as mon scripts",
        description="Write hastack-NAME.monitor wrappers into MONDIR and hastack-NAME.alert "
        "wrappers into ALERTDIR (tcp, http, https, ping, dns, smtp, freespace, processes, "
        "filechange; file, mail, trap, cluster).",
    )
    install.add_argument("mondir", type=Path)
    install.add_argument("alertdir", type=Path)
    install.set_defaults(func=run_install)


def _server_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--server", default="127.0.0.1", help="the server (127.0.0.1)")
    parser.add_argument("-p", "--port", type=int, default=2583, help="its TCP port (2583)")
    parser.add_argument("-u", "--user", help="log in as USER")
    parser.add_argument(
        "--password-file",
        metavar="FILE",
        help="the password's file (its first line), with --user (as moncmd -f)",
    )


def _load(path: str) -> Any:
    from hastack.mon.config import MonConfigError, load

    try:
        cfg = load(path)
    except MonConfigError as exc:
        for problem in exc.problems:
            print(f"hastack mon: {problem}", file=sys.stderr)
        return None
    for warning in cfg.warnings:
        print(f"hastack mon: warning: {warning}", file=sys.stderr)
    return cfg


def run_serve(args: argparse.Namespace) -> int:
    import asyncio

    from hastack.mon.server import MonServer, ServerError

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s hastack-mon %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    cfg = _load(args.config)
    if cfg is None:
        return 1
    if args.monitor_timeout is not None:
        cfg.monitor_timeout = args.monitor_timeout
    if args.check:
        watches = len(cfg.watches)
        services = sum(len(w.services) for w in cfg.watches.values())
        print(f"{args.config}: {watches} watch(es), {services} service(s): ok")
        return 0

    async def main() -> int:
        try:
            server = MonServer(cfg)
        except ServerError as exc:
            logging.getLogger("hastack.mon").error("%s", exc)
            return 1
        return await server.run()

    return asyncio.run(main())


def _connect(args: argparse.Namespace) -> Any:
    from hastack.mon.client import MonClient

    client = MonClient(args.server, args.port)
    client.handshake()
    if args.user:
        password = ""
        if args.password_file:
            password = Path(args.password_file).read_text().splitlines()[0]
        client.login(args.user, password)
    return client


def run_client(args: argparse.Namespace) -> int:
    from hastack.mon.client import MonClientError

    status = 0
    try:
        with _connect(args) as client:
            for command in args.commands:
                answer = client.send(command)
                for line in answer.lines:
                    print(line)
                print(answer.status, file=sys.stdout if answer.ok else sys.stderr)
                status |= 0 if answer.ok else 1
    except (MonClientError, OSError) as exc:
        print(f"hastack mon: {exc}", file=sys.stderr)
        return 2
    return status


STATUS_NAMES = {
    0: "FAIL",
    1: "ok",
    2: "coldstart",
    3: "warmstart",
    4: "linkdown",
    5: "unknown",
    6: "timeout",
    7: "untested",
    8: "dependency",
    9: "warning",
}


def run_status(args: argparse.Namespace) -> int:
    from hastack.mon.client import MonClientError
    from hastack.mon.protocol import parse_opstatus_lines

    try:
        with _connect(args) as client:
            services = parse_opstatus_lines(client.command("list opstatus"))
            disabled = client.command("list disabled")
            servertime = client.command("servertime")
    except (MonClientError, OSError) as exc:
        print(f"hastack mon: {exc}", file=sys.stderr)
        return 2
    rows = []
    for (group, service), fields in sorted(services.items()):
        code = int(fields.get("opstatus", 7) or 7)
        rows.append(
            {
                "group": group,
                "service": service,
                "status": STATUS_NAMES.get(code, str(code)),
                "opstatus": code,
                "last_check": _number(fields.get("last_check")),
                "last_success": _number(fields.get("last_success")),
                "last_failure": _number(fields.get("last_failure")),
                "summary": fields.get("last_summary", ""),
                "alerts_sent": _number(fields.get("alerts_sent")),
                "ack": fields.get("ackcomment", "") if _number(fields.get("ack")) else "",
                "monitor": fields.get("monitor", ""),
            }
        )
    document = {
        "server": f"{args.server}:{args.port}",
        "servertime": servertime[0] if servertime else "",
        "services": rows,
        "disabled": disabled,
    }
    if args.json:
        print(json.dumps(document, indent=1, sort_keys=True))
    else:
        _print_status(document)
    failing = [r for r in rows if r["opstatus"] == 0]
    return 1 if failing else 0


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _ago(stamp: float | None) -> str:
    if not stamp:
        return "never"
    return f"{max(0.0, time.time() - stamp):.0f}s ago"


def _print_status(document: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"mon server {document['server']}", title_justify="left")
    for column in ("GROUP", "SERVICE", "STATUS", "LAST CHECK", "ALERTS", "SUMMARY"):
        table.add_column(column)
    for row in document["services"]:
        status = row["status"]
        style = "bold red" if status == "FAIL" else ("green" if status == "ok" else "")
        summary = row["summary"] + (f" [acked: {row['ack']}]" if row["ack"] else "")
        table.add_row(
            row["group"],
            row["service"],
            f"[{style}]{status}[/]" if style else status,
            _ago(row["last_check"]),
            str(int(row["alerts_sent"] or 0)),
            summary,
        )
    console = Console(
        width=max(100, os.get_terminal_size(sys.stdout.fileno()).columns)
        if sys.stdout.isatty()
        else 160
    )
    console.print(table)
    for line in document["disabled"]:
        console.print(line, markup=False)


def run_install(args: argparse.Namespace) -> int:
    from hastack.mon.builtin import InstallError, install_scripts

    try:
        written = install_scripts(args.mondir, args.alertdir)
    except InstallError as exc:
        print(f"hastack mon: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
