"""mon 1.3's alert decision logic as a sans-IO core.

An `Alerter` holds the operational state of every (watch, service) of a `MonConfig` and is
fed events, each with an explicit `now` (epoch seconds) and the local `when` (a datetime,
for the Time::Period periods): a monitor's exit, a trap, a timer tick, an operator's ack,
disable or enable. It returns the `AlertCall`s the shell must run; `alert_argv_env` builds
the command line and environment mon's call_alert gives an alert program. It never reads
the clock, runs a program or touches a file.

The rules are mon 1.3's (process_event, do_alert, call_alert, depend/dep_ok, handle_trap,
the trap timers of its main loop) and mon(8)'s; where mon 1.3 contradicts its own manual
because of a bug, the manual wins and the module says so (see docs/compat.md).
"""

from __future__ import annotations

import re
import shlex
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, IntFlag
from typing import Literal

from hastack.mon.model import AlertSpec, MonConfig, Period, Service

__all__ = [
    "FAILURE_STATUSES",
    "SUCCESS_STATUSES",
    "AckRefused",
    "AlertCall",
    "AlertFlag",
    "AlertKind",
    "Alerter",
    "AlertingError",
    "DependError",
    "DependExpr",
    "DependSyntaxError",
    "MonitorPlan",
    "PeriodState",
    "ServiceState",
    "Status",
    "UnknownHost",
    "UnknownService",
    "alert_argv_env",
    "parse_depend",
]

NO_SUMMARY = "(NO SUMMARY)"


class Status(IntEnum):
    """mon's _op_status values (its STAT_* constants, in its order)."""

    FAIL = 0
    OK = 1
    COLDSTART = 2
    WARMSTART = 3
    LINKDOWN = 4
    UNKNOWN = 5
    TIMEOUT = 6
    UNTESTED = 7
    DEPEND = 8
    WARN = 9


# a dependency on a service in one of these statuses holds (mon's %SUCCESS: UNTESTED counts)
SUCCESS_STATUSES = frozenset(
    {Status.OK, Status.COLDSTART, Status.WARMSTART, Status.UNKNOWN, Status.UNTESTED}
)
FAILURE_STATUSES = frozenset({Status.FAIL, Status.LINKDOWN, Status.TIMEOUT})


class AlertFlag(IntFlag):
    """mon's FL_* alert flags, with its values."""

    MONITOR = 1
    UPALERT = 2
    TRAP = 4
    TRAPTIMEOUT = 8
    STARTUPALERT = 16
    TEST = 32
    REDISTRIBUTE = 64
    ACKALERT = 128
    DISABLEALERT = 256


AlertKind = Literal["alert", "upalert", "startupalert", "ackalert", "disablealert", "redistribute"]

# the flags that are not a failure alert: exit ranges, numalerts, alertevery, alertafter skip them
_NOT_FAILURE = (
    AlertFlag.UPALERT | AlertFlag.STARTUPALERT | AlertFlag.DISABLEALERT | AlertFlag.ACKALERT
)


class AlertingError(Exception):
    """An operator's request the alert logic refuses; the message says why."""


class UnknownService(AlertingError):
    pass


class UnknownHost(AlertingError):
    pass


class AckRefused(AlertingError):
    pass


class DependError(AlertingError):
    """A dependency expression could not be evaluated (mon logs it and keeps the old status)."""


class DependSyntaxError(DependError):
    pass


@dataclass(frozen=True)
class AlertCall:
    """One alert program for the shell to run, with what mon passes it. `output` goes to its
    standard input; `time` is the -t value (mon's time(2) when it decided)."""

    watch: str
    service: str
    program: str  # the name as in mon.cf, looked up in alertdir by the shell
    args: tuple[str, ...]
    flags: AlertFlag
    kind: AlertKind
    summary: str
    detail: str
    output: str
    hosts: tuple[str, ...]
    retval: int | None  # None for ack and disable alerts (mon passes no MON_RETVAL)
    period_label: str  # "" for redistribute
    time: float
    trap_intended: str | None = None  # "watch:service" a default/default trap was meant for
    # the MON_* variables that describe the service, as they were when mon decided (it forks
    # the alert then, before process_event updates the rest of the state)
    state_env: tuple[tuple[str, str], ...] = ()


@dataclass
class PeriodState:
    """mon's per-period counters (_last_alert, _alert_sent, _1stfailtime, _failcount, ...)."""

    last_alert: float | None = None
    alert_sent: int = 0
    first_fail_time: float | None = None
    fail_count: int = 0
    no_comp_upalert_sent: int = 0


