"""Unit tests of plan(): one small hand-written CIB per kind of action."""

from __future__ import annotations

from lrm_history import lrm_op

from hastack.crm.cib.xml import read_cib
from hastack.crm.placement import place
from hastack.crm.state import resource_states
from hastack.crm.transition import Transition, plan

ONLINE = 'in_ccm="true" crmd="online" join="member" expected="member"'


def _running(rsc: str, monitor: int | None = 10000) -> list[str]:
    ops = [lrm_op(rsc, "start", 0, 2, 0)]
    if monitor:
        ops.append(lrm_op(rsc, "monitor", monitor, 3, 0))
    return ops


def _stopped(rsc: str) -> list[str]:
    return [lrm_op(rsc, "monitor", 0, 1, 7)]


def _plan(
    resources: str,
    history: dict[str, dict[str, list[str]]],
    *,
    options: str = "",
    constraints: str = "",
    states: dict[str, str] | None = None,
    cib_attrs: str = 'have-quorum="1"',
    stickiness: int = 0,
    transient: dict[str, str] | None = None,
) -> Transition:
    def lrm(node: str) -> str:
        body = "".join(
            (
                f'<lrm_resource id="{rid}" class="stonith" type="fence_dummy">'
                if rid == "fence"
                else f'<lrm_resource id="{rid}" class="ocf" provider="pacemaker" type="Dummy">'
            )
            + "".join(ops)
            + "</lrm_resource>"
            for rid, ops in history.get(node, {}).items()
        )
        return f'<lrm id="{node}"><lrm_resources>{body}</lrm_resources></lrm>'

    def attrs(i: int, node: str) -> str:
        """Transient attributes (e.g. promotion scores ``master-rsc``) as NAME=VALUE pairs."""
        if not transient or node not in transient:
            return ""
        pairs = "".join(
            f'<nvpair id="s{i}-{name}" name="{name}" value="{value}"/>'
            for name, _, value in (p.partition("=") for p in transient[node].split())
        )
        return (
            f'<transient_attributes id="{i}"><instance_attributes id="status-{i}">{pairs}'
            "</instance_attributes></transient_attributes>"
        )

    node_states = "".join(
        f'<node_state id="{i}" uname="{n}" {(states or {}).get(n, ONLINE)}>'
        f"{attrs(i, n)}{lrm(n)}</node_state>"
        for i, n in ((1, "node1"), (2, "node2"))
    )
    xml = f"""<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0"
 {cib_attrs}>
<configuration>
<crm_config><cluster_property_set id="opts">
  <nvpair id="o1" name="stonith-enabled" value="true"/>
  {options}
</cluster_property_set></crm_config>
<nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes>
<rsc_defaults><meta_attributes id="rd">
  <nvpair id="rd1" name="resource-stickiness" value="{stickiness}"/>
</meta_attributes></rsc_defaults>
<resources>
  <primitive id="fence" class="stonith" type="fence_dummy"/>
  {resources}
</resources>
<constraints>{constraints}</constraints>
</configuration>
<status>{node_states}</status>
</cib>"""
    cib = read_cib(xml.encode(), source="test.xml")
    state = resource_states(cib)
    return plan(cib, state, place(cib, state))


def _dummy(rsc: str, monitor: str = "10s", meta: str = "") -> str:
    return (
        f'<primitive id="{rsc}" class="ocf" provider="pacemaker" type="Dummy">{meta}'
        f'<operations><op id="{rsc}-mon" name="monitor" interval="{monitor}"/></operations>'
        "</primitive>"
    )


def _fence_known() -> dict[str, list[str]]:
    return {"fence": _stopped("fence")}


