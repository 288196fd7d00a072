"""mon triggers a takeover: three `hastack node` daemons in network namespaces serve a floating
IP and a web server from n1; `hastack mon serve` watches a service of n1 (a TCP listener the
test stops) and its `hastack-cluster.alert --standby` puts n1 in standby after three failures,
so the web group moves to another node; the recovery's upalert (`--on-recovery clear`) takes
n1 out of standby again. Observed from outside: who holds the address, n1's standby
attribute in the CIB, and the mon server's alert history."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from hastack.daemon.control import query
from hastack.lab.cluster import Cluster, Timers, hastack_env
from hastack.lab.services import floating_ip, holders, http_ok, web_cib
from hastack.mon.builtin import install_scripts
from hastack.mon.client import MonClient

TIMERS = Timers(keepalive=0.1, deadtime=0.5, initdead=5.0)


def wait(what: str, check: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def n1_standby(c: Cluster) -> bool:
    cib = query(c["n1"].control_path, {"cmd": "cib-query"})
    text = str(cib)
    return 'name="standby" value="on"' in text or "'standby': 'on'" in text


def test_a_failed_service_puts_the_node_in_standby_and_its_recovery_takes_it_out(
    tmp_path: Path,
) -> None:
    for sub in ("mon.d", "alert.d", "state", "log"):
        (tmp_path / sub).mkdir()
    install_scripts(tmp_path / "mon.d", tmp_path / "alert.d")
    (tmp_path / "auth.cf").write_text("command section\nlist: all\nprotid: all\nquit: all\n")
    app_port, mon_port = free_port(), free_port()
    app = socket.socket()
    app.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    app.bind(("127.0.0.1", app_port))
    app.listen(16)
    server: subprocess.Popen[bytes] | None = None
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
            conf = tmp_path / "mon.cf"
            cluster_args = (
                f"--socket {c['n1'].control_path} --node n1 --standby --on-recovery clear"
            )
            conf.write_text(
                textwrap.dedent(
                    f"""\
                    serverport = {mon_port}
                    trapport = {mon_port}
                    cfbasedir = {tmp_path}
                    mondir = {tmp_path}/mon.d
                    alertdir = {tmp_path}/alert.d
                    statedir = {tmp_path}/state
                    logdir = {tmp_path}/log

                    hostgroup app 127.0.0.1

                    watch app
                        service db
                            monitor hastack-tcp.monitor -p {app_port} -t 2
                            interval 1s
                            period wd {{Sun-Sat}}
                                alertafter 3
                                alert hastack-cluster.alert {cluster_args}
                                upalert hastack-cluster.alert {cluster_args}
                    """
                )
            )
            log = (tmp_path / "mon.log").open("wb")
            server = subprocess.Popen(
                [sys.executable, "-m", "hastack", "mon", "serve", "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=hastack_env(),
            )
            time.sleep(3)  # a few good checks: nothing moves
            assert holders(c, vip) == ["n1"] and not n1_standby(c)
            app.close()  # the database dies
            wait("the web group leaves n1", lambda: holders(c, vip) not in ([], ["n1"]), 60)
            assert n1_standby(c)
            wait("the service answers again", lambda: http_ok(c, vip))
            with MonClient("127.0.0.1", mon_port) as client:
                history = client.command("list alerthist")
            assert any("hastack-cluster.alert" in line for line in history), history
            app = socket.socket()  # the database is back: the upalert clears the standby
            app.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            app.bind(("127.0.0.1", app_port))
            app.listen(16)
            wait("n1 out of standby", lambda: not n1_standby(c), 30)
    finally:
        app.close()
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
