"""Fencing end to end on real hosts: `hastack node` daemons in network namespaces, a floating
IP and a web server, and fence devices that really act: a ``hastack/external`` script that
powers a lab host off as a power switch would (every process killed, interfaces down), and
Debian's ``fence_dummy``. Observed from outside: who holds the address, the devices' own
records, and the `hastack fence` / `hastack status` commands."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hastack.lab.cluster import Cluster, Timers, hastack_argv, hastack_env
from hastack.lab.services import (
    external_fence_primitive,
    fence_log,
    floating_ip,
    holders,
    http_ok,
    lab_fence_script,
    web_cib,
)

# initdead: the DC waits for every node at start, or it fences the late ones (startup-fencing)
TIMERS = Timers(keepalive=0.1, deadtime=0.5, initdead=5.0)
NODES = ("n1", "n2", "n3")


def wait(what: str, check: Callable[[], bool], timeout: float = 20.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def cli(c: Cluster, node: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    argv = hastack_argv(*args, "-c", str(c[node].config_dir), "--node", node)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=hastack_env())


def serving(c: Cluster, vip: str, on: str | None = None) -> Callable[[], bool]:
    def check() -> bool:
        where = holders(c, vip)
        return len(where) == 1 and (on is None or where == [on]) and http_ok(c, vip)

    return check


def fenced_cluster(tmp_path: Path, device: Callable[[Cluster], str]) -> Cluster:
    """Three nodes and a client; `device(cluster)` gives the stonith primitives' XML."""
    return Cluster(
        3,
        mode="netns",
        timers=TIMERS,
        links=2,
        extra_hosts=["client"],
        cib=lambda c: web_cib(floating_ip(c), stonith=device(c)),
    )


