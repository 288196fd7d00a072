"""The replica daemon's control socket: one JSON request per line, one JSON answer per line.

Request: {"verb": "primary", "resource": "r0", "force": false}. Answer: {"ok": true, "result":
...} or {"ok": false, "error": "what was refused and why"}. The socket is a Unix socket (mode
0600: only root, as drbdsetup needs root), `/run/hastack/replica.sock` by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from hastack.replica import reconfigure
from hastack.replica.client import DEFAULT_SOCKET, ControlError, answers, request
from hastack.replica.config import ConfigError, load_drbd_conf
from hastack.replica.daemon import ReplicaCommandError, ReplicaDaemon, ResourceRunner
from hastack.replica.model import DrbdConf

MAX_REQUEST = 64 * 1024
log = logging.getLogger("hastack.replica")
__all__ = ["DEFAULT_SOCKET", "ControlError", "ControlServer", "handle", "request", "serve"]

# verb -> (engine method, keyword arguments taken from the request)
ENGINE_VERBS: dict[str, tuple[str, tuple[str, ...]]] = {
    "invalidate": ("invalidate", ()),
    "invalidate-remote": ("invalidate_remote", ()),
    "outdate": ("outdate", ()),
    "new-current-uuid": ("new_current_uuid", ("clear_bitmap",)),
    "verify": ("start_verify", ()),
    "resume-io": ("resume_io", ()),
}
VERBS = (
    "status",
    "up",
    "down",
    "attach",
    "detach",
    "connect",
    "disconnect",
    "primary",
    "secondary",
    "resize",
    "adjust",
    *ENGINE_VERBS,
)


async def handle(daemon: ReplicaDaemon, request: dict[str, Any]) -> Any:
    """Carry out one verb; raises ReplicaCommandError with the operator's message."""
    verb = request.get("verb")
    if verb not in VERBS:
        raise ReplicaCommandError(f"unknown verb {verb!r}; known: {', '.join(VERBS)}")
    name = request.get("resource") or "all"
    if not isinstance(name, str):
        raise ReplicaCommandError("resource must be a name or 'all'")
    if verb == "status":
        return daemon.status(name)
    if verb == "adjust":
        return await _adjust(daemon, name, request)
    volume = request.get("volume")
    if verb == "resize" and "/" in name:  # RES/VOL, as drbdadm names one volume
        name, _, number = name.partition("/")
        volume = int(number) if number.isdigit() else number
    targets = daemon.select(name)
    if verb == "resize":
        lines: list[str] = []
        for res in targets:
            lines += await reconfigure.resize(
                res,
                _volume(volume),
                size=_sectors(request.get("size", 0)),
                assume_peer_has_space=bool(request.get("assume_peer_has_space")),
                assume_clean=bool(request.get("assume_clean")),
            )
        return {"messages": lines, "status": daemon.status(name)}
    for res in targets:
        await _one(res, verb, request)
    return daemon.status(name)


def _volume(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReplicaCommandError("volume must be a volume number")
    return value


def _sectors(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReplicaCommandError("size must be a number of sectors")
    return value


async def _adjust(daemon: ReplicaDaemon, name: str, request: dict[str, Any]) -> Any:
    """`adjust`: re-read drbd.conf (the file the daemon runs from, or `config`); a file with
    an error changes nothing and the error names its file and line."""
    path = request.get("config") or daemon.conf.file
    if not isinstance(path, str) or not path:
        raise ReplicaCommandError("config must be a file name")
    try:
        conf = load_drbd_conf(path)
    except ConfigError as err:
        raise ReplicaCommandError(f"{err}\nnothing adjusted") from None
    lines = await reconfigure.adjust(daemon, conf, name, dry_run=bool(request.get("dry_run")))
    return {"messages": lines, "status": daemon.status("all")}


async def _one(res: ResourceRunner, verb: str, request: dict[str, Any]) -> None:
    if verb == "up":
        await res.attach()
        await res.connect(discard_my_data=bool(request.get("discard_my_data")))
    elif verb == "attach":
        await res.attach(_volume(request.get("volume")))
    elif verb == "detach":
        await res.detach(force=bool(request.get("force")), volume=_volume(request.get("volume")))
    elif verb == "connect":
        await res.connect(discard_my_data=bool(request.get("discard_my_data")))
    elif verb == "disconnect":
        await res.disconnect()
    elif verb == "down":
        await res.down()
    elif verb == "primary":
        await res.primary(force=bool(request.get("force")))
    elif verb == "secondary":
        await res.secondary()
    else:
        method, params = ENGINE_VERBS[verb]
        kwargs = {p: request[p] for p in params if p in request}
        res.engine_op(verb, method, **kwargs)


class ControlServer:
    """Serve the control socket for `daemon` at `path`."""

    def __init__(self, daemon: ReplicaDaemon, path: str) -> None:
        self.daemon = daemon
        self.path = path
        self._server: asyncio.base_events.Server | None = None
        self._lock = asyncio.Lock()  # verbs one at a time, as drbdsetup serialises them

    async def start(self) -> None:
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        if os.path.exists(self.path):
            if answers(self.path):
                raise ControlError(f"{self.path}: another replica daemon is running")
            os.unlink(self.path)  # left by a daemon that was killed
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, self.path, limit=MAX_REQUEST
            )
        finally:
            os.umask(old)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError as err:
                answer: dict[str, Any] = {"ok": False, "error": f"bad request: {err}"}
            else:
                async with self._lock:
                    try:
                        answer = {"ok": True, "result": await handle(self.daemon, request)}
                    except ReplicaCommandError as err:
                        answer = {"ok": False, "error": str(err)}
                    except Exception as err:  # a bug must not take the daemon down
                        log.exception("control request %r failed", request)
                        answer = {"ok": False, "error": f"internal error: {err!r}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()


async def serve(
    conf: DrbdConf,
    node: str,
    socket_path: str,
    *,
    up: bool = True,
    ready: Callable[[], Awaitable[None] | None] | None = None,
) -> int:
    """Run the daemon until SIGTERM/SIGINT; a clean stop demotes and detaches everything."""
    daemon = ReplicaDaemon(conf, node)
    if not daemon.resources:
        log.error("no resource in %s has a host section for node %s", conf.file, node)
        for problem in daemon.problems:
            log.error("%s", problem)
        return 1
    control = ControlServer(daemon, socket_path)
    try:
        await control.start()
    except (ControlError, OSError) as err:
        log.error("%s", err)
        return 1
    await daemon.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if up:
        for res in daemon.resources.values():
            try:
                await res.attach()
                await res.connect()
            except ReplicaCommandError as err:
                log.error("%s", err)
    log.info(
        "replica daemon for node %s: %s; control socket %s",
        node,
        ", ".join(daemon.resources),
        socket_path,
    )
    if ready is not None:
        result = ready()
        if result is not None:
            await result
    await stop.wait()
    log.info("stopping: demoting and detaching")
    await control.stop()
    await daemon.stop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    return 0
