"""ocf:hastack:replica and the drbddisk R1 script against two real replica daemons on loopback.

Two nodes, alice and bob, on one machine: each has its own backing image, control socket and
127.0.0.1 ports (picked free at setup), so no namespace is needed. The agent runs as a real OCF
process (`python -m hastack.agents.builtin.replica ACTION`, and through an installed
ocf:hastack:replica wrapper for ocf-tester); its start launches each node's daemon.

The daemons are not children of the test (the agent detaches them): they are found by the
credentials of their control socket's peer (SO_PEERCRED), checked by their command line, and
stopped by PID at the end, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hastack.agents.builtin import replica
from hastack.agents.builtin.install import install_ocf
from hastack.agents.invocation import Invocation, interpret
from hastack.agents.rc import OcfRc
from hastack.replica import control

# Loopback only: no namespaces, no root (ocf-tester alone wants root, and says so).
NEEDS_ROOT = False

SRC = str(Path(__file__).resolve().parents[2] / "src")
HASTACK = [sys.executable, "-m", "hastack"]
NODES = ("alice", "bob")
IMAGE_SIZE = 16 << 20  # small: the initial full sync takes a few seconds
SYNC_WAIT = 120.0


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on now, all bound at once so that they differ."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def daemon_pid(path: Path) -> int | None:
    """The PID of the process listening on a control socket (its SO_PEERCRED), or None."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _, _ = struct.unpack("3i", creds)
    return pid


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


