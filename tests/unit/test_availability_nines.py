"""hastack.availability.nines and `hastack nines`: the seed's table and example, conversions,
humane durations, and clear errors."""

from __future__ import annotations

import argparse
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.availability import nines as nn
from hastack.availability.cli_nines import add_commands

# The seed's table, copied verbatim ("NINEs", high-availability-in-linux-systems.txt).
SEED_TABLE = """\
1	90%	36,5 days	Unmanaged
2	99%	3,65 days	Managed
3	99,9%	9 h	Well-managed
4	99,99%	52 min	Fault-tolerant
5	99,999%	5 min	Highly available
6	99,9999%	30 sec	Very highly available
7	99,99999%	3 sec	Ultra available"""


def _last_digit(number: str) -> float:
    """The value of one unit in the last significant digit the seed wrote: '36,5' -> 0.1,
    '52' -> 1, '30' -> 10 (a trailing zero of a whole number is not significant)."""
    if "," in number:
        return 10.0 ** -len(number.split(",")[1])
    return 10.0 ** (len(number) - len(number.rstrip("0")))


@pytest.mark.parametrize("line", SEED_TABLE.splitlines())
def test_table_matches_the_seed_to_its_rounding(line: str) -> None:
    cls, availability, down, kind = line.split("\t")
    row = {r.availability_class: r for r in nn.nines_table()}[int(cls)]
    assert row.type == kind
    assert row.availability == pytest.approx(nn.parse_availability(availability), abs=1e-15)
    number, unit = down.split(" ")
    unit_seconds = nn.parse_duration("1 " + unit)
    ours = row.downtime_per_year / unit_seconds  # in the seed's unit
    # The seed rounds loosely (9 h for 8.76 h, 30 sec for 31.5 s): each of its figures is
    # within one unit of the last digit it shows.
    assert abs(ours - float(number.replace(",", "."))) <= _last_digit(number)


def test_table_has_the_seven_classes_with_exact_downtimes() -> None:
    table = nn.nines_table()
    assert [r.availability_class for r in table] == list(range(1, 8))
    assert [nn.format_duration(r.downtime_per_year) for r in table] == [
        "36d 12h",
        "3d 16h",
        "8h 46m",
        "52m 34s",
        "5m 15s",
        "31.5s",
        "3.15s",
    ]
    assert table[3].downtime_per_year == pytest.approx(52.56 * 60)


def test_web_site_example_gives_the_seeds_99_583_percent() -> None:
    # "goes down for only one minute every four hours, i.e. every 240 minutes ...
    #  A = (240 - 1) / 240 = 239/240 = 99,583%"
    example = nn.WEB_SITE_EXAMPLE
    assert example.availability() == pytest.approx(239 / 240)
    assert nn.percent(example.availability(), 3) == "99.583%"
    # The same figure three other ways: MTTF/MTTR, a rate, and the CLI's rate syntax.
    assert nn.availability_from_mttf(example.mttf(), example.down) == pytest.approx(239 / 240)
    assert nn.availability_from_downtime(*nn.parse_rate("1m every 240m")) == pytest.approx(
        239 / 240
    )
    assert nn.availability_from_downtime(*nn.parse_rate("1 min per 4 hours")) == pytest.approx(
        239 / 240
    )
    # One minute in 240 is 36.5 hours a year.
    assert nn.downtime(example.availability()) == pytest.approx(36.5 * 3600)


def test_downtime_per_period_of_four_nines() -> None:
    downs = nn.downtimes(0.9999)
    assert downs["year"] == pytest.approx(3153.6)
    assert downs["month"] == pytest.approx(262.8)
    assert downs["week"] == pytest.approx(60.48)
    assert downs["day"] == pytest.approx(8.64)


def test_nines_count_and_back() -> None:
    assert nn.nines(0.9999) == pytest.approx(4)
    assert nn.nines(0.9995) == pytest.approx(3.30103, abs=1e-5)
    assert nn.availability_of_nines(3) == pytest.approx(0.999)
    assert nn.parse_availability("4 nines") == pytest.approx(0.9999)
    assert nn.parse_availability("3.5 NINES") == pytest.approx(1 - 10**-3.5)


