"""watchdog.conf, read as the watchdog 5.16 daemon reads it (its configfile.c and read-conf.c),
with one difference of principle: where 5.16 logs a warning and skips a line (no '=', an unknown
option, a number expected, a value not in the enumeration, a number out of range), hastack reports
the line as a problem with its file and line, collects every problem of the file, and raises
:class:`WatchdogConfigError`, so that a configuration is applied whole or not at all.

The syntax: ``name = value`` lines, '#' comment lines, blank lines. A line is what getline reads
(up to '\\n'); the name and the value are trimmed of 5.16's white space (space, tab, CR, LF and
backspace, not form feed or vertical tab); a '#' after the '=' is part of the value, as in 5.16.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from hastack.watchdog.model import TestBinary, WatchdogConfig, WatchedFile, Where

__all__ = [
    "MIN_LOAD",
    "WatchdogConfigError",
    "check_parameters",
    "discover_test_directory",
    "load",
    "parse",
]

MIN_LOAD = 2  # 5.16's MINLOAD: a lower max-load-1 needs --force

# read-conf.c's is_white: deliberately not str.strip()'s wider set (form feed, unicode spaces).
_WHITE = " \t\r\n\b"
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # 5.16 stores every number in a C int
_ASCII_DIGITS = "0123456789"  # C's isdigit(): str.isdigit() would also take '²' or '٣'


class WatchdogConfigError(Exception):
    """Every problem of one watchdog.conf, each "FILE:LINE: message"; nothing of it is applied."""

    def __init__(self, problems: list[str]) -> None:
        self.problems: list[str] = list(problems)
        super().__init__("\n".join(self.problems))


Kind = Literal["int", "string", "yesno", "ynauto", "list"]


@dataclass(frozen=True)
class _Option:
    name: str
    kind: Kind
    attr: str  # the WatchdogConfig field (for "list": the list it appends to)
    minimum: int | None = None  # "int": the smallest value that makes sense
    allowed: str = ""  # "int": what the message says is allowed
    blank: Literal["none", "empty", "problem"] = "none"  # "string": what `name =` means


_OPTIONS: dict[str, _Option] = {
    o.name: o
    for o in [
        # strings: 5.16 reads a blank as NULL, which turns the feature off where it can
        _Option("admin", "string", "admin", blank="empty"),  # "": no mail (watchdog.conf(5))
        _Option("watchdog-device", "string", "watchdog_device"),
        _Option("repair-binary", "string", "repair_binary"),
        _Option("heartbeat-file", "string", "heartbeat_file"),
        # a blank test-directory is NULL in 5.16: no directory, no version-1 tests
        _Option("test-directory", "string", "test_directory", blank="empty"),
        # a blank log-dir is NULL in 5.16, and it then stops at its mkdir(NULL)
        _Option("log-dir", "string", "log_dir", blank="problem"),
        # numbers
        _Option("change", "int", "change", 0, "0 or more seconds (0: only check the file exists)"),
        _Option("logtick", "int", "logtick", 0, "0 or more intervals (0: no periodic message)"),
        _Option("interval", "int", "interval", 1, "1 or more seconds"),
        _Option("ping-count", "int", "ping_count", 1, "1 or more pings per interval"),
        _Option("priority", "int", "priority"),  # its range depends on realtime: see _finish
        _Option("repair-timeout", "int", "repair_timeout", 0, "0 or more seconds (0: no limit)"),
        _Option("test-timeout", "int", "test_timeout", 0, "0 or more seconds (0: no limit)"),
        _Option("heartbeat-stamps", "int", "heartbeat_stamps", 1, "1 or more stamps"),
        _Option(
            "watchdog-timeout",
            "int",
            "watchdog_timeout",
            0,
            "0 or more seconds (0: keep the driver's own timeout)",
        ),
        _Option("max-temperature", "int", "max_temperature", 1, "1 or more degrees Celsius"),
        _Option("max-load-1", "int", "max_load_1", 0, "0 or more (0: no load check)"),
        _Option("max-load-5", "int", "max_load_5", 0, "0 or more (0: 3/4 of max-load-1)"),
        _Option("max-load-15", "int", "max_load_15", 0, "0 or more (0: 1/2 of max-load-1)"),
        _Option("min-memory", "int", "min_memory", 0, "0 or more pages (0: no check)"),
        _Option("allocatable-memory", "int", "allocatable_memory", 0, "0 or more pages"),
        _Option("max-swap", "int", "max_swap", 0, "0 or more pages (0: no check)"),
        _Option("sigterm-delay", "int", "sigterm_delay", 0, "0 or more seconds"),
        _Option("retry-timeout", "int", "retry_timeout", 0, "0 or more seconds (0: act at once)"),
        _Option("repair-maximum", "int", "repair_maximum", 0, "0 or more (0: no limit)"),
        _Option("verbose", "int", "verbose", 0, "0 or more"),
        # enumerations (case-insensitive, as 5.16's strcasecmp)
        _Option("realtime", "yesno", "realtime"),
        _Option("watchdog-refresh-use-settimeout", "ynauto", "watchdog_refresh_use_settimeout"),
        _Option("watchdog-refresh-ignore-errors", "yesno", "watchdog_refresh_ignore_errors"),
        _Option("softboot-option", "yesno", "softboot_option"),
        _Option("temp-power-off", "yesno", "temp_power_off"),
        _Option("log-killed-pids", "yesno", "log_killed_pids"),
        # repeating options: each line appends
        _Option("file", "list", "files"),
        _Option("pidfile", "list", "pidfiles"),
        _Option("ping", "list", "pings"),
        _Option("interface", "list", "interfaces"),
        _Option("temperature-sensor", "list", "temperature_sensors"),
        _Option("test-binary", "list", "test_binaries"),
        # hastack's additions (docs/compat.md); the commands that act cannot be switched off
        _Option("notify-command", "string", "notify_command"),
        _Option("reboot-command", "string", "reboot_command", blank="problem"),
        _Option("reset-command", "string", "reset_command", blank="problem"),
        _Option("poweroff-command", "string", "poweroff_command", blank="problem"),
        _Option("state-dir", "string", "state_dir", blank="problem"),
        _Option("cluster-socket", "string", "cluster_socket"),
    ]
}

_ENUMS: dict[str, tuple[str, ...]] = {"yesno": ("yes", "no"), "ynauto": ("yes", "no", "auto")}


def _rr_priority_range() -> tuple[int, int]:
    """sched_get_priority_min/max(SCHED_RR), which 5.16's sched_setscheduler call must meet."""
    try:
        return os.sched_get_priority_min(os.SCHED_RR), os.sched_get_priority_max(os.SCHED_RR)
    except (AttributeError, OSError):  # not Linux: Linux's values
        return 1, 99


