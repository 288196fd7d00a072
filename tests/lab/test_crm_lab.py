"""The resource manager end to end on real hosts: `hastack node` daemons in namespaces run a
floating IP (the built-in IPaddr2) and a web server in a group; a client host in its own
namespace fetches pages through the floating address. Nodes are killed, cut off, stopped and
restarted; operators move, ban, clean up and reconfigure through the `hastack` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
from lxml import etree

from hastack.daemon.control import ControlError, query
from hastack.lab.cluster import Cluster, Timers, hastack_argv, hastack_env
from hastack.lab.services import floating_ip, holders, http_ok, pid_of_service, web_cib

TIMERS = Timers(keepalive=0.1, deadtime=0.5)


def wait(what: str, check: Callable[[], bool], timeout: float = 20.0) -> float:
    """Poll until `check` holds; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def serving(c: Cluster, vip: str, on: str | None = None) -> Callable[[], bool]:
    def check() -> bool:
        where = holders(c, vip)
        return len(where) == 1 and (on is None or where == [on]) and http_ok(c, vip)

    return check


def monitored(c: Cluster, node: str, resource: str = "httpd") -> Callable[[], bool]:
    """Whether the DC's CIB records `resource`'s recurring monitor as running on `node` (the
    start is over: killing the service now is a failure the monitor must find)."""

    def check() -> bool:
        for name in c.running:
            try:
                reply = query(c[name].control_path, {"cmd": "cib-query"})
            except (OSError, ControlError):
                continue
            if reply.get("dc") != name:
                continue
            root = etree.fromstring(reply["cib"].encode())
            ops = root.xpath(
                f"//node_state[@uname='{node}']//lrm_rsc_op"
                f"[@operation_key='{resource}_monitor_1000'][@rc-code='0']"
            )
            return bool(ops)
        return False

    return check


