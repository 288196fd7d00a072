"""Watch log files for lines as they are written, noting when each line was first seen.

Benchmarks time failure detection by the moment a node's log says so. Lines are read from a
byte offset onward and stamped with time.monotonic() when this process first saw them, polling
every `interval` seconds (2 ms by default), so the observation adds at most that much.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class SeenLine:
    text: str
    seen: float  # time.monotonic() when first read


class LogTail:
    """Reads the lines appended to one file after construction (or after `offset`)."""

    def __init__(self, path: str | os.PathLike[str], offset: int | None = None) -> None:
        self.path = os.fspath(path)
        if offset is None:
            offset = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        self.offset = offset
        self._partial = b""

    def read(self) -> list[SeenLine]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        now = time.monotonic()
        self.offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [SeenLine(line.decode(errors="replace"), now) for line in lines]


def wait_for_line(
    tails: dict[str, LogTail],
    pattern: str | re.Pattern[str],
    timeout: float,
    interval: float = 0.002,
) -> tuple[str, SeenLine]:
    """The first line matching `pattern` in any of `tails` (name -> tail), as (name, line).

    Raises TimeoutError when none appears within `timeout` seconds.
    """
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    deadline = time.monotonic() + timeout
    while True:
        for name, tail in tails.items():
            for line in tail.read():
                if regex.search(line.text):
                    return name, line
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no line matching {regex.pattern!r} within {timeout:g} s")
        time.sleep(interval)


def wait_for_all(
    tails: dict[str, LogTail],
    pattern: str | re.Pattern[str],
    timeout: float,
    interval: float = 0.002,
) -> dict[str, SeenLine]:
    """The first line matching `pattern` in each of `tails`; TimeoutError when one is missing."""
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    deadline = time.monotonic() + timeout
    found: dict[str, SeenLine] = {}
    while len(found) < len(tails):
        for name, tail in tails.items():
            if name in found:
                continue
            for line in tail.read():
                if regex.search(line.text):
                    found[name] = line
                    break
        if len(found) == len(tails):
            break
        if time.monotonic() >= deadline:
            missing = sorted(set(tails) - set(found))
            raise TimeoutError(
                f"no line matching {regex.pattern!r} within {timeout:g} s in {missing}"
            )
        time.sleep(interval)
    return found
