"""`hastack simulate`: the scheduler on a CIB file, with injected failures and saved output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lrm_history import lrm_op

from hastack.cli.main import main
from hastack.crm.cib.xml import read_cib
from hastack.crm.simulate import SimulationError, parse_op_failure
from hastack.crm.state import Role, resource_states

ONLINE = 'in_ccm="true" crmd="online" join="member" expected="member"'


def _write_cib(tmp_path: Path) -> Path:
    """Two nodes; web runs on node1 (sticky), nothing has been probed on node2 yet."""
    running = lrm_op("web", "start", 0, 2, 0) + lrm_op("web", "monitor", 10000, 3, 0)
    xml = f"""<cib admin_epoch="0" epoch="1" num_updates="1" validate-with="pacemaker-3.0"
 have-quorum="1" execution-date="1700000000">
<configuration>
<crm_config><cluster_property_set id="opts">
  <nvpair id="o1" name="stonith-enabled" value="false"/>
</cluster_property_set></crm_config>
<nodes><node id="1" uname="node1"/><node id="2" uname="node2"/></nodes>
<rsc_defaults><meta_attributes id="rd">
  <nvpair id="rd1" name="resource-stickiness" value="100"/>
</meta_attributes></rsc_defaults>
<resources>
  <primitive id="web" class="ocf" provider="pacemaker" type="Dummy">
    <operations><op id="web-mon" name="monitor" interval="10s"/></operations>
  </primitive>
</resources>
<constraints/>
</configuration>
<status>
<node_state id="1" uname="node1" {ONLINE}><lrm id="1"><lrm_resources>
  <lrm_resource id="web" class="ocf" provider="pacemaker" type="Dummy">{running}</lrm_resource>
