"""`hastack demo`: a 3-node cluster on this machine running a floating IP and a web server;
the machine running them fails and the service comes back on another node.

As root the nodes run in network namespaces with two links each (hastack.lab.netns), with a
client host beside them that fetches pages through the floating address; the active node's
machine is powered off (every process in it killed, its links down) and the demo shows the
detection, the new DC when it was the DC, and how long the client went without a page.
Without root the nodes run on loopback addresses 127.0.0.x with one link and no resources (a
floating IP needs root): the DC is killed and the new DC shown. Everything started is removed
at the end (Ctrl-C and SIGTERM included) unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType
from typing import Any

from hastack.lab.cluster import Cluster, Timers
from hastack.lab.measure import kill_and_measure
from hastack.lab.netns import KEPT_DIR, lab_unavailable_reason
from hastack.lab.services import (
    floating_ip,
    holders,
    http_ok,
    probe_result,
    start_prober,
    web_cib,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a 3-node cluster on this machine, kill the DC, watch",
        description="Start three hastack nodes on this machine (in network namespaces when run "
        "as root, on 127.0.0.x loopback addresses otherwise), show the cluster's status, "
        "SIGKILL the DC, then show the new DC with the measured detection and re-election "
        "times. Everything is cleaned up at the end.",
    )
    parser.add_argument(
        "--mode",
        choices=("auto", "netns", "loopback"),
        default="auto",
        help="where the nodes run (default: netns as root, loopback otherwise)",
    )
    parser.add_argument(
        "--keepalive", type=float, default=0.1, metavar="SECONDS", help="default: 0.1"
    )
    parser.add_argument(
        "--deadtime", type=float, default=0.5, metavar="SECONDS", help="default: 0.5"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the two surviving nodes running (prints how to stop them)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary only")
    parser.set_defaults(func=run)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cluster's cleanup


def run(args: argparse.Namespace) -> int:
    from hastack.cli.status_cmd import format_status

    if args.mode == "netns" and lab_unavailable_reason():
        print(f"hastack demo: {lab_unavailable_reason()}", file=sys.stderr)
        return 1
    if not 0 < 2 * args.keepalive < args.deadtime:
        print(
            "hastack demo: deadtime must exceed 2 x keepalive "
            f"({args.deadtime:g} s <= 2 x {args.keepalive:g} s)",
            file=sys.stderr,
        )
        return 1
    say = (lambda *_a: None) if args.json else print
    previous = signal.signal(signal.SIGTERM, _terminate)
    timers = Timers(keepalive=args.keepalive, deadtime=args.deadtime)
    netns = args.mode == "netns" or (args.mode == "auto" and lab_unavailable_reason() is None)
    cluster = Cluster(
        3,
        mode="netns" if netns else args.mode,
        timers=timers,
        keep=args.keep,
        extra_hosts=["client"] if netns else (),
        cib=(lambda c: web_cib(floating_ip(c))) if netns else None,
    )
    try:
        with cluster:
            where = (
                "network namespaces, 2 links each"
                if cluster.mode == "netns"
                else f"loopback addresses, UDP port {cluster.udpport}"
            )
            say(
                f"Starting 3 hastack nodes in {where} "
                f"(keepalive {timers.keepalive * 1000:.0f} ms, "
                f"deadtime {timers.deadtime * 1000:.0f} ms)"
            )
            for name in cluster.names:
                node = cluster[name]
                say(f"  {name}: {', '.join(node.addresses)}  config {node.config_dir}")
            t0 = time.monotonic()
            states = cluster.wait_converged(timeout=30)
            formed = time.monotonic() - t0
            dc = str(states[cluster.names[0]]["dc"])  # type: ignore[index]
            say(f"\nCluster formed in {formed:.2f} s. Status as {dc} sees it:\n")
            service: dict[str, Any] = {}
            if netns:
                vip = floating_ip(cluster)
                active = _wait_served(cluster, vip)
                if active != dc:  # the demo's failure takes the DC and the service at once
                    from hastack.daemon.control import query

                    move = {"op": "resource-move", "resource": "web", "node": dc}
                    query(cluster[dc].control_path, {"cmd": "cib-apply", "operation": move})
                    active = _wait_served(cluster, vip, on=dc)
                say(_crm_status(cluster, dc, settled=True))
                say(
                    f"\nThe web server answers on the floating IP {vip} (from {active}); the "
                    f"client host fetches a page every 2 ms.\nPower off {active}'s machine "
                    f"(every process killed, links down) ..."
                )
                start_at = time.monotonic() + 0.5
                prober = start_prober(cluster, vip, start_at)
                time.sleep(max(0.0, start_at - time.monotonic()))
                result = kill_and_measure(cluster, active, crash=True)
                downtime = probe_result(prober, result.t_fault)
                service = {
                    "floating_ip": vip,
                    "active": active,
                    "now_on": holders(cluster, vip),
                    "downtime_s": None if downtime is None else round(downtime, 4),
                }
            else:
                say(format_status(states[dc]))  # type: ignore[arg-type]
                say(f"\nSIGKILL {dc} (pid {cluster[dc].process.pid}) ...")  # type: ignore[union-attr]
                result = kill_and_measure(cluster, dc)
            if result.was_dc:
                say(f"\nNew DC: {result.new_dc} (term {result.term_before} -> {result.term_after})")
            say(_times(result.to_json(), timers))
            if service:
                down = service["downtime_s"]
                say(
                    f"Service:     back on {', '.join(service['now_on']) or 'no node'}: the "
                    f"client got a page again {'-' if down is None else f'{down * 1000:.0f} ms'}"
                    " after the power-off"
                )
            if service and result.new_dc is not None:
                say(f"\nStatus as {result.new_dc} sees it:\n")
                say(_crm_status(cluster, result.new_dc, settled=True))
            elif result.status_after is not None:
                say(f"\nStatus as {result.new_dc} sees it:\n")
                say(format_status(result.status_after))
            summary = _summary(cluster, timers, formed, result.to_json())
            summary["service"] = service or None
            if args.keep:
                _detach(cluster, say)
            if args.json:
                print(json.dumps(summary, indent=2, sort_keys=True))
            else:
                say("\nCleaning up." if not args.keep else "")
    except TimeoutError as exc:
        print(f"hastack demo: the cluster did not settle: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _times(result: dict[str, Any], timers: Timers) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    return (
        f"Detection:   {ms(result['detection'])} (status poll), "
        f"{ms(result['detection_log'])} (node-dead log line); deadtime "
        f"{timers.deadtime * 1000:.0f} ms\n"
        f"New DC:      acting after {ms(result['acting'])}, agreed by every survivor after "
        f"{ms(result['reelection'])} (status poll); {ms(result['reelection_log'])} "
        "(dc-elected log line)"
    )


def _summary(
    cluster: Cluster, timers: Timers, formed: float, result: dict[str, Any]
) -> dict[str, Any]:
    return {
        "mode": cluster.mode,
        "keepalive": timers.keepalive,
        "deadtime": timers.deadtime,
        "nodes": {n: cluster[n].addresses for n in cluster.names},
        "formed_s": round(formed, 4),
        "killed": result["victim"],
        "new_dc": result["new_dc"],
        "term_before": result["term_before"],
        "term_after": result["term_after"],
        "detection_s": result["detection"],
        "detection_log_s": result["detection_log"],
        "acting_s": result["acting"],
        "reelection_s": result["reelection"],
        "reelection_log_s": result["reelection_log"],
        "status_after": result["status_after"],
        "workdir": cluster.workdir,
    }


def _wait_served(cluster: Cluster, vip: str, timeout: float = 30.0, on: str | None = None) -> str:
    """The node that serves the floating address (`on` it, if given), once the client gets
    pages through it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        where = holders(cluster, vip)
        if len(where) == 1 and (on is None or where == [on]) and http_ok(cluster, vip):
            return where[0]
        time.sleep(0.1)
    raise TimeoutError(f"the web service did not come up on {vip} within {timeout:g} s")