def test_a_new_resource_is_probed_everywhere_then_started_and_monitored() -> None:
    t = _plan(_dummy("rsc1"), {"node1": {"fence": _running("fence", None)}, "node2": {}})
    names = t.names()
    assert {"rsc1_monitor_0 node1", "rsc1_monitor_0 node2", "fence_monitor_0 node2"} <= names
    starts = [a for a in t.actions if a.task == "start" and a.rsc == "rsc1"]
    assert len(starts) == 1
    assert f"rsc1_monitor_10000 {starts[0].node}" in names
    assert "fence_start_0 node1" not in names  # already running there


def test_a_failed_resource_recovers_in_place_with_stop_then_start() -> None:
    failed = [lrm_op("rsc1", "start", 0, 2, 0), lrm_op("rsc1", "monitor", 10000, 3, 1)]
    history = {
        "node1": {"fence": _running("fence", None), "rsc1": failed},
        "node2": {"fence": _stopped("fence"), "rsc1": _stopped("rsc1")},
    }
    t = _plan(_dummy("rsc1"), history)
    by_name = {a.name: a for a in t.actions}
    assert "rsc1_stop_0 node1" in by_name and "failed" in by_name["rsc1_stop_0 node1"].reason
    # one start, on the node the placement chose: with no stickiness set that may be either
    starts = [a.node for a in t.actions if a.task == "start" and a.rsc == "rsc1"]
    assert len(starts) == 1


def test_an_unclean_node_is_fenced_and_its_resources_start_elsewhere_without_a_stop() -> None:
    history = {
        "node1": {"fence": _stopped("fence"), "rsc1": _running("rsc1")},
        "node2": {"fence": _running("fence", None), "rsc1": _stopped("rsc1")},
    }
    unclean = 'in_ccm="false" crmd="offline" join="down" expected="member"'
    t = _plan(_dummy("rsc1"), history, states={"node1": unclean})
    names = t.names()
    assert "stonith 'reboot' node1" in names
    assert "rsc1_stop_0 node1" not in names  # fencing stops it
    assert {"rsc1_start_0 node2", "rsc1_monitor_10000 node2"} <= names


def test_a_partition_without_quorum_fences_nobody() -> None:
    history = {
        "node1": {"fence": _stopped("fence"), "rsc1": _running("rsc1")},
        "node2": {"fence": _running("fence", None), "rsc1": _stopped("rsc1")},
    }
    unclean = 'in_ccm="false" crmd="offline" join="down" expected="member"'
    t = _plan(_dummy("rsc1"), history, states={"node1": unclean}, cib_attrs='have-quorum="0"')
    assert not any(a.task == "stonith" for a in t.actions)


def test_a_restart_of_a_group_member_restarts_the_members_after_it() -> None:
    group = f'<group id="g">{_dummy("a")}{_dummy("b")}</group>'
    failed_a = [lrm_op("a", "start", 0, 2, 0), lrm_op("a", "monitor", 10000, 3, 1)]
    history = {
        "node1": {"fence": _running("fence", None), "a": failed_a, "b": _running("b")},
        "node2": {"fence": _stopped("fence"), "a": _stopped("a"), "b": _stopped("b")},
    }
    t = _plan(group, history, stickiness=100)
    by_name = {a.name: a for a in t.actions}
    assert {"a_stop_0 node1", "b_stop_0 node1", "a_start_0 node1", "b_start_0 node1"} <= set(
        by_name
    )
    assert "group g" in by_name["b_stop_0 node1"].reason
    assert "b_monitor_10000 node1" in by_name  # its monitor starts again with it


def test_allow_migrate_moves_with_migrate_to_and_migrate_from() -> None:
    meta = (
        '<meta_attributes id="m"><nvpair id="m1" name="allow-migrate" value="true"/>'
        "</meta_attributes>"
    )
    history = {
        "node1": {"fence": _running("fence", None), "rsc1": _running("rsc1")},
        "node2": {"fence": _stopped("fence"), "rsc1": _stopped("rsc1")},
    }
    ban = '<rsc_location id="ban" rsc="rsc1" node="node1" score="-INFINITY"/>'
    names = _plan(_dummy("rsc1", meta=meta), history, constraints=ban).names()
    assert {"rsc1_migrate_to_0 node1", "rsc1_migrate_from_0 node2", "rsc1_stop_0 node1"} <= names
    assert "rsc1_start_0 node2" not in names  # implied by the migration
    assert "rsc1_monitor_10000 node2" in names


