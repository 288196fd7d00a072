"""From a transition's action to the agent call a node runs: what the DC sends the executor.

The DC knows the configuration; the nodes need not. For each resource action of a
transition, :func:`call_for` works out everything the node's executor needs, as Pacemaker's
controller does before it hands an action to the executor:

* the agent (``class:provider:type`` of the primitive, its template applied);
* the parameters: the primitive's instance attributes with their rules evaluated for the
  target node and time, then its group's and clone's, then ``rsc_defaults`` (the first
  definition of a name wins), then the ``<op>``'s own (:class:`hastack.crm.digest.Digester`
  does exactly this for the digests, so the two cannot disagree);
* the meta attributes Pacemaker passes as ``CRM_meta_*``: the resource's own (with its parents'
  and ``rsc_defaults``), a clone instance's number and the clone's sizes, and for a clone
  notification its type and operation;
* the timeout (``<op timeout>``, its meta attributes, ``op_defaults``, 20 s) and interval;
* the ``op-digest`` the controller records with the result, so that the scheduler sees an
  unchanged definition as unchanged.

The call travels as a JSON object (:meth:`AgentCallSpec.to_json`) and becomes a
:class:`hastack.agents.invocation.ResourceAgentCall` on the node (:meth:`to_call`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hastack.agents.invocation import ResourceAgentCall
from hastack.agents.names import parse_agent
from hastack.crm.cib.model import Clone, LrmRscOp, flatten
from hastack.crm.digest import Digester, DigestError
from hastack.crm.transition import Action

# Task names of the transition that an agent runs under another action name.
NOTIFY_PHASES = ("pre_notify_", "post_notify_")


class CallError(ValueError):
    """The action cannot be turned into an agent call (an unknown resource, a bad agent)."""


@dataclass(frozen=True)
class AgentCallSpec:
    """One agent action, as the DC sends it to the node that runs it."""

    resource: str  # as the status section records it: "ip" or "clone-child:2"
    agent: str  # "ocf:heartbeat:IPaddr2"
    action: str  # the agent's action: start, stop, monitor, promote, notify, ...
    interval_ms: int
    timeout_ms: int
    params: Mapping[str, str] = field(default_factory=dict)
    meta: Mapping[str, str] = field(default_factory=dict)
    r1_args: tuple[str, ...] = ()
    op_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "agent": self.agent,
            "action": self.action,
            "interval_ms": self.interval_ms,
            "timeout_ms": self.timeout_ms,
            "params": dict(self.params),
            "meta": dict(self.meta),
            "r1_args": list(self.r1_args),
            "op_digest": self.op_digest,
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> AgentCallSpec:
        """Rebuild a spec from its JSON form; raises CallError when a field is missing or of
        the wrong type (a message from a peer is never trusted blindly)."""
        try:
            spec = AgentCallSpec(
                resource=_text(data["resource"]),
                agent=_text(data["agent"]),
                action=_text(data["action"]),
                interval_ms=_int(data["interval_ms"]),
                timeout_ms=_int(data["timeout_ms"]),
                params=_texts(data.get("params", {})),
                meta=_texts(data.get("meta", {})),
                r1_args=tuple(_text(a) for a in data.get("r1_args", [])),
                op_digest=None if data.get("op_digest") is None else _text(data["op_digest"]),
            )
        except (KeyError, TypeError) as exc:
            raise CallError(f"malformed agent call: {exc}") from None
        return spec

    def to_call(self) -> ResourceAgentCall:
        """The executor's call (raises CallError for an agent name that does not parse)."""
        try:
            agent = parse_agent(self.agent)
        except ValueError as exc:
            raise CallError(str(exc)) from None
        return ResourceAgentCall(
            resource=self.resource,
            agent=agent,
            action=self.action,
            params=self.params,
            meta=self.meta,
            interval=self.interval_ms / 1000,
            timeout=self.timeout_ms / 1000,
            r1_args=self.r1_args,
        )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _texts(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return {_text(k): _text(v) for k, v in value.items()}


def agent_action(task: str) -> tuple[str, dict[str, str]]:
    """The agent action a transition task runs and the extra meta it needs: a clone
    notification ``pre_notify_start`` is the agent's ``notify`` with its type and operation."""
    for phase in NOTIFY_PHASES:
        if task.startswith(phase):
            return "notify", {
                "notify_type": phase.split("_", 1)[0],
                "notify_operation": task[len(phase) :],
            }
    return task, {}


def call_for(digester: Digester, action: Action) -> AgentCallSpec:
    """The agent call of one resource action of a transition (not fencing, not a cancel)."""
    if action.rsc is None:
        raise CallError(f"{action.name}: not a resource action")
    try:
        entry = digester.resource(action.rsc)
    except DigestError as exc:
        raise CallError(str(exc)) from None
    primitive = entry.primitive
    if primitive.type is None or primitive.cls is None:
        raise CallError(f"resource {primitive.id} has no agent class or type")
    parts = [primitive.cls, primitive.provider, primitive.type]
    agent = ":".join(p for p in parts if p)
    task, extra_meta = agent_action(action.task)
    interval_ms = action.interval_ms
    params, _ = digester.operation_parameters(entry, action.node, task, interval_ms)
    params = {k: v for k, v in params.items() if not k.startswith("CRM_meta_")}
    timeout_ms = digester.op_timeout_ms(entry, task, interval_ms)
    meta: dict[str, str] = {}
    for parent in reversed(entry.parents):
        meta.update(flatten(parent.meta))
    meta.update(flatten(primitive.meta))
    _, _, instance = action.rsc.partition(":")
    clone = next((p for p in entry.parents if isinstance(p, Clone)), None)
    if clone is not None:
        clone_meta = flatten(clone.meta)
        meta["clone"] = instance or "0"
        meta.setdefault("clone_max", clone_meta.get("clone-max", ""))
        meta.setdefault("clone_node_max", clone_meta.get("clone-node-max", "1"))
        meta.setdefault("globally_unique", clone_meta.get("globally-unique", "false"))
        meta.setdefault("notify", clone_meta.get("notify", "false"))
    meta.update(extra_meta)
    meta = {k: v for k, v in meta.items() if v != ""}
    r1_args: tuple[str, ...] = ()
    if primitive.cls == "heartbeat":
        # heartbeat-class agents take their parameters as positional arguments 1, 2, ...
        numbered = sorted((int(k), v) for k, v in params.items() if k.isdigit())
        r1_args = tuple(v for _, v in numbered)
    digest_op = LrmRscOp(
        id=f"{action.rsc}_{task}_{interval_ms}",
        operation=task,
        operation_key=f"{action.rsc}_{task}_{interval_ms}",
        interval=str(interval_ms),
    )
    try:
        op_digest = digester.calculate(action.node, digest_op, action.rsc).op_digest
    except DigestError:
        op_digest = None
    return AgentCallSpec(
        resource=action.rsc,
        agent=agent,
        action=task,
        interval_ms=interval_ms,
        timeout_ms=timeout_ms,
        params=params,
        meta=meta,
        r1_args=r1_args,
        op_digest=op_digest,
    )
