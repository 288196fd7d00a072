"""Two replica daemons in one event loop, over real loopback sockets and real files: the shell
around the engines (connection, verbs, persistence), without root."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from hastack.replica import control, peer_link, peer_stream
from hastack.replica.backing import create_metadata, read_metadata
from hastack.replica.config import parse_drbd_conf
from hastack.replica.daemon import ReplicaCommandError, ReplicaDaemon
from hastack.replica.metadata import MdFlags
from hastack.replica.model import DrbdConf, MetaDisk

MIB = 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _conf(tmp_path: Path, protocol: str = "C", extra_net: str = "", handlers: str = "") -> DrbdConf:
    for name in ("a.img", "b.img"):
        with open(tmp_path / name, "wb") as f:
            f.truncate(16 * MIB)
    ports = [_free_port() for _ in range(4)]
    text = f"""
resource r0 {{
  net {{ protocol {protocol}; connect-int 1; {extra_net} }}
  disk {{ resync-rate 500M; c-plan-ahead 0; }}
  handlers {{ {handlers} }}
  on alice {{ device /dev/drbd0; disk {tmp_path}/a.img; meta-disk internal;
             address 127.0.0.1:{ports[0]}; nbd-address 127.0.0.1:{ports[2]}; }}
  on bob {{ device /dev/drbd0; disk {tmp_path}/b.img; meta-disk internal;
           address 127.0.0.1:{ports[1]}; nbd-address 127.0.0.1:{ports[3]}; }}
}}
"""
    conf = parse_drbd_conf(text, str(tmp_path / "drbd.conf"))
    for name in ("a.img", "b.img"):
        create_metadata(str(tmp_path / name), MetaDisk(), al_extents=7, rng=random.Random(name))
    return conf


@asynccontextmanager
async def _daemons(conf: DrbdConf, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    running: dict[str, Any] = {}
    servers = []
    try:
        for node in ("alice", "bob"):
            daemon = ReplicaDaemon(conf, node)
            await daemon.start()
            server = control.ControlServer(daemon, str(tmp_path / f"{node}.sock"))
            await server.start()
            servers.append(server)
            running[node] = daemon
        yield running
    finally:
        for server in servers:
            await server.stop()
        for daemon in running.values():
            await daemon.stop()


async def _ask(tmp_path: Path, node: str, verb: str, **fields: Any) -> Any:
    path = str(tmp_path / f"{node}.sock")
    return await asyncio.to_thread(control.request, path, verb, resource="r0", **fields)


async def _until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def _volume(daemon: ReplicaDaemon) -> Any:
    return daemon.resources["r0"].volumes[0]


def _states(daemon: ReplicaDaemon) -> tuple[str, str, str]:
    (res,) = daemon.status("r0")
    (vol,) = res["volumes"]
    return res["cstate"], vol["disk"], vol["peer_disk"]


async def _synced_pair(daemons: dict[str, Any], tmp_path: Path) -> None:
    for node in ("alice", "bob"):
        await _ask(tmp_path, node, "up")
    await _until(lambda: _states(daemons["alice"])[0] == "Connected")
    await _ask(tmp_path, "alice", "primary", force=True)
    await _until(lambda: _states(daemons["alice"]) == ("Connected", "UpToDate", "UpToDate"))
    await _until(lambda: _states(daemons["bob"]) == ("Connected", "UpToDate", "UpToDate"))


def test_up_force_primary_full_sync_and_a_protocol_c_write_is_on_the_peer(
    tmp_path: Path,
) -> None:
    conf = _conf(tmp_path)

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            data = random.Random(5).randbytes(64 * 1024)
            runner = _volume(daemons["alice"])
            await runner.app_write(4 * MIB, data, False)
            # completed under protocol C: the peer's disk already has it
            bob = _volume(daemons["bob"])
            assert bob.backing.read(4 * MIB, len(data)) == data
            await runner.app_flush()
            assert daemons["bob"].status("r0")[0]["volumes"][0]["oos"] == 0

    asyncio.run(scenario())
    size = read_metadata(str(tmp_path / "a.img"), MetaDisk()).layout.data_sectors * 512
    a = (tmp_path / "a.img").read_bytes()[:size]
    b = (tmp_path / "b.img").read_bytes()[:size]
    assert a == b


def test_verbs_refuse_with_reasons_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    conf = _conf(tmp_path)

    async def scenario() -> None:
        async with _daemons(conf, tmp_path):
            with pytest.raises(control.ControlError, match="not attached"):
                await _ask(tmp_path, "alice", "primary")
            await _ask(tmp_path, "alice", "up")
            with pytest.raises(control.ControlError, match="disk is Inconsistent"):
                await _ask(tmp_path, "alice", "primary")  # a fresh disk is not UpToDate
            with pytest.raises(control.ControlError, match="unknown verb 'explode'"):
                await _ask(tmp_path, "alice", "explode")
            path = str(tmp_path / "alice.sock")
            with pytest.raises(control.ControlError, match="no resource 'r9'"):
                await asyncio.to_thread(control.request, path, "up", resource="r9")
            (status,) = await _ask(tmp_path, "alice", "status")
            assert status["role"] == "Secondary"

    asyncio.run(scenario())


def test_a_clean_stop_leaves_clean_metadata_and_a_restart_needs_no_resync(
    tmp_path: Path,
) -> None:
    conf = _conf(tmp_path)

    async def first() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            await _volume(daemons["alice"]).app_write(0, b"z" * 8192, True)

    asyncio.run(first())
    for name in ("a.img", "b.img"):
        sb = read_metadata(str(tmp_path / name), MetaDisk()).superblock
        assert sb.flags & MdFlags.AL_CLEAN and not sb.flags & MdFlags.CRASHED_PRIMARY
        assert sb.flags & MdFlags.WAS_UP_TO_DATE

    async def second() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            for node in ("alice", "bob"):
                await _ask(tmp_path, node, "up")
            await _until(lambda: _states(daemons["alice"]) == ("Connected", "UpToDate", "UpToDate"))
            assert daemons["alice"].status("r0")[0]["volumes"][0]["oos"] == 0

    asyncio.run(second())


def test_a_connection_for_another_resource_is_refused(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    bob_address = conf.resource("r0").hosts[1].address

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _ask(tmp_path, "bob", "up")  # bob (the second name) listens
            reader, writer = await asyncio.open_connection(bob_address.host, bob_address.port)
            writer.write(peer_link.encode_greeting("other", "alice"))
            assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed on us
            writer.close()
            assert _states(daemons["bob"])[0] == "Connecting"

    asyncio.run(scenario())


def test_a_connection_that_never_greets_is_closed_after_the_greeting_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(peer_stream, "GREETING_TIMEOUT", 0.3)
    conf = _conf(tmp_path)
    bob_address = conf.resource("r0").hosts[1].address

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _ask(tmp_path, "bob", "up")
            reader, writer = await asyncio.open_connection(bob_address.host, bob_address.port)
            assert await asyncio.wait_for(reader.read(), timeout=5) == b""  # closed on us
            writer.close()
            _, writer = await asyncio.open_connection(bob_address.host, bob_address.port)
            writer.write(b"HSR")  # the start of a greeting, then gone
            writer.close()
            await _until(lambda: "closed before its greeting" in caplog.text)
            assert _states(daemons["bob"])[0] == "Connecting"

    with caplog.at_level("WARNING", logger="hastack.replica"):
        asyncio.run(scenario())
    assert "r0: refused a peer connection: no greeting within 0.3 s" in caplog.text


def test_the_dialler_drops_a_peer_that_answers_as_another_node(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = _conf(tmp_path)
    bob_address = conf.resource("r0").hosts[1].address
    greetings: list[bytes] = []

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        greetings.append(await reader.read(100))
        writer.write(peer_link.encode_greeting("r0", "mallory"))
        await reader.read()  # until alice closes

    async def scenario() -> None:
        server = await asyncio.start_server(impostor, bob_address.host, bob_address.port)
        async with server, _daemons(conf, tmp_path) as daemons:
            await _ask(tmp_path, "alice", "up")  # bob stays down: the impostor has his port
            await _until(lambda: "answered as 'mallory'" in caplog.text)
            assert _states(daemons["alice"])[0] in ("Connecting", "StandAlone")

    with caplog.at_level("WARNING", logger="hastack.replica"):
        asyncio.run(scenario())
    assert greetings[0] == peer_link.encode_greeting("r0", "alice")
    assert (
        f"r0: connection to bob lost: protocol error: the peer at {bob_address.host_port} "
        "answered as 'mallory' for resource 'r0'"
    ) in caplog.text


def test_protocol_a_writes_wait_while_the_send_buffer_is_full(tmp_path: Path) -> None:
    # sndbuf-size/rcvbuf-size are set on the sockets, so the buffers fill early.
    conf = _conf(tmp_path, protocol="A", extra_net="sndbuf-size 65536; rcvbuf-size 65536;")
    chunk = 64 * 1024

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            alice, bob = daemons["alice"].resources["r0"], daemons["bob"].resources["r0"]
            sock = alice.conn.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) <= 2 * 65536
            bob.conn.transport.pause_reading()  # a peer that stops taking data
            runner = _volume(daemons["alice"])
            written, blocked = 0, None
            while written < 12 * MIB:
                write = asyncio.ensure_future(
                    runner.app_write(written, bytes([written // chunk % 251]) * chunk, False)
                )
                done, _ = await asyncio.wait([write], timeout=0.5)
                if not done:
                    blocked = write
                    break
                written += chunk
            # Completed under protocol A while they fit in the buffers (the transport holds
            # up to WRITE_HIGH): then the next write waits instead of the buffer growing.
            assert blocked is not None, "12 MiB of writes completed into a stalled peer"
            assert peer_stream.WRITE_HIGH <= written <= peer_stream.WRITE_HIGH + 2 * MIB
            assert alice.congested and alice.status()["congestion"] == "n"
            bob.conn.transport.resume_reading()
            await asyncio.wait_for(blocked, timeout=10)  # it goes on once the buffer drains
            written += chunk
            # Protocol A: the Secondary catches up after the completions; nothing was lost.
            expected = runner.backing.read(0, written)
            await _until(lambda: _volume(daemons["bob"]).backing.read(0, written) == expected)
            assert _states(daemons["bob"]) == ("Connected", "UpToDate", "UpToDate")

    asyncio.run(scenario())


def test_disconnect_keeps_standalone_and_writes_go_to_the_bitmap(tmp_path: Path) -> None:
    conf = _conf(tmp_path)

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            await _ask(tmp_path, "alice", "disconnect")
            await _until(lambda: _states(daemons["alice"])[0] == "StandAlone")
            await _volume(daemons["alice"]).app_write(MIB, b"q" * 4096, False)
            assert daemons["alice"].status("r0")[0]["volumes"][0]["oos"] == 4
            await asyncio.sleep(1.5)  # the dialler would have reconnected by now
            assert _states(daemons["alice"])[0] == "StandAlone"
            await _ask(tmp_path, "alice", "connect")
            await _until(lambda: _states(daemons["bob"]) == ("Connected", "UpToDate", "UpToDate"))
            assert _volume(daemons["bob"]).backing.read(MIB, 4096) == b"q" * 4096

    asyncio.run(scenario())


def test_unknown_resource_is_refused_by_the_daemon() -> None:
    conf = parse_drbd_conf(
        "resource r0 { on a { device /dev/drbd0; disk /x; meta-disk internal; "
        "address 127.0.0.1:7000; } on b { device /dev/drbd0; disk /y; meta-disk internal; "
        "address 127.0.0.1:7001; } }",
        "drbd.conf",
    )
    daemon = ReplicaDaemon(conf, "a")
    with pytest.raises(ReplicaCommandError, match="no resource 'r1'"):
        daemon.resource("r1")
    assert ReplicaDaemon(conf, "c").resources == {}  # no host section: nothing to run


def test_a_split_brain_runs_the_handler_with_drbds_environment(tmp_path: Path) -> None:
    out = tmp_path / "handler.out"
    conf = _conf(
        tmp_path,
        extra_net="",
        handlers=f'split-brain "echo $DRBD_RESOURCE $DRBD_PEER $DRBD_MINOR >> {out}";',
    )

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            for node in ("alice", "bob"):
                await _ask(tmp_path, node, "disconnect")
            await _ask(tmp_path, "bob", "primary")
            await _volume(daemons["alice"]).app_write(0, b"a" * 4096, False)
            await _volume(daemons["bob"]).app_write(MIB, b"b" * 4096, False)
            for node in ("bob", "alice"):
                await _ask(tmp_path, node, "connect")
            await _until(lambda: out.exists() and len(out.read_text().splitlines()) == 2)
            for node in ("alice", "bob"):
                await _until(lambda n=node: _states(daemons[n])[0] == "StandAlone")

    asyncio.run(scenario())
    assert sorted(out.read_text().splitlines()) == ["r0 alice 0", "r0 bob 0"]
