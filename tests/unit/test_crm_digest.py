"""Unit tests of hastack.crm.digest: the hashed text, where parameters come from, the three
digests, Pacemaker's verdict on a history entry, and which entries it checks.

Expected digests are written out as the literal text Pacemaker hashes, so a test fails when the
text changes by one byte; two are the digests recorded in Pacemaker's own regression corpus.
"""

from __future__ import annotations

import hashlib

import pytest

from hastack.crm.cib.model import Cib, LrmRscOp
from hastack.crm.cib.xml import read_cib
from hastack.crm.digest import (
    Digester,
    DigestError,
    DigestResult,
    calculate_digests,
    changed_operations,
    check_digests,
    crm_get_msec,
    digest,
    digest_text,
    digests_changed,
    filter_for_digest,
    operation_parameters,
    ops_to_check,
    timeout_ms,
)
from hastack.crm.state import resource_states


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


# --- the hashed text ------------------------------------------------------------------------


def test_empty_parameters_hash_as_recorded_in_the_corpus() -> None:
    assert digest_text({}) == " <parameters/>\n"
    # op-digest of a parameterless Dummy's start in the corpus (1-a-then-bm-move-b).
    assert digest({}) == "f2317cad3d54cec5d7d7aa7d0bf35cf8"


def test_recurring_timeout_hashes_as_recorded_in_the_corpus() -> None:
    assert digest({"CRM_meta_timeout": "20000"}) == "4811cef7f7f94e3a35a70be7916cb2fd"


def test_names_are_sorted_bytewise_uppercase_first() -> None:
    text = digest_text({"b": "2", "a": "1", "CRM_meta_timeout": "5", "_x": "3"})
    assert text == ' <parameters CRM_meta_timeout="5" _x="3" a="1" b="2"/>\n'


def test_values_are_escaped_as_crm_xml_escape_does() -> None:
    text = digest_text({"v": "a<b>&\"'"})
    assert text == ' <parameters v="a&lt;b&gt;&amp;&quot;&apos;"/>\n'
    assert digest_text({"v": "x\ty\nz\r"}) == ' <parameters v="x    y\\nz\\r"/>\n'
    assert digest_text({"v": "\x01\x7f"}) == ' <parameters v="\\001\\177"/>\n'
    # Beyond ASCII the UTF-8 bytes are hashed as they are (crm_simulate 2.1.5 agrees).
    assert digest_text({"v": "é"}) == ' <parameters v="é"/>\n'
    assert digest({"v": "é"}) == md5(' <parameters v="é"/>\n')


def test_empty_value_is_kept() -> None:
    assert digest_text({"a": ""}) == ' <parameters a=""/>\n'


def test_filter_drops_bookkeeping_and_meta_but_keeps_a_recurring_timeout() -> None:
    params = {
        "id": "x",
        "crm_feature_set": "3.0",
        "on_node": "n1",
        "ip": "10.0.0.1",
        "CRM_meta_timeout": "20000",
        "CRM_meta_interval": "10000",
        "CRM_meta_name": "monitor",
    }
    assert filter_for_digest(params) == {"ip": "10.0.0.1", "CRM_meta_timeout": "20000"}
    params["CRM_meta_interval"] = "0"
    assert filter_for_digest(params) == {"ip": "10.0.0.1"}


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("20s", 20_000),
        ("20", 20_000),
        (" 90 sec", 90_000),
        ("500ms", 500),
        ("1m", 60_000),
        ("2min", 120_000),
        ("1h", 3_600_000),
        ("1500us", 1),
        ("1.5s", 1_000),  # the fraction is dropped, as strtoll does
        (".5s", -1),
        ("PT1M", -1),  # ISO 8601 is for intervals, not for crm_get_msec
        ("fast", -1),
        ("10x", -1),
        (None, -1),
    ],
)
def test_crm_get_msec(text: str | None, ms: int) -> None:
    assert crm_get_msec(text) == ms


def test_invalid_timeout_is_the_default() -> None:
    assert timeout_ms("soon") == 20_000
    assert timeout_ms(None) == 20_000
    assert timeout_ms("45s") == 45_000


