"""hastack's own agents, run by the node daemon itself instead of a new process.

A failover's critical path is one agent action (adding the floating address, above all):
starting a Python interpreter for it costs a hundred milliseconds or more, which is most of a
failover. So the agents of ``ocf:hastack:TYPE`` listed in :data:`IN_PROCESS` run inside the
daemon, in a worker thread (the event loop keeps serving heartbeats), with the same
environment an agent process would get and their diagnostics captured per action (exit reasons
included). Their actions are short and bounded (netlink calls, a few files); one that overruns
its timeout is reported as timed out, but a thread cannot be killed, so it finishes in the
background — these agents are ours, and none blocks indefinitely.

The other built-in agents, when not installed into the OCF root (``hastack agent install``),
run as ``python -m hastack.agents.builtin.MODULE ACTION`` with this interpreter.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import sys
from collections.abc import Callable, Mapping

from hastack.agents.builtin import BUILTIN_AGENTS
from hastack.agents.builtin.ocf import _ERRORS, run_agent
from hastack.agents.builtin.ocf import IN_PROCESS as _IN_PROCESS_FLAG
from hastack.agents.invocation import Invocation, ResourceAgentCall
from hastack.agents.names import AgentSpec
from hastack.agents.rc import OcfRc, OpResult
from hastack.agents.runner import EXIT_REASON_LIMIT, EXIT_REASON_PREFIX

PROVIDER = "hastack"
# The agents whose every action is quick and never forks a process that stays.
IN_PROCESS = frozenset({"IPaddr2", "Dummy"})


def builtin_module(spec: AgentSpec) -> str | None:
    """The module of a built-in agent named ``ocf:hastack:TYPE`` (None for any other)."""
    if spec.standard != "ocf" or spec.provider != PROVIDER:
        return None
    name = BUILTIN_AGENTS.get(spec.type)
    return f"hastack.agents.builtin.{name}" if name else None


def runs_in_process(spec: AgentSpec) -> bool:
    return builtin_module(spec) is not None and spec.type in IN_PROCESS


def module_invocation(call: ResourceAgentCall, env: Mapping[str, str]) -> Invocation | None:
    """``python -m`` for a built-in agent that is not installed (None: not a built-in)."""
    module = builtin_module(call.agent)
    if module is None:
        return None
    argv = (sys.executable, "-m", module, call.action)
    return Invocation(argv, env, "ocf", call.action)


def _run(module: str, action: str, env: Mapping[str, str]) -> tuple[int, str]:
    """One action in this thread: its rc and what it wrote as diagnostics."""
    agent = importlib.import_module(module)
    errors = io.StringIO()
    _ERRORS.set(errors)
    _IN_PROCESS_FLAG.set(True)
    rc = run_agent(agent.INFO, agent.HANDLERS, [action], env)
    return int(rc), errors.getvalue()


async def run_in_process(
    call: ResourceAgentCall,
    env: Mapping[str, str],
    clock: Callable[[], float],
) -> OpResult:
    """Run a built-in agent's action in a worker thread (see the module docstring)."""
    module = builtin_module(call.agent)
    started = clock()
    if module is None:
        return OpResult(
            OcfRc.ERR_GENERIC, "error", f"{call.agent} is no built-in agent", "", started, 0.0
        )
    try:
        rc, output = await asyncio.wait_for(
            asyncio.to_thread(_run, module, call.action, dict(env)), call.effective_timeout
        )
    except TimeoutError:
        return OpResult(
            OcfRc.ERR_GENERIC,
            "timeout",
            f"timed out after {call.effective_timeout:g}s (in-process agent)",
            "",
            started,
            clock() - started,
        )
    reasons: list[str] = []
    for line in output.splitlines():
        if line.startswith(EXIT_REASON_PREFIX):
            reason = line[len(EXIT_REASON_PREFIX) :].strip()
            if reason and reason not in reasons:
                reasons.append(reason)
    return OpResult(
        rc,
        "done",
        "; ".join(reasons)[:EXIT_REASON_LIMIT],
        output[-4096:],
        started,
        clock() - started,
    )
