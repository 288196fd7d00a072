"""Replicated block device: write throughput over NBD against nbdkit, and resync after a cut.

In one run, on one machine, with fio's nbd engine (one connection, `--seconds` each):
4 KiB random writes at iodepth 32 (IOPS) and 1 MiB sequential writes at iodepth 8 (MiB/s)
against nbdkit's file plugin (the unreplicated ceiling), hastack's plain NBD server with a
FileBackend (unreplicated), and hastack replica pairs on loopback (two daemons, internal
meta-data) under protocol C, B, A and C with `disk-flushes no`. Then, on a fresh protocol C
pair: a full sync by `invalidate` on the Secondary, and the resync after 1% of the 4 KiB blocks
were written on the Primary while the Secondary was disconnected (with `--initial-sync`, also
the initial full sync after `primary --force`).

    .venv/bin/python benchmarks/replica.py [--seconds 10] [--runs 3] [--size-mib 1024] \
        [--resync-runs 3] [--invalidate-runs 1]      # about 9 minutes with the defaults

Needs fio, nbdkit and the system python3 with libnbd's binding (python3-libnbd); no root.
Prints each run and a table, and writes benchmarks/results/replica.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import ROOT, on_sigterm_exit, stats, write_result

from hastack.replica.client import ControlError, request
from hastack.replica.status_view import json_status

SRC = str(ROOT / "src")
HASTACK = [sys.executable, "-m", "hastack"]
ENV = {**os.environ, "PYTHONPATH": SRC}
RES = "r0"
BLOCK = 4096
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3-libnbd is there, not in the venv
# The Secondary's name sorts first: it is the side that dials, so its `connect` dials at once.
SECONDARY, PRIMARY = "alpha", "bravo"
WORKLOADS = {
    # name: (fio --rw, --bs, --iodepth, unit of the figure)
    "randwrite-4k-qd32": ("randwrite", "4k", 32, "IOPS"),
    "write-1m-qd8": ("write", "1m", 8, "MiB/s"),
}
PROTOCOLS = {
    # target name: (protocol, extra disk options)
    "replica-C": ("C", ""),
    "replica-B": ("B", ""),
    "replica-A": ("A", ""),
    "replica-C-noflush": ("C", "disk-flushes no;"),
}
TARGET_LABELS = {
    "nbdkit": "nbdkit file plugin (unreplicated)",
    "plain": "hastack NBD server, FileBackend (unreplicated)",
    "replica-C": "hastack replica, protocol C",
    "replica-B": "hastack replica, protocol B",
    "replica-A": "hastack replica, protocol A",
    "replica-C-noflush": "hastack replica, protocol C, disk-flushes no",
}

# hastack's plain NBD server on one file, until SIGTERM.
PLAIN_SERVER = textwrap.dedent(
    """\
    import asyncio, signal, sys
    import uvloop  # as hastack replica serve runs it, malloc settings included
    from hastack.replica.malloc_tuning import keep_freed_memory
    from hastack.replica.nbd_server import Export, FileBackend, NBDServer

    async def main(path, port):
        backend = FileBackend(path)
        server = NBDServer([Export("disk", backend)], host="127.0.0.1", port=port)
        await server.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(grace=2)
        backend.close()

    keep_freed_memory()
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
    """
)

# Write `count` distinct 4 KiB blocks, chosen at random, through NBD (libnbd), then flush.
WRITE_BLOCKS = textwrap.dedent(
    """\
    import os, random, sys, nbd
    uri, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    h = nbd.NBD()
    h.connect_uri(uri)
    blocks = h.get_size() // 4096
    for block in random.Random(seed).sample(range(blocks), count):
        h.pwrite(os.urandom(4096), block * 4096)
    h.flush()
    h.shutdown()
    print(blocks)
    """
)


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now, bound all at once so that they differ."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def run(argv: list[str], timeout: float = 600) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=ENV)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


class Processes:
    """Every process the benchmark starts, stopped by its PID (SIGTERM, SIGKILL if stuck)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=ENV
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 30) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(list(self.procs)):
            with contextlib.suppress(Exception):
                self.stop(proc)


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads), from /proc/PID/stat."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def make_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.truncate(size)


