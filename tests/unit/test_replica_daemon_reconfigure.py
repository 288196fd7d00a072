"""`resize` and `adjust` on two real daemons over loopback, with real files: grown files, the
metadata at the new end, the new area resynchronised, the NBD export's new size; options and
resources changed in drbd.conf applied to the running daemons."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hastack.replica import control, status_view
from hastack.replica.backing import create_metadata, read_metadata
from hastack.replica.config import load_drbd_conf
from hastack.replica.daemon import ReplicaDaemon
from hastack.replica.model import MetaDisk
from tests.unit.test_cli_replica import _hastack
from tests.unit.test_replica_daemon import _daemons, _free_port, _states, _until

MIB = 1 << 20
SYNCED = ("Connected", "UpToDate", "UpToDate")


class Setup:
    """drbd.conf on disk (the daemons re-read it on `adjust`), backing files, fixed ports."""

    def __init__(self, tmp_path: Path, resources: tuple[str, ...] = ("r0",)) -> None:
        self.tmp = tmp_path
        self.path = tmp_path / "drbd.conf"
        self.ports: dict[str, list[int]] = {}
        for name in resources:
            self.add_resource(name)

    def add_resource(self, name: str) -> None:
        self.ports[name] = [_free_port() for _ in range(4)]
        for node in ("a", "b"):
            image = self.tmp / f"{name}-{node}.img"
            with open(image, "wb") as f:
                f.truncate(16 * MIB)
            create_metadata(str(image), MetaDisk(), al_extents=7, rng=random.Random(node))

    def image(self, name: str, node: str) -> str:
        return str(self.tmp / f"{name}-{node[0]}.img")

    def write(self, net: str = "", disk: str = "", resources: tuple[str, ...] = ("r0",)) -> None:
        parts = []
        for name in resources:
            minor = list(self.ports).index(name)  # a resource keeps its minor
            p = self.ports[name]
            parts.append(f"""
resource {name} {{
  net {{ protocol C; connect-int 1; {net} }}
  disk {{ resync-rate 500M; c-plan-ahead 0; {disk} }}
  on alice {{ device /dev/drbd{minor}; disk {self.image(name, "a")}; meta-disk internal;
             address 127.0.0.1:{p[0]}; nbd-address 127.0.0.1:{p[2]}; }}
  on bob {{ device /dev/drbd{minor}; disk {self.image(name, "b")}; meta-disk internal;
           address 127.0.0.1:{p[1]}; nbd-address 127.0.0.1:{p[3]}; }}
}}
""")
        self.path.write_text("".join(parts))


async def _ask(tmp_path: Path, node: str, verb: str, **fields: Any) -> Any:
    path = str(tmp_path / f"{node}.sock")
    return await asyncio.to_thread(control.request, path, verb, **fields)


async def _connected_pair(daemons: dict[str, Any], tmp_path: Path, name: str = "r0") -> None:
    for node in ("alice", "bob"):
        await _ask(tmp_path, node, "up", resource=name)
    await _until(lambda: _state(daemons["alice"], name)[0] == "Connected")
    await _ask(tmp_path, "alice", "primary", resource=name, force=True)
    for node in ("alice", "bob"):
        await _until_synced(daemons, node, name)


async def _until_synced(daemons: dict[str, Any], node: str, name: str = "r0") -> None:
    """Until `node` is connected with both disks UpToDate."""
    await _until(lambda: _state(daemons[node], name) == SYNCED)


async def _adjust_both(tmp_path: Path, messages: list[str]) -> None:
    """`adjust` on alice, then on bob, each saying `messages`."""
    for node in ("alice", "bob"):
        result = await _ask(tmp_path, node, "adjust")
        assert result["messages"] == messages


def _written_setup(tmp_path: Path) -> Setup:
    """Setup with r0 written to drbd.conf."""
    setup = Setup(tmp_path)
    setup.write()
    return setup


def _run(
    setup: Setup,
    body: Callable[[dict[str, Any]], Awaitable[None]],
    *,
    connect: bool = True,
) -> None:
    """`body(daemons)` on the two daemons of drbd.conf as it is now, r0 first connected with
    alice Primary (unless not `connect`)."""
    conf = load_drbd_conf(str(setup.path))

    async def scenario() -> None:
        async with _daemons(conf, setup.tmp) as daemons:
            if connect:
                await _connected_pair(daemons, setup.tmp)
            await body(daemons)

    asyncio.run(scenario())


def _state(daemon: ReplicaDaemon, name: str) -> tuple[str, str, str]:
    if name == "r0":
        return _states(daemon)
    (res,) = daemon.status(name)
    (vol,) = res["volumes"] or [{"disk": "", "peer_disk": ""}]
    return res["cstate"], vol["disk"], vol["peer_disk"]


def _grow(path: str, mib: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(mib * MIB)


def _nbd_export_size(port: int, name: str) -> int:
    """The size an NBD client is told (fixed newstyle handshake, NBD_OPT_EXPORT_NAME)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        greeting = _recv(sock, 18)
        assert greeting[:8] == b"NBDMAGIC"
        sock.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
        sock.sendall(struct.pack(">QII", 0x49484156454F5054, 1, len(name)) + name.encode())
        size, _flags = struct.unpack(">QH", _recv(sock, 10))
        return int(size)


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError("NBD server closed the connection")
        data += chunk
    return data


