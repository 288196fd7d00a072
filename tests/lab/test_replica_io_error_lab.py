"""on-io-error with a really failing disk: the Primary's backing file lives on a tiny tmpfs that
fills up, so the kernel answers its data writes with ENOSPC (its meta-data area, written by
create-md, stays writable). Two replica daemons run in this process on loopback, the peer's
disk is an ordinary file. Needs root (mount).

* detach (DRBD 8.4's default): the write that failed completes from the peer's copy, the
  volume goes on Diskless, reads and writes go through the peer; with room made on the file
  system, `attach` resyncs what the disk missed and both disks end identical;
* pass_on: the disk stays attached but Inconsistent, the failed blocks are read from the peer;
* call-local-io-error: the local-io-error handler runs (with DRBD's environment) and the disk
  is detached.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hastack.replica.backing import create_metadata, read_metadata
from hastack.replica.config import parse_drbd_conf
from hastack.replica.model import DrbdConf, MetaDisk
from tests.unit.test_replica_daemon import _ask, _daemons, _states, _until, _volume

MIB = 1 << 20
CHUNK = 64 * 1024
ROOM = 256 * 1024  # free space left on the tmpfs once the backing file is made


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own under tmp_path, unmounted at the end whatever happens."""
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount/umount are not installed")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=False)


def _resize_fs(mnt: Path, size: int) -> None:
    subprocess.run(
        ["mount", "-o", f"remount,size={size // 1024}k", str(mnt)],
        check=True,
        capture_output=True,
    )


def _used(mnt: Path) -> int:
    st = os.statvfs(mnt)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _setup(tmp_path: Path, mnt: Path, policy: str, handlers: str = "") -> DrbdConf:
    a_img, b_img = mnt / "a.img", tmp_path / "b.img"
    for path in (a_img, b_img):
        with open(path, "wb") as f:
            f.truncate(16 * MIB)
    p = [_port() for _ in range(4)]
    text = f"""
resource r0 {{
  net {{ protocol C; connect-int 1; }}
  disk {{ resync-rate 500M; c-plan-ahead 0; on-io-error {policy}; }}
  handlers {{ {handlers} }}
  on alice {{ device /dev/drbd0; disk {a_img}; meta-disk internal;
             address 127.0.0.1:{p[0]}; nbd-address 127.0.0.1:{p[2]}; }}
  on bob {{ device /dev/drbd0; disk {b_img}; meta-disk internal;
           address 127.0.0.1:{p[1]}; nbd-address 127.0.0.1:{p[3]}; }}
}}
"""
    conf = parse_drbd_conf(text, str(tmp_path / "drbd.conf"))
    for path in (a_img, b_img):
        create_metadata(str(path), MetaDisk(), al_extents=7, rng=random.Random(str(path)))
    # The tmpfs keeps only a little room: the data area (sparse) cannot be filled.
    _resize_fs(mnt, (_used(mnt) + ROOM + 4095) // 4096 * 4096)
    return conf


async def _connected_new_pair(daemons: dict[str, Any], tmp_path: Path) -> None:
    """Both disks are new: skip the initial sync (it would fill the tiny file system)."""
    for node in ("alice", "bob"):
        await _ask(tmp_path, node, "up")
    await _until(lambda: _states(daemons["alice"])[0] == "Connected")
    await _ask(tmp_path, "alice", "new-current-uuid", clear_bitmap=True)
    await _until(lambda: _states(daemons["bob"]) == ("Connected", "UpToDate", "UpToDate"))
    await _ask(tmp_path, "alice", "primary")


async def _fill(runner: Any, total: int) -> dict[int, bytes]:
    """Write `total` bytes in chunks from 1 MiB on: more than the tmpfs has room for. Every
    write must succeed (the peer's copy answers for the ones the local disk refused)."""
    written: dict[int, bytes] = {}
    rng = random.Random(7)
    for offset in range(MIB, MIB + total, CHUNK):
        data = rng.randbytes(CHUNK)
        await runner.app_write(offset, data, False)
        written[offset] = data
    await runner.app_flush()
    return written


def _data_area(path: Path) -> bytes:
    size = read_metadata(str(path), MetaDisk()).layout.data_sectors * 512
    with open(path, "rb") as f:
        return f.read(size)


def test_on_io_error_detach_goes_diskless_and_attach_resyncs(
    tmp_path: Path, tiny_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = _setup(tmp_path, tiny_fs, "detach")

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _connected_new_pair(daemons, tmp_path)
            alice = _volume(daemons["alice"])
            written = await _fill(alice, 2 * ROOM)
            assert "No space left on device" in caplog.text
            assert _states(daemons["alice"]) == ("Connected", "Diskless", "UpToDate")
            await _until(lambda: _states(daemons["bob"]) == ("Connected", "UpToDate", "Diskless"))
            assert alice.backing is None
            bob = _volume(daemons["bob"])
            for offset, data in written.items():
                assert await alice.app_read(offset, len(data)) == data  # through bob
                assert bob.backing.read(offset, len(data)) == data
            # Room again (a replaced disk, say): attach, resync, both UpToDate.
            _resize_fs(tiny_fs, 64 * MIB)
            await _ask(tmp_path, "alice", "attach")
            for node in ("alice", "bob"):
                await _until(
                    lambda n=node: _states(daemons[n]) == ("Connected", "UpToDate", "UpToDate")
                )
            assert daemons["alice"].status("r0")[0]["role"] == "Primary"

    asyncio.run(scenario())
    assert _data_area(tiny_fs / "a.img") == _data_area(tmp_path / "b.img")


def test_on_io_error_pass_on_keeps_the_disk_inconsistent_and_reads_from_the_peer(
    tmp_path: Path, tiny_fs: Path
) -> None:
    conf = _setup(tmp_path, tiny_fs, "pass_on")

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _connected_new_pair(daemons, tmp_path)
            alice = _volume(daemons["alice"])
            written = await _fill(alice, 2 * ROOM)
            assert _states(daemons["alice"]) == ("Connected", "Inconsistent", "UpToDate")
            assert alice.backing is not None, "pass_on keeps the disk"
            assert daemons["alice"].status("r0")[0]["volumes"][0]["oos"] > 0
            for offset, data in written.items():
                assert await alice.app_read(offset, len(data)) == data

    asyncio.run(scenario())


def test_on_io_error_call_local_io_error_runs_the_handler_and_detaches(
    tmp_path: Path, tiny_fs: Path
) -> None:
    out = tmp_path / "handler.out"
    conf = _setup(
        tmp_path,
        tiny_fs,
        "call-local-io-error",
        handlers=f'local-io-error "echo $DRBD_RESOURCE $DRBD_MINOR >> {out}";',
    )

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _connected_new_pair(daemons, tmp_path)
            await _fill(_volume(daemons["alice"]), 2 * ROOM)
            await _until(lambda: out.exists() and out.read_text().strip() != "")
            assert _states(daemons["alice"]) == ("Connected", "Diskless", "UpToDate")

    asyncio.run(scenario())
    assert out.read_text().splitlines()[0] == "r0 0"
