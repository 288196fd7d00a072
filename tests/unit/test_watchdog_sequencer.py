"""The retry / repair / action sequence, against a simulated clock (5.16's watchdog.c rules)."""

from __future__ import annotations

import errno

import pytest

from hastack.watchdog import codes
from hastack.watchdog.sequencer import (
    LOAD_OBJECT,
    Act,
    Fine,
    Repair,
    Retrying,
    Sequencer,
    action_kind,
)

PID = ("pidfile", "/run/x.pid")
REPAIR = "/usr/local/sbin/repair"


def judge(seq: Sequencer, now: float, code: int, key: tuple[str, str] = PID, version: int = 0):
    return seq.judge(now, key[0], key[1], code, version)


def test_failure_within_retry_timeout_is_retrying_then_repaired_after_it() -> None:
    seq = Sequencer(retry_timeout=60, repair_maximum=1, repair_binary=REPAIR)
    assert judge(seq, 100, errno.ESRCH) == Retrying(100, errno.ESRCH, PID)
    assert judge(seq, 130, errno.ESRCH) == Retrying(100, errno.ESRCH, PID)
    # 5.16 needs strictly more than retry-timeout seconds
    assert judge(seq, 160, errno.ESRCH) == Retrying(100, errno.ESRCH, PID)
    decision = judge(seq, 161, errno.ESRCH)
    assert decision == Repair(PID, [REPAIR, str(errno.ESRCH), "/run/x.pid"], errno.ESRCH, 1)


def test_success_clears_the_retry_timer() -> None:
    seq = Sequencer(retry_timeout=10, repair_maximum=1, repair_binary=REPAIR)
    assert isinstance(judge(seq, 0, errno.ESRCH), Retrying)
    assert judge(seq, 5, 0) == Fine()
    # the timer starts again from the next failure, not from t=0
    assert judge(seq, 11, errno.ESRCH) == Retrying(11, errno.ESRCH, PID)
    assert isinstance(judge(seq, 21, errno.ESRCH), Retrying)
    assert isinstance(judge(seq, 22, errno.ESRCH), Repair)


def test_repair_that_works_and_a_success_clear_the_repair_count() -> None:
    seq = Sequencer(retry_timeout=0, repair_maximum=1, repair_binary=REPAIR)
    first = judge(seq, 0, errno.ESRCH)
    assert isinstance(first, Repair) and first.attempt == 1
    assert seq.repaired(1, PID, 0) == Fine()
    assert judge(seq, 2, 0) == Fine()
    (state,) = seq.snapshot()
    assert state.repairs == 0 and state.failing_since is None and state.last_code == 0
    again = judge(seq, 3, errno.ESRCH)
    assert isinstance(again, Repair) and again.attempt == 1


def test_repairs_that_do_not_clear_the_fault_act_after_repair_maximum() -> None:
    seq = Sequencer(retry_timeout=10, repair_maximum=2, repair_binary=REPAIR)
    assert isinstance(judge(seq, 0, errno.ESRCH), Retrying)
    first = judge(seq, 11, errno.ESRCH)
    assert isinstance(first, Repair) and first.attempt == 1
    assert seq.repaired(12, PID, 0) == Fine()
    # each repair gets a fresh retry period
    assert judge(seq, 13, errno.ESRCH) == Retrying(13, errno.ESRCH, PID)
    second = judge(seq, 24, errno.ESRCH)
    assert isinstance(second, Repair) and second.attempt == 2
    assert seq.repaired(25, PID, 0) == Fine()
    assert isinstance(judge(seq, 26, errno.ESRCH), Retrying)
    act = judge(seq, 37, errno.ESRCH)
    assert isinstance(act, Act)
    assert (act.kind, act.code, act.check, act.object) == ("reboot", errno.ESRCH, *PID)
    assert "repair-maximum 2" in act.reason and "/run/x.pid" in act.reason
    (state,) = seq.snapshot()
    assert state.repairs == 2 and state.denied and state.failing_since == 0


def test_repair_maximum_zero_is_unlimited_and_keeps_the_retry_timer_running() -> None:
    seq = Sequencer(retry_timeout=10, repair_maximum=0, repair_binary=REPAIR)
    assert isinstance(judge(seq, 0, errno.ESRCH), Retrying)
    attempts = []
    for now in range(11, 111):
        decision = judge(seq, now, errno.ESRCH)
        # 5.16 does not restart the timer when repairs are not counted: every failure past
        # the first retry-timeout is repaired at once
        assert isinstance(decision, Repair), decision
        attempts.append(decision.attempt)
        assert seq.repaired(now, PID, 0) == Fine()
    assert attempts == list(range(1, 101))


def test_repair_failure_acts_with_the_repair_code() -> None:
    seq = Sequencer(retry_timeout=0, repair_maximum=1, repair_binary=REPAIR)
    repair = judge(seq, 0, errno.ESRCH)
    assert isinstance(repair, Repair)
    act = seq.repaired(1, repair.key, codes.ETOOLONG)
    assert isinstance(act, Act)
    assert (act.kind, act.code, act.object) == ("reboot", codes.ETOOLONG, "/run/x.pid")
    assert "repair binary returned 247" in act.reason
    # a repair binary may ask for a hard reset
    assert seq.repaired(2, repair.key, codes.ERESET).kind == "reset"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (codes.EREBOOT, "reboot"),
        (codes.ERESET, "reset"),
        (codes.ETOOHOT, "poweroff"),
        (errno.ENOMEM, "reboot"),
    ],
)
def test_not_repairable_codes_act_at_once(code: int, kind: str) -> None:
    seq = Sequencer(retry_timeout=60, repair_maximum=1, repair_binary=REPAIR)
    act = judge(seq, 0, code)
    assert isinstance(act, Act)
    assert (act.kind, act.code) == (kind, code)
    assert "not repairable" in act.reason