# --- a small CIB ----------------------------------------------------------------------------

_CONFIG = """
<primitive id="rsc1" class="ocf" provider="heartbeat" type="IPaddr2">
  <instance_attributes id="rsc1-ia">
    <nvpair id="rsc1-ip" name="ip" value="10.0.0.1"/>
    <nvpair id="rsc1-pw" name="passwd" value="secret"/>
  </instance_attributes>
  <instance_attributes id="rsc1-node2" score="10">
    <rule id="rsc1-node2-rule" score="0">
      <expression id="rsc1-node2-expr" attribute="#uname" operation="eq" value="node2"/>
    </rule>
    <nvpair id="rsc1-ip2" name="ip" value="10.0.0.2"/>
  </instance_attributes>
  <operations>
    <op id="rsc1-mon" name="monitor" interval="10s" timeout="30s"/>
    <op id="rsc1-mon2" name="monitor" interval="1min">
      <meta_attributes id="rsc1-mon2-meta">
        <nvpair id="rsc1-mon2-t" name="timeout" value="45s"/>
      </meta_attributes>
    </op>
    <op id="rsc1-mon3" name="monitor" interval="2min"/>
    <op id="rsc1-start" name="start" interval="0">
      <instance_attributes id="rsc1-start-ia">
        <nvpair id="rsc1-start-ip" name="ip" value="ignored"/>
        <nvpair id="rsc1-start-x" name="start_only" value="yes"/>
      </instance_attributes>
    </op>
    <op id="rsc1-off" name="monitor" interval="5min" enabled="false"/>
  </operations>
</primitive>
<template id="tmpl" class="ocf" provider="pacemaker" type="Dummy">
  <instance_attributes id="tmpl-ia">
    <nvpair id="tmpl-a" name="a" value="from-template"/>
    <nvpair id="tmpl-b" name="b" value="from-template"/>
  </instance_attributes>
</template>
<primitive id="fromtmpl" template="tmpl">
  <instance_attributes id="fromtmpl-ia">
    <nvpair id="fromtmpl-a" name="a" value="own"/>
  </instance_attributes>
</primitive>
<group id="grp">
  <instance_attributes id="grp-ia">
    <nvpair id="grp-x" name="x" value="group"/>
    <nvpair id="grp-y" name="y" value="group"/>
  </instance_attributes>
  <primitive id="member" class="ocf" provider="pacemaker" type="Dummy">
    <instance_attributes id="member-ia">
      <nvpair id="member-y" name="y" value="member"/>
    </instance_attributes>
  </primitive>
</group>
<primitive id="shared-ops" class="ocf" provider="pacemaker" type="Dummy">
  <operations id="ops-default">
    <op id="so-mon" name="monitor" interval="15s" timeout="77s"/>
  </operations>
</primitive>
<primitive id="by-ref" class="ocf" provider="pacemaker" type="Dummy">
  <operations id-ref="ops-default"/>
</primitive>
<primitive id="fence1" class="stonith" type="fence_ipmilan">
  <instance_attributes id="fence1-ia">
    <nvpair id="fence1-ip" name="ipaddr" value="192.168.1.1"/>
    <nvpair id="fence1-hl" name="pcmk_host_list" value="node2"/>
    <nvpair id="fence1-rt" name="pcmk_reboot_timeout" value="60s"/>
    <nvpair id="fence1-pw" name="passwd" value="secret"/>
  </instance_attributes>
</primitive>
<clone id="cl">
  <instance_attributes id="cl-ia">
    <nvpair id="cl-z" name="z" value="clone"/>
  </instance_attributes>
  <primitive id="child" class="ocf" provider="pacemaker" type="Stateful"/>
</clone>
"""


