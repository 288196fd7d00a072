"""Pacemaker rules, evaluated as Pacemaker 2.1 ("Pacemaker Explained", and 2.1.5's behaviour).

A rule (``<rule>``) guards a location constraint or a block of name/value pairs. It holds
expressions — node attribute comparisons (``<expression>``), dates (``<date_expression>``), the
resource agent (``<rsc_expression>``) and the operation (``<op_expression>``) — and nested rules,
joined by ``boolean-op`` (``and``, the default, or ``or``).

Everything here is pure: the caller hands in a :class:`RuleContext` (the node's attributes, the
time, the resource, the operation) and gets an answer; nothing reads the clock or the system's
time zone. Where Pacemaker has a quirk that changes the outcome it is kept, and the comment says
so, because crm_simulate is the oracle. Text that cannot be read at all (a malformed date, an
unknown operation or type, a dangling ``id-ref``) raises :class:`RuleError` naming the element id,
so a typo in a CIB is reported instead of silently making a rule false.

Times: Pacemaker reads a date without an offset as local time; hastack's cores have no local
time zone, so such a date is read as UTC (the same as Pacemaker on a UTC host, which is how
crm_simulate's corpus runs).
"""

from __future__ import annotations

import calendar
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from types import MappingProxyType

from hastack.crm.cib.model import (
    INFINITY,
    Cib,
    DateExpression,
    DateSpec,
    Expression,
    NvPair,
    NvSet,
    OpExpression,
    RscExpression,
    Rule,
    parse_interval_ms,
)

__all__ = [
    "Duration",
    "IdIndex",
    "NextChange",
    "RuleContext",
    "RuleError",
    "add_duration",
    "char2score",
    "compare_versions",
    "date_expression_matches",
    "date_spec_matches",
    "evaluate_nvsets",
    "expression_matches",
    "index_ids",
    "interval_origin_delay_ms",
    "moon_phase",
    "op_expression_matches",
    "parse_iso8601",
    "parse_iso_duration",
    "resolve_rule",
    "rsc_expression_matches",
    "rule_matches",
    "rule_role",
    "rule_score",
    "rules_match",
]

_NO_RULES: Mapping[str, Rule] = MappingProxyType({})

# Pacemaker's role order (enum rsc_role_e): a #role expression compares positions in it.
_ROLES = ("Unknown", "Stopped", "Started", "Unpromoted", "Promoted")
_ROLE_ALIASES = {"slave": "Unpromoted", "master": "Promoted"}

# Default node-health scores for the colour names a score may hold (cluster options
# node-health-red/yellow/green default to -INFINITY, 0 and 0).
_HEALTH_SCORES = {"red": -INFINITY, "yellow": 0, "green": 0}


class RuleError(ValueError):
    """A rule or expression that cannot be evaluated: ``element_id`` names the element."""

    def __init__(self, element_id: str | None, message: str) -> None:
        self.element_id = element_id
        where = f"{element_id!r}" if element_id else "(without id)"
        super().__init__(f"rule element {where}: {message}")


# ---------------------------------------------------------------------------------------------
# The context a rule is evaluated in


@dataclass(frozen=True)
class RuleContext:
    """What a rule is asked about.

    ``node_attrs`` is the node's attributes including Pacemaker's built-ins (``#uname``, ``#id``,
    ``#kind`` = "cluster", ``#is_dc`` = "true"/"false", ``#cluster-name``...). ``None`` means
    there is no node at all (rsc_defaults, op_defaults): then every node expression is false, as
    in Pacemaker — which differs from a node that has no attributes (``not_defined`` is true).

    ``now`` is a timezone-aware time; ``None`` makes every date expression false. ``rsc`` is the
    resource's (class, provider, type): ``None`` makes ``rsc_expression`` true (Pacemaker's
    behaviour when it has no resource), while ``op`` = ``None`` makes ``op_expression`` false.
    ``params``/``meta`` are the resource's parameters and meta-attributes that an expression's
    ``value-source="param"``/``"meta"`` names. ``role`` is the role asked about: ``#role``
    expressions compare with it, and a top-level rule with ``role=`` matches only that role
    (``None``: Pacemaker's "unknown" role, ``#role`` expressions are false and ``role=`` is not
    checked here, the caller filters by :func:`rule_role`). ``re_groups`` are the submatches of an
    ``rsc-pattern`` (group 0 the whole match) that ``%0``..``%9`` in an attribute name stand for.
    """

    node_attrs: Mapping[str, str] | None = field(default_factory=dict)
    now: datetime | None = None
    rsc: tuple[str | None, str | None, str | None] | None = None
    op: tuple[str, int] | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)
    role: str | None = None
    re_groups: tuple[str | None, ...] = ()

    def __post_init__(self) -> None:
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("RuleContext.now must be timezone-aware (UTC)")


@dataclass(frozen=True)
class IdIndex:
    """Rules, attribute sets and name/value pairs of a CIB by id, to resolve ``id-ref``s."""

    rules: Mapping[str, Rule] = field(default_factory=dict)
    nvsets: Mapping[str, NvSet] = field(default_factory=dict)
    nvpairs: Mapping[str, NvPair] = field(default_factory=dict)


