"""Reading and writing cib.xml: every section, exact round trip, clear errors, fuzzing."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from hastack.crm.cib.model import (
    Bundle,
    Cib,
    CibError,
    Clone,
    DateExpression,
    DateSpec,
    Expression,
    FencingLevel,
    Group,
    Lrm,
    LrmResource,
    LrmRscOp,
    Node,
    NodeState,
    NvPair,
    NvSet,
    Op,
    Operations,
    OpExpression,
    Primitive,
    RawXml,
    ResourceSet,
    RscColocation,
    RscExpression,
    RscLocation,
    RscOrder,
    RscTicket,
    Rule,
    SourceInfo,
    Tag,
    Template,
    TicketState,
)
from hastack.crm.cib.xml import read_cib, write_cib

SAMPLE = b"""<?xml version="1.0"?>
<cib admin_epoch="1" epoch="12" num_updates="3" validate-with="pacemaker-3.7"
     have-quorum="1" dc-uuid="1">
  <configuration>
    <crm_config>
      <cluster_property_set id="opts">
        <nvpair id="opts-stonith" name="stonith-enabled" value="false"/>
        <nvpair id="opts-nq" name="no-quorum-policy" value="ignore"/>
      </cluster_property_set>
    </crm_config>
    <rsc_defaults>
      <meta_attributes id="rd"><nvpair id="rd-s" name="resource-stickiness" value="100"/>
      </meta_attributes>
    </rsc_defaults>
    <op_defaults>
      <meta_attributes id="od"><nvpair id="od-t" name="timeout" value="30s"/></meta_attributes>
    </op_defaults>
    <nodes>
      <node id="1" uname="node1">
        <instance_attributes id="n1-ia"><nvpair id="n1-sb" name="standby" value="off"/>
        </instance_attributes>
        <utilization id="n1-u"><nvpair id="n1-cpu" name="cpu" value="4"/></utilization>
      </node>
      <node id="2" uname="node2" type="member"/>
    </nodes>
    <resources>
      <!-- a comment is dropped -->
      <template id="tmpl" class="ocf" provider="heartbeat" type="IPaddr2"/>
      <primitive id="ip" template="tmpl">
        <instance_attributes id="ip-ia"><nvpair id="ip-ip" name="ip" value="10.0.0.1"/>
        </instance_attributes>
      </primitive>
      <primitive id="fence" class="stonith" type="fence_dummy" description="fencing"/>
      <group id="web">
        <meta_attributes id="web-m"><nvpair id="web-tr" name="target-role" value="Started"/>
        </meta_attributes>
        <primitive id="fs" class="ocf" provider="heartbeat" type="Filesystem">
          <operations id="fs-ops">
            <op id="fs-mon" name="monitor" interval="20s" timeout="40s" on-fail="restart"/>
            <op id="fs-start" name="start" interval="0" timeout="60s">
              <meta_attributes id="fs-start-m"><nvpair id="x1" name="requires" value="fencing"/>
              </meta_attributes>
            </op>
          </operations>
        </primitive>
        <primitive id="apache" class="lsb" type="apache" x-custom="kept"/>
      </group>
      <clone id="dummy-clone">
        <meta_attributes id="dc-m"><nvpair id="dc-max" name="clone-max" value="2"/>
        </meta_attributes>
        <primitive id="dummy" class="ocf" provider="pacemaker" type="Dummy"/>
      </clone>
      <master id="ms">
        <primitive id="stateful" class="ocf" provider="pacemaker" type="Stateful">
          <operations>
            <op id="st-mon-p" name="monitor" interval="10s" role="Promoted"/>
          </operations>
        </primitive>
      </master>
      <bundle id="httpd-bundle">
        <podman image="pcmk:http" replicas="3"/>
        <network control-port="3121"/>
        <primitive id="httpd" class="ocf" provider="heartbeat" type="apache"/>
      </bundle>
    </resources>
    <constraints>
      <rsc_location id="loc1" rsc="web" node="node1" score="INFINITY"/>
      <rsc_location id="loc2" rsc-pattern="dummy.*" role="Started">
        <rule id="loc2-r" score="-INFINITY" boolean-op="or">
          <expression id="loc2-e1" attribute="#uname" operation="eq" value="node2"/>
          <expression id="loc2-e2" attribute="pingd" operation="not_defined"/>
          <date_expression id="loc2-d" operation="date_spec">
            <date_spec id="loc2-ds" hours="9-16" weekdays="1-5"/>
          </date_expression>
          <rule id="loc2-inner" boolean-op="and">
            <date_expression id="loc2-d2" operation="in_range" start="2024-01-01">
              <duration id="loc2-dur" years="1"/>
            </date_expression>
          </rule>
        </rule>
      </rsc_location>
      <rsc_colocation id="col1" rsc="web" with-rsc="ms" score="INFINITY" with-rsc-role="Promoted"/>
      <rsc_colocation id="col2" score="100">
        <resource_set id="col2-s1" sequential="false"><resource_ref id="ip"/>
          <resource_ref id="web"/></resource_set>
        <resource_set id="col2-s2" role="Promoted"><resource_ref id="ms"/></resource_set>
      </rsc_colocation>
      <rsc_order id="ord1" first="ms" first-action="promote" then="web" then-action="start"
                 kind="Mandatory" symmetrical="true"/>
      <rsc_order id="ord2" kind="Serialize">
        <resource_set id="ord2-s" require-all="false" action="start"><resource_ref id="ip"/>
        </resource_set>
      </rsc_order>
      <rsc_ticket id="tk" ticket="ticketA" rsc="web" loss-policy="stop"/>
    </constraints>
    <fencing-topology>
      <fencing-level id="fl1" target="node1" index="1" devices="fence"/>
    </fencing-topology>
    <tags><tag id="t1"><obj_ref id="ip"/><obj_ref id="web"/></tag></tags>
    <alerts><alert id="a1" path="/bin/true"><recipient id="a1-r" value="x"/></alert></alerts>
  </configuration>
  <status>
    <node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member"
                expected="member">
      <transient_attributes id="1">
        <instance_attributes id="status-1">
          <nvpair id="status-1-fc" name="fail-count-fs#monitor_20000" value="1"/>
        </instance_attributes>
      </transient_attributes>
      <lrm id="1">
        <lrm_resources>
          <lrm_resource id="fs" class="ocf" provider="heartbeat" type="Filesystem">
            <lrm_rsc_op id="fs_last_0" operation_key="fs_start_0" operation="start"
              call-id="5" rc-code="0" op-status="0" interval="0" last-rc-change="1700000000"
              exec-time="20" queue-time="0" op-digest="abc" on_node="node1"
              transition-key="1:2:0:uuid" crm-debug-origin="x"/>
          </lrm_resource>
        </lrm_resources>
      </lrm>
    </node_state>
    <node_state id="2" uname="node2" in_ccm="false" crmd="offline" join="down"/>
    <tickets><ticket_state id="ticketA" granted="true" last-granted="1700000000"/></tickets>
  </status>
