"""CPU per node: 16 nodes at keepalive 100 ms, utime + stime from /proc/PID/stat over a window.

hastack (16 daemons in network namespaces with 1 or 2 links each, on ucast — one datagram per
peer per keepalive — or bcast/mcast — one per link) against heartbeat 3 with the same nodes,
media and timers, in the same run, and a floor: do-nothing processes with the same traffic
(udp_floor_node.py, paced like hastack's DC and followers and reading its sockets on hastack's
read timer). A heartbeat node is several processes (master control, a reader and a writer per
link, the FIFO reader); its CPU is the sum over all of them. Each figure comes with the
wake-ups a second (voluntary context switches), which is what CPU follows on this machine.
Target for hastack: < 1% of one core on every node, the DC included.

    python benchmarks/cpu.py [--nodes 16] [--window 30] [--links 1|2] [--media ucast|bcast|mcast]

Prints per-node figures and writes benchmarks/results/cpu.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    Cluster,
    HeartbeatCluster,
    Lab,
    Timers,
    on_sigterm_exit,
    require_lab,
    stats,
    write_result,
)

from hastack.config.model import AuthKey, AuthKeys
from hastack.config.timing import derive_timing
from hastack.membership.codec import Grant, Message, encode

TICK = os.sysconf("SC_CLK_TCK")


def dc_of(states: dict[str, Any]) -> str:
    dcs = {s["dc"] for s in states.values() if s is not None}
    if len(dcs) != 1 or None in dcs:
        raise SystemExit(f"the cluster does not agree on one DC: {sorted(map(str, dcs))}")
    return str(dcs.pop())


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def context_switches(pids: list[int]) -> int:
    """Voluntary context switches: how often the processes went to sleep, i.e. woke up."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total