# --- resize ----------------------------------------------------------------------------------


def test_resize_after_both_files_grew_moves_the_metadata_and_resyncs_the_new_area(
    tmp_path: Path,
) -> None:
    setup = _written_setup(tmp_path)
    a_img, b_img = setup.image("r0", "alice"), setup.image("r0", "bob")
    old = read_metadata(a_img, MetaDisk()).layout
    tail = random.Random(7).randbytes(64 * 1024)
    tail_at = old.data_sectors * 512 - len(tail)

    async def scenario(daemons: dict[str, Any]) -> None:
        alice = daemons["alice"].resources["r0"].volumes[0]
        await alice.app_write(tail_at, tail, True)
        # not grown yet: nothing to take
        result = await _ask(tmp_path, "bob", "resize", resource="r0")
        assert result["messages"] == [f"r0/0: size unchanged ({old.data_sectors // 2} KiB)"]
        _grow(a_img, 24)
        _grow(b_img, 24)
        result = await _ask(tmp_path, "bob", "resize", resource="r0")
        new_kib = (24 * MIB - _md_bytes(24 * MIB)) // 1024
        assert result["messages"] == [
            f"r0/0: {old.data_sectors // 2} KiB -> {new_kib} KiB; the new area is resynchronised"
        ]
        for node in ("alice", "bob"):
            await _until_synced(daemons, node)
            (res,) = daemons[node].status("r0")
            assert res["volumes"][0]["size_kib"] == new_kib
            assert res["volumes"][0]["oos"] == 0
        # the new area was copied: both sides read the same there
        bob = daemons["bob"].resources["r0"].volumes[0]
        new_area = (old.data_sectors * 512, new_kib * 1024 - old.data_sectors * 512)
        assert bob.backing.read(*new_area) == alice.backing.read(*new_area)
        # a new NBD connection is told the new size
        size = await asyncio.to_thread(_nbd_export_size, setup.ports["r0"][2], "r0")
        assert size == new_kib * 1024

    _run(setup, scenario)
    for image in (a_img, b_img):
        md = read_metadata(image, MetaDisk())
        assert md.layout.md_offset > old.md_offset  # at the new end of the file
        assert md.superblock.data_sectors * 512 == 24 * MIB - _md_bytes(24 * MIB)
        with open(image, "rb") as f:
            f.seek(tail_at)
            assert f.read(len(tail)) == tail  # the data before the old end is intact
    dump = _hastack("replica", "dump-md", "-c", str(setup.path), "--node", "alice", "r0")
    assert dump.returncode == 0, dump.stderr
    assert f"la-size-sect {(24 * MIB - _md_bytes(24 * MIB)) // 512}" in dump.stdout