@dataclass
class NextChange:
    """The earliest time after which a date expression evaluated so far would give another
    answer: Pacemaker's ``next_change``, from which it sets the transition's ``recheck-by``.

    Pass one to the evaluating functions to collect it. As in Pacemaker only the expressions
    actually evaluated count (a rule that failed on ``#uname`` first never looks at its dates),
    ``date_spec`` never sets it, and times not after ``now`` are the caller's to drop.
    """

    when: datetime | None = None

    def note(self, when: datetime) -> None:
        """Keep ``when`` if it is earlier than what is kept (crm_time_set_if_earlier)."""
        if self.when is None or when < self.when:
            self.when = when


def _walk(obj: object) -> Iterator[object]:
    """Every model element below ``obj`` (dataclasses and tuples), depth first."""
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple):
            stack.extend(reversed(item))
        elif is_dataclass(item) and not isinstance(item, type):
            yield item
            stack.extend(
                reversed([getattr(item, f.name) for f in fields(item) if f.name != "unknown"])
            )


def index_ids(cib: Cib) -> IdIndex:
    """Index the configuration's rules, sets and pairs by id (the status section is left out:
    nothing refers into it). The first element of an id wins, as ``expand_idref`` finds it."""
    rules: dict[str, Rule] = {}
    nvsets: dict[str, NvSet] = {}
    nvpairs: dict[str, NvPair] = {}
    parts = (
        cib.crm_config,
        cib.rsc_defaults,
        cib.op_defaults,
        cib.nodes,
        cib.resources,
        cib.constraints,
    )
    for item in _walk(parts):
        if isinstance(item, Rule) and item.id and item.id_ref is None:
            rules.setdefault(item.id, item)
        elif isinstance(item, NvSet) and item.id and item.id_ref is None:
            nvsets.setdefault(item.id, item)
        elif isinstance(item, NvPair) and item.id and item.id_ref is None:
            nvpairs.setdefault(item.id, item)
    return IdIndex(rules=rules, nvsets=nvsets, nvpairs=nvpairs)


# ---------------------------------------------------------------------------------------------
# Numbers as Pacemaker's C library reads them (strtoll/strtod: a prefix, the rest ignored)

_LL_PREFIX = re.compile(r"\s*([+-]?\d+)")
_DBL_PREFIX = re.compile(
    r"\s*([+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan))", re.IGNORECASE
)
_HEX_DBL_PREFIX = re.compile(
    r"\s*([+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?\d+)?)"
)
_LL_MAX = 2**63 - 1


def _scan_ll(text: str) -> int | None:
    """pcmk__scan_ll: the leading integer (trailing text ignored); None if there is none or it
    overflows a long long (Pacemaker then falls back to comparing strings)."""
    m = _LL_PREFIX.match(text)
    if m is None:
        return None
    value = int(m.group(1))
    return value if -_LL_MAX - 1 <= value <= _LL_MAX else None


def _scan_double(text: str) -> float | None:
    """pcmk__scan_double: strtod's leading number (decimal, hex, inf, nan); None if there is
    none, or it overflows or underflows (Pacemaker then compares strings)."""
    m = _HEX_DBL_PREFIX.match(text)
    if m is not None:
        try:
            value = float.fromhex(m.group(1))
        except OverflowError:
            return None  # overflow: ERANGE
    else:
        m = _DBL_PREFIX.match(text)
        if m is None:
            return None
        value = float(m.group(1))
        if value in (float("inf"), float("-inf")) and "inf" not in m.group(1).lower():
            return None  # overflow: ERANGE
    if abs(value) <= sys.float_info.min and any(ch not in "0.eE" for ch in m.group(0)):
        # Pacemaker calls a result this small an underflow unless the text read was all zeros,
        # points and exponent marks (so even "-0", " 0" and "0x0" count).
        return None
    return value


def char2score(text: str | None) -> int:
    """A score as Pacemaker's char2score reads a score or a score-attribute's value: INFINITY,
    +INFINITY, -INFINITY, red/yellow/green (default health scores), else the leading integer
    clamped to +/-INFINITY, and 0 for anything unreadable (Pacemaker is lenient here)."""
    if text is None:
        return 0
    if text == "-INFINITY":
        return -INFINITY
    if text in ("INFINITY", "+INFINITY"):
        return INFINITY
    colour = _HEALTH_SCORES.get(text.lower())
    if colour is not None:
        return colour
    value = _scan_ll(text)
    if value is None:
        m = _LL_PREFIX.match(text)
        if m is None:
            return 0
        value = int(m.group(1))  # overflowed a long long: clamped below all the same
    return max(-INFINITY, min(INFINITY, value))


