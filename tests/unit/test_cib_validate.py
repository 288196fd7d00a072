"""hastack.crm.cib.validate: schema and semantic checks of a cib.xml, with file:line:element."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hastack.crm.cib.validate import (
    DEFAULT_SCHEMA_DIR,
    Problem,
    is_valid,
    known_schemas,
    parse_interval_ms,
    validate,
    validate_file,
)

SCHEMA_37 = DEFAULT_SCHEMA_DIR / "pacemaker-3.7.rng"

OPTIONS = (
    '<cluster_property_set id="opts">'
    '<nvpair id="opts-stonith" name="stonith-enabled" value="{stonith}"/>{more}'
    "</cluster_property_set>"
)


def cib(
    resources: str = "",
    constraints: str = "",
    status: str = "",
    stonith: str = "false",
    more_options: str = "",
    validate_with: str = "pacemaker-3.7",
) -> bytes:
    """A small CIB; line 6 holds the first resource element when `resources` is one line."""
    vw = f' validate-with="{validate_with}"' if validate_with else ""
    return (
        f'<cib{vw} admin_epoch="0" epoch="1" num_updates="0">\n'
        "  <configuration>\n"
        f"    <crm_config>{OPTIONS.format(stonith=stonith, more=more_options)}</crm_config>\n"
        '    <nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes>\n'
        "    <resources>\n"
        f"{resources}\n"
        "    </resources>\n"
        f"    <constraints>{constraints}</constraints>\n"
        "  </configuration>\n"
        f"  <status>{status}</status>\n"
        "</cib>\n"
    ).encode()


DUMMY = '<primitive id="{id}" class="ocf" provider="heartbeat" type="Dummy">{body}</primitive>'


def dummy(rid: str, body: str = "") -> str:
    return DUMMY.format(id=rid, body=body)


def ops(*specs: tuple[str, str, str, str]) -> str:
    """<operations> from (id, name, interval, extra attributes)."""
    inner = "".join(
        f'<op id="{i}" name="{n}" interval="{iv}" {extra}/>' for i, n, iv, extra in specs
    )
    return f"<operations>{inner}</operations>"


@pytest.fixture
def no_schemas(tmp_path: Path) -> Path:
    """A schema directory without schemas: only the semantic checks run."""
    return tmp_path


def semantic(xml: bytes, schema_dir: Path) -> list[Problem]:
    problems = validate(xml, "cib.xml", schema_dir)
    assert any("no Pacemaker schema files" in p.message for p in problems)
    return [p for p in problems if "no Pacemaker schema files" not in p.message]


def errors(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def need_schemas() -> None:
    if not SCHEMA_37.exists():
        pytest.skip(f"{SCHEMA_37} is not installed (Debian's pacemaker-schemas)")


# --- syntax, root and schema selection ---------------------------------------------------------


def test_not_well_formed_xml_is_one_problem_with_its_line(no_schemas: Path) -> None:
    problems = validate(b"<cib>\n<configuration>\n</cib>\n", "broken.xml", no_schemas)
    assert len(problems) == 1
    assert problems[0].line == 3 and problems[0].source == "broken.xml"
    assert str(problems[0]).startswith("broken.xml:3: not well-formed XML")


def test_empty_input_is_a_problem_not_a_traceback(no_schemas: Path) -> None:
    problems = validate(b"", "empty.xml", no_schemas)
    assert not is_valid(problems) and "not well-formed" in problems[0].message


def test_the_root_must_be_cib(no_schemas: Path) -> None:
    problems = validate(b"<configuration/>", "x.xml", no_schemas)
    assert [p.element for p in problems] == ["configuration"]
    assert "root element" in problems[0].message


def test_missing_schema_files_give_one_warning_and_semantics_still_run(no_schemas: Path) -> None:
    problems = validate(cib(dummy("a") + dummy("a")), "cib.xml", no_schemas)
    warnings = [p for p in problems if p.severity == "warning"]
    assert len(warnings) == 1 and str(no_schemas) in warnings[0].message
    assert any("the id 'a' is also used" in p.message for p in errors(problems))


def test_unknown_validate_with_is_refused_clearly() -> None:
    need_schemas()
    problems = validate(cib(validate_with="pacemaker-9.9"), "cib.xml")
    assert not is_valid(problems)
    assert "'pacemaker-9.9' is not a known schema" in problems[0].message
    assert "pacemaker-3.7" in problems[0].message or "pacemaker-next" in problems[0].message
    problems = validate(cib(validate_with="transitional-0.6"), "cib.xml")
    assert "not a known schema" in problems[0].message


def test_validate_with_none_disables_the_schema_with_a_warning() -> None:
    need_schemas()
    problems = validate(cib(dummy("a", "<bogus/>"), validate_with="none"), "cib.xml")
    assert is_valid(problems)
    assert [p.severity for p in problems] == ["warning"]


def test_missing_validate_with_uses_the_newest_schema_with_a_warning() -> None:
    need_schemas()
    problems = validate(cib(dummy("a"), validate_with=""), "cib.xml")
    assert is_valid(problems) and "no validate-with" in problems[0].message


def test_known_schemas_are_sorted_numerically() -> None:
    need_schemas()
    names = known_schemas(DEFAULT_SCHEMA_DIR)
    assert names.index("pacemaker-2.10") > names.index("pacemaker-2.9")
    assert names[-1] == "pacemaker-next"


def test_a_valid_cib_has_no_problems() -> None:
    need_schemas()
    xml = cib(
        dummy("a", ops(("a-mon", "monitor", "10s", 'timeout="20s"')))
        + '<group id="g">'
        + dummy("g1")
        + dummy("g2")
        + "</group>",
        '<rsc_location id="l" rsc="g" node="node1" score="INFINITY"/>'
        '<rsc_order id="o" first="a" then="g" kind="Optional"/>'
        '<rsc_colocation id="c" rsc="g1" with-rsc="a" score="-100"/>',
    )
    assert validate(xml, "cib.xml") == []


# --- schema errors -----------------------------------------------------------------------------


def test_schema_errors_name_line_element_and_id() -> None:
    need_schemas()
    xml = cib('<primitive id="p1" class="ocf" provider="heartbeat" bogus="1"/>')
    problems = errors(validate(xml, "cib.xml"))
    assert problems, "a primitive without type and with an unknown attribute is invalid"
    first = problems[0]
    assert first.line == 6 and first.element == "primitive" and first.element_id == "p1"
    assert "pacemaker-3.7" in first.message
    assert str(first).startswith('cib.xml:6: <primitive id="p1">: ')


def test_a_bad_score_is_reported_readably() -> None:
    need_schemas()
    xml = cib(dummy("a"), '<rsc_location id="l" rsc="a" node="node1" score="lots"/>')
    messages = [p.message for p in errors(validate(xml, "cib.xml"))]
    assert any("'lots'" in m or "lots is not a valid" in m for m in messages), messages


def test_an_idref_to_nothing_is_located_on_its_element() -> None:
    need_schemas()
    xml = cib(dummy("a"), '<rsc_location id="l" rsc="ghost" node="node1" score="1"/>')
    problems = errors(validate(xml, "cib.xml"))
    located = [p for p in problems if p.element == "rsc_location"]
    assert located and all(p.line == 8 and p.element_id == "l" for p in located)
    assert any("'ghost'" in p.message for p in located)


# --- semantic checks (schema-free, so they run everywhere) --------------------------------------


def test_duplicate_ids_name_both_places(no_schemas: Path) -> None:
    problems = semantic(cib(dummy("a") + "\n" + dummy("a")), no_schemas)
    assert len(problems) == 1
    assert problems[0].line == 7 and "line 6" in problems[0].message


def test_node_ids_may_equal_resource_ids(no_schemas: Path) -> None:
    # a guest or remote node is named as the resource that runs it
    assert semantic(cib(dummy("1")), no_schemas) == []


def test_duplicate_recurring_ops_are_errors_even_with_different_roles(no_schemas: Path) -> None:
    body = ops(
        ("m1", "monitor", "10s", 'role="Promoted"'),
        ("m2", "monitor", "10000ms", 'role="Unpromoted"'),
    )
    problems = semantic(cib(dummy("a", body)), no_schemas)
    assert [p.element_id for p in problems] == ["m2"]
    assert "duplicates operation 'm1'" in problems[0].message


def test_duplicate_non_recurring_ops_are_allowed(no_schemas: Path) -> None:
    body = ops(("s1", "start", "0", 'role="Promoted"'), ("s2", "start", "0", ""))
    assert semantic(cib(dummy("a", body)), no_schemas) == []


def test_unparsable_interval_and_timeout_are_warnings(no_schemas: Path) -> None:
    # crm_verify accepts them (Pacemaker falls back to a default): warnings, not errors
    body = ops(("m1", "monitor", "often", ""), ("m2", "monitor", "5s", 'timeout="soon"'))
    problems = semantic(cib(dummy("a", body)), no_schemas)
    assert [(p.element_id, p.severity) for p in problems] == [("m1", "warning"), ("m2", "warning")]
    assert "interval 'often'" in problems[0].message and "timeout 'soon'" in problems[1].message


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("0", 0),
        ("10", 10_000),
        ("10s", 10_000),
        ("10sec", 10_000),
        ("500ms", 500),
        ("2min", 120_000),
        ("2m", 120_000),
        ("1h", 3_600_000),
        ("PT10S", 10_000),
        ("P10S", 10_000),
        ("PT1M30S", 90_000),
        ("P1DT2H", 93_600_000),
        (" 15s ", 15_000),
    ],
)
def test_intervals_parse_as_pacemaker_reads_them(text: str, ms: int) -> None:
    assert parse_interval_ms(text) == ms


@pytest.mark.parametrize("text", ["", "ten", "10 parsecs", "-5s", "P", "PT", "1.5s"])
def test_bad_intervals_do_not_parse(text: str) -> None:
    assert parse_interval_ms(text) is None


def test_constraints_naming_missing_resources(no_schemas: Path) -> None:
    xml = cib(
        dummy("a"),
        '<rsc_colocation id="c" rsc="a" with-rsc="ghost" score="1"/>'
        '<rsc_order id="o"><resource_set id="s"><resource_ref id="phantom"/>'
        '<resource_ref id="a"/></resource_set></rsc_order>',
    )
    problems = semantic(xml, no_schemas)
    assert [(p.element, p.element_id) for p in problems] == [
        ("rsc_colocation", "c"),
        ("resource_ref", "phantom"),
    ]
    assert "with-rsc 'ghost' is not a resource" in problems[0].message


def test_constraints_may_name_group_members_templates_and_tags(no_schemas: Path) -> None:
    xml = cib(
        '<template id="t" class="ocf" provider="heartbeat" type="Dummy"/>'
        f'<group id="g">{dummy("g1")}</group>',
        '<rsc_location id="l1" rsc="g1" node="node1" score="1"/>'
        '<rsc_location id="l2" rsc="t" node="node1" score="1"/>',
    )
    tags = b'<tags><tag id="tg"><obj_ref id="g"/></tag></tags></configuration>'
    xml = xml.replace(b"</configuration>", tags)
    by_tag = b'<rsc_location id="l3" rsc="tg" node="node1" score="1"/></constraints>'
    xml = xml.replace(b"</constraints>", by_tag)
    assert semantic(xml, no_schemas) == []


CLONE = f'<clone id="c1">{dummy("d1")}</clone>'
D1_HISTORY = (
    '<node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member" '
    'expected="member"><lrm id="1"><lrm_resources><lrm_resource id="d1" class="ocf" '
    'provider="heartbeat" type="Dummy"/></lrm_resources></lrm></node_state>'
)


def test_a_clone_child_is_not_a_constraint_target(no_schemas: Path) -> None:
    xml = cib(CLONE, '<rsc_location id="l" rsc="d1" node="node1" score="1"/>')
    problems = semantic(xml, no_schemas)
    assert len(problems) == 1 and "inside the clone 'c1'" in problems[0].message


def test_a_clone_child_known_from_the_status_is_a_target(no_schemas: Path) -> None:
    # crm_verify accepts it then: the instance recorded as "d1" is found by that name
    xml = cib(CLONE, '<rsc_location id="l" rsc="d1" node="node1" score="1"/>', D1_HISTORY)
    assert semantic(xml, no_schemas) == []


def test_clone_of_a_clone_and_group_in_group(no_schemas: Path) -> None:
    xml = cib(
        f'<clone id="outer"><clone id="inner">{dummy("x")}</clone></clone>'
        f'<group id="g"><group id="g2">{dummy("y")}</group></group>'
    )
    messages = [p.message for p in semantic(xml, no_schemas)]
    assert "a <clone> cannot be inside a <clone>" in messages
    assert "a group may hold only primitives, not a <group>" in messages


def test_target_role_promoted_outside_a_promotable_clone(no_schemas: Path) -> None:
    meta = '<meta_attributes id="m"><nvpair id="m1" name="target-role" value="Promoted"/>'
    meta += "</meta_attributes>"
    problems = semantic(cib(dummy("a", meta)), no_schemas)
    assert len(problems) == 1 and "promotable clone" in problems[0].message
    promotable = (
        '<clone id="c"><meta_attributes id="cm"><nvpair id="cm1" name="promotable" '
        f'value="true"/></meta_attributes>{dummy("a", meta)}</clone>'
    )
    assert semantic(cib(promotable), no_schemas) == []


ONLINE = (
    '<node_state id="1" uname="node1" in_ccm="true" crmd="online" join="member" '
    'expected="member"><lrm id="1"><lrm_resources><lrm_resource id="a:0" class="ocf" '
    'provider="heartbeat" type="Dummy"><lrm_rsc_op id="a_last_0" operation="start" '
    'call-id="2" rc-code="0" op-status="0" interval="0"/></lrm_resource></lrm_resources></lrm>'
    "</node_state>"
)


def test_on_fail_values(no_schemas: Path) -> None:
    body = ops(
        ("s", "stop", "0", 'on-fail="stop"'),
        ("m", "monitor", "10s", 'on-fail="fence"'),
        ("x", "start", "0", 'on-fail="explode"'),
        ("f", "stop", "0s", 'on-fail="fence"'),
        ("d", "monitor", "20s", 'on-fail="demote"'),
    )
    # a configuration alone: Pacemaker reports stop-on-stop and fence-without-fencing only when
    # it creates those actions, so they are warnings
    problems = semantic(cib(dummy("a", body)), no_schemas)
    assert [(p.element_id, p.severity) for p in problems] == [
        ("s", "warning"),
        ("m", "warning"),
        ("x", "error"),
        ("d", "warning"),
    ]
    # with the resource active on an online node they are errors, as crm_verify says
    problems = semantic(cib(dummy("a", body), status=ONLINE), no_schemas)
    assert [(p.element_id, p.severity) for p in problems] == [
        ("s", "error"),
        ("m", "error"),
        ("x", "error"),
        ("d", "error"),
    ]


def test_fencing_enabled_without_a_device(no_schemas: Path) -> None:
    problems = semantic(cib(dummy("a"), stonith="true"), no_schemas)
    assert len(problems) == 1 and "no stonith resource" in problems[0].message
    fence = '<primitive id="f" class="stonith" type="fence_dummy"/>'
    assert semantic(cib(dummy("a") + fence, stonith="true"), no_schemas) == []
    watchdog = '<nvpair id="opts-wd" name="have-watchdog" value="true"/>'
    assert semantic(cib(dummy("a"), stonith="true", more_options=watchdog), no_schemas) == []


def test_order_kind_and_colocation_influence(no_schemas: Path) -> None:
    xml = cib(
        dummy("a") + dummy("b"),
        '<rsc_order id="o" first="a" then="b" kind="Sometimes"/>'
        '<rsc_colocation id="c" rsc="a" with-rsc="b" score="1" influence="maybe"/>',
    )
    messages = [p.message for p in semantic(xml, no_schemas)]
    assert messages == [
        "kind 'Sometimes' is not one of Mandatory, Optional, Serialize",
        "influence 'maybe' is not true or false",
    ]


def test_validate_file_reports_an_unreadable_file(tmp_path: Path) -> None:
    problems = validate_file(tmp_path / "missing.xml", tmp_path)
    assert len(problems) == 1 and "cannot read" in problems[0].message


def test_problem_as_dict_and_text() -> None:
    p = Problem("f.xml", 3, "op", "m1", "bad", "warning")
    assert p.as_dict() == {
        "severity": "warning",
        "source": "f.xml",
        "line": 3,
        "element": "op",
        "id": "m1",
        "message": "bad",
    }
    assert str(p) == 'f.xml:3: <op id="m1">: warning: bad'
    assert str(Problem("f.xml", None, None, None, "gone")) == "f.xml: gone"


# --- fuzzing: never a traceback ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    problems = validate(data, "fuzz.xml", Path("/nonexistent"))
    assert all(isinstance(p, Problem) for p in problems)


_FRAGMENTS = st.sampled_from(
    [
        dummy("a"),
        dummy("a", ops(("m", "monitor", "10s", ""))),
        dummy("b", ops(("m", "monitor", "x", 'on-fail="stop"'))),
        CLONE,
        '<group id="g"/>',
        '<primitive id="p"/>',
        "<clone/>",
        '<rsc_location id="l" rsc="zz" node="node1" score="1"/>',
        "<bogus>",
        "</resources>",
        "&amp;",
        '<op id="" name="" interval=""/>',
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=6), st.booleans())
def test_mangled_cibs_never_raise(fragments: list[str], with_schema: bool) -> None:
    xml = cib("".join(fragments))
    schema_dir = DEFAULT_SCHEMA_DIR if with_schema else Path("/nonexistent")
    problems = validate(xml, "fuzz.xml", schema_dir)
    assert all(isinstance(p, Problem) and p.message for p in problems)


def test_an_action_ordered_after_itself(no_schemas: Path) -> None:
    group = f'<group id="g">{dummy("g1")}</group>'
    xml = cib(
        group + CLONE + dummy("a"),
        '<rsc_order id="o1" first="g" then="g"/>'
        '<rsc_order id="o2" first="c1" first-action="stop" then="c1"/>'
        '<rsc_order id="o3" first="c1" first-action="demote" then="c1" then-action="promote"/>'
        '<rsc_order id="o4" first="a" then="a"/>'
        '<rsc_order id="o5"><resource_set id="s1"><resource_ref id="g"/></resource_set>'
        '<resource_set id="s2"><resource_ref id="g"/></resource_set></rsc_order>',
    )
    found = [(p.element_id, p.severity) for p in semantic(xml, no_schemas)]
    # groups and clones crash Pacemaker 2.1.5 (an error); a primitive is only pointless
    assert found == [("o1", "error"), ("o2", "error"), ("o4", "warning"), ("o5", "error")]
