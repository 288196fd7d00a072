"""`hastack demo`: a 3-node cluster on this machine running a floating IP and a web server;
the machine running them fails and the service comes back on another node.

As root the nodes run in network namespaces with two links each (hastack.lab.netns), with a
client host beside them that fetches pages through the floating address; the active node's
machine is powered off (every process in it killed, its links down) and the demo shows the
detection, the new DC when it was the DC, and how long the client went without a page.
With the replicated-disk tools present (nbdfuse, losetup, mkfs.ext4, e2fsck; see
hastack.lab.replica_demo) the group is a replicated disk's: n1 and n2 run `hastack replica
serve` for r0, and the group (nbdfuse, an ext4 Filesystem, the floating IP, a writer appending
fsynced lines to the file system, the web server serving it) follows r0's Primary; after the
power-off the demo reads the file through the floating IP on the survivor, shows that every
line the writer acknowledged before the failure is there, stops the group and checks the file
system with e2fsck. `--no-replica` leaves the disk out; without the tools the demo says why
and runs without it. Without root the nodes run on loopback addresses 127.0.0.x with one link
and no resources (a floating IP needs root): the DC is killed and the new DC shown. Everything
started is removed at the end (namespaces, processes, loop devices; Ctrl-C and SIGTERM
included) unless --keep is given.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from hastack.lab.cluster import Cluster, Timers
from hastack.lab.measure import kill_and_measure
from hastack.lab.netns import KEPT_DIR, lab_unavailable_reason
from hastack.lab.replica_demo import (
    LOG_NAME,
    REPLICA_NODES,
    RESOURCE,
    ReplicaDisk,
    http_get,
    parse_line,
    replica_unavailable_reason,
)
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
        "times. In namespaces the nodes run a floating IP and a web server; with nbdfuse, "
        "losetup, mkfs.ext4 and e2fsck installed they run on a replicated disk (hastack "
        "replica on two of the nodes, an ext4 file system, a writer appending fsynced lines "
        "to it), the node running them is powered off, and the demo shows the data written "
        "before the failure on the survivor and checks its file system. Everything is "
        "cleaned up at the end.",
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
    parser.add_argument(
        "--no-replica",
        action="store_true",
        help="leave out the replicated disk (by default, in network namespaces, the group runs "
        "on a `hastack replica` disk when nbdfuse, losetup, mkfs.ext4 and e2fsck are installed)",
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
    skipped: str | None = None
    if netns:
        skipped = "--no-replica" if args.no_replica else replica_unavailable_reason()
    with_disk = netns and skipped is None
    cib: Callable[[Cluster], bytes] | None = None
    if with_disk:
        cib = lambda c: ReplicaDisk.plan(c).cib(floating_ip(c))  # noqa: E731
    elif netns:
        cib = lambda c: web_cib(floating_ip(c))  # noqa: E731
    cluster = Cluster(
        3,
        mode="netns" if netns else args.mode,
        timers=timers,
        keep=args.keep,
        extra_hosts=["client"] if netns else (),
        cib=cib,
        start_nodes=not with_disk,  # the disk is made before the nodes start
    )
    disk: ReplicaDisk | None = None
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
            if netns and skipped is not None:
                say(f"  (no replicated disk: {skipped})")
            if with_disk:
                disk = ReplicaDisk.plan(cluster)
                _make_disk(disk, say)
                for name in cluster.names:
                    cluster.start(name)
            t0 = time.monotonic()
            states = cluster.wait_converged(timeout=30)
            formed = time.monotonic() - t0
            dc = str(states[cluster.names[0]]["dc"])  # type: ignore[index]
            say(f"\nCluster formed in {formed:.2f} s. Status as {dc} sees it:\n")
            service: dict[str, Any] = {}
            before = ""
            replica: dict[str, Any] | None = {"skipped": skipped} if netns else None
            if netns:
                vip = floating_ip(cluster)
                active = _wait_served(cluster, vip, timeout=90 if disk else 30)
                if disk is not None:
                    # Only n1 and n2 can run the group: a DC elsewhere stays, and the power-off
                    # takes the group's node alone.
                    _wait_group(cluster, dc, active)
                elif active != dc:  # the demo's failure takes the DC and the service at once
                    from hastack.daemon.control import query

                    move = {"op": "resource-move", "resource": "web", "node": dc}
                    query(cluster[dc].control_path, {"cmd": "cib-apply", "operation": move})
                    active = _wait_served(cluster, vip, on=dc)
                say(_crm_status(cluster, dc, settled=True))
                if disk is not None:
                    before = _describe_disk_group(disk, active, say)
                say(
                    f"\nThe web server answers on the floating IP {vip} (from {active}); the "
                    f"client host fetches a page every 2 ms.\nPower off {active}'s machine "
                    f"(every process killed, links down) ..."
                )
                start_at = time.monotonic() + 0.5
                prober = start_prober(cluster, vip, start_at, timeout=90 if disk else 30)
                time.sleep(max(0.0, start_at - time.monotonic()))
                result = kill_and_measure(cluster, active, crash=True)
                downtime = probe_result(prober, result.t_fault, timeout=120)
                service = {
                    "floating_ip": vip,
                    "active": active,
                    "now_on": holders(cluster, vip),
                    "downtime_s": None if downtime is None else round(downtime, 4),
                }
                if disk is not None:
                    replica = _after_failover(cluster, disk, vip, active, result, before)
            else:
                say(format_status(states[dc]))  # type: ignore[arg-type]
                say(f"\nSIGKILL {dc} (pid {cluster[dc].process.pid}) ...")  # type: ignore[union-attr]
                result = kill_and_measure(cluster, dc)
            if result.was_dc:
                say(f"\nNew DC: {result.new_dc} (term {result.term_before} -> {result.term_after})")
            elif netns:
                say(f"\nThe DC, {result.new_dc}, was not on {result.victim}: it stays DC.")
            say(_times(result.to_json(), timers))
            if service:
                down = service["downtime_s"]
                say(
                    f"Service:     back on {', '.join(service['now_on']) or 'no node'}: the "
                    f"client got a page again {'-' if down is None else f'{down * 1000:.0f} ms'}"
                    " after the power-off"
                )
            if replica is not None and disk is not None:
                _report_disk(replica, say)
            if service and result.new_dc is not None:
                say(f"\nStatus as {result.new_dc} sees it:\n")
                say(_crm_status(cluster, result.new_dc, settled=disk is None))
            elif result.status_after is not None:
                say(f"\nStatus as {result.new_dc} sees it:\n")
                say(format_status(result.status_after))
            if disk is not None and replica is not None and result.new_dc is not None:
                checked = _check_file_system(cluster, disk, replica["survivor"], result.new_dc, say)
                replica.update(checked)
            summary = _summary(cluster, timers, formed, result.to_json())
            summary["service"] = service or None
            summary["replica"] = replica
            if args.keep:
                _detach(cluster, say, disk)
            if args.json:
                print(json.dumps(summary, indent=2, sort_keys=True))
            else:
                say("\nCleaning up." if not args.keep else "")
    except TimeoutError as exc:
        print(f"hastack demo: the cluster did not settle: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # making the replicated disk failed
        print(f"hastack demo: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        if disk is not None and not args.keep:
            left = disk.cleanup_loops()  # the nodes' processes (and mounts) are gone by now
            if left:
                print(
                    f"hastack demo: loop devices left attached: {' '.join(left)}", file=sys.stderr
                )
    return 0


def _make_disk(disk: ReplicaDisk, say: Callable[..., None]) -> None:
    """The replicated disk, before the nodes start (see hastack.lab.replica_demo)."""
    nodes = " and ".join(REPLICA_NODES)
    say(
        f"\nReplicated disk {RESOURCE} on {nodes} (hastack replica, protocol C, on link 1): "
        f"backing files in {disk.work}"
    )
    started = time.monotonic()
    disk.prepare()
    say(
        f"  create-md on both; ext4 made on {REPLICA_NODES[0]}'s data area "
        f"({disk.data_bytes >> 20} MiB) and copied to {REPLICA_NODES[1]}'s"
    )
    disk.start_daemons()
    disk.skip_initial_sync()
    say(
        f"  `hastack replica serve` on both, connected; new-current-uuid --clear-bitmap: "
        f"UpToDate/UpToDate without an initial sync ({time.monotonic() - started:.1f} s)"
    )
    say(
        f"  The CIB: a promotable clone of ocf:hastack:replica, and the group web after its "
        f"promotion, on its Primary:\n  nbdfuse (the export as a file) -> Filesystem (ext4, "
        f"through a loop device) -> floating IP -> writer (a line every 100 ms, fsync'd, to "
        f"{LOG_NAME}) -> web server on the file system"
    )


def _view(cluster: Cluster, node: str) -> Any:
    """hastack status's view of the cluster, as `node` sees it."""
    from hastack.crm.cib.xml import read_cib
    from hastack.crm.status_view import build_view
    from hastack.daemon.control import query

    path = cluster[node].control_path
    membership = query(path, {"cmd": "status"})
    cib = read_cib(query(path, {"cmd": "cib-query"})["cib"].encode())
    return build_view(cib, membership, time.time())


