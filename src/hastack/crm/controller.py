"""The cluster resource manager of one node: Pacemaker's controller, as a sans-IO core.

Every node runs one. It is fed what happens — the membership view (who is DC, in which term,
who are the members, is there quorum), messages from the other nodes' controllers, the
results of the local executor's operations, operator requests, the passing of time — with an
explicit ``now`` (the node's monotonic clock) and ``wall`` (seconds since the epoch, for
what the CIB records), and returns effects: messages to send, agent actions to run or cancel,
the configuration to save, answers to operators, cluster events, log lines.

**On every node** it keeps the node's own operation history (what its executor ran and with
which result: the truth about what runs here), runs the actions the DC sends — only when the
DC of the current term sends them, so a deposed DC cannot act — reports every result, and
keeps a copy of the whole CIB, which the DC shares after every change and which is saved on
disk.

**On the DC** (only while the membership core holds the DC lease):

1. *Join*: a new DC first asks every member what it runs (its whole history) and which
   configuration version it holds; a member whose configuration is newer sends it, and the
   newest wins (``admin_epoch``, ``epoch``, ``num_updates``), so that changes made on both
   sides of a partition are reconciled the way Pacemaker does. A node that joins later is
   asked the same when it appears. Nothing is scheduled before every member has answered.
2. *Schedule*: whenever anything changes — membership, a result, a fail count, the
   configuration, an operator request — the scheduler (:mod:`hastack.crm.state`,
   :mod:`~hastack.crm.placement`, :mod:`~hastack.crm.transition`, :mod:`~hastack.crm.graph`)
   computes a transition from the CIB, and the DC runs its graph: every action whose
   predecessors are done is sent to its node at once. Results are recorded in the status
   section; a result other than the one expected (and any change from outside) aborts the
   transition: nothing new is started, and once the actions in flight are done the scheduler
   runs again. It also runs on ``cluster-recheck-interval`` and when a failure or a pin
   expires.
3. *Operators*: configuration changes (from ``hastack resource`` and the others, through any
   node's control socket, forwarded to the DC) are applied to the DC's CIB all or nothing,
   versioned, shared with every member and saved.

Fencing: a transition's ``stonith`` action becomes a :class:`FenceRequest` for the node's fencer
(:mod:`hastack.fencing.fencer`, run by the daemon); what follows it waits for the result. A
node that was fenced is known to run nothing (its history is dropped, it is expected down),
whoever asked for the fencing: the DC, the membership layer of a two-node cluster, an operator.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from hastack.crm.agent_calls import AgentCallSpec, CallError, call_for
from hastack.crm.cib.edit import AttributeOwner, EditError, apply_edit, set_attribute
from hastack.crm.cib.model import (
    Cib,
    CibError,
    Clone,
    Group,
    LrmResource,
    NodeState,
    flatten,
    parse_bool,
)
from hastack.crm.cib.xml import read_cib, write_cib
from hastack.crm.digest import Digester, crm_get_msec, find_op
from hastack.crm.graph import Graph, GraphCycle, order
from hastack.crm.operations import clear_moved_pins, expire_pins, list_pins
from hastack.crm.placement import place
from hastack.crm.saved_inputs import series_limit
from hastack.crm.state import Role, failure_expiries, resource_states
from hastack.crm.status_edit import (
    clear_failcounts,
    clear_failures,
    count_failure,
    fatal_failure,
    forget_lrm,
    node_state,
    op_from_report,
    record_op,
    replace_lrm,
    set_transient,
    transient,
)
from hastack.crm.transition import Action, Cancel, plan
from hastack.membership.effects import Log

INF = float("inf")
RC_OK, RC_NOT_RUNNING, RC_PROMOTED = 0, 7, 8
# an action whose node never answers is given up after its timeout plus this much
ACTION_SLACK = 10.0
# a stonith action whose result never comes is given up after this long (the fencer itself
# answers within its devices' timeouts, retries and levels)
FENCE_GIVE_UP = 600.0
FENCE_RETRY = 5.0  # after a failed fencing, the DC schedules (and so fences) again this late
TWO_NODE_PRIORITY_FENCING_DELAY = 5.0  # priority-fencing-delay's default in two-node clusters
JOIN_RETRY = 1.0  # a member that has not answered the join request is asked again
REQUEST_TIMEOUT = 30.0  # an operator request forwarded to the DC
DEFAULT_RECHECK = 900.0
CRM_FEATURE_SET = "3.16.2"
# Messages only the DC sends, checked against this node's view of the DC and its term.
FROM_DC = frozenset({"join", "exec", "cancel", "cib", "forget"})
MAX_EARLY = 256  # messages kept per sender while this node's view catches up


# ---- effects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendMessage:
    """Send `payload` to `dest` (None: every node) over the cluster messaging layer."""

    payload: bytes
    dest: str | None = None


@dataclass(frozen=True)
class RunAgent:
    """Run an agent action on this node; report with `op_completed(..., tag=tag)`."""

    spec: AgentCallSpec
    tag: Hashable


@dataclass(frozen=True)
class CancelAgent:
    """Cancel a recurring operation of this node's executor."""

    resource: str
    action: str
    interval_ms: int


@dataclass(frozen=True)
class SaveCib:
    """Save the configuration (the CIB without its status) where the node restarts from."""

    data: bytes


@dataclass(frozen=True)
class SaveInput:
    """Keep the scheduler's input of one transition (pe-input-N.bz2, or pe-error-N.bz2 when
    the scheduler failed on it), bounded by the series' `limit`, as Pacemaker keeps them."""

    cib: Cib
    series: str  # "pe-input" or "pe-error"
    limit: int
    tid: int


@dataclass(frozen=True)
class Reply:
    """Answer the operator request given with `token`."""

    token: Hashable
    response: dict[str, Any]


@dataclass(frozen=True)
class Event:
    """A cluster event for the history and the notification hooks."""

    name: str  # resource-started, resource-failed, node-lost, transition-complete, ...
    fields: dict[str, Any] = field(default_factory=dict)


def attribute_events(node: str, before: Mapping[str, str], after: Mapping[str, str]) -> list[Event]:
    """One ``attribute-changed`` event per transient attribute of `node` whose value changed
    (a value of None: deleted), in name order, for the history, the log and alert agents."""
    return [
        Event(
            "attribute-changed",
            {
                "node": node,
                "name": name,
                "value": after.get(name),
                "previous": before.get(name),
                "desc": f"{name} deleted" if name not in after else f"{name}={after[name]}",
            },
        )
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]


@dataclass(frozen=True)
class FenceRequest:
    """Fence `target` (``reboot``, or ``off``); answer with :meth:`Controller.fence_result`.
    `delay` is priority-fencing-delay's share; `allow_self` marks a node fencing itself on
    purpose (no-quorum-policy=suicide, or a DC whose own stop failed)."""

    target: str
    action: str
    reason: str
    delay: float = 0.0
    allow_self: bool = False


Effect = (
    SendMessage | RunAgent | CancelAgent | SaveCib | SaveInput | Reply | Event | Log | FenceRequest
)


@dataclass(frozen=True)
class MembershipView:
    """What the controller needs of the membership core's state."""

    dc: str | None
    term: int
    is_dc: bool
    members: tuple[str, ...]
    quorate: bool


# ---- the DC's running transition ------------------------------------------------------------


@dataclass
class _Transition:
    tid: int
    graph: Graph
    done: set[str] = field(default_factory=set)
    inflight: dict[str, float] = field(default_factory=dict)  # action name -> give-up time
    failed: set[str] = field(default_factory=set)
    aborted: str | None = None  # why
    started_at: float = 0.0


@dataclass
class _Forwarded:
    token: Hashable
    deadline: float


def versions_of(root: etree._Element) -> tuple[int, int, int]:
    def number(name: str) -> int:
        try:
            return int(root.get(name, "0"))
        except ValueError:
            return 0

    return number("admin_epoch"), number("epoch"), number("num_updates")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), sort_keys=True).encode()


