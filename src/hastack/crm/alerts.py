"""Notification hooks, as Pacemaker's alerts: the CIB's ``<alerts>`` section, read and run.

Hooks *are* Pacemaker alert agents, so the agents users already have (Pacemaker's
``alert_file.sh.sample``, ``alert_smtp.sh``, ``alert_snmp.sh``, their own) keep working
unchanged. The configuration is Pacemaker's::

    <alerts>
      <alert id="A" path="/abs/path/to/agent">
        <meta_attributes>      timeout (30s), timestamp-format (%H:%M:%S.%06N), enabled (true)
        <instance_attributes>  passed to the agent as environment variables
        <select>               select_nodes, select_fencing, select_resources,
                               select_attributes (optionally <attribute name="..."/> children)
        <recipient id="R" value="...">  one run per recipient, with CRM_alert_recipient; a
                                         recipient's own meta/instance attributes win
      </alert>
    </alerts>

Without ``<select>`` an alert gets node, fencing and resource events (Pacemaker's default;
attribute events only when selected) and quorum events (hastack's kind; with a ``<select>``, ask
for them with the meta attribute ``hastack-select-quorum=true``). Transition events are history
only (as are "cluster" events: a DC elected) and never run hooks.

**How hastack differs from Pacemaker.** Pacemaker starts all alert agents of an event at once,
so a script can see a later event before an earlier one. hastack runs hooks in order, one at a
time: every run of event N (alerts in document order, then recipients in order) finishes
before the first run of event N+1 starts. A hook that fails is logged and not retried; one that
hangs is killed (its whole process group) at its timeout and the next one runs. If hooks fall
far behind, the oldest waiting events are dropped, counted and logged, and the next hook is
told how many (``HASTACK_dropped``).

**The environment a hook gets** (Pacemaker 2.1's variables, each also as ``CRM_notify_*``):

- always: ``CRM_alert_kind`` (node, fencing, resource, attribute; hastack adds quorum),
  ``CRM_alert_version``, ``CRM_alert_recipient`` (when the alert has recipients),
  ``CRM_alert_node_sequence`` (the event's ``seq``, the same for every run of one event),
  ``CRM_alert_timestamp`` (the event's time in the timestamp-format), ``CRM_alert_timestamp_epoch``,
  ``CRM_alert_timestamp_usec``, ``CRM_alert_select_kind`` (the kinds the alert selected, comma
  separated) and ``CRM_alert_select_attribute_name`` (its attribute filter, when it has one);
- node: ``CRM_alert_node``, ``CRM_alert_nodeid``, ``CRM_alert_desc`` (member or lost);
- fencing: ``CRM_alert_node`` (the target), ``CRM_alert_task``, ``CRM_alert_rc``,
  ``CRM_alert_desc`` ("Operation reboot of N by E for O: OK");
- resource: ``CRM_alert_node``, ``CRM_alert_rsc``, ``CRM_alert_task``, ``CRM_alert_interval``
  (ms), ``CRM_alert_rc``, ``CRM_alert_target_rc``, ``CRM_alert_status`` (``PCMK_EXEC_*``),
  ``CRM_alert_exec_time`` (ms, when known), ``CRM_alert_desc`` (as Pacemaker: the rc's name when
  the action ran, else the execution status's);
- attribute: ``CRM_alert_node``, ``CRM_alert_nodeid``, ``CRM_alert_attribute_name``,
  ``CRM_alert_attribute_value``;
- quorum: ``CRM_alert_desc`` (lost or regained);
- hastack's own: ``HASTACK_event`` (the stable event name, see :mod:`hastack.crm.events`),
  ``HASTACK_previous_state`` (the resource's previous role on that node, the node's previous
  state, or "quorate"/"inquorate"; empty when unknown), ``HASTACK_node`` (the node running the
  hook), ``HASTACK_version``, ``HASTACK_dropped`` (events dropped since the previous event's
  hooks ran, normally 0).

Instance attributes come before these, so an instance attribute cannot fake an event field.
The inherited environment is passed on (as Pacemaker's executor does) without any ``CRM_*``,
``OCF_*`` or ``HASTACK_*`` variables of the daemon, with the system directories first in PATH.

Everything here is pure except `AlertQueue`, which is sans-IO: it is fed events and results with
an explicit ``now`` (monotonic seconds) and returns effects (`RunHook`, `KillHook`, `Log`);
:mod:`hastack.crm.alert_runner` carries them out.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from lxml import etree

from hastack import __version__
from hastack.agents.invocation import sane_path
from hastack.crm.cib.model import Cib, RawXml, parse_bool, parse_interval_ms
from hastack.crm.events import HISTORY_ONLY_KINDS, ClusterEvent
from hastack.membership.effects import Log

# The Pacemaker alert interface hastack implements: the version Debian 12's Pacemaker sets
# (agents only check that it is there; some compare it against 1.1.15).
ALERT_VERSION = "2.1.5"
DEFAULT_TIMEOUT_MS = 30_000
DEFAULT_TIMESTAMP_FORMAT = "%H:%M:%S.%06N"
# Kinds an alert gets without <select>: Pacemaker's default, plus hastack's quorum events.
DEFAULT_KINDS: frozenset[str] = frozenset({"node", "fencing", "resource", "quorum"})
_SELECT_TAGS = {
    "select_nodes": "node",
    "select_fencing": "fencing",
    "select_resources": "resource",
    "select_attributes": "attribute",
}
_KIND_ORDER = ("node", "fencing", "resource", "attribute", "quorum")
SELECT_QUORUM_META = "hastack-select-quorum"
_ENV_NAME_RE = re.compile(r"[^=\0\s]+")
# Variables of the daemon's own environment a hook must not inherit: they would pose as
# event fields (or, OCF_*, as resource parameters).
_PRIVATE_PREFIXES = ("CRM_alert_", "CRM_notify_", "CRM_meta_", "OCF_", "HASTACK_")

# Pacemaker's services_ocf_exitcode_str and pcmk_exec_status_str: CRM_alert_desc of a
# resource event.
_OCF_RC_DESC = {
    0: "ok",
    1: "error",
    2: "invalid parameter",
    3: "unimplemented feature",
    4: "insufficient privileges",
    5: "not installed",
    6: "not configured",
    7: "not running",
    8: "promoted",
    9: "promoted (failed)",
    190: "OCF_DEGRADED",
    191: "promoted (degraded)",
}
_EXEC_STATUS_DESC = {
    -1: "pending",
    0: "complete",
    1: "Cancelled",
    2: "Timed Out",
    3: "NOT SUPPORTED",
    4: "Error",
    5: "Hard error",
    6: "Fatal error",
    7: "Not installed",
    8: "Internal communication failure",
    9: "Cannot execute now",
    10: "No fence device",
    11: "CIB secrets unavailable",
}


class AlertsError(ValueError):
    """The alerts configuration could not be read at all (it is not XML)."""


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class Recipient:
    """One run of an alert: its effective timeout, timestamp format and extra environment
    (the alert's, with the recipient's own attributes applied). ``id``/``value`` are None for
    the single run of an alert that has no recipients."""

    id: str | None
    value: str | None
    timeout_ms: int
    timestamp_format: str
    env: Mapping[str, str]
    enabled: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def __hash__(self) -> int:
        return hash((self.id, self.value, self.timeout_ms, tuple(sorted(self.env.items()))))


@dataclass(frozen=True)
class Alert:
    id: str
    path: str
    kinds: frozenset[str]
    attributes: tuple[str, ...]  # select_attributes' filter; empty: every attribute
    recipients: tuple[Recipient, ...]  # at least one (a value-less one when none configured)
    enabled: bool = True

    @property
    def select_kind(self) -> str:
        return ",".join(k for k in _KIND_ORDER if k in self.kinds)


@dataclass(frozen=True)
class AlertConfig:
    """The alerts to run, and what was wrong in the section (those parts are skipped, as
    Pacemaker skips them, so one bad alert does not silence the others)."""

    alerts: tuple[Alert, ...] = ()
    problems: tuple[str, ...] = ()


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        remove_comments=True, resolve_entities=False, no_network=True, load_dtd=False
    )


def _alerts_element(
    source: Cib | RawXml | str | bytes | etree._Element | None,
) -> etree._Element | None:
    if source is None:
        return None
    if isinstance(source, Cib):
        source = source.alerts
        if source is None:
            return None
    if isinstance(source, RawXml):
        source = source.xml
    if isinstance(source, str | bytes):
        data = source.encode() if isinstance(source, str) else source
        try:
            root = etree.fromstring(data, _parser())
        except etree.XMLSyntaxError as exc:
            raise AlertsError(f"the alerts section is not well-formed XML: {exc}") from None
    else:
        root = source
    if root.tag == "alerts":
        return root
    found = root.find("configuration/alerts") if root.tag == "cib" else root.find("alerts")
    return found


def _where(el: etree._Element) -> str:
    line = f" (line {el.sourceline})" if el.sourceline else ""
    ident = el.get("id")
    return f"<{el.tag}{f' id={ident!r}' if ident else ''}>{line}"


def _nvpairs(
    holder: etree._Element, tag: str, root: etree._Element, problems: list[str]
) -> dict[str, str]:
    """The name/value pairs of `holder`'s <tag> sets (id-refs resolved in `root`); the first
    definition of a name wins, as in Pacemaker's attribute sets."""
    out: dict[str, str] = {}
    for nvset in holder.findall(tag):
        ref = nvset.get("id-ref")
        if ref is not None:
            target = next((e for e in root.iter(tag) if e.get("id") == ref), None)
            if target is None:
                problems.append(f"{_where(nvset)}: id-ref {ref!r} names no <{tag}>")
                continue
            nvset = target
        if nvset.find("rule") is not None:
            problems.append(
                f"{_where(nvset)}: rules in alert attributes are not supported; "
                "the set is used without its rule"
            )
        for pair in nvset.findall("nvpair"):
            name, value = pair.get("name"), pair.get("value")
            if name is None or not _ENV_NAME_RE.fullmatch(name):
                problems.append(
                    f"{_where(pair)}: bad name {name!r}: a name must be non-empty, "
                    "without '=', NUL or whitespace"
                )
                continue
            if value is None:
                value = ""
            out.setdefault(name, value)
    return out