def compare_versions(left: str, right: str) -> int:
    """Pacemaker's compare_version: dot-separated integers compared in turn, a missing part
    counting as 0 ("1.2" == "1.2.0"). Returns -1, 0 or 1."""

    def parts(text: str) -> list[int]:
        out: list[int] = []
        rest: str | None = text
        if text == "":
            return [-1]  # version_helper("") is -1
        while rest:
            m = re.match(r"\s*[+-]?\d+", rest)
            if m is None:
                # strtol read nothing: Pacemaker would loop on the same text; count it as 0
                # and stop, which orders it as Pacemaker's first comparison does.
                out.append(0)
                break
            out.append(int(m.group(0)))
            rest = rest[m.end() :]
            if rest.startswith("."):
                rest = rest[1:]
        return out

    a, b = parts(left), parts(right)
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else 0
        y = b[i] if i < len(b) else 0
        if x != y:
            return -1 if x < y else 1
    return 0


# ---------------------------------------------------------------------------------------------
# Node attribute expressions

_EXPR_OPS = ("lt", "gt", "lte", "gte", "eq", "ne", "defined", "not_defined")
_EXPR_TYPES = ("string", "integer", "number", "version")


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _strcasecmp(a: str, b: str) -> int:
    """C's strcasecmp in the C locale: only ASCII letters fold (code point order is UTF-8
    byte order, so the rest compares as strcmp would)."""
    la, lb = a.translate(_ASCII_LOWER), b.translate(_ASCII_LOWER)
    return (la > lb) - (la < lb)


def _compare_values(left: str | None, right: str | None, type_: str | None, op: str) -> int:
    """compare_attr_expr_vals: the attribute's value against the expression's."""
    if left is None or right is None:
        if left is None and right is None:
            return 0
        return 1 if right is None else -1
    if type_ is None:
        # Pacemaker's default: integer for lt/gt/lte/gte (number when either value has a
        # decimal point), string otherwise.
        if op in ("lt", "gt", "lte", "gte"):
            type_ = "number" if ("." in left or "." in right) else "integer"
        else:
            type_ = "string"
    if type_ == "integer":
        li, ri = _scan_ll(left), _scan_ll(right)
        if li is not None and ri is not None:
            return (li > ri) - (li < ri)
        return _strcasecmp(left, right)  # Pacemaker falls back to a string comparison
    if type_ == "number":
        lf, rf = _scan_double(left), _scan_double(right)
        if lf is not None and rf is not None:
            return (lf > rf) - (lf < rf)
        return _strcasecmp(left, right)
    if type_ == "version":
        return compare_versions(left, right)
    return _strcasecmp(left, right)  # "string": case-insensitive, as strcasecmp


def _expand_re_groups(text: str, groups: tuple[str | None, ...]) -> str:
    """pe_expand_re_matches: %0..%9 become the rsc-pattern's submatches; a %N whose group did
    not match (or matched empty) is left as it is."""
    if not groups or "%" not in text:
        return text

    def repl(m: re.Match[str]) -> str:
        i = int(m.group(1))
        value = groups[i] if i < len(groups) else None
        return value if value else m.group(0)

    return re.sub(r"%(\d)", repl, text)


def _role_index(text: str | None) -> int:
    """Position of a role name in Pacemaker's order (0 = unknown/unreadable)."""
    if text is None:
        return 0
    name = _ROLE_ALIASES.get(text.lower(), text)
    for i, role in enumerate(_ROLES):
        if role.lower() == name.lower():
            return i
    return 0


def _role_expression(expr: Expression, role: str | None) -> bool:
    """pe__eval_role_expr: ``#role`` compared with the role asked about."""
    current = _role_index(role)
    if current == 0:
        return False
    op = expr.operation.lower()
    stopped, started, unpromoted = 1, 2, 3
    if op == "defined":
        return current > started
    if op == "not_defined":
        return stopped <= current < unpromoted
    wanted = _role_index(expr.value)
    if op == "eq":
        return wanted == current
    if op == "ne":
        # "ne" is only meaningful for promotable roles: a non-promotable role never differs
        # from a promotable one.
        if current < unpromoted and wanted > unpromoted:
            return False
        return wanted != current
    return False


def expression_matches(expr: Expression, ctx: RuleContext) -> bool:
    """One ``<expression>``: a node attribute (or ``#role``) against a value."""
    op = (expr.operation or "").lower()
    if op not in _EXPR_OPS:
        raise RuleError(expr.id, f"unknown operation {expr.operation!r} ({', '.join(_EXPR_OPS)})")
    type_ = expr.type.lower() if expr.type is not None else None
    if type_ is not None and type_ not in _EXPR_TYPES:
        raise RuleError(expr.id, f"unknown type {expr.type!r} ({', '.join(_EXPR_TYPES)})")
    source = (expr.value_source or "literal").lower()
    if source not in ("literal", "param", "meta"):
        raise RuleError(
            expr.id, f"unknown value-source {expr.value_source!r} (literal, param, meta)"
        )

    if expr.attribute == "#role":
        return _role_expression(expr, ctx.role)
    if ctx.node_attrs is None:
        return False  # no node: a node expression can never succeed

    attribute = _expand_re_groups(expr.attribute, ctx.re_groups)
    value = expr.value
    if source != "literal" and value is not None:
        value = (ctx.params if source == "param" else ctx.meta).get(value)
    actual = ctx.node_attrs.get(attribute)

    if op == "defined":
        return actual is not None
    if op == "not_defined":
        return actual is None
    cmp = _compare_values(actual, value, type_, op)
    if op == "eq":
        return cmp == 0
    if op == "ne":
        return cmp != 0
    if actual is None or value is None:
        return False  # an ordering against nothing is false
    return {"lt": cmp < 0, "lte": cmp <= 0, "gt": cmp > 0, "gte": cmp >= 0}[op]


