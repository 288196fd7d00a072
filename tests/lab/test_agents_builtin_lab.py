"""hastack's built-in agents doing the real thing, as root: ocf-tester (Debian's resource-agents)
passes for every one of them installed into a temporary OCF root; IPaddr2 adds an address in a
network namespace and a peer namespace learns it from the gratuitous ARP; Filesystem mounts an
ext4 image through a loop device, checks it at depth 20 and unmounts it while a process holds a
file open on it.

Everything created here (namespaces named hslab<pid>x..., loop devices of our own images,
mounts under tmp_path, processes) is removed at the end, also when a test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hastack.agents.builtin.filesystem import loops_of, mount_at
from hastack.agents.builtin.install import install_ocf
from hastack.lab.netns import NETNS_PREFIX

pytestmark = pytest.mark.lab

_ns_counter = itertools.count(1)


def need_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        reason = f"needs {', '.join(missing)} on PATH"
        print(f"skipping: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def ocf_root() -> Iterator[Path]:
    """A temporary OCF root with hastack's agents installed.

    Not under pytest's tmp_path: ocf-tester runs `meta-data` as `nobody` to check permissions,
    and /tmp/pytest-of-root is 0700, so the root is a 0755 directory of its own in /tmp.
    """
    root = Path(tempfile.mkdtemp(prefix=f"hastack-ocf-{os.getpid()}-"))
    try:
        root.chmod(0o755)
        install_ocf(root)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def agent_env(params: Mapping[str, str], **extra: str) -> dict[str, str]:
    # No PYTHONPATH from the test run: the installed wrappers must find hastack themselves.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("OCF_")}
    env.update({f"OCF_RESKEY_{k}": v for k, v in params.items()}, **extra)
    return env


def ocf_tester(
    root: Path, type_name: str, name: str, params: Mapping[str, str], netns: str | None = None
) -> None:
    """ocf-tester must pass the agent.

    OCF_ROOT: ocf-tester itself only needs OCF_ROOT to be set (it exports it to the agent);
    resource-agents' shell agents would also need $OCF_ROOT/lib/heartbeat/ocf-shellfuncs, but
    hastack's agents are Python and source nothing, so OCF_ROOT = the temporary root works as
    it is, with no symlink to /usr/lib/ocf/lib.
    """
    argv = ["ocf-tester", "-n", name]
    for key, value in params.items():
        argv += ["-o", f"{key}={value}"]
    argv.append(str(root / "resource.d" / "hastack" / type_name))
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=agent_env({}, OCF_ROOT=str(root)),
        cwd="/",
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "passed all tests" in output, output
    assert "* rc=" not in output, output


def run(
    root: Path,
    type_name: str,
    *args: str,
    params: Mapping[str, str],
    netns: str | None = None,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    argv = [str(root / "resource.d" / "hastack" / type_name), *args]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = agent_env(params, OCF_ROOT=str(root), OCF_RESOURCE_INSTANCE="lab1", **extra)
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.fixture(autouse=True)
def _ocf_tester_present() -> None:
    need_tools("ocf-tester", "xmllint", "su")


# --- the simple agents through ocf-tester ------------------------------------------------------


def test_ocf_tester_passes_dummy(ocf_root: Path, tmp_path: Path) -> None:
    ocf_tester(ocf_root, "Dummy", "dummy1", {"state": str(tmp_path / "dummy1.state")})


def test_ocf_tester_passes_stateful(ocf_root: Path, tmp_path: Path) -> None:
    ocf_tester(ocf_root, "Stateful", "stateful1", {"state": str(tmp_path / "s.state")})


def test_ocf_tester_passes_anything(ocf_root: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "sleep.pid"
    try:
        ocf_tester(
            ocf_root,
            "anything",
            "sleeper",
            {"binfile": "/bin/sleep", "cmdline_options": "1000", "pidfile": str(pidfile)},
        )
        assert not pidfile.exists(), "the last stop should have removed the pidfile"
    finally:
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pidfile.read_text()), signal.SIGKILL)


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"all good\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_ocf_tester_passes_httpcheck(ocf_root: Path, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        params = {
            "port": str(server.server_address[1]),
            "body_regex": "good",
            "state": str(tmp_path / "h.state"),
        }
        ocf_tester(ocf_root, "httpcheck", "web-health", params)
    finally:
        server.shutdown()
        server.server_close()


# --- IPaddr2 in namespaces -------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """Two namespaces joined by a veth: the agent's host and a peer that watches ARP."""

    agent: str
    peer: str

    def agent_mac(self) -> str:
        out = _ip("-n", self.agent, "-j", "link", "show", "eth0")
        return str(json.loads(out)[0]["address"])

    def addresses(self) -> list[dict[str, object]]:
        out = _ip("-n", self.agent, "-j", "-4", "addr", "show", "dev", "eth0")
        return list(json.loads(out)[0]["addr_info"])

    def peer_neighbour(self, ip: str) -> str | None:
        """The MAC the peer's ARP cache holds for ip, if any."""
        out = _ip("-n", self.peer, "-j", "neigh", "show", ip, "dev", "eth0")
        entries = json.loads(out) if out.strip() else []
        return next((str(e["lladdr"]) for e in entries if "lladdr" in e), None)


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def _delete_netns(name: str) -> None:
    # Kill what still runs inside (a background ARP sender), then the namespace itself.
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout
    for pid in pids.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture
def pair() -> Iterator[Pair]:
    n = next(_ns_counter)
    made = Pair(f"{NETNS_PREFIX}{os.getpid()}xra{n}", f"{NETNS_PREFIX}{os.getpid()}xrp{n}")
    try:
        for ns in (made.agent, made.peer):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", made.agent, "link", "add", "eth0", "type", "veth",
            "peer", "name", "eth0", "netns", made.peer)  # fmt: skip
        for ns, addr in ((made.agent, "10.77.0.1/24"), (made.peer, "10.77.0.2/24")):
            _ip("-n", ns, "addr", "add", addr, "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        # Let the peer create ARP entries from gratuitous ARP (by default Linux only updates
        # entries it already has): then a new entry can only have come from our announcement.
        subprocess.run(
            ["ip", "netns", "exec", made.peer, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_accept=1"],
            check=True, capture_output=True, timeout=20,
        )  # fmt: skip
        yield made
    finally:
        _delete_netns(made.agent)
        _delete_netns(made.peer)


def _wait_for(predicate, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def test_ipaddr2_adds_announces_monitors_and_removes(ocf_root: Path, pair: Pair) -> None:
    # No nic or netmask: both come from the agent host's connected route 10.77.0.0/24.
    params = {"ip": "10.77.0.50", "iflabel": "vip", "arp_bg": "false", "arp_count": "3",
              "arp_interval": "100"}  # fmt: skip
    assert pair.peer_neighbour("10.77.0.50") is None
    assert run(ocf_root, "IPaddr2", "monitor", params=params, netns=pair.agent).returncode == 7
    started = run(ocf_root, "IPaddr2", "start", params=params, netns=pair.agent)
    assert started.returncode == 0, started.stderr
    vip = [a for a in pair.addresses() if a["local"] == "10.77.0.50"]
    assert len(vip) == 1
    assert vip[0]["prefixlen"] == 24
    assert vip[0]["broadcast"] == "10.77.0.255"
    assert vip[0]["label"] == "eth0:vip"
    # The peer never talked to 10.77.0.50: its entry comes from the gratuitous ARP.
    assert _wait_for(lambda: pair.peer_neighbour("10.77.0.50") == pair.agent_mac(), 3.0), (
        pair.peer_neighbour("10.77.0.50"),
        pair.agent_mac(),
    )
    assert run(ocf_root, "IPaddr2", "monitor", params=params, netns=pair.agent).returncode == 0
    assert run(ocf_root, "IPaddr2", "start", params=params, netns=pair.agent).returncode == 0
    assert len([a for a in pair.addresses() if a["local"] == "10.77.0.50"]) == 1
    assert run(ocf_root, "IPaddr2", "stop", params=params, netns=pair.agent).returncode == 0
    assert [a for a in pair.addresses() if a["local"] == "10.77.0.50"] == []
    assert run(ocf_root, "IPaddr2", "monitor", params=params, netns=pair.agent).returncode == 7
    assert run(ocf_root, "IPaddr2", "stop", params=params, netns=pair.agent).returncode == 0


def test_ipaddr2_without_arp_the_peer_learns_nothing(ocf_root: Path, pair: Pair) -> None:
    # The control for the test above: with arp_count=0 no entry appears, so the entry there
    # was the announcement's doing.
    params = {"ip": "10.77.0.52", "arp_count": "0"}
    assert run(ocf_root, "IPaddr2", "start", params=params, netns=pair.agent).returncode == 0
    time.sleep(1.0)
    assert pair.peer_neighbour("10.77.0.52") is None
    assert run(ocf_root, "IPaddr2", "stop", params=params, netns=pair.agent).returncode == 0


def test_ipaddr2_background_arp_reaches_the_peer(ocf_root: Path, pair: Pair) -> None:
    params = {"ip": "10.77.0.51", "nic": "eth0", "cidr_netmask": "24", "arp_count": "2"}
    began = time.monotonic()
    started = run(ocf_root, "IPaddr2", "start", params=params, netns=pair.agent)
    assert started.returncode == 0, started.stderr
    assert _wait_for(lambda: pair.peer_neighbour("10.77.0.51") == pair.agent_mac(), 5.0)
    assert time.monotonic() - began < 5.0
    assert run(ocf_root, "IPaddr2", "stop", params=params, netns=pair.agent).returncode == 0


def test_ipaddr2_in_process_has_announced_the_address_when_start_returns(
    ocf_root: Path, pair: Pair
) -> None:
    # Inside the node daemon (in-process, arp_bg on), the first gratuitous ARP goes out
    # before start returns: the process ends at once after start (os._exit kills any
    # thread), and the peer has learnt the address all the same.
    params = {"ip": "10.77.0.53", "nic": "eth0", "cidr_netmask": "24", "arp_count": "3",
              "arp_interval": "500", "arp_bg": "true"}  # fmt: skip
    env = agent_env(params, OCF_ROOT=str(ocf_root), OCF_RESOURCE_INSTANCE="lab1")
    script = (
        "import os, sys\n"
        "from hastack.agents.inprocess import _run\n"
        "rc, out = _run('hastack.agents.builtin.ipaddr2', 'start', dict(os.environ))\n"
        "sys.stdout.write(out); sys.stdout.flush(); os._exit(rc)\n"
    )
    argv = ["ip", "netns", "exec", pair.agent, sys.executable, "-c", script]
    started = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    assert _wait_for(lambda: pair.peer_neighbour("10.77.0.53") == pair.agent_mac(), 5.0)
    assert run(ocf_root, "IPaddr2", "stop", params=params, netns=pair.agent).returncode == 0


def test_ipaddr2_heartbeat_r1_form(ocf_root: Path, pair: Pair) -> None:
    arg = "10.77.0.60/24/eth0/10.77.0.255"
    started = run(ocf_root, "IPaddr2", arg, "start", params={"arp_bg": "false"}, netns=pair.agent)
    assert started.returncode == 0, started.stderr
    vip = [a for a in pair.addresses() if a["local"] == "10.77.0.60"]
    assert vip and vip[0]["prefixlen"] == 24 and vip[0]["broadcast"] == "10.77.0.255"
    status = run(ocf_root, "IPaddr2", arg, "status", params={}, netns=pair.agent)
    assert (status.returncode, status.stdout) == (0, "INFO: IPaddr2 Running OK\n")
    assert run(ocf_root, "IPaddr2", arg, "stop", params={}, netns=pair.agent).returncode == 0
    status = run(ocf_root, "IPaddr2", arg, "status", params={}, netns=pair.agent)
    assert (status.returncode, status.stdout) == (7, "INFO: IPaddr2 Resource is stopped\n")


def test_ipaddr2_without_a_route_is_refused_on_this_node(ocf_root: Path, pair: Pair) -> None:
    result = run(ocf_root, "IPaddr2", "start", params={"ip": "10.99.0.5"}, netns=pair.agent)
    assert result.returncode == 2
    assert "no connected route covers 10.99.0.5" in result.stderr


def test_ocf_tester_passes_ipaddr2(ocf_root: Path, pair: Pair) -> None:
    params = {"ip": "10.77.0.70", "arp_bg": "false", "arp_count": "1"}
    ocf_tester(ocf_root, "IPaddr2", "vip70", params, netns=pair.agent)
    assert [a for a in pair.addresses() if a["local"] == "10.77.0.70"] == []


# --- Filesystem on an ext4 image ---------------------------------------------------------------


@dataclass
class Image:
    path: Path
    mountpoint: Path
    holders: list[subprocess.Popen[bytes]]

    def params(self, **more: str) -> dict[str, str]:
        return {"device": str(self.path), "directory": str(self.mountpoint), "fstype": "ext4",
                **more}  # fmt: skip


@pytest.fixture
def image(tmp_path: Path) -> Iterator[Image]:
    need_tools("mkfs.ext4", "losetup", "mount", "umount")
    made = Image(tmp_path / "fs.img", tmp_path / "mnt", [])
    with made.path.open("wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(made.path)], check=True, capture_output=True)
    try:
        yield made
    finally:
        for proc in made.holders:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
        where = os.path.realpath(made.mountpoint)
        while mount_at(where) is not None:
            if subprocess.run(["umount", "-l", where], capture_output=True).returncode != 0:
                break
        for loop in loops_of(os.path.realpath(made.path)):
            subprocess.run(["losetup", "--detach", loop], capture_output=True, check=False)


def _hold_open(img: Image) -> subprocess.Popen[bytes]:
    """A process keeping a file open on the mounted filesystem (its cwd stays elsewhere)."""
    held = img.mountpoint / "held"
    proc = subprocess.Popen(["sh", "-c", 'exec 3>"$1"; exec sleep 1000', "sh", str(held)], cwd="/")
    img.holders.append(proc)
    assert _wait_for(held.exists, 5.0)
    return proc


def test_filesystem_mounts_checks_and_force_unmounts(ocf_root: Path, image: Image) -> None:
    real_image, real_mnt = os.path.realpath(image.path), os.path.realpath(image.mountpoint)
    assert run(ocf_root, "Filesystem", "monitor", params=image.params()).returncode == 7
    started = run(ocf_root, "Filesystem", "start", params=image.params())
    assert started.returncode == 0, started.stderr
    mounted = mount_at(real_mnt)
    assert mounted is not None and mounted.fstype == "ext4"
    assert loops_of(real_image) == [mounted.source]

    deep = run(ocf_root, "Filesystem", "monitor", params=image.params(), OCF_CHECK_LEVEL="20")
    assert deep.returncode == 0, deep.stderr
    status_files = list((image.mountpoint / ".Filesystem_status").iterdir())
    assert len(status_files) == 1 and status_files[0].read_text().startswith("lab1 ")

    holder = _hold_open(image)
    refused = run(ocf_root, "Filesystem", "stop", params=image.params(force_unmount="false"))
    assert refused.returncode == 1
    assert f"is busy (pids {holder.pid})" in refused.stderr
    assert mount_at(real_mnt) is not None and holder.poll() is None

    stopped = run(ocf_root, "Filesystem", "stop", params=image.params(force_unmount="true"))
    assert stopped.returncode == 0, stopped.stderr
    assert holder.wait(timeout=10) == -signal.SIGTERM
    assert mount_at(real_mnt) is None
    assert loops_of(real_image) == []
    assert run(ocf_root, "Filesystem", "monitor", params=image.params()).returncode == 7


def test_filesystem_read_only_mount_checks_by_reading(ocf_root: Path, image: Image) -> None:
    params = image.params(options="ro")
    assert run(ocf_root, "Filesystem", "start", params=params).returncode == 0
    mounted = mount_at(os.path.realpath(image.mountpoint))
    assert mounted is not None and "ro" in mounted.options
    deep = run(ocf_root, "Filesystem", "monitor", params=params, OCF_CHECK_LEVEL="20")
    assert deep.returncode == 0 and "read-only" in deep.stderr
    assert run(ocf_root, "Filesystem", "stop", params=params).returncode == 0
    assert loops_of(os.path.realpath(image.path)) == []


def test_filesystem_refuses_a_second_mount_of_one_image(ocf_root: Path, image: Image) -> None:
    assert run(ocf_root, "Filesystem", "start", params=image.params()).returncode == 0
    other = image.params()
    other["directory"] = str(image.mountpoint) + "2"
    second = run(ocf_root, "Filesystem", "start", params=other)
    assert second.returncode == 1
    assert "is already mounted at" in second.stderr
    assert run(ocf_root, "Filesystem", "stop", params=image.params()).returncode == 0


def test_ocf_tester_passes_filesystem(ocf_root: Path, image: Image) -> None:
    ocf_tester(ocf_root, "Filesystem", "fs1", image.params())
    assert mount_at(os.path.realpath(image.mountpoint)) is None
    assert loops_of(os.path.realpath(image.path)) == []


# --- nbdfuse: an NBD export (nbdkit's memory plugin on a Unix socket) as a file ----------------


@contextlib.contextmanager
def nbdkit_memory(where: Path, size: str = "16M") -> Iterator[str]:
    """An NBD server on a Unix socket under `where`; yields its URI."""
    need_tools("nbdkit", "nbdfuse", "fusermount3", "losetup")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("nbdfuse needs /dev/fuse")
    sock = where / "nbd.sock"
    server = subprocess.Popen(
        ["nbdkit", "--foreground", "--exit-with-parent", "-U", str(sock), "memory", size],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert server.poll() is None and time.monotonic() < deadline, "nbdkit did not start"
            time.sleep(0.05)
        yield f"nbd+unix:///?socket={sock}"
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        if server.poll() is None:
            server.kill()
            server.wait(10)


def _nbdfuse_cleanup(directory: Path, pidfile: Path) -> None:
    """Whatever a failed test left: loop devices on the file, the FUSE mount, nbdfuse."""
    for loop in loops_of(str(directory / "nbd")):
        subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)
    if mount_at(str(directory)) is not None:
        subprocess.run(["fusermount3", "-u", "-z", str(directory)], capture_output=True)
    with contextlib.suppress(OSError, ValueError, ProcessLookupError):
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)


def test_ocf_tester_passes_nbdfuse(ocf_root: Path) -> None:
    where = Path(tempfile.mkdtemp(prefix=f"hastack-nbdfuse-{os.getpid()}-"))
    where.chmod(0o755)
    params = {"directory": str(where / "fuse"), "pidfile": str(where / "nbdfuse.pid")}
    try:
        with nbdkit_memory(where) as uri:
            ocf_tester(ocf_root, "nbdfuse", "disk1", {"uri": uri, **params})
            assert mount_at(str(where / "fuse")) is None  # the last stop unmounted it
    finally:
        _nbdfuse_cleanup(where / "fuse", where / "nbdfuse.pid")
        shutil.rmtree(where, ignore_errors=True)


def test_nbdfuse_serves_the_export_and_will_not_stop_under_a_loop_device(
    ocf_root: Path, tmp_path: Path
) -> None:
    directory, pidfile = tmp_path / "fuse", tmp_path / "nbdfuse.pid"
    try:
        with nbdkit_memory(tmp_path) as uri:
            params = {"uri": uri, "directory": str(directory), "pidfile": str(pidfile)}
            started = run(ocf_root, "nbdfuse", "start", params=params)
            assert started.returncode == 0, started.stderr
            assert (directory / "nbd").stat().st_size == 16 << 20
            with open(directory / "nbd", "r+b") as f:  # the export, read and written as a file
                f.write(b"hello")
            monitor = run(ocf_root, "nbdfuse", "monitor", params=params, OCF_CHECK_LEVEL="10")
            assert monitor.returncode == 0, monitor.stderr
            loop = subprocess.run(
                ["losetup", "--find", "--show", str(directory / "nbd")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            try:
                busy = run(ocf_root, "nbdfuse", "stop", params=params)
                assert busy.returncode == 1
                assert "still attached to a loop device or mounted" in busy.stderr
                assert run(ocf_root, "nbdfuse", "monitor", params=params).returncode == 0
                with open(loop, "rb") as dev:
                    assert dev.read(5) == b"hello"
            finally:
                subprocess.run(["losetup", "-d", loop], check=False)
            stopped = run(ocf_root, "nbdfuse", "stop", params=params)
            assert stopped.returncode == 0, stopped.stderr
            assert mount_at(str(directory)) is None and not pidfile.exists()
            assert run(ocf_root, "nbdfuse", "monitor", params=params).returncode == 7
            # An export nobody serves: start fails with nbdfuse's own reason.
            refused = {**params, "uri": f"nbd+unix:///?socket={tmp_path / 'nowhere.sock'}"}
            failed = run(ocf_root, "nbdfuse", "start", params=refused)
            assert failed.returncode == 1 and "nbdfuse exited with code" in failed.stderr
            assert mount_at(str(directory)) is None
    finally:
        _nbdfuse_cleanup(directory, pidfile)
