"""Unit tests of the transition graph: Graph's executor API, and order()'s edges on small
hand-written CIBs, one kind of ordering each."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lrm_history import lrm_op

from hastack.crm.cib.xml import read_cib
from hastack.crm.graph import Graph, GraphCycle, order
from hastack.crm.placement import place
from hastack.crm.state import resource_states
from hastack.crm.transition import Action, plan

ONLINE = 'in_ccm="true" crmd="online" join="member" expected="member"'
UNCLEAN = 'in_ccm="false" crmd="offline" join="member" expected="member"'


def _running(rsc: str) -> list[str]:
    return [lrm_op(rsc, "start", 0, 2, 0), lrm_op(rsc, "monitor", 10000, 3, 0)]


def _stopped(rsc: str) -> list[str]:
    return [lrm_op(rsc, "monitor", 0, 1, 7)]


def _dummy(rsc: str, meta: str = "") -> str:
    return (
        f'<primitive id="{rsc}" class="ocf" provider="pacemaker" type="Dummy">{meta}'
        f'<operations><op id="{rsc}-mon" name="monitor" interval="10s"/></operations>'
        "</primitive>"
    )


def _graph(
    resources: str,
    history: dict[str, dict[str, list[str]]],
    *,
    constraints: str = "",
    options: str = '<nvpair id="o1" name="stonith-enabled" value="false"/>',
    states: dict[str, str] | None = None,
    transient: dict[str, str] | None = None,
) -> Graph:
    """order() on a three-node cluster (node1..node3) with that history; ``states``: a
    node_state's fields per node, ``transient``: one ``name=value`` transient attribute."""

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

    names = ("node1", "node2", "node3")

    def attrs(i: int, node: str) -> str:
        if node not in (transient or {}):
            return ""
        name, value = (transient or {})[node].split("=")
        return (
            f'<transient_attributes id="{i}"><instance_attributes id="ta{i}">'
            f'<nvpair id="ta{i}-1" name="{name}" value="{value}"/>'
            "</instance_attributes></transient_attributes>"
        )

    node_states = "".join(
        f'<node_state id="{i}" uname="{n}" {(states or {}).get(n, ONLINE)}>'
        f"{attrs(i, n)}{lrm(n)}</node_state>"
        for i, n in enumerate(names, 1)
    )
    nodes = "".join(f'<node id="{i}" uname="{n}"/>' for i, n in enumerate(names, 1))
    xml = f"""<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0"
 have-quorum="1" dc-uuid="1" execution-date="1700000000">
<configuration>
<crm_config><cluster_property_set id="opts">{options}</cluster_property_set></crm_config>
<nodes>{nodes}</nodes>
<resources>{resources}</resources>
<constraints>{constraints}</constraints>
</configuration>
<status>{node_states}</status>
</cib>"""
    cib = read_cib(xml.encode(), source="test.xml")
    state = resource_states(cib)
    placement = place(cib, state)
    return order(cib, state, placement, plan(cib, state, placement, sanitized=True))


def _known_everywhere(running: dict[str, str], stopped: tuple[str, ...] = ()) -> dict:
    """History where each of ``running`` runs on its node and was probed stopped on the other
    nodes, and each of ``stopped`` was probed stopped everywhere (so no probes are needed)."""
    history: dict[str, dict[str, list[str]]] = {n: {} for n in ("node1", "node2", "node3")}
    for rsc, where in running.items():
        for node in history:
            history[node][rsc] = _running(rsc) if node == where else _stopped(rsc)
    for rsc in stopped:
        for node in history:
            history[node][rsc] = _stopped(rsc)
    return history


def _before(graph: Graph, first: str, then: str) -> bool:
    return (first, then) in graph.precedes()


# --- Graph, the executor's API -----------------------------------------------------------------


def _actions(*names: str) -> tuple[Action, ...]:
    return tuple(Action(n, "start", f"r{n}") for n in names)


def test_ready_releases_actions_as_their_predecessors_complete() -> None:
    a, b, c, d = _actions("a", "b", "c", "d")
    graph = Graph((a, b, c, d), ((a.name, c.name), (b.name, c.name), (c.name, d.name)))
    assert graph.ready(set()) == [a, b]
    assert graph.ready({a.name}) == [b]  # c still waits for b
    assert graph.ready({a.name, b.name}) == [c]
    assert graph.ready({a.name, b.name, c.name}) == [d]
    assert graph.ready({a.name, b.name, c.name, d.name}) == []
    assert graph.predecessors[c.name] == {a.name, b.name}
    assert graph.precedes() == {
        (a.name, c.name),
        (b.name, c.name),
        (c.name, d.name),
        (a.name, d.name),
        (b.name, d.name),
    }


