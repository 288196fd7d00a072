"""Unit tests of place() with clones: one small hand-written CIB per rule of Pacemaker 2.1.5's
clone placement (instances, limits, stickiness, constraints on and with clones, orderings)."""

from __future__ import annotations

from test_crm_placement import _cib, _col, _loc, _prim

from hastack.crm.cib.model import INFINITY

_DOWN = 'in_ccm="false" crmd="offline" join="down" expected="down"'


def _clone(cid: str, inner: str, meta: str = "") -> str:
    pairs = "".join(
        f'<nvpair id="{cid}-{name}" name="{name}" value="{value}"/>'
        for name, value in (item.split("=", 1) for item in meta.split())
    )
    metas = f'<meta_attributes id="{cid}-meta">{pairs}</meta_attributes>' if pairs else ""
    return f'<clone id="{cid}">{metas}{inner}</clone>'


def _order(first: str, then: str, extra: str = "", oid: str = "o1") -> str:
    return f'<rsc_order id="{oid}" first="{first}" then="{then}" {extra}/>'


def test_anonymous_clone_runs_one_instance_per_node_by_default() -> None:
    p = _cib(_clone("cl", _prim("child")))
    assert p.final["child"] == ("node1", "node2", "node3")
    assert p.roles["child"] == {"node1": "Started", "node2": "Started", "node3": "Started"}
    assert sorted(n for k, n in p.assigned.items() if k.startswith("child:")) == [
        "node1",
        "node2",
        "node3",
    ]
    # the instances' scores are named as crm_simulate names them
    assert set(p.totals) >= {"cl", "child:0", "child:1", "child:2"}


def test_clone_max_limits_the_instances_and_active_ones_stay() -> None:
    p = _cib(
        _clone("cl", _prim("child"), "clone-max=2"),
        running={"node2": ["child"], "node3": ["child"]},
    )
    assert p.final["child"] == ("node2", "node3")
    # clones stick with 1 by default: each active instance scores 1 where it runs (the
    # status section's first active entry is instance 0)
    assert p.assigned["child:0"] == "node2" and p.totals["child:0"]["node2"] == 1
    assert p.assigned["child:1"] == "node3" and p.totals["child:1"]["node3"] == 1


def test_clone_max_zero_runs_nothing() -> None:
    p = _cib(_clone("cl", _prim("child"), "clone-max=0"))
    assert p.final["child"] == ()


def test_globally_unique_instances_are_keyed_by_number_and_limited_per_node() -> None:
    meta = "globally-unique=true clone-max=4 clone-node-max=2"
    p = _cib(_clone("cl", _prim("child"), meta), nodes=2)
    keys = sorted(k for k in p.final if k.startswith("child"))
    assert keys == ["child:0", "child:1", "child:2", "child:3"]
    per_node: dict[str, int] = {}
    for k in keys:
        (node,) = p.final[k]
        per_node[node] = per_node.get(node, 0) + 1
    assert per_node == {"node1": 2, "node2": 2}


def test_anonymous_clone_ignores_clone_node_max_above_one() -> None:
    p = _cib(_clone("cl", _prim("child"), "clone-max=4 clone-node-max=2"), nodes=2)
    assert p.final["child"] == ("node1", "node2")


def test_lsb_agent_forces_an_anonymous_clone() -> None:
    lsb = '<primitive id="child" class="lsb" type="dummy"/>'
    p = _cib(_clone("cl", lsb, "globally-unique=true clone-max=2"))
    assert "child" in p.final and "child:0" not in p.final


def test_location_on_the_clone_applies_to_every_instance() -> None:
    p = _cib(_clone("cl", _prim("child")), _loc("cl", "node2", "-INFINITY"))
    assert p.final["child"] == ("node1", "node3")
    assert all(p.totals[f"child:{i}"]["node2"] == -INFINITY for i in range(3))


def test_primitive_with_clone_goes_where_an_instance_runs() -> None:
    cons = (
        _loc("cl", "node1", "-INFINITY", "l1")
        + _loc("ip", "node1", "100", "l2")
        + _col("ip", "cl", "INFINITY")
    )
    p = _cib(_clone("cl", _prim("child"), "clone-max=2") + _prim("ip"), cons)
    assert p.final["child"] == ("node2", "node3")
    assert p.final["ip"][0] in ("node2", "node3")
    assert p.totals["ip"]["node1"] == -INFINITY