def _read_int(value: str) -> tuple[int | None, str, str]:
    """A number as 5.16's read_int_func reads it: the value must start like a number ('+', '-'
    or a digit), then atoi takes an optional sign and the digits and ignores the rest.
    Returns (number or None, the error, the ignored rest)."""
    if not value or (value[0] not in _ASCII_DIGITS and value[0] not in "+-"):
        return None, "a whole number expected", ""
    i = 1 if value[0] in "+-" else 0
    j = i
    while j < len(value) and value[j] in _ASCII_DIGITS:
        j += 1
    if j == i:  # atoi would make 0 of a lone sign; surely a mistake, not a zero
        return None, "a whole number expected", ""
    digits = value[i:j].lstrip("0") or "0"
    # checked before int(): Python refuses to convert more than 4300 digits
    number = int(value[:i] + digits) if len(digits) <= 10 else None
    if number is None or not _INT_MIN <= number <= _INT_MAX:
        return None, f"{value[:j]} is out of range ({_INT_MIN} to {_INT_MAX})", ""
    return number, "", value[j:].strip(_WHITE)


@dataclass
class _Reader:
    source: str
    problems: list[str]
    warnings: list[str]
    values: dict[str, object]  # attr -> value, the non-repeating options read
    lines: dict[str, list[int]]  # option name -> the lines that set it
    files: list[WatchedFile]
    change_lines: dict[int, int]  # index in files -> the line of its last change
    lists: dict[str, list[str]]  # attr -> the values of a repeating option
    list_lines: dict[str, list[int]]

    def at(self, line: int) -> str:
        return f"{self.source}:{line}"

    def problem(self, line: int, message: str) -> None:
        self.problems.append(f"{self.at(line)}: {message}")

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(f"{self.at(line)}: {message}")

    def line(self, number: int, raw: str) -> None:
        text = raw.lstrip(_WHITE)
        if not text or text.startswith("#"):
            return
        if "\0" in text:  # 5.16's C strings would end there: refuse rather than guess
            self.problem(number, "a NUL character; watchdog.conf is text")
            return
        name, eq, value = text.partition("=")
        if not eq:
            self.problem(number, f"no '=' in {text.strip(_WHITE)!r}: expected 'name = value'")
            return
        name, value = name.strip(_WHITE), value.strip(_WHITE)
        option = _OPTIONS.get(name)
        if option is None:
            self.problem(number, _unknown(name))
            return
        handler: Callable[[_Option, int, str], None] = getattr(self, f"_{option.kind}")
        handler(option, number, value)

    def _set(self, option: _Option, number: int, value: object) -> None:
        earlier = self.lines.setdefault(option.name, [])
        if earlier:
            seen = ", ".join(str(n) for n in earlier)
            self.warn(
                number,
                f"{option.name} is given again; this line wins, as in watchdog 5.16 "
                f"(also at line{'s' if len(earlier) > 1 else ''} {seen})",
            )
        earlier.append(number)
        self.values[option.attr] = value

    def _int(self, option: _Option, number: int, value: str) -> None:
        got, error, rest = _read_int(value)
        allowed = f"; allowed: {option.allowed}" if option.allowed else ""
        if got is None:
            self.problem(number, f"{option.name} = {value!r}: {error}{allowed}")
            return
        if option.minimum is not None and got < option.minimum:
            self.problem(number, f"{option.name} = {got}: too small{allowed}")
            return
        if rest:
            self.warn(
                number, f"{option.name} = {value!r}: read as {got}, {rest!r} ignored (as 5.16 does)"
            )
        if option.name == "change":
            self._change(number, got)
        else:
            self._set(option, number, got)

    def _change(self, number: int, seconds: int) -> None:
        if not self.files:
            self.problem(
                number,
                f"change = {seconds} comes before any 'file =' line; "
                "change applies to the file above it",
            )
            return
        index = len(self.files) - 1
        watched = self.files[index]
        if index in self.change_lines:
            self.warn(
                number,
                f"change is given again for file {watched.path}; this line wins, as in "
                f"watchdog 5.16 (also at line {self.change_lines[index]})",
            )
        self.change_lines[index] = number
        self.files[index] = replace(watched, change=seconds)

    def _string(self, option: _Option, number: int, value: str) -> None:
        if value:
            self._set(option, number, value)
        elif option.blank == "problem":
            self.problem(number, f"{option.name} is blank; it needs a value")
        else:
            self._set(option, number, "" if option.blank == "empty" else None)

    def _yesno(self, option: _Option, number: int, value: str) -> None:
        self._enum(option, number, value)

    def _ynauto(self, option: _Option, number: int, value: str) -> None:
        self._enum(option, number, value)

    def _enum(self, option: _Option, number: int, value: str) -> None:
        choices = _ENUMS[option.kind]
        word = value.lower() if value.isascii() else value
        if word not in choices:
            self.problem(
                number,
                f"{option.name} = {value!r}: allowed: {' or '.join(choices)} (any case)",
            )
            return
        self._set(option, number, word == "yes" if option.kind == "yesno" else word)

    def _list(self, option: _Option, number: int, value: str) -> None:
        if not value:
            # 5.16 warns ("string expected") and adds nothing; the line asks for nothing, so
            # it is no reason to refuse the file, but it cannot remove the earlier lines.
            earlier = self.list_lines.get(option.attr, [])
            self.warn(
                number,
                f"{option.name} is blank: nothing added"
                + (f" (the {option.name} lines before it still count)" if earlier else ""),
            )
            return
        if option.name == "ping":
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                self.problem(
                    number,
                    f"ping = {value!r}: an IPv4 address such as 192.0.2.1 expected "
                    "(watchdog 5.16 pings IPv4 addresses only, no names)",
                )
                return
        if option.name == "file":
            self.files.append(WatchedFile(value, 0, Where(self.source, number)))
        else:
            self.lists.setdefault(option.attr, []).append(value)
        self.list_lines.setdefault(option.attr, []).append(number)

    def finish(self) -> WatchdogConfig:
        """Cross checks, then the configuration (only when there is no problem)."""
        realtime = self.values.get("realtime", False)
        priority_lines = self.lines.get("priority")
        priority = self.values.get("priority")
        if realtime and isinstance(priority, int) and priority_lines:
            low, high = _rr_priority_range()
            if not low <= priority <= high:
                self.problem(
                    priority_lines[-1],
                    f"priority = {priority}: with realtime = yes allowed: {low} to {high} "
                    "(SCHED_RR's priorities)",
                )
        if self.values.get("softboot_option") and "retry-timeout" in self.lines:
            self.warn(
                self.lines["retry-timeout"][-1],
                "retry-timeout has no effect: softboot-option = yes sets it to 0 "
                f"(line {self.lines['softboot-option'][-1]})",
            )
        if self.problems:
            raise WatchdogConfigError(self.problems)
        cfg = WatchdogConfig(source=self.source)
        for attr, value in self.values.items():
            setattr(cfg, attr, value)
        cfg.files = list(self.files)
        cfg.pidfiles = self.lists.get("pidfiles", [])
        cfg.pings = self.lists.get("pings", [])
        cfg.interfaces = self.lists.get("interfaces", [])
        cfg.temperature_sensors = self.lists.get("temperature_sensors", [])
        cfg.test_binaries = [
            TestBinary(path, 0, Where(self.source, line))
            for path, line in zip(
                self.lists.get("test_binaries", []),
                self.list_lines.get("test_binaries", []),
                strict=True,
            )
        ]
        # 5.16 does this in main(), after read_config: --softboot or softboot-option = yes
        # means act on the first error. Doing it here gives every caller the same reading.
        if cfg.softboot_option:
            cfg.retry_timeout = 0
        # read_config's defaults for the 5 and 15 minute limits, from the 1 minute one
        if cfg.max_load_1 and not cfg.max_load_5:
            cfg.max_load_5 = cfg.max_load_1 * 3 // 4
        if cfg.max_load_1 and not cfg.max_load_15:
            cfg.max_load_15 = cfg.max_load_1 // 2
        cfg.warnings = list(self.warnings)
        return cfg


