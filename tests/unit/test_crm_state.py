"""Unit tests of resource_states: one small hand-written CIB per rule."""

from __future__ import annotations

from hastack.crm.cib.xml import read_cib
from hastack.crm.state import ClusterState, ResourceState, Role, resource_states

_NODES = """
<node id="1" uname="node1"/>
<node id="2" uname="node2">{attrs2}</node>
"""

_RESOURCES = """
<primitive id="rsc1" class="ocf" provider="pacemaker" type="Dummy">
  <operations>
    <op id="rsc1-mon" name="monitor" interval="10s"/>
    <op id="rsc1-mon-ign" name="monitor" interval="20s" on-fail="ignore"/>
  </operations>
  {meta}
</primitive>
<clone id="clone1">
  <primitive id="child" class="ocf" provider="pacemaker" type="Dummy"/>
</clone>
<clone id="ms1">
  <meta_attributes id="ms1-meta">
    <nvpair id="ms1-p" name="promotable" value="true"/>
  </meta_attributes>
  <primitive id="state" class="ocf" provider="pacemaker" type="Stateful"/>
</clone>
"""


def _op(
    rsc: str,
    op: str,
    interval: int,
    call: int,
    rc: int,
    status: int = 0,
    expected: int | None = None,
    changed: int = 1000,
    op_id: str | None = None,
) -> str:
    if expected is None:
        expected = 7 if op == "monitor" and interval == 0 else 0
    key = f"1:1:{expected}:abc"
    return (
        f'<lrm_rsc_op id="{op_id or f"{rsc}_{op}_{interval}_{call}"}" '
        f'operation_key="{rsc}_{op}_{interval}" operation="{op}" interval="{interval}" '
        f'call-id="{call}" rc-code="{rc}" op-status="{status}" transition-key="{key}" '
        f'last-rc-change="{changed}"/>'
    )


def _cib(
    ops1: dict[str, list[str]] | None = None,
    *,
    node2_state: str = 'in_ccm="true" crmd="online" join="member" expected="member"',
    ops2: dict[str, list[str]] | None = None,
    options: str = "",
    attrs2: str = "",
    transient2: str = "",
    meta: str = "",
    extra_states: str = "",
    now: float | None = None,
    cib_attrs: str = "",
) -> ClusterState:
    def lrm(ops: dict[str, list[str]] | None) -> str:
        body = "".join(
            f'<lrm_resource id="{rid}" class="ocf" provider="pacemaker" type="Dummy">'
            + "".join(entries)
            + "</lrm_resource>"
            for rid, entries in (ops or {}).items()
        )
        return f'<lrm id="x"><lrm_resources>{body}</lrm_resources></lrm>'

    xml = f"""<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0"
 {cib_attrs}>
<configuration>
<crm_config>
  <cluster_property_set id="cib-bootstrap-options">{options}</cluster_property_set>
</crm_config>
<nodes>{_NODES.format(attrs2=attrs2)}</nodes>
<resources>{_RESOURCES.format(meta=meta)}</resources>
<constraints/>
</configuration>
<status>
<node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member" expected="member">
{lrm(ops1)}
</node_state>
<node_state id="2" uname="node2" {node2_state}>{transient2}{lrm(ops2)}</node_state>
{extra_states}
</status>
</cib>"""
    return resource_states(read_cib(xml.encode(), source="test.xml"), now=now)


def _one(state: ClusterState, rid: str, node: str = "node1") -> ResourceState:
    found = [r for r in state.resources if r.primitive == rid and r.node == node]
    assert len(found) == 1, found
    return found[0]


# --- resources ------------------------------------------------------------------------------


def test_start_then_monitor_is_started_and_reason_is_the_start() -> None:
    s = _cib(
        {"rsc1": [_op("rsc1", "start", 0, 3, 0, op_id="s"), _op("rsc1", "monitor", 10000, 4, 0)]}
    )
    r = _one(s, "rsc1")
    assert r.role is Role.STARTED and not r.failed
    assert r.reason == "s"


def test_ops_are_replayed_in_call_id_order_not_document_order() -> None:
    s = _cib({"rsc1": [_op("rsc1", "stop", 0, 9, 0, op_id="stop"), _op("rsc1", "start", 0, 3, 0)]})
    r = _one(s, "rsc1")
    assert r.role is Role.STOPPED and r.reason == "stop"


