"""The replication daemon (`hastack replica serve`) for real: two daemons in two network
namespaces of a Lab, backing files in a temporary directory, the NBD export of the Primary used
by real clients (qemu-io, nbdfuse + a loop device + ext4, e2fsck).

Each test builds its own lab (namespaces `alpha` and `beta` on one bridge), writes drbd.conf
with the lab's addresses, runs `create-md` and starts both daemons inside their namespaces.
Verbs go to the daemons' control sockets (Unix sockets are not per network namespace) through
the `hastack replica` CLI; state polling reads the same status the CLI's `status --json` prints,
in-process, to keep the polls cheap. Everything started is torn down in fixtures: nbdfuse and
loop devices and mounts, daemons (SIGTERM, then SIGKILL if stuck), the namespaces.

Needs root (namespaces, loop devices, FUSE) and qemu-io, nbdfuse, fusermount3, losetup,
mkfs.ext4, e2fsck, nsenter; a missing piece skips with the reason printed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hastack.lab.netns import Host, Lab
from hastack.lab.process import ManagedProcess
from hastack.replica.control import ControlError, request
from hastack.replica.status_view import json_status

HASTACK = str(Path(sys.executable).with_name("hastack"))
PEER_PORT = 7789
NBD_PORT = 10809
BLOCK = 4096
RES = "r0"
# connect-int 1 s, a ping every 1 s answered within 0.5 s: failures are noticed quickly.
FAST_TIMERS = "connect-int 1; ping-int 1; ping-timeout 5;"


def need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            reason = f"{tool} is not installed (Debian: qemu-utils, nbdfuse, util-linux, e2fsprogs)"
            print(f"skipping: {reason}")
            pytest.skip(reason)
    if not os.path.exists(HASTACK):
        reason = f"{HASTACK} does not exist (install the project into its venv)"
        print(f"skipping: {reason}")
        pytest.skip(reason)


def run(
    argv: list[str], timeout: float = 60, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_area(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def area_digest(path: Path, length: int) -> str:
    """sha256 of the first `length` bytes (the data area of an internal-meta-data backing)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while left:
            chunk = f.read(min(left, 4 << 20))
            assert chunk, f"{path} is shorter than its data area"
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


# --- one node: its namespace, drbd.conf, backing file, daemon ---------------------------------


@dataclass
class Node:
    name: str
    host: Host
    dir: Path
    image: Path
    conf: Path
    socket: Path
    resource: str = RES
    proc: ManagedProcess | None = None
    logs: list[Path] = field(default_factory=list)
    data_bytes: int = 0  # la-size-sect * 512, from dump-md

    @property
    def ip(self) -> str:
        return self.host.addr(0)

    @property
    def nbd_uri(self) -> str:
        return f"nbd://{self.ip}:{NBD_PORT}/{self.resource}"

    @property
    def log(self) -> Path:
        return self.logs[-1]

    def log_text(self, every: bool = False) -> str:
        paths = self.logs if every else self.logs[-1:]
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    # --- the CLI -------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        argv = [HASTACK, "replica", args[0], "--socket", str(self.socket), *args[1:]]
        return run(argv, timeout=timeout, check=check).stdout

    def verb(self, verb: str, *extra: str) -> str:
        return self.cli(verb, *extra, self.resource)

    def cli_status(self) -> dict[str, Any]:
        (res,) = json.loads(self.cli("status", "--json", self.resource))["resources"]
        return res

    def status(self) -> dict[str, Any] | None:
        """What `status --json` prints for the resource, or None if the daemon does not answer."""
        try:
            result = request(str(self.socket), "status", timeout=10, resource=self.resource)
        except ControlError:
            return None
        (res,) = json_status(result)["resources"]
        return res

    def dump_md(self) -> str:
        argv = [HASTACK, "replica", "dump-md", "-c", str(self.conf), "--node", self.name]
        return run([*argv, self.resource]).stdout


def summary(res: dict[str, Any] | None) -> str:
    if res is None:
        return "no answer"
    vol = res["volumes"][0] if res["volumes"] else {}
    return (
        f"{res['role']}/{res['peer_role']} {res['cstate']} "
        f"{vol.get('disk')}/{vol.get('peer_disk')} oos={vol.get('oos')}"
    )