def watch_takeover(c: Cluster, vip: str, log: Path, victim: str, timeout: float = 20.0) -> float:
    """Poll until another node serves; on every poll, the address is held by one node at
    most, and the first poll that sees it elsewhere finds the victim's fencing logged."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        where = holders(c, vip)
        assert len(where) <= 1, f"the address is on {where} at once"
        if where and where != [victim]:
            fenced = [host for _, action, host in fence_log(log) if action in ("off", "reboot")]
            assert victim in fenced, f"{where[0]} took over before {victim} was fenced"
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"no takeover from {victim} within {timeout:g} s")


@pytest.fixture
def external(tmp_path: Path) -> Iterator[tuple[Cluster, str, Path]]:
    log = tmp_path / "fence.log"
    script = tmp_path / "fence-lab.sh"

    def device(c: Cluster) -> str:
        assert c.lab is not None
        lab_fence_script(c.lab, NODES, script, log)
        return external_fence_primitive(script, NODES)

    with fenced_cluster(tmp_path, device) as c:
        vip = floating_ip(c)
        c.wait_converged(timeout=15)
        wait("the web group serves from n1", serving(c, vip, "n1"))
        yield c, vip, log


def test_a_cut_off_node_is_fenced_before_its_service_moves(
    external: tuple[Cluster, str, Path],
) -> None:
    c, vip, log = external
    assert c.lab is not None
    c.lab.cut("n1")  # alive, but cut off: only fencing makes it safe to take over
    watch_takeover(c, vip, log, "n1")
    wait("the service answers again", serving(c, vip))
    # the external device really powered n1 off: nothing runs in its namespace any more
    assert c.lab["n1"].run(["true"], check=False).returncode != 0 or not c["n1"].running
    history = json.loads(cli(c, "n2", "fence", "history", "--json").stdout)["history"]
    (record,) = [r for r in history if r["target"] == "n1"]
    assert record["state"] == "done" and record["devices"] == ["fence-lab"]


def test_a_crashed_node_is_fenced_once_and_operators_see_the_paths(
    external: tuple[Cluster, str, Path],
) -> None:
    c, vip, log = external
    test = cli(c, "n2", "fence", "test", "--json")
    assert test.returncode == 0, test.stderr
    report = json.loads(test.stdout)
    assert report["devices"]["fence-lab"]["ok"] is True
    assert {n: p["ok"] for n, p in report["paths"].items()} == {"n1": True, "n3": True}
    status = cli(c, "n2", "status")
    assert "n1: ok through fence-lab" in status.stdout, status.stdout
    c.crash("n1")
    watch_takeover(c, vip, log, "n1")
    wait("the service answers again", serving(c, vip))
    time.sleep(1.0)  # any second fencing of n1 would come now
    assert [host for _, _, host in fence_log(log)].count("n1") == 1
    # n1 comes back knowing nothing: the others share the history with it
    c.restart("n1")
    c.wait_converged(timeout=20)

    def n1_knows() -> bool:
        done = cli(c, "n1", "fence", "history", "--json")
        history = json.loads(done.stdout)["history"] if done.returncode == 0 else []
        return any(r["target"] == "n1" and r["state"] == "done" for r in history)

    wait("n1 learns its own fencing", n1_knows, timeout=10)


def test_an_operator_fences_a_node_and_the_cluster_does_not_fence_it_again(
    external: tuple[Cluster, str, Path],
) -> None:
    c, vip, log = external
    done = cli(c, "n2", "fence", "n1")
    assert done.returncode == 0, done.stderr
    assert "n1 was fenced" in done.stdout
    wait("the service answers from another node", serving(c, vip))
    time.sleep(1.0)
    assert [host for _, _, host in fence_log(log)] == ["n1"]
    bad = cli(c, "n2", "fence", "nosuch")
    assert bad.returncode == 1 and "unknown node 'nosuch'" in bad.stderr


def test_without_a_working_fence_device_nothing_moves_until_an_operator_confirms(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.sh"
    broken.write_text("#!/bin/sh\necho 'PDU unreachable' >&2\nexit 1\n")
    broken.chmod(0o755)
    with fenced_cluster(tmp_path, lambda c: external_fence_primitive(broken, NODES)) as c:
        vip = floating_ip(c)
        c.wait_converged(timeout=15)
        wait("serving from n1", serving(c, vip, "n1"))
        status = cli(c, "n2", "status")
        wait(
            "the status warns about the missing fence path",
            lambda: "no working fence path" in cli(c, "n2", "status").stdout,
            timeout=10,
        )
        c.crash("n1")
        time.sleep(3.0)  # detection, and fencing that fails (and is retried)
        assert holders(c, vip) == [], "recovered without fencing"
        history = json.loads(cli(c, "n2", "fence", "history", "--json").stdout)["history"]
        assert any(r["target"] == "n1" and r["state"] == "failed" for r in history)
        assert any("PDU unreachable" in r["error"] for r in history)
        confirmed = cli(c, "n3", "fence", "confirm", "n1")
        assert confirmed.returncode == 0, confirmed.stderr
        wait("the service moves once n1 is confirmed down", serving(c, vip), timeout=15)
        del status


def test_fence_dummy_records_the_fencing_of_a_crashed_node(tmp_path: Path) -> None:
    status_file = tmp_path / "dummy.status"
    status_file.write_text("on")

    def device(_c: Cluster) -> str:
        return f"""
      <primitive id="dummy" class="stonith" type="fence_dummy">
        <instance_attributes id="dummy-ia">
          <nvpair id="dummy-file" name="status_file" value="{status_file}"/>
          <nvpair id="dummy-hosts" name="pcmk_host_list" value="n1 n2 n3"/>
          <nvpair id="dummy-reboot" name="pcmk_reboot_action" value="off"/>
        </instance_attributes>
      </primitive>"""

    with fenced_cluster(tmp_path, device) as c:
        vip = floating_ip(c)
        c.wait_converged(timeout=15)
        wait("serving from n1", serving(c, vip, "n1"))
        c.crash("n1")
        start = time.monotonic()
        while not holders(c, vip) or holders(c, vip) == ["n1"]:
            assert time.monotonic() - start < 20, "no takeover"
            time.sleep(0.02)
        # the takeover came after fence_dummy powered "n1" off
        assert status_file.read_text().strip() == "off"
        wait("the service answers again", serving(c, vip))


def test_two_nodes_cut_apart_the_node_running_the_service_wins_the_fence_race(
    tmp_path: Path,
) -> None:
    """two_node: both nodes keep quorum when the link breaks and both try to fence the
    other; priority-fencing-delay (on by default in two-node clusters) makes the node that
    runs nothing wait, so the one running the service shoots first. Never both."""
    log, script = tmp_path / "fence.log", tmp_path / "fence.sh"
    nodes = ("n1", "n2")

    def cib(c: Cluster) -> bytes:
        assert c.lab is not None
        lab_fence_script(c.lab, nodes, script, log)
        return web_cib(floating_ip(c), stonith=external_fence_primitive(script, nodes))

    with Cluster(
        2,
        mode="netns",
        timers=TIMERS,
        links=2,
        extra_hosts=["client"],
        cib=cib,
        extra_hacf=["two_node yes"],
    ) as c:
        assert c.lab is not None
        vip = floating_ip(c)
        c.wait_converged(timeout=15)
        wait("serving from n1", serving(c, vip, "n1"))
        c.lab.cut_between("n1", "n2")  # both alive, neither hears the other
        wait("n2 is fenced", lambda: [h for _, _, h in fence_log(log)] == ["n2"], timeout=15)
        time.sleep(7.0)  # longer than n2's delay: had it survived, it would have shot by now
        assert [h for _, _, h in fence_log(log)] == ["n2"]
        assert c["n1"].running
        assert holders(c, vip) == ["n1"] and http_ok(c, vip)


def test_heartbeat_r1_stonith_host_fences_through_cluster_glue_before_takeover() -> None:
    """ha.cf `stonith_host * null n1 n2 n3` (cluster-glue's null plugin, run by the real
    `stonith` command) with haresources: a crashed node is fenced before its address moves,
    and the fence history names the ha.cf device."""
    c = Cluster(
        3,
        mode="netns",
        timers=TIMERS,
        links=2,
        extra_hosts=["client"],
        extra_hacf=["stonith_host * null n1 n2 n3"],
        start_nodes=False,
    )
    with c:
        vip = floating_ip(c)
        for name in c.names:
            (c[name].config_dir / "haresources").write_text(f"n1 {vip}/24/eth0\n")
            c.start(name)
        c.wait_converged(timeout=15)
        wait("n1 holds the address", lambda: holders(c, vip) == ["n1"], timeout=30)
        c.crash("n1")
        wait("taken over", lambda: len(holders(c, vip)) == 1 and holders(c, vip) != ["n1"])
        (taker,) = holders(c, vip)
        history = json.loads(cli(c, taker, "fence", "history", "--json").stdout)["history"]
        (record,) = [r for r in history if r["target"] == "n1"]
        assert record["state"] == "done"
        assert record["devices"] == ["ha.cf-stonith_host-1"]


def test_no_quorum_policy_suicide_makes_a_cut_off_node_fence_itself(tmp_path: Path) -> None:
    log, script = tmp_path / "fence.log", tmp_path / "fence.sh"

    def cib(c: Cluster) -> bytes:
        assert c.lab is not None
        lab_fence_script(c.lab, NODES, script, log)
        doc = web_cib(floating_ip(c), stonith=external_fence_primitive(script, NODES))
        return doc.replace(
            b'name="stonith-enabled" value="true"/>',
            b'name="stonith-enabled" value="true"/>'
            b'<nvpair id="opt-nqp" name="no-quorum-policy" value="suicide"/>',
        )

    with Cluster(3, mode="netns", timers=TIMERS, links=2, extra_hosts=["client"], cib=cib) as c:
        assert c.lab is not None
        vip = floating_ip(c)
        c.wait_converged(timeout=15)
        wait("serving from n1", serving(c, vip, "n1"))
        c.lab.cut("n1")
        wait("n1 is powered off", lambda: "n1" in [h for _, _, h in fence_log(log)])
        wait("the service moves", serving(c, vip), timeout=20)
        assert "no-quorum-policy=suicide" in c["n1"].log()