# ---------------------------------------------------------------------------------------------
# Resource and operation expressions (rsc_defaults, op_defaults)


def rsc_expression_matches(expr: RscExpression, ctx: RuleContext) -> bool:
    """pe__eval_rsc_expr: class and type match when given; the provider must be the same,
    including being absent (2.1.5 compares it even when the expression names none)."""
    if ctx.rsc is None:
        return True
    cls, provider, type_ = ctx.rsc
    if expr.cls is not None and expr.cls != cls:
        return False
    if expr.provider != provider:
        return False
    return not (expr.type is not None and expr.type != type_)


def op_expression_matches(expr: OpExpression, ctx: RuleContext) -> bool:
    """pe__eval_op_expr: the operation's name, and its interval when the expression gives
    one."""
    if ctx.op is None:
        return False
    name, interval_ms = ctx.op
    if expr.interval is not None:
        try:
            wanted = parse_interval_ms(expr.interval)
        except ValueError as exc:
            raise RuleError(expr.id, f"invalid interval {expr.interval!r}") from exc
        if wanted != interval_ms:
            return False
    return expr.name == name


# ---------------------------------------------------------------------------------------------
# ISO 8601 times and durations, as Pacemaker's crm_time reads them


def _days_in_year(year: int) -> int:
    return 366 if calendar.isleap(year) else 365


def _date_from_ordinal(year: int, day: int) -> date:
    """Day ``day`` (1-based, may run past the year either way) of ``year``."""
    return date(year, 1, 1) + timedelta(days=day - 1)


def _sscanf_ints(text: str, pattern: str) -> list[int]:
    """The integers C's sscanf reads from ``text`` with ``pattern`` made of ``%d``, ``%Nd``
    (at most N characters, sign included) and literal characters; it stops at the first
    mismatch, as sscanf does (so ``len(result)`` is sscanf's return value)."""
    out: list[int] = []
    pos = 0
    for m in re.finditer(r"%(\d*)d|(.)", pattern, re.DOTALL):
        if m.group(2) is not None:
            if pos < len(text) and text[pos] == m.group(2):
                pos += 1
                continue
            break
        while pos < len(text) and text[pos].isspace():
            pos += 1
        width = int(m.group(1)) if m.group(1) else len(text)
        field = text[pos : pos + width]
        num = re.match(r"[+-]?\d+", field)
        if num is None:
            break
        out.append(int(num.group(0)))
        pos += num.end()
    return out


def _parse_seconds(text: str, what: str) -> int:
    """crm_time_parse_sec: "HH:MM:SS", "HH:MM", "HH" or "HHMMSS"; 24:00:00 allowed."""
    values = _sscanf_ints(text, "%d:%d:%d")
    if len(values) == 1:
        values = _sscanf_ints(text, "%2d%2d%2d")
    if not values:
        raise ValueError(f"{what}: {text!r} is not a valid ISO 8601 time")
    hour, minute, second = [*values, 0, 0][:3]
    if hour == 24 and minute == 0 and second == 0:
        pass  # the end of the day, as 00:00:00 of the next
    elif not 0 <= hour < 24:
        raise ValueError(f"{what}: {text!r} is not a valid time ({hour} is not a valid hour)")
    if not 0 <= minute < 60:
        raise ValueError(f"{what}: {text!r} is not a valid time ({minute} is not a valid minute)")
    if not 0 <= second < 60:
        raise ValueError(f"{what}: {text!r} is not a valid time ({second} is not a valid second)")
    return hour * 3600 + minute * 60 + second


def _parse_time_part(text: str, what: str) -> tuple[int, int]:
    """crm_time_parse: seconds of the day and the offset in seconds. The offset is only read
    after a "Z" or a space ("10:00 +02:00"); one attached to the time ("10:00+02:00") is ignored
    and the time is local (UTC here), exactly as Pacemaker 2.1 does."""
    seconds = _parse_seconds(text, what)
    offset_text: str | None = None
    z = text.find("Z")
    if z >= 0:
        offset_text = text[z:]
    else:
        sp = text.find(" ")
        if sp >= 0:
            offset_text = text[sp:].lstrip()
    offset = 0
    # After "Z" the offset is 0; text that is neither a sign nor a digit is ignored (0 too).
    if offset_text and (offset_text[0] in "+-" or offset_text[0].isdigit()):
        negate = offset_text[0] == "-"
        body = offset_text[1:] if offset_text[0] in "+-" else offset_text
        offset = _parse_seconds(body, what)
        if negate:
            offset = -offset
    return seconds, offset


