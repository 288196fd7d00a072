"""The quorum server on loopback (no root): the real daemon as a subprocess, real TCP (and TLS
with client certificates made by `openssl`), and two simulated sites of one cluster, each a
QuorumLink as a node would run it. The seed's scenarios: site 1 gone -> site 2 keeps the vote;
the quorum server gone -> the nodes lose the vote after the lease, and say so."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hastack.config.directory import load_config
from hastack.lab.cluster import hastack_env
from hastack.quorum.daemon import QServer, server_tls
from hastack.quorum.link import QuorumLink, client_tls

NEEDS_ROOT = False  # loopback only (see tests/lab/conftest.py)
# Leases long enough that a renewal is never late on two cores shared with the simulator sweeps
# in CI; the waits below are generous for the same reason, and timing is checked on the link's
# own clock (vote_until) rather than by how long a poll took.
LEASE = 2.0
INTERVAL = 0.1
SETTLE = 4 * LEASE + 10  # ample time for connections, grants and renewals
KEY = "0123456789abcdef0123456789abcdef"


def write_cluster(
    directory: Path, name: str, port: int, key: str = KEY, nodes: str = "site1 site2"
) -> Path:
    directory.mkdir()
    node_lines = "".join(f"node {node}\n" for node in nodes.split())
    (directory / "ha.cf").write_text(
        f"cluster_name {name}\nkeepalive 100ms\ndeadtime 1\n{node_lines}"
        f"bcast lo\nquorum_server 127.0.0.1:{port}\n"
    )
    keys = directory / "authkeys"
    keys.write_text(f"auth 1\n1 sha256 {key}\n")
    keys.chmod(0o600)
    return directory


class Server:
    """The daemon's process and what it wrote to stderr."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.port = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                match = re.search(pattern, line)
                if match:
                    return match
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} in the server's log:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        return self.proc.returncode


