"""Cluster events: what the controller says happened, for hooks (alerts), the log and history.

The controller emits one `ClusterEvent` per state change it observes, numbered by ``seq`` in
the order it saw them. The same object feeds three consumers, so they can never disagree:

* :mod:`hastack.crm.alerts` turns it into runs of the configured alert agents (hooks), one at
  a time, in ``seq`` order;
* :mod:`hastack.crm.history` appends it to the node's history file (``hastack history``);
* :func:`log_cluster_event` writes it to the daemon's log as one structured line.

Event names (``event``), their ``kind`` and what the other fields hold:

====================  ==========  ============================================================
event                 kind        fields used
====================  ==========  ============================================================
resource-started      resource    node, resource, task ("start"), rc, target_rc, status,
resource-stopped      resource    interval_ms, previous (the resource's role on that node
resource-promoted     resource    before: Stopped, Started, Unpromoted, Promoted), desc;
resource-demoted      resource    ``fields["exec_time_ms"]`` when known
resource-failed       resource    as above; task is the action that failed (a monitor, a start)
resource-action       resource    any other action result worth an alert (a probe, a reload)
node-joined           node        node, previous (the node's state before: lost, unclean,
node-lost             node        member), ``fields["nodeid"]``
node-fenced           fencing     node (the target), task (reboot, off), rc (0),
fencing-failed        fencing     ``fields["executioner"]``, ``fields["origin"]``; rc != 0 on
                                  failure
quorum-lost           quorum      previous ("quorate"), ``fields["votes"]``,
quorum-regained       quorum      ``fields["expected_votes"]`` when known; node is None
attribute-changed     attribute   node, ``fields["name"]``, ``fields["value"]`` (None: deleted),
                                  previous (the value before; None: it was not set)
transition-started    transition  ``fields["transition"]`` (its number), ``fields["actions"]``,
transition-completed  transition  ``fields["reason"]`` (what made the scheduler run); desc is a
transition-aborted    transition  one-line summary. History only: never sent to hooks.
dc-elected            cluster     node (the new DC), ``fields["term"]``. History only.
====================  ==========  ============================================================

``status`` is Pacemaker's numeric execution status (``PCMK_EXEC_*``, see `EXEC_STATUS_CODES`
for hastack's `ExecStatus` names); ``rc`` and ``target_rc`` are OCF exit codes; ``time`` is
wall-clock seconds (``time.time()``) when the controller observed the change.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast, get_args

from hastack.transport.logevents import emit

EventKind = Literal["node", "fencing", "resource", "attribute", "quorum", "transition", "cluster"]
KINDS: tuple[EventKind, ...] = get_args(EventKind)

# Every event name and the kind it belongs to.
EVENTS: dict[str, EventKind] = {
    "resource-started": "resource",
    "resource-stopped": "resource",
    "resource-promoted": "resource",
    "resource-demoted": "resource",
    "resource-failed": "resource",
    "resource-action": "resource",
    "node-joined": "node",
    "node-lost": "node",
    "node-fenced": "fencing",
    "fencing-failed": "fencing",
    "quorum-lost": "quorum",
    "quorum-regained": "quorum",
    "attribute-changed": "attribute",
    "transition-started": "transition",
    "transition-completed": "transition",
    "transition-aborted": "transition",
    "dc-elected": "cluster",
}
# Kinds kept in the history and the log but never sent to hooks (Pacemaker has no alert kind
# for them, and agents would not know what to do with them).
HISTORY_ONLY_KINDS: frozenset[str] = frozenset({"transition", "cluster"})
# The event's own attributes a controller's field dict may carry (see `ClusterEvent.from_fields`).
_ATTRIBUTES = (
    "node",
    "resource",
    "task",
    "interval_ms",
    "rc",
    "target_rc",
    "status",
    "desc",
    "previous",
)

# Pacemaker's enum pcmk_exec_status, for hastack's ExecStatus names (agents.rc).
EXEC_STATUS_CODES: dict[str, int] = {
    "done": 0,
    "cancelled": 1,
    "timeout": 2,
    "error": 4,
    "not-installed": 7,
}

# Events at these log levels; everything else is "info".
_LOG_LEVELS: dict[str, str] = {
    "resource-failed": "warning",
    "node-lost": "warning",
    "node-fenced": "warning",
    "fencing-failed": "error",
    "quorum-lost": "warning",
    "transition-aborted": "warning",
}


class EventError(ValueError):
    """A ClusterEvent (or its JSON form) is not valid; the message says what and why."""


def _check_int(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        allowed = "an integer or null" if optional else "an integer"
        raise EventError(f"event field {name!r} must be {allowed}, not {value!r}")


def _check_text(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        allowed = "text or null" if optional else "text"
        raise EventError(f"event field {name!r} must be {allowed}, not {value!r}")


@dataclass(frozen=True)
class ClusterEvent:
    """One thing that happened in the cluster, as the controller saw it (see the module doc).

    ``seq`` is assigned by the emitter (the controller), strictly increasing; ``fields``
    holds the event's extra JSON-serialisable details (copied, and left out of the hash).
    """

    seq: int
    time: float
    kind: EventKind
    event: str
    node: str | None = None
    resource: str | None = None
    task: str | None = None
    interval_ms: int = 0
    rc: int | None = None
    target_rc: int | None = None
    status: int | None = None
    desc: str = ""
    previous: str | None = None
    fields: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_int("seq", self.seq, optional=False)
        if self.seq < 0:
            raise EventError(f"event field 'seq' must be >= 0, not {self.seq}")
        if (
            isinstance(self.time, bool)
            or not isinstance(self.time, int | float)
            or not math.isfinite(self.time)
        ):
            raise EventError(f"event field 'time' must be a finite number, not {self.time!r}")
        if self.kind not in KINDS:
            raise EventError(f"unknown event kind {self.kind!r}; known: {', '.join(KINDS)}")
        expected = EVENTS.get(self.event) if isinstance(self.event, str) else None
        if expected is None:
            raise EventError(f"unknown event {self.event!r}; known: {', '.join(EVENTS)}")
        if expected != self.kind:
            raise EventError(f"event {self.event!r} is of kind {expected!r}, not {self.kind!r}")
        for name in ("node", "resource", "task", "previous"):
            _check_text(name, getattr(self, name), optional=True)
        _check_text("desc", self.desc, optional=False)
        _check_int("interval_ms", self.interval_ms, optional=False)
        for name in ("rc", "target_rc", "status"):
            _check_int(name, getattr(self, name), optional=True)
        if not isinstance(self.fields, dict) or not all(isinstance(k, str) for k in self.fields):
            raise EventError(f"event field 'fields' must be an object, not {self.fields!r}")
        object.__setattr__(self, "fields", dict(self.fields))

    @classmethod
    def make(cls, seq: int, time: float, event: str, **kw: Any) -> ClusterEvent:
        """An event with its kind taken from its name (`EVENTS`): less to get wrong."""
        kind = EVENTS.get(event)
        if kind is None:
            raise EventError(f"unknown event {event!r}; known: {', '.join(EVENTS)}")
        return cls(seq, time, kind, event, **kw)

    @classmethod
    def from_fields(cls, seq: int, time: float, event: str, data: dict[str, Any]) -> ClusterEvent:
        """An event from a name and one flat dict (as a controller's effect carries them): the
        keys that are event attributes (node, resource, task, interval_ms, rc, target_rc,
        status, desc, previous) become attributes, the rest ``fields``."""
        attributes = {k: v for k, v in data.items() if k in _ATTRIBUTES}
        if attributes.get("desc") is None:
            attributes["desc"] = ""
        rest = {k: v for k, v in data.items() if k not in _ATTRIBUTES}
        return cls.make(seq, time, event, fields=rest, **attributes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        """One line of compact JSON (no newline inside, so it is one history line)."""
        try:
            return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EventError(
                f"event {self.seq} ({self.event}): fields are not JSON-serialisable: {exc}"
            ) from None

    @classmethod
    def from_dict(cls, data: object) -> ClusterEvent:
        """The event in `data`; unknown keys are refused (they would be lost), missing optional
        ones take their defaults. Raises EventError naming what is wrong."""
        if not isinstance(data, dict):
            raise EventError(f"an event must be a JSON object, not {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise EventError(f"unknown event field(s) {', '.join(map(repr, unknown))}")
        missing = [name for name in ("seq", "time", "kind", "event") if name not in data]
        if missing:
            raise EventError(f"event lacks field(s) {', '.join(map(repr, missing))}")
        kw = dict(data)
        return cls(
            kw.pop("seq"), kw.pop("time"), cast(EventKind, kw.pop("kind")), kw.pop("event"), **kw
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ClusterEvent:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventError(f"not JSON: {exc}") from None
        return cls.from_dict(data)


def log_cluster_event(logger: logging.Logger, event: ClusterEvent) -> None:
    """Write `event` to the log as one structured line, named by the event (grep-able)."""
    fields: dict[str, Any] = {**event.fields, "seq": event.seq}
    for name in ("node", "resource", "task", "rc", "target_rc", "status", "previous"):
        value = getattr(event, name)
        if value is not None:
            fields[name] = value
    if event.interval_ms:
        fields["interval_ms"] = event.interval_ms
    message = event.desc or event.event
    emit(logger, _LOG_LEVELS.get(event.event, "info"), event.event, message, fields)
