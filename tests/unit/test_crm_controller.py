"""The controller cores of a small cluster, driven by the harness: joins, transitions,
failover, failures, operator requests and deposed DCs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from lxml import etree

from hastack.crm.agent_calls import AgentCallSpec
from hastack.crm.cib.edit import EditError
from hastack.crm.cib.xml import read_cib
from hastack.crm.controller import Controller, MembershipView, RunAgent, SendMessage
from hastack.crm.state import resource_states
from tests.unit.crm_harness import Cluster, set_meta

NODES = ["n1", "n2", "n3"]

CIB = b"""<cib admin_epoch="0" epoch="5" num_updates="0" validate-with="pacemaker-3.7">
  <configuration>
    <crm_config><cluster_property_set id="cib-bootstrap-options">
      <nvpair id="o1" name="stonith-enabled" value="false"/>
    </cluster_property_set></crm_config>
    <nodes>
      <node id="1" uname="n1"/><node id="2" uname="n2"/><node id="3" uname="n3"/>
    </nodes>
    <resources>
      <group id="web">
        <primitive id="ip" class="ocf" provider="heartbeat" type="IPaddr2">
          <instance_attributes id="ip-ia"><nvpair id="ip-a" name="ip" value="10.9.0.10"/>
          </instance_attributes>
          <operations><op id="ip-mon" name="monitor" interval="10s" timeout="20s"/></operations>
        </primitive>
        <primitive id="srv" class="ocf" provider="heartbeat" type="Dummy">
          <operations><op id="srv-mon" name="monitor" interval="10s"/></operations>
        </primitive>
      </group>
    </resources>
    <constraints>
      <rsc_location id="prefer-n1" rsc="web" node="n1" score="100"/>
    </constraints>
    <rsc_defaults><meta_attributes id="rd"><nvpair id="rd-s" name="resource-stickiness"
      value="0"/></meta_attributes></rsc_defaults>
  </configuration>
  <status/>