def test_a_graph_refuses_cycles_and_unknown_actions() -> None:
    a, b, c = _actions("a", "b", "c")
    with pytest.raises(GraphCycle) as caught:
        Graph((a, b, c), ((a.name, b.name), (b.name, c.name), (c.name, a.name)))
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {a.name, b.name, c.name}
    # the cycle is named in the order of its edges
    assert all(
        (x, y) in {(a.name, b.name), (b.name, c.name), (c.name, a.name)} for x, y in pairwise(cycle)
    )
    with pytest.raises(ValueError, match="no action 'rz_start_0 z'"):
        Graph((a,), ((a.name, "rz_start_0 z"),))
    with pytest.raises(ValueError, match="same name"):
        Graph((a, a), ())


def test_dot_output_is_crm_simulates_style() -> None:
    a, b = _actions("a", "b")
    dot = Graph((a, b), ((a.name, b.name),)).to_dot()
    assert dot == (
        ' digraph "g" {\n'
        '"ra_start_0 a" -> "rb_start_0 b" [ style = bold]\n'
        '"ra_start_0 a" [ style=bold color="green" fontcolor="black"]\n'
        '"rb_start_0 b" [ style=bold color="green" fontcolor="black"]\n'
        "}\n"
    )


@st.composite
def _dags(draw: st.DrawFn) -> Graph:
    count = draw(st.integers(1, 12))
    actions = _actions(*(f"n{i}" for i in range(count)))
    pairs = draw(
        st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, count - 1)), max_size=30)
    )
    # edges only from a lower to a higher index: acyclic by construction
    edges = {(actions[i].name, actions[j].name) for i, j in pairs if i < j}
    return Graph(actions, tuple(sorted(edges)))


@given(_dags(), st.randoms(use_true_random=False))
def test_an_executor_driven_by_ready_runs_everything_in_order(graph: Graph, rng: object) -> None:
    """Whatever subset of the ready actions completes first, everything runs once, and never
    before its predecessors."""
    done: list[str] = []
    while len(done) < len(graph.actions):
        ready = graph.ready(set(done))
        assert ready, "an acyclic graph always has something ready until all is done"
        batch = rng.sample(ready, rng.randint(1, len(ready)))  # type: ignore[attr-defined]
        done += [a.name for a in batch]
    position = {name: i for i, name in enumerate(done)}
    assert len(position) == len(graph.actions)
    assert all(position[a] < position[b] for a, b in graph.edges)


# --- order() -------------------------------------------------------------------------------------


def test_a_move_stops_before_it_starts_and_monitors_after() -> None:
    graph = _graph(
        _dummy("web"),
        _known_everywhere({"web": "node1"}),
        constraints='<rsc_location id="l" rsc="web" node="node2" score="100"/>',
    )
    assert {a.name for a in graph.actions} == {
        "web_stop_0 node1",
        "web_start_0 node2",
        "web_monitor_10000 node2",
    }
    assert set(graph.edges) == {
        ("web_stop_0 node1", "web_start_0 node2"),
        ("web_start_0 node2", "web_monitor_10000 node2"),
    }
    assert [a.name for a in graph.ready(set())] == ["web_stop_0 node1"]


def test_probes_come_before_the_start() -> None:
    graph = _graph(_dummy("web"), {})
    probes = [a.name for a in graph.actions if a.task == "monitor" and a.interval_ms == 0]
    (start,) = [a.name for a in graph.actions if a.task == "start"]
    assert len(probes) == 3
    assert all((p, start) in graph.edges for p in probes)
    assert graph.ready(set()) == [a for a in graph.actions if a.name in probes]


def test_a_group_starts_in_order_and_stops_in_reverse() -> None:
    group = f'<group id="grp">{_dummy("ip")}{_dummy("fs")}{_dummy("db")}</group>'
    graph = _graph(
        group,
        _known_everywhere({"ip": "node1", "fs": "node1", "db": "node1"}),
        constraints='<rsc_location id="l" rsc="grp" node="node2" score="100"/>',
    )
    assert _before(graph, "db_stop_0 node1", "fs_stop_0 node1")
    assert _before(graph, "fs_stop_0 node1", "ip_stop_0 node1")
    assert _before(graph, "ip_start_0 node2", "fs_start_0 node2")
    assert _before(graph, "fs_start_0 node2", "db_start_0 node2")
    # all of the group's stops before any of its starts (through its pseudo-actions)
    assert _before(graph, "ip_stop_0 node1", "ip_start_0 node2")
    assert _before(graph, "db_stop_0 node1", "ip_start_0 node2")
    assert not _before(graph, "ip_start_0 node2", "db_stop_0 node1")
    assert not any("grp" in name for edge in graph.edges for name in edge)  # no pseudo left


