"""What the quorum cores ask their shells to do (the cores never touch a socket or a clock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True)
class Send:
    """Write `data` (whole frames) to connection `conn` (the client core has one: 0)."""

    data: bytes
    conn: int = 0


@dataclass(frozen=True)
class Close:
    """Close connection `conn` after writing what was sent before; `reason` is for the log."""

    reason: str
    conn: int = 0


@dataclass(frozen=True)
class Connect:
    """Client only: open a connection to the quorum server, then call `connected(now)` or,
    if that fails, `disconnected(now, reason)`."""


@dataclass(frozen=True)
class VoteChanged:
    """Client only: this node gained or lost the quorum server's vote. `until` is the local
    monotonic time the grant is valid until (None when lost). `has_vote(now)` stays the
    authority: a caller deciding quorum asks it at that moment rather than caching this."""

    vote: bool
    until: float | None
    reason: str


@dataclass(frozen=True)
class Log:
    """A structured event: `event` is a stable machine name, `message` is for people."""

    level: LogLevel
    event: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


ServerEffect = Send | Close | Log
ClientEffect = Send | Close | Connect | VoteChanged | Log