def _unknown(name: str) -> str:
    if not name:
        return "no option name before the '='"
    close = difflib.get_close_matches(name.lower(), list(_OPTIONS), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else " (see watchdog.conf(5))"
    return f"unknown option {name!r}{hint}"


def parse(text: str, source: str) -> WatchdogConfig:
    """Read watchdog.conf text; `source` names it in messages ("FILE:LINE: ...").
    Raises WatchdogConfigError with every problem of the text."""
    reader = _Reader(source, [], [], {}, {}, [], {}, {}, {})
    for number, raw in enumerate(text.split("\n"), start=1):  # getline's lines, not splitlines'
        reader.line(number, raw)
    return reader.finish()


def load(path: str | Path) -> WatchdogConfig:
    """Read the watchdog.conf at `path`. A file that cannot be read is a WatchdogConfigError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise WatchdogConfigError(
            [f"{path}: cannot read the watchdog configuration: {reason}"]
        ) from exc
    # 5.16 reads bytes; surrogateescape keeps any non-UTF-8 path byte for byte (os.fsencode).
    return parse(data.decode("utf-8", errors="surrogateescape"), str(path))


def check_parameters(cfg: WatchdogConfig, force: bool = False) -> list[str]:
    """5.16's start-up sanity checks (watchdog.c check_parameters), as problems to report;
    --force (`force`) skips them, except that interval must be positive (read_config)."""
    problems: list[str] = []
    if cfg.interval <= 0:
        problems.append(
            f"{cfg.source}: interval = {cfg.interval}: must be 1 or more seconds "
            "(--force does not change this)"
        )
    if force:
        return problems
    limit = cfg.watchdog_timeout - 1
    if cfg.interval >= limit:
        problems.append(
            f"{cfg.source}: interval = {cfg.interval} might let the watchdog device reset the "
            f"machine while the daemon sleeps: with watchdog-timeout = {cfg.watchdog_timeout} "
            f"the interval must be below {limit}, so {limit - 1} or less "
            "(--force skips this check)"
        )
    if 0 < cfg.max_load_1 < MIN_LOAD:
        problems.append(
            f"{cfg.source}: max-load-1 = {cfg.max_load_1} might reboot the machine too often: "
            f"allowed: {MIN_LOAD} or more, or 0 for no load check (--force skips this check)"
        )
    return problems


def discover_test_directory(cfg: WatchdogConfig) -> list[TestBinary]:
    """The version-1 tests: the regular files of cfg.test_directory (symbolic links followed)
    whose owner may read and execute them, hidden ones ('.' first) left out, as 5.16's
    add_test_binaries finds them. 5.16 takes readdir's order; these are sorted by name.
    A directory that is missing, not a directory or unreadable gives no test, as in 5.16."""
    directory = cfg.test_directory
    if not directory:
        return []
    try:
        if not stat.S_ISDIR(os.stat(directory).st_mode):
            return []
        names = sorted(entry.name for entry in os.scandir(directory))
    except OSError:
        return []
    found: list[TestBinary] = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            mode = os.stat(path).st_mode  # follows links; a dangling one is skipped
        except OSError:
            continue
        if not stat.S_ISREG(mode) or name.startswith("."):
            continue
        # the owner's bits, as 5.16 checks them, not access() for the caller
        if mode & stat.S_IXUSR and mode & stat.S_IRUSR:
            found.append(TestBinary(path, 1))
    return found
