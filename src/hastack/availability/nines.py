"""Nines: availability <-> downtime, A = MTTF / (MTTF + MTTR), and humane durations.

All durations are in seconds here. A year is 365 days (the seed's table: 90% is 36.5 days of
downtime a year), a month is a twelfth of that year (30.4 days), a week 7 days, a day 24 hours.
An availability is a fraction 0 <= A < 1: 100% is refused because it is not reachable (the seed:
"Can I have a system availability of 100%? NO, you can't") and it has infinite nines.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SECOND = 1.0
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
YEAR = 365 * DAY
MONTH = YEAR / 12

# The named periods of the "downtime per ..." conversions, in the order they are shown.
PERIODS: dict[str, float] = {"year": YEAR, "month": MONTH, "week": WEEK, "day": DAY}

# The seed's "Availability in terms of numbers of nine": class -> type. The downtimes are
# computed (nines_table), not copied: the seed rounds them loosely (9 h for 8.76 h).
SEED_CLASSES: dict[int, str] = {
    1: "Unmanaged",
    2: "Managed",
    3: "Well-managed",
    4: "Fault-tolerant",
    5: "Highly available",
    6: "Very highly available",
    7: "Ultra available",
}

_UNITS: dict[str, float] = {}
for _names, _size in (
    (("ms", "msec", "millisecond", "milliseconds"), 0.001),
    (("s", "sec", "secs", "second", "seconds"), SECOND),
    (("m", "min", "mins", "minute", "minutes"), MINUTE),
    (("h", "hr", "hrs", "hour", "hours"), HOUR),
    (("d", "day", "days"), DAY),
    (("w", "wk", "wks", "week", "weeks"), WEEK),
    (("mo", "month", "months"), MONTH),
    (("y", "yr", "yrs", "year", "years"), YEAR),
):
    for _name in _names:
        _UNITS[_name] = _size

UNITS_HELP = (
    "units: ms, s/sec/second, m/min/minute, h/hr/hour, d/day, w/week, mo/month, y/year "
    "(m is minutes; a month is 1/12 of a 365-day year)"
)
DURATION_HELP = "a number and a unit, e.g. '5m 15s', '8h 45m', '52.6 min', '2000h', '6 months'"
AVAILABILITY_HELP = (
    "a percentage ('99.99' or '99.99%') or a count of nines ('4 nines', '3.5 nines')"
)
RATE_HELP = "a downtime per period, e.g. '52m/year', '5m per month', '1m every 4h'"

# A number: digits with an optional decimal part; a comma is accepted as the decimal mark
# because the seed writes "99,9%" and "36,5 days".
_NUMBER = r"(\d+(?:[.,]\d+)?|[.,]\d+)"
_TERM = re.compile(_NUMBER + r"\s*([A-Za-z]+)\s*")
_PERCENT = re.compile(_NUMBER + r"\s*(%?)")
_NINES = re.compile(_NUMBER + r"\s*nines?", re.IGNORECASE)
_RATE_SPLIT = re.compile(r"\s*(?:/|\bper\b|\bevery\b|\bin\b|\ba\b)\s*", re.IGNORECASE)


class NinesError(ValueError):
    """A value that cannot be read or is out of range; the message says what is allowed."""


def _number(text: str) -> float:
    return float(text.replace(",", "."))


# --- durations ------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Seconds from '5m 15s', '8h 45m', '52.6 min', '2000h', '6 months', '36,5 days'.

    A bare number is refused: without a unit it is ambiguous (hours? seconds?).
    """
    stripped = text.strip()
    if not stripped:
        raise NinesError(f"empty duration: write {DURATION_HELP}")
    total = 0.0
    position = 0
    while position < len(stripped):
        match = _TERM.match(stripped, position)
        if match is None:
            raise NinesError(
                f"cannot read {text!r} as a duration: write {DURATION_HELP}; {UNITS_HELP}"
            )
        unit = match.group(2).lower()
        if unit not in _UNITS:
            raise NinesError(f"unknown unit {match.group(2)!r} in {text!r}: {UNITS_HELP}")
        total += _number(match.group(1)) * _UNITS[unit]
        position = match.end()
    if not math.isfinite(total):
        raise NinesError(f"duration {text!r} is too large")
    return total


