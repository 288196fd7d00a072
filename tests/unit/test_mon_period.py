"""hastack.mon.period against Time::Period 1.25 (the real Perl module when installed)."""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.mon.period import (
    PeriodError,
    in_period,
    parse_period,
    perl_inperiod,
    valid_period,
)

# ---- the real module, run once per batch ---------------------------------------------------

_PERL_SCRIPT = r"""
use Time::Period;
while (my $line = <STDIN>) {
    chomp $line;
    my ($t, $spec) = split(/\t/, $line, 2);
    print inPeriod($t, $spec), "\n";
}
"""


def _perl_available() -> str | None:
    if shutil.which("perl") is None:
        return "perl is not installed"
    probe = subprocess.run(["perl", "-MTime::Period", "-e", "1"], capture_output=True)
    if probe.returncode != 0:
        return "the Perl module Time::Period (libtime-period-perl) is not installed"
    return None


def _perl_batch(pairs: list[tuple[int, str]]) -> list[int]:
    """inPeriod(epoch, spec) for every pair, in UTC, from one perl process."""
    reason = _perl_available()
    if reason:
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    for _, spec in pairs:
        assert "\t" not in spec and "\n" not in spec
    data = "".join(f"{t}\t{spec}\n" for t, spec in pairs).encode()
    out = subprocess.run(
        ["perl", "-e", _PERL_SCRIPT],
        input=data,
        capture_output=True,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        timeout=60,
        check=True,
    )
    results = [int(x) for x in out.stdout.decode().split()]
    assert len(results) == len(pairs)
    return results


def _utc(epoch: int) -> datetime:
    # the naive local time Perl's localtime gives under TZ=UTC
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None)


SPECS = [
    # the seed's periods
    "wd {Sun-Sat}",
    "wd {Mon-Fri} hr {9am-6pm}",
    # the man page's examples
    "wd {Mon-Fri} hr {9am-4pm}",
    "wd {Mon Wed Fri} hr {9am-4pm}, wd{Tue Thu} hr {9am-2pm}",
    "wk {1 3 5} wd {Mon Wed Fri} hr {9am-4pm}",
    "mo {Nov-Feb}",
    "mo {Jan-Feb Nov-Dec}",
    "mo {jan feb nov dec}",
    "mo {Jan Feb}, mo {Nov Dec}",
    "mo {Jan Feb} mo {Nov Dec}",
    "minute { 0-29 }",
    "hour { 12am-11am }",
    "sec {0-4 10-14 20-24 30-34 40-44 50-54}",
    "wd {1 3 5 7} min {0-29}, wd {2 4 6} min {30-59}",
    # wrapping ranges on every scale that wraps, and years that do not
    "hr {10pm-2am}",
    "hr {22-3}",
    "min {50-10}",
    "sec {45 - 15}",
    "wd {fri-mon}",
    "wd {6-2}",
    "md {25-5}",
    "yd {300-40}",
    "wk {5-2}",
    "mo {10-3}",
    "yr {2030-1990}",
    "yr {99-1972}",
    "yr {20-30}",
    "year {2024 2026}",
    # noon and midnight, long scale names, case, spacing, several scales and sub-periods
    "hr {12noon}, hr {12am}",
    "hour {12pm-1pm} minute {0-14 45-59}",
    "WDay {MONDAY-Thursday} Hour {8AM - 5PM}",
    "month {feb} mday {29}",
    "mday{1-7}wday{mon}",
    "yday {1-31 365 366}",
    "week {6}, week {1} wd {sat}",
    "second {0-29}, minute {0-29}, hour {0-11}",
    "  none  ",
    "",
    "wd {}",
    "wd {Mon} hr {}",
    "wd {mon--fri}",
    "yd {5x}",
    "hr {13am-0pm}",
]


def test_matches_time_period_on_random_times() -> None:
    rng = random.Random(9)
    # 2010..2040, plus month and year boundaries where weeks and wraps are tricky
    times = [rng.randrange(1262304000, 2209075200) for _ in range(300)]
    times += [1704067199, 1704067200, 1709164800, 1711929599, 1735689599, 1735603200]
    pairs = [(t, spec) for spec in SPECS for t in times]
    perl = _perl_batch(pairs)
    mismatches = [
        (spec, t, _utc(t).isoformat(), expected, perl_inperiod(spec, _utc(t)))
        for (t, spec), expected in zip(pairs, perl, strict=True)
        if perl_inperiod(spec, _utc(t)) != expected
    ]
    assert mismatches == []
    # every spec above is valid, and in_period agrees with Perl's 1/0
    for (t, spec), expected in zip(pairs, perl, strict=True):
        assert expected in (0, 1), spec
        assert in_period(spec, _utc(t)) is (expected == 1)