@dataclass
class Lab:
    root: Path
    conf: Path
    sockets: dict[str, Path]
    logs: dict[str, Path]
    pids: set[int] = field(default_factory=set)

    def params(self, on: str, **extra: str) -> dict[str, str]:
        return {
            "drbd_resource": "r0",
            "drbdconf": str(self.conf),
            "socket": str(self.sockets[on]),
            "node": on,
            "daemon_log": str(self.logs[on]),
            **extra,
        }

    def remember_daemon(self, node: str) -> int:
        pid = daemon_pid(self.sockets[node])
        assert pid is not None, f"no daemon answers on {self.sockets[node]}"
        assert str(self.sockets[node]) in cmdline(pid), cmdline(pid)
        self.pids.add(pid)
        return pid

    def status(self, node: str) -> dict[str, object]:
        from hastack.replica.status_view import json_status

        raw = control.request(str(self.sockets[node]), "status", resource="r0", timeout=15)
        (res,) = json_status(raw)["resources"]
        return res

    def hastack(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HASTACK, *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": SRC},
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    # A 0755 directory of its own (not pytest's 0700 tmp_path): ocf-tester reaches the
    # installed agent as `nobody`.
    root = Path(tempfile.mkdtemp(prefix=f"hastack-replica-agent-{os.getpid()}-"))
    root.chmod(0o755)
    ports = free_ports(4)
    sockets = {n: root / f"{n}.sock" for n in NODES}
    logs = {n: root / f"{n}-daemon.log" for n in NODES}
    sections = []
    for i, node in enumerate(NODES):
        image = root / f"{node}.img"
        with image.open("wb") as f:
            f.truncate(IMAGE_SIZE)
        sections.append(
            f"  on {node} {{ device /dev/drbd0; disk {image}; meta-disk internal; "
            f"address 127.0.0.1:{ports[i]}; nbd-address 127.0.0.1:{ports[2 + i]}; }}\n"
        )
    conf = root / "drbd.conf"
    conf.write_text(
        "resource r0 {\n"
        "  net { protocol C; connect-int 1; }\n"
        "  disk { resync-rate 200M; c-plan-ahead 0; }\n" + "".join(sections) + "}\n"
    )
    the_lab = Lab(root, conf, sockets, logs)
    try:
        for node in NODES:
            proc = the_lab.hastack("replica", "create-md", "-c", str(conf), "--node", node, "r0")
            assert proc.returncode == 0, proc.stderr
        yield the_lab
    finally:
        _stop_daemons(the_lab)
        shutil.rmtree(root, ignore_errors=True)


def _stop_daemons(lab: Lab) -> None:
    """SIGTERM (a clean stop: demote, detach), SIGKILL after 15 s; only our daemons' PIDs."""
    for node in NODES:
        pid = daemon_pid(lab.sockets[node])
        if pid is not None and str(lab.sockets[node]) in cmdline(pid):
            lab.pids.add(pid)
    for pid in lab.pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while any(alive(p) for p in lab.pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in lab.pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@dataclass
class Run:
    rc: int
    out: str
    err: str

    @property
    def reasons(self) -> list[str]:
        prefix = "ocf-exit-reason:"
        return [x.removeprefix(prefix) for x in self.err.splitlines() if x.startswith(prefix)]


def agent(
    lab: Lab, on: str, action: str, env: Mapping[str, str] | None = None, **params: str
) -> Run:
    """Run one action as node `on`; `params` override the node's parameters."""
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": SRC,
        "OCF_ROOT": "/usr/lib/ocf",
        "HA_RSCTMP": str(lab.root / "rsctmp"),
        "OCF_RESOURCE_INSTANCE": "r0-clone",
        **{f"OCF_RESKEY_{k}": v for k, v in lab.params(on, **params).items()},
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "hastack.agents.builtin.replica", action],
        capture_output=True,
        text=True,
        env=full_env,
        cwd="/",
        timeout=180,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def ok(run: Run, rc: int = OcfRc.SUCCESS) -> Run:
    assert run.rc == rc, f"rc {run.rc}, wanted {rc}: {run.err}"
    return run


def wait_for(what: str, predicate: object, timeout: float = SYNC_WAIT) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def disks(lab: Lab, node: str) -> tuple[str, str, str]:
    res = lab.status(node)
    (vol,) = res["volumes"]  # type: ignore[misc]
    return str(vol["disk"]), str(vol["peer_disk"]), str(res["cstate"])


def both_up_to_date(lab: Lab) -> bool:
    return all(disks(lab, n)[:2] == ("UpToDate", "UpToDate") for n in NODES)


def ensure_synced(lab: Lab) -> None:
    """Both nodes up through the agent, Secondary, UpToDate and connected. The first time,
    alice is forced Primary (the initial sync's source) and demoted again."""
    for node in NODES:
        ok(agent(lab, node, "start"))
        lab.remember_daemon(node)
    if disks(lab, "alice")[0] != "UpToDate" and disks(lab, "bob")[0] != "UpToDate":
        proc = lab.hastack(
            "replica", "primary", "--force", "r0", "--socket", str(lab.sockets["alice"])
        )
        assert proc.returncode == 0, proc.stderr
    wait_for("both disks UpToDate", lambda: both_up_to_date(lab))
    for node in NODES:
        if agent(lab, node, "monitor").rc == OcfRc.RUNNING_PROMOTED:
            ok(agent(lab, node, "demote"))
    wait_for("both Connected", lambda: all(disks(lab, n)[2] == "Connected" for n in NODES), 30)


# --- the tests -----------------------------------------------------------------------------------


def test_the_agents_default_socket_is_the_daemons() -> None:
    assert replica.INFO.param("socket").default == control.DEFAULT_SOCKET


def test_validate_all_checks_drbd_conf_for_this_node(lab: Lab) -> None:
    ok(agent(lab, "alice", "validate-all"))
    run = ok(agent(lab, "alice", "validate-all", drbd_resource="r9"), OcfRc.ERR_CONFIGURED)
    assert "no resource 'r9'" in run.reasons[0]
    run = ok(agent(lab, "alice", "validate-all", node="carol"), OcfRc.ERR_INSTALLED)
    assert "carol" in run.reasons[0]
    missing = str(lab.root / "nowhere.conf")
    ok(agent(lab, "alice", "validate-all", drbdconf=missing), OcfRc.ERR_INSTALLED)
    ok(agent(lab, "alice", "validate-all", drbd_resource="all"), OcfRc.ERR_CONFIGURED)


def test_stop_and_monitor_without_a_daemon(lab: Lab) -> None:
    absent = str(lab.root / "absent.sock")
    ok(agent(lab, "alice", "monitor", socket=absent), OcfRc.NOT_RUNNING)
    ok(agent(lab, "alice", "stop", socket=absent))
    ok(agent(lab, "alice", "promote", socket=absent), OcfRc.NOT_RUNNING)


def test_life_cycle_start_promote_demote_stop(lab: Lab) -> None:
    _stop_daemons(lab)  # start must launch the daemon itself
    for node in NODES:
        assert daemon_pid(lab.sockets[node]) is None
        ok(agent(lab, node, "monitor"), OcfRc.NOT_RUNNING)

    run = ok(agent(lab, "alice", "start"))
    assert "started the replica daemon" in run.err
    pid = lab.remember_daemon("alice")
    assert "--no-up" in cmdline(pid)
    assert lab.logs["alice"].exists()
    ok(agent(lab, "alice", "monitor"))
    # A second start is a no-op: the same daemon, the resource still up.
    run = ok(agent(lab, "alice", "start"))
    assert "started the replica daemon" not in run.err
    assert lab.remember_daemon("alice") == pid
    ok(agent(lab, "bob", "start"))
    lab.remember_daemon("bob")
    ok(agent(lab, "bob", "monitor"))

    ensure_synced(lab)
    ok(agent(lab, "alice", "monitor"))
    ok(agent(lab, "alice", "promote"))
    ok(agent(lab, "alice", "monitor"), OcfRc.RUNNING_PROMOTED)
    ok(agent(lab, "alice", "promote"))  # promoting a promoted instance succeeds
    ok(agent(lab, "bob", "monitor"))
    ok(agent(lab, "alice", "demote"))
    ok(agent(lab, "alice", "monitor"))
    ok(agent(lab, "alice", "demote"))  # demoting a demoted instance succeeds

    # The other way round: bob takes over.
    ok(agent(lab, "bob", "promote"))
    ok(agent(lab, "bob", "monitor"), OcfRc.RUNNING_PROMOTED)
    ok(agent(lab, "bob", "demote"))

    for node in NODES:
        ok(agent(lab, node, "stop"))
        ok(agent(lab, node, "monitor"), OcfRc.NOT_RUNNING)
        ok(agent(lab, node, "stop"))  # stopping a stopped resource succeeds
        ok(agent(lab, node, "demote"), OcfRc.NOT_RUNNING)
        # stop brings the resource down; the daemon stays, as DRBD's module stays loaded.
        assert daemon_pid(lab.sockets[node]) is not None


def test_promote_refuses_data_that_is_not_up_to_date(lab: Lab) -> None:
    ensure_synced(lab)
    # bob alone, disconnected and Outdated: a state that stays put while the agent is asked.
    proc = lab.hastack("replica", "disconnect", "r0", "--socket", str(lab.sockets["bob"]))
    assert proc.returncode == 0, proc.stderr
    proc = lab.hastack("replica", "outdate", "r0", "--socket", str(lab.sockets["bob"]))
    assert proc.returncode == 0, proc.stderr
    run = ok(agent(lab, "bob", "promote"), OcfRc.ERR_GENERIC)
    assert "Outdated, not UpToDate" in run.reasons[0], run.reasons
    ok(agent(lab, "bob", "monitor"))
    # Back to a clean pair: down and up again reconnects, and alice's data wins the handshake.
    ok(agent(lab, "bob", "stop"))
    ensure_synced(lab)


def test_promotion_scores_reach_crm_attribute(lab: Lab) -> None:
    """A crm_attribute stand-in on PATH records the scores the agent sets as a clone."""
    ensure_synced(lab)
    bin_dir = lab.root / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = lab.root / "scores"
    record.unlink(missing_ok=True)
    fake = bin_dir / "crm_attribute"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {record}\n')
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    clone = {**env, "OCF_RESKEY_CRM_meta_clone": "0"}

    def last_score(node: str, action: str, rc: int = OcfRc.SUCCESS) -> str:
        record.unlink(missing_ok=True)
        ok(agent(lab, node, action, env=clone), rc)
        return record.read_text().strip().splitlines()[-1]

    assert last_score("alice", "monitor") == "--promotion -v 10000"  # UpToDate, peer known
    assert last_score("alice", "promote") == "--promotion -v 10000"
    assert last_score("alice", "demote") == "--promotion -v 10000"
    proc = lab.hastack("replica", "disconnect", "r0", "--socket", str(lab.sockets["alice"]))
    assert proc.returncode == 0, proc.stderr
    assert last_score("alice", "monitor") == "--promotion -v 1000"  # the peer is DUnknown
    assert last_score("alice", "stop") == "--promotion -D"
    assert last_score("alice", "monitor", OcfRc.NOT_RUNNING) == "--promotion -D"
    # Not a clone (ocf-tester, by hand): no score at all.
    record.unlink(missing_ok=True)
    ok(agent(lab, "bob", "monitor", env=env))
    assert not record.exists()
    ensure_synced(lab)


def test_ocf_tester_passes(lab: Lab) -> None:
    missing = [t for t in ("ocf-tester", "xmllint", "su") if shutil.which(t) is None]
    reason = ""
    if missing:
        reason = f"needs {', '.join(missing)} on PATH (Debian: resource-agents, libxml2-utils)"
    elif os.geteuid() != 0:
        reason = "ocf-tester checks the agent's permissions as root and runs meta-data as nobody"
    if reason:
        print(f"skipping: {reason}")
        pytest.skip(reason)
    ensure_synced(lab)  # alice must hold UpToDate data for ocf-tester's promotions
    ocf_root = lab.root / "ocf"
    install_ocf(ocf_root)
    argv = ["ocf-tester", "-n", "r0-test"]
    for key, value in lab.params("alice").items():
        argv += ["-o", f"{key}={value}"]
    argv.append(str(ocf_root / "resource.d" / "hastack" / "replica"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("OCF_")}
    env["OCF_ROOT"] = str(ocf_root)
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd="/", timeout=600, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "passed all tests" in output, output
    assert "* rc=" not in output, output
    ensure_synced(lab)


def drbddisk_run(lab: Lab, node: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "HASTACK_REPLICA_SOCKET": str(lab.sockets[node])}
    return subprocess.Popen(
        [sys.executable, "-m", "hastack.agents.builtin.drbddisk", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd="/",
    )


def drbddisk_cmd(lab: Lab, node: str, *args: str) -> Run:
    proc = drbddisk_run(lab, node, *args)
    out, err = proc.communicate(timeout=60)
    return Run(proc.returncode, out, err)


def r1_status(run: Run) -> int:
    """What hastack's executor makes of a heartbeat R1 `status` (heartbeat reads the text)."""
    inv = Invocation(("/etc/ha.d/resource.d/drbddisk", "r0", "status"), {}, "heartbeat", "monitor")
    return interpret(inv, run.rc, run.out)


def test_drbddisk_start_status_stop(lab: Lab) -> None:
    ensure_synced(lab)
    run = drbddisk_cmd(lab, "alice", "r0", "status")
    assert (run.rc, run.out.strip()) == (3, "stopped (Secondary)")
    assert r1_status(run) == OcfRc.NOT_RUNNING

    assert drbddisk_cmd(lab, "alice", "r0", "start").rc == 0
    run = drbddisk_cmd(lab, "alice", "r0", "status")
    assert (run.rc, run.out.strip()) == (0, "running (Primary)")
    assert r1_status(run) == OcfRc.SUCCESS
    assert drbddisk_cmd(lab, "alice", "r0", "start").rc == 0  # already Primary

    # bob's start retries while alice is still Primary, and succeeds once she lets go.
    takeover = drbddisk_run(lab, "bob", "r0", "start")
    time.sleep(2.0)
    assert takeover.poll() is None, takeover.communicate()
    assert drbddisk_cmd(lab, "alice", "r0", "stop").rc == 0
    _, err = takeover.communicate(timeout=60)
    assert takeover.returncode == 0, err
    assert "peer is Primary" in err  # the tries before alice's stop
    assert drbddisk_cmd(lab, "bob", "r0", "status").out.strip() == "running (Primary)"
    assert drbddisk_cmd(lab, "alice", "r0", "status").out.strip() == "stopped (Secondary)"

    assert drbddisk_cmd(lab, "bob", "r0", "stop").rc == 0
    assert drbddisk_cmd(lab, "bob", "r0", "stop").rc == 0  # stopping a Secondary succeeds
    assert drbddisk_cmd(lab, "bob", "r0", "status").out.strip() == "stopped (Secondary)"


def test_drbddisk_without_daemon_or_resource(lab: Lab) -> None:
    env_socket = str(lab.root / "absent.sock")
    env = {**os.environ, "PYTHONPATH": SRC, "HASTACK_REPLICA_SOCKET": env_socket}
    proc = subprocess.run(
        [sys.executable, "-m", "hastack.agents.builtin.drbddisk", "r0", "status"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout.strip()) == (3, "stopped (Unconfigured)")
    run = drbddisk_cmd(lab, "alice", "status")
    assert run.rc == 2 and "resource name is required" in run.out
    ensure_synced(lab)
    ok(agent(lab, "alice", "stop"))
    run = drbddisk_cmd(lab, "alice", "r0", "status")
    assert (run.rc, run.out.strip()) == (3, "stopped (Unconfigured)")
    assert drbddisk_cmd(lab, "alice", "r0", "start").rc == 1  # down: primary fails, 6 tries
    ensure_synced(lab)


def test_daemon_status_json_is_what_the_agent_reads(lab: Lab) -> None:
    """`hastack replica status --json` and the agent agree on the role."""
    ensure_synced(lab)
    proc = lab.hastack("replica", "status", "--json", "r0", "--socket", str(lab.sockets["alice"]))
    assert proc.returncode == 0, proc.stderr
    (res,) = json.loads(proc.stdout)["resources"]
    assert res["role"] == "Secondary"
    assert replica.promotion_score(res) == replica.SCORE_BEST