def _cib(
    *,
    ops1: str = "",
    ops2: str = "",
    attrs2: str = "",
    defaults: str = "",
    options: str = "",
) -> Cib:
    def lrm(entries: str) -> str:
        return f'<lrm id="l"><lrm_resources>{entries}</lrm_resources></lrm>'

    xml = f"""<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0">
<configuration>
<crm_config><cluster_property_set id="cib-bootstrap-options">
  <nvpair id="o1" name="stonith-enabled" value="false"/>{options}
</cluster_property_set></crm_config>
<nodes><node id="1" uname="node1"/><node id="2" uname="node2">{attrs2}</node></nodes>
<resources>{_CONFIG}</resources>
<constraints/>{defaults}
</configuration>
<status>
<node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member" expected="member">
{lrm(ops1)}</node_state>
<node_state id="2" uname="node2" in_ccm="true" crmd="online" join="member" expected="member">
{lrm(ops2)}</node_state>
</status>
</cib>"""
    return read_cib(xml.encode(), source="test.xml")


def _entry(
    rsc: str,
    task: str,
    interval: int,
    call: int,
    *,
    digest_: str | None = None,
    extra: str = "",
    rc: int = 0,
) -> str:
    recorded = f' op-digest="{digest_}"' if digest_ is not None else ""
    return (
        f'<lrm_rsc_op id="{rsc}_{task}_{interval}_{call}" operation_key="{rsc}_{task}_{interval}" '
        f'operation="{task}" interval="{interval}" call-id="{call}" rc-code="{rc}" op-status="0" '
        f'transition-key="1:1:0:abc" crm_feature_set="3.16.2"{recorded}{extra}/>'
    )


def _lrm(
    rsc: str, *entries: str, agent: str = 'class="ocf" provider="pacemaker" type="Dummy"'
) -> str:
    return f'<lrm_resource id="{rsc}" {agent}>{"".join(entries)}</lrm_resource>'


def _op(cib: Cib, node: str, op_id: str) -> tuple[str, LrmRscOp]:
    for state in cib.status:
        if state.uname != node:
            continue
        for lrm in state.lrm_resources:
            for op in lrm.ops:
                if op.id == op_id:
                    return lrm.id, op
    raise AssertionError(op_id)


# --- where the parameters come from ---------------------------------------------------------


def test_instance_attributes_and_rules_per_node() -> None:
    cib = _cib()
    assert operation_parameters(cib, "rsc1", "node1", "stop", 0) == {
        "ip": "10.0.0.1",
        "passwd": "secret",
    }
    # On node2 the higher-scored set whose rule matches comes first and wins.
    assert operation_parameters(cib, "rsc1", "node2", "stop", 0)["ip"] == "10.0.0.2"


def test_recurring_op_timeout_precedence() -> None:
    cib = _cib(
        defaults="""<op_defaults><meta_attributes id="opd">
        <nvpair id="opd-t" name="timeout" value="50s"/></meta_attributes></op_defaults>"""
    )
    params = operation_parameters(cib, "rsc1", "node1", "monitor", 10_000)
    assert params["CRM_meta_timeout"] == "30000"  # the op's own attribute
    params = operation_parameters(cib, "rsc1", "node1", "monitor", 60_000)
    assert params["CRM_meta_timeout"] == "45000"  # the op's meta attributes
    params = operation_parameters(cib, "rsc1", "node1", "monitor", 120_000)
    assert params["CRM_meta_timeout"] == "50000"  # op_defaults
    params = operation_parameters(_cib(), "rsc1", "node1", "monitor", 120_000)
    assert params["CRM_meta_timeout"] == "20000"  # Pacemaker's default


def test_disabled_or_unconfigured_recurring_op_gets_the_default_timeout() -> None:
    params = operation_parameters(_cib(), "rsc1", "node1", "monitor", 300_000)
    assert params["CRM_meta_timeout"] == "20000"


def test_non_recurring_ops_carry_no_timeout_and_probes_no_op_params() -> None:
    cib = _cib()
    assert "CRM_meta_timeout" not in operation_parameters(cib, "rsc1", "node1", "monitor", 0)
    assert "start_only" not in operation_parameters(cib, "rsc1", "node1", "monitor", 0)


def test_op_instance_attributes_are_added_but_the_resource_value_wins() -> None:
    params = operation_parameters(_cib(), "rsc1", "node1", "start", 0)
    assert params == {"ip": "10.0.0.1", "passwd": "secret", "start_only": "yes"}