</cib>
"""


def sample() -> Cib:
    return read_cib(SAMPLE, source="sample.xml")


def test_header_and_options() -> None:
    cib = sample()
    assert (cib.admin_epoch, cib.epoch, cib.num_updates) == (1, 12, 3)
    assert cib.validate_with == "pacemaker-3.7"
    assert cib.attributes == {"have-quorum": "1", "dc-uuid": "1"}
    assert cib.cluster_options() == {"stonith-enabled": "false", "no-quorum-policy": "ignore"}
    assert cib.rsc_defaults[0].as_dict() == {"resource-stickiness": "100"}
    assert cib.op_defaults[0].as_dict() == {"timeout": "30s"}
    assert cib.source == SourceInfo("sample.xml")


def test_nodes() -> None:
    n1, n2 = sample().nodes
    assert (n1.id, n1.uname, n1.line) == ("1", "node1", 19)
    assert n1.attributes[0].as_dict() == {"standby": "off"}
    assert n1.utilization[0].as_dict() == {"cpu": "4"}
    assert n2.type == "member"


def test_resources() -> None:
    tmpl, ip, fence, web, clone, ms, bundle = sample().resources
    assert isinstance(tmpl, Template) and tmpl.type == "IPaddr2"
    assert isinstance(ip, Primitive) and ip.template == "tmpl" and ip.cls is None
    assert isinstance(fence, Primitive) and fence.agent == "stonith:fence_dummy"
    assert isinstance(web, Group) and [c.id for c in web.children] == ["fs", "apache"]
    fs, apache = web.children
    assert apache.extra == {"x-custom": "kept"}
    assert fs.operations == Operations(id="fs-ops")
    mon, start = fs.ops
    assert (mon.name, mon.interval_ms, mon.timeout, mon.on_fail) == (
        "monitor",
        20_000,
        "40s",
        "restart",
    )
    assert start.meta[0].as_dict() == {"requires": "fencing"}
    assert isinstance(clone, Clone) and not clone.promotable and clone.child.id == "dummy"
    assert isinstance(ms, Clone) and ms.promotable and ms.legacy_master
    assert isinstance(ms.child, Primitive) and ms.child.ops[0].role == "Promoted"
    assert isinstance(bundle, Bundle) and bundle.container_kind == "podman"
    assert bundle.primitive is not None and bundle.primitive.id == "httpd"


def test_constraints() -> None:
    loc1, loc2, col1, col2, ord1, ord2, tk = sample().constraints
    assert isinstance(loc1, RscLocation) and (loc1.rsc, loc1.node, loc1.score) == (
        "web",
        "node1",
        "INFINITY",
    )
    assert isinstance(loc2, RscLocation) and loc2.rsc_pattern == "dummy.*"
    rule = loc2.rules[0]
    assert (rule.score, rule.boolean_op) == ("-INFINITY", "or")
    e1, e2, d, inner = rule.expressions
    assert isinstance(e1, Expression) and (e1.attribute, e1.value) == ("#uname", "node2")
    assert isinstance(e2, Expression) and e2.value is None
    assert isinstance(d, DateExpression) and d.date_spec is not None
    assert d.date_spec.fields == {"hours": "9-16", "weekdays": "1-5"}
    assert isinstance(inner, Rule) and isinstance(inner.expressions[0], DateExpression)
    assert inner.expressions[0].duration is not None
    assert isinstance(col1, RscColocation) and col1.with_rsc_role == "Promoted"
    assert isinstance(col2, RscColocation) and [s.resources for s in col2.sets] == [
        ("ip", "web"),
        ("ms",),
    ]
    assert col2.sets[0].sequential == "false" and col2.sets[1].role == "Promoted"
    assert isinstance(ord1, RscOrder) and (ord1.first_action, ord1.then_action) == (
        "promote",
        "start",
    )
    assert isinstance(ord2, RscOrder) and ord2.kind == "Serialize"
    assert ord2.sets[0].require_all == "false"
    assert isinstance(tk, RscTicket) and (tk.ticket, tk.loss_policy) == ("ticketA", "stop")


def test_other_configuration() -> None:
    cib = sample()
    assert cib.fencing_topology == (
        FencingLevel(id="fl1", target="node1", index="1", devices="fence"),
    )
    assert cib.tags == (Tag(id="t1", refs=("ip", "web")),)
    assert cib.alerts is not None and cib.alerts.tag == "alerts"
    assert cib.acls is None


def test_status() -> None:
    cib = sample()
    s1, s2 = cib.status
    assert (s1.uname, s1.in_ccm, s1.crmd, s1.join, s1.expected) == (
        "node1",
        "true",
        "online",
        "member",
        "member",
    )
    assert s1.transient is not None
    assert s1.transient[0].as_dict() == {"fail-count-fs#monitor_20000": "1"}
    (res,) = s1.lrm_resources
    (op,) = res.ops
    assert (op.operation_key, op.rc_code_int, op.call_id_int, op.exec_time) == (
        "fs_start_0",
        0,
        5,
        "20",
    )
    assert op.extra == {"crm-debug-origin": "x"}
    assert s2.lrm is None and s2.transient is None and s2.lrm_resources == ()
    assert cib.tickets == (TicketState(id="ticketA", granted="true", last_granted="1700000000"),)


def test_round_trip_sample(tmp_path: Path) -> None:
    cib = sample()
    out = write_cib(cib)
    assert not out.startswith(b"<?xml")
    assert read_cib(out) == cib
    path = tmp_path / "cib.xml"
    path.write_bytes(out)
    again = read_cib(path)
    assert again == cib and again.source == SourceInfo(str(path))
    assert write_cib(again) == out
    assert b'<master id="ms">' in out and b"a comment" not in out


# --------------------------------------------------------------------------------------------
# Errors


def problems(data: bytes) -> list[str]:
    with pytest.raises(CibError) as info:
        read_cib(data, source="bad.xml")
    return [str(p) for p in info.value.problems]


def wrap(resources: str = "", constraints: str = "", extra: str = "") -> bytes:
    return (
        "<cib epoch='1'>\n<configuration>\n<crm_config/>\n<nodes/>\n"
        f"<resources>\n{resources}\n</resources>\n<constraints>\n{constraints}\n</constraints>\n"
        f"{extra}</configuration>\n</cib>\n"
    ).encode()


def test_malformed_xml_names_file_and_line() -> None:
    (p,) = problems(b"<cib>\n<configuration>\n<nodes>\n</cib>")
    assert p.startswith("bad.xml:4: malformed XML:")


@pytest.mark.parametrize("data", [b"", b"   ", b"\xff\xfe\x00", b"<?xml version='1.0'?>"])
def test_empty_or_binary_input(data: bytes) -> None:
    assert problems(data)


def test_missing_file() -> None:
    with pytest.raises(CibError, match=r"/nonexistent/cib.xml: cannot read"):
        read_cib(Path("/nonexistent/cib.xml"))


def test_wrong_root() -> None:
    assert problems(b"<cluster/>") == [
        "bad.xml:1: <cluster>: the root element must be <cib>, not <cluster>"
    ]


def test_missing_sections() -> None:
    assert problems(b"<cib/>") == ["bad.xml:1: <cib>: missing <configuration>"]
    found = problems(b"<cib>\n<configuration>\n<nodes/>\n</configuration></cib>")
    assert "bad.xml:2: <configuration>: missing <resources>" in found


def test_missing_ids_and_attributes() -> None:
    found = problems(
        wrap(
            '<primitive class="ocf" type="Dummy"/>\n'
            '<primitive id="p2" class="ocf" provider="pacemaker">\n'
            '<operations><op id="o" interval="10s"/></operations>\n</primitive>'
        )
    )
    assert found == [
        "bad.xml:6: <primitive>: class 'ocf' needs a 'provider' attribute",
        "bad.xml:6: <primitive>: missing required attribute 'id'",
        "bad.xml:7: <primitive id=\"p2\">: missing required attribute 'type' (or 'template')",
        "bad.xml:8: <op id=\"o\">: missing required attribute 'name'",
    ]


def test_structure_errors() -> None:
    found = problems(
        wrap(
            '<group id="g"/>\n'
            '<clone id="c"><primitive id="a" class="lsb" type="x"/>'
            '<primitive id="b" class="lsb" type="y"/></clone>\n'
            '<clone id="cc"><clone id="inner"><primitive id="z" class="lsb" type="z"/></clone>'
            "</clone>\n"
            '<group id="g2"><group id="g3"/></group>\n'
            "<resource/>",
            '<rsc_location id="l" rsc="g" node="n1" score="lots"/>\n'
            '<rsc_colocation id="col" rsc="a" score="INFINITY"/>\n'
            "<rsc_fancy id='f'/>",
        )
    )
    assert found == [
        'bad.xml:6: <group id="g">: a group needs at least one <primitive>',
        'bad.xml:7: <clone id="c">: a <clone> must contain exactly one primitive or group, found 2',
        'bad.xml:8: <clone id="inner">: a <clone> cannot contain a <clone>',
        'bad.xml:8: <clone id="cc">: a <clone> must contain exactly one primitive or group, '
        "found 0",
        'bad.xml:9: <group id="g3">: <group> is not allowed in <group> '
        "(allowed: primitive, meta_attributes, instance_attributes)",
        'bad.xml:9: <group id="g2">: a group needs at least one <primitive>',
        "bad.xml:10: <resource>: <resource> is not allowed in <resources> "
        "(allowed: primitive, group, clone, master, bundle, template)",
        "bad.xml:13: <rsc_location id=\"l\">: attribute 'score': invalid score 'lots' "
        "(an integer, INFINITY, +INFINITY or -INFINITY)",
        "bad.xml:14: <rsc_colocation id=\"col\">: needs 'with-rsc' (or <resource_set> elements)",
        'bad.xml:15: <rsc_fancy id="f">: <rsc_fancy> is not allowed in <constraints> '
        "(allowed: rsc_location, rsc_colocation, rsc_order, rsc_ticket)",
    ]


def test_bad_epoch_and_nvpair() -> None:
    data = wrap().replace(b"epoch='1'", b"epoch='x' admin_epoch='-1'")
    data = data.replace(
        b"<crm_config/>",
        b"<crm_config><cluster_property_set><nvpair id='a'/></cluster_property_set></crm_config>",
    )
    found = problems(data)
    assert "bad.xml:1: <cib>: attribute 'epoch' must be a non-negative integer, not 'x'" in found
    assert "bad.xml:1: <cib>: attribute 'admin_epoch' must be a non-negative integer, not '-1'" in (
        found
    )
    assert (
        "bad.xml:3: <cluster_property_set>: missing required attribute 'id' (or 'id-ref')" in found
    )
    assert "bad.xml:3: <nvpair id=\"a\">: missing required attribute 'name'" in found


# --------------------------------------------------------------------------------------------
# Fuzzing: any input gives a Cib or a CibError with a located problem, never another exception


def read_or_problems(data: bytes) -> None:
    try:
        read_cib(data, source="fuzz.xml")
    except CibError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.source == "fuzz.xml" and p.line >= 0 and p.message
            assert str(p).startswith("fuzz.xml")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_sample(data: st.DataObject) -> None:
    raw = bytearray(SAMPLE)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        if action == "delete":
            raw[pos : pos + data.draw(st.integers(1, 40))] = b""
        else:
            chunk = data.draw(
                st.binary(min_size=1, max_size=8) | st.sampled_from([b"<", b">", b'"'])
            )
            end = pos + (len(chunk) if action == "replace" else 0)
            raw[pos:end] = chunk
    read_or_problems(bytes(raw))


TAGS = [
    "cib", "configuration", "status", "crm_config", "nodes", "node", "resources", "constraints",
    "primitive", "group", "clone", "master", "bundle", "template", "operations", "op",
    "meta_attributes", "instance_attributes", "utilization", "nvpair", "rule", "expression",
    "date_expression", "date_spec", "rsc_location", "rsc_colocation", "rsc_order", "rsc_ticket",
    "resource_set", "resource_ref", "tags", "tag", "obj_ref", "node_state", "lrm",
    "lrm_resources", "lrm_resource", "lrm_rsc_op", "transient_attributes", "tickets",
    "ticket_state", "fencing-topology", "fencing-level", "cluster_property_set", "podman",
]  # fmt: skip
ATTRS = ["id", "class", "provider", "type", "name", "value", "interval", "score", "rsc",
         "with-rsc", "first", "then", "node", "epoch", "id-ref", "template", "ticket"]  # fmt: skip

trees = st.recursive(
    st.builds(
        lambda tag, attrs: (tag, attrs, []),
        st.sampled_from(TAGS),
        st.dictionaries(st.sampled_from(ATTRS), st.sampled_from(["x", "", "1", "INFINITY", "-"])),
    ),
    lambda kids: st.builds(
        lambda tag, attrs, children: (tag, attrs, children),
        st.sampled_from(TAGS),
        st.dictionaries(st.sampled_from(ATTRS), st.sampled_from(["x", "1", "ocf"])),
        st.lists(kids, max_size=4),
    ),
    max_leaves=30,
)


def build(tree: tuple[str, dict[str, str], list]) -> etree._Element:  # type: ignore[type-arg]
    tag, attrs, children = tree
    el = etree.Element(tag, attrs)
    for child in children:
        el.append(build(child))
    return el


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_fuzz_random_structures(tree: tuple[str, dict[str, str], list]) -> None:  # type: ignore[type-arg]
    root = build(("cib", {}, [tree]))
    read_or_problems(etree.tostring(root, pretty_print=True))


# --------------------------------------------------------------------------------------------
# Hypothesis round trip: read_cib(write_cib(c)) == c for generated models

ids = st.text(string.ascii_letters + string.digits + "_.-:", min_size=1, max_size=8).filter(
    lambda s: s[0].isalpha()
)
values = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc", "Cn"), exclude_characters="\ufffe\uffff"
    )
    | st.sampled_from(" \t\n\r<>&\"'"),
    max_size=12,
)
maybe = st.none() | values
scores = st.sampled_from([None, "INFINITY", "-INFINITY", "+INFINITY", "0", "100", "-5"])
extras = st.dictionaries(st.from_regex(r"x-[a-z]{1,6}", fullmatch=True), values, max_size=2)

pairs = st.builds(NvPair, id=ids, name=ids, value=values, extra=extras)
expressions = st.builds(
    Expression,
    id=ids,
    attribute=ids,
    operation=st.sampled_from(["eq", "defined", "gt"]),
    value=maybe,
    type=st.none() | st.just("number"),
)
date_specs = st.builds(
    DateSpec,
    tag=st.just("date_spec"),
    id=ids,
    fields=st.dictionaries(st.sampled_from(["hours", "weekdays", "years"]), values, max_size=2),
)
date_expressions = st.builds(
    DateExpression,
    id=ids,
    operation=st.sampled_from(["in_range", "date_spec", "gt"]),
    start=maybe,
    end=maybe,
    date_spec=st.none() | date_specs,
)
rules = st.recursive(
    st.builds(
        Rule,
        id=ids,
        score=scores,
        boolean_op=st.none() | st.sampled_from(["and", "or"]),
        expressions=st.tuples(
            expressions
            | date_expressions
            | st.builds(OpExpression, id=ids, name=ids, interval=maybe)
            | st.builds(RscExpression, id=ids, cls=maybe, type=maybe)
        ),
    ),
    lambda inner: st.builds(
        Rule,
        id=ids,
        role=st.none() | st.just("Promoted"),
        expressions=st.lists(inner | expressions, min_size=1, max_size=3).map(tuple),
    ),
    max_leaves=4,
)


def nvsets(kind: str, with_rules: bool = False) -> st.SearchStrategy[NvSet]:
    return st.builds(
        NvSet,
        kind=st.just(kind),
        id=ids,
        score=scores,
        rules=st.lists(rules, max_size=1).map(tuple) if with_rules else st.just(()),
        pairs=st.lists(pairs, max_size=3).map(tuple),
    )


def tup(strategy: st.SearchStrategy, n: int = 2) -> st.SearchStrategy[tuple]:  # type: ignore[type-arg]
    return st.lists(strategy, max_size=n).map(tuple)


ops = st.builds(
    Op,
    id=ids,
    name=st.sampled_from(["start", "stop", "monitor"]),
    interval=st.sampled_from(["0", "10s", "PT1M"]),
    timeout=maybe,
    role=maybe,
    on_fail=maybe,
    meta=tup(nvsets("meta_attributes")),
    extra=extras,
)
primitives = st.builds(
    Primitive,
    id=ids,
    cls=st.just("ocf"),
    provider=ids,
    type=ids,
    description=maybe,
    meta=tup(nvsets("meta_attributes", True)),
    instance_attributes=tup(nvsets("instance_attributes", True)),
    utilization=tup(nvsets("utilization")),
    operations=st.none() | st.builds(Operations, id=ids),
    ops=tup(ops, 3),
    extra=extras,
)
groups = st.builds(
    Group,
    id=ids,
    meta=tup(nvsets("meta_attributes")),
    children=st.lists(primitives, min_size=1, max_size=3).map(tuple),
)
clones = st.builds(
    Clone,
    id=ids,
    child=primitives | groups,
    meta=tup(nvsets("meta_attributes")),
    legacy_master=st.booleans(),
)
bundles = st.builds(
    Bundle,
    id=ids,
    meta=tup(nvsets("meta_attributes")),
    body=st.just(
        (
            RawXml('<docker image="x" replicas="2"/>'),
            RawXml('<network><port-mapping id="p" port="80"/></network>'),
        )
    ),
    primitive=st.none() | primitives,
)
templates = st.builds(Template, id=ids, cls=st.just("ocf"), provider=ids, type=ids)
resource_sets = st.builds(
    ResourceSet,
    id=ids,
    resources=tup(ids, 3),
    sequential=st.none() | st.just("false"),
    role=maybe,
    action=maybe,
    require_all=maybe,
    score=scores,
)
constraints = st.one_of(
    st.builds(RscLocation, id=ids, rsc=ids, node=ids, score=scores, role=maybe),
    st.builds(
        RscLocation,
        id=ids,
        rsc_pattern=ids,
        rules=st.lists(rules, min_size=1, max_size=2).map(tuple),
    ),
    st.builds(
        RscColocation, id=ids, rsc=ids, with_rsc=ids, score=scores, rsc_role=maybe, extra=extras
    ),
    st.builds(
        RscColocation,
        id=ids,
        score=scores,
        sets=st.lists(resource_sets, min_size=1, max_size=2).map(tuple),
    ),
    st.builds(
        RscOrder, id=ids, first=ids, then=ids, kind=maybe, symmetrical=maybe, first_action=maybe
    ),
    st.builds(RscOrder, id=ids, sets=st.lists(resource_sets, min_size=1, max_size=2).map(tuple)),
    st.builds(RscTicket, id=ids, ticket=ids, rsc=ids, loss_policy=maybe),
)
lrm_ops = st.builds(
    LrmRscOp,
    id=ids,
    operation=maybe,
    operation_key=maybe,
    call_id=maybe,
    rc_code=maybe,
    interval=maybe,
    op_digest=maybe,
    exit_reason=maybe,
    extra=extras,
)
transients = st.just((None, None)) | st.tuples(st.none() | ids, tup(nvsets("instance_attributes")))
node_states = st.builds(
    lambda t, **kw: NodeState(transient_id=t[0], transient=t[1], **kw),
    transients,
    id=st.just("") | ids,
    uname=maybe,
    in_ccm=maybe,
    crmd=maybe,
    join=maybe,
    expected=maybe,
    lrm=st.none()
    | st.builds(
        Lrm,
        id=st.none() | ids,
        resources=tup(st.builds(LrmResource, id=ids, cls=maybe, type=maybe, ops=tup(lrm_ops, 3))),
    ),
)
cibs = st.builds(
    Cib,
    admin_epoch=st.integers(0, 10**6),
    epoch=st.integers(0, 10**6),
    num_updates=st.integers(0, 99),
    validate_with=st.none() | st.just("pacemaker-3.9"),
    extra=extras,
    crm_config=tup(nvsets("cluster_property_set", True)),
    rsc_defaults=tup(nvsets("meta_attributes")),
    op_defaults=tup(nvsets("meta_attributes")),
    nodes=tup(
        st.builds(
            Node,
            id=ids,
            uname=maybe,
            type=maybe,
            attributes=tup(nvsets("instance_attributes")),
            utilization=tup(nvsets("utilization")),
        )
    ),
    resources=tup(primitives | groups | clones | bundles | templates, 3),
    constraints=tup(constraints, 4),
    tags=tup(st.builds(Tag, id=ids, refs=tup(ids))),
    fencing_topology=st.none()
    | tup(st.builds(FencingLevel, id=ids, index=st.just("1"), devices=ids, target=maybe)),
    acls=st.none() | st.just(RawXml('<acls><acl_role id="r"/></acls>')),
    status=tup(node_states, 3),
    tickets=st.none() | tup(st.builds(TicketState, id=ids, granted=maybe)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cibs)
def test_round_trip_generated(cib: Cib) -> None:
    out = write_cib(cib)
    assert read_cib(out) == cib
    assert write_cib(read_cib(out)) == out


def test_text_input_and_unknown_elements_kept() -> None:
    data = wrap(
        extra='<acls><acl_target id="u"><role id="r"/></acl_target></acls>\n<future x="1"/>'
    )
    data = data.replace(
        b"</cib>",
        b'<status>\n<node_state id="1"><future-history a="b">\n  <x/>\n</future-history>'
        b"</node_state>\n<lrm id='stray'/></status>\n<extension/>\n</cib>",
    )
    cib = read_cib(data.decode())
    assert cib.acls == RawXml('<acls><acl_target id="u"><role id="r"/></acl_target></acls>')
    assert cib.configuration_unknown == (RawXml('<future x="1"/>'),)
    assert cib.status[0].unknown == (RawXml('<future-history a="b"><x/></future-history>'),)
    assert cib.status_unknown == (RawXml('<lrm id="stray"/>'),)
    assert cib.unknown == (RawXml("<extension/>"),)
    assert read_cib(write_cib(cib)) == cib


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_structural_mutations(data: st.DataObject) -> None:
    """Well-formed but structurally damaged CIBs: every problem names a line and an element."""
    root = etree.fromstring(SAMPLE)
    for _ in range(data.draw(st.integers(1, 3))):
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        if len(elements) < 2:
            break
        el = data.draw(st.sampled_from(elements[1:]))
        action = data.draw(st.sampled_from(["drop-attr", "delete", "move", "rename", "set-attr"]))
        parent = el.getparent()
        if action == "drop-attr" and el.attrib:
            del el.attrib[data.draw(st.sampled_from(sorted(el.attrib)))]
        elif action == "set-attr":
            el.set(data.draw(st.sampled_from(ATTRS)), data.draw(st.sampled_from(["", "x", "-1"])))
        elif action == "delete" and parent is not None:
            parent.remove(el)
        elif action == "move" and parent is not None:
            target = data.draw(st.sampled_from(elements))
            if el not in list(target.iterancestors()) and target is not el:
                parent.remove(el)
                target.append(el)
        elif action == "rename":
            el.tag = data.draw(st.sampled_from(TAGS))
    text = etree.tostring(root, pretty_print=True)
    try:
        cib = read_cib(text, source="fuzz.xml")
    except CibError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.source == "fuzz.xml" and p.line > 0 and p.element and p.message
    else:
        assert read_cib(write_cib(cib)) == cib