def test_successful_stop_means_stopped() -> None:
    s = _cib({"rsc1": [_op("rsc1", "start", 0, 3, 0), _op("rsc1", "stop", 0, 5, 0)]})
    assert _one(s, "rsc1").role is Role.STOPPED
    assert s.active() == ()


def test_probe_not_running_means_stopped() -> None:
    s = _cib({"rsc1": [_op("rsc1", "monitor", 0, 2, 7, op_id="probe")]})
    r = _one(s, "rsc1")
    assert r.role is Role.STOPPED and not r.failed and r.reason == "probe"


def test_probe_finding_it_running_means_started() -> None:
    s = _cib({"rsc1": [_op("rsc1", "monitor", 0, 2, 0)]})
    assert _one(s, "rsc1").role is Role.STARTED


def test_rc_8_means_promoted() -> None:
    s = _cib({"state": [_op("state", "monitor", 0, 2, 8, op_id="p8")]})
    r = _one(s, "state")
    assert r.role is Role.PROMOTED and r.reason == "p8" and r.clone == "ms1"


def test_promote_then_demote() -> None:
    ops = [_op("state", "start", 0, 2, 0), _op("state", "promote", 0, 3, 0)]
    assert _one(_cib({"state": ops}), "state").role is Role.PROMOTED
    ops.append(_op("state", "demote", 0, 4, 0))
    assert _one(_cib({"state": ops}), "state").role is Role.UNPROMOTED


def test_started_instance_of_a_promotable_clone_is_unpromoted() -> None:
    s = _cib({"state": [_op("state", "start", 0, 2, 0)]})
    assert _one(s, "state").role is Role.UNPROMOTED


def test_failed_start_is_failed_running() -> None:
    s = _cib({"rsc1": [_op("rsc1", "start", 0, 3, 1, op_id="bad")]})
    r = _one(s, "rsc1")
    assert r.role is Role.STARTED and r.failed and r.failed_op == "bad"


def test_failed_monitor_is_failed_and_keeps_role() -> None:
    s = _cib(
        {"rsc1": [_op("rsc1", "start", 0, 3, 0), _op("rsc1", "monitor", 10000, 4, 7, op_id="m")]}
    )
    r = _one(s, "rsc1")
    assert r.role is Role.STARTED and r.failed and r.failed_op == "m"


def test_later_successful_start_clears_an_earlier_failure() -> None:
    ops = [
        _op("rsc1", "start", 0, 3, 1),
        _op("rsc1", "stop", 0, 4, 0),
        _op("rsc1", "start", 0, 5, 0),
    ]
    r = _one(_cib({"rsc1": ops}), "rsc1")
    assert r.role is Role.STARTED and not r.failed and r.failed_op is None


def test_failed_stop_is_failed_running() -> None:
    ops = [_op("rsc1", "start", 0, 3, 0), _op("rsc1", "stop", 0, 4, 1, op_id="badstop")]
    r = _one(_cib({"rsc1": ops}), "rsc1")
    assert r.role is Role.STARTED and r.failed and r.failed_op == "badstop"


def test_fencing_failure_is_not_forgotten_by_a_later_stop() -> None:
    ops = [
        _op("rsc1", "start", 0, 3, 0),
        _op("rsc1", "stop", 0, 4, 1),
        _op("rsc1", "stop", 0, 5, 0),
    ]
    s = _cib({"rsc1": ops})
    assert _one(s, "rsc1").role is Role.STOPPED
    assert s.nodes["node1"].unclean  # on-fail=fence still applies


def test_on_fail_ignore_is_not_a_failure() -> None:
    ops = [_op("rsc1", "start", 0, 3, 0), _op("rsc1", "monitor", 20000, 4, 1)]
    r = _one(_cib({"rsc1": ops}), "rsc1")
    assert r.role is Role.STARTED and not r.failed
    assert any("ignored" in n for n in r.notes)


def test_expired_failure_is_forgotten() -> None:
    meta = (
        '<meta_attributes id="m"><nvpair id="ft" name="failure-timeout" value="60s"/>'
        "</meta_attributes>"
    )
    ops = {
        "rsc1": [_op("rsc1", "start", 0, 3, 0), _op("rsc1", "monitor", 10000, 4, 1, changed=1000)]
    }
    assert _one(_cib(ops, meta=meta), "rsc1").failed  # no now, no execution-date: never expires
    assert _one(_cib(ops, meta=meta, now=1030.0), "rsc1").failed  # not yet
    r = _one(_cib(ops, meta=meta, now=1061.0), "rsc1")
    assert not r.failed and r.role is Role.STARTED
    assert any("expired" in n for n in r.notes)