def _timeout_ms(text: str | None, where: str, problems: list[str], default: int) -> int:
    if text is None:
        return default
    try:
        value = parse_interval_ms(text)
    except ValueError as exc:
        problems.append(f"{where}: timeout: {exc}; using {default / 1000:g}s")
        return default
    return value if value > 0 else default


def _enabled(text: str | None, where: str, problems: list[str]) -> bool:
    try:
        return parse_bool(text, default=True)
    except ValueError:
        problems.append(f"{where}: enabled={text!r} is not a boolean (true/false); using true")
        return True


def _parse_alert(el: etree._Element, root: etree._Element, problems: list[str]) -> Alert | None:
    where = _where(el)
    alert_id, path = el.get("id"), el.get("path")
    if not alert_id:
        problems.append(f"{where}: an alert needs an id; skipped")
        return None
    if not path or not path.startswith("/"):
        problems.append(
            f"{where}: path must be the agent's absolute path, not {path!r}; alert skipped"
        )
        return None
    meta = _nvpairs(el, "meta_attributes", root, problems)
    env = _nvpairs(el, "instance_attributes", root, problems)
    timeout = _timeout_ms(meta.get("timeout"), where, problems, DEFAULT_TIMEOUT_MS)
    stamp = meta.get("timestamp-format") or DEFAULT_TIMESTAMP_FORMAT
    select = el.find("select")
    attributes: list[str] = []
    if select is None:
        kinds = set(DEFAULT_KINDS)
    else:
        kinds = set()
        for child in select:
            if not isinstance(child.tag, str):
                continue
            kind = _SELECT_TAGS.get(child.tag)
            if kind is None:
                problems.append(
                    f"{where}: unknown <{child.tag}> in <select> (known: "
                    f"{', '.join(_SELECT_TAGS)}); ignored"
                )
                continue
            kinds.add(kind)
            if kind == "attribute":
                attributes += [a.get("name", "") for a in child.findall("attribute")]
        try:
            if parse_bool(meta.get(SELECT_QUORUM_META), default=False):
                kinds.add("quorum")
        except ValueError:
            problems.append(f"{where}: {SELECT_QUORUM_META} is not a boolean; ignored")
    recipients: list[Recipient] = []
    declared = el.findall("recipient")
    for r in declared:
        rwhere = _where(r)
        if not r.get("value"):
            problems.append(f"{rwhere}: a recipient needs a value; skipped")
            continue
        own_meta = _nvpairs(r, "meta_attributes", root, problems)
        rmeta = {**meta, **own_meta}
        renv = {**env, **_nvpairs(r, "instance_attributes", root, problems)}
        recipients.append(
            Recipient(
                id=r.get("id"),
                value=r.get("value"),
                timeout_ms=_timeout_ms(own_meta.get("timeout"), rwhere, problems, timeout),
                timestamp_format=rmeta.get("timestamp-format") or stamp,
                env=renv,
                enabled=_enabled(rmeta.get("enabled"), rwhere, problems),
            )
        )
    if declared and not recipients:
        problems.append(f"{where}: none of its recipients is usable; alert skipped")
        return None
    if not declared:
        recipients.append(Recipient(None, None, timeout, stamp, env))
    return Alert(
        id=alert_id,
        path=path,
        kinds=frozenset(kinds),
        attributes=tuple(a for a in attributes if a),
        recipients=tuple(recipients),
        enabled=_enabled(meta.get("enabled"), where, problems),
    )