def test_operations_by_id_ref_are_the_referenced_ones() -> None:
    params = operation_parameters(_cib(), "by-ref", "node1", "monitor", 15_000)
    assert params == {"CRM_meta_timeout": "77000"}


def test_template_values_yield_to_the_primitive() -> None:
    params = operation_parameters(_cib(), "fromtmpl", "node1", "start", 0)
    assert params == {"a": "own", "b": "from-template"}


def test_group_and_clone_attributes_are_inherited_the_member_wins() -> None:
    cib = _cib()
    assert operation_parameters(cib, "member", "node1", "start", 0) == {"x": "group", "y": "member"}
    assert operation_parameters(cib, "child:1", "node1", "start", 0) == {"z": "clone"}


def test_rsc_defaults_instance_attributes_come_last() -> None:
    cib = _cib(
        defaults="""<rsc_defaults><instance_attributes id="rd">
        <nvpair id="rd-y" name="y" value="default"/><nvpair id="rd-w" name="w" value="default"/>
        </instance_attributes></rsc_defaults>"""
    )
    params = operation_parameters(cib, "member", "node1", "start", 0)
    assert params == {"x": "group", "y": "member", "w": "default"}


def test_unconfigured_resource_is_a_clear_error() -> None:
    cib = _cib(ops1=_lrm("gone", _entry("gone", "start", 0, 1, digest_="0" * 32)))
    rsc, op = _op(cib, "node1", "gone_start_0_1")
    with pytest.raises(DigestError, match=r"gone_start_0_1.*'gone' is not configured"):
        calculate_digests(cib, "node1", op, rsc)


# --- the three digests ----------------------------------------------------------------------

_START_TEXT = ' <parameters ip="10.0.0.1" passwd="secret" start_only="yes"/>\n'
_MON_TEXT = ' <parameters CRM_meta_timeout="30000" ip="10.0.0.1" passwd="secret"/>\n'


def test_op_digest_of_a_start_and_a_recurring_monitor() -> None:
    cib = _cib(
        ops1=_lrm(
            "rsc1",
            _entry("rsc1", "start", 0, 2, digest_=md5(_START_TEXT)),
            _entry("rsc1", "monitor", 10_000, 3, digest_=md5(_MON_TEXT)),
        )
    )
    rsc, start = _op(cib, "node1", "rsc1_start_0_2")
    assert calculate_digests(cib, "node1", start, rsc).op_digest == md5(_START_TEXT)
    rsc, mon = _op(cib, "node1", "rsc1_monitor_10000_3")
    assert calculate_digests(cib, "node1", mon, rsc).op_digest == md5(_MON_TEXT)
    assert check_digests(cib, "node1", mon, rsc).result is DigestResult.MATCH
    assert digests_changed(cib, "node1", mon, rsc) is None


def test_secure_and_restart_digests_follow_the_recorded_lists() -> None:
    extra = ' op-secure-params=" passwd " op-force-restart=" ip  nothere "'
    cib = _cib(ops1=_lrm("rsc1", _entry("rsc1", "monitor", 10_000, 3, extra=extra)))
    rsc, op = _op(cib, "node1", "rsc1_monitor_10000_3")
    d = calculate_digests(cib, "node1", op, rsc)
    # The secure digest never has the timeout (the controller hashes declared parameters).
    assert d.secure_digest == md5(' <parameters ip="10.0.0.1"/>\n')
    assert d.restart_digest == md5(' <parameters ip="10.0.0.1"/>\n')


def test_no_restart_digest_without_op_force_restart() -> None:
    cib = _cib(ops1=_lrm("rsc1", _entry("rsc1", "start", 0, 3)))
    rsc, op = _op(cib, "node1", "rsc1_start_0_3")
    d = calculate_digests(cib, "node1", op, rsc)
    assert d.restart is None and d.restart_digest is None
    # Without op-secure-params nothing is private.
    assert d.secure_digest == d.op_digest


