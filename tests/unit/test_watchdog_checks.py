"""The watchdog's system checks as pure decisions (hastack.watchdog.checks): each check, each
code it gives, and the edges (exactly at a limit, a missing sensor, a first reading), against
the behaviour of watchdog 5.16's load.c, memory.c, temp.c, file_stat.c, pidfile.c, net.c,
iface.c and file_table.c."""

from __future__ import annotations

import errno
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.watchdog.checks import (
    ALLOC_MEMORY_OBJECT,
    FREE_MEMORY_OBJECT,
    LOAD_OBJECT,
    CheckResult,
    FileChangeCheck,
    InterfaceCheck,
    PingOutcome,
    TemperatureCheck,
    check_allocatable,
    check_file_table,
    check_load,
    check_memory,
    check_pidfile,
    check_ping,
    check_process_table,
    check_swap,
    load_limits,
    parse_loadavg,
    parse_net_dev,
    parse_pid,
    parse_temperature,
    warning_levels,
)
from hastack.watchdog.codes import (
    EINVMEM,
    EMAXLOAD,
    ENOCHANGE,
    ENOLOAD,
    EREBOOT,
    ETOOHOT,
    ETOOLONG,
    NOT_REPAIRABLE,
)

PAGE = 4096


def oserror(code: int) -> OSError:
    return OSError(code, "test")


def test_a_result_is_frozen_and_knows_ok() -> None:
    result = CheckResult("load", LOAD_OBJECT, 0, "fine")
    assert result.ok
    assert not CheckResult("load", LOAD_OBJECT, EMAXLOAD, "high").ok
    with pytest.raises(FrozenInstanceError):
        result.code = 1  # type: ignore[misc]


# ---- file table, process table ------------------------------------------------------------


def test_file_table_ok_and_errors() -> None:
    assert check_file_table(None).code == 0
    assert check_file_table(oserror(errno.EMFILE)).code == errno.EMFILE


def test_full_file_table_asks_for_a_reboot_as_5_16() -> None:
    result = check_file_table(oserror(errno.ENFILE))
    assert result.code == EREBOOT
    assert "ENFILE" in result.detail


def test_process_table() -> None:
    assert check_process_table(None).code == 0
    full = check_process_table(oserror(errno.EAGAIN))
    assert (full.check, full.code) == ("process-table", errno.EAGAIN)
    assert "EAGAIN" in full.detail


def test_a_timeout_without_errno_is_etoolong() -> None:
    assert check_process_table(TimeoutError()).code == ETOOLONG


# ---- load ---------------------------------------------------------------------------------


def test_load_limits_derive_5_and_15_from_1_as_5_16() -> None:
    assert load_limits(8, 0, 0) == (8, 6, 4)
    assert load_limits(9, 0, 0) == (9, 6, 4)  # integer division
    assert load_limits(8, 7, 0) == (8, 7, 4)
    assert load_limits(0, 5, 0) == (0, 5, 0)


def test_load_under_and_exactly_at_the_limit_is_ok() -> None:
    assert check_load("1.00 0.50 0.20 1/100 42\n", 2, 0, 0).code == 0
    at = check_load("2.99 1.00 1.00 1/100 42\n", 2, 0, 0)  # whole part 2, not over 2
    assert at.code == 0
    assert "2 1 1" in at.detail


@pytest.mark.parametrize(
    "text",
    ["3.00 0.00 0.00 1/1 1", "0.10 7.00 0.00 1/1 1", "0.10 0.20 5.00 1/1 1"],
)
def test_load_over_any_limit_is_emaxload(text: str) -> None:
    result = check_load(text, 2, 6, 4)  # 3 > 2, 7 > 6, 5 > 4
    assert (result.object, result.code) == (LOAD_OBJECT, EMAXLOAD)
    assert "higher than max-load 2 6 4" in result.detail


def test_load_over_a_derived_limit_is_emaxload() -> None:
    assert check_load("1.0 7.0 1.0 1/1 1", 8, 0, 0).code == EMAXLOAD  # max-load-5 = 6
    assert check_load("1.0 6.0 4.0 1/1 1", 8, 0, 0).code == 0


def test_load_limit_zero_is_no_limit() -> None:
    assert check_load("1.0 99.0 99.0 1/1 1", 0, 0, 4).code == EMAXLOAD
    assert check_load("99.0 99.0 1.0 1/1 1", 0, 0, 4).code == 0


@pytest.mark.parametrize("text", ["", "\n", "0.50 0.40", "abc def ghi jkl", "-1 2 3"])
def test_short_or_garbled_loadavg_is_enoload(text: str) -> None:
    assert check_load(text, 5, 0, 0).code == ENOLOAD


