"""watchdog.conf as watchdog 5.16 reads it (configfile.c, read-conf.c), with hastack's problems
instead of 5.16's warn-and-skip: every option, its default, repeats, change/file pairing, each
kind of problem with its FILE:LINE text, check_parameters, the test directory, Debian's file, the
man page's example, and fuzzing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hastack.watchdog.config import (
    WatchdogConfigError,
    check_parameters,
    discover_test_directory,
    load,
    parse,
)
from hastack.watchdog.model import TestBinary as UserTest
from hastack.watchdog.model import WatchdogConfig, WatchedFile, Where

SRC = "w.conf"


def problems_of(text: str) -> list[str]:
    with pytest.raises(WatchdogConfigError) as info:
        parse(text, SRC)
    return info.value.problems


# ---------------------------------------------------------------------------------- defaults


def test_an_empty_file_gives_5_16s_defaults() -> None:
    cfg = parse("", SRC)
    # the values of configfile.c's globals, written out here so that a wrong model default fails
    expected = {
        "watchdog_device": None,
        "watchdog_timeout": 60,
        "watchdog_refresh_use_settimeout": "auto",
        "watchdog_refresh_ignore_errors": False,
        "interval": 1,
        "logtick": 1,
        "verbose": 0,
        "realtime": False,
        "priority": 1,
        "max_load_1": 0,
        "max_load_5": 0,
        "max_load_15": 0,
        "min_memory": 0,
        "allocatable_memory": 0,
        "max_swap": 0,
        "temperature_sensors": [],
        "max_temperature": 90,
        "temp_power_off": True,
        "files": [],
        "pidfiles": [],
        "pings": [],
        "ping_count": 3,
        "interfaces": [],
        "test_binaries": [],
        "test_directory": "/etc/watchdog.d",
        "test_timeout": 60,
        "repair_binary": None,
        "repair_timeout": 60,
        "retry_timeout": 60,
        "repair_maximum": 1,
        "softboot_option": False,
        "admin": "root",
        "sigterm_delay": 5,
        "log_dir": "/var/log/watchdog",
        "heartbeat_file": None,
        "heartbeat_stamps": 300,
        "log_killed_pids": False,
        "notify_command": None,
        "reboot_command": "/sbin/reboot",
        "reset_command": "sysrq:b",
        "poweroff_command": "/sbin/poweroff",
        "state_dir": "/var/lib/hastack/watchdog",
        "cluster_socket": None,
        "warnings": [],
    }
    assert {k: getattr(cfg, k) for k in expected} == expected
    assert cfg.source == SRC
    assert cfg == WatchdogConfig(source=SRC)


def test_comments_and_blank_lines_only() -> None:
    text = "# a comment\n\n   \t# indented comment\n\r\n\t\n"
    assert parse(text, SRC) == WatchdogConfig(source=SRC)


# ----------------------------------------------------------------------------- every option

# (line, attribute, value): each a value different from the default
OPTIONS_5_16 = [
    ("admin = ops@example.org", "admin", "ops@example.org"),
    ("watchdog-device = /dev/watchdog1", "watchdog_device", "/dev/watchdog1"),
    ("watchdog-refresh-use-settimeout = yes", "watchdog_refresh_use_settimeout", "yes"),
    ("watchdog-refresh-ignore-errors = yes", "watchdog_refresh_ignore_errors", True),
    ("watchdog-timeout = 30", "watchdog_timeout", 30),
    ("interval = 10", "interval", 10),
    ("logtick = 60", "logtick", 60),
    ("max-load-1 = 24", "max_load_1", 24),
    ("max-load-5 = 20", "max_load_5", 20),
    ("max-load-15 = 15", "max_load_15", 15),
    ("max-temperature = 75", "max_temperature", 75),
    ("min-memory = 2560", "min_memory", 2560),
    ("allocatable-memory = 1024", "allocatable_memory", 1024),
    ("max-swap = 262144", "max_swap", 262144),
    ("ping-count = 5", "ping_count", 5),
    ("priority = 50", "priority", 50),
    ("realtime = yes", "realtime", True),
    ("repair-binary = /usr/sbin/repair", "repair_binary", "/usr/sbin/repair"),
    ("repair-timeout = 120", "repair_timeout", 120),
    ("temp-power-off = no", "temp_power_off", False),
    ("test-timeout = 0", "test_timeout", 0),
    ("heartbeat-file = /var/log/watchdog/hb", "heartbeat_file", "/var/log/watchdog/hb"),
    ("heartbeat-stamps = 50", "heartbeat_stamps", 50),
    ("log-dir = /srv/wdlog", "log_dir", "/srv/wdlog"),
    ("test-directory = /srv/tests", "test_directory", "/srv/tests"),
    ("sigterm-delay = 30", "sigterm_delay", 30),
    ("retry-timeout = 5", "retry_timeout", 5),
    ("repair-maximum = 0", "repair_maximum", 0),
    ("verbose = 2", "verbose", 2),
    ("log-killed-pids = yes", "log_killed_pids", True),
    ("softboot-option = yes", "softboot_option", True),
    ("pidfile = /run/rsyslogd.pid", "pidfiles", ["/run/rsyslogd.pid"]),
    ("ping = 192.0.2.1", "pings", ["192.0.2.1"]),
    ("interface = eth0", "interfaces", ["eth0"]),
    ("temperature-sensor = /sys/t1", "temperature_sensors", ["/sys/t1"]),
    ("file = /var/log/syslog", "files", [WatchedFile("/var/log/syslog", 0, Where(SRC, 1))]),
    ("test-binary = /usr/bin/t", "test_binaries", [UserTest("/usr/bin/t", 0, Where(SRC, 1))]),
]
OPTIONS_HASTACK = [
    ("notify-command = /usr/local/bin/page", "notify_command", "/usr/local/bin/page"),
    ("reboot-command = /bin/systemctl reboot", "reboot_command", "/bin/systemctl reboot"),
    (
        "reset-command = /usr/bin/ipmitool power reset",
        "reset_command",
        "/usr/bin/ipmitool power reset",
    ),
    ("poweroff-command = /bin/systemctl poweroff", "poweroff_command", "/bin/systemctl poweroff"),
    ("state-dir = /srv/state", "state_dir", "/srv/state"),
    ("cluster-socket = /run/hastack.sock", "cluster_socket", "/run/hastack.sock"),
]


@pytest.mark.parametrize(("line", "attr", "value"), OPTIONS_5_16 + OPTIONS_HASTACK)
def test_each_option_is_read(line: str, attr: str, value: object) -> None:
    cfg = parse(line + "\n", SRC)
    assert getattr(cfg, attr) == value
    assert getattr(WatchdogConfig(), attr) != value  # the test says something
    assert cfg.warnings == []


def test_the_table_covers_every_option_of_5_16_and_of_hastack() -> None:
    names = {line.split("=")[0].strip() for line, _, _ in OPTIONS_5_16}
    names.add("change")  # tested with file below
    assert names == {
        *["admin", "change", "watchdog-device", "watchdog-refresh-use-settimeout"],
        *["watchdog-refresh-ignore-errors", "watchdog-timeout", "file", "interface", "interval"],
        *["logtick", "max-load-1", "max-load-5", "max-load-15", "max-temperature", "min-memory"],
        *[
            "allocatable-memory",
            "max-swap",
            "pidfile",
            "ping",
            "ping-count",
            "priority",
            "realtime",
        ],
        *["repair-binary", "repair-timeout", "softboot-option", "temperature-sensor"],
        *["temp-power-off", "test-binary", "test-timeout", "heartbeat-file", "heartbeat-stamps"],
        *[
            "log-dir",
            "test-directory",
            "sigterm-delay",
            "retry-timeout",
            "repair-maximum",
            "verbose",
        ],
        "log-killed-pids",
    }
    assert len(names) == 38


def test_all_options_in_one_file() -> None:
    lines = [line for line, _, _ in OPTIONS_5_16 + OPTIONS_HASTACK]
    cfg = parse("\n".join(lines), SRC)
    for line, attr, value in OPTIONS_5_16 + OPTIONS_HASTACK:
        if attr in ("files", "test_binaries"):  # their Where is their line in this file
            assert [x.path for x in getattr(cfg, attr)] == [x.path for x in value]  # type: ignore[attr-defined]
        elif attr != "retry_timeout":
            assert getattr(cfg, attr) == value, line
    assert cfg.retry_timeout == 0  # softboot-option = yes wins over retry-timeout = 5
    retry = lines.index("retry-timeout = 5") + 1
    softboot = lines.index("softboot-option = yes") + 1
    assert cfg.warnings == [
        f"{SRC}:{retry}: retry-timeout has no effect: softboot-option = yes sets it to 0 "
        f"(line {softboot})"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", "yes"), ("no", "no"), ("auto", "auto"), ("AUTO", "auto"), ("No", "no")],
)
def test_refresh_use_settimeout_takes_auto(value: str, expected: str) -> None:
    text = f"watchdog-refresh-use-settimeout = {value}"
    assert parse(text, SRC).watchdog_refresh_use_settimeout == expected


@pytest.mark.parametrize(("value", "expected"), [("YES", True), ("Yes", True), ("nO", False)])
def test_yes_no_is_case_insensitive_as_strcasecmp(value: str, expected: bool) -> None:
    assert parse(f"realtime = {value}", SRC).realtime is expected


# ----------------------------------------------------------------------------- the syntax


def test_blanks_around_name_and_value_are_trimmed() -> None:
    cfg = parse("\t  interval\t=   7 \t\r\nadmin=ops\b\n", SRC)
    assert cfg.interval == 7
    assert cfg.admin == "ops"  # backspace is white space to read-conf.c


def test_crlf_line_ends() -> None:
    cfg = parse("interval = 3\r\nfile = /a\r\nchange = 9\r\n", SRC)
    assert cfg.interval == 3 and cfg.files == [WatchedFile("/a", 9, Where(SRC, 2))]


def test_a_hash_after_the_equals_sign_is_part_of_a_string_value() -> None:
    cfg = parse("admin = root # the admin\nfile = /a=b\n", SRC)
    assert cfg.admin == "root # the admin"
    assert cfg.files[0].path == "/a=b"  # split at the first '='


def test_form_feed_is_not_white_space_to_5_16() -> None:
    assert problems_of("\finterval = 3") == [
        f"{SRC}:1: unknown option '\\x0cinterval'; did you mean 'interval'?"
    ]


def test_line_numbers_count_lines_as_getline_does() -> None:
    # \x0b and \x1c would be line ends for str.splitlines, not for getline: one line here
    assert problems_of("# one\n\ninterval\x0b= 3") == [
        f"{SRC}:3: unknown option 'interval\\x0b'; did you mean 'interval'?"
    ]


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5), ("+5", 5), ("0005", 5), ("0" * 60 + "42", 42), ("2147483647", 2147483647)],
)
def test_numbers(value: str, expected: int) -> None:
    cfg = parse(f"max-swap = {value}", SRC)
    assert cfg.max_swap == expected and cfg.warnings == []


@pytest.mark.parametrize(
    ("value", "expected", "rest"),
    [("10 # seconds", 10, "# seconds"), ("1.5", 1, ".5"), ("0x10", 0, "x10"), ("7s", 7, "s")],
)
def test_trailing_text_after_a_number_is_ignored_with_a_warning(
    value: str, expected: int, rest: str
) -> None:
    cfg = parse(f"\nlogtick = {value}", SRC)
    assert cfg.logtick == expected  # atoi's reading
    assert cfg.warnings == [
        f"{SRC}:2: logtick = {value!r}: read as {expected}, {rest!r} ignored (as 5.16 does)"
    ]


@pytest.mark.parametrize("value", ["abc", "", "-", "+", "+x", "--5", " ٣", "²"])
def test_not_a_number(value: str) -> None:
    assert problems_of(f"ping-count = {value}") == [
        f"{SRC}:1: ping-count = {value.strip()!r}: a whole number expected; "
        "allowed: 1 or more pings per interval"
    ]


@pytest.mark.parametrize("value", ["2147483648", "-2147483649", "9" * 5000])
def test_a_number_out_of_cs_int_range(value: str) -> None:
    (problem,) = problems_of(f"verbose = {value}")
    assert problem.startswith(f"{SRC}:1: verbose = ")
    assert "is out of range (-2147483648 to 2147483647); allowed: 0 or more" in problem


@pytest.mark.parametrize(
    ("line", "allowed"),
    [
        ("interval = 0", "1 or more seconds"),
        ("interval = -1", "1 or more seconds"),
        ("ping-count = 0", "1 or more pings per interval"),
        ("heartbeat-stamps = 0", "1 or more stamps"),
        ("watchdog-timeout = -1", "0 or more seconds (0: keep the driver's own timeout)"),
        ("test-timeout = -1", "0 or more seconds (0: no limit)"),
        ("repair-timeout = -5", "0 or more seconds (0: no limit)"),
        ("retry-timeout = -1", "0 or more seconds (0: act at once)"),
        ("repair-maximum = -1", "0 or more (0: no limit)"),
        ("sigterm-delay = -1", "0 or more seconds"),
        ("max-temperature = 0", "1 or more degrees Celsius"),
        ("max-load-1 = -2", "0 or more (0: no load check)"),
        ("min-memory = -1", "0 or more pages (0: no check)"),
        ("logtick = -1", "0 or more intervals (0: no periodic message)"),
        ("verbose = -1", "0 or more"),
    ],
)
def test_values_that_make_no_sense_are_problems(line: str, allowed: str) -> None:
    name, value = (part.strip() for part in line.split("="))
    assert problems_of(line) == [f"{SRC}:1: {name} = {value}: too small; allowed: {allowed}"]


def test_zero_is_allowed_where_it_means_something() -> None:
    text = "watchdog-timeout = 0\ntest-timeout = 0\nretry-timeout = 0\nlogtick = 0\n"
    cfg = parse(text, SRC)
    assert (cfg.watchdog_timeout, cfg.test_timeout, cfg.retry_timeout, cfg.logtick) == (0, 0, 0, 0)


# ----------------------------------------------------------------------------- blanks


def test_a_blank_string_disables_what_it_can() -> None:
    text = "watchdog-device = /dev/watchdog\nwatchdog-device =\nadmin =\nrepair-binary =\n"
    text += "heartbeat-file=\ntest-directory =\nnotify-command =\ncluster-socket = \n"
    cfg = parse(text, SRC)
    assert cfg.watchdog_device is None
    assert cfg.admin == ""  # no mail, as watchdog.conf(5) says
    assert cfg.repair_binary is None and cfg.heartbeat_file is None
    assert cfg.test_directory == ""
    assert discover_test_directory(cfg) == []
    assert cfg.notify_command is None and cfg.cluster_socket is None
    assert cfg.warnings == [
        f"{SRC}:2: watchdog-device is given again; this line wins, as in watchdog 5.16 "
        "(also at line 1)"
    ]


@pytest.mark.parametrize(
    "name", ["log-dir", "reboot-command", "reset-command", "poweroff-command", "state-dir"]
)
def test_a_blank_where_nothing_can_be_disabled_is_a_problem(name: str) -> None:
    assert problems_of(f"\n{name} =") == [f"{SRC}:2: {name} is blank; it needs a value"]


@pytest.mark.parametrize("name", ["realtime", "softboot-option", "watchdog-refresh-use-settimeout"])
def test_a_blank_enumeration_is_a_problem(name: str) -> None:
    choices = "yes or no or auto" if "settimeout" in name else "yes or no"
    assert problems_of(f"{name} =") == [f"{SRC}:1: {name} = '': allowed: {choices} (any case)"]


def test_a_blank_repeating_option_adds_nothing_with_a_warning() -> None:
    cfg = parse("test-binary =\ntest-binary = /t\ntest-binary =\ntemperature-sensor =\n", SRC)
    assert cfg.test_binaries == [UserTest("/t", 0, Where(SRC, 2))]
    assert cfg.temperature_sensors == []
    assert cfg.warnings == [
        f"{SRC}:1: test-binary is blank: nothing added",
        f"{SRC}:3: test-binary is blank: nothing added "
        "(the test-binary lines before it still count)",
        f"{SRC}:4: temperature-sensor is blank: nothing added",
    ]


# ----------------------------------------------------------------------------- repeats


def test_repeating_options_append_in_order() -> None:
    text = """\