def test_old_controllers_secure_digest_leaves_out_the_op_parameters() -> None:
    entry = _entry("rsc1", "start", 0, 3, extra=' op-secure-params=" passwd "')
    cib = _cib(ops1=_lrm("rsc1", entry))
    rsc, op = _op(cib, "node1", "rsc1_start_0_3")
    new = calculate_digests(cib, "node1", op, rsc).secure_digest
    assert new == md5(' <parameters ip="10.0.0.1" start_only="yes"/>\n')
    cib = _cib(ops1=_lrm("rsc1", entry.replace("3.16.2", "3.0.14")))
    rsc, op = _op(cib, "node1", "rsc1_start_0_3")
    old = calculate_digests(cib, "node1", op, rsc).secure_digest
    assert old == md5(' <parameters ip="10.0.0.1"/>\n')


def test_old_controllers_secure_digest_of_a_fencing_device_has_no_pcmk_parameters() -> None:
    entry = _entry("fence1", "start", 0, 3, extra=' op-secure-params=" passwd "')
    cib = _cib(ops1=_lrm("fence1", entry.replace("3.16.2", "3.0.9")))
    rsc, op = _op(cib, "node1", "fence1_start_0_3")
    d = calculate_digests(cib, "node1", op, rsc)
    assert d.secure_digest == md5(' <parameters ipaddr="192.168.1.1"/>\n')
    text = ' <parameters ipaddr="192.168.1.1" passwd="secret" pcmk_host_list="node2" '
    assert d.op_digest == md5(text + 'pcmk_reboot_timeout="60s"/>\n')


# --- the verdict ----------------------------------------------------------------------------


def _check(entry: str) -> tuple[DigestResult, str | None, str | None]:
    cib = _cib(ops1=_lrm("rsc1", entry))
    op_id = entry.split('"')[1]
    rsc, op = _op(cib, "node1", op_id)
    check = check_digests(cib, "node1", op, rsc)
    return check.result, check.action, digests_changed(cib, "node1", op, rsc)


def test_entry_without_op_digest_counts_as_changed() -> None:
    result, action, why = _check(_entry("rsc1", "promote", 0, 1))
    assert (result, action) == (DigestResult.UNKNOWN, "restart")
    assert why is not None and "records no op-digest" in why


def test_changed_recurring_op_is_rescheduled() -> None:
    result, action, why = _check(_entry("rsc1", "monitor", 10_000, 3, digest_="0" * 32))
    assert (result, action) == (DigestResult.ALL, "reschedule")
    assert why is not None and "op-digest" in why and "rsc1_monitor_10000_3" in why
    assert md5(_MON_TEXT) in why


def test_changed_reloadable_parameter_reloads() -> None:
    unchanged = md5(' <parameters passwd="secret"/>\n')
    extra = f' op-force-restart=" passwd " op-restart-digest="{unchanged}"'
    result, action, _ = _check(_entry("rsc1", "migrate_from", 0, 3, digest_="0" * 32, extra=extra))
    assert (result, action) == (DigestResult.ALL, "reload")


def test_changed_non_reloadable_parameter_restarts() -> None:
    extra = f' op-force-restart=" ip " op-restart-digest="{"1" * 32}"'
    result, action, why = _check(
        _entry("rsc1", "migrate_from", 0, 3, digest_="0" * 32, extra=extra)
    )
    assert (result, action) == (DigestResult.RESTART, "restart")
    assert why is not None and "op-restart-digest" in why and "ip" in why


def test_changed_op_with_its_own_parameters_restarts_instead_of_reloading() -> None:
    unchanged = md5(' <parameters passwd="secret"/>\n')
    extra = f' op-force-restart=" passwd " op-restart-digest="{unchanged}"'
    result, action, _ = _check(_entry("rsc1", "start", 0, 3, digest_="0" * 32, extra=extra))
    assert (result, action) == (DigestResult.RESTART, "restart")


# --- which history entries are checked ------------------------------------------------------


def _ops(*entries: str) -> list[str]:
    cib = _cib(ops1=_lrm("rsc1", *entries))
    lrm = cib.status[0].lrm_resources[0]
    return [op.id for op in ops_to_check(lrm)]


