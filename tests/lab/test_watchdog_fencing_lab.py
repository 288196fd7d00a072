"""Watchdog self-fencing end to end: three `hastack node` daemons in network namespaces, each
feeding its own watchdog (a FIFO played by :class:`hastack.lab.watchdog.StandInWatchdog`,
which powers the host off when it is not fed in time, as a watchdog resets a machine), a
``hastack/watchdog`` fence device and ``stonith-watchdog-timeout``; a floating IP and a web
server. Observed from outside: who holds the address, the stand-in watchdogs' records, and
`hastack fence history` / `hastack status`."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hastack.daemon.watchdog_shell import device_timeout
from hastack.lab.cluster import Cluster, Timers, hastack_argv, hastack_env
from hastack.lab.services import floating_ip, holders, http_ok, web_cib
from hastack.lab.watchdog import StandInWatchdog

TIMERS = Timers(keepalive=0.1, deadtime=0.5, initdead=5.0)
NODES = ("n1", "n2", "n3")
STONITH_WATCHDOG_TIMEOUT = 6.0
DEVICE_TIMEOUT = device_timeout(STONITH_WATCHDOG_TIMEOUT)  # half of it: 3 s
WATCHDOG_DEVICE = """
      <primitive id="wd" class="stonith" type="hastack/watchdog">
        <instance_attributes id="wd-ia">
          <nvpair id="wd-check" name="pcmk_host_check" value="none"/>
        </instance_attributes>
      </primitive>"""
# a group member whose stop takes 30 s: a node holding it cannot stop in time
SLOW_STOP = """
        <primitive id="slow" class="ocf" provider="heartbeat" type="Delay">
          <instance_attributes id="slow-ia">
            <nvpair id="slow-start" name="startdelay" value="0"/>
            <nvpair id="slow-stop" name="stopdelay" value="30"/>
            <nvpair id="slow-mon" name="mondelay" value="0"/>
          </instance_attributes>
          <operations>
            <op id="slow-stop-op" name="stop" interval="0" timeout="60s"/>
          </operations>
        </primitive>"""


def wait(what: str, check: Callable[[], bool], timeout: float = 20.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def cli(c: Cluster, node: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = hastack_argv(*args, "-c", str(c[node].config_dir), "--node", node)
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, env=hastack_env())


def serving(c: Cluster, vip: str, on: str | None = None) -> Callable[[], bool]:
    def check() -> bool:
        where = holders(c, vip)
        return len(where) == 1 and (on is None or where == [on]) and http_ok(c, vip)

    return check


def watch_takeover(c: Cluster, vip: str, victim: str, timeout: float = 30.0) -> float:
    """Poll until another node holds the address; it is never on two nodes at once.
    Returns the monotonic time of the first poll that sees it elsewhere."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        where = holders(c, vip)
        assert len(where) <= 1, f"the address is on {where} at once"
        if where and where != [victim]:
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"no takeover from {victim} within {timeout:g} s")


@contextmanager
def watchdog_cluster(
    tmp_path: Path, slow: bool
) -> Iterator[tuple[Cluster, str, dict[str, StandInWatchdog]]]:
    """Three nodes feeding stand-in watchdogs, the web group on n1 (with a member that takes
    30 s to stop when `slow`)."""
    dogs: dict[str, StandInWatchdog] = {}
    cluster = Cluster(
        3,
        mode="netns",
        timers=TIMERS,
        links=2,
        extra_hosts=["client"],
        node_hacf=lambda name: [f"watchdog {tmp_path / f'watchdog-{name}'}"],
        cib=lambda c: web_cib(
            floating_ip(c),
            stonith=WATCHDOG_DEVICE,
            options={"stonith-watchdog-timeout": f"{STONITH_WATCHDOG_TIMEOUT:g}s"},
            extra=SLOW_STOP if slow else "",
        ),
        start_nodes=False,
    )
    with cluster as c:
        assert c.lab is not None
        try:
            for name in NODES:
                dog = StandInWatchdog(
                    tmp_path / f"watchdog-{name}", DEVICE_TIMEOUT, c.lab[name].power_off
                )
                dog.start()
                dogs[name] = dog
            for name in NODES:
                c.start(name)
            vip = floating_ip(c)
            c.wait_converged(timeout=15)
            wait("the web group serves from n1", serving(c, vip, "n1"))
            yield c, vip, dogs
        finally:
            for dog in dogs.values():
                dog.close()


