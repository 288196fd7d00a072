"""What a watchdog.conf says, as the watchdog 5.16 daemon reads it (defaults from its
configfile.c), plus hastack's own additions (marked; see docs/compat.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TIMER_MARGIN = 60  # 5.16's default for watchdog-timeout, test-, repair- and retry-timeout
DEFAULT_TEST_DIRECTORY = "/etc/watchdog.d"
DEFAULT_LOG_DIR = "/var/log/watchdog"
DEFAULT_STATE_DIR = "/var/lib/hastack/watchdog"  # hastack: the status and the reset reason


@dataclass(frozen=True)
class Where:
    """The file and line a setting came from (for messages)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class WatchedFile:
    """`file = PATH`, with the `change = SECONDS` that follows it (0: only stat it)."""

    path: str
    change: int = 0
    where: Where | None = None


@dataclass(frozen=True)
class TestBinary:
    """A user test: `test-binary = PATH` (version 0: repaired by `repair-binary ERRNO PATH`)
    or an executable of `test-directory` (version 1: run as `PATH test`, repaired by
    `PATH repair ERRNO PATH`)."""

    path: str
    version: Literal[0, 1]
    where: Where | None = None


@dataclass
class WatchdogConfig:
    source: str = "/etc/watchdog.conf"
    # the device
    watchdog_device: str | None = None  # None: no keep-alive (5.16's default)
    watchdog_timeout: int = TIMER_MARGIN
    watchdog_refresh_use_settimeout: Literal["auto", "yes", "no"] = "auto"
    watchdog_refresh_ignore_errors: bool = False
    # the loop
    interval: int = 1
    logtick: int = 1
    verbose: int = 0
    realtime: bool = False
    priority: int = 1
    # load, memory, temperature
    max_load_1: int = 0
    max_load_5: int = 0  # 0 with max-load-1 set: 3/4 of it (after reading)
    max_load_15: int = 0  # 0 with max-load-1 set: 1/2 of it (after reading)
    min_memory: int = 0  # pages
    allocatable_memory: int = 0  # pages
    max_swap: int = 0  # pages
    temperature_sensors: list[str] = field(default_factory=list)
    max_temperature: int = 90
    temp_power_off: bool = True
    # files, processes, network
    files: list[WatchedFile] = field(default_factory=list)
    pidfiles: list[str] = field(default_factory=list)
    pings: list[str] = field(default_factory=list)
    ping_count: int = 3
    interfaces: list[str] = field(default_factory=list)
    # user tests and repair
    test_binaries: list[TestBinary] = field(default_factory=list)  # test-binary lines
    test_directory: str = DEFAULT_TEST_DIRECTORY
    test_timeout: int = TIMER_MARGIN
    repair_binary: str | None = None
    repair_timeout: int = TIMER_MARGIN
    retry_timeout: int = TIMER_MARGIN
    repair_maximum: int = 1
    softboot_option: bool = False
    # shutdown and reporting
    admin: str = "root"
    sigterm_delay: int = 5
    log_dir: str = DEFAULT_LOG_DIR
    heartbeat_file: str | None = None
    heartbeat_stamps: int = 300
    log_killed_pids: bool = False
    # hastack's additions (docs/compat.md)
    notify_command: str | None = None  # run with the reason on stdin instead of mail to admin
    reboot_command: str = "/sbin/reboot"  # the soft reboot (most errors)
    reset_command: str = "sysrq:b"  # the hard reset (254): sysrq's b, or a command
    poweroff_command: str = "/sbin/poweroff"  # too hot with temp-power-off = yes
    state_dir: str = DEFAULT_STATE_DIR
    cluster_socket: str | None = None  # the node daemon's control socket: stop resources first
    warnings: list[str] = field(default_factory=list)  # "FILE:LINE: text", said on load