</cib>"""


def started(c: Cluster) -> Cluster:
    c.set_membership("n1", 1, NODES)
    c.run()
    return c


def test_a_new_dc_probes_everywhere_then_starts_the_group_where_preferred() -> None:
    c = started(Cluster(CIB, NODES))
    assert c.where("ip") == ["n1"] and c.where("srv") == ["n1"]
    for node in NODES:  # every node was asked what runs there before anything started
        probes = [r for r in c.fake[node].ran if r[1] == "monitor" and r[2] == 0]
        assert {r[0] for r in probes} == {"ip", "srv"}
    ran = [r[:2] for r in c.fake["n1"].ran if r[1] != "monitor"]
    assert ran == [("ip", "start"), ("srv", "start")]  # the group's order
    assert ("ip", "monitor", 10000) in c.fake["n1"].recurring
    assert "transition-completed" in c.event_names()


def test_the_group_fails_over_when_its_node_dies_and_comes_back_with_stickiness_zero() -> None:
    c = started(Cluster(CIB, NODES))
    c.crash("n1")
    c.set_membership("n2", 2, ["n2", "n3"])
    c.run()
    (survivor,) = c.where("ip")
    assert survivor in ("n2", "n3") and c.where("srv") == [survivor]
    # n1 returns with nothing running: stickiness 0 and the location preference move it back
    c.up.add("n1")
    c.set_membership("n2", 2, NODES)
    c.run()
    assert c.where("ip") == ["n1"] and c.where("srv") == ["n1"]


def test_a_new_dc_learns_what_runs_and_changes_nothing() -> None:
    c = started(Cluster(CIB, NODES))
    before = {n: list(c.fake[n].ran) for n in NODES}
    c.set_membership("n2", 2, NODES)  # n1 stays, but n2 is elected DC of term 2
    c.run()
    assert c.where("ip") == ["n1"]
    for node in NODES:  # no action anywhere: the join told n2 everything
        assert c.fake[node].ran == before[node]


def test_a_deposed_dc_cannot_order_actions() -> None:
    c = started(Cluster(CIB, NODES))
    c.set_membership("n2", 2, NODES)
    c.run()
    # an exec message from n1 in the old term reaches n3: refused
    message = {
        "t": "exec",
        "term": 1,
        "tid": 99,
        "expected": 0,
        "call": {
            "resource": "srv",
            "agent": "ocf:heartbeat:Dummy",
            "action": "start",
            "interval_ms": 0,
            "timeout_ms": 20000,
        },
    }
    effects = c.ctl["n3"].receive("n1", json.dumps(message).encode(), c.now, c.wall)
    assert not [e for e in effects if isinstance(e, RunAgent)]
    assert any(getattr(e, "event", "") == "crm-stale-order" for e in effects)


def test_monitor_failure_restarts_in_place_then_moves_after_migration_threshold() -> None:
    cib = CIB.replace(
        b'value="0"/></meta_attributes>',
        b'value="0"/><nvpair id="rd-m" name="migration-threshold" value="2"/></meta_attributes>',
    )
    c = started(Cluster(cib, NODES))
    c.fake["n1"].running.pop("srv")  # the service dies under the cluster
    c.monitor_now("n1")
    assert c.where("srv") == ["n1"]  # recovered in place
    status = read_cib(c.ctl["n1"].cib_document)
    counts = {
        p.name: p.value
        for s in status.status
        if s.uname == "n1"
        for t in (s.transient or ())
        for p in t.pairs
    }
    assert counts["fail-count-srv#monitor_10000"] == "1"
    assert "resource-failed" in c.event_names()
    c.fake["n1"].running.pop("srv")
    c.monitor_now("n1")  # the second failure reaches migration-threshold
    (elsewhere,) = c.where("srv")
    assert elsewhere != "n1" and c.where("ip") == [elsewhere]


def test_a_failed_start_moves_the_group_elsewhere() -> None:
    c = Cluster(CIB, NODES)
    c.fake["n1"].fail_starts.add("srv")
    started(c)
    (node,) = c.where("srv")
    assert node != "n1" and c.where("ip") == [node]
    cib = read_cib(c.ctl["n1"].cib_document)
    (n1,) = [s for s in cib.status if s.uname == "n1"]
    counts = {p.name: p.value for t in (n1.transient or ()) for p in t.pairs}
    assert counts["fail-count-srv#start_0"] == "INFINITY"  # start-failure-is-fatal
    failures = [op for r in n1.lrm_resources for op in r.ops if op.id == "srv_last_failure_0"]
    assert failures and failures[0].exit_reason == "scripted failure"
    # and the scheduler, run on the CIB the DC shares, has nothing left to do
    state = resource_states(cib, now=c.wall)
    assert [r.node for r in state.of("srv") if r.role.active] == [node]


def _edit(operation: Mapping[str, Any], when: datetime) -> Any:
    if operation.get("op") != "set-meta":
        raise EditError(f"unknown operation {operation.get('op')!r}")
    return set_meta(operation["resource"], operation["name"], operation["value"])


def test_operator_request_through_a_member_reaches_the_dc_and_every_copy() -> None:
    c = started(Cluster(CIB, NODES, operation_edit=_edit))
    reply = c.request(
        "n3", {"op": "set-meta", "resource": "web", "name": "target-role", "value": "Stopped"}, "t1"
    )
    assert reply["ok"] is True and reply["epoch"][1] == 6
    c.run()
    assert c.where("ip") == [] and c.where("srv") == []
    for node in NODES:  # every node holds and saved the new configuration
        root = etree.fromstring(c.ctl[node].cib_document)
        assert root.get("epoch") == "6"
        assert b"target-role" in c.saved[node]
    bad = c.request("n2", {"op": "nonsense"}, "t2")
    assert "unknown operation" in bad["error"]


def test_cleanup_forgets_failures_and_reprobes() -> None:
    c = Cluster(CIB, NODES, operation_edit=_edit)
    c.fake["n1"].fail_starts.add("srv")
    started(c)
    c.fake["n1"].fail_starts.clear()
    reply = c.request("n2", {"op": "resource-cleanup", "resource": "srv"}, "t")
    assert reply["ok"] is True and "n1" in reply["summary"]
    c.run()
    # nothing holds the group away from n1 any more: it moves back (stickiness 0)
    assert c.where("srv") == ["n1"]


def test_a_request_without_a_dc_is_refused_clearly() -> None:
    ctl = Controller("n1", {"n1": "1"}, CIB)
    effects = ctl.request({"op": "x"}, "tok", 1.0, 1.0)
    assert "no DC" in effects[0].response["error"]


def test_newest_configuration_wins_when_a_member_holds_a_newer_one() -> None:
    newer = CIB.replace(b'epoch="5"', b'epoch="9"').replace(b'score="100"', b'score="-INFINITY"')
    c = Cluster(CIB, NODES)
    c.ctl["n3"] = Controller("n3", {"n1": "1", "n2": "2", "n3": "3"}, newer)
    started(c)
    for node in NODES:
        assert etree.fromstring(c.ctl[node].cib_document).get("epoch") == "9"
    assert "n1" not in c.where("ip")  # the newer configuration bans n1


def test_bad_messages_are_counted_and_logged() -> None:
    ctl = Controller("n2", {"n1": "1", "n2": "2"}, CIB)
    view = MembershipView("n1", 1, False, ("n1", "n2"), True)
    ctl.membership_changed(view, 1.0, 1.0)
    join = b'{"t": "join", "term": 1, "tenure": 1, "version": [0, 1, 0]}'
    ctl.receive("n1", join, 1.0, 1.0)  # answered: the orders of that tenure are heard
    assert ctl.joined_tenure == ("n1", 1, 1) and ctl.counters["bad_messages"] == 0
    for junk in (b"", b"{", b"[]", b'{"t": 5}', b'{"t": "exec", "term": 1, "tenure": 1}'):
        effects = ctl.receive("n1", junk, 1.0, 1.0)
        assert any(getattr(e, "event", "") == "crm-bad-message" for e in effects)
    assert ctl.counters["bad_messages"] == 5


def test_only_the_dc_sends_the_cib() -> None:
    c = started(Cluster(CIB, NODES))
    c.queue.clear()
    c.set_membership("n1", 1, NODES)
    c.run()
    for node in ("n2", "n3"):
        effects = c.ctl[node].tick(c.now, c.wall)
        assert not [e for e in effects if isinstance(e, SendMessage) and e.dest is None]


def _operations() -> Any:
    from hastack.crm.operations import operation_edit

    return operation_edit


def test_a_move_until_moved_is_cleared_once_done_and_a_timed_ban_expires() -> None:
    sticky = CIB.replace(
        b'name="resource-stickiness"\n      value="0"',
        b'name="resource-stickiness"\n      value="200"',
    )
    assert sticky != CIB
    c = started(Cluster(sticky, NODES, operation_edit=_operations()))
    reply = c.request(
        "n2", {"op": "resource-move", "resource": "web", "node": "n3", "until_moved": True}, "m"
    )
    assert reply.get("ok"), reply
    c.run()
    assert c.where("ip") == ["n3"]
    config = etree.fromstring(c.ctl["n1"].cib_document)
    assert not config.xpath("//rsc_location[starts-with(@id, 'cli-prefer-')]")
    c.tick(1.0)
    assert c.where("ip") == ["n3"]  # stickiness keeps it there once the pin is gone
    # a ban for ten minutes: honoured, then gone when its time is up (the recheck timer)
    reply = c.request(
        "n1", {"op": "resource-ban", "resource": "web", "node": "n2", "lifetime": "PT10M"}, "b"
    )
    assert reply.get("ok"), reply
    c.run()
    assert etree.fromstring(c.ctl["n1"].cib_document).xpath(
        "//rsc_location[@id='cli-ban-web-on-n2']"
    )
    c.tick(601.0)
    assert not etree.fromstring(c.ctl["n1"].cib_document).xpath(
        "//rsc_location[@id='cli-ban-web-on-n2']"
    )


def test_restart_stops_then_starts_the_resource_where_it_runs() -> None:
    c = started(Cluster(CIB, NODES, operation_edit=_operations()))
    before = len(c.fake["n1"].ran)
    reply = c.request("n3", {"op": "resource-restart", "resource": "srv"}, "r")
    assert reply.get("ok"), reply
    c.run()
    ran = [r[:2] for r in c.fake["n1"].ran[before:] if r[1] in ("start", "stop")]
    assert ran == [("srv", "stop"), ("srv", "start")]
    assert c.where("srv") == ["n1"]
    assert (
        "no resource" in c.request("n3", {"op": "resource-restart", "resource": "x"}, "x")["error"]
    )


def test_a_node_shutting_down_has_its_resources_moved_first() -> None:
    c = started(Cluster(CIB, NODES))
    c.handle("n1", c.ctl["n1"].set_node_attribute("shutdown", "1", c.now, c.wall))
    c.run()
    assert c.where("ip") and c.where("ip") != ["n1"]
    assert c.ctl["n1"].local_running() == []


def test_a_node_attribute_change_is_an_event_of_the_dc_once_per_change() -> None:
    c = started(Cluster(CIB, NODES, operation_edit=_operations()))
    changes = [("n2", "pingd", "100"), ("n2", "pingd", "100"), ("n2", "pingd", None)]
    for node, name, value in changes:  # the second is no change: no event
        c.handle(node, c.ctl[node].set_node_attribute(name, value, c.now, c.wall))
        c.run()
    # the same through an operator's request (crm_attribute --lifetime reboot)
    reply = c.request(
        "n3",
        {
            "op": "node-attribute",
            "node": "n3",
            "name": "bond-bond0-degraded",
            "value": "1",
            "lifetime": "reboot",
        },
        "attr",
    )
    assert reply.get("ok"), reply
    c.run()
    seen = [
        (e.fields["node"], e.fields["name"], e.fields["previous"], e.fields["value"])
        for _, e in c.events
        if e.name == "attribute-changed"
    ]
    assert seen == [
        ("n2", "pingd", None, "100"),
        ("n2", "pingd", "100", None),
        ("n3", "bond-bond0-degraded", None, "1"),
    ]
    tellers = {node for node, e in c.events if e.name == "attribute-changed"}
    assert tellers == {n for n in NODES if c.ctl[n].view.is_dc}  # the DC alone tells


def test_a_node_that_loses_quorum_stops_what_it_runs_unless_told_otherwise() -> None:
    c = started(Cluster(CIB, NODES))
    # n1 is cut off: the others keep quorum and a DC, n1 alone has neither
    c.set_membership("n2", 2, ["n2", "n3"])
    c.view["n1"] = MembershipView(None, 2, False, ("n1",), False)
    c.handle("n1", c.ctl["n1"].membership_changed(c.view["n1"], c.now, c.wall))
    c.run()
    assert "n1" not in c.where("ip") and "n1" not in c.where("srv")
    assert len(c.where("ip")) == 1  # started on the quorate side
    assert any(log.event == "crm-no-quorum" for node, log in c.logs if node == "n1")


def test_no_quorum_policy_ignore_keeps_resources_running() -> None:
    cib = CIB.replace(
        b'value="false"/>',
        b'value="false"/><nvpair id="o2" name="no-quorum-policy" value="ignore"/>',
        1,
    )
    c = started(Cluster(cib, NODES))
    c.view["n1"] = MembershipView(None, 2, False, ("n1",), False)
    c.handle("n1", c.ctl["n1"].membership_changed(c.view["n1"], c.now, c.wall))
    c.run()
    assert "n1" in c.where("ip")


def test_a_failure_timeout_brings_the_resource_back_without_any_other_event() -> None:
    cib = CIB.replace(
        b'<nvpair id="rd-s" name="resource-stickiness"',
        b'<nvpair id="rd-ft" name="failure-timeout" value="60s"/>'
        b'<nvpair id="rd-s" name="resource-stickiness"',
    )
    assert cib != CIB
    c = Cluster(cib, NODES)
    c.fake["n1"].fail_starts.add("srv")
    started(c)
    assert c.where("srv") != ["n1"]
    c.fake["n1"].fail_starts.clear()
    c.tick(30.0)
    assert c.where("srv") != ["n1"]  # not yet: the failure still counts
    c.tick(32.0)  # past last-failure + 60 s: the recheck timer ran the scheduler again
    assert c.where("srv") == ["n1"] and c.where("ip") == ["n1"]


def test_events_carry_the_previous_state_for_the_hooks() -> None:
    c = started(Cluster(CIB, NODES))
    starts = [e for _, e in c.events if e.name == "resource-started"]
    assert starts and all(e.fields["previous"] == "Stopped" for e in starts)
    c.fake["n1"].running.pop("srv")
    c.monitor_now("n1")
    (failed,) = [e for _, e in c.events if e.name == "resource-failed"]
    assert failed.fields["previous"] == "Started" and failed.fields["resource"] == "srv"
    # every event the controller emits is one the history and the hooks accept
    from hastack.crm.events import ClusterEvent

    for seq, (_, e) in enumerate(c.events, start=1):
        ClusterEvent.from_fields(seq, 1.0, e.name, e.fields)


def test_a_member_runs_only_the_orders_of_the_dc_tenure_whose_join_it_answered() -> None:
    ctl = Controller("n2", {"n1": "1", "n2": "2"}, CIB)
    ctl.membership_changed(MembershipView("n1", 1, False, ("n1", "n2"), True), 1.0, 1.0)
    spec = AgentCallSpec("ip", "ocf:heartbeat:IPaddr2", "start", 0, 20000, {"ip": "10.9.0.10"})

    def message(**fields: Any) -> bytes:
        return json.dumps(fields).encode()

    def exec_of(tenure: int) -> bytes:
        return message(t="exec", term=1, tenure=tenure, tid=4, call=spec.to_json(), expected=0)

    ctl.receive("n1", message(t="join", term=1, tenure=1, version=[0, 5, 0]), 1.0, 1.0)
    # the DC lost its lease and won it back in the same term: a second tenure, a second join
    ctl.receive("n1", message(t="join", term=1, tenure=2, version=[0, 5, 0]), 1.1, 1.1)
    late = ctl.receive("n1", exec_of(1), 1.2, 1.2)  # the first tenure's order, delayed
    assert not [e for e in late if isinstance(e, RunAgent)]
    assert any(getattr(e, "event", "") == "crm-stale-order" for e in late)
    current = ctl.receive("n1", exec_of(2), 1.3, 1.3)
    assert [e.spec.action for e in current if isinstance(e, RunAgent)] == ["start"]


def test_an_action_in_flight_is_reported_pending_at_a_join() -> None:
    ctl = Controller("n2", {"n1": "1", "n2": "2"}, CIB)
    ctl.membership_changed(MembershipView("n1", 1, False, ("n1", "n2"), True), 1.0, 1.0)
    spec = AgentCallSpec("ip", "ocf:heartbeat:IPaddr2", "start", 0, 20000, {"ip": "10.9.0.10"})
    join = {"t": "join", "term": 1, "tenure": 1, "version": [0, 5, 0]}
    ctl.receive("n1", json.dumps(join).encode(), 1.0, 1.0)
    order = {"t": "exec", "term": 1, "tenure": 1, "tid": 3, "call": spec.to_json(), "expected": 0}
    ctl.receive("n1", json.dumps(order).encode(), 1.0, 1.0)

    def history_at_join(tenure: int) -> list[dict[str, Any]]:
        answer = ctl.receive("n1", json.dumps({**join, "tenure": tenure}).encode(), 2.0, 2.0)
        (ack,) = [json.loads(e.payload) for e in answer if isinstance(e, SendMessage)]
        return ack["history"]

    (ip,) = history_at_join(2)
    assert ip["rsc"] == "ip" and ip["agent"] == ["ocf", "heartbeat", "IPaddr2"]
    (op,) = ip["ops"]
    assert op["operation"] == "start" and op["op-status"] == "-1" and op["call-id"] == "-1"
    # a new DC counts a pending start as a start: the resource is active there
    state = resource_states(read_cib(_with_status(ctl, op), "<test>"))
    assert [(r.node, r.role.name, r.pending) for r in state.of("ip")] == [
        ("n2", "STARTED", "start")
    ]
    # once it ends, its result replaces the pending entry
    result = dict(op, **{"call-id": "7", "rc-code": "0", "op-status": "0"})
    ctl.op_completed(result, "ocf:heartbeat:IPaddr2", ("tx", 1, 3, 0, ""), 3.0, 3.0)
    (ip,) = history_at_join(3)
    assert [o["op-status"] for o in ip["ops"]] == ["0"]


def _with_status(ctl: Controller, op: Mapping[str, str]) -> bytes:
    """The configuration with a status section holding one reported operation on n2."""
    attrs = " ".join(
        f'{k}="{v}"'
        for k, v in op.items()
        if k in ("operation_key", "operation", "interval", "call-id", "rc-code", "op-status")
    )
    status = (
        '<status><node_state id="2" uname="n2" in_ccm="true" crmd="online" join="member" '
        'expected="member"><lrm id="2"><lrm_resources><lrm_resource id="ip" class="ocf" '
        f'provider="heartbeat" type="IPaddr2"><lrm_rsc_op id="ip_last_0" {attrs} '
        'transition-key="3:1:0:hastack"/></lrm_resource></lrm_resources></lrm></node_state>'
        "</status>"
    )
    return ctl.cib_document.replace(b"<status/>", status.encode())


def test_a_start_in_flight_when_the_dc_starts_a_new_tenure_is_not_made_elsewhere() -> None:
    sticky = CIB.replace(
        b'name="resource-stickiness"\n      value="0"',
        b'name="resource-stickiness"\n      value="200"',
    )
    c = started(Cluster(sticky, NODES, operation_edit=_operations()))
    c.crash("n1")
    c.set_membership("n2", 2, ["n2", "n3"])
    c.deliver()  # the DC orders the group's start on a survivor; that start is held
    (target, start), *_ = [(n, run) for n, run in c.agent_queue if run.spec.action == "start"]
    assert start.spec.resource == "ip"
    c.agent_queue.clear()
    # meanwhile a preference for the other survivor, weaker than stickiness: it would
    # decide where the group goes if the DC forgot the start in progress
    other = "n3" if target == "n2" else "n2"
    location = {"op": "constraint-location", "resource": "web", "node": other, "score": "100"}
    assert c.request("n2", location, "l").get("ok")
    ran_before = {n: len(c.fake[n].ran) for n in NODES}
    # the DC loses its lease and wins it back in the same term: it asks who runs what again,
    # and learns that the start is pending there
    c.set_membership(None, 2, ["n2", "n3"])
    c.set_membership("n2", 2, ["n2", "n3"])
    c.run()
    since = {n: [r[:2] for r in c.fake[n].ran[ran_before[n] :]] for n in NODES}
    # ordered again where it is pending (a start is idempotent, as Pacemaker does), and
    # nowhere else; the group's next member only after it
    assert [n for n in NODES if ("ip", "start") in since[n]] == [target]
    assert since[target].index(("ip", "start")) < since[target].index(("srv", "start"))
    c.finish(target, start)  # the held start ends: the DC schedules again, nothing moves
    c.run()
    assert c.where("ip") == [target] and c.where("srv") == [target]


def test_quorum_lost_for_less_than_the_grace_stops_nothing() -> None:
    ctl = Controller("n2", {"n1": "1", "n2": "2", "n3": "3"}, CIB, quorum_grace=0.2)
    quorate = MembershipView("n1", 1, False, ("n1", "n2", "n3"), True)
    ctl.membership_changed(quorate, 1.0, 1.0)
    ctl.history["ip"] = {"ip_last_0": {"operation": "start", "rc-code": "0", "op-status": "0"}}
    ctl.specs["ip"] = AgentCallSpec("ip", "ocf:heartbeat:IPaddr2", "start", 0, 20000)
    lost = replace(quorate, quorate=False)
    assert not [e for e in ctl.membership_changed(lost, 2.0, 2.0) if isinstance(e, RunAgent)]
    assert ctl.next_deadline() == 2.2
    back = ctl.membership_changed(quorate, 2.1, 2.1)
    assert not [e for e in back if isinstance(e, RunAgent)]
    assert any(getattr(e, "event", "") == "crm-quorum-back" for e in back)
    assert not [e for e in ctl.tick(2.5, 2.5) if isinstance(e, RunAgent)]
    # lost for longer: the stop comes at the end of the grace, from the tick
    ctl.membership_changed(lost, 3.0, 3.0)
    assert not [e for e in ctl.tick(3.1, 3.1) if isinstance(e, RunAgent)]
    stops = [e for e in ctl.tick(3.2, 3.2) if isinstance(e, RunAgent)]
    assert [(e.spec.resource, e.spec.action, e.tag) for e in stops] == [
        ("ip", "stop", ("quorum", "ip"))
    ]


def test_the_first_result_of_each_order_of_a_recurring_monitor_reaches_the_dc() -> None:
    """A DC that re-runs a transition orders a monitor again while the first order's run is
    still going: that run's rc 0 must not swallow the second order's first rc 0 (the DC waits
    for it), while an unchanged result of a later run of the same order is not news."""
    ctl = Controller("n2", {"n1": "1", "n2": "2"}, CIB)
    ctl.membership_changed(MembershipView("n1", 1, False, ("n1", "n2"), True), 1.0, 1.0)
    join = {"t": "join", "term": 1, "tenure": 1, "version": [0, 5, 0]}
    ctl.receive("n1", json.dumps(join).encode(), 1.0, 1.0)
    monitor = {
        "operation_key": "ip_monitor_10000",
        "operation": "monitor",
        "interval": "10000",
        "call-id": "5",
        "rc-code": "0",
        "op-status": "0",
    }

    def results(tag: object, now: float) -> list[dict[str, Any]]:
        effects = ctl.op_completed(monitor, "ocf:heartbeat:IPaddr2", tag, now, now)
        sent = [json.loads(e.payload) for e in effects if isinstance(e, SendMessage)]
        return [m for m in sent if m.get("t") == "result"]

    (first,) = results(("tx", 1, 3, 0, ""), 2.0)
    assert first["report"]["transition"] == "3"
    assert results(None, 12.0) == []  # the same order's next run, unchanged
    (second,) = results(("tx", 1, 4, 0, ""), 12.5)  # the new order's first result
    assert second["report"]["transition"] == "4"
    assert results(None, 22.5) == []