def _md_bytes(device_bytes: int) -> int:
    sectors = device_bytes // 512
    return (-(-sectors // (1 << 18)) * 8 + 72) * 512


def test_resize_refuses_when_not_connected_unless_the_peer_is_assumed_to_have_space(
    tmp_path: Path,
) -> None:
    setup = _written_setup(tmp_path)

    async def scenario(daemons: dict[str, Any]) -> None:
        await _ask(tmp_path, "alice", "disconnect", resource="r0")
        _grow(setup.image("r0", "alice"), 20)
        with pytest.raises(control.ControlError, match=r"not connected.*assume-peer-has-space"):
            await _ask(tmp_path, "alice", "resize", resource="r0")
        result = await _ask(tmp_path, "alice", "resize", resource="r0", assume_peer_has_space=True)
        assert "out of sync until the next resync" in result["messages"][0]
        (vol,) = daemons["alice"].status("r0")[0]["volumes"]
        assert vol["size_kib"] * 1024 == 20 * MIB - _md_bytes(20 * MIB)
        assert vol["oos"] == 4 * 1024  # the 4 MiB new area
        # --size larger than the room is refused with the numbers
        with pytest.raises(control.ControlError, match="too big"):
            await _ask(
                tmp_path,
                "alice",
                "resize",
                resource="r0",
                size=64 * MIB // 512,
                assume_peer_has_space=True,
            )

    _run(setup, scenario)


def test_resize_with_size_shrinks_and_both_sides_agree(tmp_path: Path) -> None:
    setup = _written_setup(tmp_path)

    async def scenario(daemons: dict[str, Any]) -> None:
        result = await _ask(tmp_path, "alice", "resize", resource="r0", size=8 * MIB // 512)
        assert result["messages"][0].endswith("-> 8192 KiB")
        for node in ("alice", "bob"):
            await _until(
                lambda node=node: daemons[node].status("r0")[0]["volumes"][0]["size_kib"] == 8192
            )
            assert _states(daemons[node]) == SYNCED

    _run(setup, scenario)
    for node in ("alice", "bob"):
        assert read_metadata(setup.image("r0", node), MetaDisk()).superblock.data_sectors == (
            8 * MIB // 512
        )


# --- adjust ----------------------------------------------------------------------------------


def test_adjust_dry_run_changes_nothing_then_adjust_changes_options_on_the_fly(
    tmp_path: Path,
) -> None:
    setup = _written_setup(tmp_path)

    async def scenario(daemons: dict[str, Any]) -> None:
        res = daemons["alice"].resources["r0"]
        conn = res.conn
        setup.write(net="ko-count 3; ping-int 5;", disk="resync-rate 100M;")
        dry = await _ask(tmp_path, "alice", "adjust", resource="all", dry_run=True)
        assert dry["messages"] == [
            "would net-options r0: ping-int 10 -> 5, ko-count 7 -> 3",
            "would disk-options r0: resync-rate 512000 -> 102400",
        ]
        engine = res.volumes[0].engine
        assert (engine.net.ko_count, engine.disk.resync_rate) == (7, 512000)
        assert res.config.net.ko_count == 7
        done = await _ask(tmp_path, "alice", "adjust", resource="all")
        assert done["messages"] == [m.removeprefix("would ") for m in dry["messages"]]
        assert (engine.net.ko_count, engine.net.ping_int) == (3, 5)
        assert engine.disk.resync_rate == 102400
        assert res.conn is conn  # on the fly: the same connection
        assert _states(daemons["alice"]) == SYNCED
        again = await _ask(tmp_path, "alice", "adjust", resource="r0")
        assert again["messages"] == ["nothing to adjust: the running state matches drbd.conf"]

    _run(setup, scenario)


def test_adjust_rebuilds_the_connection_for_a_new_protocol(tmp_path: Path) -> None:
    setup = _written_setup(tmp_path)

    async def scenario(daemons: dict[str, Any]) -> None:
        conn = daemons["alice"].resources["r0"].conn
        text = setup.path.read_text().replace("protocol C;", "protocol A;")
        setup.path.write_text(text)
        await _adjust_both(tmp_path, ["disconnect + connect r0: protocol C -> A"])
        for node in ("alice", "bob"):
            await _until_synced(daemons, node)
            assert daemons[node].resources["r0"].volumes[0].engine.net.protocol == "A"
            assert daemons[node].status("r0")[0]["protocol"] == "A"
        assert daemons["alice"].resources["r0"].conn is not conn

    _run(setup, scenario)


def test_adjust_takes_on_a_resource_added_to_drbd_conf_and_leaves_a_removed_one(
    tmp_path: Path,
) -> None:
    setup = _written_setup(tmp_path)

    async def scenario(daemons: dict[str, Any]) -> None:
        setup.add_resource("r1")
        setup.write(resources=("r0", "r1"))
        await _adjust_both(
            tmp_path,
            [
                "take on r1: added to drbd.conf",
                "attach r1",
                "connect r1",
            ],
        )
        await _until(lambda: _state(daemons["alice"], "r1")[0] == "Connected")
        await _ask(tmp_path, "alice", "primary", resource="r1", force=True)
        await _until_synced(daemons, "bob", "r1")
        # r0 removed from the file: left as it runs, and said so
        setup.write(resources=("r1",))
        result = await _ask(tmp_path, "alice", "adjust")
        assert result["messages"] == [
            "nothing to adjust: the running state matches drbd.conf",
            f"note: r0: no longer in {setup.path} for alice: left as it runs "
            "(`hastack replica down r0` stops it)",
        ]
        assert _states(daemons["alice"]) == SYNCED

    _run(setup, scenario)


def test_adjust_connects_a_standalone_resource_and_a_bad_file_changes_nothing(
    tmp_path: Path,
) -> None:
    setup = _written_setup(tmp_path)

    async def scenario(daemons: dict[str, Any]) -> None:
        await _ask(tmp_path, "bob", "disconnect", resource="r0")
        await _until(lambda: _states(daemons["bob"])[0] == "StandAlone")
        good = setup.path.read_text()
        setup.path.write_text(good.replace("ko-count", "").replace("protocol C;", "protocol Q;"))
        with pytest.raises(control.ControlError) as refused:
            await _ask(tmp_path, "bob", "adjust")
        assert f"{setup.path}:3:" in str(refused.value)
        assert "nothing adjusted" in str(refused.value)
        assert _states(daemons["bob"])[0] == "StandAlone"  # nothing was applied
        setup.path.write_text(good)
        result = await _ask(tmp_path, "bob", "adjust", resource="r0")
        assert result["messages"] == ["connect r0: StandAlone"]
        await _until_synced(daemons, "bob")

    _run(setup, scenario)


def test_the_adjust_command_line_dry_run_prints_the_steps(tmp_path: Path) -> None:
    setup = _written_setup(tmp_path)

    async def scenario(daemons: dict[str, Any]) -> None:
        await _ask(tmp_path, "alice", "up", resource="r0")
        setup.write(disk="c-max-rate 200M;")
        sock = str(tmp_path / "alice.sock")
        out = await asyncio.to_thread(_hastack, "replica", "adjust", "--socket", sock, "--dry-run")
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [
            "would disk-options r0: c-max-rate 102400 -> 204800",
            "(dry run: nothing changed)",
        ]
        engine = daemons["alice"].resources["r0"].volumes[0].engine
        assert engine.disk.c_max_rate == 102400
        bad = tmp_path / "bad.conf"
        bad.write_text("resource r0 {\n  disk { resync-rate fast; }\n}\n")
        out = await asyncio.to_thread(
            _hastack, "replica", "adjust", "--socket", sock, "-c", str(bad)
        )
        assert out.returncode == 1
        assert f"{bad}:2:" in out.stderr and "nothing adjusted" in out.stderr

    _run(setup, scenario, connect=False)


def test_drbd_conf_size_caps_the_resize_once_adjust_has_read_it(tmp_path: Path) -> None:
    setup = Setup(tmp_path)
    for node in ("alice", "bob"):  # meta-data for a 12 MiB volume on the 16 MiB files
        create_metadata(
            setup.image("r0", node),
            MetaDisk(),
            al_extents=7,
            rng=random.Random(node),
            size_sectors=12 * MIB // 512,
        )
    setup.write(disk="size 12M;")

    async def scenario(daemons: dict[str, Any]) -> None:
        for node in ("alice", "bob"):
            _grow(setup.image("r0", node), 24)
        setup.write(disk="size 20M;")
        await _adjust_both(
            tmp_path,
            [
                "use r0: the new configuration",
                "note: r0: disk size changed: run `hastack replica resize r0`",
            ],
        )
        result = await _ask(tmp_path, "alice", "resize", resource="r0/0")
        assert result["messages"] == [
            "r0/0: 12288 KiB -> 20480 KiB; the new area is resynchronised"
        ]
        for node in ("alice", "bob"):
            await _until_synced(daemons, node)
        view = status_view.json_status(daemons["bob"].status("r0"))
        assert view["resources"][0]["volumes"][0]["size_kib"] == 20480
        with pytest.raises(control.ControlError, match="no volume 3"):
            await _ask(tmp_path, "alice", "resize", resource="r0", volume=3)

    _run(setup, scenario)
