"""A stand-in for a lab host's watchdog hardware (this machine has no softdog).

A FIFO that the host's node daemon opens as its watchdog device (ha.cf ``watchdog PATH``).
A thread reads what it is sent as a driver would: every byte restarts the timer; the magic
``V`` followed by the writer closing disarms it; a writer that closes without ``V`` leaves it
running. When the timer runs out, the host is reset as a power cut would: ``on_fire`` (the
lab's ``power_off``). Every event is recorded with its time (``time.monotonic()``).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

POLL = 0.02


class StandInWatchdog:
    def __init__(self, path: Path, timeout: float, on_fire: Callable[[], None]) -> None:
        self.path = path
        self.timeout = timeout
        self.on_fire = on_fire
        self.events: list[tuple[float, str]] = []  # (monotonic time, armed|disarmed|fired)
        self.keepalives = 0
        self.last_keepalive: float | None = None
        self._armed_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    def __enter__(self) -> StandInWatchdog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        os.mkfifo(self.path, 0o600)
        # a reader is open before the daemon opens the writer, so its open does not block
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name=f"watchdog {self.path}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def power_cycle(self) -> None:
        """The host lost power: its watchdog stops with it (armed again by the next feed)."""
        self._armed_since = None
        self.last_keepalive = None

    def times(self, event: str) -> list[float]:
        return [t for t, e in self.events if e == event]

    @property
    def fired(self) -> bool:
        return bool(self.times("fired"))

    def _run(self) -> None:
        assert self._fd is not None
        magic = False
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], POLL)
            now = time.monotonic()
            data = os.read(self._fd, 4096) if ready else None
            if data:
                if self._armed_since is None:
                    self._armed_since = now
                    self.events.append((now, "armed"))
                self.keepalives += data.count(b"\0")
                self.last_keepalive = now
                magic = data.endswith(b"V")
            elif data == b"":  # no writer (any more)
                if magic and self._armed_since is not None:
                    self._armed_since = None
                    self.events.append((now, "disarmed"))
                magic = False
                time.sleep(POLL)  # a FIFO without a writer is always readable
            if (
                self._armed_since is not None
                and self.last_keepalive is not None
                and now - self.last_keepalive > self.timeout
            ):
                self._armed_since = None
                self.events.append((now, "fired"))
                self.on_fire()