def vol(res: dict[str, Any] | None) -> dict[str, Any]:
    assert res is not None and res["volumes"], f"no volume in {res}"
    return res["volumes"][0]


def in_sync(res: dict[str, Any] | None) -> bool:
    if res is None or not res["volumes"]:
        return False
    v = res["volumes"][0]
    return (
        res["cstate"] == "Connected"
        and v["disk"] == "UpToDate"
        and v["peer_disk"] == "UpToDate"
        and v["oos"] == 0
    )


class Pair:
    """Two replica nodes, alpha (the dialler: its name sorts first) and beta, in a Lab."""

    def __init__(self, lab: Lab, tmp: Path, size: int) -> None:
        self.lab = lab
        self.tmp = tmp
        self.size = size
        self.nodes: dict[str, Node] = {}
        self.cleanups = contextlib.ExitStack()
        for name in ("alpha", "beta"):
            d = tmp / name
            d.mkdir()
            image = d / "disk.img"
            with open(image, "wb") as f:
                f.truncate(size)
            self.nodes[name] = Node(
                name, lab[name], d, image, d / "drbd.conf", tmp / f"{name}.sock"
            )

    @property
    def alpha(self) -> Node:
        return self.nodes["alpha"]

    @property
    def beta(self) -> Node:
        return self.nodes["beta"]

    def write_conf(
        self,
        node: Node,
        *,
        resource: str = RES,
        net_extra: str = "",
        disk_extra: str = "",
        timers: str = FAST_TIMERS,
    ) -> None:
        node.resource = resource
        sections = []
        for other in self.nodes.values():
            sections.append(
                textwrap.indent(
                    textwrap.dedent(
                        f"""\
                        on {other.name} {{
                          device /dev/drbd0;
                          disk {other.image};
                          meta-disk internal;
                          address {other.ip}:{PEER_PORT};
                          nbd-address {other.ip}:{NBD_PORT};
                        }}
                        """
                    ),
                    "  ",
                )
            )
        node.conf.write_text(
            f"resource {resource} {{\n"
            "  protocol C;\n"
            f"  disk {{ resync-rate 200M; c-plan-ahead 0; {disk_extra} }}\n"
            f"  net {{ {timers} {net_extra} }}\n" + "".join(sections) + "}\n"
        )

    def create_md(self, node: Node) -> None:
        argv = [HASTACK, "replica", "create-md", "-c", str(node.conf), "--node", node.name]
        run([*argv, node.resource])
        md = node.dump_md()
        match = re.search(r"la-size-sect (\d+)", md)
        assert match, md
        node.data_bytes = int(match.group(1)) * 512
        assert 0 < node.data_bytes < self.size

    def setup(self, **conf: Any) -> None:
        for node in self.nodes.values():
            self.write_conf(node, **conf)
            self.create_md(node)

    def start(self, node: Node) -> None:
        assert node.proc is None or not node.proc.alive
        log = node.dir / f"daemon.{len(node.logs) + 1}.log"
        node.logs.append(log)
        argv = [HASTACK, "replica", "serve", "-c", str(node.conf), "--node", node.name]
        node.proc = node.host.start([*argv, "--socket", str(node.socket)], str(log))
        # The control socket answers before `serve` has attached the resource (Unconfigured
        # meanwhile): wait for the attached state.
        deadline = time.monotonic() + 30
        while (res := node.status()) is None or res["cstate"] == "Unconfigured":
            if not node.proc.alive:
                raise AssertionError(f"{node.name}'s daemon exited:\n{node.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{node.name}'s daemon never answered:\n{node.log_text()}")
            time.sleep(0.1)

    def stop(self, node: Node, grace: float = 20.0) -> int | None:
        """SIGTERM and wait (a clean stop demotes and detaches); SIGKILL if stuck."""
        if node.proc is None:
            return None
        node.proc.reap(grace=grace)
        return node.proc.returncode

    def kill(self, node: Node) -> None:
        assert node.proc is not None and node.proc.alive
        node.proc.signal(signal.SIGKILL)
        node.proc.wait(10)

    def wait(
        self,
        what: str,
        check: Callable[[], bool],
        timeout: float = 60.0,
        interval: float = 0.2,
    ) -> float:
        """Poll `check` until true; returns the seconds it took. On timeout: both sides' state
        and log tails in the failure."""
        started = time.monotonic()
        while not check():
            if time.monotonic() - started > timeout:
                detail = "\n".join(
                    f"--- {n.name}: {summary(n.status())}\n{n.log_text()[-3000:]}"
                    for n in self.nodes.values()
                )
                raise AssertionError(f"timed out after {timeout:.0f} s: {what}\n{detail}")
            time.sleep(interval)
        return time.monotonic() - started

    def wait_in_sync(self, timeout: float = 120.0) -> float:
        return self.wait(
            "both sides Connected and UpToDate/UpToDate",
            lambda: in_sync(self.alpha.status()) and in_sync(self.beta.status()),
            timeout=timeout,
        )

    def up_and_sync(self, timeout: float = 120.0) -> float:
        """Both daemons running and connected, alpha `primary --force`, the full initial sync."""
        for node in self.nodes.values():
            self.start(node)
        for node in self.nodes.values():
            node.verb("up")  # `serve` brings resources up already: `up` again is harmless
        self.wait(
            "the first connection (both Inconsistent)",
            lambda: all(
                (s := n.status()) is not None and s["cstate"] == "Connected"
                for n in self.nodes.values()
            ),
            timeout=30,
        )
        self.alpha.verb("primary", "--force")
        took = self.wait_in_sync(timeout)
        assert self.alpha.status()["role"] == "Primary"  # type: ignore[index]
        assert self.beta.status()["role"] == "Secondary"  # type: ignore[index]
        return took

    def data_equal(self) -> bool:
        assert self.alpha.data_bytes == self.beta.data_bytes
        n = self.alpha.data_bytes
        return area_digest(self.alpha.image, n) == area_digest(self.beta.image, n)

    def close(self) -> None:
        try:
            self.cleanups.close()
        finally:
            for node in self.nodes.values():
                with contextlib.suppress(Exception):
                    self.stop(node)