def test_unreadable_loadavg_is_its_errno() -> None:
    assert check_load(oserror(errno.EIO), 5, 0, 0).code == errno.EIO


@given(st.text())
def test_loadavg_parser_never_raises(text: str) -> None:
    result = check_load(text, 1, 0, 0)
    assert result.code in (0, EMAXLOAD, ENOLOAD)
    if parse_loadavg(text) is None:
        assert result.code == ENOLOAD


@given(st.lists(st.sampled_from(["0", "1.5", "x", " ", "\n", "\t", ".", "1.", "9" * 30, "/"])))
def test_loadavg_parser_never_raises_on_near_misses(parts: list[str]) -> None:
    assert check_load("".join(parts), 1, 0, 0).code in (0, EMAXLOAD, ENOLOAD)


# ---- memory -------------------------------------------------------------------------------

MEMINFO = """\
MemTotal:       24000000 kB
MemFree:            1000 kB
MemAvailable:    5000000 kB
Buffers:             200 kB
Cached:              300 kB
SwapCached:        99999 kB
SwapTotal:          4000 kB
SwapFree:           3000 kB
"""


def test_usable_memory_is_memfree_buffers_cached() -> None:
    # 1000 + 200 + 300 = 1500 kB: SwapCached and MemAvailable are not counted, as 5.16
    assert check_memory(MEMINFO, 375, PAGE).code == 0  # 375 pages = 1500 kB: at the limit
    low = check_memory(MEMINFO, 376, PAGE)
    assert (low.object, low.code) == (FREE_MEMORY_OBJECT, errno.ENOMEM)
    assert "1500 kB is less than min-memory 376 pages (1504 kB)" in low.detail


def test_memory_pages_follow_the_page_size() -> None:
    assert check_memory(MEMINFO, 23, 65536).code == 0  # 23 * 64 = 1472 kB
    assert check_memory(MEMINFO, 24, 65536).code == errno.ENOMEM  # 1536 kB


def test_missing_buffers_and_cached_count_as_zero_as_5_16() -> None:
    assert check_memory("MemFree: 1000 kB\n", 250, PAGE).code == 0
    assert check_memory("MemFree: 1000 kB\n", 251, PAGE).code == errno.ENOMEM


@pytest.mark.parametrize(
    "text",
    [
        "",
        "MemTotal: 100 kB\n",
        "MemFree: lots kB\n",
        "MemFree: 100 kB\nBuffers: -5 kB\n",
        "MemFree:\n",
    ],
)
def test_invalid_meminfo_is_einvmem(text: str) -> None:
    result = check_memory(text, 1, PAGE)
    assert result.code == EINVMEM
    assert "/proc/meminfo has no valid" in result.detail


def test_unreadable_meminfo_is_its_errno() -> None:
    assert check_memory(oserror(errno.EACCES), 1, PAGE).code == errno.EACCES
    assert check_swap(oserror(errno.EACCES), 1, PAGE).code == errno.EACCES


def test_swap_used_over_max_swap_is_enomem() -> None:
    # 4000 - 3000 = 1000 kB used = 250 pages
    assert check_swap(MEMINFO, 250, PAGE).code == 0  # at the limit
    over = check_swap(MEMINFO, 249, PAGE)
    assert (over.check, over.object, over.code) == ("swap", FREE_MEMORY_OBJECT, errno.ENOMEM)
    assert "swap used 1000 kB is more than max-swap 249 pages (996 kB)" in over.detail


def test_swap_without_its_fields_is_einvmem() -> None:
    assert check_swap("MemFree: 1 kB\nSwapTotal: 10 kB\n", 1, PAGE).code == EINVMEM


MEMINFO_WORDS = ["MemFree:", "Buffers:", "Cached:", "SwapTotal:", "SwapFree:", " kB", "12", "x"]


@given(st.text())
def test_meminfo_parser_never_raises(text: str) -> None:
    assert check_memory(text, 1, PAGE).code in (0, errno.ENOMEM, EINVMEM)
    assert check_swap(text, 1, PAGE).code in (0, errno.ENOMEM, EINVMEM)
    if "MemFree" not in text:
        assert check_memory(text, 1, PAGE).code == EINVMEM


@given(st.lists(st.sampled_from([*MEMINFO_WORDS, "\n", " ", ":", "\x00", "٣"])))
def test_meminfo_parser_never_raises_on_near_misses(parts: list[str]) -> None:
    text = "".join(parts)
    assert check_memory(text, 1, PAGE).code in (0, errno.ENOMEM, EINVMEM)
    assert check_swap(text, 1, PAGE).code in (0, errno.ENOMEM, EINVMEM)


