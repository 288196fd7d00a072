"""mon.cf as mon 1.3 reads it (its read_cf), into hastack.mon.model.MonConfig.

The reading rules are mon's: a line whose first non-blank is `#` is skipped; a line ending in
`\\` continues on the next one (leading blanks of the next dropped); a blank line ends a record;
`key = value` lines outside a watch are globals (anywhere else, even inside a hostgroup record);
further lines of a hostgroup/view/alias record add to it. Service keys come before the first
`period` of a service; after it only period keys are accepted. Times (`dhmstos`) always need
their unit (30s, 5m, 1h, 2d): mon has no key taking a bare number of seconds, and `alertafter`
takes a bare *count*.

Where hastack differs (see docs/compat.md): every problem is reported, not only the first;
nothing is returned unless the whole file is good; the line of a problem is the last physical
line of its logical line, like mon's; unrecognised lines outside any record are warnings (mon
ignores them silently); numeric globals must be whole numbers; an `exit=` that is not N or N-M
is an error; zero times (`interval 0s`) are rejected where mon needs a positive one; a period is
checked fully, whatever the time (Time::Period stops at the first matching sub-period); authfile
and userfile are not checked for readability here (the server checks the resolved paths);
`.m4` files are refused with an explanation.

Paths are resolved as mon's normalize_paths does: relative mondir/alertdir entries under
basedir, statedir and logdir under basedir, authfile and userfile under cfbasedir, dtlogfile
and historicfile under logdir. The MonConfig fields hold the resolved values; the text of every
global as written is kept in `MonConfig.globals_text`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hastack.mon.model import (
    AlertEvery,
    AlertSpec,
    ExitRange,
    MonConfig,
    Period,
    Service,
    Watch,
    Where,
)
from hastack.mon.period import valid_period

__all__ = ["MonConfigError", "dhmstos", "load", "parse"]

_A = re.ASCII
_NAME = r"[a-zA-Z0-9_.-]+"
_GLOBAL = re.compile(r"(\w+)\s*=\s*(.*?)\s*", _A)
_HOSTGROUP = re.compile(rf"hostgroup\s+({_NAME})\s*(.*)", _A)
_ALIAS = re.compile(rf"alias\s+({_NAME})\s*", _A)
_VIEW = re.compile(rf"view\s+({_NAME})\s+(.*)", _A)
_WATCH = re.compile(rf"watch\s+({_NAME})", _A)
_ENV = re.compile(r"([A-Z_][A-Z0-9_]*)=(.*)", _A)
_KEY = re.compile(r"(\w+)\s*(.*)", _A)
_SERVICE_NAME = re.compile(_NAME, _A)
_LABEL = re.compile(r"([a-z_]\w*)\s*:\s*(.*)", _A | re.IGNORECASE)
_TIME = re.compile(r"\s*(\d+(?:\.\d+)?)([dhms])\s*", _A | re.IGNORECASE)
_EXIT = re.compile(r"exit\s*=\s*(\d+|\d+-\d+)\s+", _A | re.IGNORECASE)
_EXIT_ANY = re.compile(r"exit\s*=", _A | re.IGNORECASE)
_RANGE = re.compile(r"\s*(\d+)(?:-(\d+))?\s*", _A)
_INT = re.compile(r"\d+", _A)
_PERL_NUM = re.compile(r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", _A)

TIME_HELP = "a number with its unit: 30s, 5m, 1h, 2d"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class MonConfigError(ValueError):
    """Every problem found in a mon.cf, each "FILE:LINE: message"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def dhmstos(text: str) -> float | None:
    """mon's time value: a number and its unit (s, m, h, d), else None."""
    match = _TIME.fullmatch(text)
    if not match:
        return None
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


# ---- the keys ------------------------------------------------------------------------------

_PATH_GLOBALS = {
    "alertdir", "mondir", "basedir", "cfbasedir", "logdir", "statedir", "authfile",
    "userfile", "historicfile", "dtlogfile", "monerrfile", "pidfile",
}  # fmt: skip
_TEXT_GLOBALS = {"serverbind", "trapbind", "clientallow", "pamservice", "syslog_facility"}
_INT_GLOBALS = {"histlength", "serverport", "trapport", "maxprocs", "dep_recur_limit"}
_TIME_GLOBALS = {"randstart", "historictime", "cltimeout", "dep_memory"}
_OTHER_GLOBALS = {
    "authtype", "dtlogging", "dep_behavior", "unack_summary", "startupalerts_on_reset",
    "monremote", "exclude_period",
}  # fmt: skip
GLOBALS = frozenset(_PATH_GLOBALS | _TEXT_GLOBALS | _INT_GLOBALS | _TIME_GLOBALS | _OTHER_GLOBALS)