# --- a replica pair on loopback ----------------------------------------------------------


@dataclass
class Node:
    name: str
    image: Path
    socket: Path
    log: Path
    nbd_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"nbd://127.0.0.1:{self.nbd_port}/{RES}"

    def ask(self, verb: str, **fields: Any) -> Any:
        return request(str(self.socket), verb, timeout=120, resource=RES, **fields)

    def status(self) -> dict[str, Any] | None:
        """What `hastack replica status --json` prints for r0 (asked in-process: cheap to
        poll), or None if the daemon does not answer."""
        try:
            result = request(str(self.socket), "status", timeout=10, resource=RES)
        except ControlError:
            return None
        (res,) = json_status(result)["resources"]
        return res

    def log_lines(self, pattern: str) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if re.search(pattern, line)]


def in_sync(res: dict[str, Any] | None) -> bool:
    if res is None or not res["volumes"]:
        return False
    vol = res["volumes"][0]
    return (
        res["cstate"] == "Connected"
        and vol["disk"] == "UpToDate"
        and vol["peer_disk"] == "UpToDate"
        and vol["oos"] == 0
    )


def summary(res: dict[str, Any] | None) -> str:
    if res is None:
        return "no answer"
    vol = res["volumes"][0] if res["volumes"] else {}
    return (
        f"{res['role']}/{res['peer_role']} {res['cstate']} "
        f"{vol.get('disk')}/{vol.get('peer_disk')} oos={vol.get('oos')} KiB"
    )


class Pair:
    """Two daemons on 127.0.0.1: `bravo` becomes Primary, `alpha` (the dialler) Secondary."""

    def __init__(
        self,
        procs: Processes,
        where: Path,
        size: int,
        protocol: str,
        disk_extra: str = "",
        net_extra: str = "",
    ) -> None:
        self.procs = procs
        self.dir = where
        where.mkdir()
        ports = free_ports(4)
        self.nodes = {
            name: Node(
                name, where / f"{name}.img", where / f"{name}.sock", where / f"{name}.log", ports[i]
            )
            for i, name in enumerate((SECONDARY, PRIMARY))
        }
        sections = ""
        for i, node in enumerate(self.nodes.values()):
            make_file(node.image, size)
            sections += (
                f"  on {node.name} {{ device /dev/drbd0; disk {node.image}; meta-disk internal; "
                f"address 127.0.0.1:{ports[2 + i]}; nbd-address 127.0.0.1:{node.nbd_port}; }}\n"
            )
        self.conf = where / "drbd.conf"
        self.conf.write_text(
            f"resource {RES} {{\n"
            f"  net {{ protocol {protocol}; {net_extra} }}\n"
            f"  disk {{ c-plan-ahead 0; resync-rate 1000M; {disk_extra} }}\n"
            f"{sections}}}\n"
        )
        for node in self.nodes.values():
            run([*HASTACK, "replica", "create-md", "-c", str(self.conf), "--node", node.name, RES])

    @property
    def primary(self) -> Node:
        return self.nodes[PRIMARY]

    @property
    def secondary(self) -> Node:
        return self.nodes[SECONDARY]

    def start(self) -> None:
        """Both daemons (`serve` brings r0 up); returns once they are connected. The listener
        (bravo) first, attached before alpha dials: alpha's first dial then succeeds."""
        for node in (self.primary, self.secondary):
            argv = [*HASTACK, "replica", "serve", "-c", str(self.conf), "--node", node.name]
            node.proc = self.procs.start([*argv, "--socket", str(node.socket)], node.log)
            self.wait(
                f"{node.name}'s daemon attached",
                lambda n=node: (s := n.status()) is not None and s["cstate"] != "Unconfigured",
                timeout=60,
            )
        self.wait(
            "both daemons connected",
            lambda: all(
                (s := n.status()) is not None and s["cstate"] == "Connected"
                for n in self.nodes.values()
            ),
            timeout=60,
        )

    def wait(
        self, what: str, check: Callable[[], bool], timeout: float, interval: float = 0.01
    ) -> float:
        """Poll `check` every `interval` s; the seconds until it held."""
        started = time.monotonic()
        while not check():
            if time.monotonic() - started > timeout:
                states = "; ".join(f"{n.name}: {summary(n.status())}" for n in self.nodes.values())
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}: {states}")
            for node in self.nodes.values():
                if node.proc is not None and node.proc.poll() is not None:
                    raise RuntimeError(f"{node.name}'s daemon exited; see {node.log}")
            time.sleep(interval)
        return time.monotonic() - started

    def in_sync(self) -> bool:
        return all(in_sync(n.status()) for n in self.nodes.values())

    def skip_initial_sync(self) -> None:
        """Both disks are new: new-current-uuid --clear-bitmap, then bravo Primary."""
        self.primary.ask("new-current-uuid", clear_bitmap=True)
        self.wait("UpToDate/UpToDate after --clear-bitmap", self.in_sync, timeout=30)
        self.primary.ask("primary")

    def export_size(self) -> int:
        res = self.primary.status()
        assert res is not None
        return int(res["volumes"][0]["size_kib"]) * 1024

    def resync_count(self) -> int:
        return len(self.primary.log_lines(r"resync started as source"))

    def last_resync_blocks(self) -> int | None:
        lines = self.primary.log_lines(r"resync started as source: \d+ blocks")
        if not lines:
            return None
        return int(re.search(r"source: (\d+) blocks", lines[-1]).group(1))  # type: ignore[union-attr]

    def wait_resync_done(self, before: int, timeout: float) -> float:
        """Until a new resync has started (the log says so) and both sides are UpToDate."""
        return self.wait(
            "the resync to finish",
            lambda: self.resync_count() > before and self.in_sync(),
            timeout=timeout,
        )

    def pids(self) -> dict[str, int]:
        """The daemons' PIDs by role."""
        return {
            role: node.proc.pid
            for role, node in (("primary", self.primary), ("secondary", self.secondary))
            if node.proc is not None
        }

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None:
                self.procs.stop(node.proc)
                node.proc = None

    def complaints(self) -> dict[str, list[str]]:
        """Every WARNING or ERROR line of each daemon's log."""
        return {n.name: n.log_lines(r" (WARNING|ERROR|CRITICAL) ") for n in self.nodes.values()}

    def data_identical(self, size: int) -> bool:
        digests = set()
        for node in self.nodes.values():
            h = hashlib.sha256()
            with node.image.open("rb") as f:
                left = size
                while left:
                    chunk = f.read(min(left, 8 << 20))
                    h.update(chunk)
                    left -= len(chunk)
            digests.add(h.hexdigest())
        return len(digests) == 1


