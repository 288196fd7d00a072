"""Time periods as Time::Period 1.25 (libtime-period-perl) reads them: mon's `period` and
`exclude_period` values.

A period is `sub-period[, sub-period...]` (any one matching is enough); a sub-period is
`scale {range [range...]} [scale {...}...]` (every scale named must match, and a scale named
twice matches when either of its lists does); "" (or blanks) is always, "none" is never.

Time::Period checks a spec while it evaluates it and stops at the first sub-period that matches,
so a malformed sub-period after a matching one goes unnoticed at that moment. hastack is stricter:
`parse_period` rejects a spec when any sub-period is malformed. `perl_inperiod` gives exactly the
Perl module's answer (1, 0, or -1 for malformed) for compatibility checks.

The value rules copy the module's quirks on purpose (so a mon.cf means the same thing): only the
first two letters of a week day and the first three of a month count, a range is split at its
*last* '-', `yd` numbers go through Perl's numeric conversion, two-digit years take the century
of the year being tested, and year ranges never wrap.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "SCALES",
    "ParsedPeriod",
    "PeriodError",
    "ScaleTest",
    "in_period",
    "parse_period",
    "perl_inperiod",
    "valid_period",
]


class PeriodError(ValueError):
    """A malformed Time::Period spec; the message says what is wrong and what is allowed."""


# long name -> code, as the module maps them
_LONG = {
    "year": "yr",
    "month": "mo",
    "week": "wk",
    "mday": "md",
    "wday": "wd",
    "yday": "yd",
    "hour": "hr",
    "minute": "min",
    "second": "sec",
}
SCALES = frozenset(_LONG.values())

_WDAYS = {"su": 0, "mo": 1, "tu": 2, "we": 3, "th": 4, "fr": 5, "sa": 6}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}

_ALLOWED = {
    "yr": "a year: 0-99 (this century) or 1970 and later",
    "mo": "a month: 1-12 or jan feb mar apr may jun jul aug sep oct nov dec",
    "wk": "a week of the month: 1-6",
    "yd": "a day of the year: 1-366",
    "md": "a day of the month: 1-31",
    "wd": "a week day: 1-7 (1 is Sunday) or su mo tu we th fr sa",
    "hr": "an hour: 0-23 or 12am 1am-11am 12noon 12pm 1pm-11pm",
    "min": "a minute: 0-59",
    "sec": "a second: 0-59",
}
_SCALES_HELP = (
    "year/yr, month/mo, week/wk, yday/yd, mday/md, wday/wd, hour/hr, minute/min, second/sec"
)

# Perl's \s, \w, \d on byte strings are ASCII-only; so are these.
_A = re.ASCII
_WORD = re.compile(r"\w", _A)
_NONDIGIT = re.compile(r"\D", _A)
_ALPHA = re.compile(r"[a-z]")
_SCALE_HEAD = re.compile(r"([a-z]*)\s*\{\s*(.*)", _A)  # '.' stops at a newline, as in Perl
_JOIN_DASH = re.compile(r"(\w+)\s*-\s*(\w+)", _A)
_SUB_SPLIT = re.compile(r"\s*,\s*", _A)
_SCALE_SPLIT = re.compile(r"\}\s*", _A)
_WS_SPLIT = re.compile(r"\s+", _A)
_HOUR_WORD = re.compile(r"(\d+)(am|pm|noon)", _A)
_PERL_NUM = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", _A)
_PERL_SPECIAL = re.compile(r"[+-]?(inf(inity)?|nan)", _A | re.IGNORECASE)


@dataclass(frozen=True)
class ScaleTest:
    """One `scale {ranges}`: each range is (low, high), inclusive, in the scale's own numbering
    (months 0-11, week days 0-6 from Sunday, weeks and year days from 0, as localtime gives).
    low > high wraps around, except for years. Two-digit years are kept as written and
    completed with the century of the time being tested."""

    scale: str
    ranges: tuple[tuple[float, float], ...]

    def matches(self, fields: dict[str, int]) -> bool:
        value = fields[self.scale]
        for low, high in self.ranges:
            if self.scale == "yr":
                century = 100 * (value // 100)
                lo = century + low if low <= 99 else low
                hi = century + high if high <= 99 else high
                if lo > hi:  # years never wrap: the module swaps the ends
                    lo, hi = hi, lo
                if lo <= value <= hi:
                    return True
            elif low > high:
                if value >= low or value <= high:
                    return True
            elif low <= value <= high:
                return True
        return False


SubPeriod = tuple[ScaleTest, ...]


@dataclass(frozen=True)
class ParsedPeriod:
    """A checked Time::Period spec. `always` for "" (blanks), `never` for "none"."""

    text: str
    subperiods: tuple[SubPeriod, ...] = ()
    always: bool = False
    never: bool = False

    def contains(self, when: datetime) -> bool:
        if self.always:
            return True
        if self.never:
            return False
        fields = _time_fields(when)
        return any(_sub_matches(sub, fields) for sub in self.subperiods)


def _sub_matches(sub: SubPeriod, fields: dict[str, int]) -> bool:
    # every scale named must match; the same scale twice widens it (OR within a scale)
    by_scale: dict[str, bool] = {}
    for test in sub:
        by_scale[test.scale] = by_scale.get(test.scale, False) or test.matches(fields)
    return all(by_scale.values())


def _time_fields(when: datetime) -> dict[str, int]:
    wday = (when.weekday() + 1) % 7  # localtime: Sunday is 0
    # the week of the month counts the Sundays from the 2nd to today (module's 1.25 rule)
    first_wday = (wday - (when.day - 1)) % 7
    week = sum(1 for d in range(2, when.day + 1) if (first_wday + d - 1) % 7 == 0)
    return {
        "yr": when.year,
        "mo": when.month - 1,
        "wk": week,
        "yd": when.timetuple().tm_yday - 1,
        "md": when.day,
        "wd": wday,
        "hr": when.hour,
        "min": when.minute,
        "sec": when.second,
    }


# ---- parsing ---------------------------------------------------------------------------------


def _perl_lc(text: str) -> str:
    # Perl's lc on a byte string lowers ASCII letters only
    return text.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def _perl_trim(text: str) -> str:
    return re.sub(r"^\s+|\s+$", "", text, flags=_A)


def _perl_split(pattern: re.Pattern[str], text: str) -> list[str]:
    """Perl's split: trailing empty fields are dropped (leading ones are kept)."""
    parts = pattern.split(text)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _perl_numify(text: str) -> float:
    """The numeric value Perl gives a string: its leading number, else 0."""
    special = _PERL_SPECIAL.match(text)
    if special:
        return math.nan if special.group(1).lower() == "nan" else math.inf
    number = _PERL_NUM.match(text)
    return float(number.group(0)) if number else 0.0


