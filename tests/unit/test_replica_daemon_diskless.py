"""Diskless operation of the replica daemon: two daemons in one event loop over loopback and
real files (no root), driven through the control socket: detach, I/O through the peer, the
status views, attach again and the resync of exactly what the detached disk missed."""

from __future__ import annotations

import asyncio
import errno
import random
import shutil
import sys
from pathlib import Path

import pytest

from hastack.replica import control
from hastack.replica.backing import read_metadata
from hastack.replica.metadata import MdFlags
from hastack.replica.model import MetaDisk
from hastack.replica.status_view import json_status, proc_drbd, status_text
from tests.unit.test_replica_daemon import (
    MIB,
    _ask,
    _conf,
    _daemons,
    _states,
    _synced_pair,
    _until,
    _volume,
)

BLOCK = 4096


def _data_area(path: Path) -> bytes:
    size = read_metadata(str(path), MetaDisk()).layout.data_sectors * 512
    return path.read_bytes()[:size]


def test_a_detached_primary_serves_reads_and_writes_through_the_peer(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    a_img, b_img = tmp_path / "a.img", tmp_path / "b.img"

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            alice = _volume(daemons["alice"])
            first = random.Random(1).randbytes(8 * BLOCK)
            await alice.app_write(MIB, first, False)
            # (its barrier acked: else the detach marks it too, as the peer may lack it)
            await _until(lambda: not alice.engine.transfer_log)
            status = await _ask(tmp_path, "alice", "detach")
            assert status[0]["volumes"][0]["disk"] == "Diskless"
            assert alice.backing is None, "the disk is closed once detach answers"
            sb = read_metadata(str(a_img), MetaDisk()).superblock
            assert sb.flags & MdFlags.AL_CLEAN, "let go of cleanly"
            assert _states(daemons["alice"]) == ("Connected", "Diskless", "UpToDate")
            await _until(lambda: _states(daemons["bob"]) == ("Connected", "UpToDate", "Diskless"))
            assert "ds:Diskless/UpToDate" in proc_drbd(
                daemons["alice"].status("all"), "version: 8.4"
            )
            (shown,) = json_status(daemons["alice"].status("all"))["resources"]
            assert shown["volumes"][0]["disk"] == "Diskless"
            assert "disk:Diskless" in status_text(daemons["alice"].status("all"))
            assert "peer-disk:Diskless" in status_text(daemons["bob"].status("all"))
            # Writes go to bob only; bob's bitmap records them; reads come from bob.
            second = random.Random(2).randbytes(3 * BLOCK)
            before = a_img.read_bytes()[2 * MIB : 2 * MIB + len(second)]
            await alice.app_write(2 * MIB, second, True)
            await alice.app_flush()
            bob = _volume(daemons["bob"])
            assert bob.backing.read(2 * MIB, len(second)) == second
            assert a_img.read_bytes()[2 * MIB : 2 * MIB + len(second)] == before
            assert daemons["bob"].status("r0")[0]["volumes"][0]["oos"] == 12
            assert await alice.app_read(MIB, len(first)) == first
            assert await alice.app_read(2 * MIB, len(second)) == second
            # attach: the resync brings alice's disk UpToDate (alice stays Primary).
            before = alice.engine.stats["resync_blocks_received"]
            await _ask(tmp_path, "alice", "attach")
            for node in ("alice", "bob"):
                await _until(
                    lambda n=node: _states(daemons[n]) == ("Connected", "UpToDate", "UpToDate")
                )
            assert alice.engine.stats["resync_blocks_received"] - before == 3
            assert daemons["alice"].status("r0")[0]["role"] == "Primary"
            assert alice.backing.read(2 * MIB, len(second)) == second

    asyncio.run(scenario())
    assert _data_area(a_img) == _data_area(b_img)


def test_a_detached_secondary_misses_writes_and_attach_resyncs_exactly_those(
    tmp_path: Path,
) -> None:
    conf = _conf(tmp_path)

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            await _ask(tmp_path, "bob", "detach")
            await _until(lambda: _states(daemons["alice"]) == ("Connected", "UpToDate", "Diskless"))
            alice = _volume(daemons["alice"])
            for n in (1, 50, 700):
                await alice.app_write(n * BLOCK, bytes([n % 251]) * BLOCK, False)
            assert daemons["alice"].status("r0")[0]["volumes"][0]["oos"] == 12
            (bob_status,) = await _ask(tmp_path, "bob", "status")
            assert bob_status["volumes"][0]["disk"] == "Diskless"
            bob = _volume(daemons["bob"])
            before = bob.engine.stats["resync_blocks_received"]  # the initial full sync
            await _ask(tmp_path, "bob", "attach")
            await _until(lambda: _states(daemons["bob"]) == ("Connected", "UpToDate", "UpToDate"))
            assert bob.engine.stats["resync_blocks_received"] - before == 3
            assert bob.backing.read(700 * BLOCK, BLOCK) == bytes([700 % 251]) * BLOCK

    asyncio.run(scenario())
    assert _data_area(tmp_path / "a.img") == _data_area(tmp_path / "b.img")


def test_detach_is_refused_on_a_primary_without_a_peer_and_force_makes_io_fail(
    tmp_path: Path,
) -> None:
    conf = _conf(tmp_path)

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            await _ask(tmp_path, "alice", "disconnect")
            with pytest.raises(control.ControlError, match="no UpToDate peer"):
                await _ask(tmp_path, "alice", "detach")
            await _ask(tmp_path, "alice", "detach", force=True)
            alice = _volume(daemons["alice"])
            with pytest.raises(OSError) as err:
                await alice.app_write(0, b"x" * BLOCK, False)
            assert err.value.errno == errno.EIO
            with pytest.raises(OSError) as err:
                await alice.app_read(0, BLOCK)
            assert err.value.errno == errno.EIO
            # Connected again to the UpToDate peer, the Diskless Primary's I/O works.
            await _ask(tmp_path, "alice", "connect")
            await _until(lambda: _states(daemons["alice"]) == ("Connected", "Diskless", "UpToDate"))
            await alice.app_write(0, b"y" * BLOCK, False)
            assert await alice.app_read(0, BLOCK) == b"y" * BLOCK

    asyncio.run(scenario())


def test_a_diskless_secondary_is_promoted_only_with_an_uptodate_peer(tmp_path: Path) -> None:
    conf = _conf(tmp_path)

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            await _ask(tmp_path, "alice", "secondary")
            await _ask(tmp_path, "bob", "detach")
            await _ask(tmp_path, "bob", "primary")  # Diskless, connected to UpToDate alice
            bob = _volume(daemons["bob"])
            await bob.app_write(5 * BLOCK, b"p" * BLOCK, False)
            assert _volume(daemons["alice"]).backing.read(5 * BLOCK, BLOCK) == b"p" * BLOCK
            await _ask(tmp_path, "bob", "secondary")
            await _ask(tmp_path, "bob", "disconnect")
            with pytest.raises(control.ControlError, match="Diskless and no UpToDate peer"):
                await _ask(tmp_path, "bob", "primary")

    asyncio.run(scenario())


def test_detach_and_attach_of_one_volume_by_number(tmp_path: Path) -> None:
    conf = _conf(tmp_path)

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            with pytest.raises(control.ControlError, match="no volume 3"):
                await _ask(tmp_path, "bob", "detach", volume=3)
            await _ask(tmp_path, "bob", "detach", volume=0)
            assert _states(daemons["bob"])[1] == "Diskless"
            await _ask(tmp_path, "bob", "attach", volume=0)
            await _until(lambda: _states(daemons["bob"]) == ("Connected", "UpToDate", "UpToDate"))

    asyncio.run(scenario())


def test_a_real_nbd_client_uses_a_diskless_primarys_export(tmp_path: Path) -> None:
    """qemu-io writes and reads the NBD export of a Diskless Primary: every byte goes through
    the peer, and after `attach` the local disk has it too."""
    if shutil.which("qemu-io") is None:
        pytest.skip("qemu-io is not installed (Debian: qemu-utils)")
    conf = _conf(tmp_path)
    nbd = conf.resource("r0").hosts[0].volumes[0].nbd_export
    uri = f"nbd://{nbd.host}:{nbd.port}/r0"

    async def qemu_io(*commands: str) -> str:
        argv = ["qemu-io", "-f", "raw", uri]
        for command in commands:
            argv += ["-c", command]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out = (await asyncio.wait_for(proc.communicate(), timeout=60))[0].decode()
        assert proc.returncode == 0 and "failed" not in out, f"qemu-io {commands}: {out}"
        return out

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            await _ask(tmp_path, "alice", "detach")
            await qemu_io("write -P 0x5a 1M 256k", "flush", "read -P 0x5a 1M 256k")
            bob = _volume(daemons["bob"])
            assert bob.backing.read(MIB, 256 * 1024) == b"\x5a" * (256 * 1024)
            await _ask(tmp_path, "alice", "attach")
            await _until(lambda: _states(daemons["alice"]) == ("Connected", "UpToDate", "UpToDate"))
            alice = _volume(daemons["alice"])
            assert alice.backing.read(MIB, 256 * 1024) == b"\x5a" * (256 * 1024)
            await qemu_io("read -P 0x5a 1M 256k")

    asyncio.run(scenario())


def test_the_cli_verbs_detach_and_attach_one_volume(tmp_path: Path) -> None:
    conf = _conf(tmp_path)

    async def cli(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hastack",
            "replica",
            *args,
            "--socket",
            str(tmp_path / "bob.sock"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out = (await asyncio.wait_for(proc.communicate(), timeout=60))[0].decode()
        assert proc.returncode is not None
        return proc.returncode, out

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            rc, out = await cli("detach", "r0/x")
            assert rc == 1 and "RES/VOL needs a volume number" in out
            rc, out = await cli("detach", "r0/0")
            assert rc == 0, out
            assert _states(daemons["bob"])[1] == "Diskless"
            rc, out = await cli("dstate", "r0")
            assert rc == 0 and out.strip() == "Diskless/UpToDate", out
            rc, out = await cli("attach", "r0/0")
            assert rc == 0, out
            await _until(lambda: _states(daemons["bob"]) == ("Connected", "UpToDate", "UpToDate"))

    asyncio.run(scenario())