def _crm_status(cluster: Cluster, node: str, settled: bool = False) -> str:
    """`hastack status` as `node` shows it (`settled`: once no resource is still starting)."""
    from hastack.crm.cib.xml import read_cib
    from hastack.crm.status_view import build_view, render_text
    from hastack.daemon.control import query

    path = cluster[node].control_path
    deadline = time.monotonic() + 10
    while True:
        membership = query(path, {"cmd": "status"})
        cib = read_cib(query(path, {"cmd": "cib-query"})["cib"].encode())
        text = render_text(build_view(cib, membership, time.time()))
        if not settled or "Stopped" not in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def _detach(cluster: Cluster, say: Any) -> None:
    """Leave the survivors running: forget them so that leaving the block cleans nothing."""
    pids = [str(cluster[n].process.pid) for n in cluster.running]  # type: ignore[union-attr]
    namespaces = cluster.lab.namespaces if cluster.lab else []
    status_cmds = [f"hastack status -c {cluster[n].config_dir} --node {n}" for n in cluster.running]
    cluster.detach()
    say(f"\nLeft running (--keep): pids {' '.join(pids)}; files in {cluster.workdir}")
    say("Status:  " + " ; ".join(status_cmds))
    stop = f"kill {' '.join(pids)}"
    if namespaces:
        stop += "; " + "; ".join(f"ip netns del {ns}" for ns in namespaces)
        stop += f"; rm -f {' '.join(KEPT_DIR + '/' + ns for ns in namespaces)}"
    say(f"Stop:    {stop}; rm -r {cluster.workdir}")