@pytest.mark.parametrize("slow", [False, True], ids=["stops-in-time", "stop-hangs"])
def test_watchdog_fencing_moves_the_service_of_a_cut_off_node_once_it_is_safe(
    tmp_path: Path, slow: bool
) -> None:
    """n1 is cut off while it serves. Without quorum it stops the web group (stops-in-time:
    it stops in time, keeps feeding its watchdog and is not reset) or cannot (stop-hangs: a
    group member takes 30 s to stop, so it stops feeding and its watchdog resets it). n2/n3
    count n1 fenced once stonith-watchdog-timeout has passed, and only then take over."""
    with watchdog_cluster(tmp_path, slow) as (c, vip, dogs):
        check_takeover(c, vip, dogs, slow)


def check_takeover(c: Cluster, vip: str, dogs: dict[str, StandInWatchdog], slow: bool) -> None:
    assert c.lab is not None
    assert all(dog.times("armed") for dog in dogs.values())  # every daemon feeds its device
    status = cli(c, "n2", "status")
    assert "n1: ok through wd" in status.stdout, status.stdout
    assert "Watchdog " in status.stdout and "self-fencing" in status.stdout, status.stdout
    cut_at = time.monotonic()
    c.lab.cut("n1")
    moved_at = watch_takeover(c, vip, "n1")
    wait("the service answers again", serving(c, vip))
    # the survivors waited stonith-watchdog-timeout (after noticing the loss) before moving
    assert moved_at - cut_at >= STONITH_WATCHDOG_TIMEOUT
    history = json.loads(cli(c, "n2", "fence", "history", "--json").stdout)["history"]
    (record,) = [r for r in history if r["target"] == "n1"]
    assert record["state"] == "done" and record["devices"] == ["wd"]
    if slow:
        # n1 could not stop in time: its watchdog reset it before the others took over
        (fired,) = dogs["n1"].times("fired")
        assert fired < moved_at
        assert not c["n1"].running
    else:
        # n1 stopped everything without quorum: nothing to reset it for
        time.sleep(DEVICE_TIMEOUT + 0.5)
        assert not dogs["n1"].fired and c["n1"].running
    assert not dogs["n2"].fired and not dogs["n3"].fired


def test_a_paused_node_is_reset_by_its_watchdog_and_a_clean_stop_disarms(
    tmp_path: Path,
) -> None:
    with watchdog_cluster(tmp_path, slow=False) as (c, vip, dogs):
        # a hung daemon (SIGSTOP) stops feeding: its watchdog resets the machine, and the
        # others take over once stonith-watchdog-timeout has passed
        paused_at = time.monotonic()
        c.stop("n1")
        wait("n1's watchdog fires", lambda: dogs["n1"].fired, timeout=10)
        # fed until the pause (a byte written just before may be read a poll later), then
        # fired a device timeout after the last keep-alive
        last = dogs["n1"].last_keepalive
        assert last is not None and last < paused_at + 0.1
        assert dogs["n1"].times("fired")[0] - last >= DEVICE_TIMEOUT
        moved_at = watch_takeover(c, vip, "n1")
        assert dogs["n1"].times("fired")[0] < moved_at
        wait("the service answers again", serving(c, vip))
        # a clean stop of a node that runs nothing: the magic close disarms its watchdog
        idle = next(n for n in ("n2", "n3") if n not in holders(c, vip))
        assert c.term(idle) == 0
        wait(f"{idle}'s watchdog disarmed", lambda: bool(dogs[idle].times("disarmed")), 10)
        time.sleep(DEVICE_TIMEOUT + 0.5)  # an armed device would have fired by now
        assert not dogs[idle].fired
