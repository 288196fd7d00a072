"""Fencing in the simulated world: per node the real :class:`hastack.fencing.fencer.Fencer`,
wired as the daemon wires it, and one simulated fence device that covers every node.

The wiring follows :mod:`hastack.daemon.fence_shell`, :mod:`hastack.daemon.crm_shell` and
``Node._fence`` in :mod:`hastack.daemon.node`:

- the controller's ``FenceRequest`` effects go to the node's fencer (requester
  ``controller``, or ``no-quorum-policy`` when the node fences itself on purpose);
- the membership core's ``Fence`` effect (a two_node cluster's lone survivor) goes to the same
  fencer (requester ``membership``) with ``delay = controller.fence_delay(target)``, the
  priority-fencing-delay that lets the node holding the resources win the fence race;
- ``RunDevice`` is the simulated device: it lasts a time drawn from the seed, then either
  fails (a draw from the seed: the fencer retries, the DC asks again after FENCE_RETRY) or
  powers the target off — the machine crashes: what it ran is gone, and it is powered on
  again (restarted) a time later. The device runs on the requesting machine: if that machine
  goes down first, the power action never happens. A paused requester does not stop the
  device (it is a process of its own): the target is powered off, and the result waits until
  the requester's daemon resumes;
- ``FenceDone``: the record is shared with the other nodes over the messaging layer (the
  ``F`` prefix, subject to the simulated network), the membership core hears ``fence_done``
  of what its own node's fencer did (a failure only FENCE_RETRY later, as the daemon does,
  and only if it still waits for that node), and the controller ``fence_result`` (fresh);
  a node that receives a shared record learns it and tells its controller (not fresh).

What is not simulated: the periodic device checks (``fence-check-interval``) and operator
confirmations (nothing in the simulation asks for them), and reconfiguring the fencer when
the CIB changes (the simulated cluster's configuration never does).

Invariant (6) ``fence-without-quorum``, checked here: only a quorate partition fences. The
controller asks for a fencing (requester ``controller``), and it is handed to the fencer once
the DC proved a fresh quorum, only while the node's membership core says it is quorate. The
exceptions by design have their own requesters: ``no-quorum-policy`` (suicide: the node
fences itself because it lost quorum) and ``membership`` (a two_node survivor fences its
peer: its quorum is the one vote it has).

The quorum server (:mod:`hastack.sim.qserver`, the ``qserver`` fault) needs nothing here:
fencing only reacts to what the membership and the controller ask for, and the membership
core counts the server's vote.
"""

from __future__ import annotations

import json
import random
import struct
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hastack.crm.cib.xml import read_cib
from hastack.crm.controller import FenceRequest
from hastack.daemon.fence_shell import MAGIC
from hastack.fencing.devices import fencing_from_cib
from hastack.fencing.fencer import (
    CancelDevice,
    CheckDone,
    FenceDone,
    Fencer,
    FenceRecord,
    RunDevice,
)
from hastack.fencing.runners import DeviceCall, DeviceResult
from hastack.membership.effects import Log

if TYPE_CHECKING:
    from hastack.sim.world import SimNode, World

INF = float("inf")
DEVICE = "fence-sim"  # the simulated device's id (a class=stonith primitive of the CIB)
DEVICE_AGENT = "fence_sim"  # its type: a fence agent by name (nothing is ever executed)
# A device action lasts this share of deadtime (drawn per action from the seed).
DEVICE_DEADTIMES = (0.05, 0.6)
RESULT_DELAY = (0.001, 0.02)  # power off -> the agent's exit seen by the fencer, seconds
# Per seed, the chance that one device action fails (no power action): drawn from these.
FAILURE_RATES = (0.0, 0.0, 0.1, 0.3, 0.6)
# How long a fenced node stays powered off before it is powered on again, x deadtime.
POWERED_OFF_DEADTIMES = (0.5, 2.0)
FENCE_RETRY = 5.0  # hastack.daemon.node.FENCE_RETRY: a failure reaches the membership core late

# event kinds (the world dispatches them here)
DEVICE_DONE, FENCER_TICK, MEMBERSHIP_RETRY = 200, 201, 202