# --- fio ---------------------------------------------------------------------------------


def fio(uri: str, workload: str, seconds: float | None, size: int) -> dict[str, Any]:
    """One fio job over one NBD connection; `seconds` None: write the device once, untimed."""
    rw, bs, iodepth, _ = WORKLOADS[workload]
    argv = [
        "fio",
        "--name=bench",
        "--ioengine=nbd",
        f"--uri={uri}",
        f"--rw={rw}",
        f"--bs={bs}",
        f"--iodepth={iodepth}",
        f"--size={size}",
        "--randrepeat=0",
        "--norandommap",
        "--output-format=json",
    ]
    if seconds is not None:
        argv += ["--time_based", f"--runtime={seconds:g}"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"fio against {uri} exited {proc.returncode}:\n{proc.stderr}")
    text = proc.stdout[proc.stdout.index("{") :]  # fio may print notes before its JSON
    job = json.loads(text)["jobs"][0]
    write = job["write"]
    if job.get("error"):
        raise RuntimeError(f"fio against {uri}: error {job['error']}")
    clat = write.get("clat_ns", {})
    return {
        "iops": write["iops"],
        "mib_s": write["bw_bytes"] / 2**20,
        "bytes": write["io_bytes"],
        "seconds": write["runtime"] / 1000,
        "clat_mean_ms": clat.get("mean", 0) / 1e6,
        "clat_p99_ms": clat.get("percentile", {}).get("99.000000", 0) / 1e6,
    }


def figure(result: dict[str, Any], workload: str) -> float:
    return result["iops"] if WORKLOADS[workload][3] == "IOPS" else result["mib_s"]


