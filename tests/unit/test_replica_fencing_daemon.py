"""Fencing and the awaited handlers in the real daemon: two daemons on loopback, handlers that
are real shell scripts (they record DRBD's environment and exit with a chosen code), the exit
status going back into the engines."""

from __future__ import annotations

import asyncio
import random
import stat
from pathlib import Path
from typing import Any

import pytest

from hastack.replica import control, status_view
from hastack.replica import daemon as daemon_mod
from hastack.replica.backing import create_metadata, read_metadata
from hastack.replica.config import parse_drbd_conf
from hastack.replica.metadata import MdFlags
from hastack.replica.model import DrbdConf, MetaDisk
from tests.unit.test_replica_daemon import (
    MIB,
    _ask,
    _daemons,
    _free_port,
    _states,
    _synced_pair,
    _until,
    _volume,
)


def _script(tmp_path: Path, name: str, body: str) -> str:
    """A handler script that appends its DRBD_* environment to NAME.env, then runs `body`."""
    path = tmp_path / f"{name}.sh"
    path.write_text(
        "#!/bin/sh\n"
        f"env | grep '^DRBD_' | sort > {tmp_path}/{name}.env.tmp\n"
        f"echo --- >> {tmp_path}/{name}.env.tmp\n"
        f"cat {tmp_path}/{name}.env.tmp >> {tmp_path}/{name}.env\n"
        f"{body}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _env(tmp_path: Path, name: str) -> list[dict[str, str]]:
    """Every run of handler `name`: its DRBD_* variables."""
    path = tmp_path / f"{name}.env"
    if not path.exists():
        return []
    runs: list[dict[str, str]] = [{}]
    for line in path.read_text().splitlines():
        if line == "---":
            runs.append({})
        elif "=" in line:
            key, value = line.split("=", 1)
            runs[-1][key] = value
    return [run for run in runs if run]


def _conf(tmp_path: Path, fencing: str, handlers: str) -> DrbdConf:
    for name in ("a.img", "b.img"):
        with open(tmp_path / name, "wb") as f:
            f.truncate(16 * MIB)
    ports = [_free_port() for _ in range(4)]
    text = f"""
resource r0 {{
  net {{ protocol C; connect-int 1; }}
  disk {{ resync-rate 500M; c-plan-ahead 0; fencing {fencing}; }}
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


def _suspended(daemon: Any) -> list[str]:
    (res,) = daemon.status("r0")
    return list(res["suspended"])


def test_stonith_freezes_writes_until_fence_peer_exits_7_with_drbds_environment(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "go"
    fence = _script(tmp_path, "fence", f"while [ ! -e {gate} ]; do sleep 0.05; done; exit 7")
    conf = _conf(tmp_path, "resource-and-stonith", f'fence-peer "{fence}";')

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            alice = daemons["alice"]
            await _ask(tmp_path, "bob", "disconnect")  # alice loses her peer
            await _until(lambda: _suspended(alice) == ["fencing"])
            (res,) = alice.status("r0")
            assert "suspended:fencing" in status_view.status_text([res])
            assert " C s-----" in status_view.proc_drbd([res], "version: 8.4")  # the 's'
            write = asyncio.create_task(_volume(alice).app_write(MIB, b"\x5a" * 4096, False))
            flush = asyncio.create_task(_volume(alice).app_flush())
            await asyncio.sleep(0.5)
            assert not write.done() and not flush.done()  # held, not failed
            gate.touch()
            await asyncio.wait_for(asyncio.gather(write, flush), timeout=10)
            assert _suspended(alice) == []
            assert _states(alice)[2] == "Outdated"
            flags = read_metadata(str(tmp_path / "a.img"), MetaDisk()).superblock.flags
            assert flags & MdFlags.PEER_OUTDATED

    asyncio.run(scenario())
    (run,) = _env(tmp_path, "fence")
    assert run["DRBD_RESOURCE"] == "r0"
    assert run["DRBD_PEER"] == "bob" and run["DRBD_PEERS"] == "bob"
    assert run["DRBD_CONF"] == str(tmp_path / "drbd.conf")
    assert run["DRBD_MINOR"] == "0" and run["DRBD_PEER_ADDRESS"] == "127.0.0.1"


def test_a_broken_fence_peer_keeps_io_frozen_until_resume_io(tmp_path: Path) -> None:
    fence = _script(tmp_path, "fence", "exit 1")
    conf = _conf(tmp_path, "resource-and-stonith", f'fence-peer "{fence}";')

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            alice = daemons["alice"]
            await _ask(tmp_path, "bob", "disconnect")
            await _until(lambda: len(_env(tmp_path, "fence")) == 1)
            write = asyncio.create_task(_volume(alice).app_write(MIB, b"\x11" * 4096, False))
            await asyncio.sleep(0.5)
            assert not write.done()
            assert _suspended(alice) == ["fencing"]
            assert _states(alice)[2] == "DUnknown"
            result = await _ask(tmp_path, "alice", "resume-io")
            assert result[0]["suspended"] == []
            await asyncio.wait_for(write, timeout=5)

    asyncio.run(scenario())


def test_promotion_runs_fence_peer_first_and_fails_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = tmp_path / "code"
    fence = _script(tmp_path, "fence", f'exit "$(cat {code})"')
    conf = _conf(tmp_path, "resource-only", f'fence-peer "{fence}";')
    monkeypatch.setattr(daemon_mod, "HANDLER_TIMEOUT", 1.5)

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            await _ask(tmp_path, "alice", "secondary")
            await _ask(tmp_path, "alice", "disconnect")  # both Secondary: nobody fences
            await _until(lambda: _states(daemons["bob"])[0] == "Connecting")
            assert _env(tmp_path, "fence") == []

            code.write_text("1")
            with pytest.raises(control.ControlError, match="fence-peer handler exited 1"):
                await _ask(tmp_path, "bob", "primary")
            assert daemons["bob"].resources["r0"].role.name == "SECONDARY"

            (tmp_path / "fence.sh").write_text("#!/bin/sh\nsleep 30\n")  # killed at 1.5 s
            with pytest.raises(control.ControlError, match="did not finish"):
                await _ask(tmp_path, "bob", "primary")

            _script(tmp_path, "fence", f'exit "$(cat {code})"')
            code.write_text("5")  # unreachable: bob's disk is UpToDate, so that will do
            result = await _ask(tmp_path, "bob", "primary")
            assert result[0]["role"] == "Primary"
            assert result[0]["volumes"][0]["peer_disk"] == "Outdated"

    asyncio.run(scenario())
    runs = _env(tmp_path, "fence")
    assert len(runs) == 2 and all(run["DRBD_PEER"] == "alice" for run in runs)


def test_before_resync_target_failing_drops_the_connection_and_after_resync_target_runs(
    tmp_path: Path,
) -> None:
    code = tmp_path / "code"
    before = _script(tmp_path, "before", f'exit "$(cat {code})"')
    after = _script(tmp_path, "after", "exit 0")
    conf = _conf(
        tmp_path,
        "dont-care",
        f'before-resync-target "{before}"; after-resync-target "{after}";',
    )

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            # bob was the initial full sync's target: both handlers ran once already
            await _until(lambda: len(_env(tmp_path, "after")) == 1)
            assert len(_env(tmp_path, "before")) == 1
            bob = daemons["bob"]
            await _ask(tmp_path, "bob", "disconnect")
            data = b"\xc3" * 65536
            await _volume(daemons["alice"]).app_write(2 * MIB, data, False)

            code.write_text("1")
            await _ask(tmp_path, "bob", "connect")
            await _until(lambda: len(_env(tmp_path, "before")) == 2)
            await _until(lambda: _states(bob)[0] == "StandAlone")
            assert _volume(bob).backing.read(2 * MIB, len(data)) != data  # not resynced
            assert len(_env(tmp_path, "after")) == 1

            code.write_text("0")
            await _ask(tmp_path, "bob", "connect")
            await _until(lambda: _states(bob) == ("Connected", "UpToDate", "UpToDate"))
            assert _volume(bob).backing.read(2 * MIB, len(data)) == data
            await _until(lambda: len(_env(tmp_path, "after")) == 2)

    code.write_text("0")
    asyncio.run(scenario())
    run = _env(tmp_path, "before")[-1]
    assert run["DRBD_RESOURCE"] == "r0" and run["DRBD_PEER"] == "alice"
    assert run["DRBD_BACKING_DEV"] == str(tmp_path / "b.img")


def test_fence_peer_runs_once_for_a_resource_of_two_volumes(tmp_path: Path) -> None:
    fence = _script(tmp_path, "fence", "sleep 0.5; exit 4")
    imgs = [tmp_path / f"{n}{v}.img" for n in "ab" for v in (0, 1)]
    for img in imgs:
        with open(img, "wb") as f:
            f.truncate(8 * MIB)
        create_metadata(str(img), MetaDisk(), al_extents=7, rng=random.Random(str(img)))
    ports = [_free_port() for _ in range(6)]

    def host(name: str, letter: str, base: int) -> str:
        volumes = "".join(
            f"volume {v} {{ device /dev/drbd{v}; disk {tmp_path}/{letter}{v}.img; "
            f"meta-disk internal; nbd-address 127.0.0.1:{ports[base + 1 + v]}; }}"
            for v in (0, 1)
        )
        return f"on {name} {{ {volumes} address 127.0.0.1:{ports[base]}; }}"

    conf = parse_drbd_conf(
        f"""resource r0 {{
  net {{ protocol C; connect-int 1; }}
  disk {{ resync-rate 500M; c-plan-ahead 0; fencing resource-only; }}
  handlers {{ fence-peer "{fence}"; }}
  {host("alice", "a", 0)}
  {host("bob", "b", 3)}
}}
""",
        str(tmp_path / "drbd.conf"),
    )

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            for node in ("alice", "bob"):
                await _ask(tmp_path, node, "up")
            alice = daemons["alice"]

            def volumes(daemon: Any) -> list[tuple[str, str]]:
                (res,) = daemon.status("r0")
                return [(v["disk"], v["peer_disk"]) for v in res["volumes"]]

            await _until(lambda: alice.status("r0")[0]["cstate"] == "Connected")
            await _ask(tmp_path, "alice", "primary", force=True)
            await _until(lambda: volumes(alice) == [("UpToDate", "UpToDate")] * 2)
            await _ask(tmp_path, "bob", "disconnect")
            await _until(lambda: volumes(alice) == [("UpToDate", "Outdated")] * 2)
            await asyncio.sleep(0.5)

    asyncio.run(scenario())
    assert len(_env(tmp_path, "fence")) == 1


def test_handlers_of_a_resource_run_one_at_a_time_in_the_order_asked(tmp_path: Path) -> None:
    """A slow unfence-peer (from the end of a resync) and a fence-peer right after it: the
    fence-peer starts only once the unfence-peer has ended, so the constraint it places is
    not removed by the older run (a CI failure under load, before handlers took turns)."""
    log = tmp_path / "order.log"
    slow = _script(
        tmp_path, "unfence", f"echo unfence-start >> {log}; sleep 1; echo unfence-end >> {log}"
    )
    fast = _script(tmp_path, "fence", f"echo fence-start >> {log}; echo fence-end >> {log}; exit 4")
    conf = _conf(tmp_path, "resource-only", f'unfence-peer "{slow}"; fence-peer "{fast}";')

    async def scenario() -> None:
        async with _daemons(conf, tmp_path) as daemons:
            await _synced_pair(daemons, tmp_path)
            alice = daemons["alice"]
            resource = alice.resources["r0"]
            volume = _volume(alice).volume
            resource.run_handler("unfence-peer", volume)
            resource.run_handler("fence-peer", volume)
            await _until(lambda: log.exists() and "fence-end" in log.read_text().split())

    asyncio.run(scenario())
    entries = log.read_text().split()
    # (the initial sync may have run an unfence-peer of its own before these two)
    runs = [(entries[i], entries[i + 1]) for i in range(0, len(entries), 2)]
    assert all(start.replace("-start", "-end") == end for start, end in runs), entries
    assert runs[-2:] == [("unfence-start", "unfence-end"), ("fence-start", "fence-end")]