OperationApplier = Callable[[Mapping[str, Any], datetime], Callable[[etree._Element], str]]


class Controller:
    """One node's cluster resource manager (see the module docstring)."""

    def __init__(
        self,
        node: str,
        node_ids: Mapping[str, str],
        config: bytes,
        *,
        operation_edit: OperationApplier | None = None,
        quorum_grace: float = 0.0,
        two_node: bool = False,
        startup_grace: float = 0.0,
    ) -> None:
        self.node = node
        # A node never seen as a member is fenced (startup-fencing) only once a new DC has
        # waited this long for it to join: heartbeat's initdead, Pacemaker's dc-deadtime.
        self.startup_grace = startup_grace
        self.seen_members: set[str] = {node}
        self.was_member = False  # a DC has listed this node as a member since it started
        self.dc_since = -INF
        self.two_node = two_node  # priority-fencing-delay is on by default there
        # nodes fenced since they were last members: known to run nothing (see node_fenced)
        self.fenced_nodes: set[str] = set()
        self._dc_listed: set[str] = set()  # the members of the last view with a DC
        # failed fencings of each node in a row (stonith-max-attempts gives up after them)
        self.fence_failures: dict[str, int] = {}
        # How long quorum must stay lost before no-quorum-policy acts here: a heartbeat
        # interval absorbs a member list that excludes this node for one heartbeat (the DC
        # readmitting it), which would otherwise stop everything it runs.
        self.quorum_grace = quorum_grace
        self.no_quorum_at = INF  # when no-quorum-policy acts, if quorum is still lost
        self.node_ids = dict(node_ids)
        root = etree.fromstring(config, _parser())
        # members of the cluster this node knew before it (re)started are not new ones
        self.seen_members.update(
            str(n) for n in root.xpath("status/node_state[@in_ccm='true']/@uname")
        )
        self._config = self._strip_status(root)
        self._config_cib: Cib | None = None  # parsed lazily
        self._operation_edit = operation_edit
        self.view = MembershipView(None, 0, False, (), False)
        # node side
        self.history: dict[str, dict[str, dict[str, str]]] = {}  # rsc -> op id -> report
        self.agents: dict[str, tuple[str | None, str | None, str | None]] = {}
        # (rsc, op key) -> (rc, the order it answers: transition, term)
        self.last_reported: dict[tuple[str, str], tuple[str, tuple[str, str]]] = {}
        self.cib_document: bytes = config  # the newest whole CIB this node knows
        self.specs: dict[str, AgentCallSpec] = {}  # rsc -> its last call from the DC
        self.generations: dict[str, int] = {}  # the messaging generation heard of each node
        # the DC tenure whose join this node answered: (dc, term, tenure); see _on_exec
        self.joined_tenure: tuple[str, int, int] | None = None
        # operations ordered by the DC and still running here: rsc -> pending report
        # (reported at a join as Pacemaker's record-pending does, see _history_report)
        self.pending_ops: dict[str, dict[str, str]] = {}
        # DC side
        self.dc_term: int | None = None
        # A DC can lose its lease and win it back within one term: each tenure has its own
        # number, and members run only the orders of the tenure whose join they answered.
        self.tenure = 0
        self.joined: set[str] = set()
        self.join_asked: dict[str, float] = {}
        self.states: dict[str, NodeState] = {}
        self.transition: _Transition | None = None
        self.dirty = False
        self.tid = 0
        self.recheck_at = INF
        self.pending_requests: dict[str, _Forwarded] = {}
        self._request_serial = 0
        self._share_needed = False
        self._config_changed = False
        self._outbox: list[Effect] = []
        self._early: dict[str, list[dict[str, Any]]] = {}  # see _dispatch
        self.restarting: set[str] = set()  # resources stopped for a restart (see _restart)
        self._digester: Digester | None = None
        self.counters: dict[str, int] = {
            "messages": 0,
            "bad_messages": 0,
            "transitions": 0,
            "actions": 0,
            "aborts": 0,
            "fence_requests": 0,
        }

    # ---- configuration ----------------------------------------------------------------------

    @staticmethod
    def _strip_status(root: etree._Element) -> bytes:
        """The configuration document: the CIB with an empty status section."""
        root = etree.fromstring(etree.tostring(root), _parser())
        for status in root.findall("status"):
            root.remove(status)
        etree.SubElement(root, "status")
        return etree.tostring(root, encoding="UTF-8")

    @property
    def config_version(self) -> tuple[int, int, int]:
        return versions_of(etree.fromstring(self._config, _parser()))

    def _config_model(self) -> Cib:
        if self._config_cib is None:
            self._config_cib = read_cib(self._config, "<cluster configuration>")
        return self._config_cib

    def _adopt_config(self, data: bytes) -> list[Effect]:
        self._config = self._strip_status(etree.fromstring(data, _parser()))
        self._config_cib = None
        return [SaveCib(self._config)]

    # ---- inputs -----------------------------------------------------------------------------

    def membership_changed(self, view: MembershipView, now: float, wall: float) -> list[Effect]:
        old, self.view = self.view, view
        if view.dc is not None:  # a DC's member list (without one: merely heard alive)
            self.seen_members.update(view.members)
            # A fenced node that a DC lists again came back: what it runs is what it reports
            # now, wherever this node is DC later. On every node (not only the DC of the
            # moment): a node that becomes DC while it is missing must fence it again
            # (the Jepsen run found takeovers without fencing). A node fenced while still
            # listed (its stop failed) stays fenced until it has left the list and returns.
            listed = set(view.members)
            self.fenced_nodes -= listed - self._dc_listed
            self._dc_listed = listed
            if self.node in view.members:
                # A node still joining has no quorum to lose: it is not in any DC's list
                # yet, and its local view flickers while the DC admits it. Only a node that
                # was a member applies no-quorum-policy (suicide would kill a joining node).
                self.was_member = True
        effects: list[Effect] = []
        if self._early:
            # the orders of the DC we now know of, in the order they came; the rest is stale
            early, self._early = self._early, {}
            for message in early.pop(view.dc, []) if view.dc is not None else []:
                if message.get("term") == view.term:
                    effects += self._dispatch(view.dc, message, now, wall)
            for sender, messages in early.items():
                kept = [m for m in messages if m.get("term", 0) >= view.term]
                if kept:
                    self._early[sender] = kept
        if view.is_dc and (self.dc_term != view.term or not old.is_dc):
            effects += self._become_dc(now, wall)
        elif not view.is_dc and self.dc_term is not None:
            effects += self._lose_dc(now)
        elif view.is_dc:
            effects += self._members_changed(old, now, wall)
        if old.quorate != view.quorate:
            effects.append(
                Event("quorum-regained" if view.quorate else "quorum-lost", {"node": self.node})
            )
            if not view.quorate and self.was_member:
                self.no_quorum_at = now + self.quorum_grace
            elif self.no_quorum_at < INF:
                self.no_quorum_at = INF
                effects.append(
                    Log(
                        "info",
                        "crm-quorum-back",
                        "quorum came back within the grace period: no-quorum-policy not applied",
                    )
                )
        if now >= self.no_quorum_at:
            self.no_quorum_at = INF
            effects += self._lost_quorum()
        return effects + self._after(now, wall)

    def receive(self, sender: str, payload: bytes, now: float, wall: float) -> list[Effect]:
        """A message from another node's controller (never raises: a malformed one is
        counted and logged)."""
        self.counters["messages"] += 1
        try:
            message = json.loads(payload)
            if not isinstance(message, dict) or not isinstance(message.get("t"), str):
                raise ValueError("not a controller message")
            effects = self._dispatch(sender, message, now, wall)
        except (ValueError, KeyError, TypeError, CallError) as exc:
            self.counters["bad_messages"] += 1
            return [
                Log("warning", "crm-bad-message", f"dropped a bad message from {sender}: {exc}")
            ]
        return effects + self._after(now, wall)

    def peer_reset(
        self, sender: str, generation: int, reason: str, now: float, wall: float
    ) -> list[Effect]:
        """The messaging layer lost messages of `sender`, or `sender` restarted (a new
        generation): a DC asks it to join again, since its history may have changed unseen.
        The first generation heard of a node is no news (it joins anyway)."""
        known = self.generations.get(sender)
        self.generations[sender] = generation
        if known is None and reason == "restarted":
            return []
        effects: list[Effect] = []
        if self._is_dc() and sender in self.view.members:
            self._forget_transient(sender)
            self.joined.discard(sender)
            self.states = node_state(
                self.states, sender, self._id(sender), member=True, joined=False
            )
            effects += self._ask_join(sender, now)
            self._abort("a member restarted or lost messages")
        return effects + self._after(now, wall)

    def op_completed(
        self,
        report: Mapping[str, str],
        agent: str,
        tag: Hashable,
        now: float,
        wall: float,
    ) -> list[Effect]:
        """An operation of this node's executor ended: `report` is its lrm attributes
        (OpRecord.lrm_attributes, wall-clock times), `tag` what RunAgent gave."""
        key = report["operation_key"]
        rsc = key.rsplit("_", 2)[0]
        pending = self.pending_ops.get(rsc)
        if pending is not None and pending["operation_key"] == key:
            del self.pending_ops[rsc]
        info: dict[str, str] = dict(report)
        if isinstance(tag, tuple) and len(tag) == 5 and tag[0] == "tx":
            _, term, tid, expected, digest = tag
            info["transition"] = str(tid)
            info["expected-rc"] = str(expected)
            info["term"] = str(term)
            if digest:
                info["op-digest"] = digest
            info["dc"] = self.view.dc or ""
        interval = report.get("interval", "0")
        parts = _agent_parts(agent)
        self.agents[rsc] = parts
        op_id = key if interval != "0" else f"{rsc}_last_0"
        previous = self.history.setdefault(rsc, {}).get(op_id)
        if "transition" not in info and previous is not None:
            # a recurring run keeps what the DC gave its first run
            for name in ("transition", "expected-rc", "op-digest", "dc", "term"):
                if name in previous:
                    info.setdefault(name, previous[name])
        self.history[rsc][op_id] = info
        if report.get("operation") == "stop" and report.get("rc-code") == "0":
            # a stopped resource's recurring operations are cancelled: history no more
            for other, entry in list(self.history[rsc].items()):
                if entry.get("interval", "0") != "0":
                    del self.history[rsc][other]
                    self.last_reported.pop((rsc, entry.get("operation_key", "")), None)
        one_shot = interval == "0"
        rc = report.get("rc-code", "")
        # A recurring result that did not change is not news, unless it is the first of an
        # order: a transition waits for that, even when an earlier order of the same
        # operation (still running when this one came) reported the same rc just before.
        reported = (rc, (info.get("transition", ""), info.get("term", "")))
        if not one_shot and self.last_reported.get((rsc, key)) == reported:
            return []
        self.last_reported[(rsc, key)] = reported
        message = {
            "t": "result",
            "term": self.view.term,
            "rsc": rsc,
            "agent": agent,
            "report": info,
        }
        return self._to_dc(message, now, wall) + self._after(now, wall)

    def request(
        self, operation: Mapping[str, Any], token: Hashable, now: float, wall: float
    ) -> list[Effect]:
        """An operator's request from the control socket: applied here when this node is the
        DC, else forwarded to the DC; the answer comes as a Reply with `token`."""
        if self._is_dc():
            response = self._apply_request(operation, self.node, now, wall)
            return [Reply(token, response), *self._after(now, wall)]
        if self.view.dc is None:
            return [
                Reply(
                    token,
                    {
                        "error": "no DC: the cluster has no coordinator right now "
                        "(no quorum, or an election is under way); try again"
                    },
                )
            ]
        self._request_serial += 1
        rid = f"{self.node}:{self._request_serial}"
        self.pending_requests[rid] = _Forwarded(token, now + REQUEST_TIMEOUT)
        return [
            SendMessage(
                _encode(
                    {
                        "t": "request",
                        "id": rid,
                        "term": self.view.term,
                        "operation": dict(operation),
                    }
                ),
                self.view.dc,
            )
        ]

    def tick(self, now: float, wall: float) -> list[Effect]:
        effects: list[Effect] = []
        if now >= self.no_quorum_at:
            self.no_quorum_at = INF
            effects += self._lost_quorum()
        for rid, pending in list(self.pending_requests.items()):
            if now >= pending.deadline:
                del self.pending_requests[rid]
                effects.append(Reply(pending.token, {"error": "the DC did not answer in time"}))
        if self._is_dc():
            for node, asked in list(self.join_asked.items()):
                if node not in self.joined and now >= asked + JOIN_RETRY:
                    effects += self._ask_join(node, now)
            t = self.transition
            if t is not None:
                for name, give_up in list(t.inflight.items()):
                    if now >= give_up:
                        del t.inflight[name]
                        t.failed.add(name)
                        effects.append(
                            Log(
                                "error",
                                "crm-action-timeout",
                                f"no result for {name} in time: giving up on it",
                            )
                        )
                        self._abort(f"{name} timed out")
            if now >= self.recheck_at:
                self.recheck_at = INF
                self.dirty = True
        return effects + self._after(now, wall)

    def next_deadline(self) -> float:
        deadline = min((p.deadline for p in self.pending_requests.values()), default=INF)
        deadline = min(deadline, self.no_quorum_at)
        if self._is_dc():
            deadline = min(deadline, self.recheck_at)
            for node, asked in self.join_asked.items():
                if node not in self.joined:
                    deadline = min(deadline, asked + JOIN_RETRY)
            if self.transition is not None and self.transition.inflight:
                deadline = min(deadline, *self.transition.inflight.values())
        return deadline

    # ---- the node side ----------------------------------------------------------------------

    def _dispatch(
        self, sender: str, message: dict[str, Any], now: float, wall: float
    ) -> list[Effect]:
        kind = message["t"]
        term = message.get("term")
        early = isinstance(term, int) and (
            term > self.view.term or (term == self.view.term and self.view.dc != sender)
        )
        if kind in FROM_DC and early and sender != self.node:
            # A new DC's first messages can outrun its heartbeats (messages are read on
            # arrival, heartbeats on the read timer): keep them until our view has caught up.
            waiting = self._early.setdefault(sender, [])
            if len(waiting) < MAX_EARLY:
                waiting.append(message)
            return []
        if kind == "join":
            return self._on_join_request(sender, message, now, wall)
        if kind == "exec":
            return self._on_exec(sender, message)
        if kind == "cancel":
            return self._on_cancel(sender, message)
        if kind == "cib":
            return self._on_cib(sender, message)
        if kind == "reply":
            pending = self.pending_requests.pop(str(message["id"]), None)
            if pending is None:
                return []
            return [Reply(pending.token, dict(message["response"]))]
        if kind == "forget":
            return self._on_forget(sender, message)
        if kind == "attr":
            return self._on_attr(sender, message) if self._is_dc() else []
        # the DC's side
        if not self._is_dc():
            return []
        if kind == "join-ack":
            return self._on_join_ack(sender, message, now, wall)
        if kind == "result":
            return self._on_result(sender, message, now, wall)
        if kind == "request":
            return self._on_request(sender, message, now, wall)
        raise ValueError(f"unknown message type {kind!r}")

    def set_node_attribute(
        self, name: str, value: str | None, now: float, wall: float
    ) -> list[Effect]:
        """Set (None: delete) a transient attribute of this node, through the DC (the
        daemon's shutdown request, ping results)."""
        message = {"t": "attr", "term": self.view.term, "name": name, "value": value}
        return self._to_dc(message, now, wall) + self._after(now, wall)

    def _on_attr(self, sender: str, message: dict[str, Any]) -> list[Effect]:
        if sender not in self.view.members:
            return []
        name, value = message["name"], message["value"]
        if not isinstance(name, str) or not (value is None or isinstance(value, str)):
            raise ValueError("an attribute needs a name and a text value (or null)")
        before = transient(self.states.get(sender))
        self.states = set_transient(self.states, sender, {name: value})
        self._abort(f"attribute {name} of {sender} changed")
        self._share_needed = True
        return list(attribute_events(sender, before, transient(self.states.get(sender))))

    def _lost_quorum(self) -> list[Effect]:
        """This node's partition lost quorum: apply no-quorum-policy to what runs here, on
        our own (a DC of a partition without quorum does not exist to order it). The other
        side may be the one that keeps quorum and starts our resources there."""
        policy = self._config_model().cluster_options().get("no-quorum-policy", "stop")
        running = self.local_running()
        if policy in ("ignore", "freeze") or (not running and policy != "suicide"):
            if running:
                return [
                    Log(
                        "warning",
                        "crm-no-quorum",
                        f"quorum lost; no-quorum-policy={policy}: "
                        f"{', '.join(running)} keep running here",
                    )
                ]
            return []
        effects: list[Effect] = [
            Log(
                "warning",
                "crm-no-quorum",
                f"quorum lost; no-quorum-policy={policy}: stopping {', '.join(running)}",
            )
        ]
        if policy == "suicide":
            # fence ourselves; the stops below run meanwhile, so that a node whose own fencing
            # fails still ends up running nothing
            effects.append(
                FenceRequest(
                    self.node, "reboot", "no-quorum-policy=suicide: quorum lost", allow_self=True
                )
            )
        promotable = self._promotable_primitives() if policy == "demote" else set()
        for rsc in running:
            spec = self.specs.get(rsc)
            if spec is None:
                effects.append(
                    Log(
                        "error",
                        "crm-no-quorum-unknown",
                        f"{rsc} runs here but how to stop it is unknown",
                    )
                )
                continue
            last = self.history.get(rsc, {}).get(f"{rsc}_last_0", {})
            promoted = last.get("operation") == "promote" or last.get("rc-code") == "8"
            if policy == "demote" and rsc.partition(":")[0] in promotable:
                # a promotable clone's instance is demoted and keeps running unpromoted;
                # everything else stops, as Pacemaker's demote policy does
                if promoted:
                    effects.append(
                        RunAgent(replace(spec, action="demote", interval_ms=0), ("quorum", rsc))
                    )
                continue
            effects.append(RunAgent(replace(spec, action="stop", interval_ms=0), ("quorum", rsc)))
        return effects

    def _promotable_primitives(self) -> set[str]:
        """The primitives inside promotable clones."""
        out: set[str] = set()
        for resource in self._config_model().resources:
            if isinstance(resource, Clone) and resource.promotable:
                child = resource.child
                members = child.children if isinstance(child, Group) else (child,)
                out.update(p.id for p in members)
        return out

    # ---- fencing ------------------------------------------------------------------------------

    def fence_result(
        self, target: str, ok: bool, reason: str, now: float, wall: float, *, fresh: bool = True
    ) -> list[Effect]:
        """The fencer finished with `target` (whoever asked). Done: the node runs nothing
        any more. Failed: a transition that waited for it fails that action, and the DC
        schedules again a little later, which asks for the fencing again. `fresh`: this
        node's own fencer did it just now (a record shared by another node may be old)."""
        effects: list[Effect] = []
        if ok:
            effects += self.node_fenced(target, even_if_member=fresh)
        else:
            self.fence_failures[target] = self.fence_failures.get(target, 0) + 1
        t = self.transition
        name = f"stonith 'reboot' {target}"
        if self._is_dc() and t is not None and name in t.inflight:
            del t.inflight[name]
            if ok:
                t.done.add(name)
            else:
                t.failed.add(name)
                self._abort(f"fencing {target} failed")
                self.recheck_at = min(self.recheck_at, now + FENCE_RETRY)
                effects.append(
                    Log(
                        "error",
                        "crm-fencing-failed",
                        f"node {target} could not be fenced ({reason}): its resources stay "
                        f"where they are, and fencing is tried again in {FENCE_RETRY:g} s",
                        {"node": target},
                    )
                )
        return effects + self._after(now, wall)

    def node_fenced(self, target: str, even_if_member: bool = False) -> list[Effect]:
        """`target` is known to be down (fenced, or confirmed down by an operator). A node
        fenced while still a member (its stop failed) is down even before the membership
        notices; a member heard of in an older record came back meanwhile, and what it
        reports is the truth."""
        if target == self.node:
            return []
        self.fence_failures.pop(target, None)
        self.fenced_nodes.add(target)
        if target in self.view.members and not even_if_member:
            return []
        self.states = node_state(
            self.states, target, self._id(target), member=False, joined=False, expected=False
        )
        self.states = forget_lrm(self.states, target)
        self._share_needed = True
        self._abort(f"node {target} was fenced")
        return [Event("node-fenced", {"node": target, "nodeid": self._id(target)})]

    def _stonith_action(self) -> str:
        """stonith-action: reboot (default) or off (poweroff, its old name, too)."""
        action = self._config_model().cluster_options().get("stonith-action", "reboot").lower()
        return "off" if action in ("off", "poweroff") else "reboot"

    def _stonith_max_attempts(self) -> int:
        """stonith-max-attempts (10, as Pacemaker): failed fencings of a node in a row after
        which the DC stops trying (an operator fences or confirms it)."""
        text = self._config_model().cluster_options().get("stonith-max-attempts", "10")
        try:
            return max(1, int(text))
        except ValueError:
            return 10

    def fence_delay(self, target: str) -> float:
        """priority-fencing-delay's share of fencing `target`, as Pacemaker computes it: the
        delay applies to the node whose resources weigh most (the sum of their ``priority``,
        a promoted instance counting one more), so that in a fence race the node that runs
        the important resources shoots first. It applies only where our partition has no
        majority (a two-node cluster's survivor). hastack breaks ties, so that exactly one
        side waits: by the number of active resources, then for the lower node id.
        In two-node clusters it is on by default (TWO_NODE_PRIORITY_FENCING_DELAY)."""
        options = self._config_model().cluster_options()
        text = options.get("priority-fencing-delay")
        if text is None:
            delay = TWO_NODE_PRIORITY_FENCING_DELAY if self.two_node else 0.0
        else:
            ms = crm_get_msec(text)
            delay = ms / 1000 if ms > 0 else 0.0
        members = [n for n in {*self.view.members, self.node} if n != target]
        if delay <= 0 or 2 * len(members) > len(self.node_ids):
            return 0.0
        weights = self._node_weights()
        mine = max((weights.get(n, (0, 0)) for n in members), default=(0, 0))
        theirs = weights.get(target, (0, 0))
        if theirs > mine:
            return delay
        if (
            theirs == mine
            and members
            and _id_key(self._id(target)) < min(_id_key(self._id(n)) for n in members)
        ):
            return delay
        return 0.0

    def _node_weights(self) -> dict[str, tuple[int, int]]:
        """Per node: (the sum of its active resources' priorities, how many are active)."""
        try:
            cib = read_cib(self.cib_document, "<known cib>")
            if self.states:
                cib = replace(cib, status=tuple(self.states.values()))
            state = resource_states(cib)
        except (CibError, ValueError):
            return {}
        priorities: dict[str, int] = {}
        defaults = flatten(cib.rsc_defaults)
        for primitive in cib.all_primitives():
            meta = {**defaults, **flatten(primitive.meta)}
            try:
                priorities[primitive.id] = int(meta.get("priority", "0"))
            except ValueError:
                priorities[primitive.id] = 0
        out: dict[str, tuple[int, int]] = {}
        for rsc in state.resources:
            if not rsc.role.active:
                continue
            weight = priorities.get(rsc.primitive, 0) + (1 if rsc.role == Role.PROMOTED else 0)
            total, count = out.get(rsc.node, (0, 0))
            out[rsc.node] = (total + weight, count + 1)
        return out

    def local_running(self) -> list[str]:
        """The resources this node's history says are active here, the most recently
        started first (the order to stop them in)."""
        active: list[tuple[int, str]] = []
        for rsc, ops in self.history.items():
            last = ops.get(f"{rsc}_last_0")
            if last is None or last.get("op-status") != "0":
                continue
            task, rc = last.get("operation"), last.get("rc-code")
            running = (task in ("start", "promote", "demote", "migrate_from") and rc == "0") or (
                task == "monitor" and rc in ("0", "8")
            )
            if running:
                active.append((int(last.get("call-id", "0")), rsc))
        return [rsc for _, rsc in sorted(active, reverse=True)]

    def _from_dc(self, sender: str, message: Mapping[str, Any]) -> bool:
        """Whether a message comes from the DC of the current term (a deposed DC's orders
        are ignored)."""
        return sender == self.view.dc and message.get("term") == self.view.term

    def _on_join_request(
        self, sender: str, message: dict[str, Any], now: float, wall: float
    ) -> list[Effect]:
        if not self._from_dc(sender, message):
            return []
        self.joined_tenure = (sender, int(message["term"]), int(message.get("tenure", 0)))
        theirs = tuple(message["version"])
        ours = self.config_version
        answer: dict[str, Any] = {
            "t": "join-ack",
            "term": message["term"],
            "version": list(ours),
            "history": self._history_report(),
        }
        if ours > theirs:
            answer["config"] = self._config.decode()
        return self._to(sender, answer, now, wall)

    def _history_report(self) -> list[dict[str, Any]]:
        """What ran here, for a join. An action still running is reported as pending (in
        place of the resource's last one-shot result, as Pacemaker's record-pending does):
        the new DC counts a pending start as started, so it never starts the resource
        elsewhere meanwhile, and its result, when it comes, makes the DC schedule again."""
        report = []
        for rsc in sorted(set(self.history) | set(self.pending_ops)):
            ops = dict(self.history.get(rsc, {}))
            pending = self.pending_ops.get(rsc)
            if pending is not None:
                ops[f"{rsc}_last_0"] = pending
            agent = self.agents.get(rsc)
            if agent is None:
                agent = _agent_parts(pending.get("agent", "") if pending else "")
            report.append({"rsc": rsc, "agent": list(agent), "ops": list(ops.values())})
        return report

    def _from_tenure(self, sender: str, message: Mapping[str, Any]) -> bool:
        """Whether an order comes from the DC tenure whose join this node answered. An
        order of an earlier tenure of the same DC in the same term (delayed in the network
        while the DC lost and won back its lease) was not counted by the join: running it
        now would act behind the DC's back."""
        if not self._from_dc(sender, message):
            return False
        return self.joined_tenure == (sender, message["term"], message.get("tenure", 0))

    def _on_exec(self, sender: str, message: dict[str, Any]) -> list[Effect]:
        if not self._from_tenure(sender, message):
            return [
                Log(
                    "warning",
                    "crm-stale-order",
                    f"ignored an action from {sender}, which is not the DC of term "
                    f"{self.view.term} or ordered it before its latest join",
                )
            ]
        spec = AgentCallSpec.from_json(message["call"])
        if spec.interval_ms == 0 and spec.action != "stop":
            self.specs[spec.resource] = spec  # how to stop it on our own, at shutdown
        tag = (
            "tx",
            message["term"],
            message["tid"],
            int(message["expected"]),
            spec.op_digest or "",
        )
        if spec.interval_ms == 0 and spec.action != "monitor":
            pending = {
                "operation_key": f"{spec.resource}_{spec.action}_0",
                "operation": spec.action,
                "interval": "0",
                "call-id": "-1",
                "rc-code": "193",  # Pacemaker's "unknown": no result yet
                "op-status": "-1",  # pending
                "exit-reason": "",
                "on_node": self.node,
                "exec-time": "0",
                "queue-time": "0",
                "transition": str(message["tid"]),
                "expected-rc": str(tag[3]),
                "term": str(message["term"]),
                "dc": sender,
                "agent": spec.agent,
            }
            if spec.op_digest:
                pending["op-digest"] = spec.op_digest
            self.pending_ops[spec.resource] = pending
        if spec.interval_ms:
            # a recurring operation ordered (again) by a transition: its first result is
            # what that transition waits for, even when it equals the last one reported
            key = f"{spec.resource}_{spec.action}_{spec.interval_ms}"
            self.last_reported.pop((spec.resource, key), None)
        return [RunAgent(spec, tag)]

    def _on_cancel(self, sender: str, message: dict[str, Any]) -> list[Effect]:
        if not self._from_tenure(sender, message):
            return []
        rsc, action, interval = message["rsc"], message["action"], int(message["interval_ms"])
        ops = self.history.get(rsc, {})
        ops.pop(f"{rsc}_{action}_{interval}", None)
        self.last_reported.pop((rsc, f"{rsc}_{action}_{interval}"), None)
        return [CancelAgent(rsc, action, interval)]

    def _on_cib(self, sender: str, message: dict[str, Any]) -> list[Effect]:
        if not self._from_dc(sender, message):
            return []
        document = str(message["cib"]).encode()
        root = etree.fromstring(document, _parser())
        self.cib_document = document
        if versions_of(root)[:2] != self.config_version[:2] or message.get("config_changed"):
            return self._adopt_config(document)
        return []

    def _on_forget(self, sender: str, message: dict[str, Any]) -> list[Effect]:
        """Cleanup: forget a resource's history here (its failures above all); the DC
        probes it again."""
        if not self._from_tenure(sender, message):
            return []
        base = str(message["rsc"]).partition(":")[0]
        for rsc in [r for r in self.history if r.partition(":")[0] == base]:
            del self.history[rsc]
            for key in [k for k in self.last_reported if k[0] == rsc]:
                del self.last_reported[key]
        return []

    def _to_dc(self, message: dict[str, Any], now: float, wall: float) -> list[Effect]:
        dc = self.view.dc
        if dc is None:
            return []  # the next DC learns it from the join
        return self._to(dc, message, now, wall)

    def _to(self, node: str, message: dict[str, Any], now: float, wall: float) -> list[Effect]:
        if node == self.node:
            return self._dispatch(self.node, message, now, wall)
        return [SendMessage(_encode(message), node)]

    # ---- the DC side ------------------------------------------------------------------------

    def _is_dc(self) -> bool:
        return self.view.is_dc and self.dc_term == self.view.term

    def _id(self, node: str) -> str:
        return self.node_ids.get(node, node)

    def _become_dc(self, now: float, wall: float) -> list[Effect]:
        self.dc_term = self.view.term
        self.dc_since = now
        self.tenure += 1
        self.joined = set()
        self.join_asked = {}
        self.transition = None
        self.dirty = True
        self.states = {}
        # start from what this node knew of the status: the members correct it as they join
        try:
            known = read_cib(self.cib_document, "<known cib>")
            self.states = {s.uname or s.id: s for s in known.status}
        except CibError:
            self.states = {}
        effects: list[Effect] = [
            Log(
                "info",
                "crm-dc",
                f"{self.node} is the DC for term {self.view.term}: asking "
                f"the members what runs where",
                {"term": self.view.term},
            ),
            Event("dc-elected", {"node": self.node, "term": self.view.term}),
        ]
        for node in self._configured_nodes():
            if node not in self.view.members:
                fenced = node in self.fenced_nodes
                self.states = node_state(
                    self.states,
                    node,
                    self._id(node),
                    member=False,
                    joined=False,
                    expected=not fenced,
                )
                if fenced or not self._fencing_enabled():
                    self.states = forget_lrm(self.states, node)
        for member in self.view.members:
            self.states = node_state(
                self.states, member, self._id(member), member=True, joined=False
            )
            effects += self._ask_join(member, now)
        return effects

    def _lose_dc(self, now: float) -> list[Effect]:
        term, self.dc_term = self.dc_term, None
        self.transition = None
        self.joined = set()
        self.join_asked = {}
        return [Log("info", "crm-not-dc", f"{self.node} is no longer the DC (term {term})")]

    def _configured_nodes(self) -> list[str]:
        return list(self.node_ids)

    def fencing_enabled(self) -> bool:
        """stonith-enabled (true unless the configuration turns it off)."""
        return self._fencing_enabled()

    def _fencing_enabled(self) -> bool:
        options = self._config_model().cluster_options()
        return parse_bool(options.get("stonith-enabled"), True)

    def _ask_join(self, node: str, now: float) -> list[Effect]:
        self.join_asked[node] = now
        message = {
            "t": "join",
            "term": self.view.term,
            "tenure": self.tenure,
            "version": list(self.config_version),
        }
        if node == self.node:
            return self._dispatch(self.node, message, now, 0.0)
        return [SendMessage(_encode(message), node)]

    def _members_changed(self, old: MembershipView, now: float, wall: float) -> list[Effect]:
        effects: list[Effect] = []
        gone = [n for n in old.members if n not in self.view.members]
        new = [n for n in self.view.members if n not in old.members]
        for node in gone:
            self._forget_transient(node)
            self.joined.discard(node)
            self.join_asked.pop(node, None)
            self.states = node_state(self.states, node, self._id(node), member=False, joined=False)
            if not self._fencing_enabled():
                # without fencing, a node that left is taken to have stopped everything
                self.states = forget_lrm(self.states, node)
            effects.append(
                Event("node-lost", {"node": node, "nodeid": self._id(node), "previous": "member"})
            )
            effects.append(
                Log("warning", "crm-node-lost", f"node {node} left the cluster", {"node": node})
            )
            t = self.transition
            if t is not None:
                for name in [n for n in t.inflight if n.endswith(f" {node}")]:
                    del t.inflight[name]
                    t.failed.add(name)
            self._abort(f"node {node} left")
        for node in new:
            self.fenced_nodes.discard(node)  # back: what it runs is what it reports now
            self.fence_failures.pop(node, None)
            self.states = node_state(self.states, node, self._id(node), member=True, joined=False)
            effects.append(
                Event("node-joined", {"node": node, "nodeid": self._id(node), "previous": "lost"})
            )
            effects += self._ask_join(node, now)
            self._abort(f"node {node} joined")
        if old.quorate != self.view.quorate:
            self._abort("quorum changed")
        return effects

    def _forget_transient(self, node: str) -> None:
        """A node that left or restarted loses its transient attributes (fail counts,
        shutdown, ping results), as Pacemaker's attribute manager forgets them."""
        state = self.states.get(node)
        if state is not None and state.transient:
            self.states[node] = replace(state, transient=None)

    def _on_join_ack(
        self, sender: str, message: dict[str, Any], now: float, wall: float
    ) -> list[Effect]:
        if message.get("term") != self.dc_term or sender not in self.view.members:
            return []
        effects: list[Effect] = []
        config = message.get("config")
        if isinstance(config, str) and tuple(message["version"]) > self.config_version:
            effects += self._adopt_config(config.encode())
            effects.append(
                Log(
                    "info",
                    "crm-config-adopted",
                    f"{sender} holds a newer configuration {tuple(message['version'])}: adopted",
                )
            )
            self._share_needed = True
        resources = []
        for item in message["history"]:
            agent = item.get("agent") or [None, None, None]
            ops = tuple(op_from_report(op) for op in item["ops"])
            resources.append(
                LrmResource(
                    id=str(item["rsc"]), cls=agent[0], provider=agent[1], type=agent[2], ops=ops
                )
            )
        self.states = replace_lrm(self.states, sender, resources)
        self.states = node_state(self.states, sender, self._id(sender), member=True, joined=True)
        self.joined.add(sender)
        self.join_asked.pop(sender, None)
        self._abort(f"{sender} joined")
        self._share_needed = True
        return effects

    def _on_result(
        self, sender: str, message: dict[str, Any], now: float, wall: float
    ) -> list[Effect]:
        if sender not in self.joined:
            return []  # it reports everything again when it joins
        report = message["report"]
        rsc = str(message["rsc"])
        op = op_from_report(report)
        expected = int(report.get("expected-rc", "0"))
        rc = op.rc_code_int
        task, interval = op.operation or "", op.interval_ms
        probe = task == "monitor" and interval == 0
        status_ok = op.op_status_int == 0
        if probe:
            failed = not status_ok or rc not in (RC_OK, RC_NOT_RUNNING, RC_PROMOTED)
        else:
            failed = not status_ok or rc != expected
        agent = _agent_parts(str(message.get("agent", "")))
        previous = self._role_on(sender, rsc)
        self.states = record_op(self.states, sender, rsc, agent, op, failed=failed)
        effects: list[Effect] = []
        if failed and not probe:
            if task == "start" and self._start_failure_is_fatal():
                self.states = fatal_failure(self.states, sender, rsc, task, interval, wall)
            else:
                self.states = count_failure(self.states, sender, rsc, task, interval, wall)
            effects.append(
                Event(
                    "resource-failed",
                    {
                        "node": sender,
                        "resource": rsc,
                        "task": task,
                        "interval_ms": interval,
                        "rc": rc,
                        "target_rc": expected,
                        "status": op.op_status_int,
                        "desc": op.exit_reason or "",
                        "previous": previous,
                    },
                )
            )
        elif status_ok and rc == expected and task in ("start", "stop", "promote", "demote"):
            effects.append(
                Event(
                    _DONE_EVENTS[task],
                    {
                        "node": sender,
                        "resource": rsc,
                        "task": task,
                        "rc": rc,
                        "previous": previous,
                    },
                )
            )
        self._share_needed = True
        t = self.transition
        name = f"{rsc}_{task}_{interval} {sender}"
        if t is not None and report.get("transition") == str(t.tid) and name in t.inflight:
            del t.inflight[name]
            t.done.add(name)
            if failed:
                t.failed.add(name)
            if failed or (probe and rc != expected):
                self._abort(f"{name} returned {rc}, expected {expected}")
        elif interval:
            # a recurring monitor's news: a failure, or a recovery
            self._abort(f"{name} now returns {rc}")
        else:
            # a one-shot result no transition of ours waits for: a node's own no-quorum
            # stop, or an action of an earlier DC or tenure that the join saw pending —
            # what runs where changed behind the plan
            self._abort(f"{name} ended ({rc}) outside the transition")
        return effects

    def _role_on(self, node: str, rsc: str) -> str:
        """A resource's role on a node by the DC's record of its last one-shot operation."""
        state = self.states.get(node)
        for entry in state.lrm_resources if state is not None else ():
            if entry.id != rsc:
                continue
            last = next((o for o in entry.ops if o.id == f"{rsc}_last_0"), None)
            if last is None or last.op_status_int != 0:
                return "Unknown" if last is not None else "Stopped"
            task, rc = last.operation, last.rc_code_int
            if rc == RC_PROMOTED or (task == "promote" and rc == RC_OK):
                return "Promoted"
            if rc == RC_OK and task != "stop":
                return "Started"
            return "Stopped"
        return "Stopped"

    def _start_failure_is_fatal(self) -> bool:
        options = self._config_model().cluster_options()
        return parse_bool(options.get("start-failure-is-fatal"), True)

    def _on_request(
        self, sender: str, message: dict[str, Any], now: float, wall: float
    ) -> list[Effect]:
        operation = message["operation"]
        if not isinstance(operation, dict):
            raise ValueError("a request's operation must be an object")
        response = self._apply_request(operation, sender, now, wall)
        reply = SendMessage(
            _encode({"t": "reply", "id": message["id"], "response": response}), sender
        )
        return [*self._take_outbox(), reply]

    def _take_outbox(self) -> list[Effect]:
        out, self._outbox = self._outbox, []
        return out

    def _apply_request(
        self, operation: Mapping[str, Any], origin: str, now: float, wall: float
    ) -> dict[str, Any]:
        """Apply an operator's request on the DC and return the answer."""
        op = str(operation.get("op", ""))
        try:
            if op in ("resource-cleanup", "resource-refresh"):
                return self._cleanup(operation, now, wall)
            if op == "resource-restart":
                return self._restart(operation)
            return self._edit_config(operation, origin, wall)
        except EditError as exc:
            return {"error": str(exc)}

    def _restart(self, operation: Mapping[str, Any]) -> dict[str, Any]:
        rsc = operation.get("resource")
        if not isinstance(rsc, str) or not rsc:
            raise EditError("resource-restart: a resource is required")
        known = {p.id for p in self._config_model().all_primitives()}
        known |= {r.id for r in self._config_model().resources}
        if rsc not in known:
            raise EditError(f"resource-restart: no resource {rsc!r} is configured")
        self.restarting.add(rsc)
        self._abort(f"restart of {rsc}")
        return {"ok": True, "summary": f"restarting {rsc}: it stops, then starts again"}

    def _cleanup(self, operation: Mapping[str, Any], now: float, wall: float) -> dict[str, Any]:
        rsc = operation.get("resource")
        node = operation.get("node")
        if not isinstance(rsc, str) or not rsc:
            raise EditError(f"{operation.get('op')}: a resource is required")
        if node is not None and not isinstance(node, str):
            raise EditError(f"{operation.get('op')}: node must be a name")
        self.states, touched = clear_failures(self.states, rsc, node)
        for name in touched:
            # the node forgets it too, or it would report the old history at its next join
            forget = {"t": "forget", "term": self.dc_term, "tenure": self.tenure, "rsc": rsc}
            self._outbox += self._to(name, forget, now, wall)
        self._abort(f"cleanup of {rsc}")
        self._share_needed = True
        where = ", ".join(touched) or "nowhere (nothing to clean)"
        return {"ok": True, "summary": f"cleaned up {rsc} on {where}"}

    def _edit_config(
        self, operation: Mapping[str, Any], origin: str, wall: float
    ) -> dict[str, Any]:
        """An operator's change, applied to the whole CIB as the DC sees it now (operations
        such as a move away from where a resource runs, or R1's takeover, read the status);
        the configuration part is kept, and node attributes "until reboot" (which live in
        the status section) go into the DC's node states."""
        if self._operation_edit is None:
            raise EditError("this node cannot apply configuration changes")
        when = datetime.fromtimestamp(wall, UTC)
        edit = self._operation_edit(operation, when)
        before = self._document(wall)
        result = apply_edit(before, "<cluster configuration>", edit, client=f"hastack ({origin})")
        if not result.changed:
            return {"ok": True, "summary": result.summary, "epoch": list(result.epoch)}
        root = etree.fromstring(result.data, _parser())
        config = self._strip_status(root)
        if _c14n_configuration(config) != _c14n_configuration(self._config):
            self._config = config
            self._config_cib = None
            self._config_changed = True
        for state in read_cib(result.data, "<edited cib>").status:
            name = state.uname or state.id
            old = self.states.get(name)
            if old is not None and old.transient != state.transient:
                self.states[name] = replace(old, transient=state.transient)
                # the events leave with this input's other effects (see _take_outbox)
                self._outbox += attribute_events(name, transient(old), transient(state))
        self._abort("the configuration changed")
        self._share_needed = True
        return {"ok": True, "summary": result.summary, "epoch": list(self.config_version)}

    # ---- scheduling and running transitions ---------------------------------------------------

    def _abort(self, why: str) -> None:
        self.dirty = True
        t = self.transition
        if t is not None and t.aborted is None:
            t.aborted = why
            self.counters["aborts"] += 1

    def _after(self, now: float, wall: float) -> list[Effect]:
        """After every input on the DC: share the CIB if it changed, finish or continue the
        running transition, and start a new one when something changed."""
        if not self._is_dc():
            return []
        effects: list[Effect] = self._take_outbox()
        if self.joined >= set(self.view.members):
            t = self.transition
            if t is not None:
                effects += self._advance(t, now, wall)
            for _ in range(3):  # a run that changes only pins or restarts asks for another
                if self.transition is not None or not self.dirty:
                    break
                effects += self._schedule(now, wall)
        if self._share_needed:
            effects += self._share(wall)
        return effects

    def cib(self, wall: float) -> Cib:
        """The whole CIB as the DC sees it now (the scheduler's input)."""
        config = self._config_model()
        extra = dict(config.extra)
        extra["have-quorum"] = "1" if self.view.quorate else "0"
        extra["dc-uuid"] = self._id(self.node)
        # what the status section is written as (fail counts per operation, digests of the
        # whole parameter set): Pacemaker 2.1.5's controller writes this feature set
        extra["crm_feature_set"] = CRM_FEATURE_SET
        states = tuple(self.states[n] for n in sorted(self.states))
        return replace(config, extra=extra, status=states)

    def _document(self, wall: float) -> bytes:
        """The CIB document shared with the members: the configuration as it was written
        (comments and all), with the DC's status section."""
        root = etree.fromstring(self._config, _parser())
        for status in root.findall("status"):
            root.remove(status)
        rendered = etree.fromstring(write_cib(self.cib(wall)), _parser())
        status = rendered.find("status")
        if status is not None:
            root.append(status)
        root.set("have-quorum", "1" if self.view.quorate else "0")
        root.set("dc-uuid", self._id(self.node))
        root.set("crm_feature_set", CRM_FEATURE_SET)
        return etree.tostring(root, encoding="UTF-8")

    def _share(self, wall: float) -> list[Effect]:
        self._share_needed = False
        document = self._document(wall)
        self.cib_document = document
        changed, self._config_changed = self._config_changed, False
        effects: list[Effect] = []
        if changed:
            effects.append(SaveCib(self._config))
        message = {
            "t": "cib",
            "term": self.dc_term,
            "cib": document.decode(),
            "config_changed": changed,
        }
        # (the messaging layer compresses large payloads)
        effects.append(SendMessage(_encode(message)))
        return effects

    def _maintain_pins(self, now: float, wall: float) -> list[Effect]:
        """Operator pins that have run their course go: moves and bans whose lifetime ended,
        and those made "until moved" once the move has happened. The next expiry is a
        recheck time."""
        if b"cli-" not in self._config:
            return []
        when = datetime.fromtimestamp(wall, UTC)
        root = etree.fromstring(self._document(wall), _parser())
        removed = expire_pins(root, when) + clear_moved_pins(root, when)
        for pin in list_pins(root, when):
            expires = pin.get("expires")
            if pin.get("kind") in ("prefer", "ban") and expires and not pin.get("expired"):
                try:
                    end = datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
                except ValueError:
                    continue
                if end.tzinfo is None:
                    end = end.replace(tzinfo=UTC)
                at = now + max(0.0, end.timestamp() - wall) + 1.0
                self.recheck_at = min(self.recheck_at, at)
        if not removed:
            return []

        def remove(config: etree._Element) -> str:
            for location in config.iter("rsc_location"):
                if location.get("id") in removed:
                    parent = location.getparent()
                    if parent is not None:
                        parent.remove(location)
            return f"removed the operator pins {', '.join(removed)} (expired or done)"

        result = apply_edit(self._config, "<cluster configuration>", remove, client="hastack")
        if result.changed:
            self._config = self._strip_status(etree.fromstring(result.data, _parser()))
            self._config_cib = None
            self._config_changed = True
            self._share_needed = True
            self.dirty = True
        return [Log("info", "crm-pins-removed", result.summary, {"pins": removed})]

    def _schedule(self, now: float, wall: float) -> list[Effect]:
        pins = self._maintain_pins(now, wall)
        self.dirty = False
        cib = self._with_restarts(self.cib(wall))
        try:
            state = resource_states(cib, now=wall)
            placement = place(cib, state, now=wall)
            transition = plan(cib, state, placement, wall)
            graph = order(cib, state, placement, transition)
        except (GraphCycle, ValueError, NotImplementedError) as exc:
            options = cib.cluster_options()
            return [
                SaveInput(cib, "pe-error", series_limit(options, "pe-error"), self.tid),
                Log(
                    "error",
                    "crm-scheduler-failed",
                    f"the scheduler could not compute a transition: {exc}",
                ),
            ]
        self._set_recheck(cib, now, wall)
        if not graph.actions:
            if self.restarting:
                # everything being restarted is stopped: start it again
                self.restarting.clear()
                self.dirty = True
            return pins
        self.tid += 1
        self.counters["transitions"] += 1
        self.transition = _Transition(self.tid, graph, started_at=now)
        effects: list[Effect] = [
            *pins,
            Log(
                "info",
                "crm-transition",
                f"transition {self.tid}: {len(graph.actions)} actions",
                {"tid": self.tid, "actions": [a.name for a in graph.actions]},
            ),
            Event(
                "transition-started", {"tid": self.tid, "actions": [a.name for a in graph.actions]}
            ),
        ]
        self._digester = Digester(cib, wall)
        effects += self._advance(self.transition, now, wall)
        # kept after the actions are on their way: writing it is not on the failover's path
        options = cib.cluster_options()
        effects.append(SaveInput(cib, "pe-input", series_limit(options, "pe-input"), self.tid))
        return effects

    def _with_restarts(self, cib: Cib) -> Cib:
        """The scheduler's input while a restart is under way: the resources being restarted
        as if disabled (target-role Stopped), until they have stopped."""
        if not self.restarting:
            return cib
        root = etree.fromstring(write_cib(cib), _parser())
        for rsc in sorted(self.restarting):
            try:
                set_attribute(
                    root, AttributeOwner("resource", rsc, meta=True), "target-role", "Stopped"
                )
            except EditError:
                self.restarting.discard(rsc)  # deleted meanwhile
        return replace(
            read_cib(etree.tostring(root), "<restart>"), status=cib.status, extra=cib.extra
        )

    def _set_recheck(self, cib: Cib, now: float, wall: float) -> None:
        """The next time the scheduler must run although nothing happens: the
        cluster-recheck-interval (time-based rules), and the expiry of each failure under a
        failure-timeout (the resource may come back then)."""
        options = cib.cluster_options()
        interval_ms = crm_get_msec(options.get("cluster-recheck-interval", "15min"))
        interval = interval_ms / 1000 if interval_ms > 0 else DEFAULT_RECHECK
        times = [now + interval]
        times += [now + (at - wall) + 1.0 for at in failure_expiries(cib) if at > wall - 1.0]
        self.recheck_at = min(self.recheck_at, *times)

    def _advance(self, t: _Transition, now: float, wall: float) -> list[Effect]:
        effects: list[Effect] = []
        progress = True
        while progress and t.aborted is None:
            # actions done on the spot (a cancel, a fail-count clearing) make others ready
            done_before = len(t.done)
            for action in t.graph.ready(t.done):
                if action.name in t.inflight or action.name in t.failed:
                    continue
                effects += self._start_action(t, action, now, wall)
            progress = len(t.done) > done_before
        if not t.inflight and (t.aborted is not None or not self._runnable(t)):
            outcome = "aborted: " + t.aborted if t.aborted else "complete"
            if t.aborted is None and len(t.done) < len(t.graph.actions):
                outcome = "stopped: some actions cannot run (see the log)"
            effects.append(
                Log("info", "crm-transition-end", f"transition {t.tid} {outcome}", {"tid": t.tid})
            )
            effects.append(
                Event(
                    "transition-completed" if t.aborted is None else "transition-aborted",
                    {"tid": t.tid, "outcome": outcome, "seconds": round(now - t.started_at, 6)},
                )
            )
            self.transition = None
            self._share_needed = True
            if self.restarting:
                self.dirty = True  # what was stopped for a restart starts again
            if t.aborted is None and b"cli-" in self._config:
                self.dirty = True  # a move "until moved" may be done now: see _maintain_pins
        return effects

    def _runnable(self, t: _Transition) -> bool:
        """Whether anything of the transition can still run (an action whose node is gone
        or that needs fencing blocks what follows it)."""
        return any(a.name not in t.failed for a in t.graph.ready(t.done))

    def _start_action(
        self, t: _Transition, action: Action, now: float, wall: float
    ) -> list[Effect]:
        name = action.name
        node = action.node
        if action.task == "stonith":
            wait_until = self.dc_since + self.startup_grace
            if node not in self.seen_members and now < wait_until:
                # never a member yet: it may be starting now (startup-fencing waits for it)
                t.failed.add(name)
                self._abort(f"waiting for {node} to join before fencing it")
                self.recheck_at = min(self.recheck_at, wait_until)
                return [
                    Log(
                        "info",
                        "crm-fence-startup-wait",
                        f"{node} has not joined yet: it is fenced (startup-fencing) only if it "
                        f"has not joined in {wait_until - now:.1f} s",
                        {"node": node},
                    )
                ]
            limit = self._stonith_max_attempts()
            if self.fence_failures.get(node, 0) >= limit:
                t.failed.add(name)  # what follows stays blocked, and no retry loop
                return [
                    Log(
                        "error",
                        "crm-fencing-given-up",
                        f"fencing {node} failed {limit} times in a row (stonith-max-attempts): "
                        f"no more attempts; its resources stay where they are until "
                        f"`hastack fence {node}` succeeds or `hastack fence confirm {node}`",
                        {"node": node},
                    )
                ]
            # the fencer answers within its devices' timeouts; this only guards a lost answer
            t.inflight[name] = now + FENCE_GIVE_UP
            self.counters["fence_requests"] += 1
            return [
                FenceRequest(
                    node,
                    self._stonith_action(),
                    action.reason or f"node {node} must be fenced",
                    delay=self.fence_delay(node),
                    allow_self=node == self.node,
                )
            ]
        if action.task == "do_shutdown":
            t.done.add(name)
            return []
        if node not in self.joined:
            t.failed.add(name)
            return [Log("warning", "crm-action-skipped", f"{name}: {node} is not a member")]
        self.counters["actions"] += 1
        if isinstance(action, Cancel):
            t.done.add(name)
            message = {
                "t": "cancel",
                "term": self.dc_term,
                "tenure": self.tenure,
                "rsc": action.rsc,
                "action": action.task,
                "interval_ms": action.interval_ms,
            }
            return self._to(node, message, now, wall)
        if action.task == "delete" or action.task == "clear_failcount":
            t.done.add(name)
            if action.task == "clear_failcount" and action.rsc is not None:
                self.states = clear_failcounts(self.states, action.rsc, node)
                self._share_needed = True
            return []
        assert self._digester is not None
        try:
            spec = call_for(self._digester, action)
        except CallError as exc:
            t.failed.add(name)
            self._abort(f"{name}: {exc}")
            return [Log("error", "crm-action-invalid", f"{name}: {exc}")]
        expected = _expected_rc(self._digester, action, spec)
        t.inflight[name] = now + spec.timeout_ms / 1000 + ACTION_SLACK
        message = {
            "t": "exec",
            "term": self.dc_term,
            "tenure": self.tenure,
            "tid": t.tid,
            "call": spec.to_json(),
            "expected": expected,
        }
        return self._to(node, message, now, wall)


_DONE_EVENTS = {
    "start": "resource-started",
    "stop": "resource-stopped",
    "promote": "resource-promoted",
    "demote": "resource-demoted",
}


def _c14n_configuration(document: bytes) -> bytes:
    element = etree.fromstring(document, _parser()).find("configuration")
    return b"" if element is None else etree.tostring(element, method="c14n")


def _id_key(node_id: str) -> tuple[int, str]:
    """Node ids compare as numbers when they are (Pacemaker's are), else as text."""
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)


def _expected_rc(digester: Digester, action: Action, spec: AgentCallSpec) -> int:
    """The rc the DC expects: "not running" from a probe, "running promoted" from the monitor
    of a promoted role, else success."""
    if spec.action == "monitor" and spec.interval_ms == 0:
        return RC_NOT_RUNNING
    if spec.action == "monitor" and action.rsc is not None:
        op = find_op(digester.resource(action.rsc).primitive, "monitor", spec.interval_ms)
        if op is not None and op.role in ("Promoted", "Master"):
            return RC_PROMOTED
    return RC_OK


def _agent_parts(agent: str) -> tuple[str | None, str | None, str | None]:
    parts = agent.split(":")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return parts[0], None, parts[1]
    return None, None, agent or None
