"""The node's local executor: the asyncio shell that carries out the executor core's effects.

`Executor` (sans-IO) decides what runs when; this runs each `Launch` as a task with
`run_invocation`, sets one timer for the core's next deadline, kills agents the core aborts,
and hands results back. One-shot actions are awaited with `submit`; every `OpCompleted`
(recurring monitors' results and failures above all) goes to the `on_event` callback.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Protocol

from hastack.agents.cluster_tools import ClusterTools
from hastack.agents.discovery import fetch_metadata
from hastack.agents.executor import Abort, Effect, Executor, Launch, OpCompleted, OpKey
from hastack.agents.inprocess import module_invocation, run_in_process, runs_in_process
from hastack.agents.invocation import (
    DEFAULT_TIMEOUT,
    Invocation,
    ResourceAgentCall,
    build_invocation,
    ocf_env,
)
from hastack.agents.metadata import AgentMetadata, MetadataError
from hastack.agents.names import DEFAULT_PATHS, AgentError, AgentNotFound, AgentPaths, AgentSpec
from hastack.agents.rc import ExecStatus, OcfRc, OpResult
from hastack.agents.runner import run_invocation

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class Runner(Protocol):
    def __call__(
        self, inv: Invocation, timeout: float, grace: float, clock: Clock
    ) -> Awaitable[OpResult]: ...


def agent_error_status(exc: AgentError) -> ExecStatus:
    """Pacemaker's status for an agent that could not be set up: not found (or no systemd on
    this host) is "not-installed" — a hard error here, fine elsewhere; the rest "error"."""
    return "not-installed" if isinstance(exc, AgentNotFound) else "error"


class ExecutorClosed(RuntimeError):
    """The local executor was closed: it takes no more requests."""


class LocalExecutor:
    """Runs resource agents on this node, as the core `Executor` decides.

    Use inside a running event loop; `close()` (or `async with`) before the loop ends.
    """

    def __init__(
        self,
        node: str = "local",
        on_event: Callable[[OpCompleted], None] | None = None,
        *,
        paths: AgentPaths = DEFAULT_PATHS,
        grace: float = 5.0,
        clock: Clock = time.monotonic,
        runner: Runner = run_invocation,
        in_process: bool = False,
        stonith_runner: Callable[[ResourceAgentCall], Awaitable[OpResult]] | None = None,
        cluster_tools: ClusterTools | None = None,
    ) -> None:
        self.core = Executor(node)
        self._on_event = on_event
        self._paths = paths
        self._grace = grace
        self._clock = clock
        self._runner = runner
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._aborted: set[int] = set()
        self._waiters: dict[Hashable, asyncio.Future[OpResult]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._submitted = 0
        self._closed = False
        self._metadata: dict[AgentSpec, AgentMetadata | None] = {}  # see _advised_timeout
        # hastack's quick agents (IPaddr2) run inside this process: see agents.inprocess
        self.in_process = in_process
        # the actions of fence devices (class stonith: start, stop, monitor) go to the fencer
        self.stonith_runner = stonith_runner
        # crm_attribute and crm_master that talk to this node's daemon, found first by agents
        self.cluster_tools = cluster_tools

    async def __aenter__(self) -> LocalExecutor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- requests -----------------------------------------------------------------------------

    async def submit(self, call: ResourceAgentCall) -> OpResult:
        """Run a one-shot action (after the actions of its resource queued before it) and
        return its result. Cancelling the wait does not cancel the action."""
        if call.interval > 0:
            raise ValueError(
                f"submit runs one-shot actions; {call.resource} {call.action} has interval "
                f"{call.interval:g}s: use start_recurring"
            )
        self._check_open()
        self._submitted += 1
        tag = ("submit", self._submitted)
        waiter: asyncio.Future[OpResult] = asyncio.get_running_loop().create_future()
        self._waiters[tag] = waiter
        try:
            self._apply(self.core.request(call, self._clock(), tag))
            return await waiter
        finally:
            self._waiters.pop(tag, None)

    def request(self, call: ResourceAgentCall, tag: Hashable) -> None:
        """Queue an action (one-shot or recurring) without waiting for it: its results go to
        `on_event`, carrying `tag` (the cluster's controller runs actions this way)."""
        self._check_open()
        self._apply(self.core.request(call, self._clock(), tag))

    def start_recurring(self, call: ResourceAgentCall) -> OpKey:
        """Start a recurring operation (interval > 0); its results go to `on_event`."""
        if not call.interval > 0:
            raise ValueError(
                f"{call.resource} {call.action}: a recurring operation needs an interval > 0"
            )
        self._check_open()
        self._apply(self.core.request(call, self._clock()))
        return OpKey.of(call.resource, call.action, call.interval)

    def cancel_recurring(self, resource: str, action: str, interval: float) -> None:
        self._apply(self.core.cancel(resource, action, interval, self._clock()))

    async def close(self) -> None:
        """Cancel recurring operations and queued actions, kill running agents (SIGKILL to their
        process groups) and return once every one is reaped."""
        if not self._closed:
            self._closed = True
            self._apply(self.core.shutdown(self._clock()))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- the shell ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ExecutorClosed("the local executor is closed")

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Launch):
                task = asyncio.get_running_loop().create_task(self._run(effect))
                self._tasks[effect.call_id] = task
            elif isinstance(effect, Abort):
                task = self._tasks.get(effect.call_id)
                if task is not None:
                    self._aborted.add(effect.call_id)
                    task.cancel()
            else:
                self._deliver(effect)
        self._set_timer()

    def _deliver(self, event: OpCompleted) -> None:
        waiter = self._waiters.get(event.tag) if event.tag is not None else None
        if waiter is not None and not waiter.done():
            result = event.result
            if result is None:  # dropped from the queue before it ran
                result = OpResult(OcfRc.ERR_GENERIC, "cancelled", event.record.exit_reason)
            waiter.set_result(result)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a broken listener must not break the executor
                log.exception("on_event callback failed for %s", event.record.operation_key)

    def _set_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.core.next_deadline()
        if self._closed or math.isinf(deadline):
            return
        delay = max(0.0, deadline - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._apply(self.core.tick(self._clock()))

    async def _execute(self, call: ResourceAgentCall) -> OpResult:
        started = self._clock()
        try:
            if call.agent.standard == "stonith":
                if self.stonith_runner is None:
                    reason = f"{call.agent} is a fence device and this node runs no fencer"
                    return OpResult(OcfRc.ERR_GENERIC, "not-installed", reason, "", started)
                return await self.stonith_runner(call)
            if call.timeout is None:
                call = replace(call, timeout=await self._advised_timeout(call))
            if self.in_process and runs_in_process(call.agent):
                env = self._with_tools(ocf_env(call, str(self._paths.ocf_root), None))
                return await run_in_process(call, env, self._clock)
            try:
                inv = build_invocation(call, self._paths)
            except AgentNotFound:
                # hastack's own agents run even when not installed into the OCF root
                fallback = module_invocation(call, ocf_env(call, str(self._paths.ocf_root), None))
                if fallback is None:
                    raise
                inv = fallback
        except AgentError as exc:
            return OpResult(OcfRc.ERR_GENERIC, agent_error_status(exc), str(exc), "", started)
        if self.cluster_tools is not None:
            inv = replace(inv, env=MappingProxyType(self._with_tools(inv.env)))
        return await self._runner(inv, call.effective_timeout, self._grace, self._clock)

    def _with_tools(self, env: Mapping[str, str]) -> dict[str, str]:
        tools = self.cluster_tools
        return dict(env) if tools is None else tools.apply(env)

    async def _advised_timeout(self, call: ResourceAgentCall) -> float:
        """The timeout an OCF agent's meta-data advises for the call's action and interval,
        else DEFAULT_TIMEOUT. Meta-data is asked once per agent; an agent whose meta-data
        cannot be read is logged once and gets the default."""
        spec = call.agent
        if spec.standard != "ocf":
            return DEFAULT_TIMEOUT
        if spec not in self._metadata:
            try:
                self._metadata[spec] = await asyncio.to_thread(fetch_metadata, spec, self._paths)
            except MetadataError as exc:
                log.warning("%s; its actions get the default timeout %gs", exc, DEFAULT_TIMEOUT)
                self._metadata[spec] = None
        meta = self._metadata[spec]
        advised = meta.advised_timeout(call.action, call.interval) if meta is not None else None
        return DEFAULT_TIMEOUT if advised is None else advised

    async def _run(self, launch: Launch) -> None:
        started = self._clock()
        cancelled_from_outside = False
        try:
            result = await self._execute(launch.call)
        except asyncio.CancelledError:
            # Aborted by the core (the agent is killed and reaped by now), or the loop is
            # shutting down without close().
            cancelled_from_outside = launch.call_id not in self._aborted
            reason = "cancelled" if not cancelled_from_outside else "event loop shut down"
            elapsed = self._clock() - started
            result = OpResult(OcfRc.ERR_GENERIC, "cancelled", reason, "", started, elapsed)
        except Exception as exc:  # never lose a result: the core would wait for it forever
            log.exception("running %s failed", launch.call)
            result = OpResult(OcfRc.ERR_GENERIC, "error", f"internal error: {exc!r}", "", started)
        self._tasks.pop(launch.call_id, None)
        self._aborted.discard(launch.call_id)
        if cancelled_from_outside and not self._closed:
            self._closed = True  # start nothing new while the loop goes down
            self._apply(self.core.shutdown(self._clock()))
        self._apply(self.core.finished(launch.call_id, result, self._clock()))
        if cancelled_from_outside:
            raise asyncio.CancelledError
