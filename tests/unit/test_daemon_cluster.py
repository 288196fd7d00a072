"""Real `hastack node start` daemons on loopback addresses, driven through the real CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hastack
from hastack.daemon.control import query

SRC = str(Path(hastack.__file__).resolve().parent.parent)
NET = f"127.78.{os.getpid() % 250 + 1}"  # addresses unique to this test process
NODES = ("node1", "node2", "node3")
TIMEOUT = 20.0  # generous: these tests check behaviour, not speed


def hastack_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "hastack.cli.main", *args]


def env() -> dict[str, str]:
    result = dict(os.environ)
    result["PYTHONPATH"] = SRC + os.pathsep + result.get("PYTHONPATH", "")
    return result


def free_udp_port(addresses: list[str]) -> int:
    """A port that is free on every one of `addresses`."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((addresses[0], 0))
            port = probe.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                    other.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free UDP port")


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for: {what}")


class Cluster:
    """Per-node configuration directories sharing one run_dir, and the daemons started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run_dir = root / "run"
        self.addresses = {name: f"{NET}.{11 + i}" for i, name in enumerate(NODES)}
        self.port = free_udp_port(list(self.addresses.values()))
        self.procs: dict[str, subprocess.Popen[str]] = {}
        for name in NODES:
            self.write_config(name)

    def config_dir(self, name: str) -> Path:
        return self.root / name

    def write_config(self, name: str, extra: str = "") -> None:
        directory = self.config_dir(name)
        directory.mkdir(exist_ok=True)
        lines = [
            "cluster_name daemontest",
            *[f"node {n}" for n in NODES],
            f"udpport {self.port}",
            "keepalive 100ms",
            "warntime 300ms",
            "deadtime 500ms",
            "initdead 1s",
            f"bind lo {self.addresses[name]}",
            *[f"ucast lo {a}" for n, a in self.addresses.items() if n != name],
            f"run_dir {self.run_dir}",
            f"logfile {directory / 'ha-log'}",
            extra,
        ]
        (directory / "ha.cf").write_text("\n".join(lines) + "\n")
        keys = directory / "authkeys"
        keys.write_text("auth 1\n1 sha256 a-test-key-that-is-long-enough\n")
        keys.chmod(0o600)

    def start(self, name: str) -> subprocess.Popen[str]:
        log = open(self.root / f"{name}.stderr", "a")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            hastack_cmd("node", "start", "-c", str(self.config_dir(name)), "--node", name),
            stdout=log,
            stderr=log,
            text=True,
            env=env(),
        )
        log.close()
        self.procs[name] = proc
        wait_until(
            f"{name}'s control socket",
            lambda: (
                self.status(name) is not None or bool(proc.poll() is not None and self.fail(name))
            ),
        )
        return proc

    def fail(self, name: str) -> bool:
        raise AssertionError(f"{name} exited early:\n{self.stderr(name)}")

    def stderr(self, name: str) -> str:
        path = self.root / f"{name}.stderr"
        return path.read_text() if path.exists() else ""

    def socket_path(self, name: str) -> Path:
        return self.run_dir / name / "control.sock"

    def status(self, name: str) -> dict[str, Any] | None:
        """`hastack status --json` of node `name`, or None when it does not answer."""
        result = subprocess.run(
            hastack_cmd("status", "-c", str(self.config_dir(name)), "--node", name, "--json"),
            capture_output=True,
            text=True,
            env=env(),
            timeout=30,
        )
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


def agreed(cluster: Cluster, names: tuple[str, ...], members: list[str]) -> str | None:
    """The DC when every node in `names` shows exactly `members` and the same DC."""
    views = [cluster.status(n) for n in names]
    if any(v is None for v in views):
        return None
    dcs = {v["dc"] for v in views if v is not None}
    if len(dcs) != 1 or None in dcs:
        return None
    if any(v is None or sorted(v["members"]) != members or not v["quorate"] for v in views):
        return None
    return dcs.pop()


def test_three_daemons_form_a_cluster_and_a_killed_node_goes_offline(cluster: Cluster) -> None:
    for name in NODES:
        cluster.start(name)
    wait_until(
        "3 members and one DC on every node",
        lambda: agreed(cluster, NODES, list(NODES)) is not None,
    )
    dc = agreed(cluster, NODES, list(NODES))
    assert dc in NODES
    status = cluster.status("node1")
    assert status is not None
    for key in ("node", "dc", "term", "quorate", "members", "nodes"):
        assert key in status
    assert status["nodes"]["node2"]["links"] == {"ucast lo": "up"}

    # SIGKILL the DC: the survivors see it offline and elect a new DC among themselves.
    cluster.procs[dc].send_signal(signal.SIGKILL)
    cluster.procs[dc].wait(timeout=10)
    survivors = tuple(n for n in NODES if n != dc)

    def dead_everywhere() -> bool:
        views = [cluster.status(n) for n in survivors]
        return all(v is not None and v["nodes"][dc]["state"] == "offline" for v in views)

    wait_until(f"{dc} offline on {survivors}", dead_everywhere)
    wait_until(
        "a new DC among the survivors",
        lambda: agreed(cluster, survivors, sorted(survivors)) in survivors,
    )
    # The human status output shows the dead node and the links.
    text = subprocess.run(
        hastack_cmd("status", "-c", str(cluster.config_dir(survivors[0])), "--node", survivors[0]),
        capture_output=True,
        text=True,
        env=env(),
        timeout=30,
    )
    assert text.returncode == 0, text.stderr
    assert "offline" in text.stdout and "ucast lo" in text.stdout and "DC:" in text.stdout


def test_sigterm_stops_cleanly_and_generation_is_bumped_per_start(cluster: Cluster) -> None:
    proc = cluster.start("node1")
    assert (cluster.run_dir / "node1" / "generation").read_text().strip() == "1"
    assert (cluster.run_dir / "node1" / "pid").read_text().strip() == str(proc.pid)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=TIMEOUT) == 0
    assert not cluster.socket_path("node1").exists()
    assert not (cluster.run_dir / "node1" / "pid").exists()
    assert "daemon-stop" in cluster.stderr("node1")
    # The logfile from ha.cf received the same events.
    assert "daemon-start" in (cluster.config_dir("node1") / "ha-log").read_text()

    proc = cluster.start("node1")
    assert (cluster.run_dir / "node1" / "generation").read_text().strip() == "2"
    status = cluster.status("node1")
    assert status is not None and status["generation"] == 2
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=TIMEOUT) == 0


def test_a_second_daemon_for_the_same_node_is_refused(cluster: Cluster) -> None:
    first = cluster.start("node2")
    second = subprocess.run(
        hastack_cmd("node", "start", "-c", str(cluster.config_dir("node2")), "--node", "node2"),
        capture_output=True,
        text=True,
        env=env(),
        timeout=30,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr and str(first.pid) in second.stderr
    assert first.poll() is None, "the first daemon must keep running"
    assert cluster.status("node2") is not None


def test_a_bad_config_exits_1_listing_every_error(cluster: Cluster) -> None:
    cluster.write_config("node3", extra="keepalive fast\nno_such_directive 1")
    result = subprocess.run(
        hastack_cmd("node", "start", "-c", str(cluster.config_dir("node3")), "--node", "node3"),
        capture_output=True,
        text=True,
        env=env(),
        timeout=30,
    )
    assert result.returncode == 1
    hacf = str(cluster.config_dir("node3") / "ha.cf")
    error_lines = [line for line in result.stderr.splitlines() if hacf in line]
    assert len(error_lines) >= 2, result.stderr
    assert "no_such_directive" in result.stderr and "keepalive" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_node_name_not_in_the_config_is_a_clear_error(cluster: Cluster) -> None:
    result = subprocess.run(
        hastack_cmd("node", "start", "-c", str(cluster.config_dir("node1")), "--node", "nodeX"),
        capture_output=True,
        text=True,
        env=env(),
        timeout=30,
    )
    assert result.returncode == 1
    assert "'nodeX' is not in" in result.stderr and "node1, node2, node3" in result.stderr


def test_status_says_clearly_when_the_daemon_is_not_running(cluster: Cluster) -> None:
    result = subprocess.run(
        hastack_cmd("status", "-c", str(cluster.config_dir("node1")), "--node", "node1"),
        capture_output=True,
        text=True,
        env=env(),
        timeout=30,
    )
    assert result.returncode == 1
    assert "not running" in result.stderr and "hastack node start" in result.stderr


def test_control_socket_survives_garbage_requests(cluster: Cluster) -> None:
    proc = cluster.start("node1")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(cluster.socket_path("node1")))
        stream = sock.makefile("rwb")
        for garbage in (b"not json", b"\xff\xfe\x00", b"[1, 2]", b'{"cmd": 7}', b'{"cmd": "x"}'):
            stream.write(garbage + b"\n")
            stream.flush()
            answer = json.loads(stream.readline())
            assert "error" in answer, garbage
        stream.write(b'{"cmd": "counters"}\n')
        stream.flush()
        counters = json.loads(stream.readline())
        assert counters["control"]["bad_requests"] >= 5
        assert "ucast lo" in counters["links"]
    # An overlong line closes that connection, not the daemon.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(cluster.socket_path("node1")))
        try:
            sock.sendall(b"x" * 200_000 + b"\n")
            reply = sock.recv(65536)
            assert b"error" in reply
        except (BrokenPipeError, ConnectionResetError):
            pass
    # A client that connects and disappears mid-request.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(cluster.socket_path("node1")))
        sock.sendall(b'{"cmd": "sta')
    assert proc.poll() is None
    assert cluster.status("node1") is not None


def test_sighup_with_a_broken_config_keeps_the_running_one(cluster: Cluster) -> None:
    proc = cluster.start("node1")
    cluster.write_config("node1", extra="keepalive never")
    proc.send_signal(signal.SIGHUP)
    wait_until("the reload to be rejected", lambda: "reload-rejected" in cluster.stderr("node1"))
    assert proc.poll() is None
    # (`hastack status` itself reads the broken file to find the run dir, so ask the socket.)
    assert query(cluster.socket_path("node1"), {"cmd": "status"})["node"] == "node1"
    cluster.write_config("node1", extra="deadtime 600ms")
    proc.send_signal(signal.SIGHUP)
    wait_until(
        "restart required for the new deadtime",
        lambda: "restart required for changes to" in cluster.stderr("node1"),
    )
    assert "timing.deadtime" in cluster.stderr("node1")


def test_two_daemons_over_a_serial_line_see_each_other(tmp_path: Path) -> None:
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (apt-get install socat)")
    socat = subprocess.Popen(
        ["socat", "-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    cluster = Cluster(tmp_path)
    try:
        assert socat.stderr is not None
        ptys: list[str] = []
        while len(ptys) < 2:
            match = re.search(r"PTY is (\S+)", socat.stderr.readline())
            if match:
                ptys.append(match.group(1))
        for name, device in zip(("node1", "node2"), ptys, strict=True):
            directory = cluster.config_dir(name)
            lines = [
                "cluster_name serialtest",
                "node node1",
                "node node2",
                "two_node on",
                "keepalive 100ms",
                "warntime 300ms",
                "deadtime 500ms",
                "initdead 1s",
                f"serial {device}",
                "baud 115200",
                f"run_dir {cluster.run_dir}",
            ]
            (directory / "ha.cf").write_text("\n".join(lines) + "\n")
            cluster.start(name)

        def both_online() -> bool:
            for name, device, other in (("node1", ptys[0], "node2"), ("node2", ptys[1], "node1")):
                view = cluster.status(name)
                if view is None or view["nodes"][other]["links"].get(device) != "up":
                    return False
            return True

        wait_until("both nodes online over the serial link", both_online)
    finally:
        cluster.stop_all()
        socat.kill()
        socat.wait()


def test_a_ping_node_on_loopback_is_reported_up(cluster: Cluster) -> None:
    cluster.write_config("node1", extra="ping 127.0.0.1")
    cluster.start("node1")

    def ping_known() -> bool:
        if "ping-unavailable" in cluster.stderr("node1"):
            return True
        view = cluster.status("node1")
        return view is not None and view["ping"].get("127.0.0.1") == "up"

    wait_until("the ping node's state", ping_known)
    if "ping-unavailable" in cluster.stderr("node1"):
        pytest.skip("no ICMP socket here (not root and ping_group_range excludes us)")
    view = cluster.status("node1")
    assert view is not None
    assert view["nodes"]["node1"]["attributes"].get("pingd") == 1


def test_a_paused_daemon_reports_its_loop_stall(cluster: Cluster) -> None:
    proc = cluster.start("node1")
    proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(1.0)  # ten keepalives: far beyond the stall threshold
    finally:
        proc.send_signal(signal.SIGCONT)
    wait_until("a loop-stall line", lambda: "loop-stall" in cluster.stderr("node1"))
    assert proc.poll() is None