def fmt(value: float, workload: str) -> str:
    return f"{value:,.0f} IOPS" if WORKLOADS[workload][3] == "IOPS" else f"{value:,.1f} MiB/s"


# --- the two parts -----------------------------------------------------------------------


@dataclass
class Target:
    name: str
    uri: str
    pids: dict[str, int]  # the serving processes: name -> PID
    stop: Callable[[], None] = field(default=lambda: None)


@contextlib.contextmanager
def throughput_targets(
    procs: Processes, tmp: Path, size_mib: int, names: list[str]
) -> Iterator[tuple[list[Target], int, dict[str, Pair]]]:
    """Start every target; yields them, the export size (the same for all) and the pairs."""
    pairs: dict[str, Pair] = {}
    targets: list[Target] = []
    size = size_mib << 20
    for name in names:
        if name in PROTOCOLS:
            protocol, extra = PROTOCOLS[name]
            pair = Pair(procs, tmp / name, size, protocol, extra)
            pair.start()
            pair.skip_initial_sync()
            pairs[name] = pair
            targets.append(Target(name, pair.primary.uri, pair.pids(), pair.stop))
    # The unreplicated targets get files of the replica's exported size (its data area).
    data = next(iter(pairs.values())).export_size() if pairs else size
    for name in names:
        if name == "nbdkit":
            image, log = tmp / "nbdkit.img", tmp / "nbdkit.log"
            make_file(image, data)
            (port,) = free_ports(1)
            argv = ["nbdkit", "-f", "-i", "127.0.0.1", "-p", str(port), "file", str(image)]
            proc = procs.start(argv, log)
            wait_listening(port, proc)
            uri = f"nbd://127.0.0.1:{port}"
            targets.append(Target(name, uri, {name: proc.pid}, lambda p=proc: procs.stop(p)))
        elif name == "plain":
            image, log = tmp / "plain.img", tmp / "plain.log"
            make_file(image, data)
            (port,) = free_ports(1)
            argv = [sys.executable, "-c", PLAIN_SERVER, str(image), str(port)]
            proc = procs.start(argv, log)
            wait_listening(port, proc)
            uri = f"nbd://127.0.0.1:{port}"
            targets.append(Target(name, uri, {name: proc.pid}, lambda p=proc: procs.stop(p)))
    order = {n: i for i, n in enumerate(names)}
    targets.sort(key=lambda t: order[t.name])
    try:
        yield targets, data, pairs
    finally:
        for target in targets:
            target.stop()


