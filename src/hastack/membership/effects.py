"""What a membership core asks its shell to do.

The core never touches a socket, a clock or a process: it returns these, and the shell (the
asyncio daemon, or the simulator) carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class Send:
    """Send `data` to every peer on every configured link (heartbeat media are broadcast-like)."""

    data: bytes


@dataclass(frozen=True)
class SendPing:
    """Send one ICMP echo request to a ping node (ha.cf `ping` / `ping_group` address)."""

    target: str


@dataclass(frozen=True)
class Fence:
    """Ask the fencer to power off `target`; answer with `core.fence_done(target, ok, now)`."""

    target: str


@dataclass(frozen=True)
class Log:
    """A structured event: `event` is a stable machine name, `message` is for people."""

    level: LogLevel
    event: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


Effect = Send | SendPing | Fence | Log
