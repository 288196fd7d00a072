"""The asyncio shell of the notification hooks: carries out an `AlertQueue`'s effects.

Each `RunHook` becomes a task that runs the agent with the executor's own subprocess runner
(`hastack.agents.runner.run_invocation`: own session and process group, stdin /dev/null,
the output's tail kept), and reports the result back to the queue. One timer, set to the
queue's `next_deadline()`, calls `tick`; a `KillHook` cancels the run's task, which makes the
runner SIGKILL the hook's process group and reap it. The next hook starts only once the killed
one is reaped, so two hooks never run at once.

The queue owns the timeout (so the simulator can drive it without processes); the runner is
given the same timeout plus `backstop` seconds only as a safety net.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping

from hastack.agents.invocation import Invocation
from hastack.agents.local import Clock, Runner
from hastack.agents.runner import run_invocation
from hastack.crm.alerts import AlertConfig, AlertEffect, AlertQueue, KillHook, RunHook
from hastack.crm.events import ClusterEvent
from hastack.membership.effects import Log
from hastack.transport.logevents import emit

log = logging.getLogger(__name__)


class AlertRunner:
    """Runs the hooks of the events fed to it, one at a time, in order.

    Use inside a running event loop; `close()` before the loop ends. `base_env` is the
    environment hooks inherit (default: this process's, without CRM_*/OCF_*/HASTACK_*).
    """

    def __init__(
        self,
        node: str,
        config: AlertConfig | None = None,
        *,
        base_env: Mapping[str, str] | None = None,
        max_pending: int = 1000,
        logger: logging.Logger = log,
        clock: Clock = time.monotonic,
        runner: Runner = run_invocation,
        grace: float = 1.0,
        backstop: float = 5.0,
    ) -> None:
        self.queue = AlertQueue(
            None,
            node=node,
            base_env=dict(os.environ) if base_env is None else base_env,
            max_pending=max_pending,
        )
        self._logger = logger
        self._clock = clock
        self._runner = runner
        self._grace = grace
        self._backstop = backstop
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._last_task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        if config is not None:
            self.configure(config)

    # -- inputs -------------------------------------------------------------------------------

    def configure(self, config: AlertConfig) -> None:
        """Use `config` (from a new CIB) for the events fed from now on."""
        self._apply(self.queue.configure(config))

    def feed(self, event: ClusterEvent) -> None:
        """Queue `event`'s hooks (returns at once; they run in the background, in order)."""
        if self._closed:
            raise RuntimeError("the alert runner is closed")
        self._apply(self.queue.feed(event, self._clock()))

    async def drain(self) -> None:
        """Return once every hook fed so far has run (or was killed or dropped)."""
        while not self.queue.idle or self._tasks:
            tasks = list(self._tasks.values())
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)

    async def close(self) -> None:
        """Kill the running hook (SIGKILL to its group), forget the waiting ones, and return
        once everything started is reaped."""
        if not self._closed:
            self._closed = True
            waiting = self.queue.waiting
            if waiting:
                emit(
                    self._logger,
                    "warning",
                    "alert-shutdown",
                    f"shutting down: {waiting} hook run(s) not started",
                    {"waiting": waiting},
                )
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._tasks.values():
            task.cancel()
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    # -- the shell ----------------------------------------------------------------------------

    def _apply(self, effects: list[AlertEffect]) -> None:
        for effect in effects:
            if isinstance(effect, RunHook):
                if self._closed:
                    continue
                previous = self._last_task
                task = asyncio.get_running_loop().create_task(self._run(effect, previous))
                self._tasks[effect.run_id] = task
                self._last_task = task
                task.add_done_callback(lambda _t, rid=effect.run_id: self._tasks.pop(rid, None))
            elif isinstance(effect, KillHook):
                task = self._tasks.get(effect.run_id)
                if task is not None:
                    task.cancel()
            elif isinstance(effect, Log):
                emit(self._logger, effect.level, effect.event, effect.message, effect.fields)
        self._set_timer()

    def _set_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.queue.next_deadline()
        if deadline is None or self._closed:
            return
        delay = max(0.0, deadline - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._apply(self.queue.tick(self._clock()))

    async def _run(self, hook: RunHook, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            # A killed hook is reaped before the next starts: never two at once.
            await asyncio.gather(previous, return_exceptions=True)
        inv = Invocation(hook.argv, hook.env, "ocf", "alert")
        try:
            result = await self._runner(
                inv, hook.timeout + self._backstop, self._grace, self._clock
            )
        except Exception as exc:  # a bug in the runner: report it as this run's failure
            self._apply(
                self.queue.finished(
                    hook.run_id,
                    rc=1,
                    status="error",
                    reason=f"internal error: {exc!r}",
                    now=self._clock(),
                )
            )
            return
        self._apply(
            self.queue.finished(
                hook.run_id,
                rc=result.rc,
                status=result.status,
                reason=result.exit_reason,
                output=result.output,
                elapsed=result.duration,
                now=self._clock(),
            )
        )
