"""The shell of the watchdog's system checks: it takes each reading a watchdog.conf asks for
(/proc files, stats, kill(pid, 0), ICMP echo, an allocation, a process start) and hands it to
the decisions of :mod:`.checks`.

All checks of an interval run at once and the whole run ends within ``interval`` seconds: the
ping tries of a target share the interval as 5.16 spreads them, and a stat, an allocation or a
process start that has not returned by then counts as ETOOLONG (it goes on in its thread; the
next interval does not start a second one while it hangs, and says ETOOLONG again).
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import mmap
import os
import shutil
import socket
import struct
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from hastack.transport.icmp import ECHO_REPLY, HEADER, checksum, echo_request
from hastack.watchdog.checks import (
    CheckResult,
    FileChangeCheck,
    InterfaceCheck,
    PingOutcome,
    Reading,
    TemperatureCheck,
    check_allocatable,
    check_file_table,
    check_load,
    check_memory,
    check_pidfile,
    check_ping,
    check_process_table,
    check_swap,
    parse_pid,
)
from hastack.watchdog.model import WatchdogConfig

T = TypeVar("T")

FILE_STAT_TIMEOUT = 5.0  # 5.16 gives up on a file's stat after 5 seconds
RUN_MARGIN = 0.05  # seconds of the interval kept for the run's own work after the pings
READ_LIMIT = 64 * 1024  # /proc files and sensors are small; never read a runaway file whole
SOL_RAW = 255  # linux/socket.h (not in Python's socket module)
ICMP_FILTER = 1  # linux/icmp.h: a bit mask of the ICMP types the raw socket drops
_instances = itertools.count(1)


class ProbeError(RuntimeError):
    """A check cannot be set up: the message names the option and what is missing."""


def parse_echo_reply(packet: bytes) -> tuple[int, int] | None:
    """The (identifier, sequence) of an IPv4 packet carrying an ICMP echo reply with a good
    checksum; None for anything else."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    header_len = (packet[0] & 0x0F) * 4
    icmp = packet[header_len:]
    if header_len < 20 or len(icmp) < HEADER.size or checksum(icmp) != 0:
        return None
    kind, code, _sum, identifier, sequence = HEADER.unpack_from(icmp)
    if kind != ECHO_REPLY or code != 0:
        return None
    return identifier, sequence


def _read_text(path: str) -> Reading:
    try:
        with open(path, "rb") as f:
            data = f.read(READ_LIMIT)
    except OSError as exc:
        return exc
    # Undecodable bytes are garbage for the parsers to refuse, not a crash.
    return data.decode("utf-8", errors="replace")


def _open_and_close(path: str) -> OSError | None:
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as exc:
        return exc
    return None


