"""Unit tests of place(): one small hand-written CIB per rule of Pacemaker's score model."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.crm.cib.model import INFINITY
from hastack.crm.cib.xml import read_cib
from hastack.crm.constraints import colocations, orderings
from hastack.crm.placement import Placement, PlacementUnsupported, add_scores, place
from hastack.crm.state import resource_states

_UP = 'in_ccm="true" crmd="online" join="member" expected="member"'


def _prim(rid: str, meta: str = "", body: str = "") -> str:
    metas = ""
    if meta:
        pairs = "".join(
            f'<nvpair id="{rid}-{name}" name="{name}" value="{value}"/>'
            for name, value in (item.split("=", 1) for item in meta.split())
        )
        metas = f'<meta_attributes id="{rid}-meta">{pairs}</meta_attributes>'
    return (
        f'<primitive id="{rid}" class="ocf" provider="pacemaker" type="Dummy">'
        f"{metas}{body}</primitive>"
    )


def _running(rid: str, call: int = 3) -> str:
    return (
        f'<lrm_resource id="{rid}" class="ocf" provider="pacemaker" type="Dummy">'
        f'<lrm_rsc_op id="{rid}_last_0" operation_key="{rid}_start_0" operation="start" '
        f'interval="0" call-id="{call}" rc-code="0" op-status="0" '
        f'transition-key="1:1:0:abc" last-rc-change="1000"/></lrm_resource>'
    )


def _cib(resources: str, constraints: str = "", **kw: Any) -> Placement:
    """A CIB with ``nodes`` nodes (node1...), placed (see _cib_xml for the arguments)."""
    cib = read_cib(_cib_xml(resources, constraints, **kw).encode(), source="test.xml")
    return place(cib, resource_states(cib, now=2000.0), now=2000.0)


def _cib_xml(
    resources: str,
    constraints: str = "",
    *,
    nodes: int = 3,
    options: str = "",
    running: dict[str, list[str]] | None = None,
    node_attrs: dict[str, str] | None = None,
    transient: dict[str, str] | None = None,
    states: dict[str, str] | None = None,
    rsc_defaults: str = "",
    quorum: bool = True,
    fencing: bool = False,
    tags: str = "",
    feature_set: str = "3.16.2",
    history: dict[str, str] | None = None,
) -> str:
    """The XML of a CIB with ``nodes`` nodes (node1...): ``running`` names what was started
    on each node, ``history`` adds raw ``lrm_resource`` elements (failures, promotions)."""
    fence = "true" if fencing else "false"
    opts = f'<nvpair id="o-stonith" name="stonith-enabled" value="{fence}"/>' + options
    node_xml = "".join(
        f'<node id="{i}" uname="node{i}">{(node_attrs or {}).get(f"node{i}", "")}</node>'
        for i in range(1, nodes + 1)
    )
    status = ""
    for i in range(1, nodes + 1):
        name = f"node{i}"
        lrm = "".join(_running(r) for r in (running or {}).get(name, []))
        lrm += (history or {}).get(name, "")
        attrs = (transient or {}).get(name, "")
        if attrs:
            attrs = (
                f'<transient_attributes id="{i}"><instance_attributes id="st-{i}">{attrs}'
                "</instance_attributes></transient_attributes>"
            )
        state = (states or {}).get(name, _UP)
        status += (
            f'<node_state id="{i}" uname="{name}" {state}>{attrs}'
            f'<lrm id="{i}"><lrm_resources>{lrm}</lrm_resources></lrm></node_state>'
        )
    defaults = ""
    if rsc_defaults:
        defaults = f'<rsc_defaults><meta_attributes id="rd">{rsc_defaults}</meta_attributes>'
        defaults += "</rsc_defaults>"
    xml = f"""<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0"
  have-quorum="{1 if quorum else 0}" crm_feature_set="{feature_set}">
<configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">{opts}</cluster_property_set>
</crm_config>
<nodes>{node_xml}</nodes>
<resources>{resources}</resources>
<constraints>{constraints}</constraints>
{defaults}{tags}
</configuration>
<status>{status}</status>
</cib>"""
    return xml


def _loc(rsc: str, node: str, score: str, cid: str | None = None) -> str:
    return (
        f'<rsc_location id="{cid or f"l-{rsc}-{node}"}" rsc="{rsc}" node="{node}" score="{score}"/>'
    )


# --- scores ---------------------------------------------------------------------------------


def test_infinity_arithmetic_minus_infinity_wins() -> None:
    assert add_scores(INFINITY, -INFINITY) == -INFINITY
    assert add_scores(-INFINITY, INFINITY) == -INFINITY
    assert add_scores(INFINITY, 5) == INFINITY
    assert add_scores(999_999, 5) == INFINITY
    assert add_scores(-999_999, -5) == -INFINITY
    assert add_scores(7, -3) == 4


def test_location_score_decides_and_parts_name_the_constraint() -> None:
    p = _cib(_prim("rsc1"), _loc("rsc1", "node2", "50", "prefer-2"))
    assert p.assigned["rsc1"] == "node2"
    assert p.final["rsc1"] == ("node2",)
    assert ("location prefer-2", 50) in p.scores["rsc1"]["node2"]
    assert p.totals["rsc1"] == {"node1": 0, "node2": 50, "node3": 0}


def test_plus_and_minus_infinity_on_one_node_is_a_ban() -> None:
    constraints = _loc("rsc1", "node1", "INFINITY", "a") + _loc("rsc1", "node1", "-INFINITY", "b")
    p = _cib(_prim("rsc1"), constraints)
    assert p.totals["rsc1"]["node1"] == -INFINITY
    assert p.assigned["rsc1"] == "node2"


def test_equal_scores_spread_resources_then_lowest_name() -> None:
    p = _cib(_prim("a") + _prim("b") + _prim("c") + _prim("d"))
    assert [p.assigned[r] for r in "abcd"] == ["node1", "node2", "node3", "node1"]


def test_equal_scores_keep_a_running_resource_where_it_is() -> None:
    p = _cib(_prim("a") + _prim("b"), running={"node2": ["a"]})
    assert p.assigned["a"] == "node2"
    assert p.assigned["b"] == "node1"


def test_stickiness_from_rsc_defaults_keeps_it_against_a_smaller_preference() -> None:
    resources = _prim("rsc1")
    constraints = _loc("rsc1", "node1", "50")
    stick = '<nvpair id="rd-s" name="resource-stickiness" value="100"/>'
    p = _cib(resources, constraints, running={"node2": ["rsc1"]}, rsc_defaults=stick)
    assert p.assigned["rsc1"] == "node2"
    assert ("resource-stickiness", 100) in p.scores["rsc1"]["node2"]
    # ... and its own meta-attribute wins over the default.
    p = _cib(
        _prim("rsc1", "resource-stickiness=10"),
        constraints,
        running={"node2": ["rsc1"]},
        rsc_defaults=stick,
    )
    assert p.assigned["rsc1"] == "node1"


def test_asymmetric_cluster_runs_only_where_allowed() -> None:
    opts = '<nvpair id="o-sym" name="symmetric-cluster" value="false"/>'
    p = _cib(_prim("rsc1") + _prim("rsc2"), _loc("rsc1", "node3", "10"), options=opts)
    assert p.assigned["rsc1"] == "node3"
    assert p.assigned["rsc2"] is None
    assert p.final["rsc2"] == ()
    assert p.totals["rsc1"] == {"node3": 10}


def test_nodes_that_cannot_run_resources_are_never_chosen() -> None:
    standby = '<instance_attributes id="n1a"><nvpair id="n1s" name="standby" value="on"/>'
    standby += "</instance_attributes>"
    p = _cib(
        _prim("rsc1"),
        _loc("rsc1", "node1", "INFINITY") + _loc("rsc1", "node2", "100"),
        node_attrs={"node1": standby},
        states={"node2": 'in_ccm="false" crmd="offline" join="down" expected="down"'},
    )
    assert p.assigned["rsc1"] == "node3"


def test_location_rule_with_node_attribute_and_score_attribute() -> None:
    attrs = {
        "node2": '<instance_attributes id="a2"><nvpair id="a2r" name="rack" value="2"/>'
        '<nvpair id="a2w" name="weight" value="70"/></instance_attributes>',
        "node3": '<instance_attributes id="a3"><nvpair id="a3r" name="rack" value="2"/>'
        '<nvpair id="a3w" name="weight" value="30"/></instance_attributes>',
    }
    rule = (
        '<rsc_location id="by-rack" rsc="rsc1"><rule id="r1" score-attribute="weight">'
        '<expression id="e1" attribute="rack" operation="eq" value="2"/></rule></rsc_location>'
    )
    p = _cib(_prim("rsc1"), rule, node_attrs=attrs)
    assert p.totals["rsc1"] == {"node1": 0, "node2": 70, "node3": 30}
    assert p.assigned["rsc1"] == "node2"


def test_rsc_pattern_and_tag_reach_their_resources() -> None:
    constraints = (
        '<rsc_location id="pat" rsc-pattern="^web" node="node2" score="INFINITY"/>'
        '<rsc_location id="tagged" rsc="dbs" node="node3" score="INFINITY"/>'
    )
    resources = _prim("web1") + _prim("web2") + _prim("db1")
    p = _cib(resources, constraints, tags='<tags><tag id="dbs"><obj_ref id="db1"/></tag></tags>')
    assert p.assigned["web1"] == p.assigned["web2"] == "node2"
    assert p.assigned["db1"] == "node3"


def test_target_role_stopped_and_unmanaged() -> None:
    p = _cib(_prim("off", "target-role=Stopped"), running={"node1": ["off"]})
    assert p.assigned["off"] is None
    assert p.final["off"] == ()
    assert "target-role" in p.reasons["off"]
    p = _cib(
        _prim("frozen", "is-managed=false"),
        _loc("frozen", "node3", "INFINITY"),
        running={"node1": ["frozen"]},
    )
    assert p.final["frozen"] == ("node1",)


def test_migration_threshold_bans_the_node_with_enough_failures() -> None:
    fails = '<nvpair id="fc" name="fail-count-rsc1#monitor_10000" value="3"/>'
    p = _cib(
        _prim("rsc1", "migration-threshold=3"),
        _loc("rsc1", "node1", "100"),
        running={"node1": ["rsc1"]},
        transient={"node1": fails},
    )
    assert p.totals["rsc1"]["node1"] == -INFINITY
    assert p.assigned["rsc1"] != "node1"
    # Below the threshold it stays.
    p = _cib(
        _prim("rsc1", "migration-threshold=4"),
        _loc("rsc1", "node1", "100"),
        running={"node1": ["rsc1"]},
        transient={"node1": fails},
    )
    assert p.assigned["rsc1"] == "node1"


def test_old_cibs_count_only_legacy_fail_count_names() -> None:
    fails = (
        '<nvpair id="fc1" name="fail-count-rsc1" value="INFINITY"/>'
        '<nvpair id="fc2" name="fail-count-rsc2#start_0" value="INFINITY"/>'
    )
    res = _prim("rsc1") + _prim("rsc2")
    cons = _loc("rsc1", "node1", "100") + _loc("rsc2", "node1", "100")
    old = _cib(res, cons, transient={"node1": fails}, feature_set="3.0.7")
    assert (old.assigned["rsc1"], old.assigned["rsc2"]) == ("node2", "node1")
    new = _cib(res, cons, transient={"node1": fails})
    assert (new.assigned["rsc1"], new.assigned["rsc2"]) == ("node1", "node2")


def test_failure_timeout_expires_the_fail_count() -> None:
    fails = (
        '<nvpair id="fc" name="fail-count-rsc1#monitor_10000" value="INFINITY"/>'
        '<nvpair id="lf" name="last-failure-rsc1#monitor_10000" value="1000"/>'
    )
    p = _cib(
        _prim("rsc1", "failure-timeout=60"),
        _loc("rsc1", "node1", "100"),
        transient={"node1": fails},
    )
    assert p.assigned["rsc1"] == "node1"  # 1000 + 60 <= now (2000)
    p = _cib(
        _prim("rsc1", "failure-timeout=6000"),
        _loc("rsc1", "node1", "100"),
        transient={"node1": fails},
    )
    assert p.assigned["rsc1"] == "node2"  # not expired yet


# --- colocation -----------------------------------------------------------------------------


def _col(rsc: str, with_rsc: str, score: str, cid: str = "c1") -> str:
    return f'<rsc_colocation id="{cid}" rsc="{rsc}" with-rsc="{with_rsc}" score="{score}"/>'


def test_mandatory_colocation_follows_the_primary() -> None:
    p = _cib(_prim("a") + _prim("b"), _loc("a", "node3", "10") + _col("b", "a", "INFINITY"))
    assert p.assigned["a"] == p.assigned["b"] == "node3"
    assert p.totals["b"]["node1"] == -INFINITY


def test_dependent_cannot_run_when_primary_cannot() -> None:
    p = _cib(_prim("a", "target-role=Stopped") + _prim("b"), _col("b", "a", "INFINITY"))
    assert p.assigned["b"] is None


def test_optional_colocation_with_a_stopped_primary_counts_against_every_node() -> None:
    p = _cib(
        _prim("a", "target-role=Stopped") + _prim("b"),
        _loc("b", "node2", "80") + _col("b", "a", "50", "want-a"),
    )
    assert p.totals["b"] == {"node1": -50, "node2": 30, "node3": -50}
    assert ("colocation want-a with a", -50) in p.scores["b"]["node1"]
    assert p.assigned["b"] == "node2"
    # ... unless that leaves no node: then it is rolled back.
    p = _cib(_prim("a", "target-role=Stopped") + _prim("b"), _col("b", "a", "50"))
    assert p.totals["b"] == {"node1": 0, "node2": 0, "node3": 0}


def test_anti_colocation_keeps_them_apart_and_ignores_a_stopped_primary() -> None:
    p = _cib(_prim("a") + _prim("b"), _loc("a", "node1", "10") + _col("b", "a", "-INFINITY"))
    assert p.assigned["a"] == "node1"
    assert p.assigned["b"] != "node1"
    p = _cib(_prim("a", "target-role=Stopped") + _prim("b"), _col("b", "a", "-INFINITY"))
    assert p.assigned["b"] == "node1"


def test_dependent_preferences_pull_the_primary() -> None:
    # b must be with a; b prefers node2 strongly, a has no preference: a goes to node2.
    p = _cib(_prim("a") + _prim("b"), _loc("b", "node2", "500") + _col("b", "a", "INFINITY"))
    assert p.totals["a"]["node2"] == 500
    assert p.assigned["a"] == p.assigned["b"] == "node2"


def test_optional_colocation_adds_its_score_where_the_primary_is() -> None:
    p = _cib(
        _prim("a") + _prim("b"),
        _loc("a", "node1", "100") + _loc("b", "node2", "60") + _col("b", "a", "50"),
    )
    assert p.totals["b"] == {"node1": 50, "node2": 60, "node3": 0}
    assert p.assigned["b"] == "node2"


def test_colocation_sets_chain_and_between_sets() -> None:
    cons = (
        '<rsc_colocation id="cs" score="INFINITY">'
        '<resource_set id="s1"><resource_ref id="a"/><resource_ref id="b"/></resource_set>'
        '<resource_set id="s2"><resource_ref id="c"/><resource_ref id="d"/></resource_set>'
        "</rsc_colocation>"
    )
    resources = _prim("a") + _prim("b") + _prim("c") + _prim("d")
    xml = (
        '<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0">'
        f"<configuration><crm_config/><nodes/><resources>{resources}</resources>"
        f"<constraints>{cons}</constraints></configuration><status/></cib>"
    )
    pairs = {(c.dependent, c.primary) for c in colocations(read_cib(xml.encode()))}
    assert pairs == {("b", "a"), ("d", "c"), ("a", "d")}
    p = _cib(resources, cons + _loc("d", "node3", "1"))
    assert {p.assigned[r] for r in "abcd"} == {"node3"}


# --- groups ---------------------------------------------------------------------------------


def _group(gid: str, *members: str, meta: str = "") -> str:
    return f'<group id="{gid}">{meta}{"".join(_prim(m) for m in members)}</group>'


def test_group_members_run_together_where_the_group_is_preferred() -> None:
    p = _cib(_group("g", "m1", "m2", "m3"), _loc("g", "node2", "100"))
    assert [p.assigned[m] for m in ("m1", "m2", "m3")] == ["node2"] * 3
    assert p.groups["g"] == "node2"
    assert p.node_of("g") == "node2"
    # The group's location counts once, on its first member.
    assert p.totals["m1"]["node2"] == 100
    assert p.totals["m2"]["node2"] == 0


def test_group_stickiness_adds_up_on_the_first_member() -> None:
    stick = '<nvpair id="rd-s" name="resource-stickiness" value="100"/>'
    p = _cib(
        _group("g", "m1", "m2", "m3"),
        _loc("g", "node1", "250"),
        running={"node2": ["m1", "m2", "m3"]},
        rsc_defaults=stick,
    )
    assert p.totals["m1"]["node2"] == 300
    assert p.groups["g"] == "node2"


def test_a_member_that_cannot_run_stops_the_members_after_it() -> None:
    resources = '<group id="g">' + _prim("m1") + _prim("m2", "target-role=Stopped")
    resources += _prim("m3") + "</group>"
    p = _cib(resources)
    assert p.final["m1"] == ("node1",)
    assert p.final["m2"] == ()
    assert p.final["m3"] == ()


def test_colocation_with_a_group_follows_it() -> None:
    p = _cib(
        _group("g", "m1", "m2") + _prim("x"),
        _loc("g", "node3", "10") + _col("x", "g", "INFINITY"),
    )
    assert p.assigned["x"] == "node3"


# --- what the transition leaves -------------------------------------------------------------


def test_mandatory_order_blocks_the_start_of_then() -> None:
    order = '<rsc_order id="o1" first="a" then="b" kind="Mandatory"/>'
    p = _cib(_prim("a", "target-role=Stopped") + _prim("b"), order)
    assert p.assigned["b"] == "node1"  # placed, but its start waits for a, which cannot start
    assert p.final["b"] == ()
    assert "a cannot start" in p.reasons["b"]
    # An optional order does not.
    p = _cib(_prim("a", "target-role=Stopped") + _prim("b"), order.replace("Mandatory", "Optional"))
    assert p.final["b"] == ("node1",)


def test_running_then_stops_with_a_symmetrical_order_but_not_an_asymmetrical_one() -> None:
    order = '<rsc_order id="o1" first="a" then="b" {sym}/>'
    res = _prim("a", "target-role=Stopped") + _prim("b")
    p = _cib(res, order.format(sym=""), running={"node1": ["a", "b"]})
    assert p.final["b"] == ()
    p = _cib(res, order.format(sym='symmetrical="false"'), running={"node1": ["a", "b"]})
    assert p.final["b"] == ("node1",)


def test_order_sets_with_require_all_false_need_one_of_the_set() -> None:
    order = (
        '<rsc_order id="o"><resource_set id="s1" sequential="false" require-all="false">'
        '<resource_ref id="a"/><resource_ref id="b"/></resource_set>'
        '<resource_set id="s2"><resource_ref id="c"/></resource_set></rsc_order>'
    )
    res = _prim("a", "target-role=Stopped") + _prim("b") + _prim("c")
    assert _cib(res, order).final["c"] != ()
    res = _prim("a", "target-role=Stopped") + _prim("b", "target-role=Stopped") + _prim("c")
    assert _cib(res, order).final["c"] == ()


def test_no_quorum_policies() -> None:
    res = _prim("a") + _prim("b")
    running = {"node1": ["a"]}
    stop = _cib(res, running=running, quorum=False)
    assert stop.final == {"a": (), "b": ()}
    opts = '<nvpair id="o-nq" name="no-quorum-policy" value="freeze"/>'
    freeze = _cib(res, running=running, quorum=False, options=opts)
    assert freeze.final == {"a": ("node1",), "b": ()}
    opts = '<nvpair id="o-nq" name="no-quorum-policy" value="ignore"/>'
    ignore = _cib(res, running=running, quorum=False, options=opts)
    assert ignore.final["b"] != ()


def test_unclean_node_is_fenced_only_when_a_device_exists() -> None:
    lost = 'in_ccm="false" crmd="offline" join="down" expected="member"'
    stonith = '<primitive id="fence" class="stonith" type="fence_dummy"/>'
    # Fenced: what ran there is gone, and it starts elsewhere.
    p = _cib(stonith + _prim("a"), running={"node1": ["a"]}, states={"node1": lost}, fencing=True)
    assert p.final["a"] in (("node2",), ("node3",))
    # No device: the node cannot be fenced, so "a" cannot be stopped there, nor moved.
    p = _cib(_prim("a"), running={"node1": ["a"]}, states={"node1": lost}, fencing=True)
    assert p.final["a"] == ("node1",)
    assert "unclean" in p.reasons["a"]


def test_utilization_bans_nodes_without_capacity() -> None:
    cap = '<utilization id="u{n}"><nvpair id="u{n}c" name="cpu" value="{v}"/></utilization>'
    attrs = {"node1": cap.format(n=1, v=1), "node2": cap.format(n=2, v=4)}
    big = _prim(
        "big", body='<utilization id="ub"><nvpair id="ubc" name="cpu" value="2"/></utilization>'
    )
    opts = '<nvpair id="o-ps" name="placement-strategy" value="utilization"/>'
    p = _cib(big, _loc("big", "node1", "100"), nodes=2, node_attrs=attrs, options=opts)
    assert p.assigned["big"] == "node2"
    assert ("not enough capacity (placement-strategy)", -INFINITY) in p.scores["big"]["node1"]
    # The default strategy ignores utilization.
    p = _cib(big, _loc("big", "node1", "100"), nodes=2, node_attrs=attrs)
    assert p.assigned["big"] == "node1"


def test_priority_decides_who_gets_the_only_node() -> None:
    res = _prim("low", "priority=1") + _prim("high", "priority=10")
    p = _cib(res, _col("low", "high", "-INFINITY"), nodes=1)
    assert p.order == ("high", "low")
    assert p.final == {"high": ("node1",), "low": ()}


def test_out_of_scope_features_are_refused_with_the_element() -> None:
    remote = '<primitive id="r1" class="ocf" provider="pacemaker" type="remote"/>'
    with pytest.raises(PlacementUnsupported) as err:
        _cib(_prim("a") + remote, "")
    assert err.value.element_id == "r1"
    assert "remote" in str(err.value)


def test_a_resource_whose_ticket_is_not_granted_runs_nowhere() -> None:
    cons = '<rsc_ticket id="t1" ticket="T" rsc="a"/>' + _loc("a", "node1", "100")
    p = _cib(_prim("a"), cons)
    assert p.final["a"] == ()
    assert any("rsc_ticket t1" in what for what, _ in p.scores["a"]["node1"])


def test_orderings_unpack_kinds_and_sets() -> None:
    resources = _prim("a") + _prim("b") + _prim("c")
    cons = (
        '<rsc_order id="o1" first="a" then="b" kind="Optional"/>'
        '<rsc_order id="o2" first="a" then="c" score="0"/>'
        '<rsc_order id="o3" first="b" then="c" then-action="promote"/>'
        '<rsc_order id="o4"><resource_set id="s"><resource_ref id="a"/><resource_ref id="b"/>'
        '<resource_ref id="c"/></resource_set></rsc_order>'
    )
    xml = (
        '<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0">'
        f"<configuration><crm_config/><nodes/><resources>{resources}</resources>"
        f"<constraints>{cons}</constraints></configuration><status/></cib>"
    )
    found = [
        (o.id, o.first, o.then, o.then_action, o.mandatory)
        for o in orderings(read_cib(xml.encode()))
    ]
    assert found == [
        ("o1", "a", "b", "start", False),
        ("o2", "a", "c", "start", False),
        ("o3", "b", "c", "promote", True),
        ("s", "a", "b", "start", True),
        ("s", "b", "c", "start", True),
    ]


# --- properties over generated configurations -----------------------------------------------

_SCORES = st.sampled_from(["-INFINITY", "-100", "-10", "0", "10", "100", "INFINITY"])


@st.composite
def _configs(draw: st.DrawFn) -> tuple[str, str, dict[str, list[str]]]:
    """Resources (some in a group), location and colocation constraints, and where some of
    them run now."""
    n = draw(st.integers(1, 6))
    ids = [f"r{i}" for i in range(n)]
    grouped = draw(st.integers(0, n))
    resources = "".join(_prim(r, "resource-stickiness=50") for r in ids[grouped:])
    if grouped:
        resources += '<group id="g">' + "".join(_prim(r) for r in ids[:grouped]) + "</group>"
    constraints = ""
    for i in range(draw(st.integers(0, 6))):
        rsc = draw(st.sampled_from([*ids, "g"] if grouped else ids))
        node = draw(st.sampled_from(["node1", "node2", "node3"]))
        constraints += _loc(rsc, node, draw(_SCORES), f"l{i}")
    # Colocations only from a later resource to an earlier one (as a group's are), so there
    # is no loop: Pacemaker breaks loops arbitrarily and then violates one of them.
    for i in range(draw(st.integers(0, 4 if n > 1 else 0))):
        later = draw(st.integers(1, n - 1))
        earlier = draw(st.integers(0, later - 1))
        constraints += _col(ids[later], ids[earlier], draw(_SCORES), f"c{i}")
    running: dict[str, list[str]] = {}
    for r in ids:
        node = draw(st.sampled_from([None, "node1", "node2", "node3"]))
        if node is not None:
            running.setdefault(node, []).append(r)
    return resources, constraints, running


@settings(max_examples=60, deadline=None)
@given(_configs())
def test_placement_properties(config: tuple[str, str, dict[str, list[str]]]) -> None:
    resources, constraints, running = config
    p = _cib(resources, constraints, running=running)
    again = _cib(resources, constraints, running=running)
    assert p == again  # deterministic
    for rsc, node in p.assigned.items():
        if node is not None:
            assert p.totals[rsc][node] >= 0, (rsc, node, p.totals[rsc])
    # Mandatory colocations hold between what is placed; anti-colocations are never violated.
    for m in re.finditer(r'rsc="(\w+)" with-rsc="(\w+)" score="(-?INFINITY)"', constraints):
        dep, prim, score = m.groups()
        if p.assigned[dep] is None:
            continue
        if score == "INFINITY":
            assert p.assigned[prim] == p.assigned[dep]
        else:
            assert p.assigned[prim] != p.assigned[dep]
    # Group members run together, and only after the ones before them.
    members = re.findall(r'<primitive id="(\w+)"', resources.partition('<group id="g">')[2])
    placed = [p.final[m] for m in members]
    for before, after in pairwise(placed):
        assert not after or before == after


def test_nothing_new_starts_while_its_probe_on_a_joining_node_cannot_run() -> None:
    joining = 'in_ccm="true" crmd="online" join="pending" expected="member"'
    p = _cib(
        _prim("new") + _prim("old"),
        nodes=2,
        fencing=True,
        states={"node2": joining},
        running={"node1": ["old"]},
    )
    assert p.final["new"] == ()
    assert "pending node node2" in p.reasons["new"]
    assert p.final["old"] == ("node1",)  # already running: no start, nothing to wait for