def test_clone_with_primitive_only_where_the_primitive_is() -> None:
    cons = _loc("db", "node3", "50", "l1") + _col("cl", "db", "INFINITY")
    p = _cib(_prim("db") + _clone("cl", _prim("child")), cons)
    assert p.final["db"] == ("node3",)
    assert p.final["child"] == ("node3",)


def test_interleaved_clone_pairs_with_the_instance_on_its_node() -> None:
    cons = _loc("a", "node3", "-INFINITY", "l1") + _col("b", "a", "INFINITY")
    resources = _clone("a", _prim("pa")) + _clone("b", _prim("pb"), "interleave=true")
    p = _cib(resources, cons)
    assert p.final["pa"] == ("node1", "node2")
    assert p.final["pb"] == ("node1", "node2")


def test_mandatory_order_after_a_clone_that_cannot_start_blocks_the_dependent() -> None:
    resources = _clone("cl", _prim("child"), "target-role=Stopped") + _prim("app")
    p = _cib(resources, _order("cl", "app"))
    assert p.final["child"] == ()
    assert p.final["app"] == ()
    assert "cannot start" in p.reasons["app"]


def test_require_all_false_needs_only_one_instance() -> None:
    resources = _clone("a", _prim("pa"), "clone-max=1") + _clone(
        "b", _prim("pb"), "interleave=true"
    )
    p = _cib(resources, _order("a", "b", 'require-all="false"'))
    assert p.final["pa"] == ("node1",)
    assert p.final["pb"] == ("node1", "node2", "node3")


def test_interleaved_order_starts_instances_only_beside_the_first_clone() -> None:
    resources = _clone("a", _prim("pa"), "clone-max=1") + _clone(
        "b", _prim("pb"), "interleave=true"
    )
    p = _cib(resources, _order("a", "b"))
    assert p.final["pb"] == p.final["pa"] == ("node1",)


def test_instances_on_a_node_that_goes_away_are_stopped() -> None:
    p = _cib(
        _clone("cl", _prim("child")),
        running={"node1": ["child"], "node2": ["child"], "node3": ["child"]},
        states={"node3": _DOWN},
    )
    assert p.final["child"] == ("node1", "node2")


def test_an_anonymous_instance_beyond_clone_max_is_an_orphan_and_stops() -> None:
    p = _cib(
        _clone("cl", _prim("child"), "clone-max=1"),
        running={"node1": ["child"], "node2": ["child"]},
    )
    assert len(p.final["child"]) == 1
    orphans = [k for k in p.assigned if k.startswith("child:") and k != "child:0"]
    assert orphans and all(p.assigned[k] is None for k in orphans)


def test_cloned_group_members_run_together() -> None:
    group = '<group id="g">' + _prim("m1") + _prim("m2") + "</group>"
    p = _cib(_clone("cl", group, "clone-max=2"), _loc("cl", "node1", "-INFINITY"))
    assert p.final["m1"] == p.final["m2"] == ("node2", "node3")
    assert p.assigned["m1:0"] == p.assigned["m2:0"]


def test_failures_reaching_the_threshold_ban_the_whole_clone_from_the_node() -> None:
    fail = '<nvpair id="fc" name="fail-count-child#monitor_10000" value="3"/>'
    p = _cib(
        _clone("cl", _prim("child", "migration-threshold=3")),
        running={"node1": ["child"]},
        transient={"node1": fail},
    )
    assert "node1" not in p.final["child"]
    assert p.totals["cl"]["node1"] == -INFINITY


def test_constraints_naming_the_cloned_primitive_mean_the_clone() -> None:
    p = _cib(_clone("cl", _prim("child")), _loc("child", "node1", "-INFINITY"))
    assert p.final["child"] == ("node2", "node3")


def test_unique_clone_keeps_instances_where_they_run() -> None:
    meta = "globally-unique=true clone-max=2 clone-node-max=2"
    p = _cib(
        _clone("cl", _prim("child"), meta),
        running={"node3": ["child:0", "child:1"]},
    )
    assert p.final["child:0"] == p.final["child:1"] == ("node3",)


def test_a_group_instance_that_would_move_is_not_counted_as_crm_simulate_does() -> None:
    # Pacemaker 2.1.5 cannot take back the assignment of a cloned group's instance that was
    # to stay where it runs but found a better node: it moves there without counting, so
    # the next instance goes there too, clone-node-max=1 notwithstanding (checked against
    # crm_simulate 2.1.5 on this very CIB).
    group = '<group id="g">' + _prim("m1") + _prim("m2") + "</group>"
    p = _cib(
        _clone("cl", group, "globally-unique=true clone-max=2 clone-node-max=1"),
        _loc("cl", "node2", "10"),
        running={"node3": ["m1:1", "m2:1"]},
    )
    assert p.final == {
        "m1:0": ("node2",),
        "m2:0": ("node2",),
        "m1:1": ("node2",),
        "m2:1": ("node2",),
    }