def throughput(
    procs: Processes, tmp: Path, args: argparse.Namespace, names: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {"targets": {}}
    with throughput_targets(procs, tmp, args.size_mib, names) as (targets, size, pairs):
        out["export_bytes"] = size
        for target in targets:
            out["targets"][target.name] = {
                "label": TARGET_LABELS[target.name],
                "fill": None,
                **{w: {"runs": []} for w in WORKLOADS},
            }
        # Write every device once, sequentially, so that no timed run allocates file blocks.
        for target in targets:
            started = time.monotonic()
            fill = fio(target.uri, "write-1m-qd8", None, size)
            fill["wall_seconds"] = time.monotonic() - started
            out["targets"][target.name]["fill"] = fill
            print(f"  fill {target.name:18s} {fill['mib_s']:8.1f} MiB/s")
        # Runs interleaved: each round runs every target once, starting one further along.
        for r in range(args.runs):
            for workload in WORKLOADS:
                for k in range(len(targets)):
                    target = targets[(k + r) % len(targets)]
                    cpu = {k: cpu_seconds([pid]) for k, pid in target.pids.items()}
                    result = fio(target.uri, workload, args.seconds, size)
                    # The servers' CPU over the run, in cores (fio's start-up included).
                    result["server_cores_by_process"] = {
                        k: (cpu_seconds([pid]) - cpu[k]) / result["seconds"]
                        for k, pid in target.pids.items()
                    }
                    result["server_cores"] = sum(result["server_cores_by_process"].values())
                    out["targets"][target.name][workload]["runs"].append(result)
                    print(
                        f"  run {r + 1} {workload:17s} {target.name:18s} "
                        f"{fmt(figure(result, workload), workload):>14s}  "
                        f"latency mean {result['clat_mean_ms']:.2f} ms, "
                        f"p99 {result['clat_p99_ms']:.2f} ms, "
                        f"server CPU {result['server_cores']:.2f} cores"
                    )
        out["daemon_complaints"] = {name: pair.complaints() for name, pair in pairs.items()}
    base = out["targets"].get("nbdkit")
    for entry in out["targets"].values():
        for workload in WORKLOADS:
            values = [figure(r, workload) for r in entry[workload]["runs"]]
            entry[workload]["stats"] = stats(values)
            entry[workload]["unit"] = WORKLOADS[workload][3]
            if base is not None and values:
                ref = statistics_median([figure(r, workload) for r in base[workload]["runs"]])
                entry[workload]["ratio_to_nbdkit"] = entry[workload]["stats"]["median"] / ref
    return out


def flush_ceiling(tmp: Path, rounds: int = 100) -> dict[str, Any]:
    """What one epoch's flush costs on this file system, and the IOPS it allows protocol C.

    The Primary starts a new epoch with the first write after one of the current epoch's
    writes completed (DRBD's rule), so at iodepth 32 an epoch holds at most 32 writes; the
    Secondary flushes at the end of each epoch before it writes the next one's, so under
    protocol C with flushes at most 32 writes complete per flush. Measured here as the
    Secondary does it: 32 random 4 KiB pwrites to a 256 MiB file, then fdatasync, `rounds`
    times; the ceiling is 32 / the median fdatasync time."""
    path = tmp / "flush-probe.img"
    size, depth = 256 << 20, WORKLOADS["randwrite-4k-qd32"][2]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        block = os.urandom(1 << 20)
        for offset in range(0, size, len(block)):  # allocated, as the timed runs' files are
            os.pwrite(fd, block, offset)
        os.fsync(fd)
        rng = random.Random(0)
        times, writes = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(depth):
                os.pwrite(fd, block[:BLOCK], rng.randrange(size // BLOCK) * BLOCK)
            writes.append((time.perf_counter() - started) / depth)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append(time.perf_counter() - started)
    finally:
        os.close(fd)
        path.unlink()
    median = stats(times)["median"]
    return {
        "writes_per_flush": depth,
        "fdatasync_s": stats(times),
        # What one 4 KiB write to the page cache costs here: protocol C makes two per write
        # (the Primary's and the Secondary's), each on its daemon's event loop.
        "pwrite_4k_s": stats(writes),
        "protocol_c_iops_ceiling": depth / median,
    }


def statistics_median(values: list[float]) -> float:
    return stats(values)["median"]


def timed_sync(pair: Pair, verb: Callable[[], None], timeout: float) -> dict[str, Any]:
    """Run `verb`; the seconds until a new resync has started and both sides are UpToDate,
    the blocks it resynced (the Primary's log line) and each daemon's CPU seconds meanwhile."""
    before = pair.resync_count()
    cpu = {n.name: cpu_seconds([n.proc.pid]) for n in pair.nodes.values() if n.proc}
    started = time.monotonic()
    verb()
    pair.wait_resync_done(before, timeout)
    took = time.monotonic() - started
    return {
        "seconds": took,
        "blocks": pair.last_resync_blocks(),
        "cpu_seconds": {
            n.name: cpu_seconds([n.proc.pid]) - cpu[n.name] for n in pair.nodes.values() if n.proc
        },
    }


def resync(procs: Processes, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A fresh protocol C pair (initial sync skipped, or timed with `--initial-sync`), then
    rounds of a full sync by `invalidate` on the Secondary (`--invalidate-runs`) and a resync
    after 1% of the blocks were written while the Secondary was disconnected (`--resync-runs`).
    """
    # connect-int 1: `primary --force` drops the connection and the Secondary dials again
    # after connect-int; timeout 0.9 s because drbd.conf(5) wants it below connect-int.
    pair = Pair(procs, tmp / "resync", args.size_mib << 20, "C", "", "connect-int 1; timeout 9;")
    out: dict[str, Any] = {"initial": None, "full": [], "partial": []}
    try:
        pair.start()
        size = pair.export_size()
        blocks_total = size // BLOCK
        dirty = max(1, blocks_total // 100)
        out.update(export_bytes=size, blocks=blocks_total, dirty_blocks_written=dirty)
        timeout = max(600.0, args.size_mib / 4)
        primary, secondary = pair.primary, pair.secondary

        if args.initial_sync:
            first = timed_sync(pair, lambda: primary.ask("primary", force=True), timeout)
            out["initial"] = first
            print(
                f"  initial full sync (primary --force): {first['seconds']:.2f} s, "
                f"{first['blocks']} blocks (includes the reconnection it makes)"
            )
        else:
            pair.skip_initial_sync()

        for i in range(max(args.resync_runs, args.invalidate_runs)):
            if i < args.invalidate_runs:
                full = timed_sync(pair, lambda: secondary.ask("invalidate"), timeout)
                out["full"].append(full)
                cpu = ", ".join(f"{k} {v:.1f} s" for k, v in full["cpu_seconds"].items())
                print(
                    f"  full sync (invalidate on the Secondary): {full['seconds']:.2f} s, "
                    f"{full['blocks']} blocks; daemon CPU {cpu}"
                )
            if i >= args.resync_runs:
                continue
            secondary.ask("disconnect")
            pair.wait(
                "both sides disconnected",
                lambda: all(
                    (s := n.status()) is not None and s["cstate"] != "Connected"
                    for n in pair.nodes.values()
                ),
                timeout=30,
            )
            written = time.monotonic()
            run([SYSTEM_PYTHON, "-c", WRITE_BLOCKS, primary.uri, str(dirty), str(i + 1)])
            write_seconds = time.monotonic() - written
            res = primary.status()
            oos_kib = res["volumes"][0]["oos"] if res else None
            partial = timed_sync(pair, lambda: secondary.ask("connect"), timeout)
            partial.update(oos_kib_before_connect=oos_kib, write_seconds=write_seconds)
            out["partial"].append(partial)
            print(
                f"  resync of 1% ({dirty} blocks written, {oos_kib} KiB out of sync): "
                f"{partial['seconds']:.3f} s, {partial['blocks']} blocks resynced"
            )
        # The last step was a 1% resync: both copies must now be equal.
        out["data_identical"] = pair.data_identical(size)
        print(f"  data areas identical after the last resync: {out['data_identical']}")
        out["daemon_complaints"] = pair.complaints()
    finally:
        pair.stop()
    full_stats = stats([r["seconds"] for r in out["full"]])
    partial_stats = stats([r["seconds"] for r in out["partial"]])
    out["full_stats"], out["partial_stats"] = full_stats, partial_stats
    if partial_stats.get("n") and full_stats.get("n"):
        out["speedup_median"] = full_stats["median"] / partial_stats["median"]
    return out


def table(result: dict[str, Any]) -> str:
    lines = []
    tp = result.get("throughput")
    if tp:
        lines.append(
            f"{'target':48s} {'4k randwrite QD32':>18s} {'/ nbdkit':>8s} "
            f"{'1M write QD8':>14s} {'/ nbdkit':>8s}"
        )
        for entry in tp["targets"].values():
            cells = []
            for workload in WORKLOADS:
                w = entry[workload]
                ratio = w.get("ratio_to_nbdkit")
                cells.append(
                    f"{fmt(w['stats']['median'], workload):>18s} "
                    f"{'-' if ratio is None else f'{ratio:.2f}x':>8s}"
                )
            lines.append(f"{entry['label']:48s} {cells[0]} {cells[1]:>23s}")
    rs = result.get("resync")
    if rs:
        lines.append(
            f"resync of 1% ({rs['dirty_blocks_written']} of {rs['blocks']} blocks): median "
            f"{rs['partial_stats']['median']:.3f} s; full sync: median "
            f"{rs['full_stats']['median']:.2f} s (invalidate); full / 1%: "
            f"{rs['speedup_median']:.1f}x"
        )
    for name, verdict in result.get("targets_met", {}).items():
        lines.append(f"target {name}: {verdict}")
    return "\n".join(lines)


def verdicts(result: dict[str, Any]) -> dict[str, str]:
    out = {}
    tp = result.get("throughput", {}).get("targets", {})
    c = tp.get("replica-C")
    if c and "ratio_to_nbdkit" in c["randwrite-4k-qd32"]:
        ratio = c["randwrite-4k-qd32"]["ratio_to_nbdkit"]
        met = "met" if ratio >= 0.5 else "MISSED"
        out["protocol C 4k randwrite QD32 >= 50% of nbdkit"] = f"{ratio:.0%}: {met}"
        ratio = c["write-1m-qd8"]["ratio_to_nbdkit"]
        met = "met" if ratio >= 0.5 else "MISSED"
        out["protocol C 1M seq write >= 50% of nbdkit"] = f"{ratio:.0%}: {met}"
    rs = result.get("resync")
    if rs and "speedup_median" in rs:
        speedup = rs["speedup_median"]
        met = "met" if speedup >= 50 else "MISSED"
        out["1% resync >= 50x faster than full sync"] = f"{speedup:.1f}x: {met}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10, help="per fio run (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="fio runs per target and workload")
    parser.add_argument("--size-mib", type=int, default=1024, help="backing file size (1024)")
    parser.add_argument("--resync-runs", type=int, default=3, help="1%% resyncs (default 3)")
    parser.add_argument(
        "--invalidate-runs", type=int, default=1, help="full syncs by invalidate (default 1)"
    )
    parser.add_argument(
        "--targets",
        default="nbdkit,plain," + ",".join(PROTOCOLS),
        help="comma-separated, of: " + ", ".join(TARGET_LABELS),
    )
    parser.add_argument(
        "--initial-sync",
        action="store_true",
        help="also time the initial full sync of the fresh pair (primary --force)",
    )
    parser.add_argument("--no-resync", action="store_true", help="the throughput part only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    names = [n for n in args.targets.split(",") if n]
    unknown = [n for n in names if n not in TARGET_LABELS]
    if unknown:
        sys.exit(f"unknown targets: {', '.join(unknown)}")
    for tool in ("fio", "nbdkit"):
        if shutil.which(tool) is None:
            sys.exit(f"cannot run: {tool} is not installed")
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import nbd"], capture_output=True)
    if not args.no_resync and probe.returncode != 0:
        sys.exit(f"cannot run: {SYSTEM_PYTHON} cannot import nbd (Debian: python3-libnbd)")
    on_sigterm_exit()
    result: dict[str, Any] = {
        "seconds": args.seconds,
        "runs": args.runs,
        "size_mib": args.size_mib,
        "nproc": int(subprocess.run(["nproc"], capture_output=True, text=True).stdout),
        "loadavg_start": list(os.getloadavg()),
        "fio": subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip(),
        "nbdkit": subprocess.run(["nbdkit", "--version"], capture_output=True, text=True)
        .stdout.strip()
        .splitlines()[0],
    }
    print(f"nproc {result['nproc']}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.monotonic()
    procs = Processes()
    tmp = Path(tempfile.mkdtemp(prefix="hastack-bench-replica-"))
    try:
        if names:
            result["flush"] = flush_ceiling(tmp)
            print(
                "== one epoch's flush (32 x 4 KiB, fdatasync): median "
                f"{result['flush']['fdatasync_s']['median'] * 1000:.2f} ms, so protocol C with "
                f"flushes completes at most {result['flush']['protocol_c_iops_ceiling']:,.0f} "
                "IOPS at iodepth 32; one 4 KiB pwrite to the page cache: median "
                f"{result['flush']['pwrite_4k_s']['median'] * 1e6:.1f} us"
            )
            print(f"== throughput: {args.runs} x {args.seconds:g} s per target and workload")
            result["throughput"] = throughput(procs, tmp, args, names)
        if not args.no_resync:
            print(f"== resync: {args.size_mib} MiB, protocol C")
            result["resync"] = resync(procs, tmp, args)
    finally:
        procs.close()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["loadavg_end"] = list(os.getloadavg())
    result["wall_seconds"] = time.monotonic() - started
    result["targets_met"] = verdicts(result)
    print(table(result))
    path = write_result("replica", result)
    print(f"wrote {path} ({result['wall_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