def parse_iso8601(text: str, today: date | None = None) -> datetime:
    """Read a date and time as Pacemaker's crm_time_new does and return it timezone-aware.

    Dates: ``YYYY-MM-DD`` (or ``YYYYMMDD``), ordinal ``YYYY-DDD``, week dates ``YYYY-Www-D``,
    and ``epoch``; then optionally ``T`` or a space and a time ``HH[:MM[:SS]]`` (or
    ``HHMMSS``), with ``Z`` or a space-separated offset. A time alone (``T10:00``, ``10:00``)
    falls on ``today``, which must then be given (Pacemaker would read the clock). Raises
    ValueError saying what is wrong.
    """
    try:
        return _parse_iso8601(text, today)
    except OverflowError as exc:  # a year or week far outside what a datetime holds
        raise ValueError(f"date {text!r} is out of range") from exc


def _parse_iso8601(text: str, today: date | None) -> datetime:
    what = f"date {text!r}"
    if text is None or text.strip() == "":
        raise ValueError("no ISO 8601 date/time given")
    if text[0] == "T" or (len(text) > 2 and text[2] == ":"):
        if today is None:
            raise ValueError(f"{what} is a time without a date, and no date was given for it")
        seconds, offset = _parse_time_part(text[1:] if text[0] == "T" else text, what)
        return _make_datetime(today, seconds, offset)

    if text[:5].lower() == "epoch" and (len(text) == 5 or text[5] == "/" or text[5].isspace()):
        return datetime(1970, 1, 1, tzinfo=UTC)

    day_value: date
    ymd = _sscanf_ints(text, "%d-%d-%d")
    if len(ymd) == 1:
        ymd = _sscanf_ints(text, "%4d%2d%2d")
    ordinal = _sscanf_ints(text, "%d-%d")
    week = _sscanf_ints(text, "%d-W%d-%d")
    if len(ymd) == 3:
        year, month, day = ymd
        if not 1 <= month <= 12:
            raise ValueError(f"{what} is not a valid date ({month} is not a valid month)")
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            raise ValueError(f"{what} is not a valid date ({day} is not a valid day of the month)")
        day_value = date(year, month, day)
    elif len(ordinal) == 2:
        # Pacemaker reads "YYYY-NN" as an ordinal date: "2023-05" is the 5th of January.
        year, yday = ordinal
        if not 1 <= yday <= _days_in_year(year):
            raise ValueError(
                f"{what} is not a valid date ({yday} is not a valid day of the year, "
                f"max {_days_in_year(year)})"
            )
        day_value = _date_from_ordinal(year, yday)
    elif len(week) == 3:
        year, wk, wday = week
        weeks = date(year, 12, 28).isocalendar()[1]
        if wk > weeks:  # Pacemaker checks only the upper bound: W00 is the week before W01
            raise ValueError(f"{what} is not a valid date ({wk} is not a valid week, max {weeks})")
        if not 1 <= wday <= 7:
            raise ValueError(f"{what} is not a valid date ({wday} is not a valid day of the week)")
        # Week 1 holds the year's first Thursday (ISO 8601), as Pacemaker computes it.
        jan1 = date(year, 1, 1).isoweekday()
        shift = 1 - jan1 if jan1 <= 4 else 8 - jan1
        day_value = _date_from_ordinal(year, (wk - 1) * 7 + shift + wday)
    else:
        raise ValueError(f"{what} is not a valid ISO 8601 date/time")

    # The time follows the date's digits, dashes and W after a "T" or a space (strspn).
    rest = text.lstrip("0123456789-W")
    if rest[:1] in (" ", "T"):
        seconds, offset = _parse_time_part(rest[1:], what)
    else:
        seconds, offset = 0, 0  # a date alone: midnight UTC; anything else is ignored
    return _make_datetime(day_value, seconds, offset)


