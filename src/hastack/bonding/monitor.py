"""Watch bonds and tell the cluster when one is degraded.

:class:`BondMonitor` is sans-IO: fed successive :class:`~hastack.bonding.procfs.BondStatus`
readings (or "this bond could not be read") with the time they were taken, it returns the
:class:`BondEvent` s that happened since the previous reading (a slave down or up, a failover to
another slave, the bond degraded, down, healthy again) and the node attributes whose value
changed: ``bond-BOND-slaves-up`` (the live slaves) and ``bond-BOND-degraded`` (1 when degraded
or down). A bond with one live slave is degraded: a single point of failure to warn about, not a
reason to fail over; constraints on ``bond-BOND-slaves-up`` let the cluster move resources away
from a node whose bond is down, as pingd's attribute does.

:func:`watch_bonds` is the asyncio shell: it reads ``/proc/net/bonding`` every `interval`
seconds and hands the events and changed attributes to callbacks. :func:`attribute_request`
builds the node daemon's ``cib-apply`` request for a transient (reboot-lifetime) node attribute,
the same ``node-attribute`` operation ``hastack node attribute`` and ``crm_attribute`` send, and
:class:`AttributePublisher` sends them, keeping the ones the daemon did not take for next time.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hastack.bonding.procfs import (
    PROC_DIR,
    BondParseError,
    BondStatus,
    Health,
    Verdict,
    assess,
    read_bond_status,
)
from hastack.daemon.control import ControlError

ATTRIBUTE_LIFETIME = "reboot"  # a reading of now: transient, gone when the node restarts


def slaves_up_attribute(bond: str) -> str:
    return f"bond-{bond}-slaves-up"


def degraded_attribute(bond: str) -> str:
    return f"bond-{bond}-degraded"


@dataclass(frozen=True)
class BondEvent:
    at: float
    bond: str
    kind: str  # see EVENT_KINDS
    message: str
    slave: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "bond": self.bond,
            "kind": self.kind,
            "message": self.message,
            "slave": self.slave,
        }


EVENT_KINDS = (
    "slave-down",  # a slave's MII status left "up"
    "slave-up",  # ... came back to "up"
    "slave-flapped",  # up at both readings, but its link failure count grew in between
    "slave-added",
    "slave-removed",
    "failover",  # the active slave changed to another slave
    "degraded",  # healthy (or down, or first seen) -> degraded
    "down",  # no live slave
    "healthy",  # degraded or down -> healthy again (first reading: nothing)
    "unreadable",  # the status file vanished or does not parse
)


@dataclass(frozen=True)
class Observation:
    events: tuple[BondEvent, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)  # only those that changed


@dataclass
class _BondState:
    status: BondStatus | None
    health: Health | None
    since: float  # when the bond entered this health
    attributes: dict[str, str]


class BondMonitor:
    """The events and node attributes of successive bond readings (see the module)."""

    def __init__(self) -> None:
        self._bonds: dict[str, _BondState] = {}
        self._now: float | None = None

    def attributes(self) -> dict[str, str]:
        """Every attribute's current value (for a daemon that restarted)."""
        result: dict[str, str] = {}
        for state in self._bonds.values():
            result.update(state.attributes)
        return result

    def bonds(self) -> list[str]:
        """The bonds read so far."""
        return list(self._bonds)

    def health(self, bond: str) -> Health | None:
        state = self._bonds.get(bond)
        return state.health if state else None

    def _tick(self, now: float) -> None:
        if self._now is not None and now < self._now:
            raise ValueError(f"time went backwards: {now} after {self._now}")
        self._now = now

    def observe(self, now: float, status: BondStatus) -> Observation:
        """A new reading of one bond."""
        self._tick(now)
        verdict = assess(status)
        bond = status.name
        previous = self._bonds.get(bond)
        events: list[BondEvent] = []

        def event(kind: str, message: str, slave: str | None = None) -> None:
            events.append(BondEvent(now, bond, kind, message, slave))

        before = previous.status if previous else None
        if before is not None:
            self._slave_events(before, status, event)
            old, new = before.active_slave, status.active_slave
            if old and new and old != new:
                event("failover", f"{bond}: active slave {old} -> {new}", new)
        health_changed = previous is None or previous.health != verdict.health
        if health_changed:
            self._health_event(now, bond, previous, verdict, event)
        attributes = {
            slaves_up_attribute(bond): str(len(verdict.live_slaves)),
            degraded_attribute(bond): "0" if verdict.health is Health.HEALTHY else "1",
        }
        since = now if health_changed or previous is None else previous.since
        return self._store(bond, _BondState(status, verdict.health, since, attributes), events)

    def observe_unreadable(self, now: float, bond: str, reason: str) -> Observation:
        """The bond's status file vanished (the bond was deleted, the driver unloaded) or
        does not parse: for the cluster it has no live slave."""
        self._tick(now)
        previous = self._bonds.get(bond)
        events = []
        if previous is None or previous.health is not None:
            events.append(BondEvent(now, bond, "unreadable", f"{bond}: {reason}"))
        attributes = {slaves_up_attribute(bond): "0", degraded_attribute(bond): "1"}
        return self._store(bond, _BondState(None, None, now, attributes), events)

    def _store(self, bond: str, state: _BondState, events: list[BondEvent]) -> Observation:
        previous = self._bonds.get(bond)
        old = previous.attributes if previous else {}
        changed = {k: v for k, v in state.attributes.items() if old.get(k) != v}
        self._bonds[bond] = state
        return Observation(tuple(events), changed)

    @staticmethod
    def _slave_events(
        before: BondStatus, after: BondStatus, event: Callable[[str, str, str | None], None]
    ) -> None:
        bond = after.name
        for slave in after.slaves:
            old = before.slave(slave.interface)
            if old is None:
                event("slave-added", f"{bond}: {slave.interface} enslaved", slave.interface)
                continue
            failures = ""
            if slave.link_failure_count is not None and old.link_failure_count is not None:
                grew = slave.link_failure_count - old.link_failure_count
                if grew > 0:
                    failures = f" ({grew} link failure{'s' if grew > 1 else ''} since last read)"
            if old.up and not slave.up:
                state = slave.mii_status or "unknown"
                message = f"{bond}: {slave.interface} is {state}{failures}"
                event("slave-down", message, slave.interface)
            elif slave.up and not old.up:
                event("slave-up", f"{bond}: {slave.interface} is up", slave.interface)
            elif slave.up and failures:
                # a flap shorter than the polling interval: both readings say up
                message = f"{bond}: {slave.interface} flapped{failures}"
                event("slave-flapped", message, slave.interface)
        for old in before.slaves:
            if after.slave(old.interface) is None:
                event("slave-removed", f"{bond}: {old.interface} released", old.interface)

    @staticmethod
    def _health_event(
        now: float,
        bond: str,
        previous: _BondState | None,
        verdict: Verdict,
        event: Callable[[str, str], None],
    ) -> None:
        why = "; ".join(verdict.reasons)
        if verdict.health is Health.HEALTHY:
            if previous is not None and previous.health is not None:
                lasted = now - previous.since
                event("healthy", f"{bond} is healthy again after {lasted:g} s {previous.health}")
            elif previous is not None:
                event("healthy", f"{bond} is readable and healthy again")
            return
        event(str(verdict.health), f"{bond} is {verdict.health}: {why}")