@dataclass
class ServiceState:
    """Everything mon keeps about one (watch, service); the names are mon's without the
    leading underscore (`op_status` is its `_op_status`). Times are epoch seconds, 0 for
    none where mon uses 0, None where mon leaves the value undefined."""

    watch: str
    service: str
    op_status: Status = Status.UNTESTED
    last_op_status: Status = Status.UNTESTED
    last_check: float | None = None
    last_success: float = 0.0
    last_failure: float = 0.0
    first_failure: float | None = None
    consec_failures: int = 0
    failure_count: int = 0
    alert_count: int = 0
    last_summary: str | None = None
    last_detail: str | None = None
    last_output: str | None = None
    failure_output: str = ""  # the output of the failure before this one (alertevery compares)
    upalert_output: str | None = None
    exitval: int | None = None  # mon shows "undef" until the first result
    ack: float = 0.0  # when it was acknowledged, 0: not
    ack_comment: str = ""
    last_trap: float = 0.0
    last_traphost: str = ""
    last_uptrap: float | None = None
    depend_status: bool | None = None
    monitor_duration: float = -1.0  # -1: no monitor has finished yet
    monitor_running: bool = False
    disabled: bool = False
    interval: float | None = None  # the current one: failure_interval while failing
    old_interval: float | None = None
    start_of_monitor: float = 0.0
    # hastack: what dep_memory needs (mon 1.3 reads these but never sets them)
    last_failure_time: float | None = None
    last_failure_summary: str = ""
    trap_deadline: float | None = None  # traptimeout: a timeout fires at this time
    trap_duration_until: float | None = None  # trapduration: the status returns to OK then
    intended: str | None = None
    periods: dict[str, PeriodState] = field(default_factory=dict)
    uncounted_periods: frozenset[str] = frozenset()  # alerts_dont_count periods

    @property
    def alerts_sent(self) -> int:
        """opstatus's alerts_sent: the per-period counts, less alerts_dont_count periods."""
        return sum(
            p.alert_sent for label, p in self.periods.items() if label not in self.uncounted_periods
        )

    @property
    def last_alert(self) -> float:
        """opstatus's last_alert: the latest of the periods', 0 for none."""
        return max((p.last_alert or 0.0 for p in self.periods.values()), default=0.0)


@dataclass(frozen=True)
class MonitorPlan:
    """Whether the scheduler should start a service's monitor now, and with which hosts."""

    run: bool
    hosts: tuple[str, ...] = ()
    append_hosts: bool = True  # False: the monitor line ends with ";;"
    reason: str = ""


# ---------------------------------------------------------------- dependency expressions

_TERM = r"[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+"
_TOKEN = re.compile(rf"\s*(?:(?P<term>{_TERM})|(?P<num>\d+)|(?P<op>&&|\|\||!|\(|\))|(?P<word>\w+))")
_WORDS = {"and", "or", "not"}


