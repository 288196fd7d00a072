"""The controller cores of a small cluster, driven by the harness: joins, transitions,
failover, failures, operator requests and deposed DCs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from lxml import etree

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
    for junk in (b"", b"{", b"[]", b'{"t": 5}', b'{"t": "exec", "term": 1}'):
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