def test_an_orphan_is_stopped_and_its_history_deleted() -> None:
    history = {
        "node1": {"fence": _running("fence", None), "gone": _running("gone", None)},
        "node2": {"fence": _stopped("fence")},
    }
    names = _plan("", history).names()
    assert {"gone_stop_0 node1", "gone_delete_0 node1"} <= names
    history["node1"]["gone"] = _running("gone", None)
    keep = '<nvpair id="o3" name="stop-orphan-resources" value="false"/>'
    assert "gone_stop_0 node1" not in _plan("", history, options=keep).names()


def test_a_changed_monitor_interval_cancels_the_old_one_and_starts_the_new() -> None:
    history = {
        "node1": {"fence": _running("fence", None), "rsc1": _running("rsc1", monitor=5000)},
        "node2": {"fence": _stopped("fence"), "rsc1": _stopped("rsc1")},
    }
    names = _plan(_dummy("rsc1", monitor="10s"), history, stickiness=100).names()
    assert "Cancel rsc1_monitor_5000 node1" in names
    assert "rsc1_monitor_10000 node1" in names
    assert not any(n.startswith(("rsc1_start", "rsc1_stop")) for n in names)


def test_a_stopped_role_monitor_watches_the_nodes_the_resource_is_not_on() -> None:
    rsc = (
        '<primitive id="rsc1" class="ocf" provider="pacemaker" type="Dummy"><operations>'
        '<op id="m1" name="monitor" interval="10s"/>'
        '<op id="m2" name="monitor" interval="20s" role="Stopped"/>'
        "</operations></primitive>"
    )
    history = {
        "node1": {"fence": _running("fence", None), "rsc1": _running("rsc1")},
        "node2": {"fence": _stopped("fence"), "rsc1": _stopped("rsc1")},
    }
    names = _plan(rsc, history, stickiness=100).names()
    assert "rsc1_monitor_20000 node2" in names
    assert "rsc1_monitor_20000 node1" not in names


def test_every_action_says_why() -> None:
    t = _plan(_dummy("rsc1"), {"node1": _fence_known(), "node2": _fence_known()})
    assert t.actions and all(a.reason for a in t.actions)


def test_a_changed_parameter_restarts_the_resource_where_it_runs() -> None:
    history = {
        "node1": {"fence": _running("fence", None), "rsc1": _running("rsc1")},
        "node2": {"fence": _stopped("fence"), "rsc1": _stopped("rsc1")},
    }
    params = (
        '<instance_attributes id="p"><nvpair id="p1" name="state" value="/tmp/new"/>'
        "</instance_attributes>"
    )
    t = _plan(_dummy("rsc1", meta=params), history, stickiness=100)
    by_name = {a.name: a for a in t.actions}
    assert {"rsc1_stop_0 node1", "rsc1_start_0 node1", "rsc1_monitor_10000 node1"} <= set(by_name)
    assert "definition changed" in by_name["rsc1_start_0 node1"].reason
    # unchanged, nothing happens to it
    names = _plan(_dummy("rsc1"), history, stickiness=100).names()
    assert not any(n.startswith("rsc1_") and not n.startswith("rsc1_monitor_0") for n in names)