def parse_alerts(source: Cib | RawXml | str | bytes | etree._Element | None) -> AlertConfig:
    """Read the alerts of a CIB (the model, its RawXml ``alerts``, XML text, or an lxml element
    of ``<cib>``, ``<configuration>`` or ``<alerts>``). Parts that are wrong are skipped and
    described in ``problems``; raises AlertsError only for text that is not XML."""
    section = _alerts_element(source)
    if section is None:
        return AlertConfig()
    problems: list[str] = []
    alerts: list[Alert] = []
    seen: set[str] = set()
    root = section.getroottree().getroot()
    for el in section:
        if not isinstance(el.tag, str):
            continue
        if el.tag != "alert":
            problems.append(f"{_where(el)}: not an <alert>; ignored")
            continue
        alert = _parse_alert(el, root, problems)
        if alert is None:
            continue
        if alert.id in seen:
            problems.append(f"{_where(el)}: a second alert with id {alert.id!r}; skipped")
            continue
        seen.add(alert.id)
        alerts.append(alert)
    return AlertConfig(tuple(alerts), tuple(problems))


# ---------------------------------------------------------------------------------------------
# Selection and each run's environment


def wants(alert: Alert, event: ClusterEvent) -> bool:
    """Whether `alert` is run for `event` (its kinds, its attribute filter, enabled)."""
    if not alert.enabled or event.kind not in alert.kinds:
        return False
    if event.kind == "attribute" and alert.attributes:
        return event.fields.get("name") in alert.attributes
    return True