def test_pending_start_counts_as_started() -> None:
    s = _cib({"rsc1": [_op("rsc1", "start", 0, -1, 0, status=-1, op_id="pend")]})
    r = _one(s, "rsc1")
    assert r.role is Role.STARTED and r.pending == "start" and r.reason == "pend"


def test_migration_target_runs_it_after_migrate_from() -> None:
    src = [
        _op("rsc1", "start", 0, 2, 0),
        _op("rsc1", "migrate_to", 0, 3, 0),
        _op("rsc1", "stop", 0, 5, 0),
    ]
    dst = [_op("rsc1", "migrate_from", 0, 4, 0, op_id="mf")]
    s = _cib({"rsc1": src}, ops2={"rsc1": dst})
    assert _one(s, "rsc1").role is Role.STOPPED
    assert _one(s, "rsc1", "node2").role is Role.STARTED
    assert _one(s, "rsc1", "node2").reason == "mf"


def test_orphan_is_reported() -> None:
    s = _cib({"gone": [_op("gone", "start", 0, 2, 0)]})
    r = _one(s, "gone")
    assert r.orphan and r.role is Role.STARTED


def test_anonymous_clone_instances_are_numbered() -> None:
    s = _cib(
        {"child": [_op("child", "start", 0, 2, 0)]},
        ops2={"child": [_op("child", "start", 0, 2, 0)]},
    )
    ids = sorted(r.id for r in s.of("child"))
    assert ids == ["child:0", "child:1"]


def test_probe_result_not_installed_is_stopped() -> None:
    s = _cib({"rsc1": [_op("rsc1", "monitor", 0, 2, 5)]})
    assert _one(s, "rsc1").role is Role.STOPPED


# --- nodes ----------------------------------------------------------------------------------


def test_member_node_is_online() -> None:
    s = _cib()
    assert s.nodes["node1"].online and s.nodes["node1"].label == "Online"


def test_cleanly_down_node_is_offline() -> None:
    s = _cib(node2_state='in_ccm="false" crmd="offline" join="down" expected="down"')
    n = s.nodes["node2"]
    assert not n.online and not n.unclean and n.label == "OFFLINE"


def test_unexpectedly_lost_node_is_unclean() -> None:
    s = _cib(node2_state='in_ccm="false" crmd="offline" join="down" expected="member"')
    n = s.nodes["node2"]
    assert n.unclean and n.label == "UNCLEAN (offline)"
    assert "no longer part of the cluster" in n.reason


def test_lost_node_without_fencing_is_just_offline_when_expected_down() -> None:
    options = '<nvpair id="se" name="stonith-enabled" value="false"/>'
    s = _cib(
        node2_state='in_ccm="false" crmd="offline" join="down" expected="down"', options=options
    )
    assert s.nodes["node2"].label == "OFFLINE"
    assert not s.stonith_enabled


def test_never_seen_node_is_unclean_with_startup_fencing() -> None:
    s = _cib(node2_state="")
    assert s.nodes["node2"].unclean


def test_pending_node() -> None:
    s = _cib(node2_state='in_ccm="true" crmd="online" join="pending" expected="member"')
    assert s.nodes["node2"].pending and s.nodes["node2"].label == "pending"


def test_standby_and_maintenance_attributes() -> None:
    attrs = (
        '<instance_attributes id="n2"><nvpair id="n2s" name="standby" value="on"/>'
        "</instance_attributes>"
    )
    assert _cib(attrs2=attrs).nodes["node2"].label == "standby"
    transient = (
        '<transient_attributes id="2"><instance_attributes id="t2">'
        '<nvpair id="t2m" name="maintenance" value="true"/></instance_attributes>'
        "</transient_attributes>"
    )
    assert _cib(transient2=transient).nodes["node2"].label == "maintenance"


