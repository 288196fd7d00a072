"""The node's local control socket: newline-delimited JSON requests and responses.

    -> {"cmd": "status"}\n        <- the node's NodeStatus as JSON\n
    -> {"cmd": "counters"}\n      <- {"core": {...}, "links": {...}, "ping": {...}}\n
    -> anything else\n            <- {"error": "..."}\n   (the connection and the daemon go on)

One connection may carry any number of requests. The socket lives in the node's run
directory, so access is governed by that directory's permissions.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from hastack.transport.logevents import emit

logger = logging.getLogger("hastack.daemon.control")

MAX_REQUEST = 65536  # bytes in one request line
# sun_path holds 108 bytes; longer paths are reached through the directory's /proc/self/fd.
MAX_SUN_PATH = 100

Handler = Callable[[dict[str, Any]], dict[str, Any] | Awaitable[dict[str, Any]]]


class ControlError(Exception):
    """The control socket could not be reached or answered nonsense."""


@contextlib.contextmanager
def unix_address(path: str | os.PathLike[str]) -> Iterator[str]:
    """An address for `path` that fits in sun_path, valid for the duration of the block."""
    text = os.fspath(path)
    if len(text.encode()) <= MAX_SUN_PATH:
        yield text
        return
    directory = os.open(os.path.dirname(text) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{directory}/{os.path.basename(text)}"
    finally:
        os.close(directory)


class ControlServer:
    """Serves `handlers[cmd](request)` on a Unix stream socket at `path`."""

    def __init__(self, path: Path, handlers: dict[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self.requests = 0
        self.bad_requests = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # We hold the node's lock, so a socket file still here is a dead daemon's leftover.
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with unix_address(self.path) as address:
                sock.bind(address)
            os.chmod(self.path, 0o660)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=MAX_REQUEST
            )
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await self._reply(writer, self._bad(f"request longer than {MAX_REQUEST} bytes"))
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                response = self.answer(line)
                if inspect.isawaitable(response):
                    response = await self._settle(response)
                await self._reply(writer, response)
        except (ConnectionError, OSError):
            return
        finally:
            writer.close()

    async def _settle(self, pending: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """The answer of a handler that waits for the cluster (a change forwarded to the DC)."""
        try:
            return await pending
        except Exception as exc:  # a bug in a handler must not take the node down
            logger.exception("control command failed")
            return self._bad(f"command failed: {exc}")

    def answer(self, line: bytes) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        """The response to one request line, or an awaitable of it for a handler that waits
        for the cluster (never raises)."""
        self.requests += 1
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._bad(f"request is not JSON: {exc}")
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return self._bad('request must be a JSON object with a "cmd" string')
        handler = self.handlers.get(request["cmd"])
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return self._bad(f"unknown command {request['cmd']!r}; known commands: {known}")
        try:
            return handler(request)
        except Exception as exc:  # a bug in a handler must not take the node down
            logger.exception("control command %s failed", request["cmd"])
            return self._bad(f"command {request['cmd']!r} failed: {exc}")

    def _bad(self, message: str) -> dict[str, Any]:
        self.bad_requests += 1
        emit(logger, "debug", "control-bad-request", message)
        return {"error": message}

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, response: dict[str, Any]) -> None:
        writer.write(json.dumps(response, sort_keys=True).encode() + b"\n")
        await writer.drain()


def query(path: str | os.PathLike[str], request: dict[str, Any], timeout: float = 5.0) -> Any:
    """Send one request to the control socket at `path` and return the decoded response.

    Raises FileNotFoundError / ConnectionRefusedError when no daemon listens there, and
    ControlError when it does not answer in time or answers something that is not JSON.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        with unix_address(path) as address:
            sock.connect(address)
        sock.sendall(json.dumps(request).encode() + b"\n")
        buffer = b""
        try:
            while not buffer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buffer += chunk
        except TimeoutError as exc:
            raise ControlError(f"no answer from {path} within {timeout:g} s") from exc
    try:
        return json.loads(buffer)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"unreadable answer from {path}: {buffer[:200]!r}") from exc
