"""What a mon.cf says, as mon 1.3 reads it (its read_cf), in plain data. Times are seconds.

Defaults are mon 1.3's. hastack's additions are marked (see docs/compat.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DEFAULT_PORT = 2583
DepBehavior = Literal["a", "m", "hm"]  # alert, monitor, host-monitor dependencies (mon's)


@dataclass(frozen=True)
class Where:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ExitRange:
    """`exit=N` or `exit=N-M` on an alert line (inclusive); None on an AlertSpec: any exit."""

    low: int
    high: int

    def __contains__(self, code: object) -> bool:
        return isinstance(code, int) and self.low <= code <= self.high


@dataclass(frozen=True)
class AlertSpec:
    """One `alert`/`upalert`/`startupalert`/`ackalert`/`disablealert` line: the alert program
    (looked up in alertdir) and its arguments, with its optional exit range."""

    program: str
    args: tuple[str, ...] = ()
    exit_range: ExitRange | None = None
    where: Where | None = None


@dataclass(frozen=True)
class AlertEvery:
    seconds: float
    observe_detail: bool = False  # a change of the detail (not only the summary) re-alerts
    ignore_summary: bool = False  # a change of the summary does not re-alert
    strict: bool = False  # alert every `seconds` whatever the output does


@dataclass
class Period:
    """`period [label:] spec` and what follows it, up to the next period or service."""

    label: str  # the label, or the spec itself when none was given (mon's key)
    spec: str  # Time::Period text, "" for always
    alerts: list[AlertSpec] = field(default_factory=list)
    upalerts: list[AlertSpec] = field(default_factory=list)
    startupalerts: list[AlertSpec] = field(default_factory=list)
    ackalerts: list[AlertSpec] = field(default_factory=list)
    disablealerts: list[AlertSpec] = field(default_factory=list)
    alertevery: AlertEvery | None = None
    alertafter_consec: int | None = None  # `alertafter N`
    alertafter: int | None = None  # `alertafter N T`: N failures ...
    alertafter_interval: float | None = None  # ... within T (or `alertafter T` alone)
    upalertafter: float | None = None
    numalerts: int | None = None
    no_comp_alerts: bool = False
    alerts_dont_count: bool = False
    alertexitrange: ExitRange | None = None
    where: Where | None = None


@dataclass
class Service:
    name: str
    interval: float | None = None  # None: trap-only service
    failure_interval: float | None = None
    monitor: str | None = None  # "program args..." (";;" at the end: no hosts appended)
    description: str = ""
    allow_empty_group: bool = False
    traptimeout: float | None = None
    trapduration: float | None = None
    randskew: float = 0.0
    redistribute: str = ""
    unack_summary: bool = False
    dep_behavior: DepBehavior = "a"
    dep_memory: float | None = None
    depend: str = ""  # the expressions, as written (SELF: expanded by the server)
    alertdepend: str = ""
    monitordepend: str = ""
    hostdepend: str = ""
    exclude_hosts: list[str] = field(default_factory=list)
    exclude_period: str = ""
    variables: dict[str, str] = field(default_factory=dict)  # VAR=value exports
    periods: list[Period] = field(default_factory=list)
    where: Where | None = None


@dataclass
class Watch:
    name: str  # the hostgroup watched
    services: dict[str, Service] = field(default_factory=dict)
    where: Where | None = None


@dataclass
class MonConfig:
    source: str = "/etc/mon/mon.cf"
    # globals (mon 1.3's names; the directories as read, resolved against basedir/cfbasedir)
    # mondir/alertdir: ":"-separated search paths, relative ones under basedir
    alertdir: str = "/usr/local/lib/mon/alert.d:alert.d"
    mondir: str = "/usr/local/lib/mon/mon.d:mon.d"
    basedir: str = "/usr/lib/mon"
    cfbasedir: str = "/etc/mon"
    logdir: str = "/var/log/mon"  # mon: log.d under basedir when /var/log/mon is missing
    statedir: str = "/var/state/mon"  # mon: state.d under basedir when it is missing
    histlength: int = 100
    serverport: int = DEFAULT_PORT
    trapport: int = DEFAULT_PORT
    serverbind: str | None = None
    trapbind: str | None = None
    clientallow: str = r"\d+.\d+.\d+.\d+"  # a regular expression over client addresses
    pidfile: str | None = None
    randstart: float = 0.0
    maxprocs: int = 0  # 0: no limit
    authfile: str = "auth.cf"  # under cfbasedir when relative
    authtype: list[str] = field(default_factory=lambda: ["getpwnam"])
    pamservice: str = "passwd"
    userfile: str = "monusers.cf"  # under cfbasedir when relative
    historicfile: str = ""  # under logdir when relative; "" none
    historictime: float = 0.0
    cltimeout: float = 30.0
    monerrfile: str = "/dev/null"
    dtlogfile: str = "downtime.log"  # under logdir when relative
    dtlogging: bool = False
    dep_recur_limit: int = 10
    dep_behavior: DepBehavior = "a"
    dep_memory: float | None = None
    unack_summary: bool = False
    syslog_facility: str = "daemon"
    startupalerts_on_reset: bool = False
    monremote: str | None = None
    exclude_period: str = ""
    # hostgroups, views, aliases, watches, in file order
    hostgroups: dict[str, list[str]] = field(default_factory=dict)
    views: dict[str, list[str]] = field(default_factory=dict)  # view name -> watch names
    aliases: dict[str, list[str]] = field(default_factory=dict)  # alias name -> its lines
    watches: dict[str, Watch] = field(default_factory=dict)
    # hastack's additions
    # each global as written in the file (key -> text), before paths are resolved and values
    # converted: added by hastack.mon.config so the resolved fields above can be explained
    globals_text: dict[str, str] = field(default_factory=dict)
    monitor_timeout: float | None = None  # a monitor still running after this is killed
    warnings: list[str] = field(default_factory=list)  # "FILE:LINE: text"