def test_every_spec_is_checked_by_both_in_the_same_way() -> None:
    assert all(valid_period(spec) is None for spec in SPECS)


# ---- known answers, without Perl -----------------------------------------------------------


def test_business_hours() -> None:
    spec = parse_period("wd {Mon-Fri} hr {9am-6pm}")
    assert in_period(spec, datetime(2024, 5, 6, 9, 0, 0))  # Monday 09:00
    assert in_period(spec, datetime(2024, 5, 10, 18, 59, 59))  # Friday 18:59:59 (6pm is 6-7)
    assert not in_period(spec, datetime(2024, 5, 10, 19, 0, 0))
    assert not in_period(spec, datetime(2024, 5, 11, 12, 0, 0))  # Saturday
    assert not in_period(spec, datetime(2024, 5, 6, 8, 59, 59))


def test_wrapping_hours_and_noon_midnight() -> None:
    night = parse_period("hr {10pm-2am}")
    assert in_period(night, datetime(2024, 1, 1, 23, 30))
    assert in_period(night, datetime(2024, 1, 1, 2, 59))
    assert not in_period(night, datetime(2024, 1, 1, 3, 0))
    assert in_period("hr {12am}", datetime(2024, 1, 1, 0, 10))
    assert in_period("hr {12noon}", datetime(2024, 1, 1, 12, 10))
    assert in_period("hr {12pm}", datetime(2024, 1, 1, 12, 10))


def test_several_subperiods_any_and_scales_all() -> None:
    spec = "wd {Sat} hr {1-2}, min {30-31}"
    assert in_period(spec, datetime(2024, 5, 11, 1, 0))  # Saturday 01:00
    assert in_period(spec, datetime(2024, 5, 6, 5, 30))  # any day at :30
    assert not in_period(spec, datetime(2024, 5, 6, 1, 0))  # Monday 01:00


def test_week_of_month_counts_sundays() -> None:
    # June 2024 starts on a Saturday: the 1st is week 1, Sunday the 2nd starts week 2,
    # and Sunday the 30th is week 6
    assert in_period("wk {1}", datetime(2024, 6, 1))
    assert in_period("wk {2}", datetime(2024, 6, 2))
    assert in_period("wk {6}", datetime(2024, 6, 30))
    # a month starting on Sunday: the 1st is still week 1
    assert in_period("wk {1}", datetime(2024, 9, 1))
    assert in_period("wk {2}", datetime(2024, 9, 8))


def test_two_digit_years_take_the_century_and_years_do_not_wrap() -> None:
    assert in_period("yr {24}", datetime(2024, 3, 1))
    assert in_period("yr {2030-1990}", datetime(2000, 1, 1))  # swapped, not wrapped
    assert not in_period("yr {2030-1990}", datetime(2031, 1, 1))


def test_empty_and_none() -> None:
    assert in_period("", datetime(2024, 1, 1))
    assert in_period("   ", datetime(2024, 1, 1))
    assert not in_period("None", datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("wd {Mon-Fxi}", ["wd", "'fxi'", "su mo tu we th fr sa"]),
        ("hr {25}", ["hr", "'25'", "0-23"]),
        ("hr {13noon}", ["'13noon'", "12noon"]),
        ("mo {13}", ["mo", "1-12"]),
        ("min {60}", ["min", "0-59"]),
        ("yr {150}", ["yr", "1970"]),
        ("wk {0}", ["wk", "1-6"]),
        ("md {32}", ["md", "1-31"]),
        ("yd {367}", ["yd", "1-366"]),
        ("day {1}", ["unknown scale 'day'", "wday/wd"]),
        ("w {1}", ["scale", "wday/wd"]),
        ("wd {Mon", ["1 '{' and 0 '}'"]),
        ("wd Mon", ["0 '{'"]),
        ("wd {Mon} junk", ["not a list"]),
        ("wd {-Mon}", ["value on each side"]),
        ("wd {Mon}, , hr {1}", ["sub-period ''"]),
    ],
)
def test_errors_say_what_and_what_is_allowed(spec: str, words: list[str]) -> None:
    with pytest.raises(PeriodError) as info:
        parse_period(spec)
    message = str(info.value)
    assert f"period {spec!r}" in message
    for word in words:
        assert word in message
    assert valid_period(spec) == message