def test_allocatable_memory() -> None:
    ok = check_allocatable(None, 10, PAGE)
    assert (ok.object, ok.code) == (ALLOC_MEMORY_OBJECT, 0)
    failed = check_allocatable(oserror(errno.ENOMEM), 10, PAGE)
    assert failed.code == errno.ENOMEM
    assert "40960 bytes" in failed.detail
    assert failed.code in NOT_REPAIRABLE  # as 5.16: out of memory is never repaired
    assert check_allocatable(TimeoutError(), 10, PAGE).code == ETOOLONG


# ---- temperature --------------------------------------------------------------------------


def test_warning_levels_are_90_95_98_percent_and_distinct() -> None:
    assert warning_levels(90) == (81, 85, 88)
    assert warning_levels(100) == (90, 95, 98)
    assert warning_levels(10) == (7, 8, 9)  # 9, 9, 9 pushed apart below the maximum


def test_temperatures_are_whole_degrees_from_millidegrees() -> None:
    assert parse_temperature("45500\n") == 45
    assert parse_temperature("89999") == 89
    assert parse_temperature("-2500") == -2
    assert parse_temperature("hot") is None
    assert parse_temperature("") is None
    assert parse_temperature("nan") is None


def test_too_hot_at_and_over_the_maximum() -> None:
    check = TemperatureCheck(90)
    assert check.decide("/s", "89999\n").code == 0
    at = check.decide("/s", "90000\n")
    assert (at.check, at.object, at.code) == ("temperature", "/s", ETOOHOT)
    assert "90 >= max-temperature 90" in at.detail
    assert check.decide("/s", "120000\n").code == ETOOHOT
    assert ETOOHOT in NOT_REPAIRABLE


def test_warnings_are_said_once_as_each_level_is_crossed() -> None:
    check = TemperatureCheck(90)  # levels 81, 85, 88
    said = [check.decide("/s", f"{t}000").warning for t in (50, 81, 82, 83, 86, 89, 86, 89, 50)]
    assert said == [
        None,
        None,  # 81 is not above 81
        "temperature 82 increases above 81 (/s)",
        None,
        "temperature 86 increases above 85 (/s)",
        "temperature 89 increases above 88 (/s)",
        None,  # down to level 2: no new warning
        "temperature 89 increases above 88 (/s)",  # back over 98 %: said again, as 5.16
        "temperature 50 now OK again for /s",
    ]


def test_a_missing_sensor_is_ignored_for_good_as_5_16() -> None:
    check = TemperatureCheck(90)
    first = check.decide("/gone", oserror(errno.ENOENT))
    assert first.code == 0
    assert first.warning is not None and "disabling temperature check for /gone" in first.warning
    assert "ENOENT" in first.warning
    assert check.decide("/gone", "99000").code == 0  # still left out once it appears
    assert check.decide("/gone", oserror(errno.ENOENT)).warning is None


def test_a_sensor_failing_later_is_its_errno() -> None:
    check = TemperatureCheck(90)
    assert check.decide("/s", "40000").code == 0
    assert check.decide("/s", oserror(errno.EIO)).code == errno.EIO
    assert check.decide("/s", "garbage").code == errno.EINVAL
    assert check.decide("/s", "40000").code == 0


def test_sensors_are_independent() -> None:
    check = TemperatureCheck(90)
    check.decide("/missing", oserror(errno.ENOENT))
    assert check.decide("/hot", "95000").code == ETOOHOT


# ---- files and pidfiles -------------------------------------------------------------------


def test_file_without_change_is_only_stat() -> None:
    files = FileChangeCheck()
    assert files.decide("/f", 0, 5, now=0.0).code == 0
    assert files.decide("/f", 0, 5, now=1000.0).code == 0
    missing = files.decide("/f", 0, oserror(errno.ENOENT), now=1001.0)
    assert (missing.object, missing.code) == ("/f", errno.ENOENT)


def test_file_not_changed_for_more_than_change_seconds_is_enochange() -> None:
    files = FileChangeCheck()
    assert files.decide("/f", 10, 111, now=100.0).code == 0  # first reading records
    assert files.decide("/f", 10, 111, now=110.9).code == 0  # exactly 10 whole seconds
    late = files.decide("/f", 10, 111, now=111.0)
    assert late.code == ENOCHANGE
    assert "not changed in 11 seconds (more than 10)" in late.detail
    assert files.decide("/f", 10, 222, now=112.0).code == 0  # changed: counting starts again
    assert files.decide("/f", 10, 222, now=122.5).code == 0
    assert files.decide("/f", 10, 222, now=123.0).code == ENOCHANGE


