"""The operator operations of hastack.crm.operations, on small CIB trees: the constraints and
nvpairs they write (crm_resource's and pcs's ids), what they refuse, and the pins they list,
expire and clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from hastack.crm.cib.edit import apply_edit
from hastack.crm.haresources import convert_haresources
from hastack.crm.operations import (
    SCHEMA,
    OperationError,
    apply_operation,
    clear_moved_pins,
    expire_pins,
    list_constraints,
    list_pins,
    operation_edit,
    validate_operation,
)

NOW = datetime(2026, 12, 5, 21, 54, 2, tzinfo=UTC)

OP_START = (
    'operation_key="{r}_start_0" operation="start" transition-key="1:1:0:{u}" '
    'transition-magic="0:0;1:1:0:{u}" call-id="{c}" rc-code="0" op-status="0" interval="0"'
)
UUID = "aaaaaaaa-0000-0000-0000-000000000000"


def history(rsc: str, node: str, call: int = 3, extra: str = "") -> str:
    start = OP_START.format(r=rsc, u=UUID, c=call)
    return (
        f'<lrm_resource id="{rsc}" class="ocf" provider="heartbeat" type="Dummy">'
        f'<lrm_rsc_op id="{rsc}_last_0" {start} on_node="{node}"/>{extra}</lrm_resource>'
    )


def cib(node1_lrm: str = "", node2_lrm: str = "", transient2: str = "") -> bytes:
    return f"""<cib validate-with="pacemaker-3.7" admin_epoch="0" epoch="5" num_updates="2"
      have-quorum="1">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node1"/>
      <node id="2" uname="node2"/>
    </nodes>
    <resources>
      <primitive id="db" class="ocf" provider="heartbeat" type="Dummy">
        <operations><op id="db-monitor-interval-10s" name="monitor" interval="10s"/></operations>
      </primitive>
      <group id="g">
        <primitive id="a" class="ocf" provider="heartbeat" type="Dummy"/>
        <primitive id="b" class="ocf" provider="heartbeat" type="Dummy"/>
      </group>
      <clone id="ms">
        <meta_attributes id="ms-m"><nvpair id="ms-m-p" name="promotable" value="true"/>
        </meta_attributes>
        <primitive id="st" class="ocf" provider="pacemaker" type="Stateful"/>
      </clone>
    </resources>
    <constraints>
      <rsc_order id="o1" first="db" then="g"/>
    </constraints>
  </configuration>
  <status>
    <node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member"
        expected="member"><lrm id="1"><lrm_resources>{node1_lrm}</lrm_resources></lrm>
    </node_state>
    <node_state id="2" uname="node2" in_ccm="true" crmd="online" join="member"
        expected="member">{transient2}<lrm id="2"><lrm_resources>{node2_lrm}</lrm_resources></lrm>
    </node_state>
  </status>