def _allocate(size: int) -> None:
    """Map `size` bytes and fault them all in, as 5.16 does (MAP_POPULATE), then let go."""
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
    try:
        mem = mmap.mmap(-1, size, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except (OverflowError, ValueError) as exc:  # a size this platform cannot even ask for
        raise OSError(errno.ENOMEM, str(exc)) from exc
    mem.close()


def _start_process(argv: list[str]) -> None:
    """Start a process that exits at once, and reap it. posix_spawn rather than os.fork: no
    Python runs in the child of this threaded process, yet it takes a process-table slot all
    the same (EAGAIN when there is none)."""
    pid = os.posix_spawn(argv[0], argv, {})
    os.waitpid(pid, 0)


class _Pinger:
    """One raw ICMP socket per target, as 5.16 opens them."""

    def __init__(self, target: str, address: str, sock: socket.socket, identifier: int) -> None:
        self.target = target
        self.address = address
        self.sock = sock
        self.identifier = identifier
        # Sequence numbers run on across intervals, so a late reply to the previous interval's
        # try cannot pass for this one's.
        self.sequence = 0

    async def ping(self, tries: int, budget: float) -> PingOutcome:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for attempt in range(1, tries + 1):
            self.sequence = (self.sequence + 1) & 0xFFFF
            sequence = self.sequence
            try:
                await loop.sock_sendto(
                    self.sock, echo_request(self.identifier, sequence), (self.address, 0)
                )
            except OSError as exc:
                return PingOutcome(tries, failed_errno=exc.errno or errno.EIO)
            sent = loop.time()
            deadline = start + attempt * budget / tries
            while (left := deadline - loop.time()) > 0:
                try:
                    packet, source = await asyncio.wait_for(
                        loop.sock_recvfrom(self.sock, 4096), left
                    )
                except TimeoutError:
                    break
                except OSError as exc:
                    return PingOutcome(tries, failed_errno=exc.errno or errno.EIO)
                reply = parse_echo_reply(packet)
                if reply == (self.identifier, sequence) and source[0] == self.address:
                    return PingOutcome(tries, answered=attempt, rtt=loop.time() - sent)
        return PingOutcome(tries)


class Probes:
    """Every check a WatchdogConfig asks for, read and decided once per interval.

    ``proc_root`` replaces /proc (tests of bad /proc data); ``process_table`` turns hastack's
    own process-table check off."""

    def __init__(
        self, cfg: WatchdogConfig, *, proc_root: str = "/proc", process_table: bool = True
    ) -> None:
        self.cfg = cfg
        self.proc_root = proc_root.rstrip("/") or "/"
        self.process_table = process_table
        self.page_size = mmap.PAGESIZE
        self.files = FileChangeCheck()
        self.interfaces = InterfaceCheck()
        self.temperatures = TemperatureCheck(cfg.max_temperature)
        self._pingers: list[_Pinger] = []
        self._true: str | None = None
        # Own threads, so a stat hanging on a dead NFS server cannot starve asyncio's default
        # executor; at most one job per key runs at a time.
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="watchdog-probe")
        self._busy: dict[str, asyncio.Future[Any]] = {}

    def _proc(self, name: str) -> str:
        return os.path.join(self.proc_root, name)

    @property
    def budget(self) -> float:
        """Seconds a run may take: the interval, less a margin for the run's own work."""
        return max(self.cfg.interval - RUN_MARGIN, self.cfg.interval * 0.5)

    async def open(self) -> None:
        """Open what the checks keep for the daemon's life: a raw ICMP socket per ping target
        (root or CAP_NET_RAW), and find the program the process-table check starts."""
        if self.process_table:
            self._true = shutil.which("true")
            if self._true is None:
                raise ProbeError(
                    "the process-table check starts `true`, and no `true` is on PATH "
                    f"({os.environ.get('PATH', '')!r}); install coreutils"
                )
        identifier = (os.getpid() + next(_instances)) & 0xFFFF
        try:
            for target in self.cfg.pings:
                self._pingers.append(self._open_pinger(target, identifier))
        except BaseException:
            self.close()
            raise

    def _open_pinger(self, target: str, identifier: int) -> _Pinger:
        where = f"{self.cfg.source}: ping = {target}"
        try:
            address = socket.inet_ntoa(socket.inet_aton(target))  # what 5.16's inet_addr takes
        except OSError:
            raise ProbeError(f"{where}: not an IPv4 address (a.b.c.d)") from None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        except PermissionError as exc:
            raise ProbeError(
                f"{where}: a raw ICMP socket needs root (or CAP_NET_RAW), and this process "
                f"runs as uid {os.geteuid()}: {exc.strerror}"
            ) from exc
        except OSError as exc:
            raise ProbeError(f"{where}: cannot open a raw ICMP socket: {exc.strerror}") from exc
        sock.setblocking(False)
        # Let the kernel drop every ICMP type but echo replies, as 5.16 does.
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ECHO_REPLY) & 0xFFFFFFFF))
        return _Pinger(target, address, sock, identifier)

    def close(self) -> None:
        for pinger in self._pingers:
            pinger.sock.close()
        self._pingers = []
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _bounded(self, key: str, job: Callable[[], T], timeout: float) -> T | OSError:
        """Run a blocking job in a thread: its result, its OSError, or a TimeoutError without
        an errno (ETOOLONG to the checks) when it has not returned in time or still runs from
        an earlier interval."""
        busy = self._busy.get(key)
        if busy is not None and not busy.done():
            return TimeoutError()
        future = asyncio.get_running_loop().run_in_executor(self._executor, job)
        self._busy[key] = future
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except OSError as exc:
            if future.done() and not future.cancelled() and future.exception() is exc:
                return exc
            return TimeoutError()

    async def run(self, now: float) -> list[CheckResult]:
        """Read and decide every configured check, in 5.16's order (file table, load, memory,
        allocatable memory, temperatures, files, pidfiles, interfaces, pings, each list in the
        config's order), all at once; ``now`` is the daemon's clock, for the file changes."""
        cfg = self.cfg
        jobs: list[Coroutine[Any, Any, CheckResult]] = [self._file_table()]
        if self.process_table:
            jobs.append(self._process_table())
        if cfg.max_load_1 or cfg.max_load_5 or cfg.max_load_15:
            jobs.append(self._load())
        if cfg.min_memory > 0 or cfg.max_swap > 0:
            meminfo = _read_text(self._proc("meminfo"))  # one reading for both checks
            if cfg.min_memory > 0:
                jobs.append(_ready(check_memory(meminfo, cfg.min_memory, self.page_size)))
            if cfg.max_swap > 0:
                jobs.append(_ready(check_swap(meminfo, cfg.max_swap, self.page_size)))
        if cfg.allocatable_memory > 0:
            jobs.append(self._allocatable())
        for sensor in cfg.temperature_sensors:
            jobs.append(_ready(self.temperatures.decide(sensor, _read_text(sensor))))
        for index, watched in enumerate(cfg.files):
            jobs.append(self._file(index, watched.path, watched.change, now))
        for pidfile in cfg.pidfiles:
            jobs.append(_ready(self._pidfile(pidfile)))
        if cfg.interfaces:
            net_dev = _read_text(self._proc("net/dev"))
            for name in cfg.interfaces:
                jobs.append(_ready(self.interfaces.decide(name, net_dev)))
        for pinger in self._pingers:
            jobs.append(self._ping(pinger))
        return list(await asyncio.gather(*jobs))

    async def _file_table(self) -> CheckResult:
        return check_file_table(_open_and_close(self._proc("uptime")))

    async def _process_table(self) -> CheckResult:
        if self._true is None:
            raise ProbeError("Probes.run() before Probes.open()")
        argv = [self._true]
        outcome = await self._bounded("<process-table>", lambda: _start_process(argv), self.budget)
        return check_process_table(outcome if isinstance(outcome, OSError) else None)

    async def _load(self) -> CheckResult:
        cfg = self.cfg
        reading = _read_text(self._proc("loadavg"))
        return check_load(reading, cfg.max_load_1, cfg.max_load_5, cfg.max_load_15)

    async def _allocatable(self) -> CheckResult:
        pages = self.cfg.allocatable_memory
        size = pages * self.page_size
        outcome = await self._bounded("<alloc-memory>", lambda: _allocate(size), self.budget)
        error = outcome if isinstance(outcome, OSError) else None
        return check_allocatable(error, pages, self.page_size)

    async def _file(self, index: int, path: str, change: int, now: float) -> CheckResult:
        timeout = min(FILE_STAT_TIMEOUT, self.budget)
        # keyed by the config's line too: a file listed twice is stat'ed twice, not "busy"
        stat = await self._bounded(f"file:{index}:{path}", lambda: os.stat(path), timeout)
        reading = stat if isinstance(stat, OSError) else stat.st_mtime_ns
        return self.files.decide(path, change, reading, now)

    def _pidfile(self, path: str) -> CheckResult:
        reading = _read_text(path)
        kill_errno = None
        pid = None if isinstance(reading, OSError) else parse_pid(reading)
        if pid is not None:
            try:
                os.kill(pid, 0)
            except OSError as exc:
                kill_errno = exc.errno or errno.EIO
        return check_pidfile(path, reading, kill_errno)

    async def _ping(self, pinger: _Pinger) -> CheckResult:
        count = self.cfg.ping_count
        outcome = await pinger.ping(count, self.budget) if count >= 1 else PingOutcome(count)
        return check_ping(pinger.target, outcome)


async def _ready(result: CheckResult) -> CheckResult:
    # Decisions taken at once still go through gather, so the results keep the config's order.
    return result