file = /var/log/syslog
pidfile = /run/a.pid
ping = 192.0.2.1
interface = eth0
temperature-sensor = /sys/t1
test-binary = /usr/bin/t1
file = /var/log/messages
pidfile = /run/b.pid
ping = 198.51.100.7
interface = eth1
temperature-sensor = /sys/t2
test-binary = /usr/bin/t2
"""
    cfg = parse(text, SRC)
    assert [f.path for f in cfg.files] == ["/var/log/syslog", "/var/log/messages"]
    assert [f.where for f in cfg.files] == [Where(SRC, 1), Where(SRC, 7)]
    assert cfg.pidfiles == ["/run/a.pid", "/run/b.pid"]
    assert cfg.pings == ["192.0.2.1", "198.51.100.7"]
    assert cfg.interfaces == ["eth0", "eth1"]
    assert cfg.temperature_sensors == ["/sys/t1", "/sys/t2"]
    assert cfg.test_binaries == [
        UserTest("/usr/bin/t1", 0, Where(SRC, 6)),
        UserTest("/usr/bin/t2", 0, Where(SRC, 12)),
    ]
    assert cfg.warnings == []


def test_an_option_given_twice_last_wins_with_a_warning() -> None:
    cfg = parse("interval = 2\nrealtime = yes\ninterval = 3\ninterval = 4\nrealtime = no", SRC)
    assert cfg.interval == 4 and cfg.realtime is False
    assert cfg.warnings == [
        f"{SRC}:3: interval is given again; this line wins, as in watchdog 5.16 (also at line 1)",
        f"{SRC}:4: interval is given again; this line wins, as in watchdog 5.16 "
        "(also at lines 1, 3)",
        f"{SRC}:5: realtime is given again; this line wins, as in watchdog 5.16 (also at line 2)",
    ]


# ----------------------------------------------------------------------------- change and file


def test_change_applies_to_the_most_recent_file() -> None:
    text = "file = /a\nchange = 100\nfile = /b\nfile = /c\ninterval = 2\nchange = 300\n"
    cfg = parse(text, SRC)
    assert cfg.files == [
        WatchedFile("/a", 100, Where(SRC, 1)),
        WatchedFile("/b", 0, Where(SRC, 3)),
        WatchedFile("/c", 300, Where(SRC, 4)),
    ]


def test_change_twice_for_one_file_last_wins_with_a_warning() -> None:
    cfg = parse("file = /a\nchange = 1\nchange = 2\n", SRC)
    assert cfg.files == [WatchedFile("/a", 2, Where(SRC, 1))]
    assert cfg.warnings == [
        f"{SRC}:3: change is given again for file /a; this line wins, as in watchdog 5.16 "
        "(also at line 2)"
    ]


def test_change_before_any_file_is_a_problem() -> None:
    assert problems_of("interval = 2\nchange = 60\nfile = /a\n") == [
        f"{SRC}:2: change = 60 comes before any 'file =' line; change applies to the file above it"
    ]


def test_change_must_be_a_number() -> None:
    assert problems_of("file = /a\nchange = soon") == [
        f"{SRC}:2: change = 'soon': a whole number expected; "
        "allowed: 0 or more seconds (0: only check the file exists)"
    ]


# ----------------------------------------------------------------------------- derived values


@pytest.mark.parametrize(
    ("text", "loads"),
    [
        ("max-load-1 = 24", (24, 18, 12)),
        ("max-load-1 = 25", (25, 18, 12)),  # C's integer division
        ("max-load-1 = 24\nmax-load-5 = 20", (24, 20, 12)),
        ("max-load-15 = 9\nmax-load-1 = 24", (24, 18, 9)),
        ("max-load-1 = 24\nmax-load-5 = 0", (24, 18, 12)),  # 0 is "not given" to 5.16
        ("max-load-5 = 7", (0, 7, 0)),
    ],
)
def test_max_load_5_and_15_default_from_max_load_1(text: str, loads: tuple[int, int, int]) -> None:
    cfg = parse(text, SRC)
    assert (cfg.max_load_1, cfg.max_load_5, cfg.max_load_15) == loads


def test_softboot_option_means_retry_timeout_0() -> None:
    assert parse("softboot-option = yes", SRC).retry_timeout == 0
    assert parse("softboot-option = no", SRC).retry_timeout == 60
    cfg = parse("retry-timeout = 30\nsoftboot-option = yes", SRC)
    assert cfg.retry_timeout == 0
    assert cfg.warnings == [
        f"{SRC}:1: retry-timeout has no effect: softboot-option = yes sets it to 0 (line 2)"
    ]


@pytest.mark.parametrize("priority", ["1", "50", "99"])
def test_priority_within_sched_rr_with_realtime(priority: str) -> None:
    assert parse(f"realtime = yes\npriority = {priority}", SRC).priority == int(priority)


@pytest.mark.parametrize("priority", ["0", "100", "-3"])
def test_priority_outside_sched_rr_with_realtime_is_a_problem(priority: str) -> None:
    assert problems_of(f"priority = {priority}\nrealtime = yes") == [
        f"{SRC}:1: priority = {priority}: with realtime = yes allowed: 1 to 99 "
        "(SCHED_RR's priorities)"
    ]


def test_priority_is_not_checked_without_realtime() -> None:
    # 5.16 only hands it to sched_setscheduler when realtime = yes
    assert parse("priority = 0\nrealtime = no", SRC).priority == 0


# ----------------------------------------------------------------------------- problems


def test_no_equals_sign() -> None:
    assert problems_of("interval 5") == [
        f"{SRC}:1: no '=' in 'interval 5': expected 'name = value'"
    ]


def test_unknown_options() -> None:
    assert problems_of("Interval = 5\nping_count = 3\nfrobnicate = 1\n= 4") == [
        f"{SRC}:1: unknown option 'Interval'; did you mean 'interval'?",
        f"{SRC}:2: unknown option 'ping_count'; did you mean 'ping-count'?",
        f"{SRC}:3: unknown option 'frobnicate' (see watchdog.conf(5))",
        f"{SRC}:4: no option name before the '='",
    ]


@pytest.mark.parametrize("value", ["true", "on", "1", "yes please"])
def test_a_value_outside_the_enumeration(value: str) -> None:
    assert problems_of(f"temp-power-off = {value}") == [
        f"{SRC}:1: temp-power-off = {value!r}: allowed: yes or no (any case)"
    ]


@pytest.mark.parametrize(
    "value", ["gateway.example.org", "::1", "10.1", "192.0.2.256", "1.2.3.4/24"]
)
def test_ping_needs_an_ipv4_address(value: str) -> None:
    assert problems_of(f"ping = {value}") == [
        f"{SRC}:1: ping = {value!r}: an IPv4 address such as 192.0.2.1 expected "
        "(watchdog 5.16 pings IPv4 addresses only, no names)"
    ]


def test_a_nul_character() -> None:
    assert problems_of("admin = ro\0ot") == [f"{SRC}:1: a NUL character; watchdog.conf is text"]


def test_every_problem_is_reported_and_nothing_is_applied() -> None:
    text = """\