# --- promotable clones -----------------------------------------------------------------------


def _promo(node_scores: dict[str, str], rsc: str = "st") -> dict[str, str]:
    """Transient promotion scores (``master-<rsc>``) per node."""
    return {
        node: f'<nvpair id="m-{node}" name="master-{rsc}" value="{score}"/>'
        for node, score in node_scores.items()
    }


def test_the_instance_with_the_highest_promotion_score_is_promoted() -> None:
    p = _cib(
        _clone("ms", _prim("st"), "promotable=true"),
        transient=_promo({"node1": "5", "node2": "10", "node3": "1"}),
    )
    assert p.final["st"] == ("node1", "node2", "node3")
    assert p.roles["st"] == {"node1": "Unpromoted", "node2": "Promoted", "node3": "Unpromoted"}


def test_promoted_max_promotes_that_many() -> None:
    p = _cib(
        _clone("ms", _prim("st"), "promotable=true promoted-max=2"),
        transient=_promo({"node1": "5", "node2": "10", "node3": "1"}),
    )
    assert sorted(n for n, r in p.roles["st"].items() if r == "Promoted") == ["node1", "node2"]


def test_without_a_promotion_score_nothing_is_promoted() -> None:
    p = _cib(_clone("ms", _prim("st"), "promotable=true"))
    assert set(p.roles["st"].values()) == {"Unpromoted"}


def test_legacy_master_element_and_master_max() -> None:
    meta = '<meta_attributes id="m-meta"><nvpair id="m1" name="master-max" value="1"/>'
    meta += "</meta_attributes>"
    p = _cib(
        f'<master id="ms">{meta}{_prim("st")}</master>',
        transient=_promo({"node1": "5", "node3": "7"}),
    )
    assert p.roles["st"]["node3"] == "Promoted"
    assert p.roles["st"]["node1"] == "Unpromoted"


def test_location_for_the_promoted_role_decides_where_to_promote() -> None:
    rule = (
        '<rsc_location id="l1" rsc="ms"><rule id="r1" role="Promoted" score="100">'
        '<expression id="e1" attribute="#uname" operation="eq" value="node3"/></rule>'
        "</rsc_location>"
    )
    p = _cib(
        _clone("ms", _prim("st"), "promotable=true"),
        rule,
        transient=_promo({"node1": "5", "node2": "5", "node3": "5"}),
    )
    assert p.roles["st"]["node3"] == "Promoted"
    # a role-specific location does not place the instances
    assert p.final["st"] == ("node1", "node2", "node3")


def test_primitive_colocated_with_the_promoted_role_follows_it() -> None:
    col = (
        '<rsc_colocation id="c1" rsc="fs" with-rsc="ms" with-rsc-role="Promoted" score="INFINITY"/>'
    )
    p = _cib(
        _clone("ms", _prim("st"), "promotable=true") + _prim("fs"),
        col + _loc("fs", "node1", "4"),
        transient=_promo({"node1": "1", "node2": "10", "node3": "1"}),
    )
    # fs's preference for node1 counts for the promotion too, twice (when the clone is
    # assigned and when the roles are given): 1 + 4 + 4 < 10, as crm_simulate 2.1.5 has it
    assert p.roles["st"]["node2"] == "Promoted"
    assert p.final["fs"] == ("node2",)
    assert p.totals["fs"]["node1"] == -INFINITY


def test_dependent_preferences_count_for_where_to_promote() -> None:
    col = (
        '<rsc_colocation id="c1" rsc="fs" with-rsc="ms" with-rsc-role="Promoted" score="INFINITY"/>'
    )
    p = _cib(
        _clone("ms", _prim("st"), "promotable=true") + _prim("fs"),
        col + _loc("fs", "node1", "50"),
        transient=_promo({"node1": "1", "node2": "10", "node3": "1"}),
    )
    # 1 + 50 + 50 > 10
    assert p.roles["st"]["node1"] == "Promoted"
    assert p.final["fs"] == ("node1",)


