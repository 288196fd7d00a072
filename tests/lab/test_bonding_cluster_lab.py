"""A degraded bond reaches the cluster: two real `hastack node` daemons on loopback addresses (no
root), and `hastack kernel bond watch --socket` reading a temporary /proc/net/bonding whose
bond0 file the test rewrites (this machine has no bond; the watcher reads the file exactly as it
reads the kernel's). A slave going down sets the transient node attribute bond-bond0-degraded=1
in the CIB through n1's control socket; the slave coming back sets it to 0 again."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

from hastack.daemon.control import ControlError, query
from hastack.lab.cluster import Cluster, Timers, hastack_argv, hastack_env

NEEDS_ROOT = False  # 127.0.0.0/8 needs no namespaces (see conftest)
TIMERS = Timers(keepalive=0.1, deadtime=0.5)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bonding"


def wait(what: str, check: Callable[[], object], timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


def transient_attribute(c: Cluster, node: str, name: str) -> str | None:
    """The value of `node`'s transient (status section) attribute `name` in the CIB as n1's
    daemon answers cib-query, or None when it is not set (or the daemon does not answer)."""
    try:
        answer: Any = query(c["n1"].control_path, {"cmd": "cib-query"})
    except (OSError, ControlError):
        return None
    if not isinstance(answer, dict) or "cib" not in answer:
        return None
    root = etree.fromstring(answer["cib"].encode())
    for nvpair in root.iterfind(
        f"status/node_state[@uname='{node}']/transient_attributes//nvpair[@name='{name}']"
    ):
        return str(nvpair.get("value"))
    return None


def history(c: Cluster, node: str, kind: str | None = "attribute") -> list[dict[str, Any]]:
    """The node's recorded events (of `kind`), through `hastack history` as an operator reads
    it."""
    kinds = ["--kind", kind] if kind else []
    out = subprocess.run(
        hastack_argv(
            "history",
            "-c",
            str(c[node].config_dir),
            "--node",
            node,
            *kinds,
            "--json",
        ),
        capture_output=True,
        text=True,
        timeout=30,
        env=hastack_env(),
        check=True,
    )
    return list(json.loads(out.stdout)["events"])


def bond_changes(c: Cluster, node: str, name: str) -> list[str | None]:
    return [
        e.get("fields", {}).get("value")
        for e in history(c, node)
        if e.get("event") == "attribute-changed" and e.get("fields", {}).get("name") == name
    ]


def start_watcher(c: Cluster, proc: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = hastack_argv(
        "kernel",
        "bond",
        "watch",
        "--proc",
        str(proc),
        "--socket",
        str(c["n1"].control_path),
        "--node",
        "n1",
        "--interval",
        "0.2",
        "--json",
    )
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=hastack_env())


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def test_a_degraded_bond_sets_the_nodes_attribute_in_the_cib_and_clears_it_again(
    tmp_path: Path,
) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    bond0 = proc / "bond0"
    shutil.copy(FIXTURES / "active-backup-arp.txt", bond0)  # two slaves up: healthy
    log = tmp_path / "watch.log"
    watcher: subprocess.Popen[bytes] | None = None
    text = ""
    with Cluster(2, mode="loopback", timers=TIMERS) as c:
        try:
            c.wait_converged(timeout=30)
            watcher = start_watcher(c, proc, log)
            degraded = "bond-bond0-degraded"
            wait(
                "healthy bond0 published (degraded=0)",
                lambda: transient_attribute(c, "n1", degraded) == "0",
            )
            assert transient_attribute(c, "n1", "bond-bond0-slaves-up") == "2"

            shutil.copy(FIXTURES / "active-backup-degraded.txt", bond0)  # eth0 down
            wait("degraded=1 in the CIB", lambda: transient_attribute(c, "n1", degraded) == "1")
            assert transient_attribute(c, "n1", "bond-bond0-slaves-up") == "1"

            shutil.copy(FIXTURES / "active-backup-arp.txt", bond0)  # eth0 back
            wait("degraded=0 again", lambda: transient_attribute(c, "n1", degraded) == "0")
            assert transient_attribute(c, "n1", "bond-bond0-slaves-up") == "2"
            assert watcher.poll() is None, log.read_text()
        finally:
            if watcher is not None:
                rc = stop(watcher)
                text = log.read_text(errors="replace")
                assert rc == 0, f"the watcher did not stop cleanly (rc {rc}):\n{text}"
        kinds = [
            json.loads(line)["event"]["kind"] for line in text.splitlines() if '"event"' in line
        ]
        assert kinds == [
            "slave-down",
            "failover",
            "degraded",
            "slave-up",
            "failover",
            "healthy",
        ], text


def test_the_cluster_history_records_the_bond_attribute_changes(tmp_path: Path) -> None:
    """Each change is an attribute-changed cluster event, recorded by the DC (whichever node
    that is): what `hastack history` shows and alert agents receive."""
    proc = tmp_path / "proc"
    proc.mkdir()
    bond0 = proc / "bond0"
    shutil.copy(FIXTURES / "active-backup-degraded.txt", bond0)
    watcher: subprocess.Popen[bytes] | None = None
    degraded = "bond-bond0-degraded"

    def recorded() -> list[str | None]:
        return [v for node in ("n1", "n2") for v in bond_changes(c, node, degraded)]

    with Cluster(2, mode="loopback", timers=TIMERS) as c:
        try:
            c.wait_converged(timeout=30)
            watcher = start_watcher(c, proc, tmp_path / "watch.log")
            wait("degraded=1 in the CIB", lambda: transient_attribute(c, "n1", degraded) == "1")
            shutil.copy(FIXTURES / "active-backup-arp.txt", bond0)
            wait("degraded=0 again", lambda: transient_attribute(c, "n1", degraded) == "0")
            # the history is written when the event happens: a few seconds is plenty
            wait("both changes in the history", lambda: recorded()[-2:] == ["1", "0"], 10)
            events = [
                e
                for node in ("n1", "n2")
                for e in history(c, node)
                if e.get("fields", {}).get("name") == degraded
            ]
            assert {e["node"] for e in events} == {"n1"}, events
            assert events[-1]["previous"] == "1" and events[-1]["desc"] == f"{degraded}=0"
        finally:
            if watcher is not None:
                stop(watcher)