# --------------------------------------------------------------------------------------------
# The cluster: node attributes through the node daemon's control socket


def attribute_request(node: str, name: str, value: str | None) -> dict[str, Any]:
    """The control-socket request that sets (or, with None, deletes) a transient node
    attribute: {"cmd": "cib-apply", "operation": {"op": "node-attribute", ...}}, built by the
    same code crm_attribute uses, and checked against the operations' schema."""
    from hastack.agents.crm_tools import AttributeCommand
    from hastack.crm.operations import validate_operation

    scope = "status"  # crm_attribute's scope for --lifetime reboot
    command = AttributeCommand(
        command="update" if value is not None else "delete",
        name=name,
        scope=scope,
        node=node,
        value=value,
    )
    operation = validate_operation(command.operation())
    assert operation["lifetime"] == ATTRIBUTE_LIFETIME
    return {"cmd": "cib-apply", "operation": operation}


class PublishError(Exception):
    """The node daemon did not take an attribute."""


Query = Callable[[Path, dict[str, Any]], Any]


def _query(path: Path, request: dict[str, Any]) -> Any:
    from hastack.daemon.control import query

    return query(path, request)


class AttributePublisher:
    """Sends changed attributes to the node daemon; what it could not send waits for the next
    :meth:`flush` (the daemon may be restarting: the latest value is what counts)."""

    def __init__(self, socket: Path, node: str, query: Query = _query) -> None:
        self.socket = socket
        self.node = node
        self.query = query
        self.pending: dict[str, str] = {}

    def update(self, attributes: Mapping[str, str]) -> None:
        self.pending.update(attributes)

    def flush(self) -> list[str]:
        """Send what is pending (blocking); the problems, one per attribute not sent."""
        problems = []
        for name, value in list(self.pending.items()):
            try:
                answer = self.query(self.socket, attribute_request(self.node, name, value))
            except (OSError, ControlError) as exc:  # reported, and retried at the next flush
                problems.append(f"{name}={value}: cannot reach {self.socket}: {exc}")
                continue
            if isinstance(answer, dict) and "error" not in answer:
                if self.pending.get(name) == value:
                    del self.pending[name]
            else:
                error = answer.get("error") if isinstance(answer, dict) else answer
                problems.append(f"{name}={value}: the node daemon refused it: {error}")
        return problems