def test_termination_requested_makes_an_online_node_unclean() -> None:
    transient = (
        '<transient_attributes id="2"><instance_attributes id="t2">'
        '<nvpair id="t2t" name="terminate" value="true"/></instance_attributes>'
        "</transient_attributes>"
    )
    n = _cib(transient2=transient).nodes["node2"]
    assert n.unclean and n.online and n.label == "UNCLEAN (online)"


# --- later additions: Pacemaker's finer rules ----------------------------------------------


def _mig(rsc: str, op: str, call: int, rc: int, source: str, target: str, changed: int) -> str:
    return (
        f'<lrm_rsc_op id="{rsc}_{op}_{call}" operation_key="{rsc}_{op}_0" operation="{op}" '
        f'interval="0" call-id="{call}" rc-code="{rc}" op-status="0" '
        f'transition-key="1:1:0:abc" last-rc-change="{changed}" '
        f'migrate_source="{source}" migrate_target="{target}"/>'
    )


def test_partial_migration_is_active_on_both_nodes() -> None:
    src = [
        _op("rsc1", "start", 0, 2, 0, changed=100),
        _mig("rsc1", "migrate_to", 3, 0, "node1", "node2", 200),
    ]
    dst = [_op("rsc1", "monitor", 0, 2, 7, changed=50)]
    s = _cib({"rsc1": src}, ops2={"rsc1": dst})
    assert _one(s, "rsc1").role is Role.STARTED
    assert _one(s, "rsc1", "node2").role is Role.STARTED
    assert any("migration" in n for n in _one(s, "rsc1", "node2").notes)


def test_dangling_migration_leaves_it_on_the_target_only() -> None:
    src = [
        _op("rsc1", "start", 0, 2, 0, changed=100),
        _mig("rsc1", "migrate_to", 3, 0, "node1", "node2", 200),
    ]
    dst = [_mig("rsc1", "migrate_from", 4, 0, "node1", "node2", 300)]
    s = _cib({"rsc1": src}, ops2={"rsc1": dst})
    assert _one(s, "rsc1").role is Role.STOPPED
    assert _one(s, "rsc1", "node2").role is Role.STARTED


def test_failed_migrate_from_is_failed_on_both_nodes() -> None:
    src = [
        _op("rsc1", "start", 0, 2, 0, changed=100),
        _mig("rsc1", "migrate_to", 3, 0, "node1", "node2", 200),
    ]
    dst = [_mig("rsc1", "migrate_from", 4, 1, "node1", "node2", 300)]
    s = _cib({"rsc1": src}, ops2={"rsc1": dst})
    assert _one(s, "rsc1").failed and _one(s, "rsc1", "node2").failed


def test_expected_not_running_result_means_stopped_for_any_operation() -> None:
    s = _cib({"rsc1": [_op("rsc1", "start", 0, 2, 7, expected=7)]})
    assert _one(s, "rsc1").role is Role.STOPPED


def test_old_error_status_is_judged_by_its_exit_code() -> None:
    s = _cib({"rsc1": [_op("rsc1", "monitor", 0, 2, 7, status=4)]})
    r = _one(s, "rsc1")
    assert r.role is Role.STOPPED and not r.failed


def test_degraded_result_counts_as_success() -> None:
    s = _cib({"rsc1": [_op("rsc1", "start", 0, 2, 0), _op("rsc1", "monitor", 10000, 3, 190)]})
    assert not _one(s, "rsc1").failed


def test_failed_stop_fences_the_node() -> None:
    s = _cib(ops2={"rsc1": [_op("rsc1", "start", 0, 2, 0), _op("rsc1", "stop", 0, 3, 1)]})
    assert s.nodes["node2"].label == "UNCLEAN (online)"
    assert "rsc1 failed there" in s.nodes["node2"].reason
    assert _one(s, "rsc1", "node2").failed


def test_failed_stop_without_fencing_blocks() -> None:
    options = '<nvpair id="se" name="stonith-enabled" value="false"/>'
    s = _cib(
        ops2={"rsc1": [_op("rsc1", "start", 0, 2, 0), _op("rsc1", "stop", 0, 3, 1)]},
        options=options,
    )
    assert s.nodes["node2"].label == "Online"
    assert _one(s, "rsc1", "node2").failed


