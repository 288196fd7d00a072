"""The Linux watchdog device (``/dev/watchdog``), driven as the watchdog 5.16 daemon does.

Opened write-only, which arms it; ``WDIOC_SETTIMEOUT`` sets its timeout and
``WDIOC_GETTIMEOUT``/``WDIOC_GETSUPPORT`` read what the driver took; every keep-alive is a
one-byte write. A clean stop writes the magic character ``V`` before closing, which disarms
the drivers that honour it; closing without it (the process was killed, or the node is meant to
be reset) leaves the timer running, and the machine resets when it runs out.

A file or a FIFO that is not a watchdog driver answers the ioctls with ENOTTY: it is taken as a
stand-in (tests, and a first deployment that only wants to watch the keep-alives), with the
timeout the caller asked for and ``driver`` empty.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

# linux/watchdog.h: _IOR/_IOWR('W', nr, type) on the generic ioctl encoding
_READ, _WRITE = 2, 1


def _ioc(direction: int, number: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (ord("W") << 8) | number


WDIOC_GETSUPPORT = _ioc(_READ, 0, 40)  # struct watchdog_info: u32 options, u32 version, u8[32]
WDIOC_KEEPALIVE = _ioc(_READ, 5, 4)
WDIOC_SETTIMEOUT = _ioc(_READ | _WRITE, 6, 4)
WDIOC_GETTIMEOUT = _ioc(_READ, 7, 4)
WDIOF_SETTIMEOUT = 0x0080
WDIOF_MAGICCLOSE = 0x0100
KEEPALIVE_BYTE = b"\0"
MAGIC_CLOSE = b"V"


class WatchdogDevice:
    """One open watchdog device. Raises OSError where the device refuses."""

    def __init__(self, path: str, timeout: int | None = None) -> None:
        """Open (arm) `path`; set its timeout to `timeout` seconds when given."""
        self.path = path
        self.driver = ""  # the driver's identity ("" for a stand-in)
        self.magic_close = False  # whether the driver says it honours "V"
        self._settable = False
        self.timeout: int | None = timeout
        self.fd: int | None = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            self._query(timeout)
        except OSError:
            self.close(magic=True)
            raise

    def _query(self, timeout: int | None) -> None:
        info = bytearray(40)
        if not _ioctl(self._fd(), WDIOC_GETSUPPORT, info):
            return  # not a driver: a stand-in that records what it is sent
        options, _version = struct.unpack_from("II", info)
        self.driver = bytes(info[8:40]).split(b"\0", 1)[0].decode("ascii", "replace") or "?"
        self.magic_close = bool(options & WDIOF_MAGICCLOSE)
        self._settable = bool(options & WDIOF_SETTIMEOUT)
        if timeout is not None:
            self.set_timeout(timeout)
        else:
            self._read_timeout()

    def set_timeout(self, timeout: int) -> None:
        """Ask for `timeout` seconds; `timeout` then says what the driver took."""
        self.timeout = timeout
        if self.driver and self._settable:
            _ioctl(self._fd(), WDIOC_SETTIMEOUT, bytearray(struct.pack("i", timeout)))
        self._read_timeout()

    def _read_timeout(self) -> None:
        current = bytearray(4)
        if self.driver and _ioctl(self._fd(), WDIOC_GETTIMEOUT, current):
            self.timeout = struct.unpack("i", current)[0]  # what the driver took (rounded)

    def _fd(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, f"{self.path} is closed")
        return self.fd

    def keepalive(self) -> None:
        """Restart the device's timer."""
        os.write(self._fd(), KEEPALIVE_BYTE)

    def close(self, magic: bool) -> None:
        """Close; with `magic`, disarm first (a clean stop). Without it the timer keeps
        running: the machine resets unless someone opens the device and feeds it."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if magic:
                os.write(fd, MAGIC_CLOSE)
        finally:
            os.close(fd)


def _ioctl(fd: int, request: int, buffer: bytearray) -> bool:
    """True when the driver answered; False for a file that is not a watchdog driver."""
    try:
        fcntl.ioctl(fd, request, buffer, True)
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise
    return True