GROUP = ("disk", "fs", "vip", "writer", "httpd")


def _group_on(cluster: Cluster, observer: str, node: str | None) -> bool:
    """Every member of the disk's group active on `node` alone (None: active nowhere), and,
    for a node, r0 Promoted there."""
    instances = [i for i in _view(cluster, observer).instances() if i.nodes]
    if node is None:
        return not any(i.primitive in GROUP for i in instances)
    settled = {i.primitive for i in instances if i.nodes == (node,) and i.pending is None}
    promoted = any(
        i.primitive == "r0" and i.nodes == (node,) and i.role == "Promoted" for i in instances
    )
    return promoted and settled.issuperset(GROUP)


def _wait_group(cluster: Cluster, observer: str, node: str | None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not _group_on(cluster, observer, node):
        if time.monotonic() > deadline:
            where = f"on {node}" if node else "stopped"
            raise TimeoutError(f"the group web was not {where} within {timeout:g} s")
        time.sleep(0.2)


def _describe_disk_group(disk: ReplicaDisk, active: str, say: Callable[..., None]) -> str:
    """Let the writer run a moment, show the pair and its last line; returns that line."""
    deadline = time.monotonic() + 20
    while len(disk.acknowledged(active)) < 10 and time.monotonic() < deadline:
        time.sleep(0.1)
    states = {n: disk.disks(n) for n in REPLICA_NODES}
    pair = ", ".join(f"{n} {s[0]}/{s[2]} ({s[1]})" for n, s in states.items())
    acked = disk.acknowledged(active)
    last = acked[-1] if acked else "-"
    say(
        f"\n{RESOURCE}: {pair}. The writer on {active} has written {len(acked)} lines so far, "
        f"the last: {last!r}"
    )
    return last


def _after_failover(
    cluster: Cluster, disk: ReplicaDisk, vip: str, victim: str, result: Any, before: str
) -> dict[str, Any]:
    """After the power-off: the group on the survivor, and what writes.log holds there."""
    survivor = next(n for n in REPLICA_NODES if n != victim)
    observer = result.new_dc or survivor
    acked = disk.acknowledged(victim)  # the dead writer's log is complete now
    last_acked = acked[-1] if acked else None
    _wait_group(cluster, observer, survivor, timeout=90)
    role, cstate, own, peer = disk.disks(survivor)
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the survivor's writer has added a few lines
        text = http_get(cluster, vip, f"/{LOG_NAME}")
        lines = text.splitlines() if text is not None else []
        if sum(1 for x in lines if (p := parse_line(x)) and p[1] == survivor) >= 3:
            break
        time.sleep(0.2)
    parsed = [parse_line(x) for x in lines]
    numbers = [p[0] for p in parsed if p is not None]
    found = last_acked is not None and last_acked in lines
    first_new = next((x for x in lines if (p := parse_line(x)) and p[1] == survivor), None)
    return {
        "skipped": None,
        "nodes": list(REPLICA_NODES),
        "device": disk.device,
        "victim": victim,
        "survivor": survivor,
        "survivor_state": {"role": role, "cstate": cstate, "disk": own, "peer_disk": peer},
        "acknowledged_before": len(acked),
        "last_acknowledged": last_acked,
        "shown_before": before,
        "found_on_survivor": found,
        "line_number": lines.index(last_acked) + 1 if found and last_acked else None,
        "lines": len(lines),
        "consecutive": numbers == list(range(1, len(numbers) + 1)) and None not in parsed,
        "first_from_survivor": first_new,
    }


def _report_disk(replica: dict[str, Any], say: Callable[..., None]) -> None:
    state = replica["survivor_state"]
    say(
        f"Disk:        {RESOURCE} on {replica['survivor']}: {state['role']}/{state['disk']} "
        f"(peer {state['peer_disk']}, {state['cstate']}); the group runs there"
    )
    found = "is there" if replica["found_on_survivor"] else "is MISSING"
    where = f" (line {replica['line_number']})" if replica["line_number"] else ""
    gaps = "numbered without a gap" if replica["consecutive"] else "WITH GAPS in the numbering"
    say(
        f"Data:        {LOG_NAME}, read through the floating IP, has {replica['lines']} lines, "
        f"{gaps}; of the {replica['acknowledged_before']} lines {replica['victim']}'s writer "
        f"acknowledged\n             before the power-off, the last, "
        f"{replica['last_acknowledged']!r}, {found}{where}; {replica['survivor']}'s writer "
        f"went on with {replica['first_from_survivor']!r}"
    )


def _check_file_system(
    cluster: Cluster, disk: ReplicaDisk, survivor: str, observer: str, say: Callable[..., None]
) -> dict[str, Any]:
    """Disable the group (a clean unmount), e2fsck the survivor's disk."""
    from hastack.daemon.control import query

    say(f"\nStop the group (hastack resource disable web) and check {survivor}'s file system:")
    started = time.monotonic()
    disable = {"op": "resource-disable", "resource": "web"}
    query(cluster[observer].control_path, {"cmd": "cib-apply", "operation": disable}, timeout=20)
    _wait_group(cluster, observer, None, timeout=60)
    stopped = time.monotonic() - started
    clean, detail = disk.fsck(survivor)
    say(
        f"  stopped in {stopped:.1f} s (unmounted, loop device and nbdfuse gone); "
        f"e2fsck -fn: {'clean' if clean else 'NOT CLEAN'}: {detail}"
    )
    return {"fsck_clean": clean, "fsck": detail}


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
        "killed_was_dc": result["was_dc"],
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
    from hastack.crm.status_view import render_text

    deadline = time.monotonic() + 10
    while True:
        text = render_text(_view(cluster, node))
        if not settled or "Stopped" not in text or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def _detach(cluster: Cluster, say: Any, disk: ReplicaDisk | None = None) -> None:
    """Leave the survivors running: forget them so that leaving the block cleans nothing."""
    pids = [str(cluster[n].process.pid) for n in cluster.running]  # type: ignore[union-attr]
    if disk is not None:
        pids += [str(p.pid) for p in disk.daemons.values() if p.alive]
    namespaces = cluster.lab.namespaces if cluster.lab else []
    status_cmds = [f"hastack status -c {cluster[n].config_dir} --node {n}" for n in cluster.running]
    cluster.detach()
    say(f"\nLeft running (--keep): pids {' '.join(pids)}; files in {cluster.workdir}")
    say("Status:  " + " ; ".join(status_cmds))
    if disk is not None:
        node = next((n for n in cluster.running if n in REPLICA_NODES), "NODE")
        say(
            "The group web is disabled (for the file system check): hastack resource enable "
            f"web -c {cluster[node].config_dir} --node {node}"
        )
    stop = f"kill {' '.join(pids)}"
    if namespaces:
        stop += "; " + "; ".join(f"ip netns del {ns}" for ns in namespaces)
        stop += f"; rm -f {' '.join(KEPT_DIR + '/' + ns for ns in namespaces)}"
    loops = disk.loops() if disk is not None else []
    if loops:  # the powered-off node's, still bound to its dead FUSE file
        stop += f"; losetup -d {' '.join(loops)}"
    say(f"Stop:    {stop}; rm -r {cluster.workdir}")
