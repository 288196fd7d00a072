"""OCF return codes: meanings, failure severity, LSB mapping and expected rcs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.agents.rc import (
    EXEC_STATUSES,
    OcfRc,
    OpResult,
    expected_rc,
    lsb_rc_to_ocf,
    rc_meaning,
    severity,
)


def test_ocf_codes_have_their_standard_numbers() -> None:
    assert [int(rc) for rc in list(OcfRc)[:10]] == list(range(10))
    assert OcfRc.NOT_RUNNING == 7
    assert OcfRc.RUNNING_PROMOTED == 8
    assert OcfRc.FAILED_PROMOTED == 9


@pytest.mark.parametrize(
    ("rc", "meaning"),
    [
        (0, "success"),
        (1, "generic error"),
        (2, "invalid parameter"),
        (3, "unimplemented feature"),
        (4, "insufficient privileges"),
        (5, "not installed"),
        (6, "not configured"),
        (7, "not running"),
        (8, "running as promoted"),
        (9, "failed as promoted"),
    ],
)
def test_rc_meaning_names_each_code(rc: int, meaning: str) -> None:
    assert rc_meaning(rc) == meaning


def test_rc_meaning_of_an_unknown_code_shows_the_number() -> None:
    assert rc_meaning(42) == "unknown (rc 42)"
    assert rc_meaning(-9) == "unknown (rc -9)"


@given(st.integers())
def test_rc_meaning_is_total(rc: int) -> None:
    assert isinstance(rc_meaning(rc), str)


def test_severity_success_and_expected_results_are_ok() -> None:
    assert severity(0, "done") == "ok"
    assert severity(7, "done", expected=7) == "ok"  # a probe of a stopped resource
    assert severity(8, "done", expected=8) == "ok"  # a promoted monitor
    assert severity(1, "cancelled") == "ok"


def test_severity_classes_as_pacemaker() -> None:
    assert severity(1, "done") == "soft"
    assert severity(7, "done") == "soft"  # unexpectedly not running: recover here
    assert severity(9, "done") == "soft"
    for hard in (2, 3, 4, 5):
        assert severity(hard, "done") == "hard"
    assert severity(6, "done") == "fatal"
    assert severity(200, "done") == "hard"  # an rc Pacemaker does not know


def test_not_running_is_not_a_failure_of_a_stop() -> None:
    assert severity(7, "done", expected=0, action="stop") == "ok"
    assert severity(7, "done", action="stop") == "ok"
    assert severity(7, "done", expected=0, action="monitor") == "soft"
    assert severity(1, "done", expected=0, action="stop") == "soft"
    assert severity(7, "timeout", expected=0, action="stop") == "soft"


def test_severity_of_execution_statuses() -> None:
    assert severity(1, "timeout") == "soft"
    assert severity(1, "error") == "soft"
    assert severity(1, "not-installed") == "hard"


@given(
    st.integers(),
    st.sampled_from(EXEC_STATUSES),
    st.one_of(st.none(), st.integers(0, 9)),
    st.sampled_from([None, "start", "stop", "monitor"]),
)
def test_severity_is_total(rc: int, status: str, expected: int | None, action: str | None) -> None:
    got = severity(rc, status, expected, action)  # type: ignore[arg-type]
    assert got in ("ok", "soft", "hard", "fatal")


@pytest.mark.parametrize(
    ("code", "ocf"), [(0, 0), (1, 7), (2, 7), (3, 7), (4, 1), (150, 5), (151, 4), (99, 1)]
)
def test_lsb_status_codes(code: int, ocf: int) -> None:
    assert lsb_rc_to_ocf("status", code) == ocf
    assert lsb_rc_to_ocf("monitor", code) == ocf


def test_lsb_other_actions_keep_0_to_7_and_map_the_rest_to_generic() -> None:
    for code in range(8):
        assert lsb_rc_to_ocf("start", code) == code
    assert lsb_rc_to_ocf("stop", 8) == 1
    assert lsb_rc_to_ocf("start", 150) == 1
    assert lsb_rc_to_ocf("stop", -15) == 1


def test_expected_rc() -> None:
    assert expected_rc("start", 0, None) == 0
    assert expected_rc("stop", 0, None) == 0
    assert expected_rc("monitor", 10, None) == 0
    assert expected_rc("monitor", 10, "Started") == 0
    assert expected_rc("monitor", 10, "Unpromoted") == 0
    assert expected_rc("monitor", 10, "Promoted") == 8
    assert expected_rc("monitor", 10, "Master") == 8
    assert expected_rc("monitor", 0, "Stopped") == 7  # a probe where it should not run
    assert expected_rc("promote", 0, "Promoted") == 0


def test_op_result_defaults_and_meaning() -> None:
    result = OpResult(rc=7, status="done")
    assert (result.exit_reason, result.output, result.started, result.duration) == ("", "", 0, 0)
    assert result.meaning == "not running"
    assert OpResult(rc=1, status="timeout").meaning == "timeout"
    with pytest.raises(AttributeError):
        result.rc = 0  # type: ignore[misc]
