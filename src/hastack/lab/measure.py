"""Failover timing of a running `Cluster`: SIGKILL a node, time its removal and the new DC.

Two clocks are read, each the best one for its question:

- status: every survivor's control socket is polled every `interval` (5 ms); detection is the
  first poll in which any survivor no longer counts the victim as a member, `acting` the first
  poll in which a survivor holds a DC lease of a newer term, and re-election the first poll in
  which all survivors agree on a DC among themselves and that DC holds its lease.
- logs: the survivors' `node-dead` / `dc-elected` lines carry a wall-clock timestamp with
  millisecond resolution, compared with the wall clock read just before the signal.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hastack.lab.cluster import Cluster, Status, converged

LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) (\S+) (\S+) (\S+) (.*)$")


@dataclass
class Failover:
    victim: str
    was_dc: bool
    detection: float | None  # seconds from SIGKILL, by status polling
    acting: float | None  # seconds from SIGKILL until a survivor holds a newer DC lease
    reelection: float | None  # seconds from SIGKILL to an agreed, acting new DC (DC victims)
    new_dc: str | None
    term_before: int | None
    term_after: int | None
    detection_log: float | None  # from the survivors' node-dead log lines
    reelection_log: float | None  # from the new DC's dc-elected log line
    status_after: Status | None
    t_fault: float = 0.0  # time.monotonic() just before the signal (or the power-off)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def log_events(path: Path, event: str, since_wall: float) -> list[tuple[float, str, str]]:
    """(wall time, node, rest of line) of every `event` line logged at or after since_wall."""
    found = []
    if not path.exists():
        return found
    for line in path.read_text(errors="replace").splitlines():
        m = LOG_LINE.match(line)
        if not m or m.group(4) != event:
            continue
        stamp = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
        # The log has millisecond resolution: allow the line's own rounding.
        if stamp >= since_wall - 0.001:
            found.append((stamp, m.group(2), m.group(5)))
    return found


def kill_and_measure(
    cluster: Cluster,
    victim: str,
    timeout: float = 30.0,
    interval: float = 0.005,
    *,
    crash: bool = False,
) -> Failover:
    """SIGKILL `victim` (`crash`: power its machine off, see Cluster.crash) and measure until
    every survivor agrees on a DC among themselves."""
    survivors = [n for n in cluster.running if n != victim]
    before = cluster[victim].status()
    was_dc = bool(before and before.get("is_dc"))
    term_before = before.get("term") if before else None
    wall_kill = time.time()
    t_kill = cluster.crash(victim) if crash else cluster.kill(victim)
    detection = reelection = acting = None
    last: dict[str, Status | None] = {}
    deadline = t_kill + timeout
    while time.monotonic() < deadline:
        states = cluster.statuses(survivors)
        now = time.monotonic()
        last = states
        if detection is None and any(
            s is not None and victim not in s["members"] for s in states.values()
        ):
            detection = now - t_kill
        if (
            was_dc
            and acting is None
            and any(
                s is not None and s.get("is_dc") and s.get("term", 0) > (term_before or 0)
                for s in states.values()
            )
        ):
            acting = now - t_kill
        if converged(states, survivors) and detection is not None:
            dc = next(iter(states.values()))["dc"]  # type: ignore[index]
            holder = states[dc]
            if holder is not None and holder.get("is_dc"):
                reelection = now - t_kill if was_dc else None
                break
        time.sleep(interval)
    else:
        raise TimeoutError(f"survivors {survivors} did not settle within {timeout:g} s")
    new_dc = next(iter(last.values()))["dc"]  # type: ignore[index]
    dead_lines = [
        stamp
        for n in survivors
        for stamp, _node, rest in log_events(cluster[n].log_path, "node-dead", wall_kill)
        if re.search(rf"(^|\s)node={re.escape(victim)}(\s|$)", rest)
    ]
    elected = log_events(cluster[new_dc].log_path, "dc-elected", wall_kill) if was_dc else []
    status_after = last.get(new_dc)
    return Failover(
        victim=victim,
        was_dc=was_dc,
        detection=detection,
        acting=acting,
        reelection=reelection,
        new_dc=new_dc,
        term_before=term_before,
        term_after=status_after.get("term") if status_after else None,
        detection_log=min(dead_lines) - wall_kill if dead_lines else None,
        reelection_log=min(s for s, _, _ in elected) - wall_kill if elected else None,
        status_after=status_after,
        t_fault=t_kill,
    )
