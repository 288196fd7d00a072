"""The executor core: what runs when, what results mean, what is recorded (sans-IO)."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from hastack.agents.executor import (
    Abort,
    Effect,
    Executor,
    Launch,
    OpCompleted,
    OpKey,
)
from hastack.agents.invocation import ResourceAgentCall
from hastack.agents.names import AgentSpec
from hastack.agents.rc import ExecStatus, OcfRc, OpResult

DUMMY = AgentSpec("ocf", "heartbeat", "Dummy")


def call(
    resource: str = "r1",
    action: str = "start",
    interval: float = 0.0,
    meta: dict[str, str] | None = None,
) -> ResourceAgentCall:
    return ResourceAgentCall(resource, DUMMY, action, meta=meta or {}, interval=interval)


def ok(rc: int = 0, duration: float = 0.5, status: ExecStatus = "done") -> OpResult:
    return OpResult(rc if status == "done" else 1, status, duration=duration)


def launches(effects: list[Effect]) -> list[Launch]:
    return [e for e in effects if isinstance(e, Launch)]


def completions(effects: list[Effect]) -> list[OpCompleted]:
    return [e for e in effects if isinstance(e, OpCompleted)]


def test_one_shot_is_launched_and_recorded_like_lrm_rsc_op() -> None:
    ex = Executor("node1")
    [launch] = ex.request(call(), now=10.0, tag="t1")
    assert launch == Launch(1, call())
    assert ex.running() == {1: call()}
    [done] = ex.finished(1, ok(duration=0.25), now=10.3)
    assert done.failed is False
    assert done.tag == "t1"
    assert done.result == ok(duration=0.25)
    record = done.record
    assert record.operation_key == "r1_start_0"
    assert (record.call_id, record.rc, record.status, record.expected_rc) == (1, 0, "done", 0)
    assert (record.last_run, record.last_rc_change) == (10.0, 10.3)
    assert (record.exec_time, record.queue_time) == (0.25, 0.0)
    assert ex.lrm_rsc_ops("r1") == {"r1_last_0": record}
    attributes = record.lrm_attributes("node1")
    assert attributes["operation_key"] == "r1_start_0"
    assert (attributes["call-id"], attributes["rc-code"], attributes["op-status"]) == (
        "1",
        "0",
        "0",
    )
    assert (attributes["exec-time"], attributes["queue-time"]) == ("250", "0")
    assert (attributes["last-run"], attributes["on_node"]) == ("10", "node1")
    assert ex.history() == [record]
    assert ex.running() == {}


def test_actions_of_one_resource_run_one_at_a_time_in_order() -> None:
    ex = Executor("n")
    assert launches(ex.request(call(action="start"), 0.0)) == [Launch(1, call(action="start"))]
    assert ex.request(call(action="monitor"), 1.0) == []  # waits for the start
    assert ex.request(call(action="stop"), 2.0) == []
    assert [c.action for c in ex.queued("r1")] == ["monitor", "stop"]
    effects = ex.finished(1, ok(), 3.0)
    assert launches(effects) == [Launch(2, call(action="monitor"))]
    effects = ex.finished(2, ok(), 4.0)
    assert completions(effects)[0].record.queue_time == 2.0  # requested at 1, launched at 3
    assert launches(effects) == [Launch(3, call(action="stop"))]


def test_actions_of_different_resources_run_in_parallel() -> None:
    ex = Executor("n")
    assert launches(ex.request(call("a"), 0.0)) == [Launch(1, call("a"))]
    assert launches(ex.request(call("b"), 0.0)) == [Launch(2, call("b"))]
    assert set(ex.running()) == {1, 2}


def test_recurring_monitor_runs_at_once_then_every_interval_after_it_ends() -> None:
    ex = Executor("n")
    mon = call(action="monitor", interval=10.0)
    assert ex.request(mon, 0.0, tag="mon") == [Launch(1, mon)]
    assert ex.next_deadline() == math.inf  # running: nothing scheduled
    [done] = ex.finished(1, ok(), 2.0)
    assert done.record.operation_key == "r1_monitor_10000"
    assert done.tag == "mon"
    assert ex.next_deadline() == 12.0  # interval after the end of the previous run
    assert ex.tick(11.9) == []
    assert ex.tick(12.0) == [Launch(2, mon)]
    ex.finished(2, ok(), 13.0)
    assert ex.next_deadline() == 23.0
    assert ex.recurring("r1") == [OpKey("r1", "monitor", 10.0)]
    assert ex.lrm_rsc_ops("r1")["r1_monitor_10000"].call_id == 2


def test_due_monitor_waits_while_its_resource_is_busy() -> None:
    ex = Executor("n")
    mon = call(action="monitor", interval=5.0)
    ex.request(mon, 0.0)
    ex.finished(1, ok(), 0.0)
    assert launches(ex.request(call(action="reload"), 4.0)) == [Launch(2, call(action="reload"))]
    assert ex.tick(5.0) == []  # due, but the reload runs
    assert ex.next_deadline() == math.inf  # queued behind the reload
    effects = ex.finished(2, ok(), 8.0)
    assert launches(effects) == [Launch(3, mon)]
    assert completions(ex.finished(3, ok(), 8.5))[0].record.queue_time == 3.0


def test_stop_cancels_the_resources_monitors() -> None:
    ex = Executor("n")
    ex.request(call(action="monitor", interval=5.0), 0.0, tag="m5")
    ex.finished(1, ok(), 1.0)
    ex.request(call("other", action="monitor", interval=5.0), 1.0)
    effects = ex.request(call(action="stop"), 2.0)
    cancelled, launch = effects
    assert isinstance(cancelled, OpCompleted)
    assert (cancelled.record.status, cancelled.failed, cancelled.tag) == ("cancelled", False, "m5")
    assert launch == Launch(3, call(action="stop"))
    assert ex.recurring("r1") == []
    assert "r1_monitor_5000" not in ex.lrm_rsc_ops("r1")  # deleted, as Pacemaker does
    assert ex.recurring("other") == [OpKey("other", "monitor", 5.0)]


def test_stop_aborts_a_running_monitor_and_runs_after_it() -> None:
    ex = Executor("n")
    mon = call(action="monitor", interval=5.0)
    ex.request(mon, 0.0)
    assert ex.request(call(action="stop"), 1.0) == [Abort(1)]
    effects = ex.finished(1, ok(status="cancelled"), 1.2)
    [cancelled] = completions(effects)
    assert cancelled.record.status == "cancelled"
    assert cancelled.failed is False
    assert launches(effects) == [Launch(2, call(action="stop"))]
    ex.finished(2, ok(), 2.0)
    assert ex.tick(100.0) == []


def test_failed_recurring_monitor_is_reported_and_keeps_running() -> None:
    ex = Executor("n")
    mon = call(action="monitor", interval=1.0)
    ex.request(mon, 0.0)
    assert completions(ex.finished(1, ok(), 0.1))[0].failed is False
    ex.tick(1.1)
    [event] = completions(ex.finished(2, ok(OcfRc.NOT_RUNNING), 1.2))
    assert event.failed is True
    assert (event.record.rc, event.record.expected_rc) == (7, 0)
    assert event.record.last_rc_change == 1.2
    assert ex.lrm_rsc_ops("r1")["r1_last_failure_0"] == event.record
    assert event.record.lrm_attributes("n")["interval"] == "1000"
    assert ex.tick(2.2) == [Launch(3, mon)]


def test_last_rc_change_moves_only_when_the_result_changes() -> None:
    ex = Executor("n")
    mon = call(action="monitor", interval=1.0)
    ex.request(mon, 0.0)
    first = completions(ex.finished(1, ok(), 0.5))[0].record
    ex.tick(1.5)
    second = completions(ex.finished(2, ok(), 1.6))[0].record
    assert (first.last_rc_change, second.last_rc_change) == (0.5, 0.5)
    assert (second.last_run, second.call_id) == (1.5, 2)
    ex.tick(2.6)
    third = completions(ex.finished(3, ok(OcfRc.NOT_RUNNING), 2.7))[0].record
    assert third.last_rc_change == 2.7


@pytest.mark.parametrize(
    ("action", "interval", "meta", "rc", "status", "failed"),
    [
        ("monitor", 0.0, {}, OcfRc.NOT_RUNNING, "done", False),  # a probe of a stopped resource
        ("monitor", 0.0, {}, OcfRc.SUCCESS, "done", False),
        ("monitor", 0.0, {}, OcfRc.RUNNING_PROMOTED, "done", False),
        ("monitor", 0.0, {}, OcfRc.ERR_GENERIC, "done", True),
        ("monitor", 0.0, {}, OcfRc.FAILED_PROMOTED, "done", True),
        ("monitor", 5.0, {}, OcfRc.DEGRADED, "done", False),
        ("monitor", 5.0, {"role": "Promoted"}, OcfRc.RUNNING_PROMOTED, "done", False),
        ("monitor", 5.0, {"role": "Promoted"}, OcfRc.SUCCESS, "done", True),
        ("start", 0.0, {}, OcfRc.ERR_GENERIC, "done", True),
        ("start", 0.0, {}, OcfRc.ERR_CONFIGURED, "done", True),
        ("start", 0.0, {}, 1, "timeout", True),
        ("start", 0.0, {}, 1, "error", True),
        ("start", 0.0, {}, 1, "not-installed", True),
        ("stop", 0.0, {}, OcfRc.NOT_RUNNING, "done", False),  # already stopped: goal reached
        ("stop", 0.0, {}, OcfRc.ERR_GENERIC, "done", True),
        ("start", 0.0, {"op_target_rc": "7"}, OcfRc.NOT_RUNNING, "done", False),
    ],
)
def test_what_counts_as_a_failure(
    action: str,
    interval: float,
    meta: dict[str, str],
    rc: int,
    status: ExecStatus,
    failed: bool,
) -> None:
    ex = Executor("n")
    [launch] = launches(ex.request(call(action=action, interval=interval, meta=meta), 0.0))
    [event] = completions(ex.finished(launch.call_id, OpResult(rc, status), 1.0))
    assert event.failed is failed
    assert ("r1_last_failure_0" in ex.lrm_rsc_ops("r1")) is failed


def test_cancel_by_key_normalises_the_interval_and_ignores_unknown_ops() -> None:
    ex = Executor("n")
    ex.request(call(action="monitor", interval=0.2), 0.0)
    ex.finished(1, ok(), 0.1)
    assert ex.cancel("r1", "monitor", 10.0, 0.2) == []
    assert ex.cancel("nobody", "monitor", 0.2, 0.2) == []
    [event] = ex.cancel("r1", "monitor", 0.2000001, 0.2)
    assert isinstance(event, OpCompleted)
    assert event.record.status == "cancelled"
    assert ex.next_deadline() == math.inf


def test_a_new_recurring_op_with_the_same_key_replaces_the_old_one() -> None:
    ex = Executor("n")
    ex.request(call(action="monitor", interval=5.0, meta={"depth": "0"}), 0.0, tag="old")
    ex.finished(1, ok(), 0.1)
    new = call(action="monitor", interval=5.0, meta={"depth": "10"})
    effects = ex.request(new, 1.0, tag="new")
    assert [type(e) for e in effects] == [OpCompleted, Launch]
    assert effects[0].tag == "old"  # type: ignore[union-attr]
    assert effects[1] == Launch(2, new)
    assert ex.recurring() == [OpKey("r1", "monitor", 5.0)]


def test_finished_for_an_unknown_call_id_is_refused() -> None:
    with pytest.raises(ValueError, match="call id 9 is not running"):
        Executor("n").finished(9, ok(), 0.0)


def test_bad_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        Executor("n").request(call(action="monitor", interval=math.nan), 0.0)


def test_shutdown_cancels_everything_and_aborts_running_agents() -> None:
    ex = Executor("n")
    ex.request(call("a", action="monitor", interval=5.0), 0.0, tag="ma")
    ex.request(call("b", action="start"), 0.0, tag="sb")
    ex.request(call("b", action="promote"), 0.0, tag="pb")
    ex.request(call("c", action="monitor", interval=5.0), 0.0)
    ex.finished(3, ok(), 0.5)  # c's monitor waits for its next run
    effects = ex.shutdown(1.0)
    assert sorted(e.call_id for e in effects if isinstance(e, Abort)) == [1, 2]
    dropped = {e.tag for e in completions(effects)}
    assert "pb" in dropped  # queued behind the start: never runs
    assert ex.recurring() == []
    ex.finished(1, ok(status="cancelled"), 1.1)
    ex.finished(2, ok(status="cancelled"), 1.1)
    assert ex.running() == {} and ex.queued("b") == []
    assert ex.next_deadline() == math.inf


# -- property-based: random sequences of requests, results, cancels and ticks -----------------

RESOURCES = ("a", "b", "c")
ONE_SHOT = ("start", "stop", "monitor", "promote", "demote", "reload")
INTERVALS = (1.0, 2.5, 7.0)


@dataclass
class Launched:
    call: ResourceAgentCall
    at: float
    aborted: bool = False


@dataclass
class Model:
    recurring_ends: dict[OpKey, float | None] = field(default_factory=dict)
    running: dict[int, Launched] = field(default_factory=dict)
    last_call_id: int = 0
    open_tags: set[Hashable] = field(default_factory=set)
    completed_tags: set[Hashable] = field(default_factory=set)


class ExecutorMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.ex = Executor("n")
        self.model = Model()
        self.now = 0.0
        self.ticked = 0.0  # when tick was last called
        self.tags = 0

    def apply(self, effects: list[Effect]) -> None:
        m = self.model
        for effect in effects:
            if isinstance(effect, Launch):
                assert effect.call_id > m.last_call_id, "call ids increase"
                m.last_call_id = effect.call_id
                busy = {launched.call.resource for launched in m.running.values()}
                assert effect.call.resource not in busy, "two actions of one resource at once"
                if effect.call.interval > 0:
                    key = OpKey.of(effect.call.resource, effect.call.action, effect.call.interval)
                    assert key in m.recurring_ends, "a cancelled recurring op was launched"
                    ended = m.recurring_ends[key]
                    if ended is not None:
                        assert self.now >= ended + key.interval - 1e-9, "ran before its interval"
                m.running[effect.call_id] = Launched(effect.call, self.now)
            elif isinstance(effect, Abort):
                assert effect.call_id in m.running
                m.running[effect.call_id].aborted = True
            else:
                if effect.tag is not None and effect.tag in m.open_tags:
                    m.open_tags.discard(effect.tag)
                    m.completed_tags.add(effect.tag)
                else:
                    assert effect.tag not in m.completed_tags, "a one-shot completed twice"

    def new_tag(self) -> int:
        self.tags += 1
        return self.tags

    @rule(resource=st.sampled_from(RESOURCES), action=st.sampled_from(ONE_SHOT))
    def request_one_shot(self, resource: str, action: str) -> None:
        tag = self.new_tag()
        self.model.open_tags.add(tag)
        if action == "stop":
            for key in [k for k in self.model.recurring_ends if k.resource == resource]:
                del self.model.recurring_ends[key]
        self.apply(self.ex.request(call(resource, action), self.now, tag=tag))

    @rule(resource=st.sampled_from(RESOURCES), interval=st.sampled_from(INTERVALS))
    def request_monitor(self, resource: str, interval: float) -> None:
        self.model.recurring_ends[OpKey.of(resource, "monitor", interval)] = None
        self.apply(self.ex.request(call(resource, "monitor", interval), self.now))

    @rule(resource=st.sampled_from(RESOURCES), interval=st.sampled_from(INTERVALS))
    def cancel(self, resource: str, interval: float) -> None:
        self.model.recurring_ends.pop(OpKey.of(resource, "monitor", interval), None)
        self.apply(self.ex.cancel(resource, "monitor", interval, self.now))

    @precondition(lambda self: bool(self.model.running))
    @rule(
        data=st.data(),
        rc=st.sampled_from([0, 1, 7, 8]),
        status=st.sampled_from(["done", "done", "timeout", "error"]),
        duration=st.floats(0, 3),
    )
    def finish(self, data: st.DataObject, rc: int, status: ExecStatus, duration: float) -> None:
        call_id = data.draw(st.sampled_from(sorted(self.model.running)))
        launched = self.model.running.pop(call_id)
        self.now += duration
        effects = self.ex.finished(call_id, OpResult(rc, status, duration=duration), self.now)
        [done] = [e for e in effects if isinstance(e, OpCompleted) and e.record.call_id == call_id]
        assert done.record.last_run == launched.at
        assert done.record.exec_time == duration
        assert done.record.queue_time >= 0
        if launched.aborted:
            assert done.record.status == "cancelled" and not done.failed
        key = OpKey.of(launched.call.resource, launched.call.action, launched.call.interval)
        if launched.call.interval > 0 and not launched.aborted:
            assert key in self.model.recurring_ends
            self.model.recurring_ends[key] = self.now
        self.apply(effects)

    @rule(dt=st.floats(0, 4))
    def tick(self, dt: float) -> None:
        self.now += dt
        self.ticked = self.now
        self.apply(self.ex.tick(self.now))

    @invariant()
    def nothing_due_is_left_waiting(self) -> None:
        if hasattr(self, "ex"):
            # After a tick, no recurring op that was due then is left waiting for a timer.
            assert self.ex.next_deadline() > self.ticked or not self.ex.recurring()

    @invariant()
    def queues_move(self) -> None:
        if hasattr(self, "ex"):
            busy = {c.resource for c in self.ex.running().values()}
            for resource in RESOURCES:
                if self.ex.queued(resource):
                    assert resource in busy, "work waits on an idle resource"

    @invariant()
    def running_agrees(self) -> None:
        if hasattr(self, "ex"):
            assert set(self.ex.running()) == set(self.model.running)

    def teardown(self) -> None:
        if not hasattr(self, "ex"):
            return
        # Every launch is eventually finished and every one-shot completes: cancel the
        # recurring ops and answer whatever runs until nothing does.
        for key in list(self.model.recurring_ends):
            del self.model.recurring_ends[key]
            self.apply(self.ex.cancel(key.resource, key.action, key.interval, self.now))
        for _ in range(1000):
            if not self.model.running:
                break
            call_id = min(self.model.running)
            self.model.running.pop(call_id)
            self.apply(self.ex.finished(call_id, OpResult(0, "done"), self.now))
        assert not self.model.running
        assert not self.model.open_tags, "a one-shot request never completed"
        assert all(not self.ex.queued(r) for r in RESOURCES)
        assert self.ex.next_deadline() == math.inf


ExecutorMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_executor_state_machine = ExecutorMachine.TestCase


def test_executor_is_deterministic() -> None:
    def script(ex: Executor) -> list[Effect]:
        out: list[Effect] = []
        out += ex.request(call("a", "monitor", 1.0), 0.0)
        out += ex.request(call("b", "start"), 0.0)
        out += ex.finished(1, ok(), 0.5)
        out += ex.tick(1.5)
        out += ex.request(call("a", "stop"), 1.6)
        out += ex.finished(3, ok(status="cancelled"), 1.7)
        return out

    assert script(Executor("n")) == script(Executor("n"))
