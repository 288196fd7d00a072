"""mon at scale: 1,000 services at 10 s intervals, hastack's server against mon 1.3.

Every service watches 127.0.0.1 with a TCP monitor against one listener the benchmark runs.
Targets, one after the other on the same machine, the same mon.cf but for the monitor line:

* hastack, built-in tcp monitor (`hastack-tcp.monitor`: run inside the server, no process);
* hastack, Debian's tcp.monitor (a Perl process per check, as mon runs it);
* mon 1.3 (Debian), Debian's tcp.monitor.

Measured over `--seconds` after a warm-up of one interval: the server's CPU (utime + stime of
the server, and with its reaped children: the monitors), in % of one core; and the scheduling
lag: for every service, the gaps between successive `last_check` values (`list opstatus`,
polled every second) less the interval, p50/p99/max. mon's timers tick once a second, so its
lag includes up to a second of rounding; hastack's scheduler is exact.

    .venv/bin/python benchmarks/mon_scale.py [--services 1000] [--interval 10] [--seconds 60]

Needs Debian's mon package (/usr/sbin/mon, /usr/lib/mon/mon.d/tcp.monitor).
Prints each run and a table, and writes benchmarks/results/mon_scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import ROOT, on_sigterm_exit, stats, write_result

from hastack.mon.builtin import install_scripts
from hastack.mon.client import MonClient, MonClientError
from hastack.mon.protocol import parse_opstatus_lines

MON = "/usr/sbin/mon"
TCP_MONITOR = "/usr/lib/mon/mon.d/tcp.monitor"
TICKS = os.sysconf("SC_CLK_TCK")
AUTH = "command section\nlist: all\nprotid: all\nquit: all\nservertime: all\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Listener:
    """The monitored service: accepts and closes, in a thread of its own event loop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        server = self._loop.run_until_complete(
            asyncio.start_server(handle, "127.0.0.1", self.port, backlog=1024)
        )
        self._ready.set()
        self._loop.run_forever()
        server.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def mon_cf(base: Path, port: int, services: int, interval: int, monitor: str) -> str:
    lines = [
        f"serverport = {port}",
        f"trapport = {port}",
        f"cfbasedir = {base}",
        f"basedir = {base}",
        f"mondir = {base}/mon.d",
        f"alertdir = {base}/alert.d",
        f"statedir = {base}/state",
        f"logdir = {base}/log",
        "randstart = 10s",  # spread the first runs over an interval, as a real site would
        "",
        "hostgroup local 127.0.0.1",
        "",
        "watch local",
    ]
    for number in range(services):
        lines += [
            f"    service tcp{number:04d}",
            f"        monitor {monitor}",
            f"        interval {interval}s",
        ]
    return "\n".join(lines) + "\n"


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(the process's own utime + stime, plus its reaped children's) in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = int(fields[11]) + int(fields[12])
    return own, own + int(fields[13]) + int(fields[14])


def run_target(name: str, services: int, interval: int, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="monscale-") as tmpdir:
        base = Path(tmpdir)
        for sub in ("mon.d", "alert.d", "state", "log"):
            (base / sub).mkdir()
        install_scripts(base / "mon.d", base / "alert.d")
        listener = Listener()
        port = free_port()
        if name == "hastack-builtin":
            monitor = f"hastack-tcp.monitor -p {listener.port}"
        else:
            monitor = f"tcp.monitor -p {listener.port}"
            os.symlink(TCP_MONITOR, base / "mon.d" / "tcp.monitor")
        (base / "mon.cf").write_text(mon_cf(base, port, services, interval, monitor))
        (base / "auth.cf").write_text(AUTH)
        if name == "mon":
            argv = [MON, "-c", str(base / "mon.cf"), "-B", str(base), "-b", str(base),
                    "-P", str(base / "mon.pid")]  # fmt: skip
        else:
            argv = [sys.executable, "-m", "hastack", "mon", "serve", "-c", str(base / "mon.cf")]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        log = (base / "server.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        checks: dict[str, list[float]] = {}
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with MonClient("127.0.0.1", port, timeout=30) as client:
                        client.command("servertime")
                    break
                except MonClientError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{name} did not start: {(base / 'server.log').read_text()}"
                        ) from None
                    time.sleep(0.2)
            time.sleep(interval + 2)  # warm-up: randstart spreads the first runs over it
            before, started = cpu_ticks(proc.pid), time.monotonic()
            accepted = listener.accepted
            with MonClient("127.0.0.1", port, timeout=60) as client:
                while time.monotonic() - started < seconds:
                    for (_g, service), fields in parse_opstatus_lines(
                        client.command("list opstatus")
                    ).items():
                        stamp = fields.get("last_check") or ""
                        seen = checks.setdefault(service, [])
                        if stamp and (not seen or float(stamp) != seen[-1]):
                            seen.append(float(stamp))
                    time.sleep(1.0)
            after, elapsed = cpu_ticks(proc.pid), time.monotonic() - started
            accepted = listener.accepted - accepted
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            listener.close()
        lags = [
            b - a - interval for stamps in checks.values() for a, b in itertools.pairwise(stamps)
        ]
        own = (after[0] - before[0]) / TICKS / elapsed * 100
        total = (after[1] - before[1]) / TICKS / elapsed * 100
        return {
            "target": name,
            "services": services,
            "interval": interval,
            "seconds": elapsed,
            "checks_per_s": accepted / elapsed,
            "cpu_server_pct": own,
            "cpu_with_monitors_pct": total,
            "lag": stats([max(0.0, lag) for lag in lags]),
            "gaps_seen": len(lags),
        }


LABELS = {
    "hastack-builtin": "hastack, built-in tcp monitor (in the server)",
    "hastack-process": "hastack, Debian's tcp.monitor (a process per check)",
    "mon": "mon 1.3 (Debian), Debian's tcp.monitor",
}


def table(runs: list[dict[str, Any]]) -> str:
    rows = [
        "| server | checks/s | CPU, server | CPU, with monitors | lag p50 | lag p99 | lag max |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        lag = run["lag"]
        rows.append(
            f"| {LABELS[run['target']]} | {run['checks_per_s']:.1f} | "
            f"{run['cpu_server_pct']:.1f}% | "
            f"{run['cpu_with_monitors_pct']:.1f}% | {lag['median'] * 1000:.0f} ms | "
            f"{lag['p99'] * 1000:.0f} ms | {lag['max'] * 1000:.0f} ms |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=10, help="seconds (default 10)")
    parser.add_argument("--seconds", type=float, default=60, help="measured, per target")
    parser.add_argument("--targets", default="hastack-builtin,hastack-process,mon")
    args = parser.parse_args()
    on_sigterm_exit()
    targets = args.targets.split(",")
    if not (os.access(MON, os.X_OK) and os.path.exists(TCP_MONITOR)):
        print(f"mon_scale: {MON} or {TCP_MONITOR} missing (apt install mon): hastack built-in only")
        targets = ["hastack-builtin"]
    runs = []
    began = time.time()
    for name in targets:
        run = run_target(name, args.services, args.interval, args.seconds)
        print(
            f"{LABELS[name]}: {run['checks_per_s']:.1f} checks/s, CPU {run['cpu_server_pct']:.1f}% "
            f"(with monitors {run['cpu_with_monitors_pct']:.1f}%), lag p99 "
            f"{run['lag'].get('p99', 0) * 1000:.0f} ms",
            flush=True,
        )
        runs.append(run)
    print(table(runs))
    path = write_result(
        "mon_scale",
        {**vars(args), "elapsed_s": time.time() - began, "runs": runs, "table": table(runs)},
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