def split_time(when: float) -> tuple[int, int]:
    """`when` as whole seconds and microseconds (rounded, carried into the seconds)."""
    seconds = int(when // 1)
    usec = round((when - seconds) * 1_000_000)
    if usec >= 1_000_000:
        seconds, usec = seconds + 1, usec - 1_000_000
    return seconds, usec


_FRACTION_RE = re.compile(r"%%|%0?([1-9])?N")


def format_timestamp(
    fmt: str,
    when: float,
    localtime: Callable[[float], time.struct_time] = time.localtime,
) -> str:
    """`when` in a Pacemaker timestamp-format: strftime, plus ``%N`` (nanoseconds, 9 digits)
    and ``%<d>N``/``%0<d>N`` (the first d digits of the fraction: ``%06N`` = microseconds)."""
    seconds, usec = split_time(when)
    nanos = usec * 1000  # what a float holds of the fraction: microseconds
    parts = localtime(seconds)
    out: list[str] = []
    last = 0
    for m in _FRACTION_RE.finditer(fmt):
        out.append(time.strftime(fmt[last : m.start()], parts) if m.start() > last else "")
        if m.group(0) == "%%":
            out.append("%")
        else:
            digits = int(m.group(1) or 9)
            out.append(f"{nanos:09d}"[:digits])
        last = m.end()
    if last < len(fmt):
        out.append(time.strftime(fmt[last:], parts))
    return "".join(out)


def _resource_desc(event: ClusterEvent) -> str:
    if event.status in (None, 0):
        return _OCF_RC_DESC.get(event.rc if event.rc is not None else 0, "unknown")
    return _EXEC_STATUS_DESC.get(event.status, "Unknown")


def _fencing_desc(event: ClusterEvent) -> str:
    by = event.fields.get("executioner") or "<no-one>"
    origin = event.fields.get("origin") or "<unknown>"
    result = "OK" if event.rc == 0 else (event.desc or f"error {event.rc}")
    return f"Operation {event.task or 'reboot'} of {event.node} by {by} for {origin}: {result}"


def _event_keys(event: ClusterEvent) -> dict[str, str]:
    """The CRM_alert_* names (without the prefix) for the event's own fields."""
    keys: dict[str, str] = {}
    if event.node is not None:
        keys["node"] = event.node
    nodeid = event.fields.get("nodeid")
    if event.kind == "node":
        keys["nodeid"] = "" if nodeid is None else str(nodeid)
        keys["desc"] = "member" if event.event == "node-joined" else "lost"
    elif event.kind == "fencing":
        keys["task"] = event.task or "reboot"
        keys["rc"] = str(event.rc if event.rc is not None else 0)
        keys["desc"] = _fencing_desc(event)
    elif event.kind == "resource":
        keys["rsc"] = event.resource or ""
        keys["task"] = event.task or ""
        keys["interval"] = str(event.interval_ms)
        keys["rc"] = str(event.rc if event.rc is not None else 0)
        keys["target_rc"] = str(event.target_rc if event.target_rc is not None else 0)
        keys["status"] = str(event.status if event.status is not None else 0)
        keys["desc"] = _resource_desc(event)
        exec_time = event.fields.get("exec_time_ms")
        if exec_time is not None:
            keys["exec_time"] = str(exec_time)
    elif event.kind == "attribute":
        if nodeid is not None:
            keys["nodeid"] = str(nodeid)
        keys["attribute_name"] = str(event.fields.get("name", ""))
        value = event.fields.get("value")
        keys["attribute_value"] = "" if value is None else str(value)
    elif event.kind == "quorum":
        keys["desc"] = "lost" if event.event == "quorum-lost" else "regained"
    return keys


def inherited_env(base: Mapping[str, str]) -> dict[str, str]:
    """What a hook inherits of `base`: no CRM_*/OCF_*/HASTACK_* variables, a sane PATH."""
    env = {k: v for k, v in base.items() if not k.startswith(_PRIVATE_PREFIXES)}
    env["PATH"] = sane_path(base.get("PATH"))
    return env


def hook_env(
    alert: Alert,
    recipient: Recipient,
    event: ClusterEvent,
    *,
    node: str,
    base_env: Mapping[str, str] | None = None,
    dropped: int = 0,
    localtime: Callable[[float], time.struct_time] = time.localtime,
) -> dict[str, str]:
    """The complete environment of one run (see the module doc); `node` runs the hook."""
    env = inherited_env(base_env or {})
    env.update(recipient.env)
    epoch, usec = split_time(event.time)
    keys: dict[str, str] = {
        "kind": event.kind,
        "version": ALERT_VERSION,
        "node_sequence": str(event.seq),
        "timestamp": format_timestamp(recipient.timestamp_format, event.time, localtime),
        "timestamp_epoch": str(epoch),
        "timestamp_usec": str(usec),
        "select_kind": alert.select_kind,
    }
    if recipient.value is not None:
        keys["recipient"] = recipient.value
    if alert.attributes:
        keys["select_attribute_name"] = ",".join(alert.attributes)
    keys.update(_event_keys(event))
    for name, value in keys.items():
        env["CRM_alert_" + name] = value
        env["CRM_notify_" + name] = value
    env["HASTACK_event"] = event.event
    env["HASTACK_previous_state"] = event.previous or ""
    env["HASTACK_node"] = node
    env["HASTACK_version"] = __version__
    env["HASTACK_dropped"] = str(dropped)
    # An attribute value may hold anything; the environment cannot hold NUL.
    return {k: v.replace("\0", "") for k, v in env.items()}


@dataclass(frozen=True)
class HookRun:
    """One run of one alert agent for one event and recipient (the environment without
    HASTACK_dropped, which is known only when it starts)."""

    seq: int
    event: str
    alert_id: str
    recipient_id: str | None
    path: str
    timeout: float  # seconds
    alert: Alert = field(repr=False)
    recipient: Recipient = field(repr=False)


def plan_runs(config: AlertConfig, event: ClusterEvent) -> list[HookRun]:
    """The runs `event` causes, in the order they run: alerts in document order, each
    alert's recipients in order."""
    if event.kind in HISTORY_ONLY_KINDS:
        return []
    return [
        HookRun(event.seq, event.event, a.id, r.id, a.path, r.timeout_ms / 1000, a, r)
        for a in config.alerts
        if wants(a, event)
        for r in a.recipients
        if r.enabled
    ]


# ---------------------------------------------------------------------------------------------
# The queue (sans-IO)


@dataclass(frozen=True)
class RunHook:
    """Run `argv` with exactly `env`; report with `AlertQueue.finished(run_id, ...)`."""

    run_id: int
    seq: int
    event: str
    alert_id: str
    recipient_id: str | None
    argv: tuple[str, ...]
    env: Mapping[str, str]
    timeout: float

    def __hash__(self) -> int:
        return hash((self.run_id, self.argv))


@dataclass(frozen=True)
class KillHook:
    """Kill run `run_id` (its whole process group): it outlived its timeout. Its result, if
    one still arrives, is ignored."""

    run_id: int
    reason: str


AlertEffect = RunHook | KillHook | Log


@dataclass
class _Pending:
    event: ClusterEvent
    runs: deque[HookRun]
    dropped: int | None = None  # set when its first run starts: events dropped before it


@dataclass
class _Running:
    hook: RunHook
    deadline: float


class AlertQueue:
    """Runs hooks one at a time in event order (sans-IO: explicit `now`, effects returned).

    Feed each event with `feed`; carry out each `RunHook` and report its end with `finished`;
    call `tick` at `next_deadline()` so that a hook that hangs is killed (`KillHook`) and the
    next one started. At most `max_pending` events wait; beyond that the oldest is dropped.
    """

    def __init__(
        self,
        config: AlertConfig | None = None,
        *,
        node: str,
        base_env: Mapping[str, str] | None = None,
        max_pending: int = 1000,
        localtime: Callable[[float], time.struct_time] = time.localtime,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, not {max_pending}")
        self.config = config or AlertConfig()
        self.node = node
        self.base_env: dict[str, str] = dict(base_env or {})
        self.max_pending = max_pending
        self._localtime = localtime
        self._pending: deque[_Pending] = deque()
        self._running: _Running | None = None
        self._last_seq: int | None = None
        self._next_id = 1
        self._dropped_since = 0
        self.dropped = 0  # events dropped because hooks were too far behind
        self.completed = 0  # runs that ended with exit code 0
        self.failed = 0  # runs that failed, timed out or could not start

    # -- inputs -----------------------------------------------------------------------------

    def configure(self, config: AlertConfig) -> list[AlertEffect]:
        """Use `config` for events fed from now on (the waiting ones keep theirs)."""
        self.config = config
        return [Log("warning", "alert-config-problem", problem, {}) for problem in config.problems]

    def feed(self, event: ClusterEvent, now: float) -> list[AlertEffect]:
        """Queue the runs `event` causes; start one if none is running."""
        if self._last_seq is not None and event.seq <= self._last_seq:
            return [
                Log(
                    "warning",
                    "alert-event-out-of-order",
                    f"event {event.seq} ({event.event}) came after event {self._last_seq}: "
                    "not run, so hooks never see events out of order",
                    {"seq": event.seq, "last_seq": self._last_seq},
                )
            ]
        self._last_seq = event.seq
        runs = plan_runs(self.config, event)
        if not runs:
            return []
        effects: list[AlertEffect] = []
        self._pending.append(_Pending(event, deque(runs)))
        # The head may be an event whose runs are under way: it is not waiting, and its
        # remaining runs stay (no event's hooks are cut in half).
        under_way = 1 if self._pending[0].dropped is not None else 0
        while len(self._pending) - under_way > self.max_pending:
            # the oldest event whose hooks have not started goes
            index = under_way
            lost = self._pending[index].event
            del self._pending[index]
            self.dropped += 1
            self._dropped_since += 1
            effects.append(
                Log(
                    "warning",
                    "alert-dropped",
                    f"hooks are {self.max_pending} events behind: event {lost.seq} "
                    f"({lost.event}) dropped without running its hooks",
                    {"seq": lost.seq, "event": lost.event, "dropped_total": self.dropped},
                )
            )
        effects += self._start_next(now)
        return effects

    def finished(
        self,
        run_id: int,
        *,
        rc: int,
        status: str,
        now: float,
        reason: str = "",
        output: str = "",
        elapsed: float = 0.0,
    ) -> list[AlertEffect]:
        """Run `run_id` ended (``status`` as `hastack.agents.rc.ExecStatus`, ``rc`` its exit
        code): log it and start the next. A result for a run already killed is ignored."""
        running = self._running
        if running is None or running.hook.run_id != run_id:
            return []
        self._running = None
        hook = running.hook
        fields: dict[str, Any] = {
            "seq": hook.seq,
            "alert": hook.alert_id,
            "recipient": hook.recipient_id,
            "rc": rc,
            "status": status,
            "elapsed": round(elapsed, 3),
        }
        effects: list[AlertEffect] = []
        if status == "done" and rc == 0:
            self.completed += 1
            effects.append(
                Log("debug", "alert-done", f"hook {hook.alert_id} ran for event {hook.seq}", fields)
            )
        else:
            self.failed += 1
            why = reason or (f"exit code {rc}" if status == "done" else status)
            if output.strip():
                fields["output"] = output.strip()[-500:]
            effects.append(
                Log(
                    "warning",
                    "alert-failed",
                    f"hook {hook.alert_id} ({hook.argv[0]}) failed for event {hook.seq} "
                    f"({hook.event}): {why}; not retried",
                    fields,
                )
            )
        return effects + self._start_next(now)

    def tick(self, now: float) -> list[AlertEffect]:
        """Time passed: kill the running hook if it outlived its timeout, start the next."""
        running = self._running
        if running is None or now < running.deadline:
            return []
        self._running = None
        self.failed += 1
        hook = running.hook
        reason = f"timed out after {hook.timeout:g}s"
        return [
            KillHook(hook.run_id, reason),
            Log(
                "warning",
                "alert-timeout",
                f"hook {hook.alert_id} ({hook.argv[0]}) for event {hook.seq} ({hook.event}) "
                f"{reason}: killed, the next one runs",
                {"seq": hook.seq, "alert": hook.alert_id, "recipient": hook.recipient_id},
            ),
            *self._start_next(now),
        ]

    # -- state ------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When `tick` must be called next (the running hook's timeout), or None."""
        return None if self._running is None else self._running.deadline

    @property
    def running(self) -> RunHook | None:
        return None if self._running is None else self._running.hook

    @property
    def waiting(self) -> int:
        """Runs not started yet."""
        return sum(len(p.runs) for p in self._pending)

    @property
    def idle(self) -> bool:
        return self._running is None and not self._pending

    def snapshot(self) -> dict[str, Any]:
        """Counters for status output."""
        return {
            "running": None if self.running is None else self.running.alert_id,
            "waiting_runs": self.waiting,
            "waiting_events": len(self._pending),
            "completed": self.completed,
            "failed": self.failed,
            "dropped_events": self.dropped,
        }

    # -- internals --------------------------------------------------------------------------

    def _start_next(self, now: float) -> list[AlertEffect]:
        if self._running is not None:
            return []
        while self._pending and not self._pending[0].runs:
            self._pending.popleft()
        if not self._pending:
            return []
        head = self._pending[0]
        run = head.runs.popleft()
        if head.dropped is None:
            head.dropped, self._dropped_since = self._dropped_since, 0
        env = hook_env(
            run.alert,
            run.recipient,
            head.event,
            node=self.node,
            base_env=self.base_env,
            dropped=head.dropped,
            localtime=self._localtime,
        )
        if not head.runs:
            self._pending.popleft()
        hook = RunHook(
            self._next_id,
            run.seq,
            run.event,
            run.alert_id,
            run.recipient_id,
            (run.path,),
            MappingProxyType(env),
            run.timeout,
        )
        self._next_id += 1
        self._running = _Running(hook, now + run.timeout)
        return [hook]
