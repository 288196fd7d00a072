"""Keep-alives for the configured device, as the watchdog 5.16 daemon gives them.

A write of one byte per keep-alive, or ``WDIOC_SETTIMEOUT`` with the same timeout when
``watchdog-refresh-use-settimeout`` is yes (or auto and the driver is an IT87, whose timer
trips early otherwise); errors are results unless ``watchdog-refresh-ignore-errors``. With
``heartbeat-file``, every keep-alive's time goes into a ring of ``heartbeat-stamps`` lines
(``--restart--`` marks a start), for finding out afterwards when the feeding stopped.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections import deque

from hastack.watchdog.device import WatchdogDevice
from hastack.watchdog.model import WatchdogConfig

log = logging.getLogger("hastack.watchdog")
STAMP_WIDTH = 11  # one line of the heartbeat file, without its newline
RESTART = "--restart--"


class Feeder:
    def __init__(self, cfg: WatchdogConfig) -> None:
        self.cfg = cfg
        self.device: WatchdogDevice | None = None
        self.last_keepalive: float | None = None  # time.time() of the last one
        self.keepalives = 0
        self.closed_by_reset = False
        self._stamps: deque[str] = deque(maxlen=max(1, cfg.heartbeat_stamps))

    @property
    def armed(self) -> bool:
        return self.device is not None

    def open(self) -> None:
        """Arm the device (OSError when it cannot be: said by the caller with its path)."""
        if self.cfg.watchdog_device is None:
            return
        # watchdog-timeout 0 keeps the driver's own timeout, as 5.16 does
        self.device = WatchdogDevice(self.cfg.watchdog_device, self.cfg.watchdog_timeout or None)
        self._open_heartbeat()

    def _use_settimeout(self) -> bool:
        choice = self.cfg.watchdog_refresh_use_settimeout
        if choice == "auto":
            return self.device is not None and "IT87" in self.device.driver.upper()
        return choice == "yes"

    def keepalive(self) -> int:
        """Feed the device; 0, or the errno of a failed keep-alive."""
        if self.device is None:
            return 0
        try:
            if self._use_settimeout():
                self.device.set_timeout(self.cfg.watchdog_timeout or self.device.timeout or 0)
            else:
                self.device.keepalive()
        except OSError as exc:
            if self.cfg.watchdog_refresh_ignore_errors:
                log.warning("keep-alive to %s failed (ignored): %s", self.device.path, exc)
            else:
                return exc.errno or errno.EIO
        self.last_keepalive = time.time()
        self.keepalives += 1
        self._stamp(f"{int(self.last_keepalive):>{STAMP_WIDTH}}")
        return 0

    def close(self, *, magic: bool) -> None:
        """Close the device; without `magic` it stays armed and resets the machine."""
        if self.device is None:
            return
        device, self.device = self.device, None
        device.close(magic=magic)
        self.closed_by_reset = not magic

    # --- heartbeat-file ------------------------------------------------------------------

    def _open_heartbeat(self) -> None:
        path = self.cfg.heartbeat_file
        if path is None:
            return
        try:
            with open(path) as old:
                for line in old:
                    self._stamps.append(line.rstrip("\n")[:STAMP_WIDTH])
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("heartbeat-file %s: cannot read it: %s", path, exc.strerror)
        self._stamp(f"{RESTART:>{STAMP_WIDTH}}")

    def _stamp(self, text: str) -> None:
        path = self.cfg.heartbeat_file
        if path is None:
            return
        self._stamps.append(text)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, "".join(f"{stamp}\n" for stamp in self._stamps).encode())
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("heartbeat-file %s: cannot write it: %s", path, exc.strerror)