_SERVICE_TIMES = {"interval", "failure_interval", "traptimeout", "trapduration", "randskew"}
_SERVICE_TEXT = {"monitor", "redistribute", "description"}
_DEPENDS = {"depend", "alertdepend", "monitordepend", "hostdepend"}
SERVICE_KEYS = frozenset(
    _SERVICE_TIMES
    | _SERVICE_TEXT
    | _DEPENDS
    | {"allow_empty_group", "unack_summary", "dep_behavior", "dep_memory"}
    | {"exclude_hosts", "exclude_period"}
)
_ALERT_KEYS = {
    "alert": "alerts",
    "upalert": "upalerts",
    "startupalert": "startupalerts",
    "ackalert": "ackalerts",
    "disablealert": "disablealerts",
}
PERIOD_KEYS = frozenset(
    set(_ALERT_KEYS)
    | {"alertevery", "alertafter", "upalertafter", "numalerts", "no_comp_alerts"}
    | {"alerts_dont_count", "alertexitrange"}
)


class _Problem(Exception):
    pass


def _time(key: str, value: str, positive: bool) -> float:
    seconds = dhmstos(value)
    if seconds is None:
        raise _Problem(f"{key}: bad time {value!r}; allowed: {TIME_HELP} (the unit is required)")
    if positive and seconds <= 0:
        raise _Problem(f"{key}: {value!r} must be more than zero ({TIME_HELP})")
    return seconds


def _int(key: str, value: str) -> int:
    if not _INT.fullmatch(value):
        raise _Problem(f"{key}: {value!r} is not a whole number (allowed: 0, 1, 2, ...)")
    return int(value)


def _yes_no(key: str, value: str) -> bool:
    # mon's test, in its order: a 'y' anywhere, then an 'n' anywhere, then 0 or 1
    if re.search("y", value, re.IGNORECASE):
        return True
    if re.search("n", value, re.IGNORECASE):
        return False
    if value in ("0", "1"):
        return value == "1"
    raise _Problem(f"{key}: invalid value {value!r}; allowed: 0, 1, y, yes, n, no")


def _dep_behavior(key: str, value: str) -> str:
    if value not in ("a", "m", "hm"):
        raise _Problem(
            f"{key}: unknown dependency behavior {value!r}; allowed: a (alerts), m (monitors), "
            "hm (host monitors)"
        )
    return value


def _period_spec(key: str, spec: str) -> str:
    problem = valid_period(spec)
    if problem is not None:
        raise _Problem(f"{key}: malformed time period: {problem}")
    return spec


