"""Logging for a node daemon: one line per event, with the event's name and fields.

    2024-05-01T12:00:00.123 node1 warning link-down link to node2 is down link="ucast eth1"

Lines go to stderr, to ha.cf's `logfile` (info and above) and to its `debugfile` (everything).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

ROOT = "hastack"


class EventFormatter(logging.Formatter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        stamp += f".{int(record.msecs):03d}"
        event = getattr(record, "event", None) or record.name.rsplit(".", 1)[-1]
        fields: dict[str, Any] = getattr(record, "fields", None) or {}
        parts = [stamp, self.node, record.levelname.lower(), event, record.getMessage()]
        parts += [f"{key}={_value(value)}" for key, value in fields.items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in '"=' for c in value):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def configure(
    node: str, logfile: str | None = None, debugfile: str | None = None, debug: bool = False
) -> list[str]:
    """Set up the `hastack` logger tree; returns problems opening the log files (not fatal)."""
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG)
    root.propagate = False
    formatter = EventFormatter(node)
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.DEBUG if debug else logging.INFO)
    stderr.setFormatter(formatter)
    root.addHandler(stderr)
    problems = []
    for path, level in ((logfile, logging.INFO), (debugfile, logging.DEBUG)):
        if not path:
            continue
        try:
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            problems.append(f"cannot open log file {path}: {exc.strerror or exc}")
            continue
        handler.setLevel(level)
        handler.setFormatter(formatter)
        root.addHandler(handler)
    return problems
