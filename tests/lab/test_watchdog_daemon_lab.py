"""`hastack watchdog run` on a cluster member: three `hastack node` daemons in network
namespaces serve a floating IP and a web server from n1; n1's watchdog daemon (with
``cluster-socket``, a stand-in device and a recording reboot command) watches a pidfile. When
the process dies and no repair brings it back, the daemon puts n1 in standby through the node
daemon, waits until n1 runs nothing, and only then reboots: the service has moved by a clean
stop before the machine goes down. Observed from outside: who holds the address, the order of
the recorded events, the node daemon's `health` answer, and `hastack status`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from hastack.daemon.control import query
from hastack.lab.cluster import Cluster, Timers, hastack_argv, hastack_env
from hastack.lab.services import floating_ip, holders, http_ok, web_cib
from hastack.lab.watchdog import StandInWatchdog

TIMERS = Timers(keepalive=0.1, deadtime=0.5, initdead=5.0)
DEVICE_TIMEOUT = 5


def wait(what: str, check: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


def test_an_unrepaired_fault_moves_the_services_away_before_the_reboot(tmp_path: Path) -> None:
    events = tmp_path / "events"
    reboot = tmp_path / "reboot.sh"
    # the reboot only records that it ran
    reboot.write_text(f'#!/bin/sh\necho reboot >> "{events}"\n')
    reboot.chmod(0o755)
    server = subprocess.Popen(["sleep", "1000"])
    pidfile = tmp_path / "db.pid"
    pidfile.write_text(f"{server.pid}\n")
    fired: list[float] = []
    device = StandInWatchdog(tmp_path / "watchdog", DEVICE_TIMEOUT, lambda: fired.append(1))
    device.start()
    watchdog: subprocess.Popen[bytes] | None = None
    try:
        with Cluster(
            3,
            mode="netns",
            timers=TIMERS,
            links=1,
            extra_hosts=["client"],
            cib=lambda c: web_cib(floating_ip(c)),
        ) as c:
            vip = floating_ip(c)
            c.wait_converged(timeout=20)
            wait("the web group serves from n1", lambda: holders(c, vip) == ["n1"])
            # The address is up as soon as the agent added it; the node daemon counts the
            # resource as running once it has recorded the start's result, a moment later.
            wait(
                "n1 reports the web group running",
                lambda: query(c["n1"].control_path, {"cmd": "health"})["running"],
            )
            health = query(c["n1"].control_path, {"cmd": "health"})
            assert health["node"] == "n1" and health["quorate"] is True
            conf = tmp_path / "watchdog.conf"
            conf.write_text(
                textwrap.dedent(
                    f"""\
                    watchdog-device = {tmp_path / "watchdog"}
                    watchdog-timeout = {DEVICE_TIMEOUT}
                    interval = 1
                    pidfile = {pidfile}
                    retry-timeout = 0
                    log-dir = {tmp_path / "log"}
                    state-dir = {tmp_path / "state"}
                    admin =
                    reboot-command = {reboot}
                    reset-command = {reboot}
                    poweroff-command = {reboot}
                    cluster-socket = {c["n1"].control_path}
                    """
                )
            )
            log = tmp_path / "watchdog.log"
            with log.open("wb") as out:
                watchdog = subprocess.Popen(
                    [sys.executable, "-m", "hastack", "watchdog", "run", "-c", str(conf)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=hastack_env(),
                )
            wait("keep-alives", lambda: device.keepalives >= 2)
            status = subprocess.run(
                hastack_argv("status", "-c", str(c["n1"].config_dir), "--node", "n1"),
                capture_output=True,
                text=True,
                timeout=60,
                env={**hastack_env(), "HASTACK_WATCHDOG_STATE_DIR": str(tmp_path / "state")},
            )
            assert "Watchdog daemon (pid" in status.stdout, status.stdout
            server.kill()
            server.wait()
            wait("the reboot", events.exists, timeout=60)
            # By the time of the reboot n1 ran nothing (it had stopped the group, so its
            # address was gone); another node takes the group over.
            assert query(c["n1"].control_path, {"cmd": "health"})["running"] == []
            assert "n1" not in holders(c, vip)
            wait("another node serves", lambda: holders(c, vip) not in ([], ["n1"]))
            wait("the service answers again", lambda: http_ok(c, vip))
            text = log.read_text()
            assert "cluster: n1 in standby, no resource runs here" in text, text
            assert text.index("in standby") < text.index("keep-alives stopped for good")
            wait("the device fires", lambda: fired, timeout=DEVICE_TIMEOUT + 5)
            record = json.loads((tmp_path / "state" / "last-reset.json").read_text())
            assert (record["check"], record["object"]) == ("pidfile", str(pidfile))
    finally:
        if watchdog is not None and watchdog.poll() is None:
            watchdog.send_signal(signal.SIGTERM)
            try:
                watchdog.wait(20)
            except subprocess.TimeoutExpired:
                watchdog.kill()
                watchdog.wait()
        if server.poll() is None:
            server.kill()
            server.wait()
        device.close()