def cli(c: Cluster, node: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `hastack ARGS` as an operator on `node` (its control socket)."""
    argv = hastack_argv(*args, "-c", str(c[node].config_dir), "--node", node)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=hastack_env())


def cluster_with(
    cib: Callable[[Cluster], bytes] | None = None, nodes: int = 3, **kw: object
) -> Cluster:
    return Cluster(
        nodes, mode="netns", timers=TIMERS, links=2, extra_hosts=["client"], cib=cib, **kw
    )  # type: ignore[arg-type]


@pytest.fixture
def three() -> Iterator[tuple[Cluster, str]]:
    with cluster_with(lambda c: web_cib(floating_ip(c), migration_threshold=2)) as c:
        vip = floating_ip(c)
        c.wait_converged(timeout=15)
        wait("the web group serves from n1", serving(c, vip, "n1"))
        wait("the web group is monitored on n1", monitored(c, "n1"))
        yield c, vip


def test_a_crash_of_the_active_node_moves_the_service_and_it_fails_back(
    three: tuple[Cluster, str],
) -> None:
    c, vip = three
    c.crash("n1")
    took = wait("the service answers from another node", serving(c, vip), timeout=15)
    (survivor,) = holders(c, vip)
    assert survivor in ("n2", "n3"), took
    # n1's machine comes back: stickiness 0 and its location preference take the group back
    c.restart("n1")
    wait("the group returns to n1", serving(c, vip, "n1"), timeout=30)


def test_cutting_the_active_node_off_moves_the_service(three: tuple[Cluster, str]) -> None:
    c, vip = three
    assert c.lab is not None
    c.lab.cut("n1")  # every link of n1, both directions
    wait("the service answers from another node", serving(c, vip), timeout=15)
    assert holders(c, vip) != ["n1"]


def test_a_dead_service_is_restarted_then_moved_after_migration_threshold(
    three: tuple[Cluster, str],
) -> None:
    c, vip = three
    first = pid_of_service(c, "n1")
    assert first is not None
    os.kill(first, signal.SIGKILL)
    wait(
        "restarted in place",
        lambda: pid_of_service(c, "n1") not in (None, first) and http_ok(c, vip),
    )
    wait("monitored again", monitored(c, "n1"))
    assert holders(c, vip) == ["n1"]
    status = json.loads(cli(c, "n2", "status", "--json").stdout)
    counts = status["cluster"]["fail_counts"]
    assert any(f["resource"] == "httpd" and f["node"] == "n1" for f in counts), counts
    second = pid_of_service(c, "n1")
    assert second is not None
    os.kill(second, signal.SIGKILL)  # the second failure reaches migration-threshold 2
    wait("moved away from n1", lambda: holders(c, vip) not in ([], ["n1"]) and http_ok(c, vip))
    # cleanup forgets the failures: the group may return to n1
    done = cli(c, "n3", "resource", "cleanup", "httpd")
    assert done.returncode == 0, done.stderr
    wait("back on n1 after cleanup", serving(c, vip, "n1"))


def test_operators_move_ban_clear_standby_and_reconfigure(three: tuple[Cluster, str]) -> None:
    c, vip = three
    moved = cli(c, "n2", "resource", "move", "web", "n3", "--permanent")
    assert moved.returncode == 0, moved.stderr
    wait("moved to n3", serving(c, vip, "n3"))
    status = json.loads(cli(c, "n1", "status", "--json").stdout)
    assert any(
        p["kind"] == "prefer" and p["node"] == "n3" for p in status["cluster"]["in_force"]
    ), status["cluster"]["in_force"]
    assert cli(c, "n1", "resource", "clear", "web").returncode == 0
    wait("back on n1 once cleared", serving(c, vip, "n1"))
    assert cli(c, "n3", "node", "standby", "n1").returncode == 0
    wait("off n1 while it is in standby", lambda: holders(c, vip) not in ([], ["n1"]))
    assert cli(c, "n3", "node", "unstandby", "n1").returncode == 0
    wait("back on n1", serving(c, vip, "n1"))
    # a configuration change while n3 is down reaches it when it returns
    assert c.term("n3") == 0
    changed = cli(c, "n1", "resource", "update", "httpd", "--meta", "description=changed")
    assert changed.returncode == 0, changed.stderr
    c.start("n3")
    c.wait_converged(timeout=15)

    def n3_has_it() -> bool:
        reply = cli(c, "n3", "status", "--json")
        return (
            reply.returncode == 0
            and b"changed" in (c["n3"].run_dir / "n3" / "cib.xml").read_bytes()
        )

    wait("n3 holds the new configuration", n3_has_it)
    saved = etree.fromstring((c["n3"].run_dir / "n3" / "cib.xml").read_bytes())
    assert saved.xpath("//nvpair[@name='description']/@value") == ["changed"]


def test_every_transition_input_is_saved_and_replays(three: tuple[Cluster, str]) -> None:
    c, _vip = three
    dc = next(n for n in c.names if (c[n].status() or {}).get("is_dc"))
    pengine = c[dc].run_dir / dc / "pengine"
    inputs = sorted(pengine.glob("pe-input-*.bz2"))
    assert inputs, f"no scheduler input saved in {pengine}"
    # hastack simulate reads Pacemaker's saved-input format: the first transition's input
    # (everything stopped, nothing known) starts the web group on n1 again
    replay = subprocess.run(
        hastack_argv("simulate", "-x", str(pengine / "pe-input-0.bz2")),
        capture_output=True,
        text=True,
        timeout=60,
        env=hastack_env(),
    )
    assert replay.returncode == 0, replay.stderr
    assert "vip" in replay.stdout and "n1" in replay.stdout


def test_a_clean_stop_moves_the_service_before_the_node_leaves(
    three: tuple[Cluster, str],
) -> None:
    c, vip = three
    assert c.term("n1") == 0  # SIGTERM: the node hands its resources over, then exits
    assert holders(c, vip) != ["n1"]
    wait("served elsewhere", serving(c, vip))
    assert pid_of_service(c, "n1") is None or not _alive(pid_of_service(c, "n1"))


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_nodes_fail_over_both_ways() -> None:
    with cluster_with(lambda c: web_cib(floating_ip(c)), nodes=2, extra_hacf=["two_node yes"]) as c:
        vip = floating_ip(c)
        c.wait_converged(timeout=15)
        wait("serving from n1", serving(c, vip, "n1"))
        c.crash("n1")
        wait("serving from n2", serving(c, vip, "n2"), timeout=15)
        c.restart("n1")
        wait("back on n1", serving(c, vip, "n1"), timeout=30)


R1_SCRIPT = """#!/bin/sh
# a heartbeat R1 resource script: a web server on port 8080 (for the lab)
pidfile="$HA_VARRUN/websrv.pid"
case "$1" in
start) mkdir -p "$HA_VARRUN"
       setsid {python} -m http.server 8080 --bind 0.0.0.0 --directory / >/dev/null 2>&1 &
       echo $! > "$pidfile" ;;
stop)  [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null; rm -f "$pidfile" ;;
status) if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then echo running;
        else echo stopped; fi ;;
esac
exit 0
"""


@pytest.mark.parametrize("auto_failback", ["on", "off"])
def test_r1_haresources_takeover_and_auto_failback(auto_failback: str) -> None:
    import sys

    c = cluster_with(None, extra_hacf=[f"auto_failback {auto_failback}"], start_nodes=False)
    with c:
        vip = floating_ip(c)
        for name in c.names:
            conf = c[name].config_dir
            (conf / "haresources").write_text(f"n1 {vip}/24/eth0 websrv\n")
            script = conf / "resource.d" / "websrv"
            script.parent.mkdir(exist_ok=True)
            script.write_text(R1_SCRIPT.format(python=sys.executable))
            script.chmod(0o755)
            c.start(name)
        c.wait_converged(timeout=15)
        wait("serving from n1", serving(c, vip, "n1"), timeout=30)
        c.crash("n1")
        wait("taken over", serving(c, vip), timeout=15)
        (taker,) = holders(c, vip)
        c.restart("n1")
        c.wait_converged(timeout=15)
        if auto_failback == "on":
            wait("failed back to n1", serving(c, vip, "n1"), timeout=30)
        else:
            time.sleep(3)
            assert holders(c, vip) == [taker]  # auto_failback off: it stays
        # hb_takeover on n1 takes it (back) whatever auto_failback says
        taken = cli(c, "n1", "takeover")
        assert taken.returncode == 0, taken.stderr
        wait("n1 took over", serving(c, vip, "n1"), timeout=30)
