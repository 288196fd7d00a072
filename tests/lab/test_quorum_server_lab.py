"""The seed's quorum server scenarios on real hosts: two sites (one node each, in network
namespaces), a quorum server in a third namespace (`hastack qserver serve`), a client, a
floating IP and web server, and a fence device that really powers a lab host off.

* quorum server down: the cluster stays up (nothing moves);
* site 1 down: site 2 keeps quorum through the server, fences site 1 and takes over;
* quorum server and site 1 down: site 2 has no quorum, and no service;
* an operator forces quorum on site 2 (`hastack quorum force`): the service comes back there.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from hastack.lab.cluster import Cluster, Timers, hastack_argv, hastack_env
from hastack.lab.process import ManagedProcess
from hastack.lab.services import (
    external_fence_primitive,
    fence_log,
    floating_ip,
    holders,
    http_ok,
    lab_fence_script,
    web_cib,
)

TIMERS = Timers(keepalive=0.1, deadtime=0.5, initdead=5.0)
PORT = 5403
LEASE = "1"  # seconds: how long a vote outlives the server


def wait(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout:g} s")


def quorum(c: Cluster, node: str) -> dict[str, object]:
    argv = hastack_argv("quorum", "--json", "-c", str(c[node].config_dir), "--node", node)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=hastack_env())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def force(c: Cluster, node: str) -> str:
    argv = hastack_argv("quorum", "force", "-c", str(c[node].config_dir), "--node", node)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=hastack_env())
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_quorum_server_scenarios_of_the_seed(tmp_path: Path) -> None:
    log, script = tmp_path / "fence.log", tmp_path / "fence.sh"
    nodes = ("n1", "n2")

    def cib(c: Cluster) -> bytes:
        assert c.lab is not None
        lab_fence_script(c.lab, nodes, script, log)
        return web_cib(floating_ip(c), stonith=external_fence_primitive(script, nodes))

    c = Cluster(
        2,
        mode="netns",
        timers=TIMERS,
        links=2,
        extra_hosts=["qserver", "client"],
        cib=cib,
        start_nodes=False,
    )
    with c:
        assert c.lab is not None
        server_addr = c.lab["qserver"].addr(0)
        for name in nodes:
            with open(c[name].config_dir / "ha.cf", "a") as f:
                f.write(f"quorum_server {server_addr}:{PORT}\n")
        serve = hastack_argv(
            "qserver", "serve", "--listen", f"0.0.0.0:{PORT}", "--lease", LEASE,
            "-c", str(c["n1"].config_dir),
        )  # fmt: skip
        server_log = str(tmp_path / "qserver.log")

        def start_server() -> ManagedProcess:
            assert c.lab is not None
            return c.lab["qserver"].start(serve, log_path=server_log, env=hastack_env())

        server = start_server()
        for name in nodes:
            c.start(name)
        vip = floating_ip(c)
        c.wait_converged(timeout=20)
        wait("serving from n1", lambda: holders(c, vip) == ["n1"] and http_ok(c, vip))
        wait("the site holds the server's vote", lambda: quorum(c, "n2")["quorum_device_vote"])

        # the quorum server goes down: both sites still have quorum, nothing moves
        server.kill()
        time.sleep(3 * float(LEASE))
        assert quorum(c, "n1")["quorate"] and quorum(c, "n2")["quorate"]
        assert quorum(c, "n2")["quorum_device_vote"] is False
        assert holders(c, vip) == ["n1"] and http_ok(c, vip)

        # site 1 goes down (the server is back): site 2 keeps quorum through the server,
        # fences site 1 and takes over
        server = start_server()
        wait("the vote is back", lambda: quorum(c, "n2")["quorum_device_vote"])
        c.crash("n1")
        wait("site 2 serves", lambda: holders(c, vip) == ["n2"] and http_ok(c, vip))
        assert "n1" in [host for _, _, host in fence_log(log)]
        status = quorum(c, "n2")
        assert status["quorate"] and status["quorum_device_vote"] and status["votes"] == 2

        # site 1 is back; then the quorum server AND site 1 go down: site 2 loses quorum
        c.restart("n1")
        wait("back on n1", lambda: holders(c, vip) == ["n1"] and http_ok(c, vip), timeout=30)
        server.kill()
        c.crash("n1")
        wait("site 2 loses quorum", lambda: not quorum(c, "n2")["quorate"], timeout=10)
        time.sleep(2.0)
        assert holders(c, vip) == [], "a site without quorum runs the service"

        # the operator forces quorum on site 2: it fences site 1 and serves
        fenced_before = len(fence_log(log))
        assert "WARNING" in force(c, "n2")
        wait("site 2 serves after the force", lambda: holders(c, vip) == ["n2"], timeout=20)
        assert len(fence_log(log)) > fenced_before
        assert quorum(c, "n2")["forced"] is True


def test_nodes_reach_the_quorum_server_over_tls_with_client_certificates(tmp_path: Path) -> None:
    from tests.lab.test_qserver_loopback import make_certs

    certs = tmp_path / "certs"
    make_certs(certs)
    c = Cluster(2, mode="netns", timers=TIMERS, links=1, extra_hosts=["qserver"], start_nodes=False)
    with c:
        assert c.lab is not None
        server_addr = c.lab["qserver"].addr(0)
        for name in ("n1", "n2"):
            with open(c[name].config_dir / "ha.cf", "a") as f:
                f.write(f"quorum_server {server_addr}:{PORT}\n")
                f.write(f"quorum_server_tls {certs}/client.pem {certs}/client.key {certs}/ca.pem\n")
        serve = hastack_argv(
            "qserver", "serve", "--listen", f"0.0.0.0:{PORT}", "-c", str(c["n1"].config_dir),
            "--tls-cert", f"{certs}/server.pem", "--tls-key", f"{certs}/server.key",
            "--tls-ca", f"{certs}/ca.pem",
        )  # fmt: skip
        c.lab["qserver"].start(serve, log_path=str(tmp_path / "qserver.log"), env=hastack_env())
        for name in ("n1", "n2"):
            c.start(name)
        c.wait_converged(timeout=20)
        wait("the nodes hold the vote over TLS", lambda: quorum(c, "n2")["quorum_device_vote"])
        assert quorum(c, "n2")["votes"] == 3