def test_active_resource_on_lost_node_makes_it_unclean_and_not_failed() -> None:
    s = _cib(
        node2_state='in_ccm="false" crmd="offline" join="down" expected="down"',
        ops2={"rsc1": [_op("rsc1", "start", 0, 2, 0), _op("rsc1", "monitor", 10000, 3, 1)]},
    )
    assert s.nodes["node2"].unclean
    r = _one(s, "rsc1", "node2")
    assert r.role is Role.STARTED and not r.failed


def test_history_of_an_offline_node_is_ignored_without_fencing() -> None:
    options = '<nvpair id="se" name="stonith-enabled" value="false"/>'
    s = _cib(
        node2_state='in_ccm="false" crmd="offline" join="down" expected="down"',
        ops2={"rsc1": [_op("rsc1", "start", 0, 2, 0)]},
        options=options,
    )
    assert s.on_node("node2") == ()


def test_blocked_failure_does_not_expire() -> None:
    meta = (
        '<meta_attributes id="m"><nvpair id="ft" name="failure-timeout" value="10s"/>'
        "</meta_attributes>"
    )
    ops = {"rsc1": [_op("rsc1", "start", 0, 2, 0), _op("rsc1", "stop", 0, 3, 1, changed=1000)]}
    options = '<nvpair id="se" name="stonith-enabled" value="false"/>'
    assert _one(_cib(ops, meta=meta, options=options, now=99999.0), "rsc1").failed


def test_shutting_down_node_is_online_while_its_controller_runs() -> None:
    transient = (
        '<transient_attributes id="2"><instance_attributes id="t2">'
        '<nvpair id="t2s" name="shutdown" value="1234"/></instance_attributes>'
        "</transient_attributes>"
    )
    n = _cib(
        node2_state='in_ccm="false" crmd="online" join="pending" expected="down"',
        transient2=transient,
    ).nodes["node2"]
    assert n.online and n.shutdown


def test_banned_node_is_unclean() -> None:
    n = _cib(node2_state='in_ccm="true" crmd="online" join="banned"').nodes["node2"]
    assert n.label == "UNCLEAN (online)"


def test_node_state_of_an_unknown_node_is_ignored() -> None:
    extra = (
        '<node_state id="9" uname="ghost" in_ccm="true" crmd="online" join="member" '
        'expected="member"/>'
    )
    assert "ghost" not in _cib(extra_states=extra).nodes


def test_failure_is_forgotten_when_the_same_operation_later_succeeds() -> None:
    failed = (
        '<lrm_rsc_op id="rsc1_last_failure_0" operation_key="rsc1_monitor_10000" '
        'operation="monitor" interval="10000" call-id="4" rc-code="1" op-status="0" '
        'transition-key="1:1:0:abc" last-rc-change="100"/>'
    )
    ok = (
        '<lrm_rsc_op id="rsc1_monitor_10000" operation_key="rsc1_monitor_10000" '
        'operation="monitor" interval="10000" call-id="4" rc-code="0" op-status="0" '
        'transition-key="1:1:0:abc" last-rc-change="200"/>'
    )
    r = _one(_cib({"rsc1": [_op("rsc1", "start", 0, 3, 0), failed, ok]}), "rsc1")
    assert r.role is Role.STARTED and not r.failed
    # The other way round (the failure is the newer result) it stays failed.
    failed_later = failed.replace('last-rc-change="100"', 'last-rc-change="300"')
    r = _one(_cib({"rsc1": [_op("rsc1", "start", 0, 3, 0), failed_later, ok]}), "rsc1")
    assert r.failed and r.failed_op == "rsc1_last_failure_0"


def test_lost_quorum_with_suicide_policy_fences_every_node() -> None:
    options = '<nvpair id="nq" name="no-quorum-policy" value="suicide"/>'
    xml_state = _cib(options=options)
    assert not xml_state.nodes["node1"].unclean  # no-quorum-panic not set: never had quorum
    lost = _cib(options=options, cib_attrs='have-quorum="0" no-quorum-panic="1"')
    assert lost.nodes["node1"].unclean and lost.nodes["node2"].unclean
    assert "quorum" in lost.nodes["node1"].reason
    kept = _cib(options=options, cib_attrs='have-quorum="1" no-quorum-panic="1"')
    assert not kept.nodes["node1"].unclean


def test_role_rank_follows_pacemaker() -> None:
    assert [r.rank for r in (Role.STOPPED, Role.STARTED, Role.UNPROMOTED, Role.PROMOTED)] == [
        0,
        1,
        2,
        3,
    ]
