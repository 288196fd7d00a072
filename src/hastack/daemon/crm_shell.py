"""The node daemon's resource manager part: a thin asyncio shell around three cores.

* :class:`hastack.messaging.core.MessagingCore` carries the controllers' messages over the
  heartbeat links (its own UDP port, read the moment a datagram arrives, see
  :mod:`hastack.transport.message_link`; on serial links it shares the heartbeat endpoint);
* :class:`hastack.crm.controller.Controller` decides (the DC's scheduling and transitions, every
  node's reports and its copy of the CIB);
* :class:`hastack.agents.local.LocalExecutor` runs the agents.

This module only wires them: effects of one core become inputs of another, one timer follows
the cores' next deadlines, the CIB is saved where the node restarts from, and control-socket
requests wait for the controller's answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from hastack.agents.cluster_tools import ClusterTools
from hastack.agents.cluster_tools import install as install_cluster_tools
from hastack.agents.executor import OpCompleted
from hastack.agents.local import ExecutorClosed, LocalExecutor
from hastack.agents.names import DEFAULT_PATHS
from hastack.config.model import ClusterConfig
from hastack.crm.agent_calls import CallError
from hastack.crm.alert_runner import AlertRunner
from hastack.crm.alerts import parse_alerts
from hastack.crm.cib.xml import write_cib
from hastack.crm.cib_source import LoadedCib
from hastack.crm.controller import (
    CancelAgent,
    Controller,
    Event,
    FenceRequest,
    MembershipView,
    Reply,
    RunAgent,
    SaveCib,
    SaveInput,
    SendMessage,
)
from hastack.crm.events import ClusterEvent, EventError, log_cluster_event
from hastack.crm.history import EventHistory
from hastack.crm.saved_inputs import InputStore
from hastack.daemon import clock
from hastack.daemon.fence_shell import MAGIC as FENCE_MAGIC
from hastack.daemon.fence_shell import FenceShell
from hastack.daemon.watchdog_shell import WatchdogShell
from hastack.fencing.devices import fencing_from_hacf
from hastack.fencing.fencer import FenceRecord
from hastack.fileio import write_atomically
from hastack.membership.effects import Log
from hastack.messaging.codec import MAGIC as MESSAGING_MAGIC
from hastack.messaging.core import (
    Deliver,
    MessagingCore,
    MessagingParams,
    StreamReset,
    Transmit,
)
from hastack.transport.base import LinkEndpoint
from hastack.transport.logevents import emit
from hastack.transport.message_link import message_endpoint_for

logger = logging.getLogger("hastack.crm")
SHUTDOWN_GRACE = 5.0  # beyond the stops' own timeouts, when leaving the cluster
INPUT_SAVE_DELAY = 0.2  # seconds between a transition's start and the saving of its input


def is_message_datagram(data: bytes) -> bool:
    """Whether a datagram from a shared (serial) link belongs to the messaging layer."""
    return data[: len(MESSAGING_MAGIC)] == MESSAGING_MAGIC


def _operation_edit() -> Callable[..., Any] | None:
    """The operators' CIB operations (hastack.crm.operations), when installed."""
    try:
        from hastack.crm.operations import operation_edit
    except ImportError:  # pragma: no cover - the module ships with hastack
        return None
    return operation_edit


