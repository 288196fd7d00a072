"""The CIB model: score, interval and boolean parsing, helpers, problems."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hastack.crm.cib.model import (
    INFINITY,
    Bundle,
    Cib,
    CibError,
    Clone,
    Group,
    LrmRscOp,
    Node,
    NvPair,
    NvSet,
    Op,
    Primitive,
    Problem,
    RawXml,
    Template,
    flatten,
    parse_bool,
    parse_interval_ms,
    parse_score,
)


def meta(*pairs: tuple[str, str], sid: str = "m", score: str | None = None) -> NvSet:
    return NvSet(
        kind="meta_attributes",
        id=sid,
        score=score,
        pairs=tuple(NvPair(id=f"{sid}-{n}", name=n, value=v) for n, v in pairs),
    )


def prim(pid: str, **kw: object) -> Primitive:
    return Primitive(id=pid, cls="ocf", provider="heartbeat", type="Dummy", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (None, 0),
        ("", 0),
        ("0", 0),
        ("100", 100),
        ("-5", -5),
        ("+7", 7),
        ("INFINITY", INFINITY),
        ("+INFINITY", INFINITY),
        ("-INFINITY", -INFINITY),
        ("5000000", INFINITY),
        ("-5000000", -INFINITY),
        (" 42 ", 42),
    ],
)
def test_parse_score(text: str | None, value: int) -> None:
    assert parse_score(text) == value


@pytest.mark.parametrize("text", ["abc", "1.5", "infinity", "INF", "red", "--1"])
def test_parse_score_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="score"):
        parse_score(text)


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_parse_score_integers_clamp(n: int) -> None:
    assert parse_score(str(n)) == max(-INFINITY, min(INFINITY, n))


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        (None, 0),
        ("0", 0),
        ("10", 10_000),
        ("10s", 10_000),
        ("10sec", 10_000),
        ("500ms", 500),
        ("500msec", 500),
        ("2m", 120_000),
        ("2min", 120_000),
        ("1h", 3_600_000),
        ("1hr", 3_600_000),
        ("PT10S", 10_000),
        ("PT1M30S", 90_000),
        ("P1D", 86_400_000),
        ("P1DT1H", 90_000_000),
    ],
)
def test_parse_interval(text: str | None, ms: int) -> None:
    assert parse_interval_ms(text) == ms


@pytest.mark.parametrize("text", ["abc", "10x", "-10", "P", "PT", "1.5s", "P1DT"])
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"interval|duration"):
        parse_interval_ms(text)


def test_op_interval_properties() -> None:
    op = Op(id="o", name="monitor", interval="30s", timeout="20s")
    assert op.interval_ms == 30_000
    assert op.interval_seconds == 30.0


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("YES", True), ("1", True), ("off", False), ("n", False)]
)
def test_parse_bool(text: str, value: bool) -> None:
    assert parse_bool(text) is value


def test_parse_bool_default_and_reject() -> None:
    assert parse_bool(None, default=True) is True
    with pytest.raises(ValueError):
        parse_bool("maybe")


def test_flatten_higher_score_wins_and_rules_ignored() -> None:
    low = meta(("a", "low"), ("b", "only-low"), sid="low", score="1")
    high = meta(("a", "high"), sid="high", score="10")
    assert flatten((low, high)) == {"a": "high", "b": "only-low"}


def test_promotable_clone() -> None:
    child = prim("p")
    assert not Clone(id="c", child=child).promotable
    assert Clone(id="c", child=child, meta=(meta(("promotable", "true")),)).promotable
    assert Clone(id="c", child=child, legacy_master=True).promotable
    assert not Clone(id="c", child=child, meta=(meta(("promotable", "bogus")),)).promotable


def test_line_and_source_do_not_take_part_in_equality() -> None:
    assert prim("a", line=3) == prim("a", line=99)
    assert prim("a") != prim("b")


def test_primitive_agent() -> None:
    assert prim("a").agent == "ocf:heartbeat:Dummy"
    assert Primitive(id="b", cls="lsb", type="apache").agent == "lsb:apache"
    assert Primitive(id="c", template="t").agent == "@t"


def test_cib_helpers() -> None:
    group = Group(id="g", children=(prim("g1"), prim("g2")))
    remote = Primitive(id="r1", cls="ocf", provider="pacemaker", type="remote")
    guest = prim("vm", meta=(meta(("remote-node", "guest1")),))
    bundle = Bundle(id="b", body=(RawXml('<podman image="x"/>'),), primitive=prim("bp"))
    cib = Cib(
        resources=(group, Clone(id="c", child=prim("cp")), remote, guest, bundle),
        nodes=(Node(id="1", uname="n1"), Node(id="rn", uname="rn", type="remote")),
        crm_config=(
            NvSet(
                kind="cluster_property_set",
                id="o",
                pairs=(NvPair(id="o1", name="stonith-enabled", value="false"),),
            ),
        ),
    )
    assert [p.id for p in cib.all_primitives()] == ["g1", "g2", "cp", "r1", "vm", "bp"]
    assert cib.remote_node_names() == ("r1", "guest1", "rn")
    assert cib.has_bundles()
    assert bundle.container_kind == "podman"
    assert cib.cluster_options() == {"stonith-enabled": "false"}


def test_lrm_rsc_op_numbers() -> None:
    op = LrmRscOp(id="x", interval="10000", call_id="7", rc_code="1", op_status="0")
    assert (op.interval_ms, op.call_id_int, op.rc_code_int, op.op_status_int) == (10000, 7, 1, 0)
    assert LrmRscOp(id="y", call_id="junk").call_id_int == -1


def test_problem_and_error_text() -> None:
    p = Problem(source="cib.xml", line=12, element="primitive", id="web", message="bad")
    assert str(p) == 'cib.xml:12: <primitive id="web">: bad'
    q = Problem(source="cib.xml", line=0, element="", id=None, message="empty input")
    assert str(q) == "cib.xml: empty input"
    err = CibError([p, q])
    assert err.problems == (p, q)
    assert str(err).splitlines() == [str(p), str(q)]


def test_as_dict_first_pair_wins() -> None:
    s = NvSet(
        kind="meta_attributes",
        id="m",
        pairs=(NvPair(id="a", name="x", value="1"), NvPair(id="b", name="x", value="2")),
    )
    assert s.as_dict() == {"x": "1"}


def test_flatten_equal_scores_document_order_and_first_id() -> None:
    a = meta(("opt", "a"), sid="a")
    boot = meta(("opt", "boot"), sid="cib-bootstrap-options")
    assert flatten((a, boot)) == {"opt": "a"}
    assert flatten((a, boot), first_id="cib-bootstrap-options") == {"opt": "boot"}
    bad = meta(("opt", "bad"), sid="bad", score="junk")
    assert flatten((bad, a)) == {"opt": "bad"}
    # "#default" sets nothing: the name is left to the next set, or unset
    default = meta(("opt", "#default"), sid="d")
    assert flatten((default, a)) == {"opt": "a"}
    assert flatten((default,)) == {}


def test_expand_template() -> None:
    tmpl = Template(
        id="t",
        cls="ocf",
        provider="heartbeat",
        type="IPaddr2",
        meta=(meta(("target-role", "Stopped"), sid="tm"),),
        ops=(
            Op(id="t-mon", name="monitor", interval="10s"),
            Op(id="t-start", name="start", interval="0", timeout="20s"),
        ),
    )
    p = Primitive(
        id="ip",
        template="t",
        meta=(meta(("target-role", "Started"), sid="pm"),),
        ops=(Op(id="p-mon", name="monitor", interval="10000ms", timeout="5s"),),
    )
    cib = Cib(resources=(tmpl, p))
    e = cib.expand_template(p)
    assert e.agent == "ocf:heartbeat:IPaddr2" and e.template == "t"
    assert flatten(e.meta) == {"target-role": "Started"}
    assert [op.id for op in e.ops] == ["p-mon", "t-start"]
    # As Pacemaker keys template ops (name and role, Started when unset): the primitive's
    # monitor replaces the template's even at another interval; another role's is kept.
    p20 = replace(p, ops=(Op(id="p-mon20", name="monitor", interval="20s"),))
    assert [op.id for op in cib.expand_template(p20).ops] == ["p-mon20", "t-start"]
    stopped = replace(p, ops=(Op(id="p-stop-mon", name="monitor", interval="5s", role="Stopped"),))
    assert [op.id for op in cib.expand_template(stopped).ops] == ["p-stop-mon", "t-mon", "t-start"]
    plain = prim("x")
    assert cib.expand_template(plain) is plain
    orphan = Primitive(id="o", template="missing")
    assert cib.expand_template(orphan) is orphan