@contextmanager
def qserver(*args: str) -> Iterator[Server]:
    argv = [sys.executable, "-m", "hastack.quorum", "serve", "--listen", "127.0.0.1:0"]
    proc = subprocess.Popen(
        [*argv, "--lease", str(LEASE), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=hastack_env(),
    )
    server = Server(proc)
    try:
        server.port = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        yield server
    finally:
        server.stop()


def link(config_dir: Path, node: str, port: int, changes: list[tuple[bool, str]], **kw: object):
    """A node's QuorumLink to the server at `port` (the port ha.cf names is a placeholder)."""
    config = load_config(str(config_dir))
    made = QuorumLink.from_config(
        config,
        node,
        on_change=lambda vote, why: changes.append((vote, why)),
        interval=INTERVAL,
        **kw,  # type: ignore[arg-type]
    )
    made.port = port
    made.core.backoff_min, made.core.backoff_max = 0.1, 0.5
    return made


async def until(check: Callable[[], bool], timeout: float) -> float:
    """Wait for `check`; returns how long it took (fails the test on timeout)."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def status(config_dir: Path, port: int, *tls: str) -> dict[str, object]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hastack.quorum",
            "status",
            "-c",
            str(config_dir),
            "--server",
            f"127.0.0.1:{port}",
            "--json",
            "--timeout",  # the server shares 2 busy cores with the rest of CI
            "20",
            *tls,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=hastack_env(),
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["clusters"]  # type: ignore[no-any-return]


def test_site_one_gone_site_two_keeps_the_vote(tmp_path: Path) -> None:
    conf = write_cluster(tmp_path / "c1", "stretch", 1)
    other = write_cluster(tmp_path / "c2", "other", 1, key="f" * 32)
    with qserver("-c", str(conf), "-c", str(other)) as server:

        async def scenario() -> None:
            changes1: list[tuple[bool, str]] = []
            changes2: list[tuple[bool, str]] = []
            site1 = link(conf, "site1", server.port, changes1)
            site2 = link(conf, "site2", server.port, changes2)
            for node in (site1, site2):
                node.set_membership(("site1", "site2"), (1, 0))
                node.start()
            try:
                await until(lambda: site1.has_vote() and site2.has_vote(), SETTLE)
                view = (await asyncio.to_thread(status, conf, server.port))["stretch"]
                holder = view["vote_holder"]  # type: ignore[index]
                assert holder == ["site1", "site2"]
                await site1.close()  # site 1 goes down
                site2.set_membership(("site2",), (2, 0))
                assert not site2.has_vote()  # a new membership needs a new grant
                await until(site2.has_vote, SETTLE)  # once site 1's grant has expired
                assert changes2[-1][0] is True
                view = (await asyncio.to_thread(status, conf, server.port))["stretch"]
                assert view["vote_holder"] == ["site2"]  # type: ignore[index]
                # it keeps the vote: renewals go on for several leases
                await asyncio.sleep(3 * LEASE)
                assert site2.has_vote()
            finally:
                await site1.close()
                await site2.close()

        asyncio.run(scenario())
        server.wait_for(r"cluster stretch: the vote goes to partition \{site2\}")
        assert server.stop() == 0
        assert server.wait_for("quorum server stopping")


def test_a_split_between_two_sites_gives_the_vote_to_one_side_only(tmp_path: Path) -> None:
    """Two sites of two nodes each; the link between the sites breaks while both stay up and
    connected to the server: a 2-2 tie, which the lowest node id (site 1) wins."""
    conf = write_cluster(tmp_path / "c1", "stretch", 1, nodes="a1 a2 b1 b2")
    everyone = ("a1", "a2", "b1", "b2")
    with qserver("-c", str(conf)) as server:

        async def scenario() -> None:
            nodes = {name: link(conf, name, server.port, []) for name in everyone}
            for node in nodes.values():
                node.set_membership(everyone, (1, 0))
                node.start()
            try:
                await until(lambda: all(n.has_vote() for n in nodes.values()), SETTLE)
                for name, node in nodes.items():
                    node.set_membership(("a1", "a2") if name < "b" else ("b1", "b2"), (2, 0))
                await until(lambda: nodes["a1"].has_vote() and nodes["a2"].has_vote(), SETTLE)
                for _ in range(int(2 * LEASE / 0.05)):  # and it stays that way
                    assert not nodes["b1"].has_vote() and not nodes["b2"].has_vote()
                    await asyncio.sleep(0.05)
                assert "partition {a1,a2} should hold the vote" in nodes["b1"].status()["reason"]
            finally:
                for node in nodes.values():
                    await node.close()

        asyncio.run(scenario())
        server.wait_for(r"cluster stretch: the vote goes to partition \{a1,a2\}")


def test_server_gone_the_nodes_lose_the_vote_after_the_lease_and_say_so(tmp_path: Path) -> None:
    conf = write_cluster(tmp_path / "c1", "stretch", 1)
    with qserver("-c", str(conf)) as server:

        async def scenario() -> None:
            changes: list[tuple[bool, str]] = []
            site1 = link(conf, "site1", server.port, changes)
            site2 = link(conf, "site2", server.port, [])
            for node in (site1, site2):
                node.set_membership(("site1", "site2"), (1, 0))
                node.start()
            try:
                await until(lambda: site1.has_vote() and site2.has_vote(), SETTLE)
                killed_at = site1.clock()
                os.kill(server.proc.pid, signal.SIGKILL)  # no goodbye
                await asyncio.sleep(0.1)
                assert site1.has_vote() and site2.has_vote()  # not lost with the connection
                # every grant was asked for before the kill, so none outlives it by a lease
                for node in (site1, site2):
                    assert node.core.vote_until is not None
                    assert node.core.vote_until <= killed_at + LEASE
                await until(lambda: not site1.has_vote() and not site2.has_vote(), SETTLE)
                await until(lambda: changes[-1][0] is False, SETTLE)
                assert "lease expired" in changes[-1][1]
                assert site1.status()["connection"] != "up"
            finally:
                await site1.close()
                await site2.close()

        asyncio.run(scenario())


def test_refusals_are_logged_and_the_server_keeps_serving(tmp_path: Path) -> None:
    conf = write_cluster(tmp_path / "c1", "stretch", 1)
    wrong_key = write_cluster(tmp_path / "bad", "stretch", 1, key="e" * 32)
    unknown = write_cluster(tmp_path / "unknown", "nosuch", 1)
    with qserver("-c", str(conf)) as server:

        async def scenario() -> None:
            bad = [
                link(wrong_key, "site1", server.port, []),
                link(unknown, "site1", server.port, []),
            ]
            good = link(conf, "site2", server.port, [])
            for node in (*bad, good):
                node.set_membership((node.core.node,), (1, 0))
                node.start()
            # garbage on the port: closed and counted, never a traceback
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"\xff" * 16)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) is not None
            writer.close()
            try:
                await until(good.has_vote, SETTLE)
                assert not any(node.has_vote() for node in bad)
                assert "refused" in bad[0].status()["reason"]
            finally:
                for node in (*bad, good):
                    await node.close()

        asyncio.run(scenario())
        server.wait_for(r"refused: bad signature for cluster stretch")
        server.wait_for(r"refused: unknown cluster 'nosuch'")
        server.wait_for(r"bad frame: frame length")
        assert not any("Traceback" in line for line in server.lines)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certs(directory: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    directory.mkdir()
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=hastack test CA",
        cwd=directory,
    )
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "")):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=directory,
        )
        ext = directory / f"{name}.ext"
        ext.write_text(extra + "\n" if extra else "basicConstraints=CA:FALSE\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "1",
            "-extfile",
            ext.name,
            cwd=directory,
        )


@pytest.mark.skipif(not os.path.exists("/usr/bin/openssl"), reason="no openssl to make certs")
def test_tls_with_client_certificates(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    make_certs(certs)
    conf = write_cluster(tmp_path / "c1", "stretch", 1)
    tls_server = [
        "--tls-cert",
        str(certs / "server.pem"),
        "--tls-key",
        str(certs / "server.key"),
        "--tls-ca",
        str(certs / "ca.pem"),
    ]
    tls_client = [
        "--tls-cert",
        str(certs / "client.pem"),
        "--tls-key",
        str(certs / "client.key"),
        "--tls-ca",
        str(certs / "ca.pem"),
    ]
    with qserver("-c", str(conf), *tls_server) as server:
        server.wait_for("TLS, client certificates required")

        async def scenario() -> None:
            context = client_tls(
                str(certs / "client.pem"), str(certs / "client.key"), str(certs / "ca.pem")
            )
            site1 = link(conf, "site1", server.port, [], tls=context)
            site1.set_membership(("site1",), (1, 0))
            site1.start()
            # a client without a certificate gets nowhere (and the server carries on)
            plain = link(conf, "site2", server.port, [])
            plain.set_membership(("site2",), (1, 0))
            plain.start()
            try:
                await until(site1.has_vote, SETTLE)
                await asyncio.sleep(0.5)
                assert not plain.has_vote()
                assert plain.status()["connection"] != "up"
                # asked while site1 still renews: once it closes, its grant runs out within
                # a lease, which a slow machine can spend starting the status command
                view = (await asyncio.to_thread(status, conf, server.port, *tls_client))["stretch"]
                assert view["nodes"]["site1"]["grant_remaining"] is not None  # type: ignore[index]
            finally:
                await site1.close()
                await plain.close()

        asyncio.run(scenario())
        assert server.proc.poll() is None


@pytest.mark.skipif(not os.path.exists("/usr/bin/openssl"), reason="no openssl to make certs")
def test_a_tls_hello_that_arrives_with_the_connection_is_answered(tmp_path: Path) -> None:
    """A client whose connection and TLS hello both arrive before the server's loop runs (a
    busy server): the hello must reach the TLS handshake, not the plain stream. It once did
    not, and such a client waited until the handshake timeout."""
    certs = tmp_path / "certs"
    make_certs(certs)
    ca = str(certs / "ca.pem")
    context = client_tls(str(certs / "client.pem"), str(certs / "client.key"), ca)
    outcome: dict[str, object] = {}

    def handshake(port: int) -> None:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=8) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                outcome["version"] = tls.version()
        except OSError as exc:
            outcome["error"] = exc

    async def scenario() -> None:
        tls = server_tls(str(certs / "server.pem"), str(certs / "server.key"), ca)
        server = QServer([], "127.0.0.1", 0, tls=tls)
        _, port = await server.start()
        try:
            client = threading.Thread(target=handshake, args=(port,))
            client.start()
            time.sleep(1.0)  # the loop is busy: the connection and the hello wait in the kernel
            await asyncio.to_thread(client.join, 20)
        finally:
            await server.close()

    asyncio.run(scenario())
    assert "error" not in outcome, outcome
    assert str(outcome.get("version", "")).startswith("TLS")
