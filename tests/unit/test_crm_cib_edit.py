"""hastack.crm.cib.edit: cibadmin's, crm_attribute's and crm_resource's edits, all or nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from hastack.crm.cib.edit import (
    AttributeOwner,
    EditError,
    apply_edit,
    create,
    delete,
    get_attribute,
    modify,
    parse_fragment,
    query,
    replace,
    set_attribute,
)
from hastack.crm.cib.validate import DEFAULT_SCHEMA_DIR

CIB = b"""<cib validate-with="pacemaker-3.7" admin_epoch="1" epoch="3" num_updates="7">
  <configuration>
    <crm_config>
      <cluster_property_set id="cib-bootstrap-options">
        <nvpair id="cib-bootstrap-options-stonith-enabled" name="stonith-enabled" value="false"/>
      </cluster_property_set>
    </crm_config>
    <nodes>
      <node id="1" uname="node1"/>
      <node id="2" uname="node2">
        <instance_attributes id="nodes-2"><nvpair id="nodes-2-rack" name="rack" value="a"/>
        </instance_attributes>
        <instance_attributes id="n2-night">
          <rule id="n2-night-r" score="0"><date_expression id="n2-night-d" operation="gt"
            start="2030-01-01"/></rule>
          <nvpair id="n2-night-rack" name="rack" value="b"/>
        </instance_attributes>
      </node>
    </nodes>
    <resources>
      <group id="web">
        <primitive id="ip" class="ocf" provider="heartbeat" type="IPaddr2">
          <instance_attributes id="ip-p"><nvpair id="ip-p-ip" name="ip" value="10.0.0.9"/>
          </instance_attributes>
          <operations><op id="ip-mon" name="monitor" interval="10s"/></operations>
        </primitive>
        <primitive id="httpd" class="lsb" type="apache2"/>
      </group>
      <primitive id="db" class="ocf" provider="heartbeat" type="Dummy"/>
    </resources>
    <constraints>
      <rsc_location id="loc" rsc="web" node="node2" score="100"/>
      <rsc_order id="ord" first="db" then="web"/>
    </constraints>
  </configuration>
  <status>
    <node_state id="2" uname="node2" in_ccm="true" crmd="online" join="member" expected="member">
      <transient_attributes id="2">
        <instance_attributes id="status-2">
          <nvpair id="status-2-pingd" name="pingd" value="100"/>
        </instance_attributes>
      </transient_attributes>
    </node_state>
  </status>