def _canonpath(path: str) -> str:
    """File::Spec->canonpath: no doubled '/', no '/./', no trailing '/' ('..' is kept)."""
    absolute = path.startswith("/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    joined = "/".join(parts)
    if absolute:
        return "/" + joined
    return joined or "."


def _under(base: str, path: str) -> str:
    return _canonpath(path if path.startswith("/") else f"{base}/{path}")


# ---- the reader ----------------------------------------------------------------------------


@dataclass
class _State:
    source: str
    cfg: MonConfig = field(default_factory=MonConfig)
    problems: list[str] = field(default_factory=list)
    # the record being read (mon's ingroup/inalias/inview/inwatch/period flags)
    record: str = ""  # "", "hostgroup", "alias", "view", "watch"
    name: str = ""
    service: Service | None = None
    period: Period | None = None
    # what globals seen so far give the next services (mon copies them when a service starts)
    dep_behavior: str = "a"
    dep_memory: float | None = None
    unack_summary: bool = False
    line: int = 0

    def where(self) -> Where:
        return Where(self.source, self.line)

    def problem(self, message: str) -> None:
        self.problems.append(f"{self.source}:{self.line}: {message}")

    def warn(self, message: str) -> None:
        self.cfg.warnings.append(f"{self.source}:{self.line}: {message}")


def _logical_lines(text: str, st: _State) -> list[tuple[int, str]]:
    """(line number of the last physical line, trimmed text), as mon assembles them."""
    lines: list[tuple[int, str]] = []
    pending: str | None = None
    physical = text.split("\n")  # Perl reads lines at "\n" only (not "\r", "\f", ...)
    if physical[-1] == "":
        physical.pop()
    for number, raw in enumerate(physical, start=1):
        if re.match(r"\s*#", raw, _A):
            continue
        part = raw
        if pending is not None:
            part = part.lstrip(" \t\r\n\f\v")
        continued = re.fullmatch(r"(.*)\\\s*", part, _A | re.DOTALL)
        if continued:
            pending = (pending or "") + continued.group(1)
            continue
        whole = (pending or "") + part
        pending = None
        lines.append((number, whole.strip(" \t\r\n\f\v")))
    if pending is not None:
        st.line = len(physical)
        st.warn("the file ends inside a continued line ('\\' at the end): mon drops it")
    return lines


def _global(st: _State, key: str, value: str) -> None:
    cfg = st.cfg
    if key not in GLOBALS:
        raise _Problem(
            f"unknown global {key!r}; globals are: {', '.join(sorted(GLOBALS))}"
            " (a service's keys belong after 'watch GROUP' and 'service NAME')"
        )
    cfg.globals_text[key] = value
    if key in _PATH_GLOBALS | _TEXT_GLOBALS:
        if key in ("basedir", "cfbasedir") and not value.startswith("/"):
            value = _canonpath(f"./{value}")  # mon: relative to its working directory
        setattr(cfg, key, value)
    elif key in _INT_GLOBALS:
        setattr(cfg, key, _int(key, value))
    elif key in _TIME_GLOBALS:
        seconds = _time(key, value, positive=False)
        if key == "dep_memory":
            st.dep_memory = seconds or None
            cfg.dep_memory = st.dep_memory
        else:
            setattr(cfg, key, seconds)
    elif key == "authtype":
        cfg.authtype = value.split()
        if not cfg.authtype:
            raise _Problem("authtype: needs one or more of getpwnam, shadow, userfile, pam")
    elif key == "dtlogging":
        number = _PERL_NUM.match(value)
        cfg.dtlogging = bool(number and float(number.group(0)) == 1) or value in ("yes", "true")
    elif key == "dep_behavior":
        st.dep_behavior = cfg.dep_behavior = _dep_behavior(key, value)  # type: ignore[assignment]
    elif key == "unack_summary":
        st.unack_summary = cfg.unack_summary = _yes_no(key, value)
    elif key == "startupalerts_on_reset":
        # mon's pattern, precedence and all: starts with 1, or has yes/true, or ends with on
        cfg.startupalerts_on_reset = bool(re.search(r"^1|yes|true|on$", value, re.I))
    elif key == "monremote":
        cfg.monremote = value
    elif key == "exclude_period":
        cfg.exclude_period = _period_spec(key, value)


def _alert(key: str, args: str, where: Where) -> AlertSpec:
    exit_range: ExitRange | None = None
    match = _EXIT.match(args + " ")
    if match:
        exit_range = _exit_range(match.group(1))
        args = args[match.end() :] if match.end() <= len(args) else ""
    elif _EXIT_ANY.match(args):
        raise _Problem(f"{key}: bad exit range in {args!r}; allowed: exit=N or exit=N-M first")
    words = args.split()
    if not words:
        raise _Problem(f"{key}: needs an alert program (from alertdir) and its arguments")
    return AlertSpec(words[0], tuple(words[1:]), exit_range, where)


def _exit_range(text: str) -> ExitRange:
    low, _, high = text.partition("-")
    return ExitRange(int(low), int(high or low))


def _alertevery(args: str) -> AlertEvery:
    flags = {"observe_detail": False, "ignore_summary": False, "strict": False}
    for flag, pattern in (
        ("observe_detail", r"(\S+)\s+observe_detail\s*$"),
        ("ignore_summary", r"(\S+)\s+ignore_summary\s*$"),
        ("", r"(\S+)\s+summary"),  # accepted and ignored, as mon does (pre-0.38.21 syntax)
        ("strict", r"(\S+)\s+strict\s*$"),
    ):
        match = re.search(pattern, args, _A | re.IGNORECASE)
        if match:
            if flag:
                flags[flag] = True
            args = match.group(1)
            break
    seconds = dhmstos(args)
    if not seconds:
        raise _Problem(
            f"alertevery: bad time {args!r}; allowed: {TIME_HELP}, then optionally strict, "
            "observe_detail or ignore_summary"
        )
    return AlertEvery(seconds, **flags)


def _alertafter(st: _State, period: Period, args: str) -> None:
    service = st.service
    assert service is not None
    if re.fullmatch(r"\d+", args, _A):
        period.alertafter_consec = int(args)
        return
    if re.fullmatch(r"\d+[hms]", args, _A):
        period.alertafter_interval = _time("alertafter", args, positive=True)
        return
    both = re.search(r"(\d+)\s+(\d+[hms])$", args, _A)
    if not both:
        raise _Problem(
            f"alertafter: invalid value {args!r}; allowed: N (failures in a row), T (a time: "
            "30s, 5m, 1h; no d) or N T (N failures within T)"
        )
    count, window = int(both.group(1)), dhmstos(both.group(2)) or 0.0
    interval = service.interval or 0.0
    if (count - 1) * interval >= window:
        raise _Problem(
            f"alertafter {args}: not sensible with interval {interval:g}s: {count} failures "
            f"take at least {(count - 1) * interval:g}s, which is not within {window:g}s, so no "
            "alert could ever be sent"
        )
    period.alertafter = count
    period.alertafter_interval = window


def _period_key(st: _State, key: str, args: str) -> None:
    period = st.period
    assert period is not None
    if key in _ALERT_KEYS:
        getattr(period, _ALERT_KEYS[key]).append(_alert(key, args, st.where()))
    elif key == "alertevery":
        period.alertevery = _alertevery(args)
    elif key == "alertafter":
        _alertafter(st, period, args)
    elif key == "upalertafter":
        period.upalertafter = _time(key, args, positive=True)
    elif key == "numalerts":
        if not re.fullmatch(r"\d+", args, _A):
            raise _Problem(f"numalerts: {args!r} is not a whole number (allowed: 0, 1, 2, ...)")
        period.numalerts = int(args)
    elif key == "no_comp_alerts":
        period.no_comp_alerts = True
    elif key == "alerts_dont_count":
        period.alerts_dont_count = True
    elif key == "alertexitrange":
        match = _RANGE.fullmatch(args)
        if not match:
            raise _Problem(f"alertexitrange: invalid exit code range {args!r}; allowed: N, N-M")
        period.alertexitrange = _exit_range(args.strip())
    elif key in SERVICE_KEYS:
        raise _Problem(
            f"{key!r} is a service key: it must come before the service's first 'period'"
        )
    else:
        raise _Problem(f"unknown period key {key!r}; allowed: {', '.join(sorted(PERIOD_KEYS))}")


def _service_key(st: _State, key: str, args: str) -> None:
    service = st.service
    assert service is not None
    if key in _SERVICE_TIMES:
        setattr(service, key, _time(key, args, positive=True))
    elif key in _SERVICE_TEXT or key in _DEPENDS:
        setattr(service, key, args)
    elif key == "allow_empty_group":
        service.allow_empty_group = True  # mon only asks whether it is there
    elif key == "unack_summary":
        service.unack_summary = _yes_no(key, args)
    elif key == "dep_behavior":
        service.dep_behavior = _dep_behavior(key, args)  # type: ignore[assignment]
    elif key == "dep_memory":
        service.dep_memory = _time(key, args, positive=True)
    elif key == "exclude_hosts":
        service.exclude_hosts = list(dict.fromkeys(args.split()))
    elif key == "exclude_period":
        service.exclude_period = _period_spec(key, args)
    else:
        raise _Problem(f"unknown service key {key!r}; allowed: {', '.join(sorted(SERVICE_KEYS))}")


def _watch_line(st: _State, line: str) -> None:
    cfg = st.cfg
    watch = cfg.watches[st.name]
    env = _ENV.match(line)
    if env:
        if st.service is None:
            raise _Problem(f"environment variable {env.group(1)} set outside a service")
        st.service.variables[env.group(1)] = env.group(2)
        return
    match = _KEY.fullmatch(line)
    if not match:
        raise _Problem(f"cannot read {line!r}: expected 'key value' (a service or period key)")
    key, args = match.group(1), match.group(2)
    if key == "service":
        if not _SERVICE_NAME.fullmatch(args):
            raise _Problem(f"invalid service name {args!r}; allowed: letters, digits, _ . -")
        st.period = None
        if args in watch.services:
            st.service = Service(args, where=st.where())  # read on, keep nothing
            raise _Problem(f"service {args!r} already defined for watch {st.name!r}")
        st.service = Service(
            args,
            unack_summary=st.unack_summary,
            dep_behavior=st.dep_behavior,  # type: ignore[arg-type]
            dep_memory=st.dep_memory,
            where=st.where(),
        )
        watch.services[args] = st.service
        return
    if st.service is None:
        raise _Problem(f"{key!r} before any 'service NAME' in watch {st.name!r}")
    if key == "period":
        label_match = _LABEL.fullmatch(args)
        label, spec = (label_match.group(1), label_match.group(2)) if label_match else (args, args)
        st.period = Period(label, spec, where=st.where())
        if any(p.label == label for p in st.service.periods):
            raise _Problem(
                f"period {label!r} already defined for watch {st.name!r} service "
                f"{st.service.name!r}"
            )
        st.service.periods.append(st.period)
        _period_spec("period", spec)
        return
    if st.period is not None:
        _period_key(st, key, args)
    else:
        _service_key(st, key, args)


def _line(st: _State, line: str) -> None:
    cfg = st.cfg
    glob = _GLOBAL.fullmatch(line)
    if st.record != "watch" and glob:
        _global(st, glob.group(1), glob.group(2))
        return
    if line == "":
        st.record, st.name, st.service, st.period = "", "", None, None
        return
    if m := _HOSTGROUP.fullmatch(line):
        st.record, st.name, st.service, st.period = "hostgroup", m.group(1), None, None
        cfg.hostgroups[st.name] = m.group(2).split()
        return
    if st.record == "hostgroup":
        cfg.hostgroups[st.name].extend(line.split())
        return
    if m := _ALIAS.fullmatch(line):
        st.record, st.name, st.service, st.period = "alias", m.group(1), None, None
        cfg.aliases.setdefault(st.name, [])
        return
    if st.record == "alias":
        cfg.aliases[st.name].append(line)
        return
    if m := _VIEW.fullmatch(line):
        st.record, st.name, st.service, st.period = "view", m.group(1), None, None
        cfg.views[st.name] = list(dict.fromkeys(m.group(2).split()))
        return
    if st.record == "view":
        view = cfg.views[st.name]
        view.extend(w for w in line.split() if w not in view)
        return
    if m := _WATCH.match(line):
        name = m.group(1)
        st.record, st.name, st.service, st.period = "watch", name, None, None
        if name not in cfg.hostgroups:
            cfg.hostgroups[name] = [name]
            st.warn(
                f"watch {name!r} has no hostgroup defined before it: watching the host {name!r}"
                " (as mon does)"
            )
        if name in cfg.watches:
            if cfg.watches[name].services:
                raise _Problem(f"watch {name!r} already defined")
        else:
            cfg.watches[name] = Watch(name, where=st.where())
        return
    if st.record == "watch":
        _watch_line(st, line)
        return
    st.warn(f"ignored {line!r}: not in a hostgroup, view, alias or watch record (mon ignores it)")


def _resolve_paths(cfg: MonConfig) -> None:
    """mon's normalize_paths, on the text only (no directory is checked here)."""
    cfg.statedir = _under(cfg.basedir, cfg.statedir)
    cfg.logdir = _under(cfg.basedir, cfg.logdir)
    cfg.authfile = _under(cfg.cfbasedir, cfg.authfile)
    cfg.userfile = _under(cfg.cfbasedir, cfg.userfile)
    cfg.dtlogfile = _under(cfg.logdir, cfg.dtlogfile)
    if cfg.historicfile:
        cfg.historicfile = _under(cfg.logdir, cfg.historicfile)
    for key in ("mondir", "alertdir"):
        dirs = [_under(cfg.basedir, d) for d in getattr(cfg, key).split(":") if d]
        setattr(cfg, key, ":".join(dirs))


def parse(text: str, source: str) -> MonConfig:
    """Read a mon.cf's text; MonConfigError lists every problem as "SOURCE:LINE: message"."""
    st = _State(source, MonConfig(source=source))
    for number, line in _logical_lines(text, st):
        st.line = number
        try:
            _line(st, line)
        except _Problem as exc:
            st.problem(str(exc))
    if st.problems:
        raise MonConfigError(st.problems)
    cfg = st.cfg
    watched = {name for name, watch in cfg.watches.items() if watch.services}
    for group in cfg.hostgroups:
        if group not in watched:
            cfg.warnings.append(f"{source}: hostgroup {group!r} has no watch with a service")
    _resolve_paths(cfg)
    return cfg


def load(path: str | Path) -> MonConfig:
    """Read a mon.cf file; an unreadable file or a `.m4` one is a MonConfigError."""
    name = str(path)
    if name.endswith(".m4"):
        raise MonConfigError(
            [
                f"{name}: m4 preprocessing of mon.cf is not supported; run "
                f"'m4 {name} > mon.cf' and give hastack the result"
            ]
        )
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise MonConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from exc
    # mon reads bytes; undecodable ones are kept (as surrogates) rather than refused
    return parse(data.decode("utf-8", "surrogateescape"), name)
