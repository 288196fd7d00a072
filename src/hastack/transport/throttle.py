"""Counting and rate-limited reporting of errors on one link.

A link that cannot send (ENETUNREACH, EPERM from a firewall, a cable pulled) is a warning, not
a failure: the other links keep the node in the cluster. Every error is counted; at most one line
per `period` is logged per link and direction, so a dead link cannot flood the log at the
keepalive rate.
"""

from __future__ import annotations

import errno
import logging
import time
from dataclasses import dataclass, field

from hastack.transport.logevents import emit


@dataclass
class ErrorThrottle:
    """Counts errors and decides when one may be logged again."""

    logger: logging.Logger
    event: str
    period: float = 60.0
    count: int = 0
    last_error: str | None = None
    _suppressed: int = 0
    _last_logged: float | None = field(default=None, repr=False)

    def record(self, link: str, error: BaseException | str, **fields: object) -> None:
        """Count one error; log it unless one was logged less than `period` ago."""
        self.count += 1
        text = _describe(error)
        self.last_error = text
        now = time.monotonic()
        if self._last_logged is not None and now - self._last_logged < self.period:
            self._suppressed += 1
            return
        suppressed, self._suppressed = self._suppressed, 0
        self._last_logged = now
        message = f"{link}: {text}"
        if suppressed:
            message += f" ({suppressed} more since the last report)"
        emit(
            self.logger,
            "warning",
            self.event,
            message,
            link=link,
            error=text,
            total=self.count,
            **fields,
        )


def _describe(error: BaseException | str) -> str:
    if isinstance(error, OSError) and error.strerror:
        name = _errno_name(error.errno)
        return f"{name}: {error.strerror}" if name else error.strerror
    return str(error)


def _errno_name(number: int | None) -> str | None:
    if number is None:
        return None
    return errno.errorcode.get(number)
