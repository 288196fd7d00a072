"""Shared parts of the benchmarks: statistics, machine description, result files, and the
kill-and-time loops for hastack and for the real peer, heartbeat 3, in namespace labs."""

from __future__ import annotations

import json
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

from hastack.lab.cluster import Cluster, Timers  # noqa: E402
from hastack.lab.heartbeat import (  # noqa: E402
    ACTIVE_LINE,
    DEAD_LINE,
    HeartbeatCluster,
    heartbeat_unavailable_reason,
)
from hastack.lab.logwatch import LogTail, wait_for_all, wait_for_line  # noqa: E402
from hastack.lab.measure import kill_and_measure  # noqa: E402
from hastack.lab.netns import Lab  # noqa: E402, F401  (re-exported for cpu.py)

RESULTS = ROOT / "benchmarks" / "results"
PROFILES = {"fast": Timers(keepalive=0.05, deadtime=0.2), "default": Timers(1.0, 5.0)}
TAKEOVER_LINE = r"mach_down takeover complete for node {node}"


def on_sigterm_exit() -> None:
    """SIGTERM unwinds like Ctrl-C, so every lab is torn down."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def stats(values: list[float]) -> dict[str, Any]:
    """n, median, p99 (nearest rank: with fewer than 100 runs it is the maximum), min, max."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    rank = max(1, -(-99 * len(ordered) // 100))  # ceil(0.99 n)
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "p99": ordered[rank - 1],
        "min": ordered[0],
        "max": ordered[-1],
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hb = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "heartbeat"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "heartbeat": hb or None,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),  # noqa: UP017
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "command": " ".join(["python", *sys.argv]), **data}
    data["machine"] = machine()
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f} ms"


def hastack_detection_runs(timers: Timers, runs: int, nodes: int = 3) -> list[dict[str, Any]]:
    """Kill a non-DC node `runs` times; time its removal by the survivors' status and logs."""
    out = []
    dead_pattern = None
    with Cluster(nodes, mode="netns", timers=timers, links=2) as c:
        c.wait_converged(timeout=60)
        for i in range(runs):
            states = c.statuses()
            dc = next(s["dc"] for s in states.values() if s)
            victim = next(n for n in reversed(c.names) if n != dc)
            survivors = [n for n in c.names if n != victim]
            dead_pattern = re.compile(rf" node-dead .*(^|\s)node={victim}(\s|$)")
            tails = {n: LogTail(c[n].log_path) for n in survivors}
            time.sleep(random.uniform(0, timers.keepalive))  # any phase of the heartbeat cycle
            t_kill = c.kill(victim)
            seen_status = seen_log = None
            deadline = t_kill + 3 * timers.deadtime + 10
            while (seen_status is None or seen_log is None) and time.monotonic() < deadline:
                for tail in tails.values():
                    for line in tail.read():
                        if seen_log is None and dead_pattern.search(line.text):
                            seen_log = line.seen - t_kill
                if seen_status is None:
                    sts = c.statuses(survivors)
                    if any(s is not None and victim not in s["members"] for s in sts.values()):
                        seen_status = time.monotonic() - t_kill
                time.sleep(0.002)
            run = {"run": i, "victim": victim, "status": seen_status, "log": seen_log}
            out.append(run)
            print(f"  hastack  run {i + 1:2d}: status {ms(seen_status)}, log {ms(seen_log)}")
            c.start(victim)
            c.wait_converged(timeout=2 * timers.deadtime + 60)
    return out


def heartbeat_detection_runs(timers: Timers, runs: int, nodes: int = 3) -> list[dict[str, Any]]:
    """Kill a heartbeat node (every process of it) `runs` times; time the first survivor's
    "node X: is dead" line and its "mach_down takeover complete" line."""
    out = []
    with HeartbeatCluster(nodes, timers=timers, links=2) as hb:
        victim = hb.names[-1]
        survivors = hb.names[:-1]
        for peer in hb.names:
            hb.wait_sees_active([n for n in hb.names if n != peer], peer, timeout=120)
        time.sleep(1)
        for i in range(runs):
            tails = hb.tails(survivors)
            takeover_tails = hb.tails(survivors)
            time.sleep(random.uniform(0, timers.keepalive))
            t_kill = hb.kill(victim)
            timeout = 3 * timers.deadtime + 30
            _, line = wait_for_line(tails, DEAD_LINE.format(node=victim), timeout)
            detection = line.seen - t_kill
            try:
                _, tk = wait_for_line(takeover_tails, TAKEOVER_LINE.format(node=victim), 30)
                takeover: float | None = tk.seen - t_kill
            except TimeoutError:
                takeover = None
            out.append({"run": i, "victim": victim, "log": detection, "takeover": takeover})
            print(f"  heartbeat run {i + 1:2d}: dead {ms(detection)}, takeover {ms(takeover)}")
            rejoin = hb.tails(survivors)
            hb.start(victim)
            wait_for_all(rejoin, ACTIVE_LINE.format(node=victim), timeout=120)
            time.sleep(max(1.0, 2 * timers.keepalive))
    return out


def hastack_reelection_runs(timers: Timers, runs: int, nodes: int = 3) -> list[dict[str, Any]]:
    """Kill the DC `runs` times; time detection and an agreed, acting new DC."""
    out = []
    with Cluster(nodes, mode="netns", timers=timers, links=2) as c:
        c.wait_converged(timeout=60)
        for i in range(runs):
            states = c.statuses()
            dc = next(s["dc"] for s in states.values() if s)
            time.sleep(random.uniform(0, timers.keepalive))
            r = kill_and_measure(c, dc, timeout=3 * timers.deadtime + 30, interval=0.002)
            run = {
                "run": i,
                "victim": dc,
                "new_dc": r.new_dc,
                "detection": r.detection,
                "acting": r.acting,
                "reelection": r.reelection,
                "detection_log": r.detection_log,
                "reelection_log": r.reelection_log,
            }
            out.append(run)
            print(
                f"  hastack  run {i + 1:2d}: {dc} -> {r.new_dc}: detection {ms(r.detection)}, "
                f"new DC acting {ms(r.acting)}, agreed by all {ms(r.reelection)} "
                f"(dc-elected log {ms(r.reelection_log)})"
            )
            c.start(dc)
            c.wait_converged(timeout=2 * timers.deadtime + 60)
    return out


def require_lab() -> None:
    reason = heartbeat_unavailable_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