def _perl_str(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


class _Bad(Exception):
    """One malformed piece, before the spec text is added to the message."""


def _bad_value(scale: str, token: str) -> _Bad:
    return _Bad(f"{scale} value {token!r} is not valid; allowed: {_ALLOWED[scale]}, or a range a-b")


def _digits(scale: str, token: str, low: int, high: int) -> int:
    if _NONDIGIT.search(token):
        raise _bad_value(scale, token)
    digits = token.lstrip("0") or "0"
    # past 18 digits only "too big" matters (and int() refuses thousands of digits)
    value = int(digits) if len(digits) <= 18 else 10**18
    if not low <= value <= high:
        raise _bad_value(scale, token)
    return value


def _named(scale: str, token: str, names: dict[str, int], width: int, count: int) -> int:
    if _ALPHA.search(token):
        value = names.get(token[:width])
        if value is None:
            raise _bad_value(scale, token)
        return value
    return _digits(scale, token, 1, count) - 1


def _hour(token: str) -> int:
    word = _HOUR_WORD.fullmatch(token)
    if word:
        number, suffix = int(word.group(1)), word.group(2)
        if suffix == "am":
            value = 0 if number == 12 else number
        elif suffix == "pm":
            value = number if number == 12 else number + 12
        else:
            if number != 12:
                raise _bad_value("hr", token)
            value = 12
        if not 0 <= value <= 23:
            raise _bad_value("hr", token)
        return value
    return _digits("hr", token, 0, 23)


def _year(token: str) -> int:
    value = _digits("yr", token, 0, 10**9)
    if 99 < value < 1970:
        raise _bad_value("yr", token)
    return value


def _value(scale: str, token: str, single: bool) -> float:
    if scale == "yr":
        return _year(token)
    if scale == "mo":
        return _named(scale, token, _MONTHS, 3, 12)
    if scale == "wd":
        return _named(scale, token, _WDAYS, 2, 7)
    if scale == "wk":
        return _digits(scale, token, 1, 6) - 1
    if scale == "yd":
        if single:
            # the module decrements before checking, so Perl's numeric conversion applies:
            # "5x" is day 5, "2.0" is day 2
            value = _perl_numify(token) - 1
            if _NONDIGIT.search(_perl_str(value)) or not 0 <= value <= 365:
                raise _bad_value(scale, token)
            return value
        return _digits(scale, token, 1, 366) - 1
    if scale == "md":
        return _digits(scale, token, 1, 31)
    if scale == "hr":
        return _hour(token)
    return _digits(scale, token, 0, 59)  # min, sec


def _parse_scale(piece: str) -> ScaleTest:
    head = _SCALE_HEAD.match(piece)
    if not head:
        raise _Bad(f"{piece!r} is not 'scale {{values}}'; scales: {_SCALES_HELP}")
    name, data = head.group(1), head.group(2)
    if len(name) > 3:
        if name not in _LONG:
            raise _Bad(f"unknown scale {name!r}; scales: {_SCALES_HELP}")
        scale = _LONG[name]
    elif len(name) > 1:
        if name not in SCALES:
            raise _Bad(f"unknown scale {name!r}; scales: {_SCALES_HELP}")
        scale = name
    else:
        raise _Bad(f"missing or unknown scale {name!r} before '{{'; scales: {_SCALES_HELP}")
    data = _JOIN_DASH.sub(r"\1-\2", data)
    ranges: list[tuple[float, float]] = []
    for token in _perl_split(_WS_SPLIT, data):
        if "-" in token:
            first, _, second = token.rpartition("-")  # the last '-', as a greedy (.*)-(.*)
            if not _WORD.search(first) or not _WORD.search(second):
                raise _Bad(f"{scale} range {token!r} needs a value on each side of '-'")
            ranges.append((_value(scale, first, False), _value(scale, second, False)))
        else:
            if not _WORD.search(token):
                raise _bad_value(scale, token)
            value = _value(scale, token, True)
            ranges.append((value, value))
    return ScaleTest(scale, tuple(ranges))


def _parse_sub(sub: str) -> SubPeriod:
    opening, closing = sub.count("{"), sub.count("}")
    if opening != closing or opening == 0:
        raise _Bad(
            f"sub-period {sub!r} has {opening} '{{' and {closing} '}}'; "
            "each scale needs its values in one pair of braces, like wd {Mon-Fri}"
        )
    pieces = _perl_split(_SCALE_SPLIT, sub)
    if len(pieces) != opening:
        raise _Bad(
            f"sub-period {sub!r} is not a list of 'scale {{values}}' "
            "(sub-periods are separated by ',')"
        )
    return tuple(_parse_scale(piece) for piece in pieces)


def _parse_lenient(text: str) -> tuple[ParsedPeriod | None, list[SubPeriod | _Bad]]:
    """The special forms, or every sub-period parsed or its problem, in order."""
    spec = _perl_lc(_perl_trim(text))
    if spec == "":
        return ParsedPeriod(text, always=True), []
    if spec == "none":
        return ParsedPeriod(text, never=True), []
    items: list[SubPeriod | _Bad] = []
    for sub in _perl_split(_SUB_SPLIT, spec):
        try:
            items.append(_parse_sub(sub))
        except _Bad as exc:
            items.append(exc)
    return None, items


def parse_period(text: str) -> ParsedPeriod:
    """Check a Time::Period spec; PeriodError names the first problem and what is allowed."""
    special, items = _parse_lenient(text)
    if special is not None:
        return special
    subs: list[SubPeriod] = []
    for item in items:
        if isinstance(item, _Bad):
            raise PeriodError(f"period {text!r}: {item}")
        subs.append(item)
    return ParsedPeriod(text, tuple(subs))


def valid_period(text: str) -> str | None:
    """The problem with a spec, or None when it is valid."""
    try:
        parse_period(text)
    except PeriodError as exc:
        return str(exc)
    return None


def in_period(spec: str | ParsedPeriod, when: datetime) -> bool:
    """Whether `when` (its fields read as given: local time) is in the period.
    A malformed spec raises PeriodError."""
    parsed = parse_period(spec) if isinstance(spec, str) else spec
    return parsed.contains(when)


def perl_inperiod(text: str, when: datetime) -> int:
    """Exactly Time::Period::inPeriod's answer: 1 in, 0 out, -1 malformed, where (as in the
    module) sub-periods after the first matching one are not checked."""
    special, items = _parse_lenient(text)
    if special is not None:
        return 1 if special.contains(when) else 0
    fields = _time_fields(when)
    for item in items:
        if isinstance(item, _Bad):
            return -1
        if _sub_matches(item, fields):
            return 1
    return 0
