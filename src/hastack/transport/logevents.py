"""Structured log events for the shell: one line per event, with its name and fields.

The membership core returns `Log(level, event, message, fields)` effects; the transport and the
daemon log their own events the same way so that every line of a node's log can be grepped by
event name. `hastack.daemon.logsetup` renders the `event` and `fields` attributes set here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def emit(
    logger: logging.Logger,
    level: str | int,
    event: str,
    message: str,
    fields: Mapping[str, Any] | None = None,
    **more: Any,
) -> None:
    """Log `message` as the structured event `event` with `fields` (and keyword fields)."""
    levelno = LEVELS.get(level, logging.INFO) if isinstance(level, str) else level
    logger.log(levelno, message, extra={"event": event, "fields": {**(fields or {}), **more}})