def test_entries_since_the_last_start_are_checked() -> None:
    got = _ops(
        _entry("rsc1", "monitor", 0, 1, rc=7),
        _entry("rsc1", "start", 0, 2),
        _entry("rsc1", "monitor", 10_000, 3),
        _entry("rsc1", "stop", 0, 4),
        _entry("rsc1", "start", 0, 5),
        _entry("rsc1", "monitor", 10_000, 6),
    )
    assert got == ["rsc1_start_0_5", "rsc1_monitor_10000_6"]


def test_a_stopped_history_is_not_checked() -> None:
    assert _ops(_entry("rsc1", "start", 0, 2), _entry("rsc1", "stop", 0, 3)) == []


def test_without_a_start_a_successful_probe_counts_as_one() -> None:
    got = _ops(_entry("rsc1", "monitor", 0, 1), _entry("rsc1", "monitor", 10_000, 2))
    assert got == ["rsc1_monitor_0_1", "rsc1_monitor_10000_2"]


def test_history_order_is_by_call_id_not_document_order() -> None:
    got = _ops(_entry("rsc1", "monitor", 10_000, 6), _entry("rsc1", "start", 0, 5))
    assert got == ["rsc1_start_0_5", "rsc1_monitor_10000_6"]


# --- the whole status section ---------------------------------------------------------------


def _history(mon_digest: str) -> str:
    return _lrm(
        "rsc1",
        _entry("rsc1", "start", 0, 2, digest_=md5(_START_TEXT)),
        _entry("rsc1", "monitor", 10_000, 3, digest_=mon_digest),
        _entry("rsc1", "monitor", 300_000, 4, digest_="2" * 32),
    )


def test_changed_operations_reports_changes_and_orphaned_recurring_ops() -> None:
    cib = _cib(ops1=_history("1" * 32))
    changes = changed_operations(cib, resource_states(cib))
    assert [(c.node, c.op_id, c.action) for c in changes] == [
        ("node1", "rsc1_monitor_10000_3", "reschedule"),
        ("node1", "rsc1_monitor_300000_4", "cancel"),  # the 5min monitor is disabled
    ]


def test_unchanged_operations_report_nothing_but_the_orphan() -> None:
    cib = _cib(ops1=_history(md5(_MON_TEXT)))
    changes = changed_operations(cib, resource_states(cib))
    assert [c.op_id for c in changes] == ["rsc1_monitor_300000_4"]


def test_standby_nodes_are_not_checked() -> None:
    standby = """<instance_attributes id="n2-ia">
      <nvpair id="n2-sb" name="standby" value="on"/></instance_attributes>"""
    cib = _cib(ops2=_history("1" * 32), attrs2=standby)
    assert changed_operations(cib, resource_states(cib)) == ()
    cib = _cib(ops2=_history("1" * 32))
    assert {c.node for c in changed_operations(cib, resource_states(cib))} == {"node2"}


def test_maintenance_cancels_recurring_operations() -> None:
    maint = """<instance_attributes id="n2-ia">
      <nvpair id="n2-m" name="maintenance" value="true"/></instance_attributes>"""
    cib = _cib(ops2=_history(md5(_MON_TEXT)), attrs2=maint)
    actions = {(c.op_id, c.action) for c in changed_operations(cib, resource_states(cib))}
    assert actions == {
        ("rsc1_monitor_10000_3", "cancel"),
        ("rsc1_monitor_300000_4", "cancel"),
        # Non-recurring entries are still compared: node2's ip differs from the recorded one.
        ("rsc1_start_0_2", "restart"),
    }


def test_digester_reuses_work_and_agrees_with_the_functions() -> None:
    cib = _cib(ops1=_history("1" * 32))
    d = Digester(cib)
    rsc, op = _op(cib, "node1", "rsc1_monitor_10000_3")
    assert d.calculate("node1", op, rsc) == calculate_digests(cib, "node1", op, rsc)
    assert d.node_attributes("node2")["#uname"] == "node2"
    assert d.node_attributes("node1")["#kind"] == "cluster"