def test_mttf_mttr_formulas() -> None:
    hour = nn.HOUR
    assert nn.availability_from_mttf(2000 * hour, 4 * hour) == pytest.approx(2000 / 2004)
    # MTTF 10,000 h at 99.99% allows an MTTR of 10000 * 0.0001 / 0.9999 h, just over an hour.
    assert nn.mttr_for(0.9999, 10_000 * hour) / hour == pytest.approx(1.0001, abs=1e-4)
    assert nn.mttf_for(0.9999, 4 * hour) / hour == pytest.approx(39_996)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m 15s", 315),
        ("8h 45m", 8 * 3600 + 45 * 60),
        ("52.6 min", 52.6 * 60),
        ("2000h", 2000 * 3600),
        ("6 months", 0.5 * 365 * 86400),
        ("36,5 days", 36.5 * 86400),
        ("1h30m", 5400),
        ("1 year", 365 * 86400),
        ("2 weeks", 14 * 86400),
        ("250 ms", 0.25),
        ("  3 Sec ", 3),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert nn.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("seconds", "units", "decimal"),
    [
        (315, "5m 15s", "5.25 min"),
        (8 * 3600 + 45 * 60, "8h 45m", "8.75 h"),
        (3153.6, "52m 34s", "52.6 min"),
        (0.00864, "8.64 ms", "8.64 ms"),
        (3599.9, "1h", "1 h"),
        (59.97, "1m", "1 min"),
        (0, "0s", "0 ms"),
        (400 * 86400, "1y 35d", "1.1 years"),
    ],
)
def test_format_duration(seconds: float, units: str, decimal: str) -> None:
    assert nn.format_duration(seconds) == units
    assert nn.format_duration_decimal(seconds) == decimal


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: nn.parse_duration(""), "empty duration"),
        (lambda: nn.parse_duration("5"), "a number and a unit"),
        (lambda: nn.parse_duration("5 parsecs"), "unknown unit 'parsecs'"),
        (lambda: nn.parse_duration("-5m"), "cannot read '-5m' as a duration"),
        (lambda: nn.parse_duration("5m and 3s"), "cannot read"),
        (lambda: nn.parse_availability("100"), "100% and more cannot be reached"),
        (lambda: nn.parse_availability("99.9.9"), "write a percentage"),
        (lambda: nn.parse_availability("0.999"), "ambiguous"),
        (lambda: nn.parse_availability("20 nines"), "at most 15"),
        (lambda: nn.parse_rate("52m"), "downtime rate"),
        (lambda: nn.parse_rate("52m per fortnight"), "year, month, week, day"),
        (lambda: nn.parse_rate("0s per year"), "more than zero"),
        (lambda: nn.parse_rate("2 days per day"), "at most the period"),
        (lambda: nn.availability_from_mttf(0, 3600), "MTTF must be a duration longer than zero"),
        (lambda: nn.availability_from_mttf(3600, math.nan), "MTTR must be"),
        (lambda: nn.mttr_for(1.0, 3600), "100% cannot be reached"),
        (lambda: nn.mttf_for(0.0, 3600), "above 0%"),
        (lambda: nn.format_duration(-1), "finite number of seconds >= 0"),
    ],
)
def test_bad_inputs_say_what_is_allowed(call: object, message: str) -> None:
    with pytest.raises(nn.NinesError, match=message):
        call()  # type: ignore[operator]


# --- round trips (hypothesis) ---------------------------------------------------------------

durations = st.floats(min_value=1e-3, max_value=1e10, allow_nan=False, allow_infinity=False)
availabilities = st.floats(min_value=0.0, max_value=1 - 1e-9)


@given(durations)
def test_formatted_durations_read_back(seconds: float) -> None:
    # Two units ('1d 0h') are off by at most half the smaller unit: 30 min in a day, 2.1%;
    # three significant figures are off by at most 0.5%.
    assert nn.parse_duration(nn.format_duration(seconds)) == pytest.approx(seconds, rel=0.021)
    assert nn.parse_duration(nn.format_duration_decimal(seconds)) == pytest.approx(
        seconds, rel=0.005
    )


@given(availabilities, st.sampled_from(list(nn.PERIODS.values())))
def test_availability_downtime_round_trip(availability: float, period: float) -> None:
    back = nn.availability_from_downtime(nn.downtime(availability, period), period)
    assert back == pytest.approx(availability, abs=1e-12)


@given(st.floats(min_value=0, max_value=12))
def test_nines_round_trip(count: float) -> None:
    assert nn.nines(nn.availability_of_nines(count)) == pytest.approx(count, abs=1e-3)