def _significant(value: float, digits: int = 3) -> str:
    """`value` with `digits` significant figures, without exponent or trailing zeros."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    rounded = f"{value:.{decimals}f}"
    if "." in rounded:
        rounded = rounded.rstrip("0").rstrip(".")
    return rounded


# Units of the "5m 15s" style, largest first: (suffix, size in seconds).
_SPLIT_UNITS: tuple[tuple[str, float], ...] = (
    ("y", YEAR),
    ("d", DAY),
    ("h", HOUR),
    ("m", MINUTE),
    ("s", SECOND),
)


def format_duration(seconds: float) -> str:
    """The two largest units ('5m 15s', '8h 45m', '36d 12h'); under a minute, 3 significant
    figures ('31.5s', '8.64 ms'). Relative error at most 2.1% (half an hour in a day)."""
    _check_duration(seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{_significant(seconds * 1000)} ms"
    if seconds < 59.95:  # what rounds to 60.0 at 3 figures is shown as 1m
        return f"{_significant(seconds)}s"
    for index, (suffix, size) in enumerate(_SPLIT_UNITS[:-1]):
        if seconds >= size:
            lower_suffix, lower_size = _SPLIT_UNITS[index + 1]
            count = round(seconds / lower_size)
            rounded = count * lower_size
            if index > 0 and rounded >= _SPLIT_UNITS[index - 1][1]:
                return format_duration(rounded)  # rounding carried into the next unit up
            per_major = round(size / lower_size)
            major, minor = divmod(count, per_major)
            return f"{major}{suffix} {minor}{lower_suffix}" if minor else f"{major}{suffix}"
    return "1m"  # 59.95 <= seconds < 60: rounds to a whole minute


def format_duration_decimal(seconds: float) -> str:
    """One unit, 3 significant figures: '52.6 min', '8.76 h', '3.65 days', '31.5 s'."""
    _check_duration(seconds)
    units = (("years", YEAR), ("days", DAY), ("h", HOUR), ("min", MINUTE), ("s", 1.0))
    for index, (name, size) in enumerate(units):
        text = _significant(seconds / size)
        if float(text) >= 1:
            if index > 0 and float(text) * size >= units[index - 1][1]:
                # rounding reached the next unit up: 59.97 s is '1 min', not '60 s'
                return format_duration_decimal(float(text) * size)
            return f"{text} {name}"
    return f"{_significant(seconds * 1000)} ms"


def _check_duration(seconds: float) -> None:
    if not math.isfinite(seconds) or seconds < 0:
        raise NinesError(f"a duration must be a finite number of seconds >= 0, not {seconds!r}")


def parse_period(text: str) -> float:
    """Seconds in a period: a name ('year', 'month', 'week', 'day', 'hour') or a duration."""
    stripped = text.strip().lower()
    if stripped in _UNITS:
        return _UNITS[stripped]
    try:
        period = parse_duration(text)
    except NinesError:
        raise NinesError(
            f"cannot read {text!r} as a period: write year, month, week, day or {DURATION_HELP}"
        ) from None
    if period <= 0:
        raise NinesError(f"the period {text!r} must be longer than zero")
    return period


def looks_like_rate(text: str) -> bool:
    """Whether `text` names its period ('52m/year', '5m per month') rather than being a duration."""
    return _RATE_SPLIT.search(text) is not None


def parse_rate(text: str) -> tuple[float, float]:
    """(downtime, period) in seconds from '52m/year', '5m per month', '1m every 4h'."""
    parts = _RATE_SPLIT.split(text.strip(), maxsplit=1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise NinesError(f"cannot read {text!r} as a downtime rate: write {RATE_HELP}")
    down, period = parse_duration(parts[0]), parse_period(parts[1])
    availability_from_downtime(down, period)  # checks 0 < down <= period
    return down, period


# --- availability ---------------------------------------------------------------------------


def check_availability(availability: float) -> float:
    """`availability` itself, after checking 0 <= A < 1."""
    if not (math.isfinite(availability) and 0 <= availability < 1):
        raise NinesError(
            f"an availability must be a fraction 0 <= A < 1 (100% cannot be reached), "
            f"not {availability!r}"
        )
    return availability


def parse_availability(text: str) -> float:
    """A fraction from '99.99', '99.99%', '99,9%' or '4 nines'.

    A bare number below 1 is refused: '0.9999' would mean 0.9999%, which is surely not meant.
    """
    stripped = text.strip()
    nines_match = _NINES.fullmatch(stripped)
    if nines_match:
        return availability_of_nines(_number(nines_match.group(1)))
    percent_match = _PERCENT.fullmatch(stripped)
    if percent_match is None:
        raise NinesError(f"cannot read {text!r} as an availability: write {AVAILABILITY_HELP}")
    percent = _number(percent_match.group(1))
    if not percent_match.group(2) and percent < 1:
        raise NinesError(
            f"{text!r} is ambiguous: availabilities are percentages, so write "
            f"{_significant(percent * 100, 12)} for {percent} as a fraction, or {text.strip()}% "
            f"if you mean that percentage"
        )
    if percent >= 100:
        raise NinesError(f"{text!r}: 100% and more cannot be reached; write {AVAILABILITY_HELP}")
    return check_availability(percent / 100)


def nines(availability: float) -> float:
    """The number of nines: -log10(1 - A); 99.99% is 4.0, 99.95% is 3.3."""
    return -math.log10(1 - check_availability(availability))


def availability_of_nines(count: float) -> float:
    """The availability with `count` nines: 1 - 10^-count (4 nines: 99.99%)."""
    if not math.isfinite(count) or count < 0:
        raise NinesError(f"a count of nines must be >= 0, not {count!r}")
    availability = 1 - 10.0**-count
    if availability >= 1:  # beyond the precision of a float (about 15 nines)
        raise NinesError(f"{count} nines is more than a float can tell from 100%: use at most 15")
    return availability


def percent(availability: float, digits: int = 6) -> str:
    """'99.99%' — as many decimals as needed, at most `digits`."""
    text = f"{check_availability(availability) * 100:.{digits}f}".rstrip("0").rstrip(".")
    return text + "%"


def downtime(availability: float, period: float = YEAR) -> float:
    """Seconds of downtime in `period` seconds at `availability`."""
    return (1 - check_availability(availability)) * period


def downtimes(availability: float) -> dict[str, float]:
    """Seconds of downtime per year, month, week and day."""
    return {name: downtime(availability, size) for name, size in PERIODS.items()}


def availability_from_downtime(down: float, period: float = YEAR) -> float:
    """The availability of a system down `down` seconds every `period` seconds."""
    if not (math.isfinite(period) and period > 0):
        raise NinesError(f"the period must be longer than zero, not {period!r}")
    if not (math.isfinite(down) and 0 < down <= period):
        raise NinesError(
            f"the downtime must be more than zero (zero is 100%, not reachable) and at most the "
            f"period ({format_duration(period)}), not {down!r} s"
        )
    return 1 - down / period


# --- MTTF / MTTR ----------------------------------------------------------------------------


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise NinesError(f"{name} must be a duration longer than zero, not {value!r}")


def availability_from_mttf(mttf: float, mttr: float) -> float:
    """A = MTTF / (MTTF + MTTR), both in the same unit."""
    _check_positive("MTTF", mttf)
    _check_positive("MTTR", mttr)
    return check_availability(mttf / (mttf + mttr))


def mttr_for(target: float, mttf: float) -> float:
    """The longest MTTR that keeps `target` availability with this MTTF: MTTF (1 - A) / A."""
    _check_positive("MTTF", mttf)
    if check_availability(target) == 0:
        raise NinesError("a target availability must be above 0%")
    return mttf * (1 - target) / target


def mttf_for(target: float, mttr: float) -> float:
    """The shortest MTTF that gives `target` availability with this MTTR: MTTR A / (1 - A)."""
    _check_positive("MTTR", mttr)
    if check_availability(target) == 0:
        raise NinesError("a target availability must be above 0%")
    return mttr * target / (1 - target)


# --- the seed's table and example -----------------------------------------------------------


@dataclass(frozen=True)
class NinesRow:
    availability_class: int
    availability: float
    downtime_per_year: float  # seconds
    type: str


def nines_table() -> list[NinesRow]:
    """The seed's table of nines, with the downtimes computed from a 365-day year."""
    return [
        NinesRow(cls, availability_of_nines(cls), downtime(availability_of_nines(cls)), kind)
        for cls, kind in SEED_CLASSES.items()
    ]


@dataclass(frozen=True)
class WebSiteExample:
    """The seed's "Availability vs. Reliability" example: "a commercial web site goes down for
    only one minute every four hours, i.e. every 240 minutes ... A = 239/240 = 99,583%"."""

    down: float = 1 * MINUTE
    every: float = 240 * MINUTE

    def availability(self) -> float:
        return availability_from_downtime(self.down, self.every)

    def mttf(self) -> float:
        """Up time between failures: 239 minutes (the same availability as MTTF/(MTTF+MTTR))."""
        return self.every - self.down


WEB_SITE_EXAMPLE = WebSiteExample()