def measure(
    pids_by_node: dict[str, list[int]], window: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Percent of one core, and wake-ups a second, per node over `window` seconds."""
    before = {n: (cpu_seconds(p), context_switches(p)) for n, p in pids_by_node.items()}
    t0 = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - t0
    cpu = {n: 100 * (cpu_seconds(p) - before[n][0]) / elapsed for n, p in pids_by_node.items()}
    wakes = {n: (context_switches(p) - before[n][1]) / elapsed for n, p in pids_by_node.items()}
    return cpu, wakes


def floor_links(lab: Lab, host_index: int, media: str) -> list[str]:
    """udp_floor_node.py LINK_SPECs of one lab host: the same destinations hastack uses."""
    hosts = list(lab)
    specs = []
    for j in range(lab.links):
        if media == "ucast":
            dests = [h.addresses[j] for i, h in enumerate(hosts) if i != host_index]
        elif media == "bcast":
            dests = [str(lab.link_subnet(j).broadcast_address)]
        else:
            dests = [f"239.255.{j}.1"]  # as hastack.lab.cluster.media_lines
        specs.append(f"eth{j}=" + ",".join(dests))
    return specs


def measure_floor(
    nodes: int, links: int, media: str, size: int, window: float, read_interval: float
) -> tuple[dict[str, float], dict[str, float]]:
    """The same datagrams through do-nothing asyncio processes (udp_floor_node.py); the first
    host sends on its timer, the others when they read its datagram, and all read their sockets
    every `read_interval`, as hastack's DC and followers do."""
    script = str(Path(__file__).resolve().parent / "udp_floor_node.py")
    with Lab(nodes, links=links) as lab:
        hosts = list(lab)
        pacer = ",".join(hosts[0].addresses)
        procs = {}
        for i, host in enumerate(hosts):
            argv = [sys.executable, script, "--port", "7694", "--media", media]
            argv += ["--size", str(size), "--read-interval", str(read_interval)]
            if i:
                argv += ["--pace-from", pacer]
            procs[host.name] = host.start(argv + floor_links(lab, i, media))
        time.sleep(3)
        return measure({n: [p.pid] for n, p in procs.items()}, window)


def heartbeat_size(nodes: int) -> int:
    """Bytes of one of our heartbeats in this cluster (the floor sends datagrams this big)."""
    names = tuple(f"n{i + 1}" for i in range(nodes))
    keys = AuthKeys(1, {1: AuthKey(1, "sha256", b"k" * 32)})
    msg = Message(
        cluster=f"lab{os.getpid()}",
        node="n2",
        generation=2**40,
        seq=2**20,
        type="hb",
        seen=names[2:],
        dc="n1",
        dc_age=3,
        term=1,
        grant=Grant("n1", 1, 2**20),
        members=names,
        members_version=(1, 1),
        quorate=True,
        high_term=1,
        voted_term=1,
    )
    return len(encode(msg, keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--deadtime", type=float, default=1.0)
    parser.add_argument("--links", type=int, default=2, help="links per node (default 2)")
    parser.add_argument("--media", choices=["ucast", "bcast", "mcast"], default="ucast")
    args = parser.parse_args()
    require_lab()
    on_sigterm_exit()
    timers = Timers(keepalive=0.1, deadtime=args.deadtime)
    print(
        f"== {args.nodes} nodes, {args.links} x {args.media}, keepalive 100 ms, "
        f"deadtime {args.deadtime:g} s, window {args.window:g} s"
    )
    cluster = Cluster(args.nodes, mode="netns", timers=timers, links=args.links, media=args.media)
    with cluster as c:
        c.wait_converged(timeout=120)
        time.sleep(2)  # past start-up work
        pids = {n: [c[n].process.pid] for n in c.names}  # type: ignore[union-attr]
        dc_before = dc_of(c.statuses())
        hs, hs_wakes = measure(pids, args.window)
        # still one cluster, under the same DC, at the end of the window
        dc = dc_of(c.wait_converged(timeout=10))
        if dc != dc_before:
            print(f"   note: the DC changed from {dc_before} to {dc} during the window")
    hs_stats = stats(list(hs.values()))
    print(
        f"   hastack   per node: median {hs_stats['median']:.2f}% max {hs_stats['max']:.2f}% "
        f"(the DC, {dc}: {hs[dc]:.2f}%) of a core; "
        f"target < 1%: {'met' if round(hs_stats['max'], 2) < 1 else 'MISSED'}; "
        f"wake-ups/s: median {stats(list(hs_wakes.values()))['median']:.0f}, "
        f"DC {hs_wakes[dc]:.0f}"
    )
    with HeartbeatCluster(args.nodes, timers=timers, links=args.links, media=args.media) as hb:
        for peer in hb.names:
            hb.wait_sees_active([n for n in hb.names if n != peer], peer, timeout=180)
        time.sleep(2)
        pids = {n: hb.pids(n) for n in hb.names}
        hbc, hb_wakes = measure(pids, args.window)
    hb_stats = stats(list(hbc.values()))
    print(
        f"   heartbeat per node: median {hb_stats['median']:.2f}% max {hb_stats['max']:.2f}%; "
        f"wake-ups/s (all its processes): median {stats(list(hb_wakes.values()))['median']:.0f}"
    )
    ratio = hs_stats["median"] / hb_stats["median"] if hb_stats["median"] else None
    if ratio is not None:
        print(f"   hastack / heartbeat (median): {ratio:.2f}x")
    size = heartbeat_size(args.nodes)
    read_interval = derive_timing(keepalive=0.1, deadtime=args.deadtime).read_interval
    floor, floor_wakes = measure_floor(
        args.nodes, args.links, args.media, size, args.window, read_interval
    )
    floor_stats = stats(list(floor.values()))
    print(
        f"   floor ({size}-byte datagrams, send/receive only) per node: "
        f"median {floor_stats['median']:.2f}% "
        f"max {floor_stats['max']:.2f}%; "
        f"wake-ups/s: median {stats(list(floor_wakes.values()))['median']:.0f}"
    )
    path = write_result(
        f"cpu-{args.media}-{args.links}link",
        {
            "nodes": args.nodes,
            "media": args.media,
            "keepalive": 0.1,
            "deadtime": args.deadtime,
            "links": args.links,
            "window_s": args.window,
            "read_interval": read_interval,
            "hastack": {
                "percent_of_core": hs_stats,
                "per_node": hs,
                "dc": dc,
                "wakeups_per_s": hs_wakes,
            },
            "heartbeat": {"percent_of_core": hb_stats, "per_node": hbc, "wakeups_per_s": hb_wakes},
            "ratio_median_hastack_over_heartbeat": ratio,
            "floor": {
                "percent_of_core": floor_stats,
                "per_node": floor,
                "datagram_bytes": size,
                "wakeups_per_s": floor_wakes,
            },
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
