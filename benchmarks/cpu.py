"""CPU per node: 16 nodes at keepalive 100 ms, utime + stime from /proc/PID/stat over a window.

hastack (16 daemons in network namespaces, 2 ucast links each, so every node sends 30
datagrams per keepalive) against heartbeat 3 with the same nodes, links and timers, in the same
run. A heartbeat node is several processes (master control, a reader and a writer per link,
the FIFO reader); its CPU is the sum over all of them. Target for hastack: < 1% of one core.

    python benchmarks/cpu.py [--nodes 16] [--window 30]

Prints per-node figures and writes benchmarks/results/cpu.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

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

TICK = os.sysconf("SC_CLK_TCK")


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


def measure(pids_by_node: dict[str, list[int]], window: float) -> dict[str, float]:
    """Percent of one core per node over `window` seconds."""
    before = {n: cpu_seconds(p) for n, p in pids_by_node.items()}
    t0 = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - t0
    return {n: 100 * (cpu_seconds(p) - before[n]) / elapsed for n, p in pids_by_node.items()}


def measure_floor(nodes: int, links: int, window: float) -> dict[str, float]:
    """The same datagram rate through do-nothing asyncio processes (udp_floor_node.py)."""
    script = str(Path(__file__).resolve().parent / "udp_floor_node.py")
    with Lab(nodes, links=links) as lab:
        procs = {}
        for host in lab:
            peers = [a for other in lab if other is not host for a in other.addresses]
            argv = [sys.executable, script, "--port", "7694", "--size", "400", *peers]
            procs[host.name] = host.start(argv)
        time.sleep(3)
        return measure({n: [p.pid] for n, p in procs.items()}, window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--deadtime", type=float, default=1.0)
    parser.add_argument("--links", type=int, default=2, help="ucast links per node (default 2)")
    args = parser.parse_args()
    require_lab()
    on_sigterm_exit()
    timers = Timers(keepalive=0.1, deadtime=args.deadtime)
    print(
        f"== {args.nodes} nodes, keepalive 100 ms, deadtime {args.deadtime:g} s, "
        f"window {args.window:g} s"
    )
    with Cluster(args.nodes, mode="netns", timers=timers, links=args.links) as c:
        c.wait_converged(timeout=120)
        time.sleep(2)  # past start-up work
        pids = {n: [c[n].process.pid] for n in c.names}  # type: ignore[union-attr]
        hs = measure(pids, args.window)
        c.wait_converged(timeout=10)  # still one cluster at the end of the window
    hs_stats = stats(list(hs.values()))
    print(
        f"   hastack   per node: median {hs_stats['median']:.2f}% max {hs_stats['max']:.2f}% "
        f"of a core; target < 1%: {'met' if hs_stats['max'] < 1 else 'MISSED'}"
    )
    with HeartbeatCluster(args.nodes, timers=timers, links=args.links) as hb:
        for peer in hb.names:
            hb.wait_sees_active([n for n in hb.names if n != peer], peer, timeout=180)
        time.sleep(2)
        pids = {n: hb.pids(n) for n in hb.names}
        hbc = measure(pids, args.window)
    hb_stats = stats(list(hbc.values()))
    print(f"   heartbeat per node: median {hb_stats['median']:.2f}% max {hb_stats['max']:.2f}%")
    ratio = hs_stats["median"] / hb_stats["median"] if hb_stats["median"] else None
    if ratio is not None:
        print(f"   hastack / heartbeat (median): {ratio:.2f}x")
    floor = measure_floor(args.nodes, args.links, args.window)
    floor_stats = stats(list(floor.values()))
    print(
        f"   floor (asyncio send/receive only) per node: median {floor_stats['median']:.2f}% "
        f"max {floor_stats['max']:.2f}%"
    )
    path = write_result(
        f"cpu-{args.links}link",
        {
            "nodes": args.nodes,
            "keepalive": 0.1,
            "deadtime": args.deadtime,
            "links": args.links,
            "window_s": args.window,
            "hastack": {"percent_of_core": hs_stats, "per_node": hs},
            "heartbeat": {"percent_of_core": hb_stats, "per_node": hbc},
            "ratio_median_hastack_over_heartbeat": ratio,
            "floor": {"percent_of_core": floor_stats, "per_node": floor},
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