class CrmShell:
    def __init__(
        self,
        config: ClusterConfig,
        name: str,
        generation: int,
        run_path: Path,
        cib: LoadedCib,
        serial_links: Callable[[], list[LinkEndpoint]],
    ) -> None:
        hacf = config.hacf
        assert hacf.timing is not None
        self.name = name
        self.run_path = run_path
        self.messaging = MessagingCore(
            hacf.cluster_name,
            name,
            generation,
            config.authkeys,
            MessagingParams.from_timing(hacf.timing.keepalive),
        )
        self.controller = Controller(
            name,
            cib.node_ids,
            cib.data,
            operation_edit=_operation_edit(),
            quorum_grace=hacf.timing.keepalive,
            # as the membership layer: a quorum server replaces the two-node special case
            two_node=hacf.two_node and hacf.quorum_server is None,
            startup_grace=hacf.timing.initdead,
        )
        self.fence = FenceShell(
            name,
            [n.name for n in hacf.nodes] or list(cib.node_ids),
            lambda timeout: fencing_from_hacf(hacf.stonith, hacf.stonith_hosts, timeout),
            cib.data,
            on_done=self._on_fenced,
            broadcast=self._broadcast,
        )
        # ha.cf `watchdog DEVICE`: fed while this node is healthy (watchdog self-fencing)
        self.watchdog = (
            None
            if hacf.watchdog is None
            else WatchdogShell(
                hacf.watchdog,
                hacf.timing.keepalive,
                self.health,
                self.fence.set_watchdog,
                two_node=hacf.two_node and hacf.quorum_server is None,
            )
        )
        # told of every fencing this node's fencer finished (the membership layer's fence_done)
        self.on_local_fence: Callable[[FenceRecord], None] | None = None
        # heartbeat looks for R1 scripts in resource.d beside ha.cf (then in /etc/init.d)
        paths = replace(DEFAULT_PATHS, ha_resource_d=Path(config.directory) / "resource.d")
        self.executor = LocalExecutor(
            name,
            on_event=self._on_op_event,
            paths=paths,
            clock=clock.now,
            in_process=True,
            stonith_runner=self.fence.resource_action,
            cluster_tools=self._cluster_tools(name, run_path, str(config.directory)),
        )
        self.links = config.hacf.links
        self.endpoints: list[LinkEndpoint] = []
        self._serial_links = serial_links
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for: float | None = None
        self._view: MembershipView | None = None
        self._peers: tuple[str, ...] = ()
        self._replies: dict[Hashable, asyncio.Future[dict[str, Any]]] = {}
        self._tokens = 0
        self._agents: dict[str, str] = {}  # rsc -> agent name, for its reports
        self.errors = 0
        self.closed = False
        self.history = EventHistory(run_path)
        self.inputs = InputStore(run_path / "pengine")  # hastack simulate -x replays them
        # Inputs are compressed and written on one thread of their own, in order: the
        # transition's first actions (an in-process start above all) must not wait for it.
        self._input_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pe-input")
        self.alerts: AlertRunner | None = None  # made on the running loop, in open()
        self._event_seq = 0
        self._initial_cib = cib.data

    @staticmethod
    def _cluster_tools(name: str, run_path: Path, config_dir: str) -> ClusterTools | None:
        """crm_attribute and crm_master for the agents (promotion scores above all), written
        into RUN_DIR/NODE/bin and reaching this daemon's control socket."""
        from hastack.daemon.rundir import NodeRunDir

        directory = run_path / "bin"
        try:
            warnings = install_cluster_tools(directory)
        except OSError as exc:
            emit(
                logger,
                "error",
                "agent-tools-failed",
                f"cannot write crm_attribute and crm_master for agents into {directory}: "
                f"{exc.strerror or exc}; agents cannot set promotion scores",
            )
            return None
        for warning in warnings:
            emit(logger, "warning", "agent-tools-noexec", warning)
        control = NodeRunDir(run_path.parent, name).control_path
        return ClusterTools(directory, control, name, config_dir)

    # ---- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        self.alerts = AlertRunner(self.name, parse_alerts(self._initial_cib))
        for link in self.links:
            endpoint = message_endpoint_for(link, self._on_datagram)
            if endpoint is None:
                continue  # serial: shares the heartbeat endpoint
            endpoint.on_batch_end = self._on_batch_end
            try:
                await endpoint.open()
            except OSError as exc:
                emit(
                    logger,
                    "error",
                    "message-link-open-failed",
                    f"cannot open the messaging port of link {link.name}: {exc.strerror or exc}",
                    link=link.name,
                )
                continue
            self.endpoints.append(endpoint)
        self.fence.start()
        if self.watchdog is not None:
            self.watchdog.open(self.fence.core.watchdog_timeout)

    async def shutdown(self) -> None:
        """Leave the cluster cleanly: ask the DC to move everything off this node (the
        shutdown attribute, as Pacemaker's controller does), wait until nothing runs here,
        and stop what is left on our own when there is no DC to ask or it takes too long."""
        if self.closed:
            return
        running = self.controller.local_running()
        if running:
            emit(logger, "info", "crm-shutdown", f"stopping {', '.join(running)} before leaving")
            if self._view is not None and self._view.dc is not None:
                self._execute(
                    self.controller.set_node_attribute(
                        "shutdown", str(int(clock.wall())), clock.now(), clock.wall()
                    )
                )
                budget = sum(
                    (s.timeout_ms / 1000 for r, s in self.controller.specs.items() if r in running),
                    SHUTDOWN_GRACE,
                )
                deadline = clock.now() + budget
                while self.controller.local_running() and clock.now() < deadline:
                    await asyncio.sleep(0.02)
            for rsc in self.controller.local_running():
                await self._stop_locally(rsc)
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.watchdog is not None:
            # disarmed only when nothing runs here any more: a node that could not stop its
            # resources is left to its watchdog, as the other nodes expect
            await self.watchdog.close(clean=not self.controller.local_running())
        await self.fence.close()
        await self.executor.close()
        if self.alerts is not None:
            await self.alerts.close()
        self.history.close()
        await asyncio.sleep(INPUT_SAVE_DELAY)  # the last inputs reach the writer
        await asyncio.get_running_loop().run_in_executor(None, self._input_writer.shutdown)
        for endpoint in self.endpoints:
            endpoint.close()
        for future in self._replies.values():
            if not future.done():
                future.set_result({"error": "the node is shutting down"})

    async def _stop_locally(self, rsc: str) -> None:
        spec = self.controller.specs.get(rsc)
        if spec is None:
            emit(
                logger,
                "error",
                "crm-shutdown-unknown",
                f"{rsc} runs here but how to stop it "
                "is unknown (it was found running, not started by this cluster)",
            )
            return
        try:
            call = replace(spec, action="stop", interval_ms=0).to_call()
            result = await self.executor.submit(call)
        except (CallError, ExecutorClosed) as exc:
            emit(logger, "error", "crm-shutdown-stop-failed", f"cannot stop {rsc}: {exc}")
            return
        emit(
            logger,
            "info",
            "crm-shutdown-stop",
            f"stopped {rsc}: rc {result.rc}",
            resource=rsc,
            rc=int(result.rc),
        )

    # ---- inputs ---------------------------------------------------------------------------

    def membership(self, view: tuple[str | None, int, bool, tuple[str, ...], bool]) -> None:
        """The membership core's view after a wake-up; acted on when it changed."""
        dc, term, is_dc, members, quorate = view
        new = MembershipView(dc, term, is_dc, members, quorate)
        if self.fence.held and not self.closed:
            self.fence.release_held()
        if new == self._view or self.closed:
            return
        self._view = new
        now, wall = clock.now(), clock.wall()
        peers = tuple(m for m in members if m != self.name)
        if peers != self._peers:
            joined = [p for p in peers if p not in self._peers]
            self._peers = peers
            self._execute(self.messaging.set_peers(peers, now))
            for peer in joined:
                # what it missed: the fence history, and what our watchdog promises
                if self.fence.core.history:
                    self._execute(list(self.messaging.send(self.fence.history_for(), now, peer)))
                self._execute(list(self.messaging.send(self.fence.watchdog_message(), now, peer)))
        self._execute(self.controller.membership_changed(new, now, wall))

    def _on_datagram(self, data: bytes, link: str) -> None:
        self._execute(self.messaging.receive(data, link, clock.now()))

    def on_shared_datagram(self, data: bytes, link: str) -> None:
        """A messaging datagram read from a serial link (shared with the heartbeat)."""
        self._on_datagram(data, link)
        self._on_batch_end()

    def _on_batch_end(self) -> None:
        self._execute(self.messaging.flush(clock.now()))

    def _on_op_event(self, event: OpCompleted) -> None:
        record = event.record
        if record.status == "cancelled" or self.closed:
            return  # a cancelled recurring operation: the controller dropped it already
        now, wall = clock.now(), clock.wall()
        offset = wall - now  # the executor's times are on the node's clock
        report = record.lrm_attributes(self.name)
        report["last-run"] = str(int(record.last_run + offset))
        report["last-rc-change"] = str(int(record.last_rc_change + offset))
        agent = self._agents.get(record.key.resource, "")
        self._execute(self.controller.op_completed(report, agent, event.tag, now, wall))

    async def request(self, operation: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """An operator's request: answered by the DC (forwarded there when it is another
        node)."""
        self._tokens += 1
        token = ("control", self._tokens)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[token] = future
        try:
            self._execute(self.controller.request(operation, token, clock.now(), clock.wall()))
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return {"error": f"no answer from the cluster within {timeout:g} s"}
        finally:
            self._replies.pop(token, None)

    def cib_query(self) -> dict[str, Any]:
        view = self._view
        return {
            "cib": self.controller.cib_document.decode(),
            "node": self.name,
            "dc": view.dc if view else None,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "controller": dict(self.controller.counters),
            "messaging": self.messaging.describe(),
            "links": {e.name: e.describe() for e in self.endpoints},
            "errors": self.errors,
        }

    # ---- effects --------------------------------------------------------------------------

    def _execute(self, effects: list[Any]) -> None:
        queue = list(effects)
        while queue:
            effect = queue.pop(0)
            try:
                queue[0:0] = self._carry_out(effect)
            except Exception:  # one bad effect must not stop the others or the node
                self.errors += 1
                logger.exception("the resource manager failed on %r", effect)
        self._arm()

    def _carry_out(self, effect: Any) -> list[Any]:
        now, wall = clock.now(), clock.wall()
        if isinstance(effect, SendMessage):
            return list(self.messaging.send(effect.payload, now, effect.dest))
        if isinstance(effect, Transmit):
            for endpoint in (*self.endpoints, *self._serial_links()):
                endpoint.send(effect.data)
            return []
        if isinstance(effect, Deliver):
            if effect.payload[:1] == FENCE_MAGIC:
                self.fence.receive(effect.sender, effect.payload)
                return []
            return list(self.controller.receive(effect.sender, effect.payload, now, wall))
        if isinstance(effect, FenceRequest):
            requester = "no-quorum-policy" if effect.allow_self else "controller"
            self.fence.request(
                effect.target,
                effect.action,
                requester,
                effect.reason,
                delay=effect.delay,
                allow_self=effect.allow_self,
            )
            return []
        if isinstance(effect, StreamReset):
            return list(
                self.controller.peer_reset(
                    effect.sender, effect.generation, effect.reason, now, wall
                )
            )
        if isinstance(effect, RunAgent):
            self._run(effect)
            return []
        if isinstance(effect, CancelAgent):
            if not self.closed:
                self.executor.cancel_recurring(
                    effect.resource, effect.action, effect.interval_ms / 1000
                )
            return []
        if isinstance(effect, SaveCib):
            write_atomically(self.run_path / "cib.xml", effect.data, mode=0o600)
            self.fence.configure(effect.data)
            if self.watchdog is not None:
                self.watchdog.configure(self.fence.core.watchdog_timeout)
            if self.alerts is not None:  # the alerts section may have changed with it
                self.alerts.configure(parse_alerts(effect.data))
            return []
        if isinstance(effect, SaveInput):
            # a moment later, when the transition's first actions (a failover's start
            # above all) have run: compressing it competes with them for the interpreter
            asyncio.get_running_loop().call_later(INPUT_SAVE_DELAY, self._queue_input, effect)
            return []
        if isinstance(effect, Reply):
            future = self._replies.get(effect.token)
            if future is not None and not future.done():
                future.set_result(effect.response)
            return []
        if isinstance(effect, Event):
            self._event(effect, wall)
            return []
        if isinstance(effect, Log):
            emit(logger, effect.level, effect.event, effect.message, **effect.fields)
            return []
        raise TypeError(f"unknown effect {effect!r}")

    def _broadcast(self, payload: bytes) -> None:
        if not self.closed:
            self._execute(list(self.messaging.send(payload, clock.now(), None)))

    def health(self) -> tuple[bool, tuple[str, ...]]:
        """What the watchdog's guard weighs: quorate, and what runs here."""
        quorate = self._view is not None and self._view.quorate
        return quorate, tuple(self.controller.local_running())

    def _on_fenced(self, record: FenceRecord, local: bool) -> None:
        """A fencing finished: the controller learns the node is down (or that it could not
        be fenced), and the membership layer hears of what this node's fencer did."""
        if self.closed:
            return
        if local and self.on_local_fence is not None:
            self.on_local_fence(record)
        if record.action == "on":
            return  # a node powered on is not down: nothing for the controller
        ok = record.state == "done"
        now, wall = clock.now(), clock.wall()
        # An operator's confirmation is taken for a lost node only: a member that is heard
        # is alive, whatever was said, and keeps what it runs (on every node alike).
        fresh = local and not record.confirmed_by
        self._execute(
            self.controller.fence_result(record.target, ok, record.error, now, wall, fresh=fresh)
        )

    def _queue_input(self, effect: SaveInput) -> None:
        try:
            self._input_writer.submit(self._save_input, effect)
        except RuntimeError:  # the writer has shut down: the node is leaving
            logger.info("transition %s: input not saved, the node is shutting down", effect.tid)

    def _save_input(self, effect: SaveInput) -> None:
        """On the input writer's thread (emit is thread-safe: logging locks)."""
        try:
            saved = self.inputs.save(write_cib(effect.cib), effect.series, effect.limit)  # type: ignore[arg-type]
        except Exception:
            logger.exception("saving the input of transition %s failed", effect.tid)
            return
        if saved is not None:
            emit(
                logger,
                "info",
                "crm-input-saved",
                f"transition {effect.tid}: scheduler input saved as {saved.path}",
                tid=effect.tid,
                path=str(saved.path),
            )

    def _event(self, effect: Event, wall: float) -> None:
        """One cluster event: logged, kept in the history, and given to the hooks."""
        self._event_seq += 1
        try:
            event = ClusterEvent.from_fields(self._event_seq, wall, effect.name, effect.fields)
        except EventError as exc:  # a controller bug: say so, lose nothing else
            emit(logger, "error", "crm-event-invalid", f"{effect.name}: {exc}")
            return
        log_cluster_event(logger, event)
        self.history.append(event)
        if self.alerts is not None:
            self.alerts.feed(event)

    def _run(self, effect: RunAgent) -> None:
        spec = effect.spec
        self._agents[spec.resource] = spec.agent
        try:
            call = spec.to_call()
            self.executor.request(call, effect.tag)
        except (CallError, ExecutorClosed) as exc:
            # reported as the action's failure, so that the DC does not wait for it
            now, wall = clock.now(), clock.wall()
            report = {
                "operation_key": f"{spec.resource}_{spec.action}_{spec.interval_ms}",
                "operation": spec.action,
                "interval": str(spec.interval_ms),
                "call-id": "0",
                "rc-code": "1",
                "op-status": "4",
                "exit-reason": str(exc),
                "on_node": self.name,
                "last-run": str(int(wall)),
                "last-rc-change": str(int(wall)),
                "exec-time": "0",
                "queue-time": "0",
            }
            self._execute(self.controller.op_completed(report, spec.agent, effect.tag, now, wall))

    # ---- the timer --------------------------------------------------------------------------

    def _arm(self) -> None:
        if self.closed:
            return
        deadline = min(self.controller.next_deadline(), self.messaging.next_deadline())
        if deadline == self._armed_for:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed_for = deadline
        if deadline != float("inf"):
            delay = max(0.0, deadline - clock.now())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._armed_for = None
        now, wall = clock.now(), clock.wall()
        effects: list[Any] = list(self.messaging.tick(now))
        effects += self.controller.tick(now, wall)
        self._execute(effects)