def test_file_stat_error_keeps_its_change_time() -> None:
    files = FileChangeCheck()
    files.decide("/f", 5, 1, now=0.0)
    assert files.decide("/f", 5, oserror(errno.EIO), now=3.0).code == errno.EIO
    assert files.decide("/f", 5, 1, now=6.0).code == ENOCHANGE


def test_file_stat_that_hangs_is_etoolong() -> None:
    assert FileChangeCheck().decide("/nfs/f", 0, TimeoutError(), now=0.0).code == ETOOLONG


def test_pid_parsing() -> None:
    assert parse_pid("1234\n") == 1234
    assert parse_pid("  77 extra") == 77
    for text in ("", "\n", "0", "-5", "abc", "١٢"):
        assert parse_pid(text) is None


def test_pidfile_codes() -> None:
    assert check_pidfile("/p", "1234\n", None).code == 0
    gone = check_pidfile("/p", "1234\n", errno.ESRCH)
    assert (gone.check, gone.object, gone.code) == ("pidfile", "/p", errno.ESRCH)
    assert "process 1234" in gone.detail
    assert check_pidfile("/p", "1234\n", errno.EPERM).code == errno.EPERM
    assert check_pidfile("/p", oserror(errno.ENOENT), None).code == errno.ENOENT


@pytest.mark.parametrize("text", ["", "0\n", "-1\n", "pid\n"])
def test_pidfile_without_a_pid_is_einval(text: str) -> None:
    # 5.16 would signal pid 0 (its own process group) and pass; hastack fails it
    assert check_pidfile("/p", text, None).code == errno.EINVAL


# ---- network ------------------------------------------------------------------------------


def test_ping_codes() -> None:
    ok = check_ping("10.0.0.1", PingOutcome(3, answered=2, rtt=0.0015))
    assert (ok.check, ok.object, ok.code) == ("ping", "10.0.0.1", 0)
    assert "answered ping 2 of 3 in 1.500 ms" in ok.detail
    silent = check_ping("10.0.0.1", PingOutcome(3))
    assert silent.code == errno.ENETUNREACH
    assert "no response from 10.0.0.1 to 3 pings" in silent.detail
    failed = check_ping("10.0.0.1", PingOutcome(3, failed_errno=errno.EHOSTUNREACH))
    assert failed.code == errno.EHOSTUNREACH
    assert check_ping("10.0.0.1", PingOutcome(0)).code == errno.EINVAL


NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets
    lo:    1000      10    0    0    0     0          0         0     1000      10
  eth1:     500       5    0    0    0     0          0         0        0       0
 eth10:123456789012    7    0    0    0     0          0         0        0       0
"""


def test_net_dev_parsing() -> None:
    assert parse_net_dev(NET_DEV) == {"lo": 1000, "eth1": 500, "eth10": 123456789012}


def test_interface_first_reading_records_then_unchanged_is_enetunreach() -> None:
    ifaces = InterfaceCheck()
    first = ifaces.decide("eth1", NET_DEV)
    assert (first.code, "first reading" in first.detail) == (0, True)
    same = ifaces.decide("eth1", NET_DEV)
    assert (same.check, same.object, same.code) == ("interface", "eth1", errno.ENETUNREACH)
    moved = ifaces.decide("eth1", NET_DEV.replace("   500", "   900"))
    assert moved.code == 0
    assert "received 400 bytes" in moved.detail


def test_interface_first_reading_of_zero_only_records() -> None:
    ifaces = InterfaceCheck()
    text = "  eth0:       0 0 0 0 0 0 0 0 0 0\n"
    assert ifaces.decide("eth0", text).code == 0
    assert ifaces.decide("eth0", text).code == errno.ENETUNREACH


def test_interface_names_match_whole() -> None:
    ifaces = InterfaceCheck()
    ifaces.decide("eth1", NET_DEV)
    # eth10 moving does not make eth1 move (5.16 matches a prefix)
    assert ifaces.decide("eth1", NET_DEV.replace("123456789012", "123456789999")).code != 0


def test_interface_not_listed_is_not_checked_as_5_16() -> None:
    ifaces = InterfaceCheck()
    for _ in range(2):
        result = ifaces.decide("wlan0", NET_DEV)
        assert result.code == 0
        assert "not in /proc/net/dev" in result.detail


def test_interface_bad_counter_and_unreadable() -> None:
    assert InterfaceCheck().decide("eth0", "eth0: lots 1 2\n").code == errno.EINVAL
    assert InterfaceCheck().decide("eth0", oserror(errno.ENOENT)).code == errno.ENOENT


@given(st.text())
def test_net_dev_parser_never_raises(text: str) -> None:
    ifaces = InterfaceCheck()
    for _ in range(2):
        assert ifaces.decide("eth0", text).code in (0, errno.ENETUNREACH, errno.EINVAL)
