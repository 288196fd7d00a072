"""The client side of the replica daemon's control socket (see control.py), importable without
the daemon: the OCF agent and `hastack replica` verbs run it on every call."""

from __future__ import annotations

import json
import socket
from typing import Any

DEFAULT_SOCKET = "/run/hastack/replica.sock"


class ControlError(Exception):
    """The daemon could not be reached, or refused the request."""


def answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def request(path: str, verb: str, timeout: float = 120.0, **fields: Any) -> Any:
    """Send one verb to the daemon at `path`; returns its result or raises ControlError."""
    payload = json.dumps({"verb": verb, **fields}).encode() + b"\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise ControlError(
                f"no replica daemon at {path}: start it with `hastack replica serve`"
            ) from None
        except OSError as err:
            raise ControlError(f"{path}: {err.strerror or err}") from None
        sock.sendall(payload)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise ControlError(f"{path}: no answer within {timeout:.0f} s") from None
            if not chunk:
                break
            chunks.append(chunk)
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        raise ControlError(f"{path}: the daemon's answer is not JSON") from None
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "refused")))
    return answer.get("result")
