"""Watchdog keep-alive jitter with both cores saturated: hastack's daemon and watchdog 5.16.

Each daemon feeds a stand-in device: a FIFO that this script reads in a thread raised to
SCHED_FIFO 50 (so that the hogs do not delay the measurement itself), stamping each
keep-alive byte as it arrives. The figure is the gap between consecutive keep-alives: with
`interval = 1` it should be 1 s; what is above it is the jitter, and the maximum gap is what a
watchdog-timeout must leave room for. Each target runs `--seconds` with `--hogs` busy processes
(default 4 per core) at the ordinary priority, with `realtime = no` and `realtime = yes`
(SCHED_RR at priority 1 and mlockall, for both daemons), in the same run.

    .venv/bin/python benchmarks/watchdog_jitter.py [--seconds 60] [--hogs N]

Needs root (realtime scheduling) and Debian's watchdog package (/usr/sbin/watchdog).
Prints each run and a table, and writes benchmarks/results/watchdog_jitter.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import ROOT, on_sigterm_exit, stats, write_result

WATCHDOG_516 = "/usr/sbin/watchdog"
HOG = "import os\nos.nice(0)\nwhile True: pass\n"


class FifoRecorder:
    """Stamps every byte written to a FIFO (a keep-alive), from a SCHED_FIFO thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stamps: list[float] = []
        self.magic = False
        os.mkfifo(path, 0o600)
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.realtime = ""

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:  # this thread only (pid 0 is the calling thread)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
            self.realtime = "SCHED_FIFO 50"
        except OSError as exc:
            self.realtime = f"not realtime: {exc}"
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            now = time.monotonic()
            data = os.read(self._fd, 4096)
            if not data:
                time.sleep(0.01)  # no writer yet (or any more)
                continue
            self.stamps += [now] * data.count(b"\0")
            self.magic = self.magic or b"V" in data

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self._fd)
        self.path.unlink()


@contextlib.contextmanager
def hogs(count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def conf_text(fifo: Path, tmp: Path, realtime: bool, hastack: bool) -> str:
    lines = [
        f"watchdog-device = {fifo}",
        "watchdog-timeout = 60",
        "interval = 1",
        f"realtime = {'yes' if realtime else 'no'}",
        "priority = 1",
        f"log-dir = {tmp / 'log'}",
        "admin =",
    ]
    if hastack:
        lines.append(f"state-dir = {tmp / 'state'}")
    return "\n".join(lines) + "\n"


def run_target(name: str, realtime: bool, seconds: float, nhogs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="wdjitter-") as tmpdir:
        tmp = Path(tmpdir)
        fifo = tmp / "watchdog"
        recorder = FifoRecorder(fifo)
        recorder.start()
        conf = tmp / "watchdog.conf"
        conf.write_text(conf_text(fifo, tmp, realtime, hastack=name == "hastack"))
        if name == "hastack":
            argv = [sys.executable, "-m", "hastack", "watchdog", "run", "-c", str(conf)]
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        else:
            argv = [WATCHDOG_516, "-F", "-f", "-c", str(conf)]
            env = dict(os.environ)
        log = (tmp / "daemon.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + 30
            while len(recorder.stamps) < 2:  # it runs and feeds: start the load
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start: {(tmp / 'daemon.log').read_text()}")
                time.sleep(0.05)
            with hogs(nhogs):
                begin = len(recorder.stamps)
                time.sleep(seconds)
                stamps = recorder.stamps[begin:]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            time.sleep(0.2)
            recorder.close()
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        return {
            "target": name,
            "realtime": realtime,
            "keepalives": len(stamps),
            "gaps": stats(gaps),
            "magic_close": recorder.magic,
            "recorder": recorder.realtime,
        }


def table(runs: list[dict[str, Any]]) -> str:
    rows = [
        "| daemon | realtime | keep-alives | median gap | p99 gap | max gap | max jitter |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        gaps = run["gaps"]
        if not gaps.get("n"):
            rows.append(f"| {run['target']} | {run['realtime']} | 0 | - | - | - | - |")
            continue
        rows.append(
            f"| {run['label']} | {'yes' if run['realtime'] else 'no'} | {run['keepalives']} | "
            f"{gaps['median'] * 1000:.1f} ms | {gaps['p99'] * 1000:.1f} ms | "
            f"{gaps['max'] * 1000:.1f} ms | {(gaps['max'] - 1) * 1000:+.1f} ms |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="per target (default 60)")
    parser.add_argument(
        "--hogs", type=int, default=4 * (os.cpu_count() or 1), help="busy processes"
    )
    args = parser.parse_args()
    on_sigterm_exit()
    if os.geteuid() != 0:
        sys.exit("watchdog_jitter: needs root (realtime scheduling for the daemons)")
    targets = [("hastack", "hastack watchdog")]
    if os.access(WATCHDOG_516, os.X_OK):
        targets.append(("watchdog-5.16", "watchdog 5.16 (Debian)"))
    else:
        print(f"watchdog_jitter: {WATCHDOG_516} missing (apt install watchdog): hastack only")
    runs = []
    started = time.time()
    load = os.getloadavg()[0]
    for realtime in (False, True):
        for name, label in targets:
            run = run_target(name, realtime, args.seconds, args.hogs)
            run["label"] = label
            gaps = run["gaps"]
            print(
                f"{label}, realtime {realtime}: {run['keepalives']} keep-alives, gap median "
                f"{gaps.get('median', 0) * 1000:.1f} ms, max {gaps.get('max', 0) * 1000:.1f} ms"
                f", magic close {run['magic_close']}",
                flush=True,
            )
            runs.append(run)
    print(table(runs))
    path = write_result(
        "watchdog_jitter",
        {
            "seconds": args.seconds,
            "hogs": args.hogs,
            "cpus": os.cpu_count(),
            "load_at_start": load,
            "elapsed_s": time.time() - started,
            "runs": runs,
            "table": table(runs),
        },
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
