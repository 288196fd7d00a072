"""The watchdog's system checks as pure decisions over readings, deciding as the watchdog 5.16
daemon does (its load.c, memory.c, temp.c, file_stat.c, pidfile.c, net.c, iface.c and
file_table.c).

Nothing here opens a file, reads the clock or sends a packet: the shell (:mod:`.probes`) reads
/proc, stats files and pings, and hands each reading in (a text, a number, or the ``OSError``
the reading failed with; a ``TimeoutError`` without an errno is a reading that did not come in
time, ETOOLONG), with ``now`` where time matters. Each check returns a
:class:`CheckResult` whose ``code`` is a result code of :mod:`.codes`. The checks that must
remember the previous interval (file changes, interface counters, temperature warnings) keep
that in small objects the shell holds.

Where hastack decides differently from 5.16, the docstring says so; each difference only turns
a reading that 5.16 would misread (garbage, an empty pidfile) into an error it reports.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass, field

from hastack.watchdog.codes import (
    EINVMEM,
    EMAXLOAD,
    ENOCHANGE,
    ENOERR,
    ENOLOAD,
    EREBOOT,
    ETOOHOT,
    ETOOLONG,
    describe,
)

# The objects 5.16 names its global checks by (it hands them to the repair binary).
LOAD_OBJECT = "<load-average>"
FREE_MEMORY_OBJECT = "<free-memory>"  # min-memory and max-swap: one check in 5.16
ALLOC_MEMORY_OBJECT = "<alloc-memory>"
FILE_TABLE_OBJECT = "/proc/uptime"  # the file 5.16 opens to see the file table has room
PROCESS_TABLE_OBJECT = "<process-table>"

CHECKS = (
    "file-table",
    "process-table",
    "load",
    "memory",
    "swap",
    "allocatable-memory",
    "temperature",
    "file",
    "pidfile",
    "interface",
    "ping",
)

Reading = str | OSError  # a file's text, or why it could not be read


@dataclass(frozen=True)
class CheckResult:
    check: str  # one of CHECKS (the daemon adds "test-binary")
    object: str  # what was checked: a path, an address, an interface, or 5.16's "<...>" names
    code: int  # codes.py: 0 ok, an errno below 245, or 5.16's own
    detail: str  # a readable sentence with the numbers
    # Said once when it first applies, whatever the code (5.16's temperature warnings).
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == ENOERR


def _errno_of(error: OSError) -> int:
    if error.errno:
        return error.errno
    if isinstance(error, TimeoutError):
        return ETOOLONG  # the shell's word for a reading that did not come in time
    return errno.EIO  # an OSError without an errno still has to fail the check


def _failed(check: str, obj: str, what: str, error: OSError) -> CheckResult:
    code = _errno_of(error)
    return CheckResult(check, obj, code, f"{what}: {describe(code)}")


# ---- file table, process table ------------------------------------------------------------


def check_file_table(error: OSError | None) -> CheckResult:
    """Opening a file that always exists (/proc/uptime) shows the file table has room. As 5.16,
    a full table (ENFILE) asks for a reboot (EREBOOT); any other failure is its errno."""
    if error is None:
        return CheckResult("file-table", FILE_TABLE_OBJECT, ENOERR, "a file could be opened")
    code = _errno_of(error)
    if code == errno.ENFILE:
        return CheckResult(
            "file-table",
            FILE_TABLE_OBJECT,
            EREBOOT,
            f"file table overflow: opening {FILE_TABLE_OBJECT} gave ENFILE",
        )
    return _failed("file-table", FILE_TABLE_OBJECT, f"cannot open {FILE_TABLE_OBJECT}", error)


def check_process_table(error: OSError | None) -> CheckResult:
    """hastack's own check (5.16 only sees a full process table when forking a test binary
    fails): starting a process that exits at once. Its failure is the errno (EAGAIN when the
    process table or RLIMIT_NPROC is full)."""
    if error is None:
        return CheckResult("process-table", PROCESS_TABLE_OBJECT, ENOERR, "a process could start")
    return _failed("process-table", PROCESS_TABLE_OBJECT, "cannot start a process", error)


# ---- load average -------------------------------------------------------------------------

_LOAD_FIELD = re.compile(r"[0-9]+(?:\.[0-9]*)?\Z")


def load_limits(max_load_1: int, max_load_5: int, max_load_15: int) -> tuple[int, int, int]:
    """The limits in force: as 5.16, max-load-5 and max-load-15 left at 0 with max-load-1 set
    are 3/4 and 1/2 of it (integer division). 0 means no limit."""
    if max_load_1 and not max_load_5:
        max_load_5 = max_load_1 * 3 // 4
    if max_load_1 and not max_load_15:
        max_load_15 = max_load_1 // 2
    return max_load_1, max_load_5, max_load_15


def parse_loadavg(text: str) -> tuple[int, int, int] | None:
    """The 1, 5 and 15 minute load averages of /proc/loadavg's text, whole numbers as 5.16
    compares them (the fraction cut off); None when the text does not start with three."""
    fields = text.split()[:3]
    if len(fields) < 3 or not all(_LOAD_FIELD.match(f) for f in fields):
        return None
    one, five, fifteen = (int(f.split(".")[0]) for f in fields)
    return one, five, fifteen


def check_load(reading: Reading, max_load_1: int, max_load_5: int, max_load_15: int) -> CheckResult:
    """EMAXLOAD when a load average is over its limit (at the limit is fine); ENOLOAD when
    /proc/loadavg has no three load averages; the errno when it cannot be read.

    5.16 reads garbage as load 0 as long as it holds two blanks; hastack says ENOLOAD."""
    if isinstance(reading, OSError):
        return _failed("load", LOAD_OBJECT, "cannot read /proc/loadavg", reading)
    averages = parse_loadavg(reading)
    if averages is None:
        shown = reading[:40].strip()
        return CheckResult(
            "load", LOAD_OBJECT, ENOLOAD, f"/proc/loadavg has no load averages (read {shown!r})"
        )
    limits = load_limits(max_load_1, max_load_5, max_load_15)
    now = " ".join(str(a) for a in averages)
    wanted = " ".join(str(m) for m in limits)
    if any(limit > 0 and avg > limit for avg, limit in zip(averages, limits, strict=True)):
        detail = f"load average {now} is higher than max-load {wanted}"
        return CheckResult("load", LOAD_OBJECT, EMAXLOAD, detail)
    return CheckResult("load", LOAD_OBJECT, ENOERR, f"load average {now} (max-load {wanted})")


# ---- memory -------------------------------------------------------------------------------

_MEMINFO_VALUE = re.compile(r"[0-9]+\Z")


def parse_meminfo(text: str) -> dict[str, int | None]:
    """/proc/meminfo's fields in kB: ``{"MemFree": 123, ...}``; a field whose value is not a
    number maps to None. The first of a repeated field wins (as 5.16's search)."""
    fields: dict[str, int | None] = {}
    for line in text.splitlines():
        name, colon, rest = line.partition(":")
        name = name.strip()
        if not colon or not name or name in fields:
            continue
        words = rest.split()
        fields[name] = int(words[0]) if words and _MEMINFO_VALUE.match(words[0]) else None
    return fields


def _meminfo_values(
    check: str, reading: Reading, required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, int] | CheckResult:
    if isinstance(reading, OSError):
        return _failed(check, FREE_MEMORY_OBJECT, "cannot read /proc/meminfo", reading)
    fields = parse_meminfo(reading)
    values: dict[str, int] = {}
    bad: list[str] = []
    for name in required + optional:
        value = fields.get(name)
        if value is None and (name in required or name in fields):
            bad.append(name)
        values[name] = value or 0
    if bad:
        detail = f"/proc/meminfo has no valid {', '.join(bad)}"
        return CheckResult(check, FREE_MEMORY_OBJECT, EINVMEM, detail)
    return values


def check_memory(reading: Reading, min_memory: int, page_size: int) -> CheckResult:
    """ENOMEM when usable memory (MemFree + Buffers + Cached, as 5.16 counts it) is below
    min-memory pages (at the limit is fine); EINVMEM when /proc/meminfo has no valid MemFree,
    or an invalid Buffers or Cached; the errno when it cannot be read.

    5.16 takes a missing or garbled value as 0 (so garbage reads as no free memory); hastack
    says EINVMEM. A missing Buffers or Cached is 0 in both (older kernels)."""
    values = _meminfo_values("memory", reading, ("MemFree",), ("Buffers", "Cached"))
    if isinstance(values, CheckResult):
        return values
    usable = values["MemFree"] + values["Buffers"] + values["Cached"]
    need = min_memory * (page_size // 1024)
    if usable < need:
        detail = f"usable memory {usable} kB is less than min-memory {min_memory} pages ({need} kB)"
        return CheckResult("memory", FREE_MEMORY_OBJECT, errno.ENOMEM, detail)
    detail = f"usable memory {usable} kB (min-memory {min_memory} pages, {need} kB)"
    return CheckResult("memory", FREE_MEMORY_OBJECT, ENOERR, detail)


def check_swap(reading: Reading, max_swap: int, page_size: int) -> CheckResult:
    """ENOMEM when the swap in use (SwapTotal - SwapFree) is over max-swap pages (at the limit
    is fine); EINVMEM when /proc/meminfo has no valid SwapTotal and SwapFree. Its object is
    "<free-memory>", as 5.16 checks memory and swap as one."""
    values = _meminfo_values("swap", reading, ("SwapTotal", "SwapFree"), ())
    if isinstance(values, CheckResult):
        return values
    used = values["SwapTotal"] - values["SwapFree"]
    limit = max_swap * (page_size // 1024)
    if used > limit:
        detail = f"swap used {used} kB is more than max-swap {max_swap} pages ({limit} kB)"
        return CheckResult("swap", FREE_MEMORY_OBJECT, errno.ENOMEM, detail)
    detail = f"swap used {used} kB (max-swap {max_swap} pages, {limit} kB)"
    return CheckResult("swap", FREE_MEMORY_OBJECT, ENOERR, detail)


def check_allocatable(error: OSError | None, pages: int, page_size: int) -> CheckResult:
    """Mapping and faulting in allocatable-memory pages: its errno (ENOMEM) when it failed."""
    size = pages * page_size
    if error is not None:
        what = f"cannot allocate allocatable-memory {pages} pages ({size} bytes)"
        return _failed("allocatable-memory", ALLOC_MEMORY_OBJECT, what, error)
    detail = f"allocated allocatable-memory {pages} pages ({size} bytes)"
    return CheckResult("allocatable-memory", ALLOC_MEMORY_OBJECT, ENOERR, detail)


# ---- temperature --------------------------------------------------------------------------


def _c_div(a: int, b: int) -> int:
    # C's integer division truncates toward zero, which 5.16's levels rely on.
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def warning_levels(max_temperature: int) -> tuple[int, int, int]:
    """5.16's warning levels: 90, 95 and 98 % of max-temperature, kept distinct and below it."""
    level3 = min(_c_div(max_temperature * 98, 100), max_temperature - 1)
    level2 = min(_c_div(max_temperature * 95, 100), level3 - 1)
    level1 = min(_c_div(max_temperature * 90, 100), level2 - 1)
    return level1, level2, level3


def parse_temperature(text: str) -> int | None:
    """Whole degrees Celsius from a sensor's first line in millidegrees (truncated, as 5.16);
    None when it is not a number."""
    first = text.splitlines()[0].strip() if text.strip() else ""
    try:
        millidegrees = float(first)
    except ValueError:
        return None
    if millidegrees != millidegrees or abs(millidegrees) == float("inf"):
        return None
    return int(millidegrees * 1e-3 + 1e-5)


@dataclass
class _SensorState:
    in_use: bool
    warned: int = 0  # the highest warning level said (0: none)


@dataclass
class TemperatureCheck:
    """The temperature checks of one daemon run. As 5.16, a sensor whose first reading fails
    is left out for good (a warning says so); a later failure is its errno. ETOOHOT at or over
    max-temperature; crossing 90, 95 or 98 % of it is said once as the result's warning, and
    dropping below all levels once more."""

    max_temperature: int
    _sensors: dict[str, _SensorState] = field(default_factory=dict)

    def decide(self, sensor: str, reading: Reading) -> CheckResult:
        degrees = None if isinstance(reading, OSError) else parse_temperature(reading)
        state = self._sensors.get(sensor)
        if state is None:
            state = self._sensors[sensor] = _SensorState(in_use=degrees is not None)
            if not state.in_use:
                why = (
                    describe(_errno_of(reading))
                    if isinstance(reading, OSError)
                    else "not a temperature"
                )
                text = f"disabling temperature check for {sensor}: cannot read it ({why})"
                return CheckResult("temperature", sensor, ENOERR, text, warning=text)
        if not state.in_use:
            return CheckResult("temperature", sensor, ENOERR, f"sensor {sensor} is not checked")
        if isinstance(reading, OSError):
            return _failed("temperature", sensor, f"cannot read {sensor}", reading)
        if degrees is None:
            text = f"{sensor} holds no temperature ({reading[:40].strip()!r})"
            return CheckResult("temperature", sensor, errno.EINVAL, text)
        warning = self._warning(sensor, state, degrees)
        limit = self.max_temperature
        if degrees >= limit:
            detail = f"it is too hot: temperature {degrees} >= max-temperature {limit} ({sensor})"
            return CheckResult("temperature", sensor, ETOOHOT, detail, warning)
        detail = f"temperature {degrees} (max-temperature {limit}, {sensor})"
        return CheckResult("temperature", sensor, ENOERR, detail, warning)

    def _warning(self, sensor: str, state: _SensorState, degrees: int) -> str | None:
        levels = warning_levels(self.max_temperature)
        reached = sum(1 for level in levels if degrees > level)  # 0..3
        said = state.warned
        state.warned = reached
        if reached > said:
            return f"temperature {degrees} increases above {levels[reached - 1]} ({sensor})"
        if reached == 0 and said > 0:
            return f"temperature {degrees} now OK again for {sensor}"
        return None


# ---- files and pidfiles -------------------------------------------------------------------


@dataclass
class FileChangeCheck:
    """`file =` checks: the stat's errno when it fails; with `change = SECONDS`, ENOCHANGE when
    the file's modification time has not changed for more than that many whole seconds (as
    5.16: exactly at the limit is fine). The first reading of a file only records it.

    5.16 compares whole-second modification times; hastack the nanoseconds, so two changes in
    one second still count as a change."""

    _seen: dict[str, tuple[int, float]] = field(default_factory=dict)  # mtime_ns, changed at

    def decide(self, path: str, change: int, mtime_ns: int | OSError, now: float) -> CheckResult:
        """``mtime_ns``: the file's st_mtime_ns, or the stat's error (a TimeoutError without an
        errno when it did not return in time: 5.16 stats in a child it gives up on after 5
        seconds, so that a hung NFS server does not stop the daemon)."""
        if isinstance(mtime_ns, OSError):
            return _failed("file", path, f"cannot stat {path}", mtime_ns)
        if change == 0:
            return CheckResult("file", path, ENOERR, f"file {path} is there")
        seen = self._seen.get(path)
        if seen is None or seen[0] != mtime_ns:
            self._seen[path] = seen = (mtime_ns, now)
        waited = int(now - seen[1])
        if waited > change:
            detail = f"file {path} was not changed in {waited} seconds (more than {change})"
            return CheckResult("file", path, ENOCHANGE, detail)
        detail = f"file {path} was changed {waited} seconds ago (change {change})"
        return CheckResult("file", path, ENOERR, detail)


def parse_pid(text: str) -> int | None:
    """The process id a pidfile holds (its first word), or None when it holds none > 0."""
    words = text.split()
    if not words or not words[0].isascii() or not words[0].isdigit():
        return None
    pid = int(words[0])
    return pid if pid > 0 else None


def check_pidfile(path: str, reading: Reading, kill_errno: int | None) -> CheckResult:
    """`pidfile =` checks: the errno when the pidfile cannot be read, and that of kill(pid, 0)
    (ESRCH: the process is gone). ``kill_errno`` is None when the signal could be sent or when
    the shell did not send it (no pid).

    5.16 reads a pidfile without a number as pid 0, and kill(0, 0) always succeeds; hastack
    says EINVAL."""
    if isinstance(reading, OSError):
        return _failed("pidfile", path, f"cannot read {path}", reading)
    pid = parse_pid(reading)
    if pid is None:
        text = f"{path} holds no process id ({reading[:20].strip()!r})"
        return CheckResult("pidfile", path, errno.EINVAL, text)
    if kill_errno:
        text = f"process {pid} of {path} cannot be signalled: {describe(kill_errno)}"
        return CheckResult("pidfile", path, kill_errno, text)
    return CheckResult("pidfile", path, ENOERR, f"process {pid} of {path} is running")


# ---- network ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PingOutcome:
    """What pinging a target came to: the try (1-based) that got the first reply and how long
    it took, or the errno of a failed send or receive (which ends the tries, as 5.16)."""

    tries: int
    answered: int | None = None
    rtt: float | None = None
    failed_errno: int | None = None  # sending (or receiving) failed


def check_ping(target: str, outcome: PingOutcome) -> CheckResult:
    """`ping =` checks: ENETUNREACH when none of ping-count tries got its reply within its
    share of the interval; the errno of a failed send or receive; EINVAL for a ping-count
    below 1."""
    if outcome.tries < 1:
        return CheckResult("ping", target, errno.EINVAL, f"ping-count {outcome.tries} is below 1")
    if outcome.failed_errno:
        text = f"cannot ping {target}: {describe(outcome.failed_errno)}"
        return CheckResult("ping", target, outcome.failed_errno, text)
    if outcome.answered is None:
        text = f"no response from {target} to {outcome.tries} pings"
        return CheckResult("ping", target, errno.ENETUNREACH, text)
    ms = f" in {outcome.rtt * 1000:.3f} ms" if outcome.rtt is not None else ""
    text = f"{target} answered ping {outcome.answered} of {outcome.tries}{ms}"
    return CheckResult("ping", target, ENOERR, text)


def parse_net_dev(text: str) -> dict[str, int | None]:
    """The received-bytes counter of each interface in /proc/net/dev's text (None when it is
    not a number)."""
    counters: dict[str, int | None] = {}
    for line in text.splitlines():
        name, colon, rest = line.partition(":")
        name = name.strip()
        if not colon or not name or "|" in name:
            continue
        words = rest.split()
        counters[name] = int(words[0]) if words and _MEMINFO_VALUE.match(words[0]) else None
    return counters


@dataclass
class InterfaceCheck:
    """`interface =` checks: ENETUNREACH when an interface's received-bytes counter has not
    moved since the previous interval; the first reading only records it.

    As 5.16, an interface that /proc/net/dev does not list is not checked (the result is ok
    and says so). 5.16 matches a name as a prefix (eth1 also reads eth10's line) and starts
    from a counter of 0 (a first reading of 0 fails); hastack matches the whole name and lets
    the first reading only record."""

    _bytes: dict[str, int] = field(default_factory=dict)

    def decide(self, name: str, reading: Reading) -> CheckResult:
        if isinstance(reading, OSError):
            return _failed("interface", name, "cannot read /proc/net/dev", reading)
        counters = parse_net_dev(reading)
        if name not in counters:
            text = f"interface {name} is not in /proc/net/dev: not checked (as 5.16)"
            return CheckResult("interface", name, ENOERR, text)
        received = counters[name]
        if received is None:
            text = f"/proc/net/dev has no received bytes for {name}"
            return CheckResult("interface", name, errno.EINVAL, text)
        before = self._bytes.get(name)
        self._bytes[name] = received
        if before is None:
            text = f"interface {name} received {received} bytes (first reading)"
            return CheckResult("interface", name, ENOERR, text)
        if received == before:
            text = f"interface {name} received nothing since the last check ({received} bytes)"
            return CheckResult("interface", name, errno.ENETUNREACH, text)
        text = f"interface {name} received {received - before} bytes since the last check"
        return CheckResult("interface", name, ENOERR, text)