def test_start_after_promotion_waits_for_a_promoted_instance() -> None:
    order = '<rsc_order id="o1" first="ms" first-action="promote" then="app" then-action="start"/>'
    promoted = _cib(
        _clone("ms", _prim("st"), "promotable=true") + _prim("app"),
        order,
        transient=_promo({"node1": "10"}),
    )
    assert promoted.final["app"] != ()
    unpromoted = _cib(_clone("ms", _prim("st"), "promotable=true") + _prim("app"), order)
    assert unpromoted.final["app"] == ()


def test_promotion_waits_for_what_the_promoted_role_is_colocated_with() -> None:
    cons = (
        '<rsc_colocation id="c1" rsc="ms" rsc-role="Promoted" with-rsc="db" score="INFINITY"/>'
        + _order("blocker", "db", oid="o1")
    )
    resources = (
        _clone("ms", _prim("st"), "promotable=true")
        + _prim("db")
        + _prim("blocker", "target-role=Stopped")
    )
    p = _cib(resources, cons, transient=_promo({"node1": "10", "node2": "10", "node3": "10"}))
    assert p.final["db"] == ()
    # the promotion is planned where db was placed, but cannot happen: all stay unpromoted
    assert set(p.roles["st"].values()) == {"Unpromoted"}


# --- checked against crm_simulate 2.1.5 (the plans of these very CIBs) ------------------------


def _history(rid: str, ops: list[tuple[str, int]], call: int = 10) -> str:
    """A raw ``lrm_resource`` with the operations (name, rc) in order; monitors recur."""
    body = ""
    for op, rc in ops:
        call += 1
        interval = "10000" if op == "monitor" else "0"
        key = f"{rid}_{op}_{interval}"
        body += (
            f'<lrm_rsc_op id="{key}" operation_key="{key}" operation="{op}" '
            f'interval="{interval}" call-id="{call}" rc-code="{rc}" op-status="0" '
            f'transition-key="{call}:1:0:abc" transition-magic="0:{rc};{call}:1:0:abc" '
            'last-rc-change="1000" op-digest="f2317cad3d54cec5d7d7aa7d0bf35cf8"/>'
        )
    return (
        f'<lrm_resource id="{rid}" class="ocf" provider="pacemaker" type="Dummy">{body}'
        "</lrm_resource>"
    )


_GROUP = '<group id="g">' + _prim("m1") + _prim("m2") + "</group>"
_STARTED = _history("m1", [("start", 0)]) + _history("m2", [("start", 0)], 20)


def test_location_scores_do_not_order_clone_instances() -> None:
    # Two active instances of a promotable cloned group with equal promotion priorities, on
    # node1 (g:0) and node3 (g:1), node3 preferred. Pacemaker 2.1.5 orders instances by
    # colocations only (then by number), not by their location scores or stickiness: g:0
    # goes first, wants to stay on node1 but node3 is better, and (a group's assignment
    # cannot be taken back) moves there uncounted; g:1 stays on node3 and is promoted; g:2
    # gets node1. crm_simulate: "Move m1:0 (node1 -> node3 Unpromoted)", "Promote m1:1
    # (Unpromoted -> Promoted node3)", "Start m1:2 (node1)".
    p = _cib(
        _clone("cl", _GROUP, "promotable=true"),
        _loc("cl", "node3", "50"),
        history={"node1": _STARTED, "node3": _STARTED},
        transient={
            "node1": '<nvpair id="m-n1" name="master-m1" value="10"/>',
            "node3": '<nvpair id="m-n3" name="master-m1" value="10"/>',
        },
    )
    assert p.assigned["m1:0"] == p.assigned["m2:0"] == "node3"
    assert p.assigned["m1:1"] == "node3"
    assert p.assigned["m1:2"] == p.assigned["m2:2"] == "node1"
    assert p.roles["m1"] == {"node1": "Unpromoted", "node3": "Promoted"}


def test_a_promoted_instance_makes_its_node_promoted_when_two_share_it() -> None:
    # As above, promotable, with the promoted role preferred on node3: g:0 (first by its
    # promotion score on node1) moves to node3 beside g:1 and is promoted there
    # (crm_simulate: "Move m1:0 (Unpromoted node1 -> Promoted node3)"). The two instances
    # share node3's one history entry, which ends promoted.
    promoted_rule = (
        '<rsc_location id="lp" rsc="cl"><rule id="lpr" role="Promoted" score="100">'
        '<expression id="lpe" attribute="#uname" operation="eq" value="node3"/></rule>'
        "</rsc_location>"
    )
    p = _cib(
        _clone("cl", _GROUP, "promotable=true"),
        _loc("cl", "node3", "50") + promoted_rule,
        history={"node1": _STARTED, "node3": _STARTED},
        transient=_promo({"node1": "10"}, "m1"),
    )
    assert p.assigned["m1:0"] == p.assigned["m1:1"] == "node3"
    assert p.roles["m1"] == {"node1": "Unpromoted", "node3": "Promoted"}
    assert p.roles["m2"] == {"node1": "Unpromoted", "node3": "Promoted"}


