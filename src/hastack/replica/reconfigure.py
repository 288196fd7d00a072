"""The daemon's side of `resize` and `adjust`: what the asyncio shell does around the engine's
resize exchange (engine_resize.py) and around adjust's plan (adjust.py).

Adjust, on the loop: the daemon re-reads drbd.conf (a file with an error changes nothing),
plans (adjust.plan_adjust), and per resource: takes on a new one, disconnects first if the
connection must be rebuilt, gives the engines the new options, attaches, connects.

Resize, on the loop: the room of a backing device is read (one fstat) when the operator asks
and when the peer asks; the metadata move (resize.write_moved_metadata, a few small writes
each followed by fdatasync) runs on the event loop itself, right when the engine took the new
size, so nothing else -- no write to the new area, no bitmap write at the old place -- can
happen in between: application I/O pauses for that long, as DRBD suspends I/O for a resize.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from hastack.replica.adjust import Running, Step, plan_adjust
from hastack.replica.config import ConfigError, select_host
from hastack.replica.engine import EngineError
from hastack.replica.engine_resize import ResizeAsked, Resized
from hastack.replica.resize import ResizeError, agree_size, capacity, new_layout
from hastack.replica.states import ConnState

if TYPE_CHECKING:
    from hastack.replica.daemon import ReplicaDaemon, ResourceRunner, VolumeRunner
    from hastack.replica.model import DrbdConf, Host, Resource

log = logging.getLogger("hastack.replica")
RESIZE_TIMEOUT = 30.0  # seconds for the peer's answer


class _Refused(Exception):
    pass


def _room(runner: VolumeRunner) -> tuple[int, str]:
    """(data sectors this volume's backing device has room for, "") or (0, why not)."""
    volume = runner.volume
    if volume.disk is None or getattr(runner, "backing", None) is None:
        return 0, f"{runner.resource.name}/{volume.number}: no backing device (Diskless)"
    try:
        room = capacity(volume.disk, volume.meta_disk)
        old = runner.backing.layout
        # The move must be possible whatever size is agreed (checked before asking).
        new_layout(old, room, min(room.data_sectors, old.data_sectors))
    except ResizeError as err:
        return 0, f"{volume.disk}: {err}"
    return room.data_sectors, ""


def resize_effect(runner: VolumeRunner, effect: ResizeAsked | Resized) -> None:
    """Carry out the engine's resize effects (called from VolumeRunner.run, on the loop)."""
    engine = runner.engine
    if isinstance(effect, ResizeAsked):
        room, error = _room(runner)
        limit = runner.resource.config.volume_disk(runner.volume).size
        runner.run(
            engine.answer_resize(
                time.monotonic(), max_sectors=room, limit_sectors=limit, error=error
            )
        )
        return
    volume = runner.volume
    where = f"{runner.resource.name}/{volume.number}"
    try:
        assert volume.disk is not None
        room_layout = capacity(volume.disk, volume.meta_disk)
        layout = new_layout(runner.backing.layout, room_layout, effect.new_size // 512)
        runner.backing.resize(layout)
    except (ResizeError, OSError, AssertionError) as err:
        # The engine has the new size and the disk could not follow: an I/O error.
        log.error("%s: writing the meta-data for the new size failed: %s", where, err)
        runner.resource.io_error(volume, f"resize: {err}")
        return
    log.info(
        "%s: resized %d -> %d KiB; meta-data (%s) at byte %d of %s",
        where,
        effect.old_size // 1024,
        effect.new_size // 1024,
        layout.kind,
        layout.md_offset,
        volume.meta_disk.device or volume.disk,
    )


async def resize(
    res: ResourceRunner,
    volume: int | None,
    *,
    size: int = 0,
    assume_peer_has_space: bool = False,
    assume_clean: bool = False,
) -> list[str]:
    """`resize RES[/VOL]`: every volume (or the one named) takes the size agreed with the
    peer. Returns a line per volume; raises ReplicaCommandError (daemon.py) when refused."""
    from hastack.replica.daemon import ReplicaCommandError

    if not res.volumes:
        raise ReplicaCommandError(f"{res.name}: not attached")
    if volume is not None and volume not in res.volumes:
        known = ", ".join(str(n) for n in res.volumes)
        raise ReplicaCommandError(f"{res.name}: no volume {volume} (volumes: {known})")
    runners = [res.volumes[volume]] if volume is not None else list(res.volumes.values())
    lines: list[str] = []
    for runner in runners:
        where = f"{res.name}/{runner.volume.number}"
        try:
            lines.append(
                await _resize_one(
                    res,
                    runner,
                    size,
                    assume_peer_has_space=assume_peer_has_space,
                    assume_clean=assume_clean,
                )
            )
        except (_Refused, ResizeError, EngineError) as err:
            raise ReplicaCommandError(f"{where}: resize: {err}") from None
    return lines


async def _resize_one(
    res: ResourceRunner,
    runner: VolumeRunner,
    size: int,
    *,
    assume_peer_has_space: bool,
    assume_clean: bool,
) -> str:
    engine = runner.engine
    room, error = _room(runner)
    if error:
        raise _Refused(error)
    limit = res.config.volume_disk(runner.volume).size
    before = engine.size
    if engine.cstate in (ConnState.STANDALONE, ConnState.CONNECTING) and res.conn is None:
        if not assume_peer_has_space:
            raise _Refused(
                f"not connected ({engine.cstate.value}): the peer's room is unknown. Connect "
                "first, or give --assume-peer-has-space if its backing device is as large"
            )
        sectors = agree_size(
            current=before // 512,
            local_max=room,
            peer_max=room,
            local_limit=limit,
            requested=size,
        )
        runner.run(
            engine.resize_alone(time.monotonic(), sectors=sectors, assume_clean=assume_clean)
        )
    else:
        runner.run(
            engine.request_resize(
                time.monotonic(),
                max_sectors=room,
                limit_sectors=limit,
                requested_sectors=size,
                assume_clean=assume_clean,
            )
        )
        deadline = time.monotonic() + RESIZE_TIMEOUT
        while engine.resize_pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        if engine.resize_pending:
            raise _Refused(f"no answer from the peer within {RESIZE_TIMEOUT:.0f} s")
    result = engine.resize_result
    if result is None or not result[0]:
        raise _Refused(result[1] if result else "no result")
    after = engine.size
    if after == before:
        return f"{res.name}/{runner.volume.number}: size unchanged ({after // 1024} KiB)"
    sync = ""
    if after > before:
        sync = (
            " (new area not resynchronised: --assume-clean)"
            if assume_clean
            else (
                "; the new area is resynchronised"
                if res.conn is not None
                else "; the new area is out of sync until the next resync"
            )
        )
    return f"{res.name}/{runner.volume.number}: {before // 1024} KiB -> {after // 1024} KiB{sync}"


# --- adjust ----------------------------------------------------------------------------------


def running_state(daemon: ReplicaDaemon) -> dict[str, Running]:
    """What the daemon runs, as adjust.plan_adjust compares it with drbd.conf."""
    out: dict[str, Running] = {}
    for name, res in daemon.resources.items():
        attached = bool(res.volumes)
        standalone = (
            attached
            and res.conn is None
            and (
                not res.want_connect
                or all(r.engine.cstate is ConnState.STANDALONE for r in res.volumes.values())
            )
        )
        out[name] = Running(res.config, attached, standalone)
    return out


async def adjust(
    daemon: ReplicaDaemon, conf: DrbdConf, target: str = "all", *, dry_run: bool = False
) -> list[str]:
    """`adjust`: carry out adjust.plan_adjust's steps (or, `dry_run`, only list them). A
    step that fails does not stop the other resources' steps; the failures are raised at the
    end, after everything else was done (ReplicaCommandError, with the lines done)."""
    from hastack.replica.daemon import ReplicaCommandError, ResourceRunner

    try:
        plan = plan_adjust(conf, daemon.node, running_state(daemon), target)
    except ConfigError as err:
        raise ReplicaCommandError(str(err)) from None
    lines = plan.lines(dry_run=dry_run)
    if dry_run:
        return lines
    configured: dict[str, tuple[Resource, Host, Host]] = {}
    for res in conf.resources:
        with contextlib.suppress(ConfigError):
            configured[res.name] = (res, *select_host(conf, res, daemon.node))
    by_resource: dict[str, list[Step]] = {}
    for step in plan.steps:
        by_resource.setdefault(step.resource, []).append(step)
    failures: list[str] = []
    for name, steps in by_resource.items():
        res_conf, host, peer = configured[name]
        actions = {step.action for step in steps}
        try:
            if "new" in actions:
                daemon.resources[name] = ResourceRunner(daemon, res_conf, host, peer)
                log.info("%s: taken on from %s (adjust)", name, conf.file)
            runner = daemon.resources[name]
            if "reconnect" in actions:
                await runner.disconnect()  # before the new options reach the engines
            _adopt(runner, res_conf, host, peer)
            if "attach" in actions:
                await runner.attach()
            if "connect" in actions or "reconnect" in actions:
                await runner.connect()
        except ReplicaCommandError as err:
            failures.append(str(err))
    daemon.conf = conf
    if failures:
        raise ReplicaCommandError("\n".join([*lines, *(f"failed: {f}" for f in failures)]))
    return lines


def _adopt(runner: ResourceRunner, config: Resource, host: Host, peer: Host) -> None:
    """The resource runs with `config` from now on: its engines get the new options."""
    runner.config = config
    runner.host = host
    runner.peer = peer
    runner.peer_name = peer.names[0] if peer.names else peer.address.host
    now = time.monotonic()
    for volume_runner in runner.volumes.values():
        engine = volume_runner.engine
        disk = config.volume_disk(volume_runner.volume)
        same_handlers = getattr(engine, "handlers", config.handlers) == config.handlers
        if engine.net == config.net and engine.disk == disk and same_handlers:
            continue
        volume_runner.run(
            engine.change_options(now, net=config.net, disk=disk, handlers=config.handlers)
        )
