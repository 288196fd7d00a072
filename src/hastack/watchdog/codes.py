"""The watchdog 5.16 daemon's result codes (its ``watch_err.h``), kept so that existing test and
repair scripts keep working: 0 is success, a code below 245 is an errno, and the codes from 245
up are the daemon's own."""

from __future__ import annotations

import errno
import os

ENOERR = 0
EREBOOT = 255  # unconditional (soft) reboot, asked for by a test binary
ERESET = 254  # unconditional hard reset, no orderly stop
EMAXLOAD = 253  # a load average is too high
ETOOHOT = 252  # a temperature sensor is too hot
ENOLOAD = 251  # /proc/loadavg has no (or not enough) data
ENOCHANGE = 250  # a file did not change within its `change` interval
EINVMEM = 249  # /proc/meminfo has invalid data
ECHKILL = 248  # a child (test or repair binary) was killed by a signal
ETOOLONG = 247  # a child did not return in time
EUSERVALUE = 246  # free for a user's own meaning
EDONTKNOW = 245  # unknown: a background test still running (neither success nor error)

NAMES = {
    EREBOOT: "reboot requested",
    ERESET: "hard reset requested",
    EMAXLOAD: "load average too high",
    ETOOHOT: "too hot",
    ENOLOAD: "no load average data",
    ENOCHANGE: "file not changed",
    EINVMEM: "invalid /proc/meminfo data",
    ECHKILL: "killed by a signal",
    ETOOLONG: "timed out",
    EUSERVALUE: "user error",
    EDONTKNOW: "still running",
}

# Never repaired, as in 5.16: a reboot or reset asked for, too hot, and out of memory.
NOT_REPAIRABLE = frozenset({EREBOOT, ERESET, ETOOHOT, errno.ENOMEM})


def describe(code: int) -> str:
    """A readable name for a result code: the daemon's own, or the errno's text."""
    if code == ENOERR:
        return "ok"
    if code in NAMES:
        return NAMES[code]
    try:
        name = errno.errorcode[code]
    except KeyError:
        return f"error {code}"
    return f"{name} ({os.strerror(code)})"