def test_a_member_restarted_for_its_recovered_group_mate_is_promoted_again() -> None:
    # A promoted cloned group whose first member failed: m1 is recovered and m2 restarted
    # for it ("Restart m2:0 (Promoted node1) due to required m1:0 start"). The group's
    # promotion is required by m1's, so m2 is promoted again too.
    failed = _history("m1", [("start", 0), ("promote", 0), ("monitor", 1)])
    failed += _history("m2", [("start", 0), ("promote", 0)], 20)
    p = _cib(
        _clone("cl", _GROUP, "promotable=true"),
        nodes=2,
        history={"node1": failed},
        transient=_promo({"node1": "10"}, "m1"),
    )
    assert p.roles["m1"] == {"node1": "Promoted", "node2": "Unpromoted"}
    assert p.roles["m2"] == {"node1": "Promoted", "node2": "Unpromoted"}


def test_a_clone_with_a_clone_that_cannot_start_anywhere_is_stopped() -> None:
    # cl1 is colocated (INFINITY) with cl0, which is disabled; cl0's colocation with cl1 has
    # cl1 placed first, where its instances run. Pacemaker 2.1.5 then blocks every start of
    # cl1 because no instance of cl0 can start, and its running instances stop
    # (crm_simulate: "Stop c1:0 (node1) due to colocation with c0:1").
    p = _cib(
        _clone("cl0", _prim("c0"), "target-role=Stopped") + _clone("cl1", _prim("c1")),
        _col("cl0", "cl1", "100", "ca") + _col("cl1", "cl0", "INFINITY", "cb"),
        nodes=2,
        history={"node1": _history("c1", [("start", 0)]), "node2": _history("c1", [("start", 0)])},
    )
    assert p.assigned["c1:0"] == "node1" and p.assigned["c1:1"] == "node2"
    assert p.final["c1"] == ()


def test_an_instance_applies_its_clones_colocations_oldest_first() -> None:
    # An interleaved clone colocated with the same clone twice (-INFINITY, then INFINITY):
    # each colocation pairs the instance with the other clone's instance on its best node.
    # Pacemaker 2.1.5 hands the clone's colocations to the instance by putting each before
    # the ones it has, so the instance applies them in configuration order (the clone itself
    # would apply the newest first): -INFINITY bans node1, INFINITY then pairs it with node2
    # (crm_simulate: "Start a:0 (node2)"). In the other order it runs nowhere.
    cons = _loc("cl0", "node1", "100")
    anti, pro = _col("cl0", "cl1", "-INFINITY", "c1"), _col("cl0", "cl1", "INFINITY", "c2")
    resources = _clone("cl0", _prim("a"), "interleave=true clone-max=1") + _clone("cl1", _prim("b"))
    running = {"node1": _history("b", [("start", 0)]), "node2": _history("b", [("start", 0)])}
    p = _cib(resources, cons + anti + pro, nodes=2, history=running)
    assert p.final["a"] == ("node2",)
    swapped = _cib(
        resources,
        cons + _col("cl0", "cl1", "INFINITY", "c1") + _col("cl0", "cl1", "-INFINITY", "c2"),
        nodes=2,
        history=running,
    )
    assert swapped.final["a"] == ()


def test_a_role_in_a_colocation_with_a_non_promotable_clone_does_not_block_the_dependent() -> None:
    # ip colocated with the Promoted role of a clone that cannot be promoted (as the corpus's
    # unrunnable-2 does): the role does not filter the clone's instances, and ip stays where
    # it runs, beside one of them (crm_simulate 2.1.5 keeps it there).
    colocation = (
        '<rsc_colocation id="c1" rsc="ip" with-rsc="cl" with-rsc-role="Master" score="INFINITY"/>'
    )
    p = _cib(
        _clone("cl", _prim("child")) + _prim("ip"),
        colocation,
        running={"node1": ["child"], "node2": ["child", "ip"], "node3": ["child"]},
    )
    assert p.final["child"] == ("node1", "node2", "node3")
    assert p.final["ip"] == ("node2",)