# a file with many mistakes
interval = 5
change = 10
realtime = maybe
ping = router
interval = soon
max-load-1 -> 3
verbose = 1
watchdog-timeout = -60
"""
    with pytest.raises(WatchdogConfigError) as info:
        parse(text, SRC)
    expected = [
        f"{SRC}:3: change = 10 comes before any 'file =' line; change applies to the file above it",
        f"{SRC}:4: realtime = 'maybe': allowed: yes or no (any case)",
        f"{SRC}:5: ping = 'router': an IPv4 address such as 192.0.2.1 expected "
        "(watchdog 5.16 pings IPv4 addresses only, no names)",
        f"{SRC}:6: interval = 'soon': a whole number expected; allowed: 1 or more seconds",
        f"{SRC}:7: no '=' in 'max-load-1 -> 3': expected 'name = value'",
        f"{SRC}:9: watchdog-timeout = -60: too small; "
        "allowed: 0 or more seconds (0: keep the driver's own timeout)",
    ]
    assert info.value.problems == expected
    assert str(info.value) == "\n".join(expected)


# ----------------------------------------------------------------------------- load


def test_load_reads_a_file_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "watchdog.conf"
    path.write_text("interval = 4\ninterval = 5\n")
    cfg = load(path)
    assert cfg.source == str(path) and cfg.interval == 5
    assert cfg.warnings[0].startswith(f"{path}:2: interval is given again")
    path.write_text("interval = x\n")
    with pytest.raises(WatchdogConfigError) as info:
        load(str(path))
    assert info.value.problems[0].startswith(f"{path}:1: interval = 'x'")


def test_load_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.conf"
    with pytest.raises(WatchdogConfigError) as info:
        load(path)
    assert info.value.problems == [
        f"{path}: cannot read the watchdog configuration: No such file or directory"
    ]


def test_load_a_directory(tmp_path: Path) -> None:
    with pytest.raises(WatchdogConfigError) as info:
        load(tmp_path)
    assert info.value.problems == [
        f"{tmp_path}: cannot read the watchdog configuration: Is a directory"
    ]


def test_load_keeps_non_utf8_bytes_of_a_path(tmp_path: Path) -> None:
    path = tmp_path / "watchdog.conf"
    path.write_bytes(b"file = /var/log/caf\xe9.log\n")
    cfg = load(path)
    assert os.fsencode(cfg.files[0].path) == b"/var/log/caf\xe9.log"


# ----------------------------------------------------------------------------- check_parameters


def test_check_parameters_passes_the_defaults() -> None:
    assert check_parameters(WatchdogConfig(source=SRC)) == []


def test_check_parameters_interval_against_the_device_timeout() -> None:
    assert check_parameters(WatchdogConfig(source=SRC, interval=58, watchdog_timeout=60)) == []
    cfg = WatchdogConfig(source=SRC, interval=59, watchdog_timeout=60)
    assert check_parameters(cfg) == [
        f"{SRC}: interval = 59 might let the watchdog device reset the machine while the daemon "
        "sleeps: with watchdog-timeout = 60 the interval must be below 59, so 58 or less "
        "(--force skips this check)"
    ]
    assert check_parameters(cfg, force=True) == []
    # 0 keeps the driver's timeout; 5.16 compares against it all the same
    assert len(check_parameters(WatchdogConfig(source=SRC, watchdog_timeout=0))) == 1


def test_check_parameters_max_load_1_below_the_minimum() -> None:
    cfg = WatchdogConfig(source=SRC, max_load_1=1)
    assert check_parameters(cfg) == [
        f"{SRC}: max-load-1 = 1 might reboot the machine too often: allowed: 2 or more, "
        "or 0 for no load check (--force skips this check)"
    ]
    assert check_parameters(cfg, force=True) == []
    assert check_parameters(WatchdogConfig(source=SRC, max_load_1=2)) == []


def test_check_parameters_reports_both_and_interval_0_even_with_force() -> None:
    cfg = WatchdogConfig(source=SRC, interval=0, max_load_1=1, watchdog_timeout=1)
    problems = check_parameters(cfg)
    assert len(problems) == 3
    assert check_parameters(cfg, force=True) == [
        f"{SRC}: interval = 0: must be 1 or more seconds (--force does not change this)"
    ]


# ----------------------------------------------------------------------------- test directory


def test_discover_test_directory(tmp_path: Path) -> None:
    def make(name: str, mode: int) -> Path:
        path = tmp_path / name
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(mode)
        return path

    make("b-test", 0o755)
    make("a-test", 0o700)
    make("not-executable", 0o644)
    make(".hidden", 0o755)
    make("group-only", 0o650)  # 5.16 looks at the owner's bits only
    make("execute-only", 0o100)  # and wants the owner's read bit too
    (tmp_path / "subdir").mkdir(mode=0o755)
    (tmp_path / "subdir" / "nested").write_text("#!/bin/sh\n")
    (tmp_path / "subdir" / "nested").chmod(0o755)
    (tmp_path / "c-link").symlink_to(tmp_path / "b-test")  # stat follows it
    (tmp_path / "d-dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "fifo")
    cfg = WatchdogConfig(test_directory=str(tmp_path))
    assert discover_test_directory(cfg) == [
        UserTest(str(tmp_path / "a-test"), 1),
        UserTest(str(tmp_path / "b-test"), 1),
        UserTest(str(tmp_path / "c-link"), 1),
    ]


def test_discover_a_missing_directory_is_no_tests(tmp_path: Path) -> None:
    assert discover_test_directory(WatchdogConfig(test_directory=str(tmp_path / "no"))) == []
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert discover_test_directory(WatchdogConfig(test_directory=str(a_file))) == []
    assert discover_test_directory(WatchdogConfig(test_directory=str(tmp_path))) == []


# ----------------------------------------------------------------------------- real files


def test_debians_watchdog_conf() -> None:
    path = Path("/etc/watchdog.conf")
    if not path.is_file():
        pytest.skip("/etc/watchdog.conf is absent: Debian's watchdog package is not installed")
    cfg = load(path)
    assert cfg == WatchdogConfig(source=str(path), realtime=True, priority=1)


def test_the_man_page_example() -> None:
    # watchdog(8): "to change to 75C maximum and to check two virtual files"
    text = """\