def test_sanitized_mode_ignores_changes_only_in_private_parameters() -> None:
    # The recorded secure digest still matches (passwd left out) but op-digest does not, as
    # when a password was replaced by "****" before the CIB was shared.
    secure = md5(' <parameters ip="10.0.0.1"/>\n')
    extra = f' op-secure-params=" passwd " op-secure-digest="{secure}"'
    cib = _cib(
        ops1=_lrm("rsc1", _entry("rsc1", "monitor", 10_000, 3, digest_="0" * 32, extra=extra))
    )
    rsc, op = _op(cib, "node1", "rsc1_monitor_10000_3")
    check = check_digests(cib, "node1", op, rsc, sanitized=True)
    assert (check.result, check.action) == (DigestResult.PRIVATE_ONLY, None)
    assert digests_changed(cib, "node1", op, rsc, sanitized=True) is None
    # A live cluster takes it as a changed definition.
    assert check_digests(cib, "node1", op, rsc).action == "reschedule"


def test_cluster_maintenance_mode_cancels_recurring_operations() -> None:
    cib = _cib(
        ops1=_history(md5(_MON_TEXT)),
        options='<nvpair id="o2" name="maintenance-mode" value="true"/>',
    )
    actions = [(c.op_id, c.action) for c in changed_operations(cib, resource_states(cib))]
    assert actions == [("rsc1_monitor_10000_3", "cancel"), ("rsc1_monitor_300000_4", "cancel")]


def test_orphaned_recurring_ops_are_left_alone_without_stop_orphan_actions() -> None:
    cib = _cib(
        ops1=_history(md5(_MON_TEXT)),
        options='<nvpair id="o2" name="stop-orphan-actions" value="false"/>',
    )
    assert changed_operations(cib, resource_states(cib)) == ()


def test_missing_op_digest_with_op_parameters_still_reloads() -> None:
    # rsc_action_digest_cmp: a missing op-digest is "unknown", which the op's own parameters
    # do not turn into a restart.
    unchanged = md5(' <parameters passwd="secret"/>\n')
    extra = f' op-force-restart=" passwd " op-restart-digest="{unchanged}"'
    result, action, _ = _check(_entry("rsc1", "start", 0, 3, extra=extra))
    assert (result, action) == (DigestResult.UNKNOWN, "reload")


def test_a_failure_whose_definition_changed_clears_the_fail_count() -> None:
    cib = _cib(
        ops1=_lrm(
            "rsc1",
            _entry("rsc1", "start", 0, 2, digest_=md5(_START_TEXT)),
            _entry("rsc1", "monitor", 10_000, 3, digest_="1" * 32, rc=1),
            _entry("rsc1", "monitor", 10_000, 4, digest_=md5(_MON_TEXT), rc=1),
            _entry("rsc1", "monitor", 10_000, 5, rc=1),
            _entry("rsc1", "stop", 0, 6, digest_="1" * 32),
        )
    )
    d = Digester(cib)
    ops = {op.id: op for op in cib.status[0].lrm_resources[0].ops}
    assert d.clears_failure("node1", ops["rsc1_monitor_10000_3"], "rsc1")
    assert not d.clears_failure("node1", ops["rsc1_monitor_10000_4"], "rsc1")  # unchanged
    assert not d.clears_failure("node1", ops["rsc1_monitor_10000_5"], "rsc1")  # no digest
    assert not d.clears_failure("node1", ops["rsc1_stop_0_6"], "rsc1")  # only start/monitor


def test_restart_digest_without_a_list_hashes_every_parameter() -> None:
    cib = _cib(ops1=_lrm("rsc1", _entry("rsc1", "stop", 0, 3, extra=' op-restart-digest="x"')))
    rsc, op = _op(cib, "node1", "rsc1_stop_0_3")
    d = calculate_digests(cib, "node1", op, rsc)
    assert d.restart_digest == md5(' <parameters ip="10.0.0.1" passwd="secret"/>\n')


def test_a_recurring_op_whose_restart_digest_changed_is_rescheduled() -> None:
    extra = f' op-restart-digest="{"1" * 32}"'
    result, action, _ = _check(_entry("rsc1", "monitor", 10_000, 3, digest_="0" * 32, extra=extra))
    assert (result, action) == (DigestResult.RESTART, "reschedule")