@dataclass(frozen=True)
class DependExpr:
    """A parsed `depend` expression: the `group:service` terms joined by && || ! and or not
    and parentheses, the forms mon(8) documents (mon itself evals them as Perl)."""

    text: str
    terms: tuple[str, ...]
    _tokens: tuple[tuple[str, str], ...]

    def evaluate(self, values: Mapping[str, bool]) -> bool:
        """The expression's value with each term replaced by `values[term]`."""
        return _Parser(self._tokens, values).parse()


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise DependSyntaxError(
                f"dependency expression {text!r}: unexpected {text[pos:].strip()[:20]!r} "
                "(allowed: WATCH:SERVICE terms, 0, 1, &&, ||, !, and, or, not, parentheses)"
            )
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "word" and value not in _WORDS:
            raise DependSyntaxError(
                f"dependency expression {text!r}: unknown word {value!r} "
                "(allowed: WATCH:SERVICE terms, 0, 1, &&, ||, !, and, or, not, parentheses)"
            )
        tokens.append((kind, value))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive descent with Perl's precedence: ! > && > || > not > and > or."""

    def __init__(self, tokens: tuple[tuple[str, str], ...], values: Mapping[str, bool] | None):
        self.tokens = tokens
        self.pos = 0
        self.values = values  # None: only check the syntax

    def parse(self) -> bool:
        if not self.tokens:
            raise DependSyntaxError("empty dependency expression")
        result = self._low_or()
        if self.pos != len(self.tokens):
            raise DependSyntaxError(f"unexpected {self.tokens[self.pos][1]!r}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        if self.pos >= len(self.tokens):
            raise DependSyntaxError("the expression ends too early")
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def _binary(self, op: str, operand: Callable[[], bool]) -> bool:
        # evaluate every operand (no short circuit) so that the syntax is always checked
        result = operand()
        while self._peek() == op:
            self.pos += 1
            right = operand()
            result = (result or right) if op in ("||", "or") else (result and right)
        return result

    def _low_or(self) -> bool:
        return self._binary("or", self._low_and)

    def _low_and(self) -> bool:
        return self._binary("and", self._low_not)

    def _low_not(self) -> bool:
        if self._peek() == "not":
            self.pos += 1
            return not self._low_not()
        return self._high_or()

    def _high_or(self) -> bool:
        return self._binary("||", self._high_and)

    def _high_and(self) -> bool:
        return self._binary("&&", self._unary)

    def _unary(self) -> bool:
        if self._peek() == "!":
            self.pos += 1
            return not self._unary()
        kind, value = self._take()
        if kind == "term":
            return bool(self.values.get(value, False)) if self.values is not None else True
        if kind == "num":
            return int(value) != 0
        if value == "(":
            result = self._low_or()
            if self._take()[1] != ")":
                raise DependSyntaxError("a '(' is not closed")
            return result
        raise DependSyntaxError(f"unexpected {value!r}")


def parse_depend(text: str) -> DependExpr:
    """Parse a depend/alertdepend/monitordepend/hostdepend expression; DependSyntaxError
    names what is wrong."""
    tokens = tuple(_tokenize(text))
    try:
        _Parser(tokens, None).parse()
    except DependSyntaxError as e:
        raise DependSyntaxError(f"dependency expression {text!r}: {e}") from None
    terms = tuple(dict.fromkeys(v for k, v in tokens if k == "term"))
    return DependExpr(text, terms, tokens)


# ---------------------------------------------------------------- helpers


def _split_output(output: str) -> tuple[str, str]:
    summary, _, detail = output.partition("\n")
    return summary, detail


def _summary_of(output: str | None) -> str:
    # mon takes the first line and calls a blank one "(NO SUMMARY)"
    first = (output or "").split("\n", 1)[0]
    return NO_SUMMARY if not first.strip() else first


def _perl_localtime(when: datetime) -> str:
    """Perl's scalar localtime: 'Wed Jan 10 12:00:00 2024' (day padded with a space)."""
    return f"{when.strftime('%a %b')} {when.day:2d} {when.strftime('%H:%M:%S')} {when.year}"


def _perl_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _in_period(spec: str, when: datetime) -> bool:
    if not spec.strip():
        return True
    # imported here: hastack.mon.period is its own module and need not load with this one
    from hastack.mon.period import in_period

    return in_period(spec, when)


# ---------------------------------------------------------------- the core


class Alerter:
    """The operational state of every service of `config` and mon's decisions about it.

    The configuration is read live (not copied): the shell replaces the Alerter on a reset.
    `period_check(spec, when)` decides the Time::Period specs (hastack.mon.period by default).
    """

    def __init__(
        self,
        config: MonConfig,
        now: float,
        period_check: Callable[[str, datetime], bool] | None = None,
    ) -> None:
        self.config = config
        self.stopped = False  # mon's stopped scheduler: no alerts at all
        self.disabled_watches: set[str] = set()
        self.disabled_hosts: set[str] = set()
        self.alert_history: deque[AlertCall] = deque(maxlen=max(config.histlength, 1))
        self.failure_history: deque[tuple[str, str, float, str]] = deque(
            maxlen=max(config.histlength, 1)
        )
        self._period_check = period_check or _in_period
        self._states: dict[tuple[str, str], ServiceState] = {}
        self._exprs: dict[str, DependExpr] = {}
        for watch in config.watches.values():
            for svc in watch.services.values():
                self.state(watch.name, svc.name, now)

    # ---- lookups

    def service(self, watch: str, service: str) -> Service:
        w = self.config.watches.get(watch)
        if w is None or service not in w.services:
            raise UnknownService(f"unknown service {watch}/{service}")
        return w.services[service]

    def state(self, watch: str, service: str, now: float = 0.0) -> ServiceState:
        key = (watch, service)
        st = self._states.get(key)
        svc = self.service(watch, service)
        if st is None:
            st = ServiceState(watch, service, interval=svc.interval, start_of_monitor=now)
            if svc.traptimeout:
                st.trap_deadline = now + svc.traptimeout
            self._states[key] = st
        for p in svc.periods:
            st.periods.setdefault(p.label, PeriodState())
        st.uncounted_periods = frozenset(p.label for p in svc.periods if p.alerts_dont_count)
        return st

    def states(self) -> Iterable[ServiceState]:
        for watch in self.config.watches.values():
            for name in watch.services:
                yield self.state(watch.name, name)

    def group_hosts(self, watch: str) -> tuple[str, ...]:
        """The watch's hostgroup less the disabled hosts (mon's -h and monitor arguments)."""
        return tuple(
            h for h in self.config.hostgroups.get(watch, []) if h not in self.disabled_hosts
        )

    # ---- dependencies

    def _expr(self, text: str) -> DependExpr:
        expr = self._exprs.get(text)
        if expr is None:
            expr = self._exprs[text] = parse_depend(text)
        return expr

    @staticmethod
    def _dep_text(svc: Service, kind: str) -> str:
        # `depend` serves the dep_behavior it is set for; the specific keyword the others
        if svc.depend and svc.dep_behavior == kind:
            return svc.depend
        if kind == "a":
            return svc.alertdepend
        if kind == "m":
            return svc.monitordepend
        return ""

    def _dep_memory(self, svc: Service) -> float | None:
        return svc.dep_memory if svc.dep_memory is not None else self.config.dep_memory

    def _remembered_failure(self, st: ServiceState, svc: Service, now: float) -> bool:
        memory = self._dep_memory(svc)
        return (
            memory is not None
            and st.last_failure_time is not None
            and st.last_failure_time >= now - memory
        )

    def _depend(self, watch: str, text: str, depth: int, kind: str, now: float) -> bool:
        if depth > self.config.dep_recur_limit:
            raise DependError(f"dependency recursion deeper than {self.config.dep_recur_limit}")
        expr = self._expr(text)
        values: dict[str, bool] = {}
        for term in expr.terms:
            group, name = term.split(":", 1)
            if group == "SELF":
                group = watch
            try:
                svc = self.service(group, name)
            except UnknownService:
                values[term] = False  # mon: an unknown service has no passing status
                continue
            st = self.state(group, name)
            ok = st.op_status in SUCCESS_STATUSES and not self._remembered_failure(st, svc, now)
            sub = self._dep_text(svc, kind)
            if sub:
                ok = self._depend(group, sub, depth + 1, kind, now) and ok
            values[term] = ok
        return expr.evaluate(values)

    def dependency_ok(self, watch: str, service: str, kind: str, now: float) -> bool | None:
        """mon's dep_ok: True/False, recorded in depend_status; None when the expression
        cannot be evaluated (too deep, bad syntax), leaving depend_status as it was."""
        svc = self.service(watch, service)
        text = self._dep_text(svc, kind)
        if not text:
            return True
        st = self.state(watch, service)
        try:
            result = self._depend(watch, text, 0, kind, now)
        except DependError:
            return None
        st.depend_status = result
        return result

    # ---- monitors

    def plan_monitor(self, watch: str, service: str, now: float, when: datetime) -> MonitorPlan:
        """Whether a due monitor runs (mon's main loop and run_monitor): not for a trap-only
        service, a disabled watch, within exclude_period (global or the service's), or while
        a monitor dependency fails; with the group's hosts less disabled, excluded and
        (dep_behavior hm / hostdepend) those a failing parent names."""
        svc = self.service(watch, service)
        if svc.interval is None or not svc.monitor:
            return MonitorPlan(False, reason="trap-only service (no interval or monitor)")
        if watch in self.disabled_watches:
            return MonitorPlan(False, reason=f"watch {watch} is disabled")
        for spec in (self.config.exclude_period, svc.exclude_period):
            if spec and self._period_check(spec, when):
                return MonitorPlan(False, reason=f"within exclude_period {spec!r}")
        if self._dep_text(svc, "m") and not self.dependency_ok(watch, service, "m", now):
            return MonitorPlan(False, reason="a monitor dependency (depend) is failing")
        if svc.monitor.rstrip().endswith(";;"):
            return MonitorPlan(True, append_hosts=False)
        hosts = [h for h in self.group_hosts(watch) if h not in svc.exclude_hosts]
        parents = svc.depend if svc.depend and svc.dep_behavior == "hm" else svc.hostdepend
        if parents:
            named = self._failing_summaries(watch, parents, now)
            hosts = [h for h in hosts if not any(h in s for s in named)]
        if not hosts and not svc.allow_empty_group:
            return MonitorPlan(False, reason="no host arguments (all disabled or excluded)")
        return MonitorPlan(True, tuple(hosts))

    def _failing_summaries(self, watch: str, text: str, now: float) -> list[str]:
        # mon's dep_summary: the direct parents' summaries, not recursive
        out: list[str] = []
        for term in re.findall(_TERM, text):
            group, name = term.split(":", 1)
            group = watch if group == "SELF" else group
            try:
                svc = self.service(group, name)
            except UnknownService:
                return []  # mon gives up on the whole list
            st = self.state(group, name)
            if st.op_status == Status.FAIL:
                out.append(st.last_summary or "")
            elif self._remembered_failure(st, svc, now):
                out.append(st.last_failure_summary)
        return out

    def monitor_started(self, watch: str, service: str, now: float) -> None:
        st = self.state(watch, service)
        st.last_check = now
        st.monitor_running = True

    def monitor_done(
        self, watch: str, service: str, exit_code: int, output: str, now: float, when: datetime
    ) -> list[AlertCall]:
        """A monitor exited with `exit_code` and printed `output` (stdout and stderr)."""
        st = self.state(watch, service)
        if st.last_check is not None:
            st.monitor_duration = now - st.last_check
        st.monitor_running = False
        return self._process(watch, service, "m", exit_code, output, now, when)

    # ---- traps

    def resolve_trap(self, watch: str, service: str) -> tuple[str, str, str | None]:
        """Where a trap for watch/service goes: itself, or default/default for unknown ones
        (with the intended "watch:service"); UnknownService when neither exists."""
        intended = None
        watches = self.config.watches
        if watch not in watches and "default" in watches:
            intended = f"{watch}:{service}"
            watch = "default"
        default = watches["default"].services if "default" in watches else {}
        if watch == "default" and service not in default and "default" in default:
            service = "default"
        if watch not in self.config.hostgroups:
            raise UnknownService(f"trap received for undefined group {watch}")
        if watch not in watches or service not in watches[watch].services:
            raise UnknownService(f"trap received for undefined service {watch}/{service}")
        return watch, service, intended

    def trap_received(
        self,
        watch: str,
        service: str,
        status: int,
        summary: str,
        detail: str,
        now: float,
        when: datetime,
        traphost: str = "",
    ) -> list[AlertCall]:
        """A mon trap (already authenticated): `status` is its sta, like a monitor's exit."""
        watch, service, intended = self.resolve_trap(watch, service)
        svc = self.service(watch, service)
        st = self.state(watch, service)
        if svc.traptimeout:
            st.trap_deadline = now + svc.traptimeout
        st.last_trap = now
        st.last_traphost = traphost
        st.intended = intended
        if svc.trapduration:
            st.trap_duration_until = now + svc.trapduration
        # mon ends the summary with a newline, then joins summary and detail with another
        if not summary.endswith("\n"):
            summary += "\n"
        try:
            return self._process(watch, service, "t", status, f"{summary}\n{detail}", now, when)
        finally:
            st.intended = None

    def tick(self, now: float, when: datetime) -> list[AlertCall]:
        """The timers: a traptimeout with no trap is a failure (again every traptimeout);
        a trapduration's end sets the status back to OK (only the status, as mon does)."""
        calls: list[AlertCall] = []
        if self.config.exclude_period and self._period_check(self.config.exclude_period, when):
            return calls  # mon's global exclude_period stops its timers too
        for st in list(self.states()):
            svc = self.service(st.watch, st.service)
            if svc.traptimeout and st.trap_deadline is not None and now >= st.trap_deadline:
                st.trap_deadline = now + svc.traptimeout
                text = (
                    "trap timeout\ntrap timeout after "
                    f"{_perl_number(svc.traptimeout)}s at {_perl_localtime(when)}\n"
                )
                calls += self._process(st.watch, st.service, "T", 1, text, now, when)
            if st.trap_duration_until is not None and now >= st.trap_duration_until:
                st.trap_duration_until = None
                self._set_status(st, Status.OK)
        return calls

    def next_deadline(self) -> float | None:
        """The earliest time `tick` has something to do, None when nothing is pending."""
        times = [
            t
            for st in self.states()
            for t in (st.trap_deadline, st.trap_duration_until)
            if t is not None
        ]
        return min(times, default=None)

    # ---- operator commands

    def startup(self, now: float, when: datetime) -> list[AlertCall]:
        """mon's startup alerts (at start, and on reset with startupalerts_on_reset)."""
        calls: list[AlertCall] = []
        for st in list(self.states()):
            calls += self._do_alert(st, "", 0, AlertFlag.STARTUPALERT, now, when)
        return calls

    def ack(
        self, watch: str, service: str, comment: str, now: float, when: datetime, user: str = ""
    ) -> list[AlertCall]:
        """Acknowledge a failure: no more alerts (upalerts still) until it recovers."""
        st = self.state(watch, service)
        if st.op_status in (Status.OK, Status.UNTESTED):
            raise AckRefused(f"{watch}/{service}: service is in a non-failure state")
        st.ack = now
        st.ack_comment = f"{user}: {comment}"
        return self._do_alert(st, st.ack_comment, None, AlertFlag.ACKALERT, now, when)

    def disable_service(
        self, watch: str, service: str, now: float, when: datetime, user: str = ""
    ) -> list[AlertCall]:
        """No more alerts for it (its monitor still runs, as in mon); its disablealerts go."""
        st = self.state(watch, service)
        st.disabled = True
        return self._do_alert(st, user, None, AlertFlag.DISABLEALERT, now, when)

    def enable_service(self, watch: str, service: str) -> None:
        self.state(watch, service).disabled = False

    def disable_watch(self, watch: str) -> None:
        """No monitors and no alerts for the watch's services."""
        if watch not in self.config.watches:
            raise UnknownService(f"unknown watch {watch}")
        self.disabled_watches.add(watch)

    def enable_watch(self, watch: str) -> None:
        if watch not in self.config.watches:
            raise UnknownService(f"unknown watch {watch}")
        self.disabled_watches.discard(watch)

    def _singleton_watches(self, host: str) -> list[str]:
        return [
            g
            for g, hosts in self.config.hostgroups.items()
            if hosts == [host] and g in self.config.watches
        ]

    def disable_host(self, hosts: Iterable[str]) -> None:
        """Leave the hosts out of monitors and alerts in every group; a watch whose group has
        only that host is disabled (as mon does, to avoid an empty group)."""
        hosts = list(hosts)
        known = {h for group in self.config.hostgroups.values() for h in group}
        missing = [h for h in hosts if h not in known]
        if missing:
            raise UnknownHost(f"disable host failed, host(s) {' '.join(missing)} do not exist")
        for h in hosts:
            self.disabled_watches.update(self._singleton_watches(h))
            self.disabled_hosts.add(h)

    def enable_host(self, hosts: Iterable[str]) -> None:
        for h in hosts:
            self.disabled_watches.difference_update(self._singleton_watches(h))
            self.disabled_hosts.discard(h)

    def test_alert(
        self,
        watch: str,
        service: str,
        kind: Literal["alert", "upalert", "startupalert", "ackalert", "disablealert"],
        retval: int,
        period_label: str,
        now: float,
    ) -> list[AlertCall]:
        """mon's `test alert|upalert|... group service retval period`: every alert of that
        kind in the period, whatever its exit range, counted nowhere."""
        svc = self.service(watch, service)
        pref = next((p for p in svc.periods if p.label == period_label), None)
        if pref is None:
            raise UnknownService(f"{watch}/{service}: period {period_label!r} not defined")
        flag = {
            "alert": AlertFlag(0),
            "upalert": AlertFlag.UPALERT,
            "startupalert": AlertFlag.STARTUPALERT,
            "ackalert": AlertFlag.ACKALERT,
            "disablealert": AlertFlag.DISABLEALERT,
        }[kind]
        output = "test\ntest detail\n"
        return [
            self._call(
                self.state(watch, service),
                spec.program,
                spec.args,
                flag | AlertFlag.TEST,
                kind,
                output,
                retval,
                period_label,
                now,
            )
            for spec in _alerts_of(pref, flag)
        ]

    # ---- mon's process_event and do_alert

    @staticmethod
    def _set_status(st: ServiceState, status: Status) -> None:
        st.last_op_status = st.op_status
        st.op_status = status

    def _process(
        self,
        watch: str,
        service: str,
        source: Literal["m", "t", "T"],
        exitval: int,
        output: str,
        now: float,
        when: datetime,
    ) -> list[AlertCall]:
        svc = self.service(watch, service)
        st = self.state(watch, service)
        summary, detail = _split_output(output)
        st.exitval = exitval
        # mon 1.3 evaluates only `depend` here; alertdepend is evaluated too (its manual's rule)
        if self._dep_text(svc, "a"):
            self.dependency_ok(watch, service, "a", now)
        calls: list[AlertCall] = []
        if exitval:
            st.failure_count += 1
            st.consec_failures += 1
            st.last_failure = now
            if st.op_status in (Status.OK, Status.UNKNOWN, Status.UNTESTED):
                st.first_failure = now
            self._set_status(st, Status.FAIL)
            summary = NO_SUMMARY if not summary.strip() else summary
            st.last_summary, st.last_detail = summary, detail
            st.last_failure_time, st.last_failure_summary = now, summary
            self.failure_history.append((watch, service, now, summary))
            flag = {"m": AlertFlag.MONITOR, "t": AlertFlag.TRAP, "T": AlertFlag.TRAPTIMEOUT}
            calls = self._do_alert(st, output, exitval, flag[source], now, when)
            if source == "m" and svc.failure_interval and st.old_interval is None:
                st.old_interval, st.interval = st.interval, svc.failure_interval
            st.failure_output = output
        else:
            old = st.op_status
            self._set_status(st, Status.OK)
            if source == "t":
                st.last_uptrap = now
            has_upalert = any(p.upalerts for p in svc.periods)
            if svc.redistribute or (old == Status.FAIL and has_upalert):
                # the upalert gets the output of the failure it ends
                st.upalert_output = st.last_output
                calls = self._do_alert(st, st.upalert_output or "", 0, AlertFlag.UPALERT, now, when)
            st.ack, st.ack_comment = 0.0, ""
            st.first_failure, st.last_failure, st.consec_failures = 0.0, 0.0, 0
            st.failure_output = ""
            for p in svc.periods:
                ps = st.periods[p.label]
                if not (p.alertevery and p.alertevery.strict):
                    ps.last_alert = None
                ps.first_fail_time = None
                ps.alert_sent = 0
            if st.old_interval is not None:
                st.interval, st.old_interval = st.old_interval, None
            st.last_success = now
        st.last_output = output
        st.last_summary, st.last_detail = summary, detail
        return calls

    def _do_alert(
        self,
        st: ServiceState,
        output: str,
        retval: int | None,
        flags: AlertFlag,
        now: float,
        when: datetime,
    ) -> list[AlertCall]:
        if self.stopped:
            return []
        svc = self.service(st.watch, st.service)
        calls: list[AlertCall] = []
        if svc.redistribute:
            program, *args = shlex.split(svc.redistribute)
            calls.append(
                self._call(
                    st,
                    program,
                    tuple(args),
                    flags | AlertFlag.REDISTRIBUTE,
                    "redistribute",
                    output,
                    retval,
                    "",
                    now,
                )
            )
        # mon 1.3 checks `disable` after setting it, so its disablealerts never ran
        disabled = st.disabled and not flags & AlertFlag.DISABLEALERT
        if st.watch in self.disabled_watches or disabled:
            return calls
        if (
            not flags & (AlertFlag.STARTUPALERT | AlertFlag.UPALERT)
            and self._dep_text(svc, "a")
            and not st.depend_status
        ):
            return calls
        summary = _summary_of(output)
        previous = _summary_of(st.failure_output)
        not_failure = flags & (AlertFlag.UPALERT | AlertFlag.ACKALERT | AlertFlag.DISABLEALERT)
        unack = svc.unack_summary or self.config.unack_summary
        if st.ack and unack and not not_failure and _strip(summary) != _strip(previous):
            st.ack, st.ack_comment, st.consec_failures = 0.0, "", 1
            for ps in st.periods.values():
                ps.last_alert, ps.first_fail_time, ps.fail_count = None, None, 0
        if st.ack and not not_failure:
            return calls
        for pref in svc.periods:
            if not self._period_check(pref.spec, when):
                continue
            ps = st.periods[pref.label]
            if not self._period_allows(pref, ps, st, flags, output, summary, previous, retval, now):
                continue
            called = 0
            for spec in _alerts_of(pref, flags):
                if spec.exit_range is not None and (retval or 0) not in spec.exit_range:
                    continue
                call = self._call(
                    st,
                    spec.program,
                    spec.args,
                    flags,
                    _kind(flags),
                    output,
                    retval,
                    pref.label,
                    now,
                )
                calls.append(call)
                called += 1
                ps.last_alert = now
                st.alert_count += 1
                self.alert_history.append(call)
            if called:
                # mon tests (FL_TRAP | flags), always true: every upalert resets the period
                if flags & AlertFlag.UPALERT:
                    ps.alert_sent, ps.last_alert = 0, None
                else:
                    ps.alert_sent += 1
                    if pref.no_comp_alerts:
                        ps.no_comp_upalert_sent = 0
                if pref.no_comp_alerts and flags & AlertFlag.UPALERT:
                    ps.no_comp_upalert_sent += 1
        return calls

    @staticmethod
    def _period_allows(
        pref: Period,
        ps: PeriodState,
        st: ServiceState,
        flags: AlertFlag,
        output: str,
        summary: str,
        previous: str,
        retval: int | None,
        now: float,
    ) -> bool:
        """mon's per-period throttles; the alertafter forms update the period's counters."""
        paired = flags & (AlertFlag.UPALERT | AlertFlag.ACKALERT)
        if paired and not pref.no_comp_alerts and not ps.alert_sent:
            return False  # no upalert or ackalert without a down alert
        if pref.no_comp_alerts and flags & AlertFlag.UPALERT and ps.no_comp_upalert_sent > 0:
            return False
        # mon 1.3 reads upalertafter from the service, where it is never set: the manual's rule
        down_for = now - (st.first_failure or now)
        if flags & AlertFlag.UPALERT and pref.upalertafter is not None:
            return down_for >= pref.upalertafter
        if flags & _NOT_FAILURE:
            return True
        if pref.alertexitrange is not None and (retval or 0) not in pref.alertexitrange:
            return False
        if pref.numalerts and ps.alert_sent >= pref.numalerts:
            return False
        every = pref.alertevery
        if (
            every is not None
            and every.seconds
            and ps.last_alert is not None
            and now - ps.last_alert < every.seconds
            and (
                every.strict
                or every.ignore_summary
                or (every.observe_detail and st.failure_output == output)
                or (not every.observe_detail and previous == summary)
            )
        ):
            return False
        ival = pref.alertafter_interval
        if pref.alertafter_consec is not None and st.consec_failures < pref.alertafter_consec:
            return False
        elif pref.alertafter is None and ival is not None:
            if ps.first_fail_time is None:
                ps.first_fail_time = now
            if now - ps.first_fail_time <= ival:
                return False
        elif pref.alertafter is not None:
            ival = ival or 0.0
            ps.fail_count += 1
            within = ps.first_fail_time is not None and now - ps.first_fail_time <= ival
            if within and ps.fail_count < pref.alertafter:
                return False
            if not within:
                ps.fail_count = 1
            if ps.fail_count == 1:
                ps.first_fail_time = now
            if ps.fail_count < pref.alertafter:
                return False
        return True

    def _call(
        self,
        st: ServiceState,
        program: str,
        args: tuple[str, ...],
        flags: AlertFlag,
        kind: AlertKind,
        output: str,
        retval: int | None,
        period_label: str,
        now: float,
    ) -> AlertCall:
        _, detail = _split_output(output)
        return AlertCall(
            watch=st.watch,
            service=st.service,
            program=program,
            args=args,
            flags=flags,
            kind=kind,
            summary=_summary_of(output),
            detail=detail,
            output=output,
            hosts=self.group_hosts(st.watch),
            retval=retval,
            period_label=period_label,
            time=now,
            trap_intended=st.intended,
            state_env=_state_env(st),
        )


def _strip(text: str) -> str:
    return re.sub(r"\s", "", text)


def _kind(flags: AlertFlag) -> AlertKind:
    if flags & AlertFlag.UPALERT:
        return "upalert"
    if flags & AlertFlag.STARTUPALERT:
        return "startupalert"
    if flags & AlertFlag.DISABLEALERT:
        return "disablealert"
    if flags & AlertFlag.ACKALERT:
        return "ackalert"
    return "alert"


def _alerts_of(pref: Period, flags: AlertFlag) -> list[AlertSpec]:
    if flags & AlertFlag.UPALERT:
        return pref.upalerts
    if flags & AlertFlag.STARTUPALERT:
        return pref.startupalerts
    if flags & AlertFlag.DISABLEALERT:
        return pref.disablealerts
    if flags & AlertFlag.ACKALERT:
        return pref.ackalerts
    return pref.alerts


# ---------------------------------------------------------------- the alert's command line


def _alert_type(flags: AlertFlag) -> str:
    # mon's order of precedence for MON_ALERTTYPE
    for flag, name in (
        (AlertFlag.UPALERT, "up"),
        (AlertFlag.STARTUPALERT, "startup"),
        (AlertFlag.ACKALERT, "ack"),
        (AlertFlag.DISABLEALERT, "disable"),
        (AlertFlag.TRAPTIMEOUT, "traptimeout"),
        (AlertFlag.TRAP, "trap"),
        (AlertFlag.TEST, "test"),
    ):
        if flags & flag:
            return name
    return "failure"


def _alert_option(flags: AlertFlag) -> str | None:
    # mon assigns in this order, so the last matching one wins
    option = None
    for flag, opt in (
        (AlertFlag.UPALERT, "-u"),
        (AlertFlag.ACKALERT, "-a"),
        (AlertFlag.DISABLEALERT, "-D"),
        (AlertFlag.TRAP, "-T"),
        (AlertFlag.TRAPTIMEOUT, "-O"),
    ):
        if flags & flag:
            option = opt
    return option


def _epoch(value: float) -> str:
    return str(int(value))


def _state_env(st: ServiceState) -> tuple[tuple[str, str], ...]:
    env: list[tuple[str, str]] = []
    if st.last_summary is not None:
        env.append(("MON_LAST_SUMMARY", st.last_summary))
    if st.last_output is not None:
        env.append(("MON_LAST_OUTPUT", st.last_output))
    env.append(("MON_LAST_FAILURE", _epoch(st.last_failure)))
    if st.first_failure is not None:
        env.append(("MON_FIRST_FAILURE", _epoch(st.first_failure)))
    env.append(("MON_FIRST_SUCCESS", ""))  # mon sets it from a field it never fills
    env.append(("MON_LAST_SUCCESS", _epoch(st.last_success)))
    env.append(("MON_OPSTATUS", str(int(st.op_status))))
    if st.ack and st.ack_comment:
        env.append(("MON_ACK", st.ack_comment))
    return tuple(env)


def alert_argv_env(
    call: AlertCall,
    alert_path: str,
    service: Service,
    config: MonConfig,
    statedir: str | None = None,
    logdir: str | None = None,
    cfbasedir: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """mon's call_alert: the argv `alert_path -s SVC -g GRP -h "HOSTS" -t TIME [-u|-a|-D|-T|-O]
    args...` and the variables it adds to its own environment (the service's VAR=value and
    the MON_* ones; the state's as they were at the decision). The directories default to
    the config's: pass the resolved ones."""
    argv = [
        alert_path,
        "-s", call.service,
        "-g", call.watch,
        "-h", " ".join(call.hosts),
        "-t", _epoch(call.time),
    ]  # fmt: skip
    option = _alert_option(call.flags)
    if option:
        argv.append(option)
    argv += call.args
    env = dict(service.variables)
    env.update(call.state_env)
    if service.description:
        env["MON_DESCRIPTION"] = service.description
    env["MON_GROUP"] = call.watch
    env["MON_SERVICE"] = call.service
    if call.retval is not None:
        env["MON_RETVAL"] = str(call.retval)
    env["MON_ALERTTYPE"] = _alert_type(call.flags)
    env["MON_STATEDIR"] = statedir if statedir is not None else config.statedir
    env["MON_LOGDIR"] = logdir if logdir is not None else config.logdir
    env["MON_CFBASEDIR"] = cfbasedir if cfbasedir is not None else config.cfbasedir
    if call.trap_intended:
        env["MON_TRAP_INTENDED"] = call.trap_intended
    return argv, env