def test_too_hot_halts_when_temp_power_off_is_no() -> None:
    seq = Sequencer(60, 1, REPAIR, temp_power_off=False)
    act = seq.judge(0, "temperature", "/sys/class/hwmon/hwmon0/temp1_input", codes.ETOOHOT)
    assert isinstance(act, Act) and act.kind == "halt"
    assert action_kind(codes.ETOOHOT) == "poweroff"
    assert action_kind(codes.EMAXLOAD) == "reboot"


def test_still_running_changes_nothing() -> None:
    seq = Sequencer(retry_timeout=10, repair_maximum=1, repair_binary=REPAIR)
    key = ("test-binary", "/usr/local/bin/t")
    assert isinstance(judge(seq, 0, errno.EIO, key), Retrying)
    # 245 neither clears the timer nor counts as a failure
    assert judge(seq, 5, codes.EDONTKNOW, key) == Fine()
    assert judge(seq, 50, codes.EDONTKNOW, key) == Fine()
    (state,) = seq.snapshot()
    assert (state.retry_since, state.last_code) == (0, errno.EIO)
    assert isinstance(judge(seq, 51, errno.EIO, key), Repair)


def test_retry_timeout_zero_repairs_at_once() -> None:
    seq = Sequencer(retry_timeout=0, repair_maximum=1, repair_binary=REPAIR)
    decision = judge(seq, 0, codes.ENOCHANGE, ("file", "/var/log/x"))
    assert decision == Repair(
        ("file", "/var/log/x"), [REPAIR, "250", "/var/log/x"], codes.ENOCHANGE, 1
    )


def test_test_directory_binary_repairs_itself() -> None:
    seq = Sequencer(retry_timeout=0, repair_maximum=1, repair_binary=None)
    path = "/etc/watchdog.d/check-disk"
    decision = judge(seq, 0, codes.EUSERVALUE, ("test-binary", path), version=1)
    assert isinstance(decision, Repair)
    assert decision.argv == [path, "repair", "246", path]


def test_test_binary_line_uses_the_repair_binary_with_its_path() -> None:
    seq = Sequencer(retry_timeout=0, repair_maximum=1, repair_binary=REPAIR)
    decision = judge(seq, 0, 3, ("test-binary", "/usr/local/bin/t"), version=0)
    assert isinstance(decision, Repair)
    assert decision.argv == [REPAIR, "3", "/usr/local/bin/t"]


def test_no_repair_binary_acts_at_once() -> None:
    seq = Sequencer(retry_timeout=0, repair_maximum=1, repair_binary=None)
    act = judge(seq, 0, errno.ESRCH)
    assert isinstance(act, Act) and act.kind == "reboot" and act.code == errno.ESRCH
    assert "no repair-binary" in act.reason
    # still after the retry-timeout when there is one
    seq = Sequencer(retry_timeout=5, repair_maximum=1, repair_binary=None)
    assert isinstance(judge(seq, 0, errno.ESRCH), Retrying)
    assert isinstance(judge(seq, 6, errno.ESRCH), Act)


def test_check_without_object_has_no_retry_and_no_repair_limit() -> None:
    seq = Sequencer(retry_timeout=60, repair_maximum=1, repair_binary=REPAIR)
    for now in range(3):
        decision = seq.judge(now, "keep-alive", None, errno.EIO)
        assert decision == Repair(
            ("keep-alive", None), [REPAIR, str(errno.EIO)], errno.EIO, now + 1
        )
        assert seq.repaired(now, ("keep-alive", None), 0) == Fine()


def test_keep_alive_and_file_table_are_objectless_whatever_object_is_given() -> None:
    seq = Sequencer(retry_timeout=60, repair_maximum=1, repair_binary=REPAIR)
    for check, obj in (("keep-alive", "/dev/watchdog"), ("file-table", "/proc/uptime")):
        for attempt in (1, 2):
            decision = seq.judge(0, check, obj, errno.EIO)
            assert decision == Repair((check, obj), [REPAIR, str(errno.EIO)], errno.EIO, attempt)
    act = seq.repaired(1, ("keep-alive", "/dev/watchdog"), 1)
    assert isinstance(act, Act) and act.object == "/dev/watchdog"


def test_system_checks_pass_their_5_16_object_name() -> None:
    seq = Sequencer(retry_timeout=0, repair_maximum=1, repair_binary=REPAIR)
    decision = seq.judge(0, "load", LOAD_OBJECT, codes.EMAXLOAD)
    assert isinstance(decision, Repair)
    assert decision.argv == [REPAIR, "253", "<load-average>"]


def test_objects_are_independent_and_snapshot_lists_them() -> None:
    seq = Sequencer(retry_timeout=10, repair_maximum=1, repair_binary=REPAIR)
    other = ("pidfile", "/run/y.pid")
    assert isinstance(judge(seq, 0, errno.ESRCH), Retrying)
    assert judge(seq, 8, errno.ESRCH, other) == Retrying(8, errno.ESRCH, other)
    assert isinstance(judge(seq, 11, errno.ESRCH), Repair)
    assert isinstance(judge(seq, 11, errno.ESRCH, other), Retrying)
    snap = {(s.check, s.object): s for s in seq.snapshot()}
    assert snap[PID].repairs == 1 and snap[PID].failing_since == 0
    assert snap[other].repairs == 0 and snap[other].retry_since == 8
    assert snap[other].as_dict()["last_result"].startswith("ESRCH")


def test_bad_settings_are_refused_with_the_option_name() -> None:
    with pytest.raises(ValueError, match="retry-timeout"):
        Sequencer(-1, 1, None)
    with pytest.raises(ValueError, match="repair-maximum"):
        Sequencer(0, -1, None)