def test_an_unordered_group_starts_its_members_together() -> None:
    meta = '<meta_attributes id="gm"><nvpair id="gm1" name="ordered" value="false"/>'
    group = f'<group id="grp">{meta}</meta_attributes>{_dummy("a")}{_dummy("b")}</group>'
    graph = _graph(group, _known_everywhere({}, ("a", "b")))
    starts = [a.name for a in graph.actions if a.task == "start"]
    assert len(starts) == 2
    assert not _before(graph, starts[0], starts[1]) and not _before(graph, starts[1], starts[0])


def test_a_mandatory_order_and_its_symmetrical_inverse() -> None:
    both_move = (
        '<rsc_location id="l1" rsc="db" node="node2" score="100"/>'
        '<rsc_location id="l2" rsc="web" node="node2" score="100"/>'
    )
    history = _known_everywhere({"db": "node1", "web": "node1"})
    order_xml = '<rsc_order id="o" first="db" then="web" kind="Mandatory"/>'
    graph = _graph(_dummy("db") + _dummy("web"), history, constraints=both_move + order_xml)
    assert _before(graph, "db_start_0 node2", "web_start_0 node2")
    assert _before(graph, "web_stop_0 node1", "db_stop_0 node1")
    asymmetric = order_xml.replace('kind="Mandatory"', 'kind="Mandatory" symmetrical="false"')
    graph = _graph(_dummy("db") + _dummy("web"), history, constraints=both_move + asymmetric)
    assert _before(graph, "db_start_0 node2", "web_start_0 node2")
    assert not _before(graph, "web_stop_0 node1", "db_stop_0 node1")
    unordered = _graph(_dummy("db") + _dummy("web"), history, constraints=both_move)
    assert not _before(unordered, "db_start_0 node2", "web_start_0 node2")


def test_an_order_with_a_group_waits_for_the_whole_group() -> None:
    group = f'<group id="grp">{_dummy("a")}{_dummy("b")}</group>'
    graph = _graph(
        group + _dummy("web"),
        _known_everywhere({}, ("a", "b", "web")),
        constraints='<rsc_order id="o" first="grp" then="web"/>',
    )
    (web,) = [a.name for a in graph.actions if a.rsc == "web" and a.task == "start"]
    for member in ("a", "b"):
        (start,) = [a.name for a in graph.actions if a.rsc == member and a.task == "start"]
        assert _before(graph, start, web)


def test_an_order_set_with_require_all_false_waits_for_those_that_start() -> None:
    sets = (
        '<rsc_order id="o"><resource_set id="s1" sequential="false" require-all="false">'
        '<resource_ref id="a"/><resource_ref id="b"/></resource_set>'
        '<resource_set id="s2"><resource_ref id="c"/></resource_set></rsc_order>'
    )
    graph = _graph(
        _dummy("a") + _dummy("b") + _dummy("c"),
        _known_everywhere({}, ("a", "b", "c")),
        constraints=sets,
    )
    starts = {a.rsc: a.name for a in graph.actions if a.task == "start"}
    # require-all="false" makes c runnable when either can start; in the graph (as in
    # crm_simulate's) c still waits for those of them that do start
    assert _before(graph, starts["a"], starts["c"]) and _before(graph, starts["b"], starts["c"])
    assert not _before(graph, starts["a"], starts["b"])


def test_anti_colocated_resources_leave_before_the_other_arrives() -> None:
    graph = _graph(
        _dummy("a") + _dummy("b"),
        _known_everywhere({"a": "node1", "b": "node2"}),
        constraints=(
            '<rsc_colocation id="apart" rsc="a" with-rsc="b" score="-INFINITY"/>'
            '<rsc_location id="l1" rsc="a" node="node2" score="500"/>'
            '<rsc_location id="l2" rsc="b" node="node1" score="500"/>'
        ),
    )
    # they swap nodes: each leaves its node before the other starts there
    assert _before(graph, "a_stop_0 node1", "b_start_0 node1")
    assert _before(graph, "b_stop_0 node2", "a_start_0 node2")