</cib>
"""


def tree() -> etree._Element:
    return etree.fromstring(CIB)


def nvpair(root: etree._Element, ident: str) -> etree._Element | None:
    found = root.xpath(f'//nvpair[@id="{ident}"]')
    return found[0] if found else None


def need_schemas() -> None:
    if not (DEFAULT_SCHEMA_DIR / "pacemaker-3.7.rng").exists():
        pytest.skip("Debian's pacemaker-schemas is not installed: no schema to validate against")


# --- attributes ------------------------------------------------------------------------------


def test_a_new_cluster_option_is_named_as_crm_attribute_names_it() -> None:
    root = tree()
    summary = set_attribute(root, AttributeOwner("property"), "no-quorum-policy", "ignore")
    pair = nvpair(root, "cib-bootstrap-options-no-quorum-policy")
    assert pair is not None and pair.get("value") == "ignore"
    assert pair.getparent().get("id") == "cib-bootstrap-options"
    assert "no-quorum-policy=ignore" in summary


def test_an_existing_option_is_updated_in_place() -> None:
    root = tree()
    set_attribute(root, AttributeOwner("property"), "stonith-enabled", "true")
    assert len(root.xpath('//nvpair[@name="stonith-enabled"]')) == 1
    assert nvpair(root, "cib-bootstrap-options-stonith-enabled").get("value") == "true"


def test_deleting_an_option_and_deleting_one_that_is_not_set() -> None:
    root = tree()
    set_attribute(root, AttributeOwner("property"), "stonith-enabled", None)
    assert nvpair(root, "cib-bootstrap-options-stonith-enabled") is None
    summary = set_attribute(root, AttributeOwner("property"), "stonith-enabled", None)
    assert "nothing to delete" in summary


def test_permanent_and_transient_node_attributes() -> None:
    root = tree()
    set_attribute(root, AttributeOwner("node", "node1"), "standby", "on")
    assert nvpair(root, "nodes-1-standby").getparent().getparent().get("uname") == "node1"
    set_attribute(root, AttributeOwner("node", "node2", lifetime="reboot"), "temp", "5")
    pair = nvpair(root, "status-2-temp")
    assert pair is not None and pair.getparent().get("id") == "status-2"
    assert pair.getparent().getparent().tag == "transient_attributes"


def test_a_transient_attribute_needs_a_node_the_cluster_has_seen() -> None:
    with pytest.raises(EditError, match="no entry in the status section"):
        set_attribute(tree(), AttributeOwner("node", "node1", lifetime="reboot"), "x", "1")


def test_an_unknown_node_lists_the_nodes() -> None:
    with pytest.raises(EditError, match=r"no node named 'node9'.*node1, node2"):
        set_attribute(tree(), AttributeOwner("node", "node9"), "x", "1")


def test_an_attribute_in_two_sets_is_ambiguous_until_a_set_is_chosen() -> None:
    root = tree()
    with pytest.raises(EditError, match=r"2 attributes named 'rack'.*--set"):
        set_attribute(root, AttributeOwner("node", "node2"), "rack", "c")
    set_attribute(root, AttributeOwner("node", "node2"), "rack", "c", set_id="n2-night")
    assert nvpair(root, "n2-night-rack").get("value") == "c"
    assert nvpair(root, "nodes-2-rack").get("value") == "a"
    values = get_attribute(root, AttributeOwner("node", "node2"), "rack")
    assert values == [("nodes-2", "a"), ("n2-night", "c")]


def test_resource_parameters_and_meta_attributes() -> None:
    root = tree()
    set_attribute(root, AttributeOwner("resource", "ip"), "cidr_netmask", "24")
    # a set with the tools' id is made beside the existing one, as crm_resource does
    pair = nvpair(root, "ip-instance_attributes-cidr_netmask")
    assert pair is not None and pair.getparent().getparent().get("id") == "ip"
    set_attribute(root, AttributeOwner("resource", "db", meta=True), "target-role", "Stopped")
    pair = nvpair(root, "db-meta_attributes-target-role")
    assert pair is not None and pair.getparent().getparent().get("id") == "db"
    set_attribute(root, AttributeOwner("resource", "web", meta=True), "is-managed", "false")
    assert nvpair(root, "web-meta_attributes-is-managed") is not None


def test_a_group_has_no_parameters() -> None:
    with pytest.raises(EditError, match="only primitives and templates have parameters"):
        set_attribute(tree(), AttributeOwner("resource", "web"), "ip", "1")


def test_resource_and_operation_defaults() -> None:
    root = tree()
    set_attribute(root, AttributeOwner("rsc_defaults"), "resource-stickiness", "100")
    set_attribute(root, AttributeOwner("op_defaults"), "timeout", "30s")
    assert nvpair(root, "rsc-options-resource-stickiness") is not None
    assert nvpair(root, "op-options-timeout").getparent().getparent().tag == "op_defaults"
    assert get_attribute(root, AttributeOwner("op_defaults"), "timeout") == [("op-options", "30s")]


def test_new_ids_never_collide() -> None:
    root = tree()
    # an element elsewhere already has the id the new nvpair would get
    etree.SubElement(
        root.find("configuration/resources/primitive[@id='db']"),
        "meta_attributes",
        id="cib-bootstrap-options-foo",
    )
    set_attribute(root, AttributeOwner("property"), "foo", "1")
    assert nvpair(root, "cib-bootstrap-options-foo-1").get("value") == "1"


def test_an_unknown_attribute_kind_is_an_error() -> None:
    with pytest.raises(EditError, match="unknown attribute kind"):
        set_attribute(tree(), AttributeOwner("cluster"), "x", "1")


# --- cibadmin's edits ----------------------------------------------------------------------


def test_create_adds_to_a_section_and_refuses_a_used_id() -> None:
    root = tree()
    create(root, "resources", parse_fragment('<primitive id="mail" class="lsb" type="exim4"/>'))
    assert root.xpath('//resources/primitive[@id="mail"]')
    with pytest.raises(EditError, match='id is already used by <primitive id="db">'):
        create(root, "constraints", parse_fragment('<rsc_location id="db" rsc="db" node="n"/>'))
    with pytest.raises(EditError, match="unknown section 'resource'"):
        create(root, "resource", parse_fragment('<primitive id="x" class="lsb" type="x"/>'))


def test_create_makes_a_missing_section() -> None:
    root = tree()
    create(root, "tags", parse_fragment('<tag id="t"><obj_ref id="db"/></tag>'))
    assert root.xpath("/cib/configuration/tags/tag[@id='t']")


def test_modify_sets_attributes_and_merges_children_by_id() -> None:
    root = tree()
    modify(
        root,
        parse_fragment(
            '<primitive id="ip" description="service address"><instance_attributes id="ip-p">'
            '<nvpair id="ip-p-ip" value="10.0.0.10"/></instance_attributes>'
            '<meta_attributes id="ip-m"><nvpair id="ip-m-t" name="target-role" value="Started"/>'
            "</meta_attributes></primitive>"
        ),
    )
    ip = root.xpath('//primitive[@id="ip"]')[0]
    assert ip.get("description") == "service address"
    assert ip.get("type") == "IPaddr2"  # untouched attributes stay
    assert nvpair(root, "ip-p-ip").get("value") == "10.0.0.10"
    assert nvpair(root, "ip-p-ip").get("name") == "ip"
    assert nvpair(root, "ip-m-t") is not None
    assert len(ip.findall("operations/op")) == 1  # children not named are kept


def test_modify_a_section_and_the_cib_root() -> None:
    root = tree()
    modify(root, parse_fragment('<cib admin_epoch="2"/>'))
    assert root.get("admin_epoch") == "2"
    modify(root, parse_fragment('<constraints><rsc_location id="loc" score="50"/></constraints>'))
    assert root.xpath('//rsc_location[@id="loc"]')[0].get("score") == "50"


def test_modify_needs_an_existing_element() -> None:
    with pytest.raises(EditError, match='no <primitive id="nope">'):
        modify(tree(), parse_fragment('<primitive id="nope" description="x"/>'))
    with pytest.raises(EditError, match="has no id"):
        modify(tree(), parse_fragment('<primitive description="x"/>'))


def test_replace_swaps_the_element_whole() -> None:
    root = tree()
    replace(
        root, parse_fragment('<primitive id="db" class="ocf" provider="heartbeat" type="pgsql"/>')
    )
    db = root.xpath('//primitive[@id="db"]')
    assert len(db) == 1 and db[0].get("type") == "pgsql"
    with pytest.raises(EditError, match="whole <cib>"):
        replace(root, parse_fragment("<cib/>"))


def test_delete_refuses_a_resource_constraints_name_unless_cascading() -> None:
    root = tree()
    with pytest.raises(EditError, match=r'named by <rsc_order id="ord">.*--cascade'):
        delete(root, element_id="db")
    assert root.xpath('//primitive[@id="db"]')  # nothing was removed
    summary = delete(root, element_id="db", cascade=True)
    assert not root.xpath('//primitive[@id="db"]') and not root.xpath('//rsc_order[@id="ord"]')
    assert "rsc_order" in summary


def test_deleting_a_group_also_counts_its_members_references() -> None:
    root = tree()
    create(
        root,
        "constraints",
        parse_fragment('<rsc_location id="l2" rsc="httpd" node="node1" score="10"/>'),
    )
    with pytest.raises(EditError, match='<rsc_location id="l2">'):
        delete(root, fragment=parse_fragment('<group id="web"/>'))


def test_delete_by_fragment_and_the_errors() -> None:
    root = tree()
    delete(root, fragment=parse_fragment('<rsc_location id="loc"/>'))
    assert not root.xpath('//rsc_location[@id="loc"]')
    with pytest.raises(EditError, match="no element with id 'gone'"):
        delete(root, element_id="gone")
    with pytest.raises(EditError, match="is a section"):
        delete(root, fragment=parse_fragment("<constraints/>"))
    with pytest.raises(EditError, match="say what to delete"):
        delete(root)


def test_query_by_xpath_and_section() -> None:
    root = tree()
    assert [e.get("id") for e in query(root, xpath="//primitive")] == ["ip", "httpd", "db"]
    assert query(root, scope="constraints")[0].tag == "constraints"
    assert query(root)[0] is root
    with pytest.raises(EditError, match="bad XPath"):
        query(root, xpath="//[")
    with pytest.raises(EditError, match="selects a value"):
        query(root, xpath="count(//primitive)")


def test_parse_fragment_errors() -> None:
    with pytest.raises(EditError, match="not well-formed"):
        parse_fragment("<primitive id='x'")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parse_fragment_never_escapes_an_exception(text: str) -> None:
    try:
        element = parse_fragment(text)
    except EditError:
        return
    assert isinstance(element.tag, str)


# --- apply_edit: versions, validation, all or nothing -------------------------------------


def test_a_configuration_change_bumps_epoch_and_resets_num_updates() -> None:
    result = apply_edit(
        CIB, "cib.xml", lambda r: set_attribute(r, AttributeOwner("property"), "x-opt", "1")
    )
    root = etree.fromstring(result.data)
    assert result.changed and result.epoch == (1, 4, 0)
    assert (root.get("admin_epoch"), root.get("epoch"), root.get("num_updates")) == ("1", "4", "0")
    assert root.get("update-client") == "hastack"


def test_a_status_change_bumps_num_updates_only() -> None:
    result = apply_edit(
        CIB,
        "cib.xml",
        lambda r: set_attribute(r, AttributeOwner("node", "node2", lifetime="reboot"), "a", "1"),
    )
    assert result.epoch == (1, 3, 8)


def test_an_edit_that_changes_nothing_returns_the_input() -> None:
    result = apply_edit(
        CIB,
        "cib.xml",
        lambda r: set_attribute(r, AttributeOwner("property"), "stonith-enabled", "false"),
    )
    assert not result.changed and result.data == CIB and result.epoch == (1, 3, 7)


def test_an_edit_that_sets_the_counters_itself_keeps_them() -> None:
    result = apply_edit(CIB, "cib.xml", lambda r: modify(r, parse_fragment('<cib epoch="40"/>')))
    assert result.epoch == (1, 40, 7)


def test_an_edit_making_the_cib_invalid_is_refused_unless_forced() -> None:
    need_schemas()

    def bad(root: etree._Element) -> str:
        return create(root, "resources", parse_fragment('<primitive id="p" type="Dummy"/>'))

    with pytest.raises(EditError, match=r"(?s)refused.*--force.*primitive"):
        apply_edit(CIB, "cib.xml", bad)
    forced = apply_edit(CIB, "cib.xml", bad, force=True)
    assert forced.changed and any(p.severity == "error" for p in forced.new_problems)


def test_problems_the_cib_had_already_do_not_block_other_edits() -> None:
    # fencing on without a fencing device is an error crm_verify reports; it is there before
    # the edit, so an unrelated edit goes through and reports nothing new
    enabled = CIB.replace(b'value="false"/>\n      </cluster', b'value="true"/>\n      </cluster')
    result = apply_edit(
        enabled, "cib.xml", lambda r: set_attribute(r, AttributeOwner("node", "node1"), "a", "1")
    )
    assert result.changed and result.new_problems == []
    assert any("stonith" in p.message for p in result.old_problems)


def test_an_edit_error_leaves_nothing_half_done() -> None:
    def two_steps(root: etree._Element) -> str:
        set_attribute(root, AttributeOwner("property"), "a", "1")
        raise EditError("second step failed")

    with pytest.raises(EditError, match="second step"):
        apply_edit(CIB, "cib.xml", two_steps)  # the caller keeps CIB's bytes: nothing to undo


def test_apply_edit_rejects_a_document_that_is_not_a_cib() -> None:
    with pytest.raises(EditError, match="not well-formed"):
        apply_edit(b"<cib", "x.xml", lambda r: "")
    with pytest.raises(EditError, match="not <cib>"):
        apply_edit(b"<config/>", "x.xml", lambda r: "")