def _make_datetime(day: date, seconds: int, offset: int) -> datetime:
    if not -86400 < offset < 86400:
        raise ValueError(f"offset of {offset} seconds is out of range")
    tz = UTC if offset == 0 else timezone(timedelta(seconds=offset))
    return datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(seconds=seconds)


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration as Pacemaker keeps it: years and months (calendar units, added to a
    date as such), days and seconds."""

    years: int = 0
    months: int = 0
    days: int = 0
    seconds: int = 0


_DURATION_FIELDS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds")
# Names Pacemaker's schemas allow in <duration> (shared with date_spec in the older schemas)
# but 2.1.5 does not read: accepted and ignored, so a valid CIB is not refused.
_DURATION_IGNORED = ("monthdays", "weekdays", "yearsdays", "weekyears", "moon")


def parse_iso_duration(text: str | DateSpec) -> Duration:
    """Read a duration: ISO 8601 text (``P1Y2M3W4DT5H6M7S``; units in any order, ``M`` is
    minutes after ``T``), or a ``<duration>`` element's fields (years, months, weeks, days,
    hours, minutes, seconds). Raises ValueError (RuleError for an element) on bad input."""
    if isinstance(text, DateSpec):
        spec = text
        values: dict[str, int] = {}
        for name in sorted(spec.fields):
            if name in _DURATION_IGNORED:
                continue
            if name not in _DURATION_FIELDS:
                raise RuleError(
                    spec.id, f"unknown duration field {name!r} ({', '.join(_DURATION_FIELDS)})"
                )
            raw = spec.fields[name]
            m = re.match(r"\s*([+-]?\d+)", raw)
            if m is None:
                raise RuleError(spec.id, f"{name}={raw!r} is not an integer")
            values[name] = int(m.group(1))
        return Duration(
            years=values.get("years", 0),
            months=values.get("months", 0),
            days=values.get("weeks", 0) * 7 + values.get("days", 0),
            seconds=values.get("hours", 0) * 3600
            + values.get("minutes", 0) * 60
            + values.get("seconds", 0),
        )

    if not text or text[0] != "P":
        raise ValueError(f"{text!r} is not a valid ISO 8601 duration (it must start with P)")
    if len(text) == 1 or text[1].isspace():
        raise ValueError(f"{text!r} is not a valid ISO 8601 duration (nothing follows P)")
    years = months = days = seconds = 0
    is_time = False
    i = 1
    while i < len(text) and text[i] != "/" and not text[i].isspace():
        if text[i] == "T":
            is_time = True
            i += 1
            continue
        m = re.compile(r"[+-]?(\d{1,10})").match(text, i)
        if m is None:
            raise ValueError(f"{text!r} is not a valid ISO 8601 duration (no number at {i})")
        number = int(m.group(0))
        i = m.end()
        unit = text[i] if i < len(text) else ""
        if unit == "Y":
            years = number
        elif unit == "M" and not is_time:
            months = number
        elif unit == "M":
            seconds += number * 60
        elif unit == "W":
            days += number * 7
        elif unit == "D":
            days += number
        elif unit == "H":
            seconds += number * 3600
        elif unit == "S":
            seconds += number
        elif unit == "":
            raise ValueError(f"{text!r} is not a valid ISO 8601 duration (no unit after {number})")
        else:
            raise ValueError(f"{text!r} is not a valid ISO 8601 duration (unknown unit {unit!r})")
        i += 1
    return Duration(years=years, months=months, days=days, seconds=seconds)


def add_duration(start: datetime, duration: Duration) -> datetime:
    """crm_time_add: years (keeping the day of the year, as Pacemaker stores dates as year and
    ordinal day), then months (keeping the day of the month, clamped to the month's length),
    then days and seconds; calendar arithmetic is done in ``start``'s own offset."""
    tz = start.tzinfo
    local = start.replace(tzinfo=None)
    day = local.date()
    clock = local - datetime(day.year, day.month, day.day)
    if duration.years:
        yday = day.timetuple().tm_yday
        day = _date_from_ordinal(day.year + duration.years, yday)
    if duration.months:
        index = day.year * 12 + (day.month - 1) + duration.months
        year, month = divmod(index, 12)
        month += 1
        day = date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
    result = datetime(day.year, day.month, day.day) + clock
    result += timedelta(days=duration.days, seconds=duration.seconds)
    return result.replace(tzinfo=tz)


def interval_origin_delay_ms(
    origin: str, interval_ms: int, now: datetime, op_id: str | None = None
) -> int:
    """The start delay Pacemaker gives a recurring operation with ``interval-origin``, so that
    it runs at the origin plus a whole number of intervals: the seconds from ``now`` to the
    next such time (0 when ``now`` is one), in milliseconds, in whole seconds as
    unpack_interval_origin.
    An unreadable origin raises RuleError naming ``op_id`` (Pacemaker ignores it)."""
    interval_s = interval_ms // 1000
    if interval_s <= 0:
        raise RuleError(op_id, "interval-origin needs a recurring interval of at least 1s")
    try:
        start = parse_iso8601(origin)
    except ValueError as exc:
        raise RuleError(op_id, f"interval-origin: {exc}") from exc
    since = int(now.timestamp()) - int(start.timestamp())
    # Pacemaker: r = since % interval (C's remainder), delay = (r > 0 ? interval : 0) - r.
    # For either sign of ``since`` that is the floor remainder of -since.
    return (-since) % interval_s * 1000


# ---------------------------------------------------------------------------------------------
# Date expressions

_DATE_SPEC_FIELDS = (
    "years",
    "months",
    "monthdays",
    "hours",
    "minutes",
    "seconds",
    "yeardays",
    "weekyears",
    "weeks",
    "weekdays",
    "moon",
)


def moon_phase(when: datetime) -> int:
    """Pacemaker's phase_of_the_moon (from NetHack): 0 = new moon ... 4 = full ... 7, computed
    from the year and the 1-based day of the year."""
    year, yday = when.year, when.timetuple().tm_yday
    golden = (year % 19) + 1
    epact = (11 * golden + 18) % 30
    if (epact == 25 and golden > 11) or epact == 24:
        epact += 1
    return ((((yday + epact) * 6) + 11) % 177) // 22 & 7


def _parse_range(spec_id: str, name: str, text: str) -> tuple[int | None, int | None]:
    """pcmk__parse_ll_range: "N", "N-M", "N-" or "-M" (None: unbounded)."""
    m = re.fullmatch(r"\s*(\d+)?\s*(-)?\s*(\d+)?\s*", text)
    if m is None or (m.group(1) is None and m.group(3) is None):
        raise RuleError(spec_id, f"{name}={text!r} is not a number or a range such as 9-16")
    low = int(m.group(1)) if m.group(1) is not None else None
    high = int(m.group(3)) if m.group(3) is not None else None
    if m.group(2) is None:
        if low is None or high is not None:
            raise RuleError(spec_id, f"{name}={text!r} is not a number or a range such as 9-16")
        return low, low
    return low, high


def date_spec_matches(spec: DateSpec, now: datetime) -> bool:
    """pe_cron_range_satisfied: every field given must hold for ``now`` (taken in its own time
    zone); a spec without fields always holds."""
    iso = now.isocalendar()
    values = {
        "years": now.year,
        "months": now.month,
        "monthdays": now.day,
        "hours": now.hour,
        "minutes": now.minute,
        "seconds": now.second,
        "yeardays": now.timetuple().tm_yday,
        "weekyears": iso[0],
        "weeks": iso[1],
        "weekdays": iso[2],
        "moon": moon_phase(now),
    }
    for name in sorted(spec.fields):
        if name not in values and name != "yearsdays":
            # "yearsdays" is the schemas' old misspelling: valid there, never read by 2.1.5.
            raise RuleError(
                spec.id, f"unknown date_spec field {name!r} ({', '.join(_DATE_SPEC_FIELDS)})"
            )
    for name in _DATE_SPEC_FIELDS:
        text = spec.fields.get(name)
        if text is None:
            continue
        low, high = _parse_range(spec.id, name, text)
        value = values[name]
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def _date_attr(expr: DateExpression, name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_iso8601(text)
    except ValueError as exc:
        raise RuleError(expr.id, f"{name}: {exc}") from exc


def date_expression_matches(
    expr: DateExpression, now: datetime | None, next_change: NextChange | None = None
) -> bool:
    """pe__eval_date_expr: ``in_range`` (the default; start and/or end, or start plus a
    duration; both ends inclusive), ``gt`` (after start), ``lt`` (before end) and
    ``date_spec``. Without ``now`` a date expression is false. ``next_change`` collects when
    the answer changes: a start not reached yet, the second after an in_range end or a gt
    start, an lt end."""
    changes = next_change if next_change is not None else NextChange()
    op = (expr.operation or "in_range").lower()
    if op not in ("in_range", "gt", "lt", "date_spec"):
        raise RuleError(
            expr.id, f"unknown operation {expr.operation!r} (in_range, gt, lt, date_spec)"
        )
    start = _date_attr(expr, "start", expr.start)
    end = _date_attr(expr, "end", expr.end)
    if start is not None and end is None and expr.duration is not None:
        try:
            end = add_duration(start, parse_iso_duration(expr.duration))
        except (OverflowError, ValueError) as exc:
            if isinstance(exc, RuleError):
                raise
            raise RuleError(expr.id, f"start plus duration is out of range: {exc}") from exc
    if now is None:
        return False
    now = now.replace(microsecond=0)  # crm_time has whole seconds
    second = timedelta(seconds=1)
    if op == "in_range":
        if start is None and end is None:
            return False  # in_range needs a start or an end
        if start is not None and now < start:
            changes.note(start)
            return False
        if end is not None and now > end:
            return False
        if end is not None:
            changes.note(end + second)  # the answer holds through the end's second
        return True
    if op == "gt":
        if start is None:
            return False
        if now > start:
            return True
        changes.note(start + second)
        return False
    if op == "lt":
        if end is None:
            return False
        if now < end:
            changes.note(end)
            return True
        return False
    if expr.date_spec is None:
        return False  # date_spec operation without a date_spec: Pacemaker's crash path, false
    return date_spec_matches(expr.date_spec, now)


# ---------------------------------------------------------------------------------------------
# Rules


def resolve_rule(rule: Rule, rules_by_id: Mapping[str, Rule]) -> Rule:
    """The rule an ``id-ref`` names (the rule itself when it has none)."""
    if rule.id_ref is None:
        return rule
    target = rules_by_id.get(rule.id_ref)
    if target is None:
        raise RuleError(rule.id or rule.id_ref, f"id-ref {rule.id_ref!r} names no rule")
    return target


def rule_role(rule: Rule, rules_by_id: Mapping[str, Rule] = _NO_RULES) -> str | None:
    """The role a rule is limited to (``role=``), in Pacemaker 2.1's names (Master is
    Promoted, Slave is Unpromoted); None when the rule has none. An unreadable role raises."""
    role = resolve_rule(rule, rules_by_id).role
    if role is None:
        return None
    index = _role_index(role)
    if index == 0:
        raise RuleError(rule.id, f"unknown role {role!r} (Stopped, Started, Unpromoted, Promoted)")
    return _ROLES[index]


def _eval_rule(
    rule: Rule,
    ctx: RuleContext,
    rules_by_id: Mapping[str, Rule],
    depth: int,
    next_change: NextChange | None,
) -> bool:
    """pe_eval_expr: "and" stops at the first false, "or" at the first true. An empty rule is
    true for "and" and false for "or" (Pacemaker logs it as invalid)."""
    if depth > 100:
        raise RuleError(rule.id, "rules nest too deeply (an id-ref loop?)")
    rule = resolve_rule(rule, rules_by_id)
    do_and = (rule.boolean_op or "and").lower() != "or"
    for item in rule.expressions:
        if isinstance(item, Rule):
            test = _eval_rule(item, ctx, rules_by_id, depth + 1, next_change)
        elif isinstance(item, Expression):
            test = expression_matches(item, ctx)
        elif isinstance(item, DateExpression):
            test = date_expression_matches(item, ctx.now, next_change)
        elif isinstance(item, RscExpression):
            test = rsc_expression_matches(item, ctx)
        else:
            test = op_expression_matches(item, ctx)
        if test and not do_and:
            return True
        if not test and do_and:
            return False
    return do_and


def rule_matches(
    rule: Rule,
    ctx: RuleContext,
    rules_by_id: Mapping[str, Rule] = _NO_RULES,
    next_change: NextChange | None = None,
) -> bool:
    """Whether ``rule`` holds in ``ctx``. ``rules_by_id`` resolves ``id-ref``s (see
    :func:`index_ids`); ``next_change`` collects when a date in it changes the answer. When
    ``ctx.role`` is given and the rule has ``role=``, the rule holds only for that role (its
    dates still count for ``next_change``, as Pacemaker evaluates a location rule on every node
    before filtering by role)."""
    matched = _eval_rule(rule, ctx, rules_by_id, 0, next_change)
    if matched and ctx.role is not None:
        wanted = rule_role(rule, rules_by_id)
        if wanted is not None and _role_index(ctx.role) != _role_index(wanted):
            return False
    return matched


def rules_match(
    rules: tuple[Rule, ...],
    ctx: RuleContext,
    rules_by_id: Mapping[str, Rule] = _NO_RULES,
    next_change: NextChange | None = None,
) -> bool:
    """pe_eval_rules: a block with no rules always applies, otherwise any rule that holds (the
    rules after the first that holds are not evaluated)."""
    if not rules:
        return True
    return any(rule_matches(r, ctx, rules_by_id, next_change) for r in rules)


def rule_score(rule: Rule, ctx: RuleContext, rules_by_id: Mapping[str, Rule] = _NO_RULES) -> int:
    """The score a location rule gives a node (whether or not the rule holds, see
    :func:`rule_matches`): ``score``; else ``score-attribute``, the node's value of that
    attribute read as a score — -INFINITY when the node does not have it, as Pacemaker's
    get_node_score; 0 when the rule has neither."""
    rule = resolve_rule(rule, rules_by_id)
    if rule.score is not None:
        return char2score(rule.score)
    if rule.score_attribute is not None:
        value = (ctx.node_attrs or {}).get(rule.score_attribute)
        return -INFINITY if value is None else char2score(value)
    return 0


# ---------------------------------------------------------------------------------------------
# Blocks of name/value pairs


def evaluate_nvsets(
    sets: tuple[NvSet, ...],
    ctx: RuleContext,
    first_id: str | None = None,
    *,
    index: IdIndex | None = None,
    overwrite: bool = False,
    next_change: NextChange | None = None,
) -> dict[str, str]:
    """Merge attribute sets as Pacemaker's pe_eval_nvpairs does, taking only the sets whose
    rules hold in ``ctx``: the set ``first_id`` first, then by descending ``score``; without
    ``overwrite`` the first value of a name wins, with it the last. A value of ``#default``
    removes the value set so far. ``index`` resolves ``id-ref``s of sets, pairs and rules;
    ``next_change`` collects when a date in the sets' rules changes the answer.

    Among sets of equal score the *last* in document order comes first: Pacemaker 2.1.5
    prepends each set to a list and then sorts it stably, and crm_simulate confirms that of two
    score-less meta_attributes sets the second one's target-role wins."""
    idx = index or IdIndex()
    expanded: list[NvSet] = []
    for s in sets:
        if s.id_ref is not None:
            target = idx.nvsets.get(s.id_ref)
            if target is None:
                raise RuleError(s.id or s.id_ref, f"id-ref {s.id_ref!r} names no attribute set")
            s = target
        expanded.append(s)

    def order(s: NvSet) -> tuple[bool, int]:
        special = first_id is not None and s.id.lower() == first_id.lower()
        return (not special, -char2score(s.score))

    result: dict[str, str] = {}
    for s in sorted(reversed(expanded), key=order):
        if not rules_match(s.rules, ctx, idx.rules, next_change):
            continue
        for pair in s.pairs:
            name, value = pair.name, pair.value
            if pair.id_ref is not None and (name is None or value is None):
                target_pair = idx.nvpairs.get(pair.id_ref)
                if target_pair is None:
                    raise RuleError(
                        pair.id or pair.id_ref, f"id-ref {pair.id_ref!r} names no nvpair"
                    )
                name = name if name is not None else target_pair.name
                value = value if value is not None else target_pair.value
            if name is None or value is None:
                continue
            if value.lower() == "#default":
                result.pop(name, None)
            elif name not in result or overwrite:
                result[name] = value
    return result