</lrm_resources></lrm></node_state>
<node_state id="2" uname="node2" {ONLINE}><lrm id="2"><lrm_resources/></lrm></node_state>
</status>
</cib>"""
    path = tmp_path / "cib.xml"
    path.write_text(xml)
    return path


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["simulate", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_simulate_shows_state_actions_and_the_state_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cib = _write_cib(tmp_path)
    assert main(["simulate", "-x", str(cib), "--show-scores"]) == 0
    out = capsys.readouterr().out
    assert "Current cluster status:" in out and "Revised cluster status:" in out
    assert "web on node1: 100" in out  # stickiness, with its part named
    assert "* web_monitor_0 node2:" in out  # the probe, with its reason
    assert out.count("web (ocf:pacemaker:Dummy): Started node1") == 2


def test_json_is_the_issue_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = _json(capsys, "-x", str(_write_cib(tmp_path)))
    assert document == {
        "placement": {"web": [{"node": "node1", "role": "Started"}]},
        "actions": ["web_monitor_0 node2"],
        "edges": [],
    }


def test_json_edges_and_the_dot_file_order_the_actions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cib = str(_write_cib(tmp_path))
    dot = tmp_path / "graph.dot"
    document = _json(capsys, "-x", cib, "--node-fail", "node1", "-D", str(dot))
    # web moves to node2: probed there first, then started, then monitored
    assert document["edges"] == [
        ["web_monitor_0 node2", "web_start_0 node2"],
        ["web_start_0 node2", "web_monitor_10000 node2"],
    ]
    names = {name for edge in document["edges"] for name in edge}  # type: ignore[union-attr]
    assert names <= set(document["actions"])  # type: ignore[arg-type]
    text = dot.read_text()
    assert text.startswith(' digraph "g" {\n') and text.endswith("}\n")
    assert '"web_monitor_0 node2" -> "web_start_0 node2" [ style = bold]' in text
    assert '"web_monitor_10000 node2" [ style=bold color="green" fontcolor="black"]' in text
    # the dot file is written without --json too
    dot.unlink()
    assert main(["simulate", "-x", cib, "-F", "node1", "--save-dotfile", str(dot)]) == 0
    assert "Transition:" in capsys.readouterr().out and dot.read_text() == text
    assert main(["simulate", "-x", cib, "-D", str(tmp_path / "missing" / "g.dot")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_an_ordering_cycle_is_reported_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import hastack.crm.graph as graph

    def cyclic(*args: object) -> None:
        raise graph.GraphCycle(["a_start_0 n1", "b_start_0 n1", "a_start_0 n1"])

    monkeypatch.setattr(graph, "order", cyclic)
    cib = str(_write_cib(tmp_path))
    assert main(["simulate", "-x", cib, "--json"]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "ordering cycle: a_start_0 n1 -> b_start_0 n1 -> a_start_0 n1" in captured.err
    assert "scheduler bug" in captured.err
    # without --json or -D no graph is needed: the transition is still shown
    assert main(["simulate", "-x", cib]) == 0


def test_a_failed_node_moves_its_resource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = _json(capsys, "-x", str(_write_cib(tmp_path)), "--node-fail", "node1")
    assert document["placement"] == {"web": [{"node": "node2", "role": "Started"}]}
    assert "web_start_0 node2" in document["actions"]  # type: ignore[operator]
    # no fencing is configured (stonith-enabled=false): no stop can be run on node1 either
    assert not any("node1" in a for a in document["actions"])  # type: ignore[union-attr]


def test_an_injected_failure_shows_in_the_state_after(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cib = str(_write_cib(tmp_path))
    document = _json(capsys, "-x", cib, "--node-fail", "node1", "--op-fail", "web_start_0@node2=1")
    # the start ran and failed: crm_simulate shows such a resource FAILED, not running
    assert document["placement"] == {"web": [{"node": "node2", "role": "Started"}]}
    saved = tmp_path / "after.xml"
    argv = ["simulate", "-x", cib, "-F", "node1", "-i", "web_start_0@node2=1", "-O", str(saved)]
    assert main(argv) == 0
    capsys.readouterr()
    after = resource_states(read_cib(saved))
    (entry,) = [e for e in after.of("web") if e.node == "node2"]
    assert entry.failed and entry.failed_op is not None


def test_the_saved_output_is_a_cib_with_nothing_left_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "after.xml"
    assert main(["simulate", "-x", str(_write_cib(tmp_path)), "-F", "node1", "-O", str(saved)]) == 0
    capsys.readouterr()
    document = _json(capsys, "-x", str(saved))
    assert document["actions"] == []
    state = resource_states(read_cib(saved))
    assert [(e.node, e.role) for e in state.of("web") if e.role.active] == [("node2", Role.STARTED)]


def test_bad_options_and_unsupported_cibs_fail_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cib = str(_write_cib(tmp_path))
    assert main(["simulate", "-x", cib, "--node-fail", "node9"]) == 2
    assert "no such node (the CIB's nodes: node1, node2)" in capsys.readouterr().err
    assert main(["simulate", "-x", cib, "--op-fail", "web-start"]) == 2
    assert "RESOURCE_TASK_INTERVAL@NODE=RC" in capsys.readouterr().err
    assert main(["simulate", "-x", str(tmp_path / "missing.xml")]) == 1
    assert "cannot read" in capsys.readouterr().err
    remote = (
        Path(cib)
        .read_text()
        .replace(
            "</resources>",
            '<primitive id="rnode" class="ocf" provider="pacemaker" type="remote"/></resources>',
        )
    )
    (tmp_path / "remote.xml").write_text(remote)
    assert main(["simulate", "-x", str(tmp_path / "remote.xml")]) == 3
    assert "remote and guest nodes is not supported" in capsys.readouterr().err


def test_op_failure_spec() -> None:
    failure = parse_op_failure("rsc_1_monitor_10000@node-a=7")
    assert (failure.rsc, failure.task, failure.interval_ms, failure.node, failure.rc) == (
        "rsc_1",
        "monitor",
        10000,
        "node-a",
        7,
    )
    with pytest.raises(SimulationError, match="must be integers"):
        parse_op_failure("rsc_start_x@n=1")


def test_explain_shows_score_parts_state_and_actions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cib = str(_write_cib(tmp_path))
    assert main(["explain", "web", "-x", cib]) == 0
    out = capsys.readouterr().out
    assert "now: Started on node1 (decided by web_" in out
    assert "node1: 100  = " in out and "resource-stickiness +100" in out
    assert "after the transition: on node1" in out
    assert "action web_monitor_0 node2: state of web on node2 unknown" in out
    assert main(["explain", "web", "-x", cib, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["after"] == ["node1"] and document["unmanaged"] is False
    assert document["scores"]["node1"]["total"] == 100
    assert ["resource-stickiness", 100] in document["scores"]["node1"]["parts"]
    assert document["actions"] == [
        {"action": "web_monitor_0 node2", "reason": "state of web on node2 unknown"}
    ]


def test_explain_an_unknown_resource_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", "db", "-x", str(_write_cib(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "no resource 'db'" in err and "(its primitives, groups and clones: web)" in err