@given(st.floats(min_value=1.0, max_value=99.999999))
def test_percent_text_round_trip(percent: float) -> None:
    assert nn.parse_availability(f"{percent}%") == pytest.approx(percent / 100)
    assert nn.parse_availability(nn.percent(percent / 100)) == pytest.approx(
        percent / 100, abs=1e-8
    )


@given(st.floats(min_value=0.01, max_value=1 - 1e-9), st.floats(min_value=1, max_value=1e9))
def test_mttr_for_target_gives_back_the_target(target: float, mttf: float) -> None:
    mttr = nn.mttr_for(target, mttf)
    assert nn.availability_from_mttf(mttf, mttr) == pytest.approx(target, abs=1e-12)
    assert nn.mttf_for(target, mttr) == pytest.approx(mttf, rel=1e-6)


@given(st.text(max_size=30))
def test_parsers_only_raise_nines_error(text: str) -> None:
    for parse in (nn.parse_duration, nn.parse_availability, nn.parse_rate, nn.parse_period):
        try:
            value = parse(text)
        except nn.NinesError:
            continue
        values = value if isinstance(value, tuple) else (value,)
        assert all(math.isfinite(v) and v >= 0 for v in values)


@given(st.lists(st.tuples(st.integers(0, 999), st.sampled_from(["s", "m", "h", "d", "w"]))))
def test_parse_duration_sums_its_terms(terms: list[tuple[int, str]]) -> None:
    text = " ".join(f"{count}{unit}" for count, unit in terms)
    if not terms:
        with pytest.raises(nn.NinesError):
            nn.parse_duration(text)
        return
    size = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    assert nn.parse_duration(text) == pytest.approx(sum(c * size[u] for c, u in terms))


# --- the command ----------------------------------------------------------------------------


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["nines", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys)
    assert code == 0
    assert "52m 34s" in out and "Fault-tolerant" in out and "99.99999%" in out
    code, out, _ = _run(capsys, "--json")
    rows = json.loads(out)["rows"]
    assert [r["percent"] for r in rows][:3] == ["90%", "99%", "99.9%"]
    assert rows[4]["downtime_per_year"] == "5m 15s"


def test_cli_availability(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "99.95")
    assert code == 0 and "4h 23m" in out and "3.30 nines" in out
    code, out, _ = _run(capsys, "4 nines", "--json")
    data = json.loads(out)
    assert data["downtime"]["year"] == "52m 34s"
    assert data["downtime_seconds"]["day"] == pytest.approx(8.64)


def test_cli_downtime(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--downtime", "4h", "--per", "year", "--json")
    assert code == 0
    assert json.loads(out)["availability"] == pytest.approx(1 - 4 / 8760)
    code, out, _ = _run(capsys, "--downtime", "5m per month", "--json")
    assert json.loads(out)["availability"] == pytest.approx(1 - 300 / nn.MONTH)
    code, out, _ = _run(capsys, "--downtime", "1m", "--per", "240m")
    assert code == 0 and "99.583333%" in out


def test_cli_mttf_mttr(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--mttf", "2000h", "--mttr", "4h", "--json")
    assert code == 0
    assert json.loads(out)["availability"] == pytest.approx(2000 / 2004)


def test_cli_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--target", "99.99", "--mttf", "10000h", "--json")
    assert code == 0
    assert json.loads(out)["mttr_needed_hours"] == pytest.approx(1.0001, abs=1e-4)
    code, out, _ = _run(capsys, "--target", "4 nines", "--mttr", "4h")
    assert code == 0 and "39,996 h" in out


def test_cli_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--example")
    assert code == 0 and "99.583%" in out
    code, out, _ = _run(capsys, "--example", "--json")
    assert json.loads(out)["percent"] == "99.583%"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["0.999"], "ambiguous"),
        (["--downtime", "4 parsecs"], "unknown unit"),
        (["99.9", "--downtime", "4h"], "not several"),
        (["--per", "year"], "--per goes with --downtime"),
        (["--mttf", "2000h"], "give both --mttf and --mttr"),
        (["--mttf", "2000", "--mttr", "4h"], "--mttf: cannot read '2000'"),
        (["--target", "99.99"], "exactly one of --mttf"),
        (["99.9", "--mttr", "4h"], "not with AVAILABILITY"),
    ],
)
def test_cli_errors_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("hastack nines: ") and message in err