def test_a_changed_agent_deletes_the_old_history_and_restarts_where_it_runs() -> None:
    rsc = (
        '<primitive id="rsc1" class="ocf" provider="heartbeat" type="Dummy"><operations>'
        '<op id="m1" name="monitor" interval="10s"/></operations></primitive>'
    )
    # the history on both nodes is of ocf:pacemaker:Dummy (see _plan)
    history = {
        "node1": {"fence": _running("fence", None), "rsc1": _running("rsc1")},
        "node2": {"fence": _stopped("fence"), "rsc1": _stopped("rsc1")},
    }
    by_name = {a.name: a for a in _plan(rsc, history, stickiness=100).actions}
    assert {"rsc1_delete_0 node1", "rsc1_delete_0 node2"} <= set(by_name)
    assert {"rsc1_stop_0 node1", "rsc1_start_0 node1"} <= set(by_name)
    assert "agent changed from ocf:pacemaker:Dummy" in by_name["rsc1_delete_0 node2"].reason


# --- clones -----------------------------------------------------------------------------------


def _clone(rsc: str, meta: str = "", promotable: bool = False, ops: str = "") -> str:
    pairs = f'<nvpair id="{rsc}-p" name="promotable" value="true"/>' if promotable else ""
    operations = ops or f'<op id="{rsc}-mon" name="monitor" interval="10s"/>'
    return (
        f'<clone id="{rsc}-clone"><meta_attributes id="{rsc}-cm">{pairs}{meta}'
        f"</meta_attributes>"
        # (the history helper records every resource as ocf:pacemaker:Dummy; to the scheduler
        # the agent is just a name)
        f'<primitive id="{rsc}" class="ocf" provider="pacemaker" type="Dummy">'
        f"<operations>{operations}</operations></primitive></clone>"
    )


def test_an_anonymous_clone_is_probed_and_started_on_every_node() -> None:
    t = _plan(_clone("c"), {"node1": _fence_known(), "node2": {"fence": _running("fence", None)}})
    names = t.names()
    for node in ("node1", "node2"):
        assert {f"c_monitor_0 {node}", f"c_start_0 {node}", f"c_monitor_10000 {node}"} <= names


def test_a_clone_instance_that_failed_recovers_where_it_runs() -> None:
    failed = [lrm_op("c", "start", 0, 2, 0), lrm_op("c", "monitor", 10000, 3, 1)]
    history = {
        "node1": {"fence": _running("fence", None), "c": failed},
        "node2": {"fence": _stopped("fence"), "c": _running("c")},
    }
    names = _plan(_clone("c"), history).names()
    assert {"c_stop_0 node1", "c_start_0 node1", "c_monitor_10000 node1"} <= names
    assert not {"c_stop_0 node2", "c_start_0 node2"} & names


PROMOTABLE_OPS = (
    '<op id="p-mon-p" name="monitor" interval="10s" role="Promoted"/>'
    '<op id="p-mon-u" name="monitor" interval="11s" role="Unpromoted"/>'
)


def test_the_instance_with_the_best_promotion_score_is_promoted() -> None:
    history = {
        "node1": {"fence": _running("fence", None), "p": _running("p", 11000)},
        "node2": {"fence": _stopped("fence"), "p": _running("p", 11000)},
    }
    t = _plan(
        _clone("p", promotable=True, ops=PROMOTABLE_OPS),
        history,
        transient={"node1": "master-p=5", "node2": "master-p=10"},
    )
    names = t.names()
    assert "p_promote_0 node2" in names and "p_promote_0 node1" not in names
    # the promoted instance changes monitors: the Promoted one starts, the Unpromoted one ends
    assert {"p_monitor_10000 node2", "Cancel p_monitor_11000 node2"} <= names
    assert not any(a.node == "node1" and a.rsc == "p" for a in t.actions)