def make_pair(tmp_path: Path, size: int) -> Iterator[Pair]:
    need("qemu-io", "nsenter")
    lab = Lab(["alpha", "beta"], links=1)
    pair: Pair | None = None
    try:
        lab.build()
        pair = Pair(lab, tmp_path, size)
        yield pair
    finally:
        if pair is not None:
            pair.close()
        lab.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """16 MiB volumes: the initial full sync takes seconds."""
    yield from make_pair(tmp_path, 16 << 20)


@pytest.fixture
def big_pair(tmp_path: Path) -> Iterator[Pair]:
    """128 MiB volumes (32 activity-log extents of 4 MiB): a file system touches only a few
    extents, so a resync after a Primary crash is visibly smaller than the device."""
    yield from make_pair(tmp_path, 128 << 20)


# --- real block clients ---------------------------------------------------------------------


def qemu_io(node: Node, *commands: str) -> str:
    """Run qemu-io against the node's NBD export inside its namespace."""
    argv = ["qemu-io", "-f", "raw", node.nbd_uri]
    for command in commands:
        argv += ["-c", command]
    proc = node.host.run(argv, timeout=120, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "failed" not in out, f"qemu-io {commands}: {out}"
    return out


def need_block_tools() -> None:
    need("nbdfuse", "fusermount3", "losetup", "mkfs.ext4", "e2fsck", "mount", "umount")
    if not os.path.exists("/dev/fuse"):
        reason = "nbdfuse needs /dev/fuse"
        print(f"skipping: {reason}")
        pytest.skip(reason)


@contextlib.contextmanager
def nbd_loop(node: Node, where: Path) -> Iterator[str]:
    """The node's NBD export as a loop device: nbdfuse runs in the node's network namespace
    (the export's address exists only there) but in our mount namespace (`nsenter --net`, not
    `ip netns exec`, which would give it a private mount namespace), so the loop device and the
    mounts are made here. Cleanup tolerates a dead server (the daemon SIGKILLed)."""
    where.mkdir()
    pidfile = where.parent / f"{where.name}.pid"
    fuse = subprocess.Popen(
        [
            "nsenter",
            f"--net=/run/netns/{node.host.netns}",
            "nbdfuse",
            "-P",
            str(pidfile),
            f"{where}/disk",
            node.nbd_uri,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    loop_dev = ""
    try:
        deadline = time.monotonic() + 20
        while not pidfile.exists():
            if fuse.poll() is not None or time.monotonic() > deadline:
                out = fuse.stdout.read().decode() if fuse.stdout and fuse.poll() is not None else ""
                raise AssertionError(f"nbdfuse did not start ({fuse.poll()}): {out.strip()}")
            time.sleep(0.05)
        attach = run(["losetup", "-f", "--show", f"{where}/disk"], check=False)
        if attach.returncode != 0:
            reason = f"no loop device: {attach.stderr.strip()}"
            print(f"skipping: {reason}")
            pytest.skip(reason)
        loop_dev = attach.stdout.strip()
        yield loop_dev
    finally:
        if loop_dev:
            run(["losetup", "-d", loop_dev], check=False, timeout=30)
        if run(["fusermount3", "-u", str(where)], check=False, timeout=30).returncode != 0:
            run(["fusermount3", "-u", "-z", str(where)], check=False, timeout=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            fuse.wait(10)
        if fuse.poll() is None:
            fuse.kill()
            fuse.wait(10)
        if fuse.stdout:
            fuse.stdout.close()


@contextlib.contextmanager
def mounted(device: str, target: Path, *options: str) -> Iterator[Path]:
    target.mkdir()
    argv = ["mount", "-t", "ext4"]
    if options:
        argv += ["-o", ",".join(options)]
    run([*argv, device, str(target)])
    done = False
    try:
        yield target
        run(["umount", str(target)], timeout=60)
        done = True
    finally:
        if not done:
            run(["umount", "-l", str(target)], check=False, timeout=30)


def resync_blocks(log: str, side: str) -> list[int]:
    return [int(n) for n in re.findall(rf"resync started as {side}: (\d+) blocks", log)]


# --- 1. failover after a Primary crash, then a bitmap-based resync ---------------------------


def test_primary_crash_failover_and_partial_resync(big_pair: Pair, tmp_path: Path) -> None:
    need_block_tools()
    pair = big_pair
    alpha, beta = pair.alpha, pair.beta
    times: dict[str, float] = {}
    pair.setup()
    times["initial full sync"] = pair.up_and_sync(timeout=240)
    device_blocks = alpha.data_bytes // BLOCK
    assert resync_blocks(alpha.log_text(), "source") == [device_blocks]
    assert resync_blocks(beta.log_text(), "target") == [device_blocks]
    assert pair.data_equal()

    # ext4 on the Primary's export, files written and fsynced, then the Primary daemon dies.
    files: dict[str, str] = {}
    started = time.monotonic()
    with nbd_loop(alpha, tmp_path / "fuse-alpha") as loop_dev:
        run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-b",
                "4096",
                "-E",
                "nodiscard,lazy_itable_init=0,lazy_journal_init=0",
                loop_dev,
            ],
            timeout=240,
        )
        with contextlib.ExitStack() as fs:
            target = fs.enter_context(mounted(loop_dev, tmp_path / "mnt-alpha"))
            for i in range(8):
                data = os.urandom(50_000 + i * 37_000)
                path = target / f"file{i}.bin"
                with open(path, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                files[path.name] = hashlib.sha256(data).hexdigest()
            dir_fd = os.open(target, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            times["mkfs + write + fsync"] = time.monotonic() - started
            pair.kill(alpha)
            # The mount's device is gone: the umount in `mounted` fails, so unmount lazily.
            fs.pop_all()
            run(["umount", "-l", str(target)], check=False, timeout=30)
    assert not alpha.proc.alive  # type: ignore[union-attr]

    # beta notices, is UpToDate, and is promoted without --force.
    times["beta notices the loss"] = pair.wait(
        "beta to lose its peer",
        lambda: (s := beta.status()) is not None and s["cstate"] in ("Connecting", "StandAlone"),
        timeout=30,
    )
    assert vol(beta.status())["disk"] == "UpToDate"
    beta.verb("primary")
    assert beta.cli_status()["role"] == "Primary"

    with nbd_loop(beta, tmp_path / "fuse-beta") as loop_dev:
        # A read-only mount still replays the journal (the fsynced transactions), then the
        # files are compared and the unmounted file system must check clean.
        with mounted(loop_dev, tmp_path / "mnt-beta", "ro") as target:
            got = {p.name: sha256(p) for p in sorted(target.glob("file*.bin"))}
        assert got == files
        fsck = run(["e2fsck", "-fn", loop_dev], check=False, timeout=120)
        assert fsck.returncode == 0, f"e2fsck -fn: {fsck.returncode}\n{fsck.stdout}{fsck.stderr}"
    beta_oos = vol(beta.status())["oos"]

    # The old Primary comes back: it was Primary when it crashed, beta has a newer generation,
    # so alpha becomes SyncTarget of the blocks beta's bitmap and alpha's activity log name.
    started = time.monotonic()
    pair.start(alpha)
    times["alpha resync after restart"] = pair.wait_in_sync(timeout=180)
    times["alpha resync after restart"] = time.monotonic() - started
    restarted = alpha.log_text()
    counts = resync_blocks(restarted, "target")
    assert len(counts) == 1, f"expected one resync as target in:\n{restarted}"
    assert 0 < counts[0] <= device_blocks // 3, (
        f"resync of {counts[0]} of {device_blocks} blocks: not a bitmap-based resync "
        f"(beta had {beta_oos} KiB out of sync)"
    )
    assert resync_blocks(beta.log_text(), "source")[-1] == counts[0]
    status = alpha.cli_status()
    assert status["role"] == "Secondary" and status["peer_role"] == "Primary"
    assert pair.data_equal()
    print(f"resync after restart: {counts[0]} of {device_blocks} blocks; timings {times}")


# --- 2. protocol C: acknowledged means on the peer's disk ------------------------------------


def test_protocol_c_write_is_on_the_secondary_when_acknowledged(pair: Pair) -> None:
    alpha, beta = pair.alpha, pair.beta
    pair.setup()
    pair.up_and_sync()
    writes = [
        (0, 64 << 10, 0x11, False),
        (1 << 20, 4096, 0x22, True),  # FUA
        (3 << 20, 1 << 20, 0x33, False),
        ((5 << 20) + 512, 3000, 0x44, False),  # not block-aligned
        ((8 << 20) - 8192, 16384, 0x55, False),  # across an activity-log extent boundary
    ]
    for offset, length, pattern, fua in writes:
        write = f"write {'-f ' if fua else ''}-P {pattern:#x} {offset} {length}"
        qemu_io(alpha, write, "flush")
        # qemu-io has returned: the write and the flush were acknowledged. Under protocol C
        # the secondary's backing file holds the data already (no waiting, no retry).
        expected = bytes([pattern]) * length
        assert read_area(beta.image, offset, length) == expected, (offset, length)
        assert read_area(alpha.image, offset, length) == expected, (offset, length)
    res = alpha.status()
    assert in_sync(res), summary(res)
    assert vol(res)["stats"]["ns"] > 0
    assert pair.data_equal()
    # The secondary refuses its export while Secondary.
    argv = ["qemu-io", "-r", "-f", "raw", beta.nbd_uri, "-c", "read 0 4k"]
    refused = beta.host.run(argv, timeout=60, check=False)
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0 or "failed" in out, out


def test_protocol_c_write_waits_for_a_stopped_secondary(pair: Pair) -> None:
    """With the Secondary's daemon stopped (SIGSTOP: its kernel still takes the TCP data), a
    write is not acknowledged until the Secondary has written it. Slow pings here, so that the
    Primary does not give up on the stopped peer while we watch."""
    alpha, beta = pair.alpha, pair.beta
    pair.setup(timers="connect-int 1; ping-int 10; ping-timeout 50;")
    pair.up_and_sync()
    offset, length = 2 << 20, 64 << 10
    assert beta.proc is not None
    beta.proc.stop()
    argv = ["qemu-io", "-f", "raw", alpha.nbd_uri, "-c", f"write -P 0x66 {offset} {length}"]
    writer = subprocess.Popen(
        alpha.host.ns_argv([*argv, "-c", "flush"]),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(2.0)
        assert writer.poll() is None, f"acknowledged without the peer: {writer.communicate()}"
        assert read_area(beta.image, offset, length) != b"\x66" * length
        beta.proc.cont()
        out, _ = writer.communicate(timeout=60)
        assert writer.returncode == 0 and "failed" not in out, out
        assert read_area(beta.image, offset, length) == b"\x66" * length
    finally:
        beta.proc.cont()
        if writer.poll() is None:
            writer.kill()
            writer.wait(10)
    pair.wait_in_sync(timeout=30)
    assert pair.data_equal()


# --- 3. split brain and its manual resolution ------------------------------------------------


def test_split_brain_detected_and_resolved_keeping_alpha(pair: Pair) -> None:
    alpha, beta = pair.alpha, pair.beta
    pair.setup()
    pair.up_and_sync()
    qemu_io(alpha, "write -P 0x01 0 1M", "flush")  # common data before the split
    assert pair.data_equal()

    cuts = pair.lab.cut_between("alpha", "beta")
    pair.wait(
        "both sides to notice the cut",
        lambda: all(
            (s := n.status()) is not None and s["cstate"] in ("Connecting", "StandAlone")
            for n in pair.nodes.values()
        ),
        timeout=30,
    )
    beta.verb("primary")  # UpToDate, peer unreachable: no --force needed
    qemu_io(alpha, "write -P 0xaa 2M 256k", "flush")  # 64 blocks on alpha
    qemu_io(beta, "write -P 0xbb 4M 128k", "write -P 0xbc 0 8k", "flush")  # 34 on beta
    assert alpha.status()["role"] == beta.status()["role"] == "Primary"  # type: ignore[index]

    pair.lab.heal(cuts=cuts)
    pair.wait(
        "split brain: both StandAlone",
        lambda: all(
            (s := n.status()) is not None and s["cstate"] == "StandAlone"
            for n in pair.nodes.values()
        ),
        timeout=30,
    )
    for node in (alpha, beta):
        assert "split brain detected but unresolved" in node.log_text(), node.log_text()
    assert vol(alpha.status())["oos"] >= 256  # KiB
    assert vol(beta.status())["oos"] >= 136

    dry = beta.cli("resolve", RES, "--keep", "alpha", "--dry-run")
    changed = re.search(r"beta changed (\d+) blocks", dry)
    assert changed and int(changed.group(1)) >= 34, dry
    assert "dry run" in dry
    dry_alpha = alpha.cli("resolve", RES, "--keep", "alpha", "--dry-run")
    changed = re.search(r"alpha changed (\d+) blocks", dry_alpha)
    assert changed and int(changed.group(1)) >= 64, dry_alpha
    assert beta.status()["cstate"] == "StandAlone"  # type: ignore[index]  # nothing done
    assert beta.status()["role"] == "Primary"  # type: ignore[index]

    beta.cli("resolve", RES, "--keep", "alpha")
    assert beta.status()["role"] == "Secondary"  # type: ignore[index]
    alpha.cli("resolve", RES, "--keep", "alpha")
    pair.wait_in_sync(timeout=60)
    # Exactly the blocks either side changed since the split: alpha's 64 and beta's 34.
    assert resync_blocks(beta.log_text(), "target")[-1] == 64 + 34
    assert alpha.status()["role"] == "Primary"  # type: ignore[index]
    assert pair.data_equal()
    assert read_area(beta.image, 2 << 20, 256 << 10) == b"\xaa" * (256 << 10)
    assert read_area(beta.image, 4 << 20, 128 << 10) == bytes(128 << 10)  # beta's write undone
    assert read_area(beta.image, 0, 1 << 20) == b"\x01" * (1 << 20)


# --- 4. a peer that is not the configured one is refused -------------------------------------


def _never_connects(pair: Pair, seconds: float) -> list[str]:
    """Watch both sides for `seconds`: each must answer status and never get past
    Connecting/StandAlone. Returns the states seen."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for node in pair.nodes.values():
            res = node.status()
            assert res is not None, f"{node.name}'s daemon stopped answering:\n{node.log_text()}"
            assert node.proc is not None and node.proc.alive
            seen.add(f"{node.name}:{res['cstate']}")
            assert res["cstate"] in ("Connecting", "StandAlone"), summary(res)
        time.sleep(0.25)
    return sorted(seen)


def _send_garbage(pair: Pair) -> None:
    """A client that is not a replica peer at all, from alpha's namespace to beta's port."""
    script = (
        "import socket,time\n"
        f"s=socket.create_connection(({pair.beta.ip!r},{PEER_PORT}),5)\n"
        "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
        "s.settimeout(15)\n"
        "print(repr(s.recv(100)))\n"
    )
    out = pair.alpha.host.run(["/usr/bin/python3", "-c", script], timeout=30, check=False)
    assert out.returncode == 0, out.stderr  # beta closed it (b'') instead of hanging
    assert "b''" in out.stdout, out.stdout


def test_matching_shared_secret_connects(pair: Pair) -> None:
    """The control for the refusal below: the same configuration with equal secrets."""
    alpha, beta = pair.alpha, pair.beta
    secret = 'cram-hmac-alg sha256; shared-secret "same-secret";'
    pair.setup(net_extra=secret)
    pair.up_and_sync()
    assert "peer authenticated" in alpha.log_text() + beta.log_text()
    qemu_io(alpha, "write -P 0x77 0 64k", "flush")
    assert read_area(beta.image, 0, 64 << 10) == b"\x77" * (64 << 10)


@pytest.mark.parametrize("mismatch", ["shared-secret", "resource-name"])
def test_wrong_peer_is_refused_and_daemons_survive(pair: Pair, mismatch: str) -> None:
    alpha, beta = pair.alpha, pair.beta
    if mismatch == "resource-name":
        pair.write_conf(alpha)
        pair.write_conf(beta, resource="r1")  # same addresses, another resource name
    else:
        pair.write_conf(alpha, net_extra='cram-hmac-alg sha256; shared-secret "alpha-secret";')
        pair.write_conf(beta, net_extra='cram-hmac-alg sha256; shared-secret "other-secret";')
    for node in pair.nodes.values():
        pair.create_md(node)
        pair.start(node)
    watched = time.monotonic()
    seen = _never_connects(pair, 8.0)
    attempts = alpha.log_text().count("r0: connected to beta")
    watched = time.monotonic() - watched
    if mismatch == "resource-name":
        # alpha keeps dialling (Connecting); beta refuses each greeting for resource r0.
        assert re.search(r"r1: refused a peer connection: it is for resource 'r0'", beta.log_text())
        assert "alpha:Connecting" in seen and "beta:Connecting" in seen
        _send_garbage(pair)
        assert "bad greeting" in beta.log_text()
    else:
        text = alpha.log_text() + beta.log_text()
        assert "authentication of peer failed" in text, text
        assert "peer authenticated" not in text
    for node in pair.nodes.values():
        res = node.cli_status()
        assert res["cstate"] in ("Connecting", "StandAlone"), summary(res)
        assert vol(res)["disk"] == "Inconsistent"
        assert node.proc is not None and node.proc.alive
    _never_connects(pair, 2.0)
    for node in pair.nodes.values():
        assert pair.stop(node) == 0, node.log_text()
    # A refused dialler retries once per connect-int (1 s), as DRBD does, not in a busy loop
    # (checked last, so that the checks above run even when this one fails).
    assert attempts <= 2 * watched + 5, (
        f"alpha connected {attempts} times in {watched:.1f} s with connect-int 1"
    )
