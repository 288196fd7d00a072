"""The lab itself: namespaces, links, one-direction nftables cuts, process control, teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hastack.lab.netns import NETNS_PREFIX, Host, Lab, cleanup_stale, list_netns

# Receives UDP datagrams on every address and appends each payload to a file, one per line.
UDP_SINK = textwrap.dedent(
    """
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[1])))
    with open(sys.argv[2], "a", buffering=1) as out:
        print("ready", file=out)
        while True:
            data, _ = s.recvfrom(2048)
            print(data.decode(), file=out)
    """
)
# An nftables drop on output makes sendto() fail with EPERM: the datagram is lost either way.
UDP_SEND = textwrap.dedent(
    """
    import contextlib, socket, sys
    with contextlib.suppress(PermissionError):
        socket.socket(2, 2).sendto(sys.argv[2].encode(), (sys.argv[1], 7001))
    """
)


def start_sink(host: Host, tmp_path: Path) -> Path:
    out = tmp_path / f"sink-{host.name}.txt"
    host.start([sys.executable, "-c", UDP_SINK, "7001", str(out)])
    deadline = time.monotonic() + 5
    while not (out.exists() and "ready" in out.read_text()):
        assert time.monotonic() < deadline, "UDP sink did not start"
        time.sleep(0.02)
    return out


def send(host: Host, addr: str, payload: str) -> None:
    host.run([sys.executable, "-c", UDP_SEND, addr, payload])


def received(out: Path, payload: str, wait: float = 0.5) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if payload in out.read_text().split():
            return True
        time.sleep(0.02)
    return False


def test_hosts_reach_each_other_on_every_link() -> None:
    with Lab(3, links=2) as lab:
        for a in lab:
            for b in lab:
                for link in range(2):
                    if a is not b:
                        a.run(["ping", "-c1", "-W2", b.addr(link)])


def test_interfaces_are_named_per_link_and_nothing_lands_in_the_root_namespace() -> None:
    before = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    with Lab(2, links=2) as lab:
        links = lab["n1"].run(["ip", "-o", "link"]).stdout
        assert " eth0@" in links and " eth1@" in links and " lo:" in links
        during = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert during.count("\n") == before.count("\n")


def test_namespaces_are_gone_after_teardown() -> None:
    with Lab(2) as lab:
        names = lab.namespaces
        assert set(names) <= set(list_netns())
        proc = lab["n1"].start(["sleep", "300"])
    assert not set(names) & set(list_netns())
    assert proc.returncode is not None


def test_teardown_happens_when_the_body_raises() -> None:
    names: list[str] = []
    with pytest.raises(RuntimeError, match="boom"), Lab(2) as lab:
        names = lab.namespaces
        proc = lab["n2"].start(["sleep", "300"])
        raise RuntimeError("boom")
    assert names and not set(names) & set(list_netns())
    assert proc.returncode == -signal.SIGKILL


def test_teardown_happens_on_keyboard_interrupt() -> None:
    names: list[str] = []
    with pytest.raises(KeyboardInterrupt), Lab(1) as lab:
        names = lab.namespaces
        raise KeyboardInterrupt
    assert names and not set(names) & set(list_netns())


def test_teardown_happens_at_exit_for_a_lab_never_closed() -> None:
    script = (
        "import os; from hastack.lab.netns import Lab; lab = Lab(2); lab.build();"
        "lab['n1'].start(['sleep', '300']); print(os.getpid(), flush=True)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    pid = out.stdout.strip()
    assert not [n for n in list_netns() if n.startswith(f"{NETNS_PREFIX}{pid}x")]


def test_cleanup_stale_removes_what_a_killed_process_left() -> None:
    script = (
        "import os, signal; from hastack.lab.netns import Lab; lab = Lab(2); lab.build();"
        "print(os.getpid(), flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == -signal.SIGKILL
    prefix = f"{NETNS_PREFIX}{out.stdout.strip()}x"
    assert [n for n in list_netns() if n.startswith(prefix)], "the killed lab left nothing?"
    removed = cleanup_stale()
    assert all(n.startswith(NETNS_PREFIX) for n in removed)
    assert not [n for n in list_netns() if n.startswith(prefix)]


def test_one_direction_of_one_link_is_cut_and_healed(tmp_path: Path) -> None:
    with Lab(2, links=2) as lab:
        a, b = lab["n1"], lab["n2"]
        sink_a, sink_b = start_sink(a, tmp_path), start_sink(b, tmp_path)
        lab.cut(a, link=0, direction="out")
        send(a, b.addr(0), "a-to-b-link0")
        send(a, b.addr(1), "a-to-b-link1")
        send(b, a.addr(0), "b-to-a-link0")
        assert not received(sink_b, "a-to-b-link0")
        assert received(sink_b, "a-to-b-link1")  # the other link is untouched
        assert received(sink_a, "b-to-a-link0")  # the other direction is untouched
        lab.heal()
        send(a, b.addr(0), "a-to-b-healed")
        assert received(sink_b, "a-to-b-healed")


def test_input_cut_for_one_peer_only(tmp_path: Path) -> None:
    with Lab(3, links=1) as lab:
        a, b, c = lab["n1"], lab["n2"], lab["n3"]
        sink_a = start_sink(a, tmp_path)
        lab.cut(a, link=0, direction="in", peer=b)
        send(b, a.addr(0), "from-b")
        send(c, a.addr(0), "from-c")
        assert received(sink_a, "from-c")
        assert not received(sink_a, "from-b")


def test_partition_separates_groups_on_every_link() -> None:
    with Lab(3, links=2) as lab:
        lab.partition(["n1", "n2"], ["n3"])
        n1, n2, n3 = lab["n1"], lab["n2"], lab["n3"]
        for link in range(2):
            n1.run(["ping", "-c1", "-W1", n2.addr(link)])
            assert n1.run(["ping", "-c1", "-W1", n3.addr(link)], check=False).returncode != 0
            assert n3.run(["ping", "-c1", "-W1", n2.addr(link)], check=False).returncode != 0
        lab.heal()
        n3.run(["ping", "-c1", "-W2", n1.addr(0)])


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_process_control_by_pid() -> None:
    with Lab(1) as lab:
        proc = lab["n1"].start(["sleep", "300"])
        # `ip netns exec` enters the namespace and then execs the command, in the process we
        # started: the PID we hold is the command's, inside the namespace once it got there.
        deadline = time.monotonic() + 5
        while True:
            netns_pids = subprocess.run(
                ["ip", "netns", "pids", lab["n1"].netns], capture_output=True, text=True
            ).stdout.split()
            if str(proc.pid) in netns_pids or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert str(proc.pid) in netns_pids
        proc.stop()
        time.sleep(0.1)
        assert proc_state(proc.pid) == "T"
        proc.cont()
        time.sleep(0.1)
        assert proc_state(proc.pid) == "S"
        proc.kill()
        assert proc.wait(5) == -signal.SIGKILL
        other = lab["n1"].start(["sleep", "300"])
        other.term()
        assert other.wait(5) == -signal.SIGTERM
    assert os.path.exists("/proc/self")