def test_a_promoted_instance_that_must_stop_is_demoted_first() -> None:
    promoted = [
        lrm_op("p", "start", 0, 2, 0),
        lrm_op("p", "promote", 0, 3, 0),
        lrm_op("p", "monitor", 10000, 4, 8, expected=8),
    ]
    history = {
        "node1": {"fence": _running("fence", None), "p": promoted},
        "node2": {"fence": _stopped("fence"), "p": _running("p", 11000)},
    }
    standby = ONLINE + ' shutdown="0"'
    ban = '<rsc_location id="ban" rsc="p-clone" node="node1" score="-INFINITY"/>'
    t = _plan(
        _clone("p", promotable=True, ops=PROMOTABLE_OPS),
        history,
        constraints=ban,
        states={"node1": standby},
        transient={"node1": "master-p=10", "node2": "master-p=5"},
    )
    names = t.names()
    assert {"p_demote_0 node1", "p_stop_0 node1", "p_promote_0 node2"} <= names


def test_notify_tells_every_instance_before_and_after_an_event() -> None:
    history = {
        "node1": {"fence": _running("fence", None), "c": _running("c")},
        "node2": {"fence": _stopped("fence"), "c": _stopped("c")},
    }
    notify = '<nvpair id="c-n" name="notify" value="true"/>'
    names = _plan(_clone("c", meta=notify), history).names()
    assert "c_start_0 node2" in names
    # before the start only node1's instance runs; after it both do
    assert "c_pre_notify_start_0 node1" in names and "c_pre_notify_start_0 node2" not in names
    assert {"c_post_notify_start_0 node1", "c_post_notify_start_0 node2"} <= names


def test_what_follows_a_clone_restarts_only_where_the_instance_changed() -> None:
    failed = [lrm_op("c", "start", 0, 2, 0), lrm_op("c", "monitor", 10000, 3, 1)]
    order = '<rsc_order id="o" first="c-clone" then="d"/>'
    on = {"fence": _running("fence", None)}
    # d runs on node1 where the clone instance recovers: it restarts after it
    history = {
        "node1": {**on, "c": failed, "d": _running("d")},
        "node2": {"fence": _stopped("fence"), "c": _running("c"), "d": _stopped("d")},
    }
    names = _plan(_clone("c") + _dummy("d"), history, constraints=order, stickiness=100).names()
    assert {"d_stop_0 node1", "d_start_0 node1"} <= names
    # d runs on node2, the instance recovers on node1: nothing for d to do
    history = {
        "node1": {**on, "c": failed, "d": _stopped("d")},
        "node2": {"fence": _stopped("fence"), "c": _running("c"), "d": _running("d")},
    }
    names = _plan(_clone("c") + _dummy("d"), history, constraints=order, stickiness=100).names()
    assert not {"d_stop_0 node2", "d_start_0 node2"} & names


def test_a_resource_after_one_that_moves_away_from_its_target_cannot_migrate() -> None:
    """A then B; A (not migratable) moves node1 -> node2, B (migratable) node2 -> node1: B's
    migration would run while A stops on B's new node, so B stops and starts instead."""
    history = {
        "node1": {"fence": _running("fence", None), "a": _running("a"), "b": _stopped("b")},
        "node2": {"fence": _stopped("fence"), "a": _stopped("a"), "b": _running("b")},
    }
    migratable = (
        '<meta_attributes id="b-m"><nvpair id="b-am" name="allow-migrate" value="true"/>'
        "</meta_attributes>"
    )
    locations = (
        '<rsc_location id="la" rsc="a" node="node2" score="100"/>'
        '<rsc_location id="lb" rsc="b" node="node1" score="100"/>'
    )
    constraints = '<rsc_order id="o" first="a" then="b"/>' + locations
    names = _plan(
        _dummy("a") + _dummy("b", meta=migratable), history, constraints=constraints
    ).names()
    assert {"a_stop_0 node1", "a_start_0 node2", "b_stop_0 node2", "b_start_0 node1"} <= names
    assert not any("migrate" in n for n in names)
    # without the ordering B migrates
    names = _plan(
        _dummy("a") + _dummy("b", meta=migratable), history, constraints=locations
    ).names()
    assert {"b_migrate_to_0 node2", "b_migrate_from_0 node1"} <= names