def stonith_primitive(names: list[str]) -> str:
    """The simulated device as the CIB configures it: every node on its static host list."""
    hosts = " ".join(names)
    return (
        f'<primitive id="{DEVICE}" class="stonith" type="{DEVICE_AGENT}">'
        f'<instance_attributes id="{DEVICE}-ia">'
        f'<nvpair id="{DEVICE}-hosts" name="pcmk_host_list" value="{hosts}"/>'
        "</instance_attributes></primitive>"
    )


@dataclass
class FenceSlot:
    """One node's fencer process (gone with a crash) and what waits for it."""

    name: str
    fencer: Fencer | None = None
    token: int = 0  # device results and retries of an older process are lost
    tick_token: int = 0
    scheduled: float = INF
    buffer: list[tuple[int, Any]] = field(default_factory=list)  # while paused
    # the controller's fencings held until the DC proves a fresh quorum (the daemon's
    # FenceShell.held): (decided at, on the node's clock; the request)
    held: list[tuple[float, FenceRequest]] = field(default_factory=list)


class FenceWorld:
    """The fencing part of a World (see the module docstring)."""

    # True: wire exactly as the daemon does today (see _membership_hears)
    membership_hears_all = False
    # the fencer core's class (tests put a deliberately broken one here, to see the checks fail)
    fencer_class: type[Fencer] = Fencer

    def __init__(self, world: World) -> None:
        self.world = world
        self.slots = [FenceSlot(n.name) for n in world.nodes]
        self.failure_rate = world.rng.choice(FAILURE_RATES)
        self.stats = world.stats
        for key in (
            "fence_requests",
            "device_actions",
            "device_failures",
            "powered_off",
            "checks_fence_quorum",
        ):
            self.stats[key] = 0
        self.stats["fence_failure_rate"] = self.failure_rate
        self._config: Any = None

    def handlers(self) -> dict[int, Callable[[int, Any], None]]:
        return {
            DEVICE_DONE: self._device_event,
            FENCER_TICK: self._tick_event,
            MEMBERSHIP_RETRY: self._retry_event,
        }

    # ---- process lifecycle ----------------------------------------------------------------

    def boot(self, node: SimNode, cib: bytes) -> None:
        """A new fencer with the CIB's devices (read once: the configuration never changes)."""
        slot = self.slots[node.idx]
        if self._config is None:
            self._config = fencing_from_cib(read_cib(cib, "<sim cluster>"))
        slot.token += 1
        slot.tick_token += 1
        slot.scheduled = INF
        slot.buffer = []
        slot.held = []
        seed = self.world.rng.getrandbits(64)
        slot.fencer = self.fencer_class(node.name, self._config, random.Random(seed))

    def kill(self, node: SimNode) -> None:
        slot = self.slots[node.idx]
        slot.fencer = None
        slot.token += 1
        slot.tick_token += 1
        slot.scheduled = INF
        slot.buffer = []
        slot.held = []

    def pause(self, node: SimNode) -> None:
        slot = self.slots[node.idx]
        slot.tick_token += 1
        slot.scheduled = INF

    def resume(self, node: SimNode) -> None:
        """Results and retries that waited, in order, then the timer."""
        slot = self.slots[node.idx]
        queued, slot.buffer = slot.buffer, []
        for kind, payload in queued:
            if not self._up(node, slot):
                return
            if kind == DEVICE_DONE:
                self._device_result(node, slot, payload)
            else:
                self._retry(node, payload)
        if self._up(node, slot):
            self._arm(node, slot)

    def _up(self, node: SimNode, slot: FenceSlot) -> bool:
        return node.core is not None and not node.paused and slot.fencer is not None

    # ---- requests (the daemon's wiring) ---------------------------------------------------

    def controller_request(self, node: SimNode, request: FenceRequest) -> None:
        """crm_shell: a FenceRequest of the controller. The DC's fencings wait until a quorum
        acknowledged a round sent after it decided (FenceShell.release_held)."""
        if request.allow_self:
            # a node fencing itself (no-quorum-policy=suicide, or a DC's own stonith action):
            # allowed without quorum
            self._request(
                node,
                request.target,
                request.action,
                "no-quorum-policy",
                request.reason,
                request.delay,
                request.allow_self,
            )
            return
        self._check_quorate(node, request.target, "asks to fence")
        slot = self.slots[node.idx]
        slot.held.append((self._now(node)[0], request))
        self.release_held(node)

    def release_held(self, node: SimNode) -> None:
        """After every membership step (the daemon: crm_shell.membership)."""
        slot = self.slots[node.idx]
        core = node.core
        if not slot.held or core is None or node.paused:
            return
        local = self._now(node)[0]
        waiting = []
        for decided_at, request in slot.held:
            verdict = self._guard(
                node,
                "quorum_acked_since",
                lambda at=decided_at: core.quorum_acked_since(at, local),
            )
            if verdict is None:
                continue  # no longer the DC: dropped (the next DC decides)
            if verdict:
                self._request(
                    node,
                    request.target,
                    request.action,
                    "controller",
                    request.reason,
                    request.delay,
                )
            else:
                waiting.append((decided_at, request))
        slot.held = waiting

    def membership_request(self, node: SimNode, target: str) -> None:
        """Node._fence: the membership core's Fence effect, with priority-fencing-delay."""
        crm = self.world.crm
        assert crm is not None
        controller = crm.slots[node.idx].controller
        if controller is None:
            return  # no resource manager, so no fencer: it stays waiting (as the daemon)
        delay = self._guard(node, "fence_delay", lambda: controller.fence_delay(target))
        self._request(node, target, "reboot", "membership", f"two_node: peer {target} lost", delay)

    def _request(
        self,
        node: SimNode,
        target: str,
        action: str,
        requester: str,
        reason: str,
        delay: float,
        allow_self: bool = False,
    ) -> None:
        slot = self.slots[node.idx]
        fencer = slot.fencer
        if fencer is None:
            return
        if requester == "controller":
            self._check_quorate(node, target, "hands its fencer a fencing of")
        self.stats["fence_requests"] += 1
        self.stats["fences"] += 1
        world = self.world
        world.trace.update(struct.pack("<dB", world.now, node.idx) + b"F" + target.encode())
        effects = self._guard(
            node,
            "request",
            lambda: fencer.request(
                target,
                action,
                requester,
                reason,
                *self._now(node),
                delay=delay,
                allow_self=allow_self,
            ),
        )
        self._execute(node, slot, effects)

    def _check_quorate(self, node: SimNode, target: str, what: str) -> None:
        """(6) A fencing the controller asks for: the node's membership is quorate now."""
        core: Any = node.core
        if core is None:
            return
        self.stats["checks_fence_quorum"] += 1
        local = self._now(node)[0]
        quorate = self._guard(node, "quorate", lambda: core.quorate(local))
        if not quorate:
            self.world.violate(
                "fence-without-quorum",
                f"the controller of {node.name} {what} {target} while {node.name}'s membership "
                "is not quorate",
            )

    # ---- the fencer's effects -------------------------------------------------------------

    def _execute(self, node: SimNode, slot: FenceSlot, effects: list[Any]) -> None:
        world = self.world
        for effect in effects:
            if isinstance(effect, RunDevice):
                self._run_device(node, slot, effect)
            elif isinstance(effect, CancelDevice):
                pass  # its result is ignored by the fencer (the key is forgotten)
            elif isinstance(effect, FenceDone):
                self._done(node, effect.record)
            elif isinstance(effect, Log):
                world.log.append((world.now, node.name, effect))
            elif isinstance(effect, CheckDone):
                pass  # no check is ever asked for
            else:
                self._error(node, f"unknown fencer effect {effect!r}")
        if slot.fencer is not None and not node.paused:
            self._arm(node, slot)

    def _run_device(self, node: SimNode, slot: FenceSlot, run: RunDevice) -> None:
        """The device action: it ends after a drawn time, failed (drawn) or done."""
        world = self.world
        self.stats["device_actions"] += 1
        duration = world.rng.uniform(*DEVICE_DEADTIMES) * world.timing.deadtime
        failed = world.rng.random() < self.failure_rate
        at = world.now + duration
        world.push(at, DEVICE_DONE, node.idx, (slot.token, node.incarnation, run, failed, False))

    def _device_event(self, idx: int, payload: tuple[int, int, RunDevice, bool, bool]) -> None:
        token, incarnation, run, failed, acted = payload
        node = self.world.nodes[idx]
        slot = self.slots[idx]
        if node.core is None or node.incarnation != incarnation or token != slot.token:
            return  # the machine that ran the device went down first: nothing happened
        if not acted:
            self._act(node, run.call, failed)
            # the agent's exit reaches the fencer a moment after the power action
            world = self.world
            later = world.now + world.rng.uniform(*RESULT_DELAY)
            world.push(later, DEVICE_DONE, idx, (token, incarnation, run, failed, True))
            return
        if node.paused:
            slot.buffer.append((DEVICE_DONE, (run, failed)))
            return
        self._device_result(node, slot, (run, failed))

    def _act(self, node: SimNode, call: DeviceCall, failed: bool) -> None:
        """What the device does to the world: power the target off (reboot or off)."""
        world = self.world
        if failed:
            self.stats["device_failures"] += 1
            world.log.append((world.now, "sim", f"fence device fails {call.action} {call.target}"))
            return
        if call.action not in ("reboot", "off") or call.target is None:
            return
        idx = world.index.get(call.target, -1)
        if idx < 0:
            return
        target = world.nodes[idx]
        if target.core is None:
            return  # already down
        self.stats["powered_off"] += 1
        world.log.append((world.now, "sim", f"fence: {node.name} powers off {target.name}"))
        restart_after = world.rng.uniform(*POWERED_OFF_DEADTIMES) * world.timing.deadtime
        world.power_off(target, restart_after)

    def _device_result(
        self, node: SimNode, slot: FenceSlot, payload: tuple[RunDevice, bool]
    ) -> None:
        run, failed = payload
        fencer = slot.fencer
        if fencer is None:
            return
        call = run.call
        if failed:
            result = DeviceResult(False, None, None, 1, "simulated device failure", "", 0.0)
        elif call.action == "status":
            target = self.world.index.get(call.target or "", -1)
            up = target >= 0 and self.world.nodes[target].core is not None
            result = DeviceResult(True, "on" if up else "off", None, 0, "", "", 0.0)
        elif call.action == "list":
            names = tuple(n.name for n in self.world.nodes)
            result = DeviceResult(True, None, names, 0, "", "", 0.0)
        else:
            result = DeviceResult(True, None, None, 0, "", "", 0.0)
        effects = self._guard(
            node, "result", lambda: fencer.result(run.key, result, *self._now(node))
        )
        self._execute(node, slot, effects)

    def _done(self, node: SimNode, record: FenceRecord) -> None:
        """fence_shell._execute then crm_shell._on_fenced then Node._local_fence_done."""
        crm = self.world.crm
        assert crm is not None
        cslot = crm.slots[node.idx]
        if cslot.messaging is not None:
            message = {"t": "record", "record": record.to_json()}
            payload = MAGIC + json.dumps(message).encode()
            messaging = cslot.messaging
            effects = crm.call(node, "send", lambda now: messaging.send(payload, now, None))
            crm.execute(node, cslot, effects)
        if record.action == "on":
            return
        ok = record.state == "done"
        core = node.core
        if core is not None and not node.paused:
            if ok and self._membership_hears(core, record.target):
                self.world.call(node, "fence_done", core.fence_done, record.target, True)
            elif record.target in getattr(core, "fence_pending", ()):
                at = self.world.now + FENCE_RETRY / node.clock.rate
                slot = self.slots[node.idx]
                self.world.push(at, MEMBERSHIP_RETRY, node.idx, (slot.token, record.target))
        # crm_shell: an operator's confirmation is never fresh (none in the simulation)
        self._tell_controller(node, record, fresh=not record.confirmed_by)

    def _membership_hears(self, core: Any, target: str) -> bool:
        """Whether the membership core is told of a successful fencing its node's fencer did:
        only of what it asked for, and of everything in a two_node cluster, as the daemon
        (Node._local_fence_done). Told of every one (``membership_hears_all``, the daemon's
        old wiring, kept to show the checks catch it), the core counts the fenced node's vote
        for its own side until it hears that node again, while the node, restarted behind a
        partition, votes on the other side: two DCs."""
        if self.membership_hears_all or self.world.params.two_node:
            return True
        return target in getattr(core, "fence_pending", ())

    def _tell_controller(self, node: SimNode, record: FenceRecord, fresh: bool) -> None:
        crm = self.world.crm
        assert crm is not None
        cslot = crm.slots[node.idx]
        controller = cslot.controller
        if controller is None or record.action == "on":
            return
        ok = record.state == "done"
        effects = crm.call(
            node,
            "fence_result",
            lambda now, wall: controller.fence_result(
                record.target, ok, record.error, now, wall, fresh=fresh
            ),
            wall=True,
        )
        crm.execute(node, cslot, effects)

    def receive(self, node: SimNode, sender: str, payload: bytes) -> list[Any]:
        """A record shared by another node (fence_shell.receive): learned once; a done one
        is told to the controller, whose effects are returned for the caller to carry out."""
        slot = self.slots[node.idx]
        crm = self.world.crm
        assert crm is not None
        controller = crm.slots[node.idx].controller
        if slot.fencer is None or controller is None:
            return []
        try:
            message = json.loads(payload[len(MAGIC) :])
            record = FenceRecord.from_json(message["record"])
        except (ValueError, KeyError, TypeError) as exc:
            self._error(node, f"a fence record from {sender} does not decode: {exc}")
        if not slot.fencer.learn(record) or record.state != "done" or record.action == "on":
            return []
        return crm.call(
            node,
            "fence_result",
            lambda now, wall: controller.fence_result(
                record.target, True, record.error, now, wall, fresh=False
            ),
            wall=True,
        )

    # ---- timers ---------------------------------------------------------------------------

    def _arm(self, node: SimNode, slot: FenceSlot) -> None:
        fencer = slot.fencer
        if fencer is None or node.paused:
            return
        deadline = fencer.next_deadline()
        if deadline == slot.scheduled:
            return
        slot.tick_token += 1
        slot.scheduled = deadline
        if deadline == INF:
            return
        at = max(self.world.now, node.clock.real_at(deadline))
        self.world.push(at, FENCER_TICK, node.idx, slot.tick_token)

    def _tick_event(self, idx: int, token: int) -> None:
        node = self.world.nodes[idx]
        slot = self.slots[idx]
        if token != slot.tick_token or not self._up(node, slot):
            return
        slot.scheduled = INF
        fencer = slot.fencer
        assert fencer is not None
        effects = self._guard(node, "tick", lambda: fencer.tick(*self._now(node)))
        self._execute(node, slot, effects)

    def _retry_event(self, idx: int, payload: tuple[int, str]) -> None:
        node = self.world.nodes[idx]
        slot = self.slots[idx]
        if payload[0] != slot.token or node.core is None:
            return
        if node.paused:
            slot.buffer.append((MEMBERSHIP_RETRY, payload[1]))
            return
        self._retry(node, payload[1])

    def _retry(self, node: SimNode, target: str) -> None:
        """Node._local_fence_done's retry: the membership core hears of the failure now."""
        core = node.core
        if core is not None and target in getattr(core, "fence_pending", ()):
            self.world.call(node, "fence_done", core.fence_done, target, False)

    # ---- helpers --------------------------------------------------------------------------

    def _now(self, node: SimNode) -> tuple[float, float]:
        from hastack.sim.crm import WALL0

        return node.clock.local(self.world.now), WALL0 + self.world.now

    def _guard(self, node: SimNode, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception:
            self._error(node, f"fencer {what} raised:\n{traceback.format_exc()}")

    def _error(self, node: SimNode, message: str) -> Any:
        from hastack.sim.world import CoreFailed

        self.world.violate("crm-error", f"{node.name}: {message}")
        raise CoreFailed
