"""The one timing model: defaults, derivation, relations with numbers, description."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.config.model import Source
from hastack.config.timing import check_timing, derive_timing, describe_timing, fmt_seconds


def test_nothing_set_gives_heartbeats_defaults() -> None:
    t = derive_timing()
    assert (t.keepalive, t.deadtime) == (1.0, 30.0)  # heartbeat -D: 1000ms, 30000ms
    assert t.warntime == 15.0  # heartbeat: deadtime / 2
    assert t.initdead == 60.0  # 2 x deadtime, as the sample ha.cf advises
    assert t.deadping == 30.0  # heartbeat: deadtime
    assert check_timing(t) == []


def test_only_keepalive_derives_deadtime_as_four_keepalives() -> None:
    t = derive_timing(keepalive=0.05)
    assert t.deadtime == pytest.approx(0.2)
    assert t.warntime == pytest.approx(0.1)
    assert t.initdead == pytest.approx(0.4)
    assert t.deadping == pytest.approx(0.2)
    assert check_timing(t) == []


def test_only_deadtime_keeps_heartbeats_keepalive_unless_too_long() -> None:
    assert derive_timing(deadtime=30).keepalive == 1.0
    assert derive_timing(deadtime=0.2).keepalive == pytest.approx(0.05)
    assert check_timing(derive_timing(deadtime=0.2)) == []


def test_lease_and_derived_timers() -> None:
    t = derive_timing(keepalive=1, deadtime=5, max_drift=0.01)
    assert t.lease == 5
    assert t.dc_lease == pytest.approx(5 * 0.99 / 1.01)
    assert t.quiet == pytest.approx(5 * 1.01)
    assert t.dc_lease < t.lease < t.quiet
    assert t.read_interval == 0.1  # capped: (dc_lease - keepalive) / 4 is ~0.98 s here
    assert t.election_timeout == pytest.approx(1.1) and t.stall_threshold == 1
    assert t.max_drift == 0.01


def test_read_interval_keeps_inside_the_lease_renewal_margin() -> None:
    # the fast profile: the DC renews every 50 ms and may act 196 ms after a renewal;
    # an acknowledgement may wait twice read_interval to be read, which must stay well inside
    fast = derive_timing(keepalive=0.05, deadtime=0.2)
    assert fast.read_interval == pytest.approx((fast.dc_lease - 0.05) / 4)
    assert 2 * fast.read_interval < fast.dc_lease - fast.keepalive
    # short keepalives are read every keepalive, never less often
    assert derive_timing(keepalive=0.02, deadtime=1).read_interval == pytest.approx(0.02)


def test_explicit_values_are_kept() -> None:
    t = derive_timing(keepalive=2, deadtime=30, warntime=10, initdead=120, deadping=40)
    assert (t.keepalive, t.deadtime, t.warntime, t.initdead, t.deadping) == (2, 30, 10, 120, 40)


def test_deadtime_relation_names_the_numbers_and_the_line() -> None:
    t = derive_timing(keepalive=0.6, deadtime=1, warntime=0.8)
    sources = {"deadtime": Source("ha.cf", 7), "keepalive": Source("ha.cf", 6)}
    messages = [str(p) for p in check_timing(t, sources)]
    assert "ha.cf:7: deadtime (1s) must be greater than 2 x keepalive (2 x 0.6s = 1.2s)" in messages


def test_problem_falls_back_to_the_next_set_directive() -> None:
    t = derive_timing(keepalive=0.6, deadtime=1, warntime=0.8)
    problems = check_timing(t, lambda name: Source("ha.cf", 3) if name == "keepalive" else None)
    assert problems[0].source == Source("ha.cf", 3)
    assert check_timing(t)[0].source is None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (
            {"keepalive": 1, "deadtime": 10, "warntime": 1},
            "warntime (1s) must be greater than keepalive (1s)",
        ),
        (
            {"keepalive": 1, "deadtime": 10, "warntime": 10},
            "warntime (10s) must be less than deadtime (10s)",
        ),
        (
            {"keepalive": 1, "deadtime": 10, "initdead": 5},
            "initdead (5s) must be at least deadtime (10s)",
        ),
        (
            {"keepalive": 1, "deadtime": 10, "deadping": 2},
            "deadping (2s) must be greater than 2 x keepalive (2 x 1s = 2s)",
        ),
        ({"keepalive": 0.0, "deadtime": 10}, "keepalive (0s) must be greater than 0"),
        (
            {"keepalive": 1, "deadtime": 10, "max_drift": 0.5},
            "max_clock_drift (0.5) must be at least 0 and less than 0.5 (50%)",
        ),
    ],
)
def test_each_relation(kwargs: dict[str, float], expected: str) -> None:
    messages = [p.message for p in check_timing(derive_timing(**kwargs))]
    assert expected in messages


def test_dc_lease_must_outlast_a_renewal() -> None:
    t = derive_timing(keepalive=1, deadtime=2.1, max_drift=0.45)
    (problem,) = check_timing(t)
    assert problem.message.startswith("dc_lease (deadtime x (1 - max_clock_drift)")
    assert "must be greater than keepalive (1s)" in problem.message


@given(st.floats(min_value=0.001, max_value=3600))
def test_any_keepalive_alone_derives_a_valid_model(keepalive: float) -> None:
    assert check_timing(derive_timing(keepalive=keepalive)) == []


@given(st.floats(min_value=0.004, max_value=86400))
def test_any_deadtime_alone_derives_a_valid_model(deadtime: float) -> None:
    assert check_timing(derive_timing(deadtime=deadtime)) == []


def test_describe_lists_every_timer_with_its_value() -> None:
    t = derive_timing(keepalive=1, deadtime=5)
    rows = describe_timing(t)
    names = [name for name, _, _ in rows]
    assert names == [
        "keepalive",
        "warntime",
        "deadtime",
        "initdead",
        "deadping",
        "lease",
        "dc_lease",
        "quiet",
        "read_interval",
        "election_timeout",
        "stall_threshold",
    ]
    values = {name: value for name, value, _ in rows}
    assert values["dc_lease"] == t.dc_lease and values["deadtime"] == 5
    assert all(text for _, _, text in rows)


def test_fmt_seconds() -> None:
    assert fmt_seconds(1.0) == "1s"
    assert fmt_seconds(2 * 0.6) == "1.2s"
    assert fmt_seconds(0.05) == "0.05s"


def test_with_sources_derived_timers_do_not_repeat_the_deadtime_error() -> None:
    t = derive_timing(keepalive=1, deadtime=2)  # warntime 1, deadping 2: derived, also "bad"
    sources = {"keepalive": Source("ha.cf", 1), "deadtime": Source("ha.cf", 2)}
    assert [str(p) for p in check_timing(t, sources)] == [
        "ha.cf:2: deadtime (2s) must be greater than 2 x keepalive (2 x 1s = 2s)"
    ]
    assert len(check_timing(t)) == 3  # without sources every relation is checked