</cib>""".encode()


def tree(data: bytes | None = None) -> etree._Element:
    return etree.fromstring(data if data is not None else cib(history("db", "node1")))


def run(root: etree._Element, **op: Any) -> str:
    return apply_operation(root, op, NOW)


def location(root: etree._Element, ident: str) -> etree._Element:
    found = root.find(f"configuration/constraints/rsc_location[@id='{ident}']")
    assert found is not None, ident
    return found


def canonical(element: etree._Element) -> str:
    copy = etree.fromstring(etree.tostring(element))
    copy.tail = None
    for e in copy.iter():
        e.tail = None
        if len(e):
            e.text = None
    return etree.tostring(copy, method="c14n").decode()


# --- the operation dict ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        ({"op": "resource-fly"}, "unknown operation 'resource-fly'"),
        ({"resource": "db"}, 'needs an "op"'),
        ({"op": "resource-move"}, "'resource' is required"),
        ({"op": "resource-move", "resource": "db", "speed": 3}, "unknown field 'speed'"),
        ({"op": "resource-move", "resource": 3}, "'resource' must be a string"),
        ({"op": "resource-move", "resource": "db", "until_moved": "yes"}, "true or false"),
        ({"op": "resource-create", "id": "x", "agent": "lsb:x", "params": {"a": 1}}, "object"),
        ({"op": "resource-move", "resource": ""}, "'resource' is empty"),
        (["op"], "a JSON object"),
    ],
)
def test_malformed_operations_are_refused_by_name(operation: Any, message: str) -> None:
    root = tree()
    before = etree.tostring(root)
    with pytest.raises(OperationError, match=message):
        apply_operation(root, operation, NOW)
    assert etree.tostring(root) == before


def test_restart_is_not_a_cib_edit() -> None:
    assert validate_operation({"op": "resource-restart", "resource": "db"})
    with pytest.raises(OperationError, match="running cluster"):
        operation_edit({"op": "resource-restart", "resource": "db"}, NOW)


# --- moves and bans ----------------------------------------------------------------------


def test_move_with_lifetime_writes_crm_resources_rule() -> None:
    root = tree()
    summary = run(root, op="resource-move", resource="db", node="node2", lifetime="PT10M")
    assert "until 2026-12-05 22:04:02Z" in summary
    assert canonical(location(root, "cli-prefer-db")) == (
        '<rsc_location id="cli-prefer-db" role="Started" rsc="db">'
        '<rule boolean-op="and" id="cli-prefer-rule-db" score="INFINITY">'
        '<expression attribute="#uname" id="cli-prefer-expr-db" operation="eq" type="string"'
        ' value="node2"></expression>'
        '<date_expression end="2026-12-05 22:04:02Z" id="cli-prefer-lifetime-end-db"'
        ' operation="lt"></date_expression></rule></rsc_location>'
    )


def test_move_without_node_bans_where_it_runs() -> None:
    root = tree()
    assert run(root, op="resource-move", resource="db") == "moved db away from node1"
    ban = location(root, "cli-ban-db-on-node1")
    assert dict(ban.attrib) == {
        "id": "cli-ban-db-on-node1",
        "rsc": "db",
        "role": "Started",
        "node": "node1",
        "score": "-INFINITY",
    }


def test_move_force_also_bans_the_current_node_and_replaces_old_pins() -> None:
    root = tree()
    run(root, op="resource-ban", resource="db", node="node2")
    run(root, op="resource-move", resource="db", node="node2", force=True)
    ids = [c["id"] for c in list_constraints(root)]
    assert ids == ["o1", "cli-prefer-db", "cli-ban-db-on-node1"]  # the ban on node2 is gone


def test_move_refusals() -> None:
    root = tree()
    with pytest.raises(OperationError, match="already active on node1"):
        run(root, op="resource-move", resource="db", node="node1")
    with pytest.raises(OperationError, match="not active anywhere"):
        run(root, op="resource-move", resource="a")
    with pytest.raises(OperationError, match="no node 'node9'; the nodes are: node1, node2"):
        run(root, op="resource-ban", resource="db", node="node9")
    with pytest.raises(OperationError, match="no resource 'web'; the resources are: a, b, db"):
        run(root, op="resource-move", resource="web", node="node2")
    with pytest.raises(OperationError, match="not promotable"):
        run(root, op="resource-move", resource="db", node="node2", promoted=True)
    for bad in ("10M", "PT0S", "P", "PTXM"):
        with pytest.raises(OperationError, match="lifetime"):
            run(root, op="resource-ban", resource="db", node="node2", lifetime=bad)


def test_promoted_ban_uses_the_promoted_role() -> None:
    root = tree()
    run(root, op="resource-ban", resource="ms", node="node2", promoted=True, lifetime="PT1H")
    ban = location(root, "cli-ban-ms-on-node2")
    assert ban.get("role") == "Promoted"
    assert ban.find("rule").get("id") == "cli-ban-ms-on-node2-rule"
    assert ban.find("rule/date_expression").get("end") == "2026-12-05 22:54:02Z"


def test_clear_removes_moves_and_bans_of_one_node_or_all() -> None:
    root = tree()
    run(root, op="resource-move", resource="db", node="node2")
    run(root, op="resource-ban", resource="db", node="node1")
    assert "no move or ban" not in run(root, op="resource-clear", resource="db", node="node1")
    assert [c["id"] for c in list_constraints(root)] == ["o1", "cli-prefer-db"]
    run(root, op="resource-clear", resource="db")
    assert [c["id"] for c in list_constraints(root)] == ["o1"]
    assert "no move or ban to clear" in run(root, op="resource-clear", resource="db")


def test_pins_expire_when_their_lifetime_ends() -> None:
    root = tree()
    run(root, op="resource-move", resource="db", node="node2", lifetime="PT10M")
    run(root, op="resource-ban", resource="g", node="node1", lifetime="PT1H")
    pins = list_pins(root, NOW + timedelta(minutes=10))
    assert [(p["id"], p["expired"]) for p in pins] == [
        ("cli-prefer-db", True),
        ("cli-ban-g-on-node1", False),
    ]
    later = NOW + timedelta(hours=2)
    assert "cleared cli-ban-g-on-node1" in apply_operation(
        root, {"op": "resource-clear", "resource": "g", "expired": True}, later
    )
    assert [p["id"] for p in list_pins(root, NOW)] == ["cli-prefer-db"]  # db's is not cleared
    run(root, op="resource-ban", resource="g", node="node1", lifetime="PT1H")
    assert expire_pins(root, NOW + timedelta(minutes=9, seconds=59)) == []
    assert expire_pins(root, NOW + timedelta(minutes=10)) == ["cli-prefer-db"]
    assert expire_pins(root, NOW + timedelta(hours=2)) == ["cli-ban-g-on-node1"]


def test_until_moved_pins_are_marked_and_cleared_once_moved() -> None:
    root = tree()
    run(root, op="resource-move", resource="db", node="node2", until_moved=True)
    rule = location(root, "cli-prefer-db").find("rule")
    marker = rule.findall("expression")[1]
    assert (marker.get("attribute"), marker.get("operation")) == (
        "#hastack-until-moved",
        "not_defined",
    )
    assert list_pins(root, NOW)[0]["until_moved"] is True
    assert clear_moved_pins(root, NOW) == []  # still on node1
    moved = tree(cib(node2_lrm=history("db", "node2")))
    run(moved, op="resource-ban", resource="g", node="node2", until_moved=True)
    moved_constraints = moved.find("configuration/constraints")
    moved_constraints.append(location(root, "cli-prefer-db"))
    # db runs on node2 now: its move happened; g runs nowhere: its ban stays
    assert clear_moved_pins(moved, NOW) == ["cli-prefer-db"]
    assert [c["id"] for c in list_constraints(moved)] == ["o1", "cli-ban-g-on-node2"]


# --- resources ---------------------------------------------------------------------------


def test_create_writes_pcs_ids_and_a_valid_cib() -> None:
    op = {
        "op": "resource-create",
        "id": "web",
        "agent": "ocf:heartbeat:IPaddr2",
        "params": {"ip": "10.0.0.5"},
        "meta": {"resource-stickiness": "100"},
        "ops": [{"name": "monitor", "interval": "10s", "timeout": "20s"}],
        "group": "g",
        "before": "b",
    }
    result = apply_edit(cib(), "cib", operation_edit(op, NOW))
    assert not [p for p in result.new_problems if p.severity == "error"]
    root = etree.fromstring(result.data)
    members = [p.get("id") for p in root.find("configuration/resources/group")]
    assert members == ["a", "web", "b"]
    web = root.find(".//primitive[@id='web']")
    assert web.find("instance_attributes/nvpair").get("id") == "web-instance_attributes-ip"
    assert web.find("meta_attributes").get("id") == "web-meta_attributes"
    assert web.find("operations/op").get("id") == "web-monitor-interval-10s"
    assert web.find("operations/op").get("timeout") == "20s"


def test_create_clone_promotable_and_new_group() -> None:
    root = tree()
    run(root, op="resource-create", id="ping", agent="ocf:pacemaker:ping", clone=True)
    run(root, op="resource-create", id="s2", agent="ocf:pacemaker:Stateful", promotable=True)
    run(root, op="resource-create", id="ip", agent="ocf:hastack:IPaddr2", group="ng")
    run(root, op="resource-create", id="fence", agent="stonith:fence_dummy")
    resources = root.find("configuration/resources")
    assert resources.find("clone[@id='ping-clone']/primitive").get("id") == "ping"
    promotable = resources.find("clone[@id='s2-clone']")
    assert promotable.find("meta_attributes/nvpair").get("name") == "promotable"
    assert resources.find("group[@id='ng']/primitive").get("provider") == "hastack"
    assert resources.find("primitive[@id='fence']").get("class") == "stonith"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "db", "agent": "ocf:heartbeat:Dummy"}, "already used"),
        ({"id": "x", "agent": "nfs"}, "no standard"),
        ({"id": "x", "agent": "ocf:Dummy"}, "ocf needs a provider"),
        ({"id": "1x", "agent": "lsb:x"}, "not a valid id"),
        ({"id": "x", "agent": "lsb:x", "group": "g", "after": "zz"}, "not a member of group g"),
        ({"id": "x", "agent": "lsb:x", "group": "db"}, "is a primitive, not a group"),
        ({"id": "x", "agent": "lsb:x", "group": "g", "clone": True}, "clone the whole group"),
        ({"id": "x", "agent": "lsb:x", "ops": [{"name": "monitor", "interval": "ten"}]}, "ten"),
    ],
)
def test_create_refusals(fields: dict[str, Any], message: str) -> None:
    root = tree()
    before = etree.tostring(root)
    with pytest.raises(OperationError, match=message):
        run(root, op="resource-create", **fields)
    assert etree.tostring(root) == before


def test_delete_removes_constraints_and_emptied_containers() -> None:
    root = tree()
    run(root, op="resource-ban", resource="db", node="node2")
    summary = run(root, op="resource-delete", resource="db")
    assert "constraint o1" in summary and "cli-ban-db-on-node2" in summary
    assert list_constraints(root) == []
    run(root, op="resource-delete", resource="a")
    run(root, op="resource-delete", resource="b")  # the last member takes the group along
    run(root, op="resource-delete", resource="st")  # and the clone holding it
    assert list(root.find("configuration/resources")) == []


def test_update_params_meta_and_ops() -> None:
    root = tree()
    run(
        root,
        op="resource-update",
        resource="db",
        params={"state": "/tmp/x"},
        meta={"migration-threshold": "3"},
        ops=[{"name": "monitor", "interval": "10s", "timeout": "30s"}, {"name": "start"}],
    )
    db = root.find(".//primitive[@id='db']")
    assert db.find("operations/op").get("timeout") == "30s"
    assert [o.get("id") for o in db.iterfind("operations/op")] == [
        "db-monitor-interval-10s",
        "db-start-interval-0s",
    ]
    run(
        root,
        op="resource-update",
        resource="db",
        params={"state": None},
        remove_ops=[{"name": "start"}],
    )
    assert db.find("instance_attributes/nvpair") is None
    assert len(db.findall("operations/op")) == 1
    with pytest.raises(OperationError, match="no stop operation"):
        run(root, op="resource-update", resource="db", remove_ops=[{"name": "stop"}])


def test_enable_disable_manage_unmanage_and_pins() -> None:
    root = tree()
    run(root, op="resource-disable", resource="db")
    run(root, op="resource-unmanage", resource="g")
    run(root, op="node-standby", node="node2")
    run(root, op="node-maintenance", node="node1", lifetime="reboot")
    run(root, op="property-set", name="maintenance-mode", value="true")
    kinds = sorted(
        (p["kind"], p.get("resource") or p.get("node") or "") for p in list_pins(root, NOW)
    )
    assert kinds == [
        ("disabled", "db"),
        ("maintenance", "node1"),
        ("maintenance-mode", ""),
        ("standby", "node2"),
        ("unmanaged", "g"),
    ]
    nvpair = root.find(".//primitive[@id='db']/meta_attributes/nvpair")
    assert (nvpair.get("id"), nvpair.get("value")) == ("db-meta_attributes-target-role", "Stopped")
    run(root, op="resource-enable", resource="db")
    run(root, op="resource-manage", resource="g")
    run(root, op="node-unstandby", node="node2")
    run(root, op="node-maintenance", node="node1", on=False)
    run(root, op="property-delete", name="maintenance-mode")
    assert list_pins(root, NOW) == []


def test_node_attributes_as_crm_attribute() -> None:
    root = tree()
    run(root, op="node-standby", node="node2", lifetime="reboot")
    pair = root.find("status/node_state[@id='2']/transient_attributes/instance_attributes/nvpair")
    assert (pair.get("id"), pair.get("name"), pair.get("value")) == (
        "status-2-standby",
        "standby",
        "on",
    )
    run(root, op="node-attribute", node="node1", name="site", value="east")
    assert root.find("configuration/nodes/node/instance_attributes/nvpair").get("id") == (
        "nodes-1-site"
    )
    run(root, op="node-attribute", node="node1", name="site", value=None)
    assert root.find("configuration/nodes/node/instance_attributes/nvpair") is None
    with pytest.raises(OperationError, match="forever or reboot"):
        run(root, op="node-standby", node="node1", lifetime="always")


def test_properties_and_defaults() -> None:
    root = tree()
    with pytest.raises(
        OperationError, match=r"unknown cluster option 'stonith-enable'.*stonith-enabled"
    ):
        run(root, op="property-set", name="stonith-enable", value="true")
    run(root, op="property-set", name="my-option", value="1", force=True)
    run(root, op="property-set", name="no-quorum-policy", value="ignore")
    names = [p.get("id") for p in root.iterfind("configuration/crm_config//nvpair")]
    assert "cib-bootstrap-options-no-quorum-policy" in names
    assert "cib-bootstrap-options-my-option" in names
    run(root, op="rsc-defaults-set", name="resource-stickiness", value="100")
    run(root, op="op-defaults-set", name="timeout", value="30s")
    assert root.find("configuration/rsc_defaults/meta_attributes").get("id") == "rsc-options"
    assert root.find("configuration/op_defaults/meta_attributes").get("id") == "op-options"


# --- constraints -------------------------------------------------------------------------


def test_constraints_get_pcs_ids_and_list() -> None:
    root = tree()
    run(root, op="constraint-location", resource="db", node="node1", score="100")
    run(
        root,
        op="constraint-location",
        resource_pattern="^d",
        node="node2",
        score="-50",
    )
    run(root, op="constraint-colocation", resource="g", **{"with": "db"})
    run(root, op="constraint-order", first="g", then="ms", kind="optional", symmetrical=False)
    listed = {c["id"]: c for c in list_constraints(root)}
    assert listed["location-db-node1-100"]["score"] == "100"
    assert listed["location-.d-node2--50"]["rsc-pattern"] == "^d"
    assert listed["colocation-g-db-INFINITY"]["with-rsc"] == "db"
    order = listed["order-g-ms-optional"]
    assert (order["kind"], order["symmetrical"], order["type"]) == ("Optional", "false", "order")
    run(root, op="constraint-remove", id="order-g-ms-optional")
    with pytest.raises(OperationError, match="no constraint 'zz'; the constraints are: "):
        run(root, op="constraint-remove", id="zz")
    with pytest.raises(OperationError, match="not a score"):
        run(root, op="constraint-location", resource="db", node="node1", score="lots")
    with pytest.raises(OperationError, match="not one of Mandatory"):
        run(root, op="constraint-order", first="g", then="db", kind="Sometimes")


# --- status edits ------------------------------------------------------------------------


FAILED = (
    '<lrm_rsc_op id="db_last_failure_0" operation_key="db_monitor_10000" operation="monitor" '
    f'transition-key="2:1:0:{UUID}" call-id="4" rc-code="7" op-status="0" interval="10000" '
    'on_node="node2"/>'
)
FAILCOUNT = (
    '<transient_attributes id="2"><instance_attributes id="status-2">'
    '<nvpair id="status-2-fc" name="fail-count-db#monitor_10000" value="1"/>'
    '<nvpair id="status-2-lf" name="last-failure-db#monitor_10000" value="1700000000"/>'
    '<nvpair id="status-2-pingd" name="pingd" value="1"/>'
    "</instance_attributes></transient_attributes>"
)


def test_cleanup_forgets_failures_only() -> None:
    root = tree(cib(history("a", "node1"), history("db", "node2", extra=FAILED), FAILCOUNT))
    summary = run(root, op="resource-cleanup", resource="db")
    assert "history of db on node2" in summary
    assert root.find(".//lrm_resource[@id='db']") is None
    assert root.find(".//lrm_resource[@id='a']") is not None
    names = [p.get("name") for p in root.iterfind(".//transient_attributes//nvpair")]
    assert names == ["pingd"]
    assert "nothing to clean up" in run(root, op="resource-cleanup", resource="a")


def test_cleanup_of_one_operation_and_refresh() -> None:
    root = tree(cib(node2_lrm=history("db", "node2", extra=FAILED), transient2=FAILCOUNT))
    run(root, op="resource-cleanup", resource="db", operation="monitor", interval="10s")
    ops = [o.get("id") for o in root.iterfind(".//lrm_resource[@id='db']/lrm_rsc_op")]
    assert ops == ["db_last_0"]
    run(root, op="resource-refresh", resource="db", node="node2")
    assert root.find(".//lrm_resource[@id='db']") is None
    with pytest.raises(OperationError, match="give the operation too"):
        run(root, op="resource-cleanup", resource="db", interval="10s")


# --- R1's hb_standby and hb_takeover ------------------------------------------------------


def r1_cib() -> etree._Element:
    data = convert_haresources(
        "node1 10.0.0.10 httpd\nnode2 10.0.0.20 smb\n", "haresources", "on", ["node1", "node2"]
    )
    root = etree.fromstring(data)
    status = root.find("status")
    for ident, groups in (("node1", ("IPaddr2_10.0.0.10", "httpd")), ("node2", ())):
        state = etree.SubElement(
            status,
            "node_state",
            id=ident,
            uname=ident,
            in_ccm="true",
            crmd="online",
            join="member",
            expected="member",
        )
        lrm = etree.SubElement(etree.SubElement(state, "lrm", id=ident), "lrm_resources")
        for n, rsc in enumerate(groups):
            lrm.append(etree.fromstring(history(rsc, ident, call=n + 2)))
    return root


def test_standby_local_bans_the_groups_at_home_until_moved() -> None:
    root = r1_cib()
    assert run(root, op="standby", node="node1", which="foreign") == (
        "node1 runs no foreign resources to give up"
    )
    summary = run(root, op="standby", node="node1", which="local")
    assert summary == "node1 gives up group_1 (banned until moved)"
    pins = list_pins(root, NOW)
    assert [(p["id"], p["until_moved"]) for p in pins] == [("cli-ban-group_1-on-node1", True)]


def test_standby_needs_another_online_node() -> None:
    root = r1_cib()
    run(root, op="node-standby", node="node2")
    with pytest.raises(OperationError, match="no other node is online"):
        run(root, op="standby", node="node1")


def test_takeover_prefers_this_node_until_moved_and_lifts_its_bans() -> None:
    root = r1_cib()
    run(root, op="resource-ban", resource="group_2", node="node1")
    summary = run(root, op="takeover", node="node1", which="foreign")
    assert summary == "node1 takes over group_2 (preferred until moved)"
    pins = list_pins(root, NOW)
    assert [(p["id"], p["node"], p["until_moved"]) for p in pins] == [
        ("cli-prefer-group_2", "node1", True)
    ]
    assert run(root, op="takeover", node="node1", which="local") == (
        "node1 already runs every local resource"
    )


# --- fuzz ----------------------------------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(["db", "g", "node1", "node2", "PT10M", "INFINITY", "", "x", "ms"]),
    st.dictionaries(st.sampled_from(["a", "name", "interval"]), st.sampled_from(["1", "10s"])),
    st.lists(
        st.dictionaries(st.sampled_from(["name", "interval"]), st.sampled_from(["monitor", "5s"]))
    ),
)


@st.composite
def operations(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from([*SCHEMA, "bogus"]))
    fields = [*SCHEMA.get(name, {}), "extra"]
    chosen = draw(st.lists(st.sampled_from(fields), unique=True))
    return {"op": name, **{f: draw(_values) for f in chosen}}


@settings(max_examples=300, deadline=None)
@given(operations())
def test_any_operation_applies_or_is_refused_cleanly(operation: dict[str, Any]) -> None:
    root = tree()
    before = etree.tostring(root)
    try:
        summary = apply_operation(root, operation, NOW)
    except OperationError as exc:
        assert str(exc)
        assert etree.tostring(root) == before
    else:
        assert isinstance(summary, str) and summary