# --------------------------------------------------------------------------------------------
# The shell


EventSink = Callable[[BondEvent], Awaitable[None] | None]
AttributeSink = Callable[[Mapping[str, str]], Awaitable[None] | None]


async def _call(callback: Callable[[Any], Any] | None, value: Any) -> None:
    if callback is None:
        return
    result = callback(value)
    if inspect.isawaitable(result):
        await result


def read_all(
    monitor: BondMonitor, proc_dir: Path, bonds: Sequence[str] | None, now: float
) -> list[Observation]:
    """One round: every bond in `proc_dir` (or the named ones) read and observed."""
    names: list[str] = list(bonds) if bonds else []
    if not bonds:
        try:
            names = sorted(p.name for p in proc_dir.iterdir())
        except OSError:
            names = []
        # a bond seen before whose file is gone must be reported, not forgotten
        names += [b for b in monitor.bonds() if b not in names]
    observations = []
    for bond in names:
        path = proc_dir / bond
        try:
            # /proc files are tiny and never block: read them on the loop
            status = read_bond_status(path)
        except FileNotFoundError:
            observations.append(monitor.observe_unreadable(now, bond, f"{path} is gone"))
        except OSError as exc:
            reason = f"{path}: {exc.strerror or exc}"
            observations.append(monitor.observe_unreadable(now, bond, reason))
        except BondParseError as exc:
            observations.append(monitor.observe_unreadable(now, bond, str(exc)))
        else:
            observations.append(monitor.observe(now, status))
    return observations


async def watch_bonds(
    proc_dir: Path,
    interval: float,
    on_event: EventSink,
    *,
    on_attributes: AttributeSink | None = None,
    after_round: Callable[[], Awaitable[None] | None] | None = None,
    bonds: Sequence[str] | None = None,
    monitor: BondMonitor | None = None,
    clock: Callable[[], float] = time.monotonic,
    rounds: int | None = None,
) -> BondMonitor:
    """Read the bonds every `interval` seconds (forever, or `rounds` times) and hand each event
    to `on_event`, each round's changed attributes to `on_attributes`, then call
    `after_round` (where a publisher retries what it could not send)."""
    monitor = monitor or BondMonitor()
    done = 0
    while rounds is None or done < rounds:
        for observation in read_all(monitor, proc_dir, bonds, clock()):
            for event in observation.events:
                await _call(on_event, event)
            if observation.attributes:
                await _call(on_attributes, observation.attributes)
        if after_round is not None:
            result = after_round()
            if inspect.isawaitable(result):
                await result
        done += 1
        if rounds is None or done < rounds:
            await asyncio.sleep(interval)
    return monitor


__all__ = [
    "EVENT_KINDS",
    "PROC_DIR",
    "AttributePublisher",
    "BondEvent",
    "BondMonitor",
    "Observation",
    "attribute_request",
    "degraded_attribute",
    "slaves_up_attribute",
    "watch_bonds",
]