max-temperature = 75
temperature-sensor = /sys/class/hwmon/hwmon0/device/temp1_input
temperature-sensor = /sys/class/hwmon/hwmon0/device/temp2_input
"""
    cfg = parse(text, SRC)
    assert cfg.max_temperature == 75
    assert cfg.temperature_sensors == [
        "/sys/class/hwmon/hwmon0/device/temp1_input",
        "/sys/class/hwmon/hwmon0/device/temp2_input",
    ]
    assert cfg.warnings == []


# ----------------------------------------------------------------------------- fuzzing

VALID = """\
# a full watchdog.conf
watchdog-device = /dev/watchdog
watchdog-timeout = 60
watchdog-refresh-use-settimeout = auto
interval = 10
realtime = yes
priority = 1
max-load-1 = 24
file = /var/log/syslog
change = 1407
ping = 192.0.2.1
pidfile = /run/rsyslogd.pid
test-binary = /usr/local/bin/check
softboot-option = no
admin =
"""
WORDS = [*VALID.split(), "#", "=", "==", "-", "+", "\t", "\r", "\b", "\0", "yes", "auto", "9" * 30]


def _parses_or_config_error(text: str) -> None:
    try:
        cfg = parse(text, SRC)
    except WatchdogConfigError as exc:
        assert exc.problems
        assert all(p.startswith(f"{SRC}:") for p in exc.problems)
        return
    assert isinstance(cfg, WatchdogConfig)
    assert cfg.interval >= 1
    assert all(w.startswith(f"{SRC}:") for w in cfg.warnings)


def test_the_valid_file_is_valid() -> None:
    assert parse(VALID, SRC).warnings == []


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_random_text(text: str) -> None:
    _parses_or_config_error(text)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=6), max_size=12))
def test_random_lines_of_words(lines: list[list[str]]) -> None:
    _parses_or_config_error("\n".join(" ".join(words) for words in lines))


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    """The base file with a few lines deleted, duplicated, replaced or garbled."""
    lines = base.split("\n")
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "words", "text", "splice", "truncate"]))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "words":
            lines[i] = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=7)))
        elif op == "text":
            lines[i] = draw(st.text(max_size=40))
        elif op == "splice":
            words = lines[i].split(" ")
            j = draw(st.integers(0, len(words) - 1))
            words[j] = draw(st.sampled_from(WORDS) | st.text(max_size=12))
            lines[i] = " ".join(words)
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    return "\n".join(lines)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(VALID))
def test_mutated_valid_file(text: str) -> None:
    _parses_or_config_error(text)