def test_only_the_first_letters_count() -> None:
    # as in the module: "Fry" is "fr", "Janitor" is "jan"
    assert in_period("wd {Fry} mo {Janitor}", datetime(2024, 1, 5))


def test_strict_where_the_module_is_lazy() -> None:
    # Time::Period never looks past a matching sub-period; hastack rejects the spec outright
    spec = "wd {Mon}, wd {Funday}"
    monday, tuesday = datetime(2024, 5, 6), datetime(2024, 5, 7)
    assert perl_inperiod(spec, monday) == 1
    assert perl_inperiod(spec, tuesday) == -1
    assert valid_period(spec) is not None


# ---- fuzzing -------------------------------------------------------------------------------

_TOKENS = [
    "wd", "wday", "hr", "hour", "min", "minute", "sec", "second", "mo", "month", "yr", "year",
    "wk", "week", "md", "mday", "yd", "yday", "day", "w", "mon", "fri", "sun", "sa", "jan",
    "dec", "sept", "9am", "12noon", "12am", "12pm", "11pm", "13pm", "0", "1", "5", "7", "12",
    "23", "24", "31", "59", "60", "99", "366", "1970", "2024", "150", "5x", "2.0", "1e2", "+3",
    "{", "}", "-", " - ", ",", " ", "  ", "none", "x", "_", "{Mon-Fri}", "{1 3 5}", "--",
]  # fmt: skip


def _random_spec(rng: random.Random) -> str:
    if rng.random() < 0.6:
        # mostly well-formed sub-periods, with values right, wrong and odd
        subs = []
        for _ in range(rng.randint(1, 3)):
            scales = []
            for _ in range(rng.randint(1, 3)):
                name = rng.choice(_TOKENS[:22])
                values = []
                for _ in range(rng.randint(0, 3)):
                    value = rng.choice(_TOKENS[20:58])
                    if rng.random() < 0.4:
                        value += rng.choice(["-", " - ", "-"]) + rng.choice(_TOKENS[20:58])
                    values.append(value)
                scales.append(f"{name} {{{' '.join(values)}}}")
            subs.append(" ".join(scales))
        spec = ", ".join(subs)
        if rng.random() < 0.3:
            pos = rng.randrange(len(spec) + 1)
            spec = spec[:pos] + rng.choice(_TOKENS) + spec[pos + 1 :]
        return spec if rng.random() < 0.5 else spec.upper()
    return "".join(rng.choice(_TOKENS) for _ in range(rng.randint(1, 8)))


def test_fuzz_tristate_matches_time_period() -> None:
    rng = random.Random(2583)
    specs = [_random_spec(rng) for _ in range(1500)]
    times = [rng.randrange(946684800, 2209075200) for _ in range(len(specs))]
    pairs = list(zip(times, specs, strict=True))
    perl = _perl_batch(pairs)
    mismatches = [
        (spec, t, expected, perl_inperiod(spec, _utc(t)))
        for (t, spec), expected in zip(pairs, perl, strict=True)
        if perl_inperiod(spec, _utc(t)) != expected
    ]
    assert mismatches == []
    # both answers occur, so the comparison means something
    assert {-1, 0, 1} <= set(perl)
    for (_, spec), expected in zip(pairs, perl, strict=True):
        if valid_period(spec) is None:
            assert expected != -1, spec  # valid here is valid for Perl at any time
        elif "," not in spec:
            assert expected == -1, spec  # one sub-period: its validity does not depend on time


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_fuzz_any_text_parses_or_raises_period_error(text: str) -> None:
    try:
        parsed = parse_period(text)
    except PeriodError as exc:
        assert str(exc).startswith("period ")
        assert valid_period(text) == str(exc)
    else:
        assert valid_period(text) is None
        assert isinstance(in_period(parsed, datetime(2024, 2, 29, 23, 59, 59)), bool)
    assert perl_inperiod(text, datetime(2024, 2, 29, 23, 59, 59)) in (-1, 0, 1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_TOKENS), max_size=10).map("".join))
def test_fuzz_token_soup_parses_or_raises_period_error(text: str) -> None:
    # anything but PeriodError escaping fails the test
    with contextlib.suppress(PeriodError):
        parse_period(text)