def test_a_migration_goes_to_then_from_then_stops() -> None:
    meta = '<meta_attributes id="vm-m"><nvpair id="vm-m1" name="allow-migrate" value="true"/>'
    graph = _graph(
        _dummy("vm", meta + "</meta_attributes>"),
        _known_everywhere({"vm": "node1"}),
        constraints='<rsc_location id="l" rsc="vm" node="node2" score="100"/>',
    )
    assert set(graph.edges) >= {
        ("vm_migrate_to_0 node1", "vm_migrate_from_0 node2"),
        ("vm_migrate_from_0 node2", "vm_stop_0 node1"),
        # the start is implied by migrate_from: the monitor follows it through that pseudo
        ("vm_migrate_from_0 node2", "vm_monitor_10000 node2"),
    }
    assert not any(a.task == "start" for a in graph.actions)


def test_fencing_comes_before_the_recovery_of_what_ran_there() -> None:
    fencing = (
        '<nvpair id="o1" name="stonith-enabled" value="true"/>'
        '<nvpair id="o2" name="concurrent-fencing" value="false"/>'
    )
    resources = '<primitive id="fence" class="stonith" type="fence_dummy"/>' + _dummy("web")
    history = _known_everywhere({"web": "node2"}, ("fence",))
    graph = _graph(resources, history, options=fencing, states={"node2": UNCLEAN, "node3": UNCLEAN})
    names = {a.name for a in graph.actions}
    assert {"stonith 'reboot' node2", "stonith 'reboot' node3", "web_start_0 node1"} <= names
    # the resource moves only once its node is fenced (whose fencing stops it)
    assert ("stonith 'reboot' node2", "web_start_0 node1") in graph.edges
    assert not any(a.task == "stop" for a in graph.actions)
    # one fencing at a time without concurrent-fencing, in node order
    assert ("stonith 'reboot' node2", "stonith 'reboot' node3") in graph.edges
    concurrent = fencing.replace('value="false"', 'value="true"')
    graph = _graph(
        resources, history, options=concurrent, states={"node2": UNCLEAN, "node3": UNCLEAN}
    )
    assert ("stonith 'reboot' node2", "stonith 'reboot' node3") not in graph.edges


def test_a_node_shuts_down_after_its_resources_stop() -> None:
    history = _known_everywhere({"web": "node2", "db": "node3"})
    graph = _graph(_dummy("web") + _dummy("db"), history, transient={"node2": "shutdown=1"})
    assert {"web_stop_0 node2", "do_shutdown node2"} <= {a.name for a in graph.actions}
    assert ("web_stop_0 node2", "do_shutdown node2") in graph.edges
    # the DC (node1) would shut down last: node3's shutdown comes first
    graph = _graph(
        _dummy("web") + _dummy("db"),
        history,
        transient={"node1": "shutdown=1", "node3": "shutdown=1"},
    )
    assert ("db_stop_0 node3", "do_shutdown node3") in graph.edges
    assert ("do_shutdown node3", "do_shutdown node1") in graph.edges


def test_order_is_deterministic() -> None:
    group = f'<group id="grp">{_dummy("ip")}{_dummy("fs")}</group>'
    args = (group + _dummy("web"), {})
    constraints = '<rsc_order id="o" first="grp" then="web"/>'
    first = _graph(*args, constraints=constraints)
    assert first == _graph(*args, constraints=constraints)
    assert list(first.edges) == sorted(first.edges)


def test_a_clone_starts_everywhere_before_what_needs_it() -> None:
    clone = f'<clone id="base-clone">{_dummy("base")}</clone>'
    graph = _graph(
        clone + _dummy("web"),
        _known_everywhere({}, ("web",)),
        constraints='<rsc_order id="o" first="base-clone" then="web"/>',
    )
    starts = sorted(a.name for a in graph.actions if a.rsc == "base" and a.task == "start")
    probes = [
        a.name
        for a in graph.actions
        if a.rsc == "base" and a.task == "monitor" and not a.interval_ms
    ]
    (web,) = [a.name for a in graph.actions if a.rsc == "web" and a.task == "start"]
    assert len(starts) == 3 and len(probes) == 3
    # every instance is probed everywhere before any starts, and all run before web starts
    assert all(_before(graph, p, s) for p in probes for s in starts)
    assert all(_before(graph, s, web) for s in starts)
    # each instance's monitor follows its own start only
    assert _before(graph, "base_start_0 node1", "base_monitor_10000 node1")
    assert not _before(graph, "base_start_0 node1", "base_monitor_10000 node2")
